//! The mini-batch workload of `vnn bench`: Adam steps of MLP 784-256-10 on
//! batches of 128 rows of 10,000 synthetic rows, each step timed alone.

use super::{Report, Result};
use crate::data;
use crate::model::{Init, Model};
use crate::train::{Optimizer, TrainConfig, Trainer};
use std::time::Instant;

/// Rows of the synthetic data set.
pub const ROWS: usize = 10_000;
/// Layer widths of the model.
pub const SIZES: [usize; 3] = [784, 256, 10];
/// Rows per step.
pub const BATCH: usize = 128;
/// Steps run before the timed ones.
pub const WARMUP_STEPS: usize = 10;
/// Epochs of timed steps.
pub const EPOCHS: u64 = 2;

/// The run of the workload: Adam (lr `1e-3`, betas 0.9 and 0.999, eps
/// `1e-8`), L2 `0.5 * 1e-4 * sum(W^2)` on the weights, batches of
/// [`BATCH`] rows from a shuffled epoch order.
pub fn config() -> TrainConfig {
    TrainConfig {
        epochs: u64::MAX,
        lr: 1e-3,
        reg: 1e-4,
        optimizer: Optimizer::Adam,
        batch_size: Some(BATCH),
        ..TrainConfig::default()
    }
}

/// Times [`WARMUP_STEPS`] steps, then every step of the next [`EPOCHS`]
/// epochs one by one: one step gathers the batch, runs the forward, the
/// loss and the backward, and updates the weights. The report holds one
/// sample per timed step.
pub(super) fn bench() -> Result<Report> {
    let data = data::synthetic(ROWS, SIZES[0], SIZES[2], 11);
    let model = Model::new(&SIZES, Init::Glorot, 5)?;
    let mut trainer = Trainer::new(model, &data, config())?;
    for _ in 0..WARMUP_STEPS {
        trainer.step()?;
    }
    let steps = EPOCHS * trainer.steps_per_epoch();
    let mut ns = Vec::with_capacity(steps as usize);
    for _ in 0..steps {
        let t = Instant::now();
        trainer.step()?;
        ns.push(t.elapsed().as_nanos() as f64);
    }
    ns.sort_by(f64::total_cmp);
    let flop = super::step_flop(BATCH, SIZES[0], SIZES[1], SIZES[2]);
    Ok(Report {
        workload: "minibatch",
        threads: rayon::current_num_threads(),
        ns,
        flop: Some(flop),
        calls_per_sample: 1,
    })
}

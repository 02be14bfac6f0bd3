//! Bit-reproducibility of training: the same seed gives bit-identical
//! weights whatever the number of rayon threads, and twice in a row; a
//! different seed gives different weights.
//!
//! The data sets are large enough to be cut into several row blocks (3000
//! rows: six blocks of at most 512; or mini-batches of a wide model, cut
//! into two blocks each), so the per-block passes really run in parallel
//! and their gradients are summed across threads.

use vnn::data::{spiral, Dataset};
use vnn::model::{Init, Model};
use vnn::train::{Optimizer, TrainConfig, Trainer};

const THREADS: [usize; 4] = [1, 2, 3, 8];

/// Trains for `steps` steps on a pool of `threads` threads; returns the
/// weights' bit patterns, the per-step losses and the number of blocks.
fn run(
    threads: usize,
    sizes: &[usize],
    data: &Dataset,
    config: &TrainConfig,
    steps: u64,
) -> (Vec<u32>, Vec<u64>, usize) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let model = Model::new(sizes, Init::He, 5).unwrap();
        let mut trainer = Trainer::new(model, data, config.clone()).unwrap();
        let losses = (0..steps)
            .map(|_| trainer.step().unwrap().loss.to_bits())
            .collect();
        let bits = trainer
            .model()
            .params()
            .iter()
            .map(|w| w.to_bits())
            .collect();
        (bits, losses, trainer.n_blocks())
    })
}

fn base() -> TrainConfig {
    TrainConfig {
        epochs: 1,
        lr: 0.5,
        reg: 1e-3,
        optimizer: Optimizer::Sgd,
        batch_size: None,
        dropout: 0.0,
        dropconnect: 0.0,
        seed: 9,
    }
}

/// Asserts identical results for every pool size and returns them.
fn same_for_all_pools(
    name: &str,
    sizes: &[usize],
    data: &Dataset,
    config: &TrainConfig,
    steps: u64,
    min_blocks: usize,
) -> Vec<u32> {
    let (reference, losses, blocks) = run(1, sizes, data, config, steps);
    assert!(
        blocks >= min_blocks,
        "{name}: {blocks} blocks, the test needs at least {min_blocks}"
    );
    for t in &THREADS[1..] {
        let (bits, l, _) = run(*t, sizes, data, config, steps);
        assert_eq!(l, losses, "{name}: losses differ with {t} threads");
        assert!(
            bits == reference,
            "{name}: weights differ between 1 and {t} threads"
        );
    }
    // Same seed, same pool, a second time.
    let (again, _, _) = run(2, sizes, data, config, steps);
    assert!(again == reference, "{name}: not repeatable");
    reference
}

#[test]
fn full_batch_sgd_with_dropout() {
    let data = spiral(1000, 3, 1);
    let config = TrainConfig {
        dropout: 0.3,
        ..base()
    };
    let w = same_for_all_pools("sgd dropout", &[2, 64, 3], &data, &config, 4, 6);
    // Another mask seed draws other masks, hence other weights.
    let other = TrainConfig { seed: 10, ..config };
    let (w2, _, _) = run(2, &[2, 64, 3], &data, &other, 4);
    assert!(w2 != w, "a different seed gave the same weights");
}

#[test]
fn full_batch_adam_with_dropout_two_hidden_layers() {
    // 34,307 parameters: the cross-block gradient sum runs in several
    // parallel chunks.
    let data = spiral(1000, 3, 2);
    let config = TrainConfig {
        lr: 1e-2,
        optimizer: Optimizer::Adam,
        dropout: 0.5,
        ..base()
    };
    same_for_all_pools("adam dropout", &[2, 256, 128, 3], &data, &config, 3, 6);
}

#[test]
fn full_batch_momentum_with_dropconnect() {
    let data = spiral(1000, 3, 3);
    let config = TrainConfig {
        optimizer: Optimizer::Momentum { mu: 0.9 },
        dropconnect: 0.3,
        ..base()
    };
    let w = same_for_all_pools("momentum dropconnect", &[2, 64, 3], &data, &config, 4, 6);
    let other = TrainConfig { seed: 11, ..config };
    let (w2, _, _) = run(3, &[2, 64, 3], &data, &other, 4);
    assert!(w2 != w, "a different seed gave the same weights");
}

#[test]
fn mini_batch_with_dropout() {
    // Batches of 1200 rows (three blocks) over 3000 rows: three steps per
    // epoch, the last one 600 rows; two epochs reshuffle once.
    let data = spiral(1000, 3, 4);
    let config = TrainConfig {
        epochs: 2,
        batch_size: Some(1200),
        dropout: 0.3,
        optimizer: Optimizer::Adam,
        lr: 1e-2,
        ..base()
    };
    let w = same_for_all_pools("mini-batch", &[2, 64, 3], &data, &config, 6, 3);
    let other = TrainConfig { seed: 12, ..config };
    let (w2, _, _) = run(1, &[2, 64, 3], &data, &other, 6);
    assert!(w2 != w, "a different seed gave the same weights");
}

#[test]
fn small_batches_of_a_wide_model_with_dropout() {
    // 200-512-10 has 108,042 parameters: batches of 256 rows hold 27.7M
    // forward multiply-adds, so each batch is cut into blocks of 128 rows
    // (`vnn::train::block_rows`), two per batch, and the Adam update of
    // the 102,400 first-layer weights and the gather of the 51,200 feature
    // values of a batch run in parallel pieces. 500 rows:
    // two steps per epoch, the second of 244 rows.
    assert_eq!(vnn::train::block_rows(256, 108_042), 128);
    let data = vnn::data::synthetic(500, 200, 10, 6);
    let config = TrainConfig {
        epochs: 2,
        batch_size: Some(256),
        dropout: 0.2,
        optimizer: Optimizer::Adam,
        lr: 1e-3,
        ..base()
    };
    let w = same_for_all_pools("wide mini-batch", &[200, 512, 10], &data, &config, 4, 2);
    let other = TrainConfig { seed: 13, ..config };
    let (w2, _, _) = run(2, &[200, 512, 10], &data, &other, 4);
    assert!(w2 != w, "a different seed gave the same weights");
}

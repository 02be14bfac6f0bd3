//! Golden losses: the loss of the first five optimizer steps of the source
//! text's spiral run, so that a change which moves the numbers is seen.
//!
//! The numbers were printed (`{:?}` of the `f64` loss) by the code of the
//! training pass as it was before the trainer was restructured around layer
//! ops, built with `-C target-cpu=native` on an x86-64 CPU with AVX-512.
//! The run: [`TrainConfig::default()`] (SGD, lr 1.0, reg 1e-3, full batch,
//! seed 0) on `data::spiral(100, 3, 0)`, an MLP `[2, 100, 3]` with
//! [`Init::Small`]. `vnn train --init small` initializes its model with the
//! seed `--seed + 0x1_0000`, so the first run below is the CLI's (its
//! `--json` `final_loss` after `--epochs 5` is the fifth number); the second
//! initializes with seed 0.

use approx::assert_relative_eq;
use vnn::data::spiral;
use vnn::model::{Init, Model};
use vnn::train::{TrainConfig, Trainer};

/// The losses of steps 1 to 5 of the run whose model is initialized with
/// `model_seed`.
fn first_losses(model_seed: u64) -> Vec<f64> {
    let data = spiral(100, 3, 0);
    let model = Model::new(&[2, 100, 3], Init::Small, model_seed).unwrap();
    let mut trainer = Trainer::new(model, &data, TrainConfig::default()).unwrap();
    (0..5).map(|_| trainer.step().unwrap().loss).collect()
}

fn assert_losses(got: &[f64], expected: &[f64]) {
    assert_eq!(got.len(), expected.len());
    for (step, (&g, &e)) in got.iter().zip(expected).enumerate() {
        assert_relative_eq!(g, e, max_relative = 1e-6);
        assert!(g.is_finite(), "step {}", step + 1);
    }
}

#[test]
fn golden_losses_of_the_cli_spiral_run_with_small_init() {
    let expected = [
        1.0986102942366718,
        1.0983535996174332,
        1.0980894797826195,
        1.097806342315236,
        1.0974933681924786,
    ];
    assert_losses(&first_losses(0x1_0000), &expected);
}

#[test]
fn golden_losses_of_the_spiral_run_with_small_init_at_model_seed_0() {
    let expected = [
        1.098520557382539,
        1.0983067725159896,
        1.0980916751119876,
        1.0978687310267132,
        1.097622631201357,
    ];
    assert_losses(&first_losses(0), &expected);
}

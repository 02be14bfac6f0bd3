//! Dropout and dropconnect are training-only: inference of a model trained
//! with them is the plain deterministic forward pass, and training draws a
//! new mask every step (the same one again for the same step).

use vnn::data::spiral;
use vnn::model::{Init, Model};
use vnn::train::{evaluate, Optimizer, OptimizerState, TrainConfig, Trainer};

fn config(dropout: f32, dropconnect: f32) -> TrainConfig {
    TrainConfig {
        epochs: 100,
        lr: 1e-2,
        reg: 1e-3,
        optimizer: Optimizer::Adam,
        batch_size: None,
        dropout,
        dropconnect,
        seed: 21,
    }
}

/// Plain `f64` forward pass of one row: no masks, no scaling.
fn reference_logits(model: &Model, x: &[f32]) -> Vec<f64> {
    let mut a: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let n_layers = model.layout().layers().len();
    for (l, slot) in model.layout().layers().iter().enumerate() {
        let (w, b) = model.layer(l);
        let mut z: Vec<f64> = b.iter().map(|&v| v as f64).collect();
        for (i, &ai) in a.iter().enumerate() {
            for (j, zj) in z.iter_mut().enumerate() {
                *zj += ai * w[i * slot.n_out + j] as f64;
            }
        }
        if l + 1 < n_layers {
            z.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        a = z;
    }
    a
}

#[test]
fn inference_ignores_dropout_and_dropconnect() {
    let data = spiral(100, 3, 1);
    for (dropout, dropconnect) in [(0.5, 0.0), (0.0, 0.3), (0.3, 0.3)] {
        let model = Model::new(&[2, 64, 32, 3], Init::He, 2).unwrap();
        let mut trainer = Trainer::new(model, &data, config(dropout, dropconnect)).unwrap();
        for _ in 0..100 {
            trainer.step().unwrap();
        }
        let model = trainer.into_model();
        let n = data.n_rows();
        let logits = model.logits(data.features(), n).unwrap();
        let pred = model.predict(data.features(), n).unwrap();
        // Deterministic: the same answer every time.
        assert_eq!(model.logits(data.features(), n).unwrap(), logits);
        assert_eq!(model.predict(data.features(), n).unwrap(), pred);
        assert_eq!(
            evaluate(&model, &data).unwrap(),
            evaluate(&model, &data).unwrap()
        );
        let mut scratch = model.scratch();
        for r in 0..n {
            let x = data.row(r);
            // The batch path and the batch-1 path agree on the class.
            assert_eq!(
                model.predict_one(x, &mut scratch).unwrap(),
                pred[r] as usize,
                "row {r}"
            );
            // Both are the plain forward pass: no mask and no 1/(1-p) scale.
            let reference = reference_logits(&model, x);
            for (j, (&got, &want)) in logits[r * 3..(r + 1) * 3]
                .iter()
                .zip(&reference)
                .enumerate()
            {
                assert!(
                    (got as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "row {r}, class {j}: {got} vs {want}"
                );
            }
        }
    }
}

/// Training-mode losses of the same weights at steps `steps` (restoring the
/// step counter between evaluations; SGD has no optimizer state).
fn losses_at(dropout: f32, dropconnect: f32, steps: &[u64]) -> Vec<f64> {
    let data = spiral(100, 3, 3);
    let model = Model::new(&[2, 64, 3], Init::He, 4).unwrap();
    let config = TrainConfig {
        optimizer: Optimizer::Sgd,
        ..config(dropout, dropconnect)
    };
    let mut trainer = Trainer::new(model, &data, config).unwrap();
    steps
        .iter()
        .map(|&s| {
            trainer.restore(s, OptimizerState::Sgd).unwrap();
            trainer.gradient().unwrap().0.loss
        })
        .collect()
}

#[test]
fn masks_change_every_step_and_repeat_for_the_same_step() {
    for (dropout, dropconnect) in [(0.5, 0.0), (0.0, 0.3)] {
        let l = losses_at(dropout, dropconnect, &[0, 1, 2, 0, 1]);
        assert!(
            l[0] != l[1] && l[1] != l[2] && l[0] != l[2],
            "dropout {dropout}, dropconnect {dropconnect}: losses {l:?}"
        );
        assert_eq!(l[3].to_bits(), l[0].to_bits());
        assert_eq!(l[4].to_bits(), l[1].to_bits());
    }
    // Without either, the loss of fixed weights does not depend on the step.
    let l = losses_at(0.0, 0.0, &[0, 1, 2]);
    assert!(l.iter().all(|v| v.to_bits() == l[0].to_bits()), "{l:?}");
}

//! Mini-batches: with batch size `B` on `N` rows an epoch is `ceil(N / B)`
//! steps, every row is in exactly one batch of each epoch, the order is
//! reshuffled between epochs, and each batch's loss is its own mean.
//!
//! The batch is read off the gradient: row `r` has the one-hot feature
//! vector `e_r` and the linear model starts at zero weights, so every logit
//! is 0, `dlogits[r, c] = (1/k - [c == y_r]) / B_step`, and row `r` of `dW`
//! is exactly that for rows in the batch and exactly 0 for the others.

use vnn::data::Dataset;
use vnn::model::{Init, Model};
use vnn::train::{Optimizer, OptimizerState, TrainConfig, Trainer};

#[test]
fn every_row_once_per_epoch() {
    let (n, k, batch, epochs) = (50usize, 3usize, 16usize, 3u64);
    let mut features = vec![0f32; n * n];
    for r in 0..n {
        features[r * n + r] = 1.0;
    }
    let labels = (0..n).map(|r| (r % k) as u32).collect();
    let data = Dataset::new(features, labels, n, k).unwrap();
    let mut model = Model::new(&[n, k], Init::He, 0).unwrap();
    model.params_mut().fill(0.0);
    let config = TrainConfig {
        epochs,
        lr: 1.0,
        reg: 0.0,
        optimizer: Optimizer::Sgd,
        batch_size: Some(batch),
        dropout: 0.0,
        dropconnect: 0.0,
        seed: 6,
    };
    let mut trainer = Trainer::new(model, &data, config).unwrap();
    let per_epoch = n.div_ceil(batch) as u64; // 4: 16, 16, 16 and 2 rows
    assert_eq!(trainer.steps_per_epoch(), per_epoch);
    assert_eq!(trainer.total_steps(), epochs * per_epoch);
    let mut epoch_orders = Vec::new();
    for epoch in 0..epochs {
        let mut seen = vec![0u32; n];
        let mut order = Vec::new();
        for pos in 0..per_epoch {
            let step = epoch * per_epoch + pos;
            // Same (zero) weights for every step: only the counter moves.
            trainer.restore(step, OptimizerState::Sgd).unwrap();
            let (stats, grad) = trainer.gradient().unwrap();
            assert_eq!(stats.epoch, epoch);
            let expected_rows = batch.min(n - pos as usize * batch);
            let rows: Vec<usize> = (0..n)
                .filter(|&r| grad[r * k..(r + 1) * k].iter().any(|&g| g != 0.0))
                .collect();
            assert_eq!(rows.len(), expected_rows, "epoch {epoch}, step {pos}");
            for &r in &rows {
                // (1/k - onehot) / rows of this batch: the batch mean.
                for c in 0..k {
                    let onehot = if data.labels()[r] as usize == c {
                        1.0
                    } else {
                        0.0
                    };
                    let want = (1.0 / k as f64 - onehot) / expected_rows as f64;
                    let got = grad[r * k + c] as f64;
                    assert!((got - want).abs() <= 1e-6, "row {r}: {got} vs {want}");
                }
                seen[r] += 1;
            }
            // Loss of zero logits: ln(k) whatever the batch.
            assert!((stats.loss - (k as f64).ln()).abs() < 1e-5);
            order.push(rows);
        }
        assert!(
            seen.iter().all(|&s| s == 1),
            "epoch {epoch}: rows seen {seen:?}"
        );
        epoch_orders.push(order);
    }
    assert_ne!(
        epoch_orders[0], epoch_orders[1],
        "epochs are not reshuffled"
    );
    assert_ne!(
        epoch_orders[1], epoch_orders[2],
        "epochs are not reshuffled"
    );
    // The shuffle is not the identity.
    assert_ne!(epoch_orders[0][0], (0..batch).collect::<Vec<_>>());
}

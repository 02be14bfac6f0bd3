//! Batch prediction and batch-1 prediction run the same forward path: for
//! every architecture (linear, one and two hidden layers, with and without
//! standardization) and batch sizes around the 256-row block, the batch
//! logits agree with the batch-1 logits of each row, and a reused
//! workspace gives the same bits as a fresh one.

use approx::assert_relative_eq;
use vnn::data::{spiral, Standardizer};
use vnn::model::{Init, Model, Workspace};

fn models() -> Vec<Model> {
    let mut out = Vec::new();
    for sizes in [&[2usize, 3][..], &[2, 100, 3], &[2, 24, 17, 3]] {
        let model = Model::new(sizes, Init::He, 5).unwrap();
        let standardized = model
            .clone()
            .with_standardizer(Standardizer::new(vec![0.25, -0.5], vec![0.5, 2.0]).unwrap())
            .unwrap();
        out.push(model);
        out.push(standardized);
    }
    out
}

#[test]
fn batch_logits_agree_with_batch_1_logits_and_workspaces_are_reusable() {
    let data = spiral(200, 3, 7); // 600 rows
    let mut workspace = Workspace::default();
    for model in models() {
        let mut scratch = model.scratch();
        for rows in [1, 2, 255, 256, 257, 600] {
            let x = &data.features()[..rows * 2];
            let logits = model.logits(x, rows).unwrap();
            let mut reused = vec![f32::NAN; rows * 3];
            model
                .logits_into(x, rows, &mut workspace, &mut reused)
                .unwrap();
            assert_eq!(logits, reused, "{:?}, {rows} rows", model.layout().sizes());
            for r in 0..rows {
                let p = model
                    .predict_proba_one(&x[r * 2..r * 2 + 2], &mut scratch)
                    .unwrap()
                    .to_vec();
                let mut q = logits[r * 3..r * 3 + 3].to_vec();
                vnn::kernels::softmax::softmax_rows(&mut q, 1, 3);
                for (a, b) in p.iter().zip(&q) {
                    // Same math; summation order and FMA may differ by path.
                    assert_relative_eq!(a, b, epsilon = 1e-5, max_relative = 1e-4);
                }
            }
        }
        assert!(model
            .logits_into(&data.features()[..4], 2, &mut workspace, &mut [0.0; 5])
            .is_err());
    }
}

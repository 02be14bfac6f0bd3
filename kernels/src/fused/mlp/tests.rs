//! The fused network step on every vector type this CPU runs, for every
//! instantiated shape of inputs and classes, every activation, and row
//! counts around the vector edges (0, 1, 7, 8, 9, 15, 16, 17, 63 and the
//! spiral's 300), against the scalar twin; the scratch starts as NaN.

use super::*;
use crate::simd::testing::{data, widest_isas, WidestIsa};

/// `|got - want| <= 1e-4 (1 + |want|)`: the twin adds row by row with
/// `std` activations, the kernel lane by lane with fused multiply-adds
/// and the shared `exp`.
fn close(got: f32, want: f32) -> bool {
    got.is_finite() && (got - want).abs() <= 1e-4 * (1.0 + want.abs())
}

/// Features, labels and parameters `[w1, b1, w2, b2]` of a case; the
/// weights scaled so the logits stay moderate.
fn case(
    rows: usize,
    d: usize,
    h: usize,
    k: usize,
    seed: u32,
) -> (Vec<f32>, Vec<u32>, [Vec<f32>; 4]) {
    let scaled = |n, s, f: f32| data(n, s).into_iter().map(|v| v * f).collect::<Vec<_>>();
    let labels = (0..rows)
        .map(|r| ((r * 7 + seed as usize) % k) as u32)
        .collect();
    let params = [
        scaled(d * h, seed + 1, 1.0),
        scaled(h, seed + 2, 0.5),
        scaled(h * k, seed + 3, 1.0 / (1.0 + h as f32).sqrt()),
        scaled(k, seed + 4, 0.5),
    ];
    (scaled(rows * d, seed, 1.0), labels, params)
}

/// The kernel (through `isa`, or the public entry with `isa = None`)
/// against the twin on one case.
fn run_case<const D: usize, const K: usize>(
    isa: Option<WidestIsa>,
    act: Activation,
    rows: usize,
    h: usize,
) {
    let (x, labels, [w1, b1, w2, b2]) = case(rows, D, h, K, (rows + h) as u32);
    let net = NarrowMlp {
        act,
        x: &x,
        labels: &labels,
        w1: &w1,
        b1: &b1,
        w2: &w2,
        b2: &b2,
        n_in: D,
        hidden: h,
        classes: K,
    };
    // Gradients accumulate: both start from the same non-zero values.
    let start = [data(D * h, 9), data(h, 10), data(h * K, 11), data(K, 12)];
    let (mut got, mut want) = (start.clone(), start);
    let mut scratch = vec![f32::NAN; narrow_mlp_scratch(rows, D, h, K) + 3];
    let [dw1, db1, dw2, db2] = &mut got;
    let grads = MlpGrads { dw1, db1, dw2, db2 };
    let inv_n = 1.0 / rows.max(1) as f32;
    let ce = match isa {
        Some(isa) => isa.run(MlpStep::<D, K> {
            net: &net,
            inv_n,
            grads,
            scratch: &mut scratch,
        }),
        None => narrow_mlp_forward_backward(&net, inv_n, grads, &mut scratch),
    };
    let [dw1, db1, dw2, db2] = &mut want;
    let grads = MlpGrads { dw1, db1, dw2, db2 };
    let mut twin_scratch = vec![f32::NAN; narrow_mlp_scratch(rows, D, h, K)];
    let ce_want = narrow_mlp_forward_backward_scalar(&net, inv_n, grads, &mut twin_scratch);
    let what = format!("{isa:?} {act} {rows}x{D}-{h}-{K}");
    assert!(
        (ce.loss - ce_want.loss).abs() <= 1e-5 * (1.0 + ce_want.loss.abs()),
        "{what}: loss {} vs {}",
        ce.loss,
        ce_want.loss
    );
    assert_eq!(ce.correct, ce_want.correct, "{what}: correct");
    for (name, (g, w)) in ["dW1", "db1", "dW2", "db2"]
        .iter()
        .zip(got.iter().zip(&want))
    {
        for (i, (&g, &w)) in g.iter().zip(w).enumerate() {
            assert!(close(g, w), "{what} {name}[{i}]: {g} vs {w}");
        }
    }
    assert!(scratch[narrow_mlp_scratch(rows, D, h, K)..]
        .iter()
        .all(|v| v.is_nan()));
}

fn every_rows<const D: usize, const K: usize>() {
    for isa in widest_isas("fused network step") {
        for act in Activation::ALL {
            for rows in [0, 1, 7, 8, 9, 15, 16, 17, 63, 300] {
                for h in [0, 1, 7, 100] {
                    run_case::<D, K>(Some(isa), act, rows, h);
                }
            }
        }
    }
}

#[test]
fn step_matches_twin_for_every_shape() {
    every_rows::<1, 1>();
    every_rows::<1, 2>();
    every_rows::<1, 3>();
    every_rows::<1, 4>();
    every_rows::<2, 1>();
    every_rows::<2, 2>();
    every_rows::<2, 3>();
    every_rows::<2, 4>();
    every_rows::<3, 1>();
    every_rows::<3, 2>();
    every_rows::<3, 3>();
    every_rows::<3, 4>();
    every_rows::<4, 1>();
    every_rows::<4, 2>();
    every_rows::<4, 3>();
    every_rows::<4, 4>();
}

#[test]
fn public_entry_matches_twin_on_the_spiral_shape() {
    for act in Activation::ALL {
        run_case::<2, 3>(None, act, 300, 100);
    }
}

#[test]
#[should_panic(expected = "label 3 out of range")]
fn refuses_a_label_out_of_range() {
    let net = NarrowMlp {
        act: Activation::Relu,
        x: &[1.0],
        labels: &[3],
        w1: &[1.0],
        b1: &[0.0],
        w2: &[1.0; 3],
        b2: &[0.0; 3],
        n_in: 1,
        hidden: 1,
        classes: 3,
    };
    let (mut dw1, mut db1, mut dw2, mut db2) = ([0.0], [0.0], [0.0; 3], [0.0; 3]);
    let grads = MlpGrads {
        dw1: &mut dw1,
        db1: &mut db1,
        dw2: &mut dw2,
        db2: &mut db2,
    };
    narrow_mlp_forward_backward(&net, 1.0, grads, &mut [0.0; 128]);
}

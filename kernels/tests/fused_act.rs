//! The narrow fused strips for every activation (`narrow_bias_act_forward`,
//! `narrow_act_backward`, `narrow_act_backward_dw`) against their scalar
//! twins, over wide sides 0, 1, lane-1, lane, lane+1, odd and large and
//! narrow sides 0 to 17; and the layer ops that pick them
//! (`dense_act_forward`, `act_dense_backward`) against an f64 reference of
//! the unfused layer, with and without dropout, on the narrow and GEMM
//! shapes.
//!
//! Tolerances: sums within a few ulps per term of the sum of absolute terms
//! (the SIMD path fuses multiply-adds); the tanh and sigmoid forwards add
//! `1e-6` relative or `1e-7` absolute (the shared polynomial `exp` against
//! `std`); the layer ops within `1e-5` relative of f64, or `8e-6` absolute per
//! summed term (at least `2e-5`).

mod common;

use approx::relative_eq;
use common::rng;
use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;
use vnn_kernels::activation::{act_scalar_value, Activation, LEAKY_RELU_SLOPE};
use vnn_kernels::fused::{
    narrow_act_backward, narrow_act_backward_dw, narrow_act_backward_dw_scalar,
    narrow_act_backward_scalar, narrow_bias_act_forward, narrow_bias_act_forward_scalar,
    narrow_bias_relu_forward, narrow_relu_backward,
};
use vnn_kernels::layer::{
    act_dense_backward, act_dense_backward_scratch, dense_act_forward, DenseShape, Dropout,
};
use vnn_kernels::mask::bernoulli_mask;

const ROWS: [usize; 4] = [0, 1, 3, 33];
const NARROW: [usize; 7] = [0, 1, 2, 3, 10, 16, 17];
const WIDE: [usize; 11] = [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 515];

fn data(r: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.random_range(-2.0f32..2.0)).collect()
}

/// Within `terms + 1` times 4 ulps of `scale` (the sum of absolute terms),
/// plus the activation's own bound `act_tol` relative to `|b|`.
fn close(a: f32, b: f32, scale: f32, terms: usize, act_tol: f32) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    let sums = (terms as f32 + 1.0) * 4.0 * f32::EPSILON * scale.max(1e-30);
    (a - b).abs() <= sums + act_tol * (b.abs() + 0.1)
}

/// The activation's bound of the forward against the twin.
fn act_tol(act: Activation) -> f32 {
    match act {
        Activation::Tanh | Activation::Sigmoid => 1e-6,
        Activation::Relu | Activation::LeakyRelu => 0.0,
    }
}

#[test]
fn forward_matches_twin_for_every_activation() {
    let mut r = rng(21);
    for act in Activation::ALL {
        for rows in ROWS {
            for n_in in NARROW {
                for n_out in WIDE {
                    let x = data(&mut r, rows * n_in);
                    let w = data(&mut r, n_in * n_out);
                    let b = data(&mut r, n_out);
                    let mut got = vec![f32::NAN; rows * n_out];
                    let mut want = vec![f32::NAN; rows * n_out];
                    narrow_bias_act_forward(act, &x, &w, &b, rows, n_in, n_out, &mut got);
                    narrow_bias_act_forward_scalar(act, &x, &w, &b, rows, n_in, n_out, &mut want);
                    let what = format!("{act} rows {rows} n_in {n_in} n_out {n_out}");
                    for i in 0..rows * n_out {
                        let (rr, j) = (i / n_out, i % n_out);
                        let terms = (0..n_in).map(|l| (x[rr * n_in + l] * w[l * n_out + j]).abs());
                        let scale = b[j].abs() + terms.sum::<f32>();
                        let (g, e) = (got[i], want[i]);
                        // The slope of leaky ReLU and the derivatives (<= 1) scale the error down.
                        assert!(
                            close(g, e, scale, n_in, act_tol(act)),
                            "{what} at {i}: {g} vs {e}"
                        );
                    }
                    if act == Activation::Relu {
                        let mut relu = vec![f32::NAN; rows * n_out];
                        narrow_bias_relu_forward(&x, &w, &b, rows, n_in, n_out, &mut relu);
                        assert_eq!(bits(&got), bits(&relu), "{what}: ReLU entry");
                    }
                }
            }
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Outputs of `act` (what a backward reads), with a NaN now and then.
fn outputs(r: &mut Xoshiro256PlusPlus, act: Activation, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 13 {
            5 => f32::NAN,
            7 => 0.0,
            _ => act_scalar_value(act, r.random_range(-3.0f32..3.0)),
        })
        .collect()
}

/// One backward case: both entries against their twins (`dZ`, `db`, `dW`),
/// and the `dW` entry's `dZ` and `db` bit-equal to the plain entry's.
fn backward_case(r: &mut Xoshiro256PlusPlus, act: Activation, rows: usize, width: usize, k: usize) {
    let a = outputs(r, act, rows * width);
    let ds = data(r, rows * k);
    let w_t = data(r, k * width);
    let db0 = data(r, width);
    let dw0 = data(r, width * k);
    let what = format!("{act} rows {rows} k {k} width {width}");
    let (mut got, mut want, mut fused) = (a.clone(), a.clone(), a.clone());
    let (mut db_got, mut db_want, mut db_fused) = (db0.clone(), db0.clone(), db0.clone());
    let (mut dw_got, mut dw_want) = (dw0.clone(), dw0.clone());
    narrow_act_backward(act, &mut got, &ds, &w_t, rows, width, k, &mut db_got);
    narrow_act_backward_scalar(act, &mut want, &ds, &w_t, rows, width, k, &mut db_want);
    let dw = &mut dw_got;
    narrow_act_backward_dw(
        act,
        &mut fused,
        &ds,
        &w_t,
        rows,
        width,
        k,
        &mut db_fused,
        dw,
    );
    assert_eq!(bits(&fused), bits(&got), "{what}: dZ of the dW entry");
    assert_eq!(bits(&db_fused), bits(&db_got), "{what}: db of the dW entry");
    let mut want_dw_dz = a.clone();
    let mut db_scratch = db0.clone();
    let dww = &mut dw_want;
    narrow_act_backward_dw_scalar(
        act,
        &mut want_dw_dz,
        &ds,
        &w_t,
        rows,
        width,
        k,
        &mut db_scratch,
        dww,
    );
    assert_eq!(
        bits(&want_dw_dz),
        bits(&want),
        "{what}: twin dZ of the dW entry"
    );
    for i in 0..rows * width {
        let (rr, j) = (i / width, i % width);
        let scale: f32 = (0..k)
            .map(|c| (ds[rr * k + c] * w_t[c * width + j]).abs())
            .sum();
        // |act'| <= 1 for every activation on its outputs in range.
        assert!(
            close(got[i], want[i], scale, k, 0.0),
            "{what} dZ[{i}]: {} vs {}",
            got[i],
            want[i]
        );
    }
    for j in 0..width {
        let scale = db0[j].abs() + (0..rows).map(|rr| want[rr * width + j].abs()).sum::<f32>();
        let (g, e) = (db_got[j], db_want[j]);
        assert!(
            close(g, e, scale, rows + k, 0.0),
            "{what} db[{j}]: {g} vs {e}"
        );
        for c in 0..k {
            let terms = (0..rows).map(|rr| (a[rr * width + j] * ds[rr * k + c]).abs());
            let scale = dw0[j * k + c].abs() + terms.sum::<f32>();
            let (g, e) = (dw_got[j * k + c], dw_want[j * k + c]);
            assert!(
                close(g, e, scale, rows, 0.0),
                "{what}: dW[{j}, {c}] {g} vs {e}"
            );
        }
    }
    if act == Activation::Relu {
        let (mut relu, mut db_relu) = (a.clone(), db0.clone());
        narrow_relu_backward(&mut relu, &ds, &w_t, rows, width, k, 1.0, &mut db_relu);
        assert_eq!(bits(&got), bits(&relu), "{what}: ReLU entry dZ");
        assert_eq!(bits(&db_got), bits(&db_relu), "{what}: ReLU entry db");
    }
}

#[test]
fn backward_matches_twin_for_every_activation() {
    let mut r = rng(22);
    for act in Activation::ALL {
        for rows in ROWS {
            for k in NARROW {
                for width in WIDE {
                    backward_case(&mut r, act, rows, width, k);
                }
            }
        }
    }
}

/// The derivative from the output, written out (`act_backward`'s rule).
fn derivative(act: Activation, p: f64) -> f64 {
    match act {
        Activation::Relu => f64::from(u8::from(p > 0.0)),
        Activation::Tanh => 1.0 - p * p,
        Activation::Sigmoid => p * (1.0 - p),
        Activation::LeakyRelu => {
            if p > 0.0 {
                1.0
            } else {
                f64::from(LEAKY_RELU_SLOPE)
            }
        }
    }
}

/// The unfused layer in f64: `A = act(X W + b) * M`, then for an upstream
/// `dS` through the next layer `W2`: `dW2 = Aᵀ dS`, `dZ = (dS W2ᵀ) M
/// act'(A / M)` where kept, `db = Σ dZ`. Returns `(A, dZ, dW2, db)`.
fn reference(
    act: Activation,
    [rows, n_in, n_mid, n_out]: [usize; 4],
    [x, w, b, w2, ds]: [&[f32]; 5],
    mask: &[f32],
) -> [Vec<f32>; 4] {
    let mut a = vec![0f32; rows * n_mid];
    for r in 0..rows {
        for j in 0..n_mid {
            let z: f64 = (0..n_in)
                .map(|l| f64::from(x[r * n_in + l]) * f64::from(w[l * n_mid + j]))
                .sum();
            a[r * n_mid + j] =
                act_scalar_value(act, (z + f64::from(b[j])) as f32) * mask[r * n_mid + j];
        }
    }
    let (mut dz, mut dw2, mut db) = (
        vec![0f32; rows * n_mid],
        vec![0f32; n_mid * n_out],
        vec![0f32; n_mid],
    );
    for j in 0..n_mid {
        for c in 0..n_out {
            let s: f64 = (0..rows)
                .map(|r| f64::from(a[r * n_mid + j]) * f64::from(ds[r * n_out + c]))
                .sum();
            dw2[j * n_out + c] = s as f32;
        }
        let mut sum = 0f64;
        for r in 0..rows {
            let da: f64 = (0..n_out)
                .map(|c| f64::from(ds[r * n_out + c]) * f64::from(w2[j * n_out + c]))
                .sum();
            let m = f64::from(mask[r * n_mid + j]);
            let v = if m > 0.0 {
                da * m * derivative(act, f64::from(a[r * n_mid + j]) / m)
            } else {
                0.0
            };
            dz[r * n_mid + j] = v as f32;
            sum += v;
        }
        db[j] = sum as f32;
    }
    [a, dz, dw2, db]
}

#[track_caller]
fn assert_near(got: &[f32], want: &[f32], terms: usize, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    // Sums over the rows cancel: an absolute bound of 1e-6 per term of
    // magnitude up to 8 (|A| <= ~3, |dS| <= 2), at least 2e-5.
    let epsilon = (1e-6 * 8.0 * terms as f32).max(2e-5);
    for (i, (&g, &e)) in got.iter().zip(want).enumerate() {
        assert!(
            relative_eq!(g, e, epsilon = epsilon, max_relative = 1e-5),
            "{what}[{i}]: {g} vs {e}"
        );
    }
}

#[test]
fn layer_ops_match_the_unfused_layer_for_every_activation() {
    let mut r = rng(23);
    // [rows, n_in, n_mid, n_out]: the spiral (narrow forward, fused-dW backward),
    // narrow with 5..16 outputs, one row, and wide inputs and outputs (GEMM).
    let shapes = [
        [300, 2, 100, 3],
        [40, 5, 24, 10],
        [1, 3, 9, 1],
        [20, 20, 13, 17],
    ];
    for act in Activation::ALL {
        for dropout in [
            None,
            Some(Dropout {
                p_drop: 0.3,
                seed: 5,
                stream: 2,
            }),
        ] {
            for [rows, n_in, n_mid, n_out] in shapes {
                let (x, w, b) = (
                    data(&mut r, rows * n_in),
                    data(&mut r, n_in * n_mid),
                    data(&mut r, n_mid),
                );
                let (w2, ds) = (data(&mut r, n_mid * n_out), data(&mut r, rows * n_out));
                let mut mask = vec![1f32; rows * n_mid];
                if let Some(d) = dropout {
                    bernoulli_mask(&mut mask, d.p_drop, d.seed, d.stream);
                }
                let dims = [rows, n_in, n_mid, n_out];
                let [a_want, dz_want, dw_want, db_want] =
                    reference(act, dims, [&x, &w, &b, &w2, &ds], &mask);
                let what = format!("{act} {dims:?} {dropout:?}");
                let mut a = vec![f32::NAN; rows * n_mid];
                let shape = DenseShape {
                    rows,
                    n_in,
                    n_out: n_mid,
                };
                dense_act_forward(act, shape, &x, &w, &b, dropout, &mut a);
                assert_near(&a, &a_want, n_in, &format!("{what}: A"));
                let shape2 = DenseShape {
                    rows,
                    n_in: n_mid,
                    n_out,
                };
                let mut scratch = vec![f32::NAN; act_dense_backward_scratch(act, shape2)];
                let (mut dw, mut db) = (vec![0f32; n_mid * n_out], vec![0f32; n_mid]);
                act_dense_backward(
                    act,
                    shape2,
                    &mut a,
                    &ds,
                    &w2,
                    dropout,
                    &mut dw,
                    &mut db,
                    &mut scratch,
                );
                assert_near(&a, &dz_want, n_out, &format!("{what}: dZ"));
                assert_near(&dw, &dw_want, rows, &format!("{what}: dW"));
                assert_near(&db, &db_want, rows, &format!("{what}: db"));
            }
        }
    }
}

//! The fused narrow-layer kernels against their scalar twins, over shapes
//! around the 8-lane boundaries (including empty ones), and their NaN rules.

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use vnn_kernels::fused::{
    narrow_bias_relu_forward, narrow_bias_relu_forward_scalar, narrow_relu_backward,
    narrow_relu_backward_dw, narrow_relu_backward_dw_scalar, narrow_relu_backward_scalar,
};

const ROWS: [usize; 5] = [0, 1, 3, 8, 33];
const NARROW: [usize; 6] = [0, 1, 2, 3, 10, 16];
const WIDE: [usize; 12] = [0, 1, 7, 8, 9, 16, 17, 31, 32, 33, 100, 515];

fn data(r: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.random_range(-2.0f32..2.0)).collect()
}

/// Close up to rounding: the SIMD path may fuse multiply-adds. The bound is
/// relative to the sum of absolute terms (`scale`), a few ulps per term.
fn close(a: f32, b: f32, scale: f32, terms: usize) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    (a - b).abs() <= (terms as f32 + 1.0) * 4.0 * f32::EPSILON * scale.max(1e-30)
}

#[test]
fn forward_matches_twin() {
    let mut r = Xoshiro256PlusPlus::seed_from_u64(1);
    for &rows in &ROWS {
        for &n_in in &NARROW {
            for &n_out in &WIDE {
                let x = data(&mut r, rows * n_in);
                let w = data(&mut r, n_in * n_out);
                let b = data(&mut r, n_out);
                let mut got = vec![f32::NAN; rows * n_out];
                let mut want = vec![f32::NAN; rows * n_out];
                narrow_bias_relu_forward(&x, &w, &b, rows, n_in, n_out, &mut got);
                narrow_bias_relu_forward_scalar(&x, &w, &b, rows, n_in, n_out, &mut want);
                for i in 0..rows * n_out {
                    let (rr, j) = (i / n_out, i % n_out);
                    let scale = b[j].abs()
                        + (0..n_in)
                            .map(|l| (x[rr * n_in + l] * w[l * n_out + j]).abs())
                            .sum::<f32>();
                    assert!(
                        close(got[i], want[i], scale, n_in),
                        "rows {rows} n_in {n_in} n_out {n_out} at {i}: {} vs {}",
                        got[i],
                        want[i]
                    );
                    assert!(got[i] >= 0.0 && got[i].to_bits() != (-0.0f32).to_bits());
                }
            }
        }
    }
}

#[test]
fn forward_nan_propagates_and_negatives_become_plus_zero() {
    // 1 x 1 input, 9 outputs: one full vector and a scalar tail.
    let w = [1.0f32; 9];
    let mut b = [-1.0f32; 9];
    b[3] = f32::NAN;
    b[8] = f32::NAN;
    let mut a = [7.0f32; 9];
    narrow_bias_relu_forward(&[0.5], &w, &b, 1, 1, 9, &mut a);
    for (j, v) in a.iter().enumerate() {
        if j == 3 || j == 8 {
            assert!(v.is_nan());
        } else {
            assert_eq!(v.to_bits(), 0.0f32.to_bits());
        }
    }
}

/// The weight-gradient variant: `dZ` bit-equal to [`narrow_relu_backward`],
/// `db` and `dW` close to the twin (also past the strip shapes: `k` of 17,
/// widths below 8), `dW` accumulated onto its old values.
#[test]
fn backward_dw_matches_twin() {
    let mut r = Xoshiro256PlusPlus::seed_from_u64(3);
    for &rows in &ROWS {
        for k in [0, 1, 2, 3, 10, 16, 17] {
            for &width in &WIDE {
                let a: Vec<f32> = (0..rows * width)
                    .map(|i| match i % 7 {
                        0 | 2 => 0.0,
                        3 if i % 5 == 0 => f32::NAN,
                        _ => r.random_range(-1.0f32..2.0),
                    })
                    .collect();
                let ds = data(&mut r, rows * k);
                let w_t = data(&mut r, k * width);
                let db0 = data(&mut r, width);
                let dw0 = data(&mut r, width * k);
                let mut plain = a.clone();
                let mut db_plain = db0.clone();
                narrow_relu_backward(&mut plain, &ds, &w_t, rows, width, k, 1.5, &mut db_plain);
                let (mut got, mut want) = (a.clone(), a.clone());
                let (mut db_got, mut db_want) = (db0.clone(), db0.clone());
                let (mut dw_got, mut dw_want) = (dw0.clone(), dw0.clone());
                narrow_relu_backward_dw(
                    &mut got,
                    &ds,
                    &w_t,
                    rows,
                    width,
                    k,
                    1.5,
                    &mut db_got,
                    &mut dw_got,
                );
                narrow_relu_backward_dw_scalar(
                    &mut want,
                    &ds,
                    &w_t,
                    rows,
                    width,
                    k,
                    1.5,
                    &mut db_want,
                    &mut dw_want,
                );
                let what = format!("rows {rows} k {k} width {width}");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&plain), "{what}: dZ");
                assert_eq!(bits(&db_got), bits(&db_plain), "{what}: db");
                for j in 0..width {
                    for c in 0..k {
                        let s = dw0[j * k + c].abs()
                            + (0..rows)
                                .map(|rr| (a[rr * width + j] * ds[rr * k + c]).abs())
                                .sum::<f32>();
                        let (g, e) = (dw_got[j * k + c], dw_want[j * k + c]);
                        assert!(close(g, e, s, rows), "{what}: dW[{j}, {c}] {g} vs {e}");
                    }
                }
            }
        }
    }
}

#[test]
fn backward_matches_twin() {
    let mut r = Xoshiro256PlusPlus::seed_from_u64(2);
    for &rows in &ROWS {
        for &k in &NARROW {
            for &width in &WIDE {
                for scale in [1.0f32, 1.25] {
                    // Activations: about half inactive (zero), some NaN.
                    let a: Vec<f32> = (0..rows * width)
                        .map(|i| match i % 7 {
                            0 | 2 | 5 => 0.0,
                            3 if i % 5 == 0 => f32::NAN,
                            _ => r.random_range(0.01f32..2.0),
                        })
                        .collect();
                    let ds = data(&mut r, rows * k);
                    let w_t = data(&mut r, k * width);
                    let db0 = data(&mut r, width);
                    let (mut got, mut want) = (a.clone(), a.clone());
                    let (mut db_got, mut db_want) = (db0.clone(), db0.clone());
                    narrow_relu_backward(&mut got, &ds, &w_t, rows, width, k, scale, &mut db_got);
                    narrow_relu_backward_scalar(
                        &mut want,
                        &ds,
                        &w_t,
                        rows,
                        width,
                        k,
                        scale,
                        &mut db_want,
                    );
                    let mut col_scale = vec![0f32; width];
                    for i in 0..rows * width {
                        let (rr, j) = (i / width, i % width);
                        let s = scale
                            * (0..k)
                                .map(|c| (ds[rr * k + c] * w_t[c * width + j]).abs())
                                .sum::<f32>();
                        col_scale[j] += s;
                        assert!(
                            close(got[i], want[i], s, k),
                            "rows {rows} k {k} width {width} at {i}: {} vs {}",
                            got[i],
                            want[i]
                        );
                        if a[i].is_nan() || a[i] <= 0.0 {
                            assert_eq!(got[i].to_bits(), 0.0f32.to_bits(), "inactive at {i}");
                        }
                    }
                    for j in 0..width {
                        let s = db0[j].abs() + col_scale[j];
                        assert!(
                            close(db_got[j], db_want[j], s, k + rows),
                            "db[{j}]: {} vs {}",
                            db_got[j],
                            db_want[j]
                        );
                    }
                }
            }
        }
    }
}

#[test]
#[should_panic(expected = "narrow_relu_backward: W^T has")]
fn backward_checks_shapes() {
    let mut a = [0.0f32; 4];
    let mut db = [0.0f32; 2];
    narrow_relu_backward(&mut a, &[0.0; 2], &[0.0; 3], 2, 2, 1, 1.0, &mut db);
}

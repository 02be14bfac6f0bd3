//! The class-weighted softmax cross-entropy against its scalar twin, the
//! unweighted kernel (all weights 1 and scaled weights) and an `f64`
//! reference with central differences, at the usual lengths: 0, 1, lane-1,
//! lane, lane+1 (8 and 16 lanes, and the short/long row switch at 31, 32,
//! 33), odd and large.

mod common;

use approx::{assert_abs_diff_eq, assert_relative_eq, relative_eq};
use common::{assert_bits_eq, rng};
use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;
use vnn_kernels::softmax::{
    softmax_cross_entropy, softmax_cross_entropy_scalar, softmax_cross_entropy_weighted,
    softmax_cross_entropy_weighted_scalar,
};

const LENGTHS: [usize; 15] = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000];

/// Relative error of a probability between the SIMD `exp` and std's, with
/// sums of up to 64 terms in another order (as in `elementwise.rs`).
const PROB_REL: f32 = 1e-5;

fn logits(r: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.random_range(-4.0f32..4.0)).collect()
}

fn labels(r: &mut Xoshiro256PlusPlus, rows: usize, cols: usize) -> Vec<u32> {
    (0..rows).map(|_| r.random_range(0..cols as u32)).collect()
}

fn weights(r: &mut Xoshiro256PlusPlus, cols: usize) -> Vec<f32> {
    (0..cols).map(|_| r.random_range(0.1f32..5.0)).collect()
}

/// Every length as the columns of 1 and 3 rows, and as the rows of 2 and
/// 10 columns.
fn shapes() -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for n in LENGTHS {
        out.extend([(1, n), (3, n), (n, 2), (n, 10)]);
    }
    out.push((1000, 3));
    out
}

#[test]
fn weighted_close_to_twin() {
    let mut r = rng(21);
    for (rows, cols) in shapes() {
        if cols == 0 {
            continue;
        }
        let x = logits(&mut r, rows * cols);
        let (y, w) = (labels(&mut r, rows, cols), weights(&mut r, cols));
        let inv_n = 1.0 / rows.max(1) as f32;
        let (mut a, mut b) = (x.clone(), x);
        let ca = softmax_cross_entropy_weighted(&mut a, &y, &w, rows, cols, inv_n);
        let cb = softmax_cross_entropy_weighted_scalar(&mut b, &y, &w, rows, cols, inv_n);
        let what = format!("weighted cross-entropy {rows}x{cols}");
        assert_eq!(ca.correct, cb.correct, "{what}");
        // Each row's loss is off by about PROB_REL absolutely, times its
        // weight (at most 5).
        assert_relative_eq!(ca.loss, cb.loss, epsilon = 5e-5, max_relative = 1e-6);
        for (i, (&ga, &gb)) in a.iter().zip(&b).enumerate() {
            let ok = relative_eq!(
                ga,
                gb,
                epsilon = 5.0 * PROB_REL * inv_n,
                max_relative = PROB_REL
            );
            assert!(ok, "{what}: element {i}: {ga:e} vs {gb:e}");
        }
    }
}

#[test]
fn unit_weights_are_the_unweighted_kernel_bit_for_bit() {
    let mut r = rng(22);
    for (rows, cols) in shapes() {
        if cols == 0 {
            continue;
        }
        let x = logits(&mut r, rows * cols);
        let y = labels(&mut r, rows, cols);
        let ones = vec![1.0f32; cols];
        let inv_n = 1.0 / rows.max(1) as f32;
        // The scalar twins: the same arithmetic, times 1.
        let (mut a, mut b) = (x.clone(), x.clone());
        let ca = softmax_cross_entropy_weighted_scalar(&mut a, &y, &ones, rows, cols, inv_n);
        let cb = softmax_cross_entropy_scalar(&mut b, &y, rows, cols, inv_n);
        assert_eq!(
            (ca.loss.to_bits(), ca.correct),
            (cb.loss.to_bits(), cb.correct)
        );
        assert_bits_eq(&a, &b, &format!("scalar {rows}x{cols}"));
        // SIMD: the unweighted kernel may take another engine (AVX2 row
        // groups), so only within the twin bounds.
        let (mut a, mut b) = (x.clone(), x);
        let ca = softmax_cross_entropy_weighted(&mut a, &y, &ones, rows, cols, inv_n);
        let cb = softmax_cross_entropy(&mut b, &y, rows, cols, inv_n);
        assert_eq!(ca.correct, cb.correct);
        assert_relative_eq!(ca.loss, cb.loss, epsilon = 1e-5, max_relative = 1e-6);
        for (&ga, &gb) in a.iter().zip(&b) {
            assert!(relative_eq!(
                ga,
                gb,
                epsilon = PROB_REL * inv_n,
                max_relative = PROB_REL
            ));
        }
    }
}

/// `f64` weighted mean cross-entropy of `x` (`rows x cols`).
fn weighted_ce_f64(x: &[f64], y: &[u32], w: &[f32], cols: usize) -> f64 {
    let mut loss = 0.0;
    for (row, &label) in x.chunks_exact(cols).zip(y) {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        loss += w[label as usize] as f64 * (lse - row[label as usize]);
    }
    loss / y.len() as f64
}

#[test]
fn weighted_loss_and_gradient_against_f64_central_differences() {
    let mut r = rng(23);
    for (rows, cols) in [(1, 1), (3, 4), (5, 17), (2, 33)] {
        let x = logits(&mut r, rows * cols);
        let (y, w) = (labels(&mut r, rows, cols), weights(&mut r, cols));
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        for simd in [true, false] {
            let mut g = x.clone();
            let inv_n = 1.0 / rows as f32;
            let ce = match simd {
                true => softmax_cross_entropy_weighted(&mut g, &y, &w, rows, cols, inv_n),
                false => softmax_cross_entropy_weighted_scalar(&mut g, &y, &w, rows, cols, inv_n),
            };
            let want = weighted_ce_f64(&x64, &y, &w, cols);
            assert_relative_eq!(ce.loss, want, epsilon = 1e-6, max_relative = 1e-5);
            let h = 1e-5;
            for i in 0..x.len() {
                let (mut plus, mut minus) = (x64.clone(), x64.clone());
                plus[i] += h;
                minus[i] -= h;
                let fd = (weighted_ce_f64(&plus, &y, &w, cols)
                    - weighted_ce_f64(&minus, &y, &w, cols))
                    / (2.0 * h);
                // An f32 gradient of magnitude up to 5: a few 1e-7.
                assert_abs_diff_eq!(g[i] as f64, fd, epsilon = 2e-6);
            }
        }
    }
}

#[test]
fn empty_batch_and_shape_checks() {
    let ce = softmax_cross_entropy_weighted(&mut [], &[], &[1.0, 2.0], 0, 2, 1.0);
    assert_eq!((ce.loss, ce.correct), (0.0, 0));
    let wrong = std::panic::catch_unwind(|| {
        let mut x = [0.0f32; 4];
        softmax_cross_entropy_weighted(&mut x, &[0, 1], &[1.0], 2, 2, 0.5)
    });
    assert!(wrong.is_err(), "one weight for two classes must panic");
}

//! SIMD kernels against their scalar twins (and against hand-computed or
//! `f64` references) for the elementwise families: activation, mask,
//! softmax, update, reduce.
//!
//! Exact kernels are compared bit for bit (two NaNs count as equal whatever
//! their payload). The others use `approx` with a bound stated next to each
//! comparison.

mod common;

use approx::{assert_abs_diff_eq, assert_relative_eq, relative_eq};
use common::{assert_bits_eq, rng};
use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;
use vnn_kernels::activation::{
    bias_relu_dropout_forward, bias_relu_dropout_forward_scalar, bias_relu_forward,
    bias_relu_forward_scalar, relu_backward, relu_backward_scalar,
};
use vnn_kernels::mask::{
    apply_mask, apply_mask_scalar, bernoulli_mask, bernoulli_mask_scalar, keep_scale, MaskBits,
    MaskBitsSimd,
};
use vnn_kernels::reduce::{
    add_assign, add_assign_scalar, argmax_rows, argmax_rows_scalar, column_sums,
    column_sums_scalar, sum_squares, sum_squares_scalar,
};
use vnn_kernels::softmax::{
    logsumexp_rows, logsumexp_rows_scalar, softmax_cross_entropy, softmax_cross_entropy_scalar,
    softmax_rows, softmax_rows_scalar,
};
use vnn_kernels::update::{
    adam_update, adam_update_scalar, momentum_update, momentum_update_scalar, sgd_update,
    sgd_update_scalar, AdamStep,
};

/// Lengths around the 8- and 16-lane boundaries (31, 32, 33: the short/long
/// row switch of the softmax with 16 lanes), odd lengths and a large one.
const LENGTHS: [usize; 15] = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000];

/// Values the random data is skewed towards.
const SPECIALS: [f32; 7] = [
    0.0,
    -0.0,
    1e30,
    -1e30,
    f32::NEG_INFINITY,
    f32::NAN,
    f32::MIN_POSITIVE,
];

/// Uniform values in `[-4, 4)`, about one in eight replaced by a special
/// value (NaN and `-inf` included) when `specials` is set.
fn data(r: &mut Xoshiro256PlusPlus, n: usize, specials: bool) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if specials && r.random_range(0..8) == 0 {
                SPECIALS[r.random_range(0..SPECIALS.len())]
            } else {
                r.random_range(-4.0f32..4.0)
            }
        })
        .collect()
}

/// Finite values only: uniform in `[-4, 4)` with some `±0` and `±1e30`.
fn finite_data(r: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| match r.random_range(0..16) {
            0 => 0.0,
            1 => -0.0,
            2 => 1e30,
            3 => -1e30,
            _ => r.random_range(-4.0f32..4.0),
        })
        .collect()
}

/// `(rows, cols)` shapes: every length of [`LENGTHS`] as the columns of one
/// and of three rows, as a column vector, and as a near-square
/// `rows * cols`; then random shapes from a fixed seed.
fn shapes() -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for n in LENGTHS {
        out.push((1, n));
        out.push((3, n));
        out.push((n, 1));
        let rows = (1..=n)
            .filter(|d| n % d == 0 && d * d <= n)
            .max()
            .unwrap_or(0);
        if rows > 0 {
            out.push((rows, n / rows));
        }
    }
    let mut r = rng(0xC0FFEE);
    for _ in 0..40 {
        out.push((r.random_range(0..40), r.random_range(0..80)));
    }
    out
}

/// NaN where the reference is NaN, equal infinities, and otherwise
/// `approx::relative_eq!` with the given bounds.
#[track_caller]
fn assert_close(simd: &[f32], scalar: &[f32], epsilon: f32, max_relative: f32, what: &str) {
    assert_eq!(simd.len(), scalar.len(), "{what}: lengths");
    for (i, (&a, &b)) in simd.iter().zip(scalar).enumerate() {
        let ok = if a.is_nan() || b.is_nan() {
            a.is_nan() && b.is_nan()
        } else if a.is_infinite() || b.is_infinite() {
            a == b
        } else {
            relative_eq!(a, b, epsilon = epsilon, max_relative = max_relative)
        };
        assert!(ok, "{what}: element {i}: simd {a:e} vs scalar {b:e}");
    }
}

// ---------------------------------------------------------------- activation

#[test]
fn bias_relu_forward_matches_twin_exactly() {
    let mut r = rng(1);
    for (rows, cols) in shapes() {
        let z = data(&mut r, rows * cols, true);
        let bias = data(&mut r, cols, true);
        let (mut a, mut b) = (z.clone(), z);
        bias_relu_forward(&mut a, &bias, rows, cols);
        bias_relu_forward_scalar(&mut b, &bias, rows, cols);
        assert_bits_eq(&a, &b, &format!("bias_relu_forward {rows}x{cols}"));
    }
}

#[test]
fn relu_nan_rule() {
    // relu(NaN) = NaN, relu(-0) = +0, relu(-inf) = +0, relu(x > 0) = x.
    let mut z = [
        f32::NAN,
        -0.0,
        0.0,
        f32::NEG_INFINITY,
        2.5,
        -1.0,
        f32::INFINITY,
        1e-45,
        3.0,
    ];
    bias_relu_forward(&mut z, &[0.0; 9], 1, 9);
    assert!(z[0].is_nan());
    assert_eq!(z[1].to_bits(), 0.0f32.to_bits());
    assert_eq!(z[2].to_bits(), 0.0f32.to_bits());
    assert_eq!(z[3].to_bits(), 0.0f32.to_bits());
    assert_eq!(&z[4..], &[2.5, 0.0, f32::INFINITY, 1e-45, 3.0]);
}

#[test]
fn relu_backward_matches_twin_exactly() {
    let mut r = rng(2);
    for (rows, cols) in shapes() {
        for scale in [1.0f32, 1.0 / 0.7] {
            let a = data(&mut r, rows * cols, true);
            let da = data(&mut r, rows * cols, true);
            // db accumulates: start from non-zero values.
            let db0 = data(&mut r, cols, false);
            let (mut a1, mut a2) = (a.clone(), a);
            let (mut db1, mut db2) = (db0.clone(), db0);
            relu_backward(&mut a1, &da, rows, cols, scale, &mut db1);
            relu_backward_scalar(&mut a2, &da, rows, cols, scale, &mut db2);
            let what = format!("relu_backward {rows}x{cols}");
            assert_bits_eq(&a1, &a2, &what);
            assert_bits_eq(&db1, &db2, &what);
        }
    }
}

#[test]
fn relu_backward_treats_nan_activation_as_inactive() {
    // dZ = dA * s where A > 0, else 0; db += column sums of dZ.
    let mut a = [f32::NAN, 1.0, 0.0, -0.0, 2.0, f32::NAN, 3.0, 0.5, 1.0];
    let da = [5.0f32; 9];
    let mut db = [1.0f32; 9];
    relu_backward(&mut a, &da, 1, 9, 2.0, &mut db);
    assert_eq!(a, [0.0, 10.0, 0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 10.0]);
    assert_eq!(db, [1.0, 11.0, 1.0, 1.0, 11.0, 1.0, 11.0, 11.0, 11.0]);
}

#[test]
fn dropout_forward_matches_twin_and_unfused_exactly() {
    let mut r = rng(3);
    for (rows, cols) in shapes() {
        for (k, p) in [0.0f32, 0.1, 0.5, 0.9].into_iter().enumerate() {
            let (seed, stream) = (r.random_range(0..1000u64), k as u64);
            let z = data(&mut r, rows * cols, true);
            let bias = data(&mut r, cols, true);
            let (mut a, mut b, mut c) = (z.clone(), z.clone(), z);
            bias_relu_dropout_forward(&mut a, &bias, rows, cols, p, seed, stream);
            bias_relu_dropout_forward_scalar(&mut b, &bias, rows, cols, p, seed, stream);
            // Unfused: ReLU, then the stored mask of the same stream.
            bias_relu_forward(&mut c, &bias, rows, cols);
            let mut m = vec![f32::NAN; rows * cols];
            bernoulli_mask(&mut m, p, seed, stream);
            apply_mask(&mut c, &m);
            let what = format!("dropout {rows}x{cols} p={p}");
            assert_bits_eq(&a, &b, &what);
            assert_bits_eq(&a, &c, &what);
        }
    }
}

#[test]
#[should_panic(expected = "drop probability")]
fn dropout_forward_rejects_p_one() {
    let mut z = [1.0f32; 4];
    bias_relu_dropout_forward(&mut z, &[0.0; 2], 2, 2, 1.0, 0, 0);
}

// ---------------------------------------------------------------------- mask

#[test]
fn bernoulli_mask_matches_twin_exactly() {
    for (i, n) in LENGTHS
        .into_iter()
        .chain([2, 3, 4, 5, 6, 31, 4097])
        .enumerate()
    {
        for p in [0.0f32, 1e-9, 0.25, 0.5, 0.75, 0.999] {
            let (seed, stream) = (i as u64 * 7919, i as u64 % 3);
            let mut a = vec![f32::NAN; n];
            let mut b = vec![f32::NAN; n];
            bernoulli_mask(&mut a, p, seed, stream);
            bernoulli_mask_scalar(&mut b, p, seed, stream);
            assert_bits_eq(&a, &b, &format!("bernoulli_mask n={n} p={p}"));
        }
    }
}

#[test]
fn mask_bits_simd_reads_match_scalar_reader() {
    // Any mix of 8-wide and single reads walks the same positions.
    let mut r = rng(4);
    for seed in 0..20u64 {
        let mut simd = MaskBitsSimd::new(seed, seed * 3);
        let mut scalar = MaskBits::new(seed, seed * 3);
        for _ in 0..200 {
            if r.random_range(0..3) == 0 {
                assert_eq!(simd.take1(), scalar.next_u32());
            } else {
                let want: [u32; 8] = std::array::from_fn(|_| scalar.next_u32());
                assert_eq!(simd.take8(), want);
            }
        }
        let mut blocks = MaskBitsSimd::new(seed, seed * 3);
        let mut scalar = MaskBits::new(seed, seed * 3);
        for _ in 0..50 {
            let want: [u32; 8] = std::array::from_fn(|_| scalar.next_u32());
            assert_eq!(blocks.next_block(), want);
        }
    }
}

#[test]
fn bernoulli_kept_fraction_within_five_sigma() {
    const N: usize = 1_000_000;
    let mut m = vec![0.0f32; N];
    for (k, p) in [0.01f32, 0.1, 0.3, 0.5, 0.9].into_iter().enumerate() {
        bernoulli_mask(&mut m, p, 42 + k as u64, 0);
        let scale = keep_scale(p);
        assert!(m.iter().all(|&v| v == 0.0 || v == scale));
        let kept = m.iter().filter(|&&v| v == scale).count() as f64;
        // Binomial(N, 1 - p): mean N (1 - p), sd sqrt(N p (1 - p)).
        let (q, n) = (1.0 - p as f64, N as f64);
        let sd = (n * p as f64 * q).sqrt();
        assert!(
            (kept - n * q).abs() <= 5.0 * sd,
            "p={p}: kept {kept}, expected {} +- {}",
            n * q,
            5.0 * sd
        );
    }
}

#[test]
fn bernoulli_p_zero_keeps_all() {
    let mut m = vec![f32::NAN; 1001];
    bernoulli_mask(&mut m, 0.0, 9, 9);
    assert!(m.iter().all(|&v| v == 1.0));
}

#[test]
#[should_panic(expected = "drop probability")]
fn bernoulli_p_one_panics() {
    bernoulli_mask(&mut [0.0f32; 8], 1.0, 0, 0);
}

#[test]
#[should_panic(expected = "drop probability")]
fn bernoulli_p_nan_panics() {
    bernoulli_mask(&mut [0.0f32; 8], f32::NAN, 0, 0);
}

#[test]
fn bernoulli_streams_are_reproducible_and_distinct() {
    const N: usize = 10_000;
    let mask = |seed, stream| {
        let mut m = vec![0.0f32; N];
        bernoulli_mask(&mut m, 0.5, seed, stream);
        m
    };
    assert_eq!(mask(5, 1), mask(5, 1));
    // Independent p = 0.5 masks differ at about half of the positions.
    let differ = |a: &[f32], b: &[f32]| a.iter().zip(b).filter(|(x, y)| x != y).count();
    for (other_seed, other_stream) in [(5, 2), (6, 1), (5, 0)] {
        let d = differ(&mask(5, 1), &mask(other_seed, other_stream));
        assert!((4000..6000).contains(&d), "only {d} of {N} differ");
    }
}

#[test]
fn apply_mask_matches_twin_exactly() {
    let mut r = rng(5);
    for n in LENGTHS {
        let x = data(&mut r, n, true);
        let m = data(&mut r, n, true);
        let (mut a, mut b) = (x.clone(), x);
        apply_mask(&mut a, &m);
        apply_mask_scalar(&mut b, &m);
        assert_bits_eq(&a, &b, &format!("apply_mask n={n}"));
    }
}

// ------------------------------------------------------------------- reduce

#[test]
fn add_assign_and_column_sums_match_twins_exactly() {
    let mut r = rng(6);
    for n in LENGTHS {
        let s = data(&mut r, n, true);
        let d = data(&mut r, n, true);
        let (mut a, mut b) = (d.clone(), d);
        add_assign(&mut a, &s);
        add_assign_scalar(&mut b, &s);
        assert_bits_eq(&a, &b, &format!("add_assign n={n}"));
    }
    for (rows, cols) in shapes() {
        let x = data(&mut r, rows * cols, true);
        // A guard element after the output must stay untouched.
        let mut out = data(&mut r, cols + 1, false);
        let guard = out[cols];
        let mut twin = out.clone();
        column_sums(&x, rows, cols, &mut out[..cols]);
        column_sums_scalar(&x, rows, cols, &mut twin[..cols]);
        assert_bits_eq(&out, &twin, &format!("column_sums {rows}x{cols}"));
        assert_eq!(out[cols], guard);
    }
}

#[test]
fn argmax_rows_matches_twin_exactly() {
    let mut r = rng(7);
    for (rows, cols) in shapes() {
        if cols == 0 && rows > 0 {
            continue;
        }
        // Few distinct values so ties are common; specials mixed in.
        let x: Vec<f32> = (0..rows * cols)
            .map(|_| match r.random_range(0..10) {
                0 => SPECIALS[r.random_range(0..SPECIALS.len())],
                k => (k % 4) as f32,
            })
            .collect();
        let mut a = vec![u32::MAX; rows];
        let mut b = vec![u32::MAX; rows];
        argmax_rows(&x, rows, cols, &mut a);
        argmax_rows_scalar(&x, rows, cols, &mut b);
        assert_eq!(a, b, "argmax_rows {rows}x{cols}");
    }
}

#[test]
fn argmax_edge_rows() {
    let n = 20;
    let mut rows: Vec<Vec<f32>> = Vec::new();
    rows.push(vec![f32::NAN; n]); // NaN first: index 0
    let mut v = vec![1.0; n];
    v[0] = f32::NAN;
    rows.push(v); // NaN first wins even over larger values
    let mut v = vec![f32::NAN; n];
    v[0] = -10.0;
    v[1] = -5.0;
    v[17] = -4.0;
    rows.push(v); // NaN never selected otherwise: 17
    rows.push(vec![f32::NEG_INFINITY; n]); // all -inf: 0
    let mut v = vec![f32::NEG_INFINITY; n];
    v[0] = f32::NAN;
    v[3] = f32::NEG_INFINITY;
    rows.push(v); // 0
    let mut v = vec![-1.0; n];
    v[2] = -0.0;
    v[9] = 0.0;
    rows.push(v); // -0 and +0 tie: first (2)
    let mut v = vec![0.0; n];
    v[18] = 1.0;
    v[19] = 1.0;
    rows.push(v); // 18, in the remainder
    let flat: Vec<f32> = rows.concat();
    let mut out = vec![u32::MAX; rows.len()];
    argmax_rows(&flat, rows.len(), n, &mut out);
    assert_eq!(out, [0, 0, 17, 0, 0, 2, 18]);
}

#[test]
fn sum_squares_close_to_twin() {
    let mut r = rng(8);
    for n in LENGTHS.into_iter().chain([100_000]) {
        let x = data(&mut r, n, false);
        let (a, b) = (sum_squares(&x), sum_squares_scalar(&x));
        // A sum of n non-negative terms in any order is within about
        // n * f32::EPSILON / 2 relative of the exact sum; the lane sums are far
        // tighter than the sequential twin. 1e-4 covers the twin's own error
        // at n = 1e5 (typically ~ sqrt(n) eps), 1e-6 absolute covers n = 0.
        assert_relative_eq!(a, b, epsilon = 1e-6, max_relative = 1e-4);
        let exact: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        assert_relative_eq!(a as f64, exact, epsilon = 1e-6, max_relative = 1e-5);
    }
    assert!(sum_squares(&[1.0, 2.0, f32::NAN, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).is_nan());
    assert_eq!(sum_squares(&[1e30; 9]), f32::INFINITY);
}

// ------------------------------------------------------------------ softmax

/// Softmax probabilities: `wide`'s `exp` is within ~1e-7 relative of `f64`,
/// std's within an ulp, and sums of up to 1000 terms in another order add a
/// few 1e-7; 1e-5 relative leaves margin. `epsilon` absorbs outputs in the
/// subnormal range, where the two `exp`s legitimately round differently.
const PROB_REL: f32 = 1e-5;
const PROB_ABS: f32 = 1e-37;

#[test]
fn softmax_rows_close_to_twin() {
    let mut r = rng(9);
    for (rows, cols) in shapes() {
        let x = data(&mut r, rows * cols, true);
        let (mut a, mut b) = (x.clone(), x);
        softmax_rows(&mut a, rows, cols);
        softmax_rows_scalar(&mut b, rows, cols);
        assert_close(
            &a,
            &b,
            PROB_ABS,
            PROB_REL,
            &format!("softmax {rows}x{cols}"),
        );
    }
}

#[test]
fn softmax_finite_any_magnitude_sums_to_one() {
    let mut r = rng(10);
    for (rows, cols) in shapes() {
        let scale = [1.0f32, 1e10, 1e30, 3e38][r.random_range(0..4)];
        let mut x: Vec<f32> = finite_data(&mut r, rows * cols)
            .into_iter()
            .map(|v| (v * scale).clamp(-f32::MAX, f32::MAX))
            .collect();
        softmax_rows(&mut x, rows, cols);
        for row in x.chunks_exact(cols.max(1)) {
            assert!(row.iter().all(|p| (0.0..=1.0).contains(p)), "{row:?}");
            let s: f64 = row.iter().map(|&p| p as f64).sum();
            // n probabilities each within PROB_REL, summing to 1.
            assert_abs_diff_eq!(s, 1.0, epsilon = 1e-5);
        }
    }
}

#[test]
fn softmax_special_rows() {
    let inf = f32::INFINITY;
    let mut x = vec![
        // -inf gets exactly 0
        f32::NEG_INFINITY,
        0.0,
        0.0,
        f32::NEG_INFINITY,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        // one NaN: all NaN
        1.0,
        2.0,
        f32::NAN,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        // only -inf: no defined softmax, NaN
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        // +inf: NaN
        inf,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        // huge spread: exactly one-hot
        1e30,
        -1e30,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    ];
    softmax_rows(&mut x, 5, 10);
    assert_eq!(x[0], 0.0);
    assert_eq!(x[3], 0.0);
    assert_relative_eq!(x[1], 0.125, max_relative = PROB_REL);
    assert!(x[10..40].iter().all(|v| v.is_nan()));
    assert_eq!(x[40], 1.0);
    assert!(x[41..50].iter().all(|&v| v == 0.0));
}

#[test]
fn logsumexp_close_to_twin() {
    let mut r = rng(11);
    for (rows, cols) in shapes() {
        let x = data(&mut r, rows * cols, true);
        let mut a = vec![f32::NAN; rows + 1];
        let mut b = vec![f32::NAN; rows + 1];
        a[rows] = 7.0;
        logsumexp_rows(&x, rows, cols, &mut a[..rows]);
        logsumexp_rows_scalar(&x, rows, cols, &mut b[..rows]);
        // lse = max + ln(sum): the max is exact, ln(sum) carries the sum's
        // relative error (PROB_REL) as an absolute error; 1e-6 relative covers
        // the final addition for large maxima.
        assert_close(
            &a[..rows],
            &b[..rows],
            PROB_REL,
            1e-6,
            &format!("lse {rows}x{cols}"),
        );
        assert_eq!(a[rows], 7.0);
    }
}

/// Labels for `rows` rows of `cols` classes.
fn labels(r: &mut Xoshiro256PlusPlus, rows: usize, cols: usize) -> Vec<u32> {
    (0..rows).map(|_| r.random_range(0..cols as u32)).collect()
}

#[test]
fn cross_entropy_close_to_twin() {
    let mut r = rng(12);
    let mut shapes = shapes();
    shapes.extend([(300, 3), (1000, 10), (5, 2)]);
    for (rows, cols) in shapes {
        if cols == 0 {
            continue;
        }
        for specials in [false, true] {
            let x = data(&mut r, rows * cols, specials);
            let y = labels(&mut r, rows, cols);
            let inv_n = 1.0 / rows.max(1) as f32;
            let (mut a, mut b) = (x.clone(), x);
            let ca = softmax_cross_entropy(&mut a, &y, rows, cols, inv_n);
            let cb = softmax_cross_entropy_scalar(&mut b, &y, rows, cols, inv_n);
            let what = format!("cross-entropy {rows}x{cols}");
            assert_eq!(ca.correct, cb.correct, "{what}");
            if cb.loss.is_nan() {
                // A NaN row makes the loss NaN.
                assert!(ca.loss.is_nan(), "{what}: loss {}", ca.loss);
            } else if cb.loss.is_infinite() {
                // A -inf logit at the label: infinite loss.
                assert_eq!(ca.loss, cb.loss, "{what}");
            } else {
                // Each row's loss carries an absolute error of about PROB_REL
                // (the ln of its sum); the mean keeps that bound.
                assert_relative_eq!(ca.loss, cb.loss, epsilon = 1e-5, max_relative = 1e-6);
            }
            // dlogits = (p - onehot) * inv_n: the errors of p, scaled by inv_n,
            // including p - 1 at the label, where only the absolute bound holds.
            assert_close(&a, &b, PROB_REL * inv_n, PROB_REL, &what);
        }
    }
}

/// `f64` mean cross-entropy of `x` (`rows x cols`) by log-sum-exp.
fn ce_f64(x: &[f64], y: &[u32], cols: usize) -> f64 {
    let rows = y.len();
    let mut loss = 0.0;
    for (row, &label) in x.chunks_exact(cols).zip(y) {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        loss += lse - row[label as usize];
    }
    loss / rows as f64
}

#[test]
fn cross_entropy_loss_and_gradient_against_f64() {
    let (rows, cols) = (3, 4);
    let x: [f32; 12] = [
        0.5, -1.0, 2.0, 0.25, //
        3.0, 3.0, -2.0, 0.0, //
        -0.5, 1.5, 1.0, -3.0,
    ];
    let y = [2u32, 1, 3];
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut g = x;
    let ce = softmax_cross_entropy(&mut g, &y, rows, cols, 1.0 / rows as f32);
    // Loss against the f64 log-sum-exp reference, to f32 accuracy.
    assert_relative_eq!(ce.loss, ce_f64(&x64, &y, cols), max_relative = 1e-6);
    // Row 1 ties at 0 and 1: the first maximum (0) is not the label 1.
    assert_eq!(ce.correct, 1);
    // d(mean loss)/dx[r, c] = (softmax(x[r])[c] - [c == y_r]) / rows, checked
    // by central differences in f64 (truncation error ~ h^2 ~ 1e-10).
    let h = 1e-5;
    for i in 0..x.len() {
        let mut plus = x64.clone();
        let mut minus = x64.clone();
        plus[i] += h;
        minus[i] -= h;
        let fd = (ce_f64(&plus, &y, cols) - ce_f64(&minus, &y, cols)) / (2.0 * h);
        // The kernel's gradient is f32: a few 1e-8 absolute.
        assert_abs_diff_eq!(g[i] as f64, fd, epsilon = 1e-6);
    }
}

#[test]
fn cross_entropy_stays_finite_for_huge_logits() {
    let mut x = vec![1e30f32, -1e30, 0.0, -1e30, 1e30, 1e30, 0.0, 0.0, 3e38];
    let ce = softmax_cross_entropy(&mut x, &[1, 1, 0], 3, 3, 1.0 / 3.0);
    assert!(ce.loss.is_finite());
    // Row 0: lse = 1e30, label logit -1e30: loss 2e30. Row 1: two tied
    // maxima, loss ln 2. Row 2: lse = 3e38, label logit 0: loss 3e38.
    let want = (2e30 + std::f64::consts::LN_2 + 3e38) / 3.0;
    assert_relative_eq!(ce.loss, want, max_relative = 1e-6);
    assert!(x.iter().all(|v| v.is_finite()));
    // Row 1's first maximum (index 1) is its label; rows 0 and 2 predict
    // classes 0 and 2, not their labels.
    assert_eq!(ce.correct, 1);
}

// ------------------------------------------------------------------ update

/// Bound for one `a - b * c`-style step computed with or without FMA: both
/// are within a few unit roundoffs of the operands' magnitudes (a fused
/// multiply-add skips one rounding of `b * c`).
fn fma_bound(magnitude: f64) -> f64 {
    4.0 * f32::EPSILON as f64 * magnitude
}

#[test]
fn sgd_close_to_twin_and_hand_step() {
    let mut r = rng(13);
    for n in LENGTHS {
        let w = data(&mut r, n, false);
        let g = data(&mut r, n, false);
        let (lr, reg) = (0.05f32, 1e-3f32);
        let (mut a, mut b) = (w.clone(), w.clone());
        sgd_update(&mut a, &g, lr, reg);
        sgd_update_scalar(&mut b, &g, lr, reg);
        for i in 0..n {
            let mag = w[i].abs() as f64 + (lr * (g[i].abs() + reg * w[i].abs())) as f64;
            assert_abs_diff_eq!(a[i] as f64, b[i] as f64, epsilon = fma_bound(mag));
        }
    }
    // w -= lr (g + reg w): 1 - 0.1 (0.5 + 0.01 * 1) = 0.949; -2 - 0.1 (0.5 - 0.02) = -2.048.
    let mut w = [1.0f32, -2.0, 1.0, -2.0, 1.0, -2.0, 1.0, -2.0, 1.0];
    sgd_update(&mut w, &[0.5; 9], 0.1, 0.01);
    for (i, &v) in w.iter().enumerate() {
        let want = if i % 2 == 0 { 0.949 } else { -2.048 };
        assert_relative_eq!(v, want, max_relative = 1e-6);
    }
}

#[test]
fn momentum_close_to_twin_and_hand_steps() {
    let mut r = rng(14);
    for n in LENGTHS {
        let w = data(&mut r, n, false);
        let g = data(&mut r, n, false);
        let vel = data(&mut r, n, false);
        let (lr, reg, mu) = (0.05f32, 1e-3f32, 0.9f32);
        let (mut wa, mut wb) = (w.clone(), w.clone());
        let (mut va, mut vb) = (vel.clone(), vel.clone());
        momentum_update(&mut wa, &g, &mut va, lr, reg, mu);
        momentum_update_scalar(&mut wb, &g, &mut vb, lr, reg, mu);
        for i in 0..n {
            // v = mu v + (g + reg w): error bounded by its terms' magnitudes.
            let v_mag = (mu * vel[i].abs() + g[i].abs() + reg * w[i].abs()) as f64;
            assert_abs_diff_eq!(va[i] as f64, vb[i] as f64, epsilon = fma_bound(v_mag));
            // w -= lr v: the velocity's error passes through times lr.
            let w_mag = w[i].abs() as f64 + lr as f64 * v_mag;
            assert_abs_diff_eq!(wa[i] as f64, wb[i] as f64, epsilon = fma_bound(w_mag));
        }
    }
    // Two steps by hand, g = 1, reg = 0, lr = 0.1, mu = 0.5:
    // v1 = 1, w1 = 1 - 0.1 = 0.9; v2 = 0.5 + 1 = 1.5, w2 = 0.9 - 0.15 = 0.75.
    let mut w = [1.0f32; 9];
    let mut v = [0.0f32; 9];
    momentum_update(&mut w, &[1.0; 9], &mut v, 0.1, 0.0, 0.5);
    assert_relative_eq!(&w[..], &[0.9f32; 9][..], max_relative = 1e-6);
    momentum_update(&mut w, &[1.0; 9], &mut v, 0.1, 0.0, 0.5);
    assert_relative_eq!(&v[..], &[1.5f32; 9][..], max_relative = 1e-6);
    assert_relative_eq!(&w[..], &[0.75f32; 9][..], max_relative = 1e-6);
}

#[test]
fn adam_close_to_twin_and_hand_step() {
    let mut r = rng(15);
    for n in LENGTHS {
        for t in [1u64, 2, 100] {
            let w = data(&mut r, n, false);
            let g = data(&mut r, n, false);
            let m0 = data(&mut r, n, false);
            let v0: Vec<f32> = (0..n).map(|_| r.random_range(0.0f32..4.0)).collect();
            let step = AdamStep::new(1e-3, 1e-4, t);
            let (mut wa, mut wb) = (w.clone(), w.clone());
            let (mut ma, mut mb) = (m0.clone(), m0.clone());
            let (mut va, mut vb) = (v0.clone(), v0.clone());
            adam_update(&mut wa, &g, &mut ma, &mut va, &step);
            adam_update_scalar(&mut wb, &g, &mut mb, &mut vb, &step);
            for i in 0..n {
                let gr = (g[i].abs() + step.reg * w[i].abs()) as f64;
                // m = b1 m + (1 - b1) g': bounded by the magnitudes of its terms.
                let m_mag = step.beta1 as f64 * m0[i].abs() as f64 + 0.1 * gr;
                assert_abs_diff_eq!(ma[i] as f64, mb[i] as f64, epsilon = fma_bound(m_mag));
                // v = b2 v + (1 - b2) g'^2: non-negative terms, relative bound.
                assert_relative_eq!(va[i], vb[i], max_relative = 4.0 * f32::EPSILON);
            }
            // Given the kernel's own m and v, the w step has no multiply-add to
            // fuse: it is the twin's formula bit for bit.
            let (bc1, bc2) = (1.0 / step.bias_correction1, 1.0 / step.bias_correction2);
            let want: Vec<f32> = (0..n)
                .map(|i| w[i] - step.lr * (ma[i] * bc1) / ((va[i] * bc2).sqrt() + step.eps))
                .collect();
            assert_bits_eq(&wa, &want, &format!("adam w n={n} t={t}"));
        }
    }
    // First step (t = 1): m = 0.1 g', v = 0.001 g'^2, so m / bc1 = g' and
    // v / bc2 = g'^2, and w -= lr g' / (|g'| + eps) = lr sign(g').
    let mut w = [1.0f32; 9];
    let (mut m, mut v) = ([0.0f32; 9], [0.0f32; 9]);
    let g = [0.5f32, -0.5, 2.0, -2.0, 0.5, -0.5, 2.0, -2.0, 0.25];
    adam_update(&mut w, &g, &mut m, &mut v, &AdamStep::new(0.01, 0.0, 1));
    for i in 0..9 {
        let want = 1.0 - 0.01 * g[i].signum();
        assert_relative_eq!(w[i], want, max_relative = 1e-6);
        assert_relative_eq!(m[i], 0.1 * g[i], max_relative = 1e-6);
        assert_relative_eq!(v[i], 0.001 * g[i] * g[i], max_relative = 1e-5);
    }
}

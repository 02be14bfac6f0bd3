//! AVX2 + FMA version of the short-row case of
//! [`softmax_cross_entropy`](crate::softmax::softmax_cross_entropy), chosen
//! at run time in builds without FMA (the default build, where `wide` runs
//! on SSE2). Compiled only on x86_64 without `target_feature = "fma"`; builds
//! with FMA get the `wide` version at full width.
//!
//! Short rows (a handful of classes) leave the lanes of a row-wise kernel
//! mostly empty, so this works across rows: a group of eight rows is
//! transposed into eight-lane columns (lane `r` = row `r`), and the
//! prediction, maximum, `exp`, sum, `ln`, loss and gradient are all lane-wise
//! over the eight rows, with the same sequential order over the columns as
//! the scalar twin. `exp` and `ln` are the same kind of polynomials as in
//! `softmax` (within about 1e-7 relative of `f64`); `exp` flushes results
//! below `e^-87.3` to 0.

use std::arch::x86_64::*;

/// Rows per group: one AVX2 vector of rows.
pub(crate) const GROUP: usize = 8;

/// Rows longer than this go to the `wide` version.
pub(crate) const MAX_COLS: usize = 16;

/// Whether this CPU has AVX2 and FMA (`std` caches the answer).
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// The softmax cross-entropy of the first `rows - rows % 8` rows of
/// `logits_then_grad` (`rows x cols`): the rows' gradients written in place
/// as the public kernel does, and `(sum over those rows of loss_r, correct
/// rows, rows done)`; the other rows are left untouched. The loss sum is
/// not yet multiplied by `inv_n`.
///
/// # Panics
/// If AVX2 or FMA is missing, the lengths do not match the shapes, `cols` is
/// 0 or above [`MAX_COLS`], or a label in the groups is `>= cols`.
#[track_caller]
pub(crate) fn cross_entropy_short_rows(
    logits_then_grad: &mut [f32],
    labels: &[u32],
    rows: usize,
    cols: usize,
    inv_n: f32,
) -> (f64, usize, usize) {
    assert!(available(), "cross_entropy_short_rows: needs AVX2 and FMA");
    assert_eq!(logits_then_grad.len(), rows * cols);
    assert_eq!(labels.len(), rows);
    assert!((1..=MAX_COLS).contains(&cols));
    let done = rows - rows % GROUP;
    // SAFETY: AVX2 and FMA are present (asserted above).
    let (loss, correct) = unsafe {
        cross_entropy_groups(
            &mut logits_then_grad[..done * cols],
            &labels[..done],
            cols,
            inv_n,
        )
    };
    (loss, correct, done)
}

/// `e^x` for `x <= 0`, the algorithm of `softmax::exp_nonpositive` on eight
/// lanes: `x = r ln2 + f`, Taylor polynomial of `e^f` to degree 7, `2^r` in
/// the exponent bits; below `-87.3` (and `-inf`) 0, NaN stays NaN.
#[target_feature(enable = "avx2,fma")]
fn exp_nonpositive(x: __m256) -> __m256 {
    const ROUND: f32 = 12_582_912.0;
    let t = _mm256_fmadd_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
        _mm256_set1_ps(ROUND),
    );
    let r = _mm256_sub_ps(t, _mm256_set1_ps(ROUND));
    let f = _mm256_fnmadd_ps(r, _mm256_set1_ps(0.693_359_4), x);
    let f = _mm256_fnmadd_ps(r, _mm256_set1_ps(-2.121_944_4e-4), f);
    let mut p = _mm256_set1_ps(1.0 / 5040.0);
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(c));
    }
    // The low bits of `t` hold r: (r + 127) << 23 is 2^r for -126 <= r <= 0.
    let bits = _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127));
    let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(bits));
    let flush = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(-87.3));
    _mm256_andnot_ps(flush, _mm256_mul_ps(p, pow2))
}

/// `ln(x)` for the row sums: `x >= 1` finite (the largest term is `e^0 = 1`)
/// or NaN, which stays NaN. `x = 2^e m` with `m` in `[sqrt(1/2), sqrt(2))`,
/// `ln m = 2 atanh(t)`, `t = (m - 1) / (m + 1)`, by its series to `t^9`
/// (`|t| <= 0.172`, truncation below 1e-9).
#[target_feature(enable = "avx2,fma")]
fn ln_sum(x: __m256) -> __m256 {
    let bits = _mm256_castps_si256(x);
    let mantissa = _mm256_or_si256(
        _mm256_and_si256(bits, _mm256_set1_epi32(0x007F_FFFF)),
        _mm256_set1_epi32(0x3F80_0000),
    );
    let mut m = _mm256_castsi256_ps(mantissa);
    let mut e = _mm256_sub_epi32(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(127));
    let big = _mm256_cmp_ps::<_CMP_GT_OQ>(m, _mm256_set1_ps(std::f32::consts::SQRT_2));
    m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5)), big);
    // The mask is -1 where halved: e - (-1) = e + 1.
    e = _mm256_sub_epi32(e, _mm256_castps_si256(big));
    let one = _mm256_set1_ps(1.0);
    let t = _mm256_div_ps(_mm256_sub_ps(m, one), _mm256_add_ps(m, one));
    let t2 = _mm256_mul_ps(t, t);
    let mut p = _mm256_set1_ps(1.0 / 9.0);
    for c in [1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
        p = _mm256_fmadd_ps(p, t2, _mm256_set1_ps(c));
    }
    let ln_m = _mm256_mul_ps(_mm256_add_ps(t, t), p);
    let ln = _mm256_fmadd_ps(
        _mm256_cvtepi32_ps(e),
        _mm256_set1_ps(std::f32::consts::LN_2),
        ln_m,
    );
    let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
    _mm256_blendv_ps(ln, x, nan)
}

#[target_feature(enable = "avx2,fma")]
fn load8(a: &[f32; GROUP]) -> __m256 {
    // SAFETY: `a` holds exactly eight readable f32 (no alignment needed).
    unsafe { _mm256_loadu_ps(a.as_ptr()) }
}

#[target_feature(enable = "avx2,fma")]
fn store8(a: &mut [f32; GROUP], v: __m256) {
    // SAFETY: `a` holds exactly eight writable f32 (no alignment needed).
    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) }
}

/// Groups of eight rows; `x.len() == labels.len() * cols`, `labels.len()` a
/// multiple of 8, `1 <= cols <= MAX_COLS`.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn cross_entropy_groups(
    x: &mut [f32],
    labels: &[u32],
    cols: usize,
    inv_n: f32,
) -> (f64, usize) {
    let mut loss = 0.0f64;
    let mut correct = 0usize;
    let mut t = [[0.0f32; GROUP]; MAX_COLS];
    let inv_n_v = _mm256_set1_ps(inv_n);
    for (group, ys) in x
        .chunks_exact_mut(GROUP * cols)
        .zip(labels.chunks_exact(GROUP))
    {
        let mut y_lanes = [0i32; GROUP];
        for (l, &y) in y_lanes.iter_mut().zip(ys) {
            assert!(
                (y as usize) < cols,
                "softmax_cross_entropy: label {y} out of range for {cols} classes"
            );
            *l = y as i32;
        }
        // Transpose: t[c][r] = row r, column c.
        for (r, row) in group.chunks_exact(cols).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                t[c][r] = v;
            }
        }
        // SAFETY: `y_lanes` holds exactly eight readable i32.
        let y = unsafe { _mm256_loadu_si256(y_lanes.as_ptr().cast()) };
        // Column pass 1: first maximum (`>`, so NaN never wins unless first),
        // maximum with the NaN rule, and the logit at the label.
        let first = load8(&t[0]);
        let (mut best, mut best_idx) = (first, _mm256_setzero_si256());
        let mut max = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut x_y = _mm256_setzero_ps();
        for (c, col) in t[..cols].iter().enumerate() {
            let v = load8(col);
            let c_v = _mm256_set1_epi32(c as i32);
            let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(v, best);
            best = _mm256_blendv_ps(best, v, gt);
            best_idx = _mm256_blendv_epi8(best_idx, c_v, _mm256_castps_si256(gt));
            let take = _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_GT_OQ>(v, max),
                _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
            );
            max = _mm256_blendv_ps(max, v, take);
            let at_y = _mm256_castsi256_ps(_mm256_cmpeq_epi32(c_v, y));
            x_y = _mm256_blendv_ps(x_y, v, at_y);
        }
        let hits = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(best_idx, y)));
        correct += hits.count_ones() as usize;
        // Column pass 2: exp(x - max) and the row sums, in column order.
        let mut sum = _mm256_setzero_ps();
        for col in t[..cols].iter_mut() {
            let e = exp_nonpositive(_mm256_sub_ps(load8(col), max));
            store8(col, e);
            sum = _mm256_add_ps(sum, e);
        }
        // loss_r = ln(sum) - (x_y - max), added in row order in f64.
        let mut row_loss = [0.0f32; GROUP];
        store8(
            &mut row_loss,
            _mm256_sub_ps(ln_sum(sum), _mm256_sub_ps(x_y, max)),
        );
        for &l in &row_loss {
            loss += l as f64;
        }
        // dlogits = (softmax - onehot(y)) * inv_n, as (e * (1/sum * inv_n)) - inv_n.
        let scale = _mm256_mul_ps(_mm256_div_ps(_mm256_set1_ps(1.0), sum), inv_n_v);
        for (c, col) in t[..cols].iter_mut().enumerate() {
            let g = _mm256_mul_ps(load8(col), scale);
            let at_y = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_set1_epi32(c as i32), y));
            store8(col, _mm256_sub_ps(g, _mm256_and_ps(at_y, inv_n_v)));
        }
        for (r, row) in group.chunks_exact_mut(cols).enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = t[c][r];
            }
        }
    }
    (loss, correct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::softmax::softmax_cross_entropy_scalar;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let specials = [
            0.0,
            -0.0,
            1e30,
            -1e30,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            88.0,
        ];
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (s >> 40) as u32;
                if u.is_multiple_of(11) {
                    specials[(u as usize / 11) % specials.len()]
                } else {
                    (u % 80_000) as f32 / 10_000.0 - 4.0
                }
            })
            .collect()
    }

    fn close(a: f32, b: f32, abs: f32) -> bool {
        if a.is_nan() || b.is_nan() {
            return a.is_nan() && b.is_nan();
        }
        a == b || (a - b).abs() <= abs.max(1e-5 * a.abs().max(b.abs()))
    }

    /// Against the scalar twin on every short width and row counts around
    /// the group size; the rows after the last full group (and a guard
    /// element past the buffer) stay untouched.
    #[test]
    fn matches_scalar_twin_and_stays_in_bounds() {
        if !available() {
            eprintln!("x86_softmax: AVX2+FMA not available on this CPU, path not tested");
            return;
        }
        for cols in 1..=MAX_COLS {
            for rows in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 300] {
                for specials in [false, true] {
                    let seed = (cols * 1000 + rows) as u64 + specials as u64;
                    let mut x = values(rows * cols, seed);
                    if !specials {
                        x.iter_mut().for_each(|v| {
                            if !v.is_finite() || v.abs() > 10.0 {
                                *v = 0.5
                            }
                        });
                    }
                    let labels: Vec<u32> = (0..rows).map(|r| ((r * 7) % cols) as u32).collect();
                    let inv_n = 1.0 / rows.max(1) as f32;
                    let mut want = x.clone();
                    let mut buf = x.clone();
                    buf.push(f32::NAN);
                    let len = rows * cols;
                    let (loss, correct, done) =
                        cross_entropy_short_rows(&mut buf[..len], &labels, rows, cols, inv_n);
                    assert_eq!(done, rows - rows % GROUP);
                    assert!(buf[len].is_nan(), "guard element written");
                    let untouched = buf[done * cols..len]
                        .iter()
                        .zip(&x[done * cols..])
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(untouched, "tail rows written");
                    let twin = softmax_cross_entropy_scalar(
                        &mut want[..done * cols],
                        &labels[..done],
                        done,
                        cols,
                        inv_n,
                    );
                    let what = format!("{rows}x{cols} specials={specials}");
                    assert_eq!(correct, twin.correct, "{what}");
                    let loss = loss * inv_n as f64;
                    if twin.loss.is_nan() {
                        assert!(loss.is_nan(), "{what}: {loss}");
                    } else if twin.loss.is_infinite() {
                        assert_eq!(loss, twin.loss, "{what}");
                    } else {
                        assert!(
                            (loss - twin.loss).abs() <= 1e-5 + 1e-6 * twin.loss.abs(),
                            "{what}: {loss} vs {}",
                            twin.loss
                        );
                    }
                    for (i, (&a, &b)) in buf[..done * cols].iter().zip(&want).enumerate() {
                        assert!(
                            close(a, b, 1e-5 * inv_n),
                            "{what}: element {i}: {a:e} vs {b:e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn exp_and_ln_against_std() {
        if !available() {
            eprintln!("x86_softmax: AVX2+FMA not available on this CPU, path not tested");
            return;
        }
        let mut worst = (0.0f64, 0.0f64);
        let mut x = -87.0f32;
        while x <= 0.0 {
            let xs = [
                x,
                x * 0.5,
                x * 0.25,
                x * 0.125,
                x * 0.01,
                -0.0,
                0.0,
                x * 0.9,
            ];
            let mut out = [0.0f32; GROUP];
            // SAFETY: checked above that AVX2 and FMA are present.
            unsafe { store8(&mut out, exp_nonpositive(load8(&xs))) };
            for (&v, &o) in xs.iter().zip(&out) {
                let want = (v as f64).exp();
                worst.0 = worst.0.max(((o as f64 - want) / want).abs());
            }
            let sums = xs.map(|v| 1.0 - v * 0.18); // 1 ..= 16.7
                                                   // SAFETY: as above.
            unsafe { store8(&mut out, ln_sum(load8(&sums))) };
            for (&s, &o) in sums.iter().zip(&out) {
                worst.1 = worst.1.max((o as f64 - (s as f64).ln()).abs());
            }
            x += 0.0137;
        }
        assert!(worst.0 < 2e-7, "exp max relative error {}", worst.0);
        assert!(worst.1 < 5e-7, "ln max absolute error {}", worst.1);
        let special = [
            f32::NEG_INFINITY,
            -88.0,
            -1e30,
            f32::NAN,
            -87.0,
            0.0,
            -0.0,
            -1e-30,
        ];
        let mut out = [0.0f32; GROUP];
        // SAFETY: as above.
        unsafe { store8(&mut out, exp_nonpositive(load8(&special))) };
        assert_eq!(&out[..3], &[0.0; 3]);
        assert!(out[3].is_nan());
        assert!(out[4] > 0.0 && out[5] == 1.0 && out[6] == 1.0 && out[7] == 1.0);
        let nan_sum = [f32::NAN, 1.0, 2.0, 16.0, 1.0, 1.0, 1.0, 1.0];
        // SAFETY: as above.
        unsafe { store8(&mut out, ln_sum(load8(&nan_sum))) };
        assert!(out[0].is_nan() && out[1] == 0.0);
    }
}

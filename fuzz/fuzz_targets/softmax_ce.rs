//! Row softmax, log-sum-exp and the fused softmax cross-entropy: SIMD against
//! the scalar twin within the documented tolerance (polynomial `exp`, other
//! summation order), on any bit patterns; NaN-ness must agree exactly and
//! `correct` (first maximum == label) is exact. The class-weighted
//! cross-entropy against its twin on the same logits and labels, with
//! class weights in `[0, 4]`.
#![no_main]

mod elementwise_input;

use elementwise_input::{assert_close, Input};
use libfuzzer_sys::fuzz_target;
use vnn_kernels::softmax::{
    logsumexp_rows, logsumexp_rows_scalar, softmax_cross_entropy, softmax_cross_entropy_scalar,
    softmax_cross_entropy_weighted, softmax_cross_entropy_weighted_scalar, softmax_rows,
    softmax_rows_scalar,
};

/// Relative error of a probability: `wide`'s `exp` (~1e-7), and sums of at
/// most 64 terms in another order (64 * f32::EPSILON / 2 ~ 4e-6).
const PROB_REL: f32 = 1e-5;
/// Outputs below this are subnormal-range probabilities, where the two `exp`s
/// round differently in relative terms.
const PROB_ABS: f32 = 1e-37;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let (rows, cols) = (input.dim(), input.dim());
    // Mostly moderate logits, or any bit pattern when the input says so.
    let raw = input.u8() & 1 == 1;
    let x = if raw {
        input.vec(rows * cols, Input::any_f32)
    } else {
        input.vec(rows * cols, Input::moderate_f32)
    };

    let (mut a, mut b) = (x.clone(), x.clone());
    softmax_rows(&mut a, rows, cols);
    softmax_rows_scalar(&mut b, rows, cols);
    assert_close(&a, &b, PROB_ABS, PROB_REL, "softmax_rows");

    let (mut l_a, mut l_b) = (vec![0.0f32; rows], vec![0.0f32; rows]);
    logsumexp_rows(&x, rows, cols, &mut l_a);
    logsumexp_rows_scalar(&x, rows, cols, &mut l_b);
    // max is exact; ln(sum) carries the sum's relative error as an absolute
    // one (at most 2 PROB_REL); the final addition rounds relative to |lse|.
    assert_close(&l_a, &l_b, 2.0 * PROB_REL, 1e-6, "logsumexp_rows");

    if cols == 0 {
        return;
    }
    let labels: Vec<u32> = (0..rows).map(|_| input.u8() as u32 % cols as u32).collect();
    let inv_n = 1.0 / rows.max(1) as f32;
    let weights: Vec<f32> = (0..cols).map(|_| input.u8() as f32 / 64.0).collect();
    let (mut w_a, mut w_b) = (x.clone(), x.clone());
    let we_a = softmax_cross_entropy_weighted(&mut w_a, &labels, &weights, rows, cols, inv_n);
    let we_b =
        softmax_cross_entropy_weighted_scalar(&mut w_b, &labels, &weights, rows, cols, inv_n);
    assert_eq!(we_a.correct, we_b.correct, "weighted correct");
    if we_a.loss.is_finite() && we_b.loss.is_finite() {
        // The unweighted bound below, times the largest weight (< 4).
        let bound = 4.0 * (2.0 * PROB_REL as f64) + 1e-6 * we_b.loss.abs();
        assert!(
            (we_a.loss - we_b.loss).abs() <= bound,
            "weighted loss {we_a:?} vs {we_b:?}"
        );
    } else {
        // NaN, or an infinity (times a zero weight: NaN), on both sides.
        let same = we_a.loss == we_b.loss || (we_a.loss.is_nan() && we_b.loss.is_nan());
        assert!(same, "weighted loss {we_a:?} vs {we_b:?}");
    }
    assert_close(
        &w_a,
        &w_b,
        4.0 * PROB_REL * inv_n,
        PROB_REL,
        "weighted dlogits",
    );
    let (mut g_a, mut g_b) = (x.clone(), x);
    let ce_a = softmax_cross_entropy(&mut g_a, &labels, rows, cols, inv_n);
    let ce_b = softmax_cross_entropy_scalar(&mut g_b, &labels, rows, cols, inv_n);
    assert_eq!(ce_a.correct, ce_b.correct, "correct");
    if ce_b.loss.is_nan() || ce_a.loss.is_nan() {
        assert!(
            ce_a.loss.is_nan() && ce_b.loss.is_nan(),
            "loss {ce_a:?} vs {ce_b:?}"
        );
    } else if ce_b.loss.is_infinite() || ce_a.loss.is_infinite() {
        assert_eq!(ce_a.loss, ce_b.loss, "loss");
    } else {
        // Every row loss ln(sum) - (x_y - max) is >= 0 and off by at most
        // 2 PROB_REL plus one f32 rounding of itself; the mean keeps that.
        let bound = rows as f64 * inv_n as f64 * 2.0 * PROB_REL as f64 + 1e-6 * ce_b.loss.abs();
        assert!(
            (ce_a.loss - ce_b.loss).abs() <= bound,
            "loss {} vs {} (bound {bound})",
            ce_a.loss,
            ce_b.loss
        );
    }
    // (p - onehot) * inv_n: p within PROB_REL, so the gradient is within
    // PROB_REL * inv_n absolutely (p - 1 at the label keeps only that bound).
    assert_close(&g_a, &g_b, PROB_REL * inv_n, PROB_REL, "dlogits");
});

//! Fused parameter updates: SGD with L2, momentum, Adam. One pass over the
//! parameters each; the L2 term `reg * w` is added to the gradient inside the
//! pass (pass `reg = 0` for biases).
//!
//! The SIMD versions may fuse multiply-adds (with FMA enabled), so they match
//! the twins within a few ulps, not bit for bit.
//!
//! SGD and momentum use 16-lane `wide` vectors: with AVX-512 they are one
//! register, elsewhere `wide` splits them, and the compiler's own
//! vectorization of the twins (which these simple loops allow) is matched or
//! beaten either way. Adam, with a square root and a division per
//! parameter, runs through the SIMD layer's dispatch instead, so a default
//! build takes AVX2 + FMA at run time.

use crate::simd::{dispatch, store, Kernel, Lane};
use wide::f32x16;

/// Lanes per SIMD vector.
const LANES: usize = 16;

#[track_caller]
fn check(w: &[f32], other: &[f32], what: &str, op: &str) {
    assert_eq!(
        other.len(),
        w.len(),
        "{op}: {what} has {} elements, expected {} (the length of w)",
        other.len(),
        w.len()
    );
}

/// Plain (full-batch or mini-batch) gradient descent with L2:
/// `w -= lr * (g + reg * w)`.
///
/// # Panics
/// If `g.len() != w.len()`.
///
/// # Example
/// ```
/// use vnn_kernels::update::sgd_update;
/// let mut w = [1.0f32, -2.0];
/// sgd_update(&mut w, &[0.5, 0.5], 0.1, 0.0);
/// assert_eq!(w, [0.95, -2.05]);
/// ```
#[track_caller]
pub fn sgd_update(w: &mut [f32], g: &[f32], lr: f32, reg: f32) {
    check(w, g, "g", "sgd_update");
    let (neg_lr, reg_l) = (f32x16::splat(-lr), f32x16::splat(reg));
    let mut ws = w.chunks_exact_mut(LANES);
    let mut gs = g.chunks_exact(LANES);
    for (wc, gc) in (&mut ws).zip(&mut gs) {
        let wv = f32x16::load(wc);
        let gr = reg_l.mul_add(wv, f32x16::load(gc)); // g + reg * w
        store(wc, neg_lr.mul_add(gr, wv)); // w - lr * g'
    }
    sgd_update_scalar(ws.into_remainder(), gs.remainder(), lr, reg);
}

/// Scalar twin of [`sgd_update`].
///
/// # Panics
/// If `g.len() != w.len()`.
#[track_caller]
pub fn sgd_update_scalar(w: &mut [f32], g: &[f32], lr: f32, reg: f32) {
    check(w, g, "g", "sgd_update");
    for (wv, &gv) in w.iter_mut().zip(g) {
        *wv -= lr * (gv + reg * *wv);
    }
}

/// Gradient descent with momentum and L2:
/// `v = mu * v + (g + reg * w); w -= lr * v`.
///
/// - `velocity`: same length as `w`, updated in place (start at 0).
///
/// # Panics
/// If a length differs from `w.len()`.
#[track_caller]
pub fn momentum_update(w: &mut [f32], g: &[f32], velocity: &mut [f32], lr: f32, reg: f32, mu: f32) {
    check(w, g, "g", "momentum_update");
    check(w, velocity, "velocity", "momentum_update");
    let (neg_lr, reg_l, mu_l) = (f32x16::splat(-lr), f32x16::splat(reg), f32x16::splat(mu));
    let mut ws = w.chunks_exact_mut(LANES);
    let mut gs = g.chunks_exact(LANES);
    let mut vs = velocity.chunks_exact_mut(LANES);
    for ((wc, gc), vc) in (&mut ws).zip(&mut gs).zip(&mut vs) {
        let wv = f32x16::load(wc);
        let gr = reg_l.mul_add(wv, f32x16::load(gc)); // g + reg * w
        let v = mu_l.mul_add(f32x16::load(vc), gr); // mu * v + g'
        store(vc, v);
        store(wc, neg_lr.mul_add(v, wv)); // w - lr * v
    }
    momentum_update_scalar(
        ws.into_remainder(),
        gs.remainder(),
        vs.into_remainder(),
        lr,
        reg,
        mu,
    );
}

/// Scalar twin of [`momentum_update`].
///
/// # Panics
/// If a length differs from `w.len()`.
#[track_caller]
pub fn momentum_update_scalar(
    w: &mut [f32],
    g: &[f32],
    velocity: &mut [f32],
    lr: f32,
    reg: f32,
    mu: f32,
) {
    check(w, g, "g", "momentum_update");
    check(w, velocity, "velocity", "momentum_update");
    for ((wv, &gv), v) in w.iter_mut().zip(g).zip(velocity.iter_mut()) {
        *v = mu * *v + (gv + reg * *wv);
        *wv -= lr * *v;
    }
}

/// The scalars of one Adam step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f32,
    /// L2 coefficient (0 for biases).
    pub reg: f32,
    /// Decay of the first moment (0.9).
    pub beta1: f32,
    /// Decay of the second moment (0.999).
    pub beta2: f32,
    /// Added to the root of the second moment (1e-8).
    pub eps: f32,
    /// `1 - beta1^t` for step `t >= 1`.
    pub bias_correction1: f32,
    /// `1 - beta2^t` for step `t >= 1`.
    pub bias_correction2: f32,
}

impl AdamStep {
    /// The scalars for step `t` (1-based) with the usual defaults
    /// (beta1 0.9, beta2 0.999, eps 1e-8).
    pub fn new(lr: f32, reg: f32, t: u64) -> Self {
        let (beta1, beta2) = (0.9f32, 0.999f32);
        let t = t.max(1).min(i32::MAX as u64) as i32;
        AdamStep {
            lr,
            reg,
            beta1,
            beta2,
            eps: 1e-8,
            bias_correction1: 1.0 - (beta1 as f64).powi(t) as f32,
            bias_correction2: 1.0 - (beta2 as f64).powi(t) as f32,
        }
    }
}

/// Adam with L2 in one pass: with `g' = g + reg * w`,
/// `m = b1 m + (1 - b1) g'`, `v = b2 v + (1 - b2) g'^2`,
/// `w -= lr * (m / bc1) / (sqrt(v / bc2) + eps)`.
///
/// # Panics
/// If a length differs from `w.len()`.
#[track_caller]
pub fn adam_update(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: &AdamStep) {
    check(w, g, "g", "adam_update");
    check(w, m, "m", "adam_update");
    check(w, v, "v", "adam_update");
    dispatch(Adam { w, g, m, v, step });
}

/// The body of [`adam_update`] after the length checks, over the lane type
/// of the build and CPU (AVX2 + FMA at run time in a default build: the
/// square root and division would otherwise run on SSE2).
struct Adam<'a> {
    w: &'a mut [f32],
    g: &'a [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
    step: &'a AdamStep,
}

impl Kernel for Adam<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Lane>(self) {
        let Adam { w, g, m, v, step } = self;
        let reg = S::splat(step.reg);
        let (beta1, beta2) = (S::splat(step.beta1), S::splat(step.beta2));
        let one_minus_beta1 = S::splat(1.0 - step.beta1);
        let one_minus_beta2 = S::splat(1.0 - step.beta2);
        let inv_bc1 = S::splat(1.0 / step.bias_correction1);
        let inv_bc2 = S::splat(1.0 / step.bias_correction2);
        let (lr, eps) = (S::splat(step.lr), S::splat(step.eps));
        let mut ws = w.chunks_exact_mut(S::LANES);
        let mut gs = g.chunks_exact(S::LANES);
        let mut ms = m.chunks_exact_mut(S::LANES);
        let mut vs = v.chunks_exact_mut(S::LANES);
        for (((wc, gc), mc), vc) in (&mut ws).zip(&mut gs).zip(&mut ms).zip(&mut vs) {
            let wv = S::load(wc);
            let gr = reg.mul_add(wv, S::load(gc)); // g' = g + reg * w
            let mv = beta1.mul_add(S::load(mc), one_minus_beta1.mul(gr)); // b1 m + (1 - b1) g'
            let vv = beta2.mul_add(S::load(vc), one_minus_beta2.mul(gr).mul(gr)); // b2 v + (1 - b2) g'^2
            store(mc, mv);
            store(vc, vv);
            // Correctly rounded sqrt and division, as in the twin.
            let denom = vv.mul(inv_bc2).sqrt().add(eps);
            store(wc, wv.sub(lr.mul(mv.mul(inv_bc1)).div(denom)));
        }
        adam_update_scalar(
            ws.into_remainder(),
            gs.remainder(),
            ms.into_remainder(),
            vs.into_remainder(),
            step,
        );
    }
}

/// Scalar twin of [`adam_update`].
///
/// # Panics
/// If a length differs from `w.len()`.
#[track_caller]
pub fn adam_update_scalar(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: &AdamStep) {
    check(w, g, "g", "adam_update");
    check(w, m, "m", "adam_update");
    check(w, v, "v", "adam_update");
    let inv_bc1 = 1.0 / step.bias_correction1;
    let inv_bc2 = 1.0 / step.bias_correction2;
    for (((wv, &gv), mv), vv) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let gr = gv + step.reg * *wv;
        *mv = step.beta1 * *mv + (1.0 - step.beta1) * gr;
        *vv = step.beta2 * *vv + (1.0 - step.beta2) * gr * gr;
        *wv -= step.lr * (*mv * inv_bc1) / ((*vv * inv_bc2).sqrt() + step.eps);
    }
}

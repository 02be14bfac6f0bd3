//! Every [`Activation`]: the bias + activation (+ inverted dropout) forward
//! and the backward fused with the bias gradient, one generic body over
//! [`Lane`] run by [`dispatch`], with scalar twins. ReLU takes the ReLU
//! kernels of the parent module unchanged.
//!
//! ## Forward
//! `A = act(Z + b)` (times the dropout mask `M`), in place on `Z`.
//! - tanh: for `|x| < 0.25` the odd Taylor polynomial to `x^9`; above,
//!   `sign(x) (1 - e) / (1 + e)` with `e = exp(-2|x|)`.
//! - sigmoid: `1 / (1 + e)` for `x >= 0`, `e / (1 + e)` for `x < 0`, with
//!   `e = exp(-|x|)`.
//! - `exp` is the shared polynomial of the SIMD layer (for `x <= 0`; it
//!   flushes below -87.3 to 0), so large `|x|` saturates to `±1` (tanh)
//!   and `1` or `0` (sigmoid) with no NaN; NaN propagates.
//! - leaky ReLU: `x` where `x > 0` or NaN, else `LEAKY_RELU_SLOPE * x`.
//!
//! The twins compute tanh and sigmoid with `std` (`f32::tanh`,
//! `1 / (1 + exp(-x))`): the SIMD forward of tanh and sigmoid is within
//! `1e-6` relative or `1e-7` absolute of its twin (tested); leaky ReLU is
//! exact.
//!
//! ## Backward and dropout
//! The derivative comes from the forward's output alone: with `P` the
//! activation before the mask, tanh' = `1 - P²`, sigmoid' = `P (1 - P)`,
//! leaky' = `1` where `P > 0`, else the slope. Under dropout the output
//! `A = P * M` does not tell a dropped unit from a kept one with `P = 0`
//! (tanh(0) = 0, leaky(0) = 0, and both have a non-zero derivative there),
//! so the backward **regenerates the mask** from the same [`Dropout`]
//! parameters as the forward (nothing is stored), and then uses
//! `P = A / M` where `M > 0`, and `dZ = 0` where the unit was dropped.
//! The backward is made of single `+ - * /` and selects in the same order
//! as its twin, so it equals the twin bit for bit.

use super::{bias_relu_dropout_forward, bias_relu_dropout_forward_scalar, bias_relu_forward};
use super::{bias_relu_forward_scalar, relu_backward, relu_backward_scalar, relu_scalar_value};
use super::{Activation, LEAKY_RELU_SLOPE};
use crate::mask::{self, Dropout, MaskBitsSimd, MASK_BLOCK};
use crate::simd::{dispatch, exp_nonpositive, store, Kernel, Lane, MAX_LANES};

/// Below this `|x|`, tanh takes its Taylor polynomial (`(1 - e) / (1 + e)`
/// would lose relative accuracy to the cancellation in `1 - e`).
const TANH_SMALL: f32 = 0.25;

/// `f32` with only the sign bit clear: `x & ABS` is `|x|`.
const ABS_BITS: u32 = 0x7FFF_FFFF;

/// The scalar activation of the twins: `act(z)` with `std`'s `tanh` and
/// `exp` (see the module docs for how the SIMD kernels differ).
///
/// # Example
/// ```
/// use vnn_kernels::activation::{act_scalar_value, Activation};
/// assert_eq!(act_scalar_value(Activation::Sigmoid, 0.0), 0.5);
/// assert_eq!(act_scalar_value(Activation::Tanh, 1e30), 1.0);
/// assert_eq!(act_scalar_value(Activation::LeakyRelu, -2.0), -0.02);
/// assert!(act_scalar_value(Activation::Relu, f32::NAN).is_nan());
/// ```
#[inline(always)]
pub fn act_scalar_value(act: Activation, z: f32) -> f32 {
    match act {
        Activation::Relu => relu_scalar_value(z),
        Activation::Tanh => z.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::LeakyRelu => {
            if z > 0.0 || z.is_nan() {
                z
            } else {
                z * LEAKY_RELU_SLOPE
            }
        }
    }
}

/// The derivative of `act` at the point where its output is `p` (not used
/// for ReLU, whose kernels keep their own rule).
#[inline(always)]
pub(crate) fn derivative_scalar(act: Activation, p: f32) -> f32 {
    match act {
        Activation::Tanh => 1.0 - p * p,
        Activation::Sigmoid => p * (1.0 - p),
        Activation::Relu => {
            if p > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::LeakyRelu => {
            if p > 0.0 {
                1.0
            } else {
                LEAKY_RELU_SLOPE
            }
        }
    }
}

/// [`act_scalar_value`] on lanes, with the shared `exp`.
#[inline(always)]
pub(crate) fn act_lanes<S: Lane>(act: Activation, x: S) -> S {
    let zero = S::zero();
    match act {
        Activation::Relu => x.relu(),
        Activation::LeakyRelu => x
            .gt(zero)
            .or(x.is_nan())
            .select(x, x.mul(S::splat(LEAKY_RELU_SLOPE))),
        Activation::Sigmoid => {
            let abs = x.and(S::splat(f32::from_bits(ABS_BITS)));
            let e = exp_nonpositive(zero.sub(abs));
            let p = S::splat(1.0).div(S::splat(1.0).add(e));
            // NaN: e and p are NaN, and so is either choice.
            x.lt(zero).select(e.mul(p), p)
        }
        Activation::Tanh => tanh_lanes(x),
    }
}

/// tanh on lanes (module docs).
#[inline(always)]
fn tanh_lanes<S: Lane>(x: S) -> S {
    let abs_bits = S::splat(f32::from_bits(ABS_BITS));
    let abs = x.and(abs_bits);
    let one = S::splat(1.0);
    let e = exp_nonpositive(abs.mul(S::splat(-2.0)));
    let large = one.sub(e).div(one.add(e));
    // Copy the sign of x onto |tanh x| (or its bits with NaN).
    let sign = x.and(S::splat(f32::from_bits(!ABS_BITS)));
    let large = large.or(sign);
    // tanh x = x (1 - x²/3 + 2x⁴/15 - 17x⁶/315 + 62x⁸/2835 - ...)
    let x2 = x.mul(x);
    let mut p = S::splat(62.0 / 2835.0);
    for c in [-17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0, 1.0] {
        p = p.mul_add(x2, S::splat(c));
    }
    // NaN: the comparison is false, and `large` is NaN.
    abs.lt(S::splat(TANH_SMALL)).select(x.mul(p), large)
}

/// [`derivative_scalar`] on lanes.
#[inline(always)]
pub(crate) fn derivative_lanes<S: Lane>(act: Activation, p: S) -> S {
    let one = S::splat(1.0);
    match act {
        Activation::Tanh => one.sub(p.mul(p)),
        Activation::Sigmoid => p.mul(one.sub(p)),
        Activation::Relu => p.gt(S::zero()).and(one),
        Activation::LeakyRelu => p.gt(S::zero()).select(one, S::splat(LEAKY_RELU_SLOPE)),
    }
}

/// The first `s.len()` (at most one vector) elements of `s`, zeros after.
#[inline(always)]
fn load_part<S: Lane>(s: &[f32]) -> S {
    if s.len() == S::LANES {
        S::load(s)
    } else {
        S::load_padded(s, 0.0)
    }
}

/// Writes the first `d.len()` (at most one vector) lanes of `v` to `d`.
#[inline(always)]
fn store_part<S: Lane>(d: &mut [f32], v: S) {
    if d.len() == S::LANES {
        store(d, v);
    } else {
        let n = d.len();
        d.copy_from_slice(&v.to_array()[..n]);
    }
}

/// The mask values of a dropout stream, read in order from position 0.
struct MaskValues {
    bits: MaskBitsSimd,
    threshold: u64,
    scale: f32,
}

impl MaskValues {
    fn new(d: Dropout) -> MaskValues {
        MaskValues {
            bits: MaskBitsSimd::new(d.seed, d.stream),
            threshold: mask::keep_threshold(d.p_drop),
            scale: mask::keep_scale(d.p_drop),
        }
    }

    /// The mask values of the next `n` (at most one vector) positions, the
    /// other lanes `0.0`.
    #[inline(always)]
    fn next<S: Lane>(&mut self, n: usize) -> S {
        let mut m = [0.0f32; MAX_LANES];
        for block in m[..n].chunks_mut(MASK_BLOCK) {
            if block.len() == MASK_BLOCK {
                let bits = self.bits.take8();
                for (v, b) in block.iter_mut().zip(bits) {
                    *v = mask::mask_value(b, self.threshold, self.scale);
                }
            } else {
                for v in block.iter_mut() {
                    *v = mask::mask_value(self.bits.take1(), self.threshold, self.scale);
                }
            }
        }
        S::load(&m)
    }
}

/// The forward of a non-ReLU activation, generic over the lanes.
struct Forward<'a> {
    act: Activation,
    z: &'a mut [f32],
    bias: &'a [f32],
    cols: usize,
    dropout: Option<Dropout>,
}

impl Kernel for Forward<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        let mut mask = self.dropout.map(MaskValues::new);
        for row in self.z.chunks_exact_mut(self.cols) {
            for (zc, bc) in row.chunks_mut(S::LANES).zip(self.bias.chunks(S::LANES)) {
                // A = act(Z + b), the same single addition as the twin.
                let x = load_part::<S>(zc).add(load_part(bc));
                let mut a = act_lanes(self.act, x);
                if let Some(m) = mask.as_mut() {
                    a = a.mul(m.next::<S>(zc.len()));
                }
                store_part(zc, a);
            }
        }
    }
}

/// The backward of a non-ReLU activation, generic over the lanes.
struct Backward<'a> {
    act: Activation,
    a_then_dz: &'a mut [f32],
    da: &'a [f32],
    cols: usize,
    dropout: Option<Dropout>,
    db: &'a mut [f32],
}

impl Kernel for Backward<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        let mut mask = self.dropout.map(MaskValues::new);
        let rows = self
            .a_then_dz
            .chunks_exact_mut(self.cols)
            .zip(self.da.chunks_exact(self.cols));
        for (row, drow) in rows {
            let lanes = row
                .chunks_mut(S::LANES)
                .zip(drow.chunks(S::LANES))
                .zip(self.db.chunks_mut(S::LANES));
            for ((ac, dc), bc) in lanes {
                let (a, d) = (load_part::<S>(ac), load_part::<S>(dc));
                let dz = match mask.as_mut() {
                    // A = act(Z + b)  =>  dZ = dA * act'(A)
                    None => d.mul(derivative_lanes(self.act, a)),
                    // A = act(Z + b) * M  =>  dZ = (dA * M) * act'(A / M) where M > 0
                    Some(m) => {
                        let m = m.next::<S>(ac.len());
                        let kept = m.gt(S::zero());
                        kept.and(d.mul(m).mul(derivative_lanes(self.act, a.div(m))))
                    }
                };
                store_part(ac, dz);
                // db += dZ, one row at a time as in the twin.
                store_part(bc, load_part::<S>(bc).add(dz));
            }
        }
    }
}

/// The mask values of a dropout stream for the twins, in order from
/// position 0 (as [`mask::bernoulli_mask_scalar`] writes them).
struct MaskValuesScalar {
    bits: mask::MaskBits,
    threshold: u64,
    scale: f32,
}

impl MaskValuesScalar {
    fn new(d: Dropout) -> MaskValuesScalar {
        MaskValuesScalar {
            bits: mask::MaskBits::new(d.seed, d.stream),
            threshold: mask::keep_threshold(d.p_drop),
            scale: mask::keep_scale(d.p_drop),
        }
    }

    /// The next mask value: `scale` if kept, else `+0.0`.
    fn next(&mut self) -> f32 {
        mask::mask_value(self.bits.next_u32(), self.threshold, self.scale)
    }
}

/// The shape checks of the forward (and `p_drop`'s range, through
/// [`mask::keep_threshold`]).
#[track_caller]
fn check(z: &[f32], bias: &[f32], rows: usize, cols: usize, dropout: Option<Dropout>, op: &str) {
    super::check(z, bias, rows, cols, op);
    if let Some(d) = dropout {
        mask::keep_threshold(d.p_drop);
    }
}

/// The checks of the backward.
#[track_caller]
fn check_backward(
    a: &[f32],
    da: &[f32],
    rows: usize,
    cols: usize,
    dropout: Option<Dropout>,
    db: &[f32],
) {
    check(a, db, rows, cols, dropout, "act_backward");
    assert_eq!(
        da.len(),
        rows * cols,
        "act_backward: dA has {} elements, expected {rows}*{cols}",
        da.len()
    );
}

/// `Z = act(Z + bias)` in place, or with `dropout`, `Z = act(Z + bias) * M`
/// with the mask `M` of [`Dropout`] over the `rows * cols` elements (a
/// dropped unit's output is `0 * act`: `+0.0`, `-0.0` where the activation
/// is negative, NaN where it is NaN or infinite, as the unfused
/// multiplication gives).
///
/// - `act`: the activation; [`Activation::Relu`] runs
///   [`bias_relu_forward`] or [`bias_relu_dropout_forward`], bit for bit.
/// - `z`: `rows x cols`, pre-activations in, activations `A` out (saved for
///   [`act_backward`]).
/// - `bias`: `cols`, broadcast over rows.
/// - `dropout`: the mask parameters, or `None`.
///
/// Accuracy against [`bias_act_forward_scalar`]: exact for ReLU and leaky
/// ReLU; within `1e-6` relative or `1e-7` absolute for tanh and sigmoid.
///
/// # Panics
/// If `z.len() != rows * cols`, `bias.len() != cols`, or `p_drop` is not
/// in `[0, 1)`.
///
/// # Example
/// ```
/// use vnn_kernels::activation::{bias_act_forward, Activation};
/// let mut z = [0.0, -3.0, 100.0, -1e30];
/// bias_act_forward(Activation::Sigmoid, &mut z, &[0.0, 0.0], 2, 2, None);
/// assert_eq!(z[0], 0.5);
/// assert!(z[1] > 0.047 && z[1] < 0.048);
/// assert_eq!(&z[2..], &[1.0, 0.0]);
/// ```
#[track_caller]
pub fn bias_act_forward(
    act: Activation,
    z: &mut [f32],
    bias: &[f32],
    rows: usize,
    cols: usize,
    dropout: Option<Dropout>,
) {
    match (act, dropout) {
        (Activation::Relu, None) => bias_relu_forward(z, bias, rows, cols),
        (Activation::Relu, Some(d)) => {
            bias_relu_dropout_forward(z, bias, rows, cols, d.p_drop, d.seed, d.stream)
        }
        _ => {
            check(z, bias, rows, cols, dropout, "bias_act_forward");
            if cols > 0 {
                dispatch(Forward {
                    act,
                    z,
                    bias,
                    cols,
                    dropout,
                });
            }
        }
    }
}

/// Scalar twin of [`bias_act_forward`].
///
/// # Panics
/// As [`bias_act_forward`].
#[track_caller]
pub fn bias_act_forward_scalar(
    act: Activation,
    z: &mut [f32],
    bias: &[f32],
    rows: usize,
    cols: usize,
    dropout: Option<Dropout>,
) {
    match (act, dropout) {
        (Activation::Relu, None) => bias_relu_forward_scalar(z, bias, rows, cols),
        (Activation::Relu, Some(d)) => {
            bias_relu_dropout_forward_scalar(z, bias, rows, cols, d.p_drop, d.seed, d.stream)
        }
        _ => {
            check(z, bias, rows, cols, dropout, "bias_act_forward");
            let mut mask = dropout.map(MaskValuesScalar::new);
            for (i, v) in z.iter_mut().enumerate() {
                let a = act_scalar_value(act, *v + bias[i % cols]);
                *v = match mask.as_mut() {
                    None => a,
                    Some(mask) => a * mask.next(),
                };
            }
        }
    }
}

/// The backward of [`bias_act_forward`] fused with the bias gradient:
/// `dZ = dA * act'(A)` and `db += column sums of dZ`; with `dropout`,
/// `dZ = (dA * M) * act'(A / M)` where the regenerated mask `M` kept the
/// unit, else `0` (module docs: why the mask is regenerated).
///
/// - `act`: the activation; [`Activation::Relu`] runs [`relu_backward`]
///   with `scale = 1 / (1 - p_drop)` (or 1), bit for bit.
/// - `a_then_dz`: `rows x cols`; the forward's output `A` in, `dZ` out.
/// - `da`: `rows x cols`, the upstream gradient `dA`.
/// - `dropout`: the forward's mask parameters, or `None`.
/// - `db`: `cols`, accumulated into.
///
/// Exact: equals [`act_backward_scalar`] bit for bit. A NaN in `A` gives a
/// NaN `dZ` for tanh and sigmoid, and the slope for leaky ReLU (`NaN > 0`
/// is false), unless the unit was dropped.
///
/// # Panics
/// If a slice length does not match the shapes, or `p_drop` is not in
/// `[0, 1)`.
///
/// # Example
/// ```
/// use vnn_kernels::activation::{act_backward, Activation};
/// // tanh' = 1 - A²
/// let mut a = [0.0, 0.5];
/// let mut db = [1.0, 1.0];
/// act_backward(Activation::Tanh, &mut a, &[2.0, 2.0], 1, 2, None, &mut db);
/// assert_eq!(a, [2.0, 1.5]);
/// assert_eq!(db, [3.0, 2.5]);
/// ```
#[track_caller]
pub fn act_backward(
    act: Activation,
    a_then_dz: &mut [f32],
    da: &[f32],
    rows: usize,
    cols: usize,
    dropout: Option<Dropout>,
    db: &mut [f32],
) {
    if act == Activation::Relu {
        let scale = dropout.map_or(1.0, |d| mask::keep_scale(d.p_drop));
        return relu_backward(a_then_dz, da, rows, cols, scale, db);
    }
    check_backward(a_then_dz, da, rows, cols, dropout, db);
    if cols > 0 {
        dispatch(Backward {
            act,
            a_then_dz,
            da,
            cols,
            dropout,
            db,
        });
    }
}

/// Scalar twin of [`act_backward`].
///
/// # Panics
/// As [`act_backward`].
#[track_caller]
pub fn act_backward_scalar(
    act: Activation,
    a_then_dz: &mut [f32],
    da: &[f32],
    rows: usize,
    cols: usize,
    dropout: Option<Dropout>,
    db: &mut [f32],
) {
    if act == Activation::Relu {
        let scale = dropout.map_or(1.0, |d| mask::keep_scale(d.p_drop));
        return relu_backward_scalar(a_then_dz, da, rows, cols, scale, db);
    }
    check_backward(a_then_dz, da, rows, cols, dropout, db);
    let mut mask = dropout.map(MaskValuesScalar::new);
    for (i, (v, &d)) in a_then_dz.iter_mut().zip(da).enumerate() {
        *v = match mask.as_mut() {
            None => d * derivative_scalar(act, *v),
            Some(mask) => {
                let m = mask.next();
                if m > 0.0 {
                    (d * m) * derivative_scalar(act, *v / m)
                } else {
                    0.0
                }
            }
        };
        db[i % cols] += *v;
    }
}

#[cfg(test)]
mod tests {
    //! Every lane type the kernels run with (`wide` and the run-time AVX2 +
    //! FMA lanes), against the twins with the bounds of the public docs.
    use super::*;
    use crate::simd::testing::{data, isas};

    /// Forward: exact for leaky ReLU, else `1e-6` relative or `1e-7`
    /// absolute; NaN where the twin has NaN.
    fn close(act: Activation, simd: f32, twin: f32) -> bool {
        if simd.is_nan() || twin.is_nan() {
            return simd.is_nan() && twin.is_nan();
        }
        if act == Activation::LeakyRelu {
            return simd.to_bits() == twin.to_bits();
        }
        let err = (simd - twin).abs();
        err <= 1e-7 || err <= 1e-6 * twin.abs()
    }

    #[test]
    fn every_lane_type_matches_the_twins() {
        let drop = Dropout {
            p_drop: 0.25,
            seed: 3,
            stream: 1,
        };
        for isa in isas("activation kernels on AVX2 + FMA") {
            for act in [Activation::Tanh, Activation::Sigmoid, Activation::LeakyRelu] {
                for dropout in [None, Some(drop)] {
                    for (rows, cols) in [(1, 1), (2, 7), (3, 8), (2, 9), (4, 17), (3, 63), (2, 500)]
                    {
                        let what = format!("{isa:?} {act} {rows}x{cols} {dropout:?}");
                        let n = rows * cols;
                        let mut z: Vec<f32> = data(n, 11).iter().map(|v| v * 3.0).collect();
                        z[0] = f32::NAN;
                        let bias = data(cols, 12);
                        let mut twin = z.clone();
                        let (z_ref, bias_ref) = (&mut z, &bias);
                        isa.run(Forward {
                            act,
                            z: z_ref,
                            bias: bias_ref,
                            cols,
                            dropout,
                        });
                        bias_act_forward_scalar(act, &mut twin, &bias, rows, cols, dropout);
                        for (i, (&s, &t)) in z.iter().zip(&twin).enumerate() {
                            assert!(close(act, s, t), "{what}: forward {i}: {s:e} vs {t:e}");
                        }
                        let da = data(n, 13);
                        let (mut db, mut db_twin) = (data(cols, 14), data(cols, 14));
                        let (mut a, db_ref) = (twin.clone(), &mut db);
                        isa.run(Backward {
                            act,
                            a_then_dz: &mut a,
                            da: &da,
                            cols,
                            dropout,
                            db: db_ref,
                        });
                        act_backward_scalar(act, &mut twin, &da, rows, cols, dropout, &mut db_twin);
                        let same = |x: &[f32], y: &[f32]| {
                            x.iter().zip(y).all(|(p, q)| {
                                p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan())
                            })
                        };
                        assert!(same(&a, &twin), "{what}: backward dZ");
                        assert!(same(&db, &db_twin), "{what}: backward db");
                    }
                }
            }
        }
    }
}

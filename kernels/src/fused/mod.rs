//! Fused kernels for the narrow side of a layer, where a GEMM followed by an
//! elementwise pass would touch a `rows x width` buffer twice for very little
//! arithmetic:
//!
//! - [`narrow_bias_relu_forward`]: `A = relu(X W + b)` for a layer with few
//!   inputs (e.g. the 2-feature input of the spiral), one pass writing `A`.
//! - [`narrow_relu_backward`]: `dZ = (dS W^T) * s` where `A > 0`, and
//!   `db += colsum(dZ)`, for a layer with few outputs (e.g. 3 or 10 classes),
//!   one pass that overwrites `A` with `dZ`, without a `dA` buffer.
//! - [`narrow_bias_act_forward`], [`narrow_act_backward`] and
//!   [`narrow_act_backward_dw`]: the same for any
//!   [`Activation`] (the derivative taken
//!   from `A`), without dropout; ReLU runs the code of the ReLU entries.
//!
//! All are SIMD along the wide side and have scalar twins. The SIMD versions
//! use fused multiply-adds where the build has them, so they agree with the
//! twins up to rounding; NaN follows the rules of [`crate::activation`].
//!
//! The column strips (the fast path) are one engine written over
//! the crate's private lane type and run by its ISA dispatch: with the
//! `wide` vectors of the build, or, in a build without FMA enabled at compile
//! time, with AVX2 + FMA when the CPU has them (checked at run time).

mod act;
mod epilogue;
mod mlp;
mod strips;

use crate::activation::{act_scalar_value, derivative_scalar, Activation};
use crate::simd::{self, Lane, Wide};
use epilogue::{with_epilogue, Epilogue};
use strips::{BackwardStrips, ForwardStrips};

pub use mlp::{
    narrow_mlp_fits, narrow_mlp_forward_backward, narrow_mlp_forward_backward_scalar,
    narrow_mlp_scratch, MlpGrads, NarrowMlp, MLP_MAX_CLASSES, MLP_MAX_IN,
};

pub use act::{
    narrow_act_backward, narrow_act_backward_dw, narrow_act_backward_dw_scalar,
    narrow_act_backward_scalar, narrow_bias_act_forward, narrow_bias_act_forward_scalar,
};

/// Lanes per vector of the paths outside the strips.
const LANES: usize = 8;

// A tuning detail, out of the public docs; the kernel tests and benches name it.
#[doc(hidden)]
/// The widest narrow side these kernels are meant for: the inner loop keeps
/// one vector per narrow index.
pub const NARROW_MAX: usize = 16;

#[track_caller]
pub(super) fn check_len(what: &str, got: usize, expected: usize, op: &str) {
    assert_eq!(
        got, expected,
        "{op}: {what} has {got} elements, expected {expected}"
    );
}

/// `A = relu(X W + bias)`: `x` is `rows x n_in`, `w` is `n_in x n_out`
/// (row-major), `bias` is `n_out`, `a` is `rows x n_out` (overwritten, not
/// read). Each output starts from its bias and adds `x[r, l] * w[l, j]` in
/// order `l = 0..n_in`; ReLU as in [`crate::activation::relu_scalar_value`].
///
/// Meant for `n_in <= NARROW_MAX`; correct for any `n_in`.
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::fused::narrow_bias_relu_forward;
/// let x = [1.0, 2.0]; // 1 x 2
/// let w = [1.0, -1.0, 1.0, -1.0]; // 2 x 2
/// let mut a = [f32::NAN; 2];
/// narrow_bias_relu_forward(&x, &w, &[0.5, 0.5], 1, 2, 2, &mut a);
/// assert_eq!(a, [3.5, 0.0]);
/// ```
#[track_caller]
pub fn narrow_bias_relu_forward(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    rows: usize,
    n_in: usize,
    n_out: usize,
    a: &mut [f32],
) {
    check_forward(x, w, bias, rows, n_in, n_out, a);
    forward(Activation::Relu, x, w, bias, rows, n_in, n_out, a);
}

/// The body of the narrow forwards (shapes checked): the strips, or one
/// row at a time.
#[allow(clippy::too_many_arguments)]
fn forward(
    act: Activation,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    rows: usize,
    n_in: usize,
    n_out: usize,
    a: &mut [f32],
) {
    if n_out == 0 {
        return;
    }
    if n_out >= LANES && (1..=NARROW_MAX).contains(&n_in) {
        macro_rules! strips {
            ($($n:literal)*) => {
                match n_in {
                    $($n => simd::dispatch(ForwardStrips::<$n> { act, x, w, bias, n_out, a }),)*
                    _ => unreachable!(),
                }
            };
        }
        strips!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        return;
    }
    with_epilogue!(act, E => forward_rows::<E>(x, w, bias, rows, n_in, n_out, a));
}

/// [`forward`] one row at a time, for the shapes the strips do not take.
#[inline(always)]
fn forward_rows<E: Epilogue>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    rows: usize,
    n_in: usize,
    n_out: usize,
    a: &mut [f32],
) {
    for r in 0..rows {
        let xr = &x[r * n_in..(r + 1) * n_in];
        let ar = &mut a[r * n_out..(r + 1) * n_out];
        // The row stays in L1: bias, then one axpy per input, then the activation.
        ar.copy_from_slice(bias);
        for (&xv, wrow) in xr.iter().zip(w.chunks_exact(n_out)) {
            axpy_row(ar, xv, wrow);
        }
        let mut ac = ar.chunks_exact_mut(LANES);
        for c in &mut ac {
            E::forward(Wide::load(c)).store(c);
        }
        E::forward_tail(ac.into_remainder());
    }
}

/// `acc += s * w`, elementwise (fused multiply-add in the full vectors).
#[inline(always)]
fn axpy_row(acc: &mut [f32], s: f32, w: &[f32]) {
    let sv = Wide::splat(s);
    let mut ac = acc.chunks_exact_mut(LANES);
    let mut wc = w.chunks_exact(LANES);
    for (a, b) in (&mut ac).zip(&mut wc) {
        sv.mul_add(Wide::load(b), Wide::load(a)).store(a);
    }
    for (a, &b) in ac.into_remainder().iter_mut().zip(wc.remainder()) {
        *a += s * b;
    }
}

/// Scalar twin of [`narrow_bias_relu_forward`] (separate multiply and add).
///
/// # Panics
/// If a slice length does not match the shapes.
#[track_caller]
pub fn narrow_bias_relu_forward_scalar(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    rows: usize,
    n_in: usize,
    n_out: usize,
    a: &mut [f32],
) {
    check_forward(x, w, bias, rows, n_in, n_out, a);
    forward_scalar(Activation::Relu, x, w, bias, rows, n_in, n_out, a);
}

/// The body of the scalar twins of the narrow forwards (shapes checked).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_scalar(
    act: Activation,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    rows: usize,
    n_in: usize,
    n_out: usize,
    a: &mut [f32],
) {
    for r in 0..rows {
        for j in 0..n_out {
            let mut acc = bias[j];
            for l in 0..n_in {
                acc += x[r * n_in + l] * w[l * n_out + j];
            }
            a[r * n_out + j] = act_scalar_value(act, acc);
        }
    }
}

#[track_caller]
pub(super) fn check_forward(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    rows: usize,
    n_in: usize,
    n_out: usize,
    a: &[f32],
) {
    let op = "narrow_bias_relu_forward";
    check_len("X", x.len(), rows * n_in, op);
    check_len("W", w.len(), n_in * n_out, op);
    check_len("bias", bias.len(), n_out, op);
    check_len("A", a.len(), rows * n_out, op);
}

/// Backward through `S = A W + c` and `A = relu(Z + b) * s` for a layer `W`
/// (`width x k`) with few outputs `k`:
///
/// `dZ[r, j] = s * sum_c dS[r, c] * W[j, c]` where `A[r, j] > 0`, else `0`
/// (NaN counts as inactive), and `db[j] += dZ[r, j]` row by row.
///
/// - `a_then_dz`: `rows x width`, `A` in, `dZ` out.
/// - `ds`: `rows x k`, the upstream gradient `dS`.
/// - `w_t`: `k x width`, **`W^T`, the transpose of `W`** (row `c` is column
///   `c` of `W`), so that the loads along `width` are contiguous. (`W` itself
///   is `width x k`; the name says which one is passed.)
/// - `scale`: `s` (1 without dropout).
/// - `db`: `width`, accumulated into.
///
/// Each sum runs in order `c = 0..k` from zero. Meant for
/// `k <= NARROW_MAX`; correct for any `k`.
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::fused::narrow_relu_backward;
/// let mut a = [1.0, 0.0, 2.0]; // 1 x 3, the middle unit inactive
/// let w_t = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]; // W^T, 2 x 3
/// let mut db = [0.0; 3];
/// narrow_relu_backward(&mut a, &[1.0, 0.5], &w_t, 1, 3, 2, 1.0, &mut db);
/// assert_eq!(a, [2.0, 0.0, 2.0]);
/// assert_eq!(db, [2.0, 0.0, 2.0]);
/// ```
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn narrow_relu_backward(
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    scale: f32,
    db: &mut [f32],
) {
    check_backward(a_then_dz, ds, w_t, rows, width, k, db);
    backward(
        Activation::Relu,
        a_then_dz,
        ds,
        w_t,
        rows,
        width,
        k,
        scale,
        db,
        None,
    );
}

/// [`narrow_relu_backward`] that also accumulates the weight gradient of the
/// same layer from the `A` it reads before overwriting it:
/// `dw[j, c] += sum_r A[r, j] * dS[r, c]` (`dw` is `width x k`, laid out
/// like `W`), which saves the separate `A^T dS` product and its pass over
/// `A`. Each `dw` element adds its row sum, accumulated over the rows in
/// order from zero (fused multiply-adds where the build has them), to the
/// value it had; a NaN in `A` reaches `dw` as in a GEMM.
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::fused::narrow_relu_backward_dw;
/// let mut a = [1.0, 0.0, 2.0]; // 1 x 3, the middle unit inactive
/// let w_t = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]; // W^T, 2 x 3
/// let (mut db, mut dw) = ([0.0; 3], [0.0; 6]);
/// narrow_relu_backward_dw(&mut a, &[1.0, 0.5], &w_t, 1, 3, 2, 1.0, &mut db, &mut dw);
/// assert_eq!(a, [2.0, 0.0, 2.0]);
/// assert_eq!(dw, [1.0, 0.5, 0.0, 0.0, 2.0, 1.0]);
/// ```
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn narrow_relu_backward_dw(
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    scale: f32,
    db: &mut [f32],
    dw: &mut [f32],
) {
    check_backward(a_then_dz, ds, w_t, rows, width, k, db);
    check_len("dW", dw.len(), width * k, "narrow_relu_backward_dw");
    backward(
        Activation::Relu,
        a_then_dz,
        ds,
        w_t,
        rows,
        width,
        k,
        scale,
        db,
        Some(dw),
    );
}

/// The body of the narrow backwards (shapes checked); `scale` is ReLU's.
#[allow(clippy::too_many_arguments)]
fn backward(
    act: Activation,
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    scale: f32,
    db: &mut [f32],
    dw: Option<&mut [f32]>,
) {
    if width == 0 {
        return;
    }
    if width >= LANES && (1..=NARROW_MAX).contains(&k) {
        macro_rules! strips {
            ($($n:literal)*) => {
                match (k, dw) {
                    $(($n, None) => simd::dispatch(BackwardStrips::<$n, false> {
                        act, a_then_dz, ds, w_t, width, scale, db, dw: &mut [],
                    }),
                    ($n, Some(dw)) => simd::dispatch(BackwardStrips::<$n, true> {
                        act, a_then_dz, ds, w_t, width, scale, db, dw,
                    }),)*
                    _ => unreachable!(),
                }
            };
        }
        strips!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        return;
    }
    if let Some(dw) = dw.filter(|_| k > 0) {
        // Before A is overwritten; these shapes are rare (narrow layers or
        // many outputs), so plainly.
        for (ar, dsr) in a_then_dz.chunks_exact(width).zip(ds.chunks_exact(k)) {
            for (&a, dwr) in ar.iter().zip(dw.chunks_exact_mut(k)) {
                for (d, &g) in dwr.iter_mut().zip(dsr) {
                    *d += a * g;
                }
            }
        }
    }
    with_epilogue!(act, E => backward_rows::<E>(a_then_dz, ds, w_t, rows, width, k, scale, db));
}

/// The `dZ` and `db` of [`backward`] one row at a time, for the shapes the
/// strips do not take.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_rows<E: Epilogue>(
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    scale: f32,
    db: &mut [f32],
) {
    let s = Wide::splat(scale);
    let mut stage = [0.0f32; STAGE];
    for r in 0..rows {
        let dsr = &ds[r * k..(r + 1) * k];
        let ar = &mut a_then_dz[r * width..(r + 1) * width];
        for j0 in (0..width).step_by(STAGE) {
            let cw = STAGE.min(width - j0);
            // dA for this column chunk, in L1.
            let da = &mut stage[..cw];
            da.fill(0.0);
            for (&d, wtrow) in dsr.iter().zip(w_t.chunks_exact(width)) {
                axpy_row(da, d, &wtrow[j0..j0 + cw]);
            }
            let (zs, dbs) = (&mut ar[j0..j0 + cw], &mut db[j0..j0 + cw]);
            let mut zc = zs.chunks_exact_mut(LANES);
            let mut dc = da.chunks_exact(LANES);
            let mut bc = dbs.chunks_exact_mut(LANES);
            for ((z, d), b) in (&mut zc).zip(&mut dc).zip(&mut bc) {
                let dz = E::backward(Wide::load(d), Wide::load(z), s);
                dz.store(z);
                Wide::load(b).add(dz).store(b);
            }
            let rest = zc.into_remainder().iter_mut().zip(dc.remainder());
            for ((v, &d), acc) in rest.zip(bc.into_remainder().iter_mut()) {
                *v = E::backward_value(d, *v, scale);
                *acc += *v;
            }
        }
    }
}

/// Columns of `dA` staged at once by [`narrow_relu_backward`] (1 KiB).
const STAGE: usize = 256;

/// Scalar twin of [`narrow_relu_backward`] (separate multiply and add).
///
/// # Panics
/// If a slice length does not match the shapes.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn narrow_relu_backward_scalar(
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    scale: f32,
    db: &mut [f32],
) {
    check_backward(a_then_dz, ds, w_t, rows, width, k, db);
    backward_scalar(
        Activation::Relu,
        a_then_dz,
        ds,
        w_t,
        rows,
        width,
        k,
        scale,
        db,
        None,
    );
}

/// Scalar twin of [`narrow_relu_backward_dw`] (separate multiply and add;
/// each `dw` element sums its products over the rows from zero, then adds
/// that sum to its value).
///
/// # Panics
/// If a slice length does not match the shapes.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn narrow_relu_backward_dw_scalar(
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    scale: f32,
    db: &mut [f32],
    dw: &mut [f32],
) {
    check_backward(a_then_dz, ds, w_t, rows, width, k, db);
    check_len("dW", dw.len(), width * k, "narrow_relu_backward_dw");
    backward_scalar(
        Activation::Relu,
        a_then_dz,
        ds,
        w_t,
        rows,
        width,
        k,
        scale,
        db,
        Some(dw),
    );
}

/// The body of the scalar twins of the narrow backwards (shapes checked).
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_scalar(
    act: Activation,
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    scale: f32,
    db: &mut [f32],
    dw: Option<&mut [f32]>,
) {
    if let Some(dw) = dw {
        for j in 0..width {
            for c in 0..k {
                let mut sum = 0.0f32;
                for r in 0..rows {
                    sum += a_then_dz[r * width + j] * ds[r * k + c];
                }
                dw[j * k + c] += sum;
            }
        }
    }
    for r in 0..rows {
        for j in 0..width {
            let mut acc = 0.0f32;
            for c in 0..k {
                acc += ds[r * k + c] * w_t[c * width + j];
            }
            let v = &mut a_then_dz[r * width + j];
            *v = if act == Activation::Relu {
                if *v > 0.0 {
                    acc * scale
                } else {
                    0.0
                }
            } else {
                acc * derivative_scalar(act, *v)
            };
            db[j] += *v;
        }
    }
}

#[track_caller]
pub(super) fn check_backward(
    a: &[f32],
    ds: &[f32],
    w_t: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    db: &[f32],
) {
    let op = "narrow_relu_backward";
    check_len("A", a.len(), rows * width, op);
    check_len("dS", ds.len(), rows * k, op);
    check_len("W^T", w_t.len(), k * width, op);
    check_len("db", db.len(), width, op);
}

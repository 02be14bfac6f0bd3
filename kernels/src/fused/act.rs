//! The narrow fused strips for any [`Activation`]: the same engine as the
//! ReLU entries of the parent module, with the activation's epilogue chosen
//! once per call. [`Activation::Relu`] runs the ReLU code, bit for bit.
//!
//! - Forward: `A = act(X W + b)`, the activation as
//!   [`crate::activation::bias_act_forward`] (the shared `exp` of the SIMD
//!   layer); the twins use [`crate::activation::act_scalar_value`] (`std`),
//!   so tanh and sigmoid agree with them within `1e-6` relative or `1e-7`
//!   absolute on top of the rounding of the sums.
//! - Backward: `dZ = (dS Wᵀ) * act'(A)` with the derivative taken from the
//!   output as in [`crate::activation::act_backward`], and `db += dZ` row
//!   by row. These entries have no dropout: under dropout the derivative
//!   needs the regenerated mask, which is a stream in row-major order while
//!   the strips walk columns, so the layer op takes the GEMM path then (as
//!   the ReLU forward does under dropout).

use super::{backward, backward_scalar, check_backward, check_forward, check_len};
use super::{forward, forward_scalar};
use crate::activation::Activation;

/// `A = act(X W + bias)`: [`super::narrow_bias_relu_forward`] for any
/// activation (shapes and summation order the same; the activation as
/// [`crate::activation::bias_act_forward`]).
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::activation::{Activation, LEAKY_RELU_SLOPE};
/// use vnn_kernels::fused::narrow_bias_act_forward;
/// let x = [1.0, 2.0]; // 1 x 2
/// let w = [1.0, -1.0, 1.0, -1.0]; // 2 x 2
/// let mut a = [f32::NAN; 2];
/// narrow_bias_act_forward(Activation::LeakyRelu, &x, &w, &[0.5, 0.5], 1, 2, 2, &mut a);
/// assert_eq!(a, [3.5, -2.5 * LEAKY_RELU_SLOPE]);
/// ```
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn narrow_bias_act_forward(
    act: Activation,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    rows: usize,
    n_in: usize,
    n_out: usize,
    a: &mut [f32],
) {
    check_forward(x, w, bias, rows, n_in, n_out, a);
    forward(act, x, w, bias, rows, n_in, n_out, a);
}

/// Scalar twin of [`narrow_bias_act_forward`] (separate multiply and add,
/// the activation of [`crate::activation::act_scalar_value`]).
///
/// # Panics
/// If a slice length does not match the shapes.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn narrow_bias_act_forward_scalar(
    act: Activation,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    rows: usize,
    n_in: usize,
    n_out: usize,
    a: &mut [f32],
) {
    check_forward(x, w, bias, rows, n_in, n_out, a);
    forward_scalar(act, x, w, bias, rows, n_in, n_out, a);
}

/// Backward through `S = A W + c` and `A = act(Z + b)` for a layer with few
/// outputs `k`, without dropout: `dZ[r, j] = (sum_c dS[r, c] W[j, c]) *
/// act'(A[r, j])` and `db[j] += dZ[r, j]`; the arguments as
/// [`super::narrow_relu_backward`] with `scale = 1` (ReLU runs it).
///
/// The derivative from the output as [`crate::activation::act_backward`]:
/// tanh' = `1 - A²`, sigmoid' = `A (1 - A)`, leaky' = `1` where `A > 0`,
/// else the slope (also for NaN).
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::activation::Activation;
/// use vnn_kernels::fused::narrow_act_backward;
/// let mut a = [0.0, 0.5, -0.5]; // 1 x 3, tanh outputs
/// let w_t = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]; // W^T, 2 x 3
/// let mut db = [0.0; 3];
/// narrow_act_backward(Activation::Tanh, &mut a, &[1.0, 0.5], &w_t, 1, 3, 2, &mut db);
/// assert_eq!(a, [2.0, 1.5, 1.5]); // dS W^T = 2, times 1 - A²
/// assert_eq!(db, a);
/// ```
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn narrow_act_backward(
    act: Activation,
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    db: &mut [f32],
) {
    check_backward(a_then_dz, ds, w_t, rows, width, k, db);
    backward(act, a_then_dz, ds, w_t, rows, width, k, 1.0, db, None);
}

/// [`narrow_act_backward`] that also accumulates `dw[j, c] += sum_r A[r, j]
/// * dS[r, c]` from the `A` it reads before overwriting it, as
/// [`super::narrow_relu_backward_dw`].
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::activation::Activation;
/// use vnn_kernels::fused::narrow_act_backward_dw;
/// let mut a = [0.5, 0.5]; // 1 x 2, sigmoid outputs
/// let w_t = [1.0, 2.0]; // W^T, 1 x 2
/// let (mut db, mut dw) = ([0.0; 2], [0.0; 2]);
/// narrow_act_backward_dw(Activation::Sigmoid, &mut a, &[4.0], &w_t, 1, 2, 1, &mut db, &mut dw);
/// assert_eq!(dw, [2.0, 2.0]); // A^T dS
/// assert_eq!(a, [1.0, 2.0]); // dS W^T = [4, 8], times A (1 - A)
/// ```
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn narrow_act_backward_dw(
    act: Activation,
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    db: &mut [f32],
    dw: &mut [f32],
) {
    check_backward(a_then_dz, ds, w_t, rows, width, k, db);
    check_len("dW", dw.len(), width * k, "narrow_act_backward_dw");
    backward(act, a_then_dz, ds, w_t, rows, width, k, 1.0, db, Some(dw));
}

/// Scalar twin of [`narrow_act_backward`] (separate multiply and add).
///
/// # Panics
/// If a slice length does not match the shapes.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn narrow_act_backward_scalar(
    act: Activation,
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    db: &mut [f32],
) {
    check_backward(a_then_dz, ds, w_t, rows, width, k, db);
    backward_scalar(act, a_then_dz, ds, w_t, rows, width, k, 1.0, db, None);
}

/// Scalar twin of [`narrow_act_backward_dw`] (as
/// [`super::narrow_relu_backward_dw_scalar`]).
///
/// # Panics
/// If a slice length does not match the shapes.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn narrow_act_backward_dw_scalar(
    act: Activation,
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    db: &mut [f32],
    dw: &mut [f32],
) {
    check_backward(a_then_dz, ds, w_t, rows, width, k, db);
    check_len("dW", dw.len(), width * k, "narrow_act_backward_dw");
    backward_scalar(act, a_then_dz, ds, w_t, rows, width, k, 1.0, db, Some(dw));
}

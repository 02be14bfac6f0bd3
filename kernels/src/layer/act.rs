//! The dense layer ops for any [`Activation`]: ReLU takes the ReLU ops of
//! the parent module unchanged; the other activations take the narrow fused
//! strips of [`crate::fused`] under the shape rules of the ReLU ops
//! (`dense_relu_forward_path`, `relu_dense_backward_path`) when there is no
//! dropout, and the GEMM path otherwise.

use super::relu_dense_backward;
use super::{check_dense, check_len, dense_relu_forward_with};
use super::{dense_relu_forward_path, relu_dense_backward_path, BackwardPath, ForwardPath};
use super::{relu_dense_backward_scratch, stage_w_t, weight_backward, DenseShape, Dropout};
use crate::activation::{self, Activation};
use crate::{fused, gemm, mask, Transpose};

/// `A = act(X W + b)`, or with `dropout`, `A = act(X W + b) * M` (see
/// [`Dropout`]), the activation as [`activation::bias_act_forward`].
///
/// - `act`: [`Activation::Relu`] runs [`super::dense_relu_forward`], bit for bit;
///   the others run [`fused::narrow_bias_act_forward`] where ReLU takes its
///   narrow strips (several rows, at most `NARROW_MAX` inputs, no dropout),
///   else [`gemm::gemm`] and then [`activation::bias_act_forward`]. The
///   paths agree up to summation order and fused multiply-adds.
/// - `x`: `rows x n_in`; `w`: `n_in x n_out`; `b`: `n_out`.
/// - `a`: `rows x n_out`, overwritten (not read); what
///   [`act_dense_backward`] of the next layer needs, with the same `dropout`.
///
/// # Panics
/// If a slice length does not match the shapes, or `p_drop` is not in
/// `[0, 1)`.
///
/// # Example
/// ```
/// use vnn_kernels::activation::Activation;
/// use vnn_kernels::layer::{dense_act_forward, DenseShape};
/// let x = [1.0, -1.0]; // 1 x 2
/// let w = [1.0, 1.0]; // 2 x 1
/// let mut a = [f32::NAN];
/// let shape = DenseShape { rows: 1, n_in: 2, n_out: 1 };
/// dense_act_forward(Activation::Sigmoid, shape, &x, &w, &[0.0], None, &mut a);
/// assert_eq!(a, [0.5]);
/// ```
#[inline]
#[track_caller]
pub fn dense_act_forward(
    act: Activation,
    shape: DenseShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dropout: Option<Dropout>,
    a: &mut [f32],
) {
    dense_act_forward_with(&mut [], act, shape, x, w, b, dropout, a);
}

/// [`dense_act_forward`] with a packing workspace for its product
/// ([`gemm::gemm_with`]: the crate's blocked GEMM when `ws` holds at least
/// [`gemm::GEMM_WORKSPACE`] elements and the product is large; an empty
/// `ws` is [`dense_act_forward`]).
///
/// # Panics
/// As [`dense_act_forward`].
#[inline]
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn dense_act_forward_with(
    ws: &mut [f32],
    act: Activation,
    shape: DenseShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dropout: Option<Dropout>,
    a: &mut [f32],
) {
    if act == Activation::Relu {
        return dense_relu_forward_with(ws, shape, x, w, b, dropout, a);
    }
    let DenseShape { rows, n_in, n_out } = shape;
    check_dense("dense_act_forward", x, w, b, a, [rows, n_in, n_out]);
    if dense_relu_forward_path(rows, n_in, dropout.is_some()) == ForwardPath::Narrow {
        return fused::narrow_bias_act_forward(act, x, w, b, rows, n_in, n_out, a);
    }
    // Z = X W, then A = act(Z + b) (* M) in place.
    let (m, n, k) = (rows, n_out, n_in);
    gemm::gemm_with(ws, Transpose::No, Transpose::No, m, n, k, 1.0, x, w, 0.0, a);
    activation::bias_act_forward(act, a, b, rows, n_out, dropout);
}

/// `a = act(x W + b)` for one row over `W` packed by [`gemm::matvec_pack`]
/// (the batch-1 forward of wide layers): [`gemm::matvec_bias_packed`],
/// then the activation, in the order [`dense_act_forward`] takes for one
/// row: with ReLU the bias first, then the rows (bit for bit the unpacked
/// product over column panels), otherwise the bias added last, as the
/// one-row GEMM path does; within rounding of [`dense_act_forward`].
///
/// - `x`: `n_in`; `packed`: [`gemm::matvec_packed_len`]`(n_in, n_out)`;
///   `b`: `n_out`.
/// - `a`: `n_out`, overwritten (not read).
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::activation::Activation;
/// use vnn_kernels::gemm::{matvec_pack, matvec_packed_len};
/// use vnn_kernels::layer::dense_act_forward_packed;
/// let w = [1.0, -1.0, 2.0, 1.0]; // 2 x 2
/// let mut packed = vec![0.0; matvec_packed_len(2, 2)];
/// matvec_pack(&w, 2, 2, &mut packed);
/// let mut a = [f32::NAN; 2];
/// dense_act_forward_packed(Activation::Relu, 2, 2, &[1.0, 1.0], &packed, &[0.5, -1.0], &mut a);
/// assert_eq!(a, [3.5, 0.0]);
/// ```
#[track_caller]
pub fn dense_act_forward_packed(
    act: Activation,
    n_in: usize,
    n_out: usize,
    x: &[f32],
    packed: &[f32],
    b: &[f32],
    a: &mut [f32],
) {
    if act == Activation::Relu {
        return gemm::matvec_bias_relu_packed(x, packed, Some(b), n_in, n_out, a);
    }
    check_len("dense_act_forward_packed", "bias", b.len(), n_out);
    gemm::matvec_bias_packed(x, packed, None, n_in, n_out, a);
    activation::bias_act_forward(act, a, b, 1, n_out, None);
}

/// Scratch elements [`act_dense_backward`] needs for these shapes: those of
/// [`relu_dense_backward_scratch`] for ReLU, else `dA` for the whole block
/// (`rows x n_in`: the regenerated dropout mask runs over the block in one
/// pass).
#[inline]
pub fn act_dense_backward_scratch(act: Activation, shape: DenseShape) -> usize {
    match act {
        Activation::Relu => relu_dense_backward_scratch(shape),
        _ => shape.rows * shape.n_in,
    }
}

/// Backward through `S = A W + c` where `A = act(Z + b)` (times the mask of
/// `dropout`) is the previous layer's output ([`dense_act_forward`]):
///
/// - `dW += Aᵀ·dS`
/// - `dA = dS·Wᵀ`, then `dZ` and `db += Σ_rows dZ` as
///   [`activation::act_backward`] (the mask regenerated from `dropout`).
///
/// Without dropout, the shapes where ReLU takes its narrow strips
/// (`relu_dense_backward_path`) take [`fused::narrow_act_backward_dw`] or
/// [`fused::narrow_act_backward`] with `Wᵀ` staged in the scratch, with no
/// `dA` buffer; the rest `dA = dS·Wᵀ` by [`gemm::gemm`] into the scratch.
/// The paths agree up to summation order and fused multiply-adds.
///
/// Arguments:
/// - `act`: [`Activation::Relu`] runs [`relu_dense_backward`] with
///   `scale = 1 / (1 - p_drop)` (or 1), bit for bit.
/// - `a_then_dz`: `rows x n_in`, `A` in, `dZ` out.
/// - `ds`: `rows x n_out`, the upstream gradient `dS`.
/// - `w`: `n_in x n_out`, the layer's weights.
/// - `dropout`: the forward's dropout, or `None`.
/// - `dw`: `n_in x n_out`, accumulated into.
/// - `db`: `n_in`, the previous layer's bias gradient, accumulated into.
/// - `scratch`: at least [`act_dense_backward_scratch`] elements, contents
///   ignored and overwritten.
///
/// # Panics
/// If a slice length does not match the shapes or the scratch is too short.
///
/// # Example
/// ```
/// use vnn_kernels::activation::Activation;
/// use vnn_kernels::layer::{act_dense_backward, act_dense_backward_scratch, DenseShape};
/// let mut a = [0.0, 0.5]; // 1 x 2, tanh outputs
/// let w = [1.0, 2.0]; // 2 x 1
/// let (mut dw, mut db) = ([0.0; 2], [0.0; 2]);
/// let shape = DenseShape { rows: 1, n_in: 2, n_out: 1 };
/// let mut scratch = vec![0.0; act_dense_backward_scratch(Activation::Tanh, shape)];
/// act_dense_backward(Activation::Tanh, shape, &mut a, &[2.0], &w, None, &mut dw, &mut db, &mut scratch);
/// assert_eq!(dw, [0.0, 1.0]); // A^T dS
/// assert_eq!(a, [2.0, 3.0]); // dS W^T = [2, 4], times tanh' = 1 - A² = [1, 0.75]
/// assert_eq!(db, [2.0, 3.0]);
/// ```
#[inline]
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn act_dense_backward(
    act: Activation,
    shape: DenseShape,
    a_then_dz: &mut [f32],
    ds: &[f32],
    w: &[f32],
    dropout: Option<Dropout>,
    dw: &mut [f32],
    db: &mut [f32],
    scratch: &mut [f32],
) {
    if act == Activation::Relu {
        let scale = dropout.map_or(1.0, |d| mask::keep_scale(d.p_drop));
        return relu_dense_backward(shape, a_then_dz, ds, w, scale, dw, db, scratch);
    }
    let DenseShape { rows, n_in, n_out } = shape;
    let op = "act_dense_backward";
    check_len(op, "A", a_then_dz.len(), rows * n_in);
    check_len(op, "dS", ds.len(), rows * n_out);
    check_len(op, "W", w.len(), n_in * n_out);
    let need = act_dense_backward_scratch(act, shape);
    assert!(
        scratch.len() >= need,
        "{op}: scratch has {} elements, needs {need}",
        scratch.len()
    );
    let path = relu_dense_backward_path(rows, n_out);
    if dropout.is_none() && path != BackwardPath::Chunked {
        return narrow_act_dense_backward(act, shape, a_then_dz, ds, w, path, dw, db, scratch);
    }
    // dW += A^T dS, read before A is overwritten (checks dW).
    weight_backward(shape, a_then_dz, ds, dw);
    // dA = dS W^T
    let da = &mut scratch[..need];
    let (m, n, k) = (rows, n_in, n_out);
    gemm::gemm(Transpose::No, Transpose::Yes, m, n, k, 1.0, ds, w, 0.0, da);
    activation::act_backward(act, a_then_dz, da, rows, n_in, dropout, db);
}

/// The narrow path of [`act_dense_backward`] (shapes checked but `dW`'s and
/// `db`'s, which the kernels check).
#[allow(clippy::too_many_arguments)]
fn narrow_act_dense_backward(
    act: Activation,
    shape: DenseShape,
    a_then_dz: &mut [f32],
    ds: &[f32],
    w: &[f32],
    path: BackwardPath,
    dw: &mut [f32],
    db: &mut [f32],
    scratch: &mut [f32],
) {
    let DenseShape { rows, n_in, n_out } = shape;
    if path != BackwardPath::NarrowFusedDw {
        // dW += A^T dS, read before A is overwritten (checks dW).
        weight_backward(shape, a_then_dz, ds, dw);
    }
    let (a, w_t) = (a_then_dz, stage_w_t(w, n_in, n_out, scratch));
    if path == BackwardPath::NarrowFusedDw {
        fused::narrow_act_backward_dw(act, a, ds, w_t, rows, n_in, n_out, db, dw);
    } else {
        fused::narrow_act_backward(act, a, ds, w_t, rows, n_in, n_out, db);
    }
}

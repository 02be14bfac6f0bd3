//! Fused bias + ReLU (+ inverted dropout) forward and the matching backward.
//!
//! The forward overwrites the pre-activation buffer with the activation
//! `A`, which is all the backward needs: a unit was active (and kept by
//! dropout) exactly where `A > 0`.
//!
//! NaN: `relu(NaN) = NaN` (it propagates); the backward treats a NaN
//! activation as inactive (`NaN > 0` is false).

use crate::mask;

#[track_caller]
fn check(z: &[f32], bias: &[f32], rows: usize, cols: usize, op: &str) {
    assert_eq!(
        z.len(),
        rows * cols,
        "{op}: Z has {} elements, expected rows*cols = {rows}*{cols}",
        z.len()
    );
    assert_eq!(
        bias.len(),
        cols,
        "{op}: bias has {} elements, expected cols = {cols}",
        bias.len()
    );
}

/// Scalar ReLU with the crate's NaN rule: NaN propagates, `-0.0` and negative
/// values become `+0.0`.
#[inline(always)]
pub fn relu_scalar_value(z: f32) -> f32 {
    if z > 0.0 || z.is_nan() {
        z
    } else {
        0.0
    }
}

/// `Z = max(0, Z + bias)` in place, the bias broadcast over rows.
///
/// - `z`: `rows x cols`, pre-activations in, activations `A` out (saved for
///   [`relu_backward`]).
/// - `bias`: `cols`.
///
/// Exact: equals [`bias_relu_forward_scalar`] bit for bit.
///
/// # Panics
/// If `z.len() != rows * cols` or `bias.len() != cols`.
///
/// # Example
/// ```
/// use vnn_kernels::activation::bias_relu_forward;
/// let mut z = [1.0, -2.0, -1.0, 0.5];
/// bias_relu_forward(&mut z, &[0.5, 1.0], 2, 2);
/// assert_eq!(z, [1.5, 0.0, 0.0, 1.5]);
/// ```
#[track_caller]
pub fn bias_relu_forward(z: &mut [f32], bias: &[f32], rows: usize, cols: usize) {
    bias_relu_forward_scalar(z, bias, rows, cols);
}

/// Scalar twin of [`bias_relu_forward`].
///
/// # Panics
/// If `z.len() != rows * cols` or `bias.len() != cols`.
#[track_caller]
pub fn bias_relu_forward_scalar(z: &mut [f32], bias: &[f32], rows: usize, cols: usize) {
    check(z, bias, rows, cols, "bias_relu_forward");
    if cols == 0 {
        return;
    }
    for row in z.chunks_exact_mut(cols) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = relu_scalar_value(*v + b);
        }
    }
}

/// `Z = max(0, Z + bias) * M` in place, where `M` is the inverted-dropout
/// mask of [`mask::bernoulli_mask`] for `(p_drop, seed, stream)` over the
/// `rows * cols` elements of this call (element `(r, c)` uses mask position
/// `r * cols + c`): kept units are scaled by `1 / (1 - p_drop)`, dropped ones
/// are 0. One pass; the mask is never stored.
///
/// Exact: equals [`bias_relu_forward_scalar`] followed by multiplication
/// with the mask, bit for bit.
///
/// # Panics
/// If the shapes do not match, or `p_drop` is not in `[0, 1)`.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn bias_relu_dropout_forward(
    z: &mut [f32],
    bias: &[f32],
    rows: usize,
    cols: usize,
    p_drop: f32,
    seed: u64,
    stream: u64,
) {
    bias_relu_dropout_forward_scalar(z, bias, rows, cols, p_drop, seed, stream);
}

/// Scalar twin of [`bias_relu_dropout_forward`].
///
/// # Panics
/// If the shapes do not match, or `p_drop` is not in `[0, 1)`.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn bias_relu_dropout_forward_scalar(
    z: &mut [f32],
    bias: &[f32],
    rows: usize,
    cols: usize,
    p_drop: f32,
    seed: u64,
    stream: u64,
) {
    check(z, bias, rows, cols, "bias_relu_dropout_forward");
    let threshold = mask::keep_threshold(p_drop);
    let scale = mask::keep_scale(p_drop);
    let mut bits = mask::MaskBits::new(seed, stream);
    for (i, v) in z.iter_mut().enumerate() {
        let b = bias[i % cols];
        let keep = bits.next_keep(threshold);
        *v = if keep {
            relu_scalar_value(*v + b) * scale
        } else {
            0.0
        };
    }
}

/// ReLU backward fused with the bias gradient.
///
/// Differentiates `A = max(0, Z + b) * s` (with `s = 1 / (1 - p_drop)` under
/// dropout, `s = 1` without): `dZ = dA * s` where `A > 0`, else `0`; and
/// `db += column sums of dZ`.
///
/// - `a_then_dz`: `rows x cols`; the forward's activations `A` in, `dZ` out.
/// - `da`: `rows x cols`, the upstream gradient `dA`.
/// - `scale`: `s` above.
/// - `db`: `cols`, accumulated into.
///
/// # Panics
/// If a slice length does not match the shapes.
#[track_caller]
pub fn relu_backward(
    a_then_dz: &mut [f32],
    da: &[f32],
    rows: usize,
    cols: usize,
    scale: f32,
    db: &mut [f32],
) {
    relu_backward_scalar(a_then_dz, da, rows, cols, scale, db);
}

/// Scalar twin of [`relu_backward`].
///
/// # Panics
/// If a slice length does not match the shapes.
#[track_caller]
pub fn relu_backward_scalar(
    a_then_dz: &mut [f32],
    da: &[f32],
    rows: usize,
    cols: usize,
    scale: f32,
    db: &mut [f32],
) {
    check(a_then_dz, db, rows, cols, "relu_backward");
    assert_eq!(
        da.len(),
        rows * cols,
        "relu_backward: dA has {} elements, expected {rows}*{cols}",
        da.len()
    );
    if cols == 0 {
        return;
    }
    for (row, drow) in a_then_dz.chunks_exact_mut(cols).zip(da.chunks_exact(cols)) {
        for ((v, &d), acc) in row.iter_mut().zip(drow).zip(db.iter_mut()) {
            *v = if *v > 0.0 { d * scale } else { 0.0 };
            *acc += *v;
        }
    }
}

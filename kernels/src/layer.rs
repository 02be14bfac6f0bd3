//! Dense layer ops: the forward and backward of `S = X W + b` (and of
//! `A = relu(X W + b)`) over a row block, each choosing its kernels by shape.
//!
//! A model's pass is a flat list of these calls (see `vnn::train`): forward
//! each layer, softmax cross-entropy, then backward in reverse:
//!
//! | forward | backward |
//! |---|---|
//! | `A1 = relu(X W1 + b1)`: [`dense_relu_forward`] | `dW1 += Xᵀ·dZ1`: [`weight_backward`] |
//! | `S = A1 W2 + b2`: [`dense_forward`] | `db2 += Σ_rows dS`: [`bias_backward`]; `dW2 += A1ᵀ·dS`, `dZ1 = (dS·W2ᵀ) ⊙ [A1 > 0]`, `db1 += Σ_rows dZ1`: [`relu_dense_backward`] |
//!
//! The ops own the choice between kernels, so a caller never looks at
//! shapes: the narrow fused kernels of [`crate::fused`] for layers with at
//! most `NARROW_MAX` inputs (forward) or outputs (backward), the small or
//! packed GEMM of [`crate::gemm::gemm`] otherwise, [`crate::gemm::matvec_bias`]
//! for a single row, a `1ᵀ·dS` product for the bias sums of narrow outputs,
//! the staging of `Wᵀ` for the narrow backward and the chunked `dA = dZ·Wᵀ`
//! of the wide backward. The `*_path` functions name the choice.
//!
//! Shapes are row-major as everywhere in the crate: `x` is `rows x n_in`,
//! `w` is `n_in x n_out`, `b` is `n_out`. Gradients **accumulate** into
//! `dw` and `db` (the crate's convention); activations are overwritten by
//! their gradients in place. No op allocates: the backward takes a scratch
//! of at least [`relu_dense_backward_scratch`] elements.
//!
//! Every other activation has the same pair, [`dense_act_forward`] and
//! [`act_dense_backward`] (ReLU there is the ReLU pair above; the others
//! take the narrow strips under the same shape rules when there is no
//! dropout, and the GEMM path otherwise).

use crate::fused::{self, NARROW_MAX};
use crate::gemm::check_len;
use crate::{activation, gemm, reduce, Transpose};

// A tuning detail, out of the public docs; the kernel tests and benches name it.
#[doc(hidden)]
/// The most outputs of a layer whose weight gradient the narrow backward
/// computes in its pass over the layer's input
/// ([`fused::narrow_relu_backward_dw`]); with more, the kernel would spill
/// its registers, and the separate `Aᵀ·dS` product is used instead.
pub const FUSED_DW_MAX_OUT: usize = 4;

// A tuning detail, out of the public docs; the kernel tests and benches name it.
#[doc(hidden)]
/// Rows per chunk of the wide backward's `dA = dZ·Wᵀ` (the scratch holds
/// one chunk of `dA`).
pub const CHUNK_ROWS: usize = 128;

/// The shape of a dense layer over a row block: `rows` input rows of
/// `n_in` features into `n_out` outputs (`X` is `rows x n_in`, `W` is
/// `n_in x n_out`, the output `rows x n_out`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenseShape {
    /// Rows of the block.
    pub rows: usize,
    /// Inputs of the layer.
    pub n_in: usize,
    /// Outputs of the layer.
    pub n_out: usize,
}

pub use crate::mask::Dropout;

mod act;

pub use act::{
    act_dense_backward, act_dense_backward_scratch, dense_act_forward, dense_act_forward_packed,
    dense_act_forward_with,
};

// A tuning detail, out of the public docs; the kernel tests and benches name it.
#[doc(hidden)]
/// How [`dense_relu_forward`] computes its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardPath {
    /// One row: [`gemm::matvec_bias`], then ReLU.
    Matvec,
    /// At most `NARROW_MAX` inputs, no dropout:
    /// [`fused::narrow_bias_relu_forward`] in one pass, no GEMM.
    Narrow,
    /// [`gemm::gemm`], then [`activation::bias_relu_forward`] (or its
    /// dropout variant).
    Gemm,
}

// A tuning detail, out of the public docs; the kernel tests and benches name it.
#[doc(hidden)]
/// The path [`dense_relu_forward`] takes for these shapes: dropout always
/// takes `ForwardPath::Gemm`; otherwise one row takes
/// `ForwardPath::Matvec`, at most `NARROW_MAX` inputs
/// `ForwardPath::Narrow`, and the rest `ForwardPath::Gemm`.
#[inline]
pub fn dense_relu_forward_path(rows: usize, n_in: usize, dropout: bool) -> ForwardPath {
    if dropout {
        ForwardPath::Gemm
    } else if rows == 1 {
        ForwardPath::Matvec
    } else if n_in <= NARROW_MAX {
        ForwardPath::Narrow
    } else {
        ForwardPath::Gemm
    }
}

#[track_caller]
fn check_dense(op: &str, x: &[f32], w: &[f32], b: &[f32], out: &[f32], shape: [usize; 3]) {
    let [rows, n_in, n_out] = shape;
    check_len(op, "X", x.len(), rows * n_in);
    check_len(op, "W", w.len(), n_in * n_out);
    check_len(op, "bias", b.len(), n_out);
    check_len(op, "output", out.len(), rows * n_out);
}

/// `A = relu(X W + b)`, or with `dropout`, `A = relu(X W + b) * M` (see
/// [`Dropout`]); ReLU as [`activation::relu_scalar_value`] (NaN
/// propagates).
///
/// - `x`: `rows x n_in`; `w`: `n_in x n_out`; `b`: `n_out`.
/// - `a`: `rows x n_out`, overwritten (not read). It is what the backward
///   ([`relu_dense_backward`] of the next layer) needs: a unit was active
///   and kept exactly where `A > 0`.
///
/// The path follows `dense_relu_forward_path`; the paths agree up to
/// summation order and fused multiply-adds.
///
/// # Panics
/// If a slice length does not match the shapes, or `p_drop` is not in
/// `[0, 1)`.
///
/// # Example
/// ```
/// use vnn_kernels::layer::{dense_relu_forward, DenseShape};
/// let x = [1.0, 2.0, 0.0, 1.0]; // 2 x 2
/// let w = [1.0, -1.0, 1.0, -1.0]; // 2 x 2
/// let mut a = [f32::NAN; 4];
/// dense_relu_forward(DenseShape { rows: 2, n_in: 2, n_out: 2 }, &x, &w, &[0.5, 0.5], None, &mut a);
/// assert_eq!(a, [3.5, 0.0, 1.5, 0.0]);
/// ```
#[inline]
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn dense_relu_forward(
    shape: DenseShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dropout: Option<Dropout>,
    a: &mut [f32],
) {
    dense_relu_forward_with(&mut [], shape, x, w, b, dropout, a);
}

/// [`dense_relu_forward`] with a packing workspace for its product
/// ([`gemm::gemm_with`]: the crate's blocked GEMM when `ws` holds at least
/// [`gemm::GEMM_WORKSPACE`] elements and the product is large; an empty
/// `ws` is [`dense_relu_forward`]).
///
/// # Panics
/// As [`dense_relu_forward`].
#[inline]
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn dense_relu_forward_with(
    ws: &mut [f32],
    shape: DenseShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dropout: Option<Dropout>,
    a: &mut [f32],
) {
    let DenseShape { rows, n_in, n_out } = shape;
    match dense_relu_forward_path(rows, n_in, dropout.is_some()) {
        ForwardPath::Matvec => {
            // matvec_bias checks the shapes of this path itself.
            gemm::matvec_bias(x, w, b, n_in, n_out, a);
            for v in a.iter_mut() {
                *v = activation::relu_scalar_value(*v);
            }
        }
        ForwardPath::Narrow => fused::narrow_bias_relu_forward(x, w, b, rows, n_in, n_out, a),
        ForwardPath::Gemm => {
            check_dense("dense_relu_forward", x, w, b, a, [rows, n_in, n_out]);
            // Z = X W, then A = relu(Z + b) (* M) in place.
            let (m, n, k) = (rows, n_out, n_in);
            let no = Transpose::No;
            gemm::gemm_with(ws, no, no, m, n, k, 1.0, x, w, 0.0, a);
            match dropout {
                Some(d) => activation::bias_relu_dropout_forward(
                    a, b, rows, n_out, d.p_drop, d.seed, d.stream,
                ),
                None => activation::bias_relu_forward(a, b, rows, n_out),
            }
        }
    }
}

/// `S = X W + b` (no activation: the logits).
///
/// - `x`: `rows x n_in`; `w`: `n_in x n_out`; `b`: `n_out`.
/// - `s`: `rows x n_out`, overwritten.
///
/// One row takes [`gemm::matvec_bias`]; more rows start each output row
/// from `b` and add `X W` with [`gemm::gemm`] (`beta = 1`).
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::layer::{dense_forward, DenseShape};
/// let x = [1.0, 2.0, 0.0, 1.0]; // 2 x 2
/// let w = [1.0, -1.0, 1.0, -1.0]; // 2 x 2
/// let mut s = [f32::NAN; 4];
/// dense_forward(DenseShape { rows: 2, n_in: 2, n_out: 2 }, &x, &w, &[0.5, 0.5], &mut s);
/// assert_eq!(s, [3.5, -2.5, 1.5, -0.5]);
/// ```
#[inline]
#[track_caller]
pub fn dense_forward(shape: DenseShape, x: &[f32], w: &[f32], b: &[f32], s: &mut [f32]) {
    let DenseShape { rows, n_in, n_out } = shape;
    if rows == 1 {
        // matvec_bias checks the shapes of this path itself.
        return gemm::matvec_bias(x, w, b, n_in, n_out, s);
    }
    check_dense("dense_forward", x, w, b, s, [rows, n_in, n_out]);
    if n_out == 0 {
        return;
    }
    for row in s.chunks_exact_mut(n_out) {
        row.copy_from_slice(b);
    }
    let (m, n, k) = (rows, n_out, n_in);
    gemm::gemm(Transpose::No, Transpose::No, m, n, k, 1.0, x, w, 1.0, s);
}

/// `db += Σ_rows dS`: the bias gradient of `S = X W + b`.
///
/// - `ds`: `rows x n_out`, the upstream gradient.
/// - `ones`: at least `rows` ones (read when `n_out <= NARROW_MAX`).
/// - `db`: `n_out`, accumulated into.
///
/// With at most `NARROW_MAX` outputs the sums are the product `1ᵀ·dS`
/// (one pass of dot products along the rows instead of a short vector add
/// per row); wider outputs use [`reduce::column_sums`].
///
/// # Panics
/// If a slice length does not match the shapes, or `ones` is shorter than
/// `rows` when it is read.
///
/// # Example
/// ```
/// use vnn_kernels::layer::bias_backward;
/// let ds = [1.0, 2.0, 3.0, 4.0]; // 2 x 2
/// let mut db = [0.5, 0.0];
/// bias_backward(&ds, 2, 2, &[1.0; 2], &mut db);
/// assert_eq!(db, [4.5, 6.0]);
/// ```
#[inline]
#[track_caller]
pub fn bias_backward(ds: &[f32], rows: usize, n_out: usize, ones: &[f32], db: &mut [f32]) {
    check_len("bias_backward", "dS", ds.len(), rows * n_out);
    check_len("bias_backward", "db", db.len(), n_out);
    if n_out <= NARROW_MAX {
        assert!(
            ones.len() >= rows,
            "bias_backward: {} ones for {rows} rows",
            ones.len()
        );
        let ones = &ones[..rows];
        gemm::gemm(
            Transpose::No,
            Transpose::No,
            1,
            n_out,
            rows,
            1.0,
            ones,
            ds,
            1.0,
            db,
        );
    } else {
        reduce::column_sums(ds, rows, n_out, db);
    }
}

/// `dW += Xᵀ·dZ`: the weight gradient of `Z = X W`.
///
/// - `x`: `rows x n_in`, the layer's input; `dz`: `rows x n_out`.
/// - `dw`: `n_in x n_out`, accumulated into.
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::layer::{weight_backward, DenseShape};
/// let x = [1.0, 2.0]; // 1 x 2
/// let mut dw = [0.0; 2];
/// weight_backward(DenseShape { rows: 1, n_in: 2, n_out: 1 }, &x, &[3.0], &mut dw);
/// assert_eq!(dw, [3.0, 6.0]);
/// ```
#[inline]
#[track_caller]
pub fn weight_backward(shape: DenseShape, x: &[f32], dz: &[f32], dw: &mut [f32]) {
    weight_backward_with(&mut [], shape, x, dz, dw);
}

/// [`weight_backward`] with a packing workspace for its product
/// ([`gemm::gemm_with`]; an empty `ws` is [`weight_backward`]).
///
/// # Panics
/// As [`weight_backward`].
#[inline]
#[track_caller]
pub fn weight_backward_with(
    ws: &mut [f32],
    shape: DenseShape,
    x: &[f32],
    dz: &[f32],
    dw: &mut [f32],
) {
    let DenseShape { rows, n_in, n_out } = shape;
    check_len("weight_backward", "X", x.len(), rows * n_in);
    check_len("weight_backward", "dZ", dz.len(), rows * n_out);
    check_len("weight_backward", "dW", dw.len(), n_in * n_out);
    let (m, n, k) = (n_in, n_out, rows);
    let (yes, no) = (Transpose::Yes, Transpose::No);
    gemm::gemm_with(ws, yes, no, m, n, k, 1.0, x, dz, 1.0, dw);
}

// A tuning detail, out of the public docs; the kernel tests and benches name it.
#[doc(hidden)]
/// How [`relu_dense_backward`] computes its outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackwardPath {
    /// Few outputs: `Wᵀ` staged into the scratch, then one pass of
    /// [`fused::narrow_relu_backward_dw`] over `A` that computes `dZ`, `db`
    /// and `dW` (at most `FUSED_DW_MAX_OUT` outputs).
    NarrowFusedDw,
    /// As `BackwardPath::NarrowFusedDw` with
    /// [`fused::narrow_relu_backward`], after a separate `dW += Aᵀ·dS`.
    Narrow,
    /// `dW += Aᵀ·dS`, then per chunk of `CHUNK_ROWS` rows
    /// `dA = dS·Wᵀ` into the scratch and [`activation::relu_backward`].
    Chunked,
}

// A tuning detail, out of the public docs; the kernel tests and benches name it.
#[doc(hidden)]
/// The path [`relu_dense_backward`] takes: narrow when the layer has at
/// most `NARROW_MAX` outputs and at least as many rows as outputs
/// (staging `Wᵀ` costs `n_in x n_out`), fusing `dW` too with at most
/// `FUSED_DW_MAX_OUT` outputs; chunked otherwise.
#[inline]
pub fn relu_dense_backward_path(rows: usize, n_out: usize) -> BackwardPath {
    if n_out > NARROW_MAX || rows < n_out {
        BackwardPath::Chunked
    } else if n_out <= FUSED_DW_MAX_OUT {
        BackwardPath::NarrowFusedDw
    } else {
        BackwardPath::Narrow
    }
}

/// Scratch elements [`relu_dense_backward`] needs for these shapes: `Wᵀ`
/// (`n_out x n_in`) on the narrow paths, one chunk of `dA`
/// (`min(rows, CHUNK_ROWS) x n_in`) on the chunked one.
#[inline]
pub fn relu_dense_backward_scratch(shape: DenseShape) -> usize {
    let DenseShape { rows, n_in, n_out } = shape;
    match relu_dense_backward_path(rows, n_out) {
        BackwardPath::Chunked => CHUNK_ROWS.min(rows) * n_in,
        _ => n_out * n_in,
    }
}

/// Backward through `S = A W + c` where `A = relu(Z + b) * scale` is the
/// previous layer's output (`scale = 1 / (1 - p_drop)` under dropout, 1
/// without):
///
/// - `dW += Aᵀ·dS`
/// - `dA = dS·Wᵀ`, `dZ = dA * scale` where `A > 0`, else 0 (NaN counts as
///   inactive)
/// - `db += Σ_rows dZ`
///
/// Arguments:
/// - `a_then_dz`: `rows x n_in`, `A` in, `dZ` out.
/// - `ds`: `rows x n_out`, the upstream gradient `dS`.
/// - `w`: `n_in x n_out`, the layer's weights.
/// - `dw`: `n_in x n_out`, accumulated into.
/// - `db`: `n_in`, the previous layer's bias gradient, accumulated into.
/// - `scratch`: at least [`relu_dense_backward_scratch`]`(rows, n_in,
///   n_out)` elements, contents ignored and overwritten.
///
/// The path follows `relu_dense_backward_path`; the paths agree up to
/// summation order and fused multiply-adds.
///
/// # Panics
/// If a slice length does not match the shapes or the scratch is too short.
///
/// # Example
/// ```
/// use vnn_kernels::layer::{relu_dense_backward, relu_dense_backward_scratch, DenseShape};
/// let mut a = [1.0, 0.0, 2.0]; // 1 x 3, the middle unit inactive
/// let w = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]; // 3 x 2
/// let (mut dw, mut db) = ([0.0; 6], [0.0; 3]);
/// let shape = DenseShape { rows: 1, n_in: 3, n_out: 2 };
/// let mut scratch = vec![0.0; relu_dense_backward_scratch(shape)];
/// relu_dense_backward(shape, &mut a, &[1.0, 0.5], &w, 1.0, &mut dw, &mut db, &mut scratch);
/// assert_eq!(a, [2.0, 0.0, 2.0]); // dS W^T = [2, 2, 2], masked
/// assert_eq!(db, [2.0, 0.0, 2.0]);
/// assert_eq!(dw, [1.0, 0.5, 0.0, 0.0, 2.0, 1.0]); // A^T dS
/// ```
#[inline]
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn relu_dense_backward(
    shape: DenseShape,
    a_then_dz: &mut [f32],
    ds: &[f32],
    w: &[f32],
    scale: f32,
    dw: &mut [f32],
    db: &mut [f32],
    scratch: &mut [f32],
) {
    let DenseShape { rows, n_in, n_out } = shape;
    let op = "relu_dense_backward";
    check_len(op, "A", a_then_dz.len(), rows * n_in);
    check_len(op, "dS", ds.len(), rows * n_out);
    check_len(op, "W", w.len(), n_in * n_out);
    check_len(op, "dW", dw.len(), n_in * n_out);
    check_len(op, "db", db.len(), n_in);
    let need = relu_dense_backward_scratch(shape);
    assert!(
        scratch.len() >= need,
        "{op}: scratch has {} elements, needs {need}",
        scratch.len()
    );
    let path = relu_dense_backward_path(rows, n_out);
    if path != BackwardPath::NarrowFusedDw {
        // dW += A^T dS, read before A is overwritten.
        weight_backward(shape, a_then_dz, ds, dw);
    }
    if path == BackwardPath::Chunked {
        return chunked_relu_backward(shape, a_then_dz, ds, w, scale, db, scratch);
    }
    let (a, w_t) = (a_then_dz, stage_w_t(w, n_in, n_out, scratch));
    if path == BackwardPath::NarrowFusedDw {
        fused::narrow_relu_backward_dw(a, ds, w_t, rows, n_in, n_out, scale, db, dw);
    } else {
        fused::narrow_relu_backward(a, ds, w_t, rows, n_in, n_out, scale, db);
    }
}

/// `Wᵀ` (`n_out x n_in`) of `w` (`n_in x n_out`) into the front of the
/// scratch, so the narrow backward loads along `n_in`.
fn stage_w_t<'s>(w: &[f32], n_in: usize, n_out: usize, scratch: &'s mut [f32]) -> &'s [f32] {
    let w_t = &mut scratch[..n_out * n_in];
    for (i, row) in w.chunks_exact(n_out.max(1)).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            w_t[c * n_in + i] = v;
        }
    }
    w_t
}

/// The chunked path of [`relu_dense_backward`] after `dW` (shapes checked).
#[allow(clippy::too_many_arguments)]
fn chunked_relu_backward(
    shape: DenseShape,
    a_then_dz: &mut [f32],
    ds: &[f32],
    w: &[f32],
    scale: f32,
    db: &mut [f32],
    scratch: &mut [f32],
) {
    let DenseShape { rows, n_in, n_out } = shape;
    for c0 in (0..rows).step_by(CHUNK_ROWS) {
        let cr = CHUNK_ROWS.min(rows - c0);
        let da = &mut scratch[..cr * n_in];
        let ds_chunk = &ds[c0 * n_out..(c0 + cr) * n_out];
        // dA = dS W^T
        let (m, n, k) = (cr, n_in, n_out);
        gemm::gemm(
            Transpose::No,
            Transpose::Yes,
            m,
            n,
            k,
            1.0,
            ds_chunk,
            w,
            0.0,
            da,
        );
        let a = &mut a_then_dz[c0 * n_in..(c0 + cr) * n_in];
        activation::relu_backward(a, da, cr, n_in, scale, db);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use rand::{RngExt, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// Naive `X W + b` (f64 sums), then ReLU if asked.
    fn naive_dense(x: &[f32], w: &[f32], b: &[f32], shape: [usize; 3], relu: bool) -> Vec<f32> {
        let [rows, n_in, n_out] = shape;
        let mut out = vec![0f32; rows * n_out];
        for r in 0..rows {
            for j in 0..n_out {
                let mut s = b[j] as f64;
                for i in 0..n_in {
                    s += x[r * n_in + i] as f64 * w[i * n_out + j] as f64;
                }
                let v = s as f32;
                out[r * n_out + j] = if relu { v.max(0.0) } else { v };
            }
        }
        out
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (&g, &e)) in got.iter().zip(want).enumerate() {
            assert!(g.is_finite(), "{what}[{i}] = {g}");
            assert_relative_eq!(g, e, epsilon = 1e-5, max_relative = 1e-5);
        }
    }

    /// Shapes covering every forward path: one row, narrow inputs (up to
    /// `NARROW_MAX`), wide inputs, small and packed GEMM.
    const FORWARD_SHAPES: [[usize; 3]; 7] = [
        [1, 2, 100],
        [1, 784, 10],
        [300, 2, 100],
        [37, 16, 9],
        [37, 17, 9],
        [300, 100, 3],
        [200, 64, 70],
    ];

    #[test]
    fn dense_relu_forward_matches_naive_on_every_path() {
        let mut seen = Vec::new();
        for (t, &[rows, n_in, n_out]) in FORWARD_SHAPES.iter().enumerate() {
            let x = random(rows * n_in, t as u64);
            let w = random(n_in * n_out, 100 + t as u64);
            let b = random(n_out, 200 + t as u64);
            let mut a = vec![f32::NAN; rows * n_out];
            dense_relu_forward(DenseShape { rows, n_in, n_out }, &x, &w, &b, None, &mut a);
            let want = naive_dense(&x, &w, &b, [rows, n_in, n_out], true);
            assert_close(&a, &want, &format!("{rows}x{n_in}x{n_out}"));
            seen.push(dense_relu_forward_path(rows, n_in, false));
        }
        for path in [ForwardPath::Matvec, ForwardPath::Narrow, ForwardPath::Gemm] {
            assert!(seen.contains(&path), "{path:?} not tested");
        }
    }

    #[test]
    fn dense_relu_forward_with_dropout_masks_and_scales() {
        let (rows, n_in, n_out) = (50, 3, 20);
        let (x, w, b) = (
            random(rows * n_in, 1),
            random(n_in * n_out, 2),
            random(n_out, 3),
        );
        let d = Dropout {
            p_drop: 0.25,
            seed: 9,
            stream: 4,
        };
        assert_eq!(dense_relu_forward_path(rows, n_in, true), ForwardPath::Gemm);
        let mut a = vec![f32::NAN; rows * n_out];
        dense_relu_forward(
            DenseShape { rows, n_in, n_out },
            &x,
            &w,
            &b,
            Some(d),
            &mut a,
        );
        let mut mask = vec![0f32; rows * n_out];
        crate::mask::bernoulli_mask(&mut mask, d.p_drop, d.seed, d.stream);
        let plain = naive_dense(&x, &w, &b, [rows, n_in, n_out], true);
        let want: Vec<f32> = plain.iter().zip(&mask).map(|(v, m)| v * m).collect();
        assert_close(&a, &want, "dropout");
    }

    #[test]
    fn dense_forward_matches_naive_for_one_and_many_rows() {
        for (t, &[rows, n_in, n_out]) in FORWARD_SHAPES.iter().enumerate() {
            let x = random(rows * n_in, 10 + t as u64);
            let w = random(n_in * n_out, 110 + t as u64);
            let b = random(n_out, 210 + t as u64);
            let mut s = vec![f32::NAN; rows * n_out];
            dense_forward(DenseShape { rows, n_in, n_out }, &x, &w, &b, &mut s);
            let want = naive_dense(&x, &w, &b, [rows, n_in, n_out], false);
            assert_close(&s, &want, &format!("{rows}x{n_in}x{n_out}"));
        }
    }

    #[test]
    fn bias_backward_sums_columns_on_both_paths() {
        // Narrow (1^T dS) and wide (column sums) outputs.
        for (rows, n_out) in [(300, 3), (7, 16), (300, 17), (5, 40)] {
            let ds = random(rows * n_out, n_out as u64);
            let mut db = random(n_out, 7);
            let mut want = db.clone();
            for r in 0..rows {
                for j in 0..n_out {
                    want[j] += ds[r * n_out + j];
                }
            }
            bias_backward(&ds, rows, n_out, &vec![1.0; rows + 3], &mut db);
            assert_close(&db, &want, &format!("{rows}x{n_out}"));
        }
    }

    #[test]
    fn weight_backward_is_x_transposed_times_dz() {
        let (rows, n_in, n_out) = (33, 5, 7);
        let (x, dz) = (random(rows * n_in, 1), random(rows * n_out, 2));
        let mut dw = random(n_in * n_out, 3);
        let mut want = dw.clone();
        for r in 0..rows {
            for i in 0..n_in {
                for j in 0..n_out {
                    want[i * n_out + j] += x[r * n_in + i] * dz[r * n_out + j];
                }
            }
        }
        weight_backward(DenseShape { rows, n_in, n_out }, &x, &dz, &mut dw);
        assert_close(&dw, &want, "dW");
    }

    /// The unfused composition: `dW += Aᵀ·dS`, `dA = dS·Wᵀ`, the ReLU mask
    /// with the scale, `db += Σ dZ`; returns `(dZ, dW, db)`.
    fn unfused_backward(
        a: &[f32],
        ds: &[f32],
        w: &[f32],
        shape: [usize; 3],
        scale: f32,
        dw0: &[f32],
        db0: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let [rows, n_in, n_out] = shape;
        let (mut dw, mut db) = (dw0.to_vec(), db0.to_vec());
        let mut dz = vec![0f32; rows * n_in];
        for r in 0..rows {
            for i in 0..n_in {
                let mut da = 0f64;
                for j in 0..n_out {
                    let g = ds[r * n_out + j];
                    dw[i * n_out + j] += a[r * n_in + i] * g;
                    da += g as f64 * w[i * n_out + j] as f64;
                }
                let v = if a[r * n_in + i] > 0.0 {
                    da as f32 * scale
                } else {
                    0.0
                };
                dz[r * n_in + i] = v;
                db[i] += v;
            }
        }
        (dz, dw, db)
    }

    #[test]
    fn relu_dense_backward_matches_the_unfused_composition_on_every_path() {
        // (rows, n_in, n_out): narrow with fused dW (n_out <= 4), narrow
        // (5..=16), chunked by width (17) and by few rows (rows < n_out),
        // several chunks (rows > CHUNK_ROWS).
        let shapes = [
            [300, 100, 3],
            [9, 13, 4],
            [40, 24, 5],
            [130, 33, 16],
            [50, 20, 17],
            [3, 8, 6],
            [300, 64, 40],
        ];
        let mut seen = Vec::new();
        for (t, &[rows, n_in, n_out]) in shapes.iter().enumerate() {
            let t = t as u64;
            // Activations with exact zeros (inactive units).
            let a: Vec<f32> = random(rows * n_in, t).iter().map(|v| v.max(0.0)).collect();
            let ds = random(rows * n_out, 20 + t);
            let w = random(n_in * n_out, 40 + t);
            let (dw0, db0) = (random(n_in * n_out, 60 + t), random(n_in, 80 + t));
            let scale = if t.is_multiple_of(2) { 1.0 } else { 1.25 };
            let shape = [rows, n_in, n_out];
            let (want_dz, want_dw, want_db) =
                unfused_backward(&a, &ds, &w, shape, scale, &dw0, &db0);
            let mut scratch =
                vec![f32::NAN; relu_dense_backward_scratch(DenseShape { rows, n_in, n_out })];
            let (mut dz, mut dw, mut db) = (a.clone(), dw0.clone(), db0.clone());
            relu_dense_backward(
                DenseShape { rows, n_in, n_out },
                &mut dz,
                &ds,
                &w,
                scale,
                &mut dw,
                &mut db,
                &mut scratch,
            );
            let what = format!("{rows}x{n_in}x{n_out}");
            assert_close(&dz, &want_dz, &format!("dZ {what}"));
            assert_close(&dw, &want_dw, &format!("dW {what}"));
            assert_close(&db, &want_db, &format!("db {what}"));
            // The mask is exact: inactive units get exactly 0.
            for (&g, &x) in dz.iter().zip(&a) {
                if x <= 0.0 {
                    assert_eq!(g.to_bits(), 0f32.to_bits());
                }
            }
            seen.push(relu_dense_backward_path(rows, n_out));
        }
        for path in [
            BackwardPath::NarrowFusedDw,
            BackwardPath::Narrow,
            BackwardPath::Chunked,
        ] {
            assert!(seen.contains(&path), "{path:?} not tested");
        }
    }

    #[test]
    #[should_panic(expected = "scratch has 2 elements")]
    fn relu_dense_backward_refuses_a_short_scratch() {
        let mut a = [1.0; 6];
        let (mut dw, mut db) = ([0.0; 6], [0.0; 3]);
        relu_dense_backward(
            DenseShape {
                rows: 2,
                n_in: 3,
                n_out: 2,
            },
            &mut a,
            &[1.0; 4],
            &[1.0; 6],
            1.0,
            &mut dw,
            &mut db,
            &mut [0.0; 2],
        );
    }
}

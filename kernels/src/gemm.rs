//! General matrix multiply, `C = alpha * op(A) * op(B) + beta * C`, row-major.
//!
//! `op(A)` is `m x k` and `op(B)` is `k x n`; `C` is `m x n`. With
//! [`Transpose::No`] the operand is stored as written (`A` is `m x k`), with
//! [`Transpose::Yes`] it is stored transposed (`A` is `k x m`) and read
//! through swapped strides, so no copy is made.
//!
//! [`gemm`] picks a path by shape: small-shape `wide` loops where the packing
//! GEMM of `matrixmultiply` is dominated by overhead, [`gemm_packed`]
//! otherwise. [`gemm_scalar`] is the naive triple loop, the twin and oracle.
//!
//! When `beta == 0`, `C` is never read (NaN or garbage in `C` does not leak
//! into the result).

/// Whether a GEMM operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transpose {
    /// Use the operand as stored.
    No,
    /// Use the transpose of the stored operand.
    Yes,
}

/// Checks the operand lengths of a GEMM call.
#[track_caller]
fn check_shapes(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &[f32]) {
    assert_eq!(
        a.len(),
        m * k,
        "gemm: A has {} elements, expected m*k = {m}*{k}",
        a.len()
    );
    assert_eq!(
        b.len(),
        k * n,
        "gemm: B has {} elements, expected k*n = {k}*{n}",
        b.len()
    );
    assert_eq!(
        c.len(),
        m * n,
        "gemm: C has {} elements, expected m*n = {m}*{n}",
        c.len()
    );
}

/// Row and column strides of a row-major operand that is `rows x cols` after `op`.
fn strides(t: Transpose, rows: usize, cols: usize) -> (isize, isize) {
    let _ = rows;
    match t {
        // stored rows x cols
        Transpose::No => (cols as isize, 1),
        // stored cols x rows; element (r, c) of op(X) is X[c, r]
        Transpose::Yes => (1, rows as isize),
    }
}

/// Scales `C` by `beta`, writing zeros (not reading `C`) when `beta == 0`.
fn scale_c(beta: f32, c: &mut [f32]) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        c.iter_mut().for_each(|v| *v *= beta);
    }
}

/// `C = alpha * op(A) * op(B) + beta * C` through the best path for the shape.
///
/// - `ta`, `tb`: whether `A` / `B` are stored transposed.
/// - `m`, `n`, `k`: `op(A)` is `m x k`, `op(B)` is `k x n`, `C` is `m x n`.
/// - `a`: `m * k` elements (`m x k`, or `k x m` when `ta` is `Yes`).
/// - `b`: `k * n` elements (`k x n`, or `n x k` when `tb` is `Yes`).
/// - `c`: `m * n` elements; not read when `beta == 0`.
///
/// Results agree with [`gemm_scalar`] up to summation order (and FMA).
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::gemm::{gemm, Transpose};
/// let a = [1.0, 2.0, 3.0, 4.0]; // 2 x 2
/// let b = [1.0, 0.0, 0.0, 1.0]; // identity
/// let mut c = [f32::NAN; 4];
/// gemm(Transpose::No, Transpose::No, 2, 2, 2, 1.0, &a, &b, 0.0, &mut c);
/// assert_eq!(c, a);
/// ```
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn gemm(
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    gemm_packed(ta, tb, m, n, k, alpha, a, b, beta, c);
}

/// `C = alpha * op(A) * op(B) + beta * C` through `matrixmultiply::sgemm`
/// (cache-blocked, packing). Same contract as [`gemm`].
///
/// # Panics
/// If a slice length does not match the shapes.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn gemm_packed(
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    check_shapes(m, n, k, a, b, c);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        scale_c(beta, c);
        return;
    }
    let (rsa, csa) = strides(ta, m, k);
    let (rsb, csb) = strides(tb, k, n);
    // SAFETY: matrixmultiply reads op(A) at (i, l) as a[i*rsa + l*csa] for
    // i < m, l < k; both transpose cases keep that index below m*k = a.len()
    // (checked above). The same holds for B with k*n = b.len(). C is written
    // at i*n + j < m*n = c.len() and is a unique borrow, so it does not alias
    // A or B. matrixmultiply does not read C when beta == 0.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// The naive triple loop: the scalar twin of [`gemm`] and the oracle of the
/// tests. Accumulates each element in `f32` in order `l = 0..k`.
///
/// # Panics
/// If a slice length does not match the shapes.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn gemm_scalar(
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    check_shapes(m, n, k, a, b, c);
    let a_at = |i: usize, l: usize| match ta {
        Transpose::No => a[i * k + l],
        Transpose::Yes => a[l * m + i],
    };
    let b_at = |l: usize, j: usize| match tb {
        Transpose::No => b[l * n + j],
        Transpose::Yes => b[j * k + l],
    };
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for l in 0..k {
                acc += a_at(i, l) * b_at(l, j);
            }
            let prev = if beta == 0.0 {
                0.0
            } else {
                beta * c[i * n + j]
            };
            c[i * n + j] = alpha * acc + prev;
        }
    }
}

/// Matrix-vector product for one input row: `out = x * W + bias`.
///
/// - `x`: `n_in` elements.
/// - `w`: `n_in x n_out`, row-major (rows = inputs, columns = outputs).
/// - `bias`: `n_out` elements.
/// - `out`: `n_out` elements, overwritten.
///
/// No packing: this is the batch-1 inference path.
///
/// # Panics
/// If a slice length does not match the shapes.
#[track_caller]
pub fn matvec_bias(x: &[f32], w: &[f32], bias: &[f32], n_in: usize, n_out: usize, out: &mut [f32]) {
    matvec_bias_scalar(x, w, bias, n_in, n_out, out);
}

/// Scalar twin of [`matvec_bias`].
///
/// # Panics
/// If a slice length does not match the shapes.
#[track_caller]
pub fn matvec_bias_scalar(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n_in: usize,
    n_out: usize,
    out: &mut [f32],
) {
    assert_eq!(
        x.len(),
        n_in,
        "matvec_bias: x has {} elements, expected n_in = {n_in}",
        x.len()
    );
    assert_eq!(
        w.len(),
        n_in * n_out,
        "matvec_bias: W has {} elements, expected {n_in}*{n_out}",
        w.len()
    );
    assert_eq!(
        bias.len(),
        n_out,
        "matvec_bias: bias has {} elements, expected {n_out}",
        bias.len()
    );
    assert_eq!(
        out.len(),
        n_out,
        "matvec_bias: out has {} elements, expected {n_out}",
        out.len()
    );
    out.copy_from_slice(bias);
    for (i, &xi) in x.iter().enumerate() {
        let row = &w[i * n_out..(i + 1) * n_out];
        for (o, &wv) in out.iter_mut().zip(row) {
            *o += xi * wv;
        }
    }
}

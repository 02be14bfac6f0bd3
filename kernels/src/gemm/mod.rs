//! General matrix multiply, `C = alpha * op(A) * op(B) + beta * C`, row-major.
//!
//! `op(A)` is `m x k` and `op(B)` is `k x n`; `C` is `m x n`. With
//! [`Transpose::No`] the operand is stored as written (`A` is `m x k`), with
//! [`Transpose::Yes`] it is stored transposed (`A` is `k x m`) and read
//! through swapped strides, so no copy is made.
//!
//! [`gemm`] picks a path by shape: small-shape SIMD loops where the packing
//! GEMM of `matrixmultiply` is dominated by overhead, `matrixmultiply`
//! otherwise. [`gemm_scalar`] is the naive triple loop, the twin and oracle.
//!
//! When `beta == 0`, `C` is never read (NaN or garbage in `C` does not leak
//! into the result).
//!
//! The module is split by concern: this file holds the dispatch, the one
//! shape check and the twin; `packed.rs` wraps `matrixmultiply`,
//! `small.rs` holds the small-shape engine (one body over
//! the crate's private lane type, instantiated per ISA), `matvec.rs` the batch-1
//! product and `matvec_panels.rs` the batch-1 product over weights packed
//! once in column panels.

mod blocked;
mod matvec;
mod matvec_mlp;
mod matvec_panels;
mod packed;
mod small;
mod tiles;

pub use blocked::GEMM_WORKSPACE;
pub use matvec::{matvec_bias, matvec_bias_scalar};
pub use matvec_mlp::{mlp_relu_one_packed, mlp_relu_one_packed_scalar, PackedReluMlp};
pub(crate) use matvec_panels::check_len;
pub use matvec_panels::{
    matvec_bias_packed, matvec_bias_packed_scalar, matvec_bias_relu_packed,
    matvec_bias_relu_packed_scalar, matvec_pack, matvec_packed_len, matvec_packs, MATVEC_PANEL,
};
// Tuning internals, hidden from the docs: public only so that
// `kernels/tests/gemm.rs` and the `gemm` fuzz target can run every small
// kernel on the same shapes.
#[doc(hidden)]
pub use small::{small_kernel, SmallKernel};

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

/// Checks the shapes, then finishes the products that need no
/// multiplication: an empty `C`, or `k == 0` / `alpha == 0` where
/// `C = beta * C`. Returns whether the product is done.
#[allow(clippy::too_many_arguments)]
#[track_caller]
fn trivial_product(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) -> bool {
    check_shapes(m, n, k, a, b, c);
    if m == 0 || n == 0 {
        return true;
    }
    if k == 0 || alpha == 0.0 {
        scale_c(beta, c);
        return true;
    }
    false
}

/// The operands of a product whose shapes have been checked (`a`, `b`, `c`
/// hold `m*k`, `k*n`, `m*n` elements) and that needs multiplications
/// (`m`, `n`, `k` nonzero, `alpha != 0`).
struct Product<'a> {
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &'a [f32],
    b: &'a [f32],
    beta: f32,
    c: &'a mut [f32],
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
/// Small products (roughly: some dimension at most 16, or at most 32^3
/// multiply-adds in all; the exact rule is a tuning choice that may change)
/// run SIMD loops that allocate nothing; the others go through
/// `matrixmultiply`, which allocates one packing buffer per call.
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
    if trivial_product(m, n, k, alpha, a, b, beta, c) {
        return;
    }
    let kernel = small_kernel(ta, tb, m, n, k);
    let product = Product {
        ta,
        tb,
        m,
        n,
        k,
        alpha,
        a,
        b,
        beta,
        c,
    };
    if use_small(m, n, k) {
        small::run(kernel, product);
    } else {
        packed::run(product);
    }
}

// Hidden from the docs (a tuning rule): public for `kernels/tests/gemm.rs`
// and `tests/alloc.rs`, which check which products pack.
/// Whether [`gemm`] takes [`gemm_small`] (`true`) or [`gemm_packed`].
///
/// Rule: small when some dimension is at most 16 or the whole product has at
/// most 32^3 multiply-adds, except a tiny `k` (at most 4) under a large
/// output (`m`, `n` at least 64): there packing is cheap and the 16-lane
/// AVX-512 kernel of `matrixmultiply` stores `C` faster than the 8-lane
/// tiles here.
#[doc(hidden)]
pub fn use_small(m: usize, n: usize, k: usize) -> bool {
    if k <= TINY_K && m >= 64 && n >= 64 {
        return false;
    }
    m.min(n).min(k) <= SMALL_MIN_DIM || m * n * k <= SMALL_VOLUME
}

/// Inner dimensions this small go to the packed GEMM when `C` is large.
const TINY_K: usize = 4;
/// Small shapes: at most this many along some dimension.
const SMALL_MIN_DIM: usize = 16;
/// Small shapes: at most this many multiply-adds in all.
const SMALL_VOLUME: usize = 32 * 32 * 32;

// Hidden from the docs (one path of `gemm`): public for
// `kernels/tests/gemm.rs`, the `gemm` fuzz target and `benches/kernels.rs`,
// which compare the paths on the same shapes.
/// `C = alpha * op(A) * op(B) + beta * C` through `matrixmultiply::sgemm`
/// (cache-blocked, packing). Same contract as [`gemm`].
///
/// # Panics
/// If a slice length does not match the shapes.
#[allow(clippy::too_many_arguments)]
#[track_caller]
#[doc(hidden)]
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
    if !trivial_product(m, n, k, alpha, a, b, beta, c) {
        packed::run(Product {
            ta,
            tb,
            m,
            n,
            k,
            alpha,
            a,
            b,
            beta,
            c,
        });
    }
}

/// [`gemm`] with a packing workspace: the products that [`gemm`] sends to
/// `matrixmultiply` go to [`gemm_blocked`] instead, packing into `ws`
/// (no allocation) when it holds at least [`GEMM_WORKSPACE`] elements.
/// With a shorter `ws` (an empty one, say) this is [`gemm`].
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::gemm::{gemm_with, Transpose, GEMM_WORKSPACE};
/// let (m, n, k) = (40, 40, 40);
/// let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32).collect();
/// let eye: Vec<f32> = (0..k * n).map(|i| f32::from(i / n == i % n)).collect();
/// let mut ws = vec![0.0; GEMM_WORKSPACE];
/// let mut c = vec![f32::NAN; m * n];
/// gemm_with(&mut ws, Transpose::No, Transpose::No, m, n, k, 1.0, &a, &eye, 0.0, &mut c);
/// assert_eq!(c, a);
/// ```
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn gemm_with(
    ws: &mut [f32],
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
    if ws.len() < GEMM_WORKSPACE || use_small(m, n, k) {
        return gemm(ta, tb, m, n, k, alpha, a, b, beta, c);
    }
    gemm_blocked(ta, tb, m, n, k, alpha, a, b, beta, c, ws);
}

/// `C = alpha * op(A) * op(B) + beta * C` through the crate's cache-blocked
/// GEMM: `op(A)` and `op(B)` are packed in blocks into `ws`, then a
/// register tile of two vectors of the widest lanes the CPU has (AVX-512
/// when it has it, chosen at run time) runs over the packed panels. Same
/// contract as [`gemm`]; allocates nothing. Results agree with
/// [`gemm_scalar`] up to summation order and fused multiply-adds, and
/// depend only on the shapes and the CPU's vector width.
///
/// # Panics
/// If a slice length does not match the shapes, or `ws` holds fewer than
/// [`GEMM_WORKSPACE`] elements.
///
/// # Example
/// ```
/// use vnn_kernels::gemm::{gemm_blocked, Transpose, GEMM_WORKSPACE};
/// let a = [1.0, 2.0, 3.0, 4.0]; // 2 x 2
/// let b = [0.0, 1.0, 1.0, 0.0]; // swaps the columns
/// let mut ws = vec![0.0; GEMM_WORKSPACE];
/// let mut c = [f32::NAN; 4];
/// gemm_blocked(Transpose::No, Transpose::No, 2, 2, 2, 1.0, &a, &b, 0.0, &mut c, &mut ws);
/// assert_eq!(c, [2.0, 1.0, 4.0, 3.0]);
/// ```
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn gemm_blocked(
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
    ws: &mut [f32],
) {
    assert!(
        ws.len() >= GEMM_WORKSPACE,
        "gemm_blocked: the workspace has {} elements, expected at least {GEMM_WORKSPACE}",
        ws.len()
    );
    if !trivial_product(m, n, k, alpha, a, b, beta, c) {
        let product = Product {
            ta,
            tb,
            m,
            n,
            k,
            alpha,
            a,
            b,
            beta,
            c,
        };
        blocked::run(product, ws);
    }
}

// Hidden from the docs (one path of `gemm`): public for
// `kernels/tests/gemm.rs` and the `gemm` fuzz target, which run every
// small kernel on every shape.
/// `C = alpha * op(A) * op(B) + beta * C` through the chosen small-shape kernel,
/// without packing and without heap allocation. Same contract as [`gemm`];
/// every kernel is valid for every shape (see [`SmallKernel`]), [`gemm`]
/// picks one with [`small_kernel`].
///
/// Results agree with [`gemm_scalar`] up to summation order and fused
/// multiply-adds.
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::gemm::{gemm_small, SmallKernel, Transpose};
/// let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
/// let b = [1.0, 1.0, 1.0]; // 3 x 1
/// for kernel in [SmallKernel::Axpy, SmallKernel::AxpyTransposed, SmallKernel::Dot] {
///     let mut c = [f32::NAN; 2];
///     gemm_small(kernel, Transpose::No, Transpose::No, 2, 1, 3, 1.0, &a, &b, 0.0, &mut c);
///     assert_eq!(c, [6.0, 15.0]);
/// }
/// ```
#[allow(clippy::too_many_arguments)]
#[track_caller]
#[doc(hidden)]
pub fn gemm_small(
    kernel: SmallKernel,
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
    if !trivial_product(m, n, k, alpha, a, b, beta, c) {
        let product = Product {
            ta,
            tb,
            m,
            n,
            k,
            alpha,
            a,
            b,
            beta,
            c,
        };
        small::run(kernel, product);
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

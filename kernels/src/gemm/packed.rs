//! The cache-blocked, packing GEMM of `matrixmultiply`, wrapped once.

use super::{Product, Transpose};

/// The body of [`super::gemm_packed`] after the shape check (`a`, `b`, `c`
/// hold `m*k`, `k*n`, `m*n` elements) and the trivial products.
pub(super) fn run(product: Product) {
    let (m, n, k) = (product.m, product.n, product.k);
    let (a, b, c) = (product.a, product.b, product.c);
    // The bounds the unsafe call below relies on (the public entries have
    // already checked them with messages; this keeps `run` sound alone).
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    let (rsa, csa) = strides(product.ta, m, k);
    let (rsb, csb) = strides(product.tb, k, n);
    // SAFETY: matrixmultiply reads op(A) at (i, l) as a[i*rsa + l*csa] for
    // i < m, l < k; both transpose cases keep that index below m*k = a.len()
    // (asserted above). The same holds for B with k*n = b.len(). C is written
    // at i*n + j < m*n = c.len() and is a unique borrow, so it does not alias
    // A or B. matrixmultiply does not read C when beta == 0.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            product.alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            product.beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}
/// Row and column strides of a row-major operand that is `rows x cols` after `op`.
fn strides(t: Transpose, rows: usize, cols: usize) -> (isize, isize) {
    match t {
        // stored rows x cols
        Transpose::No => (cols as isize, 1),
        // stored cols x rows; element (r, c) of op(X) is X[c, r]
        Transpose::Yes => (1, rows as isize),
    }
}

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

use wide::f32x8;

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
    check_shapes(m, n, k, a, b, c);
    if use_small(m, n, k) {
        gemm_small(
            small_kernel(ta, tb, m, n, k),
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
        );
    } else {
        gemm_packed(ta, tb, m, n, k, alpha, a, b, beta, c);
    }
}

/// Whether [`gemm`] takes [`gemm_small`] (`true`) or [`gemm_packed`].
///
/// Rule: small when some dimension is at most 16 or the whole product has at
/// most 32^3 multiply-adds, except a tiny `k` (at most 4) under a large
/// output (`m`, `n` at least 64): there packing is cheap and the 16-lane
/// AVX-512 kernel of `matrixmultiply` stores `C` faster than the 8-lane
/// tiles here.
///
/// Measured single-threaded (`RUSTFLAGS=-C target-cpu=native`, one core of
/// a 2-vCPU Zen guest, medians; small path vs `gemm_packed`):
///
/// | product | shape `m x n x k` | small | packed |
/// |---|---|---|---|
/// | spiral `A1 W2` (NN) | 300 x 3 x 100 | 3.0 us (60 GFLOP/s) | 11.4 us (16) |
/// | spiral `A1^T dS` (TN) | 100 x 3 x 300 | 2.0 us (88) | 7.7 us (23) |
/// | spiral `X^T dZ1` (TN) | 2 x 100 x 300 | 1.5 us (78) | 7.4 us (16) |
/// | spiral `X W1` (NN) | 300 x 100 x 2 | 3.7 us (32) | 2.2 us (55) |
/// | spiral `dS W2^T` (NT) | 300 x 100 x 3 | 4.7 us (38) | 2.6 us (68) |
/// | MNIST-like `A1 W2` (NN) | 1250 x 10 x 512 | 110 us (115) | 272 us (47) |
/// | MNIST-like `A1^T dS` (TN) | 512 x 10 x 1250 | 118–220 us (58–108) | 192–204 us (63–67) |
/// | MNIST-like `dS W2^T` (NT) | 1250 x 512 x 10 | 170–205 us (62–75) | 250–258 us (50–51) |
///
/// The last two `X W1` / `dS W2^T` spiral rows are the `k <= 4` exception.
/// Ranges are runs on a shared, noisy machine.
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
    if trivial_product(m, n, k, alpha, a, b, beta, c) {
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
/// No packing: this is the batch-1 inference path. Each output sums the bias
/// then the rows in order, as the twin does, but with fused multiply-adds
/// (when the build enables FMA) and, for narrow strips, several partial sums
/// over interleaved rows; results agree with [`matvec_bias_scalar`] within
/// rounding. Measured (native flags, one thread): 784 x 512 about 15 us
/// (bound by streaming `W` from L3), 512 x 10 0.5 us, 2 x 100 18 ns,
/// 100 x 3 40 ns.
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::gemm::matvec_bias;
/// let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
/// let mut out = [0.0; 3];
/// matvec_bias(&[1.0, 2.0], &w, &[0.5, 0.0, -1.0], 2, 3, &mut out);
/// assert_eq!(out, [9.5, 12.0, 14.0]);
/// ```
#[track_caller]
pub fn matvec_bias(x: &[f32], w: &[f32], bias: &[f32], n_in: usize, n_out: usize, out: &mut [f32]) {
    check_matvec(x, w, bias, n_in, n_out, out);
    match n_out {
        0 => return,
        1 => return matvec_narrow::<1>(x, w, bias, out),
        2 => return matvec_narrow::<2>(x, w, bias, out),
        3 => return matvec_narrow::<3>(x, w, bias, out),
        4 => return matvec_narrow::<4>(x, w, bias, out),
        5 => return matvec_narrow::<5>(x, w, bias, out),
        6 => return matvec_narrow::<6>(x, w, bias, out),
        7 => return matvec_narrow::<7>(x, w, bias, out),
        _ => {}
    }
    let block = MATVEC_VECTORS * LANES;
    if n_out > block && n_in >= block {
        matvec_rows(x, w, bias, n_out, out);
        return;
    }
    // Column strips of up to 8 vectors, each accumulated in registers over
    // all rows of W (an axpy per row), starting from the bias.
    let mut j = 0;
    while j + block <= n_out {
        matvec_strip::<MATVEC_VECTORS, 1>(x, w, bias, n_out, j, 0, out);
        j += block;
    }
    match (n_out - j) / LANES {
        1 => matvec_strip::<1, 8>(x, w, bias, n_out, j, 0, out),
        2 => matvec_strip::<2, 4>(x, w, bias, n_out, j, 0, out),
        3 => matvec_strip::<3, 4>(x, w, bias, n_out, j, 0, out),
        4 => matvec_strip::<4, 2>(x, w, bias, n_out, j, 0, out),
        5 => matvec_strip::<5, 2>(x, w, bias, n_out, j, 0, out),
        6 => matvec_strip::<6, 2>(x, w, bias, n_out, j, 0, out),
        7 => matvec_strip::<7, 2>(x, w, bias, n_out, j, 0, out),
        _ => {}
    }
    let rem = n_out % LANES;
    if rem != 0 {
        // The last vector overlaps the previous one; only its new lanes are
        // stored.
        matvec_strip::<1, 8>(x, w, bias, n_out, n_out - LANES, LANES - rem, out);
    }
}

/// [`matvec_bias`] for wide layers: `out` (in L1) starts as the bias and
/// takes four rows of `W` per pass, so `W` streams through in storage order
/// (column strips over a 2 KiB row stride ran slower than the scalar twin at
/// 784 x 512).
fn matvec_rows(x: &[f32], w: &[f32], bias: &[f32], n_out: usize, out: &mut [f32]) {
    out.copy_from_slice(bias);
    let full = n_out / LANES * LANES;
    let mut rows = w.chunks_exact(n_out).zip(x);
    loop {
        let group: [_; 4] = std::array::from_fn(|_| rows.next());
        let [Some((w0, &x0)), Some((w1, &x1)), Some((w2, &x2)), Some((w3, &x3))] = group else {
            // Fewer than four rows left: one at a time.
            for (wr, &xi) in group.into_iter().flatten() {
                axpy_row(out, wr, xi, full);
            }
            break;
        };
        let (x0, x1, x2, x3) = (
            f32x8::splat(x0),
            f32x8::splat(x1),
            f32x8::splat(x2),
            f32x8::splat(x3),
        );
        for (j, o) in out[..full].chunks_exact_mut(LANES).enumerate() {
            let at = j * LANES;
            let mut v = load8(o);
            v = x0.mul_add(load8(&w0[at..]), v);
            v = x1.mul_add(load8(&w1[at..]), v);
            v = x2.mul_add(load8(&w2[at..]), v);
            v = x3.mul_add(load8(&w3[at..]), v);
            o.copy_from_slice(&v.to_array());
        }
        for (wr, xi) in [(w0, x0), (w1, x1), (w2, x2), (w3, x3)] {
            let xi = xi.to_array()[0];
            for (o, &wv) in out[full..].iter_mut().zip(&wr[full..]) {
                *o += xi * wv;
            }
        }
    }
}

/// Loads 8 lanes from the front of `s`.
#[inline(always)]
fn load8(s: &[f32]) -> f32x8 {
    <f32x8 as Simd8>::load(s)
}

/// `out += xi * w_row`: vectors over the first `full` columns, scalars after.
fn axpy_row(out: &mut [f32], w_row: &[f32], xi: f32, full: usize) {
    let xv = f32x8::splat(xi);
    for (o, wv) in out[..full]
        .chunks_exact_mut(LANES)
        .zip(w_row.chunks_exact(LANES))
    {
        o.copy_from_slice(&xv.mul_add(load8(wv), load8(o)).to_array());
    }
    for (o, &wv) in out[full..].iter_mut().zip(&w_row[full..]) {
        *o += xi * wv;
    }
}

/// Vectors (of 8 outputs) accumulated at once by [`matvec_bias`].
const MATVEC_VECTORS: usize = 8;

/// `out[j0 + skip .. j0 + 8 V] = bias + x * W[:, same columns]`, with `CH`
/// accumulator chains over interleaved rows (enough independent
/// multiply-adds in flight when `V` is small).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn matvec_strip<const V: usize, const CH: usize>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n_out: usize,
    j0: usize,
    skip: usize,
    out: &mut [f32],
) {
    let mut acc = [[f32x8::ZERO; V]; CH];
    let b = &bias[j0..j0 + V * LANES];
    acc[0] = std::array::from_fn(|v| load8(&b[v * LANES..]));
    let rows = x.len() / CH * CH;
    for i in (0..rows).step_by(CH) {
        for (c, acc_c) in acc.iter_mut().enumerate() {
            let row = &w[(i + c) * n_out + j0..][..V * LANES];
            let xv = f32x8::splat(x[i + c]);
            for (v, a) in acc_c.iter_mut().enumerate() {
                *a = xv.mul_add(load8(&row[v * LANES..]), *a);
            }
        }
    }
    for (i, &xi) in x.iter().enumerate().skip(rows) {
        let row = &w[i * n_out + j0..][..V * LANES];
        let xv = f32x8::splat(xi);
        for (v, a) in acc[0].iter_mut().enumerate() {
            *a = xv.mul_add(load8(&row[v * LANES..]), *a);
        }
    }
    for v in 0..V {
        let sum = acc.iter().skip(1).fold(acc[0][v], |s, acc_c| s + acc_c[v]);
        let start = j0 + v * LANES + skip;
        out[start..j0 + (v + 1) * LANES].copy_from_slice(&sum.to_array()[skip..]);
    }
}

/// [`matvec_bias`] for fewer than 8 outputs: `N` is the output count, so
/// the column loop unrolls; four accumulator rows over interleaved inputs hide
/// the add latency.
fn matvec_narrow<const N: usize>(x: &[f32], w: &[f32], bias: &[f32], out: &mut [f32]) {
    let mut acc = [[0.0f32; N]; 4];
    let groups = x.len() / 4;
    for (wg, xg) in w.chunks_exact(4 * N).zip(x.chunks_exact(4)).take(groups) {
        for ((acc_r, wr), &xi) in acc.iter_mut().zip(wg.chunks_exact(N)).zip(xg) {
            for (a, &wv) in acc_r.iter_mut().zip(wr) {
                *a += xi * wv;
            }
        }
    }
    for (wr, &xi) in w.chunks_exact(N).zip(x).skip(groups * 4) {
        for (a, &wv) in acc[0].iter_mut().zip(wr) {
            *a += xi * wv;
        }
    }
    for (j, o) in out.iter_mut().enumerate() {
        *o = bias[j] + ((acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]));
    }
}

#[track_caller]
fn check_matvec(x: &[f32], w: &[f32], bias: &[f32], n_in: usize, n_out: usize, out: &[f32]) {
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
    check_matvec(x, w, bias, n_in, n_out, out);
    out.copy_from_slice(bias);
    for (i, &xi) in x.iter().enumerate() {
        let row = &w[i * n_out..(i + 1) * n_out];
        for (o, &wv) in out.iter_mut().zip(row) {
            *o += xi * wv;
        }
    }
}

// ---------------------------------------------------------------------------
// Small-shape paths
// ---------------------------------------------------------------------------

/// `f32` lanes of one vector.
const LANES: usize = 8;

/// The 8-lane vector operations of the small-shape kernels: [`f32x8`]
/// (instructions chosen when the crate is compiled), or AVX2 + FMA registers
/// chosen at run time (`x86.rs`, builds without FMA enabled).
pub(crate) trait Simd8: Copy {
    /// All lanes `0.0`.
    fn zero() -> Self;
    /// All lanes `v`.
    fn splat(v: f32) -> Self;
    /// The first 8 elements of `s` (panics if shorter).
    fn load(s: &[f32]) -> Self;
    /// The lanes of `a`.
    fn from_array(a: [f32; LANES]) -> Self;
    /// The lanes as an array.
    fn to_array(self) -> [f32; LANES];
    /// `self * b + c` (fused where the implementation has FMA).
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// `self * b`.
    fn mul(self, b: Self) -> Self;
    /// Bitwise and.
    fn and(self, m: Self) -> Self;
    /// The sum of the lanes.
    fn reduce_add(self) -> f32;
    /// Whether only 16 vector registers hold these vectors (AVX2), so that
    /// the dot kernel's 4 x 4 tile would spill: it then takes 3 rows
    /// (spiral `A1 W2`, 300 x 3 x 100, on AVX2: 3.4 us vs 3.9 us; with
    /// AVX-512's 32 registers 4 rows stay faster, 2.8 vs 3.6 us).
    const FEW_REGISTERS: bool = false;

    /// One register tile of the axpy kernel ([`axpy_tile_impl`]). A trait
    /// method so that an implementation can compile the tile with its own
    /// target features (`x86.rs`); the loops around it stay generic.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn axpy_tile<const R: usize, const V: usize>(
        p: View,
        q: View,
        k: usize,
        p0: usize,
        q0: usize,
        lanes: (usize, usize),
        dest: &mut Dest,
    ) {
        axpy_tile_impl::<Self, R, V>(p, q, k, p0, q0, lanes, dest);
    }

    /// One register tile of the dot kernel ([`dot_tile_impl`]); see
    /// [`Simd8::axpy_tile`].
    #[inline(always)]
    fn dot_tile<const R: usize, const C: usize>(
        p: View,
        qt: View,
        k: usize,
        p0: usize,
        q0: usize,
        dest: &mut Dest,
    ) {
        dot_tile_impl::<Self, R, C>(p, qt, k, p0, q0, dest);
    }
}

impl Simd8 for f32x8 {
    #[inline(always)]
    fn zero() -> Self {
        f32x8::ZERO
    }
    #[inline(always)]
    fn splat(v: f32) -> Self {
        f32x8::splat(v)
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        f32x8::new(s[..LANES].try_into().unwrap())
    }
    #[inline(always)]
    fn from_array(a: [f32; LANES]) -> Self {
        f32x8::new(a)
    }
    #[inline(always)]
    fn to_array(self) -> [f32; LANES] {
        f32x8::to_array(self)
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        f32x8::mul_add(self, b, c)
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        self * b
    }
    #[inline(always)]
    fn and(self, m: Self) -> Self {
        self & m
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        f32x8::reduce_add(self)
    }
}

/// Capacity, in `f32`, of the stack buffer into which a strided operand is
/// copied (32 KiB: fits in L1 with room to spare). Larger operands are
/// processed in chunks of this size, so no path allocates.
const STAGE: usize = 8192;

/// The stack buffer for operands that fit in 4 KiB (e.g. the spiral's
/// `W2^T`, 300 elements): zeroing the full [`STAGE`] cost more than the
/// copy (spiral `A1 W2`: 2.7 vs 2.9 us native).
const SMALL_STAGE: usize = 1024;

/// Register tiles of the axpy kernel: rows of `P` broadcast times vectors
/// of `Q`. 4 x 3 (24 columns) in general; 6 x 2 when `P` has 5 to 12 rows,
/// so that e.g. 10 classes take two passes over `Q` instead of three
/// (`A1^T dS` with K = 10: 108 vs 58 GFLOP/s). 4 x 3 rather than 4 x 4:
/// with 16 vector registers (AVX2) 4 x 4 spills its sums to the stack, and
/// with AVX-512 4 x 3 was faster too (spiral `A1^T dS`, 100 x 3 x 300:
/// 2.2 vs 3.1 us native, 2.0 vs 5.3 us on AVX2; `3 x 200 x 500` TN: 6.1 vs
/// 8.9 us native; `16 x 512 x 200` TN equal).
const AXPY_WIDE: (usize, usize) = (4, 3);
/// See [`AXPY_WIDE`].
const AXPY_TALL: (usize, usize) = (6, 2);

/// Register tile of the dot kernel: rows of `P` times rows of `Q`.
const DOT_TILE: usize = 4;

/// The `wide` kernel used by [`gemm_small`].
///
/// Each kernel accepts every shape and transpose combination; an operand
/// that is not laid out the way a kernel reads it is copied (transposed,
/// zero-padded) in chunks into a fixed-size stack buffer first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmallKernel {
    /// SIMD along the columns of `C`: for each `l`, `C[i, j..j+8] +=
    /// op(A)[i, l] * op(B)[l, j..j+8]`, over a register tile of 4 rows x 24
    /// columns. Best when `n >= 16`. Reads `op(B)` rows in place when
    /// `tb == No` and `n >= 8`, and stages them otherwise.
    Axpy,
    /// [`SmallKernel::Axpy`] applied to `C^T = op(B)^T * op(A)^T`: SIMD along
    /// the rows of `C`. Best for a small `n` with a large `m`, e.g.
    /// `A^T * dS` with few classes. Reads `A` in place when `ta == Yes` and
    /// `m >= 8`, and stages it otherwise.
    AxpyTransposed,
    /// Dot products along `k`: `C[i, j] = op(A)[i, :] . op(B)[:, j]`, SIMD
    /// over `l`, register tile of 4 x 4 outputs. Best for a small `n` with a
    /// long `k`, e.g. `A * W2` with few classes. Reads `A` rows in place and
    /// needs `ta == No` (with `ta == Yes` it runs
    /// [`SmallKernel::AxpyTransposed`]); reads `B` in place when
    /// `tb == Yes` and stages `op(B)^T` otherwise.
    Dot,
}

/// The kernel [`gemm`] uses for a small shape.
///
/// - `n >= 16`, or `n >= 8` with `m < 8`: [`SmallKernel::Axpy`] (full
///   vectors along `n`).
/// - otherwise, `ta == No` and `k >= 16`: [`SmallKernel::Dot`] (full vectors
///   along `k`).
/// - otherwise, `m >= 8`: [`SmallKernel::AxpyTransposed`] (full vectors
///   along `m`).
/// - otherwise (`m`, `n` both below 8): [`SmallKernel::Axpy`].
pub fn small_kernel(ta: Transpose, tb: Transpose, m: usize, n: usize, k: usize) -> SmallKernel {
    let _ = tb;
    if n >= 16 || (n >= LANES && m < LANES) {
        SmallKernel::Axpy
    } else if ta == Transpose::No && k >= 16 {
        SmallKernel::Dot
    } else if m >= LANES {
        SmallKernel::AxpyTransposed
    } else {
        SmallKernel::Axpy
    }
}

/// `C = alpha * op(A) * op(B) + beta * C` through the chosen `wide` kernel,
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
    if trivial_product(m, n, k, alpha, a, b, beta, c) {
        return;
    }
    #[cfg(all(target_arch = "x86_64", not(target_feature = "fma")))]
    if crate::x86::available() {
        // SAFETY: available() found AVX2 and FMA on this CPU; the shapes
        // were checked above.
        unsafe { crate::x86::gemm_small(kernel, ta, tb, m, n, k, alpha, a, b, beta, c) };
        return;
    }
    small_run::<f32x8>(kernel, ta, tb, m, n, k, alpha, a, b, beta, c);
}

/// The body of [`gemm_small`] for one vector type, after the shape checks
/// and the empty cases (`m`, `n`, `k` nonzero, `alpha != 0`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn small_run<S: Simd8>(
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
    let op_a = View::of(a, ta, m, k);
    let op_b = View::of(b, tb, k, n);
    let dest = Dest {
        c,
        rs: n,
        cs: 1,
        alpha,
        beta,
    };
    match kernel {
        SmallKernel::Dot if ta == Transpose::No => dot::<S>(op_a, op_b, m, n, k, dest),
        SmallKernel::Axpy => axpy::<S>(op_a, op_b, m, n, k, dest),
        SmallKernel::AxpyTransposed | SmallKernel::Dot => {
            // C^T = op(B)^T * op(A)^T, written through swapped strides.
            let dest = Dest {
                rs: 1,
                cs: n,
                ..dest
            };
            axpy::<S>(op_b.t(), op_a.t(), n, m, k, dest)
        }
    }
}

/// A strided read-only matrix: element `(r, c)` is `d[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    d: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// `op(X)` of a stored operand, `rows x cols` after `op`.
    fn of(d: &'a [f32], t: Transpose, rows: usize, cols: usize) -> Self {
        match t {
            Transpose::No => View { d, rs: cols, cs: 1 },
            Transpose::Yes => View { d, rs: 1, cs: rows },
        }
    }

    /// The transpose (no copy).
    fn t(self) -> Self {
        View {
            d: self.d,
            rs: self.cs,
            cs: self.rs,
        }
    }

    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> f32 {
        self.d[r * self.rs + c * self.cs]
    }

    /// Columns `from..` (a view of the same matrix without its first columns).
    fn skip_cols(self, from: usize) -> Self {
        View {
            d: &self.d[from * self.cs..],
            ..self
        }
    }

    /// Rows `from..`.
    fn skip_rows(self, from: usize) -> Self {
        View {
            d: &self.d[from * self.rs..],
            ..self
        }
    }
}

/// Where a kernel writes: `out(p, q)` is `c[p * rs + q * cs]`, set to
/// `alpha * acc + beta * out(p, q)` (not read when `beta == 0`).
pub(crate) struct Dest<'c> {
    c: &'c mut [f32],
    rs: usize,
    cs: usize,
    alpha: f32,
    beta: f32,
}

impl Dest<'_> {
    #[inline(always)]
    fn put(&mut self, p: usize, q: usize, acc: f32) {
        let i = p * self.rs + q * self.cs;
        let v = self.alpha * acc;
        self.c[i] = if self.beta == 0.0 {
            v
        } else {
            v + self.beta * self.c[i]
        };
    }

    /// Writes lanes `lanes.0..lanes.1` of `acc` to `out(p, q + t)`.
    #[inline(always)]
    fn put8<S: Simd8>(&mut self, p: usize, q: usize, acc: S, lanes: (usize, usize)) {
        if self.cs == 1 && lanes == (0, LANES) {
            let i = p * self.rs + q;
            let dst: &mut [f32; LANES] = (&mut self.c[i..i + LANES]).try_into().unwrap();
            let v = acc.mul(S::splat(self.alpha));
            let r = if self.beta == 0.0 {
                v
            } else {
                S::load(dst).mul_add(S::splat(self.beta), v)
            };
            *dst = r.to_array();
        } else {
            let arr = acc.to_array();
            for (t, &v) in arr.iter().enumerate().take(lanes.1).skip(lanes.0) {
                self.put(p, q + t, v);
            }
        }
    }

    /// Writes an `R x (8 V)` tile at `(p0, q0)`; only lanes `lanes.0..lanes.1`
    /// of each vector.
    #[inline(always)]
    fn put_tile<S: Simd8, const R: usize, const V: usize>(
        &mut self,
        p0: usize,
        q0: usize,
        acc: &[[S; V]; R],
        lanes: (usize, usize),
    ) {
        if self.cs == 1 && lanes == (0, LANES) {
            let alpha = S::splat(self.alpha);
            let beta = S::splat(self.beta);
            for (r, acc_r) in acc.iter().enumerate() {
                let out = &mut self.c[(p0 + r) * self.rs + q0..][..V * LANES];
                for (dst, &a) in out.chunks_exact_mut(LANES).zip(acc_r) {
                    let v = a.mul(alpha);
                    let v = if self.beta == 0.0 {
                        v
                    } else {
                        S::load(dst).mul_add(beta, v)
                    };
                    dst.copy_from_slice(&v.to_array());
                }
            }
        } else {
            for (r, acc_r) in acc.iter().enumerate() {
                for (v, &a) in acc_r.iter().enumerate() {
                    self.put8(p0 + r, q0 + v * LANES, a, lanes);
                }
            }
        }
    }

    /// The same destination shifted by `q0` columns, with another `beta`.
    fn cols_from(&mut self, q0: usize, beta: f32) -> Dest<'_> {
        Dest {
            c: &mut self.c[q0 * self.cs..],
            rs: self.rs,
            cs: self.cs,
            alpha: self.alpha,
            beta,
        }
    }
}

/// `out = op(P) * Q` (`mp x k` times `k x nq`), SIMD along `nq`.
fn axpy<S: Simd8>(p: View, q: View, mp: usize, nq: usize, k: usize, mut dest: Dest) {
    if q.cs == 1 && nq >= LANES {
        axpy_run::<S>(p, q, mp, nq, k, false, &mut dest);
        return;
    }
    if k * nq.div_ceil(LANES) * LANES <= SMALL_STAGE {
        axpy_staged::<S, SMALL_STAGE>(p, q, mp, nq, k, dest);
    } else {
        axpy_staged::<S, STAGE>(p, q, mp, nq, k, dest);
    }
}

/// [`axpy`] through a stack buffer of `CAP` elements.
fn axpy_staged<S: Simd8, const CAP: usize>(
    p: View,
    q: View,
    mp: usize,
    nq: usize,
    k: usize,
    mut dest: Dest,
) {
    // Stage column chunks of Q, zero-padded to whole vectors, in k chunks.
    let mut stage = [0.0f32; CAP];
    let k_chunk = CAP / LANES;
    let mut l0 = 0;
    while l0 < k {
        let kc = k_chunk.min(k - l0);
        let beta = if l0 == 0 { dest.beta } else { 1.0 };
        let cols = (CAP / kc / LANES * LANES).min(nq.div_ceil(LANES) * LANES);
        let mut q0 = 0;
        while q0 < nq {
            let nc = cols.min(nq - q0);
            let width = nc.div_ceil(LANES) * LANES;
            for l in 0..kc {
                let row = &mut stage[l * width..(l + 1) * width];
                for (t, v) in row.iter_mut().enumerate() {
                    *v = if t < nc { q.at(l0 + l, q0 + t) } else { 0.0 };
                }
            }
            let staged = View {
                d: &stage[..kc * width],
                rs: width,
                cs: 1,
            };
            let mut sub = dest.cols_from(q0, beta);
            axpy_run::<S>(p.skip_cols(l0), staged, mp, nc, kc, true, &mut sub);
            q0 += nc;
        }
        l0 += kc;
    }
}

/// The register-tiled loops of [`axpy`]; `q.cs == 1`. A last partial vector
/// reads past `nq` when `padded` (the stage holds zeros there), and
/// otherwise overlaps the previous vector (`nq >= 8`), writing only its new
/// lanes.
fn axpy_run<S: Simd8>(
    p: View,
    q: View,
    mp: usize,
    nq: usize,
    k: usize,
    padded: bool,
    dest: &mut Dest,
) {
    if mp > AXPY_WIDE.0 && mp <= 2 * AXPY_TALL.0 {
        axpy_blocks::<S, { AXPY_TALL.0 }, { AXPY_TALL.1 }>(p, q, mp, nq, k, padded, dest);
    } else {
        axpy_blocks::<S, { AXPY_WIDE.0 }, { AXPY_WIDE.1 }>(p, q, mp, nq, k, padded, dest);
    }
}

/// [`axpy_run`] with `R x V` tiles.
fn axpy_blocks<S: Simd8, const R: usize, const V: usize>(
    p: View,
    q: View,
    mp: usize,
    nq: usize,
    k: usize,
    padded: bool,
    dest: &mut Dest,
) {
    let block = V * LANES;
    let mut q0 = 0;
    while q0 + block <= nq {
        axpy_rows::<S, R, V>(p, q, mp, k, q0, (0, LANES), dest);
        q0 += block;
    }
    match (nq - q0) / LANES {
        1 => axpy_rows::<S, R, 1>(p, q, mp, k, q0, (0, LANES), dest),
        2 => axpy_rows::<S, R, 2>(p, q, mp, k, q0, (0, LANES), dest),
        3 => axpy_rows::<S, R, 3>(p, q, mp, k, q0, (0, LANES), dest),
        _ => {}
    }
    let rem = nq % LANES;
    if rem != 0 {
        if padded {
            axpy_rows::<S, R, 1>(p, q, mp, k, nq - rem, (0, rem), dest);
        } else {
            axpy_rows::<S, R, 1>(p, q, mp, k, nq - LANES, (LANES - rem, LANES), dest);
        }
    }
}

/// All row tiles of [`axpy_run`] for `V` vectors starting at column `q0`.
#[allow(clippy::too_many_arguments)]
fn axpy_rows<S: Simd8, const R: usize, const V: usize>(
    p: View,
    q: View,
    mp: usize,
    k: usize,
    q0: usize,
    lanes: (usize, usize),
    dest: &mut Dest,
) {
    let mut p0 = 0;
    while p0 + R <= mp {
        S::axpy_tile::<R, V>(p, q, k, p0, q0, lanes, dest);
        p0 += R;
    }
    match mp - p0 {
        1 => S::axpy_tile::<1, V>(p, q, k, p0, q0, lanes, dest),
        2 => S::axpy_tile::<2, V>(p, q, k, p0, q0, lanes, dest),
        3 => S::axpy_tile::<3, V>(p, q, k, p0, q0, lanes, dest),
        4 => S::axpy_tile::<4, V>(p, q, k, p0, q0, lanes, dest),
        5 => S::axpy_tile::<5, V>(p, q, k, p0, q0, lanes, dest),
        _ => {}
    }
}

/// One step of [`axpy_tile_impl`]: `acc[r][v] += pv[r] * row[8 v ..]`.
///
/// A function rather than a closure (here and in [`dot_tile_impl`]): closures do
/// not inherit `#[target_feature]`, and the AVX2 instantiation must inline
/// every vector operation into its `#[target_feature]` caller.
#[inline(always)]
fn axpy_step<S: Simd8, const R: usize, const V: usize>(
    acc: &mut [[S; V]; R],
    pv: [f32; R],
    row: &[f32],
) {
    let qv: [S; V] = load_n(&row[..V * LANES], 0);
    for (acc_r, &a) in acc.iter_mut().zip(&pv) {
        let a = S::splat(a);
        for (s, &b) in acc_r.iter_mut().zip(&qv) {
            *s = a.mul_add(b, *s);
        }
    }
}

/// `N` consecutive vectors of `row`, starting at `at`.
#[inline(always)]
fn load_n<S: Simd8, const N: usize>(row: &[f32], at: usize) -> [S; N] {
    let mut out = [S::zero(); N];
    for (v, o) in out.iter_mut().enumerate() {
        *o = S::load(&row[at + v * LANES..]);
    }
    out
}

/// `N` vectors loaded from `rows[i][at..]`, each and-ed with `mask`.
#[inline(always)]
fn load_rows<S: Simd8, const N: usize>(rows: &[&[f32]; N], at: usize, mask: Option<S>) -> [S; N] {
    let mut out = [S::zero(); N];
    for (o, row) in out.iter_mut().zip(rows) {
        let v = S::load(&row[at..]);
        *o = match mask {
            Some(m) => v.and(m),
            None => v,
        };
    }
    out
}

/// `acc[r][c] += pv[r] * qv[c]` (lanewise) for [`dot_tile_impl`].
#[inline(always)]
fn dot_step<S: Simd8, const R: usize, const C: usize>(
    acc: &mut [[S; C]; R],
    pv: &[S; R],
    qv: &[S; C],
) {
    for (acc_r, &a) in acc.iter_mut().zip(pv) {
        for (s, &b) in acc_r.iter_mut().zip(qv) {
            *s = a.mul_add(b, *s);
        }
    }
}

/// The first (at most 8) elements of `s`, zero-padded to a vector.
#[inline(always)]
fn load_padded<S: Simd8>(s: &[f32]) -> S {
    let mut a = [0.0; LANES];
    let n = s.len().min(LANES);
    a[..n].copy_from_slice(&s[..n]);
    S::from_array(a)
}

/// One `R x (8 V)` register tile: `acc[r][v] += P(p0 + r, l) * Q(l, q0 + 8 v ..)`.
/// `P` has contiguous rows (`cs == 1`) or contiguous columns (`rs == 1`).
#[inline(always)]
pub(crate) fn axpy_tile_impl<S: Simd8, const R: usize, const V: usize>(
    p: View,
    q: View,
    k: usize,
    p0: usize,
    q0: usize,
    lanes: (usize, usize),
    dest: &mut Dest,
) {
    let mut acc = [[S::zero(); V]; R];
    // Row l of Q starts at l * q.rs + q0 (rows hold at least 8 V columns
    // past q0; with k == 1 the stride does not matter).
    let q_rows = q.d[q0..].chunks(q.rs.max(V * LANES)).take(k);
    if p.cs == 1 {
        let prow: [&[f32]; R] = std::array::from_fn(|r| &p.d[(p0 + r) * p.rs..][..k]);
        for (l, row) in q_rows.enumerate() {
            axpy_step(&mut acc, std::array::from_fn(|r| prow[r][l]), row);
        }
    } else {
        debug_assert_eq!(p.rs, 1);
        for (l, row) in q_rows.enumerate() {
            let col = &p.d[l * p.cs + p0..][..R];
            axpy_step(&mut acc, std::array::from_fn(|r| col[r]), row);
        }
    }
    dest.put_tile(p0, q0, &acc, lanes);
}

/// `out = P * Q` (`mp x k` times `k x nq`) as dot products along `k`;
/// `p.cs == 1`. `Q^T` is read in place when its rows are contiguous and
/// staged in column chunks otherwise.
fn dot<S: Simd8>(p: View, q: View, mp: usize, nq: usize, k: usize, mut dest: Dest) {
    let qt = q.t();
    if qt.cs == 1 {
        dot_run::<S>(p, qt, mp, nq, k, &mut dest);
        return;
    }
    if k * nq <= SMALL_STAGE {
        dot_staged::<S, SMALL_STAGE>(p, q, mp, nq, k, dest);
    } else {
        dot_staged::<S, STAGE>(p, q, mp, nq, k, dest);
    }
}

/// [`dot`] with `Q^T` staged through a stack buffer of `CAP` elements.
fn dot_staged<S: Simd8, const CAP: usize>(
    p: View,
    q: View,
    mp: usize,
    nq: usize,
    k: usize,
    mut dest: Dest,
) {
    let mut stage = [0.0f32; CAP];
    let mut l0 = 0;
    while l0 < k {
        let kc = CAP.min(k - l0);
        let beta = if l0 == 0 { dest.beta } else { 1.0 };
        let cols = CAP / kc;
        let mut q0 = 0;
        while q0 < nq {
            let nc = cols.min(nq - q0);
            for j in 0..nc {
                for (l, v) in stage[j * kc..(j + 1) * kc].iter_mut().enumerate() {
                    *v = q.at(l0 + l, q0 + j);
                }
            }
            let staged = View {
                d: &stage[..nc * kc],
                rs: kc,
                cs: 1,
            };
            let mut sub = dest.cols_from(q0, beta);
            dot_run::<S>(p.skip_cols(l0), staged, mp, nc, kc, &mut sub);
            q0 += nc;
        }
        l0 += kc;
    }
}

/// The register-tiled loops of [`dot`]; `p.cs == 1` and `qt.cs == 1`.
fn dot_run<S: Simd8>(p: View, qt: View, mp: usize, nq: usize, k: usize, dest: &mut Dest) {
    let tile = if S::FEW_REGISTERS { 3 } else { DOT_TILE };
    let mut p0 = 0;
    while p0 + tile <= mp {
        if S::FEW_REGISTERS {
            dot_cols::<S, 3>(p, qt, nq, k, p0, dest);
        } else {
            dot_cols::<S, DOT_TILE>(p, qt, nq, k, p0, dest);
        }
        p0 += tile;
    }
    match mp - p0 {
        1 => dot_cols::<S, 1>(p, qt, nq, k, p0, dest),
        2 => dot_cols::<S, 2>(p, qt, nq, k, p0, dest),
        3 => dot_cols::<S, 3>(p, qt, nq, k, p0, dest),
        _ => {}
    }
}

/// All column tiles of [`dot_run`] for `R` rows starting at `p0`.
fn dot_cols<S: Simd8, const R: usize>(
    p: View,
    qt: View,
    nq: usize,
    k: usize,
    p0: usize,
    dest: &mut Dest,
) {
    let mut q0 = 0;
    while q0 + DOT_TILE <= nq {
        S::dot_tile::<R, DOT_TILE>(p, qt, k, p0, q0, dest);
        q0 += DOT_TILE;
    }
    match nq - q0 {
        1 => S::dot_tile::<R, 1>(p, qt, k, p0, q0, dest),
        2 => S::dot_tile::<R, 2>(p, qt, k, p0, q0, dest),
        3 => S::dot_tile::<R, 3>(p, qt, k, p0, q0, dest),
        _ => {}
    }
}

/// One `R x C` tile of dot products `P(p0 + r, :) . Q^T(q0 + c, :)`.
#[inline(always)]
pub(crate) fn dot_tile_impl<S: Simd8, const R: usize, const C: usize>(
    p: View,
    qt: View,
    k: usize,
    p0: usize,
    q0: usize,
    dest: &mut Dest,
) {
    let prow: [&[f32]; R] = std::array::from_fn(|r| &p.skip_rows(p0 + r).d[..k]);
    let qrow: [&[f32]; C] = std::array::from_fn(|c| &qt.skip_rows(q0 + c).d[..k]);
    let mut acc = [[S::zero(); C]; R];
    let full = k / LANES * LANES;
    for l in (0..full).step_by(LANES) {
        let pv: [S; R] = load_rows(&prow, l, None);
        let qv: [S; C] = load_rows(&qrow, l, None);
        dot_step(&mut acc, &pv, &qv);
    }
    let rem = k - full;
    if rem != 0 {
        let (pv, qv): ([S; R], [S; C]) = if k >= LANES {
            // The last full vector, with the lanes already summed masked out
            // of both operands (bitwise, so 0 * inf cannot make a NaN).
            let mask = S::from_array(std::array::from_fn(|t| {
                f32::from_bits(if t >= LANES - rem { u32::MAX } else { 0 })
            }));
            (
                load_rows(&prow, k - LANES, Some(mask)),
                load_rows(&qrow, k - LANES, Some(mask)),
            )
        } else {
            let mut pv = [S::zero(); R];
            for (v, row) in pv.iter_mut().zip(&prow) {
                *v = load_padded(row);
            }
            let mut qv = [S::zero(); C];
            for (v, row) in qv.iter_mut().zip(&qrow) {
                *v = load_padded(row);
            }
            (pv, qv)
        };
        dot_step(&mut acc, &pv, &qv);
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (c, &s) in acc_r.iter().enumerate() {
            dest.put(p0 + r, q0 + c, s.reduce_add());
        }
    }
}

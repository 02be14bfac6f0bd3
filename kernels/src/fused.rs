//! Fused kernels for the narrow side of a layer, where a GEMM followed by an
//! elementwise pass would touch a `rows x width` buffer twice for very little
//! arithmetic:
//!
//! - [`narrow_bias_relu_forward`]: `A = relu(X W + b)` for a layer with few
//!   inputs (e.g. the 2-feature input of the spiral), one pass writing `A`.
//! - [`narrow_relu_backward`]: `dZ = (dS W^T) * s` where `A > 0`, and
//!   `db += colsum(dZ)`, for a layer with few outputs (e.g. 3 or 10 classes),
//!   one pass that overwrites `A` with `dZ`, without a `dA` buffer.
//!
//! Both are SIMD along the wide side and have scalar twins. The SIMD versions
//! use fused multiply-adds where the build has them, so they agree with the
//! twins up to rounding; NaN follows the rules of [`crate::activation`].
//!
//! The column strips (the fast path) are one engine written over
//! [`crate::simd::Lane`] and run by [`crate::simd::dispatch`]: with the
//! `wide` vectors of the build, or, in a build without FMA enabled at compile
//! time, with AVX2 + FMA when the CPU has them (checked at run time).

use crate::simd::{self, Kernel, Lane, Wide};

/// Lanes per vector of the paths outside the strips.
const LANES: usize = 8;

/// The widest narrow side these kernels are meant for: the inner loop keeps
/// one vector per narrow index.
pub const NARROW_MAX: usize = 16;

#[track_caller]
fn check_len(what: &str, got: usize, expected: usize, op: &str) {
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
    if n_out == 0 {
        return;
    }
    if n_out >= LANES && (1..=NARROW_MAX).contains(&n_in) {
        macro_rules! strips {
            ($($n:literal)*) => {
                match n_in {
                    $($n => simd::dispatch(ForwardStrips::<$n> { x, w, bias, n_out, a }),)*
                    _ => unreachable!(),
                }
            };
        }
        strips!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        return;
    }
    for r in 0..rows {
        let xr = &x[r * n_in..(r + 1) * n_in];
        let ar = &mut a[r * n_out..(r + 1) * n_out];
        // The row stays in L1: bias, then one axpy per input, then ReLU.
        ar.copy_from_slice(bias);
        for (&xv, wrow) in xr.iter().zip(w.chunks_exact(n_out)) {
            axpy_row(ar, xv, wrow);
        }
        let mut ac = ar.chunks_exact_mut(LANES);
        for c in &mut ac {
            Wide::load(c).relu().store(c);
        }
        for v in ac.into_remainder() {
            *v = crate::activation::relu_scalar_value(*v);
        }
    }
}

/// The arguments of [`forward_strips`], as a [`Kernel`].
struct ForwardStrips<'a, const N: usize> {
    x: &'a [f32],
    w: &'a [f32],
    bias: &'a [f32],
    n_out: usize,
    a: &'a mut [f32],
}

impl<const N: usize> Kernel for ForwardStrips<'_, N> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        forward_strips::<S, N>(self.x, self.w, self.bias, self.n_out, self.a);
    }
}

/// Column strips of [`narrow_bias_relu_forward`] for `N` inputs and
/// `n_out >= S::LANES`: the `N` weight vectors and the bias of a strip stay
/// in registers while the rows stream past. A last partial vector overlaps
/// the one before it (recomputing the same values).
#[inline(always)]
fn forward_strips<S: Lane, const N: usize>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n_out: usize,
    a: &mut [f32],
) {
    let lanes = S::LANES;
    let mut j = 0;
    while j + 2 * lanes <= n_out {
        forward_strip::<S, N, 2>(x, w, bias, n_out, j, a);
        j += 2 * lanes;
    }
    if j + lanes <= n_out {
        forward_strip::<S, N, 1>(x, w, bias, n_out, j, a);
        j += lanes;
    }
    if j < n_out {
        forward_strip::<S, N, 1>(x, w, bias, n_out, n_out - lanes, a);
    }
}

/// One strip of `V` vectors at column `j` of [`forward_strips`].
#[inline(always)]
fn forward_strip<S: Lane, const N: usize, const V: usize>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n_out: usize,
    j: usize,
    a: &mut [f32],
) {
    let lanes = S::LANES;
    let wv: [[S; V]; N] =
        std::array::from_fn(|l| std::array::from_fn(|v| S::load(&w[l * n_out + j + v * lanes..])));
    let bv: [S; V] = std::array::from_fn(|v| S::load(&bias[j + v * lanes..]));
    for (xr, ar) in x.chunks_exact(N).zip(a.chunks_exact_mut(n_out)) {
        let out = &mut ar[j..j + V * lanes];
        let mut acc = bv;
        for (l, &xv) in xr.iter().enumerate() {
            let xs = S::splat(xv);
            for (s, &wl) in acc.iter_mut().zip(&wv[l]) {
                *s = xs.mul_add(wl, *s);
            }
        }
        for (o, v) in out.chunks_exact_mut(lanes).zip(acc) {
            v.relu().store(o);
        }
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
    for r in 0..rows {
        for j in 0..n_out {
            let mut acc = bias[j];
            for l in 0..n_in {
                acc += x[r * n_in + l] * w[l * n_out + j];
            }
            a[r * n_out + j] = crate::activation::relu_scalar_value(acc);
        }
    }
}

#[track_caller]
fn check_forward(
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
    backward(a_then_dz, ds, w_t, rows, width, k, scale, db, None);
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
    backward(a_then_dz, ds, w_t, rows, width, k, scale, db, Some(dw));
}

/// The body of [`narrow_relu_backward`] and [`narrow_relu_backward_dw`]
/// (shapes checked).
#[allow(clippy::too_many_arguments)]
fn backward(
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
                        a_then_dz, ds, w_t, width, scale, db, dw: &mut [],
                    }),
                    ($n, Some(dw)) => simd::dispatch(BackwardStrips::<$n, true> {
                        a_then_dz, ds, w_t, width, scale, db, dw,
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
                let dz = Wide::load(d).mul(s).where_active(Wide::load(z));
                dz.store(z);
                Wide::load(b).add(dz).store(b);
            }
            let rest = zc.into_remainder().iter_mut().zip(dc.remainder());
            for ((v, &d), acc) in rest.zip(bc.into_remainder().iter_mut()) {
                *v = if *v > 0.0 { d * scale } else { 0.0 };
                *acc += *v;
            }
        }
    }
}

/// The arguments of [`backward_strips`], as a [`Kernel`].
struct BackwardStrips<'a, const K: usize, const DW: bool> {
    a_then_dz: &'a mut [f32],
    ds: &'a [f32],
    w_t: &'a [f32],
    width: usize,
    scale: f32,
    db: &'a mut [f32],
    dw: &'a mut [f32],
}

impl<const K: usize, const DW: bool> Kernel for BackwardStrips<'_, K, DW> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        let (ds, w_t, width, scale) = (self.ds, self.w_t, self.width, self.scale);
        backward_strips::<S, K, DW>(self.a_then_dz, ds, w_t, width, scale, self.db, self.dw);
    }
}

/// Column strips of [`narrow_relu_backward`] for `K` outputs and
/// `width >= S::LANES`: the `K` vectors of `W^T` and the running `db` of a
/// strip stay in registers while the rows stream past. A last partial vector
/// is done first, over the last `S::LANES` columns, and stores only its new
/// lanes (its other lanes add `+0.0` to `db`), since the later strips still
/// read `A`.
///
/// Strips are two vectors wide, one with `DW`: the dW sums take `K` more
/// registers per vector, and two vectors spill with 16 registers (AVX2);
/// with AVX-512's 32 registers the two tilings measured the same.
#[inline(always)]
fn backward_strips<S: Lane, const K: usize, const DW: bool>(
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    width: usize,
    scale: f32,
    db: &mut [f32],
    dw: &mut [f32],
) {
    let lanes = S::LANES;
    let rem = width % lanes;
    if rem != 0 {
        let keep = lanes - rem;
        let new_lanes = Some((S::lanes_from(keep), keep));
        let j = width - lanes;
        backward_strip::<S, K, 1, DW>(a_then_dz, ds, w_t, width, j, scale, db, dw, new_lanes);
    }
    let full = width - rem;
    let two = !DW;
    let mut j = 0;
    while two && j + 2 * lanes <= full {
        backward_strip::<S, K, 2, DW>(a_then_dz, ds, w_t, width, j, scale, db, dw, None);
        j += 2 * lanes;
    }
    while j < full {
        backward_strip::<S, K, 1, DW>(a_then_dz, ds, w_t, width, j, scale, db, dw, None);
        j += lanes;
    }
}

/// One strip of `V` vectors at column `j` of [`backward_strips`]; with
/// `new_lanes = Some((mask, first))` only the lanes in `mask` (from `first`
/// on) are stored.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_strip<S: Lane, const K: usize, const V: usize, const DW: bool>(
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    width: usize,
    j: usize,
    scale: f32,
    db: &mut [f32],
    dw: &mut [f32],
    new_lanes: Option<(S, usize)>,
) {
    let lanes = S::LANES;
    let s = S::splat(scale);
    let wv: [[S; V]; K] = std::array::from_fn(|c| {
        std::array::from_fn(|v| S::load(&w_t[c * width + j + v * lanes..]))
    });
    let dbs = &mut db[j..j + V * lanes];
    let mut dbv: [S; V] = std::array::from_fn(|v| S::load(&dbs[v * lanes..]));
    // dW^T[c, j..] of this strip, from zero (only with DW).
    let mut dwv = [[S::zero(); V]; K];
    for (dsr, ar) in ds.chunks_exact(K).zip(a_then_dz.chunks_exact_mut(width)) {
        let out = &mut ar[j..j + V * lanes];
        let mut acc = [S::zero(); V];
        let dv: [S; K] = std::array::from_fn(|c| S::splat(dsr[c]));
        for (c, &dv) in dv.iter().enumerate() {
            for (x, &wc) in acc.iter_mut().zip(&wv[c]) {
                *x = dv.mul_add(wc, *x);
            }
        }
        if DW {
            for (c, &dv) in dv.iter().enumerate() {
                for (v, o) in out.chunks_exact(lanes).enumerate() {
                    dwv[c][v] = S::load(o).mul_add(dv, dwv[c][v]);
                }
            }
        }
        for ((o, x), b) in out.chunks_exact_mut(lanes).zip(acc).zip(dbv.iter_mut()) {
            let av = S::load(o);
            // A = relu(Z + b) * s  =>  dZ = dA * s where A > 0 (NaN: inactive)
            let dz = x.mul(s).where_active(av);
            match new_lanes {
                None => {
                    dz.store(o);
                    *b = b.add(dz);
                }
                Some((m, _)) => {
                    m.select(dz, av).store(o);
                    *b = b.add(dz.and(m));
                }
            }
        }
    }
    for (d, v) in dbs.chunks_exact_mut(lanes).zip(dbv) {
        v.store(d);
    }
    if DW {
        let first = new_lanes.map_or(0, |(_, first)| first);
        add_strip_dw::<S, K, V>(dw, &dwv, j, first);
    }
}

/// Adds a strip's `dW^T` sums (`sums[c][v]` lane `t` for column
/// `j + LANES v + t`) to `dw` (`width x K`), skipping the first `first`
/// columns (those of a last partial vector that the other strips own).
#[inline(always)]
fn add_strip_dw<S: Lane, const K: usize, const V: usize>(
    dw: &mut [f32],
    sums: &[[S; V]; K],
    j: usize,
    first: usize,
) {
    let lanes = S::LANES;
    for (c, sc) in sums.iter().enumerate() {
        for (v, sv) in sc.iter().enumerate() {
            for (t, &x) in sv.to_array()[..lanes].iter().enumerate() {
                if v * lanes + t >= first {
                    dw[(j + v * lanes + t) * K + c] += x;
                }
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
    backward_scalar(a_then_dz, ds, w_t, rows, width, k, scale, db, None);
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
    backward_scalar(a_then_dz, ds, w_t, rows, width, k, scale, db, Some(dw));
}

#[allow(clippy::too_many_arguments)]
fn backward_scalar(
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
            *v = if *v > 0.0 { acc * scale } else { 0.0 };
            db[j] += *v;
        }
    }
}

#[track_caller]
fn check_backward(
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

#[cfg(test)]
mod engine_tests {
    //! The strip engine, every instantiation (each `N`, `K` in
    //! `1..=NARROW_MAX`, with and without dW, on every vector type this CPU
    //! runs), against the scalar twins, over widths around the vector edges.
    //! Narrower widths (0, 1, 7) never reach the strips; `tests/fused.rs`
    //! covers them through the public entries.

    use super::*;
    use crate::simd::testing::{data, isas, TestIsa};

    const ROWS: [usize; 4] = [0, 1, 3, 17];
    const WIDTHS: [usize; 12] = [8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 100, 515];

    fn close(a: f32, b: f32, terms: usize) -> bool {
        if a.is_nan() || b.is_nan() {
            return a.is_nan() && b.is_nan();
        }
        (a - b).abs() <= (terms as f32 + 1.0) * 1e-6 * (1.0 + b.abs())
    }

    fn forward_case<const N: usize>(isa: TestIsa, rows: usize, n_out: usize) {
        let x = data(rows * N, 1);
        let w = data(N * n_out, 2);
        let mut b = data(n_out, 3);
        b[n_out - 1] = f32::NAN;
        let mut got = vec![f32::NAN; rows * n_out];
        let mut want = vec![0.0; rows * n_out];
        let a = &mut got[..];
        isa.run(ForwardStrips::<N> {
            x: &x,
            w: &w,
            bias: &b,
            n_out,
            a,
        });
        narrow_bias_relu_forward_scalar(&x, &w, &b, rows, N, n_out, &mut want);
        for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
            assert!(
                close(g, e, N),
                "{isa:?} {rows}x{N}x{n_out} at {i}: {g} vs {e}"
            );
            assert_ne!(g.to_bits(), (-0.0f32).to_bits());
        }
    }

    /// `(A with NaNs, dS, W^T, db, dW)` for a backward case.
    fn backward_data(rows: usize, width: usize, k: usize) -> [Vec<f32>; 5] {
        let a = data(rows * width, 4)
            .into_iter()
            .enumerate()
            .map(|(i, v)| if i % 11 == 5 { f32::NAN } else { v })
            .collect();
        let dw = data(width * k, 8);
        [a, data(rows * k, 5), data(k * width, 6), data(width, 7), dw]
    }

    fn backward_case<const K: usize, const DW: bool>(isa: TestIsa, rows: usize, width: usize) {
        let [a, ds, w_t, db0, dw0] = backward_data(rows, width, K);
        let (mut got, mut want) = (a.clone(), a.clone());
        let (mut db_got, mut db_want) = (db0.clone(), db0);
        let (mut dw_got, mut dw_want) = (dw0.clone(), dw0);
        let dw = if DW { &mut dw_got[..] } else { &mut [][..] };
        let (a_then_dz, db) = (&mut got[..], &mut db_got[..]);
        isa.run(BackwardStrips::<K, DW> {
            a_then_dz,
            ds: &ds,
            w_t: &w_t,
            width,
            scale: 1.5,
            db,
            dw,
        });
        let dw_want_opt = if DW { Some(&mut dw_want[..]) } else { None };
        backward_scalar(
            &mut want,
            &ds,
            &w_t,
            rows,
            width,
            K,
            1.5,
            &mut db_want,
            dw_want_opt,
        );
        let what = format!("{isa:?} {rows}x{width}x{K} dw={DW}");
        for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
            assert!(close(g, e, K), "{what} dZ at {i}: {g} vs {e}");
            if a[i].is_nan() || a[i] <= 0.0 {
                assert_eq!(g.to_bits(), 0.0f32.to_bits(), "{what}: inactive at {i}");
            }
        }
        for (j, (&g, &e)) in db_got.iter().zip(&db_want).enumerate() {
            assert!(close(g, e, K * rows), "{what} db[{j}]: {g} vs {e}");
        }
        for (i, (&g, &e)) in dw_got.iter().zip(&dw_want).enumerate() {
            assert!(close(g, e, rows), "{what} dW[{i}]: {g} vs {e}");
        }
    }

    macro_rules! every_narrow_width {
        ($f:ident $(, $dw:literal)?; $isa:expr, $rows:expr, $width:expr) => {
            $f::<1 $(, $dw)?>($isa, $rows, $width);
            $f::<2 $(, $dw)?>($isa, $rows, $width);
            $f::<3 $(, $dw)?>($isa, $rows, $width);
            $f::<4 $(, $dw)?>($isa, $rows, $width);
            $f::<5 $(, $dw)?>($isa, $rows, $width);
            $f::<6 $(, $dw)?>($isa, $rows, $width);
            $f::<7 $(, $dw)?>($isa, $rows, $width);
            $f::<8 $(, $dw)?>($isa, $rows, $width);
            $f::<9 $(, $dw)?>($isa, $rows, $width);
            $f::<10 $(, $dw)?>($isa, $rows, $width);
            $f::<11 $(, $dw)?>($isa, $rows, $width);
            $f::<12 $(, $dw)?>($isa, $rows, $width);
            $f::<13 $(, $dw)?>($isa, $rows, $width);
            $f::<14 $(, $dw)?>($isa, $rows, $width);
            $f::<15 $(, $dw)?>($isa, $rows, $width);
            $f::<16 $(, $dw)?>($isa, $rows, $width);
        };
    }

    #[test]
    fn forward_strips_match_twin_for_every_n_in() {
        for isa in isas("fused forward strips") {
            for rows in ROWS {
                for n_out in WIDTHS {
                    every_narrow_width!(forward_case; isa, rows, n_out);
                }
            }
        }
    }

    #[test]
    fn backward_strips_match_twin_for_every_k() {
        for isa in isas("fused backward strips") {
            for rows in ROWS {
                for width in WIDTHS {
                    every_narrow_width!(backward_case, false; isa, rows, width);
                    every_narrow_width!(backward_case, true; isa, rows, width);
                }
            }
        }
    }
}

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
//! On x86-64, a build without FMA enabled at compile time (no
//! `-C target-cpu` flag) runs the column strips through the AVX2 + FMA
//! versions of `x86.rs` when the CPU has them (checked at run time).

use wide::f32x8;

/// Lanes per SIMD vector.
const LANES: usize = 8;

/// The widest narrow side these kernels are meant for: the inner loop keeps
/// one vector per narrow index.
pub const NARROW_MAX: usize = 16;

#[inline(always)]
fn load(s: &[f32]) -> f32x8 {
    f32x8::new(s[..LANES].try_into().expect("a full lane chunk"))
}

#[inline(always)]
fn store(d: &mut [f32], v: f32x8) {
    d[..LANES].copy_from_slice(v.as_array());
}

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
                #[cfg(target_arch = "x86_64")]
                if !cfg!(target_feature = "fma") && crate::x86::available() {
                    match n_in {
                        // SAFETY: available() found AVX2 and FMA on this CPU.
                        $($n => unsafe { crate::x86::forward_strips::<$n>(x, w, bias, n_out, a) },)*
                        _ => unreachable!(),
                    }
                    return;
                }
                match n_in {
                    $($n => forward_strips::<$n>(x, w, bias, n_out, a),)*
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
            let v = load(c);
            // relu with NaN propagating, as relu_scalar_value
            store(
                c,
                (v.simd_gt(f32x8::ZERO) | v.is_nan()).select(v, f32x8::ZERO),
            );
        }
        for v in ac.into_remainder() {
            *v = crate::activation::relu_scalar_value(*v);
        }
    }
}

/// Column strips of [`narrow_bias_relu_forward`] for `N` inputs and
/// `n_out >= 8`: the `N` weight vectors and the bias of a strip stay in
/// registers while the rows stream past. A last partial vector overlaps the
/// one before it (recomputing the same values).
fn forward_strips<const N: usize>(x: &[f32], w: &[f32], bias: &[f32], n_out: usize, a: &mut [f32]) {
    let mut j = 0;
    while j + 2 * LANES <= n_out {
        forward_strip::<N, 2>(x, w, bias, n_out, j, a);
        j += 2 * LANES;
    }
    if j + LANES <= n_out {
        forward_strip::<N, 1>(x, w, bias, n_out, j, a);
        j += LANES;
    }
    if j < n_out {
        forward_strip::<N, 1>(x, w, bias, n_out, n_out - LANES, a);
    }
}

#[inline(always)]
fn forward_strip<const N: usize, const V: usize>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n_out: usize,
    j: usize,
    a: &mut [f32],
) {
    let wv: [[f32x8; V]; N] =
        std::array::from_fn(|l| std::array::from_fn(|v| load(&w[l * n_out + j + v * LANES..])));
    let bv: [f32x8; V] = std::array::from_fn(|v| load(&bias[j + v * LANES..]));
    for (xr, ar) in x.chunks_exact(N).zip(a.chunks_exact_mut(n_out)) {
        let out = &mut ar[j..j + V * LANES];
        let mut acc = bv;
        for (l, &xv) in xr.iter().enumerate() {
            let xs = f32x8::splat(xv);
            for (s, &wl) in acc.iter_mut().zip(&wv[l]) {
                *s = xs.mul_add(wl, *s);
            }
        }
        for (o, v) in out.chunks_exact_mut(LANES).zip(acc) {
            // relu with NaN propagating, as relu_scalar_value
            store(
                o,
                (v.simd_gt(f32x8::ZERO) | v.is_nan()).select(v, f32x8::ZERO),
            );
        }
    }
}

/// `acc += s * w`, elementwise (fused multiply-add in the full vectors).
#[inline(always)]
fn axpy_row(acc: &mut [f32], s: f32, w: &[f32]) {
    let sv = f32x8::splat(s);
    let mut ac = acc.chunks_exact_mut(LANES);
    let mut wc = w.chunks_exact(LANES);
    for (a, b) in (&mut ac).zip(&mut wc) {
        let v = sv.mul_add(load(b), load(a));
        store(a, v);
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
/// - `wt`: `k x width`, **the transpose of `W`** (row `c` is column `c` of
///   `W`), so that the loads along `width` are contiguous.
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
/// let wt = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]; // W^T, 2 x 3
/// let mut db = [0.0; 3];
/// narrow_relu_backward(&mut a, &[1.0, 0.5], &wt, 1, 3, 2, 1.0, &mut db);
/// assert_eq!(a, [2.0, 0.0, 2.0]);
/// assert_eq!(db, [2.0, 0.0, 2.0]);
/// ```
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn narrow_relu_backward(
    a_then_dz: &mut [f32],
    ds: &[f32],
    wt: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    scale: f32,
    db: &mut [f32],
) {
    check_backward(a_then_dz, ds, wt, rows, width, k, db);
    backward(a_then_dz, ds, wt, rows, width, k, scale, db, None);
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
/// let wt = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]; // W^T, 2 x 3
/// let (mut db, mut dw) = ([0.0; 3], [0.0; 6]);
/// narrow_relu_backward_dw(&mut a, &[1.0, 0.5], &wt, 1, 3, 2, 1.0, &mut db, &mut dw);
/// assert_eq!(a, [2.0, 0.0, 2.0]);
/// assert_eq!(dw, [1.0, 0.5, 0.0, 0.0, 2.0, 1.0]);
/// ```
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn narrow_relu_backward_dw(
    a_then_dz: &mut [f32],
    ds: &[f32],
    wt: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    scale: f32,
    db: &mut [f32],
    dw: &mut [f32],
) {
    check_backward(a_then_dz, ds, wt, rows, width, k, db);
    check_len("dW", dw.len(), width * k, "narrow_relu_backward_dw");
    backward(a_then_dz, ds, wt, rows, width, k, scale, db, Some(dw));
}

/// The body of [`narrow_relu_backward`] and [`narrow_relu_backward_dw`]
/// (shapes checked).
#[allow(clippy::too_many_arguments)]
fn backward(
    a_then_dz: &mut [f32],
    ds: &[f32],
    wt: &[f32],
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
                #[cfg(target_arch = "x86_64")]
                if !cfg!(target_feature = "fma") && crate::x86::available() {
                    match (k, dw) {
                        // SAFETY: available() found AVX2 and FMA on this CPU.
                        $(($n, None) => unsafe {
                            crate::x86::backward_strips::<$n, false>(
                                a_then_dz, ds, wt, width, scale, db, &mut [],
                            )
                        },
                        ($n, Some(dw)) => unsafe {
                            crate::x86::backward_strips::<$n, true>(
                                a_then_dz, ds, wt, width, scale, db, dw,
                            )
                        },)*
                        _ => unreachable!(),
                    }
                    return;
                }
                match (k, dw) {
                    $(($n, None) => {
                        backward_strips::<$n, false>(a_then_dz, ds, wt, width, scale, db, &mut [])
                    }
                    ($n, Some(dw)) => {
                        backward_strips::<$n, true>(a_then_dz, ds, wt, width, scale, db, dw)
                    })*
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
    let zero = f32x8::ZERO;
    let s = f32x8::splat(scale);
    let mut stage = [0.0f32; STAGE];
    for r in 0..rows {
        let dsr = &ds[r * k..(r + 1) * k];
        let ar = &mut a_then_dz[r * width..(r + 1) * width];
        for j0 in (0..width).step_by(STAGE) {
            let cw = STAGE.min(width - j0);
            // dA for this column chunk, in L1.
            let da = &mut stage[..cw];
            da.fill(0.0);
            for (&d, wtrow) in dsr.iter().zip(wt.chunks_exact(width)) {
                axpy_row(da, d, &wtrow[j0..j0 + cw]);
            }
            let (zs, dbs) = (&mut ar[j0..j0 + cw], &mut db[j0..j0 + cw]);
            let mut zc = zs.chunks_exact_mut(LANES);
            let mut dc = da.chunks_exact(LANES);
            let mut bc = dbs.chunks_exact_mut(LANES);
            for ((z, d), b) in (&mut zc).zip(&mut dc).zip(&mut bc) {
                let dz = load(z).simd_gt(zero).select(load(d) * s, zero);
                store(z, dz);
                let sum = load(b) + dz;
                store(b, sum);
            }
            let rest = zc.into_remainder().iter_mut().zip(dc.remainder());
            for ((v, &d), acc) in rest.zip(bc.into_remainder().iter_mut()) {
                *v = if *v > 0.0 { d * scale } else { 0.0 };
                *acc += *v;
            }
        }
    }
}

/// Column strips of [`narrow_relu_backward`] for `K` outputs and
/// `width >= 8`: the `K` vectors of `W^T` and the running `db` of a strip
/// stay in registers while the rows stream past. A last partial vector is
/// done first, over the last 8 columns, and stores only its new lanes (its
/// other lanes add `+0.0` to `db`), since the later strips still read `A`.
fn backward_strips<const K: usize, const DW: bool>(
    a_then_dz: &mut [f32],
    ds: &[f32],
    wt: &[f32],
    width: usize,
    scale: f32,
    db: &mut [f32],
    dw: &mut [f32],
) {
    let rem = width % LANES;
    if rem != 0 {
        let keep = LANES - rem;
        let new_lanes = f32x8::new(std::array::from_fn(|t| {
            f32::from_bits(if t >= keep { u32::MAX } else { 0 })
        }));
        backward_strip::<K, 1, DW>(
            a_then_dz,
            ds,
            wt,
            width,
            width - LANES,
            scale,
            db,
            dw,
            Some(new_lanes),
        );
    }
    let full = width - rem;
    let mut j = 0;
    while j + 2 * LANES <= full {
        backward_strip::<K, 2, DW>(a_then_dz, ds, wt, width, j, scale, db, dw, None);
        j += 2 * LANES;
    }
    if j < full {
        backward_strip::<K, 1, DW>(a_then_dz, ds, wt, width, j, scale, db, dw, None);
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_strip<const K: usize, const V: usize, const DW: bool>(
    a_then_dz: &mut [f32],
    ds: &[f32],
    wt: &[f32],
    width: usize,
    j: usize,
    scale: f32,
    db: &mut [f32],
    dw: &mut [f32],
    lanes: Option<f32x8>,
) {
    let zero = f32x8::ZERO;
    let s = f32x8::splat(scale);
    let wv: [[f32x8; V]; K] =
        std::array::from_fn(|c| std::array::from_fn(|v| load(&wt[c * width + j + v * LANES..])));
    let dbs = &mut db[j..j + V * LANES];
    let mut dbv: [f32x8; V] = std::array::from_fn(|v| load(&dbs[v * LANES..]));
    // dW^T[c, j..] of this strip, from zero (only with DW).
    let mut dwv = [[zero; V]; K];
    for (dsr, ar) in ds.chunks_exact(K).zip(a_then_dz.chunks_exact_mut(width)) {
        let out = &mut ar[j..j + V * LANES];
        let mut acc = [zero; V];
        let dv: [f32x8; K] = std::array::from_fn(|c| f32x8::splat(dsr[c]));
        for (c, &dv) in dv.iter().enumerate() {
            for (x, &wc) in acc.iter_mut().zip(&wv[c]) {
                *x = dv.mul_add(wc, *x);
            }
        }
        if DW {
            for (c, &dv) in dv.iter().enumerate() {
                for (v, o) in out.chunks_exact(LANES).enumerate() {
                    dwv[c][v] = load(o).mul_add(dv, dwv[c][v]);
                }
            }
        }
        for ((o, x), b) in out.chunks_exact_mut(LANES).zip(acc).zip(dbv.iter_mut()) {
            let av = load(o);
            let dz = av.simd_gt(zero).select(x * s, zero);
            match lanes {
                None => {
                    store(o, dz);
                    *b += dz;
                }
                Some(m) => {
                    store(o, m.select(dz, av));
                    *b += m.select(dz, zero);
                }
            }
        }
    }
    for (d, v) in dbs.chunks_exact_mut(LANES).zip(dbv) {
        store(d, v);
    }
    if DW {
        let first = match lanes {
            Some(m) => m.to_bitmask().trailing_zeros() as usize,
            None => 0,
        };
        add_strip_dw::<K, V>(dw, &dwv.map(|c| c.map(|v| v.to_array())), j, first);
    }
}

/// Adds a strip's `dW^T` sums (`sums[c][v][t]` for column `j + 8 v + t`) to
/// `dw` (`width x K`), skipping the first `first` columns (those of a last
/// partial vector that the other strips own).
#[inline(always)]
pub(crate) fn add_strip_dw<const K: usize, const V: usize>(
    dw: &mut [f32],
    sums: &[[[f32; LANES]; V]; K],
    j: usize,
    first: usize,
) {
    for (c, sc) in sums.iter().enumerate() {
        for (v, sv) in sc.iter().enumerate() {
            for (t, &x) in sv.iter().enumerate() {
                if v * LANES + t >= first {
                    dw[(j + v * LANES + t) * K + c] += x;
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
    wt: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    scale: f32,
    db: &mut [f32],
) {
    check_backward(a_then_dz, ds, wt, rows, width, k, db);
    backward_scalar(a_then_dz, ds, wt, rows, width, k, scale, db, None);
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
    wt: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    scale: f32,
    db: &mut [f32],
    dw: &mut [f32],
) {
    check_backward(a_then_dz, ds, wt, rows, width, k, db);
    check_len("dW", dw.len(), width * k, "narrow_relu_backward_dw");
    backward_scalar(a_then_dz, ds, wt, rows, width, k, scale, db, Some(dw));
}

#[allow(clippy::too_many_arguments)]
fn backward_scalar(
    a_then_dz: &mut [f32],
    ds: &[f32],
    wt: &[f32],
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
                acc += ds[r * k + c] * wt[c * width + j];
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
    wt: &[f32],
    rows: usize,
    width: usize,
    k: usize,
    db: &[f32],
) {
    let op = "narrow_relu_backward";
    check_len("A", a.len(), rows * width, op);
    check_len("dS", ds.len(), rows * k, op);
    check_len("W^T", wt.len(), k * width, op);
    check_len("db", db.len(), width, op);
}

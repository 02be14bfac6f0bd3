//! AVX2 + FMA versions of the hottest loops, for builds without
//! `-C target-cpu` flags.
//!
//! `wide` picks its instructions at compile time, so a default build (what a
//! library user gets) runs its kernels on SSE2 without fused multiply-adds.
//! When the build does not already enable FMA, the fused kernels of
//! [`crate::fused`] and the small-shape GEMM of [`crate::gemm::gemm_small`]
//! check once per call with `is_x86_feature_detected!` and run these versions
//! instead. They compute the same sums in the same order as the `wide` code
//! of a `target-cpu=native` build (one fused multiply-add per term), and are
//! tested against the scalar twins below.

#![cfg(target_arch = "x86_64")]

use crate::gemm::{axpy_tile_impl, dot_tile_impl, Dest, SmallKernel, Transpose, View};
use std::arch::x86_64::{
    __m128, __m256, _mm256_add_ps, _mm256_and_ps, _mm256_blendv_ps, _mm256_broadcast_ss,
    _mm256_castps256_ps128, _mm256_cmp_ps, _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps,
    _mm256_mul_ps, _mm256_or_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps, _mm_add_ps,
    _mm_add_ss, _mm_cvtss_f32, _mm_movehl_ps, _mm_shuffle_ps, _CMP_GT_OQ, _CMP_UNORD_Q,
};

const LANES: usize = 8;

/// Whether this CPU runs the functions of this module.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Loads the first 8 lanes of `s`.
#[inline(always)]
fn load(s: &[f32]) -> __m256 {
    let s = &s[..LANES];
    // SAFETY: `s` holds at least 8 `f32` (the slice above is bounds-checked),
    // and `loadu` has no alignment requirement. AVX is enabled in every
    // caller (they are `#[target_feature(enable = "avx2,fma")]` functions
    // reached only after `available()`), and this function is inlined into
    // them.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

/// Stores `v` to the first 8 lanes of `d`.
#[inline(always)]
fn store(d: &mut [f32], v: __m256) {
    let d = &mut d[..LANES];
    // SAFETY: `d` holds at least 8 `f32` (bounds-checked above) and is a
    // unique borrow; `storeu` has no alignment requirement. AVX is enabled as
    // for `load`.
    unsafe { _mm256_storeu_ps(d.as_mut_ptr(), v) }
}

/// [`crate::gemm::gemm_small`] on AVX2 + FMA: the same loops, tiles,
/// staging and summation order as the `wide` code, with [`Avx`] vectors
/// (each register tile is compiled for AVX2 + FMA, see [`Avx`]).
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`available`] returned `true`). The
/// caller has checked the shapes (`a`, `b`, `c` hold `m*k`, `k*n`, `m*n`
/// elements); every memory access is through bounds-checked slices.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_feature = "fma", allow(dead_code))]
pub(crate) unsafe fn gemm_small(
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
    crate::gemm::small_run::<Avx>(kernel, ta, tb, m, n, k, alpha, a, b, beta, c);
}

/// Eight `f32` lanes in an AVX register, for the generic small-shape GEMM.
///
/// The loops of [`crate::gemm`] call the register tiles through
/// [`crate::gemm::Simd8::axpy_tile`] / [`crate::gemm::Simd8::dot_tile`],
/// which this type routes to `#[target_feature(enable = "avx2,fma")]`
/// functions; the vector methods below are `#[inline(always)]` and inlined
/// into those. An `Avx` path is only entered through [`gemm_small`], whose
/// contract is that [`available`] returned `true`: that is the safety
/// argument of every intrinsic and tile call of this type.
#[derive(Clone, Copy)]
#[cfg_attr(target_feature = "fma", allow(dead_code))]
pub(crate) struct Avx(__m256);

/// [`axpy_tile_impl`] compiled for AVX2 + FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_tile_avx<const R: usize, const V: usize>(
    p: View,
    q: View,
    k: usize,
    p0: usize,
    q0: usize,
    lanes: (usize, usize),
    dest: &mut Dest,
) {
    axpy_tile_impl::<Avx, R, V>(p, q, k, p0, q0, lanes, dest);
}

/// [`dot_tile_impl`] compiled for AVX2 + FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_tile_avx<const R: usize, const C: usize>(
    p: View,
    qt: View,
    k: usize,
    p0: usize,
    q0: usize,
    dest: &mut Dest,
) {
    dot_tile_impl::<Avx, R, C>(p, qt, k, p0, q0, dest);
}

impl crate::gemm::Simd8 for Avx {
    const FEW_REGISTERS: bool = true;

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
        // SAFETY: AVX2 and FMA are available (see the type's docs).
        unsafe { axpy_tile_avx::<R, V>(p, q, k, p0, q0, lanes, dest) }
    }

    #[inline(always)]
    fn dot_tile<const R: usize, const C: usize>(
        p: View,
        qt: View,
        k: usize,
        p0: usize,
        q0: usize,
        dest: &mut Dest,
    ) {
        // SAFETY: AVX2 and FMA are available (see the type's docs).
        unsafe { dot_tile_avx::<R, C>(p, qt, k, p0, q0, dest) }
    }
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY: AVX is available (see the type's docs).
        Avx(unsafe { _mm256_setzero_ps() })
    }
    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: AVX is available (see the type's docs).
        Avx(unsafe { _mm256_set1_ps(v) })
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        Avx(load(s))
    }
    #[inline(always)]
    fn from_array(a: [f32; LANES]) -> Self {
        Avx(load(&a))
    }
    #[inline(always)]
    fn to_array(self) -> [f32; LANES] {
        let mut out = [0.0; LANES];
        store(&mut out, self.0);
        out
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: FMA is available (see the type's docs).
        Avx(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        // SAFETY: AVX is available (see the type's docs).
        Avx(unsafe { _mm256_mul_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn and(self, m: Self) -> Self {
        // SAFETY: AVX is available (see the type's docs).
        Avx(unsafe { _mm256_and_ps(self.0, m.0) })
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        // SAFETY: AVX is available (see the type's docs); SSE is part of
        // x86-64. Sums lanes (t, t + 4), then pairs, then the last two.
        unsafe {
            let lo: __m128 = _mm256_castps256_ps128(self.0);
            let hi: __m128 = _mm256_extractf128_ps::<1>(self.0);
            let s = _mm_add_ps(lo, hi);
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        }
    }
}

/// [`crate::fused`]'s column strips of `relu(X W + b)` for `N` inputs and
/// `n_out >= 8`; same contract and same arithmetic as the `wide` version.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`available`] returned `true`).
/// Every memory access is through bounds-checked slices.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn forward_strips<const N: usize>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n_out: usize,
    a: &mut [f32],
) {
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
        // Overlaps the vector before: recomputes the same values.
        forward_strip::<N, 1>(x, w, bias, n_out, n_out - LANES, a);
    }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn forward_strip<const N: usize, const V: usize>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n_out: usize,
    j: usize,
    a: &mut [f32],
) {
    let zero = _mm256_setzero_ps();
    let wv: [[__m256; V]; N] =
        std::array::from_fn(|l| std::array::from_fn(|v| load(&w[l * n_out + j + v * LANES..])));
    let bv: [__m256; V] = std::array::from_fn(|v| load(&bias[j + v * LANES..]));
    for (xr, ar) in x.chunks_exact(N).zip(a.chunks_exact_mut(n_out)) {
        let out = &mut ar[j..j + V * LANES];
        let mut acc = bv;
        for (l, xv) in xr.iter().enumerate() {
            let xs = _mm256_broadcast_ss(xv);
            for (s, &wl) in acc.iter_mut().zip(&wv[l]) {
                *s = _mm256_fmadd_ps(xs, wl, *s);
            }
        }
        for (o, v) in out.chunks_exact_mut(LANES).zip(acc) {
            // relu: keep v where v > 0 or v is NaN, else +0.0
            let keep = _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_GT_OQ>(v, zero),
                _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
            );
            store(o, _mm256_and_ps(keep, v));
        }
    }
}

/// [`crate::fused`]'s column strips of the narrow ReLU backward for `K`
/// outputs and `width >= 8`; same contract and same arithmetic as the
/// `wide` version (a last partial vector first, storing only its new lanes).
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`available`] returned `true`).
/// Every memory access is through bounds-checked slices.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn backward_strips<const K: usize, const DW: bool>(
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
        let lanes: [f32; LANES] =
            std::array::from_fn(|t| f32::from_bits(if t >= keep { u32::MAX } else { 0 }));
        let mask = load(&lanes);
        backward_strip::<K, 1, DW>(
            a_then_dz,
            ds,
            wt,
            width,
            width - LANES,
            scale,
            db,
            dw,
            Some((mask, keep)),
        );
    }
    let full = width - rem;
    let mut j = 0;
    // With DW, one vector per strip: the dW sums take K more registers per
    // vector, and two vectors would spill with 16 registers.
    while j + 2 * LANES <= full && !DW {
        backward_strip::<K, 2, DW>(a_then_dz, ds, wt, width, j, scale, db, dw, None);
        j += 2 * LANES;
    }
    while j < full {
        backward_strip::<K, 1, DW>(a_then_dz, ds, wt, width, j, scale, db, dw, None);
        j += LANES;
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn backward_strip<const K: usize, const V: usize, const DW: bool>(
    a_then_dz: &mut [f32],
    ds: &[f32],
    wt: &[f32],
    width: usize,
    j: usize,
    scale: f32,
    db: &mut [f32],
    dw: &mut [f32],
    lanes: Option<(__m256, usize)>,
) {
    let zero = _mm256_setzero_ps();
    let s = _mm256_set1_ps(scale);
    let wv: [[__m256; V]; K] =
        std::array::from_fn(|c| std::array::from_fn(|v| load(&wt[c * width + j + v * LANES..])));
    let dbs = &mut db[j..j + V * LANES];
    let mut dbv: [__m256; V] = std::array::from_fn(|v| load(&dbs[v * LANES..]));
    let mut dwv = [[zero; V]; K];
    for (dsr, ar) in ds.chunks_exact(K).zip(a_then_dz.chunks_exact_mut(width)) {
        let out = &mut ar[j..j + V * LANES];
        let mut acc = [zero; V];
        let dv: [__m256; K] = std::array::from_fn(|c| _mm256_broadcast_ss(&dsr[c]));
        for (c, &dv) in dv.iter().enumerate() {
            for (x, &wc) in acc.iter_mut().zip(&wv[c]) {
                *x = _mm256_fmadd_ps(dv, wc, *x);
            }
        }
        if DW {
            for (c, &dv) in dv.iter().enumerate() {
                for (v, o) in out.chunks_exact(LANES).enumerate() {
                    dwv[c][v] = _mm256_fmadd_ps(load(o), dv, dwv[c][v]);
                }
            }
        }
        for ((o, x), b) in out.chunks_exact_mut(LANES).zip(acc).zip(dbv.iter_mut()) {
            let av = load(o);
            // dZ = dA * s where A > 0 (NaN: inactive), else +0.0
            let dz = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(av, zero), _mm256_mul_ps(x, s));
            match lanes {
                None => {
                    store(o, dz);
                    *b = _mm256_add_ps(*b, dz);
                }
                Some((m, _)) => {
                    store(o, _mm256_blendv_ps(av, dz, m));
                    *b = _mm256_add_ps(*b, _mm256_and_ps(m, dz));
                }
            }
        }
    }
    for (d, v) in dbs.chunks_exact_mut(LANES).zip(dbv) {
        store(d, v);
    }
    if DW {
        let mut sums = [[[0.0; LANES]; V]; K];
        for (sc, dc) in sums.iter_mut().zip(&dwv) {
            for (sv, &x) in sc.iter_mut().zip(dc) {
                store(sv, x);
            }
        }
        let first = lanes.map_or(0, |(_, keep)| keep);
        crate::fused::add_strip_dw::<K, V>(dw, &sums, j, first);
    }
}

#[cfg(test)]
mod tests {
    //! The AVX2 strips against the scalar twins of [`crate::fused`], over
    //! widths around the vector edges (run on every x86-64 build when the
    //! CPU has AVX2 and FMA, whatever the build flags).

    use super::*;
    use crate::fused::{narrow_bias_relu_forward_scalar, narrow_relu_backward_scalar};

    fn data(n: usize, seed: u32) -> Vec<f32> {
        // A small deterministic generator: values in [-2, 2).
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
            })
            .collect()
    }

    fn close(a: f32, b: f32, terms: usize) -> bool {
        if a.is_nan() || b.is_nan() {
            return a.is_nan() && b.is_nan();
        }
        (a - b).abs() <= (terms as f32 + 1.0) * 1e-6 * (1.0 + b.abs())
    }

    /// [`backward_strips`] without and with the weight gradient.
    unsafe fn backward_strips_no_dw<const K: usize>(
        a: &mut [f32],
        ds: &[f32],
        wt: &[f32],
        width: usize,
        scale: f32,
        db: &mut [f32],
    ) {
        // SAFETY: the caller checked available().
        unsafe { backward_strips::<K, false>(a, ds, wt, width, scale, db, &mut []) }
    }

    unsafe fn backward_strips_dw<const K: usize>(
        a: &mut [f32],
        ds: &[f32],
        wt: &[f32],
        width: usize,
        scale: f32,
        db: &mut [f32],
        dw: &mut [f32],
    ) {
        // SAFETY: the caller checked available().
        unsafe { backward_strips::<K, true>(a, ds, wt, width, scale, db, dw) }
    }

    macro_rules! for_n {
        ($n:expr, $f:ident, $($args:expr),*) => {
            match $n {
                1 => $f::<1>($($args),*),
                2 => $f::<2>($($args),*),
                3 => $f::<3>($($args),*),
                10 => $f::<10>($($args),*),
                16 => $f::<16>($($args),*),
                _ => unreachable!(),
            }
        };
    }

    /// The small-shape GEMM, both the AVX2 instantiation and the `wide`
    /// one (which a default build on this CPU would not otherwise run),
    /// against [`gemm_scalar`]: every kernel and transpose, shapes around
    /// the vector and tile edges, `C` between guards, `beta == 0` with NaN
    /// in `C`. Tolerance as in `tests/gemm.rs`: `2 (k + 2) eps` times the
    /// sum of the magnitudes of the terms.
    #[test]
    fn gemm_small_matches_scalar() {
        use crate::gemm::{gemm_scalar, small_run, Simd8};
        const GUARD: usize = 11;
        #[allow(clippy::too_many_arguments)]
        fn run<S: Simd8>(
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
            small_run::<S>(kernel, ta, tb, m, n, k, alpha, a, b, beta, c);
        }
        if !available() {
            return;
        }
        let dims = [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 24, 25, 33, 100];
        let mut case = 0u32;
        for &m in &dims {
            for &n in &dims {
                for &k in &[1, 3, 8, 9, 17, 40, 300] {
                    case += 1;
                    let a = data(m * k, case);
                    let b = data(k * n, case + 7);
                    let c0 = data(m * n, case + 13);
                    let abs_a: Vec<f32> = a.iter().map(|v| v.abs()).collect();
                    let abs_b: Vec<f32> = b.iter().map(|v| v.abs()).collect();
                    for ta in [Transpose::No, Transpose::Yes] {
                        for tb in [Transpose::No, Transpose::Yes] {
                            let mut mag = vec![0.0; m * n];
                            gemm_scalar(ta, tb, m, n, k, 1.0, &abs_a, &abs_b, 0.0, &mut mag);
                            for (alpha, beta) in [(1.0f32, 0.0f32), (-0.5, 1.0), (2.0, 0.25)] {
                                let start = if beta == 0.0 {
                                    vec![f32::NAN; m * n]
                                } else {
                                    c0.clone()
                                };
                                let mut want = start.clone();
                                gemm_scalar(ta, tb, m, n, k, alpha, &a, &b, beta, &mut want);
                                for kernel in [
                                    SmallKernel::Axpy,
                                    SmallKernel::AxpyTransposed,
                                    SmallKernel::Dot,
                                ] {
                                    for avx in [true, false] {
                                        let mut buf = vec![7.5f32; m * n + 2 * GUARD];
                                        buf[GUARD..GUARD + m * n].copy_from_slice(&start);
                                        let c = &mut buf[GUARD..GUARD + m * n];
                                        if avx {
                                            run::<Avx>(
                                                kernel, ta, tb, m, n, k, alpha, &a, &b, beta, c,
                                            );
                                        } else {
                                            run::<wide::f32x8>(
                                                kernel, ta, tb, m, n, k, alpha, &a, &b, beta, c,
                                            );
                                        }
                                        let what = format!(
                                            "{kernel:?} avx={avx} {ta:?}{tb:?} {m}x{n}x{k} alpha={alpha} beta={beta}"
                                        );
                                        assert!(
                                            buf[..GUARD]
                                                .iter()
                                                .chain(&buf[GUARD + m * n..])
                                                .all(|&v| v == 7.5),
                                            "{what}: wrote outside C"
                                        );
                                        for (i, (&g, &e)) in
                                            buf[GUARD..GUARD + m * n].iter().zip(&want).enumerate()
                                        {
                                            let prev = if beta == 0.0 {
                                                0.0
                                            } else {
                                                (beta * c0[i]).abs()
                                            };
                                            let tol = 2.0
                                                * (k as f32 + 2.0)
                                                * f32::EPSILON
                                                * (alpha.abs() * mag[i] + prev);
                                            assert!(
                                                !g.is_nan() && (g - e).abs() <= tol,
                                                "{what} at {i}: {g} vs {e} (tolerance {tol})"
                                            );
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn forward_strips_match_twin() {
        if !available() {
            return;
        }
        for rows in [1, 3, 17] {
            for n_in in [1, 2, 3, 10, 16] {
                for n_out in [8, 9, 15, 16, 17, 24, 100, 515] {
                    let x = data(rows * n_in, 1);
                    let w = data(n_in * n_out, 2);
                    let mut b = data(n_out, 3);
                    b[n_out - 1] = f32::NAN;
                    let mut got = vec![f32::NAN; rows * n_out];
                    let mut want = vec![0.0; rows * n_out];
                    // SAFETY: available() checked AVX2 and FMA above.
                    unsafe { for_n!(n_in, forward_strips, &x, &w, &b, n_out, &mut got) };
                    narrow_bias_relu_forward_scalar(&x, &w, &b, rows, n_in, n_out, &mut want);
                    for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            close(g, e, n_in),
                            "{rows}x{n_in}x{n_out} at {i}: {g} vs {e}"
                        );
                        assert_ne!(g.to_bits(), (-0.0f32).to_bits());
                    }
                }
            }
        }
    }

    #[test]
    fn backward_strips_match_twin() {
        if !available() {
            return;
        }
        for rows in [1, 3, 17] {
            for k in [1, 2, 3, 10, 16] {
                for width in [8, 9, 15, 16, 17, 24, 100, 515] {
                    let a: Vec<f32> = data(rows * width, 4)
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| if i % 11 == 5 { f32::NAN } else { v })
                        .collect();
                    let ds = data(rows * k, 5);
                    let wt = data(k * width, 6);
                    let db0 = data(width, 7);
                    let (mut got, mut want) = (a.clone(), a.clone());
                    let (mut db_got, mut db_want) = (db0.clone(), db0);
                    // SAFETY: available() checked AVX2 and FMA above.
                    unsafe {
                        for_n!(
                            k,
                            backward_strips_no_dw,
                            &mut got,
                            &ds,
                            &wt,
                            width,
                            1.5,
                            &mut db_got
                        )
                    };
                    narrow_relu_backward_scalar(
                        &mut want,
                        &ds,
                        &wt,
                        rows,
                        width,
                        k,
                        1.5,
                        &mut db_want,
                    );
                    for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
                        assert!(close(g, e, k), "{rows}x{width}x{k} at {i}: {g} vs {e}");
                        if a[i].is_nan() || a[i] <= 0.0 {
                            assert_eq!(g.to_bits(), 0.0f32.to_bits(), "inactive at {i}");
                        }
                    }
                    for (j, (&g, &e)) in db_got.iter().zip(&db_want).enumerate() {
                        assert!(close(g, e, k * rows), "db[{j}]: {g} vs {e}");
                    }
                    // With the weight gradient: dZ and db as above, and dW.
                    let dw0 = data(width * k, 8);
                    let (mut got2, mut want2) = (a.clone(), a.clone());
                    let (mut db_got, mut db_want) = (db_want.clone(), db_want);
                    let (mut dw_got, mut dw_want) = (dw0.clone(), dw0);
                    // SAFETY: available() checked AVX2 and FMA above.
                    unsafe {
                        for_n!(
                            k,
                            backward_strips_dw,
                            &mut got2,
                            &ds,
                            &wt,
                            width,
                            1.5,
                            &mut db_got,
                            &mut dw_got
                        )
                    };
                    crate::fused::narrow_relu_backward_dw_scalar(
                        &mut want2,
                        &ds,
                        &wt,
                        rows,
                        width,
                        k,
                        1.5,
                        &mut db_want,
                        &mut dw_want,
                    );
                    assert_eq!(
                        got2.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "dZ with dW"
                    );
                    for (j, (&g, &e)) in db_got.iter().zip(&db_want).enumerate() {
                        assert!(close(g, e, 2 * k * rows), "db[{j}] with dW: {g} vs {e}");
                    }
                    for (i, (&g, &e)) in dw_got.iter().zip(&dw_want).enumerate() {
                        assert!(close(g, e, rows), "{rows}x{width}x{k} dW[{i}]: {g} vs {e}");
                    }
                }
            }
        }
    }
}

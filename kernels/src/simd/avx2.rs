//! AVX2 + FMA lanes chosen at run time, for builds without `-C target-cpu`
//! flags (where `wide` runs on SSE2 without fused multiply-adds).
//!
//! Soundness is a property of the types, as in matrixmultiply's kernel
//! selection:
//! - [`Avx2Fma`] has a private field: [`detect`] is its only constructor,
//!   and it returns one only when the CPU has AVX2 and FMA. A value is the
//!   proof that detection happened.
//! - [`Avx`], the lane type, is private to this module. Generic kernels get
//!   it as a type parameter only through [`Avx2Fma::run`] (which takes the
//!   proof by value) and, from inside such a run, through [`Lane::enter`].
//!   No other code can name `Avx`, so every call of its methods happens
//!   after a successful [`detect`]: that is the safety argument of each
//!   intrinsic below.
//! - [`Avx2Fma::run`] and [`Lane::enter`] run the kernel inside a
//!   `#[target_feature(enable = "avx2,fma")]` function, where the
//!   `#[inline(always)]` methods below compile to single instructions.

use super::{Kernel, Lane};
use std::arch::x86_64::{
    __m128, __m256, _mm256_add_epi32, _mm256_add_ps, _mm256_and_ps, _mm256_and_si256,
    _mm256_blendv_ps, _mm256_castps256_ps128, _mm256_castps_si256, _mm256_castsi256_ps,
    _mm256_cmp_ps, _mm256_cvtepi32_ps, _mm256_div_ps, _mm256_extractf128_ps, _mm256_fmadd_ps,
    _mm256_loadu_ps, _mm256_movemask_ps, _mm256_mul_ps, _mm256_or_ps, _mm256_or_si256,
    _mm256_set1_epi32, _mm256_set1_ps, _mm256_setzero_ps, _mm256_slli_epi32, _mm256_sqrt_ps,
    _mm256_srli_epi32, _mm256_storeu_ps, _mm256_sub_epi32, _mm256_sub_ps, _mm_add_ps, _mm_add_ss,
    _mm_cvtss_f32, _mm_movehl_ps, _mm_shuffle_ps, _CMP_EQ_OQ, _CMP_GT_OQ, _CMP_LT_OQ, _CMP_UNORD_Q,
};

/// Proof that this CPU has AVX2 and FMA; only [`detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2Fma {
    _detected: (),
}

/// The one run-time ISA check of the crate: `Some` when the CPU has AVX2
/// and FMA (`std` caches the answer, so this is a load and a test).
#[inline]
pub(crate) fn detect() -> Option<Avx2Fma> {
    (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
        .then_some(Avx2Fma { _detected: () })
}

impl Avx2Fma {
    /// Runs `k` with AVX2 + FMA lanes.
    #[inline]
    pub(crate) fn run<K: Kernel>(self, k: K) -> K::Output {
        // SAFETY: `self` exists, so `detect` found AVX2 and FMA.
        unsafe { run_avx(k) }
    }
}

/// `k` with [`Avx`] lanes, compiled for AVX2 + FMA.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx<K: Kernel>(k: K) -> K::Output {
    k.run::<Avx>()
}

/// Eight `f32` lanes in an AVX register; see the module docs for why its
/// safe methods may execute AVX2 and FMA instructions.
#[derive(Clone, Copy)]
struct Avx(__m256);

/// Lanes per vector.
const LANES: usize = 8;

impl Lane for Avx {
    const LANES: usize = LANES;
    const FEW_REGISTERS: bool = true;

    #[inline(always)]
    fn enter<K: Kernel>(k: K) -> K::Output {
        // SAFETY: `Avx` is only reached through `Avx2Fma` (module docs).
        unsafe { run_avx(k) }
    }
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_setzero_ps() })
    }
    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_set1_ps(v) })
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        let s = &s[..LANES];
        // SAFETY: `s` holds 8 `f32` (bounds-checked above); `loadu` needs no
        // alignment; AVX is available (module docs).
        Avx(unsafe { _mm256_loadu_ps(s.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, d: &mut [f32]) {
        let d = &mut d[..LANES];
        // SAFETY: `d` is a unique borrow of 8 `f32` (bounds-checked above);
        // `storeu` needs no alignment; AVX is available (module docs).
        unsafe { _mm256_storeu_ps(d.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: FMA is available (module docs).
        Avx(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_add_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_sub_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_mul_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_div_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_sqrt_ps(self.0) })
    }
    #[inline(always)]
    fn and(self, m: Self) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_and_ps(self.0, m.0) })
    }
    #[inline(always)]
    fn or(self, m: Self) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_or_ps(self.0, m.0) })
    }
    #[inline(always)]
    fn gt(self, b: Self) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(self.0, b.0) })
    }
    #[inline(always)]
    fn lt(self, b: Self) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, b.0) })
    }
    #[inline(always)]
    fn eq(self, b: Self) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(self.0, b.0) })
    }
    #[inline(always)]
    fn is_nan(self) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, self.0) })
    }
    #[inline(always)]
    fn select(self, if_true: Self, if_false: Self) -> Self {
        // SAFETY: AVX is available (module docs).
        Avx(unsafe { _mm256_blendv_ps(if_false.0, if_true.0, self.0) })
    }
    #[inline(always)]
    fn bitmask(self) -> u32 {
        // SAFETY: AVX is available (module docs).
        unsafe { _mm256_movemask_ps(self.0) as u32 }
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        // SAFETY: AVX is available (module docs); SSE is part of x86-64.
        // Sums lanes (t, t + 4), then pairs, then the last two.
        unsafe {
            let lo: __m128 = _mm256_castps256_ps128(self.0);
            let hi: __m128 = _mm256_extractf128_ps::<1>(self.0);
            let s = _mm_add_ps(lo, hi);
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    fn pow2_of_rounded(t: Self) -> Self {
        // SAFETY: AVX2 is available (module docs).
        unsafe {
            let bits = _mm256_add_epi32(_mm256_castps_si256(t.0), _mm256_set1_epi32(127));
            Avx(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(bits)))
        }
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        // SAFETY: AVX2 is available (module docs).
        unsafe {
            let bits = _mm256_castps_si256(self.0);
            let mantissa = _mm256_or_si256(
                _mm256_and_si256(bits, _mm256_set1_epi32(0x007F_FFFF)),
                _mm256_set1_epi32(0x3F80_0000),
            );
            let e = _mm256_sub_epi32(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(127));
            (
                Avx(_mm256_castsi256_ps(mantissa)),
                Avx(_mm256_cvtepi32_ps(e)),
            )
        }
    }
}

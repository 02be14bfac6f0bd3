//! AVX-512F lanes chosen at run time, for builds without `avx512f` enabled
//! at compile time (the default build), so the widest kernels (the blocked
//! GEMM) run 16 lanes on every CPU that has them.
//!
//! The soundness argument is that of `avx2.rs`:
//! - [`Avx512`] has a private field and [`detect`] is its only constructor,
//!   returning one only when the CPU has AVX-512F (and FMA);
//! - [`Zmm`], the lane type, is private to this module and reachable only
//!   through [`Avx512::run`] and, from inside such a run, [`Lane::enter`],
//!   so each intrinsic below runs after a successful [`detect`];
//! - both run the kernel inside a `#[target_feature(enable = "avx512f,fma")]`
//!   function, where the `#[inline(always)]` methods compile to single
//!   instructions.
//!
//! Masks are vectors (all bits set where true), as [`Lane`] requires; the
//! comparisons turn AVX-512's mask registers into such vectors.

use super::{Kernel, Lane};
use std::arch::x86_64::{
    __m512, __mmask16, _mm512_add_epi32, _mm512_add_ps, _mm512_and_si512, _mm512_castps_si512,
    _mm512_castsi512_ps, _mm512_cmp_ps_mask, _mm512_cmplt_epi32_mask, _mm512_cvtepi32_ps,
    _mm512_div_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_blend_ps, _mm512_maskz_set1_epi32,
    _mm512_mul_ps, _mm512_or_si512, _mm512_reduce_add_ps, _mm512_set1_epi32, _mm512_set1_ps,
    _mm512_setzero_ps, _mm512_setzero_si512, _mm512_slli_epi32, _mm512_sqrt_ps, _mm512_srli_epi32,
    _mm512_storeu_ps, _mm512_sub_epi32, _mm512_sub_ps, _mm512_test_epi32_mask, _CMP_EQ_OQ,
    _CMP_GT_OQ, _CMP_LT_OQ, _CMP_UNORD_Q,
};

/// Proof that this CPU has AVX-512F and FMA; only [`detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512 {
    _detected: (),
}

/// `Some` when the CPU has AVX-512F and FMA (`std` caches the answer).
#[inline]
pub(crate) fn detect() -> Option<Avx512> {
    (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma"))
        .then_some(Avx512 { _detected: () })
}

impl Avx512 {
    /// Runs `k` with AVX-512 lanes.
    #[inline]
    pub(crate) fn run<K: Kernel>(self, k: K) -> K::Output {
        // SAFETY: `self` exists, so `detect` found AVX-512F and FMA.
        unsafe { run_zmm(k) }
    }
}

/// `k` with [`Zmm`] lanes, compiled for AVX-512F + FMA.
///
/// # Safety
/// The CPU must have AVX-512F and FMA.
#[target_feature(enable = "avx512f,fma")]
unsafe fn run_zmm<K: Kernel>(k: K) -> K::Output {
    k.run::<Zmm>()
}

/// Sixteen `f32` lanes in a ZMM register; see the module docs for why its
/// safe methods may execute AVX-512F instructions.
#[derive(Clone, Copy)]
struct Zmm(__m512);

/// Lanes per vector.
const LANES: usize = 16;

/// The vector of a mask register: all bits set in the lanes of `m`.
///
/// # Safety
/// The CPU must have AVX-512F.
#[inline(always)]
unsafe fn from_mask(m: __mmask16) -> Zmm {
    Zmm(_mm512_castsi512_ps(_mm512_maskz_set1_epi32(m, -1)))
}

/// The mask register of a mask vector: the lanes with any bit set.
///
/// # Safety
/// The CPU must have AVX-512F.
#[inline(always)]
unsafe fn to_mask(v: Zmm) -> __mmask16 {
    let bits = _mm512_castps_si512(v.0);
    _mm512_test_epi32_mask(bits, bits)
}

impl Lane for Zmm {
    const LANES: usize = LANES;

    #[inline(always)]
    fn enter<K: Kernel>(k: K) -> K::Output {
        // SAFETY: `Zmm` is only reached through `Avx512` (module docs).
        unsafe { run_zmm(k) }
    }
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY: AVX-512F is available (module docs).
        Zmm(unsafe { _mm512_setzero_ps() })
    }
    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        Zmm(unsafe { _mm512_set1_ps(v) })
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        let s = &s[..LANES];
        // SAFETY: `s` holds 16 `f32` (bounds-checked above); `loadu` needs
        // no alignment; AVX-512F is available (module docs).
        Zmm(unsafe { _mm512_loadu_ps(s.as_ptr()) })
    }
    #[inline(always)]
    fn store(self, d: &mut [f32]) {
        let d = &mut d[..LANES];
        // SAFETY: `d` is a unique borrow of 16 `f32` (bounds-checked above);
        // `storeu` needs no alignment; AVX-512F is available (module docs).
        unsafe { _mm512_storeu_ps(d.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        Zmm(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        Zmm(unsafe { _mm512_add_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        Zmm(unsafe { _mm512_sub_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        Zmm(unsafe { _mm512_mul_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        Zmm(unsafe { _mm512_div_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        Zmm(unsafe { _mm512_sqrt_ps(self.0) })
    }
    #[inline(always)]
    fn and(self, m: Self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        unsafe {
            let bits = _mm512_and_si512(_mm512_castps_si512(self.0), _mm512_castps_si512(m.0));
            Zmm(_mm512_castsi512_ps(bits))
        }
    }
    #[inline(always)]
    fn or(self, m: Self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        unsafe {
            let bits = _mm512_or_si512(_mm512_castps_si512(self.0), _mm512_castps_si512(m.0));
            Zmm(_mm512_castsi512_ps(bits))
        }
    }
    #[inline(always)]
    fn gt(self, b: Self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        unsafe { from_mask(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(self.0, b.0)) }
    }
    #[inline(always)]
    fn lt(self, b: Self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        unsafe { from_mask(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, b.0)) }
    }
    #[inline(always)]
    fn eq(self, b: Self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        unsafe { from_mask(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self.0, b.0)) }
    }
    #[inline(always)]
    fn is_nan(self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        unsafe { from_mask(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self.0, self.0)) }
    }
    #[inline(always)]
    fn select(self, if_true: Self, if_false: Self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        unsafe { Zmm(_mm512_mask_blend_ps(to_mask(self), if_false.0, if_true.0)) }
    }
    #[inline(always)]
    fn bitmask(self) -> u32 {
        // SAFETY: AVX-512F is available (module docs). The sign bit of
        // each lane, as `movemask` takes it.
        unsafe {
            let bits = _mm512_castps_si512(self.0);
            u32::from(_mm512_cmplt_epi32_mask(bits, _mm512_setzero_si512()))
        }
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        // SAFETY: AVX-512F is available (module docs). The halves, then
        // their halves, down to one lane.
        unsafe { _mm512_reduce_add_ps(self.0) }
    }
    #[inline(always)]
    fn pow2_of_rounded(t: Self) -> Self {
        // SAFETY: AVX-512F is available (module docs).
        unsafe {
            let bits = _mm512_add_epi32(_mm512_castps_si512(t.0), _mm512_set1_epi32(127));
            Zmm(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(bits)))
        }
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        // SAFETY: AVX-512F is available (module docs).
        unsafe {
            let bits = _mm512_castps_si512(self.0);
            let mantissa = _mm512_or_si512(
                _mm512_and_si512(bits, _mm512_set1_epi32(0x007F_FFFF)),
                _mm512_set1_epi32(0x3F80_0000),
            );
            let e = _mm512_sub_epi32(_mm512_srli_epi32::<23>(bits), _mm512_set1_epi32(127));
            (
                Zmm(_mm512_castsi512_ps(mantissa)),
                Zmm(_mm512_cvtepi32_ps(e)),
            )
        }
    }
}

//! The SIMD layer: vector lanes, the ISA choice, and the lane rules every
//! kernel family shares. The op modules (`gemm`, `fused`, `softmax`, ...)
//! sit above it; nothing here imports from them.
//!
//! - [`Lane`]: a vector of `f32` lanes with the operations the kernels use.
//!   It is implemented for `wide`'s vectors (instructions chosen when the
//!   crate is compiled) and, on x86-64, for AVX2 + FMA registers
//!   (instructions chosen at run time, `avx2.rs`).
//! - [`Kernel`]: a kernel body written once, generic over [`Lane`], and run
//!   by [`dispatch`] with the best vector type for this build and CPU.
//! - `detect`: the one run-time check (x86-64). It hands out the AVX2 + FMA choice
//!   as a token (`avx2::Avx2Fma`) that nothing else can construct, and AVX code
//!   is reachable only through that token.
//! - The shared rules: ReLU on lanes ([`Lane::relu`]), the NaN-propagating
//!   maximum ([`max_nan`], [`Lane::max_nan`]) and `exp` for shifted logits
//!   ([`exp_nonpositive`], which flushes below `math::EXP_FLUSH_BELOW`).

// In builds with FMA, `dispatch` never takes the run-time path; the AVX2
// instantiations are then reached only by the tests.
#[cfg(target_arch = "x86_64")]
#[cfg_attr(target_feature = "fma", allow(dead_code))]
mod avx2;
// In builds with AVX-512F, `dispatch_widest` never takes the run-time path;
// the AVX-512 instantiations are then reached only by the tests.
#[cfg(target_arch = "x86_64")]
#[cfg_attr(target_feature = "avx512f", allow(dead_code))]
mod avx512;
mod math;
mod wide_lanes;

#[cfg(target_arch = "x86_64")]
#[cfg_attr(target_feature = "fma", allow(unused_imports))]
pub(crate) use avx2::detect;
#[cfg_attr(target_feature = "fma", allow(dead_code))]
pub(crate) use math::{exp_nonpositive, ln_at_least_one};

/// The `wide` vector of eight lanes: what [`dispatch`] runs when the build
/// enables FMA (or the CPU lacks AVX2 + FMA).
pub(crate) type Wide = wide::f32x8;

/// The most lanes any [`Lane`] has (sizes stack arrays of one vector).
pub(crate) const MAX_LANES: usize = 16;

/// A vector of [`Lane::LANES`] `f32` lanes.
///
/// Comparisons return masks of the same type (all bits set where true, zero
/// where false); [`Lane::select`] and [`Lane::and`] take such masks.
///
/// Every method is `#[inline(always)]` in every implementation, so a kernel
/// body generic over `S: Lane` compiles to straight vector code wherever it
/// is inlined (for the AVX2 implementation: into the `#[target_feature]`
/// function that [`Lane::enter`] runs).
// Some operations serve only the run-time AVX2 path of the softmax, which
// builds with FMA do not compile outside the tests.
#[cfg_attr(target_feature = "fma", allow(dead_code))]
pub(crate) trait Lane: Copy {
    /// Lanes per vector.
    const LANES: usize;
    /// Whether only 16 vector registers hold these vectors (AVX2), so that
    /// register tiles sized for 32 registers would spill.
    const FEW_REGISTERS: bool = false;

    /// Runs `k` with this vector type, compiled with the instructions the
    /// type needs (a kernel calls this to compile an inner tile for the ISA).
    fn enter<K: Kernel>(k: K) -> K::Output;
    /// All lanes `0.0`.
    fn zero() -> Self;
    /// All lanes `v`.
    fn splat(v: f32) -> Self;
    /// The first [`Lane::LANES`] elements of `s`.
    ///
    /// # Panics
    /// If `s` is shorter.
    fn load(s: &[f32]) -> Self;
    /// Writes the lanes to the first [`Lane::LANES`] elements of `d`.
    ///
    /// # Panics
    /// If `d` is shorter.
    fn store(self, d: &mut [f32]);
    /// `self * b + c`, fused where the implementation has FMA.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// `self + b`.
    fn add(self, b: Self) -> Self;
    /// `self - b`.
    fn sub(self, b: Self) -> Self;
    /// `self * b`.
    fn mul(self, b: Self) -> Self;
    /// `self / b`.
    fn div(self, b: Self) -> Self;
    /// The correctly rounded square root of each lane.
    fn sqrt(self) -> Self;
    /// Bitwise and.
    fn and(self, m: Self) -> Self;
    /// Bitwise or.
    fn or(self, m: Self) -> Self;
    /// Mask of `self > b` (false where either is NaN).
    fn gt(self, b: Self) -> Self;
    /// Mask of `self < b` (false where either is NaN).
    fn lt(self, b: Self) -> Self;
    /// Mask of `self == b` (false where either is NaN).
    fn eq(self, b: Self) -> Self;
    /// Mask of the NaN lanes.
    fn is_nan(self) -> Self;
    /// With `self` a mask: `if_true` where set, `if_false` elsewhere.
    fn select(self, if_true: Self, if_false: Self) -> Self;
    /// With `self` a mask: bit `t` set where lane `t` is set.
    fn bitmask(self) -> u32;
    /// The sum of the lanes (a tree over halves).
    fn reduce_add(self) -> f32;
    /// `2^r` for the integer `r` held in the low mantissa bits of `t`, where
    /// `t = x + 1.5 * 2^23` rounded (the step of [`exp_nonpositive`]): the
    /// bits of `t` plus 127, shifted into the exponent field. Valid for
    /// `-126 <= r <= 0`.
    fn pow2_of_rounded(t: Self) -> Self;
    /// For finite `self >= 1`: `(m, e)` with `self = m * 2^e`, `m` in
    /// `[1, 2)` and `e` an integer, as `f32` lanes.
    fn split_exponent(self) -> (Self, Self);

    /// The lanes as an array padded with zeros to [`MAX_LANES`].
    #[inline(always)]
    fn to_array(self) -> [f32; MAX_LANES] {
        let mut out = [0.0; MAX_LANES];
        self.store(&mut out);
        out
    }
    /// The vector with lane `t` equal to `f(t)`.
    #[inline(always)]
    fn from_fn(f: impl Fn(usize) -> f32) -> Self {
        let mut a = [0.0; MAX_LANES];
        for (t, v) in a.iter_mut().enumerate().take(Self::LANES) {
            *v = f(t);
        }
        Self::load(&a)
    }
    /// The first `s.len()` (at most [`Lane::LANES`]) elements of `s`, the
    /// other lanes `fill`.
    #[inline(always)]
    fn load_padded(s: &[f32], fill: f32) -> Self {
        if s.len() >= Self::LANES {
            return Self::load(s);
        }
        // Blended in registers, one element at a time: a copy through
        // memory (a call to `memcpy`, then a vector load over several
        // smaller stores) stalls the kernel that waits for it.
        let lane = Self::from_fn(|t| t as f32);
        let mut v = Self::splat(fill);
        for (i, &e) in s.iter().enumerate() {
            v = lane.eq(Self::splat(i as f32)).select(Self::splat(e), v);
        }
        v
    }
    /// A mask set on lanes `from..LANES`.
    #[inline(always)]
    fn lanes_from(from: usize) -> Self {
        Self::from_fn(|t| f32::from_bits(if t >= from { u32::MAX } else { 0 }))
    }
    /// `relu` with the crate's rule, lane by lane: NaN propagates, anything
    /// not `> 0` (negatives, `±0.0`) becomes `+0.0` (as
    /// `activation::relu_scalar_value`).
    #[inline(always)]
    fn relu(self) -> Self {
        self.gt(Self::zero()).or(self.is_nan()).and(self)
    }
    /// `self` in the lanes where `a > 0`, else `+0.0`: the ReLU backward
    /// rule (a NaN in `a` counts as inactive).
    #[inline(always)]
    fn where_active(self, a: Self) -> Self {
        a.gt(Self::zero()).and(self)
    }
    /// The running maximum with the NaN rule of [`max_nan`], lane by lane:
    /// `v` replaces `self` where `v > self` or `v` is NaN.
    #[inline(always)]
    fn max_nan(self, v: Self) -> Self {
        v.gt(self).or(v.is_nan()).select(v, self)
    }
    /// [`max_nan`] over the lanes, starting from `init`.
    #[inline(always)]
    fn reduce_max_nan(self, init: f32) -> f32 {
        self.to_array()[..Self::LANES]
            .iter()
            .fold(init, |m, &v| max_nan(m, v))
    }
}

/// Stores `v` to the first [`Lane::LANES`] elements of `d` ([`Lane::store`]
/// with the destination first, as a store reads).
///
/// # Panics
/// If `d` is shorter.
#[inline(always)]
pub(crate) fn store<S: Lane>(d: &mut [f32], v: S) {
    v.store(d);
}

/// `[f(0), f(1), .., f(N - 1)]`, as `std::array::from_fn`, for the
/// kernels' register arrays.
///
/// Builds without FMA or without AVX-512F compile kernels into run-time
/// `#[target_feature]` functions as well; there this is a loop inlined
/// whole into the kernel. `std`'s version goes through helpers that are
/// not always inlined, and a closure doing vector arithmetic that stays
/// out of line cannot use the instructions of the function around it:
/// each intrinsic in it becomes a call (the run-time AVX-512 spiral step
/// ran 8x slower so). Builds with both have no run-time ISA functions, and
/// take `std`'s version, which compiles the kernels there a little better.
#[inline(always)]
pub(crate) fn array<T: Copy, const N: usize>(f: impl FnMut(usize) -> T) -> [T; N] {
    #[cfg(all(target_feature = "fma", target_feature = "avx512f"))]
    {
        core::array::from_fn(f)
    }
    #[cfg(not(all(target_feature = "fma", target_feature = "avx512f")))]
    {
        let mut f = f;
        let mut a = [core::mem::MaybeUninit::<T>::uninit(); N];
        for (i, v) in a.iter_mut().enumerate() {
            v.write(f(i));
        }
        // SAFETY: the loop wrote every element; `MaybeUninit<T>` has the
        // layout of `T`, so `[MaybeUninit<T>; N]` has that of `[T; N]`,
        // and `T: Copy` has no drop to run for the original.
        unsafe { a.as_ptr().cast::<[T; N]>().read() }
    }
}

/// `f32`s per cache line (64 bytes): the stride of [`prefetch`] hints.
pub(crate) const LINE_FLOATS: usize = 16;

/// Hints the CPU to bring the cache line holding `s[ahead]` into L1, for a
/// stream that reads `s` in order and would otherwise wait on L2. Only a
/// hint: it reads nothing, never faults, and `ahead` may point past the end
/// of `s` (the hint is then wasted); a no-op off x86-64.
#[inline(always)]
pub(crate) fn prefetch(s: &[f32], ahead: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = s.as_ptr().wrapping_add(ahead).cast::<i8>();
        // SAFETY: a prefetch accesses no memory architecturally and does
        // not fault on any address; SSE is part of the x86-64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (s, ahead);
}

/// The maximum fold of the crate: `v` replaces `m` when `v > m` or `v` is
/// NaN, so a NaN anywhere in a sequence makes its maximum NaN.
#[inline(always)]
pub(crate) fn max_nan(m: f32, v: f32) -> f32 {
    if v > m || v.is_nan() {
        v
    } else {
        m
    }
}

/// A kernel body written once over [`Lane`]; [`dispatch`] or
/// [`Lane::enter`] pick the vector type and run it.
///
/// Implementations mark [`Kernel::run`] `#[inline(always)]`, and so does
/// every function it calls that does vector arithmetic, so that the whole
/// body is compiled inside the ISA's `#[target_feature]` function.
pub(crate) trait Kernel {
    /// What the kernel returns.
    type Output;
    /// The body for vector type `S`.
    fn run<S: Lane>(self) -> Self::Output;
}

/// Runs `k` with the best vector type: [`Wide`] when the build enables FMA
/// (a `target-cpu=native` build: `wide` then has AVX2 + FMA or better at
/// compile time) or on other architectures; otherwise the AVX2 + FMA
/// registers when `detect` finds them, else [`Wide`] (SSE2).
#[inline(always)]
pub(crate) fn dispatch<K: Kernel>(k: K) -> K::Output {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "fma")))]
    if let Some(isa) = detect() {
        return isa.run(k);
    }
    k.run::<Wide>()
}

/// Runs `k` with the widest vectors this build and CPU have: 16 lanes
/// where AVX-512F is available (`wide`'s `f32x16` when the build enables
/// it, else the AVX-512 registers when `avx512::detect` finds them),
/// otherwise what [`dispatch`] picks. For kernels whose throughput scales
/// with the vector width (the blocked GEMM); kernels bound by memory or by
/// short rows keep [`dispatch`].
#[inline(always)]
pub(crate) fn dispatch_widest<K: Kernel>(k: K) -> K::Output {
    #[cfg(target_feature = "avx512f")]
    {
        k.run::<wide::f32x16>()
    }
    #[cfg(not(target_feature = "avx512f"))]
    {
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = avx512::detect() {
            return isa.run(k);
        }
        dispatch(k)
    }
}

#[cfg(test)]
pub(crate) mod testing;

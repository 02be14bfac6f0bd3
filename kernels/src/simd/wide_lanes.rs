//! [`Lane`] for `wide`'s vectors: the instructions are those the build
//! enables (SSE2 by default, AVX2 + FMA or AVX-512 with `target-cpu`
//! flags). `mul_add` fuses only when the build enables FMA.

use super::{Kernel, Lane};
use wide::{f32x16, f32x8, i32x16, i32x8, u32x16, u32x8};

macro_rules! wide_lane {
    ($f:ident, $u:ident, $i:ident, $lanes:literal) => {
        impl Lane for $f {
            const LANES: usize = $lanes;

            #[inline(always)]
            fn enter<K: Kernel>(k: K) -> K::Output {
                k.run::<Self>()
            }
            #[inline(always)]
            fn zero() -> Self {
                $f::ZERO
            }
            #[inline(always)]
            fn splat(v: f32) -> Self {
                $f::splat(v)
            }
            #[inline(always)]
            fn load(s: &[f32]) -> Self {
                $f::new(s[..$lanes].try_into().expect("a full vector"))
            }
            #[inline(always)]
            fn store(self, d: &mut [f32]) {
                d[..$lanes].copy_from_slice(self.as_array());
            }
            #[inline(always)]
            fn mul_add(self, b: Self, c: Self) -> Self {
                $f::mul_add(self, b, c)
            }
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                self + b
            }
            #[inline(always)]
            fn sub(self, b: Self) -> Self {
                self - b
            }
            #[inline(always)]
            fn mul(self, b: Self) -> Self {
                self * b
            }
            #[inline(always)]
            fn div(self, b: Self) -> Self {
                self / b
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                $f::sqrt(self)
            }
            #[inline(always)]
            fn and(self, m: Self) -> Self {
                self & m
            }
            #[inline(always)]
            fn or(self, m: Self) -> Self {
                self | m
            }
            #[inline(always)]
            fn gt(self, b: Self) -> Self {
                self.simd_gt(b)
            }
            #[inline(always)]
            fn lt(self, b: Self) -> Self {
                self.simd_lt(b)
            }
            #[inline(always)]
            fn eq(self, b: Self) -> Self {
                self.simd_eq(b)
            }
            #[inline(always)]
            fn is_nan(self) -> Self {
                $f::is_nan(self)
            }
            #[inline(always)]
            fn select(self, if_true: Self, if_false: Self) -> Self {
                $f::select(self, if_true, if_false)
            }
            #[inline(always)]
            fn bitmask(self) -> u32 {
                self.to_bitmask() as u32
            }
            #[inline(always)]
            fn reduce_add(self) -> f32 {
                $f::reduce_add(self)
            }
            #[inline(always)]
            fn pow2_of_rounded(t: Self) -> Self {
                let bits: $u = wide::bytemuck::cast(t);
                wide::bytemuck::cast((bits + $u::splat(127)) << 23u32)
            }
            #[inline(always)]
            fn split_exponent(self) -> (Self, Self) {
                let bits: $i = wide::bytemuck::cast(self);
                let m: $f =
                    wide::bytemuck::cast((bits & $i::splat(0x007F_FFFF)) | $i::splat(0x3F80_0000));
                let e = (bits >> 23u32) - $i::splat(127);
                (m, e.round_float())
            }
        }
    };
}

wide_lane!(f32x8, u32x8, i32x8, 8);
wide_lane!(f32x16, u32x16, i32x16, 16);

//! Helpers shared by the kernel test files.
#![allow(dead_code)]

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// The seeded generator of a test.
pub fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Bit-for-bit equality, any NaN equal to any NaN.
#[track_caller]
pub fn assert_bits_eq(simd: &[f32], scalar: &[f32], what: &str) {
    assert_eq!(simd.len(), scalar.len(), "{what}: lengths");
    for (i, (&a, &b)) in simd.iter().zip(scalar).enumerate() {
        let same = a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        assert!(same, "{what}: element {i}: simd {a:e} != scalar {b:e}");
    }
}

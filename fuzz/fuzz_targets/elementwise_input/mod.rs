//! Turns fuzz bytes into shapes and values for the elementwise targets
//! (`bias_relu`, `softmax_ce`, `mask`, `update`), and the comparisons they
//! share.
#![allow(dead_code)]

/// Largest `rows` and `cols` a target builds.
pub const MAX_DIM: usize = 64;

/// Values the decoder mixes in by tag.
const SPECIALS: [f32; 8] = [
    0.0,
    -0.0,
    1e30,
    -1e30,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    f32::MIN_POSITIVE,
];

/// Reads the fuzz input front to back; once it runs out, a small generator
/// seeded from the input keeps producing varied bytes, so large shapes are
/// not all zeros.
pub struct Input<'a> {
    bytes: &'a [u8],
    state: u64,
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        let state = bytes.iter().fold(0x9E37_79B9_7F4A_7C15u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
        });
        Input { bytes, state }
    }

    pub fn u8(&mut self) -> u8 {
        if let Some((&b, rest)) = self.bytes.split_first() {
            self.bytes = rest;
            b
        } else {
            // xorshift64
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            self.state as u8
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.u8()))
    }

    /// A dimension in `0..=MAX_DIM`.
    pub fn dim(&mut self) -> usize {
        self.u8() as usize % (MAX_DIM + 1)
    }

    /// Any `f32` bit pattern (NaN payloads, subnormals, infinities).
    pub fn any_f32(&mut self) -> f32 {
        f32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Mostly `i16 / 256` (within ±128), one in eight a special value.
    pub fn moderate_f32(&mut self) -> f32 {
        let tag = self.u8();
        if tag < 32 {
            SPECIALS[tag as usize % SPECIALS.len()]
        } else {
            self.u16() as i16 as f32 / 256.0
        }
    }

    /// Finite `i16 / 256`, within ±128.
    pub fn finite_f32(&mut self) -> f32 {
        self.u16() as i16 as f32 / 256.0
    }

    /// A fraction in `[0, 1)`, 0 and tiny values included.
    pub fn unit(&mut self) -> f32 {
        match self.u8() {
            0 => 0.0,
            1 => 1e-9,
            _ => self.u16() as f32 / 65536.0,
        }
    }

    pub fn vec(&mut self, n: usize, mut f: impl FnMut(&mut Self) -> f32) -> Vec<f32> {
        (0..n).map(|_| f(self)).collect()
    }
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

/// Same NaN-ness, equal infinities, and otherwise within `abs` or within
/// `rel` of the larger magnitude.
#[track_caller]
pub fn assert_close(simd: &[f32], scalar: &[f32], abs: f32, rel: f32, what: &str) {
    assert_eq!(simd.len(), scalar.len(), "{what}: lengths");
    for (i, (&a, &b)) in simd.iter().zip(scalar).enumerate() {
        let ok = if a.is_nan() || b.is_nan() {
            a.is_nan() && b.is_nan()
        } else if a.is_infinite() || b.is_infinite() {
            a == b
        } else {
            let d = (a - b).abs();
            d <= abs || d <= rel * a.abs().max(b.abs())
        };
        assert!(ok, "{what}: element {i}: simd {a:e} vs scalar {b:e}");
    }
}

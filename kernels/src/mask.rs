//! Bernoulli keep-masks for inverted dropout and dropconnect.
//!
//! A mask is a pure function of `(seed, stream, position)`: position `i` of a
//! mask draws from generator `g = (i % 8) / 2` of four `xoshiro256++`
//! generators, whose states are derived from `(seed, stream, g)` by
//! [`generator_state`]; step `t = i / 8` of generator `g` yields one `u64`
//! whose low 32 bits serve position `8t + 2g` and high 32 bits position
//! `8t + 2g + 1`. A position is kept when its 32-bit value is below
//! `(1 - p) * 2^32` ([`keep_threshold`]). So the same row block draws the same
//! mask whichever thread runs it, and eight mask values come from one SIMD
//! step of four 64-bit generators.

use crate::simd::Lane;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use wide::{f32x8, u32x8, u64x4};

/// Number of mask positions produced by one step of the four generators.
pub const MASK_BLOCK: usize = 8;

/// Number of `xoshiro256++` generators behind one mask stream.
pub const GENERATORS: usize = 4;

/// Inverted dropout on a layer's activations: the mask of
/// [`bernoulli_mask`]`(p_drop, seed, stream)` over the
/// `rows x n_out` outputs, row-major, kept units scaled by
/// `1 / (1 - p_drop)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability of dropping a unit, in `[0, 1)`.
    pub p_drop: f32,
    /// Seed of the mask.
    pub seed: u64,
    /// Stream of the mask.
    pub stream: u64,
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 256-bit `xoshiro256++` state of generator `g` (0..4) of mask stream
/// `(seed, stream)`, as four words in the order `rand_xoshiro` reads them
/// from its 32-byte seed (little-endian).
pub fn generator_state(seed: u64, stream: u64, g: usize) -> [u64; 4] {
    let mut x = seed;
    let a = splitmix64(&mut x);
    let mut y = stream ^ a.rotate_left(17);
    let b = splitmix64(&mut y);
    let mut s = b ^ (g as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut state = [0u64; 4];
    for w in &mut state {
        *w = splitmix64(&mut s);
    }
    if state == [0; 4] {
        state[0] = 1;
    }
    state
}

/// The 32-bit threshold below which a position is kept, for drop
/// probability `p_drop`: `round((1 - p_drop) * 2^32)`, a `u64` so that
/// `p_drop = 0` keeps everything.
///
/// # Panics
/// If `p_drop` is not in `[0, 1)` (NaN included): `p_drop = 1` would drop
/// every unit and make the scale `1 / (1 - p)` infinite, so it is rejected.
#[track_caller]
pub fn keep_threshold(p_drop: f32) -> u64 {
    assert!(
        (0.0..1.0).contains(&p_drop),
        "bernoulli mask: drop probability must be in [0, 1), got {p_drop}"
    );
    ((1.0 - p_drop as f64) * 4_294_967_296.0).round() as u64
}

/// The inverted-dropout scale `1 / (1 - p_drop)` given to kept positions.
pub fn keep_scale(p_drop: f32) -> f32 {
    1.0 / (1.0 - p_drop)
}

/// Sequential reader of a mask stream, one position at a time (the scalar
/// reference; built on `rand_xoshiro`).
pub struct MaskBits {
    gens: [Xoshiro256PlusPlus; GENERATORS],
    block: [u32; MASK_BLOCK],
    pos: usize,
}

impl MaskBits {
    /// Starts the stream `(seed, stream)` at position 0.
    pub fn new(seed: u64, stream: u64) -> Self {
        let gens = std::array::from_fn(|g| {
            let mut bytes = [0u8; 32];
            for (chunk, w) in bytes
                .chunks_exact_mut(8)
                .zip(generator_state(seed, stream, g))
            {
                chunk.copy_from_slice(&w.to_le_bytes());
            }
            Xoshiro256PlusPlus::from_seed(bytes)
        });
        MaskBits {
            gens,
            block: [0; MASK_BLOCK],
            pos: MASK_BLOCK,
        }
    }

    /// The next position's 32-bit value.
    pub fn next_u32(&mut self) -> u32 {
        if self.pos == MASK_BLOCK {
            for (g, gen) in self.gens.iter_mut().enumerate() {
                let v = gen.next_u64();
                self.block[2 * g] = v as u32;
                self.block[2 * g + 1] = (v >> 32) as u32;
            }
            self.pos = 0;
        }
        let v = self.block[self.pos];
        self.pos += 1;
        v
    }

    /// Whether the next position is kept under `threshold` ([`keep_threshold`]).
    pub fn next_keep(&mut self, threshold: u64) -> bool {
        (self.next_u32() as u64) < threshold
    }
}

/// Block reader of a mask stream: the four generators of [`MaskBits`] held
/// in the lanes of 4 x 64-bit vectors, one SIMD `xoshiro256++` step giving the
/// eight 32-bit values of one [`MASK_BLOCK`].
///
/// [`MaskBitsSimd::next_block`] reads whole blocks (for buffers that start at
/// position 0); [`MaskBitsSimd::take8`] and [`MaskBitsSimd::take1`] read from
/// any position (rows whose length is not a multiple of 8), keeping the
/// current block and the next one. Either way the values equal those of
/// [`MaskBits`] at the same positions. Mixing `next_block` with
/// `take8`/`take1` on one reader is not supported.
pub struct MaskBitsSimd {
    s: [u64x4; 4],
    window: [u32; 2 * MASK_BLOCK],
    pos: usize,
}

impl MaskBitsSimd {
    /// Starts the stream `(seed, stream)` at position 0.
    pub fn new(seed: u64, stream: u64) -> Self {
        let states: [[u64; 4]; GENERATORS] =
            std::array::from_fn(|g| generator_state(seed, stream, g));
        // Word `w` of every generator in one vector, generator `g` in lane `g`.
        let s = std::array::from_fn(|w| u64x4::new(std::array::from_fn(|g| states[g][w])));
        MaskBitsSimd {
            s,
            window: [0; 2 * MASK_BLOCK],
            pos: 2 * MASK_BLOCK,
        }
    }

    /// The next eight 32-bit values (one step of the four generators): lane
    /// `2g` is the low half of generator `g`'s output, lane `2g + 1` the high
    /// half.
    #[inline(always)]
    pub fn next_block(&mut self) -> [u32; MASK_BLOCK] {
        self.next_lanes().to_array()
    }

    /// [`MaskBitsSimd::next_block`] as a vector, for the kernels of this
    /// crate (`wide` stays out of the public signatures).
    #[inline(always)]
    pub(crate) fn next_lanes(&mut self) -> u32x8 {
        let [s0, s1, s2, s3] = self.s;
        // result = rotl(s0 + s3, 23) + s0
        let sum = s0 + s3;
        let result = ((sum << 23u32) | (sum >> 41u32)) + s0;
        let t = s1 << 17u32;
        let s2 = s2 ^ s0;
        let s3 = s3 ^ s1;
        let s1 = s1 ^ s2;
        let s0 = s0 ^ s3;
        let s2 = s2 ^ t;
        let s3 = (s3 << 45u32) | (s3 >> 19u32);
        self.s = [s0, s1, s2, s3];
        // Little-endian lanes: u64 lane g is u32 lanes 2g (low) and 2g + 1 (high).
        wide::bytemuck::cast(result)
    }

    fn fill_window(&mut self) {
        if self.pos == 2 * MASK_BLOCK {
            // First use: both halves of the window are still empty.
            let first = self.next_lanes();
            self.window[..MASK_BLOCK].copy_from_slice(first.as_array());
            self.pos = 0;
        } else {
            self.window.copy_within(MASK_BLOCK.., 0);
            self.pos -= MASK_BLOCK;
        }
        let next = self.next_lanes();
        self.window[MASK_BLOCK..].copy_from_slice(next.as_array());
    }

    /// The values of the next eight positions, from any position.
    #[inline]
    pub fn take8(&mut self) -> [u32; MASK_BLOCK] {
        if self.pos >= MASK_BLOCK {
            self.fill_window();
        }
        let mut lanes = [0u32; MASK_BLOCK];
        lanes.copy_from_slice(&self.window[self.pos..self.pos + MASK_BLOCK]);
        self.pos += MASK_BLOCK;
        lanes
    }

    /// [`MaskBitsSimd::take8`] as a vector, for the kernels of this crate.
    #[inline]
    pub(crate) fn take8_lanes(&mut self) -> u32x8 {
        u32x8::new(self.take8())
    }

    /// The value of the next position.
    #[inline]
    pub fn take1(&mut self) -> u32 {
        if self.pos >= MASK_BLOCK {
            self.fill_window();
        }
        let v = self.window[self.pos];
        self.pos += 1;
        v
    }
}

/// The lanes of `bits` kept under `threshold` ([`keep_threshold`]), as an
/// `f32x8` mask (all bits set where kept).
#[inline(always)]
pub(crate) fn keep_lanes(bits: u32x8, threshold: u64) -> f32x8 {
    let keep = if threshold > u32::MAX as u64 {
        // p_drop = 0 (or so small that it rounds to 0): every 32-bit value
        // is below 2^32.
        u32x8::splat(u32::MAX)
    } else {
        bits.simd_lt(u32x8::splat(threshold as u32))
    };
    wide::bytemuck::cast(keep)
}

/// The mask values `scale` (kept) or `+0.0` (dropped) of eight positions.
#[inline(always)]
pub(crate) fn mask_values(bits: u32x8, threshold: u64, scale: f32) -> f32x8 {
    keep_lanes(bits, threshold) & f32x8::splat(scale)
}

/// The mask value of one position: `scale` if kept, else `+0.0`.
#[inline(always)]
pub(crate) fn mask_value(bits: u32, threshold: u64, scale: f32) -> f32 {
    if (bits as u64) < threshold {
        scale
    } else {
        0.0
    }
}

/// Fills `out` with the inverted-dropout mask of stream `(seed, stream)`:
/// `1 / (1 - p_drop)` where kept, `0` where dropped.
///
/// Exact: equals [`bernoulli_mask_scalar`] bit for bit.
///
/// # Panics
/// If `p_drop` is not in `[0, 1)`.
///
/// # Example
/// ```
/// use vnn_kernels::mask::bernoulli_mask;
/// let mut m = [0.0f32; 1000];
/// bernoulli_mask(&mut m, 0.5, 7, 0);
/// let kept = m.iter().filter(|&&v| v == 2.0).count();
/// assert!(kept > 400 && kept < 600);
/// assert!(m.iter().all(|&v| v == 0.0 || v == 2.0));
/// ```
#[track_caller]
pub fn bernoulli_mask(out: &mut [f32], p_drop: f32, seed: u64, stream: u64) {
    let threshold = keep_threshold(p_drop);
    let scale = keep_scale(p_drop);
    let mut bits = MaskBitsSimd::new(seed, stream);
    let mut chunks = out.chunks_exact_mut(MASK_BLOCK);
    for chunk in &mut chunks {
        let m = mask_values(bits.next_lanes(), threshold, scale);
        chunk.copy_from_slice(m.as_array());
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        // The remainder starts on a block boundary: the first lanes of one
        // more block.
        let m = mask_values(bits.next_lanes(), threshold, scale);
        rest.copy_from_slice(&m.as_array()[..rest.len()]);
    }
}

/// Scalar twin of [`bernoulli_mask`].
///
/// # Panics
/// If `p_drop` is not in `[0, 1)`.
#[track_caller]
pub fn bernoulli_mask_scalar(out: &mut [f32], p_drop: f32, seed: u64, stream: u64) {
    let threshold = keep_threshold(p_drop);
    let scale = keep_scale(p_drop);
    let mut bits = MaskBits::new(seed, stream);
    for v in out {
        *v = if bits.next_keep(threshold) {
            scale
        } else {
            0.0
        };
    }
}

/// `x *= mask`, elementwise (applies a mask from [`bernoulli_mask`], for
/// dropout on activations or dropconnect on a weight matrix).
///
/// Exact: equals [`apply_mask_scalar`].
///
/// # Panics
/// If the lengths differ.
#[track_caller]
pub fn apply_mask(x: &mut [f32], mask: &[f32]) {
    crate::reduce::check_same_len(x, mask, "apply_mask", "x", "mask");
    let mut xs = x.chunks_exact_mut(MASK_BLOCK);
    let mut ms = mask.chunks_exact(MASK_BLOCK);
    for (xc, mc) in (&mut xs).zip(&mut ms) {
        (f32x8::load(xc) * f32x8::load(mc)).store(xc);
    }
    apply_mask_scalar(xs.into_remainder(), ms.remainder());
}

/// Scalar twin of [`apply_mask`].
///
/// # Panics
/// If the lengths differ.
#[track_caller]
pub fn apply_mask_scalar(x: &mut [f32], mask: &[f32]) {
    crate::reduce::check_same_len(x, mask, "apply_mask", "x", "mask");
    for (v, &m) in x.iter_mut().zip(mask) {
        *v *= m;
    }
}

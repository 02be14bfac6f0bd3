//! `exp` and `ln` polynomials for the softmax kernels, written once over
//! [`Lane`].

use super::Lane;

/// Below this, [`exp_nonpositive`] returns 0: `e^-87.3` is about 1.2e-38,
/// just above the smallest normal f32 (and `round(-87.3 * log2(e)) = -126`,
/// so the power of two built there stays normal).
pub(crate) const EXP_FLUSH_BELOW: f32 = -87.3;

/// 1.5 * 2^23: adding it rounds to an integer (ties to even), which then
/// sits in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// `ln 2` in two parts (Cody-Waite): the high part has trailing zero bits,
/// so `r * LN2_HI` is exact for the `r` that occur.
const LN2_HI: f32 = 0.693_359_4;
/// See [`LN2_HI`].
const LN2_LO: f32 = -2.121_944_4e-4;

/// `e^x` for `x <= 0` (the shifted logits): `x = r ln2 + f` with integer `r`
/// and `|f| <= ln2 / 2` (Cody-Waite, `ln2` in two parts), `e^f` by its Taylor
/// polynomial to degree 7 (truncation below 1e-8 relative), times `2^r` built
/// in the exponent bits. `-inf` and anything below [`EXP_FLUSH_BELOW`] give
/// `+0.0`, NaN gives NaN. Not for `x > 0`. No branches, no tables.
#[inline(always)]
pub(crate) fn exp_nonpositive<S: Lane>(x: S) -> S {
    let t = x.mul_add(S::splat(std::f32::consts::LOG2_E), S::splat(ROUND));
    let r = t.sub(S::splat(ROUND));
    let f = r.mul_add(S::splat(-LN2_HI), x);
    let f = r.mul_add(S::splat(-LN2_LO), f);
    // e^f = 1 + f + f^2/2! + ... + f^7/7!, by Horner.
    let mut p = S::splat(1.0 / 5040.0);
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p.mul_add(f, S::splat(c));
    }
    // NaN: `p` is NaN and the comparison false, so NaN comes out.
    x.lt(S::splat(EXP_FLUSH_BELOW))
        .select(S::zero(), p.mul(S::pow2_of_rounded(t)))
}

/// `ln(x)` for the row sums of a softmax: `x >= 1` finite (the largest term
/// is `e^0 = 1`) or NaN, which stays NaN. `x = 2^e m` with `m` in
/// `[sqrt(1/2), sqrt(2))`, `ln m = 2 atanh(t)`, `t = (m - 1) / (m + 1)`, by
/// its series to `t^9` (`|t| <= 0.172`, truncation below 1e-9).
#[cfg_attr(target_feature = "fma", allow(dead_code))]
#[inline(always)]
pub(crate) fn ln_at_least_one<S: Lane>(x: S) -> S {
    let (m, e) = x.split_exponent();
    let big = m.gt(S::splat(std::f32::consts::SQRT_2));
    let m = big.select(m.mul(S::splat(0.5)), m);
    let e = big.select(e.add(S::splat(1.0)), e);
    let one = S::splat(1.0);
    let t = m.sub(one).div(m.add(one));
    let t2 = t.mul(t);
    let mut p = S::splat(1.0 / 9.0);
    for c in [1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
        p = p.mul_add(t2, S::splat(c));
    }
    let ln_m = t.add(t).mul(p);
    let ln = e.mul_add(S::splat(std::f32::consts::LN_2), ln_m);
    x.is_nan().select(x, ln)
}

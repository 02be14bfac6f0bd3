//! The short-row case of [`super::softmax_cross_entropy`] across rows: a
//! group of `S::LANES` rows is transposed into columns (lane `r` = row `r`),
//! and the prediction, maximum, `exp`, sum, `ln`, loss and gradient are all
//! lane-wise over the group, in the same sequential order over the columns
//! as the scalar twin. Short rows (a handful of classes) would otherwise
//! leave the lanes of a row-wise kernel mostly empty.
//!
//! Written once over [`Lane`]; the softmax runs it with AVX2 + FMA when a
//! build without FMA finds them at run time (the build's `wide` path is the
//! row-block one in `mod.rs`), and the tests run every instantiation.

use crate::simd::{exp_nonpositive, ln_at_least_one, Kernel, Lane, MAX_LANES};

/// Rows longer than this are not done in groups.
pub(super) const GROUP_MAX_COLS: usize = 16;

/// The softmax cross-entropy of the first `rows - rows % S::LANES` rows, as
/// a [`Kernel`]; see [`cross_entropy_groups`].
pub(super) struct GroupRows<'a> {
    /// `rows x cols` logits in, gradients out (only the grouped rows).
    pub(super) logits_then_grad: &'a mut [f32],
    /// `rows` labels, each `< cols`.
    pub(super) labels: &'a [u32],
    /// Columns, `1..=GROUP_MAX_COLS`.
    pub(super) cols: usize,
    /// The gradient scale `1 / N`.
    pub(super) inv_n: f32,
}

impl Kernel for GroupRows<'_> {
    type Output = (f64, usize, usize);
    #[inline(always)]
    fn run<S: Lane>(self) -> (f64, usize, usize) {
        cross_entropy_groups::<S>(self.logits_then_grad, self.labels, self.cols, self.inv_n)
    }
}

/// The rows of `x` (`labels.len() x cols`) in groups of `S::LANES`: their
/// gradients written in place as the public kernel does, and `(sum over
/// those rows of loss_r, correct rows, rows done)`; the rows after the last
/// full group are left untouched. The loss sum is not yet multiplied by
/// `inv_n`.
///
/// # Panics
/// If a label in the groups is `>= cols`, or `cols` is 0 or above
/// [`GROUP_MAX_COLS`].
#[inline(always)]
fn cross_entropy_groups<S: Lane>(
    x: &mut [f32],
    labels: &[u32],
    cols: usize,
    inv_n: f32,
) -> (f64, usize, usize) {
    assert!((1..=GROUP_MAX_COLS).contains(&cols));
    assert_eq!(x.len(), labels.len() * cols);
    let group = S::LANES;
    let done = labels.len() - labels.len() % group;
    let (mut loss, mut correct) = (0.0f64, 0usize);
    let mut t = [[0.0f32; MAX_LANES]; GROUP_MAX_COLS];
    let rows = x[..done * cols].chunks_exact_mut(group * cols);
    for (block, ys) in rows.zip(labels[..done].chunks_exact(group)) {
        let mut y_lanes = [0.0f32; MAX_LANES];
        for (l, &y) in y_lanes.iter_mut().zip(ys) {
            assert!(
                (y as usize) < cols,
                "softmax_cross_entropy: label {y} out of range for {cols} classes"
            );
            *l = y as f32;
        }
        // Transpose: t[c][r] = row r, column c.
        for (r, row) in block.chunks_exact(cols).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                t[c][r] = v;
            }
        }
        let y = S::load(&y_lanes);
        correct += group_in_columns::<S>(&mut t[..cols], y, group, inv_n, &mut loss);
        for (r, row) in block.chunks_exact_mut(cols).enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = t[c][r];
            }
        }
    }
    (loss, correct, done)
}

/// One transposed group: `t[c]` holds column `c` of the rows (lane `r` =
/// row `r`), `y` the labels as `f32` lanes. Overwrites `t` with the
/// gradients, adds the losses of the first `valid` rows to `loss` in row
/// order, and returns how many of those rows are correct (the lanes from
/// `valid` on are padding: their gradients are computed but mean nothing).
#[inline(always)]
pub(crate) fn group_in_columns<S: Lane>(
    t: &mut [[f32; MAX_LANES]],
    y: S,
    valid: usize,
    inv_n: f32,
    loss: &mut f64,
) -> usize {
    // Column pass 1: first maximum (`>`, so NaN never wins unless first),
    // maximum with the NaN rule, and the logit at the label.
    let (mut best, mut best_idx) = (S::load(&t[0]), S::zero());
    let mut max = S::splat(f32::NEG_INFINITY);
    let mut x_y = S::zero();
    for (c, col) in t.iter().enumerate() {
        let v = S::load(col);
        let c_v = S::splat(c as f32);
        let gt = v.gt(best);
        best = gt.select(v, best);
        best_idx = gt.select(c_v, best_idx);
        max = max.max_nan(v);
        x_y = c_v.eq(y).select(v, x_y);
    }
    let valid_bits = if valid >= 32 {
        u32::MAX
    } else {
        (1u32 << valid) - 1
    };
    let correct = (best_idx.eq(y).bitmask() & valid_bits).count_ones() as usize;
    // Column pass 2: exp(x - max) and the row sums, in column order.
    let mut sum = S::zero();
    for col in t.iter_mut() {
        let e = exp_nonpositive(S::load(col).sub(max));
        e.store(col);
        sum = sum.add(e);
    }
    // loss_r = ln(sum) - (x_y - max), added in row order in f64.
    let row_loss = ln_at_least_one(sum).sub(x_y.sub(max)).to_array();
    for &l in &row_loss[..valid.min(S::LANES)] {
        *loss += l as f64;
    }
    // dlogits = (softmax - onehot(y)) * inv_n, as (e * (1/sum * inv_n)) - inv_n.
    let inv_n_v = S::splat(inv_n);
    let scale = S::splat(1.0).div(sum).mul(inv_n_v);
    for (c, col) in t.iter_mut().enumerate() {
        let at_y = S::splat(c as f32).eq(y);
        S::load(col).mul(scale).sub(at_y.and(inv_n_v)).store(col);
    }
    correct
}

#[cfg(test)]
mod tests {
    //! The group engine on every vector type this CPU runs against the
    //! scalar twin, on every short width and row counts around the group
    //! size (including 31, 32, 33); the rows after the last full group (and
    //! a guard element past the buffer) stay untouched.

    use super::*;
    use crate::simd::testing::{isas, TestIsa};
    use crate::softmax::softmax_cross_entropy_scalar;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let specials = [
            0.0,
            -0.0,
            1e30,
            -1e30,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            88.0,
        ];
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (s >> 40) as u32;
                if u.is_multiple_of(11) {
                    specials[(u as usize / 11) % specials.len()]
                } else {
                    (u % 80_000) as f32 / 10_000.0 - 4.0
                }
            })
            .collect()
    }

    fn close(a: f32, b: f32, abs: f32) -> bool {
        if a.is_nan() || b.is_nan() {
            return a.is_nan() && b.is_nan();
        }
        a == b || (a - b).abs() <= abs.max(1e-5 * a.abs().max(b.abs()))
    }

    fn case(isa: TestIsa, rows: usize, cols: usize, specials: bool) {
        let seed = (cols * 1000 + rows) as u64 + specials as u64;
        let mut x = values(rows * cols, seed);
        if !specials {
            x.iter_mut().for_each(|v| {
                if !v.is_finite() || v.abs() > 10.0 {
                    *v = 0.5
                }
            });
        }
        let labels: Vec<u32> = (0..rows).map(|r| ((r * 7) % cols) as u32).collect();
        let inv_n = 1.0 / rows.max(1) as f32;
        let mut want = x.clone();
        let mut buf = x.clone();
        buf.push(f32::NAN);
        let len = rows * cols;
        let logits_then_grad = &mut buf[..len];
        let (loss, correct, done) = isa.run(GroupRows {
            logits_then_grad,
            labels: &labels,
            cols,
            inv_n,
        });
        let what = format!("{isa:?} {rows}x{cols} specials={specials}");
        assert_eq!(done % 8, 0, "{what}");
        assert!(rows - done < 16, "{what}");
        assert!(buf[len].is_nan(), "{what}: guard element written");
        let untouched = buf[done * cols..len].iter().zip(&x[done * cols..]);
        assert!(
            untouched
                .into_iter()
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{what}: tail rows written"
        );
        let twin = softmax_cross_entropy_scalar(
            &mut want[..done * cols],
            &labels[..done],
            done,
            cols,
            inv_n,
        );
        assert_eq!(correct, twin.correct, "{what}");
        let loss = loss * inv_n as f64;
        if twin.loss.is_nan() {
            assert!(loss.is_nan(), "{what}: {loss}");
        } else if twin.loss.is_infinite() {
            assert_eq!(loss, twin.loss, "{what}");
        } else {
            let tol = 1e-5 + 1e-6 * twin.loss.abs();
            assert!(
                (loss - twin.loss).abs() <= tol,
                "{what}: {loss} vs {}",
                twin.loss
            );
        }
        for (i, (&a, &b)) in buf[..done * cols].iter().zip(&want).enumerate() {
            assert!(
                close(a, b, 1e-5 * inv_n),
                "{what}: element {i}: {a:e} vs {b:e}"
            );
        }
    }

    #[test]
    fn every_instantiation_matches_scalar_twin_and_stays_in_bounds() {
        for isa in isas("softmax cross-entropy row groups") {
            for cols in 1..=GROUP_MAX_COLS {
                for rows in [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 300] {
                    case(isa, rows, cols, false);
                    case(isa, rows, cols, true);
                }
            }
        }
    }
}

//! The column strips of the fused kernels, the fast path for a narrow side
//! of at most `super::NARROW_MAX` and a wide side of at least one vector:
//! one engine over [`Lane`], run by [`crate::simd::dispatch`] with the
//! `wide` vectors of the build or AVX2 + FMA chosen at run time. The
//! vectors are 8 lanes in every build: 16-lane AVX-512 strips were measured
//! slower for the narrow layers these kernels serve.

use super::epilogue::{with_epilogue, Epilogue};
use crate::activation::Activation;
use crate::simd::{self, Kernel, Lane};

/// The arguments of [`forward_strips`], as a [`Kernel`].
pub(super) struct ForwardStrips<'a, const N: usize> {
    pub(super) act: Activation,
    pub(super) x: &'a [f32],
    pub(super) w: &'a [f32],
    pub(super) bias: &'a [f32],
    pub(super) n_out: usize,
    pub(super) a: &'a mut [f32],
}

impl<const N: usize> Kernel for ForwardStrips<'_, N> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        let (x, w, bias, n_out, a) = (self.x, self.w, self.bias, self.n_out, self.a);
        with_epilogue!(self.act, E => forward_strips::<S, E, N>(x, w, bias, n_out, a));
    }
}

/// Column strips of [`super::narrow_bias_relu_forward`] for `N` inputs and
/// `n_out >= S::LANES`: the `N` weight vectors and the bias of a strip stay
/// in registers while the rows stream past. A last partial vector overlaps
/// the one before it (recomputing the same values).
#[inline(always)]
fn forward_strips<S: Lane, E: Epilogue, const N: usize>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n_out: usize,
    a: &mut [f32],
) {
    let lanes = S::LANES;
    let mut j = 0;
    while j + 2 * lanes <= n_out {
        forward_strip::<S, E, N, 2>(x, w, bias, n_out, j, a);
        j += 2 * lanes;
    }
    if j + lanes <= n_out {
        forward_strip::<S, E, N, 1>(x, w, bias, n_out, j, a);
        j += lanes;
    }
    if j < n_out {
        forward_strip::<S, E, N, 1>(x, w, bias, n_out, n_out - lanes, a);
    }
}

/// One strip of `V` vectors at column `j` of [`forward_strips`].
#[inline(always)]
fn forward_strip<S: Lane, E: Epilogue, const N: usize, const V: usize>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n_out: usize,
    j: usize,
    a: &mut [f32],
) {
    let lanes = S::LANES;
    let wv: [[S; V]; N] =
        simd::array(|l| simd::array(|v| S::load(&w[l * n_out + j + v * lanes..])));
    let bv: [S; V] = simd::array(|v| S::load(&bias[j + v * lanes..]));
    for (xr, ar) in x.chunks_exact(N).zip(a.chunks_exact_mut(n_out)) {
        let out = &mut ar[j..j + V * lanes];
        let mut acc = bv;
        for (l, &xv) in xr.iter().enumerate() {
            let xs = S::splat(xv);
            for (s, &wl) in acc.iter_mut().zip(&wv[l]) {
                *s = xs.mul_add(wl, *s);
            }
        }
        for (o, v) in out.chunks_exact_mut(lanes).zip(acc) {
            E::forward(v).store(o);
        }
    }
}

/// The arguments of [`backward_strips`], as a [`Kernel`].
pub(super) struct BackwardStrips<'a, const K: usize, const DW: bool> {
    pub(super) act: Activation,
    pub(super) a_then_dz: &'a mut [f32],
    pub(super) ds: &'a [f32],
    pub(super) w_t: &'a [f32],
    pub(super) width: usize,
    pub(super) scale: f32,
    pub(super) db: &'a mut [f32],
    pub(super) dw: &'a mut [f32],
}

impl<const K: usize, const DW: bool> Kernel for BackwardStrips<'_, K, DW> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        let (ds, w_t, width, scale) = (self.ds, self.w_t, self.width, self.scale);
        let (a_then_dz, db, dw) = (self.a_then_dz, self.db, self.dw);
        with_epilogue!(self.act, E => {
            backward_strips::<S, E, K, DW>(a_then_dz, ds, w_t, width, scale, db, dw)
        });
    }
}

/// Column strips of [`super::narrow_relu_backward`] for `K` outputs and
/// `width >= S::LANES`: the `K` vectors of `W^T` and the running `db` of a
/// strip stay in registers while the rows stream past. A last partial vector
/// is done first, over the last `S::LANES` columns, and stores only its new
/// lanes (its other lanes add `+0.0` to `db`), since the later strips still
/// read `A`.
///
/// Strips are two vectors wide, one with `DW`: the dW sums take `K` more
/// registers per vector, and two vectors spill with 16 registers (AVX2);
/// with AVX-512's 32 registers the two tilings measured the same.
#[inline(always)]
fn backward_strips<S: Lane, E: Epilogue, const K: usize, const DW: bool>(
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    width: usize,
    scale: f32,
    db: &mut [f32],
    dw: &mut [f32],
) {
    let lanes = S::LANES;
    let rem = width % lanes;
    if rem != 0 {
        let keep = lanes - rem;
        let new_lanes = Some((S::lanes_from(keep), keep));
        let j = width - lanes;
        backward_strip::<S, E, K, 1, DW>(a_then_dz, ds, w_t, width, j, scale, db, dw, new_lanes);
    }
    let full = width - rem;
    let two = !DW;
    let mut j = 0;
    while two && j + 2 * lanes <= full {
        backward_strip::<S, E, K, 2, DW>(a_then_dz, ds, w_t, width, j, scale, db, dw, None);
        j += 2 * lanes;
    }
    while j < full {
        backward_strip::<S, E, K, 1, DW>(a_then_dz, ds, w_t, width, j, scale, db, dw, None);
        j += lanes;
    }
}

/// One strip of `V` vectors at column `j` of [`backward_strips`]; with
/// `new_lanes = Some((mask, first))` only the lanes in `mask` (from `first`
/// on) are stored.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_strip<S: Lane, E: Epilogue, const K: usize, const V: usize, const DW: bool>(
    a_then_dz: &mut [f32],
    ds: &[f32],
    w_t: &[f32],
    width: usize,
    j: usize,
    scale: f32,
    db: &mut [f32],
    dw: &mut [f32],
    new_lanes: Option<(S, usize)>,
) {
    let lanes = S::LANES;
    let s = S::splat(scale);
    let wv: [[S; V]; K] =
        simd::array(|c| simd::array(|v| S::load(&w_t[c * width + j + v * lanes..])));
    let dbs = &mut db[j..j + V * lanes];
    let mut dbv: [S; V] = simd::array(|v| S::load(&dbs[v * lanes..]));
    // dW^T[c, j..] of this strip, from zero (only with DW).
    let mut dwv = [[S::zero(); V]; K];
    for (dsr, ar) in ds.chunks_exact(K).zip(a_then_dz.chunks_exact_mut(width)) {
        let out = &mut ar[j..j + V * lanes];
        let mut acc = [S::zero(); V];
        let dv: [S; K] = simd::array(|c| S::splat(dsr[c]));
        for (c, &dv) in dv.iter().enumerate() {
            for (x, &wc) in acc.iter_mut().zip(&wv[c]) {
                *x = dv.mul_add(wc, *x);
            }
        }
        if DW {
            for (c, &dv) in dv.iter().enumerate() {
                for (v, o) in out.chunks_exact(lanes).enumerate() {
                    dwv[c][v] = S::load(o).mul_add(dv, dwv[c][v]);
                }
            }
        }
        for ((o, x), b) in out.chunks_exact_mut(lanes).zip(acc).zip(dbv.iter_mut()) {
            let av = S::load(o);
            let dz = E::backward(x, av, s);
            match new_lanes {
                None => {
                    dz.store(o);
                    *b = b.add(dz);
                }
                Some((m, _)) => {
                    m.select(dz, av).store(o);
                    *b = b.add(dz.and(m));
                }
            }
        }
    }
    for (d, v) in dbs.chunks_exact_mut(lanes).zip(dbv) {
        v.store(d);
    }
    if DW {
        let first = new_lanes.map_or(0, |(_, first)| first);
        add_strip_dw::<S, K, V>(dw, &dwv, j, first);
    }
}

/// Adds a strip's `dW^T` sums (`sums[c][v]` lane `t` for column
/// `j + LANES v + t`) to `dw` (`width x K`), skipping the first `first`
/// columns (those of a last partial vector that the other strips own).
#[inline(always)]
fn add_strip_dw<S: Lane, const K: usize, const V: usize>(
    dw: &mut [f32],
    sums: &[[S; V]; K],
    j: usize,
    first: usize,
) {
    let lanes = S::LANES;
    for (c, sc) in sums.iter().enumerate() {
        for (v, sv) in sc.iter().enumerate() {
            for (t, &x) in sv.to_array()[..lanes].iter().enumerate() {
                if v * lanes + t >= first {
                    dw[(j + v * lanes + t) * K + c] += x;
                }
            }
        }
    }
}

#[cfg(test)]
mod engine_tests {
    //! The strip engine, every instantiation (each `N`, `K` in
    //! `1..=NARROW_MAX`, with and without dW, on every vector type this CPU
    //! runs), against the scalar twins, over widths around the vector edges.
    //! Narrower widths (0, 1, 7) never reach the strips; `tests/fused.rs`
    //! covers them through the public entries.

    use super::*;
    use crate::activation::Activation;
    use crate::fused::{backward_scalar, forward_scalar};
    use crate::simd::testing::{data, isas, TestIsa};

    const ROWS: [usize; 4] = [0, 1, 3, 17];
    const WIDTHS: [usize; 12] = [8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 100, 515];

    fn close(a: f32, b: f32, terms: usize) -> bool {
        if a.is_nan() || b.is_nan() {
            return a.is_nan() && b.is_nan();
        }
        (a - b).abs() <= (terms as f32 + 1.0) * 1e-6 * (1.0 + b.abs())
    }

    fn forward_case<const N: usize>(isa: TestIsa, act: Activation, rows: usize, n_out: usize) {
        let x = data(rows * N, 1);
        let w = data(N * n_out, 2);
        let mut b = data(n_out, 3);
        b[n_out - 1] = f32::NAN;
        let mut got = vec![f32::NAN; rows * n_out];
        let mut want = vec![0.0; rows * n_out];
        let a = &mut got[..];
        isa.run(ForwardStrips::<N> {
            act,
            x: &x,
            w: &w,
            bias: &b,
            n_out,
            a,
        });
        forward_scalar(act, &x, &w, &b, rows, N, n_out, &mut want);
        for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
            assert!(
                close(g, e, N),
                "{isa:?} {act} {rows}x{N}x{n_out} at {i}: {g} vs {e}"
            );
            if act == Activation::Relu {
                assert_ne!(g.to_bits(), (-0.0f32).to_bits());
            }
        }
    }

    /// `(A with NaNs, dS, W^T, db, dW)` for a backward case.
    fn backward_data(rows: usize, width: usize, k: usize) -> [Vec<f32>; 5] {
        let a = data(rows * width, 4)
            .into_iter()
            .enumerate()
            .map(|(i, v)| if i % 11 == 5 { f32::NAN } else { v })
            .collect();
        let dw = data(width * k, 8);
        [a, data(rows * k, 5), data(k * width, 6), data(width, 7), dw]
    }

    fn backward_case<const K: usize, const DW: bool>(
        isa: TestIsa,
        act: Activation,
        rows: usize,
        width: usize,
    ) {
        let [a, ds, w_t, db0, dw0] = backward_data(rows, width, K);
        let (mut got, mut want) = (a.clone(), a.clone());
        let (mut db_got, mut db_want) = (db0.clone(), db0);
        let (mut dw_got, mut dw_want) = (dw0.clone(), dw0);
        let dw = if DW { &mut dw_got[..] } else { &mut [][..] };
        let (a_then_dz, db) = (&mut got[..], &mut db_got[..]);
        let scale = if act == Activation::Relu { 1.5 } else { 1.0 };
        isa.run(BackwardStrips::<K, DW> {
            act,
            a_then_dz,
            ds: &ds,
            w_t: &w_t,
            width,
            scale,
            db,
            dw,
        });
        let dw_want_opt = if DW { Some(&mut dw_want[..]) } else { None };
        backward_scalar(
            act,
            &mut want,
            &ds,
            &w_t,
            rows,
            width,
            K,
            scale,
            &mut db_want,
            dw_want_opt,
        );
        let what = format!("{isa:?} {act} {rows}x{width}x{K} dw={DW}");
        for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
            assert!(close(g, e, K), "{what} dZ at {i}: {g} vs {e}");
            if act == Activation::Relu && (a[i].is_nan() || a[i] <= 0.0) {
                assert_eq!(g.to_bits(), 0.0f32.to_bits(), "{what}: inactive at {i}");
            }
        }
        for (j, (&g, &e)) in db_got.iter().zip(&db_want).enumerate() {
            assert!(close(g, e, K * rows), "{what} db[{j}]: {g} vs {e}");
        }
        for (i, (&g, &e)) in dw_got.iter().zip(&dw_want).enumerate() {
            assert!(close(g, e, rows), "{what} dW[{i}]: {g} vs {e}");
        }
    }

    macro_rules! every_narrow_width {
        ($f:ident $(, $dw:literal)?; $isa:expr, $act:expr, $rows:expr, $width:expr) => {
            $f::<1 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<2 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<3 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<4 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<5 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<6 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<7 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<8 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<9 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<10 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<11 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<12 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<13 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<14 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<15 $(, $dw)?>($isa, $act, $rows, $width);
            $f::<16 $(, $dw)?>($isa, $act, $rows, $width);
        };
    }

    #[test]
    fn forward_strips_match_twin_for_every_n_in() {
        for isa in isas("fused forward strips") {
            for rows in ROWS {
                for n_out in WIDTHS {
                    for act in Activation::ALL {
                        every_narrow_width!(forward_case; isa, act, rows, n_out);
                    }
                }
            }
        }
    }

    #[test]
    fn backward_strips_match_twin_for_every_k() {
        for isa in isas("fused backward strips") {
            for rows in ROWS {
                for width in WIDTHS {
                    for act in Activation::ALL {
                        every_narrow_width!(backward_case, false; isa, act, rows, width);
                        every_narrow_width!(backward_case, true; isa, act, rows, width);
                    }
                }
            }
        }
    }
}

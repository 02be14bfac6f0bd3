//! The register tiles of the small-shape GEMM and the strided views they
//! read and write. Each tile is a [`Kernel`] entered through [`Lane::enter`],
//! so an ISA compiles it with its own instructions while the loops around
//! it (`small.rs`) stay generic.

use super::Transpose;
use crate::simd::{self, Kernel, Lane};

/// `f32` lanes of one vector (the engine runs on 8-lane vectors).
const LANES: usize = 8;

/// A strided read-only matrix: element `(r, c)` is `d[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub(super) d: &'a [f32],
    pub(super) rs: usize,
    pub(super) cs: usize,
}

impl<'a> View<'a> {
    /// `op(X)` of a stored operand, `rows x cols` after `op`.
    pub(super) fn of(d: &'a [f32], t: Transpose, rows: usize, cols: usize) -> Self {
        match t {
            Transpose::No => View { d, rs: cols, cs: 1 },
            Transpose::Yes => View { d, rs: 1, cs: rows },
        }
    }

    /// The transpose (no copy).
    pub(super) fn t(self) -> Self {
        View {
            d: self.d,
            rs: self.cs,
            cs: self.rs,
        }
    }

    #[inline(always)]
    pub(super) fn at(&self, r: usize, c: usize) -> f32 {
        self.d[r * self.rs + c * self.cs]
    }

    /// Columns `from..` (a view of the same matrix without its first columns).
    pub(super) fn skip_cols(self, from: usize) -> Self {
        View {
            d: &self.d[from * self.cs..],
            ..self
        }
    }

    /// Rows `from..`.
    fn skip_rows(self, from: usize) -> Self {
        View {
            d: &self.d[from * self.rs..],
            ..self
        }
    }
}

/// Where a kernel writes: `out(p, q)` is `c[p * rs + q * cs]`, set to
/// `alpha * acc + beta * out(p, q)` (not read when `beta == 0`).
pub(super) struct Dest<'c> {
    pub(super) c: &'c mut [f32],
    pub(super) rs: usize,
    pub(super) cs: usize,
    pub(super) alpha: f32,
    pub(super) beta: f32,
}

impl Dest<'_> {
    #[inline(always)]
    fn put(&mut self, p: usize, q: usize, acc: f32) {
        let i = p * self.rs + q * self.cs;
        let v = self.alpha * acc;
        self.c[i] = if self.beta == 0.0 {
            v
        } else {
            v + self.beta * self.c[i]
        };
    }

    /// Writes lanes `lanes.0..lanes.1` of `acc` to `out(p, q + t)`.
    #[inline(always)]
    fn put8<S: Lane>(&mut self, p: usize, q: usize, acc: S, lanes: (usize, usize)) {
        if self.cs == 1 && lanes == (0, LANES) {
            let i = p * self.rs + q;
            let dst: &mut [f32; LANES] = (&mut self.c[i..i + LANES]).try_into().unwrap();
            let v = acc.mul(S::splat(self.alpha));
            let r = if self.beta == 0.0 {
                v
            } else {
                S::load(dst).mul_add(S::splat(self.beta), v)
            };
            r.store(dst);
        } else {
            let arr = acc.to_array();
            for (t, &v) in arr.iter().enumerate().take(lanes.1).skip(lanes.0) {
                self.put(p, q + t, v);
            }
        }
    }

    /// Writes an `R x (8 V)` tile at `(p0, q0)`; only lanes `lanes.0..lanes.1`
    /// of each vector.
    #[inline(always)]
    fn put_tile<S: Lane, const R: usize, const V: usize>(
        &mut self,
        p0: usize,
        q0: usize,
        acc: &[[S; V]; R],
        lanes: (usize, usize),
    ) {
        if self.cs == 1 && lanes == (0, LANES) {
            let alpha = S::splat(self.alpha);
            let beta = S::splat(self.beta);
            for (r, acc_r) in acc.iter().enumerate() {
                let out = &mut self.c[(p0 + r) * self.rs + q0..][..V * LANES];
                for (dst, &a) in out.chunks_exact_mut(LANES).zip(acc_r) {
                    let v = a.mul(alpha);
                    let v = if self.beta == 0.0 {
                        v
                    } else {
                        S::load(dst).mul_add(beta, v)
                    };
                    v.store(dst);
                }
            }
        } else {
            for (r, acc_r) in acc.iter().enumerate() {
                for (v, &a) in acc_r.iter().enumerate() {
                    self.put8(p0 + r, q0 + v * LANES, a, lanes);
                }
            }
        }
    }

    /// The same destination shifted by `q0` columns, with another `beta`.
    pub(super) fn cols_from(&mut self, q0: usize, beta: f32) -> Dest<'_> {
        Dest {
            c: &mut self.c[q0 * self.cs..],
            rs: self.rs,
            cs: self.cs,
            alpha: self.alpha,
            beta,
        }
    }
}

/// One step of [`axpy_tile_impl`]: `acc[r][v] += pv[r] * row[8 v ..]`.
///
/// A function rather than a closure (here and in [`dot_tile_impl`]): closures do
/// not inherit `#[target_feature]`, and the AVX2 instantiation must inline
/// every vector operation into its `#[target_feature]` caller.
#[inline(always)]
fn axpy_step<S: Lane, const R: usize, const V: usize>(
    acc: &mut [[S; V]; R],
    pv: [f32; R],
    row: &[f32],
) {
    let qv: [S; V] = load_n(&row[..V * LANES], 0);
    for (acc_r, &a) in acc.iter_mut().zip(&pv) {
        let a = S::splat(a);
        for (s, &b) in acc_r.iter_mut().zip(&qv) {
            *s = a.mul_add(b, *s);
        }
    }
}

/// `N` consecutive vectors of `row`, starting at `at`.
#[inline(always)]
fn load_n<S: Lane, const N: usize>(row: &[f32], at: usize) -> [S; N] {
    let mut out = [S::zero(); N];
    for (v, o) in out.iter_mut().enumerate() {
        *o = S::load(&row[at + v * LANES..]);
    }
    out
}

/// `N` vectors loaded from `rows[i][at..]`, each and-ed with `mask`.
#[inline(always)]
fn load_rows<S: Lane, const N: usize>(rows: &[&[f32]; N], at: usize, mask: Option<S>) -> [S; N] {
    let mut out = [S::zero(); N];
    for (o, row) in out.iter_mut().zip(rows) {
        let v = S::load(&row[at..]);
        *o = match mask {
            Some(m) => v.and(m),
            None => v,
        };
    }
    out
}

/// `acc[r][c] += pv[r] * qv[c]` (lanewise) for [`dot_tile_impl`].
#[inline(always)]
fn dot_step<S: Lane, const R: usize, const C: usize>(
    acc: &mut [[S; C]; R],
    pv: &[S; R],
    qv: &[S; C],
) {
    for (acc_r, &a) in acc.iter_mut().zip(pv) {
        for (s, &b) in acc_r.iter_mut().zip(qv) {
            *s = a.mul_add(b, *s);
        }
    }
}

/// The arguments of [`axpy_tile_impl`], as a [`Kernel`]: each register
/// tile is entered through [`Lane::enter`], so an ISA compiles it with its
/// own instructions while the loops around it stay generic.
pub(super) struct AxpyTile<'v, 'd, 'c, const R: usize, const V: usize> {
    pub(super) p: View<'v>,
    pub(super) q: View<'v>,
    pub(super) k: usize,
    pub(super) p0: usize,
    pub(super) q0: usize,
    pub(super) lanes: (usize, usize),
    pub(super) dest: &'d mut Dest<'c>,
}

impl<const R: usize, const V: usize> Kernel for AxpyTile<'_, '_, '_, R, V> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        let (p, q, k, p0, q0) = (self.p, self.q, self.k, self.p0, self.q0);
        axpy_tile_impl::<S, R, V>(p, q, k, p0, q0, self.lanes, self.dest);
    }
}

/// The arguments of [`dot_tile_impl`], as a [`Kernel`] (see [`AxpyTile`]).
pub(super) struct DotTile<'v, 'd, 'c, const R: usize, const C: usize> {
    pub(super) p: View<'v>,
    pub(super) qt: View<'v>,
    pub(super) k: usize,
    pub(super) p0: usize,
    pub(super) q0: usize,
    pub(super) dest: &'d mut Dest<'c>,
}

impl<const R: usize, const C: usize> Kernel for DotTile<'_, '_, '_, R, C> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        dot_tile_impl::<S, R, C>(self.p, self.qt, self.k, self.p0, self.q0, self.dest);
    }
}

/// One `R x (8 V)` register tile: `acc[r][v] += P(p0 + r, l) * Q(l, q0 + 8 v ..)`.
/// `P` has contiguous rows (`cs == 1`) or contiguous columns (`rs == 1`).
#[inline(always)]
fn axpy_tile_impl<S: Lane, const R: usize, const V: usize>(
    p: View,
    q: View,
    k: usize,
    p0: usize,
    q0: usize,
    lanes: (usize, usize),
    dest: &mut Dest,
) {
    let mut acc = [[S::zero(); V]; R];
    // Row l of Q starts at l * q.rs + q0 (rows hold at least 8 V columns
    // past q0; with k == 1 the stride does not matter).
    let q_rows = q.d[q0..].chunks(q.rs.max(V * LANES)).take(k);
    if p.cs == 1 {
        let prow: [&[f32]; R] = simd::array(|r| &p.d[(p0 + r) * p.rs..][..k]);
        for (l, row) in q_rows.enumerate() {
            axpy_step(&mut acc, simd::array(|r| prow[r][l]), row);
        }
    } else {
        debug_assert_eq!(p.rs, 1);
        for (l, row) in q_rows.enumerate() {
            let col = &p.d[l * p.cs + p0..][..R];
            axpy_step(&mut acc, simd::array(|r| col[r]), row);
        }
    }
    dest.put_tile(p0, q0, &acc, lanes);
}

/// One `R x C` tile of dot products `P(p0 + r, :) . Q^T(q0 + c, :)`.
#[inline(always)]
fn dot_tile_impl<S: Lane, const R: usize, const C: usize>(
    p: View,
    qt: View,
    k: usize,
    p0: usize,
    q0: usize,
    dest: &mut Dest,
) {
    let prow: [&[f32]; R] = simd::array(|r| &p.skip_rows(p0 + r).d[..k]);
    let qrow: [&[f32]; C] = simd::array(|c| &qt.skip_rows(q0 + c).d[..k]);
    let mut acc = [[S::zero(); C]; R];
    let full = k / LANES * LANES;
    for l in (0..full).step_by(LANES) {
        let pv: [S; R] = load_rows(&prow, l, None);
        let qv: [S; C] = load_rows(&qrow, l, None);
        dot_step(&mut acc, &pv, &qv);
    }
    let rem = k - full;
    if rem != 0 {
        let (pv, qv): ([S; R], [S; C]) = if k >= LANES {
            // The last full vector, with the lanes already summed masked out
            // of both operands (bitwise, so 0 * inf cannot make a NaN).
            let mask = S::lanes_from(LANES - rem);
            (
                load_rows(&prow, k - LANES, Some(mask)),
                load_rows(&qrow, k - LANES, Some(mask)),
            )
        } else {
            let mut pv = [S::zero(); R];
            for (v, row) in pv.iter_mut().zip(&prow) {
                *v = S::load_padded(row, 0.0);
            }
            let mut qv = [S::zero(); C];
            for (v, row) in qv.iter_mut().zip(&qrow) {
                *v = S::load_padded(row, 0.0);
            }
            (pv, qv)
        };
        dot_step(&mut acc, &pv, &qv);
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (c, &s) in acc_r.iter().enumerate() {
            dest.put(p0 + r, q0 + c, s.reduce_add());
        }
    }
}

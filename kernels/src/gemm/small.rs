//! The small-shape GEMM engine: register-tiled loops without packing,
//! written once over [`Lane`] and instantiated per ISA by
//! [`simd::dispatch`] (the `wide` vectors of the build, or AVX2 + FMA chosen
//! at run time). Strided operands are staged through stack buffers, so no
//! path allocates.

use super::{trivial_product, Transpose};
use crate::simd::{self, Kernel, Lane};

/// `f32` lanes of one vector (the engine runs on 8-lane vectors).
const LANES: usize = 8;

/// Capacity, in `f32`, of the stack buffer into which a strided operand is
/// copied (32 KiB: fits in L1 with room to spare). Larger operands are
/// processed in chunks of this size, so no path allocates.
const STAGE: usize = 8192;

/// The stack buffer for operands that fit in 4 KiB (e.g. the spiral's
/// `W2^T`, 300 elements): zeroing the full [`STAGE`] would cost more than
/// the copy itself.
const SMALL_STAGE: usize = 1024;

/// Register tiles of the axpy kernel: rows of `P` broadcast times vectors
/// of `Q`. 4 x 3 (24 columns) in general; 6 x 2 when `P` has 5 to 12 rows,
/// so that e.g. 10 classes take two passes over `Q` instead of three.
/// 4 x 3 rather than 4 x 4: with 16 vector registers (AVX2) 4 x 4 spills its
/// sums to the stack, and with AVX-512 4 x 3 measured faster too (the
/// README keeps the figures).
const AXPY_WIDE: (usize, usize) = (4, 3);
/// See [`AXPY_WIDE`].
const AXPY_TALL: (usize, usize) = (6, 2);

/// Register tile of the dot kernel: rows of `P` times rows of `Q`.
const DOT_TILE: usize = 4;

/// The `wide` kernel used by [`gemm_small`].
///
/// Each kernel accepts every shape and transpose combination; an operand
/// that is not laid out the way a kernel reads it is copied (transposed,
/// zero-padded) in chunks into a fixed-size stack buffer first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmallKernel {
    /// SIMD along the columns of `C`: for each `l`, `C[i, j..j+8] +=
    /// op(A)[i, l] * op(B)[l, j..j+8]`, over a register tile of 4 rows x 24
    /// columns. Best when `n >= 16`. Reads `op(B)` rows in place when
    /// `tb == No` and `n >= 8`, and stages them otherwise.
    Axpy,
    /// [`SmallKernel::Axpy`] applied to `C^T = op(B)^T * op(A)^T`: SIMD along
    /// the rows of `C`. Best for a small `n` with a large `m`, e.g.
    /// `A^T * dS` with few classes. Reads `A` in place when `ta == Yes` and
    /// `m >= 8`, and stages it otherwise.
    AxpyTransposed,
    /// Dot products along `k`: `C[i, j] = op(A)[i, :] . op(B)[:, j]`, SIMD
    /// over `l`, register tile of 4 x 4 outputs. Best for a small `n` with a
    /// long `k`, e.g. `A * W2` with few classes. Reads `A` rows in place and
    /// needs `ta == No` (with `ta == Yes` it runs
    /// [`SmallKernel::AxpyTransposed`]); reads `B` in place when
    /// `tb == Yes` and stages `op(B)^T` otherwise.
    Dot,
}

/// The kernel [`super::gemm`] uses for a small shape.
///
/// - `n >= 16`, or `n >= 8` with `m < 8`: [`SmallKernel::Axpy`] (full
///   vectors along `n`).
/// - otherwise, `ta == No` and `k >= 16`: [`SmallKernel::Dot`] (full vectors
///   along `k`).
/// - otherwise, `m >= 8`: [`SmallKernel::AxpyTransposed`] (full vectors
///   along `m`).
/// - otherwise (`m`, `n` both below 8): [`SmallKernel::Axpy`].
pub fn small_kernel(ta: Transpose, _tb: Transpose, m: usize, n: usize, k: usize) -> SmallKernel {
    if n >= 16 || (n >= LANES && m < LANES) {
        SmallKernel::Axpy
    } else if ta == Transpose::No && k >= 16 {
        SmallKernel::Dot
    } else if m >= LANES {
        SmallKernel::AxpyTransposed
    } else {
        SmallKernel::Axpy
    }
}

/// `C = alpha * op(A) * op(B) + beta * C` through the chosen `wide` kernel,
/// without packing and without heap allocation. Same contract as [`super::gemm`];
/// every kernel is valid for every shape (see [`SmallKernel`]), [`super::gemm`]
/// picks one with [`small_kernel`].
///
/// Results agree with [`super::gemm_scalar`] up to summation order and fused
/// multiply-adds.
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::gemm::{gemm_small, SmallKernel, Transpose};
/// let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
/// let b = [1.0, 1.0, 1.0]; // 3 x 1
/// for kernel in [SmallKernel::Axpy, SmallKernel::AxpyTransposed, SmallKernel::Dot] {
///     let mut c = [f32::NAN; 2];
///     gemm_small(kernel, Transpose::No, Transpose::No, 2, 1, 3, 1.0, &a, &b, 0.0, &mut c);
///     assert_eq!(c, [6.0, 15.0]);
/// }
/// ```
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn gemm_small(
    kernel: SmallKernel,
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    if !trivial_product(m, n, k, alpha, a, b, beta, c) {
        run(kernel, ta, tb, m, n, k, alpha, a, b, beta, c);
    }
}

/// The body of [`gemm_small`] after the shape check and the trivial
/// products (`m`, `n`, `k` nonzero, `alpha != 0`), with the vector type
/// [`simd::dispatch`] picks.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(super) fn run(
    kernel: SmallKernel,
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    simd::dispatch(SmallRun {
        kernel,
        ta,
        tb,
        shape: (m, n, k),
        alpha,
        a,
        b,
        beta,
        c,
    });
}

/// The arguments of [`small_run`], as a [`Kernel`].
struct SmallRun<'a> {
    kernel: SmallKernel,
    ta: Transpose,
    tb: Transpose,
    shape: (usize, usize, usize),
    alpha: f32,
    a: &'a [f32],
    b: &'a [f32],
    beta: f32,
    c: &'a mut [f32],
}

impl Kernel for SmallRun<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        let (m, n, k) = self.shape;
        let (a, b) = (self.a, self.b);
        let (ta, tb, alpha, beta) = (self.ta, self.tb, self.alpha, self.beta);
        small_run::<S>(self.kernel, ta, tb, m, n, k, alpha, a, b, beta, self.c);
    }
}

/// The body of [`gemm_small`] for one vector type, after the shape checks
/// and the empty cases (`m`, `n`, `k` nonzero, `alpha != 0`).
#[allow(clippy::too_many_arguments)]
fn small_run<S: Lane>(
    kernel: SmallKernel,
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    const { assert!(S::LANES == LANES) };
    let op_a = View::of(a, ta, m, k);
    let op_b = View::of(b, tb, k, n);
    let dest = Dest {
        c,
        rs: n,
        cs: 1,
        alpha,
        beta,
    };
    match kernel {
        SmallKernel::Dot if ta == Transpose::No => dot::<S>(op_a, op_b, m, n, k, dest),
        SmallKernel::Axpy => axpy::<S>(op_a, op_b, m, n, k, dest),
        SmallKernel::AxpyTransposed | SmallKernel::Dot => {
            // C^T = op(B)^T * op(A)^T, written through swapped strides.
            let dest = Dest {
                rs: 1,
                cs: n,
                ..dest
            };
            axpy::<S>(op_b.t(), op_a.t(), n, m, k, dest)
        }
    }
}

/// A strided read-only matrix: element `(r, c)` is `d[r * rs + c * cs]`.
#[derive(Clone, Copy)]
struct View<'a> {
    d: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// `op(X)` of a stored operand, `rows x cols` after `op`.
    fn of(d: &'a [f32], t: Transpose, rows: usize, cols: usize) -> Self {
        match t {
            Transpose::No => View { d, rs: cols, cs: 1 },
            Transpose::Yes => View { d, rs: 1, cs: rows },
        }
    }

    /// The transpose (no copy).
    fn t(self) -> Self {
        View {
            d: self.d,
            rs: self.cs,
            cs: self.rs,
        }
    }

    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> f32 {
        self.d[r * self.rs + c * self.cs]
    }

    /// Columns `from..` (a view of the same matrix without its first columns).
    fn skip_cols(self, from: usize) -> Self {
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
struct Dest<'c> {
    c: &'c mut [f32],
    rs: usize,
    cs: usize,
    alpha: f32,
    beta: f32,
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
    fn cols_from(&mut self, q0: usize, beta: f32) -> Dest<'_> {
        Dest {
            c: &mut self.c[q0 * self.cs..],
            rs: self.rs,
            cs: self.cs,
            alpha: self.alpha,
            beta,
        }
    }
}

/// `out = op(P) * Q` (`mp x k` times `k x nq`), SIMD along `nq`.
fn axpy<S: Lane>(p: View, q: View, mp: usize, nq: usize, k: usize, mut dest: Dest) {
    if q.cs == 1 && nq >= LANES {
        axpy_run::<S>(p, q, mp, nq, k, false, &mut dest);
        return;
    }
    if k * nq.div_ceil(LANES) * LANES <= SMALL_STAGE {
        axpy_staged::<S, SMALL_STAGE>(p, q, mp, nq, k, dest);
    } else {
        axpy_staged::<S, STAGE>(p, q, mp, nq, k, dest);
    }
}

/// [`axpy`] through a stack buffer of `CAP` elements.
fn axpy_staged<S: Lane, const CAP: usize>(
    p: View,
    q: View,
    mp: usize,
    nq: usize,
    k: usize,
    mut dest: Dest,
) {
    // Stage column chunks of Q, zero-padded to whole vectors, in k chunks.
    let mut stage = [0.0f32; CAP];
    let k_chunk = CAP / LANES;
    let mut l0 = 0;
    while l0 < k {
        let kc = k_chunk.min(k - l0);
        let beta = if l0 == 0 { dest.beta } else { 1.0 };
        let cols = (CAP / kc / LANES * LANES).min(nq.div_ceil(LANES) * LANES);
        let mut q0 = 0;
        while q0 < nq {
            let nc = cols.min(nq - q0);
            let width = nc.div_ceil(LANES) * LANES;
            for l in 0..kc {
                let row = &mut stage[l * width..(l + 1) * width];
                for (t, v) in row.iter_mut().enumerate() {
                    *v = if t < nc { q.at(l0 + l, q0 + t) } else { 0.0 };
                }
            }
            let staged = View {
                d: &stage[..kc * width],
                rs: width,
                cs: 1,
            };
            let mut sub = dest.cols_from(q0, beta);
            axpy_run::<S>(p.skip_cols(l0), staged, mp, nc, kc, true, &mut sub);
            q0 += nc;
        }
        l0 += kc;
    }
}

/// The register-tiled loops of [`axpy`]; `q.cs == 1`. A last partial vector
/// reads past `nq` when `padded` (the stage holds zeros there), and
/// otherwise overlaps the previous vector (`nq >= 8`), writing only its new
/// lanes.
fn axpy_run<S: Lane>(
    p: View,
    q: View,
    mp: usize,
    nq: usize,
    k: usize,
    padded: bool,
    dest: &mut Dest,
) {
    if mp > AXPY_WIDE.0 && mp <= 2 * AXPY_TALL.0 {
        axpy_blocks::<S, { AXPY_TALL.0 }, { AXPY_TALL.1 }>(p, q, mp, nq, k, padded, dest);
    } else {
        axpy_blocks::<S, { AXPY_WIDE.0 }, { AXPY_WIDE.1 }>(p, q, mp, nq, k, padded, dest);
    }
}

/// [`axpy_run`] with `R x V` tiles.
fn axpy_blocks<S: Lane, const R: usize, const V: usize>(
    p: View,
    q: View,
    mp: usize,
    nq: usize,
    k: usize,
    padded: bool,
    dest: &mut Dest,
) {
    let block = V * LANES;
    let mut q0 = 0;
    while q0 + block <= nq {
        axpy_rows::<S, R, V>(p, q, mp, k, q0, (0, LANES), dest);
        q0 += block;
    }
    match (nq - q0) / LANES {
        1 => axpy_rows::<S, R, 1>(p, q, mp, k, q0, (0, LANES), dest),
        2 => axpy_rows::<S, R, 2>(p, q, mp, k, q0, (0, LANES), dest),
        3 => axpy_rows::<S, R, 3>(p, q, mp, k, q0, (0, LANES), dest),
        _ => {}
    }
    let rem = nq % LANES;
    if rem != 0 {
        if padded {
            axpy_rows::<S, R, 1>(p, q, mp, k, nq - rem, (0, rem), dest);
        } else {
            axpy_rows::<S, R, 1>(p, q, mp, k, nq - LANES, (LANES - rem, LANES), dest);
        }
    }
}

/// All row tiles of [`axpy_run`] for `V` vectors starting at column `q0`.
#[allow(clippy::too_many_arguments)]
fn axpy_rows<S: Lane, const R: usize, const V: usize>(
    p: View,
    q: View,
    mp: usize,
    k: usize,
    q0: usize,
    lanes: (usize, usize),
    dest: &mut Dest,
) {
    let mut p0 = 0;
    while p0 + R <= mp {
        S::enter(AxpyTile::<R, V> {
            p,
            q,
            k,
            p0,
            q0,
            lanes,
            dest,
        });
        p0 += R;
    }
    match mp - p0 {
        1 => S::enter(AxpyTile::<1, V> {
            p,
            q,
            k,
            p0,
            q0,
            lanes,
            dest,
        }),
        2 => S::enter(AxpyTile::<2, V> {
            p,
            q,
            k,
            p0,
            q0,
            lanes,
            dest,
        }),
        3 => S::enter(AxpyTile::<3, V> {
            p,
            q,
            k,
            p0,
            q0,
            lanes,
            dest,
        }),
        4 => S::enter(AxpyTile::<4, V> {
            p,
            q,
            k,
            p0,
            q0,
            lanes,
            dest,
        }),
        5 => S::enter(AxpyTile::<5, V> {
            p,
            q,
            k,
            p0,
            q0,
            lanes,
            dest,
        }),
        _ => {}
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
struct AxpyTile<'v, 'd, 'c, const R: usize, const V: usize> {
    p: View<'v>,
    q: View<'v>,
    k: usize,
    p0: usize,
    q0: usize,
    lanes: (usize, usize),
    dest: &'d mut Dest<'c>,
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
struct DotTile<'v, 'd, 'c, const R: usize, const C: usize> {
    p: View<'v>,
    qt: View<'v>,
    k: usize,
    p0: usize,
    q0: usize,
    dest: &'d mut Dest<'c>,
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
        let prow: [&[f32]; R] = std::array::from_fn(|r| &p.d[(p0 + r) * p.rs..][..k]);
        for (l, row) in q_rows.enumerate() {
            axpy_step(&mut acc, std::array::from_fn(|r| prow[r][l]), row);
        }
    } else {
        debug_assert_eq!(p.rs, 1);
        for (l, row) in q_rows.enumerate() {
            let col = &p.d[l * p.cs + p0..][..R];
            axpy_step(&mut acc, std::array::from_fn(|r| col[r]), row);
        }
    }
    dest.put_tile(p0, q0, &acc, lanes);
}

/// `out = P * Q` (`mp x k` times `k x nq`) as dot products along `k`;
/// `p.cs == 1`. `Q^T` is read in place when its rows are contiguous and
/// staged in column chunks otherwise.
fn dot<S: Lane>(p: View, q: View, mp: usize, nq: usize, k: usize, mut dest: Dest) {
    let qt = q.t();
    if qt.cs == 1 {
        dot_run::<S>(p, qt, mp, nq, k, &mut dest);
        return;
    }
    if k * nq <= SMALL_STAGE {
        dot_staged::<S, SMALL_STAGE>(p, q, mp, nq, k, dest);
    } else {
        dot_staged::<S, STAGE>(p, q, mp, nq, k, dest);
    }
}

/// [`dot`] with `Q^T` staged through a stack buffer of `CAP` elements.
fn dot_staged<S: Lane, const CAP: usize>(
    p: View,
    q: View,
    mp: usize,
    nq: usize,
    k: usize,
    mut dest: Dest,
) {
    let mut stage = [0.0f32; CAP];
    let mut l0 = 0;
    while l0 < k {
        let kc = CAP.min(k - l0);
        let beta = if l0 == 0 { dest.beta } else { 1.0 };
        let cols = CAP / kc;
        let mut q0 = 0;
        while q0 < nq {
            let nc = cols.min(nq - q0);
            for j in 0..nc {
                for (l, v) in stage[j * kc..(j + 1) * kc].iter_mut().enumerate() {
                    *v = q.at(l0 + l, q0 + j);
                }
            }
            let staged = View {
                d: &stage[..nc * kc],
                rs: kc,
                cs: 1,
            };
            let mut sub = dest.cols_from(q0, beta);
            dot_run::<S>(p.skip_cols(l0), staged, mp, nc, kc, &mut sub);
            q0 += nc;
        }
        l0 += kc;
    }
}

/// The register-tiled loops of [`dot`]; `p.cs == 1` and `qt.cs == 1`.
fn dot_run<S: Lane>(p: View, qt: View, mp: usize, nq: usize, k: usize, dest: &mut Dest) {
    let tile = if S::FEW_REGISTERS { 3 } else { DOT_TILE };
    let mut p0 = 0;
    while p0 + tile <= mp {
        if S::FEW_REGISTERS {
            dot_cols::<S, 3>(p, qt, nq, k, p0, dest);
        } else {
            dot_cols::<S, DOT_TILE>(p, qt, nq, k, p0, dest);
        }
        p0 += tile;
    }
    match mp - p0 {
        1 => dot_cols::<S, 1>(p, qt, nq, k, p0, dest),
        2 => dot_cols::<S, 2>(p, qt, nq, k, p0, dest),
        3 => dot_cols::<S, 3>(p, qt, nq, k, p0, dest),
        _ => {}
    }
}

/// All column tiles of [`dot_run`] for `R` rows starting at `p0`.
fn dot_cols<S: Lane, const R: usize>(
    p: View,
    qt: View,
    nq: usize,
    k: usize,
    p0: usize,
    dest: &mut Dest,
) {
    let mut q0 = 0;
    while q0 + DOT_TILE <= nq {
        S::enter(DotTile::<R, DOT_TILE> {
            p,
            qt,
            k,
            p0,
            q0,
            dest,
        });
        q0 += DOT_TILE;
    }
    match nq - q0 {
        1 => S::enter(DotTile::<R, 1> {
            p,
            qt,
            k,
            p0,
            q0,
            dest,
        }),
        2 => S::enter(DotTile::<R, 2> {
            p,
            qt,
            k,
            p0,
            q0,
            dest,
        }),
        3 => S::enter(DotTile::<R, 3> {
            p,
            qt,
            k,
            p0,
            q0,
            dest,
        }),
        _ => {}
    }
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
    let prow: [&[f32]; R] = std::array::from_fn(|r| &p.skip_rows(p0 + r).d[..k]);
    let qrow: [&[f32]; C] = std::array::from_fn(|c| &qt.skip_rows(q0 + c).d[..k]);
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

#[cfg(test)]
mod tests {
    //! The small-shape engine on every vector type this CPU runs (the `wide`
    //! one of the build and AVX2 + FMA), every kernel and transpose, against
    //! [`super::super::gemm_scalar`]: shapes around the vector and tile edges
    //! (including 31, 32, 33), `C` between guards, `beta == 0` with NaN in
    //! `C`. Tolerance as in `tests/gemm.rs`: `2 (k + 2) eps` times the sum of
    //! the magnitudes of the terms.

    use super::*;
    use crate::gemm::gemm_scalar;
    use crate::simd::testing::{data, isas, TestIsa};

    const GUARD: usize = 11;
    const DIMS: [usize; 17] = [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 24, 25, 31, 32, 33, 100];

    struct Case<'a> {
        shape: (usize, usize, usize),
        a: &'a [f32],
        b: &'a [f32],
        c0: &'a [f32],
        mag: &'a [f32],
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        isa: TestIsa,
        kernel: SmallKernel,
        ta: Transpose,
        tb: Transpose,
        alpha: f32,
        beta: f32,
        case: &Case,
    ) {
        let (m, n, k) = case.shape;
        let start = if beta == 0.0 {
            vec![f32::NAN; m * n]
        } else {
            case.c0.to_vec()
        };
        let mut want = start.clone();
        gemm_scalar(ta, tb, m, n, k, alpha, case.a, case.b, beta, &mut want);
        let mut buf = vec![7.5f32; m * n + 2 * GUARD];
        buf[GUARD..GUARD + m * n].copy_from_slice(&start);
        let c = &mut buf[GUARD..GUARD + m * n];
        let (a, b) = (case.a, case.b);
        isa.run(SmallRun {
            kernel,
            ta,
            tb,
            shape: case.shape,
            alpha,
            a,
            b,
            beta,
            c,
        });
        let what = format!("{isa:?} {kernel:?} {ta:?}{tb:?} {m}x{n}x{k} alpha={alpha} beta={beta}");
        let outside = buf[..GUARD].iter().chain(&buf[GUARD + m * n..]);
        assert!(
            outside.into_iter().all(|&v| v == 7.5),
            "{what}: wrote outside C"
        );
        for (i, (&g, &e)) in buf[GUARD..GUARD + m * n].iter().zip(&want).enumerate() {
            let prev = if beta == 0.0 {
                0.0
            } else {
                (beta * case.c0[i]).abs()
            };
            let tol = 2.0 * (k as f32 + 2.0) * f32::EPSILON * (alpha.abs() * case.mag[i] + prev);
            assert!(
                !g.is_nan() && (g - e).abs() <= tol,
                "{what} at {i}: {g} vs {e} (tolerance {tol})"
            );
        }
    }

    #[test]
    fn every_instantiation_matches_scalar() {
        let isas = isas("small-shape GEMM");
        let mut seed = 0u32;
        for m in DIMS {
            for n in DIMS {
                for k in [1, 3, 8, 9, 17, 31, 32, 33, 300] {
                    seed += 1;
                    let (a, b, c0) = (
                        data(m * k, seed),
                        data(k * n, seed + 7),
                        data(m * n, seed + 13),
                    );
                    let abs_a: Vec<f32> = a.iter().map(|v| v.abs()).collect();
                    let abs_b: Vec<f32> = b.iter().map(|v| v.abs()).collect();
                    for ta in [Transpose::No, Transpose::Yes] {
                        for tb in [Transpose::No, Transpose::Yes] {
                            let mut mag = vec![0.0; m * n];
                            gemm_scalar(ta, tb, m, n, k, 1.0, &abs_a, &abs_b, 0.0, &mut mag);
                            let case = Case {
                                shape: (m, n, k),
                                a: &a,
                                b: &b,
                                c0: &c0,
                                mag: &mag,
                            };
                            for (alpha, beta) in [(1.0f32, 0.0f32), (-0.5, 1.0), (2.0, 0.25)] {
                                for kernel in [
                                    SmallKernel::Axpy,
                                    SmallKernel::AxpyTransposed,
                                    SmallKernel::Dot,
                                ] {
                                    for &isa in &isas {
                                        check(isa, kernel, ta, tb, alpha, beta, &case);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

//! The crate's own cache-blocked GEMM for the large products of training:
//! packs `op(B)` in blocks of `KC x NC` and `op(A)` in blocks of `MC x KC`
//! into a workspace the caller owns (no allocation, no page faults after
//! the first call), then runs an `MR x NR` register tile over the packed
//! panels, `NR` being two vectors of the widest lanes the CPU has
//! ([`simd::dispatch_widest`]: 12 x 32 on AVX-512, 6 x 16 on AVX2).
//!
//! Loop order, outermost first: column blocks of `op(B)` (`NC`), depth
//! blocks (`k` cut into equal blocks of at most `KC`, packing `op(B)` once
//! per block, `KC x NC` staying in L2), row blocks of `op(A)` (`MC`,
//! packing `op(A)`), row panels (`MR`: one `kc x MR` panel of `op(A)`
//! stays in L1), column panels (`NR`, streamed from L2 with prefetch
//! hints ahead of the reads). Each element of `C` sums its products in
//! order of `l` within a depth block and the blocks in order, so results
//! do not depend on anything but the shapes and the vector width.

use super::Product;
use super::Transpose;
use crate::simd::{self, Kernel, Lane, MAX_LANES};

/// Depth of a packed block.
const KC: usize = 512;
/// Rows of `op(A)` per packed block (a multiple of every `MR`).
const MC: usize = 96;
/// Columns of `op(B)` per packed block (a multiple of every `NR`).
const NC: usize = 512;

/// The `f32` elements of the workspace of [`super::gemm_blocked`]: one
/// packed block of each operand.
pub const GEMM_WORKSPACE: usize = MC * KC + KC * NC;

/// How far ahead of its reads a tile asks for the packed `op(B)` panel
/// it streams from L2 (floats).
const B_AHEAD: usize = 1024;

/// Vectors per register tile row (`NR = NV * LANES`).
const NV: usize = 2;

/// The largest tile: rows x columns.
const MAX_TILE: usize = 12 * NV * MAX_LANES;

/// The body of [`super::gemm_blocked`] after the checks (`a`, `b`, `c`
/// hold `m*k`, `k*n`, `m*n` elements, `m`, `n`, `k` nonzero, `ws` at least
/// [`GEMM_WORKSPACE`] elements).
pub(super) fn run(product: Product, ws: &mut [f32]) {
    simd::dispatch_widest(Blocked { p: product, ws });
}

/// The blocked product as a kernel over the lane type.
struct Blocked<'a, 'w> {
    p: Product<'a>,
    ws: &'w mut [f32],
}

impl Kernel for Blocked<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        // 12 x 2 accumulators of 32 registers on AVX-512; 6 x 2 of 16 on
        // AVX2 (and on SSE2, where the compiler spills some).
        if S::LANES >= 16 {
            blocked::<S, 12, { NV * 16 }>(self.p, self.ws);
        } else {
            blocked::<S, 6, { NV * 8 }>(self.p, self.ws);
        }
    }
}

/// One packed block of `op(A)` or `op(B)`: where it starts and its extent.
#[derive(Clone, Copy)]
struct Block {
    /// First row (of `op(A)`) or column (of `op(B)`).
    start: usize,
    /// Rows or columns in the block.
    len: usize,
    /// First index along the depth.
    depth: usize,
    /// Depth of the block.
    kc: usize,
}

/// The loops of the module docs for `MR`-row tiles of `S`.
#[inline(always)]
fn blocked<S: Lane, const MR: usize, const NR: usize>(p: Product, ws: &mut [f32]) {
    assert_eq!(NR, NV * S::LANES, "a tile row is {NV} vectors");
    let (m, n, k) = (p.m, p.n, p.k);
    let (a_pack, b_pack) = ws[..GEMM_WORKSPACE].split_at_mut(MC * KC);
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        // Depth blocks of equal size (the last no shallower than the others
        // but for rounding), so no pass over `C` carries a sliver of depth.
        let step = k.div_ceil(k.div_ceil(KC));
        for pc in (0..k).step_by(step) {
            let kc = step.min(k - pc);
            let cols = Block {
                start: jc,
                len: nc,
                depth: pc,
                kc,
            };
            // op(B) stored k x n: a depth step is a contiguous run of columns.
            let runs = p.tb == Transpose::No;
            pack::<NR>(runs, p.b, if runs { n } else { k }, cols, b_pack);
            // The first depth block applies beta; the others add.
            let beta = if pc == 0 { p.beta } else { 1.0 };
            for ic in (0..m).step_by(MC) {
                let rows = Block {
                    start: ic,
                    len: MC.min(m - ic),
                    depth: pc,
                    kc,
                };
                // op(A) stored k x m: a depth step is a contiguous run of rows.
                let runs = p.ta == Transpose::Yes;
                pack::<MR>(runs, p.a, if runs { m } else { k }, rows, a_pack);
                let out = Out {
                    alpha: p.alpha,
                    beta,
                    n,
                    m,
                };
                panels::<S, MR, NR>(rows, cols, a_pack, b_pack, out, p.c);
            }
        }
    }
}

/// How a tile lands in `C` (`m x n`): `C = alpha * tile + beta * C`.
#[derive(Clone, Copy)]
struct Out {
    alpha: f32,
    beta: f32,
    n: usize,
    m: usize,
}

/// Every tile of one packed row block against one packed column block.
#[inline(always)]
fn panels<S: Lane, const MR: usize, const NR: usize>(
    rows: Block,
    cols: Block,
    a_pack: &[f32],
    b_pack: &[f32],
    out: Out,
    c: &mut [f32],
) {
    let kc = rows.kc;
    let a_panels = a_pack.chunks_exact(kc * MR).take(rows.len.div_ceil(MR));
    for (r, ap) in a_panels.enumerate() {
        let i0 = rows.start + r * MR;
        let b_panels = b_pack.chunks_exact(kc * NR).take(cols.len.div_ceil(NR));
        for (q, bp) in b_panels.enumerate() {
            let j0 = cols.start + q * NR;
            let acc = tile::<S, MR>(ap, bp);
            store_tile::<S, MR>(&acc, i0, j0, out, c);
        }
    }
}

/// The `MR x NR` register tile: `sum_l a[l][r] * b[l][..]` over the packed
/// panels `a` (`kc x MR`) and `b` (`kc x NR`).
#[inline(always)]
fn tile<S: Lane, const MR: usize>(a: &[f32], b: &[f32]) -> [[S; NV]; MR] {
    let l = S::LANES;
    let mut acc = [[S::zero(); NV]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NV * l)) {
        for line in (0..NV * l).step_by(simd::LINE_FLOATS) {
            simd::prefetch(bp, B_AHEAD + line);
        }
        let bv: [S; NV] = simd::array(|v| S::load(&bp[v * l..]));
        for (row, &x) in acc.iter_mut().zip(ap) {
            let xv = S::splat(x);
            for (acc, &bv) in row.iter_mut().zip(&bv) {
                *acc = xv.mul_add(bv, *acc);
            }
        }
    }
    acc
}

/// Writes a tile whose top-left element is `C[i0][j0]`, clipped to `C`.
#[inline(always)]
fn store_tile<S: Lane, const MR: usize>(
    acc: &[[S; NV]; MR],
    i0: usize,
    j0: usize,
    out: Out,
    c: &mut [f32],
) {
    let l = S::LANES;
    let (rows, cols) = (MR.min(out.m - i0), (NV * l).min(out.n - j0));
    let (alpha, beta) = (S::splat(out.alpha), S::splat(out.beta));
    if rows == MR && cols == NV * l {
        for (r, acc) in acc.iter().enumerate() {
            let row = &mut c[(i0 + r) * out.n + j0..][..NV * l];
            for (v, &acc) in acc.iter().enumerate() {
                let d = &mut row[v * l..];
                let v = combine(acc, d, alpha, beta, out);
                v.store(d);
            }
        }
        return;
    }
    // An edge tile: through a stack copy, element by element.
    let mut buf = [0.0f32; MAX_TILE];
    for (r, acc) in acc.iter().enumerate().take(rows) {
        for (v, &acc) in acc.iter().enumerate() {
            acc.store(&mut buf[(r * NV + v) * l..]);
        }
        let row = &mut c[(i0 + r) * out.n + j0..][..cols];
        for (d, &t) in row.iter_mut().zip(&buf[r * NV * l..]) {
            let prev = if out.beta == 0.0 { 0.0 } else { out.beta * *d };
            *d = out.alpha * t + prev;
        }
    }
}

/// `alpha * acc + beta * d` for one vector of `C` at `d`, reading `d` only
/// when `beta != 0`.
#[inline(always)]
fn combine<S: Lane>(acc: S, d: &[f32], alpha: S, beta: S, out: Out) -> S {
    match (out.alpha == 1.0, out.beta) {
        (true, 0.0) => acc,
        (true, 1.0) => acc.add(S::load(d)),
        (_, 0.0) => acc.mul(alpha),
        _ => alpha.mul_add(acc, beta.mul(S::load(d))),
    }
}

/// Packs the lines `blk.start..+blk.len` (rows of `op(A)` or columns of
/// `op(B)`), depth `blk.depth..+blk.kc`, into panels of `W` lines, each
/// `kc x W` (depth-major), the lines past the end zero. Line `i` at depth
/// `l` is `src[l * ld + i]` when `runs` (a depth step is a contiguous run
/// of lines: each step is read once, across all panels), else
/// `src[i * ld + l]` (a line is contiguous along the depth: each whole
/// panel gathers from its `W` lines at once).
#[inline(always)]
fn pack<const W: usize>(runs: bool, src: &[f32], ld: usize, blk: Block, dst: &mut [f32]) {
    let kc = blk.kc;
    let (panels, _) = dst[..blk.len.div_ceil(W) * kc * W].as_chunks_mut::<W>();
    if runs {
        for l in 0..kc {
            let step = &src[(blk.depth + l) * ld + blk.start..][..blk.len];
            for (p, run) in step.chunks(W).enumerate() {
                let d = &mut panels[p * kc + l];
                match <&[f32; W]>::try_from(run) {
                    Ok(run) => *d = *run,
                    Err(_) => {
                        d[..run.len()].copy_from_slice(run);
                        d[run.len()..].fill(0.0);
                    }
                }
            }
        }
        return;
    }
    for (p, panel) in panels.chunks_exact_mut(kc).enumerate() {
        let i0 = blk.start + p * W;
        let live = W.min(blk.start + blk.len - i0);
        let lines: [&[f32]; W] = simd::array(|t| {
            let at = (i0 + t.min(live - 1)) * ld + blk.depth;
            &src[at..][..kc]
        });
        for (l, d) in panel.iter_mut().enumerate() {
            *d = simd::array(|t| if t < live { lines[t][l] } else { 0.0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::gemm_scalar;
    use crate::simd::testing::{data, widest_isas};

    /// Runs the blocked product with every vector type against the twin on
    /// shapes that cross every block edge (`MC`, `KC`, `NC`) and leave
    /// partial tiles for both tile heights, with `C` prefilled NaN under
    /// `beta = 0` and guarded on both sides.
    #[test]
    fn every_lane_type_matches_the_twin_across_block_edges() {
        let shapes = [
            (1, 1, 1),
            (13, 33, 7),
            (MC + 7, 2 * 32 + 5, KC + 9),
            (2 * MC, NC + 17, 40),
            (25, 20, 3 * KC + 1),
        ];
        let mut ws = vec![f32::NAN; GEMM_WORKSPACE];
        for isa in widest_isas("blocked GEMM") {
            for (s, &(m, n, k)) in shapes.iter().enumerate() {
                for (t, ts) in TRANSPOSES.into_iter().enumerate() {
                    let (alpha, beta) = [(1.0, 0.0), (1.0, 1.0), (-0.5, 0.25)][(s + t) % 3];
                    check(isa, ts, (m, n, k), (alpha, beta), &mut ws);
                }
            }
        }
    }

    const TRANSPOSES: [(Transpose, Transpose); 4] = [
        (Transpose::No, Transpose::No),
        (Transpose::No, Transpose::Yes),
        (Transpose::Yes, Transpose::No),
        (Transpose::Yes, Transpose::Yes),
    ];

    /// One product through `isa` against [`gemm_scalar`], within the
    /// rounding bound of any summation order: `2 (k + 2) eps` times
    /// `|alpha| sum_l |a b| + |beta c|`.
    fn check(
        isa: crate::simd::testing::WidestIsa,
        (ta, tb): (Transpose, Transpose),
        (m, n, k): (usize, usize, usize),
        (alpha, beta): (f32, f32),
        ws: &mut [f32],
    ) {
        let seed = (m * 31 + n * 7 + k) as u32;
        let (a, b) = (data(m * k, seed), data(k * n, seed + 1));
        let c0 = if beta == 0.0 {
            vec![f32::NAN; m * n]
        } else {
            data(m * n, seed + 2)
        };
        let mut want = c0.clone();
        gemm_scalar(ta, tb, m, n, k, alpha, &a, &b, beta, &mut want);
        const GUARD: usize = 5;
        let mut got = vec![7.5f32; m * n + 2 * GUARD];
        got[GUARD..GUARD + m * n].copy_from_slice(&c0);
        let c = &mut got[GUARD..GUARD + m * n];
        let (a, b) = (a.as_slice(), b.as_slice());
        let p = Product {
            ta,
            tb,
            m,
            n,
            k,
            alpha,
            a,
            b,
            beta,
            c,
        };
        isa.run(Blocked { p, ws });
        let what = format!("{isa:?} {ta:?}{tb:?} {m}x{n}x{k} alpha {alpha} beta {beta}");
        assert!(
            got[..GUARD]
                .iter()
                .chain(&got[GUARD + m * n..])
                .all(|&v| v == 7.5),
            "{what}"
        );
        let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
        let mut mag = vec![0.0; m * n];
        gemm_scalar(ta, tb, m, n, k, 1.0, &abs(a), &abs(b), 0.0, &mut mag);
        let got = &got[GUARD..GUARD + m * n];
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let prev = if beta == 0.0 {
                0.0
            } else {
                (beta * c0[i]).abs()
            };
            let tol = 2.0 * (k as f32 + 2.0) * f32::EPSILON * (alpha.abs() * mag[i] + prev);
            assert!((g - w).abs() <= tol, "{what}: C[{i}] = {g}, want {w}");
        }
    }
}

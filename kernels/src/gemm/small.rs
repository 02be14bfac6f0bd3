//! The small-shape GEMM engine: register-tiled loops without packing,
//! written once over [`Lane`] and instantiated per ISA by
//! [`simd::dispatch`] (the `wide` vectors of the build, or AVX2 + FMA chosen
//! at run time). Strided operands are staged through stack buffers, so no
//! path allocates.

use super::tiles::{AxpyTile, Dest, DotTile, View};
use super::{Product, Transpose};
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

/// The kernel used by [`super::gemm_small`].
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

/// The body of [`super::gemm_small`] after the shape check and the trivial
/// products (`m`, `n`, `k` nonzero, `alpha != 0`), with the vector type
/// [`simd::dispatch`] picks.
#[inline]
pub(super) fn run(kernel: SmallKernel, product: Product) {
    simd::dispatch(SmallRun { kernel, product });
}

/// The arguments of [`small_run`], as a [`Kernel`].
struct SmallRun<'a> {
    kernel: SmallKernel,
    product: Product<'a>,
}

impl Kernel for SmallRun<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        small_run::<S>(self.kernel, self.product);
    }
}

/// The body of [`super::gemm_small`] for one vector type, after the shape
/// checks and the empty cases (`m`, `n`, `k` nonzero, `alpha != 0`).
fn small_run<S: Lane>(kernel: SmallKernel, product: Product) {
    let Product {
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
    } = product;
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
        let product = Product {
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
        isa.run(SmallRun { kernel, product });
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

//! The whole forward, softmax cross-entropy and backward of a network with
//! one hidden layer, few inputs and few classes, `S = act(X W1 + b1) W2 +
//! b2`, over a row block in one kernel (e.g. the spiral's 2-100-3).
//!
//! The rows are the lanes: a block of `S::LANES` rows is packed with its
//! inputs and (later) its logits transposed, one vector per input and per
//! class. Then
//!
//! 1. per group of row vectors, every hidden unit `j` in turn: `a_j =
//!    act(b1_j + Σ_i x_i W1[i, j])` and `s_c += a_j W2[j, c]`, all in
//!    registers, each `a_j` stored for stage 3;
//! 2. the softmax cross-entropy of every row vector, lane-wise over the
//!    classes ([`crate::softmax`]'s group engine), giving `dS` and `db2`;
//! 3. per hidden unit `j`, over every row vector: `a_j` (stored by stage
//!    1), `dW2[j, c] += Σ a_j dS_c`, `dA_j = Σ_c dS_c W2[j, c]`, `dZ_j = dA_j act'(a_j)`,
//!    `db1_j += Σ dZ_j` and `dW1[i, j] += Σ x_i dZ_j`, the sums lane-wise
//!    in registers and reduced across the lanes once per unit.
//!
//! Stage 1 stores the hidden activations unit by unit (`hidden x rows`,
//! the one buffer of the size of the layer), so that stage 3 streams them
//! in order; everything else stays in L1 and registers. The kernel runs
//! 16 rows per vector wherever the CPU has AVX-512F
//! ([`simd::dispatch_widest`]), since it is bound by its multiply-adds.

use super::check_len;
use super::epilogue::{with_epilogue, Epilogue};
use crate::activation::{act_scalar_value, Activation};
use crate::simd::{self, Kernel, Lane, MAX_LANES};
use crate::softmax::{group_in_columns, softmax_cross_entropy_scalar, CrossEntropy};

/// The most inputs (`n_in`) [`narrow_mlp_forward_backward`] takes.
pub const MLP_MAX_IN: usize = 4;
/// The most classes [`narrow_mlp_forward_backward`] takes.
pub const MLP_MAX_CLASSES: usize = 4;

/// A network `S = act(X W1 + b1) W2 + b2` over a row block, with its
/// labels (all shapes row-major).
#[derive(Clone, Copy, Debug)]
pub struct NarrowMlp<'a> {
    /// The hidden layer's activation.
    pub act: Activation,
    /// `rows x n_in`: the block's features.
    pub x: &'a [f32],
    /// `rows`: the labels, each `< classes`.
    pub labels: &'a [u32],
    /// `n_in x hidden`.
    pub w1: &'a [f32],
    /// `hidden`.
    pub b1: &'a [f32],
    /// `hidden x classes`.
    pub w2: &'a [f32],
    /// `classes`.
    pub b2: &'a [f32],
    /// Inputs, `1..=MLP_MAX_IN`.
    pub n_in: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Classes, `1..=MLP_MAX_CLASSES`.
    pub classes: usize,
}

/// The parameter gradients of a [`NarrowMlp`], each laid out like its
/// parameter and **accumulated into**.
#[derive(Debug)]
pub struct MlpGrads<'a> {
    /// `n_in x hidden`.
    pub dw1: &'a mut [f32],
    /// `hidden`.
    pub db1: &'a mut [f32],
    /// `hidden x classes`.
    pub dw2: &'a mut [f32],
    /// `classes`.
    pub db2: &'a mut [f32],
}

/// Whether [`narrow_mlp_forward_backward`] takes a network of `n_in`
/// inputs and `classes` classes.
#[inline]
pub fn narrow_mlp_fits(n_in: usize, classes: usize) -> bool {
    (1..=MLP_MAX_IN).contains(&n_in) && (1..=MLP_MAX_CLASSES).contains(&classes)
}

/// Scratch elements [`narrow_mlp_forward_backward`] needs for `rows` rows:
/// the packed inputs and logits, and the hidden activations,
/// `(n_in + classes + hidden)` times `rows` rounded up to a multiple of 16.
#[inline]
pub fn narrow_mlp_scratch(rows: usize, n_in: usize, hidden: usize, classes: usize) -> usize {
    (n_in + classes + hidden) * rows.div_ceil(MAX_LANES) * MAX_LANES
}

/// Forward, softmax cross-entropy and backward of `net` over its rows:
/// `A = act(X W1 + b1)`, `S = A W2 + b2`, the loss and correct count of
/// [`crate::softmax::softmax_cross_entropy`] with gradient scale `inv_n`
/// (`dS = (softmax(S) - onehot(y)) * inv_n`), then `db2 += Σ_rows dS`,
/// `dW2 += Aᵀ dS`, `dZ = (dS W2ᵀ) ⊙ act'(A)`, `db1 += Σ_rows dZ`, `dW1 +=
/// Xᵀ dZ`, accumulated into `grads`. The activation follows the rules of
/// [`super::narrow_bias_act_forward`] (ReLU: NaN propagates, and counts as
/// inactive in the backward).
///
/// `scratch`: at least [`narrow_mlp_scratch`] elements, contents ignored.
/// Each forward sum starts from its bias and adds its terms in order; the
/// gradient sums run lane by lane over the rows, then across the lanes,
/// so they agree with the scalar twin up to rounding.
///
/// # Panics
/// If a slice length does not match the shapes, the scratch is too short,
/// the shapes do not fit ([`narrow_mlp_fits`]), or a label is `>= classes`.
///
/// # Example
/// ```
/// use vnn_kernels::activation::Activation;
/// use vnn_kernels::fused::{narrow_mlp_forward_backward, narrow_mlp_scratch, MlpGrads, NarrowMlp};
/// // 1 input, 1 hidden unit with weight 0 (A = relu(0) = 0), 2 classes with
/// // equal logits: loss ln 2, dS = [0.5 - 1, 0.5] for label 0.
/// let net = NarrowMlp {
///     act: Activation::Relu, x: &[1.0], labels: &[0], w1: &[0.0], b1: &[0.0],
///     w2: &[1.0, 1.0], b2: &[0.0, 0.0], n_in: 1, hidden: 1, classes: 2,
/// };
/// let (mut dw1, mut db1, mut dw2, mut db2) = ([0.0], [0.0], [0.0; 2], [0.0; 2]);
/// let grads = MlpGrads { dw1: &mut dw1, db1: &mut db1, dw2: &mut dw2, db2: &mut db2 };
/// let mut scratch = vec![0.0; narrow_mlp_scratch(1, 1, 1, 2)];
/// let ce = narrow_mlp_forward_backward(&net, 1.0, grads, &mut scratch);
/// assert!((ce.loss - std::f64::consts::LN_2).abs() < 1e-6);
/// assert_eq!(db2, [-0.5, 0.5]);
/// assert_eq!((dw1, db1, dw2), ([0.0], [0.0], [0.0; 2])); // the unit is inactive
/// ```
#[track_caller]
pub fn narrow_mlp_forward_backward(
    net: &NarrowMlp,
    inv_n: f32,
    grads: MlpGrads,
    scratch: &mut [f32],
) -> CrossEntropy {
    check_mlp(net, &grads, scratch);
    if net.labels.is_empty() {
        return CrossEntropy::default();
    }
    macro_rules! shapes {
        ($(($d:literal, $k:literal))*) => {
            match (net.n_in, net.classes) {
                $(($d, $k) => simd::dispatch_widest(MlpStep::<$d, $k> { net, inv_n, grads, scratch }),)*
                _ => unreachable!(),
            }
        };
    }
    shapes!(
        (1, 1)(1, 2)(1, 3)(1, 4)(2, 1)(2, 2)(2, 3)(2, 4)(3, 1)(3, 2)(3, 3)(3, 4)(4, 1)(4, 2)(4, 3)(
            4, 4
        )
    )
}

/// Scalar twin of [`narrow_mlp_forward_backward`]: row by row, the
/// activation with `std` ([`act_scalar_value`]), the loss of
/// [`softmax_cross_entropy_scalar`], every gradient added row by row.
///
/// # Panics
/// As [`narrow_mlp_forward_backward`].
#[track_caller]
pub fn narrow_mlp_forward_backward_scalar(
    net: &NarrowMlp,
    inv_n: f32,
    grads: MlpGrads,
    scratch: &mut [f32],
) -> CrossEntropy {
    check_mlp(net, &grads, scratch);
    let (d, h, k) = (net.n_in, net.hidden, net.classes);
    let unit = |xr: &[f32], j: usize| {
        let z = (0..d).fold(net.b1[j], |z, i| z + xr[i] * net.w1[i * h + j]);
        act_scalar_value(net.act, z)
    };
    let mut out = CrossEntropy::default();
    for (xr, &y) in net.x.chunks_exact(d).zip(net.labels) {
        let mut s = [0.0f32; MLP_MAX_CLASSES];
        s[..k].copy_from_slice(net.b2);
        for j in 0..h {
            let a = unit(xr, j);
            for (c, v) in s[..k].iter_mut().enumerate() {
                *v += a * net.w2[j * k + c];
            }
        }
        let ce = softmax_cross_entropy_scalar(&mut s[..k], &[y], 1, k, inv_n);
        (out.loss, out.correct) = (out.loss + ce.loss, out.correct + ce.correct);
        let ds = &s[..k];
        for (g, &v) in grads.db2.iter_mut().zip(ds) {
            *g += v;
        }
        for j in 0..h {
            let a = unit(xr, j);
            let w2j = &net.w2[j * k..(j + 1) * k];
            let da = ds.iter().zip(w2j).fold(0.0, |s, (&g, &w)| s + g * w);
            for (g, &v) in grads.dw2[j * k..(j + 1) * k].iter_mut().zip(ds) {
                *g += a * v;
            }
            let dz = with_epilogue!(net.act, E => E::backward_value(da, a, 1.0));
            grads.db1[j] += dz;
            for (i, &xv) in xr.iter().enumerate() {
                grads.dw1[i * h + j] += xv * dz;
            }
        }
    }
    out
}

#[track_caller]
fn check_mlp(net: &NarrowMlp, grads: &MlpGrads, scratch: &[f32]) {
    let op = "narrow_mlp_forward_backward";
    let (d, h, k) = (net.n_in, net.hidden, net.classes);
    assert!(
        narrow_mlp_fits(d, k),
        "{op}: {d} inputs and {k} classes do not fit"
    );
    let rows = net.labels.len();
    check_len("X", net.x.len(), rows * d, op);
    check_len("W1", net.w1.len(), d * h, op);
    check_len("b1", net.b1.len(), h, op);
    check_len("W2", net.w2.len(), h * k, op);
    check_len("b2", net.b2.len(), k, op);
    check_len("dW1", grads.dw1.len(), d * h, op);
    check_len("db1", grads.db1.len(), h, op);
    check_len("dW2", grads.dw2.len(), h * k, op);
    check_len("db2", grads.db2.len(), k, op);
    let need = narrow_mlp_scratch(rows, d, h, k);
    assert!(
        scratch.len() >= need,
        "{op}: scratch has {} elements, needs {need}",
        scratch.len()
    );
    for &y in net.labels {
        assert!(
            (y as usize) < k,
            "{op}: label {y} out of range for {k} classes"
        );
    }
}

/// The arguments of [`mlp_step`], as a [`Kernel`], for `D` inputs and `K`
/// classes (shapes checked).
struct MlpStep<'a, 'n, const D: usize, const K: usize> {
    net: &'n NarrowMlp<'a>,
    inv_n: f32,
    grads: MlpGrads<'n>,
    scratch: &'n mut [f32],
}

impl<const D: usize, const K: usize> Kernel for MlpStep<'_, '_, D, K> {
    type Output = CrossEntropy;
    #[inline(always)]
    fn run<S: Lane>(self) -> CrossEntropy {
        let (net, inv_n, grads) = (self.net, self.inv_n, self.grads);
        let (packed, acts) = pack::<S, D, K>(net.x, net.labels.len(), net.hidden, self.scratch);
        with_epilogue!(net.act, E => mlp_step::<S, E, D, K>(net, inv_n, grads, packed, acts))
    }
}

/// Packs the rows of `x` (`rows x D`) into `scratch` by vectors of
/// `S::LANES` rows, each vector a block of `D + K` vectors: the inputs
/// transposed (lane `t` = row `t` of the vector; rows past the end 0), then
/// room for the `K` logits. Returns the packed blocks and the room for the
/// `hidden` activations of every row vector (unit by unit).
#[inline(always)]
fn pack<'s, S: Lane, const D: usize, const K: usize>(
    x: &[f32],
    rows: usize,
    hidden: usize,
    scratch: &'s mut [f32],
) -> (&'s mut [f32], &'s mut [f32]) {
    let lanes = S::LANES;
    let (stride, n_vec) = ((D + K) * lanes, rows.div_ceil(lanes));
    let (packed, rest) = scratch.split_at_mut(n_vec * stride);
    let acts = &mut rest[..hidden * n_vec * lanes];
    for (v, blk) in packed.chunks_exact_mut(stride).enumerate() {
        for t in 0..lanes {
            let r = v * lanes + t;
            for i in 0..D {
                blk[i * lanes + t] = if r < rows { x[r * D + i] } else { 0.0 };
            }
        }
    }
    (packed, acts)
}

/// The three stages of the module docs over the packed row vectors.
#[inline(always)]
fn mlp_step<S: Lane, E: Epilogue, const D: usize, const K: usize>(
    net: &NarrowMlp,
    inv_n: f32,
    grads: MlpGrads,
    packed: &mut [f32],
    acts: &mut [f32],
) -> CrossEntropy {
    let stride = (D + K) * S::LANES;
    let n_vec = packed.len() / stride;
    if n_vec == 0 {
        return CrossEntropy::default();
    }
    let mut v = 0;
    while !S::FEW_REGISTERS && v + 4 <= n_vec {
        let group = &mut packed[v * stride..(v + 4) * stride];
        logits::<S, E, D, K, 4>(net, group, acts, n_vec, v);
        v += 4;
    }
    while v + 2 <= n_vec {
        let group = &mut packed[v * stride..(v + 2) * stride];
        logits::<S, E, D, K, 2>(net, group, acts, n_vec, v);
        v += 2;
    }
    if v < n_vec {
        logits::<S, E, D, K, 1>(net, &mut packed[v * stride..], acts, n_vec, v);
    }
    let ce = cross_entropy::<S, D, K>(net.labels, packed, inv_n, grads.db2);
    backward::<S, E, D, K>(net, packed, acts, grads.dw1, grads.db1, grads.dw2);
    ce
}

#[allow(clippy::needless_range_loop)]
/// Stage 1 for `R` packed row vectors (`group`, from row vector `v0` of
/// `n_vec`): their logits, written into the blocks, and their activations,
/// into `acts` (`hidden x n_vec` vectors).
#[inline(always)]
fn logits<S: Lane, E: Epilogue, const D: usize, const K: usize, const R: usize>(
    net: &NarrowMlp,
    group: &mut [f32],
    acts: &mut [f32],
    n_vec: usize,
    v0: usize,
) {
    let (lanes, h) = (S::LANES, net.hidden);
    let stride = (D + K) * lanes;
    let x: [[S; R]; D] =
        simd::array(|i| simd::array(|r| S::load(&group[r * stride + i * lanes..])));
    let mut s: [[S; R]; K] = simd::array(|c| [S::splat(net.b2[c]); R]);
    let w1: [&[f32]; D] = simd::array(|i| &net.w1[i * h..(i + 1) * h]);
    for (j, (&b, w2j)) in net.b1.iter().zip(net.w2.chunks_exact(K)).enumerate() {
        // Index loops over the const sizes: unrolled, all in registers.
        let mut z = [S::splat(b); R];
        for i in 0..D {
            let w = S::splat(w1[i][j]);
            for r in 0..R {
                z[r] = x[i][r].mul_add(w, z[r]);
            }
        }
        let a: [S; R] = simd::array(|r| E::forward(z[r]));
        for r in 0..R {
            a[r].store(&mut acts[(j * n_vec + v0 + r) * lanes..]);
        }
        for c in 0..K {
            let w = S::splat(w2j[c]);
            for r in 0..R {
                s[c][r] = a[r].mul_add(w, s[c][r]);
            }
        }
    }
    for (c, sc) in s.iter().enumerate() {
        for (r, v) in sc.iter().enumerate() {
            v.store(&mut group[r * stride + (D + c) * lanes..]);
        }
    }
}

/// Stage 2: the softmax cross-entropy of every packed row vector, its
/// logits replaced by `dS` (0 in the lanes past the last row), `db2 +=
/// Σ dS`.
#[inline(always)]
fn cross_entropy<S: Lane, const D: usize, const K: usize>(
    labels: &[u32],
    packed: &mut [f32],
    inv_n: f32,
    db2: &mut [f32],
) -> CrossEntropy {
    let lanes = S::LANES;
    let (mut loss, mut correct) = (0.0f64, 0usize);
    let mut sums = [S::zero(); K];
    let blocks = packed.chunks_exact_mut((D + K) * lanes);
    for (blk, ys) in blocks.zip(labels.chunks(lanes)) {
        let cols = &mut blk[D * lanes..];
        let mut t = [[0.0f32; MAX_LANES]; K];
        for (tc, col) in t.iter_mut().zip(cols.chunks_exact(lanes)) {
            tc[..lanes].copy_from_slice(col);
        }
        let mut y = [0.0f32; MAX_LANES];
        for (l, &v) in y.iter_mut().zip(ys) {
            *l = v as f32;
        }
        correct += group_in_columns::<S>(&mut t, S::load(&y), ys.len(), inv_n, &mut loss);
        let pad = S::lanes_from(ys.len());
        for ((tc, col), sum) in t.iter().zip(cols.chunks_exact_mut(lanes)).zip(&mut sums) {
            let g = pad.select(S::zero(), S::load(tc));
            g.store(col);
            *sum = sum.add(g);
        }
    }
    for (d, s) in db2.iter_mut().zip(sums) {
        *d += s.reduce_add();
    }
    CrossEntropy {
        loss: loss * inv_n as f64,
        correct,
    }
}

#[allow(clippy::needless_range_loop)]
/// Stage 3: per hidden unit, over every packed row vector, the weight and
/// bias gradients (see the module docs).
#[inline(always)]
fn backward<S: Lane, E: Epilogue, const D: usize, const K: usize>(
    net: &NarrowMlp,
    packed: &[f32],
    acts: &[f32],
    dw1: &mut [f32],
    db1: &mut [f32],
    dw2: &mut [f32],
) {
    let (lanes, h) = (S::LANES, net.hidden);
    let n_vec = packed.len() / ((D + K) * lanes);
    let one = S::splat(1.0);
    let units = net.w2.chunks_exact(K).zip(acts.chunks_exact(n_vec * lanes));
    for (j, (w2j, aj)) in units.enumerate() {
        let w2: [S; K] = simd::array(|c| S::splat(w2j[c]));
        let (mut gw1, mut gb1, mut gw2) = ([S::zero(); D], S::zero(), [S::zero(); K]);
        let rows = packed
            .chunks_exact((D + K) * lanes)
            .zip(aj.chunks_exact(lanes));
        for (blk, av) in rows {
            // Index loops over the const sizes: unrolled, all in registers.
            let x: [S; D] = simd::array(|i| S::load(&blk[i * lanes..]));
            let ds: [S; K] = simd::array(|c| S::load(&blk[(D + c) * lanes..]));
            let a = S::load(av);
            // dA = dS W2[j, :]ᵀ; dW2[j, c] += a dS_c
            let mut da = ds[0].mul(w2[0]);
            for c in 1..K {
                da = ds[c].mul_add(w2[c], da);
            }
            for c in 0..K {
                gw2[c] = a.mul_add(ds[c], gw2[c]);
            }
            let dz = E::backward(da, a, one);
            gb1 = gb1.add(dz);
            for i in 0..D {
                gw1[i] = x[i].mul_add(dz, gw1[i]);
            }
        }
        for (d, g) in dw2[j * K..(j + 1) * K].iter_mut().zip(gw2) {
            *d += g.reduce_add();
        }
        db1[j] += gb1.reduce_add();
        for (i, g) in gw1.iter().enumerate() {
            dw1[i * h + j] += g.reduce_add();
        }
    }
}

#[cfg(test)]
mod tests;

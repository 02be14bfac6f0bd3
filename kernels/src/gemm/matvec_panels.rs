//! The batch-1 product `out = x * W + bias` over weights packed once, for
//! layers whose `W` does not fit the caches and for layers of few outputs.
//!
//! [`matvec_pack`] copies `W` (`n_in x n_out`, row-major) in one of two
//! layouts, chosen by the shape:
//!
//! - column panels (more than [`MATVEC_DOT_MAX`] outputs): panels of up to
//!   [`MATVEC_PANEL`] outputs; panel `p` holds the columns
//!   `64 p .. 64 p + 64` of every row, row after row, so the panel is one
//!   contiguous `n_in x 64` block. The last panel is narrower: its width is
//!   rounded up to a multiple of 16 and padded with zeros. The product
//!   reads the packed buffer once from start to end, keeps a panel's
//!   outputs in registers over all its rows, and writes each output once.
//! - dot rows (at most [`MATVEC_DOT_MAX`] outputs): `Wᵀ`, one row of `n_in`
//!   weights per output, each padded with zeros to a multiple of 16; each
//!   output is then a dot product of `x` with its row, all outputs in one
//!   pass over `x`, lanes over the inputs.

use crate::simd::{self, Kernel, Lane, MAX_LANES};

/// Outputs per column panel of [`matvec_pack`].
pub const MATVEC_PANEL: usize = 64;

/// How far ahead of its reads [`panel_product`] asks for the packed
/// weights (floats, 8 KiB): for a matrix that sits in L2 but not in L1,
/// the demand misses alone leave L2 bandwidth unused.
const PREFETCH: usize = 2048;

/// The width of the last panel is rounded up to a multiple of this, so that
/// every lane type's vectors tile it.
const PANEL_ALIGN: usize = MAX_LANES;

/// The most outputs of the dot-row layout (module docs); wider layers take
/// column panels.
pub const MATVEC_DOT_MAX: usize = 12;

/// Elements of the buffer [`matvec_pack`] fills for an `n_in x n_out`
/// matrix: `n_in` times `n_out` rounded up to a multiple of 16 (column
/// panels), or `n_out` times `n_in` rounded up to a multiple of 16 (dot
/// rows, at most [`MATVEC_DOT_MAX`] outputs).
///
/// # Example
/// ```
/// use vnn_kernels::gemm::matvec_packed_len;
/// assert_eq!(matvec_packed_len(784, 512), 784 * 512);
/// assert_eq!(matvec_packed_len(3, 70), 3 * 80);
/// assert_eq!(matvec_packed_len(100, 3), 112 * 3);
/// ```
pub fn matvec_packed_len(n_in: usize, n_out: usize) -> usize {
    if n_out <= MATVEC_DOT_MAX {
        n_out * n_in.next_multiple_of(PANEL_ALIGN)
    } else {
        n_in * n_out.next_multiple_of(PANEL_ALIGN)
    }
}

/// Whether [`matvec_bias_packed`] is the better batch-1 product for an
/// `n_in x n_out` layer than [`super::matvec_bias`]: column panels for
/// more than [`MATVEC_DOT_MAX`] outputs (for wide layers one linear
/// stream where the unpacked product reads rows of a long stride; for
/// narrow ones whole panels where it takes overlapping strips), dot rows
/// for at most [`MATVEC_DOT_MAX`] outputs and at least 16 inputs (where
/// the unpacked product has too few outputs to fill its vectors).
///
/// # Example
/// ```
/// use vnn_kernels::gemm::matvec_packs;
/// assert!(matvec_packs(784, 512));
/// assert!(matvec_packs(512, 10));
/// assert!(matvec_packs(100, 3));
/// assert!(matvec_packs(2, 100));
/// assert!(!matvec_packs(7, 9));
/// ```
pub fn matvec_packs(n_in: usize, n_out: usize) -> bool {
    n_out > MATVEC_DOT_MAX || n_in >= PANEL_ALIGN
}

/// Packs `W` for [`matvec_bias_packed`] (layout in the module docs).
///
/// - `w`: `n_in x n_out`, row-major (rows = inputs, columns = outputs).
/// - `packed`: [`matvec_packed_len`]`(n_in, n_out)` elements, overwritten
///   (padding included).
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::gemm::{matvec_pack, matvec_packed_len};
/// let w = [1.0, 2.0, 3.0, 4.0]; // 2 x 2
/// let mut packed = vec![f32::NAN; matvec_packed_len(2, 2)];
/// matvec_pack(&w, 2, 2, &mut packed);
/// // Two outputs: dot rows, one row of Wᵀ per output, padded to 16.
/// assert_eq!(&packed[..4], &[1.0, 3.0, 0.0, 0.0]);
/// assert_eq!(&packed[16..20], &[2.0, 4.0, 0.0, 0.0]);
/// ```
#[track_caller]
pub fn matvec_pack(w: &[f32], n_in: usize, n_out: usize, packed: &mut [f32]) {
    check_len("matvec_pack", "W", w.len(), n_in * n_out);
    let len = matvec_packed_len(n_in, n_out);
    check_len("matvec_pack", "the packed buffer", packed.len(), len);
    if len == 0 {
        return;
    }
    if n_out <= MATVEC_DOT_MAX {
        let width = n_in.next_multiple_of(PANEL_ALIGN);
        for (j, dst) in packed.chunks_exact_mut(width).enumerate() {
            for (d, src) in dst.iter_mut().zip(w.chunks_exact(n_out)) {
                *d = src[j];
            }
            dst[n_in..].fill(0.0);
        }
        return;
    }
    for (p, panel) in packed.chunks_mut(n_in * MATVEC_PANEL).enumerate() {
        let j0 = p * MATVEC_PANEL;
        let width = panel.len() / n_in;
        let used = width.min(n_out - j0);
        for (dst, src) in panel.chunks_exact_mut(width).zip(w.chunks_exact(n_out)) {
            dst[..used].copy_from_slice(&src[j0..j0 + used]);
            dst[used..].fill(0.0);
        }
    }
}

/// Matrix-vector product for one input row over packed weights:
/// `out = x * W + bias`, the batch-1 product of wide layers.
///
/// - `x`: `n_in` elements.
/// - `packed`: `W` (`n_in x n_out`) as [`matvec_pack`] wrote it.
/// - `bias`: `n_out` elements, or `None` for `out = x * W`.
/// - `out`: `n_out` elements, overwritten.
///
/// Over column panels each output starts from its bias and adds the rows
/// in order with one fused multiply-add each (when the build or the
/// run-time ISA has FMA), as the row-streaming path of
/// [`super::matvec_bias`] does, so for wide layers the two agree bit for
/// bit (over its whole vectors). Over dot rows each output sums lane-wise
/// partial dot products, then adds the bias. With
/// [`matvec_bias_packed_scalar`] both agree within rounding.
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::gemm::{matvec_bias_packed, matvec_pack, matvec_packed_len};
/// let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
/// let mut packed = vec![0.0; matvec_packed_len(2, 3)];
/// matvec_pack(&w, 2, 3, &mut packed);
/// let mut out = [0.0; 3];
/// matvec_bias_packed(&[1.0, 2.0], &packed, Some(&[0.5, 0.0, -1.0]), 2, 3, &mut out);
/// assert_eq!(out, [9.5, 12.0, 14.0]);
/// ```
#[track_caller]
pub fn matvec_bias_packed(
    x: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    n_in: usize,
    n_out: usize,
    out: &mut [f32],
) {
    check_packed(x, packed, bias, n_in, n_out, out);
    simd::dispatch(Panels::new(x, packed, bias, out, false));
}

/// [`matvec_bias_packed`] followed by ReLU, in one pass: `out =
/// relu(x * W + bias)`, each output rectified in registers before it is
/// stored (ReLU as [`crate::activation::relu_scalar_value`]: NaN
/// propagates). The batch-1 product of a ReLU hidden layer.
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::gemm::{matvec_bias_relu_packed, matvec_pack, matvec_packed_len};
/// let w = [1.0, -2.0, 3.0, 4.0, -5.0, 6.0]; // 2 x 3
/// let mut packed = vec![0.0; matvec_packed_len(2, 3)];
/// matvec_pack(&w, 2, 3, &mut packed);
/// let mut out = [f32::NAN; 3];
/// matvec_bias_relu_packed(&[1.0, 2.0], &packed, Some(&[0.5, 0.0, -1.0]), 2, 3, &mut out);
/// assert_eq!(out, [9.5, 0.0, 14.0]);
/// ```
#[track_caller]
pub fn matvec_bias_relu_packed(
    x: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    n_in: usize,
    n_out: usize,
    out: &mut [f32],
) {
    check_packed(x, packed, bias, n_in, n_out, out);
    simd::dispatch(Panels::new(x, packed, bias, out, true));
}

/// Scalar twin of [`matvec_bias_relu_packed`]: [`matvec_bias_packed_scalar`],
/// then ReLU.
///
/// # Panics
/// If a slice length does not match the shapes.
#[track_caller]
pub fn matvec_bias_relu_packed_scalar(
    x: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    n_in: usize,
    n_out: usize,
    out: &mut [f32],
) {
    matvec_bias_packed_scalar(x, packed, bias, n_in, n_out, out);
    for v in out.iter_mut() {
        *v = crate::activation::relu_scalar_value(*v);
    }
}

/// The arguments of [`matvec_bias_packed`] after the shape check, as a
/// [`Kernel`].
pub(super) struct Panels<'a> {
    x: &'a [f32],
    packed: &'a [f32],
    bias: Option<&'a [f32]>,
    out: &'a mut [f32],
    /// Rectify each output before it is stored.
    relu: bool,
}

impl<'a> Panels<'a> {
    #[inline(always)]
    pub(super) fn new(
        x: &'a [f32],
        packed: &'a [f32],
        bias: Option<&'a [f32]>,
        out: &'a mut [f32],
        relu: bool,
    ) -> Self {
        Panels {
            x,
            packed,
            bias,
            out,
            relu,
        }
    }
}

impl Kernel for Panels<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        let n_in = self.x.len();
        if self.out.len() <= MATVEC_DOT_MAX {
            return dot_rows::<S>(self);
        }
        for (p, out) in self.out.chunks_mut(MATVEC_PANEL).enumerate() {
            let j0 = p * MATVEC_PANEL;
            let width = out.len().next_multiple_of(PANEL_ALIGN);
            let panel = &self.packed[n_in * j0..][..n_in * width];
            let bias = self.bias.map(|b| &b[j0..j0 + out.len()]);
            let (x, relu) = (self.x, self.relu);
            match width / S::LANES {
                1 => panel_product::<S, 1>(x, panel, bias, out, relu),
                2 => panel_product::<S, 2>(x, panel, bias, out, relu),
                3 => panel_product::<S, 3>(x, panel, bias, out, relu),
                4 => panel_product::<S, 4>(x, panel, bias, out, relu),
                6 => panel_product::<S, 6>(x, panel, bias, out, relu),
                8 => panel_product::<S, 8>(x, panel, bias, out, relu),
                v => unreachable!("a panel of {v} vectors"),
            }
        }
    }
}

/// One panel of `V` vectors: `out = bias + x * panel`, the `V` sums in
/// registers over all rows of the panel (`n_in x V * LANES`), each output
/// written once (`out` may be narrower than the panel: the padding),
/// rectified first when `relu`.
#[inline(always)]
fn panel_product<S: Lane, const V: usize>(
    x: &[f32],
    panel: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    relu: bool,
) {
    let lanes = S::LANES;
    let mut acc = [S::zero(); V];
    if let Some(b) = bias {
        for (v, a) in acc.iter_mut().enumerate() {
            let from = (v * lanes).min(b.len());
            *a = if b.len() >= (v + 1) * lanes {
                S::load(&b[from..])
            } else {
                S::load_padded(&b[from..], 0.0)
            };
        }
    }
    let stream = panel.len() >= PREFETCH;
    for (row, &xi) in panel.chunks_exact(V * lanes).zip(x) {
        // The rows `PREFETCH` floats on (in the next panel near the end:
        // the packed panels are contiguous), one hint per cache line; none
        // for a panel that is read in less time than a hint takes to land.
        if stream {
            for line in (0..V * lanes).step_by(simd::LINE_FLOATS) {
                simd::prefetch(row, PREFETCH + line);
            }
        }
        let xv = S::splat(xi);
        for (v, a) in acc.iter_mut().enumerate() {
            *a = xv.mul_add(S::load(&row[v * lanes..]), *a);
        }
    }
    for (o, a) in out.chunks_mut(lanes).zip(acc) {
        let a = if relu { a.relu() } else { a };
        if o.len() == lanes {
            simd::store(o, a);
        } else {
            for (o, v) in o.iter_mut().zip(a.to_array()) {
                *o = v;
            }
        }
    }
}

/// The dot-row layout: every output's `Wᵀ` row against `x` in one pass.
#[inline(always)]
fn dot_rows<S: Lane>(k: Panels) {
    macro_rules! outputs {
        ($($n:literal)*) => {
            match k.out.len() {
                0 => {}
                $($n => dots::<S, $n, { if $n <= 6 { 2 } else { 1 } }>(k.x, k.packed, k.bias, k.out, k.relu),)*
                n => unreachable!("{n} dot rows"),
            }
        };
    }
    outputs!(1 2 3 4 5 6 7 8 9 10 11 12);
}

/// `N` dot rows (`packed` is `N x width`, `width` = `x.len()` rounded up
/// to 16): `CH` accumulators per output over interleaved vectors of `x`
/// (two when few outputs leave the multiply-add latency exposed), the
/// last vector of `x` padded with zeros (so are the rows), then
/// `out[j] = bias[j] + sum of the lanes` (rectified when `relu`).
#[inline(always)]
fn dots<S: Lane, const N: usize, const CH: usize>(
    x: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    relu: bool,
) {
    let lanes = S::LANES;
    let width = packed.len() / N;
    let rows: [&[f32]; N] = simd::array(|j| &packed[j * width..][..width]);
    let mut acc = [[S::zero(); N]; CH];
    let step = CH * lanes;
    let full = x.len() / step * step;
    for i in (0..full).step_by(step) {
        for (c, acc_c) in acc.iter_mut().enumerate() {
            let at = i + c * lanes;
            let xv = S::load(&x[at..]);
            for (a, row) in acc_c.iter_mut().zip(&rows) {
                *a = xv.mul_add(S::load(&row[at..]), *a);
            }
        }
    }
    let (n, mut at) = (x.len(), full);
    while at < n {
        // The last partial vector, when `x` holds a whole one: the vector
        // that ends at `n`, its lanes before `at` (summed already) cleared
        // in `x` and in the rows.
        let from = if at + lanes > n && n >= lanes {
            n - lanes
        } else {
            at
        };
        let (xv, keep) = if from < at {
            let keep = S::from_fn(|t| t as f32).gt(S::splat((at - from) as f32 - 0.5));
            (S::load(&x[from..]).and(keep), Some(keep))
        } else {
            (S::load_padded(&x[from..], 0.0), None)
        };
        for (a, row) in acc[0].iter_mut().zip(&rows) {
            let w = S::load(&row[from..]);
            *a = xv.mul_add(keep.map_or(w, |k| w.and(k)), *a);
        }
        at = from + lanes;
    }
    for (j, o) in out.iter_mut().enumerate() {
        // A plain loop, not an iterator fold: the fold's closure is not
        // inlined into the run-time AVX2 entry, which leaves each vector
        // add an out-of-line call in builds without AVX2 enabled.
        let mut sum = acc[0][j];
        for acc_c in &acc[1..] {
            sum = sum.add(acc_c[j]);
        }
        let v = bias.map_or(0.0, |b| b[j]) + sum.reduce_add();
        *o = if relu {
            crate::activation::relu_scalar_value(v)
        } else {
            v
        };
    }
}

/// Asserts that `what` of `op` has `expected` elements (the length
/// check of the kernels and the layer ops).
#[track_caller]
pub(crate) fn check_len(op: &str, what: &str, got: usize, expected: usize) {
    assert!(
        got == expected,
        "{op}: {what} has {got} elements, expected {expected}"
    );
}

#[inline]
#[track_caller]
pub(super) fn check_packed(
    x: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    n_in: usize,
    n_out: usize,
    out: &[f32],
) {
    let op = "matvec_bias_packed";
    check_len(op, "x", x.len(), n_in);
    let len = matvec_packed_len(n_in, n_out);
    check_len(op, "the packed W", packed.len(), len);
    if let Some(b) = bias {
        check_len(op, "bias", b.len(), n_out);
    }
    check_len(op, "out", out.len(), n_out);
}

/// Scalar twin of [`matvec_bias_packed`]: the same packed layouts, one
/// output at a time (no fused multiply-adds; a dot row's sum in input
/// order, then the bias).
///
/// # Panics
/// If a slice length does not match the shapes.
#[track_caller]
pub fn matvec_bias_packed_scalar(
    x: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    n_in: usize,
    n_out: usize,
    out: &mut [f32],
) {
    check_packed(x, packed, bias, n_in, n_out, out);
    if n_out <= MATVEC_DOT_MAX {
        let width = n_in.next_multiple_of(PANEL_ALIGN);
        for (j, o) in out.iter_mut().enumerate() {
            let row = &packed[j * width..][..n_in];
            let dot = x.iter().zip(row).fold(0.0, |s, (&xi, &wv)| s + xi * wv);
            *o = bias.map_or(0.0, |b| b[j]) + dot;
        }
        return;
    }
    for (j, o) in out.iter_mut().enumerate() {
        let (p, c) = (j / MATVEC_PANEL, j % MATVEC_PANEL);
        let j0 = p * MATVEC_PANEL;
        let width = (n_out - j0).min(MATVEC_PANEL).next_multiple_of(PANEL_ALIGN);
        let panel = &packed[n_in * j0..][..n_in * width];
        *o = bias.map_or(0.0, |b| b[j]);
        for (i, &xi) in x.iter().enumerate() {
            *o += xi * panel[i * width + c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::testing::{data, isas};

    /// Every instantiation against the twin, both layouts, with and without
    /// bias and ReLU: exact where the sums are exact (small integers), and
    /// at the edges of the output buffer.
    #[test]
    fn every_isa_matches_the_twin_on_integers() {
        let sizes = [0, 1, 7, 8, 9, 12, 13, 16, 17, 63, 64, 65, 130, 200];
        for isa in isas("matvec_bias_packed") {
            for n_in in [0, 1, 3, 16, 17, 64, 65] {
                for n_out in sizes {
                    let x: Vec<f32> = data(n_in, 1).iter().map(|v| v.round()).collect();
                    let w: Vec<f32> = data(n_in * n_out, 2).iter().map(|v| v.round()).collect();
                    let b: Vec<f32> = data(n_out, 3).iter().map(|v| v.round()).collect();
                    let mut packed = vec![f32::NAN; matvec_packed_len(n_in, n_out)];
                    matvec_pack(&w, n_in, n_out, &mut packed);
                    for (bias, relu) in [(Some(&b[..]), false), (None, false), (Some(&b), true)] {
                        let twin = if relu {
                            matvec_bias_relu_packed_scalar
                        } else {
                            matvec_bias_packed_scalar
                        };
                        let mut expected = vec![f32::NAN; n_out];
                        twin(&x, &packed, bias, n_in, n_out, &mut expected);
                        let mut out = vec![f32::NAN; n_out + 1];
                        isa.run(Panels {
                            x: &x,
                            packed: &packed,
                            bias,
                            out: &mut out[..n_out],
                            relu,
                        });
                        let at = format!("{isa:?} {n_in}x{n_out} relu {relu}");
                        assert_eq!(&out[..n_out], &expected[..], "{at}");
                        assert!(out[n_out].is_nan(), "{at}: wrote past out");
                    }
                }
            }
        }
    }
}

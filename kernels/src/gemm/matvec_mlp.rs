//! The batch-1 forward of a network with one ReLU hidden layer, `out =
//! relu(x W1 + b1) W2 + b2`, over weights packed by [`matvec_pack`]: the
//! two products of [`matvec_bias_relu_packed`] and [`matvec_bias_packed`]
//! in one call, one shape check and one vector type for both, so that a
//! small network (the spiral's 2-100-3) costs little more than its
//! arithmetic.

use super::matvec_panels::{check_packed, Panels};
#[cfg(doc)]
use super::matvec_panels::{matvec_bias_packed, matvec_bias_relu_packed, matvec_pack};
use super::matvec_panels::{matvec_bias_packed_scalar, matvec_bias_relu_packed_scalar};
use crate::simd::{self, Kernel, Lane};

/// A network `relu(x W1 + b1) W2 + b2` with both weight matrices as
/// [`matvec_pack`] wrote them; its widths are those of the biases (`hidden
/// = b1.len()`, `n_out = b2.len()`) and of the input row.
#[derive(Clone, Copy, Debug)]
pub struct PackedReluMlp<'a> {
    /// `W1` (`n_in x hidden`), packed.
    pub w1: &'a [f32],
    /// `hidden`.
    pub b1: &'a [f32],
    /// `W2` (`hidden x n_out`), packed.
    pub w2: &'a [f32],
    /// `n_out`.
    pub b2: &'a [f32],
}

/// `out = relu(x W1 + b1) W2 + b2` for one row `x` (`n_in`), the hidden
/// activations written to `hidden` (`b1.len()` elements, overwritten),
/// `out` (`b2.len()`) overwritten. The same sums as
/// [`matvec_bias_relu_packed`] then [`matvec_bias_packed`], bit for bit.
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::gemm::{matvec_pack, matvec_packed_len, mlp_relu_one_packed, PackedReluMlp};
/// let pack = |w: &[f32], n_in, n_out| {
///     let mut p = vec![0.0; matvec_packed_len(n_in, n_out)];
///     matvec_pack(w, n_in, n_out, &mut p);
///     p
/// };
/// // 1 input, 2 hidden units (weights 1 and -1), 1 output summing them.
/// let (w1, w2) = (pack(&[1.0, -1.0], 1, 2), pack(&[1.0, 1.0], 2, 1));
/// let net = PackedReluMlp { w1: &w1, b1: &[0.0, 0.0], w2: &w2, b2: &[0.5] };
/// let (mut hidden, mut out) = ([f32::NAN; 2], [f32::NAN; 1]);
/// mlp_relu_one_packed(&net, &[3.0], &mut hidden, &mut out);
/// assert_eq!((hidden, out), ([3.0, 0.0], [3.5]));
/// ```
#[track_caller]
pub fn mlp_relu_one_packed(net: &PackedReluMlp, x: &[f32], hidden: &mut [f32], out: &mut [f32]) {
    let (n_in, n_hidden, n_out) = (x.len(), net.b1.len(), net.b2.len());
    check_packed(x, net.w1, Some(net.b1), n_in, n_hidden, hidden);
    check_packed(hidden, net.w2, Some(net.b2), n_hidden, n_out, out);
    simd::dispatch(Chain {
        net,
        x,
        hidden,
        out,
    });
}

/// Scalar twin of [`mlp_relu_one_packed`]: the two products' scalar twins.
///
/// # Panics
/// If a slice length does not match the shapes.
#[track_caller]
pub fn mlp_relu_one_packed_scalar(
    net: &PackedReluMlp,
    x: &[f32],
    hidden: &mut [f32],
    out: &mut [f32],
) {
    let (n, n_in, n_hidden, n_out) = (net, x.len(), net.b1.len(), net.b2.len());
    matvec_bias_relu_packed_scalar(x, n.w1, Some(n.b1), n_in, n_hidden, hidden);
    matvec_bias_packed_scalar(hidden, n.w2, Some(n.b2), n_hidden, n_out, out);
}

/// The arguments of [`mlp_relu_one_packed`] after the shape checks.
struct Chain<'a, 'n> {
    net: &'n PackedReluMlp<'a>,
    x: &'a [f32],
    hidden: &'a mut [f32],
    out: &'a mut [f32],
}

impl Kernel for Chain<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lane>(self) {
        let net = self.net;
        let hidden = &mut *self.hidden;
        Panels::new(self.x, net.w1, Some(net.b1), hidden, true).run::<S>();
        Panels::new(self.hidden, net.w2, Some(net.b2), self.out, false).run::<S>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::{matvec_pack, matvec_packed_len};
    use crate::simd::testing::{data, isas};

    fn pack(w: &[f32], n_in: usize, n_out: usize) -> Vec<f32> {
        let mut p = vec![f32::NAN; matvec_packed_len(n_in, n_out)];
        matvec_pack(w, n_in, n_out, &mut p);
        p
    }

    /// Every instantiation against the twin, exact on small integers
    /// (where every sum is exact), both layouts in each layer.
    #[test]
    fn every_isa_matches_the_twin_on_integers() {
        for isa in isas("mlp_relu_one_packed") {
            for (n_in, hidden, n_out) in [
                (2, 100, 3),
                (1, 1, 1),
                (3, 17, 13),
                (16, 7, 2),
                (33, 64, 12),
            ] {
                let int =
                    |n, seed| -> Vec<f32> { data(n, seed).iter().map(|v| v.round()).collect() };
                let (w1, w2) = (int(n_in * hidden, 1), int(hidden * n_out, 2));
                let (w1, w2) = (pack(&w1, n_in, hidden), pack(&w2, hidden, n_out));
                let (b1, b2, x) = (int(hidden, 3), int(n_out, 4), int(n_in, 5));
                let net = PackedReluMlp {
                    w1: &w1,
                    b1: &b1,
                    w2: &w2,
                    b2: &b2,
                };
                let (mut h0, mut o0) = (vec![f32::NAN; hidden], vec![f32::NAN; n_out]);
                mlp_relu_one_packed_scalar(&net, &x, &mut h0, &mut o0);
                let (mut h1, mut o1) = (vec![f32::NAN; hidden], vec![f32::NAN; n_out]);
                isa.run(Chain {
                    net: &net,
                    x: &x,
                    hidden: &mut h1,
                    out: &mut o1,
                });
                assert_eq!((&h1, &o1), (&h0, &o0), "{isa:?} {n_in}-{hidden}-{n_out}");
            }
        }
    }
}

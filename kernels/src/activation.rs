//! Fused bias + activation (+ inverted dropout) forward and the matching
//! backward: ReLU here, and every [`Activation`] through
//! [`bias_act_forward`] and [`act_backward`] (ReLU there takes the ReLU
//! kernels below, bit for bit).
//!
//! For ReLU:
//! The forward overwrites the pre-activation buffer with the activation
//! `A`, which is all the backward needs: a unit was active (and kept by
//! dropout) exactly where `A > 0`.
//!
//! NaN: `relu(NaN) = NaN` (it propagates); the backward treats a NaN
//! activation as inactive (`NaN > 0` is false).

use crate::mask;
use crate::simd::{store, Lane};
use wide::f32x8;

mod kinds;

pub use kinds::{
    act_backward, act_backward_scalar, act_scalar_value, bias_act_forward, bias_act_forward_scalar,
};
pub(crate) use kinds::{act_lanes, derivative_lanes, derivative_scalar};

/// The slope of [`Activation::LeakyRelu`] for inputs that are not positive:
/// `leaky_relu(z) = z` for `z > 0`, else `LEAKY_RELU_SLOPE * z`.
pub const LEAKY_RELU_SLOPE: f32 = 0.01;

/// A hidden layer's activation function.
///
/// Names (for files and flags): `relu`, `tanh`, `sigmoid`, `leaky-relu`;
/// with the `serde` feature it serializes as its name.
///
/// # Example
/// ```
/// use vnn_kernels::activation::Activation;
/// assert_eq!(Activation::from_name("leaky-relu"), Some(Activation::LeakyRelu));
/// assert_eq!(Activation::Tanh.name(), "tanh");
/// assert_eq!("sigmoid".parse::<Activation>(), Ok(Activation::Sigmoid));
/// assert!("gelu".parse::<Activation>().is_err());
/// assert_eq!(Activation::default(), Activation::Relu);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Activation {
    /// `max(0, z)`; NaN propagates.
    #[default]
    Relu,
    /// `tanh(z)`, in `[-1, 1]` for every finite `z`.
    Tanh,
    /// `1 / (1 + e^-z)`, in `[0, 1]` for every finite `z`.
    Sigmoid,
    /// `z` for `z > 0`, else [`LEAKY_RELU_SLOPE`]` * z`.
    LeakyRelu,
}

impl Activation {
    /// Every activation, in the order of their names in docs and help.
    pub const ALL: [Activation; 4] = [
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::LeakyRelu,
    ];

    /// The name used in files and flags.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::LeakyRelu => "leaky-relu",
        }
    }

    /// The activation called `name` ([`Activation::name`]), if any.
    pub fn from_name(name: &str) -> Option<Activation> {
        Activation::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown activation name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownActivation(pub String);

impl std::fmt::Display for UnknownActivation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown activation '{}' (expected relu, tanh, sigmoid or leaky-relu)",
            self.0
        )
    }
}

impl std::error::Error for UnknownActivation {}

impl std::str::FromStr for Activation {
    type Err = UnknownActivation;
    fn from_str(s: &str) -> Result<Activation, UnknownActivation> {
        Activation::from_name(s).ok_or_else(|| UnknownActivation(s.to_string()))
    }
}

/// Lanes per SIMD vector.
const LANES: usize = 8;

#[track_caller]
fn check(z: &[f32], bias: &[f32], rows: usize, cols: usize, op: &str) {
    assert_eq!(
        z.len(),
        rows * cols,
        "{op}: Z has {} elements, expected rows*cols = {rows}*{cols}",
        z.len()
    );
    assert_eq!(
        bias.len(),
        cols,
        "{op}: bias has {} elements, expected cols = {cols}",
        bias.len()
    );
}

/// The shape checks of [`relu_backward`] and its twin; returns whether
/// there are columns to do.
#[track_caller]
fn check_backward(a_then_dz: &[f32], da: &[f32], rows: usize, cols: usize, db: &[f32]) -> bool {
    check(a_then_dz, db, rows, cols, "relu_backward");
    assert_eq!(
        da.len(),
        rows * cols,
        "relu_backward: dA has {} elements, expected {rows}*{cols}",
        da.len()
    );
    cols > 0
}

/// Scalar ReLU with the crate's NaN rule: NaN propagates, `-0.0` and negative
/// values become `+0.0`.
#[inline(always)]
pub fn relu_scalar_value(z: f32) -> f32 {
    if z > 0.0 || z.is_nan() {
        z
    } else {
        0.0
    }
}

/// `Z = max(0, Z + bias)` in place, the bias broadcast over rows.
///
/// - `z`: `rows x cols`, pre-activations in, activations `A` out (saved for
///   [`relu_backward`]).
/// - `bias`: `cols`.
///
/// Exact: equals [`bias_relu_forward_scalar`] bit for bit.
///
/// # Panics
/// If `z.len() != rows * cols` or `bias.len() != cols`.
///
/// # Example
/// ```
/// use vnn_kernels::activation::bias_relu_forward;
/// let mut z = [1.0, -2.0, -1.0, 0.5];
/// bias_relu_forward(&mut z, &[0.5, 1.0], 2, 2);
/// assert_eq!(z, [1.5, 0.0, 0.0, 1.5]);
/// ```
#[track_caller]
pub fn bias_relu_forward(z: &mut [f32], bias: &[f32], rows: usize, cols: usize) {
    check(z, bias, rows, cols, "bias_relu_forward");
    if cols == 0 {
        return;
    }
    let bias_lanes = bias.chunks_exact(LANES);
    let bias_rest = bias_lanes.remainder();
    for row in z.chunks_exact_mut(cols) {
        let mut zs = row.chunks_exact_mut(LANES);
        for (zc, bc) in (&mut zs).zip(bias_lanes.clone()) {
            // Same single addition as the twin, then the same ReLU rule.
            store(zc, (f32x8::load(zc) + f32x8::load(bc)).relu());
        }
        for (v, &b) in zs.into_remainder().iter_mut().zip(bias_rest) {
            *v = relu_scalar_value(*v + b);
        }
    }
}

/// Scalar twin of [`bias_relu_forward`].
///
/// # Panics
/// If `z.len() != rows * cols` or `bias.len() != cols`.
#[track_caller]
pub fn bias_relu_forward_scalar(z: &mut [f32], bias: &[f32], rows: usize, cols: usize) {
    check(z, bias, rows, cols, "bias_relu_forward");
    if cols == 0 {
        return;
    }
    for row in z.chunks_exact_mut(cols) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = relu_scalar_value(*v + b);
        }
    }
}

/// `Z = max(0, Z + bias) * M` in place, where `M` is the inverted-dropout
/// mask of [`mask::bernoulli_mask`] for `(p_drop, seed, stream)` over the
/// `rows * cols` elements of this call (element `(r, c)` uses mask position
/// `r * cols + c`): kept units are scaled by `1 / (1 - p_drop)`, dropped ones
/// are multiplied by 0 (so they are `+0.0` unless the activation is NaN or
/// `+inf`, which give NaN, as the unfused multiplication does). One pass; the
/// mask is never stored.
///
/// Exact: equals [`bias_relu_forward_scalar`] followed by multiplication
/// with the mask, bit for bit.
///
/// # Panics
/// If the shapes do not match, or `p_drop` is not in `[0, 1)`.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn bias_relu_dropout_forward(
    z: &mut [f32],
    bias: &[f32],
    rows: usize,
    cols: usize,
    p_drop: f32,
    seed: u64,
    stream: u64,
) {
    check(z, bias, rows, cols, "bias_relu_dropout_forward");
    let threshold = mask::keep_threshold(p_drop);
    let scale = mask::keep_scale(p_drop);
    if cols == 0 {
        return;
    }
    // Rows run through the stream in order, so row r starts at mask position
    // r * cols; `take8`/`take1` read from any position.
    let mut bits = mask::MaskBitsSimd::new(seed, stream);
    let bias_lanes = bias.chunks_exact(LANES);
    let bias_rest = bias_lanes.remainder();
    for row in z.chunks_exact_mut(cols) {
        let mut zs = row.chunks_exact_mut(LANES);
        for (zc, bc) in (&mut zs).zip(bias_lanes.clone()) {
            let m = mask::mask_values(bits.take8_lanes(), threshold, scale);
            store(zc, (f32x8::load(zc) + f32x8::load(bc)).relu() * m);
        }
        for (v, &b) in zs.into_remainder().iter_mut().zip(bias_rest) {
            let m = mask::mask_value(bits.take1(), threshold, scale);
            *v = relu_scalar_value(*v + b) * m;
        }
    }
}

/// Scalar twin of [`bias_relu_dropout_forward`].
///
/// # Panics
/// If the shapes do not match, or `p_drop` is not in `[0, 1)`.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn bias_relu_dropout_forward_scalar(
    z: &mut [f32],
    bias: &[f32],
    rows: usize,
    cols: usize,
    p_drop: f32,
    seed: u64,
    stream: u64,
) {
    check(z, bias, rows, cols, "bias_relu_dropout_forward");
    let threshold = mask::keep_threshold(p_drop);
    let scale = mask::keep_scale(p_drop);
    let mut bits = mask::MaskBits::new(seed, stream);
    for (i, v) in z.iter_mut().enumerate() {
        let b = bias[i % cols];
        // The mask value, as `bernoulli_mask` writes it.
        let m = if bits.next_keep(threshold) {
            scale
        } else {
            0.0
        };
        *v = relu_scalar_value(*v + b) * m;
    }
}

/// ReLU backward fused with the bias gradient.
///
/// Differentiates `A = max(0, Z + b) * s` (with `s = 1 / (1 - p_drop)` under
/// dropout, `s = 1` without): `dZ = dA * s` where `A > 0`, else `0`; and
/// `db += column sums of dZ`.
///
/// - `a_then_dz`: `rows x cols`; the forward's activations `A` in, `dZ` out.
/// - `da`: `rows x cols`, the upstream gradient `dA`.
/// - `scale`: `s` above.
/// - `db`: `cols`, accumulated into.
///
/// # Panics
/// If a slice length does not match the shapes.
#[track_caller]
pub fn relu_backward(
    a_then_dz: &mut [f32],
    da: &[f32],
    rows: usize,
    cols: usize,
    scale: f32,
    db: &mut [f32],
) {
    if !check_backward(a_then_dz, da, rows, cols, db) {
        return;
    }
    let scale_lanes = f32x8::splat(scale);
    let full = cols - cols % LANES;
    let (db_lanes, db_rest) = db.split_at_mut(full);
    for (row, drow) in a_then_dz.chunks_exact_mut(cols).zip(da.chunks_exact(cols)) {
        let (z_lanes, z_rest) = row.split_at_mut(full);
        let (d_lanes, d_rest) = drow.split_at(full);
        let lanes = z_lanes
            .chunks_exact_mut(LANES)
            .zip(d_lanes.chunks_exact(LANES))
            .zip(db_lanes.chunks_exact_mut(LANES));
        for ((zc, dc), bc) in lanes {
            // A = max(0, Z + b) * s  =>  dZ = dA * s where A > 0 (NaN: inactive)
            let dz = (f32x8::load(dc) * scale_lanes).where_active(f32x8::load(zc));
            store(zc, dz);
            // db += dZ, one row at a time as in the twin.
            store(bc, f32x8::load(bc) + dz);
        }
        for ((v, &d), acc) in z_rest.iter_mut().zip(d_rest).zip(db_rest.iter_mut()) {
            *v = if *v > 0.0 { d * scale } else { 0.0 };
            *acc += *v;
        }
    }
}

/// Scalar twin of [`relu_backward`].
///
/// # Panics
/// If a slice length does not match the shapes.
#[track_caller]
pub fn relu_backward_scalar(
    a_then_dz: &mut [f32],
    da: &[f32],
    rows: usize,
    cols: usize,
    scale: f32,
    db: &mut [f32],
) {
    if !check_backward(a_then_dz, da, rows, cols, db) {
        return;
    }
    for (row, drow) in a_then_dz.chunks_exact_mut(cols).zip(da.chunks_exact(cols)) {
        for ((v, &d), acc) in row.iter_mut().zip(drow).zip(db.iter_mut()) {
            *v = if *v > 0.0 { d * scale } else { 0.0 };
            *acc += *v;
        }
    }
}

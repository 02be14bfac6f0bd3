//! Models: the linear softmax classifier and the MLP (ReLU by default, or
//! another hidden [`Activation`]), on one flat parameter buffer, with
//! allocation-free batch-1 inference.

use crate::data::Standardizer;
use crate::error::{Error, Result};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use vnn_kernels::gemm;
use vnn_kernels::layer::{self, DenseShape, Dropout};
use vnn_kernels::{reduce, softmax};

mod packed;
mod parts;
pub(crate) use parts::names_problem;
pub use vnn_kernels::activation::Activation;

/// Where one layer's weight and bias sit in a flat parameter buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSlot {
    /// Inputs of the layer (rows of the weight matrix).
    pub n_in: usize,
    /// Outputs of the layer (columns of the weight matrix).
    pub n_out: usize,
    /// Offset of the `n_in x n_out` row-major weight matrix.
    pub weight: usize,
    /// Offset of the `n_out` bias vector.
    pub bias: usize,
}

impl LayerSlot {
    /// The weight range in the flat buffer.
    pub fn weight_range(&self) -> std::ops::Range<usize> {
        self.weight..self.weight + self.n_in * self.n_out
    }
    /// The bias range in the flat buffer.
    pub fn bias_range(&self) -> std::ops::Range<usize> {
        self.bias..self.bias + self.n_out
    }
    /// The shape of this layer over a block of `rows` rows, as the layer
    /// ops of [`vnn_kernels::layer`] take it.
    pub fn shape(&self, rows: usize) -> DenseShape {
        DenseShape {
            rows,
            n_in: self.n_in,
            n_out: self.n_out,
        }
    }
}

/// The layout of all parameters of a network of layer widths
/// `sizes = [n_in, hidden.., n_classes]` in one flat buffer:
/// `W0, b0, W1, b1, ...`.
///
/// Only [`Layout::new`] makes one, so the slots always tile the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Layer widths, input first, classes last.
    pub(crate) sizes: Vec<usize>,
    /// One slot per layer (`sizes.len() - 1` of them).
    pub(crate) layers: Vec<LayerSlot>,
    /// Total number of parameters.
    pub(crate) len: usize,
}

impl Layout {
    /// The layout for `sizes` (at least input and output width, all > 0).
    ///
    /// # Errors
    /// If fewer than two sizes are given, a size is 0, or the parameter
    /// count overflows.
    pub fn new(sizes: &[usize]) -> Result<Layout> {
        if sizes.len() < 2 {
            return Err(Error::setting(
                "a network's layer widths",
                "at least two (an input and an output width)",
                format!("{sizes:?}"),
            ));
        }
        if let Some(i) = sizes.iter().position(|&s| s == 0) {
            return Err(Error::setting(
                format!("layer width {i}"),
                "positive",
                format!("0 in {sizes:?}"),
            ));
        }
        let mut layers = Vec::with_capacity(sizes.len() - 1);
        let mut off = 0usize;
        let too_big = || {
            Error::setting(
                "a network's parameter count",
                "at most 2^34",
                format!("more for {sizes:?}"),
            )
        };
        for w in sizes.windows(2) {
            let n_w = w[0].checked_mul(w[1]).ok_or_else(too_big)?;
            let weight = off;
            let bias = off.checked_add(n_w).ok_or_else(too_big)?;
            off = bias.checked_add(w[1]).ok_or_else(too_big)?;
            layers.push(LayerSlot {
                n_in: w[0],
                n_out: w[1],
                weight,
                bias,
            });
        }
        if off > (1usize << 34) {
            return Err(too_big());
        }
        Ok(Layout {
            sizes: sizes.to_vec(),
            layers,
            len: off,
        })
    }

    /// Layer widths, input first, classes last.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }
    /// One slot per layer, in layer order.
    pub fn layers(&self) -> &[LayerSlot] {
        &self.layers
    }
    /// Total number of parameters (the length of the flat buffer).
    ///
    /// # Example
    /// ```
    /// let layout = vnn::model::Layout::new(&[2, 3, 4]).unwrap();
    /// assert_eq!(layout.n_params(), 2 * 3 + 3 + 3 * 4 + 4);
    /// assert_eq!(layout.layers()[1].weight, 9);
    /// ```
    pub fn n_params(&self) -> usize {
        self.len
    }
    /// Input width.
    pub fn n_in(&self) -> usize {
        self.sizes[0]
    }
    /// Number of classes.
    pub fn n_out(&self) -> usize {
        *self.sizes.last().expect("layout has sizes")
    }
    /// Widest layer (for scratch buffers).
    pub fn max_width(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0)
    }
    /// Hidden widths.
    pub fn hidden(&self) -> &[usize] {
        &self.sizes[1..self.sizes.len() - 1]
    }
}

/// Refuses logits (`rows x k`, row-major) of which one is not finite,
/// naming its 1-based row counted after `first_row` earlier rows.
pub(crate) fn check_finite_output(logits: &[f32], k: usize, first_row: usize) -> Result<()> {
    // A sum of `v * 0` is 0 for finite values and NaN otherwise: one pass
    // the compiler vectorizes; the position is looked for only on failure.
    // A few logits (one row) are checked one by one instead: the sum is a
    // chain of dependent additions on the path of a batch-1 call.
    let poisoned = if logits.len() <= 16 {
        !logits.iter().all(|v| v.is_finite())
    } else {
        logits
            .chunks(4096)
            .any(|c| c.iter().fold(0f32, |a, &v| a + v * 0.0) != 0.0)
    };
    match poisoned
        .then(|| logits.iter().position(|v| !v.is_finite()))
        .flatten()
    {
        Some(i) => Err(Error::OutputNotFinite {
            row: first_row + i / k.max(1) + 1,
        }),
        None => Ok(()),
    }
}

/// How weights are initialized (biases start at 0, except with
/// [`Init::Glorot`]).
///
/// Every kind draws from one `Xoshiro256PlusPlus` seeded with
/// `seed_from_u64(seed)`, layer by layer. [`Init::He`] and [`Init::Small`]
/// draw each layer's weights (row-major) as `StandardNormal` times their
/// scale. [`Init::Glorot`] draws each layer's weights (row-major) and then
/// its biases, each as `(2 u - 1) * b` in `f64`, rounded to `f32`, with
/// `u = (next_u64() >> 11) * 2^-53` (in `[0, 1)`) and
/// `b = sqrt(6 / (n_in + n_out))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Init {
    /// He: standard normal times `sqrt(2 / n_in)`, suited to ReLU (default).
    #[default]
    He,
    /// The source text's `0.01 * standard normal`.
    Small,
    /// Glorot (Xavier) uniform, weights and biases, as scikit-learn's
    /// `MLPClassifier`: `U(-b, b)`, `b = sqrt(6 / (n_in + n_out))`.
    Glorot,
}

/// A uniform draw in `[-b, b)` of the [`Init::Glorot`] stream.
fn glorot_draw(rng: &mut Xoshiro256PlusPlus, b: f64) -> f32 {
    use rand::Rng;
    let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    ((2.0 * u - 1.0) * b) as f32
}

/// A trained or freshly initialized classifier: a linear softmax model
/// (no hidden layer) or an MLP whose hidden layers apply one
/// [`Activation`] (ReLU unless [`Model::with_activation`] says otherwise),
/// with everything prediction needs.
///
/// Its fields are private so that every model holds together (a parameter
/// buffer of the layout's length, one name per feature and class, a
/// standardizer of the feature count): build one with [`Model::new`] or
/// [`Model::from_params`], then [`Model::with_names`],
/// [`Model::with_standardizer`] and [`Model::with_activation`], or load one
/// with [`Model::load`].
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Parameter layout.
    pub(crate) layout: Layout,
    /// All weights and biases, laid out by [`Model::layout`]; private, so
    /// that every change goes through [`Model::params_mut`], which drops
    /// `packed`.
    params: Vec<f32>,
    /// The batch-1 packed copies of some layers' weights, made on first
    /// use (see `model/packed.rs`).
    packed: packed::PackedLayers,
    /// Names of the input features, in input order.
    pub(crate) feature_names: Vec<String>,
    /// Names of the classes, in class-index order.
    pub(crate) class_names: Vec<String>,
    /// Standardization applied to raw inputs before the first layer.
    pub(crate) standardizer: Option<Standardizer>,
    /// The activation of every hidden layer.
    pub(crate) activation: Activation,
}

/// Scratch space for allocation-free [`Model::predict_one`]; make it once
/// with [`Model::scratch`] and reuse it.
#[derive(Clone, Debug)]
pub struct Scratch {
    /// `n_features`: the standardized input row.
    input: Vec<f32>,
    /// The activations of every hidden layer, one after another.
    hidden: Vec<f32>,
    /// `n_classes`: the logits, then the probabilities.
    scores: Vec<f32>,
}

/// Reusable buffers of batch prediction ([`Model::logits_into`]): one
/// region per parallel slot, each holding the standardized inputs and the
/// hidden activations of a block of [`PREDICT_BLOCK_ROWS`] rows. It grows
/// when a call needs more and never shrinks; make it once with
/// [`Workspace::default`] and reuse it across calls and models.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    buf: Vec<f32>,
}

// A tuning detail, out of the public docs; the allocation tests name it.
#[doc(hidden)]
/// Rows per block of batch prediction: a row's logits depend only on the
/// row and on its block's row count, never on the thread count.
pub const PREDICT_BLOCK_ROWS: usize = 256;

/// Total width of the hidden layers (floats per row of their activations).
fn hidden_width(layout: &Layout) -> usize {
    layout.hidden().iter().sum()
}

/// Where hidden layer `l`'s `rows x width` activations sit in a flat buffer
/// holding every hidden layer's, in layer order.
pub(crate) fn hidden_range(layout: &Layout, rows: usize, l: usize) -> std::ops::Range<usize> {
    let hidden = layout.hidden();
    let start = rows * hidden[..l].iter().sum::<usize>();
    start..start + rows * hidden[l]
}

/// The forward pass of one block of `rows` rows: training, batch predict
/// and batch-1 predict all run it.
///
/// - `x`: `rows x n_in`, the (standardized) inputs.
/// - `act`: the hidden layers' activation.
/// - `hidden`: at least `rows x` the total hidden width; hidden layer `l`'s
///   activations `A_l = act(A_{l-1} W_l + b_l)` (what the backward needs)
///   go to [`hidden_range`]`(layout, rows, l)`.
/// - `scores`: `rows x n_classes`, the logits `A W + b` of the last layer.
/// - `dropout`: inverted dropout on the hidden activations (training only);
///   hidden layer `l` uses the stream `dropout.stream | l`.
/// - `packed`: for one row without dropout, the packed weights of the
///   layers that have them (batch-1 inference), else empty.
///
/// The layer ops choose the kernels by shape ([`vnn_kernels::layer`]);
/// ReLU keeps its fused ops ([`layer::dense_act_forward`]); a layer with
/// packed weights takes [`layer::dense_act_forward_packed`] (the logits
/// [`gemm::matvec_bias_packed`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_rows(
    layout: &Layout,
    params: &[f32],
    act: Activation,
    x: &[f32],
    rows: usize,
    hidden: &mut [f32],
    scores: &mut [f32],
    dropout: Option<Dropout>,
    packed: &[Option<Vec<f32>>],
    ws: &mut [f32],
) {
    debug_assert!(packed.is_empty() || (rows == 1 && dropout.is_none()));
    let last = layout.layers.len() - 1;
    // Where A_{l-1} starts in `hidden`.
    let mut start = 0;
    for (l, slot) in layout.layers.iter().enumerate() {
        let w = &params[slot.weight_range()];
        let b = &params[slot.bias_range()];
        let (n_in, n_out) = (slot.n_in, slot.n_out);
        let shape = slot.shape(rows);
        let split = if l == 0 { 0 } else { start + rows * n_in };
        let (done, rest) = hidden.split_at_mut(split);
        let input: &[f32] = if l == 0 { x } else { &done[start..] };
        let packed = packed.get(l).and_then(Option::as_deref);
        if let (Some(p), true) = (packed, l == last) {
            // One row over packed weights, as below.
            gemm::matvec_bias_packed(input, p, Some(b), n_in, n_out, scores);
        } else if let Some(p) = packed {
            let a = &mut rest[..n_out];
            layer::dense_act_forward_packed(act, n_in, n_out, input, p, b, a);
        } else if l == last {
            // scores = A W + b
            layer::dense_forward(shape, input, w, b, scores);
        } else {
            // A_l = act(A_{l-1} W_l + b_l) (* dropout mask)
            let a = &mut rest[..rows * n_out];
            let d = dropout.map(|d| Dropout {
                stream: d.stream | l as u64,
                ..d
            });
            layer::dense_act_forward_with(ws, act, shape, input, w, b, d, a);
        }
        if l > 0 {
            start += rows * n_in;
        }
    }
}

/// The batch-1 network of a model with one ReLU hidden layer whose two
/// layers are both packed (the one-call path of [`Model::predict_one`]).
fn packed_relu_mlp<'a>(
    layout: &Layout,
    params: &'a [f32],
    act: Activation,
    packed: &'a [Option<Vec<f32>>],
) -> Option<gemm::PackedReluMlp<'a>> {
    let ([l1, l2], [Some(w1), Some(w2)]) = (&layout.layers[..], packed) else {
        return None;
    };
    (act == Activation::Relu).then(|| gemm::PackedReluMlp {
        w1,
        b1: &params[l1.bias_range()],
        w2,
        b2: &params[l2.bias_range()],
    })
}

impl Model {
    /// A model for `sizes = [n_in, hidden.., n_classes]` with weights from
    /// `init` and `seed` (see [`Init`] for the stream), biases 0 (drawn
    /// too with [`Init::Glorot`]), generic feature and class names.
    ///
    /// # Errors
    /// If the sizes are invalid (see [`Layout::new`]); [`Error::TooLarge`]
    /// if the parameters do not fit the memory budget ([`crate::budget`]).
    pub fn new(sizes: &[usize], init: Init, seed: u64) -> Result<Model> {
        let layout = Layout::new(sizes)?;
        crate::budget::check(
            &format!("a model of layer widths {sizes:?}"),
            crate::budget::bytes(&[layout.len as u64, 4]),
            "use smaller layers (lower `hidden`)",
        )?;
        let mut params = vec![0f32; layout.len];
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        for slot in &layout.layers {
            if init == Init::Glorot {
                let b = (6.0 / (slot.n_in + slot.n_out) as f64).sqrt();
                for range in [slot.weight_range(), slot.bias_range()] {
                    for v in &mut params[range] {
                        *v = glorot_draw(&mut rng, b);
                    }
                }
                continue;
            }
            let std = match init {
                Init::He => (2.0 / slot.n_in as f64).sqrt(),
                _ => 0.01,
            };
            for w in &mut params[slot.weight_range()] {
                let z: f64 = StandardNormal.sample(&mut rng);
                *w = (z * std) as f32;
            }
        }
        Ok(Model::with_layout(layout, params))
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.layout.n_in()
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.layout.n_out()
    }

    /// `"linear"` without hidden layers, `"mlp"` with (of any
    /// [`Model::activation`]).
    pub fn architecture(&self) -> &'static str {
        if self.layout.layers.len() == 1 {
            "linear"
        } else {
            "mlp"
        }
    }

    /// Layer `i`'s weight (`n_in x n_out`, row-major) and bias.
    ///
    /// # Panics
    /// If `i` is not below the number of layers (`layout().layers().len()`).
    pub fn layer(&self, i: usize) -> (&[f32], &[f32]) {
        let s = self.layout.layers[i];
        (&self.params[s.weight_range()], &self.params[s.bias_range()])
    }

    /// Scratch space for [`Model::predict_one`] and [`Model::predict_proba_one`].
    ///
    /// It also readies the model for batch-1 inference: the first call on
    /// a model (or after [`Model::params_mut`]) packs the weights of the
    /// layers that [`vnn_kernels::gemm::matvec_packs`] chooses: those of
    /// more than 12 outputs in column panels that the one-row product
    /// reads in one linear stream, and those of at most 12 outputs (and at
    /// least 16 inputs) transposed, for dot products.
    /// The model keeps that copy (the memory of those layers' weights
    /// again, 1.6 MB for 784-512-10) until its parameters can change.
    pub fn scratch(&self) -> Scratch {
        self.packed.get(&self.layout, &self.params);
        Scratch {
            input: vec![0.0; self.n_features()],
            hidden: vec![0.0; hidden_width(&self.layout)],
            scores: vec![0.0; self.n_classes()],
        }
    }

    /// Forward pass of one raw input row into `scratch` (remade if it was
    /// made for another shape); returns the logits, refused when one is
    /// not finite.
    fn logits_one<'s>(&self, x: &[f32], scratch: &'s mut Scratch) -> Result<&'s mut [f32]> {
        let d = self.n_features();
        if x.len() != d {
            return Err(Error::Shape {
                what: "input row".into(),
                expected: d,
                got: x.len(),
            });
        }
        let k = self.n_classes();
        if scratch.input.len() != d
            || scratch.hidden.len() != hidden_width(&self.layout)
            || scratch.scores.len() != k
        {
            *scratch = self.scratch();
        }
        let Scratch {
            input,
            hidden,
            scores,
        } = scratch;
        let x: &[f32] = match &self.standardizer {
            Some(s) => {
                input.copy_from_slice(x);
                s.apply_row(input);
                input
            }
            None => x,
        };
        let (layout, params, act) = (&self.layout, &self.params, self.activation);
        let packed = self.packed.get(layout, params);
        match packed_relu_mlp(layout, params, act, packed) {
            Some(net) => gemm::mlp_relu_one_packed(&net, x, hidden, scores),
            None => forward_rows(
                layout,
                params,
                act,
                x,
                1,
                hidden,
                scores,
                None,
                packed,
                &mut [],
            ),
        }
        check_finite_output(scores, k, 0)?;
        Ok(scores)
    }

    /// The predicted class of one raw (unstandardized) input row. No
    /// allocation once [`Model::scratch`] has readied the model (else the
    /// first call packs weights, as `scratch` does).
    ///
    /// # Errors
    /// If `x.len()` is not the model's feature count;
    /// [`Error::OutputNotFinite`] (row 1) if the logits are not finite:
    /// finite inputs near `f32::MAX`, or huge finite weights, can overflow
    /// (the check reads the `n_classes` logits once, next to a forward pass).
    ///
    /// # Example
    /// ```
    /// use vnn::model::{Init, Model};
    /// let model = Model::new(&[2, 16, 3], Init::He, 0).unwrap();
    /// let mut scratch = model.scratch();
    /// let class = model.predict_one(&[0.1, -0.2], &mut scratch).unwrap();
    /// assert!(class < 3);
    /// assert!(model.predict_one(&[0.1], &mut scratch).is_err());
    /// ```
    pub fn predict_one(&self, x: &[f32], scratch: &mut Scratch) -> Result<usize> {
        let logits = self.logits_one(x, scratch)?;
        // The first maximum, as `reduce::argmax_rows` (the logits are
        // finite here), without its dispatch for one short row.
        let mut best = 0;
        for (j, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = j;
            }
        }
        Ok(best)
    }

    /// Class probabilities of one raw input row (borrowed from `scratch`).
    ///
    /// # Errors
    /// If `x.len()` is not the model's feature count;
    /// [`Error::OutputNotFinite`] (row 1) if the logits are not finite.
    pub fn predict_proba_one<'s>(&self, x: &[f32], scratch: &'s mut Scratch) -> Result<&'s [f32]> {
        let logits = self.logits_one(x, scratch)?;
        let k = logits.len();
        softmax::softmax_rows(logits, 1, k);
        Ok(logits)
    }

    /// Logits (`rows x n_classes`) of `rows` raw input rows
    /// (`rows x n_features`), computed in parallel blocks of
    /// [`PREDICT_BLOCK_ROWS`] rows with inference semantics (no dropout);
    /// allocates its output and one workspace buffer. To predict without
    /// allocating, reuse a [`Workspace`] with [`Model::logits_into`].
    ///
    /// # Errors
    /// If `x.len()` is not `rows * n_features`; [`Error::TooLarge`] if
    /// the logits do not fit the memory budget ([`crate::budget`]).
    pub fn logits(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let k = self.n_classes();
        let needed = crate::budget::bytes(&[rows as u64, k as u64, 4]);
        if needed.is_none_or(|n| n > crate::budget::SMALL_BYTES) {
            let what = format!("the logits of {rows} rows x {k} classes");
            crate::budget::check(&what, needed, "predict fewer rows at a time")?;
        }
        let mut out = vec![0f32; rows.saturating_mul(k)];
        self.logits_into(x, rows, &mut Workspace::default(), &mut out)?;
        Ok(out)
    }

    /// [`Model::logits`] into `out` (`rows x n_classes`), with the buffers
    /// of `workspace`: allocates only when the workspace must grow (a
    /// larger batch, a wider model, or more threads than before), never per
    /// layer or block. A row's logits are the same bits for any thread
    /// count and workspace.
    ///
    /// # Errors
    /// If `x.len()` is not `rows * n_features` or `out.len()` is not
    /// `rows * n_classes`.
    ///
    /// # Example
    /// ```
    /// use vnn::model::{Init, Model, Workspace};
    /// let model = Model::new(&[2, 16, 3], Init::He, 0).unwrap();
    /// let mut workspace = Workspace::default();
    /// let mut out = vec![0.0; 2 * 3];
    /// model.logits_into(&[0.1, -0.2, 0.3, 0.4], 2, &mut workspace, &mut out).unwrap();
    /// assert_eq!(out, model.logits(&[0.1, -0.2, 0.3, 0.4], 2).unwrap());
    /// ```
    pub fn logits_into(
        &self,
        x: &[f32],
        rows: usize,
        workspace: &mut Workspace,
        out: &mut [f32],
    ) -> Result<()> {
        let (d, k) = (self.n_features(), self.n_classes());
        let shape = |what: String, expected: usize, got: usize| Error::Shape {
            what,
            expected,
            got,
        };
        if x.len() != rows.saturating_mul(d) {
            return Err(shape(format!("{rows} input rows"), rows * d, x.len()));
        }
        if out.len() != rows * k {
            return Err(shape(format!("{rows} rows of logits"), rows * k, out.len()));
        }
        const BLOCK: usize = PREDICT_BLOCK_ROWS;
        let n_blocks = rows.div_ceil(BLOCK);
        // Slots of `per` consecutive blocks, one workspace region each.
        let slots = n_blocks.min(rayon::current_num_threads()).max(1);
        let per = n_blocks.div_ceil(slots).max(1);
        let std_width = if self.standardizer.is_some() { d } else { 0 };
        // At least one value, so that every slot gets a region.
        let region = (BLOCK * (std_width + hidden_width(&self.layout))).max(1);
        if workspace.buf.len() < slots * region {
            workspace.buf.resize(slots * region, 0.0);
        }
        let regions = workspace.buf.par_chunks_mut(region);
        out.par_chunks_mut(per * BLOCK * k)
            .zip(x.par_chunks(per * BLOCK * d))
            .zip(regions)
            .for_each(|((o, xs), buf)| {
                let (input, hidden) = buf.split_at_mut(BLOCK * std_width);
                for (ob, xb) in o.chunks_mut(BLOCK * k).zip(xs.chunks(BLOCK * d)) {
                    self.logits_block(xb, input, hidden, ob);
                }
            });
        Ok(())
    }

    /// The logits `out` of one block of raw rows `x`, standardized into
    /// `input` (when the model standardizes), hidden activations in
    /// `hidden`.
    fn logits_block(&self, x: &[f32], input: &mut [f32], hidden: &mut [f32], out: &mut [f32]) {
        let rows = out.len() / self.n_classes();
        let x: &[f32] = match &self.standardizer {
            Some(s) => {
                let input = &mut input[..x.len()];
                input.copy_from_slice(x);
                s.apply(input);
                input
            }
            None => x,
        };
        let (layout, params, act) = (&self.layout, &self.params, self.activation);
        forward_rows(
            layout,
            params,
            act,
            x,
            rows,
            hidden,
            out,
            None,
            &[],
            &mut [],
        );
    }

    /// Predicted classes of `rows` raw input rows, in parallel; with many
    /// classes, in chunks of rows holding at most
    /// [`EVAL_CHUNK_VALUES`](crate::train::EVAL_CHUNK_VALUES) logits.
    ///
    /// # Errors
    /// If `x.len()` is not `rows * n_features`; [`Error::OutputNotFinite`]
    /// naming the first row whose logits are not finite (finite inputs
    /// and weights can still overflow `f32`).
    pub fn predict(&self, x: &[f32], rows: usize) -> Result<Vec<u32>> {
        let (d, k) = (self.n_features(), self.n_classes());
        let chunk = (crate::train::EVAL_CHUNK_VALUES / k).max(1);
        if rows <= chunk || x.len() != rows.saturating_mul(d) {
            return self.predict_rows(x, rows, 0);
        }
        // Many classes: at most `EVAL_CHUNK_VALUES` logits at once.
        let mut pred = Vec::with_capacity(rows);
        for start in (0..rows).step_by(chunk) {
            let n = chunk.min(rows - start);
            pred.extend(self.predict_rows(&x[start * d..(start + n) * d], n, start)?);
        }
        Ok(pred)
    }

    /// [`Model::predict`] of `rows` rows at once, the first one after
    /// `first_row` rows (for errors).
    fn predict_rows(&self, x: &[f32], rows: usize, first_row: usize) -> Result<Vec<u32>> {
        let logits = self.logits(x, rows)?;
        check_finite_output(&logits, self.n_classes(), first_row)?;
        let mut out = vec![0u32; rows];
        reduce::argmax_rows(&logits, rows, self.n_classes(), &mut out);
        Ok(out)
    }

    /// Class probabilities (`rows x n_classes`) of `rows` raw input rows.
    ///
    /// # Errors
    /// If `x.len()` is not `rows * n_features`; [`Error::OutputNotFinite`]
    /// naming the first row whose logits are not finite (finite inputs
    /// and weights can still overflow `f32`).
    pub fn predict_proba(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let mut logits = self.logits(x, rows)?;
        check_finite_output(&logits, self.n_classes(), 0)?;
        softmax::softmax_rows(&mut logits, rows, self.n_classes());
        Ok(logits)
    }
}

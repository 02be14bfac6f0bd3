//! Models: the linear softmax classifier and the ReLU MLP, on one flat
//! parameter buffer, with allocation-free batch-1 inference.

use crate::data::Standardizer;
use crate::error::{Error, Result};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use vnn_kernels::{activation, gemm, reduce, softmax, Transpose};

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
}

/// The layout of all parameters of a network of layer widths
/// `sizes = [n_in, hidden.., n_classes]` in one flat buffer:
/// `W0, b0, W1, b1, ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Layer widths, input first, classes last.
    pub sizes: Vec<usize>,
    /// One slot per layer (`sizes.len() - 1` of them).
    pub layers: Vec<LayerSlot>,
    /// Total number of parameters.
    pub len: usize,
}

impl Layout {
    /// The layout for `sizes` (at least input and output width, all > 0).
    ///
    /// # Errors
    /// If fewer than two sizes are given, a size is 0, or the parameter
    /// count overflows.
    pub fn new(sizes: &[usize]) -> Result<Layout> {
        if sizes.len() < 2 {
            return Err(Error::Config(format!(
                "a network needs an input and an output width, got {sizes:?}"
            )));
        }
        if let Some(i) = sizes.iter().position(|&s| s == 0) {
            return Err(Error::Config(format!("layer width {i} is 0 in {sizes:?}")));
        }
        let mut layers = Vec::with_capacity(sizes.len() - 1);
        let mut off = 0usize;
        let too_big = || Error::Config(format!("network {sizes:?} has too many parameters"));
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

/// How weights are initialized (biases always start at 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Init {
    /// He: standard normal times `sqrt(2 / n_in)`, suited to ReLU (default).
    #[default]
    He,
    /// The source text's `0.01 * standard normal`.
    Small,
}

/// A trained or freshly initialized classifier: a linear softmax model
/// (no hidden layer) or a ReLU MLP, with everything prediction needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Parameter layout.
    pub layout: Layout,
    /// All weights and biases, laid out by [`Model::layout`].
    pub params: Vec<f32>,
    /// Names of the input features, in input order.
    pub feature_names: Vec<String>,
    /// Names of the classes, in class-index order.
    pub class_names: Vec<String>,
    /// Standardization applied to raw inputs before the first layer.
    pub standardizer: Option<Standardizer>,
}

/// Scratch space for allocation-free [`Model::predict_one`]; make it once
/// with [`Model::scratch`] and reuse it.
#[derive(Clone, Debug)]
pub struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
}

impl Model {
    /// A model for `sizes = [n_in, hidden.., n_classes]` with weights from
    /// `init` and `seed`, biases 0, generic feature and class names.
    ///
    /// # Errors
    /// If the sizes are invalid (see [`Layout::new`]).
    pub fn new(sizes: &[usize], init: Init, seed: u64) -> Result<Model> {
        let layout = Layout::new(sizes)?;
        let mut params = vec![0f32; layout.len];
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        for slot in &layout.layers {
            let std = match init {
                Init::He => (2.0 / slot.n_in as f64).sqrt(),
                Init::Small => 0.01,
            };
            for w in &mut params[slot.weight_range()] {
                let z: f64 = StandardNormal.sample(&mut rng);
                *w = (z * std) as f32;
            }
        }
        Ok(Model {
            feature_names: (0..layout.n_in()).map(|i| format!("x{i}")).collect(),
            class_names: (0..layout.n_out()).map(|i| i.to_string()).collect(),
            layout,
            params,
            standardizer: None,
        })
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.layout.n_in()
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.layout.n_out()
    }

    /// `"linear"` without hidden layers, `"mlp"` with.
    pub fn architecture(&self) -> &'static str {
        if self.layout.layers.len() == 1 {
            "linear"
        } else {
            "mlp"
        }
    }

    /// Layer `i`'s weight (`n_in x n_out`, row-major) and bias.
    pub fn layer(&self, i: usize) -> (&[f32], &[f32]) {
        let s = self.layout.layers[i];
        (&self.params[s.weight_range()], &self.params[s.bias_range()])
    }

    /// Scratch space for [`Model::predict_one`] and [`Model::predict_proba_one`].
    pub fn scratch(&self) -> Scratch {
        let w = self.layout.max_width();
        Scratch {
            a: vec![0.0; w],
            b: vec![0.0; w],
        }
    }

    /// Forward pass of one raw input row into `scratch`; returns the logits.
    fn logits_one<'s>(&self, x: &[f32], scratch: &'s mut Scratch) -> Result<&'s mut [f32]> {
        let d = self.n_features();
        if x.len() != d {
            return Err(Error::Shape {
                what: "input row".into(),
                expected: d,
                got: x.len(),
            });
        }
        let w = self.layout.max_width();
        if scratch.a.len() < w || scratch.b.len() < w {
            *scratch = self.scratch();
        }
        let Scratch { a, b } = scratch;
        a[..d].copy_from_slice(x);
        if let Some(s) = &self.standardizer {
            s.apply_row(&mut a[..d]);
        }
        let (mut cur, mut next) = (a, b);
        let last = self.layout.layers.len() - 1;
        for (i, slot) in self.layout.layers.iter().enumerate() {
            let (wt, bias) = self.layer(i);
            gemm::matvec_bias(
                &cur[..slot.n_in],
                wt,
                bias,
                slot.n_in,
                slot.n_out,
                &mut next[..slot.n_out],
            );
            if i < last {
                for v in &mut next[..slot.n_out] {
                    *v = activation::relu_scalar_value(*v);
                }
            }
            std::mem::swap(&mut cur, &mut next);
        }
        Ok(&mut cur[..self.n_classes()])
    }

    /// The predicted class of one raw (unstandardized) input row. No
    /// allocation; no packing GEMM.
    ///
    /// # Errors
    /// If `x.len()` is not the model's feature count.
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
        let mut best = 0u32;
        reduce::argmax_rows(logits, 1, logits.len(), std::slice::from_mut(&mut best));
        Ok(best as usize)
    }

    /// Class probabilities of one raw input row (borrowed from `scratch`).
    ///
    /// # Errors
    /// If `x.len()` is not the model's feature count.
    pub fn predict_proba_one<'s>(&self, x: &[f32], scratch: &'s mut Scratch) -> Result<&'s [f32]> {
        let logits = self.logits_one(x, scratch)?;
        let k = logits.len();
        softmax::softmax_rows(logits, 1, k);
        Ok(logits)
    }

    /// Logits of `rows` raw input rows (`rows x n_features`), computed in
    /// parallel blocks of rows with inference semantics (no dropout).
    ///
    /// # Errors
    /// If `x.len()` is not `rows * n_features`.
    pub fn logits(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let d = self.n_features();
        let k = self.n_classes();
        if x.len() != rows.saturating_mul(d) {
            return Err(Error::Shape {
                what: format!("{rows} input rows"),
                expected: rows * d,
                got: x.len(),
            });
        }
        const BLOCK: usize = 256;
        let mut out = vec![0f32; rows * k];
        out.par_chunks_mut(BLOCK * k)
            .zip(x.par_chunks(BLOCK * d.max(1)))
            .for_each(|(o, xb)| {
                let n = o.len() / k;
                let mut cur: Vec<f32> = xb[..n * d].to_vec();
                if let Some(s) = &self.standardizer {
                    s.apply(&mut cur);
                }
                let last = self.layout.layers.len() - 1;
                for (i, slot) in self.layout.layers.iter().enumerate() {
                    let (wt, bias) = self.layer(i);
                    let dst: &mut [f32] = if i == last {
                        &mut *o
                    } else {
                        &mut vec![0f32; n * slot.n_out]
                    };
                    gemm::gemm(
                        Transpose::No,
                        Transpose::No,
                        n,
                        slot.n_out,
                        slot.n_in,
                        1.0,
                        &cur,
                        wt,
                        0.0,
                        dst,
                    );
                    if i < last {
                        activation::bias_relu_forward(dst, bias, n, slot.n_out);
                        cur = dst.to_vec();
                    } else {
                        for row in dst.chunks_exact_mut(k) {
                            for (v, &b) in row.iter_mut().zip(bias) {
                                *v += b;
                            }
                        }
                    }
                }
            });
        Ok(out)
    }

    /// Predicted classes of `rows` raw input rows, in parallel.
    ///
    /// # Errors
    /// If `x.len()` is not `rows * n_features`.
    pub fn predict(&self, x: &[f32], rows: usize) -> Result<Vec<u32>> {
        let logits = self.logits(x, rows)?;
        let mut out = vec![0u32; rows];
        reduce::argmax_rows(&logits, rows, self.n_classes(), &mut out);
        Ok(out)
    }

    /// Class probabilities (`rows x n_classes`) of `rows` raw input rows.
    ///
    /// # Errors
    /// If `x.len()` is not `rows * n_features`.
    pub fn predict_proba(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let mut logits = self.logits(x, rows)?;
        softmax::softmax_rows(&mut logits, rows, self.n_classes());
        Ok(logits)
    }
}

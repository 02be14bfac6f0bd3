//! Training: full-batch or mini-batch gradient descent, momentum or Adam,
//! L2, dropout and dropconnect, run across row blocks with rayon.
//!
//! ## Row blocks and reproducibility
//! A batch of `n` rows is cut into blocks of `block_rows` rows, where
//! `block_rows = max(512, ceil(n_max / 8))` depends only on the largest batch
//! (never on the thread count). The blocks of a step are cut into at most
//! [`MAX_GRAD_BUFFERS`] runs of consecutive blocks (`ceil(blocks / groups)`
//! blocks each, a function of the block count only); the runs go in parallel,
//! each accumulating the gradients of its blocks, in block order, into its
//! own gradient buffer, and the buffers are then summed in run order. Dropout masks are drawn from the stream
//! `(seed, step, block, layer)` and dropconnect masks from
//! `(seed, step, layer)` (one weight mask per step, shared by the blocks),
//! so the trained weights are bit-identical for any number of threads.
//!
//! ## Memory
//! Every buffer is allocated in [`Trainer::new`]: per block its activations
//! (one `rows x width` buffer per hidden layer and the logits, which the
//! backward pass overwrites with gradients in place) and a small scratch for
//! the backward products; at most [`MAX_GRAD_BUFFERS`] parameter-sized
//! gradients (one per run of blocks, not one per block: at 784-512-10 each
//! is as large as 60% of a block's activations); plus optimizer state and,
//! with dropconnect, the masked weights. A step allocates nothing
//! in vnn's own code. What remains: one packing buffer per GEMM call that
//! takes `matrixmultiply`'s packed path (none at the spiral size without
//! dropout), and, for a step of several blocks called from outside any rayon
//! pool, rayon's job queue, which allocates one block per 63 entries into
//! the pool (a step enters twice). Run the steps inside
//! `ThreadPool::install` to avoid the latter.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Layout, Model};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use vnn_kernels::{activation, fused, gemm, mask, reduce, softmax, update, Transpose};

/// The largest number of row blocks a batch is cut into.
pub const MAX_BLOCKS: usize = 8;
/// The smallest block (a batch smaller than this is one block).
pub const MIN_BLOCK_ROWS: usize = 512;
/// The most parameter-sized gradient buffers (runs of blocks done in
/// parallel) of a step. Four keep four threads busy; the MNIST-like step
/// (`vnn bench --workload mnist --threads 2`) peaked at 79,556 to 79,652
/// KiB resident with eight (one per block), 72,896 to 73,776 KiB with four
/// and 70,044 KiB with two: 1.48x, 1.35x to 1.37x and 1.30x its data,
/// parameters, activations and gradients, at the same step time.
pub const MAX_GRAD_BUFFERS: usize = 4;
/// The most outputs of a layer whose weight gradient the narrow backward
/// kernel computes in its pass over the layer's input
/// ([`fused::narrow_relu_backward_dw`]); more outputs would spill its
/// registers, and the separate `A^T dS` product is then used.
const FUSED_DW_MAX_OUT: usize = 4;
/// Rows per chunk of the backward product into the hidden gradient.
const CHUNK_ROWS: usize = 128;

/// Which update rule to use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Plain gradient descent (the source text's default).
    Sgd,
    /// Gradient descent with momentum `mu` (`v = mu v + g; w -= lr v`).
    Momentum {
        /// Momentum coefficient, e.g. 0.9.
        mu: f32,
    },
    /// Adam with beta1 0.9, beta2 0.999, eps 1e-8.
    Adam,
}

impl Optimizer {
    /// The name used on the command line and in files.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Momentum { .. } => "momentum",
            Optimizer::Adam => "adam",
        }
    }
}

/// Settings of a training run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training rows.
    pub epochs: u64,
    /// Learning rate.
    pub lr: f32,
    /// L2 coefficient: the loss gets `0.5 * reg * sum(W^2)` (biases excluded).
    pub reg: f32,
    /// Update rule.
    pub optimizer: Optimizer,
    /// Rows per step; `None` is full batch (one step per epoch).
    pub batch_size: Option<usize>,
    /// Dropout probability on hidden activations (training only), in `[0, 1)`.
    pub dropout: f32,
    /// Dropconnect probability on weight matrices (training only), in `[0, 1)`.
    pub dropconnect: f32,
    /// Seed of the shuffles and masks.
    pub seed: u64,
}

impl Default for TrainConfig {
    /// The source text's MLP run: SGD, lr 1.0, reg 1e-3, 10,000 full-batch steps.
    fn default() -> Self {
        TrainConfig {
            epochs: 10_000,
            lr: 1.0,
            reg: 1e-3,
            optimizer: Optimizer::Sgd,
            batch_size: None,
            dropout: 0.0,
            dropconnect: 0.0,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// On a non-finite or negative learning rate or regularization, a
    /// probability outside `[0, 1)`, or a zero batch size.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Config(format!(
                "learning rate must be a positive number, got {}",
                self.lr
            )));
        }
        if !(self.reg.is_finite() && self.reg >= 0.0) {
            return Err(Error::Config(format!(
                "regularization must be >= 0, got {}",
                self.reg
            )));
        }
        for (name, p) in [("dropout", self.dropout), ("dropconnect", self.dropconnect)] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::Config(format!(
                    "{name} probability must be in [0, 1), got {p}"
                )));
            }
        }
        if self.batch_size == Some(0) {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        if let Optimizer::Momentum { mu } = self.optimizer {
            if !(0.0..1.0).contains(&mu) {
                return Err(Error::Config(format!(
                    "momentum must be in [0, 1), got {mu}"
                )));
            }
        }
        Ok(())
    }
}

/// What one optimizer step measured (before its update).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// 1-based optimizer step.
    pub step: u64,
    /// 0-based epoch the step belongs to.
    pub epoch: u64,
    /// Mean cross-entropy of the batch plus the L2 term.
    pub loss: f64,
    /// Fraction of the batch predicted correctly by the training-mode forward
    /// pass (with dropout, if on).
    pub accuracy: f64,
}

/// Buffers owned by one row block.
struct Block {
    /// One `block_rows x width` buffer per hidden layer: activations after
    /// the forward pass, their gradients `dZ` after the backward pass.
    acts: Vec<Vec<f32>>,
    /// `block_rows x classes`: logits, then `dlogits`.
    logits: Vec<f32>,
    /// `CHUNK_ROWS x max_width` scratch for `dA = dZ W^T`.
    scratch: Vec<f32>,
    /// Loss and correct count of the last pass.
    loss: f64,
    correct: usize,
}

/// Stream id of the mask of `layer` in row block `block` of 0-based step
/// `step`: `(step << 16) | (block << 8) | layer`, distinct for every
/// `(step, block, layer)` (blocks and layers stay below 256).
///
/// Dropout on the hidden activations of `layer` draws
/// `mask::bernoulli_mask(p, seed, dropout_stream(step, block, layer))` over
/// the block's `rows x width` activations, row-major; dropconnect draws layer
/// `layer`'s weight mask with block 0 and seed `seed ^ DROPCONNECT_DOMAIN`.
pub fn dropout_stream(step: u64, block: usize, layer: usize) -> u64 {
    (step << 16) | ((block as u64) << 8) | layer as u64
}

/// XORed into the run's seed for dropconnect masks, so they never repeat a
/// dropout mask.
pub const DROPCONNECT_DOMAIN: u64 = 0xD20C_0EC7_0000_0001;

/// A training run in progress: the model, the optimizer state and every
/// buffer the steps need.
pub struct Trainer<'d> {
    model: Model,
    data: &'d Dataset,
    config: TrainConfig,
    step: u64,
    steps_per_epoch: u64,
    block_rows: usize,
    blocks: Vec<Block>,
    /// One parameter-sized gradient per run of blocks; the step's gradient
    /// ends in the first.
    grads: Vec<Vec<f32>>,
    /// `block_rows` ones (see [`PassContext`]).
    ones: Vec<f32>,
    /// Optimizer state: Adam's first moment or the momentum velocity.
    m: Vec<f32>,
    /// Adam's second moment.
    v: Vec<f32>,
    /// Dropconnect: masked parameters used by the passes, and the masks.
    effective: Vec<f32>,
    dc_mask: Vec<f32>,
    /// Mini-batch: row order of the current epoch and the gathered batch.
    order: Vec<u32>,
    order_epoch: u64,
    batch_x: Vec<f32>,
    batch_y: Vec<u32>,
}

impl<'d> Trainer<'d> {
    /// Prepares a run of `config` on `data` starting from `model`.
    ///
    /// # Errors
    /// If the settings are invalid, the data is empty, or its feature or
    /// class count does not match the model.
    pub fn new(model: Model, data: &'d Dataset, config: TrainConfig) -> Result<Trainer<'d>> {
        config.validate()?;
        let n = data.n_rows();
        if n == 0 {
            return Err(Error::Config("no training rows".into()));
        }
        if data.n_features != model.n_features() {
            return Err(Error::Shape {
                what: "data features".into(),
                expected: model.n_features(),
                got: data.n_features,
            });
        }
        if data.n_classes > model.n_classes() {
            return Err(Error::Shape {
                what: "data classes".into(),
                expected: model.n_classes(),
                got: data.n_classes,
            });
        }
        if data.features.len() != n * data.n_features {
            return Err(Error::Shape {
                what: "data features buffer".into(),
                expected: n * data.n_features,
                got: data.features.len(),
            });
        }
        if model.layout.layers.len() > 255 {
            return Err(Error::Config("at most 254 hidden layers".into()));
        }
        let batch = config.batch_size.map_or(n, |b| b.min(n));
        let steps_per_epoch = n.div_ceil(batch) as u64;
        let block_rows = MIN_BLOCK_ROWS.max(batch.div_ceil(MAX_BLOCKS));
        let n_blocks = batch.div_ceil(block_rows);
        let layout = &model.layout;
        let hidden = layout.hidden().to_vec();
        let k = layout.n_out();
        let rows_of = |b: usize| block_rows.min(batch - b * block_rows);
        let blocks = (0..n_blocks)
            .map(|b| {
                let rows = rows_of(b);
                Block {
                    acts: hidden.iter().map(|&h| vec![0f32; rows * h]).collect(),
                    logits: vec![0f32; rows * k],
                    scratch: vec![0f32; CHUNK_ROWS.min(rows) * layout.max_width()],
                    loss: 0.0,
                    correct: 0,
                }
            })
            .collect::<Vec<_>>();
        let grads = vec![vec![0f32; layout.len]; n_blocks.min(MAX_GRAD_BUFFERS)];
        let state_len = match config.optimizer {
            Optimizer::Sgd => (0, 0),
            Optimizer::Momentum { .. } => (layout.len, 0),
            Optimizer::Adam => (layout.len, layout.len),
        };
        let dc = if config.dropconnect > 0.0 {
            layout.len
        } else {
            0
        };
        let minibatch = config.batch_size.is_some_and(|b| b < n);
        Ok(Trainer {
            m: vec![0f32; state_len.0],
            v: vec![0f32; state_len.1],
            effective: vec![0f32; dc],
            dc_mask: vec![0f32; dc],
            order: if minibatch {
                (0..n as u32).collect()
            } else {
                Vec::new()
            },
            order_epoch: u64::MAX,
            batch_x: vec![
                0f32;
                if minibatch {
                    batch * data.n_features
                } else {
                    0
                }
            ],
            batch_y: vec![0u32; if minibatch { batch } else { 0 }],
            model,
            data,
            config,
            step: 0,
            steps_per_epoch,
            block_rows,
            blocks,
            grads,
            ones: vec![1f32; block_rows],
        })
    }

    /// The model as trained so far.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Ends the run, returning the model.
    pub fn into_model(self) -> Model {
        self.model
    }

    /// The settings of this run.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Optimizer steps taken so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// Steps in one epoch (1 with the full batch).
    pub fn steps_per_epoch(&self) -> u64 {
        self.steps_per_epoch
    }

    /// Steps of the whole run (`epochs * steps_per_epoch`).
    pub fn total_steps(&self) -> u64 {
        self.config.epochs.saturating_mul(self.steps_per_epoch)
    }

    /// Number of row blocks of a full batch.
    pub fn n_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The optimizer state `(m, v)`: Adam's moments, or the momentum velocity
    /// in `m`; empty for SGD.
    pub fn optimizer_state(&self) -> (&[f32], &[f32]) {
        (&self.m, &self.v)
    }

    /// Restores a run at `step` with optimizer state `(m, v)` (from a
    /// checkpoint); the model given to [`Trainer::new`] must hold the
    /// weights of that step.
    ///
    /// # Errors
    /// If the state lengths do not match the optimizer.
    pub fn restore(&mut self, step: u64, m: &[f32], v: &[f32]) -> Result<()> {
        if m.len() != self.m.len() || v.len() != self.v.len() {
            return Err(Error::Shape {
                what: "optimizer state".into(),
                expected: self.m.len() + self.v.len(),
                got: m.len() + v.len(),
            });
        }
        self.m.copy_from_slice(m);
        self.v.copy_from_slice(v);
        self.step = step;
        Ok(())
    }

    /// Gathers the mini-batch of the next step (no-op for the full batch)
    /// and returns `(features, labels, rows)`.
    fn next_batch(&mut self) -> (usize, bool) {
        let n = self.data.n_rows();
        if self.order.is_empty() {
            return (n, false);
        }
        let epoch = self.step / self.steps_per_epoch;
        let pos = (self.step % self.steps_per_epoch) as usize;
        if self.order_epoch != epoch {
            // The order of an epoch is a pure function of (seed, epoch).
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(
                self.config.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x0005_4FF1_E000,
            );
            for (i, o) in self.order.iter_mut().enumerate() {
                *o = i as u32;
            }
            use rand::RngExt;
            for i in (1..n).rev() {
                let j = rng.random_range(0..=i);
                self.order.swap(i, j);
            }
            self.order_epoch = epoch;
        }
        let batch = self.batch_y.len();
        let start = pos * batch;
        let rows = batch.min(n - start);
        let d = self.data.n_features;
        for (r, &i) in self.order[start..start + rows].iter().enumerate() {
            let i = i as usize;
            self.batch_x[r * d..(r + 1) * d].copy_from_slice(self.data.row(i));
            self.batch_y[r] = self.data.labels[i];
        }
        (rows, true)
    }

    /// The gradient the next [`Trainer::step`] would apply, without
    /// updating anything: forward and backward of the next batch (with the
    /// same dropout and dropconnect masks that step will draw).
    ///
    /// Returns the step's statistics (its `loss` is the mean cross-entropy
    /// plus `0.5 * reg * sum(W^2)`) and the gradient, laid out like
    /// [`Model::params`], of the mean cross-entropy **only**: the L2 term's
    /// gradient `reg * W` (weights only, never biases) is not included, since
    /// the update kernels add it themselves. The step counter does not move.
    ///
    /// # Errors
    /// [`Error::Diverged`] if the loss is not finite.
    pub fn gradient(&mut self) -> Result<(StepStats, &[f32])> {
        let stats = self.forward_backward();
        if !stats.loss.is_finite() {
            return Err(Error::Diverged {
                step: stats.step,
                loss: stats.loss,
            });
        }
        Ok((stats, &self.grads[0]))
    }

    /// Runs one optimizer step: forward, loss, backward, update.
    ///
    /// # Errors
    /// [`Error::Diverged`] if the loss is not finite; the parameters are then
    /// left as they were before the step.
    pub fn step(&mut self) -> Result<StepStats> {
        let stats = self.forward_backward();
        if !stats.loss.is_finite() {
            return Err(Error::Diverged {
                step: stats.step,
                loss: stats.loss,
            });
        }
        self.step += 1;
        let (lr, reg) = (self.config.lr, self.config.reg);
        let grad = &self.grads[0];
        let w = &mut self.model.params;
        for slot in &self.model.layout.layers {
            for (range, reg) in [(slot.weight_range(), reg), (slot.bias_range(), 0.0)] {
                let (wr, gr) = (&mut w[range.clone()], &grad[range.clone()]);
                match self.config.optimizer {
                    Optimizer::Sgd => update::sgd_update(wr, gr, lr, reg),
                    Optimizer::Momentum { mu } => {
                        update::momentum_update(wr, gr, &mut self.m[range], lr, reg, mu)
                    }
                    Optimizer::Adam => {
                        let s = update::AdamStep::new(lr, reg, self.step);
                        update::adam_update(
                            wr,
                            gr,
                            &mut self.m[range.clone()],
                            &mut self.v[range],
                            &s,
                        )
                    }
                }
            }
        }
        Ok(stats)
    }

    /// Forward and backward of the next batch: leaves the summed gradient of
    /// the mean cross-entropy (dropconnect mask applied) in the first block's
    /// buffer and returns the statistics of step `self.step + 1`. Moves
    /// neither the step counter nor the parameters.
    fn forward_backward(&mut self) -> StepStats {
        let (rows, gathered) = self.next_batch();
        let step_index = self.step;
        let seed = self.config.seed;
        let layout = &self.model.layout;
        // Dropconnect: one weight mask per (seed, step, layer).
        let use_dc = self.config.dropconnect > 0.0;
        if use_dc {
            self.effective.copy_from_slice(&self.model.params);
            for (l, slot) in layout.layers.iter().enumerate() {
                let r = slot.weight_range();
                mask::bernoulli_mask(
                    &mut self.dc_mask[r.clone()],
                    self.config.dropconnect,
                    seed ^ DROPCONNECT_DOMAIN,
                    dropout_stream(step_index, 0, l),
                );
                mask::apply_mask(&mut self.effective[r.clone()], &self.dc_mask[r]);
            }
        }
        let params: &[f32] = if use_dc {
            &self.effective
        } else {
            &self.model.params
        };
        let (x_all, y_all): (&[f32], &[u32]) = if gathered {
            (
                &self.batch_x[..rows * self.data.n_features],
                &self.batch_y[..rows],
            )
        } else {
            (&self.data.features, &self.data.labels)
        };
        let inv_n = 1.0 / rows as f32;
        let n_blocks = rows.div_ceil(self.block_rows);
        let block_rows = self.block_rows;
        let ctx = PassContext {
            layout,
            params,
            dropout: self.config.dropout,
            seed,
            step: step_index,
            inv_n,
            ones: &self.ones,
        };
        let run = |b: usize, block: &mut Block, grad: &mut [f32]| {
            let start = b * block_rows;
            let r = block_rows.min(rows - start);
            let d = layout.n_in();
            ctx.block_pass(
                b,
                block,
                grad,
                &x_all[start * d..(start + r) * d],
                &y_all[start..start + r],
                r,
            );
        };
        // Runs of `per` consecutive blocks, one gradient buffer each (a
        // function of the block count only, so the sums do not depend on
        // the thread count).
        let per = n_blocks.div_ceil(n_blocks.min(self.grads.len()));
        let n_runs = n_blocks.div_ceil(per);
        if n_blocks == 1 {
            self.grads[0].fill(0.0);
            run(0, &mut self.blocks[0], &mut self.grads[0]);
        } else {
            self.blocks[..n_blocks]
                .par_chunks_mut(per)
                .zip(self.grads[..n_runs].par_iter_mut())
                .enumerate()
                .for_each(|(g, (blocks, grad))| {
                    grad.fill(0.0);
                    for (i, block) in blocks.iter_mut().enumerate() {
                        run(g * per + i, block, grad);
                    }
                });
        }
        // Reduce losses and gradients in block order.
        let mut loss = 0f64;
        let mut correct = 0usize;
        for block in &self.blocks[..n_blocks] {
            loss += block.loss;
            correct += block.correct;
        }
        let (first, rest) = self.grads.split_at_mut(1);
        let grad = &mut first[0];
        if n_runs > 1 {
            const PAR_CHUNK: usize = 1 << 14;
            let rest = &rest[..n_runs - 1];
            grad.par_chunks_mut(PAR_CHUNK)
                .enumerate()
                .for_each(|(c, g)| {
                    let off = c * PAR_CHUNK;
                    for other in rest {
                        reduce::add_assign(g, &other[off..off + g.len()]);
                    }
                });
        }
        if use_dc {
            for slot in &layout.layers {
                let r = slot.weight_range();
                mask::apply_mask(&mut grad[r.clone()], &self.dc_mask[r]);
            }
        }
        let reg = self.config.reg;
        if reg > 0.0 {
            let sq: f64 = layout
                .layers
                .iter()
                .map(|s| reduce::sum_squares(&self.model.params[s.weight_range()]) as f64)
                .sum();
            loss += 0.5 * reg as f64 * sq;
        }
        StepStats {
            step: step_index + 1,
            epoch: step_index / self.steps_per_epoch,
            loss,
            accuracy: correct as f64 / rows as f64,
        }
    }
}

/// What every block of one step shares.
struct PassContext<'a> {
    layout: &'a Layout,
    params: &'a [f32],
    dropout: f32,
    seed: u64,
    step: u64,
    inv_n: f32,
    /// `block_rows` ones: column sums of narrow gradients as a product.
    ones: &'a [f32],
}

impl PassContext<'_> {
    /// Forward and backward of one row block, adding its gradient into
    /// `grad` (parameter-sized).
    fn block_pass(
        &self,
        b: usize,
        block: &mut Block,
        grad: &mut [f32],
        x: &[f32],
        y: &[u32],
        rows: usize,
    ) {
        let layout = self.layout;
        let n_layers = layout.layers.len();
        let k = layout.n_out();
        let Block {
            acts,
            logits,
            scratch,
            loss,
            correct,
        } = block;
        // ---- forward ----
        for (l, slot) in layout.layers.iter().enumerate() {
            let w = &self.params[slot.weight_range()];
            let bias = &self.params[slot.bias_range()];
            let (before, after) = acts.split_at_mut(l);
            let input: &[f32] = if l == 0 {
                x
            } else {
                &before[l - 1][..rows * slot.n_in]
            };
            if l + 1 < n_layers && self.dropout == 0.0 && slot.n_in <= fused::NARROW_MAX {
                // Few inputs: A = relu(X W + b) in one pass, no GEMM.
                let a = &mut after[0][..rows * slot.n_out];
                fused::narrow_bias_relu_forward(input, w, bias, rows, slot.n_in, slot.n_out, a);
            } else if l + 1 < n_layers {
                let z = &mut after[0][..rows * slot.n_out];
                gemm::gemm(
                    Transpose::No,
                    Transpose::No,
                    rows,
                    slot.n_out,
                    slot.n_in,
                    1.0,
                    input,
                    w,
                    0.0,
                    z,
                );
                if self.dropout > 0.0 {
                    activation::bias_relu_dropout_forward(
                        z,
                        bias,
                        rows,
                        slot.n_out,
                        self.dropout,
                        self.seed,
                        dropout_stream(self.step, b, l),
                    );
                } else {
                    activation::bias_relu_forward(z, bias, rows, slot.n_out);
                }
            } else {
                let s = &mut logits[..rows * k];
                for row in s.chunks_exact_mut(k) {
                    row.copy_from_slice(bias);
                }
                gemm::gemm(
                    Transpose::No,
                    Transpose::No,
                    rows,
                    k,
                    slot.n_in,
                    1.0,
                    input,
                    w,
                    1.0,
                    s,
                );
            }
        }
        // ---- loss and dlogits ----
        let ce = softmax::softmax_cross_entropy(&mut logits[..rows * k], y, rows, k, self.inv_n);
        *loss = ce.loss;
        *correct = ce.correct;
        // ---- backward ----
        let scale = if self.dropout > 0.0 {
            mask::keep_scale(self.dropout)
        } else {
            1.0
        };
        for l in (0..n_layers).rev() {
            let slot = layout.layers[l];
            let (before, after) = acts.split_at_mut(l);
            let dz: &[f32] = if l + 1 == n_layers {
                &logits[..rows * k]
            } else {
                &after[0][..rows * slot.n_out]
            };
            let input: &mut [f32] = if l == 0 {
                &mut []
            } else {
                &mut before[l - 1][..rows * slot.n_in]
            };
            let input_ro: &[f32] = if l == 0 { x } else { input };
            // Few outputs over a hidden layer: the backward below computes
            // dW_l too, in its pass over the input A.
            let narrow =
                l > 0 && slot.n_out <= fused::NARROW_MAX && slot.n_out * slot.n_in <= scratch.len();
            let fuse_dw = narrow && slot.n_out <= FUSED_DW_MAX_OUT;
            if !fuse_dw {
                // dW_l += input^T dZ_l  (forward: Z_l = input W_l)
                gemm::gemm(
                    Transpose::Yes,
                    Transpose::No,
                    slot.n_in,
                    slot.n_out,
                    rows,
                    1.0,
                    input_ro,
                    dz,
                    1.0,
                    &mut grad[slot.weight_range()],
                );
            }
            if l + 1 == n_layers {
                // db_last += column sums of dlogits (hidden layers get theirs from relu_backward)
                let db = &mut grad[slot.bias_range()];
                if k <= fused::NARROW_MAX {
                    // As the product 1^T dS: one pass of dot products along
                    // the rows instead of a short vector add per row (spiral,
                    // 300 x 3: 0.4 vs 1.5 us native, 0.5 vs 0.9 us default).
                    let ones = &self.ones[..rows];
                    gemm::gemm(
                        Transpose::No,
                        Transpose::No,
                        1,
                        k,
                        rows,
                        1.0,
                        ones,
                        dz,
                        1.0,
                        db,
                    );
                } else {
                    reduce::column_sums(dz, rows, k, db);
                }
            }
            if l == 0 {
                break;
            }
            // dA_{l-1} = dZ_l W_l^T, then dZ_{l-1} = dA where A > 0 (forward: A = relu(Z + b) * mask)
            let w = &self.params[slot.weight_range()];
            let prev = layout.layers[l - 1];
            let (gw, gb) = grad.split_at_mut(prev.bias);
            let _ = gw;
            // [.. b_{l-1} | W_l ..]: the layout puts W_l right after b_{l-1}.
            let (db_prev, after) = gb.split_at_mut(prev.n_out);
            debug_assert_eq!(slot.weight, prev.bias + prev.n_out);
            let dw = &mut after[..slot.n_in * slot.n_out];
            if narrow {
                // Few outputs: dZ = (dS W^T) masked, in one pass over A
                // without a dA buffer; W^T goes to the scratch.
                let wt = &mut scratch[..slot.n_out * slot.n_in];
                for (i, row) in w.chunks_exact(slot.n_out).enumerate() {
                    for (c, &v) in row.iter().enumerate() {
                        wt[c * slot.n_in + i] = v;
                    }
                }
                let a = &mut input[..rows * slot.n_in];
                let (n_in, n_out) = (slot.n_in, slot.n_out);
                if fuse_dw {
                    fused::narrow_relu_backward_dw(
                        a, dz, wt, rows, n_in, n_out, scale, db_prev, dw,
                    );
                } else {
                    fused::narrow_relu_backward(a, dz, wt, rows, n_in, n_out, scale, db_prev);
                }
                continue;
            }
            for c0 in (0..rows).step_by(CHUNK_ROWS) {
                let cr = CHUNK_ROWS.min(rows - c0);
                let da = &mut scratch[..cr * slot.n_in];
                gemm::gemm(
                    Transpose::No,
                    Transpose::Yes,
                    cr,
                    slot.n_in,
                    slot.n_out,
                    1.0,
                    &dz[c0 * slot.n_out..(c0 + cr) * slot.n_out],
                    w,
                    0.0,
                    da,
                );
                activation::relu_backward(
                    &mut input[c0 * slot.n_in..(c0 + cr) * slot.n_in],
                    da,
                    cr,
                    slot.n_in,
                    scale,
                    db_prev,
                );
            }
        }
    }
}

/// Accuracy, mean cross-entropy (without the L2 term) and confusion matrix
/// of a model on a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Fraction of rows predicted correctly.
    pub accuracy: f64,
    /// Mean softmax cross-entropy.
    pub loss: f64,
    /// Number of rows.
    pub n: usize,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

/// Evaluates `model` on `data` (inference mode: no dropout, full weights).
///
/// # Errors
/// If the data's feature count differs from the model's, or a label is out
/// of the model's class range.
pub fn evaluate(model: &Model, data: &Dataset) -> Result<Evaluation> {
    let k = model.n_classes();
    let n = data.n_rows();
    if data.n_features != model.n_features() {
        return Err(Error::Shape {
            what: "data features".into(),
            expected: model.n_features(),
            got: data.n_features,
        });
    }
    if let Some(&y) = data.labels.iter().find(|&&y| y as usize >= k) {
        return Err(Error::Config(format!(
            "label {y} out of range for a model of {k} classes"
        )));
    }
    let mut logits = model.logits(&data.features, n)?;
    let mut pred = vec![0u32; n];
    reduce::argmax_rows(&logits, n, k, &mut pred);
    let ce = softmax::softmax_cross_entropy(&mut logits, &data.labels, n, k, 1.0 / n.max(1) as f32);
    let mut confusion = vec![vec![0u64; k]; k];
    for (&t, &p) in data.labels.iter().zip(&pred) {
        confusion[t as usize][p as usize] += 1;
    }
    Ok(Evaluation {
        accuracy: ce.correct as f64 / n.max(1) as f64,
        loss: ce.loss,
        n,
        confusion,
    })
}

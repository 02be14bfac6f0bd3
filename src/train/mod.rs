//! Training: full-batch or mini-batch gradient descent, momentum or Adam,
//! L2, dropout and dropconnect, run across row blocks with rayon.
//!
//! ## Row blocks and reproducibility
//! A batch of `n` rows is cut into blocks of `block_rows` rows
//! ([`block_rows`]), which depends only on the largest batch `n_max` and the
//! parameter count (never on the thread count): `max(512, ceil(n_max / 8))`,
//! except that a batch this rule leaves whole is cut into 2 or 4 equal
//! blocks when each still has about [`SMALL_BLOCK_WORK`] multiply-adds per
//! forward pass (mini-batches of wide models). The blocks of a step are cut into at most
//! four runs of consecutive blocks (`ceil(blocks / groups)`
//! blocks each, a function of the block count only); the runs go in parallel,
//! each accumulating the gradients of its blocks, in block order, into its
//! own gradient buffer, and the buffers are then summed in run order. Dropout masks are drawn from the stream
//! `(seed, step, block, layer)` and dropconnect masks from
//! `(seed, step, layer)` (one weight mask per step, shared by the blocks),
//! so the trained weights are bit-identical for any number of threads.
//!
//! ## The pass
//! Each block runs a flat list of layer ops ([`vnn_kernels::layer`], which
//! choose the kernels by shape): the shared forward of
//! [`crate::model::Model`], softmax cross-entropy, then the backward in
//! reverse (`db = Σ dscores`, then per layer `dW = Aᵀ·dZ`,
//! `dA = dZ·Wᵀ` and the derivative of the hidden activation (for ReLU its
//! mask), and `dW1 = Xᵀ·dZ1` last).
//!
//! ## Memory
//! Every buffer is allocated in [`Trainer::new`], in named parts: the
//! workspace (per block the activations of every hidden layer and the
//! logits, which the backward pass overwrites with gradients in place, and
//! a small scratch for the backward ops; at most four
//! parameter-sized gradients, one per run of blocks, not one per block),
//! the optimizer state ([`OptimizerState`]), the mini-batch sampler and,
//! with dropconnect, the masks and masked weights. A step allocates nothing
//! in vnn's own code. What remains: one packing buffer per GEMM call that
//! takes `matrixmultiply`'s packed path (none at the spiral size without
//! dropout), and, for a step of several blocks called from outside any rayon
//! pool, rayon's job queue, which allocates one block per 63 entries into
//! the pool (a step enters twice). Run the steps inside
//! `ThreadPool::install` to avoid the latter.

mod memory;
pub(crate) use memory::check as check_memory;
mod pass;
mod schedule;
mod state;
mod weights;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use pass::{StepInput, Workspace};
pub use schedule::LrSchedule;
pub use state::OptimizerState;
use state::{DropConnect, Sampler};
use vnn_kernels::{reduce, softmax};
pub use weights::balanced_class_weights;

// Hidden from the docs (the module docs state the rule): public for
// `tests/gradcheck.rs`, which rebuilds the row blocks of a step.
/// The largest number of row blocks a batch is cut into.
#[doc(hidden)]
pub const MAX_BLOCKS: usize = 8;
// Hidden from the docs: public for `tests/gradcheck.rs` (see `MAX_BLOCKS`).
/// The smallest block (a batch smaller than this is one block).
#[doc(hidden)]
pub const MIN_BLOCK_ROWS: usize = 512;
/// Forward multiply-adds (rows times parameters) that make a part of a
/// small batch worth running as a block of its own ([`block_rows`]).
pub const SMALL_BLOCK_WORK: usize = 1 << 23;
/// The most blocks a batch of at most [`MIN_BLOCK_ROWS`] rows is cut into.
const SMALL_MAX_BLOCKS: usize = 4;

// Hidden from the docs (the module docs state the rule): public for
// `tests/gradcheck.rs`, which rebuilds the row blocks of a step.
/// Rows per block for batches of at most `batch` rows of a network of
/// `n_params` parameters: `max(MIN_BLOCK_ROWS, ceil(batch / MAX_BLOCKS))`;
/// when that is the whole batch, `ceil(batch / parts)` with `parts` the
/// largest power of two, at most 4, not above `batch * n_params /
/// SMALL_BLOCK_WORK` (at least 1). Always at least 1.
///
/// # Example
/// ```
/// use vnn::train::block_rows;
/// assert_eq!(block_rows(10_000, 407_050), 1250); // 8 blocks
/// assert_eq!(block_rows(300, 603), 300); // the spiral: one block
/// assert_eq!(block_rows(128, 203_530), 64); // 784-256-10: two blocks
/// ```
#[doc(hidden)]
pub fn block_rows(batch: usize, n_params: usize) -> usize {
    let rows = MIN_BLOCK_ROWS.max(batch.div_ceil(MAX_BLOCKS));
    if rows < batch {
        return rows;
    }
    let parts = (batch.saturating_mul(n_params) / SMALL_BLOCK_WORK).clamp(1, SMALL_MAX_BLOCKS);
    let parts = 1 << parts.ilog2();
    batch.div_ceil(parts).max(1)
}

/// The most parameter-sized gradient buffers (runs of blocks done in
/// parallel) of a step: enough to keep four threads busy, while the memory
/// of a step grows by one parameter-sized buffer per run (the README gives
/// the measured peak memory).
pub(crate) const MAX_GRAD_BUFFERS: usize = 4;
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
            return Err(Error::setting(
                "learning rate",
                "a positive number",
                self.lr,
            ));
        }
        if !(self.reg.is_finite() && self.reg >= 0.0) {
            return Err(Error::setting("regularization", ">= 0", self.reg));
        }
        for (name, p) in [("dropout", self.dropout), ("dropconnect", self.dropconnect)] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::setting(
                    format!("{name} probability"),
                    "in [0, 1)",
                    p,
                ));
            }
        }
        if self.batch_size == Some(0) {
            return Err(Error::setting("batch size", "at least 1", 0));
        }
        if let Optimizer::Momentum { mu } = self.optimizer {
            if !(0.0..1.0).contains(&mu) {
                return Err(Error::setting("momentum", "in [0, 1)", mu));
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
    /// Mean cross-entropy of the batch (each row's weighted by its class
    /// weight, when the run has them) plus the L2 term.
    pub loss: f64,
    /// Fraction of the batch predicted correctly by the training-mode forward
    /// pass (with dropout, if on).
    pub accuracy: f64,
}

/// Stream id of the mask of `layer` in row block `block` of 0-based step
/// `step`: `(step << 16) | (block << 8) | layer`, distinct for every
/// `(step, block, layer)` (blocks and layers stay below 256).
///
/// Dropout on the hidden activations of `layer` draws
/// `mask::bernoulli_mask(p, seed, dropout_stream(step, block, layer))` over
/// the block's `rows x width` activations, row-major; dropconnect draws layer
/// `layer`'s weight mask with block 0 and seed `seed ^ DROPCONNECT_DOMAIN`.
// Hidden from the docs: public for `tests/gradcheck.rs`, which redraws the
// masks of a step to check its gradients.
#[doc(hidden)]
pub fn dropout_stream(step: u64, block: usize, layer: usize) -> u64 {
    (step << 16) | ((block as u64) << 8) | layer as u64
}

/// XORed into the run's seed for dropconnect masks, so they never repeat a
/// dropout mask.
// Hidden from the docs: public for `tests/gradcheck.rs` (see
// `dropout_stream`).
#[doc(hidden)]
pub const DROPCONNECT_DOMAIN: u64 = 0xD20C_0EC7_0000_0001;

/// A training run in progress, in named parts: the model, the optimizer
/// state, the mini-batch sampler (mini-batch runs only), the dropconnect
/// masks (with dropconnect only) and the workspace of the passes.
pub struct Trainer<'d> {
    model: Model,
    data: &'d Dataset,
    config: TrainConfig,
    /// Optimizer steps done.
    step: u64,
    /// The learning rate of the next step (`config.lr` unless set).
    lr: f32,
    steps_per_epoch: u64,
    optimizer: OptimizerState,
    sampler: Option<Sampler>,
    dropconnect: Option<DropConnect>,
    workspace: Workspace,
    /// One weight per class scaling each row's loss (`None`: all 1).
    class_weight: Option<Vec<f32>>,
}

/// Checks that `data` fits `model` and has rows.
fn check_data(model: &Model, data: &Dataset) -> Result<()> {
    let n = data.n_rows();
    if n == 0 {
        return Err(Error::setting(
            "the number of training rows",
            "at least 1",
            0,
        ));
    }
    let shape = |what: &str, expected, got| Error::Shape {
        what: what.into(),
        expected,
        got,
    };
    if data.n_features != model.n_features() {
        return Err(shape("data features", model.n_features(), data.n_features));
    }
    if data.n_classes > model.n_classes() {
        return Err(shape("data classes", model.n_classes(), data.n_classes));
    }
    if data.features.len() != n * data.n_features {
        let expected = n * data.n_features;
        return Err(shape("data features buffer", expected, data.features.len()));
    }
    if model.layout.layers.len() > 255 {
        let hidden = model.layout.layers.len() - 1;
        return Err(Error::setting(
            "the number of hidden layers",
            "at most 254",
            hidden,
        ));
    }
    Ok(())
}

impl<'d> Trainer<'d> {
    /// Prepares a run of `config` on `data` starting from `model`.
    ///
    /// # Errors
    /// If the settings are invalid, the data is empty, or its feature or
    /// class count does not match the model; [`Error::TooLarge`] if the
    /// run's buffers do not fit the memory budget ([`crate::budget`]).
    pub fn new(model: Model, data: &'d Dataset, config: TrainConfig) -> Result<Trainer<'d>> {
        config.validate()?;
        check_data(&model, data)?;
        let (layout, act) = (&model.layout, model.activation);
        memory::check(layout, act, data.n_rows(), data.n_features, &config)?;
        let n = data.n_rows();
        let batch = config.batch_size.map_or(n, |b| b.min(n));
        let n_params = model.layout.len;
        let minibatch = config.batch_size.is_some_and(|b| b < n);
        Ok(Trainer {
            optimizer: OptimizerState::zeros(config.optimizer, n_params),
            sampler: minibatch.then(|| Sampler::new(data, batch)),
            dropconnect: (config.dropconnect > 0.0)
                .then(|| DropConnect::new(config.dropconnect, n_params)),
            workspace: Workspace::new(&model.layout, model.activation, batch),
            class_weight: None,
            steps_per_epoch: n.div_ceil(batch) as u64,
            step: 0,
            lr: config.lr,
            model,
            data,
            config,
        })
    }

    /// Scales each row's loss and its gradient by `class_weight[label]`
    /// (one weight per class of the model, e.g.
    /// [`balanced_class_weights`]); the loss stays a mean over the batch
    /// rows. Weights that are all exactly 1 change nothing, so the run is
    /// then bit-identical to one without them.
    ///
    /// # Errors
    /// [`Error::Setting`] unless there is one finite, non-negative weight
    /// per class.
    pub fn with_class_weights(mut self, class_weight: Vec<f32>) -> Result<Self> {
        let k = self.model.n_classes();
        if class_weight.len() != k {
            let expected = format!("{k}, one per class");
            return Err(Error::setting(
                "the number of class weights",
                expected,
                class_weight.len(),
            ));
        }
        if let Some(w) = class_weight.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
            return Err(Error::setting("a class weight", "finite and >= 0", w));
        }
        self.class_weight = class_weight
            .iter()
            .any(|&w| w != 1.0)
            .then_some(class_weight);
        Ok(self)
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

    /// The learning rate the next [`Trainer::step`] applies: the
    /// configuration's rate, or the last one given to [`Trainer::set_lr`].
    pub fn lr(&self) -> f32 {
        self.lr
    }

    /// Sets the learning rate of the following steps (a schedule's rate).
    ///
    /// # Errors
    /// [`Error::Setting`] unless `lr` is positive and finite.
    ///
    /// # Example
    /// ```
    /// use vnn::train::{TrainConfig, Trainer};
    /// let data = vnn::data::spiral(10, 3, 0);
    /// let model = vnn::model::Model::new(&[2, 4, 3], vnn::model::Init::He, 0).unwrap();
    /// let mut trainer = Trainer::new(model, &data, TrainConfig::default()).unwrap();
    /// assert_eq!(trainer.lr(), 1.0);
    /// trainer.set_lr(0.5).unwrap();
    /// assert_eq!(trainer.lr(), 0.5);
    /// assert!(trainer.set_lr(f32::NAN).is_err());
    /// ```
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::setting("learning rate", "a positive number", lr));
        }
        self.lr = lr;
        Ok(())
    }

    /// The training data (as the model's layers see it: standardized when
    /// the model standardizes).
    pub fn data(&self) -> &'d Dataset {
        self.data
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
        self.workspace.n_blocks()
    }

    /// The optimizer state after [`Trainer::steps_done`] steps (what a
    /// checkpoint saves).
    pub fn optimizer_state(&self) -> &OptimizerState {
        &self.optimizer
    }

    /// Restores a run at `step` with optimizer state `state` (from a
    /// checkpoint); the model given to [`Trainer::new`] must hold the
    /// weights of that step. Since the mini-batch order and the masks are
    /// pure functions of the seed and the step, the run then continues as
    /// if it had never stopped.
    ///
    /// # Errors
    /// [`Error::Shape`] if `state` is not the state of the run's optimizer
    /// (another variant, or not one value per parameter).
    ///
    /// # Example
    /// ```
    /// use vnn::data::spiral;
    /// use vnn::model::{Init, Model};
    /// use vnn::train::{Optimizer, OptimizerState, TrainConfig, Trainer};
    /// let data = spiral(10, 3, 0);
    /// let model = Model::new(&[2, 4, 3], Init::He, 0).unwrap();
    /// let n = model.params().len();
    /// let config = TrainConfig { optimizer: Optimizer::Adam, ..TrainConfig::default() };
    /// let mut trainer = Trainer::new(model, &data, config).unwrap();
    /// assert!(trainer.restore(5, OptimizerState::Sgd).is_err());
    /// let state = OptimizerState::Adam { m: vec![0.0; n], v: vec![1e-4; n] };
    /// trainer.restore(5, state.clone()).unwrap();
    /// assert_eq!(trainer.steps_done(), 5);
    /// assert_eq!(trainer.optimizer_state(), &state);
    /// ```
    pub fn restore(&mut self, step: u64, state: OptimizerState) -> Result<()> {
        state::check_state(&state, self.config.optimizer, self.model.layout.len)?;
        self.optimizer = state;
        self.step = step;
        Ok(())
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
        let stats = self.forward_backward()?;
        Ok((stats, self.workspace.gradient()))
    }

    /// Runs one optimizer step: forward, loss, backward, update.
    ///
    /// # Errors
    /// [`Error::Diverged`] if the loss is not finite; the parameters are then
    /// left as they were before the step.
    pub fn step(&mut self) -> Result<StepStats> {
        let stats = self.forward_backward()?;
        self.step += 1;
        let (lr, reg) = (self.lr, self.config.reg);
        let grad = self.workspace.gradient();
        let (layout, w) = self.model.layout_and_params_mut();
        for slot in &layout.layers {
            for (range, reg) in [(slot.weight_range(), reg), (slot.bias_range(), 0.0)] {
                let (wr, gr) = (&mut w[range.clone()], &grad[range.clone()]);
                let opt = self.config.optimizer;
                self.optimizer
                    .update(opt, wr, gr, range, lr, reg, self.step);
            }
        }
        Ok(stats)
    }

    /// Forward and backward of the next batch: leaves the gradient of the
    /// mean cross-entropy (dropconnect mask applied) in the workspace and
    /// returns the statistics of step `self.step + 1`. Moves neither the
    /// step counter nor the parameters.
    ///
    /// # Errors
    /// [`Error::Diverged`] if the loss is not finite.
    fn forward_backward(&mut self) -> Result<StepStats> {
        let (step, seed) = (self.step, self.config.seed);
        let layout = &self.model.layout;
        let params = match &mut self.dropconnect {
            Some(dc) => dc.draw(self.model.params(), layout, seed, step),
            None => self.model.params(),
        };
        let (x, y) = match &mut self.sampler {
            Some(s) => s.gather(self.data, seed, step, self.steps_per_epoch),
            None => (&self.data.features[..], &self.data.labels[..]),
        };
        let input = StepInput {
            params,
            activation: self.model.activation,
            x,
            y,
            dropout: self.config.dropout,
            seed,
            step,
            class_weight: self.class_weight.as_deref(),
        };
        let (mut loss, correct) = self.workspace.forward_backward(layout, &input);
        let rows = y.len();
        if let Some(dc) = &self.dropconnect {
            dc.mask_gradient(self.workspace.gradient_mut(), layout);
        }
        let reg = self.config.reg;
        if reg > 0.0 {
            let sq: f64 = layout
                .layers
                .iter()
                .map(|s| reduce::sum_squares(&self.model.params()[s.weight_range()]) as f64)
                .sum();
            loss += 0.5 * reg as f64 * sq;
        }
        if !loss.is_finite() {
            return Err(Error::Diverged {
                step: step + 1,
                loss,
            });
        }
        Ok(StepStats {
            step: step + 1,
            epoch: step / self.steps_per_epoch,
            loss,
            accuracy: correct as f64 / rows as f64,
        })
    }
}

/// The most classes [`evaluate`] keeps a confusion matrix for: above it,
/// [`Evaluation::confusion`] is empty (a dense matrix would need
/// `8 * classes^2` bytes).
pub const MAX_CONFUSION_CLASSES: usize = 1024;

/// The most logits [`evaluate`] holds at once: the rows are evaluated in
/// chunks of `EVAL_CHUNK_VALUES / classes` rows (at least one).
pub const EVAL_CHUNK_VALUES: usize = 1 << 22;

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
    /// `confusion[true][predicted]` counts; empty when the model has more
    /// than [`MAX_CONFUSION_CLASSES`] classes.
    pub confusion: Vec<Vec<u64>>,
}

/// Evaluates `model` on `data` (inference mode: no dropout, full weights),
/// in chunks of rows that keep at most [`EVAL_CHUNK_VALUES`] logits at
/// once.
///
/// # Errors
/// If the data's feature count differs from the model's, or a label is out
/// of the model's class range; [`Error::OutputNotFinite`] naming the first
/// row whose logits are not finite.
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
        return Err(Error::setting(
            "a label",
            format!("below the model's {k} classes"),
            y,
        ));
    }
    let chunk = (EVAL_CHUNK_VALUES / k).max(1);
    let mut confusion = vec![vec![0u64; k]; if k > MAX_CONFUSION_CLASSES { 0 } else { k }];
    let (mut loss, mut correct) = (0.0f64, 0usize);
    let mut workspace = crate::model::Workspace::default();
    let mut logits = vec![0f32; chunk.min(n) * k];
    let mut pred = vec![0u32; chunk.min(n)];
    let d = data.n_features;
    for start in (0..n).step_by(chunk) {
        let rows = chunk.min(n - start);
        let (x, y) = (
            &data.features[start * d..(start + rows) * d],
            &data.labels[start..start + rows],
        );
        let (logits, pred) = (&mut logits[..rows * k], &mut pred[..rows]);
        model.logits_into(x, rows, &mut workspace, logits)?;
        crate::model::check_finite_output(logits, k, start)?;
        reduce::argmax_rows(logits, rows, k, pred);
        let ce = softmax::softmax_cross_entropy(logits, y, rows, k, 1.0 / n.max(1) as f32);
        (loss, correct) = (loss + ce.loss, correct + ce.correct);
        if !confusion.is_empty() {
            for (&t, &p) in y.iter().zip(pred.iter()) {
                confusion[t as usize][p as usize] += 1;
            }
        }
    }
    Ok(Evaluation {
        accuracy: correct as f64 / n.max(1) as f64,
        loss,
        n,
        confusion,
    })
}

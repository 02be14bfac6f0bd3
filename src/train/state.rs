//! The parts of a run's state besides the model and the workspace: the
//! optimizer state, the mini-batch sampler and the dropconnect masks.

use super::{dropout_stream, Optimizer, DROPCONNECT_DOMAIN};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Layout;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use vnn_kernels::{mask, update};

/// What an optimizer remembers between steps, one value per parameter in
/// each buffer (laid out like [`crate::model::Model::params`]).
#[derive(Clone, Debug, PartialEq)]
pub enum OptimizerState {
    /// Plain gradient descent remembers nothing.
    Sgd,
    /// Momentum: the velocity `v` of `v = mu v + g; w -= lr v`.
    Momentum {
        /// The velocity.
        velocity: Vec<f32>,
    },
    /// Adam: the first and second moment estimates.
    Adam {
        /// First moment (mean of the gradients).
        m: Vec<f32>,
        /// Second moment (mean of the squared gradients).
        v: Vec<f32>,
    },
}

impl OptimizerState {
    /// The state of `optimizer` before its first step, for `n_params`
    /// parameters: zeros.
    ///
    /// # Example
    /// ```
    /// use vnn::train::{Optimizer, OptimizerState};
    /// let s = OptimizerState::zeros(Optimizer::Momentum { mu: 0.9 }, 3);
    /// assert_eq!(s, OptimizerState::Momentum { velocity: vec![0.0; 3] });
    /// assert_eq!(s.name(), "momentum");
    /// assert_eq!(s.tensors().len(), 1);
    /// ```
    pub fn zeros(optimizer: Optimizer, n_params: usize) -> OptimizerState {
        match optimizer {
            Optimizer::Sgd => OptimizerState::Sgd,
            Optimizer::Momentum { .. } => OptimizerState::Momentum {
                velocity: vec![0.0; n_params],
            },
            Optimizer::Adam => OptimizerState::Adam {
                m: vec![0.0; n_params],
                v: vec![0.0; n_params],
            },
        }
    }

    /// The optimizer's name, as [`Optimizer::name`].
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerState::Sgd => "sgd",
            OptimizerState::Momentum { .. } => "momentum",
            OptimizerState::Adam { .. } => "adam",
        }
    }

    /// The state's buffers with their names (`"velocity"`, or `"m"` and
    /// `"v"`); none for SGD.
    pub fn tensors(&self) -> Vec<(&'static str, &[f32])> {
        match self {
            OptimizerState::Sgd => Vec::new(),
            OptimizerState::Momentum { velocity } => vec![("velocity", velocity)],
            OptimizerState::Adam { m, v } => vec![("m", m), ("v", v)],
        }
    }

    /// Whether this is the state of `optimizer` for `n_params` parameters.
    pub fn fits(&self, optimizer: Optimizer, n_params: usize) -> bool {
        self.name() == optimizer.name() && self.tensors().iter().all(|(_, t)| t.len() == n_params)
    }

    /// One update of the weights `w` (a parameter range) with gradient `g`
    /// and L2 coefficient `reg`; `range` is where `w` sits in the flat
    /// buffer (the state's slice), `step` the 1-based step (Adam's bias
    /// correction). `Momentum` takes `mu` from `optimizer`.
    ///
    /// A range longer than [`UPDATE_CHUNK`] is updated in pieces of that
    /// many parameters in the current rayon pool. The rules are elementwise
    /// and the pieces start at multiples of the kernels' lanes, so every
    /// parameter takes the same arithmetic as in one whole call, for any
    /// thread count.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn update(
        &mut self,
        optimizer: Optimizer,
        w: &mut [f32],
        g: &[f32],
        range: std::ops::Range<usize>,
        lr: f32,
        reg: f32,
        step: u64,
    ) {
        const C: usize = UPDATE_CHUNK;
        let whole = w.len() <= C;
        match (self, optimizer) {
            (OptimizerState::Momentum { velocity }, Optimizer::Momentum { mu }) => {
                let v = &mut velocity[range];
                let run = |(w, g, v): (&mut [f32], &[f32], &mut [f32])| {
                    update::momentum_update(w, g, v, lr, reg, mu)
                };
                match whole {
                    true => run((w, g, v)),
                    false => (w.par_chunks_mut(C), g.par_chunks(C), v.par_chunks_mut(C))
                        .into_par_iter()
                        .for_each(run),
                }
            }
            (OptimizerState::Adam { m, v }, _) => {
                let s = update::AdamStep::new(lr, reg, step);
                let (m, v) = (&mut m[range.clone()], &mut v[range]);
                let run = |(w, g, m, v): (&mut [f32], &[f32], &mut [f32], &mut [f32])| {
                    update::adam_update(w, g, m, v, &s)
                };
                match whole {
                    true => run((w, g, m, v)),
                    false => (
                        w.par_chunks_mut(C),
                        g.par_chunks(C),
                        m.par_chunks_mut(C),
                        v.par_chunks_mut(C),
                    )
                        .into_par_iter()
                        .for_each(run),
                }
            }
            _ => match whole {
                true => update::sgd_update(w, g, lr, reg),
                false => (w.par_chunks_mut(C), g.par_chunks(C))
                    .into_par_iter()
                    .for_each(|(w, g)| update::sgd_update(w, g, lr, reg)),
            },
        }
    }
}

/// Parameters per parallel piece of an optimizer update: a multiple of the
/// update kernels' vector width (16 lanes).
const UPDATE_CHUNK: usize = 1 << 14;

/// The mini-batch sampler: each epoch's row order (a pure function of the
/// seed and the epoch) and the gathered rows of the current batch.
pub(super) struct Sampler {
    /// The row order of epoch `epoch`.
    order: Vec<u32>,
    /// The epoch `order` belongs to (`u64::MAX` before the first).
    epoch: u64,
    /// `batch x n_features`: the features of the gathered rows.
    x: Vec<f32>,
    /// `batch`: their labels.
    y: Vec<u32>,
}

impl Sampler {
    /// A sampler of batches of `batch` rows of `data`.
    pub(super) fn new(data: &Dataset, batch: usize) -> Sampler {
        Sampler {
            order: (0..data.n_rows() as u32).collect(),
            epoch: u64::MAX,
            x: vec![0.0; batch * data.n_features],
            y: vec![0; batch],
        }
    }

    /// Gathers the batch of 0-based step `step` (`steps_per_epoch` steps
    /// per epoch, the last batch of an epoch possibly shorter) and returns
    /// its `(features, labels)`.
    pub(super) fn gather(
        &mut self,
        data: &Dataset,
        seed: u64,
        step: u64,
        steps_per_epoch: u64,
    ) -> (&[f32], &[u32]) {
        let n = data.n_rows();
        let epoch = step / steps_per_epoch;
        let pos = (step % steps_per_epoch) as usize;
        if self.epoch != epoch {
            self.shuffle(seed, epoch);
        }
        let batch = self.y.len();
        let start = pos * batch;
        let rows = batch.min(n - start);
        let d = data.n_features;
        let order = &self.order[start..start + rows];
        let x = &mut self.x[..rows * d];
        if x.len() >= PAR_GATHER_VALUES && d > 0 {
            // Rows of the batch copied on the pool: the same bytes either way.
            x.par_chunks_mut(d)
                .zip(order.par_iter())
                .with_min_len(GATHER_MIN_ROWS)
                .for_each(|(dst, &i)| dst.copy_from_slice(data.row(i as usize)));
        } else {
            for (dst, &i) in x.chunks_exact_mut(d.max(1)).zip(order) {
                dst.copy_from_slice(data.row(i as usize));
            }
        }
        for (y, &i) in self.y.iter_mut().zip(order) {
            *y = data.labels[i as usize];
        }
        (&self.x[..rows * d], &self.y[..rows])
    }

    /// The order of `epoch`: a Fisher-Yates shuffle of `0..n` seeded by
    /// `(seed, epoch)`.
    fn shuffle(&mut self, seed: u64, epoch: u64) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(
            seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x0005_4FF1_E000,
        );
        for (i, o) in self.order.iter_mut().enumerate() {
            *o = i as u32;
        }
        use rand::RngExt;
        for i in (1..self.order.len()).rev() {
            let j = rng.random_range(0..=i);
            self.order.swap(i, j);
        }
        self.epoch = epoch;
    }
}

/// Batches of at least this many feature values are gathered on the pool.
const PAR_GATHER_VALUES: usize = 1 << 15;
/// Rows per piece of a parallel gather.
const GATHER_MIN_ROWS: usize = 16;

/// Dropconnect: one weight mask per `(seed, step, layer)`, shared by the
/// blocks of a step, and the masked parameters the passes use.
pub(super) struct DropConnect {
    /// Probability of dropping a weight, in `(0, 1)`.
    p_drop: f32,
    /// Parameter-sized: the masks over the weight ranges (biases unused).
    masks: Vec<f32>,
    /// Parameter-sized: the parameters with the masks applied.
    effective: Vec<f32>,
}

impl DropConnect {
    /// Dropconnect with probability `p_drop` on `n_params` parameters.
    pub(super) fn new(p_drop: f32, n_params: usize) -> DropConnect {
        DropConnect {
            p_drop,
            masks: vec![0.0; n_params],
            effective: vec![0.0; n_params],
        }
    }

    /// Draws the masks of 0-based step `step` and returns `params` with
    /// them applied to every weight matrix.
    pub(super) fn draw(&mut self, params: &[f32], layout: &Layout, seed: u64, step: u64) -> &[f32] {
        self.effective.copy_from_slice(params);
        for (l, slot) in layout.layers.iter().enumerate() {
            let r = slot.weight_range();
            let stream = dropout_stream(step, 0, l);
            let m = &mut self.masks[r.clone()];
            mask::bernoulli_mask(m, self.p_drop, seed ^ DROPCONNECT_DOMAIN, stream);
            mask::apply_mask(&mut self.effective[r], m);
        }
        &self.effective
    }

    /// The gradient with respect to the unmasked weights: `grad` (of the
    /// masked ones) times the masks of the last [`DropConnect::draw`].
    pub(super) fn mask_gradient(&self, grad: &mut [f32], layout: &Layout) {
        for slot in &layout.layers {
            let r = slot.weight_range();
            mask::apply_mask(&mut grad[r.clone()], &self.masks[r]);
        }
    }
}

/// Checks that `state` fits `optimizer` and `n_params`.
pub(super) fn check_state(
    state: &OptimizerState,
    optimizer: Optimizer,
    n_params: usize,
) -> Result<()> {
    if state.fits(optimizer, n_params) {
        return Ok(());
    }
    let expected = OptimizerState::zeros(optimizer, n_params);
    let lens = |s: &OptimizerState| s.tensors().iter().map(|(_, t)| t.len()).sum::<usize>();
    Err(Error::Shape {
        what: format!(
            "optimizer state ({} for the {} optimizer)",
            state.name(),
            optimizer.name()
        ),
        expected: lens(&expected),
        got: lens(state),
    })
}

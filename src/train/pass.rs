//! The training pass: the workspace of a step, and the forward and backward
//! of one row block as a flat list of layer ops.

use super::{block_rows, dropout_stream, MAX_GRAD_BUFFERS};
use crate::model::{self, Activation, Layout};
use rayon::prelude::*;
use vnn_kernels::fused::{self, MlpGrads, NarrowMlp};
use vnn_kernels::gemm;
use vnn_kernels::layer::{self, Dropout};
use vnn_kernels::reduce;
use vnn_kernels::softmax::{self, CrossEntropy};

/// Buffers owned by one row block.
pub(super) struct Block {
    /// The `rows x width` activations `A` of every hidden layer, one after
    /// another ([`model::hidden_range`]); their gradients `dZ` after the
    /// backward pass.
    hidden: Vec<f32>,
    /// `rows x classes`: the scores, then `dscores`.
    scores: Vec<f32>,
    /// Scratch of the backward ops ([`layer::act_dense_backward_scratch`]).
    scratch: Vec<f32>,
    /// Summed cross-entropy of the last pass (already divided by the batch
    /// size).
    loss: f64,
    /// Rows the last pass predicted correctly.
    correct: usize,
}

impl Block {
    /// The buffers of a block of `rows` rows of a network of `layout` with
    /// hidden activation `act`.
    fn new(layout: &Layout, act: Activation, rows: usize) -> Block {
        let scratch = layout.layers[1..]
            .iter()
            .map(|s| layer::act_dense_backward_scratch(act, s.shape(rows)))
            .max()
            .unwrap_or(0)
            .max(match layout.layers[..] {
                // Only a network the fused step takes (`fused_pass`).
                [first, last] if fused::narrow_mlp_fits(first.n_in, last.n_out) => {
                    fused::narrow_mlp_scratch(rows, first.n_in, first.n_out, last.n_out)
                }
                _ => 0,
            });
        Block {
            hidden: vec![0.0; rows * layout.hidden().iter().sum::<usize>()],
            scores: vec![0.0; rows * layout.n_out()],
            scratch: vec![0.0; scratch],
            loss: 0.0,
            correct: 0,
        }
    }
}

/// The packing workspace a block of `rows` rows needs: one of
/// [`gemm::GEMM_WORKSPACE`] elements when the first layer's forward
/// product (`X W1`) or weight gradient (`Xᵀ·dZ1`) takes the packed GEMM,
/// none otherwise.
pub(super) fn pack_len(layout: &Layout, rows: usize) -> usize {
    let first = layout.layers[0];
    let (n_in, n_out) = (first.n_in, first.n_out);
    let packs = !gemm::use_small(rows, n_out, n_in) || !gemm::use_small(n_in, n_out, rows);
    if packs {
        gemm::GEMM_WORKSPACE
    } else {
        0
    }
}

/// Every buffer the passes of a step use: the row blocks, at most
/// [`MAX_GRAD_BUFFERS`] parameter-sized gradients (one per run of blocks;
/// the step's gradient ends in the first) and `block_rows` ones (for the
/// bias sums as `1ᵀ·dS`), and one packing workspace per gradient buffer
/// (the blocks of a run take turns with it).
pub(super) struct Workspace {
    /// Rows per block ([`block_rows`] of the largest batch).
    block_rows: usize,
    blocks: Vec<Block>,
    grads: Vec<Vec<f32>>,
    /// The packing workspaces of the first layer's products ([`pack_len`]),
    /// one per gradient buffer.
    packs: Vec<Vec<f32>>,
    ones: Vec<f32>,
}

/// What the blocks of one step share.
pub(super) struct StepInput<'a> {
    /// The parameters the passes use (masked under dropconnect).
    pub params: &'a [f32],
    /// The hidden layers' activation.
    pub activation: Activation,
    /// `rows x n_features`: the batch's features.
    pub x: &'a [f32],
    /// `rows`: the batch's labels.
    pub y: &'a [u32],
    /// Dropout probability of the hidden activations (0: none).
    pub dropout: f32,
    /// The run's seed (of the dropout masks).
    pub seed: u64,
    /// The 0-based step (of the dropout streams).
    pub step: u64,
    /// One weight per class scaling each row's loss (`None`: unweighted).
    pub class_weight: Option<&'a [f32]>,
}

impl Workspace {
    /// The workspace of batches of at most `batch` rows of a network of
    /// `layout` with hidden activation `act`.
    pub(super) fn new(layout: &Layout, act: Activation, batch: usize) -> Workspace {
        let block_rows = block_rows(batch, layout.len);
        let n_blocks = batch.div_ceil(block_rows);
        let blocks = (0..n_blocks)
            .map(|b| Block::new(layout, act, block_rows.min(batch - b * block_rows)))
            .collect();
        Workspace {
            block_rows,
            blocks,
            grads: vec![vec![0.0; layout.len]; n_blocks.min(MAX_GRAD_BUFFERS)],
            packs: vec![vec![0.0; pack_len(layout, block_rows)]; n_blocks.min(MAX_GRAD_BUFFERS)],
            ones: vec![1.0; block_rows],
        }
    }

    /// Number of row blocks of a full batch.
    pub(super) fn n_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The gradient of the last [`Workspace::forward_backward`].
    pub(super) fn gradient(&self) -> &[f32] {
        &self.grads[0]
    }

    /// The gradient of the last [`Workspace::forward_backward`], mutable.
    pub(super) fn gradient_mut(&mut self) -> &mut [f32] {
        &mut self.grads[0]
    }

    /// Forward and backward of every block of the batch `input`: leaves
    /// the summed gradient of the mean cross-entropy in
    /// [`Workspace::gradient`] and returns the summed loss and correct
    /// count.
    ///
    /// The blocks are cut into runs of `per` consecutive blocks, one
    /// gradient buffer each (a function of the block count only, so the
    /// sums do not depend on the thread count); the runs go in parallel and
    /// their buffers are summed in run order.
    pub(super) fn forward_backward(&mut self, layout: &Layout, input: &StepInput) -> (f64, usize) {
        let rows = input.y.len();
        let n_blocks = rows.div_ceil(self.block_rows);
        let per = n_blocks.div_ceil(n_blocks.min(self.grads.len()));
        let n_runs = n_blocks.div_ceil(per);
        let (block_rows, ones) = (self.block_rows, &self.ones[..]);
        let run = |b: usize, block: &mut Block, grad: &mut [f32], pack: &mut [f32]| {
            let start = b * block_rows;
            let r = block_rows.min(rows - start);
            let d = layout.n_in();
            let (x, y) = (
                &input.x[start * d..(start + r) * d],
                &input.y[start..start + r],
            );
            let inv_n = 1.0 / rows as f32;
            block_pass(layout, input, b, block, (grad, pack), x, y, inv_n, ones);
        };
        if n_blocks == 1 {
            self.grads[0].fill(0.0);
            run(
                0,
                &mut self.blocks[0],
                &mut self.grads[0],
                &mut self.packs[0],
            );
        } else {
            self.blocks[..n_blocks]
                .par_chunks_mut(per)
                .zip(self.grads[..n_runs].par_iter_mut())
                .zip(self.packs[..n_runs].par_iter_mut())
                .enumerate()
                .for_each(|(g, ((blocks, grad), pack))| {
                    grad.fill(0.0);
                    for (i, block) in blocks.iter_mut().enumerate() {
                        run(g * per + i, block, grad, pack);
                    }
                });
        }
        self.sum_gradients(n_runs);
        // Losses in block order.
        let blocks = &self.blocks[..n_blocks];
        let loss = blocks.iter().fold(0f64, |s, b| s + b.loss);
        (loss, blocks.iter().map(|b| b.correct).sum())
    }

    /// Adds the gradients of runs `1..n_runs` into the first, in run order.
    fn sum_gradients(&mut self, n_runs: usize) {
        if n_runs <= 1 {
            return;
        }
        const PAR_CHUNK: usize = 1 << 14;
        let (first, rest) = self.grads.split_at_mut(1);
        let rest = &rest[..n_runs - 1];
        first[0]
            .par_chunks_mut(PAR_CHUNK)
            .enumerate()
            .for_each(|(c, g)| {
                let off = c * PAR_CHUNK;
                for other in rest {
                    reduce::add_assign(g, &other[off..off + g.len()]);
                }
            });
    }
}

/// Forward and backward of row block `b` (`x`: `rows x n_features`, `y`:
/// `rows` labels), adding its gradient into `grad` (parameter-sized). With
/// one hidden ReLU layer the calls read as the seed's math: `hidden =
/// relu(X W1 + b1)`, `scores = hidden W2 + b2`, then `dscores`, `db2 = Σ
/// dscores`, `dW2 = hiddenᵀ·dscores`, `dhidden = dscores·W2ᵀ`, the ReLU
/// mask, `db1 = Σ dhidden`, `dW1 = Xᵀ·dhidden`; another activation takes
/// its derivative in place of the mask.
#[allow(clippy::too_many_arguments)]
fn block_pass(
    layout: &Layout,
    input: &StepInput,
    b: usize,
    block: &mut Block,
    (grad, pack): (&mut [f32], &mut [f32]),
    x: &[f32],
    y: &[u32],
    inv_n: f32,
    ones: &[f32],
) {
    let (rows, k) = (y.len(), layout.n_out());
    let (params, act) = (input.params, input.activation);
    let dropout = (input.dropout > 0.0).then(|| Dropout {
        p_drop: input.dropout,
        seed: input.seed,
        stream: dropout_stream(input.step, b, 0),
    });
    let Block {
        hidden,
        scores,
        scratch,
        loss,
        correct,
    } = block;
    if let Some(ce) = fused_pass(layout, input, scratch, grad, x, y, inv_n) {
        (*loss, *correct) = (ce.loss, ce.correct);
        return;
    }
    let scores = &mut scores[..rows * k];
    // ---- forward: hidden_l = act(hidden_{l-1} W_l + b_l), scores = hidden W + b ----
    model::forward_rows(
        layout,
        params,
        act,
        x,
        rows,
        hidden,
        scores,
        dropout,
        &[],
        pack,
    );
    // ---- loss; dscores = (softmax(scores) - onehot(y)) / n in place ----
    let ce = match input.class_weight {
        Some(w) => softmax::softmax_cross_entropy_weighted(scores, y, w, rows, k, inv_n),
        None => softmax::softmax_cross_entropy(scores, y, rows, k, inv_n),
    };
    (*loss, *correct) = (ce.loss, ce.correct);
    // ---- backward, last layer first ----
    let slots = &layout.layers;
    let last = slots[slots.len() - 1];
    // db_last = Σ_rows dscores
    layer::bias_backward(scores, rows, k, ones, &mut grad[last.bias_range()]);
    for l in (1..slots.len()).rev() {
        let (slot, prev) = (slots[l], slots[l - 1]);
        let below = model::hidden_range(layout, rows, l - 1);
        let (lower, upper) = hidden.split_at_mut(below.end);
        let a_prev = &mut lower[below.start..];
        let dz: &[f32] = if l + 1 == slots.len() {
            scores
        } else {
            &upper[..rows * slot.n_out]
        };
        // The layout puts W_l right after b_{l-1}.
        let (lower, upper) = grad.split_at_mut(slot.weight);
        let db_prev = &mut lower[prev.bias_range()];
        let dw = &mut upper[..slot.n_in * slot.n_out];
        let w = &params[slot.weight_range()];
        // dW_l = hidden_{l-1}ᵀ·dz_l; dhidden = dz_l·W_lᵀ;
        // dz_{l-1} = dhidden * act'(hidden_{l-1}) (ReLU: where hidden_{l-1}
        // > 0), times the keep scale of the mask the forward drew for layer
        // l - 1; db_{l-1} = Σ_rows dz_{l-1}
        let d = dropout.map(|d| Dropout {
            stream: d.stream | (l - 1) as u64,
            ..d
        });
        let shape = slot.shape(rows);
        layer::act_dense_backward(act, shape, a_prev, dz, w, d, dw, db_prev, scratch);
    }
    // dW_0 = Xᵀ·dz_0
    let first = slots[0];
    let dz0: &[f32] = if slots.len() > 1 {
        &hidden[..rows * first.n_out]
    } else {
        scores
    };
    let dw0 = &mut grad[first.weight_range()];
    layer::weight_backward_with(pack, first.shape(rows), x, dz0, dw0);
}

/// The whole pass of block `x`, `y` in one kernel
/// ([`fused::narrow_mlp_forward_backward`]) for a network with one hidden
/// layer, few inputs and few classes, without dropout and class weights;
/// `None` (nothing done) for any other network or step.
#[allow(clippy::too_many_arguments)]
fn fused_pass(
    layout: &Layout,
    input: &StepInput,
    scratch: &mut [f32],
    grad: &mut [f32],
    x: &[f32],
    y: &[u32],
    inv_n: f32,
) -> Option<CrossEntropy> {
    let [first, last] = layout.layers[..] else {
        return None;
    };
    let plain = input.dropout == 0.0 && input.class_weight.is_none();
    if !plain || !fused::narrow_mlp_fits(first.n_in, last.n_out) {
        return None;
    }
    let p = input.params;
    let net = NarrowMlp {
        act: input.activation,
        x,
        labels: y,
        w1: &p[first.weight_range()],
        b1: &p[first.bias_range()],
        w2: &p[last.weight_range()],
        b2: &p[last.bias_range()],
        n_in: first.n_in,
        hidden: first.n_out,
        classes: last.n_out,
    };
    // The layout: W1, b1, W2, b2, one after another.
    let (lower, upper) = grad.split_at_mut(last.weight);
    let (w1_part, b1_part) = lower.split_at_mut(first.bias);
    let (w2_part, b2_part) = upper.split_at_mut(last.bias - last.weight);
    let grads = MlpGrads {
        dw1: &mut w1_part[first.weight_range()],
        db1: &mut b1_part[..first.n_out],
        dw2: &mut w2_part[..last.n_in * last.n_out],
        db2: &mut b2_part[..last.n_out],
    };
    Some(fused::narrow_mlp_forward_backward(
        &net, inv_n, grads, scratch,
    ))
}

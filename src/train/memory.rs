//! The memory a [`Trainer`](super::Trainer) allocates, counted before it
//! allocates it, against the budget of [`crate::budget`].

use super::{block_rows, Optimizer, TrainConfig, MAX_GRAD_BUFFERS};
use crate::budget;
use crate::error::Result;
use crate::model::{Activation, Layout};

/// The bytes of the buffers of a run of `config` over `rows` rows of
/// `n_features` features for a network of `layout`, counted with checked
/// arithmetic (`None`: past `u64`): the parameters, the gradient buffers,
/// the optimizer state, the dropconnect masks, the backward scratch (at
/// most one parameter-sized buffer; for an activation other than ReLU,
/// `dA` of the widest hidden layer per row; for the fused step of a narrow
/// network with one hidden layer, twice its widths and features per row,
/// room for the padding), the packing workspace of each gradient buffer
/// (`pass::pack_len`), the sampler, the activations
/// and logits of a batch, and one copy of the model and its state for
/// saving.
pub(super) fn training_bytes(
    layout: &Layout,
    act: Activation,
    rows: usize,
    n_features: usize,
    config: &TrainConfig,
) -> Option<u64> {
    let batch = config.batch_size.map_or(rows, |b| b.min(rows)) as u64;
    let block_rows = block_rows(batch as usize, layout.len) as u64;
    let grads = batch.div_ceil(block_rows).min(MAX_GRAD_BUFFERS as u64);
    let state = match config.optimizer {
        Optimizer::Sgd => 0,
        Optimizer::Momentum { .. } => 1,
        Optimizer::Adam => 2,
    };
    let dropconnect = if config.dropconnect > 0.0 { 2 } else { 0 };
    // params, gradients, state, masks, scratch, and the saved copy of
    // params and state.
    let per_param = 1 + grads + state + dropconnect + 1 + (1 + state);
    let widths: u64 = layout.sizes[1..].iter().map(|&w| w as u64).sum();
    let da = match act {
        Activation::Relu => 0,
        _ => layout.hidden().iter().max().map_or(0, |&w| w as u64),
    };
    // The fused step of a narrow one-hidden-layer network packs the inputs,
    // logits and hidden activations of its block (rows padded to 16).
    let fused = match layout.layers[..] {
        [first, last] if vnn_kernels::fused::narrow_mlp_fits(first.n_in, last.n_out) => {
            (n_features as u64 + widths) * 2
        }
        _ => 0,
    };
    let da = da.max(fused);
    let per_row = widths.checked_add(n_features as u64 + 1 + da)?;
    let sampler = budget::bytes(&[rows as u64, 4]);
    let pack = super::pass::pack_len(layout, block_rows as usize) as u64;
    budget::sum(&[
        budget::bytes(&[grads, pack, 4]),
        budget::bytes(&[layout.len as u64, per_param, 4]),
        budget::bytes(&[batch, per_row, 4]),
        sampler,
    ])
}

/// Refuses a run whose buffers ([`training_bytes`]) do not fit the budget.
pub(crate) fn check(
    layout: &Layout,
    act: Activation,
    rows: usize,
    n_features: usize,
    config: &TrainConfig,
) -> Result<()> {
    let batch = config.batch_size.map_or(rows, |b| b.min(rows));
    let what = format!(
        "training a model of layer widths {:?} on batches of {batch} rows",
        layout.sizes
    );
    let hint = if config.batch_size.is_none_or(|b| b > 256) {
        "use mini-batches (`batch_size`, e.g. 256) or smaller layers (lower `hidden`)"
    } else {
        "use smaller layers (lower `hidden`) or fewer classes"
    };
    budget::check(
        &what,
        training_bytes(layout, act, rows, n_features, config),
        hint,
    )
}

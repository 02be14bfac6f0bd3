//! The class-weighted softmax cross-entropy: each row's loss and gradient
//! scaled by the weight of its label's class.

use super::{
    block_rows, cross_entropy_block, cross_entropy_prologue, cross_entropy_rows_scalar,
    CrossEntropy,
};

/// The shape check of the class weights: one per class.
#[track_caller]
fn check_weights(class_weight: &[f32], cols: usize) {
    assert_eq!(
        class_weight.len(),
        cols,
        "softmax_cross_entropy_weighted: {} class weights, expected cols = {cols}",
        class_weight.len()
    );
}

/// Fused softmax cross-entropy with class weights: as
/// [`super::softmax_cross_entropy`], but row `r` (label `y`) counts with
/// the weight `w = class_weight[y]`:
/// `loss = inv_n * sum(w_r * loss_r)` and
/// `dlogits[r, :] = (softmax(x[r, :]) - onehot(y)) * w_r * inv_n`.
/// With `inv_n = 1 / N` the blocks of a batch of `N` rows sum to the mean
/// weighted loss (scikit-learn's `sample_weight` mean) and its gradient.
///
/// - `logits_then_grad`: `rows x cols`, logits in, `dlogits` out.
/// - `labels`: `rows` class indices, each `< cols`.
/// - `class_weight`: `cols` weights.
///
/// # Panics
/// If the lengths do not match the shapes, or a label is `>= cols`.
///
/// # Example
/// ```
/// use vnn_kernels::softmax::softmax_cross_entropy_weighted;
/// let mut x = [0.0f32, 0.0, 0.0, 0.0];
/// let ce = softmax_cross_entropy_weighted(&mut x, &[0, 1], &[1.0, 3.0], 2, 2, 0.5);
/// // (1 * ln 2 + 3 * ln 2) / 2
/// assert!((ce.loss - 2.0 * std::f64::consts::LN_2).abs() < 1e-6);
/// assert_eq!(x, [-0.25, 0.25, 0.75, -0.75]);
/// ```
#[track_caller]
pub fn softmax_cross_entropy_weighted(
    logits_then_grad: &mut [f32],
    labels: &[u32],
    class_weight: &[f32],
    rows: usize,
    cols: usize,
    inv_n: f32,
) -> CrossEntropy {
    check_weights(class_weight, cols);
    if !cross_entropy_prologue(logits_then_grad, labels, rows, cols) {
        return CrossEntropy::default();
    }
    let (mut loss, mut correct) = (0.0f64, 0);
    let per_block = block_rows(cols);
    let blocks = logits_then_grad.chunks_mut(per_block * cols);
    for (block, block_labels) in blocks.zip(labels.chunks(per_block)) {
        let w = Some(class_weight);
        correct += cross_entropy_block(block, block_labels, w, cols, inv_n, &mut loss);
    }
    CrossEntropy {
        loss: loss * inv_n as f64,
        correct,
    }
}

/// Scalar twin of [`softmax_cross_entropy_weighted`] (std `exp` and `ln`).
///
/// # Panics
/// If the lengths do not match the shapes, or a label is `>= cols`.
#[track_caller]
pub fn softmax_cross_entropy_weighted_scalar(
    logits_then_grad: &mut [f32],
    labels: &[u32],
    class_weight: &[f32],
    rows: usize,
    cols: usize,
    inv_n: f32,
) -> CrossEntropy {
    check_weights(class_weight, cols);
    if !cross_entropy_prologue(logits_then_grad, labels, rows, cols) {
        return CrossEntropy::default();
    }
    cross_entropy_rows_scalar(logits_then_grad, labels, Some(class_weight), cols, inv_n)
}

//! The guard at the end of every completed run: warnings when the final
//! model learned nothing useful, or when its loss on the training rows rose
//! (or did not fall) over the run.
//!
//! The warnings name settings by their library names in backticks
//! (`` `lr` ``), as [`crate::budget::with_options`] renders them.

use crate::train::Evaluation;

/// The final model's training accuracy counts as no better than always
/// predicting the most frequent class when it is at most this much (one
/// accuracy point) above that class's share of the rows.
pub const CHANCE_MARGIN: f64 = 0.01;

/// The loss counts as having changed over the run when the final model's
/// loss on the training rows differs from the first model's by more than
/// this share of the latter (1%).
pub const LOSS_CHANGE: f64 = 0.01;

/// The warnings of the end-of-run guard, one sentence each (none for a
/// run that learned). It compares the model the run started from with
/// its final model, both evaluated on the training rows (raw, inference
/// mode: `first` and `last`, mean cross-entropy without the L2 term; their
/// labels are `labels`), and warns when
/// - the final accuracy is at most [`CHANCE_MARGIN`] above always
///   predicting the most frequent class of `labels`;
/// - the loss rose: the final loss is above the first by more than
///   [`LOSS_CHANGE`] of it (or is not finite): the learning rate is
///   likely too high;
/// - the loss did not fall: it moved by at most [`LOSS_CHANGE`] of the
///   first (the learning rate may be too low, or the run too short).
///
/// The first two suggest standardizing the features only when the model
/// does not (`standardized` is whether it has a standardizer).
///
/// ```
/// use vnn::session::guard;
/// use vnn::train::Evaluation;
/// let eval = |accuracy, loss| Evaluation { accuracy, loss, n: 4, confusion: vec![] };
/// let labels = [0, 0, 0, 1];
/// assert!(guard(&eval(0.5, 1.0), &eval(1.0, 0.1), &labels, false).is_empty());
/// let w = guard(&eval(0.5, 1.0), &eval(0.75, 0.9), &labels, false);
/// assert!(w.len() == 1 && w[0].contains("most frequent class") && w[0].contains("`standardize`"));
/// let w = guard(&eval(0.5, 1.0), &eval(0.75, 0.9), &labels, true);
/// assert!(w.len() == 1 && !w[0].contains("standardize"));
/// let w = guard(&eval(0.5, 1.0), &eval(1.0, 2.0), &labels, false);
/// assert!(w.len() == 1 && w[0].contains("the loss rose"));
/// let w = guard(&eval(0.5, 1.0), &eval(1.0, 0.995), &labels, true);
/// assert!(w.len() == 1 && w[0].contains("did not fall"));
/// ```
pub fn guard(
    first: &Evaluation,
    last: &Evaluation,
    labels: &[u32],
    standardized: bool,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let (scaling, unscaled) = match standardized {
        true => ("", ""),
        false => (
            " the features may need scaling (`standardize`),",
            "; unscaled features also want `standardize`",
        ),
    };
    let majority = majority_share(labels);
    if last.accuracy <= majority + CHANCE_MARGIN {
        warnings.push(format!(
            "the final model's training accuracy {:.4} is no better than always predicting the most frequent class ({majority:.4}): it learned nothing useful; the learning rate may be too low or too high (try another `lr`),{scaling} or the run may be too short (more `epochs`)",
            last.accuracy
        ));
    }
    let (from, to) = (first.loss, last.loss);
    let text = format!("from {from:.4} to {to:.4} (mean cross-entropy on the training rows)");
    let rose = to > from * (1.0 + LOSS_CHANGE) || !to.is_finite();
    if rose {
        warnings.push(format!(
            "the loss rose over the run, {text}: the learning rate is likely too high for this data (try a lower `lr`{unscaled})"
        ));
    } else if to >= from * (1.0 - LOSS_CHANGE) {
        warnings.push(format!(
            "the loss did not fall over the run, {text}: the learning rate may be too low (try a higher `lr`) or the run too short (more `epochs`)"
        ));
    }
    warnings
}

/// The share of the most frequent label (0 without labels).
fn majority_share(labels: &[u32]) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for &y in labels {
        *counts.entry(y).or_insert(0usize) += 1;
    }
    let most = counts.values().copied().max().unwrap_or(0);
    most as f64 / labels.len().max(1) as f64
}

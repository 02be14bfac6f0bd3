//! Small parts of a session: its curve points, its stop request, the new
//! model of a run and the timestamp of run folder names.

use crate::data::Dataset;
use crate::error::Result;
use crate::model::{Init, Model};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One evaluation point of a learning curve: the model after `step` steps
/// on the full data sets in inference mode (mean cross-entropy without the
/// L2 term, as [`crate::train::evaluate`] gives it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    /// Optimizer step.
    pub step: u64,
    /// Loss on the training rows.
    pub train_loss: f64,
    /// Accuracy on the training rows.
    pub train_accuracy: f64,
    /// Loss on the validation rows, when there are some.
    pub val_loss: Option<f64>,
    /// Accuracy on the validation rows, when there are some.
    pub val_accuracy: Option<f64>,
    /// Loss on the test rows, when there are some.
    pub test_loss: Option<f64>,
    /// Accuracy on the test rows, when there are some.
    pub test_accuracy: Option<f64>,
    /// The learning rate the step applied.
    pub lr: f32,
}

/// A shared stop request: set it (from a signal handler, another thread or
/// an observer) and the session stops after the current step.
#[derive(Clone, Debug, Default)]
pub struct Interrupter(Arc<AtomicBool>);

impl Interrupter {
    /// A flag that is not set.
    pub fn new() -> Interrupter {
        Interrupter::default()
    }

    /// Asks the session to stop; returns whether it had been asked before.
    pub fn interrupt(&self) -> bool {
        self.0.swap(true, Ordering::SeqCst)
    }

    /// Whether a stop was asked.
    pub fn is_interrupted(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A new model for `train`: `n_features`, the `hidden` widths (none: a
/// linear classifier), `n_classes`, initialized with `init` and `seed`, with
/// the data's feature and class names; with `standardize`, a standardizer
/// fitted on `train`. Gives the model (ReLU: choose another hidden
/// activation with [`Model::with_activation`]) and `train` as the model
/// sees it (standardized or a copy), to train on.
///
/// # Errors
/// As [`Model::new`]: a zero width, or data without features or classes.
///
/// # Example
/// ```
/// let data = vnn::data::spiral(10, 3, 0);
/// let (model, seen) = vnn::session::model_for(&data, &[8], vnn::model::Init::He, 0, true).unwrap();
/// assert_eq!(model.layout().sizes(), [2, 8, 3]);
/// assert!(model.standardizer().is_some() && seen.features() != data.features());
/// ```
pub fn model_for(
    train: &Dataset,
    hidden: &[usize],
    init: Init,
    seed: u64,
    standardize: bool,
) -> Result<(Model, Dataset)> {
    let mut sizes = vec![train.n_features];
    sizes.extend_from_slice(hidden);
    sizes.push(train.n_classes);
    let mut model = Model::new(&sizes, init, seed)?;
    model.feature_names = train.feature_names.clone();
    model.class_names = train.class_names.clone();
    let mut seen = train.clone();
    if standardize {
        let s = crate::data::Standardizer::fit(&train.features, train.n_features);
        s.apply(&mut seen.features);
        model.standardizer = Some(s);
    }
    Ok((model, seen))
}

/// UTC timestamp `YYYYmmddTHHMMSSZ` (ISO 8601, basic format) of the
/// system clock, for run folder names.
///
/// # Example
/// ```
/// let t = vnn::session::utc_timestamp();
/// assert_eq!((t.len(), &t[8..9], &t[15..]), (16, "T", "Z"));
/// ```
// Hidden from the docs: a helper of the `vnn` binary (`src/cli/train.rs`
// names run folders with it), not a user API.
#[doc(hidden)]
pub fn utc_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

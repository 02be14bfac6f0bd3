//! Small parts of a session: its curve points and its stop request.

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

//! The training loop of a [`Session`]: steps, observers and checkpoints
//! until the last step, an interruption or an observer's error.

use super::Session;
use crate::error::{Error, Result};

/// How the training loop of a [`Session`] ended.
pub(super) struct Loop {
    /// Loss of the first step of this session.
    pub(super) first_loss: f64,
    /// Loss of the last step.
    pub(super) final_loss: f64,
    /// Stopped before the last step.
    pub(super) interrupted: bool,
    /// The observer error that stopped the loop.
    pub(super) failure: Option<Error>,
}

impl Session<'_, '_> {
    /// The training loop: to the last step, to an interruption, or to an
    /// observer's error (kept in [`Loop::failure`]; the run then saves as
    /// an interrupted one does).
    pub(super) fn train(&mut self, total: u64) -> Result<Loop> {
        let mut run = Loop {
            first_loss: f64::NAN,
            final_loss: f64::NAN,
            interrupted: false,
            failure: None,
        };
        while self.trainer.steps_done() < total {
            let stats = match self.trainer.step() {
                Ok(stats) => stats,
                Err(e) => return Err(self.diverged(e)),
            };
            run.final_loss = stats.loss;
            if run.first_loss.is_nan() {
                run.first_loss = stats.loss;
            }
            let s = stats.step;
            if let Err(e) = self.observe(&stats, total) {
                (run.interrupted, run.failure) = (s < total, Some(e));
                break;
            }
            if self.checkpoints.every.is_some_and(|n| s % n == 0) {
                self.checkpoints.write(&self.trainer, &self.curve)?;
            }
            if self.interrupter.is_interrupted() && s < total {
                run.interrupted = true;
                break;
            }
        }
        Ok(run)
    }
}

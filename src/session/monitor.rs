//! What a session watches at its evaluation points: early stopping (the
//! best weights and the evaluations since they were found) and the plateau
//! schedule (its reductions). The state goes into checkpoints (the
//! metadata entry [`MONITOR_KEY`] and the tensor
//! [`crate::checkpoint::TENSOR_BEST_PARAMS`]), so a resumed run decides as
//! the run left alone would.

use crate::error::{Error, Result};
use crate::train::LrSchedule;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The checkpoint metadata entry holding the monitor's state (JSON).
pub const MONITOR_KEY: &str = "monitor";

/// Early stopping: stop when the watched loss (the validation loss, or the
/// full training loss without validation data) has not improved for
/// `patience` evaluations, and end with the best weights. An evaluation
/// improves when its loss is below `best - min_delta`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStopping {
    /// Evaluations without improvement before the run stops (at least 1).
    pub patience: u64,
    /// How much lower than the best a loss must be to count (`>= 0`).
    pub min_delta: f64,
}

impl Default for EarlyStopping {
    /// Patience 10, min_delta 1e-4.
    fn default() -> Self {
        EarlyStopping {
            patience: 10,
            min_delta: 1e-4,
        }
    }
}

/// The best watched loss so far (as its bits, so that it survives a
/// checkpoint exactly), its step, and the evaluations since.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Watch {
    best_bits: u64,
    pub(super) best_step: u64,
    wait: u64,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            best_bits: f64::INFINITY.to_bits(),
            best_step: 0,
            wait: 0,
        }
    }
}

impl Watch {
    pub(super) fn best(&self) -> f64 {
        f64::from_bits(self.best_bits)
    }

    /// Records the evaluation of `step`; returns whether it improved.
    fn update(&mut self, step: u64, loss: f64, min_delta: f64) -> bool {
        if loss < self.best() - min_delta {
            (self.best_bits, self.best_step, self.wait) = (loss.to_bits(), step, 0);
            true
        } else {
            self.wait += 1;
            false
        }
    }
}

/// The monitor's state as a checkpoint records it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct State {
    /// Early stopping's watch.
    pub(super) early: Option<Watch>,
    /// The run stopped early.
    pub(super) stopped: bool,
    /// The plateau schedule's watch and its reductions so far.
    pub(super) plateau: Option<(Watch, u32)>,
}

/// Early stopping and the plateau schedule of a session.
pub(super) struct Monitor {
    pub(super) early: Option<EarlyStopping>,
    pub(super) schedule: LrSchedule,
    pub(super) state: State,
    /// The weights of [`State::early`]'s best step.
    pub(super) best_params: Option<Vec<f32>>,
}

impl Monitor {
    pub(super) fn new(early: Option<EarlyStopping>, schedule: LrSchedule) -> Monitor {
        let state = State {
            early: early.map(|_| Watch::default()),
            stopped: false,
            plateau: matches!(schedule, LrSchedule::Plateau { .. }).then(|| (Watch::default(), 0)),
        };
        Monitor {
            early,
            schedule,
            state,
            best_params: None,
        }
    }

    /// The monitor's state from the checkpoint entry `text` (read from
    /// `path`) and its best weights; a checkpoint without the entry keeps
    /// the fresh state.
    pub(super) fn restore(
        &mut self,
        text: Option<&String>,
        best: Option<&Vec<f32>>,
        path: &Path,
    ) -> Result<()> {
        let Some(text) = text else { return Ok(()) };
        let state: State = serde_json::from_str(text).map_err(|e| Error::Model {
            path: path.to_path_buf(),
            tensor: None,
            msg: format!("metadata entry \"{MONITOR_KEY}\" is not a monitor state: {e}"),
        })?;
        if state.early.is_some() != self.early.is_some()
            || state.plateau.is_some() != self.state.plateau.is_some()
        {
            return Err(Error::Mismatch {
                checkpoint: path.to_path_buf(),
                what: "early stopping and schedule state".into(),
                expected: "the state of its settings".into(),
                got: "the state of other settings".into(),
            });
        }
        self.state = state;
        self.best_params = best.cloned();
        Ok(())
    }

    /// The state as checkpoint metadata text, when there is one to keep.
    pub(super) fn to_entry(&self) -> Option<String> {
        let keep = self.state.early.is_some() || self.state.plateau.is_some();
        keep.then(|| serde_json::to_string(&self.state).expect("plain data serializes"))
    }

    /// Plateau reductions so far.
    pub(super) fn reductions(&self) -> u32 {
        self.state.plateau.map_or(0, |p| p.1)
    }

    /// Takes the evaluation of `step` with watched loss `loss` and the
    /// current weights `params`; returns whether the run should stop.
    pub(super) fn evaluate(&mut self, step: u64, loss: f64, params: &[f32]) -> bool {
        if let (
            LrSchedule::Plateau {
                patience,
                min_delta,
                ..
            },
            Some((watch, reductions)),
        ) = (self.schedule, &mut self.state.plateau)
        {
            if !watch.update(step, loss, min_delta) && watch.wait >= patience {
                (*reductions, watch.wait) = (reductions.saturating_add(1), 0);
            }
        }
        let (Some(early), Some(watch)) = (self.early, &mut self.state.early) else {
            return false;
        };
        if watch.update(step, loss, early.min_delta) {
            let best = self.best_params.get_or_insert_with(Vec::new);
            best.clear();
            best.extend_from_slice(params);
        } else if watch.wait >= early.patience {
            self.state.stopped = true;
        }
        self.state.stopped
    }
}

/// Refuses early-stopping settings that cannot run.
pub(super) fn check(e: &EarlyStopping) -> Result<()> {
    if e.patience == 0 {
        return Err(Error::setting(
            "the early-stopping patience",
            "at least 1",
            0,
        ));
    }
    if !(e.min_delta.is_finite() && e.min_delta >= 0.0) {
        let d = e.min_delta;
        return Err(Error::setting("the early-stopping min_delta", ">= 0", d));
    }
    Ok(())
}

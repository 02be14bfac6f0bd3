//! Learning-rate schedules: the rate of each step as a pure function of the
//! step (and, for [`LrSchedule::Plateau`], of how often the watched loss
//! stalled), so that a resumed run applies the same rates.

use crate::error::{Error, Result};

/// How the learning rate changes over a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    /// The base rate at every step.
    Constant,
    /// The base rate times `gamma` every `every` epochs.
    Step {
        /// Factor per stage, in `(0, 1]`.
        gamma: f32,
        /// Epochs per stage (at least 1).
        every: u64,
    },
    /// Cosine annealing from the base rate down to `min` over the run's
    /// steps: step `t` of `T` (0-based) gets
    /// `min + (lr - min) * (1 + cos(pi * t / T)) / 2`.
    Cosine {
        /// The rate the run approaches at its end (`>= 0`, below the base rate).
        min: f32,
    },
    /// The base rate times `gamma` each time the watched loss has not
    /// improved (fallen below the best minus `min_delta`) for `patience`
    /// evaluations (see [`crate::session::SessionBuilder::lr_schedule`]).
    Plateau {
        /// Factor per reduction, in `(0, 1]`.
        gamma: f32,
        /// Evaluations without improvement before a reduction (at least 1).
        patience: u64,
        /// How much lower than the best a loss must be to count (`>= 0`).
        min_delta: f64,
    },
}

impl LrSchedule {
    /// The schedule's name (`constant`, `step`, `cosine`, `plateau`).
    pub fn name(&self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Step { .. } => "step",
            LrSchedule::Cosine { .. } => "cosine",
            LrSchedule::Plateau { .. } => "plateau",
        }
    }

    /// Checks the schedule's parameters against the base rate `lr`.
    ///
    /// # Errors
    /// [`Error::Setting`] for a `gamma` outside `(0, 1]`, zero epochs or
    /// patience, or a cosine `min` that is negative, not finite or above `lr`.
    pub fn validate(&self, lr: f32) -> Result<()> {
        let gamma_ok = |g: f32| g > 0.0 && g <= 1.0;
        match *self {
            LrSchedule::Constant => Ok(()),
            LrSchedule::Step { gamma, .. } | LrSchedule::Plateau { gamma, .. }
                if !gamma_ok(gamma) =>
            {
                Err(Error::setting("the schedule's gamma", "in (0, 1]", gamma))
            }
            LrSchedule::Step { every: 0, .. } => Err(Error::setting(
                "the schedule's epochs per stage",
                "at least 1",
                0,
            )),
            LrSchedule::Plateau { patience: 0, .. } => {
                Err(Error::setting("the schedule's patience", "at least 1", 0))
            }
            LrSchedule::Plateau { min_delta, .. }
                if !(min_delta.is_finite() && min_delta >= 0.0) =>
            {
                Err(Error::setting(
                    "the schedule's min_delta",
                    ">= 0",
                    min_delta,
                ))
            }
            LrSchedule::Cosine { min } if !(min.is_finite() && min >= 0.0 && min <= lr) => Err(
                Error::setting("the schedule's minimum rate", format!("in [0, {lr}]"), min),
            ),
            _ => Ok(()),
        }
    }

    /// The rate of the 0-based step `step` (of epoch `epoch`) in a run of
    /// `total` steps with base rate `lr`, after `reductions` plateau
    /// reductions (ignored by the other schedules).
    ///
    /// # Example
    /// ```
    /// use vnn::train::LrSchedule;
    /// let cosine = LrSchedule::Cosine { min: 0.0 };
    /// assert_eq!(cosine.lr_at(0.1, 0, 0, 100, 0), 0.1);
    /// assert!(cosine.lr_at(0.1, 99, 99, 100, 0) < 0.001);
    /// let step = LrSchedule::Step { gamma: 0.5, every: 10 };
    /// assert_eq!(step.lr_at(1.0, 25, 25, 100, 0), 0.25);
    /// let plateau = LrSchedule::Plateau { gamma: 0.1, patience: 3, min_delta: 1e-4 };
    /// assert!((plateau.lr_at(1.0, 50, 50, 100, 2) - 0.01).abs() < 1e-9);
    /// ```
    pub fn lr_at(&self, lr: f32, step: u64, epoch: u64, total: u64, reductions: u32) -> f32 {
        match *self {
            LrSchedule::Constant => lr,
            LrSchedule::Step { gamma, every } => {
                let stages = (epoch / every.max(1)).min(i32::MAX as u64) as i32;
                (lr as f64 * (gamma as f64).powi(stages)) as f32
            }
            LrSchedule::Cosine { min } => {
                let t = step as f64 / total.max(1) as f64;
                let (lr, min) = (lr as f64, min as f64);
                (min + (lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
            LrSchedule::Plateau { gamma, .. } => {
                let k = reductions.min(i32::MAX as u32) as i32;
                (lr as f64 * (gamma as f64).powi(k)) as f32
            }
        }
    }
}

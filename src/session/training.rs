//! The training loop of a [`Session`]: the schedule's rate, steps,
//! evaluation points, early stopping, observers and checkpoints until the
//! last step, an early stop, an interruption or an observer's error.

use super::{CurvePoint, Session};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::train::{evaluate, Evaluation, StepStats};

/// How the training loop of a [`Session`] ended.
pub(super) struct Loop {
    /// Loss of the first step of this session.
    pub(super) first_loss: f64,
    /// Loss of the last step.
    pub(super) final_loss: f64,
    /// Stopped before the last step.
    pub(super) interrupted: bool,
    /// Early stopping ended the run.
    pub(super) stopped_early: bool,
    /// The observer error that stopped the loop.
    pub(super) failure: Option<Error>,
}

/// Evaluates `model` on `data`; `seen` data is as the model's layers see
/// it (already standardized), so the model's standardizer is left out.
pub(super) fn evaluate_view(model: &Model, (data, seen): (&Dataset, bool)) -> Result<Evaluation> {
    if seen && model.standardizer.is_some() {
        let mut plain = model.clone();
        plain.standardizer = None;
        return evaluate(&plain, data);
    }
    evaluate(model, data)
}

impl<'d> Session<'d, '_> {
    /// The training loop: to the last step, to an early stop, to an
    /// interruption, or to an observer's error (kept in [`Loop::failure`];
    /// the run then saves as an interrupted one does).
    pub(super) fn train(&mut self, total: u64) -> Result<Loop> {
        let mut run = Loop {
            first_loss: f64::NAN,
            final_loss: f64::NAN,
            interrupted: false,
            stopped_early: false,
            failure: None,
        };
        while self.trainer.steps_done() < total {
            self.apply_lr(total)?;
            let stats = match self.trainer.step() {
                Ok(stats) => stats,
                Err(e) => return Err(self.diverged(e)),
            };
            run.final_loss = stats.loss;
            if run.first_loss.is_nan() {
                run.first_loss = stats.loss;
            }
            let s = stats.step;
            let point = match self.is_evaluation_point(s, total) {
                false => None,
                true => match self.evaluation_point(s) {
                    Ok(point) => Some(point),
                    Err(e @ Error::Diverged { .. }) => return Err(self.diverged_after_step(e)),
                    Err(e) => {
                        (run.interrupted, run.failure) = (s < total, Some(e));
                        break;
                    }
                },
            };
            match self.observe(&stats, point, total) {
                Ok(stop) => run.stopped_early = stop && s < total,
                Err(e) => {
                    (run.interrupted, run.failure) = (s < total, Some(e));
                    break;
                }
            }
            if self.checkpoints.every.is_some_and(|n| s % n == 0) {
                let (trainer, curve) = (&self.trainer, &self.curve);
                self.checkpoints.write(trainer, curve, &self.monitor)?;
            }
            if run.stopped_early {
                break;
            }
            if self.interrupter.is_interrupted() && s < total {
                run.interrupted = true;
                break;
            }
        }
        Ok(run)
    }

    /// Sets the schedule's rate for the next step.
    fn apply_lr(&mut self, total: u64) -> Result<()> {
        let t = &self.trainer;
        let (step, base) = (t.steps_done(), t.config().lr);
        let epoch = step / t.steps_per_epoch();
        let reductions = self.monitor.reductions();
        let lr = self
            .monitor
            .schedule
            .lr_at(base, step, epoch, total, reductions);
        self.trainer.set_lr(lr.max(f32::MIN_POSITIVE))
    }

    /// The training rows of the final figures: those given to
    /// [`Session::evaluate_at_end`] (raw), else the rows trained on (as the
    /// model's layers see them).
    pub(super) fn train_view(&self) -> (&'d Dataset, bool) {
        match self.eval_data {
            Some(d) => (d, false),
            None => (self.trainer.data(), true),
        }
    }

    /// Whether step `s` of a run of `total` steps is an evaluation point:
    /// every `log_every` steps, the first and the last step, and in runs
    /// with a batch size (mini-batch runs, and batches that cover the
    /// data) the end of every epoch. A function of the step and the
    /// settings only, so a resumed run evaluates where the run left alone
    /// would.
    fn is_evaluation_point(&self, s: u64, total: u64) -> bool {
        let t = &self.trainer;
        let epochs = t.config().batch_size.is_some();
        s.is_multiple_of(self.log_every)
            || s == total
            || s == 1
            || (epochs && s.is_multiple_of(t.steps_per_epoch()))
    }

    /// The evaluation of step `s`'s weights on the full training,
    /// validation and test data.
    ///
    /// # Errors
    /// [`Error::Diverged`] when an evaluation is not finite (the logits
    /// overflow, or the loss is not finite): the run diverged at step `s`.
    fn evaluation_point(&self, s: u64) -> Result<CurvePoint> {
        let model = self.trainer.model();
        let diverged = |e: Error| match e {
            Error::OutputNotFinite { .. } => Error::Diverged {
                step: s,
                loss: f64::INFINITY,
            },
            e => e,
        };
        let eval = |data: Option<&Dataset>| -> Result<Option<Evaluation>> {
            let e = data.map(|d| evaluate(model, d)).transpose();
            match e.map_err(diverged)? {
                Some(e) if !e.loss.is_finite() => Err(Error::Diverged {
                    step: s,
                    loss: e.loss,
                }),
                e => Ok(e),
            }
        };
        let train = evaluate_view(model, self.train_view()).map_err(diverged)?;
        if !train.loss.is_finite() {
            let loss = train.loss;
            return Err(Error::Diverged { step: s, loss });
        }
        let (val, test) = (eval(self.val)?, eval(self.test)?);
        Ok(CurvePoint {
            step: s,
            train_loss: train.loss,
            train_accuracy: train.accuracy,
            val_loss: val.as_ref().map(|e| e.loss),
            val_accuracy: val.as_ref().map(|e| e.accuracy),
            test_loss: test.as_ref().map(|e| e.loss),
            test_accuracy: test.as_ref().map(|e| e.accuracy),
            lr: self.trainer.lr(),
        })
    }

    /// Tells the observers and early stopping about `point`, the
    /// evaluation point of `stats`' step when it is one, and the
    /// observers about the step; returns whether the run should stop early.
    fn observe(
        &mut self,
        stats: &StepStats,
        point: Option<CurvePoint>,
        total: u64,
    ) -> Result<bool> {
        let mut stop = false;
        if let Some(point) = point {
            for o in &mut self.observers {
                o.on_log(&self.trainer, &point)?;
            }
            self.curve.push(point);
            let watched = point.val_loss.unwrap_or(point.train_loss);
            stop = self
                .monitor
                .evaluate(stats.step, watched, self.trainer.model().params());
        }
        for o in &mut self.observers {
            o.on_step(stats, total)?;
        }
        Ok(stop)
    }

    /// After a step whose weights evaluate to non-finite figures: ends the
    /// observers and gives back `e`. The current state is not a good one,
    /// so no checkpoint is written: the one on disk, if any, is the last
    /// good state (and a note says so).
    fn diverged_after_step(&mut self, e: Error) -> Error {
        for o in &mut self.observers {
            let _ = o.on_end();
        }
        if let Some(step) = self.checkpoints.last_step {
            let path = self.checkpoints.path.display();
            let note = format!("checkpoint of step {step} (the last good state): {path}");
            for o in &mut self.observers {
                let _ = o.on_note(&note);
            }
        }
        e
    }

    /// After a failed step: ends the observers and keeps the last good
    /// state in the checkpoint; gives back `e`, or the error that stopped
    /// the checkpoint.
    pub(super) fn diverged(&mut self, e: Error) -> Error {
        for o in &mut self.observers {
            let _ = o.on_end();
        }
        let done = self.trainer.steps_done();
        let cp = &mut self.checkpoints;
        if cp.every.is_none() || cp.last_step == Some(done) {
            return e;
        }
        let note = match cp.write(&self.trainer, &self.curve, &self.monitor) {
            Ok(true) => format!(
                "checkpoint of step {done} (the last good state): {}",
                cp.path.display()
            ),
            Ok(false) => Error::NotFinite {
                step: done,
                checkpoint: cp.path.clone(),
            }
            .to_string(),
            Err(write_error) => return write_error,
        };
        for o in &mut self.observers {
            let _ = o.on_note(&note);
        }
        e
    }
}

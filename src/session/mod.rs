//! Training runs: checkpoints, resuming, interruption, divergence and
//! observers around [`Trainer::step`].
//!
//! A [`Session`] trains a model in a run folder. Built by a
//! [`SessionBuilder`], it
//! - writes `checkpoint.safetensors` ([`checkpoint::FILE_NAME`]) every N
//!   optimizer steps and at the end, atomically, and never replaces a good
//!   checkpoint with non-finite weights;
//! - resumes from a checkpoint after checking it: the data fingerprint it
//!   recorded ([`fingerprint`]), the model's layout, names and
//!   standardization, the optimizer state, and that steps remain; the
//!   resumed run ends with the same weights, bit for bit, as the run left
//!   uninterrupted (the mini-batch order and masks depend on the seed and
//!   the step only);
//! - stops after the current step when its [`Interrupter`] is set (a
//!   Ctrl-C handler sets it), and then saves the model and a checkpoint;
//! - stops with [`Error::Diverged`] when a batch loss or an evaluation
//!   point's figures stop being finite, the checkpoint keeping the last
//!   good state;
//! - evaluates the model at its evaluation points (every `log_every` steps,
//!   the first and the last step, and in runs with a batch size the end
//!   of every epoch) on the full training, validation ([`Session::validation`]) and
//!   test data in inference mode, into [`CurvePoint`]s;
//! - stops early when asked ([`SessionBuilder::early_stopping`]) and then
//!   ends with the best weights, and applies a learning-rate schedule
//!   ([`SessionBuilder::lr_schedule`]); both keep their state in the
//!   checkpoints, so a resumed run still ends as the run left alone;
//! - tells its [`Observer`]s about each step and each evaluation point.
//!
//! At the end (interrupted or not) it saves the model to
//! `model.safetensors` in the run folder.
//!
//! One run at a time works in a folder: a session holds the lock file
//! [`LOCK_FILE`] of its folder from [`SessionBuilder::build`] to the end of
//! [`Session::run`], and a second session on a busy folder is refused with
//! [`Error::Busy`]. The lock ends with its process, so a killed run does
//! not block the next one.
//!
//! What fails once the model and the checkpoint are saved (an observer's
//! [`Observer::on_end`] or [`Observer::on_finish`]: the last TensorBoard
//! flush, the plots, `metrics.json`) does not fail the run: it becomes one
//! of the [`Outcome::warnings`]. An observer's error during the training
//! loop stops the run as an interruption does (model and checkpoint are
//! saved, so it can resume), and [`Session::run`] then gives that error.
//!
//! # Example: train with checkpoints, stop, resume
//! ```
//! use vnn::data::spiral;
//! use vnn::model::{Init, Model};
//! use vnn::session::{Interrupter, SessionBuilder};
//! use vnn::train::TrainConfig;
//!
//! let dir = std::env::temp_dir().join(format!("vnn-doc-session-{}", std::process::id()));
//! let data = spiral(50, 3, 0);
//! let model = || Model::new(&[2, 16, 3], Init::He, 1).unwrap();
//! let config = TrainConfig { epochs: 40, ..TrainConfig::default() };
//!
//! // Stop after the first step, as Ctrl-C would.
//! let stop = Interrupter::new();
//! stop.interrupt();
//! let first = SessionBuilder::new(model(), config.clone(), &dir)
//!     .checkpoint_every(10)
//!     .interrupter(stop)
//!     .build(&data, None)?
//!     .run()?;
//! assert!(first.interrupted && first.steps == 1);
//!
//! // Continue from the checkpoint to the end.
//! let done = SessionBuilder::new(model(), config, &dir)
//!     .resume_from(&dir.join(vnn::checkpoint::FILE_NAME))?
//!     .build(&data, None)?
//!     .run()?;
//! assert_eq!((done.steps, done.interrupted), (40, false));
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checkpoints;
mod guard;
mod lock;
mod monitor;
mod observers;
mod parts;
#[cfg(feature = "progress")]
mod progress;
mod training;

pub use checkpoints::fingerprint;
pub use guard::{guard, CHANCE_MARGIN, LOSS_CHANGE};
pub use lock::LOCK_FILE;
pub use monitor::{EarlyStopping, MONITOR_KEY};
#[cfg(feature = "plots")]
pub use observers::Plots;
#[cfg(feature = "tensorboard")]
pub use observers::TensorBoard;
pub use observers::{final_metrics, MetricsFile};
pub use parts::{model_for, utc_timestamp, CurvePoint, Interrupter};
#[cfg(feature = "progress")]
pub use progress::Progress;

use crate::checkpoint::{self, Checkpoint};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::train::{evaluate, Evaluation, LrSchedule, StepStats, TrainConfig, Trainer};
use checkpoints::CheckpointWriter;
use lock::RunLock;
use monitor::Monitor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use training::evaluate_view;

/// Sees a session's events. Every method does nothing by default; an error
/// stops the run.
pub trait Observer {
    /// Before the first step: the run is at step `start` of `total`.
    fn on_start(&mut self, _start: u64, _total: u64) -> Result<()> {
        Ok(())
    }
    /// An evaluation point (every `log_every` steps, the first and the
    /// last step, the end of every epoch in runs with a batch size), before
    /// [`Observer::on_step`] of the same step.
    fn on_log(&mut self, _trainer: &Trainer<'_>, _point: &CurvePoint) -> Result<()> {
        Ok(())
    }
    /// Each optimizer step of a run of `total` steps.
    fn on_step(&mut self, _stats: &StepStats, _total: u64) -> Result<()> {
        Ok(())
    }
    /// The training loop ended (completed, interrupted or diverged), before
    /// the last checkpoint is written.
    fn on_end(&mut self) -> Result<()> {
        Ok(())
    }
    /// A line for the user (which checkpoint a diverged run kept).
    fn on_note(&mut self, _text: &str) -> Result<()> {
        Ok(())
    }
    /// The run completed (not interrupted): the model is saved and the
    /// final evaluations are in `outcome`.
    fn on_finish(&mut self, _outcome: &Outcome) -> Result<()> {
        Ok(())
    }
}

/// What a finished (or interrupted) run gives back.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The trained model (also saved to [`Outcome::model_path`]).
    pub model: Model,
    /// The log points of the whole run (resumed runs included).
    pub curve: Vec<CurvePoint>,
    /// Optimizer steps done of the whole run.
    pub steps: u64,
    /// Steps of the whole run.
    pub total: u64,
    /// Stopped by the [`Interrupter`] before the end.
    pub interrupted: bool,
    /// The last step's batch objective: the mean cross-entropy of its
    /// batch plus the L2 term, before its update (the final model's figures
    /// are [`Outcome::train_eval`] and the others).
    pub final_loss: f64,
    /// Loss of the first step of this session.
    pub first_loss: f64,
    /// Seconds the training loop took.
    pub seconds: f64,
    /// Threads of the rayon pool the run used.
    pub threads: usize,
    /// `model.safetensors` in the run folder.
    pub model_path: PathBuf,
    /// `checkpoint.safetensors` in the run folder.
    pub checkpoint_path: PathBuf,
    /// The run folder.
    pub dir: PathBuf,
    /// The run's epochs (planned).
    pub epochs: u64,
    /// The epochs started, `ceil(steps / steps_per_epoch)` (fewer than
    /// [`Outcome::epochs`] after an early stop or an interruption).
    pub epochs_run: u64,
    /// The final model on the full training rows (those given to
    /// [`Session::evaluate_at_end`], else the rows trained on), in inference
    /// mode (completed runs only).
    pub train_eval: Option<Evaluation>,
    /// The final model on the validation data (completed runs only).
    pub val_eval: Option<Evaluation>,
    /// The final model on the test data (completed runs only).
    pub test_eval: Option<Evaluation>,
    /// Early stopping ended the run before its last step.
    pub stopped_early: bool,
    /// With early stopping: the step of the best evaluation (whose weights
    /// the final model has), and its watched loss.
    pub best: Option<(u64, f64)>,
    /// Whether early stopping watched the validation loss (else the
    /// training loss).
    pub watched_val: bool,
    /// What failed after the model and the checkpoint were saved (the
    /// observers' `on_end` and `on_finish`), and the end-of-run [`guard`]'s
    /// warnings (completed runs evaluated with
    /// [`Session::evaluate_at_end`]), one sentence each.
    pub warnings: Vec<String>,
}

impl Outcome {
    /// The run's results as JSON: the final model's `train_loss`,
    /// `train_accuracy`, `val_loss`, `val_accuracy`, `test_loss` and
    /// `test_accuracy` (null without such data), `final_loss` (the last
    /// step's batch objective), `stopped_early`, with early stopping
    /// `best_step` and `best_val_loss` (or `best_train_loss` without
    /// validation data), `epochs` (planned), `epochs_run` (started, see
    /// [`Outcome::epochs_run`]), `steps`, `seconds`, `out` (the run
    /// folder) and `warnings` (the [`Outcome::warnings`], an empty list
    /// when none).
    pub fn summary(&self) -> serde_json::Value {
        let (loss, accuracy) = (
            |e: &Option<Evaluation>| e.as_ref().map(|e| e.loss),
            |e: &Option<Evaluation>| e.as_ref().map(|e| e.accuracy),
        );
        let mut j = serde_json::json!({
            "train_loss": loss(&self.train_eval),
            "train_accuracy": accuracy(&self.train_eval),
            "val_loss": loss(&self.val_eval),
            "val_accuracy": accuracy(&self.val_eval),
            "test_loss": loss(&self.test_eval),
            "test_accuracy": accuracy(&self.test_eval),
            "final_loss": self.final_loss,
            "stopped_early": self.stopped_early,
            "epochs": self.epochs,
            "epochs_run": self.epochs_run,
            "steps": self.steps,
            "seconds": self.seconds,
            "out": self.dir.display().to_string(),
            "warnings": self.warnings,
        });
        if let Some((step, best)) = self.best {
            let key = if self.watched_val {
                "best_val_loss"
            } else {
                "best_train_loss"
            };
            j["best_step"] = step.into();
            j[key] = best.into();
        }
        j
    }
}

/// Builds a [`Session`].
pub struct SessionBuilder<'o> {
    model: Model,
    config: TrainConfig,
    dir: PathBuf,
    checkpoint_every: Option<u64>,
    log_every: u64,
    settings: String,
    extra: BTreeMap<String, String>,
    data: Option<(String, String)>,
    val_data: Option<(String, String)>,
    resume: Option<(Checkpoint, PathBuf)>,
    interrupter: Interrupter,
    observers: Vec<Box<dyn Observer + Send + 'o>>,
    class_weight: Option<Vec<f32>>,
    early: Option<EarlyStopping>,
    schedule: LrSchedule,
}

impl<'o> SessionBuilder<'o> {
    /// A run of `model` with `config` in the run folder `dir` (created when
    /// the session is built), logging every 100 steps, checkpointing only
    /// when interrupted.
    pub fn new(model: Model, config: TrainConfig, dir: impl Into<PathBuf>) -> SessionBuilder<'o> {
        let mut extra = BTreeMap::new();
        extra.insert(
            "vnn_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        );
        SessionBuilder {
            model,
            config,
            dir: dir.into(),
            checkpoint_every: None,
            log_every: 100,
            settings: "{}".into(),
            extra,
            data: None,
            val_data: None,
            resume: None,
            interrupter: Interrupter::new(),
            observers: Vec::new(),
            class_weight: None,
            early: None,
            schedule: LrSchedule::Constant,
        }
    }

    /// Scales each training row's loss by the weight of its class
    /// ([`Trainer::with_class_weights`]; `None`: unweighted). A resumed
    /// run must be given the same weights to continue bit for bit.
    pub fn class_weights(mut self, class_weight: Option<Vec<f32>>) -> Self {
        self.class_weight = class_weight;
        self
    }

    /// Stops the run when the watched loss stalls (see [`EarlyStopping`]),
    /// and ends it, stopped or not, with the weights of its best
    /// evaluation (saved as the model; checkpoints keep the current ones
    /// too, to resume).
    pub fn early_stopping(mut self, early: EarlyStopping) -> Self {
        self.early = Some(early);
        self
    }

    /// The learning-rate schedule over the configuration's rate (default
    /// [`LrSchedule::Constant`]). [`LrSchedule::Plateau`] watches the loss
    /// early stopping watches (validation, else training).
    pub fn lr_schedule(mut self, schedule: LrSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Writes a checkpoint every `n` optimizer steps and at the end.
    pub fn checkpoint_every(mut self, n: u64) -> Self {
        self.checkpoint_every = Some(n);
        self
    }

    /// Makes a log point every `n` optimizer steps (and at the first and
    /// the last step).
    pub fn log_every(mut self, n: u64) -> Self {
        self.log_every = n;
        self
    }

    /// The run's settings as JSON object text, recorded in checkpoints.
    pub fn settings(mut self, json: impl Into<String>) -> Self {
        self.settings = json.into();
        self
    }

    /// A metadata entry of the model file and the checkpoints.
    pub fn extra(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// Records the [`fingerprint`] of `data` (named `name` in errors) in
    /// checkpoints; a resumed run refuses a checkpoint of other data.
    pub fn data_fingerprint(mut self, name: impl Into<String>, data: &Dataset) -> Self {
        self.data = Some((name.into(), fingerprint(data)));
        self
    }

    /// Records the [`fingerprint`] of the validation rows `data` (named
    /// `name` in errors) in checkpoints, as [`SessionBuilder::data_fingerprint`]
    /// does for the data.
    pub fn val_fingerprint(mut self, name: impl Into<String>, data: &Dataset) -> Self {
        self.val_data = Some((name.into(), fingerprint(data)));
        self
    }

    /// Continues the run of `ckpt`, read from `path`.
    pub fn resume(mut self, ckpt: Checkpoint, path: impl Into<PathBuf>) -> Self {
        self.resume = Some((ckpt, path.into()));
        self
    }

    /// Continues the run of the checkpoint file at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Model`] when the file is not a checkpoint.
    pub fn resume_from(self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let ckpt = Checkpoint::load(path)?;
        Ok(self.resume(ckpt, path))
    }

    /// Stops the run after the step during which `interrupter` is set.
    pub fn interrupter(mut self, interrupter: Interrupter) -> Self {
        self.interrupter = interrupter;
        self
    }

    /// Adds an observer (observers are `Send`, so that a builder can move
    /// into a thread pool).
    pub fn observer(mut self, observer: impl Observer + Send + 'o) -> Self {
        self.observers.push(Box::new(observer));
        self
    }

    /// The session training on `train` (already standardized as the model
    /// expects), measuring test accuracy on `test` (raw) at log points.
    ///
    /// # Errors
    /// [`Error::Setting`] for invalid settings; [`Error::Mismatch`],
    /// [`Error::DataChanged`] or
    /// [`Error::RunEnded`] when the checkpoint to resume from does not
    /// belong to this run or has no steps left; [`Error::Io`] when the run
    /// folder cannot be created; [`Error::Busy`] when another run holds the
    /// folder's lock.
    pub fn build<'d>(
        self,
        train: &'d Dataset,
        test: Option<&'d Dataset>,
    ) -> Result<Session<'d, 'o>> {
        if self.log_every == 0 || self.checkpoint_every == Some(0) {
            return Err(Error::setting(
                "the log and checkpoint intervals",
                "at least 1",
                0,
            ));
        }
        self.schedule.validate(self.config.lr)?;
        if let Some(e) = self.early {
            monitor::check(&e)?;
        }
        let mut model = self.model;
        let mut curve = Vec::new();
        let mut restore = None;
        let mut monitor = Monitor::new(self.early, self.schedule);
        if let Some((ckpt, path)) = &self.resume {
            checkpoints::check_resume(ckpt, path, &model, self.data.as_ref())?;
            let val = self.val_data.as_ref();
            checkpoints::check_fingerprint(ckpt, path, "val_fingerprint", val)?;
            model = ckpt.model.clone();
            curve = checkpoints::curve_of(ckpt, path)?;
            restore = Some((ckpt.step, ckpt.optimizer.clone(), path));
            let (text, best) = (ckpt.extra.get(MONITOR_KEY), ckpt.best_params.as_ref());
            monitor.restore(text, best, path)?;
            if monitor.state.stopped {
                let best_step = monitor.state.early.map_or(0, |w| w.best_step);
                let step = ckpt.step;
                return Err(Error::StoppedEarly { step, best_step });
            }
        }
        let mut trainer = Trainer::new(model, train, self.config)?;
        if let Some(w) = self.class_weight {
            trainer = trainer.with_class_weights(w)?;
        }
        if let Some((step, state, path)) = restore {
            let optimizer = trainer.config().optimizer.name();
            trainer.restore(step, state).map_err(|e| Error::Mismatch {
                checkpoint: path.clone(),
                what: "optimizer state".into(),
                expected: format!("the {optimizer} optimizer of its settings"),
                got: e.to_string(),
            })?;
        }
        let (start, total) = (trainer.steps_done(), trainer.total_steps());
        if start >= total {
            let epochs = trainer.config().epochs;
            return Err(Error::RunEnded {
                step: start,
                total,
                epochs,
            });
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| Error::Io {
            path: self.dir.clone(),
            source,
        })?;
        let lock = RunLock::acquire(&self.dir)?;
        let mut ckpt_extra = self.extra.clone();
        if let Some((_, f)) = self.data {
            ckpt_extra.insert("data_fingerprint".into(), f);
        }
        if let Some((_, f)) = self.val_data {
            ckpt_extra.insert("val_fingerprint".into(), f);
        }
        Ok(Session {
            trainer,
            test,
            val: None,
            monitor,
            checkpoints: CheckpointWriter {
                path: self.dir.join(checkpoint::FILE_NAME),
                every: self.checkpoint_every,
                settings: self.settings,
                extra: ckpt_extra,
                last_step: None,
            },
            model_path: self.dir.join("model.safetensors"),
            dir: self.dir,
            eval_data: None,
            extra: self.extra,
            log_every: self.log_every,
            curve,
            interrupter: self.interrupter,
            observers: self.observers,
            _lock: lock,
        })
    }
}

/// A training run ready to go; see the [module docs](self).
pub struct Session<'d, 'o> {
    trainer: Trainer<'d>,
    test: Option<&'d Dataset>,
    /// The validation data (raw).
    val: Option<&'d Dataset>,
    /// Early stopping and the schedule's state.
    monitor: Monitor,
    /// The data of [`Outcome::train_eval`].
    eval_data: Option<&'d Dataset>,
    dir: PathBuf,
    checkpoints: CheckpointWriter,
    model_path: PathBuf,
    extra: BTreeMap<String, String>,
    log_every: u64,
    curve: Vec<CurvePoint>,
    interrupter: Interrupter,
    observers: Vec<Box<dyn Observer + Send + 'o>>,
    /// The run folder's lock, held to the end of the run.
    _lock: RunLock,
}

impl<'d> Session<'d, '_> {
    /// Evaluates the final model of a completed run on `data` (raw, as the
    /// model's inputs) into [`Outcome::train_eval`].
    pub fn evaluate_at_end(mut self, data: &'d Dataset) -> Self {
        self.eval_data = Some(data);
        self
    }

    /// Evaluates the model on the validation rows `data` (raw, as the
    /// model's inputs) at every evaluation point and at the end; early
    /// stopping and the plateau schedule then watch its loss.
    pub fn validation(mut self, data: &'d Dataset) -> Self {
        self.val = Some(data);
        self
    }

    /// The step the run starts at (0, or the checkpoint's step).
    pub fn start_step(&self) -> u64 {
        self.trainer.steps_done()
    }

    /// Steps of the whole run.
    pub fn total_steps(&self) -> u64 {
        self.trainer.total_steps()
    }

    /// Trains to the end or until interrupted, then saves the model (and
    /// the checkpoint, when checkpointing or interrupted).
    ///
    /// # Errors
    /// [`Error::Diverged`] when a loss or an evaluation is not finite (the
    /// checkpoint keeps the last good state); [`Error::NotFinite`] when the final weights are not
    /// finite; an observer's error during the loop (after the model and
    /// the checkpoint are saved); [`Error::Io`] on writes. Errors of
    /// [`Observer::on_end`] and [`Observer::on_finish`] are
    /// [`Outcome::warnings`] instead.
    pub fn run(mut self) -> Result<Outcome> {
        let (start, total) = (self.start_step(), self.total_steps());
        for o in &mut self.observers {
            o.on_start(start, total)?;
        }
        // The model the run starts from, for the end-of-run guard.
        let first = self.eval_data.map(|d| evaluate(self.trainer.model(), d));
        let first = first.transpose()?;
        let started = Instant::now();
        let run = self.train(total)?;
        let mut warnings = Vec::new();
        for o in &mut self.observers {
            if let Err(e) = o.on_end() {
                warnings.push(e.to_string());
            }
        }
        let done = self.trainer.steps_done();
        let cp = &mut self.checkpoints;
        let write = run.interrupted || cp.every.is_some();
        if write
            && cp.last_step != Some(done)
            && !cp.write(&self.trainer, &self.curve, &self.monitor)?
        {
            return Err(Error::NotFinite {
                step: done,
                checkpoint: cp.path.clone(),
            });
        }
        let seconds = started.elapsed().as_secs_f64();
        let epochs = self.trainer.config().epochs;
        let epochs_run = done.div_ceil(self.trainer.steps_per_epoch());
        let train_view = self.train_view();
        let mut model = self.trainer.into_model();
        let best = self.monitor.state.early.map(|w| (w.best_step, w.best()));
        if let (false, Some(params)) = (run.interrupted, self.monitor.best_params.take()) {
            model.set_params(params);
        }
        crate::modelfile::save_with(&model, &self.extra, &self.model_path)?;
        if let Some(e) = run.failure {
            return Err(e);
        }
        let (train_eval, val_eval, test_eval) = match run.interrupted {
            true => (None, None, None),
            false => (
                Some(evaluate_view(&model, train_view)?),
                self.val.map(|d| evaluate(&model, d)).transpose()?,
                self.test.map(|d| evaluate(&model, d)).transpose()?,
            ),
        };
        if let (Some(first), Some(last), Some(data)) = (&first, &train_eval, self.eval_data) {
            let standardized = model.standardizer().is_some();
            warnings.extend(guard(first, last, &data.labels, standardized));
        }
        let mut outcome = Outcome {
            model,
            curve: self.curve,
            steps: done,
            total,
            interrupted: run.interrupted,
            final_loss: run.final_loss,
            first_loss: run.first_loss,
            seconds,
            threads: rayon::current_num_threads(),
            model_path: self.model_path,
            checkpoint_path: self.checkpoints.path,
            dir: self.dir,
            epochs,
            epochs_run,
            train_eval,
            val_eval,
            test_eval,
            stopped_early: run.stopped_early,
            best,
            watched_val: self.val.is_some(),
            warnings,
        };
        if !run.interrupted {
            for o in &mut self.observers {
                if let Err(e) = o.on_finish(&outcome) {
                    outcome.warnings.push(e.to_string());
                }
            }
        }
        Ok(outcome)
    }
}

//! Observers the library provides.

use super::{Observer, Outcome};
use crate::error::{Error, Result};
use crate::fsutil;
use serde_json::json;
#[cfg(feature = "tensorboard")]
use {
    super::CurvePoint, crate::tensorboard::EventWriter, crate::train::Trainer, std::path::PathBuf,
};
#[cfg(feature = "plots")]
use {crate::data::Dataset, crate::plot};

#[cfg(feature = "tensorboard")]
/// Writes a TensorBoard event file into a folder: at each evaluation point
/// the scalars `loss/train`, `accuracy/train`, `loss/val`, `accuracy/val`
/// (with validation data), `loss/test`, `accuracy/test` (with a test set)
/// and `lr` (the rate the step applied), and the histograms
/// `weights/layers.{i}` and `biases/layers.{i}` of every layer. The file
/// is created when the run starts. When the run completes it writes the
/// final metrics ([`final_metrics`]: `final/train_loss`,
/// `final/train_accuracy`, `final/val_loss`, `final/val_accuracy`,
/// `final/test_loss`, `final/test_accuracy`, those the outcome has) and, given [`TensorBoard::hparams`], the run's
/// hyper-parameters as a session of the HParams dashboard
/// ([`EventWriter::add_hparams_session`]; TensorBoard makes the experiment
/// from all the sessions of its log folder, with the scalars, the final
/// metrics among them, as their metrics).
pub struct TensorBoard {
    dir: PathBuf,
    writer: Option<EventWriter>,
    hparams: Option<serde_json::Value>,
    start_time_secs: f64,
}

#[cfg(feature = "tensorboard")]
impl TensorBoard {
    /// An observer writing into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> TensorBoard {
        TensorBoard {
            dir: dir.into(),
            writer: None,
            hparams: None,
            start_time_secs: 0.0,
        }
    }

    /// Records `settings` (a JSON object, such as
    /// [`crate::settings::RunSettings::metrics_json`] gives: strings,
    /// numbers and booleans; nulls are left out, arrays written as their
    /// JSON text) as the run's hparams when it completes.
    pub fn hparams(mut self, settings: serde_json::Value) -> TensorBoard {
        self.hparams = Some(settings);
        self
    }
}

/// The final metrics of a completed run as (TensorBoard tag, value):
/// `final/train_loss` and `final/train_accuracy` from
/// [`Outcome::train_eval`], `final/val_loss` and `final/val_accuracy` from
/// [`Outcome::val_eval`], `final/test_loss` and `final/test_accuracy`
/// from [`Outcome::test_eval`], those present.
pub fn final_metrics(outcome: &Outcome) -> Vec<(String, f64)> {
    let sets = [
        ("train", &outcome.train_eval),
        ("val", &outcome.val_eval),
        ("test", &outcome.test_eval),
    ];
    let mut metrics = Vec::new();
    for (set, eval) in sets {
        if let Some(e) = eval {
            metrics.push((format!("final/{set}_loss"), e.loss));
            metrics.push((format!("final/{set}_accuracy"), e.accuracy));
        }
    }
    metrics
}

#[cfg(feature = "tensorboard")]
impl Observer for TensorBoard {
    fn on_start(&mut self, _start: u64, _total: u64) -> Result<()> {
        self.writer = Some(EventWriter::create(&self.dir)?);
        self.start_time_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Ok(())
    }

    fn on_log(&mut self, trainer: &Trainer<'_>, point: &CurvePoint) -> Result<()> {
        let Some(events) = &mut self.writer else {
            return Ok(());
        };
        let step = point.step as i64;
        let scalars = [
            ("loss/train", Some(point.train_loss)),
            ("accuracy/train", Some(point.train_accuracy)),
            ("loss/val", point.val_loss),
            ("accuracy/val", point.val_accuracy),
            ("loss/test", point.test_loss),
            ("accuracy/test", point.test_accuracy),
            ("lr", Some(f64::from(point.lr))),
        ];
        for (tag, value) in scalars {
            if let Some(v) = value {
                events.add_scalar(tag, step, v as f32)?;
            }
        }
        let model = trainer.model();
        for (i, slot) in model.layout.layers.iter().enumerate() {
            let weights = &model.params()[slot.weight_range()];
            events.add_histogram(&format!("weights/layers.{i}"), step, weights)?;
            let biases = &model.params()[slot.bias_range()];
            events.add_histogram(&format!("biases/layers.{i}"), step, biases)?;
        }
        events.flush()
    }

    fn on_end(&mut self) -> Result<()> {
        match &mut self.writer {
            Some(events) => events.flush(),
            None => Ok(()),
        }
    }

    fn on_finish(&mut self, outcome: &Outcome) -> Result<()> {
        let Some(events) = &mut self.writer else {
            return Ok(());
        };
        let step = outcome.steps as i64;
        let metrics = final_metrics(outcome);
        for (tag, value) in &metrics {
            events.add_scalar(tag, step, *value as f32)?;
        }
        if let Some(hparams) = &self.hparams {
            events.add_hparams_session(step, hparams, self.start_time_secs)?;
        }
        events.flush()
    }
}

#[cfg(feature = "plots")]
/// Draws `curves.png` (the learning curves) into the run folder of a
/// completed run, and `boundary.png` (the decision regions over the
/// points) when given 2-D data.
pub struct Plots {
    title: String,
    points: Option<Dataset>,
}

#[cfg(feature = "plots")]
impl Plots {
    /// Plots titled `title`; `points` (all rows, raw) for the boundary
    /// picture, drawn only when they have 2 features.
    pub fn new(title: impl Into<String>, points: Option<Dataset>) -> Plots {
        Plots {
            title: title.into(),
            points: points.filter(|d| d.n_features == 2),
        }
    }
}

#[cfg(feature = "plots")]
impl Observer for Plots {
    fn on_finish(&mut self, outcome: &Outcome) -> Result<()> {
        let curves = outcome.dir.join("curves.png");
        plot::plot_curves(&curves, &self.title, &outcome.curve)?;
        if let Some(points) = &self.points {
            let title = format!("Decision boundary: {}", self.title);
            let path = outcome.dir.join("boundary.png");
            plot::plot_boundary(&path, &title, &outcome.model, points)?;
        }
        Ok(())
    }
}

/// Writes `metrics.json` into the run folder of a completed run: the
/// [`Outcome::summary`] (under `summary`, the one place of the final
/// numbers), the given `config` object and the `curve` points (`step`, `train_loss`,
/// `train_accuracy`, `val_loss`, `val_accuracy`, `test_loss`,
/// `test_accuracy`, `lr`).
pub struct MetricsFile {
    config: serde_json::Value,
}

impl MetricsFile {
    /// A metrics file recording `config` (the run's settings as the writer
    /// names them).
    pub fn new(config: serde_json::Value) -> MetricsFile {
        MetricsFile { config }
    }
}

impl Observer for MetricsFile {
    fn on_finish(&mut self, outcome: &Outcome) -> Result<()> {
        let curve: Vec<_> = outcome
            .curve
            .iter()
            .map(|p| {
                json!({"step": p.step, "train_loss": p.train_loss, "train_accuracy": p.train_accuracy,
                    "val_loss": p.val_loss, "val_accuracy": p.val_accuracy, "test_loss": p.test_loss,
                    "test_accuracy": p.test_accuracy, "lr": f64::from(p.lr)})
            })
            .collect();
        let metrics = json!({
            "summary": outcome.summary(),
            "config": self.config,
            "curve": curve,
        });
        let path = outcome.dir.join("metrics.json");
        let text = serde_json::to_string_pretty(&metrics).map_err(|e| Error::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        fsutil::write_atomic(&path, text.as_bytes())
    }
}

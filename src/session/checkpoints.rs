//! The session's checkpoint file: writing it, and checking a checkpoint
//! before a run resumes from it.

use super::monitor::{Monitor, MONITOR_KEY};
use super::CurvePoint;
use crate::checkpoint::Checkpoint;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::train::Trainer;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Rows, features, classes and a CRC-32C of `data`'s features and labels:
/// a resumed run checks that it trains on the data its checkpoint was
/// written from.
///
/// # Example
/// ```
/// let a = vnn::data::spiral(10, 3, 0);
/// let b = vnn::data::spiral(10, 3, 1);
/// let fa = vnn::session::fingerprint(&a);
/// assert!(fa.starts_with("30 rows x 2 features, 3 classes, crc32c "));
/// assert_ne!(fa, vnn::session::fingerprint(&b));
/// ```
pub fn fingerprint(data: &Dataset) -> String {
    let mut crc = 0u32;
    let mut buf = Vec::with_capacity(16 * 1024);
    for chunk in data.features.chunks(4096) {
        buf.clear();
        buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
        crc = crate::crc::crc32c_append(crc, &buf);
    }
    for chunk in data.labels.chunks(4096) {
        buf.clear();
        buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
        crc = crate::crc::crc32c_append(crc, &buf);
    }
    format!(
        "{} rows x {} features, {} classes, crc32c {crc:08x}",
        data.n_rows(),
        data.n_features,
        data.n_classes
    )
}

/// A curve point as a checkpoint's `curve` entry holds it: `(step,
/// train_loss, train_accuracy, val_loss, val_accuracy, test_loss,
/// test_accuracy, lr)`.
type Stored = (
    u64,
    f64,
    f64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    f32,
);

/// The `curve` entry of a checkpoint: today's points, or those of older
/// checkpoints, `(step, batch loss, batch accuracy, test accuracy)`.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum StoredCurve {
    Points(Vec<Stored>),
    Old(Vec<(u64, f64, f64, Option<f64>)>),
}

/// The checkpoint's learning-curve points (the `curve` entry) up to its
/// step. Points of older checkpoints keep their batch loss and accuracy as
/// the training figures, with no rate (NaN).
pub(super) fn curve_of(ckpt: &Checkpoint, path: &Path) -> Result<Vec<CurvePoint>> {
    let Some(text) = ckpt.extra.get("curve") else {
        return Ok(Vec::new());
    };
    let stored: StoredCurve = serde_json::from_str(text).map_err(|e| Error::Model {
        path: path.to_path_buf(),
        tensor: None,
        msg: format!("metadata entry \"curve\" is not a list of curve points: {e}"),
    })?;
    let points = match stored {
        StoredCurve::Points(p) => p,
        StoredCurve::Old(p) => p
            .into_iter()
            .map(|(s, loss, acc, test)| (s, loss, acc, None, None, None, test, f32::NAN))
            .collect(),
    };
    Ok(points
        .into_iter()
        .filter(|p| p.0 <= ckpt.step)
        .map(|p| CurvePoint {
            step: p.0,
            train_loss: p.1,
            train_accuracy: p.2,
            val_loss: p.3,
            val_accuracy: p.4,
            test_loss: p.5,
            test_accuracy: p.6,
            lr: p.7,
        })
        .collect())
}

/// Checks that the fingerprint the checkpoint at `path` recorded in the
/// metadata entry `key`, if any, is that of `data` (named, fingerprint).
pub(super) fn check_fingerprint(
    ckpt: &Checkpoint,
    path: &Path,
    key: &str,
    data: Option<&(String, String)>,
) -> Result<()> {
    if let (Some(recorded), Some((name, now))) = (ckpt.extra.get(key), data) {
        if recorded != now {
            return Err(Error::DataChanged {
                data: name.clone(),
                checkpoint: path.to_path_buf(),
                expected: recorded.clone(),
                got: now.clone(),
            });
        }
    }
    Ok(())
}

/// Checks that the checkpoint at `path` was written from the data of
/// `fingerprint` (named `data_name`) and for a model laid out as `model`.
pub(super) fn check_resume(
    ckpt: &Checkpoint,
    path: &Path,
    model: &Model,
    data: Option<&(String, String)>,
) -> Result<()> {
    check_fingerprint(ckpt, path, "data_fingerprint", data)?;
    let c = &ckpt.model;
    if c.layout != model.layout
        || c.feature_names != model.feature_names
        || c.class_names != model.class_names
        || c.standardizer != model.standardizer
        || c.activation != model.activation
    {
        return Err(Error::Mismatch {
            checkpoint: path.to_path_buf(),
            what: "model".into(),
            expected: "its recorded settings".into(),
            got: "layer sizes, feature or class names, standardization or activation differ".into(),
        });
    }
    Ok(())
}

/// Writes the run's checkpoint file.
pub(super) struct CheckpointWriter {
    pub(super) path: PathBuf,
    /// Write every this many steps (and at the end); `None`: only when
    /// interrupted.
    pub(super) every: Option<u64>,
    /// The recorded settings (JSON object text).
    pub(super) settings: String,
    /// Metadata entries besides the settings and the curve.
    pub(super) extra: BTreeMap<String, String>,
    /// The step of the last checkpoint written.
    pub(super) last_step: Option<u64>,
}

impl CheckpointWriter {
    /// Writes the trainer's state unless it holds a non-finite value (a
    /// good checkpoint is never replaced by a broken one); returns whether
    /// it wrote.
    pub(super) fn write(
        &mut self,
        trainer: &Trainer,
        curve: &[CurvePoint],
        monitor: &Monitor,
    ) -> Result<bool> {
        let mut extra = self.extra.clone();
        let points: Vec<Stored> = curve
            .iter()
            .map(|p| {
                let (val, test) = ((p.val_loss, p.val_accuracy), (p.test_loss, p.test_accuracy));
                let (s, l, a) = (p.step, p.train_loss, p.train_accuracy);
                (s, l, a, val.0, val.1, test.0, test.1, p.lr)
            })
            .collect();
        let text = serde_json::to_string(&points).map_err(|e| Error::Io {
            path: self.path.clone(),
            source: e.into(),
        })?;
        extra.insert("curve".to_string(), text);
        if let Some(state) = monitor.to_entry() {
            extra.insert(MONITOR_KEY.to_string(), state);
        }
        let ckpt = Checkpoint {
            step: trainer.steps_done(),
            model: trainer.model().clone(),
            optimizer: trainer.optimizer_state().clone(),
            settings: self.settings.clone(),
            extra,
            best_params: monitor.best_params.clone(),
        };
        if !ckpt.is_finite() {
            return Ok(false);
        }
        ckpt.save(&self.path)?;
        self.last_step = Some(ckpt.step);
        Ok(true)
    }
}

//! The session's checkpoint file: writing it, and checking a checkpoint
//! before a run resumes from it.

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

/// The checkpoint's learning-curve points (the `curve` entry) up to its
/// step.
pub(super) fn curve_of(ckpt: &Checkpoint, path: &Path) -> Result<Vec<CurvePoint>> {
    let Some(text) = ckpt.extra.get("curve") else {
        return Ok(Vec::new());
    };
    let points: Vec<(u64, f64, f64, Option<f64>)> =
        serde_json::from_str(text).map_err(|e| Error::Model {
            path: path.to_path_buf(),
            tensor: None,
            msg: format!("metadata entry \"curve\" is not a list of curve points: {e}"),
        })?;
    Ok(points
        .into_iter()
        .filter(|p| p.0 <= ckpt.step)
        .map(|(step, loss, train_accuracy, test_accuracy)| CurvePoint {
            step,
            loss,
            train_accuracy,
            test_accuracy,
        })
        .collect())
}

/// Checks that the checkpoint at `path` was written from the data of
/// `fingerprint` (named `data_name`) and for a model laid out as `model`.
pub(super) fn check_resume(
    ckpt: &Checkpoint,
    path: &Path,
    model: &Model,
    data: Option<&(String, String)>,
) -> Result<()> {
    if let (Some(recorded), Some((name, now))) = (ckpt.extra.get("data_fingerprint"), data) {
        if recorded != now {
            return Err(Error::DataChanged {
                data: name.clone(),
                checkpoint: path.to_path_buf(),
                expected: recorded.clone(),
                got: now.clone(),
            });
        }
    }
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
    pub(super) fn write(&mut self, trainer: &Trainer, curve: &[CurvePoint]) -> Result<bool> {
        let mut extra = self.extra.clone();
        let points: Vec<_> = curve
            .iter()
            .map(|p| (p.step, p.loss, p.train_accuracy, p.test_accuracy))
            .collect();
        let text = serde_json::to_string(&points).map_err(|e| Error::Io {
            path: self.path.clone(),
            source: e.into(),
        })?;
        extra.insert("curve".to_string(), text);
        let ckpt = Checkpoint {
            step: trainer.steps_done(),
            model: trainer.model().clone(),
            optimizer: trainer.optimizer_state().clone(),
            settings: self.settings.clone(),
            extra,
        };
        if !ckpt.is_finite() {
            return Ok(false);
        }
        ckpt.save(&self.path)?;
        self.last_step = Some(ckpt.step);
        Ok(true)
    }
}

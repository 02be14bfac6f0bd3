//! Checkpoints: everything a training run needs to continue bit-exactly.
//!
//! # Layout (format version 1)
//! A checkpoint is a safetensors file laid out like a model file (see
//! [`crate::modelfile`]): the tensors `layers.{i}.weight` and
//! `layers.{i}.bias` and the model's metadata entries (`architecture`,
//! `sizes`, `activation`, `feature_names`, `class_names`, `standardize`),
//! with `format` = `"vnn-checkpoint"` and `format_version` = `"1"`, plus:
//! - the tensors `optimizer.m` (Adam's first moment or the momentum
//!   velocity) and `optimizer.v` (Adam's second moment), 1-D F32 with one
//!   value per parameter, present only when the optimizer has them;
//! - the metadata entries `step` (optimizer steps done, decimal) and
//!   `settings` (a JSON object: the settings of the run, as the writer
//!   defines them), plus any extra entries the writer adds.
//!
//! Since a run's mini-batch order and masks are pure functions of the seed
//! and the step, the model, the optimizer state and the step are the whole
//! state of a run.
//!
//! # Reading untrusted files
//! As model files: the size is checked before reading, the header length
//! before parsing, and every defect is an [`Error::Model`] naming the file
//! and, when one is at fault, the tensor. Loading never panics.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::modelfile;
use std::collections::BTreeMap;
use std::path::Path;

/// The value of the `format` metadata entry of every checkpoint.
pub const FORMAT: &str = "vnn-checkpoint";

/// The checkpoint format version this crate writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;

/// The file name of a run's checkpoint inside its run folder.
pub const FILE_NAME: &str = "checkpoint.safetensors";

/// Name of the first optimizer-state tensor.
pub const TENSOR_M: &str = "optimizer.m";

/// Name of the second optimizer-state tensor.
pub const TENSOR_V: &str = "optimizer.v";

/// Metadata keys written by the checkpoint format on top of the model's
/// [`modelfile::RESERVED_KEYS`]; extra entries may not use them.
pub const CHECKPOINT_KEYS: [&str; 2] = ["step", "settings"];

/// The state of a training run after `step` optimizer steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Optimizer steps done.
    pub step: u64,
    /// The model after `step` steps (with its names and standardizer).
    pub model: Model,
    /// Adam's first moment or the momentum velocity; empty for SGD.
    pub m: Vec<f32>,
    /// Adam's second moment; empty otherwise.
    pub v: Vec<f32>,
    /// The run's settings as JSON object text.
    pub settings: String,
    /// Further metadata entries (for example the label column).
    pub extra: BTreeMap<String, String>,
}

fn ckpt_err(name: &str, tensor: Option<&str>, msg: impl Into<String>) -> Error {
    Error::Model {
        path: name.to_string(),
        tensor: tensor.map(str::to_string),
        msg: msg.into(),
    }
}

/// Checks that `settings` is JSON object text.
fn check_settings(name: &str, settings: &str) -> Result<()> {
    match serde_json::from_str::<serde_json::Value>(settings) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(ckpt_err(
            name,
            None,
            "metadata entry \"settings\" is not a JSON object",
        )),
        Err(e) => Err(ckpt_err(
            name,
            None,
            format!("metadata entry \"settings\" is not a JSON object: {e}"),
        )),
    }
}

impl Checkpoint {
    /// Whether the weights and the optimizer state are all finite (only
    /// such a checkpoint can be written).
    pub fn is_finite(&self) -> bool {
        [&self.model.params, &self.m, &self.v]
            .iter()
            .all(|t| t.iter().all(|v| v.is_finite()))
    }

    /// Serializes the checkpoint; `name` stands for the file in errors.
    ///
    /// # Errors
    /// [`Error::Model`] if the model is inconsistent or holds a non-finite
    /// value, the optimizer state is not empty or one value per parameter
    /// (or not finite), `settings` is not a JSON object, or an extra key is
    /// reserved.
    ///
    /// # Example
    /// ```
    /// use vnn::checkpoint::Checkpoint;
    /// use vnn::model::{Init, Model};
    /// let model = Model::new(&[2, 4, 3], Init::He, 1).unwrap();
    /// let n = model.params.len();
    /// let ckpt = Checkpoint {
    ///     step: 42,
    ///     model,
    ///     m: vec![0.5; n],
    ///     v: vec![0.25; n],
    ///     settings: r#"{"lr": 0.1}"#.into(),
    ///     extra: Default::default(),
    /// };
    /// let bytes = ckpt.to_bytes("mem").unwrap();
    /// assert_eq!(Checkpoint::from_bytes(&bytes, "mem").unwrap(), ckpt);
    /// ```
    pub fn to_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let n = self.model.params.len();
        for (tname, t) in [(TENSOR_M, &self.m), (TENSOR_V, &self.v)] {
            if !t.is_empty() && t.len() != n {
                return Err(ckpt_err(
                    name,
                    Some(tname),
                    format!("{} values for a model of {n} parameters", t.len()),
                ));
            }
        }
        check_settings(name, &self.settings)?;
        if let Some(k) = self
            .extra
            .keys()
            .find(|k| CHECKPOINT_KEYS.contains(&k.as_str()))
        {
            return Err(ckpt_err(
                name,
                None,
                format!("metadata key '{k}' is reserved for the checkpoint format"),
            ));
        }
        let mut meta = self.extra.clone();
        meta.insert("step".into(), self.step.to_string());
        meta.insert("settings".into(), self.settings.clone());
        let mut tensors: Vec<(&str, &[f32])> = Vec::new();
        if !self.m.is_empty() {
            tensors.push((TENSOR_M, &self.m));
        }
        if !self.v.is_empty() {
            tensors.push((TENSOR_V, &self.v));
        }
        modelfile::encode(&self.model, &meta, name, FORMAT, &tensors)
    }

    /// Parses a checkpoint from the bytes of a checkpoint file; `name`
    /// stands for the file in error messages.
    ///
    /// # Errors
    /// [`Error::Model`] for everything a model file can get wrong (see
    /// [`modelfile::model_and_metadata_from_bytes`]), a file that is not a
    /// checkpoint, a missing or malformed `step` or `settings` entry, and
    /// optimizer tensors that are not one F32 value per parameter or hold a
    /// non-finite value.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Checkpoint> {
        let (model, mut extra, tensors) =
            modelfile::decode(bytes, name, FORMAT, &[TENSOR_M, TENSOR_V])?;
        let step_text = extra
            .remove("step")
            .ok_or_else(|| ckpt_err(name, None, "missing metadata entry \"step\""))?;
        let step: u64 = step_text.trim().parse().map_err(|_| {
            ckpt_err(
                name,
                None,
                format!(
                    "metadata entry \"step\" is not a step count: \"{}\"",
                    step_text.chars().take(40).collect::<String>()
                ),
            )
        })?;
        let settings = extra
            .remove("settings")
            .ok_or_else(|| ckpt_err(name, None, "missing metadata entry \"settings\""))?;
        check_settings(name, &settings)?;
        let n = model.params.len();
        let mut state = tensors.into_iter();
        let mut take = |tname: &str| -> Result<Vec<f32>> {
            let t = state.next().flatten().unwrap_or_default();
            if !t.is_empty() && t.len() != n {
                return Err(ckpt_err(
                    name,
                    Some(tname),
                    format!("{} values for a model of {n} parameters", t.len()),
                ));
            }
            Ok(t)
        };
        let m = take(TENSOR_M)?;
        let v = take(TENSOR_V)?;
        if m.is_empty() && !v.is_empty() {
            return Err(ckpt_err(
                name,
                Some(TENSOR_M),
                format!("missing tensor (the file has {TENSOR_V})"),
            ));
        }
        Ok(Checkpoint {
            step,
            model,
            m,
            v,
            settings,
            extra,
        })
    }

    /// Writes the checkpoint to `path` atomically (see
    /// [`crate::fsutil::write_atomic`]): a reader, or a run resumed after a
    /// crash, sees either the previous checkpoint or this one, whole.
    ///
    /// # Errors
    /// As [`Checkpoint::to_bytes`], plus [`Error::Io`] if the file cannot
    /// be written; the file at `path` is then left as it was.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes(&path.display().to_string())?;
        crate::fsutil::write_atomic(path, &bytes)
    }

    /// Loads a checkpoint file.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::Model`] if it is a
    /// directory, larger than [`modelfile::MAX_MODEL_BYTES`], or not a valid
    /// checkpoint (see [`Checkpoint::from_bytes`]).
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = modelfile::read_bounded(path)?;
        Checkpoint::from_bytes(&bytes, &path.display().to_string())
    }
}

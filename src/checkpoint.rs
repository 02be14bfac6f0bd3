//! Checkpoints: everything a training run needs to continue bit-exactly.
//!
//! # Layout (format version 2)
//! A checkpoint is a safetensors file laid out like a model file (see
//! [`crate::modelfile`]): the tensors `layers.{i}.weight` and
//! `layers.{i}.bias` and the model's metadata entries (`architecture`,
//! `sizes`, `activation`, `feature_names`, `class_names`, `standardize`,
//! and `format_version`, the version of that model part), with `format` =
//! `"vnn-checkpoint"`, plus:
//! - the metadata entry `checkpoint_version` = `"2"` ([`FORMAT_VERSION`]);
//! - the optimizer state ([`OptimizerState`]), named by what it holds, each
//!   a 1-D F32 tensor with one value per parameter: nothing for SGD,
//!   `optimizer.momentum.velocity` for momentum, `optimizer.adam.m` and
//!   `optimizer.adam.v` (first and second moment) for Adam;
//! - with early stopping, `early_stopping.best_params` (optional, 1-D F32,
//!   one value per parameter, laid out like [`Model::params`]): the best
//!   weights so far; a file without it loads with [`Checkpoint::best_params`]
//!   `None`;
//! - the metadata entries `step` (optimizer steps done, decimal) and
//!   `settings` (a JSON object: the settings of the run, as the writer
//!   defines them), plus any extra entries the writer adds.
//!
//! # Version 1
//! Version 1 files have no `checkpoint_version` entry and name their
//! optimizer tensors `optimizer.m` and `optimizer.v`: `optimizer.m` alone is
//! the momentum velocity, `optimizer.m` with `optimizer.v` Adam's moments,
//! neither SGD. They load into the same [`Checkpoint`] and resume
//! bit-exactly; this crate writes version 2 only.
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
use crate::train::OptimizerState;
use std::collections::BTreeMap;
use std::path::Path;

/// The value of the `format` metadata entry of every checkpoint.
pub const FORMAT: &str = "vnn-checkpoint";

/// The checkpoint format version this crate writes (and the newest it
/// reads), in the metadata entry `checkpoint_version`.
pub const FORMAT_VERSION: u32 = 2;

/// The file name of a run's checkpoint inside its run folder.
pub const FILE_NAME: &str = "checkpoint.safetensors";

/// The momentum velocity (version 2).
pub const TENSOR_MOMENTUM_VELOCITY: &str = "optimizer.momentum.velocity";

/// Adam's first moment (version 2).
pub const TENSOR_ADAM_M: &str = "optimizer.adam.m";

/// Adam's second moment (version 2).
pub const TENSOR_ADAM_V: &str = "optimizer.adam.v";

// The tensor names of format 1, out of the public docs; the format-1 tests name them.
#[doc(hidden)]
/// Version 1's first optimizer tensor: Adam's first moment, or the momentum
/// velocity when [`TENSOR_V1_V`] is absent.
pub const TENSOR_V1_M: &str = "optimizer.m";

// The tensor names of format 1, out of the public docs; the format-1 tests name them.
#[doc(hidden)]
/// Version 1's second optimizer tensor: Adam's second moment.
pub const TENSOR_V1_V: &str = "optimizer.v";

/// The best weights of an early-stopping run (optional, version 2).
pub const TENSOR_BEST_PARAMS: &str = "early_stopping.best_params";

/// Every optimizer tensor a checkpoint of some version may hold.
const OPTIMIZER_TENSORS: [&str; 5] = [
    TENSOR_MOMENTUM_VELOCITY,
    TENSOR_ADAM_M,
    TENSOR_ADAM_V,
    TENSOR_V1_M,
    TENSOR_V1_V,
];

/// Metadata keys written by the checkpoint format on top of the model's
/// [`modelfile::RESERVED_KEYS`]; extra entries may not use them.
pub const CHECKPOINT_KEYS: [&str; 3] = ["step", "settings", "checkpoint_version"];

/// The state of a training run after `step` optimizer steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Optimizer steps done.
    pub step: u64,
    /// The model after `step` steps (with its names and standardizer).
    pub model: Model,
    /// The optimizer state after `step` steps.
    pub optimizer: OptimizerState,
    /// The run's settings as JSON object text.
    pub settings: String,
    /// Further metadata entries (for example the label column).
    pub extra: BTreeMap<String, String>,
    /// The best weights so far of a run with early stopping (one value per
    /// parameter), in the tensor [`TENSOR_BEST_PARAMS`].
    pub best_params: Option<Vec<f32>>,
}

/// The version-2 tensor names of `state`'s buffers.
fn tensor_names(state: &OptimizerState) -> Vec<(&'static str, &[f32])> {
    let name = |part| match (state, part) {
        (OptimizerState::Momentum { .. }, _) => TENSOR_MOMENTUM_VELOCITY,
        (_, "m") => TENSOR_ADAM_M,
        _ => TENSOR_ADAM_V,
    };
    state
        .tensors()
        .into_iter()
        .map(|(part, t)| (name(part), t))
        .collect()
}

fn ckpt_err(name: &str, tensor: Option<&str>, msg: impl Into<String>) -> Error {
    Error::Model {
        path: name.into(),
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

/// The optimizer state of a decoded file of `version` from its optimizer
/// tensors (in the order of [`OPTIMIZER_TENSORS`]), each checked to hold
/// one value per parameter (`n`).
fn optimizer_from_tensors(
    name: &str,
    version: u32,
    tensors: Vec<Option<Vec<f32>>>,
    n: usize,
) -> Result<OptimizerState> {
    let mut found: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    for (tname, t) in OPTIMIZER_TENSORS.into_iter().zip(tensors) {
        let Some(t) = t else { continue };
        let own = if version == 1 {
            [TENSOR_V1_M, TENSOR_V1_V].contains(&tname)
        } else {
            ![TENSOR_V1_M, TENSOR_V1_V].contains(&tname)
        };
        if !own {
            let msg = format!("unexpected tensor in a version-{version} checkpoint");
            return Err(ckpt_err(name, Some(tname), msg));
        }
        if t.len() != n {
            let msg = format!("{} values for a model of {n} parameters", t.len());
            return Err(ckpt_err(name, Some(tname), msg));
        }
        found.insert(tname, t);
    }
    let (first, second, velocity) = if version == 1 {
        (TENSOR_V1_M, TENSOR_V1_V, None)
    } else {
        (TENSOR_ADAM_M, TENSOR_ADAM_V, Some(TENSOR_MOMENTUM_VELOCITY))
    };
    let velocity = velocity.and_then(|t| found.remove(t));
    match (found.remove(first), found.remove(second), velocity) {
        (None, None, None) => Ok(OptimizerState::Sgd),
        (None, None, Some(velocity)) => Ok(OptimizerState::Momentum { velocity }),
        // Version 1 kept the velocity in `optimizer.m`.
        (Some(velocity), None, None) if version == 1 => Ok(OptimizerState::Momentum { velocity }),
        (Some(m), Some(v), None) => Ok(OptimizerState::Adam { m, v }),
        (None, Some(_), _) => Err(ckpt_err(
            name,
            Some(first),
            format!("missing tensor (the file has {second})"),
        )),
        (Some(_), None, None) => Err(ckpt_err(
            name,
            Some(second),
            format!("missing tensor (the file has {first})"),
        )),
        (Some(_), _, Some(_)) => Err(ckpt_err(
            name,
            Some(TENSOR_MOMENTUM_VELOCITY),
            "a checkpoint holds the state of one optimizer, not both momentum and Adam",
        )),
    }
}

/// The checkpoint version of metadata `extra` (removing its entry): 1 when
/// absent.
fn take_version(name: &str, extra: &mut BTreeMap<String, String>) -> Result<u32> {
    let Some(text) = extra.remove("checkpoint_version") else {
        return Ok(1);
    };
    match text.trim().parse::<u32>() {
        Ok(v @ 1..=FORMAT_VERSION) => Ok(v),
        Ok(v) if v > FORMAT_VERSION => Err(ckpt_err(
            name,
            None,
            format!(
                "checkpoint version {v} is newer than this vnn supports ({FORMAT_VERSION}); upgrade vnn to read this checkpoint"
            ),
        )),
        _ => Err(ckpt_err(
            name,
            None,
            format!(
                "metadata entry \"checkpoint_version\" is not a version number: \"{}\"",
                text.chars().take(40).collect::<String>()
            ),
        )),
    }
}

/// The step count of metadata `extra` (removing its entry).
fn take_step(name: &str, extra: &mut BTreeMap<String, String>) -> Result<u64> {
    let step_text = extra
        .remove("step")
        .ok_or_else(|| ckpt_err(name, None, "missing metadata entry \"step\""))?;
    step_text.trim().parse().map_err(|_| {
        ckpt_err(
            name,
            None,
            format!(
                "metadata entry \"step\" is not a step count: \"{}\"",
                step_text.chars().take(40).collect::<String>()
            ),
        )
    })
}

impl Checkpoint {
    /// Whether the weights and the optimizer state are all finite (only
    /// such a checkpoint can be written).
    pub fn is_finite(&self) -> bool {
        let finite = |t: &[f32]| t.iter().all(|v| v.is_finite());
        finite(self.model.params())
            && self.optimizer.tensors().iter().all(|(_, t)| finite(t))
            && self.best_params.as_deref().is_none_or(finite)
    }

    /// Serializes the checkpoint (format version 2); `name` stands for the
    /// file in errors.
    ///
    /// # Errors
    /// [`Error::Model`] if the model is inconsistent or holds a non-finite
    /// value, an optimizer buffer is not one value per parameter (or not
    /// finite), `settings` is not a JSON object, or an extra key is
    /// reserved.
    ///
    /// # Example
    /// ```
    /// use vnn::checkpoint::Checkpoint;
    /// use vnn::model::{Init, Model};
    /// use vnn::train::OptimizerState;
    /// let model = Model::new(&[2, 4, 3], Init::He, 1).unwrap();
    /// let n = model.params().len();
    /// let ckpt = Checkpoint {
    ///     step: 42,
    ///     model,
    ///     optimizer: OptimizerState::Adam { m: vec![0.5; n], v: vec![0.25; n] },
    ///     settings: r#"{"lr": 0.1}"#.into(),
    ///     extra: Default::default(),
    ///     best_params: None,
    /// };
    /// let bytes = ckpt.to_bytes("mem").unwrap();
    /// assert_eq!(Checkpoint::from_bytes(&bytes, "mem").unwrap(), ckpt);
    /// ```
    pub fn to_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let n = self.model.params().len();
        let mut tensors = tensor_names(&self.optimizer);
        if let Some(best) = &self.best_params {
            tensors.push((TENSOR_BEST_PARAMS, best));
        }
        for (tname, t) in &tensors {
            if t.len() != n {
                let msg = format!("{} values for a model of {n} parameters", t.len());
                return Err(ckpt_err(name, Some(tname), msg));
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
        meta.insert("checkpoint_version".into(), FORMAT_VERSION.to_string());
        modelfile::encode(&self.model, &meta, name, FORMAT, &tensors)
    }

    /// Parses a checkpoint of format version 1 or 2 from the bytes of a
    /// checkpoint file; `name` stands for the file in error messages.
    ///
    /// # Errors
    /// [`Error::Model`] for everything a model file can get wrong (see
    /// [`modelfile::ModelFile::from_bytes`]), a file that is not a
    /// checkpoint, a checkpoint version this crate does not know, a missing
    /// or malformed `step` or `settings` entry, and optimizer tensors that
    /// are not one F32 value per parameter, hold a non-finite value, do not
    /// belong to the file's version or do not make up one optimizer's
    /// state.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Checkpoint> {
        let mut names = OPTIMIZER_TENSORS.to_vec();
        names.push(TENSOR_BEST_PARAMS);
        let (model, mut extra, mut tensors) = modelfile::decode(bytes, name, FORMAT, &names)?;
        let best_params = tensors.pop().flatten();
        let n = model.params().len();
        if best_params.as_ref().is_some_and(|b| b.len() != n) {
            let msg = format!("not one value per parameter of a model of {n}");
            return Err(ckpt_err(name, Some(TENSOR_BEST_PARAMS), msg));
        }
        let version = take_version(name, &mut extra)?;
        let step = take_step(name, &mut extra)?;
        let settings = extra
            .remove("settings")
            .ok_or_else(|| ckpt_err(name, None, "missing metadata entry \"settings\""))?;
        check_settings(name, &settings)?;
        let optimizer = optimizer_from_tensors(name, version, tensors, model.params().len())?;
        Ok(Checkpoint {
            step,
            model,
            optimizer,
            settings,
            extra,
            best_params,
        })
    }

    /// Writes the checkpoint to `path` atomically (see
    /// [`crate::fsutil::write_atomic`]): a reader, or a run resumed after a
    /// crash, sees either the previous checkpoint or this one, whole.
    ///
    /// # Errors
    /// As [`Checkpoint::to_bytes`], plus [`Error::Io`] if the file cannot
    /// be written; the file at `path` is then left as it was.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes(&path.display().to_string())?;
        crate::fsutil::write_atomic(path, &bytes)
    }

    /// Loads a checkpoint file.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::Model`] if it is a
    /// directory, larger than [`modelfile::MAX_MODEL_BYTES`], or not a valid
    /// checkpoint (see [`Checkpoint::from_bytes`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let bytes = modelfile::read_bounded(path)?;
        Checkpoint::from_bytes(&bytes, &path.display().to_string())
    }
}

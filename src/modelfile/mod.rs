//! Model files: safetensors with vnn metadata.
//!
//! # Layout (format version 1)
//! - Tensors `layers.{i}.weight`, shape `[n_in, n_out]` (rows are inputs, so
//!   a layer computes `x @ W + b`), and `layers.{i}.bias`, shape `[n_out]`;
//!   all `F32` little-endian, stored in layer order (`W0, b0, W1, b1, ...`,
//!   which is the model's flat parameter buffer).
//! - `__metadata__` (string to string; structured values are JSON text):
//!   `format` = `"vnn-model"`, `format_version` = `"1"`, `architecture`
//!   (`"linear"` or `"mlp"`), `sizes` (JSON array of layer widths),
//!   `activation` (the hidden layers' [`Activation`](crate::model::Activation)
//!   by name: `"relu"`, `"tanh"`, `"sigmoid"` or `"leaky-relu"`; a file
//!   without it is read as ReLU, the only activation of earlier vnn
//!   versions), `feature_names` and `class_names` (JSON arrays of
//!   strings), `standardize` (JSON `{"mean": [..], "scale": [..]}` or
//!   `null`), plus any extra entries the writer adds (for example
//!   `training_command`).
//!
//! The writer is deterministic: the same model and extra entries give the
//! same bytes (header keys sorted, no hash-map order).
//!
//! # Reading untrusted files
//! Loading never panics and never allocates more than the file's size plus
//! the model: the size of the file is checked before reading, and the
//! header length against the file length before the header is parsed.
//! Every defect gives an [`Error::Model`] naming the file and, when one is
//! at fault, the tensor. Readers dispatch on `format_version`, so files of
//! earlier versions stay readable when the format grows.
//!
//! # Code
//! `write` encodes; `read` checks the container (lengths, header, `format`,
//! `format_version`) and dispatches to the reader of the version, `v1`.

mod read;
mod v1;
mod write;

pub(crate) use read::decode;
pub(crate) use write::encode;

use crate::error::{Error, Result};
use crate::model::Model;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The value of the `format` metadata entry of every vnn model file.
pub const FORMAT: &str = "vnn-model";

/// The format version this crate writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;

/// The largest model file [`ModelFile::load`] reads, in bytes: 2 GiB.
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// The longest safetensors header accepted, in bytes (as the safetensors
/// crate itself).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Metadata keys written by the format itself; extra entries may not use
/// them.
pub const RESERVED_KEYS: [&str; 8] = [
    "format",
    "format_version",
    "architecture",
    "sizes",
    "activation",
    "feature_names",
    "class_names",
    "standardize",
];

/// The standardizer as stored in the `standardize` entry. Values are written
/// as the exact `f64` widening of each `f32`, so they read back bit-exact.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StandardizeJson {
    mean: Vec<f64>,
    scale: Vec<f64>,
}

fn model_err(path: &str, tensor: Option<&str>, msg: impl Into<String>) -> Error {
    Error::Model {
        path: path.into(),
        tensor: tensor.map(str::to_string),
        msg: msg.into(),
    }
}

fn weight_name(i: usize) -> String {
    format!("layers.{i}.weight")
}

fn bias_name(i: usize) -> String {
    format!("layers.{i}.bias")
}

/// A model file: the model and its extra metadata entries (every
/// `__metadata__` entry but [`RESERVED_KEYS`], for example
/// `training_command`).
///
/// [`Model::load`] and [`Model::save`] are shorthands for a file without
/// extra entries.
///
/// # Example
/// ```
/// use std::collections::BTreeMap;
/// use vnn::model::{Init, Model};
/// use vnn::modelfile::ModelFile;
/// let model = Model::new(&[2, 8, 3], Init::He, 7).unwrap();
/// let metadata = BTreeMap::from([("training_command".to_string(), "vnn train".to_string())]);
/// let file = ModelFile { model, metadata };
/// let bytes = file.to_bytes().unwrap();
/// let back = ModelFile::from_bytes(&bytes, "mem").unwrap();
/// assert_eq!(back, file);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ModelFile {
    /// The model.
    pub model: Model,
    /// The extra metadata entries, written beside the format's own.
    pub metadata: BTreeMap<String, String>,
}

impl ModelFile {
    /// Loads a model file.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::Model`] if it is
    /// larger than [`MAX_MODEL_BYTES`], a directory, or not a valid vnn
    /// model (see [`ModelFile::from_bytes`]).
    pub fn load(path: impl AsRef<Path>) -> Result<ModelFile> {
        let path = path.as_ref();
        let bytes = read_bounded(path)?;
        ModelFile::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses the bytes of a model file; `name` stands for the file in
    /// error messages.
    ///
    /// # Errors
    /// [`Error::Model`] for: a truncated file or a header length past the
    /// end of the file, an invalid safetensors header or offsets, a file
    /// that is not a vnn model, a format version newer than
    /// [`FORMAT_VERSION`], missing or malformed metadata, a missing or
    /// unexpected tensor, a dtype other than F32, shapes that do not chain
    /// or disagree with the metadata, name counts that disagree with the
    /// shapes, duplicate names, an invalid standardizer (see
    /// [`crate::data::Standardizer::new`]), and non-finite values.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<ModelFile> {
        let (model, metadata, _) = decode(bytes, name, FORMAT, &[])?;
        Ok(ModelFile { model, metadata })
    }

    /// The bytes of the file; the same model and metadata always give the
    /// same bytes.
    ///
    /// # Errors
    /// [`Error::Model`] if the model holds a non-finite value or a metadata
    /// key is one of [`RESERVED_KEYS`].
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        encode(&self.model, &self.metadata, "<model>", FORMAT, &[])
    }

    /// Saves the file to `path`, atomically (a temporary file renamed over
    /// `path`, so a reader never sees half a file).
    ///
    /// # Errors
    /// As [`ModelFile::to_bytes`], plus [`Error::Io`] if the file cannot be
    /// written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_with(&self.model, &self.metadata, path.as_ref())
    }
}

/// Saves `model` with the `extra` metadata entries to `path`, atomically.
pub(crate) fn save_with(
    model: &Model,
    extra: &BTreeMap<String, String>,
    path: &Path,
) -> Result<()> {
    let bytes = encode(model, extra, &path.display().to_string(), FORMAT, &[])?;
    crate::fsutil::write_atomic(path, &bytes)
}

impl Model {
    /// Loads the model of a model file: a shorthand for
    /// [`ModelFile::load`] that drops the extra metadata.
    ///
    /// # Errors
    /// As [`ModelFile::load`].
    ///
    /// # Example
    /// ```
    /// use vnn::model::{Init, Model};
    /// let dir = std::env::temp_dir().join(format!("vnn-doc-load-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("model.safetensors");
    /// let model = Model::new(&[2, 8, 3], Init::He, 7).unwrap();
    /// model.save(&path).unwrap();
    /// assert_eq!(Model::load(&path).unwrap(), model);
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        ModelFile::load(path).map(|file| file.model)
    }

    /// Saves the model to `path` without extra metadata, atomically: a
    /// shorthand for [`ModelFile::save`].
    ///
    /// # Errors
    /// As [`ModelFile::save`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_with(self, &BTreeMap::new(), path.as_ref())
    }
}

fn check_names(path: &str, key: &str, names: &[String], expected: usize) -> Result<()> {
    match crate::model::names_problem(key, names, expected) {
        Some(msg) => Err(model_err(path, None, msg)),
        None => Ok(()),
    }
}

fn check_standardizer(path: &str, mean: &[f32], scale: &[f32], n_in: usize) -> Result<()> {
    match crate::data::standardizer_problem(mean, scale, n_in) {
        Some(msg) => Err(model_err(path, None, format!("standardize: {msg}"))),
        None => Ok(()),
    }
}

/// Reads a whole model or checkpoint file: a regular file of at most
/// [`MAX_MODEL_BYTES`] bytes and within the memory budget
/// ([`crate::budget`]), see [`crate::fsutil::read_regular`].
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let limit = MAX_MODEL_BYTES.min(crate::budget::limit()?);
    crate::fsutil::read_regular(path, limit)
}

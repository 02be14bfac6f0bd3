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
//!   `activation` (`"relu"`), `feature_names` and `class_names` (JSON arrays
//!   of strings), `standardize` (JSON `{"mean": [..], "scale": [..]}` or
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

/// The largest model file [`load_model`] reads, in bytes: 2 GiB.
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

/// Serializes `model` with `extra` metadata entries into safetensors bytes.
///
/// # Errors
/// [`Error::Model`] if the model is inconsistent (buffer lengths, name
/// counts), holds a non-finite value, or an extra key is one of
/// [`RESERVED_KEYS`].
///
/// # Example
/// ```
/// use std::collections::BTreeMap;
/// use vnn::model::{Init, Model};
/// use vnn::modelfile::{model_and_metadata_from_bytes, model_to_bytes};
/// let model = Model::new(&[2, 8, 3], Init::He, 7).unwrap();
/// let extra = BTreeMap::from([("training_command".to_string(), "vnn train".to_string())]);
/// let bytes = model_to_bytes(&model, &extra).unwrap();
/// let (back, meta) = model_and_metadata_from_bytes(&bytes, "mem").unwrap();
/// assert_eq!(back, model);
/// assert_eq!(meta, extra);
/// ```
pub fn model_to_bytes(model: &Model, extra: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    encode(model, extra, "<model>", FORMAT, &[])
}

/// Saves `model` with `extra` metadata entries to `path`, atomically (see
/// [`crate::fsutil::write_atomic`]).
///
/// # Errors
/// As [`model_to_bytes`], plus [`Error::Io`] if the file cannot be written.
pub fn save_model(model: &Model, extra: &BTreeMap<String, String>, path: &Path) -> Result<()> {
    let bytes = encode(model, extra, &path.display().to_string(), FORMAT, &[])?;
    crate::fsutil::write_atomic(path, &bytes)
}

fn check_names(path: &str, key: &str, names: &[String], expected: usize) -> Result<()> {
    if names.len() != expected {
        return Err(model_err(
            path,
            None,
            format!(
                "{key} has {} names but the model has {expected}",
                names.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(model_err(
            path,
            None,
            format!("{key} has the name '{dup}' twice"),
        ));
    }
    Ok(())
}

fn check_standardizer(path: &str, mean: &[f32], scale: &[f32], n_in: usize) -> Result<()> {
    let err = |msg: String| model_err(path, None, format!("standardize: {msg}"));
    if mean.len() != n_in || scale.len() != n_in {
        return Err(err(format!(
            "{} means and {} scales for {n_in} features",
            mean.len(),
            scale.len()
        )));
    }
    if let Some(i) = mean.iter().position(|v| !v.is_finite()) {
        return Err(err(format!("mean {i} is {}", mean[i])));
    }
    if let Some(i) = scale.iter().position(|v| !(v.is_finite() && *v != 0.0)) {
        return Err(err(format!(
            "scale {i} is {}, not a finite non-zero number",
            scale[i]
        )));
    }
    Ok(())
}

/// Loads a model file.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Model`] if it is too
/// large, a directory, or not a valid vnn model (see
/// [`model_and_metadata_from_bytes`]).
pub fn load_model(path: &Path) -> Result<Model> {
    load_model_with_metadata(path).map(|(m, _)| m)
}

/// Loads a model file and its extra metadata entries (every entry but
/// [`RESERVED_KEYS`]).
///
/// # Errors
/// As [`load_model`].
pub fn load_model_with_metadata(path: &Path) -> Result<(Model, BTreeMap<String, String>)> {
    let bytes = read_bounded(path)?;
    model_and_metadata_from_bytes(&bytes, &path.display().to_string())
}

/// Reads a whole model or checkpoint file: a regular file of at most
/// [`MAX_MODEL_BYTES`] bytes and within the memory budget
/// ([`crate::budget`]), see [`crate::fsutil::read_regular`].
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let limit = MAX_MODEL_BYTES.min(crate::budget::limit()?);
    crate::fsutil::read_regular(path, limit)
}

/// Parses a model from the bytes of a model file; `name` stands for the
/// file in error messages.
///
/// # Errors
/// As [`model_and_metadata_from_bytes`].
pub fn model_from_bytes(bytes: &[u8], name: &str) -> Result<Model> {
    model_and_metadata_from_bytes(bytes, name).map(|(m, _)| m)
}

/// Parses a model and its extra metadata entries (every entry but
/// [`RESERVED_KEYS`]) from the bytes of a model file.
///
/// # Errors
/// [`Error::Model`] for: a truncated file or a header length past the end of
/// the file, an invalid safetensors header or offsets, a file that is not a
/// vnn model, a format version newer than [`FORMAT_VERSION`], missing or
/// malformed metadata, a missing or unexpected tensor, a dtype other than
/// F32, shapes that do not chain or disagree with the metadata, name counts
/// that disagree with the shapes, and non-finite values.
pub fn model_and_metadata_from_bytes(
    bytes: &[u8],
    name: &str,
) -> Result<(Model, BTreeMap<String, String>)> {
    decode(bytes, name, FORMAT, &[]).map(|(model, extra, _)| (model, extra))
}

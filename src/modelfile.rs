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

use crate::data::Standardizer;
use crate::error::{Error, Result};
use crate::model::{Layout, Model};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
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
        path: path.to_string(),
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

/// Encodes `model` as a file of `format` (the `format` metadata entry): the
/// model's tensors and metadata, then `extra_tensors` (1-D F32, finite)
/// after the layers. Model files use [`FORMAT`] and no extra tensors;
/// checkpoints add the optimizer state.
pub(crate) fn encode(
    model: &Model,
    extra: &BTreeMap<String, String>,
    name: &str,
    format: &str,
    extra_tensors: &[(&str, &[f32])],
) -> Result<Vec<u8>> {
    let layout = &model.layout;
    let err = |tensor: Option<&str>, msg: String| model_err(name, tensor, msg);
    if let Some(k) = extra.keys().find(|k| RESERVED_KEYS.contains(&k.as_str())) {
        return Err(err(
            None,
            format!("metadata key '{k}' is reserved for the model format"),
        ));
    }
    if model.params.len() != layout.len {
        return Err(err(
            None,
            format!(
                "the model has {} parameters but its layout needs {}",
                model.params.len(),
                layout.len
            ),
        ));
    }
    check_names(name, "feature_names", &model.feature_names, layout.n_in())?;
    check_names(name, "class_names", &model.class_names, layout.n_out())?;
    if let Some(s) = &model.standardizer {
        check_standardizer(name, &s.mean, &s.scale, layout.n_in())?;
    }

    let mut meta: BTreeMap<String, String> = extra.clone();
    meta.insert("format".into(), format.into());
    meta.insert("format_version".into(), FORMAT_VERSION.to_string());
    meta.insert("architecture".into(), model.architecture().into());
    meta.insert("sizes".into(), to_json(&layout.sizes));
    meta.insert("activation".into(), "relu".into());
    meta.insert("feature_names".into(), to_json(&model.feature_names));
    meta.insert("class_names".into(), to_json(&model.class_names));
    let standardize = match &model.standardizer {
        None => "null".to_string(),
        Some(s) => to_json(&StandardizeJson {
            mean: s.mean.iter().map(|&v| v as f64).collect(),
            scale: s.scale.iter().map(|&v| v as f64).collect(),
        }),
    };
    meta.insert("standardize".into(), standardize);

    // Tensors in layer order: the data section is the flat parameter buffer.
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::Value::Object(
            meta.into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        ),
    );
    let mut data = Vec::with_capacity(4 * layout.len);
    for (i, slot) in layout.layers.iter().enumerate() {
        for (tname, range, shape) in [
            (
                weight_name(i),
                slot.weight_range(),
                vec![slot.n_in, slot.n_out],
            ),
            (bias_name(i), slot.bias_range(), vec![slot.n_out]),
        ] {
            let values = &model.params[range];
            if let Some(j) = values.iter().position(|v| !v.is_finite()) {
                return Err(err(
                    Some(&tname),
                    format!("cannot save: value {j} is {}", values[j]),
                ));
            }
            let start = data.len();
            data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            header.insert(
                tname,
                serde_json::json!({
                    "dtype": "F32",
                    "shape": shape,
                    "data_offsets": [start, data.len()],
                }),
            );
        }
    }
    for &(tname, values) in extra_tensors {
        if let Some(j) = values.iter().position(|v| !v.is_finite()) {
            return Err(err(
                Some(tname),
                format!("cannot save: value {j} is {}", values[j]),
            ));
        }
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            tname.to_string(),
            serde_json::json!({
                "dtype": "F32",
                "shape": [values.len()],
                "data_offsets": [start, data.len()],
            }),
        );
    }
    let mut header = serde_json::to_vec(&serde_json::Value::Object(header))
        .map_err(|e| err(None, format!("cannot encode the header: {e}")))?;
    // Pad the header with spaces so the data starts 8-byte aligned.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&data);
    Ok(out)
}

/// JSON text of a plain value (vectors, strings, numbers: cannot fail).
fn to_json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
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

/// Reads a whole file of at most [`MAX_MODEL_BYTES`] bytes (checked before
/// reading); a directory is an [`Error::Model`].
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let name = path.display().to_string();
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(model_err(&name, None, "is a directory, not a model file"));
    }
    if meta.len() > MAX_MODEL_BYTES {
        return Err(model_err(
            &name,
            None,
            format!(
                "the file has {} bytes, more than the limit of {MAX_MODEL_BYTES} bytes",
                meta.len()
            ),
        ));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_MODEL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(model_err(
            &name,
            None,
            format!("the file grew past the limit of {MAX_MODEL_BYTES} bytes while being read"),
        ));
    }
    Ok(bytes)
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

/// What [`decode`] returns: the model, its extra metadata entries and the
/// extra tensors asked for.
pub(crate) type Decoded = (Model, BTreeMap<String, String>, Vec<Option<Vec<f32>>>);

/// Decodes a file of `format` written by [`encode`]: the model, the extra
/// metadata entries, and the values of each of `extra_tensors` (1-D F32,
/// finite; `None` when absent). Any other tensor is an error, as in model
/// files.
pub(crate) fn decode(
    bytes: &[u8],
    name: &str,
    format: &str,
    extra_tensors: &[&str],
) -> Result<Decoded> {
    let kind = format.replace('-', " ");
    let err = |tensor: Option<&str>, msg: String| model_err(name, tensor, msg);
    let len = bytes.len() as u64;
    let Some(head) = bytes.get(..8) else {
        return Err(err(
            None,
            format!(
                "truncated: {len} bytes, shorter than the 8-byte header length of a safetensors file"
            ),
        ));
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(head);
    let header_len = u64::from_le_bytes(n);
    if header_len > len - 8 {
        return Err(err(
            None,
            format!(
                "the header length {header_len} exceeds the {} bytes after it: truncated or not a safetensors file",
                len - 8
            ),
        ));
    }
    if header_len > MAX_HEADER_BYTES {
        return Err(err(
            None,
            format!("the header length {header_len} is larger than the limit of {MAX_HEADER_BYTES} bytes"),
        ));
    }
    let (n, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| header_error(bytes, name, e))?;
    let data = bytes.get(8 + n..).unwrap_or_default();
    let Some(entries) = metadata.metadata() else {
        return Err(err(
            None,
            format!("not a {kind}: the file has no metadata (expected format = \"{format}\")"),
        ));
    };
    match entries.get("format") {
        Some(f) if f == format => {}
        Some(f) => {
            return Err(err(
                None,
                format!(
                    "not a {kind}: format is \"{}\", expected \"{format}\"",
                    shown(f)
                ),
            ))
        }
        None => {
            return Err(err(
                None,
                format!(
                    "not a {kind}: the metadata has no \"format\" entry (expected \"{format}\")"
                ),
            ))
        }
    }
    let version = entries
        .get("format_version")
        .ok_or_else(|| err(None, "missing metadata entry \"format_version\"".into()))?;
    let version: u32 = match version.trim().parse() {
        Ok(v) if v >= 1 => v,
        _ => {
            return Err(err(
                None,
                format!(
                    "format_version \"{}\" is not a version number",
                    shown(version)
                ),
            ))
        }
    };
    let entries: BTreeMap<String, String> = entries
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let file = FileView {
        name,
        metadata: &metadata,
        data,
        entries: &entries,
        extra_tensors,
    };
    let model = match version {
        1 => read_v1(&file)?,
        v => {
            return Err(err(
                None,
                format!(
                    "format version {v} is newer than this vnn supports ({FORMAT_VERSION}); upgrade vnn to read this {}",
                    kind.rsplit(' ').next().unwrap_or("file")
                ),
            ))
        }
    };
    let mut tensors = Vec::with_capacity(extra_tensors.len());
    for &tname in extra_tensors {
        let Some(info) = file.info(tname) else {
            tensors.push(None);
            continue;
        };
        if info.dtype != Dtype::F32 {
            return Err(err(
                Some(tname),
                format!("dtype is {}, expected F32", info.dtype),
            ));
        }
        if info.shape.len() != 1 {
            return Err(err(
                Some(tname),
                format!("shape {:?} is not one-dimensional", info.shape),
            ));
        }
        tensors.push(Some(file.values(tname, info)?));
    }
    let extra = entries
        .into_iter()
        .filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str()))
        .collect();
    Ok((model, extra, tensors))
}

/// Explains why the safetensors crate refused a file whose header length
/// is within the file: the tensors' offsets overlap, leave gaps, or do not
/// end where the file does (a truncated file, or offsets out of bounds).
fn header_error(bytes: &[u8], name: &str, e: safetensors::SafeTensorError) -> Error {
    use safetensors::SafeTensorError as E;
    match e {
        E::InvalidOffset(tensor) => model_err(
            name,
            Some(&tensor),
            "data offsets overlap another tensor or leave a gap (tensors must follow each other from offset 0)",
        ),
        E::MetadataIncompleteBuffer => {
            // The header parsed; find where its tensors end.
            let header_len = bytes.get(..8).map_or(0, |h| {
                u64::from_le_bytes(h.try_into().unwrap_or_default()) as usize
            });
            let data_len = bytes.len().saturating_sub(8 + header_len);
            let end = bytes
                .get(8..8 + header_len)
                .and_then(|h| serde_json::from_slice::<serde_json::Value>(h).ok())
                .and_then(|h| {
                    h.as_object()?
                        .values()
                        .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
                        .max()
                })
                .unwrap_or(0);
            let msg = if end as usize > data_len {
                format!("the tensors end at data byte {end} but the file has {data_len} bytes of data: truncated, or offsets out of bounds")
            } else {
                format!("the tensors end at data byte {end} but the file has {data_len} bytes of data: trailing bytes")
            };
            model_err(name, None, msg)
        }
        e => model_err(name, None, format!("not a valid safetensors file: {e}")),
    }
}

/// A parsed safetensors file on its way to a model.
struct FileView<'a> {
    name: &'a str,
    metadata: &'a Metadata,
    /// The data section (after the header).
    data: &'a [u8],
    entries: &'a BTreeMap<String, String>,
    /// Tensors besides the layers that this kind of file may hold.
    extra_tensors: &'a [&'a str],
}

impl FileView<'_> {
    fn err(&self, tensor: Option<&str>, msg: String) -> Error {
        model_err(self.name, tensor, msg)
    }

    fn entry(&self, key: &str) -> Result<&str> {
        self.entries
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| self.err(None, format!("missing metadata entry \"{key}\"")))
    }

    fn json<T: serde::de::DeserializeOwned>(&self, key: &str, what: &str) -> Result<T> {
        let text = self.entry(key)?;
        serde_json::from_str(text)
            .map_err(|e| self.err(None, format!("metadata entry \"{key}\" is not {what}: {e}")))
    }

    fn info(&self, tensor: &str) -> Option<&TensorInfo> {
        self.metadata.info(tensor)
    }

    /// The values of an F32 tensor, checked finite.
    fn values(&self, tensor: &str, info: &TensorInfo) -> Result<Vec<f32>> {
        let (start, end) = info.data_offsets;
        let bytes = self.data.get(start..end).ok_or_else(|| {
            self.err(
                Some(tensor),
                format!("data offsets [{start}, {end}] are outside the file"),
            )
        })?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(j) = values.iter().position(|v| !v.is_finite()) {
            return Err(self.err(
                Some(tensor),
                format!("value {j} is {}, not a finite number", values[j]),
            ));
        }
        Ok(values)
    }
}

/// Format version 1 (see the module documentation).
fn read_v1(file: &FileView) -> Result<Model> {
    let sizes: Vec<usize> = file.json("sizes", "a JSON array of layer widths")?;
    let layout = Layout::new(&sizes).map_err(|e| {
        let msg = match e {
            Error::Config(m) => m,
            other => other.to_string(),
        };
        file.err(None, format!("metadata sizes: {msg}"))
    })?;
    let n_layers = layout.layers.len();
    let expected_arch = if n_layers == 1 { "linear" } else { "mlp" };
    match file.entry("architecture")? {
        a if a == expected_arch => {}
        a @ ("linear" | "mlp") => {
            return Err(file.err(
                None,
                format!(
                    "architecture \"{a}\" does not match sizes {sizes:?} (expected \"{expected_arch}\")"
                ),
            ))
        }
        a => {
            return Err(file.err(
                None,
                format!("unknown architecture \"{}\"", shown(a)),
            ))
        }
    }
    match file.entry("activation")? {
        "relu" => {}
        a => {
            return Err(file.err(
                None,
                format!(
                    "unsupported activation \"{}\" (this vnn supports \"relu\")",
                    shown(a)
                ),
            ))
        }
    }
    let feature_names: Vec<String> = file.json("feature_names", "a JSON array of strings")?;
    let class_names: Vec<String> = file.json("class_names", "a JSON array of strings")?;
    let standardize: Option<StandardizeJson> = file.json(
        "standardize",
        "null or a JSON object {\"mean\": [..], \"scale\": [..]}",
    )?;

    // Tensors: only `layers.{i}.weight` and `layers.{i}.bias`.
    let mut n_file_layers = 0usize;
    for tname in file.metadata.offset_keys() {
        if file.extra_tensors.contains(&tname.as_str()) {
            continue;
        }
        let index = tname
            .strip_prefix("layers.")
            .and_then(|rest| {
                rest.strip_suffix(".weight")
                    .or_else(|| rest.strip_suffix(".bias"))
            })
            .filter(|i| !i.starts_with('0') || i.len() == 1)
            .and_then(|i| i.parse::<usize>().ok());
        match index {
            Some(i) if i < 1 << 20 => n_file_layers = n_file_layers.max(i + 1),
            _ => return Err(file.err(
                Some(&tname),
                "unexpected tensor (a vnn model has only layers.{i}.weight and layers.{i}.bias)"
                    .into(),
            )),
        }
    }
    // Every layer present in the file has both tensors, F32, of the right rank,
    // and consecutive layers chain.
    let mut shapes: Vec<(usize, usize)> = Vec::new();
    for i in 0..n_file_layers {
        let (wn, bn) = (weight_name(i), bias_name(i));
        let get = |tname: &str| -> Result<&TensorInfo> {
            let info = file
                .info(tname)
                .ok_or_else(|| file.err(Some(tname), "missing tensor".into()))?;
            if info.dtype != Dtype::F32 {
                return Err(file.err(
                    Some(tname),
                    format!("dtype is {}, expected F32", info.dtype),
                ));
            }
            Ok(info)
        };
        let w = get(&wn)?.shape.clone();
        let b = get(&bn)?.shape.clone();
        let (n_in, n_out) = match w[..] {
            [n_in, n_out] => (n_in, n_out),
            _ => return Err(file.err(Some(&wn), format!("shape {w:?} is not [n_in, n_out]"))),
        };
        if b[..] != [n_out] {
            return Err(file.err(
                Some(&bn),
                format!("shape {b:?} does not match the weight's {n_out} outputs"),
            ));
        }
        if let Some(&(_, prev_out)) = shapes.last() {
            if n_in != prev_out {
                return Err(file.err(
                    Some(&wn),
                    format!(
                        "shape {w:?} does not chain: layer {} has {prev_out} outputs but layer {i} has {n_in} inputs",
                        i - 1
                    ),
                ));
            }
        }
        shapes.push((n_in, n_out));
    }
    // The tensors agree with the metadata.
    if n_file_layers < n_layers {
        return Err(file.err(
            Some(&weight_name(n_file_layers)),
            format!("missing tensor (metadata sizes {sizes:?} describe {n_layers} layers)"),
        ));
    }
    if n_file_layers > n_layers {
        return Err(file.err(
            Some(&weight_name(n_layers)),
            format!(
                "unexpected tensor: the file has {n_file_layers} layers but metadata sizes {sizes:?} describe {n_layers}"
            ),
        ));
    }
    for (i, (&(n_in, n_out), slot)) in shapes.iter().zip(&layout.layers).enumerate() {
        if (n_in, n_out) != (slot.n_in, slot.n_out) {
            return Err(file.err(
                Some(&weight_name(i)),
                format!(
                    "shape [{n_in}, {n_out}] disagrees with metadata sizes {sizes:?} (expected [{}, {}])",
                    slot.n_in, slot.n_out
                ),
            ));
        }
    }
    if feature_names.len() != layout.n_in() {
        return Err(file.err(
            None,
            format!(
                "feature_names has {} names but the first layer has {} inputs",
                feature_names.len(),
                layout.n_in()
            ),
        ));
    }
    if class_names.len() != layout.n_out() {
        return Err(file.err(
            None,
            format!(
                "class_names has {} names but the last layer has {} outputs",
                class_names.len(),
                layout.n_out()
            ),
        ));
    }
    check_names(file.name, "feature_names", &feature_names, layout.n_in())?;
    check_names(file.name, "class_names", &class_names, layout.n_out())?;
    let standardizer = match standardize {
        None => None,
        Some(s) => {
            let narrow = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            let (mean, scale) = (narrow(&s.mean), narrow(&s.scale));
            check_standardizer(file.name, &mean, &scale, layout.n_in())?;
            Some(Standardizer { mean, scale })
        }
    };

    let mut params = Vec::with_capacity(layout.len);
    for i in 0..n_layers {
        for tname in [weight_name(i), bias_name(i)] {
            let info = file
                .info(&tname)
                .ok_or_else(|| file.err(Some(&tname), "missing tensor".into()))?;
            params.extend(file.values(&tname, info)?);
        }
    }
    if params.len() != layout.len {
        return Err(file.err(
            None,
            format!(
                "the tensors hold {} values but sizes {sizes:?} need {}",
                params.len(),
                layout.len
            ),
        ));
    }
    Ok(Model {
        layout,
        params,
        feature_names,
        class_names,
        standardizer,
    })
}

/// A metadata value for an error message, cut to at most 40 characters.
fn shown(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

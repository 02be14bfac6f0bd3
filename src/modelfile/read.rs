//! The reader: safetensors bytes, checked step by step, to a model. The
//! container (lengths, header, `format`, `format_version`) is checked here;
//! each format version's own reader (`v1`) checks the rest.

use super::{model_err, v1, FORMAT_VERSION, MAX_HEADER_BYTES, RESERVED_KEYS};
use crate::error::{shown, Error, Result};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;

/// What [`decode`] returns: the model, its extra metadata entries and the
/// extra tensors asked for.
pub(crate) type Decoded = (
    crate::model::Model,
    BTreeMap<String, String>,
    Vec<Option<Vec<f32>>>,
);

/// Decodes a file of `format` written by [`super::encode`]: the model, the
/// extra metadata entries, and the values of each of `extra_tensors` (1-D
/// F32, finite; `None` when absent). Any other tensor is an error, as in
/// model files.
pub(crate) fn decode(
    bytes: &[u8],
    name: &str,
    format: &str,
    extra_tensors: &[&str],
) -> Result<Decoded> {
    let kind = format.replace('-', " ");
    check_header_len(bytes, name)?;
    let (n, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| header_error(bytes, name, e))?;
    let data = bytes.get(8 + n..).unwrap_or_default();
    let entries = format_entries(&metadata, name, format, &kind)?;
    let version = format_version(&entries, name)?;
    let file = FileView {
        name,
        metadata: &metadata,
        data,
        entries: &entries,
        extra_tensors,
    };
    let model = match version {
        1 => v1::read_v1(&file)?,
        v => {
            return Err(model_err(
                name,
                None,
                format!(
                    "format version {v} is newer than this vnn supports ({FORMAT_VERSION}); upgrade vnn to read this {}",
                    kind.rsplit(' ').next().unwrap_or("file")
                ),
            ))
        }
    };
    let tensors = extra_tensors
        .iter()
        .map(|&tname| file.extra_tensor(tname))
        .collect::<Result<Vec<_>>>()?;
    let extra = entries
        .into_iter()
        .filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str()))
        .collect();
    Ok((model, extra, tensors))
}

/// Checks the 8-byte header length against the file before the header is
/// parsed: present, within the file, within [`MAX_HEADER_BYTES`].
fn check_header_len(bytes: &[u8], name: &str) -> Result<()> {
    let err = |msg: String| model_err(name, None, msg);
    let len = bytes.len() as u64;
    let Some(head) = bytes.get(..8) else {
        return Err(err(format!(
            "truncated: {len} bytes, shorter than the 8-byte header length of a safetensors file"
        )));
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(head);
    let header_len = u64::from_le_bytes(n);
    if header_len > len - 8 {
        return Err(err(format!(
            "the header length {header_len} exceeds the {} bytes after it: truncated or not a safetensors file",
            len - 8
        )));
    }
    if header_len > MAX_HEADER_BYTES {
        return Err(err(format!(
            "the header length {header_len} is larger than the limit of {MAX_HEADER_BYTES} bytes"
        )));
    }
    Ok(())
}

/// The metadata entries of a file whose `format` entry is `format` (`kind`
/// is the format's name in prose).
fn format_entries(
    metadata: &Metadata,
    name: &str,
    format: &str,
    kind: &str,
) -> Result<BTreeMap<String, String>> {
    let err = |msg: String| model_err(name, None, msg);
    let Some(entries) = metadata.metadata() else {
        return Err(err(format!(
            "not a {kind}: the file has no metadata (expected format = \"{format}\")"
        )));
    };
    match entries.get("format") {
        Some(f) if f == format => {}
        Some(f) => {
            return Err(err(format!(
                "not a {kind}: format is \"{}\", expected \"{format}\"",
                shown(f)
            )))
        }
        None => {
            return Err(err(format!(
                "not a {kind}: the metadata has no \"format\" entry (expected \"{format}\")"
            )))
        }
    }
    Ok(entries
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

/// The `format_version` entry: a whole number of at least 1.
fn format_version(entries: &BTreeMap<String, String>, name: &str) -> Result<u32> {
    let version = entries
        .get("format_version")
        .ok_or_else(|| model_err(name, None, "missing metadata entry \"format_version\""))?;
    match version.trim().parse() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(model_err(
            name,
            None,
            format!(
                "format_version \"{}\" is not a version number",
                shown(version)
            ),
        )),
    }
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
pub(super) struct FileView<'a> {
    /// The file, for error messages.
    pub(super) name: &'a str,
    /// The parsed header.
    pub(super) metadata: &'a Metadata,
    /// The data section (after the header).
    data: &'a [u8],
    entries: &'a BTreeMap<String, String>,
    /// Tensors besides the layers that this kind of file may hold.
    pub(super) extra_tensors: &'a [&'a str],
}

impl FileView<'_> {
    /// An [`Error::Model`] about this file.
    pub(super) fn err(&self, tensor: Option<&str>, msg: String) -> Error {
        model_err(self.name, tensor, msg)
    }

    /// The metadata entry `key`, which must be present.
    pub(super) fn entry(&self, key: &str) -> Result<&str> {
        self.entries
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| self.err(None, format!("missing metadata entry \"{key}\"")))
    }

    /// The metadata entry `key`, if present.
    pub(super) fn optional_entry(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The metadata entry `key` parsed as JSON; `what` describes the
    /// expected value in the error.
    pub(super) fn json<T: serde::de::DeserializeOwned>(&self, key: &str, what: &str) -> Result<T> {
        let text = self.entry(key)?;
        serde_json::from_str(text)
            .map_err(|e| self.err(None, format!("metadata entry \"{key}\" is not {what}: {e}")))
    }

    /// The tensor `tensor`, when the file has it.
    pub(super) fn info(&self, tensor: &str) -> Option<&TensorInfo> {
        self.metadata.info(tensor)
    }

    /// The tensor `tensor` when the file has it, checked to be F32.
    pub(super) fn f32_info(&self, tensor: &str) -> Result<Option<&TensorInfo>> {
        match self.info(tensor) {
            Some(info) if info.dtype != Dtype::F32 => Err(self.err(
                Some(tensor),
                format!("dtype is {}, expected F32", info.dtype),
            )),
            found => Ok(found),
        }
    }

    /// The values of an F32 tensor, checked finite.
    pub(super) fn values(&self, tensor: &str, info: &TensorInfo) -> Result<Vec<f32>> {
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

    /// The values of an extra tensor (1-D F32, finite), `None` when absent.
    fn extra_tensor(&self, tensor: &str) -> Result<Option<Vec<f32>>> {
        let Some(info) = self.f32_info(tensor)? else {
            return Ok(None);
        };
        if info.shape.len() != 1 {
            return Err(self.err(
                Some(tensor),
                format!("shape {:?} is not one-dimensional", info.shape),
            ));
        }
        self.values(tensor, info).map(Some)
    }
}

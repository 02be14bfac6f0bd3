//! The writer: a model (and any extra tensors) to safetensors bytes.

use super::{
    bias_name, check_names, check_standardizer, model_err, weight_name, StandardizeJson,
    FORMAT_VERSION, RESERVED_KEYS,
};
use crate::error::Result;
use crate::model::Model;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Encodes `model` as a file of `format` (the `format` metadata entry): the
/// model's tensors and metadata, then `extra_tensors` (1-D F32, finite)
/// after the layers. Model files use [`super::FORMAT`] and no extra tensors;
/// checkpoints add the optimizer state.
pub(crate) fn encode(
    model: &Model,
    extra: &BTreeMap<String, String>,
    name: &str,
    format: &str,
    extra_tensors: &[(&str, &[f32])],
) -> Result<Vec<u8>> {
    check_model(model, extra, name)?;
    let layout = &model.layout;
    let mut header = Map::new();
    header.insert(
        "__metadata__".into(),
        Value::Object(
            metadata(model, extra, format)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ),
    );
    // Tensors in layer order: the data section is the flat parameter buffer.
    let mut tensors = Tensors {
        name,
        header,
        data: Vec::with_capacity(4 * layout.len),
    };
    for (i, slot) in layout.layers.iter().enumerate() {
        let weight = &model.params()[slot.weight_range()];
        tensors.push(weight_name(i), weight, &[slot.n_in, slot.n_out])?;
        let bias = &model.params()[slot.bias_range()];
        tensors.push(bias_name(i), bias, &[slot.n_out])?;
    }
    for &(tname, values) in extra_tensors {
        tensors.push(tname.to_string(), values, &[values.len()])?;
    }
    tensors.finish()
}

/// Refuses a model the format cannot hold: a reserved extra key, a
/// parameter buffer of the wrong length, name counts that disagree with the
/// layout, duplicate names, or an invalid standardizer.
fn check_model(model: &Model, extra: &BTreeMap<String, String>, name: &str) -> Result<()> {
    let layout = &model.layout;
    if let Some(k) = extra.keys().find(|k| RESERVED_KEYS.contains(&k.as_str())) {
        return Err(model_err(
            name,
            None,
            format!("metadata key '{k}' is reserved for the model format"),
        ));
    }
    if model.params().len() != layout.len {
        return Err(model_err(
            name,
            None,
            format!(
                "the model has {} parameters but its layout needs {}",
                model.params().len(),
                layout.len
            ),
        ));
    }
    check_names(name, "feature_names", &model.feature_names, layout.n_in())?;
    check_names(name, "class_names", &model.class_names, layout.n_out())?;
    if let Some(s) = &model.standardizer {
        check_standardizer(name, &s.mean, &s.scale, layout.n_in())?;
    }
    Ok(())
}

/// The `__metadata__` entries: `extra`, then the format's own keys
/// ([`RESERVED_KEYS`]).
fn metadata(
    model: &Model,
    extra: &BTreeMap<String, String>,
    format: &str,
) -> BTreeMap<String, String> {
    let mut meta = extra.clone();
    meta.insert("format".into(), format.into());
    meta.insert("format_version".into(), FORMAT_VERSION.to_string());
    meta.insert("architecture".into(), model.architecture().into());
    meta.insert("sizes".into(), to_json(&model.layout.sizes));
    meta.insert("activation".into(), model.activation.name().into());
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
    meta
}

/// JSON text of a plain value (vectors, strings, numbers: cannot fail).
fn to_json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The header and data section being written.
struct Tensors<'a> {
    /// The file, for error messages.
    name: &'a str,
    header: Map<String, Value>,
    data: Vec<u8>,
}

impl Tensors<'_> {
    /// Appends the F32 tensor `tname` of `shape` holding `values` (checked
    /// finite) after the tensors so far.
    fn push(&mut self, tname: String, values: &[f32], shape: &[usize]) -> Result<()> {
        if let Some(j) = values.iter().position(|v| !v.is_finite()) {
            return Err(model_err(
                self.name,
                Some(&tname),
                format!("cannot save: value {j} is {}", values[j]),
            ));
        }
        let start = self.data.len();
        self.data
            .extend(values.iter().flat_map(|v| v.to_le_bytes()));
        self.header.insert(
            tname,
            serde_json::json!({
                "dtype": "F32",
                "shape": shape,
                "data_offsets": [start, self.data.len()],
            }),
        );
        Ok(())
    }

    /// The file's bytes: header length, header (padded with spaces so the
    /// data starts 8-byte aligned), data.
    fn finish(self) -> Result<Vec<u8>> {
        let mut header = serde_json::to_vec(&Value::Object(self.header))
            .map_err(|e| model_err(self.name, None, format!("cannot encode the header: {e}")))?;
        header.resize(header.len().next_multiple_of(8), b' ');
        let mut out = Vec::with_capacity(8 + header.len() + self.data.len());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.data);
        Ok(out)
    }
}

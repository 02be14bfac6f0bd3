//! The reader of format version 1 (see the module documentation of
//! [`crate::modelfile`]): the metadata, then the tensors, then how the two
//! agree, each a step of its own.

use super::read::FileView;
use super::{bias_name, check_names, check_standardizer, weight_name, StandardizeJson};
use crate::data::Standardizer;
use crate::error::{shown, Error, Result};
use crate::model::{Activation, Layout, Model};

/// Layers a file may name (`layers.{i}.*` with `i` below this).
const MAX_FILE_LAYERS: usize = 1 << 20;

/// Format version 1 (see the module documentation).
pub(super) fn read_v1(file: &FileView) -> Result<Model> {
    let sizes: Vec<usize> = file.json("sizes", "a JSON array of layer widths")?;
    let layout = layout_of(file, &sizes)?;
    check_architecture(file, &layout, &sizes)?;
    let activation = read_activation(file)?;
    let feature_names: Vec<String> = file.json("feature_names", "a JSON array of strings")?;
    let class_names: Vec<String> = file.json("class_names", "a JSON array of strings")?;
    let standardize: Option<StandardizeJson> = file.json(
        "standardize",
        "null or a JSON object {\"mean\": [..], \"scale\": [..]}",
    )?;

    let shapes = layer_shapes(file, count_file_layers(file)?)?;
    check_shapes(file, &shapes, &layout, &sizes)?;
    check_name_count(
        file,
        "feature_names",
        &feature_names,
        layout.n_in(),
        "first layer",
        "inputs",
    )?;
    check_name_count(
        file,
        "class_names",
        &class_names,
        layout.n_out(),
        "last layer",
        "outputs",
    )?;
    check_names(file.name, "feature_names", &feature_names, layout.n_in())?;
    check_names(file.name, "class_names", &class_names, layout.n_out())?;
    let standardizer = match standardize {
        None => None,
        Some(s) => Some(standardizer_of(file, &s, layout.n_in())?),
    };
    let params = read_params(file, &layout, &sizes)?;
    let mut model = Model::with_layout(layout, params);
    model.feature_names = feature_names;
    model.class_names = class_names;
    model.standardizer = standardizer;
    model.activation = activation;
    Ok(model)
}

/// The layout described by the `sizes` entry.
fn layout_of(file: &FileView, sizes: &[usize]) -> Result<Layout> {
    Layout::new(sizes).map_err(|e| {
        let msg = match e {
            Error::Setting {
                what,
                expected,
                got,
            } => format!("{what} must be {expected}, got {got}"),
            other => other.to_string(),
        };
        file.err(None, format!("metadata sizes: {msg}"))
    })
}

/// The `architecture` entry names the kind `sizes` describe: `linear` for
/// one layer, `mlp` for more.
fn check_architecture(file: &FileView, layout: &Layout, sizes: &[usize]) -> Result<()> {
    let expected = if layout.layers.len() == 1 {
        "linear"
    } else {
        "mlp"
    };
    match file.entry("architecture")? {
        a if a == expected => Ok(()),
        a @ ("linear" | "mlp") => Err(file.err(
            None,
            format!(
                "architecture \"{a}\" does not match sizes {sizes:?} (expected \"{expected}\")"
            ),
        )),
        a => Err(file.err(None, format!("unknown architecture \"{}\"", shown(a)))),
    }
}

/// The hidden activation the `activation` entry names
/// ([`Activation::name`]); ReLU when the entry is missing, as in files of
/// vnn versions that computed nothing else.
fn read_activation(file: &FileView) -> Result<Activation> {
    let Some(name) = file.optional_entry("activation") else {
        return Ok(Activation::Relu);
    };
    Activation::from_name(name).ok_or_else(|| {
        let names: Vec<String> = Activation::ALL
            .iter()
            .map(|a| format!("\"{}\"", a.name()))
            .collect();
        let msg = format!(
            "metadata entry \"activation\" is \"{}\", expected one of {}",
            shown(name),
            names.join(", ")
        );
        file.err(None, msg)
    })
}

/// The number of layers the tensor names speak of (one more than the
/// largest `i` of `layers.{i}.weight` / `layers.{i}.bias`); any other tensor
/// but the file kind's extra tensors is an error.
fn count_file_layers(file: &FileView) -> Result<usize> {
    let mut n_file_layers = 0usize;
    for tname in file.metadata.offset_keys() {
        if file.extra_tensors.contains(&tname.as_str()) {
            continue;
        }
        match layer_index(&tname) {
            Some(i) if i < MAX_FILE_LAYERS => n_file_layers = n_file_layers.max(i + 1),
            _ => return Err(file.err(
                Some(&tname),
                "unexpected tensor (a vnn model has only layers.{i}.weight and layers.{i}.bias)"
                    .into(),
            )),
        }
    }
    Ok(n_file_layers)
}

/// `i` of a tensor named `layers.{i}.weight` or `layers.{i}.bias` (decimal,
/// no leading zero).
fn layer_index(tname: &str) -> Option<usize> {
    tname
        .strip_prefix("layers.")
        .and_then(|rest| {
            rest.strip_suffix(".weight")
                .or_else(|| rest.strip_suffix(".bias"))
        })
        .filter(|i| !i.starts_with('0') || i.len() == 1)
        .and_then(|i| i.parse::<usize>().ok())
}

/// The `(n_in, n_out)` of each of the file's first `n_file_layers` layers:
/// both tensors present, F32, of the right rank, and consecutive layers
/// chain.
fn layer_shapes(file: &FileView, n_file_layers: usize) -> Result<Vec<(usize, usize)>> {
    let mut shapes: Vec<(usize, usize)> = Vec::new();
    for i in 0..n_file_layers {
        let (wn, bn) = (weight_name(i), bias_name(i));
        let get = |tname: &str| {
            file.f32_info(tname)?
                .ok_or_else(|| file.err(Some(tname), "missing tensor".into()))
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
    Ok(shapes)
}

/// The file's layers agree with the metadata: as many, of the same shapes.
fn check_shapes(
    file: &FileView,
    shapes: &[(usize, usize)],
    layout: &Layout,
    sizes: &[usize],
) -> Result<()> {
    let (n_file_layers, n_layers) = (shapes.len(), layout.layers.len());
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
    Ok(())
}

/// The names under `key` are as many as the `expected` `unit` of `layer`
/// (for example the 2 inputs of the first layer).
fn check_name_count(
    file: &FileView,
    key: &str,
    names: &[String],
    expected: usize,
    layer: &str,
    unit: &str,
) -> Result<()> {
    if names.len() == expected {
        return Ok(());
    }
    Err(file.err(
        None,
        format!(
            "{key} has {} names but the {layer} has {expected} {unit}",
            names.len()
        ),
    ))
}

/// The standardizer of the `standardize` entry, narrowed to `f32` (exact
/// for values the writer widened) and checked.
fn standardizer_of(file: &FileView, s: &StandardizeJson, n_in: usize) -> Result<Standardizer> {
    let narrow = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let (mean, scale) = (narrow(&s.mean), narrow(&s.scale));
    check_standardizer(file.name, &mean, &scale, n_in)?;
    Ok(Standardizer { mean, scale })
}

/// The flat parameter buffer: every layer's weight then bias, in layer
/// order.
fn read_params(file: &FileView, layout: &Layout, sizes: &[usize]) -> Result<Vec<f32>> {
    let mut params = Vec::with_capacity(layout.len);
    for i in 0..layout.layers.len() {
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
    Ok(params)
}

//! ONNX export: a trained [`Model`] as an ONNX graph that onnxruntime, tract
//! or any other ONNX runtime can run.
//!
//! The graph, for `input: float32 [N, n_features]` (`N` is a dynamic batch
//! dimension):
//! - with a standardizer, `Sub(input, standardize.mean)` then
//!   `Div(.., standardize.scale)`: the same `(x - mean) / scale` in float32
//!   as [`Standardizer::apply_row`](crate::data::Standardizer::apply_row),
//!   so the standardized inputs are the same bits (it is not folded into the
//!   first layer, which would change the rounding);
//! - per layer `i`, `Gemm(x, layers.{i}.weight, layers.{i}.bias)` with
//!   `transB = 0` (the weight is `[n_in, n_out]`, used as `x @ W`, as in the
//!   model file), followed for every hidden layer by the node of the
//!   model's [`Activation`]: `Relu`, `Tanh`, `Sigmoid` or `LeakyRelu` (with
//!   `alpha` = [`LEAKY_RELU_SLOPE`]); the last Gemm gives `logits`;
//! - the outputs `probabilities` (float32 `[N, n_classes]`,
//!   `Softmax(axis = -1)` of the logits) and `class` (int64 `[N]`, the index
//!   of the largest logit: `ArgMax(axis = 1, keepdims = 0)`, the first one on
//!   a tie, as [`Model::predict`]).
//!
//! The model declares opset [`OPSET`] of the default domain and IR version
//! [`IR_VERSION`]. Its `metadata_props` hold `feature_names` and
//! `class_names` (JSON arrays of strings) and `vnn_version`; its
//! `producer_name` is `vnn`. Weights, biases, means and scales are stored
//! as little-endian float32 `raw_data`, bit for bit.

use crate::error::{Error, Result};
use crate::model::{Activation, Model};
use prost::Message;
use std::path::Path;
use vnn_kernels::activation::LEAKY_RELU_SLOPE;

/// The ONNX opset version of the default domain the graph uses.
pub const OPSET: i64 = 17;

/// The ONNX IR version written: the one that goes with [`OPSET`].
pub const IR_VERSION: i64 = 8;

/// The name of the graph's input.
pub const INPUT: &str = "input";

/// The name of the probabilities output.
pub const PROBABILITIES: &str = "probabilities";

/// The name of the predicted-class output.
pub const CLASS: &str = "class";

/// The protobuf messages of an ONNX model (defined in `crate::proto`).
// Hidden with `crate::proto`: public for `tests/cli.rs`, which decodes an
// exported model.
#[doc(hidden)]
pub use crate::proto::onnx as proto;

use proto::{
    AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TensorType,
    TypeProto, TypeValue, ValueInfoProto,
};

/// A float32 initializer named `name` of shape `dims` holding `values`.
fn tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: proto::FLOAT,
        name: name.to_string(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// An integer attribute.
fn int_attribute(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(proto::ATTRIBUTE_INT),
        f: None,
        i: Some(value),
    }
}

/// A float attribute.
fn float_attribute(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(proto::ATTRIBUTE_FLOAT),
        f: Some(value),
        i: None,
    }
}

/// The ONNX operator of `act` and its attributes.
fn activation_op(act: Activation) -> (&'static str, Vec<AttributeProto>) {
    match act {
        Activation::Relu => ("Relu", vec![]),
        Activation::Tanh => ("Tanh", vec![]),
        Activation::Sigmoid => ("Sigmoid", vec![]),
        Activation::LeakyRelu => (
            "LeakyRelu",
            vec![float_attribute("alpha", LEAKY_RELU_SLOPE)],
        ),
    }
}

/// A node `op_type` named `name` from `input` to `output`.
fn node(
    op_type: &str,
    name: &str,
    input: &[&str],
    output: &str,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: input.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: name.to_string(),
        op_type: op_type.to_string(),
        attribute,
    }
}

/// A tensor value of element type `elem_type` and shape `[N, width]`, or
/// `[N]` without a width.
fn batch_value(name: &str, elem_type: i32, width: Option<usize>) -> ValueInfoProto {
    let batch = Dimension {
        value: Some(DimensionValue::DimParam("N".into())),
    };
    let fixed = width.map(|w| Dimension {
        value: Some(DimensionValue::DimValue(w as i64)),
    });
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type,
                shape: Some(TensorShapeProto {
                    dim: std::iter::once(batch).chain(fixed).collect(),
                }),
            })),
        }),
    }
}

/// Refuses a model whose parts disagree, which would make an invalid graph.
fn check(model: &Model) -> Result<()> {
    let d = model.n_features();
    let mut lengths = vec![
        ("model parameters", model.layout.len, model.params().len()),
        ("feature names", d, model.feature_names.len()),
        ("class names", model.n_classes(), model.class_names.len()),
    ];
    if let Some(s) = &model.standardizer {
        lengths.push(("standardization means", d, s.mean.len()));
        lengths.push(("standardization scales", d, s.scale.len()));
    }
    for (what, expected, got) in lengths {
        if expected != got {
            return Err(Error::Shape {
                what: what.into(),
                expected,
                got,
            });
        }
    }
    Ok(())
}

/// The graph's nodes and initializers, from `input` to `logits`, then the
/// two outputs.
fn nodes(model: &Model) -> (Vec<NodeProto>, Vec<TensorProto>) {
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    let mut x = INPUT.to_string();
    if let Some(s) = &model.standardizer {
        let d = model.n_features();
        inits.push(tensor("standardize.mean", &[d], &s.mean));
        inits.push(tensor("standardize.scale", &[d], &s.scale));
        nodes.push(node(
            "Sub",
            "standardize.sub",
            &[&x, "standardize.mean"],
            "standardize.centered",
            vec![],
        ));
        nodes.push(node(
            "Div",
            "standardize.div",
            &["standardize.centered", "standardize.scale"],
            "standardized",
            vec![],
        ));
        x = "standardized".into();
    }
    let last = model.layout.layers.len() - 1;
    for (i, slot) in model.layout.layers.iter().enumerate() {
        let (w, b) = model.layer(i);
        let (weight, bias) = (format!("layers.{i}.weight"), format!("layers.{i}.bias"));
        inits.push(tensor(&weight, &[slot.n_in, slot.n_out], w));
        inits.push(tensor(&bias, &[slot.n_out], b));
        let linear = if i == last {
            "logits".to_string()
        } else {
            format!("layers.{i}.linear")
        };
        let attributes = vec![int_attribute("transA", 0), int_attribute("transB", 0)];
        let gemm = format!("layers.{i}.gemm");
        nodes.push(node(
            "Gemm",
            &gemm,
            &[&x, &weight, &bias],
            &linear,
            attributes,
        ));
        x = linear;
        if i != last {
            let (op, attributes) = activation_op(model.activation);
            let name = format!("layers.{i}.{}", model.activation.name());
            nodes.push(node(op, &name, &[&x], &name, attributes));
            x = name;
        }
    }
    let softmax = vec![int_attribute("axis", -1)];
    nodes.push(node("Softmax", "softmax", &[&x], PROBABILITIES, softmax));
    let argmax = vec![int_attribute("axis", 1), int_attribute("keepdims", 0)];
    nodes.push(node("ArgMax", "argmax", &[&x], CLASS, argmax));
    (nodes, inits)
}

/// The metadata entries: feature names, class names and vnn's version.
fn metadata(model: &Model) -> Vec<StringStringEntryProto> {
    let json = |names: &[String]| serde_json::Value::from(names).to_string();
    [
        ("feature_names", json(&model.feature_names)),
        ("class_names", json(&model.class_names)),
        ("vnn_version", env!("CARGO_PKG_VERSION").to_string()),
    ]
    .into_iter()
    .map(|(key, value)| StringStringEntryProto {
        key: key.into(),
        value,
    })
    .collect()
}

/// The ONNX model of `model` (see the [module docs](self) for its graph).
///
/// # Errors
/// [`Error::Shape`] if the model's parameter count, feature or class names
/// or standardizer do not match its layout.
pub(crate) fn to_onnx(model: &Model) -> Result<ModelProto> {
    check(model)?;
    let (node, initializer) = nodes(model);
    let graph = GraphProto {
        node,
        name: format!("vnn_{}", model.architecture()),
        initializer,
        input: vec![batch_value(INPUT, proto::FLOAT, Some(model.n_features()))],
        output: vec![
            batch_value(PROBABILITIES, proto::FLOAT, Some(model.n_classes())),
            batch_value(CLASS, proto::INT64, None),
        ],
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "vnn".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "vnn {} classifier, layer widths {:?}",
            model.architecture(),
            model.layout.sizes
        ),
        graph: Some(graph),
        metadata_props: metadata(model),
    })
}

/// The ONNX model of `model` as the bytes of a `.onnx` file.
///
/// # Errors
/// [`Error::Shape`] if the model's parameter count, feature or class names
/// or standardizer do not match its layout.
///
/// # Example
/// ```
/// use prost::Message;
/// use vnn::model::{Init, Model};
/// use vnn::onnx::proto::ModelProto;
///
/// let model = Model::new(&[2, 8, 3], Init::He, 0).unwrap();
/// let bytes = vnn::onnx::to_onnx_bytes(&model).unwrap();
/// let onnx = ModelProto::decode(&bytes[..]).unwrap();
/// assert_eq!(onnx.opset_import[0].domain, "");
/// assert_eq!(onnx.opset_import[0].version, vnn::onnx::OPSET);
/// let graph = onnx.graph.unwrap();
/// assert_eq!(graph.input[0].name, "input");
/// let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
/// assert_eq!(outputs, ["probabilities", "class"]);
/// let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
/// assert_eq!(ops, ["Gemm", "Relu", "Gemm", "Softmax", "ArgMax"]);
/// ```
pub fn to_onnx_bytes(model: &Model) -> Result<Vec<u8>> {
    Ok(to_onnx(model)?.encode_to_vec())
}

/// Writes the ONNX model of `model` to `path`, atomically
/// ([`write_atomic`](crate::fsutil::write_atomic)): on failure nothing is
/// left half-written.
///
/// # Errors
/// As [`to_onnx_bytes`]; [`Error::Io`] naming `path` if it cannot be written.
pub fn save_onnx(model: &Model, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    crate::fsutil::write_atomic(path, &to_onnx_bytes(model)?)
}

#[cfg(test)]
mod tests {
    use super::proto::{DimensionValue, GraphProto, ModelProto, TypeValue, ValueInfoProto};
    use super::*;
    use crate::data::Standardizer;
    use crate::model::Init;
    use std::collections::HashSet;

    fn ops(graph: &GraphProto) -> Vec<&str> {
        graph.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    /// The initializer `name` as floats, with its shape.
    fn initializer(graph: &GraphProto, name: &str) -> (Vec<i64>, Vec<f32>) {
        let t = graph.initializer.iter().find(|t| t.name == name).unwrap();
        assert_eq!(t.data_type, proto::FLOAT, "{name}");
        let values = t
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (t.dims.clone(), values)
    }

    /// Element type and dimensions of a graph input or output.
    fn shape(v: &ValueInfoProto) -> (i32, Vec<DimensionValue>) {
        let Some(TypeValue::TensorType(t)) = v.r#type.as_ref().unwrap().value.clone() else {
            panic!("{} is not a tensor", v.name);
        };
        let dims = t.shape.unwrap().dim.into_iter();
        (t.elem_type, dims.map(|d| d.value.unwrap()).collect())
    }

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    /// Decodes the bytes of `model` and checks what every export holds:
    /// versions, metadata, inputs and outputs, every layer's weight and bias
    /// bit for bit, and that each node reads only values defined before it.
    fn exported(model: &Model) -> GraphProto {
        let onnx = ModelProto::decode(&to_onnx_bytes(model).unwrap()[..]).unwrap();
        assert_eq!(onnx, to_onnx(model).unwrap());
        assert_eq!((onnx.ir_version, onnx.producer_name.as_str()), (8, "vnn"));
        assert_eq!(onnx.opset_import.len(), 1);
        assert_eq!(onnx.opset_import[0].domain, "");
        assert!(onnx.opset_import[0].version >= 13);
        let meta: Vec<(&str, &str)> = onnx
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        let features = serde_json::to_string(&model.feature_names).unwrap();
        let classes = serde_json::to_string(&model.class_names).unwrap();
        assert_eq!(
            meta,
            [
                ("feature_names", features.as_str()),
                ("class_names", classes.as_str()),
                ("vnn_version", env!("CARGO_PKG_VERSION")),
            ]
        );
        let graph = onnx.graph.unwrap();
        let n = || DimensionValue::DimParam("N".into());
        let fixed = |w: usize| DimensionValue::DimValue(w as i64);
        assert_eq!(graph.input.len(), 1);
        assert_eq!(graph.input[0].name, "input");
        assert_eq!(
            shape(&graph.input[0]),
            (proto::FLOAT, vec![n(), fixed(model.n_features())])
        );
        assert_eq!(graph.output.len(), 2);
        assert_eq!(graph.output[0].name, "probabilities");
        assert_eq!(
            shape(&graph.output[0]),
            (proto::FLOAT, vec![n(), fixed(model.n_classes())])
        );
        assert_eq!(graph.output[1].name, "class");
        assert_eq!(shape(&graph.output[1]), (proto::INT64, vec![n()]));
        for (i, slot) in model.layout.layers.iter().enumerate() {
            let (w, b) = model.layer(i);
            let (dims, got) = initializer(&graph, &format!("layers.{i}.weight"));
            assert_eq!(dims, [slot.n_in as i64, slot.n_out as i64]);
            assert!(same_bits(&got, w), "layer {i} weight");
            let (dims, got) = initializer(&graph, &format!("layers.{i}.bias"));
            assert_eq!(dims, [slot.n_out as i64]);
            assert!(same_bits(&got, b), "layer {i} bias");
        }
        let mut defined: HashSet<&str> = graph.initializer.iter().map(|t| &*t.name).collect();
        defined.insert("input");
        for node in &graph.node {
            for input in &node.input {
                assert!(
                    defined.contains(input.as_str()),
                    "{} reads {input}",
                    node.name
                );
            }
            assert!(defined.insert(&node.output[0]), "{} redefines", node.name);
        }
        graph
    }

    fn int_attributes(graph: &GraphProto, op: &str) -> Vec<Vec<(String, i64)>> {
        let nodes = graph.node.iter().filter(|n| n.op_type == op);
        nodes
            .map(|n| {
                let attrs = n.attribute.iter();
                attrs.map(|a| (a.name.clone(), a.i.unwrap())).collect()
            })
            .collect()
    }

    #[test]
    fn a_linear_model_is_one_gemm_then_softmax_and_argmax() {
        let model = Model::new(&[3, 4], Init::He, 5).unwrap();
        let graph = exported(&model);
        assert_eq!(ops(&graph), ["Gemm", "Softmax", "ArgMax"]);
        assert_eq!(
            graph.node[0].input,
            ["input", "layers.0.weight", "layers.0.bias"]
        );
        assert_eq!(graph.node[0].output, ["logits"]);
        assert_eq!(graph.node[1].input, ["logits"]);
        assert_eq!(graph.node[2].input, ["logits"]);
        assert_eq!(graph.initializer.len(), 2);
        let gemm = [("transA".to_string(), 0), ("transB".to_string(), 0)];
        assert_eq!(int_attributes(&graph, "Gemm"), [gemm]);
        assert_eq!(int_attributes(&graph, "Softmax"), [[("axis".into(), -1)]]);
        let argmax = [("axis".to_string(), 1), ("keepdims".to_string(), 0)];
        assert_eq!(int_attributes(&graph, "ArgMax"), [argmax]);
    }

    #[test]
    fn a_standardized_mlp_subtracts_divides_then_runs_every_layer() {
        let mut model = Model::new(&[3, 8, 5, 2], Init::He, 7).unwrap();
        model.feature_names = vec!["a".into(), "b \"quoted\"".into(), "c".into()];
        model.class_names = vec!["no".into(), "yes".into()];
        let features = [1.0, -2.0, 0.5, 3.0, 0.25, 0.5, -1.0, 7.0, 0.5];
        let standardizer = Standardizer::fit(&features, 3);
        model.standardizer = Some(standardizer.clone());
        let graph = exported(&model);
        let expected = [
            "Sub", "Div", "Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax", "ArgMax",
        ];
        assert_eq!(ops(&graph), expected);
        assert_eq!(graph.node[0].input, ["input", "standardize.mean"]);
        assert_eq!(graph.node[2].input[0], graph.node[1].output[0]);
        assert_eq!(graph.node[6].output, ["logits"]);
        let (dims, mean) = initializer(&graph, "standardize.mean");
        assert_eq!(dims, [3]);
        assert!(same_bits(&mean, &standardizer.mean));
        let (dims, scale) = initializer(&graph, "standardize.scale");
        assert_eq!(dims, [3]);
        assert!(same_bits(&scale, &standardizer.scale));
        assert_eq!(graph.initializer.len(), 2 + 2 * 3);
    }

    #[test]
    fn an_mlp_without_standardizer_starts_at_the_first_gemm() {
        let model = Model::new(&[2, 6, 4, 3], Init::Small, 1).unwrap();
        let graph = exported(&model);
        assert_eq!(
            ops(&graph),
            ["Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax", "ArgMax"]
        );
        assert_eq!(graph.node[0].input[0], "input");
        assert_eq!(graph.initializer.len(), 6);
    }

    #[test]
    fn each_activation_is_its_onnx_operator() {
        let expected = [
            (Activation::Relu, "Relu"),
            (Activation::Tanh, "Tanh"),
            (Activation::Sigmoid, "Sigmoid"),
            (Activation::LeakyRelu, "LeakyRelu"),
        ];
        for (act, op) in expected {
            let model = Model::new(&[2, 6, 4, 3], Init::He, 1).unwrap();
            let graph = exported(&model.with_activation(act));
            assert_eq!(
                ops(&graph),
                ["Gemm", op, "Gemm", op, "Gemm", "Softmax", "ArgMax"]
            );
            for n in graph.node.iter().filter(|n| n.op_type == op) {
                let attributes: Vec<_> = n
                    .attribute
                    .iter()
                    .map(|a| (a.name.as_str(), a.r#type, a.f, a.i))
                    .collect();
                match act {
                    // ONNX's default alpha is 0.01 too; it is written anyway.
                    Activation::LeakyRelu => assert_eq!(
                        attributes,
                        [("alpha", Some(proto::ATTRIBUTE_FLOAT), Some(0.01), None)]
                    ),
                    _ => assert!(attributes.is_empty(), "{op}: {attributes:?}"),
                }
            }
        }
    }

    #[test]
    fn a_model_whose_parts_disagree_is_refused() {
        let mut model = Model::new(&[2, 3], Init::He, 0).unwrap();
        model.params_vec_mut().pop();
        let err = to_onnx_bytes(&model).unwrap_err().to_string();
        assert_eq!(err, "model parameters: expected 9 values, got 8");
        let mut model = Model::new(&[2, 3], Init::He, 0).unwrap();
        model.standardizer = Some(Standardizer::fit(&[1.0, 2.0, 3.0], 3));
        let err = to_onnx(&model).unwrap_err().to_string();
        assert_eq!(err, "standardization means: expected 2 values, got 3");
    }

    #[test]
    fn save_onnx_writes_the_bytes_or_nothing() {
        let dir = std::env::temp_dir().join(format!("vnn-onnx-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let model = Model::new(&[2, 4, 3], Init::He, 3).unwrap();
        let path = dir.join("m.onnx");
        save_onnx(&model, &path).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            to_onnx_bytes(&model).unwrap()
        );
        let missing = dir.join("no such dir").join("m.onnx");
        assert!(matches!(save_onnx(&model, &missing), Err(Error::Io { .. })));
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

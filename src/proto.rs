//! The protobuf messages vnn writes, derived with `prost`: the event
//! records of TensorBoard ([`crate::tensorboard`]) and the model of ONNX
//! ([`crate::onnx`]). Each keeps the field numbers of its upstream
//! schema; only the fields vnn writes are declared.
//!
//! Hidden from the docs: these are wire details (and `prost` types), not a
//! user API. They stay public for the integration tests that decode what
//! vnn writes (`tests/formats.rs` reads event records, `tests/cli.rs` an
//! exported ONNX model).
#![doc(hidden)]

#[cfg(feature = "tensorboard")]
/// The protobuf messages of an event file: the subset of TensorBoard's
/// `Event`, `Summary`, `HistogramProto`, `SummaryMetadata`, `TensorProto`
/// and the hparams plugin's messages that vnn writes, with the same field
/// numbers.
pub mod tensorboard {
    /// One record of an event file.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        /// Seconds since the Unix epoch.
        #[prost(double, tag = "1")]
        pub wall_time: f64,
        /// Training step.
        #[prost(int64, tag = "2")]
        pub step: i64,
        /// The payload.
        #[prost(oneof = "What", tags = "3, 5")]
        pub what: Option<What>,
    }

    /// The payload of an [`Event`].
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum What {
        /// The file version, `"brain.Event:2"`, in the first record.
        #[prost(string, tag = "3")]
        FileVersion(String),
        /// Summary values of one step.
        #[prost(message, tag = "5")]
        Summary(Summary),
    }

    /// Values recorded at one step.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        /// The values.
        #[prost(message, repeated, tag = "1")]
        pub value: Vec<Value>,
    }

    /// One tagged value: a scalar, a histogram, or a plugin's tensor.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        /// The series name, e.g. `train/loss`.
        #[prost(string, tag = "1")]
        pub tag: String,
        /// A scalar.
        #[prost(float, optional, tag = "2")]
        pub simple_value: Option<f32>,
        /// A histogram.
        #[prost(message, optional, tag = "5")]
        pub histo: Option<HistogramProto>,
        /// A tensor (the hparams summaries hold an empty one).
        #[prost(message, optional, tag = "8")]
        pub tensor: Option<TensorProto>,
        /// Which plugin the value is for, and its data.
        #[prost(message, optional, tag = "9")]
        pub metadata: Option<SummaryMetadata>,
    }

    /// The metadata of a summary value.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SummaryMetadata {
        /// The plugin's name and data.
        #[prost(message, optional, tag = "1")]
        pub plugin_data: Option<PluginData>,
    }

    /// `SummaryMetadata.PluginData`: a plugin's name (`hparams`) and its
    /// serialized message.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PluginData {
        /// The plugin's name.
        #[prost(string, tag = "1")]
        pub plugin_name: String,
        /// The plugin's message (an [`hparams::HParamsPluginData`]).
        #[prost(bytes = "vec", tag = "2")]
        pub content: Vec<u8>,
    }

    /// `DataType.DT_FLOAT` of a [`TensorProto`].
    pub const DT_FLOAT: i32 = 1;

    /// A tensor: its type and shape (vnn writes only empty ones).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        /// The element type ([`DT_FLOAT`]).
        #[prost(int32, tag = "1")]
        pub dtype: i32,
        /// The shape.
        #[prost(message, optional, tag = "2")]
        pub tensor_shape: Option<TensorShapeProto>,
    }

    /// A tensor's shape.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        /// The dimensions.
        #[prost(message, repeated, tag = "2")]
        pub dim: Vec<TensorDim>,
    }

    /// `TensorShapeProto.Dim`: one dimension's size.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorDim {
        /// The size.
        #[prost(int64, tag = "1")]
        pub size: i64,
    }

    /// The messages of TensorBoard's hparams plugin
    /// (`tensorboard/plugins/hparams/plugin_data.proto` and `api.proto`,
    /// package `tensorboard.hparams`) and the `google.protobuf.Value` they
    /// hold.
    pub mod hparams {
        use std::collections::BTreeMap;

        /// `Status.STATUS_SUCCESS` of a [`SessionEndInfo`].
        pub const STATUS_SUCCESS: i32 = 1;
        /// `DataType.DATA_TYPE_STRING` of an [`HParamInfo`].
        pub const DATA_TYPE_STRING: i32 = 1;
        /// `DataType.DATA_TYPE_BOOL` of an [`HParamInfo`].
        pub const DATA_TYPE_BOOL: i32 = 2;
        /// `DataType.DATA_TYPE_FLOAT64` of an [`HParamInfo`].
        pub const DATA_TYPE_FLOAT64: i32 = 3;

        /// The content of the plugin's summary metadata: version 0 and one
        /// of its messages.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct HParamsPluginData {
            /// The plugin data version (0).
            #[prost(int32, tag = "1")]
            pub version: i32,
            /// The message.
            #[prost(oneof = "Data", tags = "2, 3, 4")]
            pub data: Option<Data>,
        }

        /// The messages of [`HParamsPluginData`].
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Data {
            /// The hparams and metrics of the experiment.
            #[prost(message, tag = "2")]
            Experiment(Experiment),
            /// A session's hparams values.
            #[prost(message, tag = "3")]
            SessionStartInfo(SessionStartInfo),
            /// How a session ended.
            #[prost(message, tag = "4")]
            SessionEndInfo(SessionEndInfo),
        }

        /// The hparams and metrics the dashboard shows.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Experiment {
            /// The hparams.
            #[prost(message, repeated, tag = "4")]
            pub hparam_infos: Vec<HParamInfo>,
            /// The metrics.
            #[prost(message, repeated, tag = "5")]
            pub metric_infos: Vec<MetricInfo>,
        }

        /// One hparam: its name and type.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct HParamInfo {
            /// The name.
            #[prost(string, tag = "1")]
            pub name: String,
            /// The type ([`DATA_TYPE_STRING`], [`DATA_TYPE_BOOL`] or
            /// [`DATA_TYPE_FLOAT64`]).
            #[prost(int32, tag = "4")]
            pub r#type: i32,
        }

        /// One metric: a scalar tag.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct MetricInfo {
            /// The tag (and the group, the run's sub-folder: empty).
            #[prost(message, optional, tag = "1")]
            pub name: Option<MetricName>,
        }

        /// The name of a metric.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct MetricName {
            /// The run's sub-folder holding the scalar (empty: the run).
            #[prost(string, tag = "1")]
            pub group: String,
            /// The scalar's tag.
            #[prost(string, tag = "2")]
            pub tag: String,
        }

        /// A session's hparams values and start time.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct SessionStartInfo {
            /// The values by hparam name.
            #[prost(btree_map = "string, message", tag = "1")]
            pub hparams: BTreeMap<String, PbValue>,
            /// Seconds since the Unix epoch.
            #[prost(double, tag = "5")]
            pub start_time_secs: f64,
        }

        /// How a session ended.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct SessionEndInfo {
            /// [`STATUS_SUCCESS`].
            #[prost(int32, tag = "1")]
            pub status: i32,
            /// Seconds since the Unix epoch.
            #[prost(double, tag = "2")]
            pub end_time_secs: f64,
        }

        /// `google.protobuf.Value`, as far as hparams use it.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct PbValue {
            /// The value.
            #[prost(oneof = "Kind", tags = "2, 3, 4")]
            pub kind: Option<Kind>,
        }

        /// The kinds of [`PbValue`] vnn writes.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Kind {
            /// A number.
            #[prost(double, tag = "2")]
            NumberValue(f64),
            /// A string.
            #[prost(string, tag = "3")]
            StringValue(String),
            /// A boolean.
            #[prost(bool, tag = "4")]
            BoolValue(bool),
        }
    }

    /// A histogram: bucket `i` counts the values in
    /// `(bucket_limit[i - 1], bucket_limit[i]]`, bucket 0 starting at `min`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HistogramProto {
        /// Smallest value.
        #[prost(double, tag = "1")]
        pub min: f64,
        /// Largest value.
        #[prost(double, tag = "2")]
        pub max: f64,
        /// Number of values.
        #[prost(double, tag = "3")]
        pub num: f64,
        /// Sum of the values.
        #[prost(double, tag = "4")]
        pub sum: f64,
        /// Sum of the squared values.
        #[prost(double, tag = "5")]
        pub sum_squares: f64,
        /// Right edge of every bucket.
        #[prost(double, repeated, tag = "6")]
        pub bucket_limit: Vec<f64>,
        /// Count of every bucket (same length as `bucket_limit`).
        #[prost(double, repeated, tag = "7")]
        pub bucket: Vec<f64>,
    }
}

#[cfg(feature = "onnx")]
/// The protobuf messages of an ONNX model: the subset of ONNX's `onnx.proto`
/// that vnn writes, with the same field numbers.
pub mod onnx {
    /// `TensorProto.data_type` and `TypeProto.Tensor.elem_type` of float32.
    pub const FLOAT: i32 = 1;
    /// `TensorProto.data_type` and `TypeProto.Tensor.elem_type` of int64.
    pub const INT64: i32 = 7;
    /// `AttributeProto.type` of a single float.
    pub const ATTRIBUTE_FLOAT: i32 = 1;
    /// `AttributeProto.type` of a single integer.
    pub const ATTRIBUTE_INT: i32 = 2;

    /// A whole model: the graph, the opsets it uses and metadata.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        /// Version of the ONNX IR the model follows.
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        /// The operator sets the graph uses.
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
        /// The tool that made the model.
        #[prost(string, tag = "2")]
        pub producer_name: String,
        /// Its version.
        #[prost(string, tag = "3")]
        pub producer_version: String,
        /// A description of the model.
        #[prost(string, tag = "6")]
        pub doc_string: String,
        /// The computation.
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        /// Key-value metadata.
        #[prost(message, repeated, tag = "14")]
        pub metadata_props: Vec<StringStringEntryProto>,
    }

    /// An operator set: a domain (`""` is the default one) and its version.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        /// The domain.
        #[prost(string, tag = "1")]
        pub domain: String,
        /// The opset version.
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    /// One metadata entry.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringStringEntryProto {
        /// The key.
        #[prost(string, tag = "1")]
        pub key: String,
        /// The value.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// A graph: nodes in topological order, constant tensors, inputs and
    /// outputs.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        /// The nodes.
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        /// The graph's name.
        #[prost(string, tag = "2")]
        pub name: String,
        /// Constant tensors (weights, biases, standardization).
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        /// The inputs.
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        /// The outputs.
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }

    /// One operator call.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        /// Names of the input values.
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        /// Names of the output values.
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        /// The node's name.
        #[prost(string, tag = "3")]
        pub name: String,
        /// The operator, e.g. `Gemm`.
        #[prost(string, tag = "4")]
        pub op_type: String,
        /// The operator's attributes.
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
    }

    /// A named attribute of a node (vnn writes integers and floats).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        /// The attribute's name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Which value field is set ([`ATTRIBUTE_INT`] or [`ATTRIBUTE_FLOAT`]).
        #[prost(int32, optional, tag = "20")]
        pub r#type: Option<i32>,
        /// The float value.
        #[prost(float, optional, tag = "2")]
        pub f: Option<f32>,
        /// The integer value (present even when 0).
        #[prost(int64, optional, tag = "3")]
        pub i: Option<i64>,
    }

    /// A constant tensor.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        /// The shape.
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        /// The element type ([`FLOAT`]).
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        /// The tensor's name.
        #[prost(string, tag = "8")]
        pub name: String,
        /// The elements, row-major, little-endian.
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
    }

    /// The name and type of a graph input or output.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        /// The value's name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Its type.
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    /// A value's type (vnn writes only tensors).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        /// The type.
        #[prost(oneof = "TypeValue", tags = "1")]
        pub value: Option<TypeValue>,
    }

    /// The kinds of [`TypeProto`] vnn writes.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum TypeValue {
        /// A tensor.
        #[prost(message, tag = "1")]
        TensorType(TensorType),
    }

    /// A tensor type: element type and shape.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorType {
        /// The element type ([`FLOAT`] or [`INT64`]).
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        /// The shape.
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    /// A tensor shape, one entry per dimension.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        /// The dimensions.
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }

    /// One dimension: a fixed size or a named dynamic one.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        /// The size or the name.
        #[prost(oneof = "DimensionValue", tags = "1, 2")]
        pub value: Option<DimensionValue>,
    }

    /// The value of a [`Dimension`].
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum DimensionValue {
        /// A fixed size.
        #[prost(int64, tag = "1")]
        DimValue(i64),
        /// A dynamic dimension, named (`N` for the batch).
        #[prost(string, tag = "2")]
        DimParam(String),
    }
}

//! # vnn
//!
//! A fast, bit-reproducible trainer and inference engine for the "vanilla
//! neural network": a linear softmax classifier and a ReLU MLP trained with
//! softmax cross-entropy, L2 regularization, gradient descent (full batch or
//! mini-batch), momentum or Adam, with dropout and dropconnect.
//!
//! Everything runs on flat `Vec<f32>` buffers and the SIMD kernels of
//! [`vnn_kernels`].
//!
//! ## Train on the spiral, predict one point
//! ```
//! use vnn::data::spiral;
//! use vnn::model::{Init, Model};
//! use vnn::train::{evaluate, TrainConfig, Trainer};
//!
//! let data = spiral(100, 3, 0); // 300 points, 3 classes, 2-D
//! let model = Model::new(&[2, 100, 3], Init::He, 0).unwrap();
//! let config = TrainConfig { epochs: 2000, ..TrainConfig::default() }; // SGD lr 1.0, reg 1e-3
//! let mut trainer = Trainer::new(model, &data, config).unwrap();
//! for _ in 0..trainer.total_steps() {
//!     trainer.step().unwrap();
//! }
//! let model = trainer.into_model();
//! assert!(evaluate(&model, &data).unwrap().accuracy > 0.9);
//!
//! // Batch-1 inference without allocation: reuse one scratch buffer.
//! let mut scratch = model.scratch();
//! let class = model.predict_one(data.row(0), &mut scratch).unwrap();
//! assert!(class < 3);
//! ```
//!
//! ## Modules
//! - [`data`]: the spiral, [`data::Dataset`], stratified split, standardization;
//!   `csv` loads CSV files (feature `csv`).
//! - [`model`]: [`model::Model`] (linear or MLP) on one flat parameter buffer,
//!   batch and batch-1 prediction.
//! - [`train`]: [`train::Trainer`], row-block parallel training that gives the
//!   same bits for any thread count; [`train::evaluate`].
//! - [`modelfile`] and [`checkpoint`]: safetensors files
//!   ([`model::Model::save`] and [`model::Model::load`], or
//!   [`modelfile::ModelFile`] with extra metadata); `tensorboard`:
//!   event files (feature `tensorboard`); `plot`: PNG pictures (feature
//!   `plots`); [`fsutil`]: atomic writes and
//!   bounded reads; [`budget`]: the memory budget of sizes from outside.
//! - `onnx`: export a model as an ONNX graph for other runtimes (feature
//!   `onnx`); `proto`: the protobuf messages of event files and ONNX models.
//! - [`session`]: training runs with checkpoints, resume, interruption and
//!   observers; [`predict`]: predictions and evaluations as `vnn predict`
//!   and `vnn eval` print them; [`output`]: lines on stdout and stderr that
//!   never panic; [`bench`](mod@bench): the workloads of `vnn bench`.
//!
//! ## Cargo features
//! The default feature `cli` gives the `vnn` binary and everything it uses.
//! With `default-features = false` vnn keeps the kernels, models, training,
//! the run API ([`session`], with checkpoints, resume, the [`session::Interrupter`]
//! and the [`session::MetricsFile`] observer) and safetensors model files, and
//! none of the crates below.
//!
//! | Feature | Adds | Crates |
//! |---|---|---|
//! | `csv` | `vnn::csv`, CSV data in [`settings`] | csv |
//! | `tensorboard` | `vnn::tensorboard`, the `session::TensorBoard` observer | prost |
//! | `plots` | `vnn::plot`, the `session::Plots` observer | plotters, image, dejavu |
//! | `progress` | the `session::Progress` observer | indicatif |
//! | `onnx` | `vnn::onnx` | prost |
//! | `cli` (default) | all of the above and the `vnn` binary | clap, anyhow, ctrlc |
#![warn(missing_docs)]

pub mod bench;
pub mod budget;
pub mod checkpoint;
mod crc;
#[cfg(feature = "csv")]
pub mod csv;
pub mod data;
pub mod error;
pub mod fsutil;
pub mod model;
pub mod modelfile;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod output;
#[cfg(feature = "plots")]
pub mod plot;
pub mod predict;
#[cfg(any(feature = "tensorboard", feature = "onnx"))]
pub mod proto;
pub mod session;
pub mod settings;
#[cfg(feature = "tensorboard")]
pub mod tensorboard;
pub mod train;

pub use error::{Error, Result};
pub use vnn_kernels as kernels;

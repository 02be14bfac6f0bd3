//! # vnn
//!
//! A fast, bit-reproducible trainer and inference engine for the "vanilla
//! neural network": a linear softmax classifier and a ReLU MLP trained with
//! softmax cross-entropy, L2 regularization, gradient descent (full batch or
//! mini-batch), momentum or Adam, with dropout and dropconnect.
//!
//! Everything runs on flat `Vec<f32>` buffers and the SIMD kernels of
//! [`vnn_kernels`].
#![warn(missing_docs)]

pub mod csv;
pub mod data;
pub mod error;
pub mod fsutil;
pub mod model;
pub mod modelfile;
pub mod tensorboard;
pub mod train;

pub use error::{Error, Result};
pub use vnn_kernels as kernels;

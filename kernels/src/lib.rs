//! # vnn-kernels
//!
//! The numeric hot path of `vnn`: slices in, `&mut` slices out, explicit
//! row-major shapes, no allocation inside any kernel and no threads (the
//! caller splits work into row blocks and runs them with rayon).
//!
//! ## Data model
//! A matrix of `rows x cols` is a flat `&[f32]` of length `rows * cols` in
//! row-major order: element `(r, c)` sits at `r * cols + c`. Every kernel
//! takes its shapes explicitly and panics (documented under `# Panics`) when a
//! slice length does not match them; that is a programming error, not a data
//! error.
//!
//! ## Twins
//! Every SIMD kernel `op` (built on [`wide`]) has a scalar twin `op_scalar`
//! with the same signature. The twin is the specification: tests, fuzz
//! targets and benches compare the two. Where the SIMD version can differ from
//! the twin (a polynomial `exp`, a different summation order, fused
//! multiply-add when the build enables FMA) the kernel's docs say so.
//!
//! ## Gradient convention
//! Kernels that produce parameter gradients (bias sums, GEMM with `beta = 1`)
//! **accumulate** into their output; the caller zeroes gradient buffers
//! before a backward pass.
//!
//! ## NaN
//! NaN propagates through arithmetic kernels, so a diverging model shows up as
//! a NaN loss instead of being hidden: `relu(NaN)` is NaN, a NaN logit gives a
//! NaN loss, and [`reduce::argmax_rows`] never selects a NaN unless it is the
//! first element of its row. Each module states its rule.
//!
//! ## Instructions
//! `wide` chooses its instructions when the crate is compiled: build with
//! `RUSTFLAGS="-C target-cpu=native"` (or `x86-64-v3`) to get AVX2 and FMA;
//! without flags the same code runs on SSE2.
//!
//! ## Layers
//! At the bottom, a private SIMD layer (`simd/`) holds the lane abstraction
//! with its `wide` and AVX2 + FMA implementations, the shared lane rules
//! (load and store, ReLU, the NaN-propagating maximum, `exp`) and the one
//! run-time ISA check, which hands out AVX2 + FMA as a token nothing else
//! can construct. The op modules sit above it and import nothing from one
//! another's internals. The hottest kernel families (the small-shape GEMM
//! tiles, the fused narrow strips, the short-row cross-entropy) are each one
//! generic body over the lane type: in a build without FMA, they run with
//! AVX2 + FMA when the CPU has them (checked at run time); with
//! `target-cpu=native` the compile-time `wide` path runs.
#![warn(missing_docs)]

pub mod activation;
pub mod fused;
pub mod gemm;
pub mod layer;
pub mod mask;
pub mod reduce;
mod simd;
pub mod softmax;
pub mod update;

pub use gemm::Transpose;

// The example of the package README runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

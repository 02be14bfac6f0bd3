//! `vnn bench`: timings of the training step, batch-1 inference and the
//! f32 FMA peak of the machine.
//!
//! Every workload is warmed up, then timed over many samples; a sample
//! times a batch of calls so that fast calls still get nanosecond
//! resolution. The median, minimum and maximum are per call.

use super::with_threads;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::process::ExitCode;
use vnn::bench::{self, Report};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    /// One full-batch SGD step of MLP 2-100-3 on the spiral (300 rows).
    Spiral,
    /// One full-batch SGD step of MLP 784-512-10 on 10,000 synthetic rows.
    Mnist,
    /// Batch-1 `predict_one` on 2-100-3.
    InferSmall,
    /// Batch-1 `predict_one` on 784-512-10 (and split over two threads).
    InferMnist,
    /// f32 FMA peak over all threads.
    Peak,
    /// Everything above.
    All,
}

/// Options of `vnn bench`.
#[derive(Args, Debug, Clone)]
pub(crate) struct BenchArgs {
    /// Which workload to time.
    #[arg(long, value_enum, default_value_t = Workload::All)]
    workload: Workload,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// One JSON object per workload per line on stdout.
    #[arg(long)]
    json: bool,
}

/// Writes the report to stdout (an error when stdout is closed).
fn print(r: &Report, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match json {
        true => writeln!(out, "{}", r.to_json())?,
        false => writeln!(out, "{r}")?,
    }
    out.flush()
}

/// Runs `vnn bench`.
pub(crate) fn run(args: &BenchArgs) -> Result<ExitCode> {
    let workload = match args.workload {
        Workload::Spiral => bench::Workload::Spiral,
        Workload::Mnist => bench::Workload::Mnist,
        Workload::InferSmall => bench::Workload::InferSmall,
        Workload::InferMnist => bench::Workload::InferMnist,
        Workload::Peak => bench::Workload::Peak,
        Workload::All => bench::Workload::All,
    };
    with_threads(args.threads, || {
        bench::run(workload, |r: Report| -> Result<()> {
            print(&r, args.json).context("writing the report")
        })
    })??;
    Ok(ExitCode::SUCCESS)
}

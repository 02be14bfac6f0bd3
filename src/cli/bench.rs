//! `vnn bench`: timings of the training step, batch-1 inference and the
//! f32 FMA peak of the machine.
//!
//! Every workload is warmed up, then timed over many samples; a sample
//! times a batch of calls so that fast calls still get nanosecond
//! resolution. The median, minimum and maximum are per call.

use super::with_threads;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::json;
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
    let (med, min, max) = (r.median(), r.min(), r.max());
    if json {
        let mut o = json!({
            "workload": r.workload,
            "threads": r.threads,
            "median_ns": med,
            "min_ns": min,
            "max_ns": max,
            "samples": r.ns.len(),
            "calls_per_sample": r.calls_per_sample,
        });
        if let Some(g) = r.gflops() {
            o["gflops"] = json!(g);
        }
        writeln!(out, "{o}")?;
    } else {
        let g = r
            .gflops()
            .map_or(String::new(), |g| format!("  {g:7.1} GFLOP/s"));
        writeln!(
            out,
            "{:<18} threads {:>2}  median {:>12}  min {:>12}  max {:>12}{g}  ({} samples x {} calls)",
            r.workload,
            r.threads,
            fmt_ns(med),
            fmt_ns(min),
            fmt_ns(max),
            r.ns.len(),
            r.calls_per_sample
        )?;
    }
    out.flush()
}

/// `1.23 us`-style text of a duration in nanoseconds.
fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
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

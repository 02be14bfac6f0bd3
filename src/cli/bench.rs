//! `vnn bench`: timings of the training step, batch-1 inference and the
//! f32 FMA peak of the machine.
//!
//! Every workload is warmed up, then timed over many samples; a sample
//! times a batch of calls so that fast calls still get nanosecond
//! resolution. The median, minimum and maximum are per call.

use super::with_threads;
use anyhow::{Context, Result};
use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::process::ExitCode;
use vnn::bench::{self, Report};

/// A `--workload` value: one of [`bench::Workload::LIST`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct WorkloadArg(bench::Workload);

impl ValueEnum for WorkloadArg {
    fn value_variants<'a>() -> &'a [Self] {
        use bench::Workload::*;
        &[
            Self(Spiral),
            Self(Mnist),
            Self(Minibatch),
            Self(InferSmall),
            Self(InferMnist),
            Self(Peak),
            Self(All),
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let list = bench::Workload::LIST.iter();
        let (_, name, help) = list.into_iter().find(|(w, ..)| *w == self.0)?;
        Some(PossibleValue::new(*name).help(*help))
    }
}

/// Options of `vnn bench`.
#[derive(Args, Debug, Clone)]
pub(crate) struct BenchArgs {
    /// Which workload to time.
    #[arg(long, value_enum, default_value_t = WorkloadArg(bench::Workload::All))]
    workload: WorkloadArg,
    /// Worker threads (default: all cores; at most 256).
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
    let workload = args.workload.0;
    with_threads(args.threads, || {
        bench::run(workload, |r: Report| -> Result<()> {
            print(&r, args.json).context("writing the report")
        })
    })??;
    Ok(ExitCode::SUCCESS)
}

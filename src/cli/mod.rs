//! Command-line parsing and the subcommands.

mod bench;
mod export;
mod predict;
mod train;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

/// Train and use small neural-network classifiers, fast.
#[derive(Parser, Debug)]
#[command(
    name = "vnn",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand, `vnn` trains with these options.
    #[command(flatten)]
    train: vnn::settings::TrainOptions,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model on the built-in spiral or a CSV file (the default command).
    #[command(allow_negative_numbers = true)]
    Train(Box<vnn::settings::TrainOptions>),
    /// Predict classes (or probabilities) for the rows of a CSV file.
    Predict(predict::PredictArgs),
    /// Evaluate a model on a labelled CSV file: accuracy, loss, per-class report, confusion matrix.
    Eval(predict::EvalArgs),
    /// Time the training step, batch-1 inference and the FMA peak.
    Bench(bench::BenchArgs),
    /// Export a model file to another format (ONNX).
    Export(export::ExportArgs),
}

/// A library error in the command line's words: settings by their options.
pub(crate) fn with_flags(e: &vnn::Error) -> String {
    use vnn::Error::*;
    let flag = |o: &str| format!("--{}", o.replace('_', "-"));
    match e {
        Option {
            option, expected, ..
        } => format!(
            "{} must be {}",
            flag(option),
            vnn::budget::with_options(expected, flag)
        ),
        Inapplicable {
            option,
            needs,
            value,
        } => {
            let why = match (needs.as_str(), value.as_str()) {
                ("model", _) => "--model linear has no hidden layers".to_string(),
                ("data", "a CSV file") => "the built-in spiral has no CSV columns".to_string(),
                (n, "absent") => format!("it cannot be combined with {}", flag(n)),
                ("early_stopping", v) => {
                    let or = v
                        .strip_prefix("on")
                        .unwrap_or(v)
                        .replace("lr_schedule", "--lr-schedule");
                    format!("it applies with --early-stopping{or} only")
                }
                _ => format!("it applies to {} {value} only", flag(needs)),
            };
            format!("{} does not apply here: {why}", flag(option))
        }
        FixedOnResume { option, allowed } => {
            let allowed: Vec<String> = allowed.iter().map(|o| flag(o)).collect();
            let (last, rest) = allowed.split_last().expect("a resumed run accepts options");
            format!("{} cannot be combined with --resume: a resumed run keeps the settings recorded in its checkpoint (only {} and {last} may be given)", flag(option), rest.join(", "))
        }
        Data { .. } => e
            .to_string()
            .replace("set the delimiter to", "use --delimiter"),
        RunEnded { .. } => e.to_string().replace("more epochs", "more --epochs"),
        Diverged { .. } => e
            .to_string()
            .replace("learning rate", "learning rate (--lr)"),
        TooLarge { .. } => vnn::budget::with_options(&e.to_string(), flag),
        _ => e.to_string(),
    }
}

/// Parses the arguments and runs the command.
pub fn run() -> Result<ExitCode> {
    // The matches tell which options were given on the command line
    // (`vnn train --resume` refuses settings that would change the run).
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        None => train::run(&cli.train, &matches),
        Some(Command::Train(args)) => train::run(
            &args,
            matches.subcommand_matches("train").unwrap_or(&matches),
        ),
        Some(Command::Predict(args)) => predict::run_predict(&args),
        Some(Command::Eval(args)) => predict::run_eval(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Export(args)) => export::run(&args),
    }
}

/// Runs `f` in a rayon pool of `threads` threads (all cores when `None`).
pub(crate) fn with_threads<T: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> T + Send,
) -> Result<T> {
    vnn::budget::check_threads(threads)?;
    let builder = rayon::ThreadPoolBuilder::new().num_threads(threads.unwrap_or(0));
    let pool = builder
        .build()
        .context("cannot start the worker threads (--threads)")?;
    Ok(pool.install(f))
}

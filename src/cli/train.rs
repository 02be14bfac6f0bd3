//! `vnn train`.
//!
//! The run itself is a [`vnn::session::Session`] (checkpoints, resume
//! checks, Ctrl-C, divergence). `--resume PATH` takes the settings recorded
//! in the checkpoint; only options that do not change the run may be given
//! with it (`--epochs` to lengthen or shorten it, `--out`, by default the
//! checkpoint's folder, `--threads`, `--json`, `--no-plots`, and how often
//! to log, print and checkpoint). Ctrl-C exits with code 130 after saving
//! (a second Ctrl-C exits at once).

use super::with_threads;
use anyhow::{Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use vnn::checkpoint::Checkpoint;
use vnn::data::{self, Dataset};
use vnn::output::Console;
use vnn::session::{
    utc_timestamp, Interrupter, MetricsFile, Outcome, Plots, Progress, SessionBuilder, TensorBoard,
};
use vnn::settings::{refuse_with_resume, RunSettings};

#[derive(ValueEnum, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ModelKind {
    /// Softmax classifier on the raw features (no hidden layer).
    Linear,
    /// MLP with the --hidden layers and --activation.
    Mlp,
}

#[derive(ValueEnum, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OptimizerKind {
    /// Plain gradient descent.
    Sgd,
    /// Gradient descent with momentum (--momentum).
    Momentum,
    /// Adam (beta1 0.9, beta2 0.999, eps 1e-8).
    Adam,
}

#[derive(ValueEnum, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum InitKind {
    /// He: normal * sqrt(2 / fan_in).
    He,
    /// 0.01 * normal, as in the source text.
    Small,
}

/// Options of `vnn train`: the [`RunSettings`] of the run, field for field.
#[derive(Args, Serialize, Debug, Clone)]
pub(crate) struct TrainArgs {
    /// Training data: `spiral` (built in) or a CSV file with a header row.
    #[arg(long, default_value = "spiral")]
    pub data: String,
    /// Label column of the CSV (default: the last column).
    #[arg(long)]
    pub label: Option<String>,
    /// CSV field delimiter (one character, or `tab`); never guessed.
    #[arg(long, default_value = ",", value_parser = super::parse_delimiter)]
    pub delimiter: u8,
    /// Model: softmax classifier or MLP (hidden layers with --activation).
    #[arg(long, value_enum, default_value_t = ModelKind::Mlp)]
    pub model: ModelKind,
    /// Hidden layer widths of the MLP, comma-separated (e.g. 100 or 128,64).
    #[arg(long, default_value = "100", value_delimiter = ',')]
    pub hidden: Vec<usize>,
    /// Activation after each hidden layer of the MLP: relu, tanh, sigmoid or leaky-relu.
    #[arg(long, default_value = "relu")]
    pub activation: vnn::model::Activation,
    /// Passes over the training rows (full batch: one step each).
    #[arg(long, default_value_t = 10_000)]
    pub epochs: u64,
    /// Learning rate.
    #[arg(long, default_value_t = 1.0)]
    pub lr: f32,
    /// L2 regularization strength (loss += 0.5 * reg * sum W^2).
    #[arg(long, default_value_t = 0.001)]
    pub reg: f32,
    /// Update rule.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd)]
    pub optimizer: OptimizerKind,
    /// Momentum coefficient for --optimizer momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Rows per step (default: the full batch).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Dropout probability on hidden units during training.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f32,
    /// Dropconnect probability on weights during training.
    #[arg(long, default_value_t = 0.0)]
    pub dropconnect: f32,
    /// Fraction of rows held out as a stratified test set (e.g. 0.2).
    #[arg(long)]
    pub test_split: Option<f64>,
    /// Standardize features (mean 0, scale 1); stored in the model.
    #[arg(long)]
    pub standardize: bool,
    /// Seed of the data (spiral), split, initialization, shuffles and masks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores; at most 256).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Log scalars, histograms and curve points every N optimizer steps.
    #[arg(long, default_value_t = 100)]
    pub log_every: u64,
    /// Print an "EPOCH i: Training loss, Accuracy" line every N optimizer steps.
    #[arg(long, default_value_t = 1000)]
    pub print_every: u64,
    /// Run folder (default: runs/<data>-<model>-<timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object with the results as the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Weight initialization.
    #[arg(long, value_enum, default_value_t = InitKind::He)]
    pub init: InitKind,
    /// Points per class of the built-in spiral.
    #[arg(long, default_value_t = 100)]
    pub spiral_points: usize,
    /// Classes of the built-in spiral.
    #[arg(long, default_value_t = 3)]
    pub spiral_classes: usize,
    /// Skip curves.png and boundary.png.
    #[arg(long)]
    pub no_plots: bool,
    /// Write checkpoint.safetensors (model, optimizer state, settings) into
    /// the run folder every N optimizer steps and at the end.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Continue the run of this checkpoint with its recorded settings
    /// (allowed with it: --epochs, --out, --threads, --json, --no-plots,
    /// --log-every, --print-every, --checkpoint-every).
    #[arg(long, value_name = "PATH")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
}

impl TrainArgs {
    /// The run settings of these options (the same fields, by name).
    fn settings(&self) -> Result<RunSettings> {
        let mut s: RunSettings = serde_json::from_value(serde_json::to_value(self)?)?;
        s.resume = self.resume.clone();
        Ok(s)
    }
}

/// The settings of the run: those of the options, or with `--resume` the
/// ones recorded in its checkpoint with the options it accepts.
fn settings(cli: &TrainArgs, matches: &ArgMatches) -> Result<(RunSettings, Option<Checkpoint>)> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let own = cli.settings()?;
    let Some(path) = &cli.resume else {
        own.refuse_inapplicable(given)?;
        return Ok((own, None));
    };
    // The options of `vnn train`, in declaration order (the matches also
    // hold argument groups).
    for arg in TrainArgs::augment_args(clap::Command::new("train")).get_arguments() {
        let id = arg.get_id().as_str();
        refuse_with_resume(id, given(id))?;
    }
    let (s, ckpt) = own.resumed(path, given)?;
    Ok((s, Some(ckpt)))
}

pub(crate) fn run(cli_args: &TrainArgs, matches: &ArgMatches) -> Result<ExitCode> {
    let (args, resume) = settings(cli_args, matches)?;
    let args = &args;
    let config = args.config();
    args.check()?;
    let (full, label_col) = args.load_data()?;
    let (train_raw, test_raw) = match args.test_split {
        Some(f) => {
            let (a, b) = data::stratified_split(&full, f, args.seed)?;
            (a, Some(b))
        }
        None => (full.clone(), None),
    };
    let (model, train_std) = args.build_model(&train_raw)?;
    let dir = args.out.clone().unwrap_or_else(|| {
        let name = format!(
            "{}-{}-{}",
            args.data_name(),
            args.model_name(),
            utc_timestamp()
        );
        PathBuf::from("runs").join(name)
    });
    let settings = args.recorded(&dir)?;
    let command = resume
        .as_ref()
        .and_then(|c| c.extra.get("training_command").cloned())
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let stop = interrupter()?;
    let out = Console::new(args.json);
    let resumed_at = resume.as_ref().map(|c| c.step);
    let title = format!("{} on {}", args.model_name(), args.data_name());
    let points = (!args.no_plots && train_raw.n_features() == 2)
        .then(|| match &test_raw {
            Some(t) => train_raw.concat(t),
            None => Ok(train_raw.clone()),
        })
        .transpose()?;
    let sizes = model.layout().sizes().to_vec();
    let mut builder = SessionBuilder::new(model, config.clone(), &dir)
        .log_every(args.log_every)
        .settings(settings)
        .extra("training_command", command)
        .extra("label_column", label_col)
        .data_fingerprint(&args.data, &full)
        .interrupter(stop)
        .observer(TensorBoard::new(&dir))
        .observer(Progress::new(args.json, args.print_every).console(out.clone()));
    if !args.no_plots {
        builder = builder.observer(Plots::new(title, points));
    }
    if let Some(n) = args.checkpoint_every {
        builder = builder.checkpoint_every(n);
    }
    if let (Some(ckpt), Some(path)) = (resume, &args.resume) {
        builder = builder.resume(ckpt, path);
    }
    let test = test_raw.as_ref();
    let outcome = with_threads(args.threads, || {
        // The metrics record the threads of the pool.
        let metrics = MetricsFile::new(args.metrics_json(&sizes));
        let session = builder.observer(metrics).build(&train_std, test)?;
        header(&out, args, (&train_raw, test), &sizes, resumed_at);
        session.evaluate_at_end(&train_raw).run()
    })??;
    report(&out, &outcome, args.json);
    for w in &outcome.warnings {
        out.note(&format!("warning: {w}"));
    }
    let saved = || {
        format!(
            "the run in {} saved its model, but its output was cut short",
            dir.display()
        )
    };
    out.finish().with_context(saved)?;
    Ok(ExitCode::from(if outcome.interrupted { 130 } else { 0 }))
}

/// Connects Ctrl-C to a session's interrupter: the run stops after the
/// current step and saves; a second Ctrl-C exits at once. Installed before
/// the first line is printed, so whoever has seen that line may interrupt.
fn interrupter() -> Result<Interrupter> {
    let stop = Interrupter::new();
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.interrupt() {
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

/// The first lines: the data, the model and the settings; where a resumed
/// run starts.
fn header(
    out: &Console,
    args: &RunSettings,
    (train_raw, test_raw): (&Dataset, Option<&Dataset>),
    sizes: &[usize],
    resumed_at: Option<u64>,
) {
    let config = args.config();
    let test = test_raw.map_or(String::new(), |t| format!(" (+{} test rows)", t.n_rows()));
    out.line(&format!(
        "vnn train: {} rows x {} features, {} classes{test}; {} {:?}; {} epochs, {} lr {}, reg {}",
        train_raw.n_rows(),
        train_raw.n_features(),
        train_raw.n_classes(),
        args.model_name(),
        sizes,
        config.epochs,
        config.optimizer.name(),
        config.lr,
        config.reg
    ));
    if let (Some(step), Some(path)) = (resumed_at, &args.resume) {
        out.line(&format!("resuming from {} at step {step}", path.display()));
    }
}

/// The last lines of a run: where an interrupted run was saved, or the
/// results of a completed one.
fn report(out: &Console, outcome: &Outcome, json: bool) {
    if outcome.interrupted {
        let (ckpt, model) = (
            outcome.checkpoint_path.display(),
            outcome.model_path.display(),
        );
        let (steps, total) = (outcome.steps, outcome.total);
        out.note(&format!("interrupted at step {steps} of {total}: model saved to {model}, checkpoint to {ckpt} (continue with: vnn train --resume {ckpt})"));
        return;
    }
    let (final_loss, first_loss, steps) = (outcome.final_loss, outcome.first_loss, outcome.steps);
    let train_accuracy = outcome.train_eval.as_ref().map_or(f64::NAN, |e| e.accuracy);
    let test_text = outcome.test_eval.as_ref().map_or(String::new(), |e| {
        format!(", test accuracy {:.4}", e.accuracy)
    });
    out.line(&format!(
        "done: {steps} steps in {:.2} s; final loss {final_loss:.4}; train accuracy {train_accuracy:.4}{test_text}",
        outcome.seconds
    ));
    if final_loss > first_loss * 1.5 {
        out.line(&format!(
            "warning: the loss rose from {first_loss:.4} to {final_loss:.4}: the learning rate may be too high for this data (try a lower --lr, or --standardize)"
        ));
    }
    out.line(&format!("run folder: {}", outcome.dir.display()));
    if json {
        out.data(&outcome.summary().to_string());
    }
}

//! `vnn train`.
//!
//! The run itself is a [`vnn::session::Session`] (checkpoints, resume
//! checks, Ctrl-C, divergence). `--resume PATH` takes the settings recorded
//! in the checkpoint; only options that do not change the run may be given
//! with it (`--epochs` to lengthen or shorten it, `--out`, by default the
//! checkpoint's folder, `--threads`, `--json`, `--no-plots`, and how often
//! to log, print and checkpoint). Ctrl-C exits with code 130 after saving
//! (a second Ctrl-C exits at once).

use super::{with_threads, Out};
use anyhow::{anyhow, bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vnn::checkpoint::Checkpoint;
use vnn::data::{self, Dataset};
use vnn::model::{Init, Model};
use vnn::session::{
    utc_timestamp, Interrupter, MetricsFile, Outcome, Plots, Progress, SessionBuilder, TensorBoard,
};
use vnn::train::{Optimizer, TrainConfig};

#[derive(ValueEnum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ModelKind {
    /// Softmax classifier on the raw features (no hidden layer).
    Linear,
    /// ReLU MLP with the --hidden layers.
    Mlp,
}

#[derive(ValueEnum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OptimizerKind {
    /// Plain gradient descent.
    Sgd,
    /// Gradient descent with momentum (--momentum).
    Momentum,
    /// Adam (beta1 0.9, beta2 0.999, eps 1e-8).
    Adam,
}

#[derive(ValueEnum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum InitKind {
    /// He: normal * sqrt(2 / fan_in).
    He,
    /// 0.01 * normal, as in the source text.
    Small,
}

/// Options of `vnn train`. A checkpoint records them (as JSON) to continue
/// the run.
#[derive(Args, Serialize, Deserialize, Debug, Clone)]
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
    /// Model: softmax classifier or ReLU MLP.
    #[arg(long, value_enum, default_value_t = ModelKind::Mlp)]
    pub model: ModelKind,
    /// Hidden layer widths of the MLP, comma-separated (e.g. 100 or 128,64).
    #[arg(long, default_value = "100", value_delimiter = ',')]
    pub hidden: Vec<usize>,
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
    /// Worker threads (default: all cores).
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
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    /// Continue the run of this checkpoint with its recorded settings
    /// (allowed with it: --epochs, --out, --threads, --json, --no-plots,
    /// --log-every, --print-every, --checkpoint-every).
    #[arg(long, value_name = "PATH")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
}

impl TrainArgs {
    fn config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            lr: self.lr,
            reg: self.reg,
            optimizer: match self.optimizer {
                OptimizerKind::Sgd => Optimizer::Sgd,
                OptimizerKind::Momentum => Optimizer::Momentum { mu: self.momentum },
                OptimizerKind::Adam => Optimizer::Adam,
            },
            batch_size: self.batch_size,
            dropout: self.dropout,
            dropconnect: self.dropconnect,
            seed: self.seed,
        }
    }

    fn data_name(&self) -> String {
        if self.data == "spiral" {
            "spiral".into()
        } else {
            Path::new(&self.data)
                .file_stem()
                .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned())
        }
    }
}

fn load_data(args: &TrainArgs) -> Result<Dataset> {
    if args.data == "spiral" {
        if args.spiral_points == 0 || args.spiral_classes < 2 {
            bail!("the spiral needs at least 1 point per class and 2 classes");
        }
        return Ok(data::spiral(
            args.spiral_points,
            args.spiral_classes,
            args.seed,
        ));
    }
    let opts = vnn::csv::CsvOptions {
        label: args.label.clone(),
        delimiter: args.delimiter,
    };
    Ok(vnn::csv::load_training_csv(Path::new(&args.data), &opts)?)
}

fn label_column(args: &TrainArgs) -> Result<String> {
    if args.data == "spiral" {
        return Ok("label".into());
    }
    if let Some(l) = &args.label {
        return Ok(l.clone());
    }
    // The last header field names the label column.
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(args.delimiter)
        .from_path(&args.data)?;
    let headers = reader.headers()?;
    Ok(headers
        .iter()
        .next_back()
        .unwrap_or("label")
        .trim_start_matches('\u{feff}')
        .to_string())
}

/// Options `--resume` accepts besides itself: they leave the run's
/// settings alone (`--epochs` only sets where it ends).
const RESUME_OPTIONS: [&str; 9] = [
    "resume",
    "epochs",
    "out",
    "threads",
    "json",
    "no_plots",
    "log_every",
    "print_every",
    "checkpoint_every",
];

/// Refuses options that the other settings make meaningless (they would
/// otherwise be ignored without a word).
fn refuse_inapplicable(args: &TrainArgs, matches: &ArgMatches) -> Result<()> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let spiral = args.data == "spiral";
    let (no_csv, spiral_only) = (
        "the built-in spiral has no CSV columns",
        "it applies to --data spiral only",
    );
    let linear = args.model == ModelKind::Linear;
    let no_momentum = args.optimizer != OptimizerKind::Momentum;
    let checks = [
        ("hidden", linear, "--model linear has no hidden layers"),
        (
            "momentum",
            no_momentum,
            "it applies to --optimizer momentum only",
        ),
        ("label", spiral, no_csv),
        ("delimiter", spiral, no_csv),
        ("spiral_points", !spiral, spiral_only),
        ("spiral_classes", !spiral, spiral_only),
    ];
    for (id, inapplicable, why) in checks {
        if inapplicable && given(id) {
            bail!("--{} does not apply here: {why}", id.replace('_', "-"));
        }
    }
    Ok(())
}

/// The settings of a resumed run: the ones recorded in the checkpoint at
/// `path`, with the options of this invocation that `--resume` accepts.
fn resume_settings(
    cli: &TrainArgs,
    matches: &ArgMatches,
    path: &Path,
) -> Result<(TrainArgs, Checkpoint)> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    // The options of `vnn train`, in declaration order (the matches also
    // hold argument groups).
    let options = TrainArgs::augment_args(clap::Command::new("train"));
    if let Some(id) = options
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .find(|id| !RESUME_OPTIONS.contains(id) && given(id))
    {
        bail!(
            "--{} cannot be combined with --resume: a resumed run keeps the settings recorded in its checkpoint (only --epochs, --out, --threads, --json, --no-plots, --log-every, --print-every and --checkpoint-every may be given)",
            id.replace('_', "-")
        );
    }
    let ckpt = Checkpoint::load(path)?;
    let mut args: TrainArgs = serde_json::from_str(&ckpt.settings).map_err(|e| {
        anyhow!(
            "{}: the checkpoint's settings are not those of a vnn train run: {e}",
            path.display()
        )
    })?;
    args.threads = cli.threads;
    args.json = cli.json;
    args.no_plots = cli.no_plots;
    // How often to log, print and checkpoint does not change the weights.
    if given("log_every") {
        args.log_every = cli.log_every;
    }
    if given("print_every") {
        args.print_every = cli.print_every;
    }
    if given("checkpoint_every") {
        args.checkpoint_every = cli.checkpoint_every;
    }
    if given("epochs") {
        args.epochs = cli.epochs;
    }
    args.out = Some(match &cli.out {
        Some(out) => out.clone(),
        None => path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
    });
    args.resume = Some(path.to_path_buf());
    Ok((args, ckpt))
}

/// The model of the settings for `train`, and `train` as the model sees it.
fn build_model(args: &TrainArgs, train: &Dataset) -> Result<(Model, Dataset)> {
    let mut hidden: &[usize] = &[];
    if args.model == ModelKind::Mlp {
        if args.hidden.is_empty() || args.hidden.contains(&0) {
            bail!("--hidden needs one or more positive widths, e.g. 100 or 128,64");
        }
        hidden = &args.hidden;
    }
    let init = match args.init {
        InitKind::He => Init::He,
        InitKind::Small => Init::Small,
    };
    let seed = args.seed.wrapping_add(0x1_0000);
    Ok(vnn::session::model_for(
        train,
        hidden,
        init,
        seed,
        args.standardize,
    )?)
}

/// Refuses settings that cannot run, naming their options.
fn check_settings(args: &TrainArgs, config: &TrainConfig) -> Result<()> {
    config.validate()?;
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    if args.log_every == 0 || args.print_every == 0 {
        bail!("--log-every and --print-every must be at least 1");
    }
    if args.checkpoint_every == Some(0) {
        bail!("--checkpoint-every must be at least 1");
    }
    Ok(())
}

/// The library's error, with the CLI's options where the message asks for
/// more epochs or a lower learning rate.
fn with_flags(e: vnn::Error) -> anyhow::Error {
    let text = e.to_string();
    match e {
        vnn::Error::RunEnded { .. } => anyhow!(text.replace("more epochs", "more --epochs")),
        vnn::Error::Diverged { .. } => {
            anyhow!(text.replace("learning rate", "learning rate (--lr)"))
        }
        e => e.into(),
    }
}

pub(crate) fn run(cli_args: &TrainArgs, matches: &ArgMatches) -> Result<ExitCode> {
    let (args, resume) = match &cli_args.resume {
        Some(path) => {
            let (args, ckpt) = resume_settings(cli_args, matches, path)?;
            (args, Some(ckpt))
        }
        None => {
            refuse_inapplicable(cli_args, matches)?;
            (cli_args.clone(), None)
        }
    };
    let args = &args;
    let config = args.config();
    check_settings(args, &config)?;
    let full = load_data(args)?;
    let label_col = label_column(args)?;
    let (train_raw, test_raw) = match args.test_split {
        Some(f) => {
            let (a, b) = data::stratified_split(&full, f, args.seed)?;
            (a, Some(b))
        }
        None => (full.clone(), None),
    };
    let (model, train_std) = build_model(args, &train_raw)?;
    let model_name = format!("{:?}", args.model).to_lowercase();
    let dir = args.out.clone().unwrap_or_else(|| {
        let name = format!("{}-{model_name}-{}", args.data_name(), utc_timestamp());
        PathBuf::from("runs").join(name)
    });
    let (settings, command) = recorded(args, &dir, resume.as_ref())?;
    let stop = interrupter()?;
    header(args, &train_raw, test_raw.as_ref(), &model, resume.as_ref());
    let title = format!("{model_name} on {}", args.data_name());
    let points = (!args.no_plots && train_raw.n_features == 2).then(|| {
        let mut all = train_raw.clone();
        if let Some(t) = &test_raw {
            all.features.extend_from_slice(&t.features);
            all.labels.extend_from_slice(&t.labels);
        }
        all
    });
    let sizes = model.layout.sizes.clone();
    let mut builder = SessionBuilder::new(model, config.clone(), &dir)
        .log_every(args.log_every)
        .settings(settings)
        .extra("training_command", command)
        .extra("label_column", label_col)
        .data_fingerprint(&args.data, &full)
        .interrupter(stop)
        .observer(TensorBoard::new(&dir))
        .observer(Progress::new(args.json, args.print_every));
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
        let metrics = MetricsFile::new(config_json(args, &config, &sizes));
        let session = builder.observer(metrics).build(&train_std, test)?;
        session.evaluate_at_end(&train_raw).run()
    })?
    .map_err(with_flags)?;
    report(&outcome, args.json);
    Ok(ExitCode::from(if outcome.interrupted { 130 } else { 0 }))
}

/// The settings a checkpoint records to continue the run (JSON: every
/// setting, with the data file's absolute path so it resumes from any
/// folder), and the command that started the run.
fn recorded(args: &TrainArgs, dir: &Path, resume: Option<&Checkpoint>) -> Result<(String, String)> {
    let mut recorded = args.clone();
    recorded.resume = None;
    recorded.out = Some(dir.to_path_buf());
    if recorded.data != "spiral" && resume.is_none() {
        if let Ok(abs) = std::fs::canonicalize(&recorded.data) {
            recorded.data = abs.to_string_lossy().into_owned();
        }
    }
    let command = resume
        .and_then(|c| c.extra.get("training_command").cloned())
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    Ok((serde_json::to_string(&recorded)?, command))
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
    args: &TrainArgs,
    train_raw: &Dataset,
    test_raw: Option<&Dataset>,
    model: &Model,
    resume: Option<&Checkpoint>,
) {
    let out = Out { json: args.json };
    let config = args.config();
    let model_name = format!("{:?}", args.model).to_lowercase();
    out.line(&format!(
        "vnn train: {} rows x {} features, {} classes{}; {model_name} {:?}; {} epochs, {} lr {}, reg {}",
        train_raw.n_rows(),
        train_raw.n_features,
        train_raw.n_classes,
        test_raw.map_or(String::new(), |t| format!(" (+{} test rows)", t.n_rows())),
        model.layout.sizes,
        config.epochs,
        config.optimizer.name(),
        config.lr,
        config.reg
    ));
    if let (Some(ckpt), Some(path)) = (resume, &args.resume) {
        out.line(&format!(
            "resuming from {} at step {}",
            path.display(),
            ckpt.step
        ));
    }
}

/// The settings as `metrics.json` records them.
fn config_json(args: &TrainArgs, config: &TrainConfig, sizes: &[usize]) -> serde_json::Value {
    json!({
        "data": args.data, "model": format!("{:?}", args.model).to_lowercase(), "sizes": sizes, "epochs": config.epochs,
        "lr": f32_json(config.lr), "reg": f32_json(config.reg), "optimizer": config.optimizer.name(),
        "momentum": f32_json(args.momentum), "batch_size": config.batch_size, "dropout": f32_json(config.dropout),
        "dropconnect": f32_json(config.dropconnect), "test_split": args.test_split, "standardize": args.standardize,
        "seed": config.seed, "threads": rayon::current_num_threads(), "init": format!("{:?}", args.init).to_lowercase(),
    })
}

/// The last lines of a run: where an interrupted run was saved, or the
/// results of a completed one.
fn report(outcome: &Outcome, json: bool) {
    let out = Out { json };
    if outcome.interrupted {
        let ckpt = &outcome.checkpoint_path;
        eprintln!(
            "interrupted at step {} of {}: model saved to {}, checkpoint to {} (continue with: vnn train --resume {})",
            outcome.steps,
            outcome.total,
            outcome.model_path.display(),
            ckpt.display(),
            ckpt.display()
        );
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
        println!("{}", outcome.summary());
    }
}

/// An `f32` setting as JSON, printed as typed (`0.9`, not `0.8999999761581421`).
fn f32_json(v: f32) -> serde_json::Value {
    v.to_string()
        .parse::<f64>()
        .map_or(serde_json::Value::Null, serde_json::Value::from)
}

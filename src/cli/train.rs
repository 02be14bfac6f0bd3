//! `vnn train`.
//!
//! # Checkpoints, resuming and interruption
//! With `--checkpoint-every N` the run writes `checkpoint.safetensors` into
//! its run folder every N optimizer steps and at the end (atomically: a
//! crash leaves the previous checkpoint whole). `--resume PATH` continues
//! the run of that checkpoint with the settings recorded in it and ends with
//! the same weights, bit for bit, as the run left uninterrupted. With
//! `--resume`, only options that do not change the run may be given:
//! `--epochs` (to lengthen or shorten it), `--out` (another run folder; by
//! default the checkpoint's folder), `--threads`, `--json`, `--no-plots`,
//! and how often to log, print and checkpoint; any other option is refused. Ctrl-C stops the run after the current
//! step, saves the model and a checkpoint, and exits with code 130 (a
//! second Ctrl-C exits at once). When the loss stops being finite the run
//! stops with an error naming the step; the checkpoint then holds the last
//! good state, never non-finite weights.

use super::{with_threads, Out};
use anyhow::{anyhow, bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use vnn::checkpoint::{self, Checkpoint};
use vnn::data::{self, Dataset, Standardizer};
use vnn::model::{Init, Model};
use vnn::plot::{self, CurvePoint};
use vnn::tensorboard::EventWriter;
use vnn::train::{evaluate, Optimizer, TrainConfig, Trainer};

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

/// UTC timestamp `YYYYmmdd-HHMMSS` from the system clock.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
    let checks = [
        (
            "hidden",
            args.model == ModelKind::Linear,
            "--model linear has no hidden layers",
        ),
        (
            "momentum",
            args.optimizer != OptimizerKind::Momentum,
            "it applies to --optimizer momentum only",
        ),
        ("label", spiral, "the built-in spiral has no CSV columns"),
        (
            "delimiter",
            spiral,
            "the built-in spiral has no CSV columns",
        ),
        ("spiral_points", !spiral, "it applies to --data spiral only"),
        (
            "spiral_classes",
            !spiral,
            "it applies to --data spiral only",
        ),
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

/// Rows, features, classes and a CRC-32C of the loaded data: a resumed run
/// checks it trains on the data its checkpoint was written from.
fn fingerprint(d: &Dataset) -> String {
    let mut crc = 0u32;
    let mut buf = Vec::with_capacity(16 * 1024);
    for chunk in d.features.chunks(4096) {
        buf.clear();
        buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
        crc = crc32c::crc32c_append(crc, &buf);
    }
    for chunk in d.labels.chunks(4096) {
        buf.clear();
        buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
        crc = crc32c::crc32c_append(crc, &buf);
    }
    format!(
        "{} rows x {} features, {} classes, crc32c {crc:08x}",
        d.n_rows(),
        d.n_features,
        d.n_classes
    )
}

/// The checkpoint's learning-curve points (the `curve` entry).
fn curve_of(ckpt: &Checkpoint, path: &Path) -> Result<Vec<CurvePoint>> {
    let Some(text) = ckpt.extra.get("curve") else {
        return Ok(Vec::new());
    };
    let points: Vec<(u64, f64, f64, Option<f64>)> = serde_json::from_str(text).map_err(|e| {
        anyhow!(
            "{}: metadata entry \"curve\" is not a list of curve points: {e}",
            path.display()
        )
    })?;
    Ok(points
        .into_iter()
        .map(|(step, loss, train_accuracy, test_accuracy)| CurvePoint {
            step,
            loss,
            train_accuracy,
            test_accuracy,
        })
        .collect())
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
    let out = Out { json: args.json };
    let config = args.config();
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
    let full = load_data(args)?;
    let label_col = label_column(args)?;
    let data_fingerprint = fingerprint(&full);
    let (train_raw, test_raw) = match args.test_split {
        Some(f) => {
            let (a, b) = data::stratified_split(&full, f, args.seed)?;
            (a, Some(b))
        }
        None => (full, None),
    };
    let mut sizes = vec![train_raw.n_features];
    if args.model == ModelKind::Mlp {
        if args.hidden.is_empty() || args.hidden.contains(&0) {
            bail!("--hidden needs one or more positive widths, e.g. 100 or 128,64");
        }
        sizes.extend_from_slice(&args.hidden);
    }
    sizes.push(train_raw.n_classes);
    let init = match args.init {
        InitKind::He => Init::He,
        InitKind::Small => Init::Small,
    };
    let mut model = Model::new(&sizes, init, args.seed.wrapping_add(0x1_0000))?;
    model.feature_names = train_raw.feature_names.clone();
    model.class_names = train_raw.class_names.clone();
    let mut train_std = train_raw.clone();
    if args.standardize {
        let s = Standardizer::fit(&train_raw.features, train_raw.n_features);
        s.apply(&mut train_std.features);
        model.standardizer = Some(s);
    }
    if let (Some(ckpt), Some(path)) = (&resume, &args.resume) {
        if let Some(recorded) = ckpt.extra.get("data_fingerprint") {
            if *recorded != data_fingerprint {
                bail!(
                    "{}: the data differs from the data the checkpoint {} was trained on ({data_fingerprint} now, {recorded} then)",
                    args.data,
                    path.display()
                );
            }
        }
        let c = &ckpt.model;
        if c.layout != model.layout
            || c.feature_names != model.feature_names
            || c.class_names != model.class_names
            || c.standardizer != model.standardizer
        {
            bail!(
                "{}: the checkpoint's model does not match its recorded settings (layer sizes, feature or class names, or standardization differ)",
                path.display()
            );
        }
        model = c.clone();
    }
    let model_name = if args.model == ModelKind::Linear {
        "linear"
    } else {
        "mlp"
    };
    let dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("{}-{model_name}-{}", args.data_name(), timestamp()))
    });
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the run folder {}", dir.display()))?;

    // What a checkpoint records to continue the run: every setting, with
    // the data file's absolute path so it resumes from any folder.
    let mut recorded = args.clone();
    recorded.resume = None;
    recorded.out = Some(dir.clone());
    if recorded.data != "spiral" && resume.is_none() {
        if let Ok(abs) = std::fs::canonicalize(&recorded.data) {
            recorded.data = abs.to_string_lossy().into_owned();
        }
    }
    let mut extra = BTreeMap::new();
    extra.insert(
        "training_command".to_string(),
        resume
            .as_ref()
            .and_then(|c| c.extra.get("training_command").cloned())
            .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" ")),
    );
    extra.insert("label_column".to_string(), label_col);
    extra.insert(
        "vnn_version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    let mut ckpt_extra = extra.clone();
    ckpt_extra.insert("data_fingerprint".to_string(), data_fingerprint);
    let mut checkpoints = CheckpointWriter {
        path: dir.join(checkpoint::FILE_NAME),
        every: args.checkpoint_every,
        settings: serde_json::to_string(&recorded)?,
        extra: ckpt_extra,
        last_step: None,
    };

    // Ctrl-C: the loop stops after the current step and saves; a second
    // Ctrl-C exits at once. Installed before the first line is printed, so
    // whoever has seen that line may interrupt.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;

    out.line(&format!(
        "vnn train: {} rows x {} features, {} classes{}; {} {:?}; {} epochs, {} lr {}, reg {}",
        train_raw.n_rows(),
        train_raw.n_features,
        train_raw.n_classes,
        test_raw
            .as_ref()
            .map_or(String::new(), |t| format!(" (+{} test rows)", t.n_rows())),
        model_name,
        sizes,
        config.epochs,
        config.optimizer.name(),
        config.lr,
        config.reg
    ));
    if let (Some(ckpt), Some(path)) = (&resume, &args.resume) {
        out.line(&format!(
            "resuming from {} at step {}",
            path.display(),
            ckpt.step
        ));
    }

    let threads = args.threads;
    let ctx = LoopContext {
        args,
        config: &config,
        train_std: &train_std,
        test_raw: test_raw.as_ref(),
        dir: &dir,
        out,
        stop: &stop,
        resume: resume.as_ref(),
    };
    let result = with_threads(threads, || train_loop(&ctx, model, &mut checkpoints))??;
    let TrainOutcome {
        model,
        curve,
        final_loss,
        seconds,
        steps,
        total,
        interrupted,
        threads: threads_used,
        first_loss,
    } = result;

    let model_path = dir.join("model.safetensors");
    if interrupted {
        vnn::modelfile::save_model(&model, &extra, &model_path)?;
        let ckpt = &checkpoints.path;
        eprintln!(
            "interrupted at step {steps} of {total}: model saved to {}, checkpoint to {} (continue with: vnn train --resume {})",
            model_path.display(),
            ckpt.display(),
            ckpt.display()
        );
        return Ok(ExitCode::from(130));
    }

    let train_eval = evaluate(&model, &train_raw)?;
    let test_eval = test_raw.as_ref().map(|t| evaluate(&model, t)).transpose()?;
    vnn::modelfile::save_model(&model, &extra, &model_path)?;
    if !args.no_plots {
        let title = format!("{} on {}", model_name, args.data_name());
        plot::plot_curves(&dir.join("curves.png"), &title, &curve)?;
        if train_raw.n_features == 2 {
            let all = match &test_raw {
                Some(t) => {
                    let mut d = train_raw.clone();
                    d.features.extend_from_slice(&t.features);
                    d.labels.extend_from_slice(&t.labels);
                    d
                }
                None => train_raw.clone(),
            };
            plot::plot_boundary(
                &dir.join("boundary.png"),
                &format!("Decision boundary: {title}"),
                &model,
                &all,
            )?;
        }
    }
    let summary = json!({
        "train_accuracy": train_eval.accuracy,
        "test_accuracy": test_eval.as_ref().map(|e| e.accuracy),
        "final_loss": final_loss,
        "epochs": config.epochs,
        "seconds": seconds,
        "out": dir.display().to_string(),
    });
    let metrics = json!({
        "summary": summary,
        "steps": steps,
        "train_loss": train_eval.loss,
        "test_loss": test_eval.as_ref().map(|e| e.loss),
        "config": {
            "data": args.data, "model": model_name, "sizes": sizes, "epochs": config.epochs,
            "lr": f32_json(config.lr), "reg": f32_json(config.reg), "optimizer": config.optimizer.name(),
            "momentum": f32_json(args.momentum), "batch_size": config.batch_size, "dropout": f32_json(config.dropout),
            "dropconnect": f32_json(config.dropconnect), "test_split": args.test_split, "standardize": args.standardize,
            "seed": config.seed, "threads": threads_used, "init": format!("{:?}", args.init).to_lowercase(),
        },
        "curve": curve.iter().map(|p| json!({"step": p.step, "loss": p.loss, "train_accuracy": p.train_accuracy, "test_accuracy": p.test_accuracy})).collect::<Vec<_>>(),
    });
    vnn::fsutil::write_atomic(
        &dir.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)?.as_bytes(),
    )?;
    out.line(&format!(
        "done: {steps} steps in {seconds:.2} s; final loss {final_loss:.4}; train accuracy {:.4}{}",
        train_eval.accuracy,
        test_eval.as_ref().map_or(String::new(), |e| format!(
            ", test accuracy {:.4}",
            e.accuracy
        ))
    ));
    if final_loss > first_loss * 1.5 {
        out.line(&format!(
            "warning: the loss rose from {first_loss:.4} to {final_loss:.4}: the learning rate may be too high for this data (try a lower --lr, or --standardize)"
        ));
    }
    out.line(&format!("run folder: {}", dir.display()));
    if args.json {
        println!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the run's checkpoint file.
struct CheckpointWriter {
    path: PathBuf,
    /// `--checkpoint-every`.
    every: Option<u64>,
    /// The recorded settings (JSON).
    settings: String,
    /// Metadata entries besides the settings and the curve.
    extra: BTreeMap<String, String>,
    /// The step of the last checkpoint written.
    last_step: Option<u64>,
}

impl CheckpointWriter {
    /// Writes the trainer's state unless it holds a non-finite value (a
    /// good checkpoint is never replaced by a broken one); returns whether
    /// it wrote.
    fn write(&mut self, trainer: &Trainer, curve: &[CurvePoint]) -> Result<bool> {
        let mut extra = self.extra.clone();
        let points: Vec<_> = curve
            .iter()
            .map(|p| (p.step, p.loss, p.train_accuracy, p.test_accuracy))
            .collect();
        extra.insert("curve".to_string(), serde_json::to_string(&points)?);
        let ckpt = Checkpoint {
            step: trainer.steps_done(),
            model: trainer.model().clone(),
            optimizer: trainer.optimizer_state().clone(),
            settings: self.settings.clone(),
            extra,
        };
        if !ckpt.is_finite() {
            return Ok(false);
        }
        ckpt.save(&self.path)?;
        self.last_step = Some(ckpt.step);
        Ok(true)
    }
}

/// An `f32` setting as JSON, printed as typed (`0.9`, not `0.8999999761581421`).
fn f32_json(v: f32) -> serde_json::Value {
    v.to_string()
        .parse::<f64>()
        .map_or(serde_json::Value::Null, serde_json::Value::from)
}

struct TrainOutcome {
    model: Model,
    curve: Vec<CurvePoint>,
    final_loss: f64,
    seconds: f64,
    /// Optimizer steps done (of the whole run, resumed or not).
    steps: u64,
    /// Steps of the whole run.
    total: u64,
    /// Stopped by Ctrl-C before the end (a checkpoint was written).
    interrupted: bool,
    /// Threads of the pool the run used.
    threads: usize,
    /// Loss of the first step of this invocation (to warn when it rose).
    first_loss: f64,
}

/// What the training loop reads.
struct LoopContext<'a> {
    args: &'a TrainArgs,
    config: &'a TrainConfig,
    train_std: &'a Dataset,
    test_raw: Option<&'a Dataset>,
    dir: &'a Path,
    out: Out,
    /// Set by Ctrl-C.
    stop: &'a AtomicBool,
    /// The checkpoint the run resumes from.
    resume: Option<&'a Checkpoint>,
}

fn train_loop(
    ctx: &LoopContext,
    model: Model,
    checkpoints: &mut CheckpointWriter,
) -> Result<TrainOutcome> {
    let LoopContext {
        args,
        config,
        train_std,
        test_raw,
        dir,
        out,
        stop,
        resume,
    } = *ctx;
    let mut trainer = Trainer::new(model, train_std, config.clone())?;
    let mut curve = Vec::new();
    if let (Some(ckpt), Some(path)) = (resume, &args.resume) {
        trainer
            .restore(ckpt.step, ckpt.optimizer.clone())
            .with_context(|| {
                format!(
                    "{}: the checkpoint's optimizer state does not fit the {} optimizer of its settings",
                    path.display(),
                    config.optimizer.name()
                )
            })?;
        curve = curve_of(ckpt, path)?;
        curve.retain(|p| p.step <= ckpt.step);
    }
    let total = trainer.total_steps();
    let start = trainer.steps_done();
    if start == total {
        bail!(
            "the run in this checkpoint is complete (step {start} of {total}); give more --epochs to continue it"
        );
    }
    if start > total {
        bail!(
            "the checkpoint is at step {start}, past the end of a run of {} epochs ({total} steps); give more --epochs",
            config.epochs
        );
    }
    let mut events = EventWriter::create(dir)?;
    let bar = if args.json {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40.cyan/blue} {pos}/{len} steps [{elapsed_precise} < {eta}] {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_position(start);
    let mut final_loss = f64::NAN;
    let mut first_loss = f64::NAN;
    let started = Instant::now();
    let mut last_bar = Instant::now();
    let mut interrupted = false;
    while trainer.steps_done() < total {
        let stats = match trainer.step() {
            Ok(stats) => stats,
            Err(e) => {
                // Diverged: the trainer still holds the last good state.
                bar.finish_and_clear();
                let _ = events.flush();
                let done = trainer.steps_done();
                if checkpoints.every.is_some() && checkpoints.last_step != Some(done) {
                    if checkpoints.write(&trainer, &curve)? {
                        out.line(&format!(
                            "checkpoint of step {done} (the last good state): {}",
                            checkpoints.path.display()
                        ));
                    } else {
                        out.line(&format!(
                            "the weights after step {done} are not finite: {} keeps its last good state",
                            checkpoints.path.display()
                        ));
                    }
                }
                return Err(e.into());
            }
        };
        final_loss = stats.loss;
        if first_loss.is_nan() {
            first_loss = stats.loss;
        }
        let s = stats.step;
        if s % args.log_every == 0 || s == total || s == 1 {
            let test_acc = match test_raw {
                Some(t) => Some(evaluate(trainer.model(), t)?.accuracy),
                None => None,
            };
            let step = s as i64;
            events.add_scalar("loss", step, stats.loss as f32)?;
            events.add_scalar("accuracy/train", step, stats.accuracy as f32)?;
            if let Some(a) = test_acc {
                events.add_scalar("accuracy/test", step, a as f32)?;
            }
            events.add_scalar("lr", step, config.lr)?;
            for (i, slot) in trainer.model().layout.layers.iter().enumerate() {
                events.add_histogram(
                    &format!("weights/layers.{i}"),
                    step,
                    &trainer.model().params[slot.weight_range()],
                )?;
            }
            events.flush()?;
            curve.push(CurvePoint {
                step: s,
                loss: stats.loss,
                train_accuracy: stats.accuracy,
                test_accuracy: test_acc,
            });
        }
        if (s - 1) % args.print_every == 0 || s == total {
            let line = format!(
                "EPOCH {}: Training loss: {:.3}, Accuracy: {:.3}",
                stats.epoch, stats.loss, stats.accuracy
            );
            bar.suspend(|| out.line(&line));
        }
        if last_bar.elapsed().as_millis() >= 100 || s == total {
            bar.set_position(s);
            bar.set_message(format!("loss {:.4} acc {:.3}", stats.loss, stats.accuracy));
            last_bar = Instant::now();
        }
        if checkpoints.every.is_some_and(|n| s % n == 0) {
            checkpoints.write(&trainer, &curve)?;
        }
        if stop.load(Ordering::SeqCst) && s < total {
            interrupted = true;
            break;
        }
    }
    bar.finish_and_clear();
    events.flush()?;
    let done = trainer.steps_done();
    if (interrupted || checkpoints.every.is_some())
        && checkpoints.last_step != Some(done)
        && !checkpoints.write(&trainer, &curve)?
    {
        bail!(
            "the weights after step {done} are not finite: {} keeps its last good state",
            checkpoints.path.display()
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(TrainOutcome {
        model: trainer.into_model(),
        curve,
        final_loss,
        seconds,
        steps: done,
        total,
        interrupted,
        threads: rayon::current_num_threads(),
        first_loss,
    })
}

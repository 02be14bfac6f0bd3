//! The options of `vnn train`, field for field the [`RunSettings`] of a
//! run. With the `cli` feature they are also the binary's command-line
//! parser (clap), so the binary only parses them: their defaults, names and
//! help live here.

use super::{InitKind, LrScheduleKind, ModelKind, OptimizerKind, RunSettings};
use std::path::PathBuf;

/// Options of `vnn train`: the [`RunSettings`] of the run, field for field.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct TrainOptions {
    /// Training data: `spiral` (built in) or a CSV file with a header row.
    #[cfg_attr(feature = "cli", arg(long, default_value = "spiral"))]
    pub data: String,
    /// Label column of the CSV (default: the last column).
    #[cfg_attr(feature = "cli", arg(long))]
    pub label: Option<String>,
    /// CSV field delimiter (one character, or `tab`); never guessed.
    #[cfg_attr(feature = "cli", arg(long, default_value = ",", value_parser = parse_delimiter))]
    pub delimiter: u8,
    /// Model: softmax classifier or ReLU MLP.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = ModelKind::Mlp))]
    pub model: ModelKind,
    /// Hidden layer widths of the MLP, comma-separated (e.g. 100 or 128,64).
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value = "100", value_delimiter = ',')
    )]
    pub hidden: Vec<usize>,
    /// Passes over the training rows (full batch: one step each).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 10_000))]
    pub epochs: u64,
    /// Learning rate.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 1.0))]
    pub lr: f32,
    /// L2 regularization strength (loss += 0.5 * reg * sum W^2).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.001))]
    pub reg: f32,
    /// Update rule.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = OptimizerKind::Sgd))]
    pub optimizer: OptimizerKind,
    /// Momentum coefficient for --optimizer momentum.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.9))]
    pub momentum: f32,
    /// Rows per step (default: the full batch).
    #[cfg_attr(feature = "cli", arg(long))]
    pub batch_size: Option<usize>,
    /// Dropout probability on hidden units during training.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.0))]
    pub dropout: f32,
    /// Dropconnect probability on weights during training.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.0))]
    pub dropconnect: f32,
    /// Fraction of rows held out as a stratified test set (e.g. 0.2).
    #[cfg_attr(feature = "cli", arg(long))]
    pub test_split: Option<f64>,
    /// Standardize features (mean 0, scale 1); stored in the model.
    #[cfg_attr(feature = "cli", arg(long))]
    pub standardize: bool,
    /// Seed of the data (spiral), split, initialization, shuffles and masks.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    pub seed: u64,
    /// Worker threads (default: all cores; at most 256).
    #[cfg_attr(feature = "cli", arg(long))]
    pub threads: Option<usize>,
    /// Log scalars, histograms and curve points every N optimizer steps.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 100))]
    pub log_every: u64,
    /// Print an "EPOCH i: Training loss (batch), Accuracy (batch)" line every N
    /// optimizer steps (the figures of that step's batch).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 1000))]
    pub print_every: u64,
    /// Run folder (default: runs/<data>-<model>-<timestamp>).
    #[cfg_attr(feature = "cli", arg(long))]
    pub out: Option<PathBuf>,
    /// Print one JSON object with the results as the last line of stdout.
    #[cfg_attr(feature = "cli", arg(long))]
    pub json: bool,
    /// Weight initialization.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = InitKind::He))]
    pub init: InitKind,
    /// Points per class of the built-in spiral.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 100))]
    pub spiral_points: usize,
    /// Classes of the built-in spiral.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 3))]
    pub spiral_classes: usize,
    /// Skip curves.png and boundary.png.
    #[cfg_attr(feature = "cli", arg(long))]
    pub no_plots: bool,
    /// Write checkpoint.safetensors (model, optimizer state, settings) into
    /// the run folder every N optimizer steps and at the end.
    #[cfg_attr(feature = "cli", arg(long, value_name = "N"))]
    pub checkpoint_every: Option<u64>,
    /// Continue the run of this checkpoint with its recorded settings
    /// (allowed with it: --epochs, --out, --threads, --json, --no-plots,
    /// --log-every, --print-every, --checkpoint-every).
    #[cfg_attr(feature = "cli", arg(long, value_name = "PATH"))]
    pub resume: Option<PathBuf>,
    /// Hold out this fraction of the training rows (after --test-split) as
    /// stratified validation data (e.g. 0.2).
    #[cfg_attr(feature = "cli", arg(long, value_name = "F"))]
    pub val_split: Option<f64>,
    /// Validation rows: a CSV file with the training file's columns.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub val_data: Option<String>,
    /// Stop when the validation loss (without validation data: the
    /// training loss) stops improving, and keep the best weights.
    #[cfg_attr(feature = "cli", arg(long))]
    pub early_stopping: bool,
    /// Evaluations without improvement before --early-stopping stops.
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", default_value_t = 10))]
    pub patience: u64,
    /// An improvement is a loss below the best minus this.
    #[cfg_attr(feature = "cli", arg(long, value_name = "D", default_value_t = 1e-4))]
    pub min_delta: f64,
    /// Learning-rate schedule.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = LrScheduleKind::Constant))]
    pub lr_schedule: LrScheduleKind,
    /// Factor of the step and plateau schedules.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.1))]
    pub lr_gamma: f32,
    /// Epochs per stage of --lr-schedule step.
    #[cfg_attr(feature = "cli", arg(long, value_name = "N"))]
    pub lr_step_every: Option<u64>,
    /// Final rate of --lr-schedule cosine.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.0))]
    pub lr_min: f32,
    /// Evaluations without improvement before --lr-schedule plateau lowers
    /// the rate.
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", default_value_t = 5))]
    pub lr_patience: u64,
}

impl TrainOptions {
    /// The run settings of these options (the same fields, by name).
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            data: self.data.clone(),
            label: self.label.clone(),
            delimiter: self.delimiter,
            model: self.model,
            hidden: self.hidden.clone(),
            epochs: self.epochs,
            lr: self.lr,
            reg: self.reg,
            optimizer: self.optimizer,
            momentum: self.momentum,
            batch_size: self.batch_size,
            dropout: self.dropout,
            dropconnect: self.dropconnect,
            test_split: self.test_split,
            standardize: self.standardize,
            seed: self.seed,
            threads: self.threads,
            log_every: self.log_every,
            print_every: self.print_every,
            out: self.out.clone(),
            json: self.json,
            init: self.init,
            spiral_points: self.spiral_points,
            spiral_classes: self.spiral_classes,
            no_plots: self.no_plots,
            checkpoint_every: self.checkpoint_every,
            resume: self.resume.clone(),
            val_split: self.val_split,
            val_data: self.val_data.clone(),
            early_stopping: self.early_stopping,
            patience: self.patience,
            min_delta: self.min_delta,
            lr_schedule: self.lr_schedule,
            lr_gamma: self.lr_gamma,
            lr_step_every: self.lr_step_every,
            lr_min: self.lr_min,
            lr_patience: self.lr_patience,
        }
    }
}

/// Parses a CSV delimiter option: one ASCII character, or `tab` (also `\t`).
///
/// ```
/// use vnn::settings::parse_delimiter;
/// assert_eq!(parse_delimiter(";"), Ok(b';'));
/// assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
/// assert!(parse_delimiter("ab").is_err());
/// ```
pub fn parse_delimiter(s: &str) -> std::result::Result<u8, String> {
    match s {
        "\\t" | "tab" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(format!(
            "the delimiter must be one ASCII character (or 'tab'), got '{s}'"
        )),
    }
}

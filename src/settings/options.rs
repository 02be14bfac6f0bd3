//! The options of `vnn train`, field for field the [`RunSettings`] of a
//! run. With the `cli` feature they are also the binary's command-line
//! parser (clap), so the binary only parses them: their defaults, names and
//! help live here.

use super::{ClassWeight, InitKind, LrScheduleKind, ModelKind, OptimizerKind, RunSettings};
use std::path::PathBuf;

/// Options of `vnn train`: the [`RunSettings`] of the run, field for field.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct TrainOptions {
    /// Training data: `spiral` (built in), a CSV file with a header row, or
    /// `-` for a CSV on standard input.
    #[cfg_attr(feature = "cli", arg(long, default_value = "spiral"))]
    pub data: String,
    /// Label column of the CSV (default: the last column).
    #[cfg_attr(feature = "cli", arg(long))]
    pub label: Option<String>,
    /// CSV field delimiter (one character, or `tab`); never guessed.
    #[cfg_attr(feature = "cli", arg(long, default_value = ",", value_parser = parse_delimiter))]
    pub delimiter: u8,
    /// Model: softmax classifier or MLP (--hidden layers with --activation).
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = ModelKind::Mlp))]
    pub model: ModelKind,
    /// Hidden layer widths of the MLP, comma-separated (e.g. 100 or 128,64).
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value = "100", value_delimiter = ',')
    )]
    pub hidden: Vec<usize>,
    /// Activation after each hidden layer of the MLP: relu, tanh, sigmoid or leaky-relu.
    #[cfg_attr(feature = "cli", arg(long, default_value = "relu"))]
    pub activation: crate::model::Activation,
    /// Passes over the training rows (one step per batch)
    /// [default: 10000 for the spiral, 200 for CSV data].
    #[cfg_attr(feature = "cli", arg(long))]
    pub epochs: Option<u64>,
    /// Learning rate [default: 1 for the spiral, 0.001 for CSV data].
    #[cfg_attr(feature = "cli", arg(long))]
    pub lr: Option<f32>,
    /// L2 regularization strength (loss += 0.5 * reg * sum W^2)
    /// [default: 0.001 for the spiral, 0.0001 for CSV data].
    #[cfg_attr(feature = "cli", arg(long))]
    pub reg: Option<f32>,
    /// Update rule [default: sgd for the spiral, adam for CSV data].
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub optimizer: Option<OptimizerKind>,
    /// Momentum coefficient for --optimizer momentum.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.9))]
    pub momentum: f32,
    /// Rows per step [default: the full batch for the spiral, min(200,
    /// rows) for CSV data].
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
    /// Standardize features (mean 0, scale 1); stored in the model
    /// [default: on for CSV data, off for the spiral].
    #[cfg_attr(feature = "cli", arg(long))]
    pub standardize: bool,
    /// Do not standardize the features (CSV data is standardized by default).
    #[cfg_attr(feature = "cli", arg(long, conflicts_with = "standardize"))]
    pub no_standardize: bool,
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
    /// Run folder (default: runs/<data>-<model>-<optimizer>-lr<lr>-<UTC time>).
    #[cfg_attr(feature = "cli", arg(long))]
    pub out: Option<PathBuf>,
    /// Print one JSON object with the results as the last line of stdout.
    #[cfg_attr(feature = "cli", arg(long))]
    pub json: bool,
    /// Weight initialization [default: he for the spiral, glorot for CSV data].
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub init: Option<InitKind>,
    /// Points per class of the built-in spiral.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 100))]
    pub spiral_points: usize,
    /// Classes of the built-in spiral.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 3))]
    pub spiral_classes: usize,
    /// Weight each training row's loss by its class: `balanced` gives a
    /// class `n_samples / (n_classes x count)` (as scikit-learn).
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = ClassWeight::None))]
    pub class_weight: ClassWeight,
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
    /// Evaluations without improvement before --early-stopping stops (the
    /// run evaluates every --log-every steps and at the end of every epoch
    /// of a run with batches).
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
    /// the rate (evaluations as for --patience).
    #[cfg_attr(feature = "cli", arg(long, value_name = "N", default_value_t = 5))]
    pub lr_patience: u64,
}

/// The settings whose default depends on the data: the source text's
/// spiral run, or scikit-learn's `MLPClassifier` for CSV data.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Defaults {
    epochs: u64,
    lr: f32,
    reg: f32,
    optimizer: OptimizerKind,
    /// `None`: the full batch.
    batch_size: Option<usize>,
    standardize: bool,
    init: InitKind,
}

/// The source text's spiral run: SGD at lr 1, full batch, 10,000 epochs,
/// He initialization, reg 1e-3, raw features.
const SPIRAL_DEFAULTS: Defaults = Defaults {
    epochs: 10_000,
    lr: 1.0,
    reg: 1e-3,
    optimizer: OptimizerKind::Sgd,
    batch_size: None,
    standardize: false,
    init: InitKind::He,
};

/// CSV data, as scikit-learn's `MLPClassifier`: standardized features,
/// Adam at lr 1e-3, batches of `min(200, rows)` (a batch size of 200 is
/// the full batch below 200 rows), 200 epochs, Glorot-uniform weights and
/// biases. The L2 strength 1e-4 is scikit-learn's `alpha`; the README
/// gives the accuracies measured with it.
const CSV_DEFAULTS: Defaults = Defaults {
    epochs: 200,
    lr: 1e-3,
    reg: 1e-4,
    optimizer: OptimizerKind::Adam,
    batch_size: Some(200),
    standardize: true,
    init: InitKind::Glorot,
};

impl Default for TrainOptions {
    /// The options of `vnn train` without arguments: the spiral, and every
    /// data-dependent setting left to its default.
    fn default() -> Self {
        TrainOptions {
            data: "spiral".into(),
            label: None,
            delimiter: b',',
            model: ModelKind::Mlp,
            hidden: vec![100],
            activation: crate::model::Activation::Relu,
            epochs: None,
            lr: None,
            reg: None,
            optimizer: None,
            momentum: 0.9,
            batch_size: None,
            dropout: 0.0,
            dropconnect: 0.0,
            test_split: None,
            standardize: false,
            no_standardize: false,
            seed: 0,
            threads: None,
            log_every: 100,
            print_every: 1000,
            out: None,
            json: false,
            init: None,
            spiral_points: 100,
            spiral_classes: 3,
            val_split: None,
            val_data: None,
            early_stopping: false,
            patience: 10,
            min_delta: 1e-4,
            lr_schedule: LrScheduleKind::Constant,
            lr_gamma: 0.1,
            lr_step_every: None,
            lr_min: 0.0,
            lr_patience: 5,
            class_weight: ClassWeight::None,
            no_plots: false,
            checkpoint_every: None,
            resume: None,
        }
    }
}

impl TrainOptions {
    /// The defaults of this run's data.
    fn defaults(&self) -> Defaults {
        if self.data == "spiral" {
            SPIRAL_DEFAULTS
        } else {
            CSV_DEFAULTS
        }
    }

    /// Whether the features are standardized: as given, else the data's
    /// default.
    fn standardized(&self) -> bool {
        match (self.standardize, self.no_standardize) {
            (true, _) => true,
            (_, true) => false,
            _ => self.defaults().standardize,
        }
    }

    /// The run settings of these options (the same fields, by name), with
    /// the data's defaults for what was not given: the source text's run
    /// for the spiral, scikit-learn's `MLPClassifier` for CSV data.
    ///
    /// ```
    /// use vnn::settings::{InitKind, OptimizerKind, TrainOptions};
    /// let spiral = TrainOptions::default().settings();
    /// assert_eq!((spiral.epochs, spiral.lr, spiral.batch_size), (10_000, 1.0, None));
    /// let csv = TrainOptions { data: "iris.csv".into(), lr: Some(0.01), ..TrainOptions::default() };
    /// let s = csv.settings();
    /// assert_eq!((s.optimizer, s.lr, s.epochs, s.batch_size), (OptimizerKind::Adam, 0.01, 200, Some(200)));
    /// assert!(s.standardize && s.init == InitKind::Glorot);
    /// ```
    pub fn settings(&self) -> RunSettings {
        let d = self.defaults();
        RunSettings {
            data: self.data.clone(),
            label: self.label.clone(),
            delimiter: self.delimiter,
            model: self.model,
            hidden: self.hidden.clone(),
            activation: self.activation,
            epochs: self.epochs.unwrap_or(d.epochs),
            lr: self.lr.unwrap_or(d.lr),
            reg: self.reg.unwrap_or(d.reg),
            optimizer: self.optimizer.unwrap_or(d.optimizer),
            momentum: self.momentum,
            batch_size: self.batch_size.or(d.batch_size),
            dropout: self.dropout,
            dropconnect: self.dropconnect,
            test_split: self.test_split,
            standardize: self.standardized(),
            seed: self.seed,
            threads: self.threads,
            log_every: self.log_every,
            print_every: self.print_every,
            out: self.out.clone(),
            json: self.json,
            init: self.init.unwrap_or(d.init),
            spiral_points: self.spiral_points,
            spiral_classes: self.spiral_classes,
            class_weight: self.class_weight,
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

    /// The line saying which defaults [`TrainOptions::settings`] chose for
    /// what was not given, for a run on `train_rows` training rows; `None`
    /// when every such setting was given.
    ///
    /// ```
    /// use vnn::settings::TrainOptions;
    /// let spiral = TrainOptions::default();
    /// assert_eq!(spiral.chosen_defaults(300).unwrap(), "defaults of the source text's spiral run");
    /// let csv = TrainOptions { data: "iris.csv".into(), epochs: Some(50), ..TrainOptions::default() };
    /// assert_eq!(
    ///     csv.chosen_defaults(120).unwrap(),
    ///     "defaults for CSV data: standardized, adam lr 0.001, batches of 120, glorot init, reg 0.0001"
    /// );
    /// ```
    pub fn chosen_defaults(&self, train_rows: usize) -> Option<String> {
        let (d, s) = (self.defaults(), self.settings());
        let mut parts = Vec::new();
        if !self.standardize && !self.no_standardize {
            parts.push(
                if d.standardize {
                    "standardized"
                } else {
                    "raw features"
                }
                .to_string(),
            );
        }
        let optimizer = format!("{:?}", s.optimizer).to_lowercase();
        match (self.optimizer, self.lr) {
            (None, None) => parts.push(format!("{optimizer} lr {}", s.lr)),
            (None, Some(_)) => parts.push(optimizer),
            (Some(_), None) => parts.push(format!("lr {}", s.lr)),
            _ => {}
        }
        if self.batch_size.is_none() {
            parts.push(match s.batch_size {
                Some(b) => format!("batches of {}", b.min(train_rows)),
                None => "full batch".into(),
            });
        }
        if self.epochs.is_none() {
            parts.push(format!("{} epochs", s.epochs));
        }
        if self.init.is_none() {
            parts.push(format!("{:?} init", s.init).to_lowercase());
        }
        if self.reg.is_none() {
            parts.push(format!("reg {}", s.reg));
        }
        if parts.is_empty() {
            return None;
        }
        if d == SPIRAL_DEFAULTS {
            let all = [self.epochs.is_none(), self.lr.is_none(), self.reg.is_none()]
                .into_iter()
                .chain([self.optimizer.is_none(), self.batch_size.is_none()])
                .chain([self.init.is_none(), !self.standardize, !self.no_standardize])
                .all(|d| d);
            return Some(match all {
                true => "defaults of the source text's spiral run".into(),
                false => format!(
                    "defaults of the source text's spiral run: {}",
                    parts.join(", ")
                ),
            });
        }
        Some(format!("defaults for CSV data: {}", parts.join(", ")))
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

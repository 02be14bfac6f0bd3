//! The settings of a training run as a checkpoint records them, and the
//! rules around them: which settings can run, which options a resumed run
//! may change, where its data comes from and how its model is built.
//!
//! The recorded form is JSON object text with one entry per setting (the
//! field names below); `vnn train --resume` reads it back.

use crate::checkpoint::Checkpoint;
use crate::data::{self, Dataset};
use crate::model::{Activation, Init, Model};
use crate::train::{Optimizer, TrainConfig};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};

mod options;
mod run_data;
pub use options::{parse_delimiter, TrainOptions};
use run_data::{default_lr_gamma, default_lr_patience, default_min_delta, default_patience};
pub use run_data::{LrScheduleKind, RunData};

/// The model family of a run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Softmax classifier on the raw features (no hidden layer).
    Linear,
    /// MLP with the `hidden` layer widths, each followed by the `activation`.
    Mlp,
}

/// The update rule of a run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain gradient descent.
    Sgd,
    /// Gradient descent with momentum (the `momentum` setting).
    Momentum,
    /// Adam (beta1 0.9, beta2 0.999, eps 1e-8).
    Adam,
}

/// The weight initialization of a run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum InitKind {
    /// He: normal * sqrt(2 / fan_in).
    He,
    /// 0.01 * normal, as in the source text.
    Small,
    /// Glorot (Xavier) uniform weights and biases, as scikit-learn's
    /// `MLPClassifier`.
    Glorot,
}

/// How each training row's loss is weighted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ClassWeight {
    /// Every row counts the same.
    #[default]
    None,
    /// scikit-learn's `balanced`: a row of class `c` counts
    /// `n_samples / (n_classes * count(c))`, over the training rows.
    Balanced,
}

/// Every setting of a training run, named as the `vnn train` options
/// (`log_every` is `--log-every`). Error messages name the options.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// `spiral` (built in) or the path of a CSV file with a header row.
    pub data: String,
    /// Label column of the CSV (`None`: the last column).
    pub label: Option<String>,
    /// CSV field delimiter.
    pub delimiter: u8,
    /// Model family.
    pub model: ModelKind,
    /// Hidden layer widths of the MLP.
    pub hidden: Vec<usize>,
    /// The activation after each hidden layer of the MLP (missing from the
    /// settings of older checkpoints, which trained ReLU).
    #[serde(default)]
    pub activation: Activation,
    /// Passes over the training rows.
    pub epochs: u64,
    /// Learning rate.
    pub lr: f32,
    /// L2 regularization strength.
    pub reg: f32,
    /// Update rule.
    pub optimizer: OptimizerKind,
    /// Momentum coefficient for [`OptimizerKind::Momentum`].
    pub momentum: f32,
    /// Rows per step (`None`: the full batch).
    pub batch_size: Option<usize>,
    /// Dropout probability on hidden units.
    pub dropout: f32,
    /// Dropconnect probability on weights.
    pub dropconnect: f32,
    /// Fraction of rows held out as a stratified test set.
    pub test_split: Option<f64>,
    /// Standardize the features (stored in the model).
    pub standardize: bool,
    /// Seed of the data (spiral), split, initialization, shuffles and masks.
    pub seed: u64,
    /// Worker threads (`None`: all cores).
    pub threads: Option<usize>,
    /// Log every N optimizer steps.
    pub log_every: u64,
    /// Print a progress line every N optimizer steps.
    pub print_every: u64,
    /// Run folder (`None`: chosen from the data, model and time).
    pub out: Option<PathBuf>,
    /// Results as JSON on stdout.
    pub json: bool,
    /// Weight initialization.
    pub init: InitKind,
    /// Points per class of the built-in spiral.
    pub spiral_points: usize,
    /// Classes of the built-in spiral.
    pub spiral_classes: usize,
    /// Skip the plots.
    pub no_plots: bool,
    /// Write a checkpoint every N optimizer steps and at the end.
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    /// Weights of the rows' losses by class (`none` in checkpoints that
    /// predate the setting).
    #[serde(default)]
    pub class_weight: ClassWeight,
    /// The checkpoint this run continues (never recorded).
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Fraction of the training rows (after `test_split`) held out as
    /// stratified validation data (older runs: none).
    #[serde(default)]
    pub val_split: Option<f64>,
    /// A CSV file of validation rows with the training file's columns.
    #[serde(default)]
    pub val_data: Option<String>,
    /// Stop when the watched loss (validation, else training) stalls, and
    /// end with the best weights (older runs: off).
    #[serde(default)]
    pub early_stopping: bool,
    /// Evaluations without improvement before early stopping stops.
    #[serde(default = "default_patience")]
    pub patience: u64,
    /// Improvement threshold of early stopping and the plateau schedule.
    #[serde(default = "default_min_delta")]
    pub min_delta: f64,
    /// Learning-rate schedule (older runs: constant).
    #[serde(default)]
    pub lr_schedule: LrScheduleKind,
    /// Factor of the step and plateau schedules.
    #[serde(default = "default_lr_gamma")]
    pub lr_gamma: f32,
    /// Epochs per stage of the step schedule.
    #[serde(default)]
    pub lr_step_every: Option<u64>,
    /// Final rate of the cosine schedule.
    #[serde(default)]
    pub lr_min: f32,
    /// Evaluations without improvement before the plateau schedule lowers
    /// the rate.
    #[serde(default = "default_lr_patience")]
    pub lr_patience: u64,
}

/// Options a resumed run accepts besides `resume` itself: they leave the
/// run's settings alone (`epochs` only sets where it ends).
pub const RESUME_OPTIONS: [&str; 9] = [
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

/// Refuses `option` (an id such as `log_every`) if `given` and not one of
/// [`RESUME_OPTIONS`]: a resumed run keeps its recorded settings.
///
/// ```
/// use vnn::settings::refuse_with_resume;
/// assert!(refuse_with_resume("epochs", true).is_ok());
/// assert!(refuse_with_resume("lr", false).is_ok());
/// let e = refuse_with_resume("lr", true).unwrap_err();
/// assert!(matches!(e, vnn::Error::FixedOnResume { option, .. } if option == "lr"));
/// ```
pub fn refuse_with_resume(option: &str, given: bool) -> Result<()> {
    if given && !RESUME_OPTIONS.contains(&option) {
        return Err(Error::FixedOnResume {
            option: option.into(),
            allowed: RESUME_OPTIONS[1..].iter().map(|o| o.to_string()).collect(),
        });
    }
    Ok(())
}

impl RunSettings {
    /// The training configuration of these settings.
    pub fn config(&self) -> TrainConfig {
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

    /// The class weights of a run on the training rows `train`: `None`
    /// without [`ClassWeight::Balanced`].
    pub fn class_weights(&self, train: &Dataset) -> Option<Vec<f32>> {
        match self.class_weight {
            ClassWeight::None => None,
            ClassWeight::Balanced => Some(crate::train::balanced_class_weights(
                &train.labels,
                train.n_classes,
            )),
        }
    }

    /// The model family in lowercase (`mlp`).
    pub fn model_name(&self) -> String {
        format!("{:?}", self.model).to_lowercase()
    }

    /// The data's short name: `spiral`, `stdin` for `-` (standard input),
    /// or the CSV file's stem.
    pub fn data_name(&self) -> String {
        if self.data == "spiral" {
            "spiral".into()
        } else if self.data == "-" {
            "stdin".into()
        } else {
            Path::new(&self.data)
                .file_stem()
                .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned())
        }
    }

    /// The default run folder of a run started at `time` (a timestamp
    /// such as `vnn::session::utc_timestamp` gives):
    /// `runs/<data>-<model>-<optimizer>-lr<lr>-<time>`, with the data's
    /// [`RunSettings::data_name`] and the rate as [`short_float`] writes it.
    /// When that folder exists (a run started in the same second), the
    /// first of `-2`, `-3`, ... (up to `-1000`) that does not.
    ///
    /// # Example
    /// ```
    /// let mut s: vnn::settings::RunSettings = serde_json::from_str(r#"{"data": "data/digits.csv",
    ///     "label": null, "delimiter": 44, "model": "mlp", "hidden": [100], "epochs": 200, "lr": 0.001,
    ///     "reg": 0.0001, "optimizer": "adam", "momentum": 0.9, "batch_size": 200, "dropout": 0.0,
    ///     "dropconnect": 0.0, "test_split": null, "standardize": true, "seed": 0, "threads": null,
    ///     "log_every": 100, "print_every": 1000, "out": null, "json": false, "init": "he",
    ///     "spiral_points": 100, "spiral_classes": 3, "no_plots": false}"#).unwrap();
    /// let dir = s.run_folder("20261202T051500Z");
    /// assert_eq!(dir, std::path::Path::new("runs/digits-mlp-adam-lr0.001-20261202T051500Z"));
    /// s.data = "-".into();
    /// let dir = s.run_folder("20261202T051500Z");
    /// assert_eq!(dir, std::path::Path::new("runs/stdin-mlp-adam-lr0.001-20261202T051500Z"));
    /// s.lr = 1e-9;
    /// let dir = s.run_folder("20261202T051500Z");
    /// assert_eq!(dir, std::path::Path::new("runs/stdin-mlp-adam-lr1e-9-20261202T051500Z"));
    /// ```
    pub fn run_folder(&self, time: &str) -> PathBuf {
        let name = format!(
            "{}-{}-{}-lr{}-{time}",
            self.data_name(),
            self.model_name(),
            self.config().optimizer.name(),
            short_float(self.lr)
        );
        let base = Path::new("runs").join(name);
        // Runs started within the same second get `-2`, `-3`, ...
        let taken = |p: &PathBuf| p.exists();
        let mut dir = base.clone();
        for n in 2..=1000u32 {
            if !taken(&dir) {
                break;
            }
            dir = PathBuf::from(format!("{}-{n}", base.display()));
        }
        dir
    }

    /// Refuses options that the other settings make meaningless (they would
    /// otherwise be ignored without a word); `given` tells whether an
    /// option (by id, such as `spiral_points`) was given explicitly.
    pub fn refuse_inapplicable(&self, given: impl Fn(&str) -> bool) -> Result<()> {
        let spiral = self.data == "spiral";
        let schedule = self.lr_schedule;
        let plateau = schedule == LrScheduleKind::Plateau;
        let gamma = matches!(schedule, LrScheduleKind::Step) || plateau;
        // (option, whether it is meaningless here, the setting and value it needs)
        let checks = [
            ("val_data", spiral, ("data", "a CSV file")),
            (
                "val_data",
                self.val_split.is_some(),
                ("val_split", "absent"),
            ),
            ("patience", !self.early_stopping, ("early_stopping", "on")),
            (
                "min_delta",
                !self.early_stopping && !plateau,
                ("early_stopping", "on (or lr_schedule plateau)"),
            ),
            ("lr_gamma", !gamma, ("lr_schedule", "step or plateau")),
            (
                "lr_step_every",
                schedule != LrScheduleKind::Step,
                ("lr_schedule", "step"),
            ),
            (
                "lr_min",
                schedule != LrScheduleKind::Cosine,
                ("lr_schedule", "cosine"),
            ),
            ("lr_patience", !plateau, ("lr_schedule", "plateau")),
            ("hidden", self.model == ModelKind::Linear, ("model", "mlp")),
            (
                "activation",
                self.model == ModelKind::Linear,
                ("model", "mlp"),
            ),
            (
                "momentum",
                self.optimizer != OptimizerKind::Momentum,
                ("optimizer", "momentum"),
            ),
            ("label", spiral, ("data", "a CSV file")),
            ("delimiter", spiral, ("data", "a CSV file")),
            ("spiral_points", !spiral, ("data", "spiral")),
            ("spiral_classes", !spiral, ("data", "spiral")),
        ];
        for (option, inapplicable, (needs, value)) in checks {
            if inapplicable && given(option) {
                return Err(Error::Inapplicable {
                    option: option.into(),
                    needs: needs.into(),
                    value: value.into(),
                });
            }
        }
        Ok(())
    }

    /// The settings recorded in the checkpoint at `path`, with the options
    /// of `self` that a resumed run accepts: threads, json and no_plots
    /// always, the others when `given`. The run folder is `self.out`, by
    /// default the checkpoint's folder.
    pub fn resumed(
        &self,
        path: impl AsRef<Path>,
        given: impl Fn(&str) -> bool,
    ) -> Result<(Self, Checkpoint)> {
        let path = path.as_ref();
        let ckpt = Checkpoint::load(path)?;
        let mut s: RunSettings =
            serde_json::from_str(&ckpt.settings).map_err(|e| Error::Model {
                path: path.to_path_buf(),
                tensor: None,
                msg: format!("the checkpoint's settings are not those of a vnn train run: {e}"),
            })?;
        recorded_against_model(&s, &ckpt, path)?;
        (s.threads, s.json, s.no_plots) = (self.threads, self.json, self.no_plots);
        // How often to log, print and checkpoint does not change the weights.
        if given("log_every") {
            s.log_every = self.log_every;
        }
        if given("print_every") {
            s.print_every = self.print_every;
        }
        if given("checkpoint_every") {
            s.checkpoint_every = self.checkpoint_every;
        }
        if given("epochs") && s.lr_schedule == LrScheduleKind::Cosine && self.epochs != s.epochs {
            return Err(Error::option(
                "epochs",
                format!("the recorded {} when resuming a run with `lr_schedule` cosine, whose rate follows the run's length", s.epochs),
                self.epochs,
            ));
        }
        if given("epochs") {
            s.epochs = self.epochs;
        }
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        let default_out = parent.unwrap_or(Path::new(".")).to_path_buf();
        s.out = Some(self.out.clone().unwrap_or(default_out));
        s.resume = Some(path.to_path_buf());
        Ok((s, ckpt))
    }

    /// Refuses settings that cannot run, naming their options.
    pub fn check(&self) -> Result<()> {
        self.config().validate()?;
        let positive = [
            ("epochs", Some(self.epochs)),
            ("log_every", Some(self.log_every)),
            ("print_every", Some(self.print_every)),
            ("checkpoint_every", self.checkpoint_every),
        ];
        if let Some((option, _)) = positive.iter().find(|(_, n)| *n == Some(0)) {
            return Err(Error::option(option, "at least 1", 0));
        }
        self.check_loop()?;
        crate::budget::check_threads(self.threads)
    }

    /// Refuses a spiral whose points (`spiral_points x spiral_classes`,
    /// checked arithmetic) and their copies in a run (the data, its split
    /// and standardized copies, the plot's points; 4 x 12 bytes a point),
    /// or the training run on them, do not fit the memory budget, before
    /// any point is made.
    fn check_spiral_size(&self) -> Result<()> {
        let (points, classes) = (self.spiral_points as u64, self.spiral_classes as u64);
        let what = format!("the spiral of {points} points x {classes} classes");
        let needed = crate::budget::bytes(&[points, classes, 4 * 12]);
        let hint = "lower `spiral_points` or `spiral_classes`";
        crate::budget::check(&what, needed, hint)?;
        // The run on it, before the points are made (a model the sizes
        // cannot build is refused later, by `build_model`).
        let mut sizes = vec![2];
        if self.model == ModelKind::Mlp {
            sizes.extend_from_slice(&self.hidden);
        }
        sizes.push(self.spiral_classes);
        match crate::model::Layout::new(&sizes) {
            Ok(layout) => {
                let rows = self.spiral_points.saturating_mul(self.spiral_classes);
                let act = self.activation;
                crate::train::check_memory(&layout, act, rows, 2, &self.config())
            }
            Err(_) => Ok(()),
        }
    }

    /// The whole data set (the built-in spiral or the CSV file) and the
    /// name of its label column: `label` for the spiral, else the column
    /// the CSV loader used, as its header names it (trimmed). The file is
    /// read once, so a pipe or `/dev/stdin` works.
    pub fn load_data(&self) -> Result<(Dataset, String)> {
        if self.data == "spiral" {
            if self.spiral_points == 0 {
                return Err(Error::option("spiral_points", "at least 1", 0));
            }
            if self.spiral_classes < 2 {
                return Err(Error::option(
                    "spiral_classes",
                    "at least 2",
                    self.spiral_classes,
                ));
            }
            self.check_spiral_size()?;
            let data = data::spiral(self.spiral_points, self.spiral_classes, self.seed);
            return Ok((data, "label".into()));
        }
        #[cfg(feature = "csv")]
        {
            let opts = crate::csv::CsvOptions {
                label: self.label.clone(),
                delimiter: self.delimiter,
            };
            crate::csv::load_training_csv_with_label(Path::new(&self.data), &opts)
        }
        #[cfg(not(feature = "csv"))]
        Err(self.no_csv())
    }

    /// Without the `csv` feature, data other than the spiral cannot be read.
    #[cfg(not(feature = "csv"))]
    fn no_csv(&self) -> Error {
        Error::Data {
            path: PathBuf::from(&self.data),
            line: None,
            column: None,
            msg: "reading CSV data needs vnn's `csv` feature".into(),
        }
    }

    /// The model of these settings for `train`, and `train` as the model
    /// sees it (standardized when asked).
    pub fn build_model(&self, train: &Dataset) -> Result<(Model, Dataset)> {
        let mut hidden: &[usize] = &[];
        if self.model == ModelKind::Mlp {
            if self.hidden.is_empty() || self.hidden.contains(&0) {
                return Err(Error::option(
                    "hidden",
                    "one or more positive widths, e.g. 100 or 128,64",
                    format!("{:?}", self.hidden),
                ));
            }
            hidden = &self.hidden;
        }
        let init = match self.init {
            InitKind::He => Init::He,
            InitKind::Small => Init::Small,
            InitKind::Glorot => Init::Glorot,
        };
        let seed = self.seed.wrapping_add(0x1_0000);
        let (model, seen) = crate::session::model_for(train, hidden, init, seed, self.standardize)?;
        Ok((model.with_activation(self.activation), seen))
    }

    /// The settings a checkpoint records to continue the run (JSON: every
    /// setting but `resume`, the run folder `dir`, and for a new run the
    /// data file's absolute path so it resumes from any folder; the label
    /// column trimmed, as the CSV loader names it).
    pub fn recorded(&self, dir: impl AsRef<Path>) -> Result<String> {
        let dir = dir.as_ref();
        let mut recorded = self.clone();
        recorded.out = Some(dir.to_path_buf());
        // The label column as the CSV loader names it: trimmed.
        recorded.label = self.label.as_deref().map(|l| l.trim().to_string());
        // `-` (standard input) stays `-`: a resumed run reads stdin again.
        if !matches!(recorded.data.as_str(), "spiral" | "-") && self.resume.is_none() {
            if let Ok(abs) = std::fs::canonicalize(&recorded.data) {
                recorded.data = abs.to_string_lossy().into_owned();
            }
            let val = self.val_data.as_ref().map(std::fs::canonicalize);
            if let Some(Ok(abs)) = val {
                recorded.val_data = Some(abs.to_string_lossy().into_owned());
            }
        }
        serde_json::to_string(&recorded).map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: e.into(),
        })
    }

    /// The settings as `metrics.json` records them, with the model's layer
    /// `sizes` and the threads of the current rayon pool: only those that
    /// apply to the run (`momentum` with the momentum optimizer, `hidden`
    /// for the MLP, `spiral_points` and `spiral_classes` for the spiral,
    /// `label` and `delimiter` for CSV data).
    ///
    /// ```
    /// use vnn::settings::TrainOptions;
    /// let spiral = TrainOptions::default().settings().metrics_json(&[2, 100, 3]);
    /// assert_eq!(spiral["hidden"], serde_json::json!([100]));
    /// assert!(spiral.get("momentum").is_none() && spiral.get("delimiter").is_none());
    /// assert_eq!(spiral["spiral_points"], 100);
    /// ```
    pub fn metrics_json(&self, sizes: &[usize]) -> serde_json::Value {
        let c = self.config();
        let mut m = json!({
            "data": self.data, "model": self.model_name(), "sizes": sizes, "epochs": c.epochs,
            "lr": f32_json(c.lr), "reg": f32_json(c.reg), "optimizer": c.optimizer.name(),
            "batch_size": c.batch_size, "dropout": f32_json(c.dropout),
            "dropconnect": f32_json(c.dropconnect), "standardize": self.standardize,
            "seed": c.seed, "threads": rayon::current_num_threads(), "init": format!("{:?}", self.init).to_lowercase(),
            "class_weight": format!("{:?}", self.class_weight).to_lowercase(),
        });
        let spiral = self.data == "spiral";
        let delimiter = (self.delimiter as char).to_string();
        let optional = [
            (
                self.optimizer == OptimizerKind::Momentum,
                "momentum",
                f32_json(self.momentum),
            ),
            (self.model == ModelKind::Mlp, "hidden", json!(self.hidden)),
            (
                self.model == ModelKind::Mlp,
                "activation",
                json!(self.activation.name()),
            ),
            (
                self.test_split.is_some(),
                "test_split",
                json!(self.test_split),
            ),
            (spiral, "spiral_points", json!(self.spiral_points)),
            (spiral, "spiral_classes", json!(self.spiral_classes)),
            (!spiral, "label", json!(self.label)),
            (!spiral, "delimiter", json!(delimiter)),
        ];
        if let Some(map) = m.as_object_mut() {
            for (applies, key, value) in optional {
                if applies {
                    map.insert(key.into(), value);
                }
            }
        }
        self.loop_json(&mut m);
        m
    }
}

/// Checks the settings `s` recorded in the checkpoint `ckpt` (read from
/// `path`) against its model and data fingerprint before any work on them:
/// the hidden widths, and for the spiral its classes and its row count
/// (points x classes, checked arithmetic). A checkpoint recording a huge
/// model or spiral is refused here, before anything of that size is made.
fn recorded_against_model(s: &RunSettings, ckpt: &Checkpoint, path: &Path) -> Result<()> {
    let layout = &ckpt.model.layout;
    let mismatch = |got: String| Error::Mismatch {
        checkpoint: path.to_path_buf(),
        what: "model".into(),
        expected: "its recorded settings".into(),
        got,
    };
    let hidden: &[usize] = if s.model == ModelKind::Mlp {
        &s.hidden
    } else {
        &[]
    };
    if hidden != layout.hidden() {
        let shown = crate::error::shown(&format!("{hidden:?}"));
        let has = crate::error::shown(&format!("{:?}", layout.hidden()));
        return Err(mismatch(format!(
            "the settings record hidden widths {shown}, the model has {has}"
        )));
    }
    let act = ckpt.model.activation();
    if !hidden.is_empty() && s.activation != act {
        return Err(mismatch(format!(
            "the settings record activation {}, the model has {act}",
            s.activation
        )));
    }
    if s.data != "spiral" {
        return Ok(());
    }
    let (points, classes) = (s.spiral_points, s.spiral_classes);
    if classes != layout.n_out() {
        let k = layout.n_out();
        return Err(mismatch(format!(
            "the settings record a spiral of {classes} classes, the model has {k}"
        )));
    }
    let rows = points.checked_mul(classes);
    let recorded = ckpt.extra.get("data_fingerprint");
    let recorded_rows = recorded.and_then(|f| f.split(' ').next()?.parse::<usize>().ok());
    match (rows, recorded_rows) {
        (Some(r), Some(f)) if r != f => Err(mismatch(format!(
            "the settings record a spiral of {points} x {classes} points, its data had {f} rows"
        ))),
        (None, _) => Err(mismatch(format!(
            "the settings record a spiral of {points} x {classes} points, more than can be counted"
        ))),
        _ => Ok(()),
    }
}

/// A number as a person would write it: `0.001`, `1.5`, but `1e-9` and
/// `1e30` rather than a long run of digits (below 1e-4 or from 1e6 on).
///
/// ```
/// use vnn::settings::short_float;
/// assert_eq!(short_float(0.001), "0.001");
/// assert_eq!(short_float(1e-9), "1e-9");
/// assert_eq!(short_float(1e30), "1e30");
/// assert_eq!(short_float(0.0), "0");
/// ```
pub fn short_float(v: f32) -> String {
    let a = v.abs();
    if a != 0.0 && a.is_finite() && !(1e-4..1e6).contains(&a) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// An `f32` setting as JSON, printed as typed (`0.9`, not `0.8999999761581421`).
fn f32_json(v: f32) -> serde_json::Value {
    v.to_string()
        .parse::<f64>()
        .map_or(serde_json::Value::Null, serde_json::Value::from)
}

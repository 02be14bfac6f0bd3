//! The data sets of a run (training, validation and test rows, raw) and
//! the early-stopping and learning-rate schedule of its settings.

use super::RunSettings;
use crate::data::{self, Dataset};
use crate::session::EarlyStopping;
use crate::train::LrSchedule;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// The learning-rate schedule of a run (`lr_schedule`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum LrScheduleKind {
    /// The same rate at every step.
    #[default]
    Constant,
    /// `lr_gamma` times the rate every `lr_step_every` epochs.
    Step,
    /// Cosine annealing from `lr` down to `lr_min` over the run.
    Cosine,
    /// `lr_gamma` times the rate after `lr_patience` evaluations without
    /// improvement of the watched loss.
    Plateau,
}

/// XORed into the seed for the validation split, so it draws other rows
/// than the test split would.
const VAL_SPLIT_DOMAIN: u64 = 0x7A11_DA7A_0000_0001;

/// The rows of a run, raw (as the model's inputs).
#[derive(Clone, Debug)]
pub struct RunData {
    /// The rows trained on.
    pub train: Dataset,
    /// Validation rows (`val_split` or `val_data`).
    pub val: Option<Dataset>,
    /// Test rows (`test_split`).
    pub test: Option<Dataset>,
}

pub(super) fn default_patience() -> u64 {
    10
}
pub(super) fn default_min_delta() -> f64 {
    1e-4
}
pub(super) fn default_lr_gamma() -> f32 {
    0.1
}
pub(super) fn default_lr_patience() -> u64 {
    5
}

impl RunSettings {
    /// The training, validation and test rows of `full`, the whole data
    /// set (whose label column is `label_column`): `test_split` first
    /// (stratified, seeded), then `val_split` from the remaining training
    /// rows, or the `val_data` file (its labels mapped through the training
    /// data's class names).
    ///
    /// # Errors
    /// A split that leaves one side empty; a `val_data` file that cannot be
    /// read, lacks a feature or the label column, or holds a class the
    /// training data does not have ([`Error::Data`] naming the file and line).
    pub fn split_data(&self, full: &Dataset, label_column: &str) -> Result<RunData> {
        let (train, test) = match self.test_split {
            Some(f) => {
                let (a, b) = data::stratified_split(full, f, self.seed)?;
                (a, Some(b))
            }
            None => (full.clone(), None),
        };
        every_class_trains(full, &train, "test_split")?;
        let (train, val) = match (self.val_split, &self.val_data) {
            (Some(f), _) => {
                let seed = self.seed ^ VAL_SPLIT_DOMAIN;
                let (a, b) = data::stratified_split(&train, f, seed).map_err(|e| match e {
                    Error::Setting { expected, got, .. } => Error::Option {
                        option: "val_split".into(),
                        expected: expected.replace("test rows", "validation rows"),
                        got: got.replace("test rows", "validation rows"),
                    },
                    e => e,
                })?;
                (a, Some(b))
            }
            (None, Some(path)) => {
                let val = self.load_val_data(path, &train, label_column)?;
                (train, Some(val))
            }
            (None, None) => (train, None),
        };
        every_class_trains(full, &train, "val_split")?;
        Ok(RunData { train, val, test })
    }

    /// The validation rows of the CSV file `path`, with the columns of
    /// `train` and its label column `label_column`.
    #[cfg(feature = "csv")]
    fn load_val_data(&self, path: &str, train: &Dataset, label_column: &str) -> Result<Dataset> {
        let names = (train.feature_names(), train.class_names());
        let label = Some(label_column);
        let mut rows =
            crate::csv::load_features_csv(path, names.0, names.1, label, self.delimiter)?;
        let Some(labels) = rows.labels.take() else {
            return Err(Error::Data {
                path: path.into(),
                line: Some(1),
                column: None,
                msg: format!(
                    "no label column '{label_column}' (the training data's) in the header"
                ),
            });
        };
        let (d, k) = (train.n_features(), train.n_classes());
        Dataset::new(rows.features, labels, d, k)?.with_names(names.0.to_vec(), names.1.to_vec())
    }

    #[cfg(not(feature = "csv"))]
    fn load_val_data(&self, path: &str, _: &Dataset, _: &str) -> Result<Dataset> {
        Err(Error::Data {
            path: path.into(),
            line: None,
            column: None,
            msg: "reading CSV data needs vnn's `csv` feature".into(),
        })
    }

    /// The early stopping of these settings (`early_stopping`, `patience`,
    /// `min_delta`), if on.
    pub fn early(&self) -> Option<EarlyStopping> {
        self.early_stopping.then_some(EarlyStopping {
            patience: self.patience,
            min_delta: self.min_delta,
        })
    }

    /// The learning-rate schedule of these settings.
    pub fn schedule(&self) -> LrSchedule {
        let gamma = self.lr_gamma;
        match self.lr_schedule {
            LrScheduleKind::Constant => LrSchedule::Constant,
            LrScheduleKind::Step => LrSchedule::Step {
                gamma,
                every: self.lr_step_every.unwrap_or(0),
            },
            LrScheduleKind::Cosine => LrSchedule::Cosine { min: self.lr_min },
            LrScheduleKind::Plateau => LrSchedule::Plateau {
                gamma,
                patience: self.lr_patience,
                min_delta: self.min_delta,
            },
        }
    }

    /// Adds the validation, early-stopping and schedule settings that apply
    /// to the run to the `metrics.json` settings `j`.
    pub(super) fn loop_json(&self, j: &mut serde_json::Value) {
        let f32_json = |v: f32| super::f32_json(v);
        if let Some(f) = self.val_split {
            j["val_split"] = f.into();
        }
        if let Some(path) = &self.val_data {
            j["val_data"] = path.as_str().into();
        }
        j["early_stopping"] = self.early_stopping.into();
        if self.early_stopping {
            (j["patience"], j["min_delta"]) = (self.patience.into(), self.min_delta.into());
        }
        j["lr_schedule"] = self.schedule().name().into();
        match self.schedule() {
            LrSchedule::Constant => {}
            LrSchedule::Step { gamma, every } => {
                (j["lr_gamma"], j["lr_step_every"]) = (f32_json(gamma), every.into());
            }
            LrSchedule::Cosine { min } => j["lr_min"] = f32_json(min),
            LrSchedule::Plateau {
                gamma,
                patience,
                min_delta,
            } => {
                (j["lr_gamma"], j["lr_patience"]) = (f32_json(gamma), patience.into());
                j["min_delta"] = min_delta.into();
            }
        }
    }

    /// Refuses loop settings out of range, naming their options.
    pub(super) fn check_loop(&self) -> Result<()> {
        if self.data == "-" && self.val_data.as_deref() == Some("-") {
            return Err(Error::option(
                "val_data",
                "a file when the training data is read from standard input (`data` -)",
                "-",
            ));
        }
        if let Some(f) = self.val_split.filter(|f| !(*f > 0.0 && *f < 1.0)) {
            return Err(Error::option("val_split", "in (0, 1)", f));
        }
        if self.early_stopping && self.patience == 0 {
            return Err(Error::option("patience", "at least 1", 0));
        }
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return Err(Error::option("min_delta", ">= 0", self.min_delta));
        }
        let s = self.lr_schedule;
        let gamma = self.lr_gamma;
        let uses_gamma = matches!(s, LrScheduleKind::Step | LrScheduleKind::Plateau);
        if uses_gamma && !(gamma > 0.0 && gamma <= 1.0) {
            return Err(Error::option("lr_gamma", "in (0, 1]", gamma));
        }
        if s == LrScheduleKind::Step && self.lr_step_every.unwrap_or(0) == 0 {
            let got = self
                .lr_step_every
                .map_or("nothing".into(), |n| n.to_string());
            return Err(Error::option(
                "lr_step_every",
                "given with `lr_schedule` step: a number of epochs, at least 1",
                got,
            ));
        }
        if s == LrScheduleKind::Plateau && self.lr_patience == 0 {
            return Err(Error::option("lr_patience", "at least 1", 0));
        }
        let min = self.lr_min;
        if s == LrScheduleKind::Cosine && !(min.is_finite() && min >= 0.0 && min <= self.lr) {
            return Err(Error::option(
                "lr_min",
                format!("in [0, lr = {}]", self.lr),
                min,
            ));
        }
        Ok(())
    }
}

/// Refuses a split (`option`) that left some class of `full` without
/// training rows in `train`.
fn every_class_trains(full: &Dataset, train: &Dataset, option: &str) -> Result<()> {
    let mut trains = vec![false; full.n_classes()];
    for &y in train.labels() {
        trains[y as usize] = true;
    }
    let mut present = vec![false; full.n_classes()];
    for &y in full.labels() {
        present[y as usize] = true;
    }
    let Some(class) = (0..full.n_classes()).find(|&c| present[c] && !trains[c]) else {
        return Ok(());
    };
    let name = full
        .class_names()
        .get(class)
        .cloned()
        .unwrap_or(class.to_string());
    Err(Error::option(
        option,
        format!("small enough to leave every class training rows (class \"{name}\" has none left)"),
        "too large",
    ))
}

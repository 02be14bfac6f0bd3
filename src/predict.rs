//! Predictions and evaluations of a model on CSV rows, as `vnn predict`
//! and `vnn eval` give them: JSON and CSV forms of predictions, the
//! classification report ([`ClassificationReport`]) and the confusion
//! matrix as a text table.

mod report;

pub use report::{ClassScores, ClassificationReport};

#[cfg(feature = "csv")]
use crate::csv::CsvFeatures;
use crate::data::Dataset;
#[cfg(feature = "csv")]
use crate::error::Error;
use crate::error::Result;
use crate::model::Model;
use crate::train::{Evaluation, MAX_CONFUSION_CLASSES};
use serde_json::{json, Value};
use std::io::Write;
#[cfg(feature = "csv")]
use std::path::Path;

#[cfg(feature = "csv")]
/// `e` about the rows of `data` read from `path`: an
/// [`Error::OutputNotFinite`] becomes an [`Error::Data`] naming the file
/// and the line of the row; other errors are unchanged.
///
/// # Example
/// ```
/// let names = ["x0".to_string()];
/// let data = vnn::csv::load_features_csv_from_reader("x0\n1\n2\n".as_bytes(), "in", &names, &[], None, b',').unwrap();
/// let e = vnn::predict::at_line(vnn::Error::OutputNotFinite { row: 2 }, std::path::Path::new("in.csv"), &data);
/// assert!(e.to_string().starts_with("in.csv, line 3: the model's output is not finite"));
/// ```
pub fn at_line(e: Error, path: &Path, data: &CsvFeatures) -> Error {
    match e {
        Error::OutputNotFinite { row } => Error::Data {
            path: crate::csv::input_name(path).into(),
            line: Some(data.line(row.saturating_sub(1))),
            column: None,
            msg: crate::error::OUTPUT_NOT_FINITE.into(),
        },
        e => e,
    }
}

#[cfg(feature = "csv")]
/// The predicted classes of the rows of `data` (read from `path`) and,
/// when `proba`, their probabilities (`rows x classes`).
///
/// # Errors
/// As [`Model::predict`]; a non-finite output names its line ([`at_line`]).
pub fn predict_rows(
    model: &Model,
    data: &CsvFeatures,
    path: &Path,
    proba: bool,
) -> Result<(Vec<u32>, Option<Vec<f32>>)> {
    let run = || -> Result<_> {
        let pred = model.predict(&data.features, data.rows)?;
        let p = proba.then(|| model.predict_proba(&data.features, data.rows));
        Ok((pred, p.transpose()?))
    };
    run().map_err(|e| at_line(e, path, data))
}

#[cfg(feature = "csv")]
/// Evaluates `model` on the rows of `data` (read from `path`, its
/// features moved out) with their class indices `labels`.
///
/// # Errors
/// As [`crate::train::evaluate`]; a non-finite output names its line
/// ([`at_line`]).
pub fn evaluate_rows(
    model: &Model,
    mut data: CsvFeatures,
    labels: Vec<u32>,
    path: &Path,
) -> Result<Evaluation> {
    let ds = labelled_dataset(model, std::mem::take(&mut data.features), labels)?;
    crate::train::evaluate(model, &ds).map_err(|e| at_line(e, path, &data))
}

/// The lines `vnn eval` prints: rows, accuracy, loss, the classification
/// report ([`ClassificationReport::lines`]) and the confusion matrix, both
/// with the model's class names; or, with more than
/// [`MAX_CONFUSION_CLASSES`] classes, one line saying each was left out.
///
/// # Example
/// ```
/// let model = vnn::model::Model::new(&[2, 2], vnn::model::Init::He, 0).unwrap();
/// let x = vec!["x0".to_string(), "x1".to_string()];
/// let model = model.with_names(x, vec!["no".into(), "yes".into()]).unwrap();
/// let eval = vnn::train::Evaluation { accuracy: 0.75, loss: 0.5, n: 4, confusion: vec![vec![1, 1], vec![0, 2]] };
/// let lines = vnn::predict::evaluation_lines(&model, &eval);
/// assert_eq!(lines[3], "classification report:");
/// assert!(lines[5].trim_start().starts_with("no     1.0000    0.5000    0.6667         2"));
/// assert_eq!(lines[9], "confusion matrix (rows = true class, columns = predicted):");
/// assert_eq!(lines[11], "  no    1    1");
/// ```
pub fn evaluation_lines(model: &Model, eval: &Evaluation) -> Vec<String> {
    let mut lines = vec![
        format!("rows: {}", eval.n),
        format!("accuracy: {:.4}", eval.accuracy),
        format!("loss: {:.4}", eval.loss),
    ];
    if left_out(model, eval) {
        let k = model.n_classes();
        for what in ["classification report", "confusion matrix"] {
            lines.push(format!(
                "{what}: left out ({k} classes, more than {MAX_CONFUSION_CLASSES})"
            ));
        }
        return lines;
    }
    lines.push("classification report:".into());
    let report = ClassificationReport::from_confusion(&eval.confusion);
    lines.extend(report.lines(&model.class_names));
    lines.push("confusion matrix (rows = true class, columns = predicted):".into());
    lines.extend(confusion_table(&model.class_names, &eval.confusion));
    lines
}

/// Whether the confusion matrix (and with it the report) of `eval` was
/// left out: more than [`MAX_CONFUSION_CLASSES`] classes.
fn left_out(model: &Model, eval: &Evaluation) -> bool {
    eval.confusion.is_empty() && model.n_classes() > MAX_CONFUSION_CLASSES
}

/// The JSON `vnn eval --json` prints: `accuracy`, `loss`, `n`,
/// `confusion`, and the classification report
/// ([`ClassificationReport::add_json`]: `per_class`, with the classes as
/// [`class_value`] gives them, `macro_f1`, `weighted_f1` and the other
/// averages). The confusion matrix and the report are `null` when left out
/// (see [`evaluation_lines`]).
///
/// # Example
/// ```
/// let model = vnn::model::Model::new(&[2, 2], vnn::model::Init::He, 0).unwrap();
/// let x = vec!["x0".to_string(), "x1".to_string()];
/// let model = model.with_names(x, vec!["3".into(), "5".into()]).unwrap();
/// let eval = vnn::train::Evaluation { accuracy: 0.75, loss: 0.5, n: 4, confusion: vec![vec![1, 1], vec![0, 2]] };
/// let j = vnn::predict::evaluation_json(&model, &eval);
/// assert_eq!((j["n"].as_u64(), j["per_class"][1]["class"].as_i64()), (Some(4), Some(5)));
/// assert!((j["weighted_f1"].as_f64().unwrap() - (2.0 * 2.0 / 3.0 + 2.0 * 0.8) / 4.0).abs() < 1e-12);
/// ```
pub fn evaluation_json(model: &Model, eval: &Evaluation) -> Value {
    let confusion = (!left_out(model, eval)).then_some(&eval.confusion);
    let mut obj = json!({ "accuracy": eval.accuracy, "loss": eval.loss, "n": eval.n, "confusion": confusion });
    if confusion.is_some() {
        let report = ClassificationReport::from_confusion(&eval.confusion);
        report.add_json(&mut obj, |c| class_value(model, c));
    } else {
        for key in ["per_class", "macro_f1", "weighted_f1"] {
            obj[key] = Value::Null;
        }
    }
    obj
}

/// Class `class` of `model` as JSON: a number when every class name is an
/// integer, else the name.
///
/// # Example
/// ```
/// let model = vnn::model::Model::new(&[2, 2], vnn::model::Init::He, 0).unwrap();
/// let x = vec!["x0".to_string(), "x1".to_string()];
/// let model = model.with_names(x.clone(), vec!["0".into(), "7".into()]).unwrap();
/// assert_eq!(vnn::predict::class_value(&model, 1), serde_json::json!(7));
/// let model = model.with_names(x, vec!["a".into(), "7".into()]).unwrap();
/// assert_eq!(vnn::predict::class_value(&model, 1), serde_json::json!("7"));
/// ```
pub fn class_value(model: &Model, class: usize) -> Value {
    let numeric = model.class_names.iter().all(|c| c.parse::<i64>().is_ok());
    let name = &model.class_names[class];
    match name.parse::<i64>() {
        Ok(v) if numeric => json!(v),
        _ => json!(name),
    }
}

/// `{"predictions": [...]}` of the predicted classes, with
/// `"probabilities"` (one list per row) and `"classes"` when `proba` (`rows
/// x classes`, row-major) is given.
pub fn predictions_json(model: &Model, pred: &[u32], proba: Option<&[f32]>) -> Value {
    let k = model.n_classes();
    let classes: Vec<_> = pred
        .iter()
        .map(|&c| class_value(model, c as usize))
        .collect();
    let mut obj = json!({ "predictions": classes });
    if let Some(p) = proba {
        obj["probabilities"] = json!(p.chunks_exact(k).collect::<Vec<_>>());
        obj["classes"] = json!((0..k).map(|c| class_value(model, c)).collect::<Vec<_>>());
    }
    obj
}

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes the predictions as CSV: a `prediction` column of class names,
/// and with `proba` (`rows x classes`) one `p_<class>` column per class.
///
/// # Errors
/// The writer's error.
///
/// # Example
/// ```
/// let model = vnn::model::Model::new(&[2, 2], vnn::model::Init::He, 0).unwrap();
/// let x = vec!["x0".to_string(), "x1".to_string()];
/// let model = model.with_names(x, vec!["no".into(), "yes, sure".into()]).unwrap();
/// let mut out = Vec::new();
/// vnn::predict::write_predictions_csv(&mut out, &model, &[1, 0], Some(&[0.25, 0.75, 1.0, 0.0])).unwrap();
/// let text = String::from_utf8(out).unwrap();
/// assert_eq!(text, "prediction,p_no,\"p_yes, sure\"\n\"yes, sure\",0.25,0.75\nno,1,0\n");
/// ```
pub fn write_predictions_csv(
    mut w: impl Write,
    model: &Model,
    pred: &[u32],
    proba: Option<&[f32]>,
) -> std::io::Result<()> {
    let k = model.n_classes();
    let mut header = vec!["prediction".to_string()];
    if proba.is_some() {
        let names = model.class_names.iter();
        header.extend(names.map(|c| csv_field(&format!("p_{c}"))));
    }
    writeln!(w, "{}", header.join(","))?;
    for (r, &c) in pred.iter().enumerate() {
        write!(w, "{}", csv_field(&model.class_names[c as usize]))?;
        if let Some(p) = proba {
            for v in &p[r * k..(r + 1) * k] {
                write!(w, ",{v}")?;
            }
        }
        writeln!(w)?;
    }
    w.flush()
}

/// The confusion matrix (`confusion[true][predicted]`) as text lines: a
/// header of class names, then one line per true class, right-aligned in
/// columns at least 4 wide.
///
/// # Example
/// ```
/// let names = ["a".to_string(), "b".to_string()];
/// let lines = vnn::predict::confusion_table(&names, &[vec![3, 1], vec![0, 12]]);
/// assert_eq!(lines, ["        a    b", "   a    3    1", "   b    0   12"]);
/// ```
pub fn confusion_table(class_names: &[String], confusion: &[Vec<u64>]) -> Vec<String> {
    let width = class_names
        .iter()
        .map(|c| c.len())
        .chain(confusion.iter().flatten().map(|v| v.to_string().len()))
        .max()
        .unwrap_or(1)
        .max(4);
    let mut head = format!("{:>width$}", "");
    for c in class_names {
        head.push_str(&format!(" {c:>width$}"));
    }
    let mut lines = vec![head];
    for (c, row) in class_names.iter().zip(confusion) {
        let mut line = format!("{c:>width$}");
        for v in row {
            line.push_str(&format!(" {v:>width$}"));
        }
        lines.push(line);
    }
    lines
}

/// The labelled rows `features` (`labels.len() x n_features`) as a
/// [`Dataset`] with `model`'s features and classes.
///
/// # Errors
/// As [`Dataset::new`]: lengths that disagree, a label out of range, a
/// feature that is not finite.
pub fn labelled_dataset(model: &Model, features: Vec<f32>, labels: Vec<u32>) -> Result<Dataset> {
    Dataset::new(features, labels, model.n_features(), model.n_classes())?
        .with_names(model.feature_names.clone(), model.class_names.clone())
}

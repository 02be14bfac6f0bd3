//! `vnn predict` and `vnn eval`.

use super::{with_threads, Out};
use anyhow::{bail, Result};
use clap::Args;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vnn::data::Dataset;
use vnn::model::Model;

/// Options of `vnn predict`.
#[derive(Args, Debug, Clone)]
pub(crate) struct PredictArgs {
    /// Model file written by `vnn train` (model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// CSV file with a header row holding the model's feature columns by name.
    #[arg(long)]
    data: PathBuf,
    /// Also print one probability column per class.
    #[arg(long)]
    proba: bool,
    /// Print one JSON object {"predictions": [...]} instead of CSV.
    #[arg(long)]
    json: bool,
    /// CSV field delimiter (one character, or `tab`).
    #[arg(long, default_value = ",", value_parser = super::parse_delimiter)]
    delimiter: u8,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Options of `vnn eval`.
#[derive(Args, Debug, Clone)]
pub(crate) struct EvalArgs {
    /// Model file written by `vnn train` (model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Labelled CSV file with a header row.
    #[arg(long)]
    data: PathBuf,
    /// Label column (default: the one the model was trained with).
    #[arg(long)]
    label: Option<String>,
    /// Print one JSON object with accuracy, loss, n and confusion.
    #[arg(long)]
    json: bool,
    /// CSV field delimiter (one character, or `tab`).
    #[arg(long, default_value = ",", value_parser = super::parse_delimiter)]
    delimiter: u8,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// A class name as JSON: a number when every class name is an integer.
fn class_value(model: &Model, class: usize) -> Value {
    let numeric = model.class_names.iter().all(|c| c.parse::<i64>().is_ok());
    let name = &model.class_names[class];
    match name.parse::<i64>() {
        Ok(v) if numeric => json!(v),
        _ => json!(name),
    }
}

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn load(model_path: &Path) -> Result<(Model, std::collections::BTreeMap<String, String>)> {
    Ok(vnn::modelfile::load_model_with_metadata(model_path)?)
}

pub(crate) fn run_predict(args: &PredictArgs) -> Result<ExitCode> {
    let (model, _meta) = load(&args.model)?;
    let data = vnn::csv::load_features_csv(
        &args.data,
        &model.feature_names,
        &model.class_names,
        None,
        args.delimiter,
    )?;
    let rows = data.rows;
    let (pred, proba) = with_threads(args.threads, || -> Result<(Vec<u32>, Option<Vec<f32>>)> {
        let pred = model.predict(&data.features, rows)?;
        let proba = if args.proba {
            Some(model.predict_proba(&data.features, rows)?)
        } else {
            None
        };
        Ok((pred, proba))
    })??;
    let k = model.n_classes();
    if args.json {
        let mut obj = json!({ "predictions": pred.iter().map(|&c| class_value(&model, c as usize)).collect::<Vec<_>>() });
        if let Some(p) = &proba {
            obj["probabilities"] = json!(p.chunks_exact(k).collect::<Vec<_>>());
            obj["classes"] = json!((0..k).map(|c| class_value(&model, c)).collect::<Vec<_>>());
        }
        println!("{obj}");
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let mut header = vec!["prediction".to_string()];
    if proba.is_some() {
        header.extend(
            model
                .class_names
                .iter()
                .map(|c| csv_field(&format!("p_{c}"))),
        );
    }
    writeln!(w, "{}", header.join(","))?;
    for (r, &c) in pred.iter().enumerate() {
        write!(w, "{}", csv_field(&model.class_names[c as usize]))?;
        if let Some(p) = &proba {
            for v in &p[r * k..(r + 1) * k] {
                write!(w, ",{v}")?;
            }
        }
        writeln!(w)?;
    }
    w.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_eval(args: &EvalArgs) -> Result<ExitCode> {
    let out = Out { json: args.json };
    let (model, meta) = load(&args.model)?;
    let label = args
        .label
        .clone()
        .or_else(|| meta.get("label_column").cloned())
        .unwrap_or_else(|| "label".into());
    let data = vnn::csv::load_features_csv(
        &args.data,
        &model.feature_names,
        &model.class_names,
        Some(&label),
        args.delimiter,
    )?;
    let Some(labels) = data.labels else {
        let hint = if args.label.is_some() {
            ""
        } else {
            " (the model was trained with it; name another with --label)"
        };
        bail!(
            "{}: no label column '{label}' to evaluate against{hint}",
            args.data.display()
        );
    };
    let ds = Dataset {
        features: data.features,
        labels,
        n_features: model.n_features(),
        n_classes: model.n_classes(),
        feature_names: model.feature_names.clone(),
        class_names: model.class_names.clone(),
    };
    let eval = with_threads(args.threads, || vnn::train::evaluate(&model, &ds))??;
    if args.json {
        println!(
            "{}",
            json!({ "accuracy": eval.accuracy, "loss": eval.loss, "n": eval.n, "confusion": eval.confusion })
        );
        return Ok(ExitCode::SUCCESS);
    }
    out.line(&format!("rows: {}", eval.n));
    out.line(&format!("accuracy: {:.4}", eval.accuracy));
    out.line(&format!("loss: {:.4}", eval.loss));
    out.line("confusion matrix (rows = true class, columns = predicted):");
    let width = model
        .class_names
        .iter()
        .map(|c| c.len())
        .chain(eval.confusion.iter().flatten().map(|v| v.to_string().len()))
        .max()
        .unwrap_or(1)
        .max(4);
    let mut head = format!("{:>width$}", "");
    for c in &model.class_names {
        head.push_str(&format!(" {c:>width$}"));
    }
    out.line(&head);
    for (c, row) in model.class_names.iter().zip(&eval.confusion) {
        let mut line = format!("{c:>width$}");
        for v in row {
            line.push_str(&format!(" {v:>width$}"));
        }
        out.line(&line);
    }
    Ok(ExitCode::SUCCESS)
}

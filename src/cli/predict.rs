//! `vnn predict` and `vnn eval`.

use super::with_threads;
use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vnn::model::Model;
use vnn::output::Console;
use vnn::predict;

/// How `vnn predict` and `vnn eval` read and compute.
#[derive(Args, Debug, Clone)]
pub(crate) struct Input {
    /// CSV field delimiter (one character, or `tab`).
    #[arg(long, default_value = ",", value_parser = super::parse_delimiter)]
    pub(crate) delimiter: u8,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
}

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
    #[command(flatten)]
    input: Input,
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
    #[command(flatten)]
    input: Input,
}

fn load(model_path: &Path) -> Result<(Model, std::collections::BTreeMap<String, String>)> {
    let file = vnn::modelfile::ModelFile::load(model_path)?;
    Ok((file.model, file.metadata))
}

pub(crate) fn run_predict(args: &PredictArgs) -> Result<ExitCode> {
    let model = Model::load(&args.model)?;
    let data = vnn::csv::load_features_csv(
        &args.data,
        model.feature_names(),
        model.class_names(),
        None,
        args.input.delimiter,
    )?;
    let rows = data.rows;
    let (pred, proba) = with_threads(
        args.input.threads,
        || -> Result<(Vec<u32>, Option<Vec<f32>>)> {
            let pred = model.predict(&data.features, rows)?;
            let proba = if args.proba {
                Some(model.predict_proba(&data.features, rows)?)
            } else {
                None
            };
            Ok((pred, proba))
        },
    )??;
    if args.json {
        let out = Console::new(false);
        out.data(&predict::predictions_json(&model, &pred, proba.as_deref()).to_string());
        out.finish()?;
        return Ok(ExitCode::SUCCESS);
    }
    vnn::output::with_stdout(|w| {
        predict::write_predictions_csv(w, &model, &pred, proba.as_deref())
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_eval(args: &EvalArgs) -> Result<ExitCode> {
    let out = Console::new(args.json);
    let (model, meta) = load(&args.model)?;
    let label = args
        .label
        .clone()
        .or_else(|| meta.get("label_column").cloned())
        .unwrap_or_else(|| "label".into());
    let data = vnn::csv::load_features_csv(
        &args.data,
        model.feature_names(),
        model.class_names(),
        Some(&label),
        args.input.delimiter,
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
    let ds = predict::labelled_dataset(&model, data.features, labels)?;
    let eval = with_threads(args.input.threads, || vnn::train::evaluate(&model, &ds))??;
    if args.json {
        let j = json!({ "accuracy": eval.accuracy, "loss": eval.loss, "n": eval.n, "confusion": eval.confusion });
        out.data(&j.to_string());
        return Ok(out.finish().map(|()| ExitCode::SUCCESS)?);
    }
    out.line(&format!("rows: {}", eval.n));
    out.line(&format!("accuracy: {:.4}", eval.accuracy));
    out.line(&format!("loss: {:.4}", eval.loss));
    out.line("confusion matrix (rows = true class, columns = predicted):");
    for line in predict::confusion_table(model.class_names(), &eval.confusion) {
        out.line(&line);
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

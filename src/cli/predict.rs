//! `vnn predict` and `vnn eval`.

use super::with_threads;
use anyhow::{bail, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vnn::model::Model;
use vnn::output::Console;
use vnn::predict;

/// How `vnn predict` and `vnn eval` read and compute.
#[derive(Args, Debug, Clone)]
pub(crate) struct Input {
    /// CSV field delimiter (one character, or `tab`).
    #[arg(long, default_value = ",", value_parser = vnn::settings::parse_delimiter)]
    pub(crate) delimiter: u8,
    /// Worker threads (default: all cores; at most 256).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
}

/// Options of `vnn predict`.
#[derive(Args, Debug, Clone)]
pub(crate) struct PredictArgs {
    /// Model file written by `vnn train` (model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// CSV file with a header row holding the model's feature columns by name
    /// (`-`: standard input).
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
    /// Labelled CSV file with a header row (`-`: standard input).
    #[arg(long)]
    data: PathBuf,
    /// Label column (default: the one the model was trained with).
    #[arg(long)]
    label: Option<String>,
    /// Print one JSON object with accuracy, loss, n, confusion and the report.
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
    let (pred, proba) = with_threads(args.input.threads, || {
        predict::predict_rows(&model, &data, &args.data, args.proba)
    })??;
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
    let mut data = vnn::csv::load_features_csv(
        &args.data,
        model.feature_names(),
        model.class_names(),
        Some(&label),
        args.input.delimiter,
    )?;
    let Some(labels) = data.labels.take() else {
        let hint = if args.label.is_some() {
            ""
        } else {
            " (the model was trained with it; name another with --label)"
        };
        bail!(
            "{}: no label column '{label}' to evaluate against{hint}",
            vnn::csv::input_name(&args.data)
        );
    };
    let eval = with_threads(args.input.threads, || {
        predict::evaluate_rows(&model, data, labels, &args.data)
    })??;
    if args.json {
        out.data(&predict::evaluation_json(&model, &eval).to_string());
        return Ok(out.finish().map(|()| ExitCode::SUCCESS)?);
    }
    for line in predict::evaluation_lines(&model, &eval) {
        out.line(&line);
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

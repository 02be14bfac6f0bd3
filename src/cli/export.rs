//! `vnn export`: a model file in another format (ONNX).

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// The formats `vnn export` writes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// An ONNX graph (opset 17) for onnxruntime and other ONNX runtimes.
    Onnx,
}

/// Options of `vnn export`.
#[derive(Args, Debug, Clone)]
pub(crate) struct ExportArgs {
    /// Model file written by `vnn train` (model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Onnx)]
    format: Format,
    /// Output file, written atomically (e.g. model.onnx).
    #[arg(long)]
    out: PathBuf,
}

/// Refuses an `--out` that cannot be written before any work is done: a
/// folder, one in a folder that does not exist, or the model file itself.
fn check_out(args: &ExportArgs) -> Result<()> {
    let out = &args.out;
    if out.is_dir() {
        bail!(
            "{}: is a directory, not an output file (--out)",
            out.display()
        );
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent.filter(|p| !p.is_dir()) {
        bail!(
            "{}: the folder {} does not exist (--out)",
            out.display(),
            dir.display()
        );
    }
    let same = |a: &std::path::Path, b: &std::path::Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if same(out, &args.model) {
        bail!(
            "{}: --out names the model file itself; give another file",
            out.display()
        );
    }
    Ok(())
}

pub(crate) fn run(args: &ExportArgs) -> Result<ExitCode> {
    check_out(args)?;
    let model = vnn::model::Model::load(&args.model)?;
    match args.format {
        Format::Onnx => vnn::onnx::save_onnx(&model, &args.out)?,
    }
    vnn::output::write_line(true, &format!("wrote {}", args.out.display()))?;
    Ok(ExitCode::SUCCESS)
}

//! `vnn train`.
//!
//! The run itself is a [`vnn::session::Session`] (checkpoints, resume
//! checks, Ctrl-C, divergence). `--resume PATH` takes the settings recorded
//! in the checkpoint; only options that do not change the run may be given
//! with it (`--epochs` to lengthen or shorten it, `--out`, by default the
//! checkpoint's folder, `--threads`, `--json`, `--no-plots`, and how often
//! to log, print and checkpoint). Ctrl-C exits with code 130 after saving
//! (a second Ctrl-C exits at once).

use super::with_threads;
use anyhow::{Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use std::process::ExitCode;
use vnn::checkpoint::Checkpoint;
use vnn::data::Dataset;
use vnn::output::Console;
use vnn::session::{
    utc_timestamp, Interrupter, MetricsFile, Outcome, Plots, Progress, SessionBuilder, TensorBoard,
};
use vnn::settings::{refuse_with_resume, RunSettings, TrainOptions};

/// The settings of the run: those of the options, or with `--resume` the
/// ones recorded in its checkpoint with the options it accepts.
fn settings(cli: &TrainOptions, matches: &ArgMatches) -> Result<(RunSettings, Option<Checkpoint>)> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let own = cli.settings();
    let Some(path) = &cli.resume else {
        own.refuse_inapplicable(given)?;
        return Ok((own, None));
    };
    // The options of `vnn train`, in declaration order (the matches also
    // hold argument groups).
    for arg in TrainOptions::augment_args(clap::Command::new("train")).get_arguments() {
        let id = arg.get_id().as_str();
        refuse_with_resume(id, given(id))?;
    }
    let (s, ckpt) = own.resumed(path, given)?;
    Ok((s, Some(ckpt)))
}

pub(crate) fn run(cli_args: &TrainOptions, matches: &ArgMatches) -> Result<ExitCode> {
    let (args, resume) = settings(cli_args, matches)?;
    let args = &args;
    let config = args.config();
    args.check()?;
    let (full, label_col) = args.load_data()?;
    let split = args.split_data(&full, &label_col)?;
    let (train_raw, test_raw) = (&split.train, &split.test);
    let (model, train_std) = args.build_model(train_raw)?;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| args.run_folder(&utc_timestamp()));
    let settings = args.recorded(&dir)?;
    let command = resume
        .as_ref()
        .and_then(|c| c.extra.get("training_command").cloned())
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let stop = interrupter()?;
    let out = Console::new(args.json);
    let resumed_at = resume.as_ref().map(|c| c.step);
    let defaults = resume
        .is_none()
        .then(|| cli_args.chosen_defaults(train_raw.n_rows()));
    let title = format!("{} on {}", args.model_name(), args.data_name());
    // Every row of the data (training, validation and test) in the boundary picture.
    let points = (!args.no_plots && full.n_features() == 2).then(|| full.clone());
    let sizes = model.layout().sizes().to_vec();
    let mut builder = SessionBuilder::new(model, config.clone(), &dir)
        .log_every(args.log_every)
        .settings(settings)
        .extra("training_command", command)
        .extra("label_column", label_col)
        .data_fingerprint(vnn::csv::input_name(args.data.as_ref()), &full)
        .class_weights(args.class_weights(train_raw))
        .interrupter(stop)
        .lr_schedule(args.schedule())
        .observer(Progress::new(args.json, args.print_every).console(out.clone()));
    if !args.no_plots {
        builder = builder.observer(Plots::new(title, points));
    }
    if let Some(v) = &split.val {
        let name = args
            .val_data
            .clone()
            .unwrap_or_else(|| "the validation split".into());
        builder = builder.val_fingerprint(name, v);
    }
    if let Some(e) = args.early() {
        builder = builder.early_stopping(e);
    }
    if let Some(n) = args.checkpoint_every {
        builder = builder.checkpoint_every(n);
    }
    if let (Some(ckpt), Some(path)) = (resume, &args.resume) {
        builder = builder.resume(ckpt, path);
    }
    let test = test_raw.as_ref();
    let outcome = with_threads(args.threads, || {
        // The metrics and the hparams record the threads of the pool.
        let recorded = args.metrics_json(&sizes);
        let events = TensorBoard::new(&dir).hparams(recorded.clone());
        let builder = builder
            .observer(events)
            .observer(MetricsFile::new(recorded));
        let mut session = builder.build(&train_std, test)?;
        header(
            &out,
            args,
            (train_raw, split.val.as_ref(), test),
            &sizes,
            resumed_at,
        );
        if let Some(line) = defaults.flatten() {
            out.line(&line);
        }
        if let Some(v) = &split.val {
            session = session.validation(v);
        }
        session.evaluate_at_end(train_raw).run()
    })??;
    report(&out, &outcome, args.json);
    for w in warnings(&outcome) {
        out.note(&format!("warning: {w}"));
    }
    let saved = || {
        format!(
            "the run in {} saved its model, but its output was cut short",
            dir.display()
        )
    };
    out.finish().with_context(saved)?;
    Ok(ExitCode::from(if outcome.interrupted { 130 } else { 0 }))
}

/// Connects Ctrl-C to a session's interrupter: the run stops after the
/// current step and saves; a second Ctrl-C exits at once. Installed before
/// the first line is printed, so whoever has seen that line may interrupt.
fn interrupter() -> Result<Interrupter> {
    let stop = Interrupter::new();
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.interrupt() {
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

/// The first lines: the data, the model and the settings; where a resumed
/// run starts.
fn header(
    out: &Console,
    args: &RunSettings,
    (train_raw, val, test_raw): (&Dataset, Option<&Dataset>, Option<&Dataset>),
    sizes: &[usize],
    resumed_at: Option<u64>,
) {
    let config = args.config();
    let held = [("validation", val), ("test", test_raw)]
        .map(|(name, d)| d.map(|d| format!(" (+{} {name} rows)", d.n_rows())));
    let test: String = held.into_iter().flatten().collect();
    out.line(&format!(
        "vnn train: {} rows x {} features, {} classes{test}; {} {:?}; {} epochs, {} lr {}, reg {}",
        train_raw.n_rows(),
        train_raw.n_features(),
        train_raw.n_classes(),
        args.model_name(),
        sizes,
        config.epochs,
        config.optimizer.name(),
        vnn::settings::short_float(config.lr),
        vnn::settings::short_float(config.reg)
    ));
    if let (Some(step), Some(path)) = (resumed_at, &args.resume) {
        out.line(&format!("resuming from {} at step {step}", path.display()));
    }
}

/// The last lines of a run: where an interrupted run was saved, or the
/// results of a completed one.
fn report(out: &Console, outcome: &Outcome, json: bool) {
    if outcome.interrupted {
        let (ckpt, model) = (
            outcome.checkpoint_path.display(),
            outcome.model_path.display(),
        );
        let (steps, total) = (outcome.steps, outcome.total);
        out.note(&format!("interrupted at step {steps} of {total}: model saved to {model}, checkpoint to {ckpt} (continue with: vnn train --resume {ckpt})"));
        return;
    }
    let steps = outcome.steps;
    let mut figures = String::new();
    for (name, e) in [
        ("train", &outcome.train_eval),
        ("val", &outcome.val_eval),
        ("test", &outcome.test_eval),
    ] {
        if let Some(e) = e {
            figures += &format!("; {name} loss {:.4}, accuracy {:.4}", e.loss, e.accuracy);
        }
    }
    let stop = match outcome.best {
        Some((best, _)) if outcome.stopped_early => format!(" (stopped early; best step {best})"),
        Some((best, _)) => format!(" (best step {best})"),
        None => String::new(),
    };
    out.line(&format!(
        "done: {steps} steps in {:.2} s{stop}; final model: {}",
        outcome.seconds,
        figures.trim_start_matches("; ")
    ));
    out.line(&format!("run folder: {}", outcome.dir.display()));
    if json {
        let mut summary = outcome.summary();
        summary["warnings"] = warnings(outcome).into();
        out.data(&summary.to_string());
    }
}

/// The run's warnings with the settings they name as options (`--lr`).
fn warnings(outcome: &Outcome) -> Vec<String> {
    let flag = |o: &str| format!("--{}", o.replace('_', "-"));
    let w = outcome.warnings.iter();
    w.map(|w| vnn::budget::with_options(w, flag)).collect()
}

//! `vnn train` with validation data, early stopping and learning-rate
//! schedules end to end: the final numbers against `vnn eval`, the
//! TensorBoard tags and rates, and the refusals of options that do not
//! apply.

use serde_json::Value;
use std::path::{Path, PathBuf};

#[path = "support/cli.rs"]
mod cli_support;
use cli_support::{last_json, scratch, vnn};

const DIGITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/digits.csv");

fn tmp(name: &str) -> PathBuf {
    scratch("train_loop", name)
}

/// `vnn eval --json` of `model` on `data`.
fn eval(model: &Path, data: &str) -> Value {
    last_json(&vnn(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data,
        "--json",
    ]))
}

/// The words of `s`, for a command line.
fn words(s: &str) -> Vec<&str> {
    s.split(' ').collect()
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// The digits file cut in two: the first `n` rows and the rest.
fn split_digits(dir: &Path, n: usize) -> (String, String) {
    let text = std::fs::read_to_string(DIGITS).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let write = |name: &str, rows: &[&str]| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
        path.to_str().unwrap().to_string()
    };
    (write("train.csv", &rows[..n]), write("val.csv", &rows[n..]))
}

#[test]
fn train_loss_is_the_final_model_on_the_training_rows_as_vnn_eval_gives_it() {
    let dir = tmp("train-loss");
    let run = dir.join("run");
    let mut args = words("train --standardize --optimizer adam --lr 0.01 --hidden 32 --batch-size 64 --epochs 2 --no-plots --json");
    args.extend(["--data", DIGITS]);
    args.extend(["--out", run.to_str().unwrap()]);
    let out = vnn(&args);
    let j = last_json(&out);
    let e = eval(&run.join("model.safetensors"), DIGITS);
    let (train, evaluated) = (
        j["train_loss"].as_f64().unwrap(),
        e["loss"].as_f64().unwrap(),
    );
    assert!(relative(train, evaluated) < 1e-5, "{train} vs {evaluated}");
    assert_eq!(j["train_accuracy"], e["accuracy"]);
    // The batch objective of the last step is not the final model's loss.
    assert_ne!(j["final_loss"], j["train_loss"]);
    assert!(j["val_loss"].is_null() && j["test_loss"].is_null());
    assert_eq!(j["stopped_early"], false);
    // With --json the lines go to stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let done = stderr.lines().find(|l| l.starts_with("done: ")).unwrap();
    assert!(
        done.contains(&format!("final model: train loss {train:.4}")),
        "{done}"
    );
    assert!(
        stderr.contains("EPOCH 0: Training loss (batch)"),
        "{stderr}"
    );
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["summary"]["train_loss"], j["train_loss"]);
    // The final numbers are in one place, the summary.
    for key in ["steps", "train_loss", "val_loss", "test_loss"] {
        assert!(metrics.get(key).is_none(), "top-level {key}");
    }
    assert_eq!(metrics["summary"]["epochs_run"], j["epochs_run"]);
    let last = metrics["curve"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["train_loss"], j["train_loss"]);
    assert_eq!(
        (last["step"].as_u64(), last["lr"].as_f64()),
        (Some(58), Some(0.01f32 as f64))
    );
    assert_eq!(metrics["config"]["lr_schedule"], "constant");
    assert_eq!(metrics["config"]["early_stopping"], false);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn digits_with_val_data_stop_early_at_the_loss_vnn_eval_gives_the_val_file() {
    let dir = tmp("digits-es");
    let (train, val) = split_digits(&dir, 1437);
    let run = dir.join("run");
    let mut args = words("train --standardize --optimizer adam --lr 0.01 --hidden 256 --batch-size 64 --epochs 300 --early-stopping --patience 5 --no-plots --json");
    args.extend(["--data", &train, "--val-data", &val]);
    args.extend(["--out", run.to_str().unwrap()]);
    let j = last_json(&vnn(&args));
    assert_eq!(j["stopped_early"], true, "{j}");
    // 23 steps an epoch: it stopped long before epoch 300.
    let (steps, best_step) = (
        j["steps"].as_u64().unwrap(),
        j["best_step"].as_u64().unwrap(),
    );
    assert!(steps < 300 * 23 && best_step < steps, "{j}");
    let best = j["best_val_loss"].as_f64().unwrap();
    let e = eval(&run.join("model.safetensors"), &val);
    assert!(
        relative(best, e["loss"].as_f64().unwrap()) < 1e-5,
        "{best} vs {e}"
    );
    assert_eq!(j["val_loss"].as_f64(), Some(best));
    assert_eq!(j["val_accuracy"], e["accuracy"]);
    assert!(j["val_accuracy"].as_f64().unwrap() > 0.85, "{j}");
    assert!(j.get("best_train_loss").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The scalar series of the run's event file, and the tags of its other
/// summaries (histograms, hparams) with their plugin names.
fn scalars(run: &Path) -> (Series, std::collections::BTreeSet<(String, String)>) {
    use prost::Message;
    use vnn::tensorboard::proto::{Event, What};
    let file = std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .expect("an event file");
    let bytes = std::fs::read(&file).unwrap();
    let mut series = Series::new();
    let mut others = std::collections::BTreeSet::new();
    for record in vnn::tensorboard::read_records(&bytes, "events").unwrap() {
        let event = Event::decode(record).unwrap();
        if let Some(What::Summary(s)) = event.what {
            for v in s.value {
                if let Some(x) = v.simple_value {
                    series.entry(v.tag).or_default().push((event.step, x));
                } else {
                    let plugin = v.metadata.and_then(|m| m.plugin_data);
                    let name = plugin.map_or("histogram".to_string(), |p| p.plugin_name);
                    others.insert((v.tag, name));
                }
            }
        }
    }
    (series, others)
}

/// Scalar series by tag: (step, value) points.
type Series = std::collections::BTreeMap<String, Vec<(i64, f32)>>;

#[test]
fn a_val_split_cosine_run_logs_full_set_tags_and_a_falling_rate() {
    let dir = tmp("cosine");
    let run = dir.join("run");
    let mut args = words(
        "train --val-split 0.2 --lr-schedule cosine --epochs 300 --log-every 25 --no-plots --json",
    );
    args.extend(["--out", run.to_str().unwrap()]);
    let out = vnn(&args);
    let j = last_json(&out);
    assert!(j["val_loss"].is_f64() && j["test_loss"].is_null(), "{j}");
    // With --json the lines go to stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("240 rows x 2 features, 3 classes (+60 validation rows)"),
        "{stderr}"
    );
    let (series, others) = scalars(&run);
    let tags: Vec<&str> = series.keys().map(String::as_str).collect();
    assert_eq!(
        tags,
        [
            "accuracy/train",
            "accuracy/val",
            "final/train_accuracy",
            "final/train_loss",
            "final/val_accuracy",
            "final/val_loss",
            "loss/train",
            "loss/val",
            "lr"
        ]
    );
    // Step 1, every 25 steps, and the last.
    let lr = &series["lr"];
    assert_eq!(lr.len(), 13);
    assert_eq!((lr[0], lr[12].0), ((1, 1.0), 300));
    assert!(lr.windows(2).all(|w| w[1].1 <= w[0].1), "{lr:?}");
    assert!(lr[12].1 < 0.05 * lr[0].1, "{lr:?}");
    let val = series["loss/val"].last().unwrap().1 as f64;
    assert!(relative(val, j["val_loss"].as_f64().unwrap()) < 1e-6);
    let final_val = series["final/val_loss"][0].1 as f64;
    assert!(relative(final_val, j["val_loss"].as_f64().unwrap()) < 1e-6);
    // Weight and bias histograms of both layers, and the hparams session.
    for tag in [
        "weights/layers.0",
        "weights/layers.1",
        "biases/layers.0",
        "biases/layers.1",
    ] {
        assert!(
            others.contains(&(tag.into(), "histogram".into())),
            "{tag}: {others:?}"
        );
    }
    for tag in ["_hparams_/session_start_info", "_hparams_/session_end_info"] {
        assert!(
            others.contains(&(tag.into(), "hparams".into())),
            "{tag}: {others:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The one stderr line of a refused run (exit code 1).
fn refused(args: &[&str]) -> String {
    let out = vnn(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn loop_options_that_do_not_apply_are_refused_in_one_line() {
    let dir = tmp("refused");
    let (train, val) = split_digits(&dir, 1500);
    let out = dir.join("run");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 9] = [
        (&["--patience", "3"], "--patience does not apply here: it applies with --early-stopping only"),
        (&["--min-delta", "0.1"], "--min-delta does not apply here: it applies with --early-stopping (or --lr-schedule plateau) only"),
        (&["--lr-min", "0.1"], "--lr-min does not apply here: it applies to --lr-schedule cosine only"),
        (&["--lr-gamma", "0.5", "--lr-schedule", "cosine"], "--lr-gamma does not apply here: it applies to --lr-schedule step or plateau only"),
        (&["--lr-patience", "2"], "--lr-patience does not apply here: it applies to --lr-schedule plateau only"),
        (&["--lr-schedule", "step"], "--lr-step-every must be given with --lr-schedule step: a number of epochs, at least 1"),
        (&["--val-split", "1.5"], "--val-split must be in (0, 1)"),
        (&["--val-data", "x.csv"], "--val-data does not apply here: the built-in spiral has no CSV columns"),
        (&["--data", &train, "--val-data", &val, "--val-split", "0.2"], "--val-data does not apply here: it cannot be combined with --val-split"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["train", "--epochs", "1", "--out", out];
        args.extend_from_slice(extra);
        let line = refused(&args);
        assert!(line.contains(expected), "{extra:?}: {line}");
    }
    // A class the training data does not have: the file and its line.
    let text = std::fs::read_to_string(&val).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let (row, _) = lines[5].rsplit_once(',').unwrap();
    lines[5] = format!("{row},eleven");
    std::fs::write(&val, lines.join("\n")).unwrap();
    let line = refused(&[
        "train",
        "--data",
        &train,
        "--val-data",
        &val,
        "--epochs",
        "1",
        "--out",
        out,
    ]);
    assert!(
        line.contains(&format!("{val}, line 6")) && line.contains("eleven"),
        "{line}"
    );
    // A changed validation file is refused on resume.
    let (train, val) = split_digits(&dir, 1500);
    let mut args = words("train --epochs 1 --checkpoint-every 1 --no-plots --hidden 8");
    args.extend(["--data", &train, "--val-data", &val, "--out", out]);
    assert!(vnn(&args).status.success());
    let text = std::fs::read_to_string(&val).unwrap();
    std::fs::write(&val, text.lines().take(100).collect::<Vec<_>>().join("\n")).unwrap();
    let ckpt = format!("{out}/checkpoint.safetensors");
    let line = refused(&["train", "--resume", &ckpt, "--epochs", "2"]);
    assert!(
        line.starts_with(&format!("error: {val}: the data differs")),
        "{line}"
    );
    // Fixed on resume.
    let mut args = words("train --epochs 3 --checkpoint-every 1 --no-plots");
    args.extend(["--out", out]);
    assert!(vnn(&args).status.success());
    let ckpt = format!("{out}/checkpoint.safetensors");
    let line = refused(&["train", "--resume", &ckpt, "--early-stopping"]);
    assert!(
        line.contains("--early-stopping cannot be combined with --resume"),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `lr` of each curve point of the run in `run`, from metrics.json.
fn curve_rates(run: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(run.join("metrics.json")).unwrap();
    let metrics: Value = serde_json::from_str(&text).unwrap();
    let curve = metrics["curve"].as_array().unwrap();
    curve.iter().map(|p| p["lr"].as_f64().unwrap()).collect()
}

#[test]
fn step_and_plateau_schedules_apply_their_options() {
    let dir = tmp("schedules");
    let run = dir.join("step");
    let mut args = words("train --epochs 6 --log-every 1 --lr-schedule step --lr-step-every 2 --lr-gamma 0.5 --no-plots --json");
    args.extend(["--out", run.to_str().unwrap()]);
    let j = last_json(&vnn(&args));
    assert_eq!(j["steps"], 6);
    assert_eq!(curve_rates(&run), [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]);

    // A plateau that a huge min_delta makes certain: every 2 evaluations.
    let run = dir.join("plateau");
    let mut args = words("train --epochs 7 --log-every 1 --lr-schedule plateau --lr-patience 2 --lr-gamma 0.5 --min-delta 100 --no-plots --json");
    args.extend(["--out", run.to_str().unwrap()]);
    last_json(&vnn(&args));
    // The first evaluation improves on nothing; then 2 without improvement
    // halve the rate of the steps after.
    assert_eq!(curve_rates(&run), [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]);
    let text = std::fs::read_to_string(run.join("metrics.json")).unwrap();
    let config = &serde_json::from_str::<Value>(&text).unwrap()["config"];
    assert_eq!(
        (
            config["lr_schedule"].as_str(),
            config["lr_patience"].as_u64()
        ),
        (Some("plateau"), Some(2))
    );
    assert_eq!(config["min_delta"], 100.0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Settings that cannot make a sound run are refused in one line: both
/// training and validation data on standard input, a split that leaves a
/// class no training rows, and a cosine run resumed to another length
/// (its rate follows the run's length).
#[test]
fn unsound_splits_stdin_twice_and_cosine_length_changes_are_refused() {
    let dir = tmp("unsound");
    let out = dir.join("run");
    let out = out.to_str().unwrap();
    let line = refused(&["train", "--data", "-", "--val-data", "-", "--out", out]);
    assert!(
        line.contains("--val-data must be a file when the training data is read from standard input (--data -)"),
        "{line}"
    );
    let tiny = dir.join("tiny.csv");
    std::fs::write(&tiny, "a,label\n1,x\n2,x\n3,y\n").unwrap();
    let tiny = tiny.to_str().unwrap();
    for split in ["--val-split", "--test-split"] {
        let line = refused(&["train", "--data", tiny, split, "0.5", "--out", out]);
        let want = format!("{split} must be small enough to leave every class training rows (class \"y\" has none left)");
        assert!(line.contains(&want), "{line}");
    }
    let (train, _) = split_digits(&dir, 300);
    let mut args =
        words("train --lr-schedule cosine --epochs 2 --checkpoint-every 1 --no-plots --hidden 8");
    args.extend(["--data", &train, "--out", out]);
    assert!(vnn(&args).status.success());
    let ckpt = format!("{out}/checkpoint.safetensors");
    let line = refused(&["train", "--resume", &ckpt, "--epochs", "4"]);
    assert!(
        line.contains(
            "--epochs must be the recorded 2 when resuming a run with --lr-schedule cosine"
        ),
        "{line}"
    );
    // The recorded length passes this check (and meets the complete run's).
    let line = refused(&["train", "--resume", &ckpt, "--epochs", "2"]);
    assert!(line.contains("is complete"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs started in the same second without `--out` get folders of their
/// own; metrics.json names the activation only for the MLP and the test
/// split only when there is one.
#[test]
fn runs_in_the_same_second_get_their_own_folders() {
    let dir = tmp("folders");
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vnn"))
            .args(words("train --model linear --epochs 1 --no-plots --json"))
            .current_dir(&dir)
            .output()
            .unwrap();
        last_json(&out)["out"].as_str().unwrap().to_string()
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b);
    for folder in [&a, &b] {
        let metrics = std::fs::read_to_string(dir.join(folder).join("metrics.json")).unwrap();
        let m: Value = serde_json::from_str(&metrics).unwrap();
        let config = &m["config"];
        assert!(
            config.get("activation").is_none() && config.get("test_split").is_none(),
            "{config}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Iris with the CSV defaults (one batch of all 120 training rows, one
/// step an epoch) evaluates every epoch, so early stopping with patience 3
/// stops 3 epochs after its best one; `epochs` stays the planned count and
/// `epochs_run` counts those run.
#[test]
fn iris_with_one_step_an_epoch_can_stop_early() {
    let dir = tmp("iris-es");
    let iris = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/iris.csv");
    let mut args = words(
        "train --val-split 0.2 --early-stopping --patience 3 --epochs 3000 --no-plots --json",
    );
    args.extend(["--data", iris, "--out", dir.to_str().unwrap()]);
    let j = last_json(&vnn(&args));
    assert_eq!(j["stopped_early"], true, "{j}");
    let (steps, best_step) = (
        j["steps"].as_u64().unwrap(),
        j["best_step"].as_u64().unwrap(),
    );
    assert_eq!(steps, best_step + 3, "{j}");
    assert!(steps < 3000, "{j}");
    assert_eq!(
        (j["epochs"].as_u64(), j["epochs_run"].as_u64()),
        (Some(3000), Some(steps))
    );
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    let curve: Vec<u64> = metrics["curve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_u64().unwrap())
        .collect();
    assert_eq!(curve, (1..=steps).collect::<Vec<_>>());
    assert_eq!(metrics["summary"]["epochs_run"], j["epochs_run"]);
    let _ = std::fs::remove_dir_all(&dir);
}

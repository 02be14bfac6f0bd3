//! The guard at the end of every run: one `warning: ...` line on stderr per
//! warning, naming the options to change, and the same warnings in the
//! `--json` object and in metrics.json (an empty list for a run that
//! learned).

use serde_json::Value;
use std::path::{Path, PathBuf};

#[path = "support/cli.rs"]
mod cli_support;
use cli_support::{scratch, vnn};

fn tmp(name: &str) -> PathBuf {
    scratch("guard", name)
}

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    path.to_string_lossy().into_owned()
}

/// Runs `vnn train ARGS --json --no-plots --out DIR`: the JSON object, the
/// `warning: ` lines of stderr and metrics.json.
fn train(dir: &Path, args: &[&str]) -> (Value, Vec<String>, Value) {
    let mut all = vec![
        "train",
        "--json",
        "--no-plots",
        "--out",
        dir.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = vnn(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let warnings = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .map(str::to_string)
        .collect();
    let metrics = std::fs::read_to_string(dir.join("metrics.json")).unwrap();
    (json, warnings, serde_json::from_str(&metrics).unwrap())
}

#[test]
fn a_run_that_does_not_learn_is_warned_about() {
    let dir = tmp("lr-1e-9");
    let digits = data("digits.csv");
    let (json, lines, metrics) = train(&dir, &["--data", &digits, "--lr", "1e-9", "--epochs", "2"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(
        line.starts_with("the loss did not fall over the run, from "),
        "{line}"
    );
    assert!(
        line.contains("try a higher --lr") && line.contains("more --epochs"),
        "{line}"
    );
    // The JSON carries the line as printed; metrics.json in library names.
    assert_eq!(json["warnings"], serde_json::json!([line]));
    let recorded = metrics["summary"]["warnings"].as_array().unwrap();
    assert_eq!(recorded.len(), 1);
    let recorded = recorded[0].as_str().unwrap();
    assert!(recorded.contains("try a higher `lr`"), "{recorded}");
}

#[test]
fn a_run_that_learns_has_no_warnings() {
    let dir = tmp("iris");
    let (json, lines, metrics) = train(&dir, &["--data", &data("iris.csv"), "--seed", "1"]);
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(json["warnings"], serde_json::json!([]));
    assert_eq!(metrics["summary"]["warnings"], serde_json::json!([]));
}

#[test]
fn a_rising_loss_names_the_learning_rate() {
    let dir = tmp("rose");
    let args = ["--data", &data("iris.csv"), "--lr", "10", "--epochs", "5"];
    let (json, lines, _) = train(&dir, &args);
    assert!(json["train_accuracy"].as_f64().unwrap() > 0.5);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("the loss rose over the run, from "),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("try a lower --lr"), "{}", lines[0]);
    // CSV data is standardized by default: the advice does not ask for it.
    assert!(!lines[0].contains("standardize"), "{}", lines[0]);
}

#[test]
fn predicting_the_majority_class_is_no_better_than_chance() {
    // Labels unrelated to the features, 90% of them "a": the model can only
    // learn to say "a".
    let dir = tmp("chance");
    let mut csv = String::from("x,y,label\n");
    for i in 0..200u32 {
        let label = if i % 10 == 3 { "b" } else { "a" };
        csv.push_str(&format!("{},{},{label}\n", (i * 37) % 101, (i * 53) % 97));
    }
    let path = dir.join("noise.csv");
    std::fs::write(&path, csv).unwrap();
    // Standardized (the default for CSV data), the advice names the rate
    // but not standardizing; without standardization it suggests it.
    for (run, extra, suggests) in [
        ("run", None, false),
        ("raw", Some("--no-standardize"), true),
    ] {
        let out = dir.join(run);
        let mut args = vec!["--data", path.to_str().unwrap(), "--seed", "1"];
        args.extend(extra);
        let (json, lines, metrics) = train(&out, &args);
        let accuracy = json["train_accuracy"].as_f64().unwrap();
        assert!(accuracy <= 0.91, "accuracy {accuracy}");
        let chance: Vec<_> = lines
            .iter()
            .filter(|l| l.contains("most frequent class (0.9000)"))
            .collect();
        assert_eq!(chance.len(), 1, "{lines:?}");
        assert!(chance[0].contains("--lr"), "{}", chance[0]);
        assert_eq!(
            chance[0].contains("--standardize"),
            suggests,
            "{}",
            chance[0]
        );
        let recorded = metrics["summary"]["warnings"].to_string();
        assert_eq!(recorded.contains("standardize"), suggests, "{recorded}");
    }
}

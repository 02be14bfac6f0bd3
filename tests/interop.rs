//! Interoperability with the reference Python readers: `safetensors` +
//! `numpy` read vnn model files and predict the same classes, and
//! TensorBoard's `EventAccumulator` reads vnn event files, and `onnx` and
//! `onnxruntime` check and run the graphs of `vnn export`.
//!
//! `scikit-learn`'s `precision_recall_fscore_support` gives the numbers of
//! `vnn eval`'s classification report, and TensorBoard's hparams plugin
//! reads the hparams of a run.
//!
//! These tests need a Python with `safetensors`, `numpy`, `tensorboard`,
//! `onnx`, `onnxruntime` and `scikit-learn` installed, named by the `VNN_PYTHON` environment variable
//! (`.ci/python-env.sh` creates one and prints its path). Without it they
//! print a `SKIPPED` line and pass.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use vnn::data::{spiral, Standardizer};
use vnn::model::{Activation, Init, Model};
use vnn::modelfile::ModelFile;
use vnn::train::{TrainConfig, Trainer};

/// The Python named by `VNN_PYTHON`, or `None` (after saying so) if unset.
fn python(test: &str) -> Option<PathBuf> {
    match std::env::var_os("VNN_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            // Straight to stderr, past the test harness's output capture.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: VNN_PYTHON not set; {test} needs a python with safetensors, numpy, \
                 tensorboard, onnx, onnxruntime and scikit-learn (create one with: export VNN_PYTHON=$(bash .ci/python-env.sh))"
            );
            None
        }
    }
}

/// Runs `script` with `args`; returns its stdout, failing loudly otherwise.
fn run_python(py: &Path, script: &str, args: &[&Path]) -> String {
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run VNN_PYTHON={}: {e}", py.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python failed ({}):\n{stderr}",
        out.status
    );
    String::from_utf8(out.stdout).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vnn-interop-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The spiral of `vnn train`'s default run (100 points per class, 3
/// classes, seed 0) as `dir/spiral.csv`, with the columns x0, x1, label.
fn spiral_csv(dir: &Path) -> (vnn::data::Dataset, PathBuf) {
    let data = spiral(100, 3, 0);
    let mut csv = String::from("x0,x1,label\n");
    for i in 0..data.n_rows() {
        let row = data.row(i);
        csv.push_str(&format!("{},{},{}\n", row[0], row[1], data.labels()[i]));
    }
    let path = dir.join("spiral.csv");
    std::fs::write(&path, csv).unwrap();
    (data, path)
}

/// A small MLP trained on the spiral, with standardization.
fn trained() -> (Model, vnn::data::Dataset) {
    let data = spiral(60, 3, 2);
    let standardizer = Standardizer::fit(data.features(), data.n_features());
    let train = data.standardized(&standardizer).unwrap();
    let model = Model::new(&[2, 24, 12, 3], Init::He, 9).unwrap();
    let config = TrainConfig {
        epochs: 300,
        lr: 0.5,
        reg: 1e-3,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, &train, config).unwrap();
    for _ in 0..300 {
        trainer.step().unwrap();
    }
    let model = trainer
        .into_model()
        .with_standardizer(standardizer)
        .unwrap()
        .with_names(
            vec!["x".into(), "y".into()],
            vec!["arm a".into(), "arm b".into(), "arm c".into()],
        )
        .unwrap();
    (model, data)
}

const NUMPY_FORWARD: &str = r#"
import json, sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

model_path, rows_path = sys.argv[1], sys.argv[2]
tensors = load_file(model_path)
with safe_open(model_path, framework="numpy") as f:
    meta = f.metadata()
assert meta["format"] == "vnn-model", meta
sizes = json.loads(meta["sizes"])
std = json.loads(meta["standardize"])
x = np.array(json.load(open(rows_path)), dtype=np.float64)
x = (x - np.array(std["mean"])) / np.array(std["scale"])
n_layers = len(sizes) - 1
for i in range(n_layers):
    w, b = tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]
    assert w.dtype == np.float32 and w.shape == (sizes[i], sizes[i + 1]), (w.dtype, w.shape)
    assert b.dtype == np.float32 and b.shape == (sizes[i + 1],), (b.dtype, b.shape)
    w, b = w.astype(np.float64), b.astype(np.float64)
    x = x @ w + b
    if i < n_layers - 1:
        x = np.maximum(x, 0.0)
top2 = np.sort(x, axis=1)[:, -2:]
print(json.dumps({
    "pred": np.argmax(x, axis=1).tolist(),
    "margin": (top2[:, 1] - top2[:, 0]).tolist(),
    "logits": x.tolist(),
    "extra": meta["training_command"],
    "classes": json.loads(meta["class_names"]),
    "tensors": sorted(tensors),
}))
"#;

#[test]
fn numpy_forward_pass_matches_predict() {
    let Some(py) = python("numpy_forward_pass_matches_predict") else {
        return;
    };
    let (model, data) = trained();
    let dir = scratch("numpy");
    let model_path = dir.join("model.safetensors");
    let extra = BTreeMap::from([(
        "training_command".to_string(),
        "vnn train --demo".to_string(),
    )]);
    ModelFile {
        model: model.clone(),
        metadata: extra.clone(),
    }
    .save(&model_path)
    .unwrap();
    let rows = data.n_rows();
    let rows_json: Vec<&[f32]> = (0..rows).map(|i| data.row(i)).collect();
    let rows_path = dir.join("rows.json");
    std::fs::write(&rows_path, serde_json::to_string(&rows_json).unwrap()).unwrap();

    let out = run_python(&py, NUMPY_FORWARD, &[&model_path, &rows_path]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["extra"], "vnn train --demo");
    assert_eq!(v["classes"], serde_json::json!(["arm a", "arm b", "arm c"]));
    assert_eq!(
        v["tensors"],
        serde_json::json!([
            "layers.0.bias",
            "layers.0.weight",
            "layers.1.bias",
            "layers.1.weight",
            "layers.2.bias",
            "layers.2.weight"
        ])
    );
    let py_pred: Vec<u32> = serde_json::from_value(v["pred"].clone()).unwrap();
    let margin: Vec<f64> = serde_json::from_value(v["margin"].clone()).unwrap();
    let py_logits: Vec<Vec<f64>> = serde_json::from_value(v["logits"].clone()).unwrap();

    let ours = model.predict(data.features(), rows).unwrap();
    let logits = model.logits(data.features(), rows).unwrap();
    // The model learned something, so the comparison is not of constants.
    let correct = ours
        .iter()
        .zip(data.labels())
        .filter(|(a, b)| a == b)
        .count();
    assert!(correct * 10 > rows * 8, "accuracy {correct}/{rows}");
    // Logits agree to f32 rounding (numpy computes in f64).
    for (i, row) in py_logits.iter().enumerate() {
        for (k, &reference) in row.iter().enumerate() {
            let got = logits[i * 3 + k] as f64;
            assert!(
                (got - reference).abs() <= 1e-4 * (1.0 + reference.abs()),
                "row {i} class {k}: {got} vs {reference}"
            );
        }
    }
    // Every prediction agrees except, at most, exact near-ties.
    let near_ties = margin.iter().filter(|&&m| m < 1e-4).count();
    let differ: Vec<usize> = (0..rows).filter(|&i| py_pred[i] != ours[i]).collect();
    assert!(
        differ.iter().all(|&i| margin[i] < 1e-4),
        "predictions differ on rows {differ:?}"
    );
    assert!(near_ties <= 1, "{near_ties} near-ties");
    eprintln!(
        "numpy agreed on {}/{rows} predictions ({near_ties} near-ties)",
        rows - differ.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

const EVENT_ACCUMULATOR: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator, SCALARS, HISTOGRAMS)
ea = EventAccumulator(sys.argv[1], size_guidance={SCALARS: 0, HISTOGRAMS: 0})
ea.Reload()
tags = ea.Tags()
print(json.dumps({
    "file_version": ea.file_version,
    "scalars": {t: [[e.step, e.value] for e in ea.Scalars(t)] for t in tags["scalars"]},
    "histograms": {t: [[e.step, e.histogram_value.num, sum(e.histogram_value.bucket),
                        len(e.histogram_value.bucket), e.histogram_value.min,
                        e.histogram_value.max]
                       for e in ea.Histograms(t)] for t in tags["histograms"]},
}))
"#;

#[test]
fn event_accumulator_reads_event_files() {
    let Some(py) = python("event_accumulator_reads_event_files") else {
        return;
    };
    let dir = scratch("tb");
    let mut w = vnn::tensorboard::EventWriter::create(&dir).unwrap();
    let mut losses = Vec::new();
    for step in 0..12 {
        let loss = 2.0 / (step as f32 + 1.0);
        losses.push((step, loss));
        w.add_scalar("train/loss", step, loss).unwrap();
        w.add_scalar("test/accuracy", step, step as f32 * 0.05)
            .unwrap();
        if step % 3 == 0 {
            let values: Vec<f32> = (0..500)
                .map(|i| (i as f32 * 0.7 + step as f32).sin())
                .collect();
            w.add_histogram("weights/layers.0", step, &values).unwrap();
            w.add_histogram("weights/constant", step, &[0.25; 9])
                .unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);

    let out = run_python(&py, EVENT_ACCUMULATOR, &[&dir]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["file_version"], 2.0);
    let scalars = v["scalars"].as_object().unwrap();
    let mut tags: Vec<&String> = scalars.keys().collect();
    tags.sort();
    assert_eq!(tags, ["test/accuracy", "train/loss"]);
    for t in &tags {
        assert_eq!(scalars[*t].as_array().unwrap().len(), 12, "{t}");
    }
    let got: Vec<(i64, f32)> = scalars["train/loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap() as f32))
        .collect();
    assert_eq!(got, losses);

    let histograms = v["histograms"].as_object().unwrap();
    let mut tags: Vec<&String> = histograms.keys().collect();
    tags.sort();
    assert_eq!(tags, ["weights/constant", "weights/layers.0"]);
    let h = histograms["weights/layers.0"].as_array().unwrap();
    assert_eq!(h.len(), 4);
    for (i, e) in h.iter().enumerate() {
        assert_eq!(e[0].as_i64().unwrap(), 3 * i as i64);
        assert_eq!(e[1].as_f64().unwrap(), 500.0);
        assert_eq!(e[2].as_f64().unwrap(), 500.0);
        assert_eq!(
            e[3].as_u64().unwrap(),
            vnn::tensorboard::HISTOGRAM_BUCKETS as u64
        );
    }
    let c = histograms["weights/constant"].as_array().unwrap();
    assert_eq!(c.len(), 4);
    assert_eq!(c[0], serde_json::json!([0, 9.0, 9.0, 1, 0.25, 0.25]));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A whole `vnn train` run folder read by the reference readers: the event
/// file by `EventAccumulator` (the tags and the number of points of every
/// tag), and `model.safetensors` by `safetensors.numpy`, whose numpy forward
/// pass gives the predictions of `vnn predict`.
#[test]
fn a_vnn_train_run_reads_in_python() {
    let Some(py) = python("a_vnn_train_run_reads_in_python") else {
        return;
    };
    let dir = scratch("run");
    let run = dir.join("run");
    let bin = env!("CARGO_BIN_EXE_vnn");
    let out = Command::new(bin)
        .args([
            "train",
            "--hidden",
            "16,8",
            "--epochs",
            "200",
            "--log-every",
            "25",
            "--test-split",
            "0.25",
        ])
        .args([
            "--standardize",
            "--no-plots",
            "--json",
            "--out",
            run.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Logged at step 1 and every 25 steps up to 200: 9 points per tag.
    let points = 9;
    let v: serde_json::Value =
        serde_json::from_str(&run_python(&py, EVENT_ACCUMULATOR, &[&run])).unwrap();
    assert_eq!(v["file_version"], 2.0);
    let scalars = v["scalars"].as_object().unwrap();
    let mut tags: Vec<&str> = scalars.keys().map(String::as_str).collect();
    tags.sort_unstable();
    let finals = [
        "final/test_accuracy",
        "final/test_loss",
        "final/train_accuracy",
        "final/train_loss",
    ];
    assert_eq!(
        tags,
        [
            "accuracy/test",
            "accuracy/train",
            "final/test_accuracy",
            "final/test_loss",
            "final/train_accuracy",
            "final/train_loss",
            "loss/test",
            "loss/train",
            "lr"
        ]
    );
    // The final metrics: one point, at the last step.
    for tag in finals {
        let series = scalars[tag].as_array().unwrap();
        assert_eq!(series.len(), 1, "{tag}");
        assert_eq!(series[0][0], 200, "{tag}");
    }
    let curves = scalars
        .iter()
        .filter(|(t, _)| !finals.contains(&t.as_str()));
    for (tag, series) in curves {
        let steps: Vec<i64> = series
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[0].as_i64().unwrap())
            .collect();
        assert_eq!(steps.len(), points, "{tag}: {steps:?}");
        assert_eq!(steps[0], 1);
        assert_eq!(steps[points - 1], 200);
    }
    assert!(scalars["lr"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e[1].as_f64() == Some(1.0)));
    let histograms = v["histograms"].as_object().unwrap();
    let mut tags: Vec<&str> = histograms.keys().map(String::as_str).collect();
    tags.sort_unstable();
    let layers = ["layers.0", "layers.1", "layers.2"];
    let expected: Vec<String> = ["biases", "weights"]
        .iter()
        .flat_map(|kind| layers.iter().map(move |l| format!("{kind}/{l}")))
        .collect();
    assert_eq!(tags, expected);
    for (tag, weights) in [
        ("weights/layers.0", 2 * 16),
        ("weights/layers.1", 16 * 8),
        ("weights/layers.2", 8 * 3),
        ("biases/layers.0", 16),
        ("biases/layers.1", 8),
        ("biases/layers.2", 3),
    ] {
        let series = histograms[tag].as_array().unwrap();
        assert_eq!(series.len(), points, "{tag}");
        for e in series {
            // num and the sum of the bucket counts are the weight count.
            assert_eq!(e[1].as_f64().unwrap(), weights as f64, "{tag}");
            assert_eq!(e[2].as_f64().unwrap(), weights as f64, "{tag}");
        }
    }

    // vnn predict on the spiral as CSV against numpy on the same rows.
    let (data, csv_path) = spiral_csv(&dir);
    let rows = data.n_rows();
    let model_path = run.join("model.safetensors");
    let out = Command::new(bin)
        .args([
            "predict",
            "--json",
            "--model",
            model_path.to_str().unwrap(),
            "--data",
            csv_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let p: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let cli: Vec<u32> = serde_json::from_value(p["predictions"].clone()).unwrap();

    let rows_json: Vec<&[f32]> = (0..rows).map(|i| data.row(i)).collect();
    let rows_path = dir.join("rows.json");
    std::fs::write(&rows_path, serde_json::to_string(&rows_json).unwrap()).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&run_python(&py, NUMPY_FORWARD, &[&model_path, &rows_path])).unwrap();
    assert!(
        v["extra"].as_str().unwrap().contains("--hidden 16,8"),
        "{}",
        v["extra"]
    );
    let py_pred: Vec<u32> = serde_json::from_value(v["pred"].clone()).unwrap();
    let margin: Vec<f64> = serde_json::from_value(v["margin"].clone()).unwrap();
    assert_eq!(cli.len(), rows);
    // Class names are "0", "1", "2", so the label values are the indices.
    let differ: Vec<usize> = (0..rows).filter(|&i| py_pred[i] != cli[i]).collect();
    assert!(
        differ.iter().all(|&i| margin[i] < 1e-4),
        "vnn predict and numpy differ on rows {differ:?}"
    );
    assert!(differ.len() <= 1, "{differ:?}");
    let correct = cli
        .iter()
        .zip(data.labels())
        .filter(|(a, b)| a == b)
        .count();
    assert!(correct * 10 > rows * 7, "accuracy {correct}/{rows}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Checks an ONNX file with `onnx.checker` (full check, with shape
/// inference) and runs it with onnxruntime on the rows of a CSV file, whose
/// columns it picks by the feature names in the model's metadata.
const ONNX_RUN: &str = r#"
import csv, json, sys
import numpy as np
import onnx, onnxruntime

onnx_path, csv_path = sys.argv[1], sys.argv[2]
model = onnx.load(onnx_path)
onnx.checker.check_model(model, full_check=True)
meta = {p.key: p.value for p in model.metadata_props}
features = json.loads(meta["feature_names"])
with open(csv_path, newline="") as f:
    rows = list(csv.DictReader(f))
x = np.array([[float(r[name]) for name in features] for r in rows], dtype=np.float32)
session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
inputs = [(i.name, i.type, i.shape) for i in session.get_inputs()]
outputs = [(o.name, o.type, o.shape) for o in session.get_outputs()]
proba, cls = session.run(["probabilities", "class"], {"input": x})
print(json.dumps({
    "opset": [[o.domain, o.version] for o in model.opset_import],
    "producer": model.producer_name,
    "meta": meta,
    "inputs": inputs,
    "outputs": outputs,
    "ops": [n.op_type for n in model.graph.node],
    "probabilities": proba.astype(np.float64).tolist(),
    "class": cls.tolist(),
}))
"#;

/// Runs the `vnn` binary; returns its stdout, failing loudly otherwise.
fn vnn(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vnn"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vnn {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Trains with `train_args` into `dir/run`, exports the model with
/// `vnn export`, runs it with onnxruntime on `csv` and checks it against
/// `vnn predict --proba` on the same rows: the probabilities within 1e-5,
/// the classes equal except where two probabilities tie within 1e-5.
/// Returns the ops of the graph.
fn onnxruntime_matches_predict(
    py: &Path,
    dir: &Path,
    train_args: &[&str],
    csv: &Path,
) -> Vec<String> {
    let run = dir.join("run");
    let run_arg = run.to_str().unwrap();
    let mut args = vec!["train", "--no-plots", "--json", "--out", run_arg];
    args.extend_from_slice(train_args);
    vnn(&args);
    let model = run.join("model.safetensors");
    let onnx = dir.join("model.onnx");
    let (model_arg, onnx_arg) = (model.to_str().unwrap(), onnx.to_str().unwrap());
    vnn(&[
        "export", "--model", model_arg, "--format", "onnx", "--out", onnx_arg,
    ]);
    let csv_arg = csv.to_str().unwrap();
    let predicted = vnn(&[
        "predict", "--json", "--proba", "--model", model_arg, "--data", csv_arg,
    ]);
    let p: serde_json::Value = serde_json::from_str(predicted.lines().last().unwrap()).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&run_python(py, ONNX_RUN, &[&onnx, csv])).unwrap();

    assert_eq!(v["opset"], serde_json::json!([["", vnn::onnx::OPSET]]));
    assert_eq!(v["producer"], "vnn");
    assert_eq!(v["meta"]["vnn_version"], env!("CARGO_PKG_VERSION"));
    let loaded = Model::load(&model).unwrap();
    let (d, k) = (loaded.n_features(), loaded.n_classes());
    let names = |s: &serde_json::Value| -> Vec<String> {
        serde_json::from_str(s.as_str().unwrap()).unwrap()
    };
    assert_eq!(names(&v["meta"]["feature_names"]), loaded.feature_names());
    assert_eq!(names(&v["meta"]["class_names"]), loaded.class_names());
    assert_eq!(
        v["inputs"],
        serde_json::json!([["input", "tensor(float)", ["N", d]]])
    );
    assert_eq!(
        v["outputs"],
        serde_json::json!([
            ["probabilities", "tensor(float)", ["N", k]],
            ["class", "tensor(int64)", ["N"]]
        ])
    );

    let ours: Vec<Vec<f64>> = serde_json::from_value(p["probabilities"].clone()).unwrap();
    let theirs: Vec<Vec<f64>> = serde_json::from_value(v["probabilities"].clone()).unwrap();
    assert_eq!(ours.len(), theirs.len());
    let mut worst = 0f64;
    for (r, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a.len(), k);
        for (c, (&x, &y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5,
                "row {r} class {c}: vnn {x}, onnxruntime {y}"
            );
            worst = worst.max((x - y).abs());
        }
    }
    // `vnn predict` prints class names; onnxruntime gives class indices.
    let classes: Vec<usize> = serde_json::from_value(v["class"].clone()).unwrap();
    let predictions = p["predictions"].as_array().unwrap();
    let mut ties = 0;
    for (r, (&c, name)) in classes.iter().zip(predictions).enumerate() {
        let name = name
            .as_str()
            .map_or_else(|| name.to_string(), str::to_string);
        if loaded.class_names()[c] != name {
            let ours = loaded
                .class_names()
                .iter()
                .position(|n| *n == name)
                .unwrap();
            let row = &theirs[r];
            assert!(
                (row[c] - row[ours]).abs() <= 1e-5,
                "row {r}: vnn {name}, onnxruntime {c}"
            );
            ties += 1;
        }
    }
    assert!(ties <= 1, "{ties} rows differ in class");
    eprintln!(
        "onnxruntime: {} rows, largest probability difference {worst:e}, {ties} near-ties",
        ours.len()
    );
    serde_json::from_value(v["ops"].clone()).unwrap()
}

/// The `vnn train` arguments of a standardized digits MLP (Adam, 50 epochs,
/// one hidden layer of 32) trained on the CSV file `digits`.
fn digits_train_args(digits: &str) -> [&str; 11] {
    [
        "--data",
        digits,
        "--standardize",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "50",
        "--hidden",
        "32",
    ]
}

/// A standardized digits MLP (64 features, 10 constant columns among them):
/// `vnn export` gives a graph that `onnx.checker` accepts and that
/// onnxruntime runs to the probabilities and classes of `vnn predict`.
#[test]
fn onnx_export_of_a_standardized_digits_model_runs_in_onnxruntime() {
    let Some(py) = python("onnx_export_of_a_standardized_digits_model_runs_in_onnxruntime") else {
        return;
    };
    let dir = scratch("onnx-digits");
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/digits.csv");
    let train = digits_train_args(digits.to_str().unwrap());
    let ops = onnxruntime_matches_predict(&py, &dir, &train, &digits);
    assert_eq!(
        ops,
        ["Sub", "Div", "Gemm", "Relu", "Gemm", "Softmax", "ArgMax"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The spiral MLP with two hidden layers and no standardization, through
/// `vnn export` and onnxruntime, against `vnn predict`.
#[test]
fn onnx_export_of_the_spiral_model_runs_in_onnxruntime() {
    let Some(py) = python("onnx_export_of_the_spiral_model_runs_in_onnxruntime") else {
        return;
    };
    let dir = scratch("onnx-spiral");
    let (_, csv_path) = spiral_csv(&dir);
    let train = ["--hidden", "16,8", "--epochs", "300"];
    let ops = onnxruntime_matches_predict(&py, &dir, &train, &csv_path);
    assert_eq!(
        ops,
        ["Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax", "ArgMax"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs the README's numpy loader, `examples/load_numpy.py` itself, on the
/// rows of a CSV file, whose columns it picks by the model's feature names.
const LOAD_NUMPY_RUN: &str = r#"
import csv, json, runpy, sys
import numpy as np

loader_path, model_path, csv_path = sys.argv[1], sys.argv[2], sys.argv[3]
predict, features = runpy.run_path(loader_path)["load_vnn"](model_path)
with open(csv_path, newline="") as f:
    rows = list(csv.DictReader(f))
proba, classes = predict([[float(r[name]) for name in features] for r in rows])
assert proba.dtype == np.float32, proba.dtype
print(json.dumps({
    "probabilities": proba.astype(np.float64).tolist(),
    "classes": classes.tolist(),
}))
"#;

/// Trains with `train_args` into `dir/run`, then checks the numpy loader on
/// `csv` against `vnn predict --proba` on the same rows: the probabilities
/// within 1e-5 and the classes equal.
fn numpy_loader_matches_predict(py: &Path, dir: &Path, train_args: &[&str], csv: &Path) {
    let run = dir.join("run");
    let mut args = vec![
        "train",
        "--no-plots",
        "--json",
        "--out",
        run.to_str().unwrap(),
    ];
    args.extend_from_slice(train_args);
    vnn(&args);
    let model = run.join("model.safetensors");
    let (model_arg, csv_arg) = (model.to_str().unwrap(), csv.to_str().unwrap());
    let predicted = vnn(&[
        "predict", "--json", "--proba", "--model", model_arg, "--data", csv_arg,
    ]);
    let p: serde_json::Value = serde_json::from_str(predicted.lines().last().unwrap()).unwrap();
    let loader = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/load_numpy.py");
    let v: serde_json::Value =
        serde_json::from_str(&run_python(py, LOAD_NUMPY_RUN, &[&loader, &model, csv])).unwrap();

    let ours: Vec<Vec<f64>> = serde_json::from_value(p["probabilities"].clone()).unwrap();
    let theirs: Vec<Vec<f64>> = serde_json::from_value(v["probabilities"].clone()).unwrap();
    assert_eq!(ours.len(), theirs.len());
    let mut worst = 0f64;
    for (r, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a.len(), b.len(), "row {r}");
        for (c, (&x, &y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5,
                "row {r} class {c}: vnn {x}, numpy {y}"
            );
            worst = worst.max((x - y).abs());
        }
    }
    // Both give class names; `vnn predict` may print a numeric one bare.
    let name = |n: &serde_json::Value| n.as_str().map_or_else(|| n.to_string(), str::to_string);
    let cli: Vec<String> = p["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(name)
        .collect();
    let numpy: Vec<String> = v["classes"].as_array().unwrap().iter().map(name).collect();
    assert_eq!(cli, numpy);
    eprintln!(
        "numpy loader: {} rows, largest probability difference {worst:e}",
        ours.len()
    );
}

/// The README's numpy loader, run from its file, gives the probabilities and
/// classes of `vnn predict` for a standardized digits model and for a spiral
/// model with two hidden layers; the README quotes the file verbatim.
#[test]
fn readme_numpy_loader_matches_predict() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let loader = std::fs::read_to_string(root.join("examples/load_numpy.py")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```python\n{loader}```\n")),
        "README.md must quote examples/load_numpy.py verbatim in a python block"
    );
    let Some(py) = python("readme_numpy_loader_matches_predict") else {
        return;
    };
    let dir = scratch("load-numpy-digits");
    let digits = root.join("tests/data/digits.csv");
    let train = digits_train_args(digits.to_str().unwrap());
    numpy_loader_matches_predict(&py, &dir, &train, &digits);
    std::fs::remove_dir_all(&dir).unwrap();

    let dir = scratch("load-numpy-spiral");
    let (_, csv_path) = spiral_csv(&dir);
    let train = ["--hidden", "16,8", "--epochs", "300"];
    numpy_loader_matches_predict(&py, &dir, &train, &csv_path);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// scikit-learn's `precision_recall_fscore_support` (per class, macro and
/// weighted, over the classes given, zero division 0) of the labels and
/// predictions in a JSON file `{"labels": [...], "pred": [...], "classes": [...]}`.
const SKLEARN_SCORES: &str = r#"
import json, sys
from sklearn.metrics import precision_recall_fscore_support
d = json.load(open(sys.argv[1]))
out = {}
for average in [None, "macro", "weighted"]:
    p, r, f, s = precision_recall_fscore_support(
        d["labels"], d["pred"], labels=d["classes"], average=average, zero_division=0)
    if average is None:
        out["per_class"] = [{"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                             "support": int(s[i])} for i in range(len(d["classes"]))]
    else:
        out[average] = [float(p), float(r), float(f)]
print(json.dumps(out))
"#;

/// Rows of the spiral of `seed` of the classes `keep` as CSV, the classes
/// named `arm a`, `arm b`, `arm c`; gives the text and the row labels.
fn arms_csv(seed: u64, keep: &[u32]) -> (String, Vec<String>) {
    let d = spiral(40, 3, seed);
    let mut csv = String::from("x0,x1,arm\n");
    let mut labels = Vec::new();
    for i in (0..d.n_rows()).filter(|&i| keep.contains(&d.labels()[i])) {
        let row = d.row(i);
        let arm = format!("arm {}", ["a", "b", "c"][d.labels()[i] as usize]);
        csv.push_str(&format!("{},{},{arm}\n", row[0], row[1]));
        labels.push(arm);
    }
    (csv, labels)
}

/// `vnn eval --json` of a weak spiral model on rows of two of its three
/// classes (the third has no support) gives scikit-learn's precision,
/// recall, F1 and support per class and their macro and weighted averages,
/// within 1e-6.
#[test]
fn eval_report_matches_scikit_learn() {
    let Some(py) = python("eval_report_matches_scikit_learn") else {
        return;
    };
    let dir = scratch("report");
    let (train_csv, _) = arms_csv(0, &[0, 1, 2]);
    let train_path = dir.join("train.csv");
    std::fs::write(&train_path, train_csv).unwrap();
    let run = dir.join("run");
    let (train, run_s) = (train_path.to_str().unwrap(), run.to_str().unwrap());
    vnn(
        &["train", "--data", train, "--hidden", "8", "--epochs", "40"]
            .into_iter()
            .chain(["--lr", "0.3", "--no-plots", "--out", run_s])
            .collect::<Vec<_>>(),
    );
    let (eval_csv, labels) = arms_csv(7, &[0, 1]);
    let eval_path = dir.join("eval.csv");
    std::fs::write(&eval_path, eval_csv).unwrap();
    let model = run.join("model.safetensors");
    let (model, data) = (model.to_str().unwrap(), eval_path.to_str().unwrap());
    let last = |out: String| -> serde_json::Value {
        serde_json::from_str(out.lines().last().unwrap()).unwrap()
    };
    let pred = last(vnn(&[
        "predict", "--json", "--model", model, "--data", data,
    ]));
    let report = last(vnn(&["eval", "--json", "--model", model, "--data", data]));
    let classes = ["arm a", "arm b", "arm c"];
    let input =
        serde_json::json!({"labels": labels, "pred": pred["predictions"], "classes": classes});
    let input_path = dir.join("scores.json");
    std::fs::write(&input_path, input.to_string()).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&run_python(&py, SKLEARN_SCORES, &[&input_path])).unwrap();

    let close = |got: &serde_json::Value, want: &serde_json::Value, what: &str| {
        let (g, w) = (got.as_f64().unwrap(), want.as_f64().unwrap());
        assert!((g - w).abs() <= 1e-6, "{what}: vnn {g}, scikit-learn {w}");
    };
    let per_class = report["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 3);
    for (i, (got, want)) in per_class
        .iter()
        .zip(want["per_class"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(got["class"], classes[i]);
        assert_eq!(got["support"], want["support"], "{}", classes[i]);
        for key in ["precision", "recall", "f1"] {
            close(&got[key], &want[key], &format!("{} {key}", classes[i]));
        }
    }
    assert_eq!(per_class[2]["support"], 0);
    for (average, keys) in [
        ("macro", ["macro_precision", "macro_recall", "macro_f1"]),
        (
            "weighted",
            ["weighted_precision", "weighted_recall", "weighted_f1"],
        ),
    ] {
        for (key, want) in keys.iter().zip(want[average].as_array().unwrap()) {
            close(&report[*key], want, key);
        }
    }
    // A weak model: the report is not all ones.
    assert!(report["macro_f1"].as_f64().unwrap() < 0.99, "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Reads the run folders under a log folder as TensorBoard's HParams
/// dashboard does (its own backend: the experiment and the session groups
/// with their hparams and metric values), every hparams plugin summary
/// parsed with the plugin's protobuf classes (by run folder and tag), and
/// the histogram tags of each run.
const HPARAMS_READ: &str = r#"
import glob, json, os, sys
from google.protobuf import json_format
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups
from tensorboard.plugins.hparams import metadata, plugin_data_pb2

logdir = sys.argv[1]
summaries, histograms = {}, {}
for path in sorted(glob.glob(logdir + "/**/events.out.tfevents.*", recursive=True)):
    run = os.path.relpath(os.path.dirname(path), logdir)
    for event in EventFileLoader(path).Load():
        for value in event.summary.value:
            plugin = value.metadata.plugin_data
            if plugin.plugin_name != metadata.PLUGIN_NAME:
                continue
            data = plugin_data_pb2.HParamsPluginData.FromString(plugin.content)
            assert data.version == metadata.PLUGIN_DATA_VERSION, data
            summaries.setdefault(run, {})[value.tag] = json_format.MessageToDict(data)
    ea = EventAccumulator(os.path.dirname(path))
    ea.Reload()
    histograms[run] = sorted(ea.Tags()["histograms"])

mux = plugin_event_multiplexer.EventMultiplexer()
mux.AddRunsFromDirectory(logdir)
mux.Reload()
provider = data_provider.MultiplexerDataProvider(mux, logdir)
tb = base_plugin.TBContext(logdir=logdir, multiplexer=mux, data_provider=provider)
ctx, backend = context.RequestContext(), backend_context.Context(tb)
experiment = backend.experiment_from_metadata(ctx, "", True, backend.hparams_metadata(ctx, ""), [])
request = api_pb2.ListSessionGroupsRequest(
    start_index=0, slice_size=100, allowed_statuses=[api_pb2.STATUS_SUCCESS])
response = list_session_groups.Handler(ctx, backend, "", request).run()
print(json.dumps({
    "summaries": summaries,
    "histograms": histograms,
    "experiment": json_format.MessageToDict(experiment),
    "groups": {g.name: {
        "hparams": {k: json_format.MessageToDict(v) for k, v in g.hparams.items()},
        "metrics": {m.name.tag: m.value for m in g.metric_values},
        "status": [api_pb2.Status.Name(s.status) for s in g.sessions],
    } for g in response.session_groups},
}))
"#;

/// The names of the JSON list `list` of objects, by `key` (a `/`-separated
/// path of object keys).
fn names_in<'a>(list: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    let name = |mut v: &'a serde_json::Value| {
        for k in key.split('/') {
            v = &v[k];
        }
        v.as_str().unwrap()
    };
    list.as_array().unwrap().iter().map(name).collect()
}

/// Two `vnn train` runs with different settings in one log folder, as
/// TensorBoard's HParams dashboard shows them (its own backend): each is
/// a session with its settings as hparams and its final metrics (those of
/// `--json`) among its metric values, and the experiment has the hparams
/// and metrics of both. Each event file has the session start and end
/// summaries of the hparams plugin and the weight and bias histograms.
#[test]
fn tensorboard_reads_the_hparams_and_histograms_of_runs() {
    let Some(py) = python("tensorboard_reads_the_hparams_and_histograms_of_runs") else {
        return;
    };
    let dir = scratch("hparams");
    let train = |run: &str, options: &[&str]| -> serde_json::Value {
        let out = dir.join("logs").join(run);
        let mut args = vec![
            "train",
            "--hidden",
            "8",
            "--epochs",
            "30",
            "--log-every",
            "10",
        ];
        args.extend([
            "--standardize",
            "--no-plots",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ]);
        args.extend(options);
        serde_json::from_str(vnn(&args).lines().last().unwrap()).unwrap()
    };
    let a = train(
        "a",
        &["--optimizer", "adam", "--lr", "0.01", "--test-split", "0.2"],
    );
    let b = train(
        "b",
        &[
            "--optimizer",
            "momentum",
            "--lr",
            "0.1",
            "--momentum",
            "0.5",
        ],
    );
    let logs = dir.join("logs");
    let v: serde_json::Value =
        serde_json::from_str(&run_python(&py, HPARAMS_READ, &[&logs])).unwrap();
    for run in ["a", "b"] {
        let summaries = v["summaries"][run].as_object().unwrap();
        let mut tags: Vec<&str> = summaries.keys().map(String::as_str).collect();
        tags.sort_unstable();
        assert_eq!(
            tags,
            ["_hparams_/session_end_info", "_hparams_/session_start_info"]
        );
        let end = &summaries["_hparams_/session_end_info"]["sessionEndInfo"];
        assert_eq!(end["status"], "STATUS_SUCCESS");
        let histograms = &v["histograms"][run];
        let expected = [
            "biases/layers.0",
            "biases/layers.1",
            "weights/layers.0",
            "weights/layers.1",
        ];
        assert_eq!(*histograms, serde_json::json!(expected));
    }

    // The experiment TensorBoard makes from both sessions.
    let experiment = &v["experiment"];
    let names = names_in(&experiment["hparamInfos"], "name");
    for name in [
        "lr",
        "optimizer",
        "momentum",
        "test_split",
        "standardize",
        "epochs",
        "sizes",
    ] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    let metrics = names_in(&experiment["metricInfos"], "name/tag");
    let finals = [
        "final/train_loss",
        "final/train_accuracy",
        "final/test_loss",
        "final/test_accuracy",
    ];
    for tag in finals {
        assert!(metrics.contains(&tag), "{tag} not in {metrics:?}");
    }

    // Each session with its own values and metrics.
    let groups = v["groups"].as_object().unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    for (run, summary, lr, optimizer) in [("a", &a, 0.01, "adam"), ("b", &b, 0.1, "momentum")] {
        let g = &groups[run];
        assert_eq!(g["status"], serde_json::json!(["STATUS_SUCCESS"]));
        let values = &g["hparams"];
        assert_eq!(
            (&values["lr"], &values["optimizer"]),
            (&lr.into(), &optimizer.into())
        );
        assert_eq!(
            (&values["standardize"], &values["epochs"]),
            (&true.into(), &30.0.into())
        );
        assert_eq!(values["sizes"], "[2,8,3]");
        let metric_values = g["metrics"].as_object().unwrap();
        let has_test = run == "a";
        assert_eq!(
            metric_values.contains_key("final/test_loss"),
            has_test,
            "{run}: {g}"
        );
        for set in ["train", "test"].into_iter().take(1 + has_test as usize) {
            let got = metric_values[&format!("final/{set}_accuracy")]
                .as_f64()
                .unwrap();
            let want = summary[format!("{set}_accuracy")].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-6,
                "{run} {set}: {got} against --json {want}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An experiment summary written once into a log folder's own event file
/// ([`vnn::tensorboard::EventWriter::add_hparams_experiment`]) is the
/// experiment TensorBoard's HParams dashboard uses: its hparams with their
/// types and its metrics, for the sessions of the runs below it.
#[test]
fn tensorboard_uses_an_experiment_summary_written_once() {
    let Some(py) = python("tensorboard_uses_an_experiment_summary_written_once") else {
        return;
    };
    let dir = scratch("experiment");
    let hparams =
        serde_json::json!({"lr": 0.5, "optimizer": "sgd", "standardize": false, "sizes": [2, 3]});
    let mut root = vnn::tensorboard::EventWriter::create(&dir).unwrap();
    root.add_hparams_experiment(0, &hparams, &["final/train_loss", "loss"])
        .unwrap();
    root.flush().unwrap();
    let mut run = vnn::tensorboard::EventWriter::create(dir.join("run")).unwrap();
    run.add_scalar("loss", 3, 0.75).unwrap();
    run.add_scalar("final/train_loss", 3, 0.5).unwrap();
    run.add_hparams_session(3, &hparams, 1.0).unwrap();
    run.flush().unwrap();
    drop((root, run));
    let v: serde_json::Value =
        serde_json::from_str(&run_python(&py, HPARAMS_READ, &[&dir])).unwrap();
    let experiment = &v["experiment"];
    let types: BTreeMap<&str, &str> = experiment["hparamInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].as_str().unwrap(), h["type"].as_str().unwrap()))
        .collect();
    let expected = [
        ("lr", "DATA_TYPE_FLOAT64"),
        ("optimizer", "DATA_TYPE_STRING"),
        ("sizes", "DATA_TYPE_STRING"),
        ("standardize", "DATA_TYPE_BOOL"),
    ];
    assert_eq!(types, BTreeMap::from(expected));
    assert_eq!(
        names_in(&experiment["metricInfos"], "name/tag"),
        ["final/train_loss", "loss"]
    );
    let g = &v["groups"]["run"];
    assert_eq!(
        g["metrics"],
        serde_json::json!({"final/train_loss": 0.5, "loss": 0.75})
    );
    assert_eq!(g["hparams"]["sizes"], "[2,3]");
    assert_eq!(g["hparams"]["standardize"], false);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every hidden activation, in a spiral MLP of two hidden layers: the
/// numpy loader (which reads the `activation` entry) and onnxruntime on the
/// exported graph (`Relu`, `Tanh`, `Sigmoid` or `LeakyRelu` after each
/// hidden layer) give the probabilities of `vnn predict` within 1e-5 and
/// its classes.
#[test]
fn every_activation_matches_in_numpy_and_onnxruntime() {
    let Some(py) = python("every_activation_matches_in_numpy_and_onnxruntime") else {
        return;
    };
    let ops = [
        (Activation::Relu, "Relu"),
        (Activation::Tanh, "Tanh"),
        (Activation::Sigmoid, "Sigmoid"),
        (Activation::LeakyRelu, "LeakyRelu"),
    ];
    for (act, op) in ops {
        let dir = scratch(&format!("act-{act}"));
        let (_, csv_path) = spiral_csv(&dir);
        let train = [
            "--hidden",
            "16,8",
            "--epochs",
            "300",
            "--activation",
            act.name(),
        ];
        numpy_loader_matches_predict(&py, &dir, &train, &csv_path);
        let model = Model::load(dir.join("run/model.safetensors")).unwrap();
        assert_eq!(model.activation(), act);
        std::fs::remove_dir_all(dir.join("run")).unwrap();
        let graph = onnxruntime_matches_predict(&py, &dir, &train, &csv_path);
        assert_eq!(
            graph,
            ["Gemm", op, "Gemm", op, "Gemm", "Softmax", "ArgMax"],
            "{act}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

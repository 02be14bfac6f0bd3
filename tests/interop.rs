//! Interoperability with the reference Python readers: `safetensors` +
//! `numpy` read vnn model files and predict the same classes, and
//! TensorBoard's `EventAccumulator` reads vnn event files, and `onnx` and
//! `onnxruntime` check and run the graphs of `vnn export`.
//!
//! These tests need a Python with `safetensors`, `numpy`, `tensorboard`,
//! `onnx` and `onnxruntime` installed, named by the `VNN_PYTHON` environment variable
//! (`.ci/python-env.sh` creates one and prints its path). Without it they
//! print a `SKIPPED` line and pass.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use vnn::data::{spiral, Standardizer};
use vnn::model::{Init, Model};
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
                 tensorboard, onnx and onnxruntime (create one with: export VNN_PYTHON=$(bash .ci/python-env.sh))"
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
    assert_eq!(
        tags,
        [
            "accuracy/test",
            "accuracy/train",
            "loss/test",
            "loss/train",
            "lr"
        ]
    );
    for (tag, series) in scalars {
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
    assert_eq!(
        tags,
        ["weights/layers.0", "weights/layers.1", "weights/layers.2"]
    );
    for (tag, weights) in [
        ("weights/layers.0", 2 * 16),
        ("weights/layers.1", 16 * 8),
        ("weights/layers.2", 8 * 3),
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

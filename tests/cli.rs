//! The `vnn` command line end to end: train, predict and eval with `--json`
//! on the built-in spiral and on the digits CSV, files of a run folder, and
//! the shape of errors.

use serde_json::Value;
use std::path::{Path, PathBuf};

#[path = "support/cli.rs"]
mod cli_support;
use cli_support::{last_json, scratch, vnn};

fn tmp(name: &str) -> PathBuf {
    scratch("cli", name)
}

/// Writes the spiral of `seed` as CSV with the columns x0, x1, label.
fn spiral_csv(path: &Path, seed: u64) -> vnn::data::Dataset {
    let d = vnn::data::spiral(100, 3, seed);
    let mut s = String::from("x0,x1,label\n");
    for r in 0..d.n_rows() {
        let row = d.row(r);
        s.push_str(&format!("{},{},{}\n", row[0], row[1], d.labels()[r]));
    }
    std::fs::write(path, s).unwrap();
    d
}

/// `vnn predict --json` of the model file `model` on the CSV file `csv`
/// (holding `data`, integer labels): the predicted labels, checked equal
/// to the library's predictions of the loaded model.
fn predict_matches_library(model: &Path, csv: &Path, data: &vnn::data::Dataset) -> Vec<i64> {
    let p = last_json(&vnn(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--json",
    ]));
    let preds: Vec<i64> = serde_json::from_value(p["predictions"].clone()).unwrap();
    let loaded = vnn::model::Model::load(model).unwrap();
    let lib: Vec<i64> = loaded
        .predict(data.features(), data.n_rows())
        .unwrap()
        .into_iter()
        .map(i64::from)
        .collect();
    assert_eq!(preds, lib);
    preds
}

#[test]
fn train_predict_eval_on_the_spiral() {
    let dir = tmp("spiral");
    let run = dir.join("run");
    let out = vnn(&[
        "train",
        "--epochs",
        "3000",
        "--out",
        run.to_str().unwrap(),
        "--json",
        "--threads",
        "2",
    ]);
    let j = last_json(&out);
    // The seed's MLP reaches about 0.98 on the spiral; 3000 steps are enough for > 0.95.
    let acc = j["train_accuracy"].as_f64().unwrap();
    assert!(acc > 0.95, "train accuracy {acc}");
    assert!(j["test_accuracy"].is_null());
    assert_eq!(j["epochs"], 3000);
    assert!(j["final_loss"].as_f64().unwrap() < 0.5);
    assert!(j["seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(j["out"].as_str().unwrap(), run.to_str().unwrap());
    for f in [
        "model.safetensors",
        "curves.png",
        "boundary.png",
        "metrics.json",
    ] {
        let len = std::fs::metadata(run.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{f} missing or empty");
    }
    let events: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("tfevents"))
        .collect();
    assert_eq!(events.len(), 1, "one TensorBoard event file");
    let metrics: Value =
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["summary"]["train_accuracy"], j["train_accuracy"]);
    // Human-readable output went to stderr: stdout holds only the JSON line.
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("EPOCH 0: Training loss"));

    // The same data as CSV: eval reproduces the training accuracy exactly.
    let csv = dir.join("spiral.csv");
    let data = spiral_csv(&csv, 0);
    let model = run.join("model.safetensors");
    let e = last_json(&vnn(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(e["n"], 300);
    assert_eq!(e["accuracy"].as_f64().unwrap(), acc);
    let confusion: Vec<Vec<u64>> = serde_json::from_value(e["confusion"].clone()).unwrap();
    assert_eq!(confusion.len(), 3);
    assert_eq!(confusion.iter().flatten().sum::<u64>(), 300);
    let diag: u64 = (0..3).map(|i| confusion[i][i]).sum();
    assert_eq!(diag, (acc * 300.0).round() as u64);
    // The report's recall and precision are the diagonal over the row and
    // the column sums; F1 their harmonic mean.
    let per_class = e["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 3);
    let mut macro_f1 = 0.0;
    for (c, scores) in per_class.iter().enumerate() {
        let support: u64 = confusion[c].iter().sum();
        let predicted: u64 = confusion.iter().map(|row| row[c]).sum();
        let (tp, support_f, predicted_f) =
            (confusion[c][c] as f64, support as f64, predicted as f64);
        let (p, r) = (tp / predicted_f, tp / support_f);
        assert_eq!(
            (scores["class"].as_i64(), scores["support"].as_u64()),
            (Some(c as i64), Some(support))
        );
        assert!(
            (scores["precision"].as_f64().unwrap() - p).abs() < 1e-12,
            "{scores}"
        );
        assert!(
            (scores["recall"].as_f64().unwrap() - r).abs() < 1e-12,
            "{scores}"
        );
        let f1 = 2.0 * p * r / (p + r);
        assert!(
            (scores["f1"].as_f64().unwrap() - f1).abs() < 1e-12,
            "{scores}"
        );
        macro_f1 += f1 / 3.0;
    }
    assert!(
        (e["macro_f1"].as_f64().unwrap() - macro_f1).abs() < 1e-12,
        "{e}"
    );
    // The human form: the report with the class names, then the matrix.
    let out = vnn(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[3], "classification report:", "{text}");
    assert_eq!(
        lines[4].split_whitespace().collect::<Vec<_>>(),
        ["precision", "recall", "f1-score", "support"]
    );
    for (i, name) in ["0", "1", "2", "macro avg", "weighted avg"]
        .iter()
        .enumerate()
    {
        assert!(lines[5 + i].trim_start().starts_with(name), "{text}");
        assert!(lines[5 + i].ends_with(" 300") || i < 3, "{text}");
    }
    assert!(lines[10].starts_with("confusion matrix"), "{text}");

    // predict --json: one label per row, the original label values, agreeing
    // with the library's predictions of the loaded model.
    let preds = predict_matches_library(&model, &csv, &data);
    assert_eq!(preds.len(), 300);

    // predict without --json: CSV with a header, and --proba adds one column per class.
    let out = vnn(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--proba",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("prediction,p_0,p_1,p_2"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 300);
    for (row, &expected) in rows.iter().zip(&preds) {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[0].parse::<i64>().unwrap(), expected);
        let probs: Vec<f64> = fields[1..].iter().map(|f| f.parse().unwrap()).collect();
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn digits_with_split_and_standardization() {
    let dir = tmp("digits");
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/digits.csv");
    let run = dir.join("run");
    let j = last_json(&vnn(&[
        "train",
        "--data",
        digits.to_str().unwrap(),
        "--test-split",
        "0.2",
        "--standardize",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "300",
        "--out",
        run.to_str().unwrap(),
        "--json",
    ]));
    // Full-batch Adam on 64-100-10 reaches about 0.98 on held-out digits.
    let test = j["test_accuracy"].as_f64().unwrap();
    assert!(test > 0.95, "test accuracy {test}");
    assert!(j["train_accuracy"].as_f64().unwrap() > test - 0.01);
    // 64 features: no boundary picture.
    assert!(run.join("curves.png").exists());
    assert!(!run.join("boundary.png").exists());
    let model = run.join("model.safetensors");
    let e = last_json(&vnn(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        digits.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(e["n"], 1797);
    assert!(e["accuracy"].as_f64().unwrap() > 0.95);
    let p = last_json(&vnn(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        digits.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(p["predictions"].as_array().unwrap().len(), 1797);
    assert!(p["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| (0..10).contains(&v.as_i64().unwrap())));
}

#[test]
fn string_labels_come_back_as_strings() {
    let dir = tmp("strings");
    let csv = dir.join("flowers.csv");
    let d = vnn::data::spiral(30, 2, 4);
    let names = ["setosa", "virginica"];
    let mut s = String::from("a,species,b\n");
    for r in 0..d.n_rows() {
        let row = d.row(r);
        s.push_str(&format!(
            "{},\"{}\",{}\n",
            row[0],
            names[d.labels()[r] as usize],
            row[1]
        ));
    }
    std::fs::write(&csv, s).unwrap();
    let run = dir.join("run");
    let j = last_json(&vnn(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--label",
        "species",
        "--epochs",
        "500",
        "--out",
        run.to_str().unwrap(),
        "--json",
    ]));
    assert!(j["train_accuracy"].as_f64().unwrap() > 0.8);
    let model = run.join("model.safetensors");
    let p = last_json(&vnn(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--json",
    ]));
    let preds: Vec<String> = serde_json::from_value(p["predictions"].clone()).unwrap();
    assert_eq!(preds.len(), 60);
    assert!(preds.iter().all(|v| names.contains(&v.as_str())));
    // eval finds the label column by the name stored in the model.
    let e = last_json(&vnn(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(e["accuracy"], j["train_accuracy"]);
}

#[test]
fn version_and_help_show_the_contract() {
    let out = vnn(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("vnn {}", env!("CARGO_PKG_VERSION"))
    );
    let out = vnn(&["train", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for default in [
        "[default: mlp]",
        "[default: 100]",
        "[default: sgd for the spiral, adam for CSV data]",
        "[default: 1 for the spiral, 0.001 for CSV data]",
        "[default: 10000 for the spiral, 200 for CSV data]",
        "[default: he for the spiral, glorot for CSV data]",
        "[default: 0]",
    ] {
        assert!(help.contains(default), "help lacks {default}:\n{help}");
    }
}

#[test]
fn errors_are_one_clear_line_and_a_failure_exit() {
    let dir = tmp("errors");
    let missing = dir.join("nope.csv");
    let out = vnn(&[
        "train",
        "--data",
        missing.to_str().unwrap(),
        "--out",
        dir.join("r").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("nope.csv"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"));

    // Negative numbers are values, not flags.
    for lr in [["--lr=-1"].as_slice(), &["--lr", "-1"]] {
        let out = vnn(&[&["train", "--epochs", "1"], lr].concat());
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim_end(),
            "error: invalid setting: learning rate must be a positive number, got -1"
        );
    }
    let out = vnn(&[
        "train",
        "--epochs",
        "0",
        "--out",
        dir.join("zero").to_str().unwrap(),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "error: --epochs must be at least 1"
    );
    assert!(
        !dir.join("zero").exists(),
        "nothing is written for a refused run"
    );

    // Options the other settings make meaningless are refused, not ignored.
    for (args, msg) in [
        (
            &["--model", "linear", "--hidden", "64"][..],
            "error: --hidden does not apply here: --model linear has no hidden layers",
        ),
        (
            &["--momentum", "0.5"],
            "error: --momentum does not apply here: it applies to --optimizer momentum only",
        ),
        (
            &["--label", "y"],
            "error: --label does not apply here: the built-in spiral has no CSV columns",
        ),
    ] {
        let out = vnn(&[
            &[
                "train",
                "--epochs",
                "1",
                "--out",
                dir.join("refused").to_str().unwrap(),
            ],
            args,
        ]
        .concat());
        assert!(!out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), msg);
        assert!(!dir.join("refused").exists());
    }

    // A model whose feature columns are absent from the data names the column.
    let run = dir.join("run");
    last_json(&vnn(&[
        "train",
        "--epochs",
        "10",
        "--out",
        run.to_str().unwrap(),
        "--json",
        "--no-plots",
    ]));
    let csv = dir.join("other.csv");
    std::fs::write(&csv, "x0,y,label\n1,2,0\n").unwrap();
    let out = vnn(&[
        "predict",
        "--model",
        run.join("model.safetensors").to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x1"), "{err}");
    assert!(!err.contains("panicked"));
}

/// `vnn export` writes the ONNX graph of a trained model (the default
/// format), and overwrites an earlier export atomically.
#[test]
fn export_writes_an_onnx_graph() {
    use prost::Message;
    let dir = tmp("export");
    let run = dir.join("run");
    let run_arg = run.to_str().unwrap();
    let args = ["train", "--hidden", "8", "--epochs", "5", "--standardize"];
    last_json(&vnn(&[
        &args[..],
        &["--no-plots", "--json", "--out", run_arg],
    ]
    .concat()));
    let model = run.join("model.safetensors");
    let onnx = dir.join("model.onnx");
    std::fs::write(&onnx, b"an older file").unwrap();
    let out = vnn(&[
        "export",
        "--model",
        model.to_str().unwrap(),
        "--out",
        onnx.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.trim_end(), format!("wrote {}", onnx.display()));
    let bytes = std::fs::read(&onnx).unwrap();
    let loaded = vnn::model::Model::load(&model).unwrap();
    assert_eq!(bytes, vnn::onnx::to_onnx_bytes(&loaded).unwrap());
    let graph = vnn::onnx::proto::ModelProto::decode(&bytes[..])
        .unwrap()
        .graph
        .unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(
        ops,
        ["Sub", "Div", "Gemm", "Relu", "Gemm", "Softmax", "ArgMax"]
    );
    assert!(!dir.join(".model.onnx.tmp").exists());
}

/// `vnn train --activation tanh`: the model file and `metrics.json` name
/// the activation, `vnn predict` on that model gives the library's
/// predictions, and the option is refused where it cannot apply (a linear
/// model, a resumed run, an unknown name).
#[test]
fn train_with_tanh_records_it_and_predict_uses_it() {
    let dir = tmp("tanh");
    let run = dir.join("run");
    let run_arg = run.to_str().unwrap();
    let train = [
        "train",
        "--activation",
        "tanh",
        "--epochs",
        "500",
        "--checkpoint-every",
        "250",
        "--out",
        run_arg,
        "--json",
        "--no-plots",
    ];
    let j = last_json(&vnn(&train));
    assert!(j["train_accuracy"].as_f64().unwrap() > 0.6, "{j}");
    let model = run.join("model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["activation"], "tanh");
    let metrics: Value =
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["config"]["activation"], "tanh");
    let loaded = vnn::model::Model::load(&model).unwrap();
    assert_eq!(loaded.activation(), vnn::model::Activation::Tanh);

    let csv = dir.join("spiral.csv");
    let data = spiral_csv(&csv, 0);
    let lib: Vec<u32> = predict_matches_library(&model, &csv, &data)
        .into_iter()
        .map(|c| c as u32)
        .collect();
    // The same weights as ReLU predict differently: predict used tanh.
    let relu = loaded.with_activation(vnn::model::Activation::Relu);
    assert_ne!(relu.predict(data.features(), data.n_rows()).unwrap(), lib);

    let ckpt = run.join("checkpoint.safetensors");
    let refused = [
        (
            vec!["train", "--resume", ckpt.to_str().unwrap(), "--activation", "relu"],
            "error: --activation cannot be combined with --resume",
        ),
        (
            vec!["train", "--model", "linear", "--activation", "sigmoid", "--epochs", "1"],
            "error: --activation does not apply here: --model linear has no hidden layers",
        ),
        (
            vec!["train", "--activation", "gelu", "--epochs", "1"],
            "error: invalid value 'gelu' for '--activation <ACTIVATION>': unknown activation 'gelu' (expected relu, tanh, sigmoid or leaky-relu)",
        ),
    ];
    for (args, start) in refused {
        let out = vnn(&[&args[..], &["--out", dir.join("refused").to_str().unwrap()]].concat());
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(start), "{args:?}: {err}");
        assert!(!dir.join("refused").exists());
    }
    // Resumed, the run keeps tanh.
    let resumed = last_json(&vnn(&[
        "train",
        "--resume",
        ckpt.to_str().unwrap(),
        "--epochs",
        "600",
        "--json",
        "--no-plots",
    ]));
    assert_eq!(resumed["epochs"], 600);
    let again = vnn::model::Model::load(&model).unwrap();
    assert_eq!(again.activation(), vnn::model::Activation::Tanh);
}

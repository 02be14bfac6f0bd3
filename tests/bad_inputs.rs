//! Bad inputs through the `vnn` binary: every malformed CSV, model file or
//! checkpoint gives one exact error line on stderr and a non-zero exit code,
//! never a panic.
//!
//! The small CSVs live in `tests/data/bad/`; the huge line, the model files
//! and the checkpoints are generated here, deterministically, from a model
//! built with the library (features `x0`, `x1`; classes `a`, `b`).

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use vnn::checkpoint::Checkpoint;
use vnn::model::{Init, Model};
use vnn::modelfile::ModelFile;

const VNN: &str = env!("CARGO_BIN_EXE_vnn");

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad_inputs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One bad input: the command and the exact error line it must print.
struct Case {
    name: &'static str,
    args: Vec<String>,
    expected: String,
}

fn case(name: &'static str, args: &[&str], expected: impl Into<String>) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        expected: expected.into(),
    }
}

/// The model every generated file starts from: 2 inputs, 4 hidden, 2 classes.
fn base_model() -> Model {
    Model::new(&[2, 4, 2], Init::He, 1)
        .unwrap()
        .with_names(vec!["x0".into(), "x1".into()], vec!["a".into(), "b".into()])
        .unwrap()
}

fn label_meta() -> BTreeMap<String, String> {
    BTreeMap::from([("label_column".to_string(), "y".to_string())])
}

/// The metadata of a valid model file for [`base_model`].
fn base_metadata() -> Map<String, Value> {
    let bytes = ModelFile {
        model: base_model(),
        metadata: label_meta(),
    }
    .to_bytes()
    .unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["__metadata__"].as_object().unwrap().clone()
}

/// A safetensors file with `metadata` (none when `None`) and `tensors`
/// `(name, dtype, shape)`, laid out contiguously and filled with 0.25.
fn safetensors(
    metadata: Option<&Map<String, Value>>,
    tensors: &[(&str, &str, &[usize])],
) -> Vec<u8> {
    let mut header = Map::new();
    if let Some(m) = metadata {
        header.insert("__metadata__".into(), Value::Object(m.clone()));
    }
    let mut offset = 0usize;
    for (name, dtype, shape) in tensors {
        let len = 4 * shape.iter().product::<usize>();
        header.insert(
            name.to_string(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    with_header(&Value::Object(header), &vec![0.25f32; offset / 4])
}

/// A file of `header` (JSON) followed by the bytes of `data`.
fn with_header(header: &Value, data: &[f32]) -> Vec<u8> {
    let header = serde_json::to_vec(header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    out
}

/// The tensors of [`base_model`].
const GOOD: [(&str, &str, &[usize]); 4] = [
    ("layers.0.weight", "F32", &[2, 4]),
    ("layers.0.bias", "F32", &[4]),
    ("layers.1.weight", "F32", &[4, 2]),
    ("layers.1.bias", "F32", &[2]),
];

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

#[test]
fn every_bad_input_gives_its_one_line_error() {
    let dir = scratch();
    let bad = |f: &str| format!("tests/data/bad/{f}");
    let mut cases = Vec::new();

    // ---- CSV files for training ----
    for (file, msg) in [
        ("empty.csv", "tests/data/bad/empty.csv: empty file: expected a header row"),
        ("header_only.csv", "tests/data/bad/header_only.csv: no data rows after the header"),
        ("ragged.csv", "tests/data/bad/ragged.csv, line 3: expected 3 fields, got 2"),
        ("non_numeric.csv", "tests/data/bad/non_numeric.csv, line 3, column 'x1': 'abc' is not a number"),
        ("nan_feature.csv", "tests/data/bad/nan_feature.csv, line 2, column 'x1': 'NaN' is not a finite number"),
        ("inf_feature.csv", "tests/data/bad/inf_feature.csv, line 3, column 'x1': 'inf' is not a finite number"),
        ("empty_feature.csv", "tests/data/bad/empty_feature.csv, line 2, column 'x1': missing value (empty field)"),
        ("missing_label.csv", "tests/data/bad/missing_label.csv, line 3, column 'y': missing label (empty field)"),
        ("single_class.csv", "tests/data/bad/single_class.csv, column 'y': needs at least 2 classes, found 1 ('a')"),
        ("label_only.csv", "tests/data/bad/label_only.csv, line 1: no feature columns: the header has only the label column 'y'"),
        ("invalid_utf8.csv", "tests/data/bad/invalid_utf8.csv, line 2, column 'x1': invalid UTF-8"),
        ("duplicate_column.csv", "tests/data/bad/duplicate_column.csv, line 1, column 'x0': duplicate column name"),
    ] {
        cases.push(case(file, &["train", "--data", &bad(file), "--epochs", "1"], msg));
    }
    let mut huge = b"x0,x1,y\n1,".to_vec();
    huge.extend(std::iter::repeat_n(b'9', 2 << 20));
    huge.extend_from_slice(b",a\n3,4,b\n");
    let huge = write(&dir, "huge_line.csv", &huge);
    cases.push(case(
        "huge line",
        &["train", "--data", &huge, "--epochs", "1"],
        format!("{huge}, line 2: record is longer than the limit of 1048576 bytes"),
    ));
    cases.push(case(
        "directory as data",
        &["train", "--data", "tests/data/bad", "--epochs", "1"],
        "tests/data/bad: is a directory, not a CSV file",
    ));
    cases.push(case(
        "missing data file",
        &[
            "train",
            "--data",
            "tests/data/bad/no_such.csv",
            "--epochs",
            "1",
        ],
        "tests/data/bad/no_such.csv: No such file or directory (os error 2)",
    ));
    cases.push(case(
        "unknown label column",
        &["train", "--data", &bad("ragged.csv"), "--label", "z"],
        "tests/data/bad/ragged.csv, line 1: label column 'z' not found in the header (columns: x0, x1, y)",
    ));

    // ---- a good model, and CSVs for predict and eval ----
    let model = dir.join("model.safetensors");
    ModelFile {
        model: base_model(),
        metadata: label_meta(),
    }
    .save(&model)
    .unwrap();
    let model = model.display().to_string();
    cases.push(case(
        "label not in the model's classes",
        &["eval", "--model", &model, "--data", &bad("unknown_class.csv")],
        "tests/data/bad/unknown_class.csv, line 3, column 'y': unknown class 'z' (the model's classes: a, b)",
    ));
    let lacking = write(&dir, "lacking_x1.csv", b"x0,y\n1,a\n2,b\n");
    cases.push(case(
        "CSV lacking a feature column",
        &["predict", "--model", &model, "--data", &lacking],
        format!("{lacking}, line 1, column 'x1': feature column not found in the header (columns: x0, y)"),
    ));
    cases.push(case(
        "predict on NaN",
        &[
            "predict",
            "--model",
            &model,
            "--data",
            &bad("nan_feature.csv"),
        ],
        "tests/data/bad/nan_feature.csv, line 2, column 'x1': 'NaN' is not a finite number",
    ));
    cases.push(case(
        "predict on a directory",
        &["predict", "--model", &model, "--data", "tests/data/bad"],
        "tests/data/bad: is a directory, not a CSV file",
    ));
    cases.push(case(
        "eval without the label column",
        &["eval", "--model", &model, "--data", &lacking, "--label", "label"],
        format!("{lacking}, line 1, column 'x1': feature column not found in the header (columns: x0, y)"),
    ));

    // ---- model files ----
    let good = std::fs::read(&model).unwrap();
    let meta = base_metadata();
    let mut models: Vec<(&'static str, Vec<u8>, String)> = vec![
        ("empty model", Vec::new(), "truncated: 0 bytes, shorter than the 8-byte header length of a safetensors file".into()),
        ("truncated model", good[..good.len() - 6].to_vec(), "the tensors end at data byte 88 but the file has 82 bytes of data: truncated, or offsets out of bounds".into()),
        ("header length past the end", {
            let mut b = good.clone();
            b[..8].copy_from_slice(&(good.len() as u64).to_le_bytes());
            b
        }, format!("the header length {} exceeds the {} bytes after it: truncated or not a safetensors file", good.len(), good.len() - 8)),
        ("header is not JSON", {
            let mut b = 8u64.to_le_bytes().to_vec();
            b.extend_from_slice(b"{\"a\":!!}");
            b
        }, "not a valid safetensors file: invalid JSON in header: expected value at line 1 column 6".into()),
        ("no metadata", safetensors(None, &GOOD), "not a vnn model: the file has no metadata (expected format = \"vnn-model\")".into()),
        ("not a vnn file", {
            let m = Map::from_iter([("format".to_string(), json!("pt"))]);
            safetensors(Some(&m), &GOOD)
        }, "not a vnn model: format is \"pt\", expected \"vnn-model\"".into()),
        ("wrong dtype", {
            let mut t = GOOD;
            t[1].1 = "I32";
            safetensors(Some(&meta), &t)
        }, ", tensor 'layers.0.bias': dtype is I32, expected F32".into()),
        ("missing tensor", safetensors(Some(&meta), &GOOD[..3]), ", tensor 'layers.1.bias': missing tensor".into()),
        ("shapes that do not chain", safetensors(Some(&meta), &[
            ("layers.0.weight", "F32", &[2, 5]),
            ("layers.0.bias", "F32", &[5]),
            ("layers.1.weight", "F32", &[4, 2]),
            ("layers.1.bias", "F32", &[2]),
        ]), ", tensor 'layers.1.weight': shape [4, 2] does not chain: layer 0 has 5 outputs but layer 1 has 4 inputs".into()),
        ("shapes disagree with sizes", safetensors(Some(&meta), &[
            ("layers.0.weight", "F32", &[2, 3]),
            ("layers.0.bias", "F32", &[3]),
            ("layers.1.weight", "F32", &[3, 2]),
            ("layers.1.bias", "F32", &[2]),
        ]), ", tensor 'layers.0.weight': shape [2, 3] disagrees with metadata sizes [2, 4, 2] (expected [2, 4])".into()),
        ("unexpected tensor", {
            let mut t = GOOD.to_vec();
            t.push(("optimizer.m", "F32", &[22]));
            safetensors(Some(&meta), &t)
        }, ", tensor 'optimizer.m': unexpected tensor (a vnn model has only layers.{i}.weight and layers.{i}.bias)".into()),
        ("metadata sizes missing", {
            let mut m = meta.clone();
            m.remove("sizes");
            safetensors(Some(&m), &GOOD)
        }, "missing metadata entry \"sizes\"".into()),
        ("metadata sizes malformed", {
            let mut m = meta.clone();
            m.insert("sizes".into(), json!("[2,4"));
            safetensors(Some(&m), &GOOD)
        }, "metadata entry \"sizes\" is not a JSON array of layer widths: EOF while parsing a list at line 1 column 4".into()),
        ("metadata names malformed", {
            let mut m = meta.clone();
            m.insert("class_names".into(), json!("[\"a\"]"));
            safetensors(Some(&m), &GOOD)
        }, "class_names has 1 names but the last layer has 2 outputs".into()),
        ("metadata version malformed", {
            let mut m = meta.clone();
            m.insert("format_version".into(), json!("one"));
            safetensors(Some(&m), &GOOD)
        }, "format_version \"one\" is not a version number".into()),
    ];
    // Offsets: overlapping and out of bounds (written by hand).
    let tensor = |offsets: [usize; 2], shape: &[usize]| json!({"dtype": "F32", "shape": shape, "data_offsets": offsets});
    let mut overlap = Map::new();
    overlap.insert("__metadata__".into(), Value::Object(meta.clone()));
    overlap.insert("layers.0.weight".into(), tensor([0, 32], &[2, 4]));
    overlap.insert("layers.0.bias".into(), tensor([16, 32], &[4]));
    overlap.insert("layers.1.weight".into(), tensor([32, 64], &[4, 2]));
    overlap.insert("layers.1.bias".into(), tensor([64, 72], &[2]));
    models.push(("overlapping offsets", with_header(&Value::Object(overlap.clone()), &[0.25; 18]),
        ", tensor 'layers.0.bias': data offsets overlap another tensor or leave a gap (tensors must follow each other from offset 0)".into()));
    let mut oob = overlap;
    oob.insert("layers.0.bias".into(), tensor([32, 48], &[4]));
    oob.insert("layers.1.weight".into(), tensor([48, 80], &[4, 2]));
    oob.insert("layers.1.bias".into(), tensor([80, 88], &[2]));
    models.push(("out-of-bounds offsets", with_header(&Value::Object(oob), &[0.25; 20]),
        "the tensors end at data byte 88 but the file has 80 bytes of data: truncated, or offsets out of bounds".into()));
    for (name, bytes, msg) in models {
        let file = format!("{}.safetensors", name.replace(' ', "_"));
        let path = write(&dir, &file, &bytes);
        let sep = if msg.starts_with(", ") { "" } else { ": " };
        cases.push(case(
            name,
            &[
                "predict",
                "--model",
                &path,
                "--data",
                "tests/data/bad/ragged.csv",
            ],
            format!("{path}{sep}{msg}"),
        ));
    }
    cases.push(case(
        "model is a directory",
        &[
            "eval",
            "--model",
            "tests/data",
            "--data",
            &bad("ragged.csv"),
        ],
        "tests/data: is a directory, not a model file",
    ));
    cases.push(case(
        "missing model file",
        &[
            "eval",
            "--model",
            "tests/data/no_model.safetensors",
            "--data",
            &bad("ragged.csv"),
        ],
        "tests/data/no_model.safetensors: No such file or directory (os error 2)",
    ));

    // ---- checkpoints ----
    let m = base_model();
    let n = m.params().len();
    let ckpt = Checkpoint {
        step: 3,
        model: m,
        optimizer: vnn::train::OptimizerState::Momentum {
            velocity: vec![0.0; n],
        },
        settings: r#"{"lr": 0.1}"#.into(),
        extra: BTreeMap::new(),
        best_params: None,
    };
    let ck_bytes = ckpt.to_bytes("ckpt").unwrap();
    let ck_bad_settings = write(&dir, "bad_settings.ckpt", &ck_bytes);
    cases.push(case(
        "checkpoint with foreign settings",
        &["train", "--resume", &ck_bad_settings],
        format!("{ck_bad_settings}: the checkpoint's settings are not those of a vnn train run: missing field `data` at line 1 column 11"),
    ));
    let ck_trunc = write(&dir, "truncated.ckpt", &ck_bytes[..ck_bytes.len() / 2]);
    cases.push(case(
        "truncated checkpoint",
        &["train", "--resume", &ck_trunc],
        format!("{ck_trunc}: the header length 632 exceeds the 400 bytes after it: truncated or not a safetensors file"),
    ));
    cases.push(case(
        "checkpoint given as a model",
        &["predict", "--model", &ck_trunc.replace("truncated", "bad_settings"), "--data", &bad("ragged.csv")],
        format!("{ck_bad_settings}: not a vnn model: format is \"vnn-checkpoint\", expected \"vnn-model\""),
    ));
    cases.push(case(
        "model given as a checkpoint",
        &["train", "--resume", &model],
        format!(
            "{model}: not a vnn checkpoint: format is \"vnn-model\", expected \"vnn-checkpoint\""
        ),
    ));
    cases.push(case(
        "checkpoint is a directory",
        &["train", "--resume", "tests/data"],
        "tests/data: is a directory, not a model file",
    ));

    // ---- run them all, report every mismatch at once ----
    let mut failures = Vec::new();
    for c in &cases {
        let out = Command::new(VNN)
            .args(&c.args)
            .args(["--threads", "1"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = format!("error: {}", c.expected);
        let lines: Vec<&str> = stderr.lines().collect();
        if out.status.success()
            || lines != [expected.as_str()]
            || stderr.contains("panicked")
            || stderr.contains("backtrace")
        {
            failures.push(format!(
                "{}: exit {:?}\n  expected: {expected}\n  got:      {}",
                c.name,
                out.status.code(),
                stderr.trim_end()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `vnn export` refuses a bad model file or a bad `--out` with one error
/// line and a failure exit, and writes nothing (no output, no temporary).
#[test]
fn export_errors_are_one_line_and_write_nothing() {
    // Its own folder: `scratch` empties the one the other test uses.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad_inputs_export");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("model.safetensors");
    ModelFile {
        model: base_model(),
        metadata: label_meta(),
    }
    .save(&model)
    .unwrap();
    let good = std::fs::read(&model).unwrap();
    let model = model.display().to_string();
    let truncated = write(&dir, "truncated.safetensors", &good[..good.len() - 6]);
    let no_meta = write(&dir, "no_meta.safetensors", &safetensors(None, &GOOD));
    let out = dir.join("out.onnx").display().to_string();
    let nested = dir
        .join("no_such_dir")
        .join("out.onnx")
        .display()
        .to_string();
    let d = dir.display().to_string();
    let cases = [
        case(
            "missing model",
            &["export", "--model", "tests/data/no_model.safetensors", "--out", &out],
            "tests/data/no_model.safetensors: No such file or directory (os error 2)",
        ),
        case(
            "model is a directory",
            &["export", "--model", "tests/data", "--out", &out],
            "tests/data: is a directory, not a model file",
        ),
        case(
            "truncated model",
            &["export", "--model", &truncated, "--out", &out],
            format!("{truncated}: the tensors end at data byte 88 but the file has 82 bytes of data: truncated, or offsets out of bounds"),
        ),
        case(
            "not a vnn model",
            &["export", "--model", &no_meta, "--out", &out],
            format!("{no_meta}: not a vnn model: the file has no metadata (expected format = \"vnn-model\")"),
        ),
        case(
            "output folder missing",
            &["export", "--model", &model, "--out", &nested],
            format!("{nested}: the folder {d}/no_such_dir does not exist (--out)"),
        ),
        case(
            "output is a directory",
            &["export", "--model", &model, "--out", &d],
            format!("{d}: is a directory, not an output file (--out)"),
        ),
        case(
            "output is the model",
            &["export", "--model", &model, "--out", &model],
            format!("{model}: --out names the model file itself; give another file"),
        ),
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let out = Command::new(VNN)
            .args(&c.args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = format!("error: {}", c.expected);
        if out.status.success() || stderr.lines().collect::<Vec<_>>() != [expected.as_str()] {
            failures.push(format!(
                "{}: expected {expected}\n  got: {}",
                c.name,
                stderr.trim_end()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // An unknown format is a usage error naming the option and the choices.
    let bad_format = Command::new(VNN)
        .args([
            "export", "--model", &model, "--format", "tflite", "--out", &out,
        ])
        .output()
        .unwrap();
    assert_eq!(bad_format.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad_format.stderr);
    assert_eq!(
        stderr.lines().next(),
        Some("error: invalid value 'tflite' for '--format <FORMAT>'"),
        "{stderr}"
    );
    assert!(stderr.contains("[possible values: onnx]"), "{stderr}");

    // Nothing was written, and the model refused as --out is untouched.
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "model.safetensors",
            "no_meta.safetensors",
            "truncated.safetensors"
        ]
    );
    assert_eq!(std::fs::read(&model).unwrap(), good);
}

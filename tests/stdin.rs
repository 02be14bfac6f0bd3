//! `--data -` reads the CSV from standard input in `vnn train`, `vnn
//! predict` and `vnn eval` (errors name it `<stdin>`); a run trained on `-`
//! records `-` and its resume reads stdin again. Also the default run
//! folder name.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const VNN: &str = env!("CARGO_BIN_EXE_vnn");

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("stdin")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `vnn args` in `cwd` with `input` piped to its stdin.
fn vnn_piped(cwd: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(VNN)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // A run that fails early may close its stdin before reading it all.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Stdout of a run that must succeed.
fn ok(out: &Output) -> String {
    assert!(out.status.success(), "vnn failed: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The last line of stdout as JSON.
fn last_json(out: &Output) -> Value {
    let stdout = ok(out);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// The spiral of `seed` (40 points per class) as CSV text: x0, x1, label.
fn spiral_csv(seed: u64) -> String {
    let d = vnn::data::spiral(40, 3, seed);
    let mut s = String::from("x0,x1,label\n");
    for r in 0..d.n_rows() {
        let row = d.row(r);
        s.push_str(&format!("{},{},{}\n", row[0], row[1], d.labels()[r]));
    }
    s
}

const TRAIN: [&str; 8] = [
    "train",
    "--data",
    "-",
    "--hidden",
    "16",
    "--no-plots",
    "--checkpoint-every",
    "20",
];

/// Trains a small model on the spiral CSV piped to stdin into `dir/run`.
fn train_on_stdin(dir: &Path, csv: &str, epochs: &str) -> (PathBuf, Value) {
    let run = dir.join("run");
    let mut args = TRAIN.to_vec();
    args.extend(["--epochs", epochs, "--json", "--out", run.to_str().unwrap()]);
    let j = last_json(&vnn_piped(dir, &args, csv.as_bytes()));
    (run, j)
}

#[test]
fn train_on_stdin_records_dash_and_its_resume_reads_stdin_again() {
    let dir = scratch("train");
    let csv = spiral_csv(1);
    let (run, j) = train_on_stdin(&dir, &csv, "20");
    assert_eq!(j["epochs"], 20);
    let ckpt_path = run.join("checkpoint.safetensors");
    let ckpt = vnn::checkpoint::Checkpoint::load(&ckpt_path).unwrap();
    let settings: Value = serde_json::from_str(&ckpt.settings).unwrap();
    assert_eq!(settings["data"], "-");
    let model = vnn::modelfile::ModelFile::load(run.join("model.safetensors")).unwrap();
    assert_eq!(model.model.class_names(), ["0", "1", "2"]);
    assert_eq!(model.metadata["label_column"], "label");

    // The resume reads stdin again: the same rows continue the run ...
    let ckpt = ckpt_path.to_str().unwrap();
    let resume = ["train", "--resume", ckpt, "--epochs", "40", "--json"];
    let j = last_json(&vnn_piped(&dir, &resume, csv.as_bytes()));
    assert_eq!(j["epochs"], 40);
    // ... and other rows are refused by the data fingerprint.
    let other = vnn_piped(&dir, &resume, spiral_csv(2).as_bytes());
    assert_eq!(other.status.code(), Some(1), "{}", text(&other.stderr));
    let stderr = text(&other.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: <stdin>: the data differs"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn predict_and_eval_on_stdin_equal_them_on_the_file() {
    let dir = scratch("predict");
    let csv = spiral_csv(3);
    let (run, _) = train_on_stdin(&dir, &csv, "30");
    let path = dir.join("spiral.csv");
    std::fs::write(&path, &csv).unwrap();
    let model = run.join("model.safetensors");
    let (model, path) = (model.to_str().unwrap(), path.to_str().unwrap());
    for cmd in [
        &["predict", "--proba"][..],
        &["predict", "--json"],
        &["eval", "--json"],
        &["eval"],
    ] {
        let mut from_file = cmd.to_vec();
        from_file.extend(["--model", model, "--data", path]);
        let mut from_stdin = cmd.to_vec();
        from_stdin.extend(["--model", model, "--data", "-"]);
        let want = ok(&vnn_piped(&dir, &from_file, b""));
        let got = ok(&vnn_piped(&dir, &from_stdin, csv.as_bytes()));
        assert_eq!(got, want, "{cmd:?}");
        assert!(got.lines().count() > 1 || got.starts_with('{'), "{got}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_line_on_stdin_is_one_error_line_naming_stdin() {
    let dir = scratch("bad");
    let csv = spiral_csv(4);
    let (run, _) = train_on_stdin(&dir, &csv, "5");
    let model = run.join("model.safetensors");
    let bad = "x0,x1,label\n0.5,0.25,1\n0.5,oops,2\n";
    let cases: [&[&str]; 3] = [
        &["predict", "--model", model.to_str().unwrap(), "--data", "-"],
        &["eval", "--model", model.to_str().unwrap(), "--data", "-"],
        &["train", "--data", "-", "--epochs", "2", "--no-plots"],
    ];
    for args in cases {
        let out = vnn_piped(&dir, args, bad.as_bytes());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: <stdin>, line 3"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("oops"), "{args:?}: {stderr}");
    }
    // A file named `-` is not read: `-` is stdin (empty here).
    std::fs::write(dir.join("-"), &csv).unwrap();
    let out = vnn_piped(&dir, &["train", "--data", "-", "--no-plots"], b"");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: <stdin>"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_default_run_folder_names_the_data_model_optimizer_lr_and_time() {
    let dir = scratch("folder");
    let args = ["train", "--data", "-", "--epochs", "3", "--no-plots"];
    let mut args = args.to_vec();
    args.extend(["--optimizer", "adam", "--lr", "0.001", "--json"]);
    let j = last_json(&vnn_piped(&dir, &args, spiral_csv(5).as_bytes()));
    let out = j["out"].as_str().unwrap();
    let name = out.strip_prefix("runs/").unwrap_or_else(|| panic!("{out}"));
    let stamp = name
        .strip_prefix("stdin-mlp-adam-lr0.001-")
        .unwrap_or_else(|| panic!("{out}"));
    // YYYYmmddTHHMMSSZ
    assert_eq!(stamp.len(), 16, "{stamp}");
    assert!(stamp[..8].bytes().all(|b| b.is_ascii_digit()), "{stamp}");
    assert!(stamp[9..15].bytes().all(|b| b.is_ascii_digit()), "{stamp}");
    assert_eq!((&stamp[8..9], &stamp[15..]), ("T", "Z"));
    assert!(dir.join(out).join("model.safetensors").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

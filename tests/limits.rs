//! Sizes from outside checked before allocation, files that are not
//! regular files, and outputs that overflow, through the `vnn` binary.
//!
//! The oversized cases run under a 4 GB address-space limit (`prlimit
//! --as`, skipped loudly where `prlimit` is missing): each must exit 1 with
//! one clear line, fast, without aborting. Every child runs with a
//! deadline, so a hang fails the test instead of blocking it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use vnn::checkpoint::Checkpoint;
use vnn::model::{Init, Model};

const VNN: &str = env!("CARGO_BIN_EXE_vnn");

/// The address-space limit of the oversized cases, as the corpus
/// runs them.
const ADDRESS_SPACE: &str = "--as=4000000000";

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("limits")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits for `cmd` for at most `secs` seconds (then kills it and fails),
/// feeding it `stdin`.
fn run_for(mut cmd: Command, secs: u64, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not end within {secs} s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn has_prlimit() -> bool {
    let found = Command::new("prlimit").arg("--version").output().is_ok();
    if !found {
        eprintln!("SKIPPED: prlimit is not installed; the address-space limit is not applied");
    }
    found
}

/// `vnn args` under the 4 GB address-space limit (when `prlimit` exists).
fn limited(args: &[&str]) -> Command {
    let mut cmd = if has_prlimit() {
        let mut c = Command::new("prlimit");
        c.arg(ADDRESS_SPACE).arg(VNN);
        c
    } else {
        Command::new(VNN)
    };
    cmd.args(args).env_remove(vnn::budget::ENV);
    cmd
}

/// Runs `vnn args` under the limit, expecting exit 1 within 20 s and one
/// `error:` line that contains every one of `parts`.
fn refused(args: &[&str], parts: &[&str]) -> String {
    let out = run_for(limited(args), 20, b"");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "vnn {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("error: "), "{err}");
    for p in parts {
        assert!(err.contains(p), "vnn {args:?}: expected {p:?} in: {err}");
    }
    err
}

fn train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--epochs", "2", "--no-plots", "--out", out];
    args.extend_from_slice(extra);
    args
}

#[test]
fn oversized_widths_spirals_and_threads_are_refused_before_allocation() {
    let dir = scratch("oversized");
    let out = dir.to_str().unwrap();
    let e = refused(
        &train_args(out, &["--hidden", "1000000000"]),
        &[
            "training a model of layer widths [2, 1000000000, 3] on batches of 300 rows needs",
            "--hidden",
            "VNN_MAX_MEMORY",
        ],
    );
    assert!(e.contains("more than the memory limit of"), "{e}");
    for points in [
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
    ] {
        refused(
            &train_args(out, &["--spiral-points", points]),
            &[
                &format!("the spiral of {points} points x 3 classes needs more than 2^64 bytes"),
                "--spiral-points",
            ],
        );
    }
    refused(
        &train_args(out, &["--spiral-classes", "1000000"]),
        &["the spiral of 100 points x 1000000 classes needs 4800000000 bytes"],
    );
    refused(
        &train_args(out, &["--threads", "100000"]),
        &["--threads must be at most 256"],
    );
    let model = dir.join("m.safetensors");
    Model::new(&[2, 3], Init::He, 0)
        .unwrap()
        .save(&model)
        .unwrap();
    let csv = dir.join("in.csv");
    std::fs::write(&csv, "x0,x1,label\n1,2,0\n").unwrap();
    let (m, c) = (model.to_str().unwrap(), csv.to_str().unwrap());
    let wide = dir.join("wide.csv");
    std::fs::write(&wide, "a,b,y\n1,2,p\n3,4,q\n").unwrap();
    refused(
        &train_args(
            out,
            &["--data", wide.to_str().unwrap(), "--hidden", "1000000000"],
        ),
        &["a model of layer widths [2, 1000000000, 2] needs 20000000008 bytes (18.6 GiB)"],
    );
    refused(
        &["predict", "--model", m, "--data", c, "--threads", "100000"],
        &["--threads must be at most 256"],
    );
    refused(
        &["eval", "--model", m, "--data", c, "--threads", "1000"],
        &["--threads must be at most 256"],
    );
}

#[test]
fn many_classes_train_in_mini_batches_and_full_batch_is_refused() {
    let dir = scratch("classes");
    let mut text = String::from("a,b,y\n");
    for i in 0..50_000 {
        text.push_str(&format!("{},{},c{i}\n", i % 7, i % 11));
    }
    let csv = dir.join("labels.csv");
    std::fs::write(&csv, text).unwrap();
    let out = dir.join("run");
    let (c, o) = (csv.to_str().unwrap(), out.to_str().unwrap());
    refused(
        &[
            "train",
            "--data",
            c,
            "--epochs",
            "1",
            "--batch-size",
            "50000",
            "--no-plots",
            "--out",
            o,
        ],
        &[
            "training a model of layer widths [2, 100, 50000] on batches of 50000 rows needs",
            "--batch-size",
        ],
    );
    assert!(!out.join("model.safetensors").exists());
}

#[test]
fn eval_leaves_out_the_report_and_confusion_matrix_of_many_classes() {
    let dir = scratch("confusion");
    let k = vnn::train::MAX_CONFUSION_CLASSES + 76;
    let model = Model::new(&[2, k], Init::Small, 0).unwrap();
    let features = model.feature_names().to_vec();
    let model = model
        .with_names(features, (0..k).map(|i| format!("c{i}")).collect())
        .unwrap();
    let path = dir.join("m.safetensors");
    model.save(&path).unwrap();
    let csv = dir.join("eval.csv");
    std::fs::write(&csv, "x0,x1,label\n1,2,c0\n3,4,c7\n5,6,c1099\n").unwrap();
    let (m, c) = (path.to_str().unwrap(), csv.to_str().unwrap());
    let out = run_for(limited(&["eval", "--model", m, "--data", c]), 30, b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("rows: 3\n"), "{text}");
    for what in ["classification report", "confusion matrix"] {
        let line = format!("{what}: left out ({k} classes, more than 1024)\n");
        assert!(text.contains(&line), "{text}");
    }
    // One line each, nothing of the report's table.
    assert_eq!(text.lines().count(), 5, "{text}");
    let out = run_for(
        limited(&["eval", "--json", "--model", m, "--data", c]),
        30,
        b"",
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json["n"].as_u64(), json["confusion"].is_null()),
        (Some(3), true)
    );
    for key in ["per_class", "macro_f1", "weighted_f1"] {
        assert!(json[key].is_null(), "{key}: {json}");
    }
}

#[test]
fn vnn_max_memory_lowers_the_budget() {
    let dir = scratch("env");
    let out = dir.to_str().unwrap();
    let mut cmd = limited(&train_args(out, &["--spiral-points", "100000"]));
    cmd.env(vnn::budget::ENV, "1M");
    let o = run_for(cmd, 20, b"");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("the spiral of 100000 points x 3 classes needs 14400000 bytes (13.7 MiB), more than the memory limit of 1048576 bytes (1.0 MiB)"), "{err}");
    let mut cmd = limited(&train_args(out, &[]));
    cmd.env(vnn::budget::ENV, "lots");
    let o = run_for(cmd, 20, b"");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "VNN_MAX_MEMORY must be a byte count such as 4000000000, 512M or 4G, got lots"
        ),
        "{err}"
    );
}

/// A checkpoint of a short spiral run in `dir`, with its recorded settings
/// changed by `edit`, saved as `edited.safetensors`.
fn edited_checkpoint(dir: &Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let run = dir.join("run");
    let o = run_for(
        limited(&train_args(
            run.to_str().unwrap(),
            &["--hidden", "8", "--checkpoint-every", "1"],
        )),
        60,
        b"",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut ckpt = Checkpoint::load(run.join(vnn::checkpoint::FILE_NAME)).unwrap();
    let mut settings: serde_json::Value = serde_json::from_str(&ckpt.settings).unwrap();
    edit(&mut settings);
    ckpt.settings = settings.to_string();
    let path = dir.join("edited.safetensors");
    ckpt.save(&path).unwrap();
    path
}

#[test]
fn checkpoint_settings_are_checked_before_any_work() {
    let dir = scratch("checkpoint");
    let cases: [(&str, serde_json::Value, &str); 4] = [
        (
            "hidden",
            serde_json::json!([1_000_000_000u64]),
            "the settings record hidden widths [1000000000], the model has [8]",
        ),
        (
            "spiral_points",
            serde_json::json!(usize::MAX),
            "more than can be counted",
        ),
        (
            "spiral_points",
            serde_json::json!(50_000_000u64),
            "the settings record a spiral of 50000000 x 3 points, its data had 300 rows",
        ),
        (
            "spiral_classes",
            serde_json::json!(1_000_000u64),
            "the settings record a spiral of 1000000 classes, the model has 3",
        ),
    ];
    for (key, value, expected) in cases {
        let path = edited_checkpoint(&dir, |s| s[key] = value.clone());
        let p = path.to_str().unwrap();
        let start = Instant::now();
        refused(
            &["train", "--resume", p],
            &[
                p,
                "the checkpoint's model does not match its recorded settings",
                expected,
            ],
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{key}: {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn fifo_without_writer_is_given_up_on_and_models_must_be_regular_files() {
    let dir = scratch("fifo");
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let f = fifo.to_str().unwrap();
    let start = Instant::now();
    refused(
        &[
            "train",
            "--data",
            f,
            "--epochs",
            "1",
            "--no-plots",
            "--out",
            dir.join("run").to_str().unwrap(),
        ],
        &[&format!(
            "{f}: no writer opened this FIFO within 5 s, so nothing was read"
        )],
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    let csv = dir.join("in.csv");
    std::fs::write(&csv, "x0,x1,label\n1,2,0\n").unwrap();
    let c = csv.to_str().unwrap();
    for model in [f, "/dev/zero", "/dev/urandom"] {
        let start = Instant::now();
        refused(
            &["predict", "--model", model, "--data", c],
            &[
                &format!("{model}: is not a regular file"),
                "must be regular files",
            ],
        );
        refused(
            &["eval", "--model", model, "--data", c],
            &[&format!("{model}: is not a regular file")],
        );
        refused(
            &[
                "export",
                "--model",
                model,
                "--out",
                dir.join("m.onnx").to_str().unwrap(),
            ],
            &[&format!("{model}: is not a regular file")],
        );
        refused(
            &["train", "--resume", model],
            &[&format!("{model}: is not a regular file")],
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{model}: {:?}",
            start.elapsed()
        );
    }
    let d = dir.to_str().unwrap();
    refused(
        &["predict", "--model", d, "--data", c],
        &[&format!("{d}: is a directory, not a model file")],
    );
}

const SMALL_CSV: &[u8] = b"a,b,y\n1,2,p\n3,4,q\n5,6,p\n2,1,q\n";

#[test]
fn a_fifo_or_stdin_with_one_csv_is_read_once_and_trains() {
    let dir = scratch("fifo_writer");
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, SMALL_CSV).unwrap())
    };
    let out = dir.join("run");
    let (f, o) = (fifo.to_str().unwrap(), out.to_str().unwrap());
    let args = [
        "train",
        "--data",
        f,
        "--label",
        "y",
        "--epochs",
        "3",
        "--no-plots",
        "--out",
        o,
    ];
    let done = run_for(limited(&args), 30, b"");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    writer.join().unwrap();
    assert!(String::from_utf8_lossy(&done.stdout).contains("4 rows x 2 features, 2 classes"));
    assert!(out.join("model.safetensors").exists());
    let out = dir.join("stdin");
    let o = out.to_str().unwrap();
    let args = [
        "train",
        "--data",
        "/dev/stdin",
        "--label",
        "y",
        "--epochs",
        "3",
        "--no-plots",
        "--out",
        o,
    ];
    let done = run_for(limited(&args), 30, SMALL_CSV);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(out.join("model.safetensors").exists());
}

/// A model of `sizes` saved in `dir`, its parameters set by `params`.
fn saved_model(dir: &Path, sizes: &[usize], params: impl Fn(&mut [f32])) -> PathBuf {
    let mut model = Model::new(sizes, Init::He, 3).unwrap();
    params(model.params_mut());
    let path = dir.join("m.safetensors");
    model.save(&path).unwrap();
    path
}

/// Expects `vnn args` to exit 1 naming `line` of `data` as the row whose
/// output is not finite, with nothing on stdout.
fn not_finite(args: &[&str], data: &str, line: u64) {
    let out = run_for(limited(args), 20, b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "vnn {args:?}: {err}");
    let expected =
        format!("error: {data}, line {line}: the model's output is not finite for these inputs");
    assert!(err.starts_with(&expected), "vnn {args:?}: {err}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        !stdout.contains("nan") && !stdout.contains("inf"),
        "{stdout}"
    );
}

#[test]
fn outputs_that_overflow_are_an_error_naming_the_line() {
    let dir = scratch("overflow");
    let model = saved_model(&dir, &[2, 16, 3], |_| {});
    let csv = dir.join("big.csv");
    std::fs::write(&csv, "x0,x1,label\n1,2,0\n\n3.4e38,3.4e38,1\n").unwrap();
    let (m, c) = (model.to_str().unwrap(), csv.to_str().unwrap());
    not_finite(&["predict", "--proba", "--model", m, "--data", c], c, 4);
    not_finite(&["predict", "--json", "--model", m, "--data", c], c, 4);
    not_finite(&["eval", "--model", m, "--data", c], c, 4);
    let model = saved_model(&dir, &[2, 3], |p| p.fill(3e38));
    let csv = dir.join("small.csv");
    std::fs::write(&csv, "x0,x1,label\n1,1,0\n").unwrap();
    let (m, c) = (model.to_str().unwrap(), csv.to_str().unwrap());
    not_finite(&["predict", "--proba", "--model", m, "--data", c], c, 2);
    not_finite(&["eval", "--json", "--model", m, "--data", c], c, 2);
}

#[test]
fn batch_one_prediction_refuses_an_output_that_overflows() {
    let mut model = Model::new(&[2, 3], Init::He, 0).unwrap();
    model.params_mut().fill(3e38);
    let mut scratch = model.scratch();
    let e = model.predict_one(&[1.0, 1.0], &mut scratch).unwrap_err();
    assert!(matches!(e, vnn::Error::OutputNotFinite { row: 1 }), "{e}");
    assert!(model.predict_proba_one(&[1.0, 1.0], &mut scratch).is_err());
    let e = model.predict(&[0.0, 0.0, 1.0, 1.0], 2).unwrap_err();
    assert!(matches!(e, vnn::Error::OutputNotFinite { row: 2 }), "{e}");
    // Small inputs of the same model stay finite.
    assert!(model.predict_one(&[0.0, 0.0], &mut scratch).is_ok());
}

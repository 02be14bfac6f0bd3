//! Output that fails: every command into a closed pipe and into a full
//! device (`/dev/full`) exits with code 1 and one `error:` line, never a
//! panic; a training run keeps its model either way.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const VNN: &str = env!("CARGO_BIN_EXE_vnn");

/// Where a command's stdout (or stderr) goes.
#[derive(Clone, Copy, Debug)]
enum Sink {
    /// A pipe whose reader is closed before the command starts.
    ClosedPipe,
    /// `/dev/full`: every write fails with "No space left on device".
    Full,
}

impl Sink {
    fn stdio(self) -> Stdio {
        match self {
            Sink::ClosedPipe => {
                let (reader, writer) = std::io::pipe().unwrap();
                drop(reader);
                writer.into()
            }
            Sink::Full => File::options()
                .write(true)
                .open("/dev/full")
                .unwrap()
                .into(),
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vnn-output-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `vnn args` with stdout into `sink`; gives the exit code and stderr.
fn run_into(args: &[&str], sink: Sink) -> (Option<i32>, String) {
    let out = Command::new(VNN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(sink.stdio())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr)
}

/// `vnn args` into `sink` exits 1 with exactly one `error:` line, about
/// stdout, and no panic.
fn fails_with_one_error(args: &[&str], sink: Sink) -> String {
    let (code, stderr) = run_into(args, sink);
    let context = format!("vnn {} into {sink:?}: stderr {stderr}", args.join(" "));
    assert_eq!(code, Some(1), "{context}");
    assert!(!stderr.contains("panicked"), "{context}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{context}");
    let expected = match sink {
        Sink::ClosedPipe => "cannot write to stdout: Broken pipe",
        Sink::Full => "cannot write to stdout: No space left on device",
    };
    assert!(errors[0].contains(expected), "{context}");
    stderr
}

/// A small labelled CSV and a model trained on it, in `dir`.
fn csv_and_model(dir: &Path) -> (String, String) {
    let mut text = String::from("a,b,kind\n");
    for i in 0..40 {
        let x = i as f32 / 10.0;
        let kind = if i % 2 == 0 { "even" } else { "odd" };
        text.push_str(&format!("{x},{},{kind}\n", (i % 2) as f32 + x / 7.0));
    }
    let csv = dir.join("data.csv");
    std::fs::write(&csv, text).unwrap();
    let run = dir.join("run");
    let (csv, run) = (csv.display().to_string(), run.display().to_string());
    let status = Command::new(VNN)
        .args(["train", "--data", &csv, "--epochs", "5", "--no-plots"])
        .args(["--out", &run])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    (csv, format!("{run}/model.safetensors"))
}

#[test]
fn train_into_a_closed_or_full_stdout_exits_1_and_keeps_its_model() {
    let dir = scratch("train");
    for sink in [Sink::ClosedPipe, Sink::Full] {
        for json in [false, true] {
            let run = dir.join(format!("{sink:?}-{json}"));
            let run_text = run.display().to_string();
            let mut args = vec!["train", "--epochs", "5", "--no-plots", "--print-every", "1"];
            args.extend(["--checkpoint-every", "2", "--out", &run_text]);
            if json {
                args.push("--json");
            }
            let stderr = fails_with_one_error(&args, sink);
            assert!(
                stderr.contains(&format!("the run in {run_text} saved its model")),
                "{stderr}"
            );
            // The whole run is saved: the model and its last checkpoint.
            vnn::model::Model::load(run.join("model.safetensors")).unwrap();
            let ckpt = vnn::checkpoint::Checkpoint::load(run.join("checkpoint.safetensors"));
            assert_eq!(ckpt.unwrap().step, 5);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn predict_and_eval_into_a_closed_or_full_stdout_exit_1() {
    let dir = scratch("predict");
    let (csv, model) = csv_and_model(&dir);
    let base = |cmd: &'static str| vec![cmd, "--model", &model, "--data", &csv];
    let mut commands = Vec::new();
    for extra in [&[][..], &["--proba"], &["--json"], &["--proba", "--json"]] {
        let mut args = base("predict");
        args.extend_from_slice(extra);
        commands.push(args);
    }
    for extra in [&[][..], &["--json"]] {
        let mut args = base("eval");
        args.extend_from_slice(extra);
        commands.push(args);
    }
    for sink in [Sink::ClosedPipe, Sink::Full] {
        for args in &commands {
            fails_with_one_error(args, sink);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_into_a_closed_or_full_stdout_exits_1() {
    for sink in [Sink::ClosedPipe, Sink::Full] {
        for json in [false, true] {
            let mut args = vec!["bench", "--workload", "peak"];
            if json {
                args.push("--json");
            }
            let (code, stderr) = run_into(&args, sink);
            assert_eq!(code, Some(1), "{sink:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            let errors = stderr.lines().filter(|l| l.starts_with("error:"));
            assert_eq!(errors.count(), 1, "{stderr}");
        }
    }
}

#[test]
fn export_and_train_into_a_closed_or_full_stderr_exit_1_without_a_panic() {
    let dir = scratch("stderr");
    let (_, model) = csv_and_model(&dir);
    let onnx = dir.join("model.onnx").display().to_string();
    let run = dir.join("json-run").display().to_string();
    let commands: [&[&str]; 2] = [
        &["export", "--model", &model, "--out", &onnx],
        &[
            "train",
            "--epochs",
            "3",
            "--no-plots",
            "--json",
            "--out",
            &run,
        ],
    ];
    for sink in [Sink::ClosedPipe, Sink::Full] {
        for args in commands {
            let mut child = Command::new(VNN)
                .args(args)
                .stdout(Stdio::null())
                .stderr(sink.stdio())
                .spawn()
                .unwrap();
            // Code 1 (the error line itself could not be written), not 101.
            assert_eq!(child.wait().unwrap().code(), Some(1), "{args:?} {sink:?}");
        }
    }
    // The export and the run were done before their lines failed.
    assert!(std::fs::metadata(&onnx).unwrap().len() > 0);
    vnn::model::Model::load(Path::new(&format!("{run}/model.safetensors"))).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

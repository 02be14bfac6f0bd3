//! The run folder: one run at a time (a lock that dies with its holder),
//! failures after saving as warnings, and the label column's name as the
//! data's header has it (trimmed, and read from a pipe).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use vnn::checkpoint::Checkpoint;
use vnn::session::LOCK_FILE;

const VNN: &str = env!("CARGO_BIN_EXE_vnn");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vnn-folder-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vnn(args: &[&str]) -> Output {
    Command::new(VNN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts a long spiral run into `out`, checkpointing every 50 steps.
fn start_long_run(out: &Path, epochs: &str) -> Child {
    Command::new(VNN)
        .args(["train", "--epochs", epochs, "--no-plots", "--print-every"])
        .args(["1000000", "--checkpoint-every", "50", "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits (up to 60 s) until the run of `child` holds the lock of `out`
/// and has written its first checkpoint.
fn wait_until_running(out: &Path, child: &Child) {
    let started = Instant::now();
    let pid = child.id().to_string();
    loop {
        let locked = std::fs::read_to_string(out.join(LOCK_FILE)).unwrap_or_default();
        if locked.trim() == pid && out.join("checkpoint.safetensors").exists() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_run_into_a_busy_folder_is_refused_and_the_first_finishes() {
    let dir = scratch("busy");
    let out = dir.join("run");
    let mut first = start_long_run(&out, "40000");
    wait_until_running(&out, &first);
    let out_text = out.display().to_string();
    let ckpt = out.join("checkpoint.safetensors").display().to_string();
    let second: [&[&str]; 2] = [
        &["train", "--epochs", "5", "--no-plots", "--out", &out_text],
        &["train", "--resume", &ckpt, "--epochs", "50000"],
    ];
    for args in second {
        let refused = vnn(args);
        let stderr = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{args:?}: {stderr}");
        let expected = format!(
            "error: {out_text}: the run folder is in use by another run (process {})",
            first.id()
        );
        assert!(stderr.starts_with(&expected), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            text(&refused.stdout).is_empty(),
            "refused before any output"
        );
    }
    // While it runs, its checkpoint is always a whole one, never partial
    // or empty.
    let mut reads = 0;
    while first.try_wait().unwrap().is_none() && reads < 500 {
        Checkpoint::load(Path::new(&ckpt)).unwrap();
        reads += 1;
    }
    assert!(first.wait().unwrap().success());
    vnn::model::Model::load(out.join("model.safetensors")).unwrap();
    assert_eq!(Checkpoint::load(Path::new(&ckpt)).unwrap().step, 40000);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_lock_of_a_killed_run_does_not_block_a_new_run_or_a_resume() {
    let dir = scratch("killed");
    let out = dir.join("run");
    let mut child = start_long_run(&out, "100000000");
    wait_until_running(&out, &child);
    child.kill().unwrap(); // SIGKILL: the lock file stays behind
    child.wait().unwrap();
    assert!(out.join(LOCK_FILE).exists());

    let ckpt = out.join("checkpoint.safetensors");
    let step = Checkpoint::load(&ckpt).unwrap().step;
    let epochs = (step + 5).to_string();
    let ckpt_text = ckpt.display().to_string();
    let resumed = vnn(&["train", "--resume", &ckpt_text, "--epochs", &epochs]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert_eq!(Checkpoint::load(&ckpt).unwrap().step, step + 5);

    let out_text = out.display().to_string();
    let fresh = vnn(&["train", "--epochs", "5", "--no-plots", "--out", &out_text]);
    assert!(fresh.status.success(), "{}", text(&fresh.stderr));
    vnn::model::Model::load(out.join("model.safetensors")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_plot_that_cannot_be_written_is_a_warning_and_the_run_succeeds() {
    let dir = scratch("plot");
    let out = dir.join("run");
    // A folder where the picture should go: its rename fails.
    std::fs::create_dir_all(out.join("boundary.png")).unwrap();
    let out_text = out.display().to_string();
    let run = vnn(&["train", "--epochs", "5", "--out", &out_text]);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("boundary.png"), "{stderr}");
    assert!(
        !stderr.contains("error:") && !stderr.contains("{ "),
        "{stderr}"
    );
    // The success output is all there, and so are the other files.
    assert!(
        stdout.contains("done: 5 steps") && stdout.contains("run folder:"),
        "{stdout}"
    );
    vnn::model::Model::load(out.join("model.safetensors")).unwrap();
    for file in ["curves.png", "metrics.json"] {
        assert!(out.join(file).is_file(), "{file}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A CSV whose header has spaces around its names, the label `kind` last.
fn spaced_csv(dir: &Path) -> PathBuf {
    let mut text = String::from(" a , b ,  kind \n");
    for i in 0..30 {
        let kind = ["x", "y", "z"][i % 3];
        text.push_str(&format!("{},{},{kind}\n", i % 3, i as f32 / 30.0));
    }
    let path = dir.join("spaced.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// The `label_column` a model file records.
fn recorded_label(run: &Path) -> String {
    let file = vnn::modelfile::ModelFile::load(run.join("model.safetensors")).unwrap();
    file.metadata["label_column"].clone()
}

/// `vnn eval` of the model in `run` on `csv`, with no `--label`, succeeds.
fn evaluates(run: &Path, csv: &Path) {
    let model = run.join("model.safetensors").display().to_string();
    let csv = csv.display().to_string();
    let eval = vnn(&["eval", "--model", &model, "--data", &csv]);
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    assert!(text(&eval.stdout).contains("rows: 30"));
}

#[test]
fn a_label_with_spaces_around_it_round_trips_through_train_and_eval() {
    let dir = scratch("spaced");
    let csv = spaced_csv(&dir);
    let csv_text = csv.display().to_string();
    for (name, label) in [("last", None), ("named", Some(" kind "))] {
        let run = dir.join(name);
        let run_text = run.display().to_string();
        let mut args = vec!["train", "--data", &csv_text, "--epochs", "5", "--no-plots"];
        args.extend(["--checkpoint-every", "5", "--out", &run_text]);
        if let Some(l) = label {
            args.extend(["--label", l]);
        }
        let trained = vnn(&args);
        assert!(trained.status.success(), "{}", text(&trained.stderr));
        assert_eq!(recorded_label(&run), "kind");
        evaluates(&run, &csv);
        // The checkpoint's settings name the column as the header does.
        let ckpt = Checkpoint::load(run.join("checkpoint.safetensors")).unwrap();
        let settings: serde_json::Value = serde_json::from_str(&ckpt.settings).unwrap();
        let expected = label.map_or(serde_json::Value::Null, |_| "kind".into());
        assert_eq!(settings["label"], expected);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_trained_from_a_pipe_records_the_real_label_column() {
    let dir = scratch("stdin");
    let csv = spaced_csv(&dir);
    let run = dir.join("run");
    let mut child = Command::new(VNN)
        .args([
            "train",
            "--data",
            "/dev/stdin",
            "--epochs",
            "5",
            "--no-plots",
        ])
        .arg("--out")
        .arg(&run)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(&csv).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes).unwrap();
    drop(stdin);
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert_eq!(recorded_label(&run), "kind");
    evaluates(&run, &csv);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An observer whose `on_step` fails at one step, or whose `on_finish`
/// fails.
struct Failing {
    at_step: Option<u64>,
}

impl vnn::session::Observer for Failing {
    fn on_step(&mut self, stats: &vnn::train::StepStats, _total: u64) -> vnn::Result<()> {
        match self.at_step == Some(stats.step) {
            true => Err(vnn::Error::Output {
                stream: "stdout".into(),
                source: std::io::Error::other("closed"),
            }),
            false => Ok(()),
        }
    }

    fn on_finish(&mut self, _outcome: &vnn::session::Outcome) -> vnn::Result<()> {
        match self.at_step {
            None => Err(vnn::Error::Plot {
                path: "curves.png".into(),
                msg: "cannot be drawn".into(),
            }),
            Some(_) => Ok(()),
        }
    }
}

#[test]
fn an_observer_error_stops_the_run_as_an_interruption_and_saves_it() {
    use vnn::session::SessionBuilder;
    let dir = scratch("observer");
    let data = vnn::data::spiral(20, 3, 0);
    let model = || vnn::model::Model::new(&[2, 8, 3], vnn::model::Init::He, 0).unwrap();
    let config = vnn::train::TrainConfig {
        epochs: 20,
        ..Default::default()
    };
    let session = SessionBuilder::new(model(), config.clone(), &dir)
        .observer(Failing { at_step: Some(3) })
        .build(&data, None)
        .unwrap();
    match session.run() {
        Err(vnn::Error::Output { stream, .. }) => assert_eq!(stream, "stdout"),
        other => panic!("{other:?}"),
    }
    // Saved as an interrupted run: the model and a checkpoint of step 3.
    vnn::model::Model::load(dir.join("model.safetensors")).unwrap();
    let ckpt = dir.join("checkpoint.safetensors");
    assert_eq!(Checkpoint::load(&ckpt).unwrap().step, 3);
    // It resumes to the end; a failing `on_finish` is a warning.
    let done = SessionBuilder::new(model(), config, &dir)
        .resume_from(&ckpt)
        .unwrap()
        .observer(Failing { at_step: None })
        .build(&data, None)
        .unwrap()
        .run()
        .unwrap();
    assert_eq!((done.steps, done.interrupted), (20, false));
    assert_eq!(done.warnings, ["curves.png: cannot be drawn"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

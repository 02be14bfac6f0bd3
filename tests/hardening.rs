//! Checkpoints, resuming, Ctrl-C and divergence, through the `vnn` binary.
//!
//! A run resumed from a checkpoint must end with the same weights, bit for
//! bit, as the run left uninterrupted; a run killed mid-training must leave
//! a whole checkpoint; Ctrl-C must save and exit with 130; a diverging run
//! must stop with one clear line and keep a finite checkpoint.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use vnn::checkpoint::{self, Checkpoint};
use vnn::modelfile::ModelFile;
use vnn::train::OptimizerState;

const VNN: &str = env!("CARGO_BIN_EXE_vnn");

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("hardening")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vnn(args: &[&str]) -> Output {
    Command::new(VNN).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> Output {
    let out = vnn(args);
    assert!(
        out.status.success(),
        "vnn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn weights(dir: &Path) -> Vec<u32> {
    bits(
        vnn::model::Model::load(dir.join("model.safetensors"))
            .unwrap()
            .params(),
    )
}

/// The step of the checkpoint in `dir`, once one exists.
fn checkpoint_step(dir: &Path) -> Option<u64> {
    let path = dir.join(checkpoint::FILE_NAME);
    path.exists().then(|| Checkpoint::load(&path).unwrap().step)
}

/// Runs `settings` to completion into `a`. Runs them again into `b` with
/// an endless `--epochs`, kills that run with SIGKILL once its checkpoint
/// passed `kill_after` steps, resumes it with the original `--epochs`, and
/// checks both end with the same weights. (A resumed run may change
/// `--epochs`; nothing in a step depends on the run's length, so run B can
/// never finish before it is killed, however slow the machine.)
fn kill_and_resume(name: &str, settings: &[&str], kill_after: u64) {
    let dir = scratch(name);
    let (a, b) = (dir.join("a"), dir.join("b"));
    let epochs_at = settings
        .iter()
        .position(|s| *s == "--epochs")
        .expect("settings give --epochs")
        + 1;
    let epochs = settings[epochs_at];
    let with_out = |out: &Path, epochs: &str| {
        let mut v: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
        v[epochs_at] = epochs.to_string();
        v.extend([
            "--no-plots".into(),
            "--out".into(),
            out.display().to_string(),
        ]);
        v
    };
    let args_a = with_out(&a, epochs);
    ok(&args_a.iter().map(String::as_str).collect::<Vec<_>>());
    let total = checkpoint_step(&a).expect("the finished run leaves a checkpoint");

    let mut child = Command::new(VNN)
        .args(with_out(&b, "1000000000"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let killed_at = loop {
        if let Some(step) = checkpoint_step(&b) {
            if step >= kill_after {
                child.kill().unwrap();
                break step;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "run B stopped before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint past step {kill_after} within 120 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    child.wait().unwrap();
    // The kill may land while a newer checkpoint is being written: the file
    // is then still the whole previous one (or the whole new one).
    let step = checkpoint_step(&b).unwrap();
    assert!(
        step >= killed_at && step < total,
        "killed at step {step}, the run has {total}"
    );
    assert!(!b.join("model.safetensors").exists());

    let ckpt = b.join(checkpoint::FILE_NAME);
    let out = ok(&[
        "train",
        "--resume",
        ckpt.to_str().unwrap(),
        "--epochs",
        epochs,
        "--threads",
        "2",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("at step {step}")),
        "stdout: {stdout}"
    );
    assert_eq!(weights(&a), weights(&b), "{name}: resumed weights differ");
    assert_eq!(checkpoint_step(&b), Some(total));
}

#[test]
fn killed_full_batch_run_resumes_bit_identically() {
    kill_and_resume(
        "full_batch",
        &[
            "train",
            "--epochs",
            "6000",
            "--optimizer",
            "adam",
            "--lr",
            "0.01",
            "--dropout",
            "0.2",
            "--dropconnect",
            "0.1",
            "--checkpoint-every",
            "200",
            "--threads",
            "2",
            "--seed",
            "3",
        ],
        400,
    );
}

#[test]
fn killed_mini_batch_run_resumes_bit_identically() {
    kill_and_resume(
        "mini_batch",
        &[
            "train",
            "--epochs",
            "2000",
            "--batch-size",
            "64",
            "--optimizer",
            "momentum",
            "--lr",
            "0.1",
            "--dropout",
            "0.1",
            "--test-split",
            "0.2",
            "--standardize",
            "--checkpoint-every",
            "150",
            "--threads",
            "2",
            "--seed",
            "5",
        ],
        300,
    );
}

#[test]
fn sigint_saves_and_resumes() {
    let dir = scratch("sigint");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let settings = [
        "train",
        "--epochs",
        "4000",
        "--batch-size",
        "100",
        "--optimizer",
        "adam",
        "--lr",
        "0.005",
        "--dropout",
        "0.1",
        "--threads",
        "2",
        "--no-plots",
        "--print-every",
        "1",
        "--out",
    ];
    let with = |out: &Path| {
        let mut v: Vec<&str> = settings.to_vec();
        v.push(Box::leak(out.display().to_string().into_boxed_str()));
        v
    };
    ok(&with(&a));

    let mut child = Command::new(VNN)
        .args(with(&b))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once training has printed a few epochs.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut epochs = 0;
    for line in lines.by_ref() {
        if line.unwrap().starts_with("EPOCH") {
            epochs += 1;
            if epochs == 50 {
                break;
            }
        }
    }
    assert_eq!(epochs, 50);
    // The shell's built-in `kill`: no dependency on a kill binary.
    let status = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::spawn(move || lines.for_each(drop));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr: {stderr}");
    let ckpt = b.join(checkpoint::FILE_NAME);
    assert!(
        stderr.contains("interrupted at step") && stderr.contains(&ckpt.display().to_string()),
        "stderr: {stderr}"
    );
    let step = checkpoint_step(&b).unwrap();
    assert!((50..12_000).contains(&step), "interrupted at step {step}");
    let saved = vnn::model::Model::load(b.join("model.safetensors")).unwrap();
    let ck = Checkpoint::load(&ckpt).unwrap();
    assert_eq!(bits(saved.params()), bits(ck.model.params()));

    ok(&["--resume", ckpt.to_str().unwrap()]);
    assert_eq!(weights(&a), weights(&b));
}

#[test]
fn resume_extends_a_finished_run() {
    let dir = scratch("extend");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let base = [
        "train",
        "--optimizer",
        "momentum",
        "--lr",
        "0.2",
        "--threads",
        "2",
    ];
    let run = |out: &Path, epochs: &str, extra: &[&str]| {
        let mut v = base.to_vec();
        v.extend([
            "--epochs",
            epochs,
            "--no-plots",
            "--out",
            out.to_str().unwrap(),
        ]);
        v.extend(extra);
        ok(&v);
    };
    run(&a, "900", &[]);
    run(&b, "500", &["--checkpoint-every", "1000"]);
    assert_eq!(checkpoint_step(&b), Some(500));
    let ckpt = b.join(checkpoint::FILE_NAME);
    // Resuming a finished run without more epochs is refused and leaves the
    // run folder as it was.
    let metrics = std::fs::read(b.join("metrics.json")).unwrap();
    let out = vnn(&["train", "--resume", ckpt.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .trim_end()
            .ends_with("error: the run in this checkpoint is complete (step 500 of 500); give more --epochs to continue it"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(b.join("metrics.json")).unwrap(), metrics);
    ok(&[
        "train",
        "--resume",
        ckpt.to_str().unwrap(),
        "--epochs",
        "900",
    ]);
    assert_eq!(weights(&a), weights(&b));
}

#[test]
fn resume_refuses_settings_that_change_the_run() {
    let dir = scratch("refuse");
    ok(&[
        "train",
        "--epochs",
        "20",
        "--checkpoint-every",
        "10",
        "--no-plots",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let ckpt = dir.join(checkpoint::FILE_NAME);
    let out = vnn(&["train", "--resume", ckpt.to_str().unwrap(), "--lr", "0.5"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: --lr cannot be combined with --resume: a resumed run keeps the settings recorded in its checkpoint (only --epochs, --out, --threads, --json, --no-plots, --log-every, --print-every and --checkpoint-every may be given)"
    );
    let out = vnn(&["train", "--resume", ckpt.to_str().unwrap(), "--epochs", "5"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: the checkpoint is at step 20, past the end of a run of 5 epochs (5 steps); give more --epochs"
    );
    // A model file is not a checkpoint.
    let model = dir.join("model.safetensors");
    let out = vnn(&["train", "--resume", model.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "error: {}: not a vnn checkpoint: format is \"vnn-model\", expected \"vnn-checkpoint\"",
            model.display()
        )
    );
}

#[test]
fn resume_refuses_changed_data() {
    let dir = scratch("changed_data");
    let csv = dir.join("d.csv");
    let mut text = String::from("x0,x1,y\n");
    for i in 0..40 {
        text.push_str(&format!("{},{},{}\n", i % 7, i % 5, i % 2));
    }
    std::fs::write(&csv, &text).unwrap();
    let run = dir.join("run");
    ok(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--epochs",
        "10",
        "--checkpoint-every",
        "5",
        "--no-plots",
        "--out",
        run.to_str().unwrap(),
    ]);
    text.push_str("9,9,1\n");
    std::fs::write(&csv, &text).unwrap();
    let ckpt = run.join(checkpoint::FILE_NAME);
    let out = vnn(&["train", "--resume", ckpt.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the data differs from the data the checkpoint")
            && stderr.contains("41 rows x 2 features")
            && stderr.contains("40 rows x 2 features"),
        "stderr: {stderr}"
    );
}

#[test]
fn divergence_stops_with_one_line_and_a_finite_checkpoint() {
    for (name, data) in [("spiral", "spiral"), ("digits", "tests/data/digits.csv")] {
        let dir = scratch(&format!("diverge_{name}"));
        let data = if data == "spiral" {
            data.to_string()
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(data)
                .display()
                .to_string()
        };
        let out = vnn(&[
            "train",
            "--data",
            &data,
            "--lr",
            "1e6",
            "--optimizer",
            "sgd",
            "--epochs",
            "200",
            "--checkpoint-every",
            "2",
            "--threads",
            "2",
            "--out",
            dir.to_str().unwrap(),
        ]);
        let step = diverged_step(&out);
        let ckpt = Checkpoint::load(dir.join(checkpoint::FILE_NAME)).unwrap();
        assert!(ckpt.is_finite());
        assert!(ckpt.step < step, "checkpoint {} vs step {step}", ckpt.step);
        assert!(!dir.join("model.safetensors").exists());
    }
}

/// The step of the one line `error: training diverged at step N: ...;
/// lower the learning rate (--lr) ...` that a diverged run (exit 1) printed.
fn diverged_step(out: &Output) -> u64 {
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    let line = lines[0];
    assert!(
        line.starts_with("error: training diverged at step ")
            && line.contains("lower the learning rate (--lr)"),
        "{line}"
    );
    line["error: training diverged at step ".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Weights whose full-set evaluation overflows `f32` are a divergence too
/// (Adam's steps are about the rate, so a huge rate makes the logits of an
/// evaluation point overflow while the batch loss before the update was
/// finite): the same one line naming the learning rate, exit 1, no model
/// file, and no checkpoint of the bad state. With rate 1e30 step 1
/// overflows (no good state after step 0 was written); with 1e18 step 2
/// does, and the checkpoint of step 1 stays.
#[test]
fn an_overflowing_evaluation_is_a_divergence() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/iris.csv");
    // 1e30 overflows the first evaluation; 1e18 after at least one good step
    // (which step depends on the instruction set's rounding).
    for (lr, first) in [("1e30", true), ("1e18", false)] {
        let dir = scratch(&format!("diverge_evaluation_{lr}"));
        let out = vnn(&[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--lr",
            lr,
            "--checkpoint-every",
            "1",
            "--out",
            dir.to_str().unwrap(),
        ]);
        let at = diverged_step(&out);
        assert_eq!(at == 1, first, "lr {lr}: diverged at step {at}");
        assert!(!dir.join("model.safetensors").exists());
        let path = dir.join(checkpoint::FILE_NAME);
        if at == 1 {
            assert!(!path.exists());
        } else {
            let ckpt = Checkpoint::load(&path).unwrap();
            assert!(ckpt.is_finite());
            assert_eq!(ckpt.step, at - 1);
        }
    }
}

/// A checkpoint of a small model with an optimizer state of `m_len` and
/// `v_len` values: SGD (0, 0), momentum (`m_len`, 0) or Adam.
fn small_checkpoint(m_len: usize, v_len: usize) -> Checkpoint {
    let model = vnn::model::Model::new(&[2, 3, 2], vnn::model::Init::He, 9).unwrap();
    let optimizer = match (m_len, v_len) {
        (0, 0) => OptimizerState::Sgd,
        (m, 0) => OptimizerState::Momentum {
            velocity: vec![0.5; m],
        },
        (m, v) => OptimizerState::Adam {
            m: vec![0.5; m],
            v: vec![0.25; v],
        },
    };
    Checkpoint {
        step: 7,
        model,
        optimizer,
        settings: r#"{"seed": 1}"#.into(),
        extra: std::collections::BTreeMap::from([("label_column".into(), "y".into())]),
        best_params: None,
    }
}

fn ckpt_msg<T: std::fmt::Debug>(r: vnn::Result<T>) -> String {
    match r {
        Err(vnn::Error::Model { tensor, msg, .. }) => match tensor {
            Some(t) => format!("{t}: {msg}"),
            None => msg,
        },
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

/// Rewrites the metadata of checkpoint `bytes` with `edit`.
fn edit_metadata(
    bytes: &[u8],
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(header["__metadata__"].as_object_mut().unwrap());
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

#[test]
fn checkpoint_round_trips_for_every_optimizer_state() {
    let n = small_checkpoint(0, 0).model.params().len();
    for (m, v) in [(0, 0), (n, 0), (n, n)] {
        let c = small_checkpoint(m, v);
        let back = Checkpoint::from_bytes(&c.to_bytes("c").unwrap(), "c").unwrap();
        assert_eq!(back, c);
    }
}

#[test]
fn checkpoint_refuses_bad_state_and_bad_files() {
    let n = small_checkpoint(0, 0).model.params().len();
    assert_eq!(
        ckpt_msg(small_checkpoint(3, 0).to_bytes("c")),
        format!("optimizer.momentum.velocity: 3 values for a model of {n} parameters")
    );
    let mut c = small_checkpoint(n, n);
    if let OptimizerState::Adam { v, .. } = &mut c.optimizer {
        v[2] = f32::NAN;
    }
    assert!(!c.is_finite());
    assert_eq!(
        ckpt_msg(c.to_bytes("c")),
        "optimizer.adam.v: cannot save: value 2 is NaN"
    );
    let mut c = small_checkpoint(0, 0);
    c.settings = "[1]".into();
    assert_eq!(
        ckpt_msg(c.to_bytes("c")),
        "metadata entry \"settings\" is not a JSON object"
    );
    let mut c = small_checkpoint(0, 0);
    c.extra.insert("step".into(), "1".into());
    assert_eq!(
        ckpt_msg(c.to_bytes("c")),
        "metadata key 'step' is reserved for the checkpoint format"
    );

    let good = small_checkpoint(n, n).to_bytes("c").unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            edit_metadata(&good, |m| {
                m.remove("step");
            }),
            "missing metadata entry \"step\"",
        ),
        (
            edit_metadata(&good, |m| {
                m.insert("step".into(), "-4".into());
            }),
            "metadata entry \"step\" is not a step count: \"-4\"",
        ),
        (
            edit_metadata(&good, |m| {
                m.remove("settings");
            }),
            "missing metadata entry \"settings\"",
        ),
        (
            edit_metadata(&good, |m| {
                m.insert("settings".into(), "{".into());
            }),
            "metadata entry \"settings\" is not a JSON object: EOF while parsing an object at line 1 column 1",
        ),
        (
            edit_metadata(&good, |m| {
                m.insert("format".into(), "vnn-model".into());
            }),
            "not a vnn checkpoint: format is \"vnn-model\", expected \"vnn-checkpoint\"",
        ),
    ];
    for (bytes, msg) in cases {
        assert_eq!(ckpt_msg(Checkpoint::from_bytes(&bytes, "c")), msg);
    }
    // A checkpoint is not a model file, and a model file not a checkpoint.
    assert_eq!(
        ckpt_msg(ModelFile::from_bytes(&good, "c").map(|f| f.model)),
        "not a vnn model: format is \"vnn-checkpoint\", expected \"vnn-model\""
    );
    let model_file = ModelFile {
        model: small_checkpoint(0, 0).model,
        metadata: Default::default(),
    }
    .to_bytes()
    .unwrap();
    assert_eq!(
        ckpt_msg(Checkpoint::from_bytes(&model_file, "c")),
        "not a vnn checkpoint: format is \"vnn-model\", expected \"vnn-checkpoint\""
    );
}

#[test]
fn checkpoint_save_is_atomic_and_keeps_the_old_file_on_error() {
    let dir = scratch("atomic");
    let path = dir.join(checkpoint::FILE_NAME);
    let n = small_checkpoint(0, 0).model.params().len();
    let good = small_checkpoint(n, n);
    good.save(&path).unwrap();
    let mut bad = small_checkpoint(n, n);
    bad.model.params_mut()[0] = f32::INFINITY;
    assert!(bad.save(&path).is_err());
    assert_eq!(Checkpoint::load(&path).unwrap(), good);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [checkpoint::FILE_NAME]);
}

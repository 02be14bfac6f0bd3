//! The run API of the library: checkpoints, interruption by the flag,
//! resume (bit-identical to an uninterrupted run), observers, divergence
//! and the resume refusals.

use std::path::PathBuf;
use vnn::checkpoint::{self, Checkpoint};
use vnn::data::{spiral, Dataset};
use vnn::model::{Init, Model};
use vnn::session::CurvePoint;
use vnn::session::{Interrupter, Observer, SessionBuilder};
use vnn::train::{Optimizer, StepStats, TrainConfig, Trainer};
use vnn::Error;

/// An empty scratch folder of this test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vnn-session-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn model() -> Model {
    Model::new(&[2, 16, 3], Init::He, 7).unwrap()
}

/// Mini-batches, Adam and dropout: the step's masks and batch order must
/// come back right after a resume.
fn config() -> TrainConfig {
    TrainConfig {
        epochs: 12,
        lr: 0.01,
        optimizer: Optimizer::Adam,
        batch_size: Some(32),
        dropout: 0.1,
        seed: 3,
        ..TrainConfig::default()
    }
}

/// Counts what it sees; interrupts at `stop_at`.
#[derive(Default)]
struct Recorder {
    starts: Vec<(u64, u64)>,
    steps: Vec<u64>,
    logs: Vec<u64>,
    ends: usize,
    finishes: usize,
    notes: Vec<String>,
    stop_at: Option<(u64, Interrupter)>,
}

impl Observer for &mut Recorder {
    fn on_start(&mut self, start: u64, total: u64) -> vnn::Result<()> {
        self.starts.push((start, total));
        Ok(())
    }
    fn on_log(&mut self, _trainer: &Trainer<'_>, point: &CurvePoint) -> vnn::Result<()> {
        // A log point comes before the step's `on_step` (runs from step 0).
        assert_eq!(self.steps.len() as u64 + 1, point.step);
        self.logs.push(point.step);
        Ok(())
    }
    fn on_step(&mut self, stats: &StepStats, _total: u64) -> vnn::Result<()> {
        self.steps.push(stats.step);
        if let Some((at, stop)) = &self.stop_at {
            if stats.step == *at {
                stop.interrupt();
            }
        }
        Ok(())
    }
    fn on_end(&mut self) -> vnn::Result<()> {
        self.ends += 1;
        Ok(())
    }
    fn on_note(&mut self, text: &str) -> vnn::Result<()> {
        self.notes.push(text.to_string());
        Ok(())
    }
    fn on_finish(&mut self, _outcome: &vnn::session::Outcome) -> vnn::Result<()> {
        self.finishes += 1;
        Ok(())
    }
}

#[test]
fn interrupted_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let data = spiral(40, 3, 0);
    let whole_dir = scratch("whole");
    let whole = SessionBuilder::new(model(), config(), &whole_dir)
        .checkpoint_every(5)
        .build(&data, None)
        .unwrap()
        .run()
        .unwrap();
    let total = whole.total;
    assert_eq!((whole.steps, whole.interrupted), (total, false));

    let dir = scratch("resumed");
    let stop = Interrupter::new();
    let mut rec = Recorder {
        stop_at: Some((7, stop.clone())),
        ..Recorder::default()
    };
    let first = SessionBuilder::new(model(), config(), &dir)
        .checkpoint_every(5)
        .data_fingerprint("spiral", &data)
        .interrupter(stop)
        .observer(&mut rec)
        .build(&data, None)
        .unwrap()
        .run()
        .unwrap();
    assert!(first.interrupted);
    assert_eq!(
        (first.steps, rec.steps.len(), rec.ends, rec.finishes),
        (7, 7, 1, 0)
    );
    // Interrupted: the model and a checkpoint of step 7 are saved.
    let ckpt = Checkpoint::load(dir.join(checkpoint::FILE_NAME)).unwrap();
    assert_eq!(ckpt.step, 7);
    assert!(Model::load(dir.join("model.safetensors")).is_ok());

    let done = SessionBuilder::new(model(), config(), &dir)
        .checkpoint_every(5)
        .data_fingerprint("spiral", &data)
        .resume_from(dir.join(checkpoint::FILE_NAME))
        .unwrap()
        .build(&data, None)
        .unwrap()
        .run()
        .unwrap();
    assert_eq!((done.steps, done.interrupted), (total, false));
    // Exact: the resumed run replays the same arithmetic.
    assert_eq!(done.model.params(), whole.model.params());
    assert_eq!(done.curve, whole.curve);
    let _ = std::fs::remove_dir_all(&whole_dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn observers_see_every_step_and_every_log_point() {
    let data = spiral(30, 3, 1);
    let dir = scratch("observer");
    let mut rec = Recorder::default();
    let config = TrainConfig {
        epochs: 30,
        ..TrainConfig::default()
    };
    let test = spiral(10, 3, 2);
    let outcome = SessionBuilder::new(model(), config, &dir)
        .log_every(7)
        .observer(&mut rec)
        .build(&data, Some(&test))
        .unwrap()
        .evaluate_at_end(&data)
        .run()
        .unwrap();
    assert_eq!(rec.starts, [(0, 30)]);
    assert_eq!(rec.steps, (1..=30).collect::<Vec<_>>());
    // Every 7 steps, plus the first and the last.
    assert_eq!(rec.logs, [1, 7, 14, 21, 28, 30]);
    assert_eq!((rec.ends, rec.finishes), (1, 1));
    let steps: Vec<u64> = outcome.curve.iter().map(|p| p.step).collect();
    assert_eq!(steps, rec.logs);
    assert!(outcome.curve.iter().all(|p| p.test_accuracy.is_some()));
    assert!(outcome.train_eval.is_some() && outcome.test_eval.is_some());
    // Without checkpointing, no checkpoint file.
    assert!(!dir.join(checkpoint::FILE_NAME).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn divergence_stops_and_keeps_the_last_good_checkpoint() {
    let data = spiral(40, 3, 0);
    let dir = scratch("diverge");
    let config = TrainConfig {
        epochs: 200,
        lr: 1e6,
        ..TrainConfig::default()
    };
    let mut rec = Recorder::default();
    let err = SessionBuilder::new(model(), config, &dir)
        .checkpoint_every(2)
        .observer(&mut rec)
        .build(&data, None)
        .unwrap()
        .run()
        .unwrap_err();
    let Error::Diverged { step, .. } = err else {
        panic!("expected divergence, got {err}");
    };
    assert_eq!((rec.ends, rec.finishes), (1, 0));
    let ckpt = Checkpoint::load(dir.join(checkpoint::FILE_NAME)).unwrap();
    assert!(ckpt.is_finite());
    assert!(
        ckpt.step < step,
        "checkpoint of step {} at divergence {step}",
        ckpt.step
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resume_refuses_a_complete_run_and_other_data() {
    let data = spiral(20, 3, 0);
    let dir = scratch("refuse");
    let config = TrainConfig {
        epochs: 5,
        ..TrainConfig::default()
    };
    SessionBuilder::new(model(), config.clone(), &dir)
        .checkpoint_every(5)
        .data_fingerprint("spiral", &data)
        .build(&data, None)
        .unwrap()
        .run()
        .unwrap();
    let path = dir.join(checkpoint::FILE_NAME);
    let resume = |d: &Dataset, epochs| {
        let config = TrainConfig {
            epochs,
            ..config.clone()
        };
        SessionBuilder::new(model(), config, &dir)
            .data_fingerprint("spiral", d)
            .resume_from(&path)
            .unwrap()
            .build(d, None)
            .map(|_| ())
    };
    let err = resume(&data, 5).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RunEnded {
                step: 5,
                total: 5,
                epochs: 5
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("is complete"), "{err}");
    let err = resume(&data, 3).unwrap_err();
    assert!(err.to_string().contains("past the end"), "{err}");
    let other = spiral(20, 3, 9);
    let err = resume(&other, 10).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("spiral: the data differs from the data the checkpoint"),
        "{err}"
    );
    // More epochs continue it.
    assert!(resume(&data, 10).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

//! The run API's evaluation points, early stopping and learning-rate
//! schedules: full-set curve figures, the best weights at the end, and
//! resumed runs (early stopping, plateau, cosine) ending bit-identical to
//! uninterrupted ones.

use std::path::PathBuf;
use vnn::checkpoint::{self, Checkpoint};
use vnn::data::{spiral, stratified_split, Dataset};
use vnn::model::{Init, Model};
use vnn::session::{EarlyStopping, Interrupter, Observer, Outcome, SessionBuilder};
use vnn::train::{evaluate, LrSchedule, Optimizer, StepStats, TrainConfig};
use vnn::Error;

/// An empty scratch folder of this test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vnn-early-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn model() -> Model {
    Model::new(&[2, 16, 3], Init::He, 7).unwrap()
}

/// Mini-batches of 32 (8 steps an epoch on 240 rows) with Adam.
fn config(epochs: u64, lr: f32) -> TrainConfig {
    TrainConfig {
        epochs,
        lr,
        optimizer: Optimizer::Adam,
        batch_size: Some(32),
        seed: 5,
        ..TrainConfig::default()
    }
}

/// The spiral's training and validation rows (80/20, stratified).
fn data() -> (Dataset, Dataset) {
    stratified_split(&spiral(100, 3, 2), 0.2, 9).unwrap()
}

/// Interrupts at step `at`.
struct StopAt(u64, Interrupter);

impl Observer for StopAt {
    fn on_step(&mut self, stats: &StepStats, _total: u64) -> vnn::Result<()> {
        if stats.step == self.0 {
            self.1.interrupt();
        }
        Ok(())
    }
}

/// A run of `epochs` with `schedule` and `early`, validated on `val`;
/// interrupted at step `stop_at` and resumed to the end when given.
fn run(
    name: &str,
    (epochs, lr): (u64, f32),
    schedule: LrSchedule,
    early: Option<EarlyStopping>,
    stop_at: Option<u64>,
) -> (Outcome, Vec<u8>) {
    let (train, val) = data();
    let dir = scratch(name);
    let builder = |stop: Interrupter| {
        let mut b = SessionBuilder::new(model(), config(epochs, lr), &dir)
            .log_every(10)
            .checkpoint_every(7)
            .lr_schedule(schedule)
            .interrupter(stop.clone());
        if let Some(e) = early {
            b = b.early_stopping(e);
        }
        if let Some(at) = stop_at {
            b = b.observer(StopAt(at, stop));
        }
        b
    };
    let mut outcome = builder(Interrupter::new())
        .build(&train, None)
        .unwrap()
        .validation(&val)
        .run()
        .unwrap();
    if stop_at.is_some() {
        assert!(outcome.interrupted, "{name}: not interrupted");
        let mut b = SessionBuilder::new(model(), config(epochs, lr), &dir)
            .log_every(10)
            .checkpoint_every(7)
            .lr_schedule(schedule);
        if let Some(e) = early {
            b = b.early_stopping(e);
        }
        outcome = b
            .resume_from(dir.join(checkpoint::FILE_NAME))
            .unwrap()
            .build(&train, None)
            .unwrap()
            .validation(&val)
            .run()
            .unwrap();
    }
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (outcome, bytes)
}

#[test]
fn curve_points_are_full_set_figures_at_log_points_and_epoch_ends() {
    let (train, val) = data();
    let (outcome, _) = run("points", (6, 0.01), LrSchedule::Constant, None, None);
    // 8 steps an epoch, 48 steps: step 1, the log points 10..40, the epoch
    // ends 8..48.
    let steps: Vec<u64> = outcome.curve.iter().map(|p| p.step).collect();
    assert_eq!(steps, [1, 8, 10, 16, 20, 24, 30, 32, 40, 48]);
    let last = outcome.curve.last().unwrap();
    let (t, v) = (
        evaluate(&outcome.model, &train).unwrap(),
        evaluate(&outcome.model, &val).unwrap(),
    );
    assert_eq!((last.train_loss, last.train_accuracy), (t.loss, t.accuracy));
    assert_eq!(
        (last.val_loss, last.val_accuracy),
        (Some(v.loss), Some(v.accuracy))
    );
    assert_eq!((last.test_loss, last.lr), (None, 0.01));
    assert_eq!(outcome.train_eval.as_ref().unwrap(), &t);
    assert_eq!(outcome.val_eval.as_ref().unwrap(), &v);
    let j = outcome.summary();
    assert_eq!(j["train_loss"], t.loss);
    assert_eq!(j["val_accuracy"], v.accuracy);
    assert_eq!(j["stopped_early"], false);
    assert!(j.get("best_step").is_none() && j["test_loss"].is_null());
    // The batch objective of the last step is another number.
    assert_ne!(outcome.final_loss, t.loss);
}

/// The steps of the curve of a 12-epoch run on `train` (240 rows) with
/// `batch_size`, logging every 5 steps.
fn curve_steps(name: &str, batch_size: Option<usize>) -> Vec<u64> {
    let (train, _) = data();
    let dir = scratch(name);
    let config = TrainConfig {
        batch_size,
        ..config(12, 0.01)
    };
    let outcome = SessionBuilder::new(model(), config, &dir)
        .log_every(5)
        .build(&train, None)
        .unwrap()
        .run()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    outcome.curve.iter().map(|p| p.step).collect()
}

#[test]
fn a_batch_that_covers_the_data_still_evaluates_every_epoch() {
    // A batch size at or above the 240 rows: one step an epoch, and every
    // epoch's end is an evaluation point.
    for b in [240, 1000] {
        assert_eq!(
            curve_steps(&format!("whole-{b}"), Some(b)),
            (1..=12).collect::<Vec<_>>()
        );
    }
    // Without a batch size (full batch), only the log points, the first and
    // the last step.
    assert_eq!(curve_steps("full", None), [1, 5, 10, 12]);
    // Mini-batches of 120: two steps an epoch, ends 2, 4, ..., 24.
    let mut mini: Vec<u64> = (1..=12).map(|e| 2 * e).chain([1, 5, 15]).collect();
    mini.sort_unstable();
    assert_eq!(curve_steps("half", Some(120)), mini);
}

#[test]
fn early_stopping_ends_with_the_best_weights_and_resumes_bit_exactly() {
    let early = Some(EarlyStopping {
        patience: 3,
        min_delta: 1e-4,
    });
    let (whole, whole_bytes) = run("es-whole", (400, 0.05), LrSchedule::Constant, early, None);
    assert!(whole.stopped_early, "never stopped: {:?}", whole.best);
    assert!(whole.steps < whole.total);
    let (best_step, best_loss) = whole.best.unwrap();
    // The final model is the best one: its validation loss is the best.
    let (_, val) = data();
    assert_eq!(evaluate(&whole.model, &val).unwrap().loss, best_loss);
    let best_point = whole.curve.iter().find(|p| p.step == best_step).unwrap();
    assert_eq!(best_point.val_loss, Some(best_loss));
    assert!(whole.curve.iter().all(|p| p.val_loss.unwrap() >= best_loss));
    // Patience 3: three evaluations after the best, none better by 1e-4.
    let after = whole.curve.iter().filter(|p| p.step > best_step).count();
    assert_eq!(after, 3);
    let j = whole.summary();
    assert_eq!(
        (j["best_step"].as_u64(), j["best_val_loss"].as_f64()),
        (Some(best_step), Some(best_loss))
    );
    assert_eq!(j["val_loss"].as_f64(), Some(best_loss));
    // 8 steps an epoch: `epochs` stays the planned 400, `epochs_run` counts
    // the epochs started (a partial last one included).
    let started = whole.steps.div_ceil(8);
    assert!(started < 400);
    assert_eq!((whole.epochs, whole.epochs_run), (400, started));
    assert_eq!(
        (j["epochs"].as_u64(), j["epochs_run"].as_u64()),
        (Some(400), Some(started))
    );

    for at in [best_step - 1, best_step + 2, 3] {
        let (resumed, bytes) = run(
            "es-resumed",
            (400, 0.05),
            LrSchedule::Constant,
            early,
            Some(at),
        );
        assert_eq!(bytes, whole_bytes, "interrupted at {at}");
        assert_eq!((resumed.steps, resumed.best), (whole.steps, whole.best));
        assert!(resumed.stopped_early);
        assert_eq!(resumed.curve, whole.curve);
    }
}

#[test]
fn a_run_that_reaches_its_end_keeps_the_best_weights_too() {
    let early = Some(EarlyStopping {
        patience: 1000,
        min_delta: 0.0,
    });
    let (outcome, _) = run("es-end", (30, 0.2), LrSchedule::Constant, early, None);
    assert!(!outcome.stopped_early && outcome.steps == outcome.total);
    let (best_step, best_loss) = outcome.best.unwrap();
    let last = outcome.curve.last().unwrap();
    assert!(
        best_step < last.step,
        "the last step was the best: pick another lr"
    );
    let (_, val) = data();
    assert_eq!(evaluate(&outcome.model, &val).unwrap().loss, best_loss);
    assert!(last.val_loss.unwrap() > best_loss);
}

#[test]
fn a_resumed_run_that_had_stopped_early_is_refused() {
    let (train, val) = data();
    let dir = scratch("es-refuse");
    let early = EarlyStopping {
        patience: 2,
        min_delta: 1e-4,
    };
    let new = || {
        SessionBuilder::new(model(), config(400, 0.05), &dir)
            .checkpoint_every(1000)
            .early_stopping(early)
    };
    let done = new()
        .build(&train, None)
        .unwrap()
        .validation(&val)
        .run()
        .unwrap();
    assert!(done.stopped_early);
    let ckpt = Checkpoint::load(dir.join(checkpoint::FILE_NAME)).unwrap();
    assert_eq!(ckpt.step, done.steps);
    assert_eq!(
        ckpt.best_params.as_deref().unwrap().len(),
        done.model.params().len()
    );
    let refused = new()
        .resume(ckpt, dir.join(checkpoint::FILE_NAME))
        .build(&train, None);
    match refused {
        Err(Error::StoppedEarly { step, best_step }) => {
            assert_eq!(
                (step, Some(best_step)),
                (done.steps, done.best.map(|b| b.0))
            );
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plateau_lowers_the_rate_and_resumes_bit_exactly() {
    let plateau = LrSchedule::Plateau {
        gamma: 0.5,
        patience: 2,
        min_delta: 1e-4,
    };
    let (whole, whole_bytes) = run("plateau-whole", (60, 0.2), plateau, None, None);
    let rates: Vec<f32> = whole.curve.iter().map(|p| p.lr).collect();
    assert_eq!(rates[0], 0.2);
    assert!(rates.windows(2).all(|w| w[1] <= w[0]), "{rates:?}");
    let last = *rates.last().unwrap();
    assert!(last < 0.2, "never lowered: {rates:?}");
    // Powers of gamma only.
    let k = (0.2f64 / last as f64).log2().round() as i32;
    assert!((last as f64 - 0.2 * 0.5f64.powi(k)).abs() < 1e-7, "{last}");
    let first_cut = whole.curve.iter().find(|p| p.lr < 0.2).unwrap().step;
    for at in [first_cut - 3, first_cut + 5] {
        let (resumed, bytes) = run("plateau-resumed", (60, 0.2), plateau, None, Some(at));
        assert_eq!(bytes, whole_bytes, "interrupted at {at}");
        assert_eq!(resumed.curve, whole.curve);
    }
}

#[test]
fn cosine_anneals_to_its_minimum_and_resumes_bit_exactly() {
    let cosine = LrSchedule::Cosine { min: 0.001 };
    let (whole, whole_bytes) = run("cosine-whole", (20, 0.1), cosine, None, None);
    let rates: Vec<f32> = whole.curve.iter().map(|p| p.lr).collect();
    assert_eq!(rates[0], 0.1);
    assert!(rates.windows(2).all(|w| w[1] < w[0]), "{rates:?}");
    // Step 160 of 160 applies the rate of 0-based step 159.
    let (lr, min) = (f64::from(0.1f32), f64::from(0.001f32));
    let expected = min + (lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * 159.0 / 160.0).cos());
    assert_eq!(*rates.last().unwrap(), expected as f32);
    let (resumed, bytes) = run("cosine-resumed", (20, 0.1), cosine, None, Some(77));
    assert_eq!(bytes, whole_bytes);
    assert_eq!(resumed.curve, whole.curve);
}

#[test]
fn bad_loop_settings_are_refused() {
    let (train, _) = data();
    let dir = scratch("refused");
    let b = || SessionBuilder::new(model(), config(2, 0.1), &dir);
    let e = EarlyStopping {
        patience: 0,
        min_delta: 0.0,
    };
    assert!(matches!(
        b().early_stopping(e).build(&train, None),
        Err(Error::Setting { .. })
    ));
    let bad = [
        LrSchedule::Step {
            gamma: 0.0,
            every: 1,
        },
        LrSchedule::Step {
            gamma: 0.5,
            every: 0,
        },
        LrSchedule::Cosine { min: 0.5 },
        LrSchedule::Plateau {
            gamma: 1.5,
            patience: 1,
            min_delta: 0.0,
        },
        LrSchedule::Plateau {
            gamma: 0.5,
            patience: 0,
            min_delta: 0.0,
        },
        LrSchedule::Plateau {
            gamma: 0.5,
            patience: 1,
            min_delta: -1.0,
        },
    ];
    for s in bad {
        assert!(
            matches!(
                b().lr_schedule(s).build(&train, None),
                Err(Error::Setting { .. })
            ),
            "{s:?}"
        );
    }
    assert!(!dir.exists());
}

#[test]
fn early_stopping_and_plateau_decide_alike_for_any_thread_count() {
    let early = Some(EarlyStopping {
        patience: 3,
        min_delta: 1e-4,
    });
    let plateau = LrSchedule::Plateau {
        gamma: 0.5,
        patience: 2,
        min_delta: 1e-4,
    };
    let runs: Vec<(Outcome, Vec<u8>)> = [1, 3]
        .map(|threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let name = format!("threads-{threads}");
            pool.install(|| run(&name, (400, 0.05), plateau, early, None))
        })
        .into();
    assert!(runs[0].0.stopped_early);
    assert_eq!(runs[0].1, runs[1].1);
    assert_eq!(runs[0].0.curve, runs[1].0.curve);
}

#[test]
fn checkpoints_carry_the_best_weights_as_one_tensor() {
    let model = model();
    let n = model.params().len();
    let mut ckpt = Checkpoint {
        step: 3,
        model,
        optimizer: vnn::train::OptimizerState::Sgd,
        settings: "{}".into(),
        extra: Default::default(),
        best_params: Some((0..n).map(|i| i as f32 / 7.0).collect()),
    };
    let back = Checkpoint::from_bytes(&ckpt.to_bytes("mem").unwrap(), "mem").unwrap();
    assert_eq!(back, ckpt);
    ckpt.best_params = Some(vec![0.5; n - 1]);
    let e = ckpt.to_bytes("mem").unwrap_err().to_string();
    assert!(e.contains(checkpoint::TENSOR_BEST_PARAMS), "{e}");
    ckpt.best_params = Some(vec![f32::NAN; n]);
    assert!(!ckpt.is_finite());
}

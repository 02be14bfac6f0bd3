//! The defaults chosen by the data: the source text's run for the spiral,
//! scikit-learn's `MLPClassifier` for CSV data (standardized, Adam lr 1e-3,
//! batches of `min(200, rows)`, 200 epochs, Glorot-uniform init, reg 1e-4),
//! and the accuracies they reach with fixed seeds.
//!
//! The digits check here trains through the library with seeds 1..3 (the
//! same code path as `vnn train`); the same check through the binary is
//!
//! ```sh
//! for s in 1 2 3; do vnn train --data tests/data/digits.csv --test-split 0.2 --seed $s --json --no-plots; done
//! ```
//!
//! whose `test_accuracy` values average 0.980 (release build).

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vnn::data::stratified_split;
use vnn::model::{Init, Model};
use vnn::settings::{InitKind, OptimizerKind, TrainOptions};
use vnn::train::{evaluate, Trainer};

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("defaults")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vnn"))
        .args(args)
        .output()
        .expect("the vnn binary runs")
}

/// The `--json` object of a successful run (the last line of stdout).
fn last_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "vnn failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("stdout has lines")).unwrap()
}

#[test]
fn iris_defaults_reach_093_mean_training_accuracy() {
    let iris = data("iris.csv");
    let mut accs = Vec::new();
    for seed in ["1", "2", "3"] {
        let dir = tmp(&format!("iris-{seed}"));
        let out = vnn(&[
            "train",
            "--data",
            &iris,
            "--seed",
            seed,
            "--json",
            "--no-plots",
        ]
        .into_iter()
        .chain(["--out", dir.to_str().unwrap()])
        .collect::<Vec<_>>());
        // With --json the lines for people go to stderr.
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = last_json(&out);
        assert_eq!(
            stderr.lines().nth(1),
            Some("defaults for CSV data: standardized, adam lr 0.001, batches of 150, 200 epochs, glorot init, reg 0.0001"),
            "{stderr}"
        );
        assert_eq!(json["epochs"], 200);
        accs.push(json["train_accuracy"].as_f64().unwrap());
    }
    let mean = accs.iter().sum::<f64>() / 3.0;
    eprintln!("iris with the CSV defaults: training accuracies {accs:?}, mean {mean:.4}");
    assert!(mean >= 0.93, "mean {mean}");
}

#[test]
fn digits_defaults_reach_094_mean_test_accuracy() {
    let mut accs = Vec::new();
    for seed in 1..=3 {
        let options = TrainOptions {
            data: data("digits.csv"),
            test_split: Some(0.2),
            seed,
            ..TrainOptions::default()
        };
        let s = options.settings();
        let (full, _) = s.load_data().unwrap();
        let (train, test) = stratified_split(&full, 0.2, seed).unwrap();
        let (model, seen) = s.build_model(&train).unwrap();
        let mut trainer = Trainer::new(model, &seen, s.config()).unwrap();
        // 1437 training rows in batches of 200: 8 steps per epoch.
        assert_eq!(trainer.total_steps(), 200 * 8);
        for _ in 0..trainer.total_steps() {
            trainer.step().unwrap();
        }
        accs.push(evaluate(trainer.model(), &test).unwrap().accuracy);
    }
    let mean = accs.iter().sum::<f64>() / 3.0;
    eprintln!("digits with the CSV defaults: test accuracies {accs:?}, mean {mean:.4}");
    assert!(mean >= 0.94, "mean {mean}");
}

#[test]
fn only_what_is_not_given_is_a_default() {
    let spiral = TrainOptions::default().settings();
    assert_eq!(
        (spiral.epochs, spiral.lr, spiral.reg, spiral.optimizer),
        (10_000, 1.0, 1e-3, OptimizerKind::Sgd)
    );
    assert_eq!(
        (spiral.batch_size, spiral.standardize, spiral.init),
        (None, false, InitKind::He)
    );
    let given = TrainOptions {
        data: "iris.csv".into(),
        optimizer: Some(OptimizerKind::Sgd),
        no_standardize: true,
        batch_size: Some(16),
        init: Some(InitKind::He),
        ..TrainOptions::default()
    };
    let s = given.settings();
    assert_eq!(
        (s.optimizer, s.lr, s.standardize),
        (OptimizerKind::Sgd, 1e-3, false)
    );
    assert_eq!(
        (s.batch_size, s.init, s.epochs),
        (Some(16), InitKind::He, 200)
    );
    assert_eq!(
        given.chosen_defaults(150).unwrap(),
        "defaults for CSV data: lr 0.001, 200 epochs, reg 0.0001"
    );
    let all = TrainOptions {
        epochs: Some(5),
        lr: Some(0.5),
        reg: Some(0.0),
        optimizer: Some(OptimizerKind::Adam),
        batch_size: Some(10),
        standardize: true,
        init: Some(InitKind::Small),
        ..TrainOptions::default()
    };
    assert_eq!(all.chosen_defaults(300), None);
    let spiral_lr = TrainOptions {
        lr: Some(0.5),
        ..TrainOptions::default()
    };
    assert_eq!(
        spiral_lr.chosen_defaults(300).unwrap(),
        "defaults of the source text's spiral run: raw features, sgd, full batch, 10000 epochs, he init, reg 0.001"
    );
}

#[test]
fn the_spiral_header_names_the_source_texts_run() {
    let dir = tmp("spiral");
    let out = vnn(&[
        "train",
        "--epochs",
        "3",
        "--no-plots",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        stdout.lines().nth(1),
        Some("defaults of the source text's spiral run: raw features, sgd lr 1, full batch, he init, reg 0.001"),
        "{stdout}"
    );
    // Nothing given but the spiral's size: the source text's run as it stands.
    let out = vnn(&[
        "train",
        "--spiral-points",
        "5",
        "--no-plots",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        stdout.lines().nth(1),
        Some("defaults of the source text's spiral run"),
        "{stdout}"
    );
}

#[test]
fn glorot_draws_the_documented_stream() {
    let (sizes, seed) = ([5usize, 7, 3], 42);
    let model = Model::new(&sizes, Init::Glorot, seed).unwrap();
    // The documented stream, rebuilt: layer by layer, weights (row-major)
    // then biases, each (2u - 1) b with u = (next_u64 >> 11) / 2^53.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut expected = Vec::new();
    for w in sizes.windows(2) {
        let b = (6.0 / (w[0] + w[1]) as f64).sqrt();
        for _ in 0..w[0] * w[1] + w[1] {
            let u = (rng.next_u64() >> 11) as f64 / 9_007_199_254_740_992.0;
            expected.push(((2.0 * u - 1.0) * b) as f32);
        }
    }
    assert_eq!(model.params(), &expected[..]);
    // A wide layer: within the bound, mean 0, variance b^2 / 3.
    let big = Model::new(&[300, 200], Init::Glorot, 1).unwrap();
    let b = (6.0f64 / 500.0).sqrt();
    let p: Vec<f64> = big.params().iter().map(|&v| v as f64).collect();
    assert!(p.iter().all(|v| v.abs() <= b));
    let mean = p.iter().sum::<f64>() / p.len() as f64;
    let var = p.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / p.len() as f64;
    // 60,200 draws: the standard error of the mean is b / sqrt(3 * 60200) (about 2.6e-4).
    assert!(mean.abs() < 1.5e-3, "mean {mean}");
    approx::assert_relative_eq!(var, b * b / 3.0, max_relative = 0.02);
    // The biases are drawn too.
    assert!(big.params()[300 * 200..].iter().any(|&v| v != 0.0));
}

/// `vnn train`'s options as a parser of their own.
#[derive(clap::Parser)]
struct Train {
    #[command(flatten)]
    options: TrainOptions,
}

#[test]
fn the_default_options_are_the_command_line_without_options() {
    use clap::Parser;
    let parsed = Train::try_parse_from(["train"]).unwrap().options;
    assert_eq!(parsed, TrainOptions::default());
    let given = Train::try_parse_from(["train", "--lr", "0.5", "--no-standardize"]).unwrap();
    assert_eq!(given.options.lr, Some(0.5));
    assert!(given.options.no_standardize && given.options.epochs.is_none());
    assert!(Train::try_parse_from(["train", "--standardize", "--no-standardize"]).is_err());
}

#[test]
fn metrics_json_records_only_the_settings_that_apply() {
    use vnn::settings::{ModelKind, TrainOptions};
    let spiral = TrainOptions::default()
        .settings()
        .metrics_json(&[2, 100, 3]);
    assert_eq!(spiral["hidden"], serde_json::json!([100]));
    assert_eq!(
        (
            spiral["spiral_points"].clone(),
            spiral["spiral_classes"].clone()
        ),
        (100.into(), 3.into())
    );
    for absent in ["momentum", "label", "delimiter"] {
        assert!(spiral.get(absent).is_none(), "{absent} in {spiral}");
    }
    let csv = TrainOptions {
        data: "iris.csv".into(),
        model: ModelKind::Linear,
        optimizer: Some(OptimizerKind::Momentum),
        momentum: 0.5,
        label: Some("species".into()),
        delimiter: b';',
        ..TrainOptions::default()
    };
    let m = csv.settings().metrics_json(&[4, 3]);
    assert_eq!(m["momentum"], 0.5);
    assert_eq!(
        (m["label"].clone(), m["delimiter"].clone()),
        ("species".into(), ";".into())
    );
    assert_eq!(
        (m["optimizer"].clone(), m["class_weight"].clone()),
        ("momentum".into(), "none".into())
    );
    for absent in ["hidden", "spiral_points", "spiral_classes"] {
        assert!(m.get(absent).is_none(), "{absent} in {m}");
    }
    // Every other setting is recorded, resolved.
    for key in [
        "data",
        "model",
        "sizes",
        "epochs",
        "lr",
        "reg",
        "batch_size",
        "dropout",
        "dropconnect",
    ] {
        assert!(m.get(key).is_some(), "{key} missing from {m}");
    }
    assert_eq!(
        (
            m["epochs"].clone(),
            m["batch_size"].clone(),
            m["init"].clone()
        ),
        (200.into(), 200.into(), "glorot".into())
    );
}

#[test]
fn a_resumed_csv_run_keeps_its_resolved_defaults() {
    let iris = data("iris.csv");
    let (parts, whole) = (tmp("resume-parts"), tmp("resume-whole"));
    let run = |dir: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--json",
            "--no-plots",
            "--out",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        last_json(&vnn(&args))
    };
    run(
        &parts,
        &["--data", &iris, "--epochs", "4", "--checkpoint-every", "2"],
    );
    let ckpt_path = parts.join(vnn::checkpoint::FILE_NAME);
    let ckpt = vnn::checkpoint::Checkpoint::load(&ckpt_path).unwrap();
    let s: Value = serde_json::from_str(&ckpt.settings).unwrap();
    let keys = [
        "optimizer",
        "lr",
        "batch_size",
        "standardize",
        "init",
        "reg",
    ];
    let resolved: Vec<Value> = keys.iter().map(|k| s[*k].clone()).collect();
    let want = serde_json::json!(["adam", 0.001, 200, true, "glorot", 0.0001]);
    assert_eq!(Value::Array(resolved), want);
    // Continued to 6 epochs, it ends where a 6-epoch run ends, bit for bit.
    let ckpt_arg = ckpt_path.to_str().unwrap();
    let resumed = run(&parts, &["--resume", ckpt_arg, "--epochs", "6"]);
    let straight = run(&whole, &["--data", &iris, "--epochs", "6"]);
    assert_eq!(resumed["final_loss"], straight["final_loss"]);
    let a = Model::load(parts.join("model.safetensors")).unwrap();
    let b = Model::load(whole.join("model.safetensors")).unwrap();
    assert_eq!(a.params(), b.params());
}

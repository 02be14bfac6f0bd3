//! Class weights (`--class-weight balanced`): the weighted loss and its
//! gradient against an independent `f64` reference with central
//! differences, mini-batches with resume (bit-exact), thread counts
//! (bit-identical), and the command line.
//!
//! Gradient tolerance as in `tests/gradcheck.rs`: central differences with
//! `h = 1e-6` in `f64`, and `|analytic - numeric| / max(|analytic|,
//! |numeric|, 1e-4) <= 1e-3` (the analytic side is `f32`; entries far below
//! the floor are held to an absolute 1e-7).

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use vnn::data::Dataset;
use vnn::model::{Init, Model};
use vnn::session::{Interrupter, SessionBuilder};
use vnn::train::{balanced_class_weights, Optimizer, TrainConfig, Trainer};

const H: f64 = 1e-6;

/// Unbalanced data: `rows` rows of `d` features, labels 0 (most), 1, 2.
fn unbalanced(rows: usize, d: usize, seed: u64) -> Dataset {
    let mut r = Xoshiro256PlusPlus::seed_from_u64(seed);
    let x = (0..rows * d)
        .map(|_| r.random_range(-2.0f32..2.0))
        .collect();
    let y = (0..rows)
        .map(|i| match i % 10 {
            0..=6 => 0,
            7 | 8 => 1,
            _ => 2,
        })
        .collect();
    Dataset::new(x, y, d, 3).unwrap()
}

/// The weighted mean cross-entropy of a ReLU MLP of `sizes` with the flat
/// parameters `p` (`W0, b0, W1, b1, ...`, row-major `n_in x n_out`), in f64.
fn ref_loss(sizes: &[usize], p: &[f64], x: &[f64], y: &[u32], w: &[f32]) -> f64 {
    let n = y.len();
    let mut a = x.to_vec();
    let mut off = 0;
    for l in 0..sizes.len() - 1 {
        let (n_in, n_out) = (sizes[l], sizes[l + 1]);
        let (wo, bo) = (off, off + n_in * n_out);
        off = bo + n_out;
        let mut z = vec![0f64; n * n_out];
        for r in 0..n {
            for j in 0..n_out {
                let s: f64 = (0..n_in)
                    .map(|i| a[r * n_in + i] * p[wo + i * n_out + j])
                    .sum();
                z[r * n_out + j] = s + p[bo + j];
            }
        }
        if l + 2 < sizes.len() {
            z.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        a = z;
    }
    let k = sizes[sizes.len() - 1];
    let mut loss = 0.0;
    for (r, &label) in y.iter().enumerate() {
        let row = &a[r * k..(r + 1) * k];
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        loss += w[label as usize] as f64 * (lse - row[label as usize]);
    }
    loss / n as f64
}

#[test]
fn weighted_gradient_matches_central_differences() {
    let sizes = [3, 6, 3];
    let data = unbalanced(40, 3, 1);
    let w = balanced_class_weights(data.labels(), 3);
    // 28, 8 and 4 rows of 40: 40/84, 40/24, 40/12.
    approx::assert_relative_eq!(w[2], 40.0 / 12.0, max_relative = 1e-6);
    let model = Model::new(&sizes, Init::He, 3).unwrap();
    let p: Vec<f64> = model.params().iter().map(|&v| v as f64).collect();
    let config = TrainConfig {
        reg: 0.0,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, &data, config).unwrap();
    trainer = trainer.with_class_weights(w.clone()).unwrap();
    let (stats, grad) = trainer.gradient().unwrap();
    let x: Vec<f64> = data.features().iter().map(|&v| v as f64).collect();
    let y = data.labels();
    let want = ref_loss(&sizes, &p, &x, y, &w);
    approx::assert_relative_eq!(stats.loss, want, max_relative = 1e-5);
    // The unweighted loss differs: the weights do something here.
    assert!((want - ref_loss(&sizes, &p, &x, y, &[1.0; 3])).abs() > 1e-3);
    for i in 0..p.len() {
        let (mut plus, mut minus) = (p.clone(), p.clone());
        plus[i] += H;
        minus[i] -= H;
        let fd =
            (ref_loss(&sizes, &plus, &x, y, &w) - ref_loss(&sizes, &minus, &x, y, &w)) / (2.0 * H);
        let g = grad[i] as f64;
        let err = (g - fd).abs() / g.abs().max(fd.abs()).max(1e-4);
        assert!(err <= 1e-3, "parameter {i}: analytic {g:e}, numeric {fd:e}");
    }
}

#[test]
fn weights_are_checked_and_unit_weights_change_nothing() {
    let data = unbalanced(20, 2, 2);
    let model = || Model::new(&[2, 4, 3], Init::He, 1).unwrap();
    let trainer = || Trainer::new(model(), &data, TrainConfig::default()).unwrap();
    assert!(trainer().with_class_weights(vec![1.0; 2]).is_err());
    assert!(trainer()
        .with_class_weights(vec![1.0, f32::NAN, 1.0])
        .is_err());
    assert!(trainer().with_class_weights(vec![1.0, -1.0, 1.0]).is_err());
    let mut plain = trainer();
    let mut ones = trainer().with_class_weights(vec![1.0; 3]).unwrap();
    for _ in 0..5 {
        assert_eq!(
            plain.step().unwrap().loss.to_bits(),
            ones.step().unwrap().loss.to_bits()
        );
    }
    assert_eq!(plain.model().params(), ones.model().params());
}

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("class_weight")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn mini_batch_resume_with_class_weights_is_bit_exact() {
    let data = unbalanced(90, 4, 5);
    let w = balanced_class_weights(data.labels(), 3);
    let model = || Model::new(&[4, 8, 3], Init::Glorot, 7).unwrap();
    let config = TrainConfig {
        epochs: 6,
        lr: 0.01,
        optimizer: Optimizer::Adam,
        batch_size: Some(16),
        ..TrainConfig::default()
    };
    let (whole, parts) = (tmp("whole"), tmp("parts"));
    let run = SessionBuilder::new(model(), config.clone(), &whole)
        .class_weights(Some(w.clone()))
        .build(&data, None)
        .unwrap()
        .run()
        .unwrap();
    let stop = Interrupter::new();
    stop.interrupt();
    let first = SessionBuilder::new(model(), config.clone(), &parts)
        .class_weights(Some(w.clone()))
        .checkpoint_every(5)
        .interrupter(stop)
        .build(&data, None)
        .unwrap()
        .run()
        .unwrap();
    assert!(first.interrupted);
    let resumed = SessionBuilder::new(model(), config.clone(), &parts)
        .class_weights(Some(w))
        .resume_from(parts.join(vnn::checkpoint::FILE_NAME))
        .unwrap()
        .build(&data, None)
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(resumed.steps, run.steps);
    assert_eq!(resumed.final_loss.to_bits(), run.final_loss.to_bits());
    assert_eq!(resumed.model.params(), run.model.params());
    // And the weights did change the run.
    let plain = SessionBuilder::new(model(), config, tmp("plain"))
        .build(&data, None)
        .unwrap()
        .run()
        .unwrap();
    assert_ne!(plain.model.params(), run.model.params());
}

fn vnn(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_vnn"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// `vnn train` on `data` with `extra` options into a fresh folder `name`:
/// the JSON and the trained parameters.
fn train(name: &str, data: &str, extra: &[&str]) -> (Value, Vec<f32>, PathBuf) {
    let dir = tmp(name);
    let mut args = vec!["train", "--data", data, "--json", "--no-plots", "--out"];
    args.push(dir.to_str().unwrap());
    args.extend_from_slice(extra);
    let json = vnn(&args);
    let model = Model::load(dir.join("model.safetensors")).unwrap();
    (json, model.params().to_vec(), dir)
}

#[test]
fn balanced_changes_the_loss_only_on_unbalanced_data() {
    // The spiral has 100 points of each class: every weight is 1.
    let few = ["--epochs", "30", "--checkpoint-every", "30"];
    let (a, pa, _) = train("spiral", "spiral", &few);
    let balanced: Vec<&str> = few
        .iter()
        .copied()
        .chain(["--class-weight", "balanced"])
        .collect();
    let (b, pb, dir) = train("spiral-balanced", "spiral", &balanced);
    assert_eq!(a["final_loss"], b["final_loss"]);
    assert_eq!(pa, pb);
    let ckpt = vnn::checkpoint::Checkpoint::load(dir.join(vnn::checkpoint::FILE_NAME)).unwrap();
    let settings: Value = serde_json::from_str(&ckpt.settings).unwrap();
    assert_eq!(settings["class_weight"], "balanced");
    // Unbalanced CSV data: 70%, 20% and 10% of the rows.
    let data = unbalanced(200, 2, 9);
    let dir = tmp("csv");
    let mut csv = String::from("x0,x1,label\n");
    for (row, y) in data.features().chunks(2).zip(data.labels()) {
        csv.push_str(&format!("{},{},c{y}\n", row[0], row[1]));
    }
    let path = dir.join("unbalanced.csv");
    std::fs::write(&path, csv).unwrap();
    let path = path.to_str().unwrap();
    let (c, pc, _) = train("csv-plain", path, &["--epochs", "5"]);
    let (d, pd, _) = train(
        "csv-balanced",
        path,
        &["--epochs", "5", "--class-weight", "balanced"],
    );
    assert_ne!(c["final_loss"], d["final_loss"]);
    assert_ne!(pc, pd);
    // Thread counts do not change a weighted run of several row blocks.
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/digits.csv");
    let digits = digits.to_str().unwrap();
    let many = [
        "--epochs",
        "2",
        "--batch-size",
        "1797",
        "--class-weight",
        "balanced",
    ];
    let one: Vec<&str> = many.iter().copied().chain(["--threads", "1"]).collect();
    let two: Vec<&str> = many.iter().copied().chain(["--threads", "2"]).collect();
    let (e, pe, _) = train("digits-1", digits, &one);
    let (f, pf, _) = train("digits-2", digits, &two);
    assert_eq!((e["final_loss"].clone(), pe), (f["final_loss"].clone(), pf));
}

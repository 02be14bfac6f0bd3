//! The hidden activations end to end: every forward against an `f64`
//! reference written from the definitions, model files and checkpoints
//! that carry the activation (and refuse an unknown one), the run settings
//! that choose it, bit-exact resume and thread-count independence.
//!
//! The gradients are checked in `tests/gradcheck.rs`, the spiral accuracy
//! of tanh in `tests/accuracy.rs`, the command line in `tests/cli.rs`, and
//! numpy and onnxruntime in `tests/interop.rs`.

mod support;
use approx::assert_relative_eq;
use std::path::{Path, PathBuf};
use support::ref_act;
use vnn::checkpoint::{self, Checkpoint};
use vnn::data::{spiral, Dataset, Standardizer};
use vnn::model::{Activation, Init, Model};
use vnn::modelfile::ModelFile;
use vnn::session::{Interrupter, SessionBuilder};
use vnn::settings::RunSettings;
use vnn::train::{evaluate, Optimizer, OptimizerState, TrainConfig, Trainer};

/// An empty scratch folder of this test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vnn-act-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The logits of `rows` raw rows `x` in `f64`: standardize, then per layer
/// `x W + b`, `act` after each hidden one.
fn ref_logits(model: &Model, x: &[f32], rows: usize) -> Vec<f64> {
    let sizes = model.layout().sizes();
    let mut a: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    if let Some(s) = model.standardizer() {
        let d = sizes[0];
        for (i, v) in a.iter_mut().enumerate() {
            *v = (*v - s.mean()[i % d] as f64) / s.scale()[i % d] as f64;
        }
    }
    let n_layers = sizes.len() - 1;
    for l in 0..n_layers {
        let (w, b) = model.layer(l);
        let (n_in, n_out) = (sizes[l], sizes[l + 1]);
        let mut z = vec![0f64; rows * n_out];
        for r in 0..rows {
            for j in 0..n_out {
                let mut s = b[j] as f64;
                for i in 0..n_in {
                    s += a[r * n_in + i] * w[i * n_out + j] as f64;
                }
                z[r * n_out + j] = if l + 1 < n_layers {
                    ref_act(model.activation(), s)
                } else {
                    s
                };
            }
        }
        a = z;
    }
    a
}

/// A standardized 3-13-9-4 model of hidden activation `act` with biases
/// off 0 (trained five steps on synthetic data), and that data.
fn model_with(act: Activation) -> (Model, Dataset) {
    let data = vnn::data::synthetic(300, 3, 4, 5);
    let s = Standardizer::new(vec![0.2, -0.1, 0.05], vec![0.8, 1.5, 0.6]).unwrap();
    let model = Model::new(&[3, 13, 9, 4], Init::He, 11)
        .unwrap()
        .with_activation(act)
        .with_standardizer(s)
        .unwrap();
    let config = TrainConfig {
        epochs: 5,
        lr: 0.1,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, &data, config).unwrap();
    for _ in 0..trainer.total_steps() {
        trainer.step().unwrap();
    }
    (trainer.into_model(), data)
}

#[test]
fn every_forward_matches_the_f64_reference_for_every_activation() {
    for act in Activation::ALL {
        let (model, data) = model_with(act);
        assert_eq!(model.activation(), act);
        let (rows, k) = (data.n_rows(), model.n_classes());
        let x = data.features();
        let reference = ref_logits(&model, x, rows);
        // 300 rows: two blocks of batch prediction.
        let logits = model.logits(x, rows).unwrap();
        let mut worst = 0f64;
        for (&got, &want) in logits.iter().zip(&reference) {
            // f32 sums of at most 13 terms, and tanh and sigmoid within
            // about 1e-6 relative of the exact functions.
            assert_relative_eq!(got as f64, want, epsilon = 1e-5, max_relative = 1e-4);
            worst = worst.max((got as f64 - want).abs());
        }
        eprintln!("{act}: largest logit difference from the f64 reference {worst:e}");
        let predicted = model.predict(x, rows).unwrap();
        let proba = model.predict_proba(x, rows).unwrap();
        let mut scratch = model.scratch();
        for r in 0..rows {
            let row = &x[r * 3..r * 3 + 3];
            assert_eq!(
                model.predict_one(row, &mut scratch).unwrap(),
                predicted[r] as usize,
                "{act}: row {r}"
            );
            let p = model.predict_proba_one(row, &mut scratch).unwrap();
            for (a, b) in p.iter().zip(&proba[r * k..(r + 1) * k]) {
                assert_relative_eq!(a, b, epsilon = 1e-6, max_relative = 1e-5);
            }
        }
        let correct = (0..rows)
            .filter(|&r| predicted[r] == data.labels()[r])
            .count();
        let eval = evaluate(&model, &data).unwrap();
        assert_eq!(eval.accuracy, correct as f64 / rows as f64, "{act}");
    }
}

#[test]
fn the_activation_changes_the_function_and_the_gradient() {
    // The same weights under each activation: different logits, and
    // different first steps.
    let data = spiral(20, 3, 1);
    let base = Model::new(&[2, 8, 3], Init::He, 3).unwrap();
    let x = data.features();
    let mut seen: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    for act in Activation::ALL {
        let model = base.clone().with_activation(act);
        let logits = model.logits(x, data.n_rows()).unwrap();
        let config = TrainConfig {
            epochs: 1,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(model, &data, config).unwrap();
        trainer.step().unwrap();
        let after = trainer.model().params().to_vec();
        for (l, a) in &seen {
            assert_ne!(l, &logits, "{act}: logits equal to another activation's");
            assert_ne!(a, &after, "{act}: step equal to another activation's");
        }
        seen.push((logits, after));
    }
}

#[test]
fn model_files_round_trip_every_activation() {
    let dir = scratch("files");
    for act in Activation::ALL {
        let (model, data) = model_with(act);
        let file = ModelFile {
            model: model.clone(),
            metadata: Default::default(),
        };
        let bytes = file.to_bytes().unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["activation"], act.name());
        let back = ModelFile::from_bytes(&bytes, "mem").unwrap();
        assert_eq!(back, file);
        let path = dir.join(format!("{act}.safetensors"));
        model.save(&path).unwrap();
        let loaded = Model::load(&path).unwrap();
        assert_eq!(loaded.activation(), act);
        let rows = data.n_rows();
        let bits = |m: &Model| -> Vec<u32> {
            let logits = m.logits(data.features(), rows).unwrap();
            logits.iter().map(|v| v.to_bits()).collect()
        };
        assert_eq!(bits(&loaded), bits(&model), "{act}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The bytes of a ReLU model file with its `"activation":"relu"` header
/// entry replaced by `with` (of the same length, so the header length
/// stays right).
fn relu_file_with(with: &str) -> Vec<u8> {
    let model = Model::new(&[2, 4, 3], Init::He, 1).unwrap();
    let mut bytes = ModelFile {
        model,
        metadata: Default::default(),
    }
    .to_bytes()
    .unwrap();
    let entry = br#""activation":"relu","#;
    assert_eq!(with.len(), entry.len());
    let at = bytes
        .windows(entry.len())
        .position(|w| w == entry)
        .expect("the header has the entry");
    bytes[at..at + entry.len()].copy_from_slice(with.as_bytes());
    bytes
}

#[test]
fn an_unknown_activation_is_refused_naming_the_file_and_the_entry() {
    let dir = scratch("unknown");
    for bad in ["gelu", "RELU", " elu"] {
        let path = dir.join("model.safetensors");
        let bytes = relu_file_with(&format!(r#""activation":"{bad}","#));
        std::fs::write(&path, &bytes).unwrap();
        let err = Model::load(&path).unwrap_err();
        assert!(
            matches!(err, vnn::Error::Model { tensor: None, .. }),
            "{err:?}"
        );
        let shown = vnn::Error::Model {
            path: path.clone(),
            tensor: None,
            msg: String::new(),
        }
        .to_string();
        let text = err.to_string();
        assert!(text.starts_with(&shown), "{text}");
        let rest = &text[shown.len()..];
        assert!(
            rest.starts_with(r#"metadata entry "activation" is ""#),
            "{text}"
        );
        assert!(
            rest.ends_with(r#"", expected one of "relu", "tanh", "sigmoid", "leaky-relu""#),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1, "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_without_activation_is_relu() {
    // Spaces in place of the entry: valid JSON without it.
    let bytes = relu_file_with(&" ".repeat(r#""activation":"relu","#.len()));
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert!(!meta.metadata().as_ref().unwrap().contains_key("activation"));
    let model = ModelFile::from_bytes(&bytes, "old").unwrap().model;
    assert_eq!(model.activation(), Activation::Relu);
    assert_eq!(model, Model::new(&[2, 4, 3], Init::He, 1).unwrap());
}

#[test]
fn checkpoints_carry_the_activation() {
    for act in Activation::ALL {
        let (model, _) = model_with(act);
        let n = model.params().len();
        let ckpt = Checkpoint {
            step: 3,
            model,
            optimizer: OptimizerState::Momentum {
                velocity: vec![0.5; n],
            },
            settings: "{}".into(),
            extra: Default::default(),
            best_params: None,
        };
        let back = Checkpoint::from_bytes(&ckpt.to_bytes("mem").unwrap(), "mem").unwrap();
        assert_eq!(back.model.activation(), act);
        assert_eq!(back, ckpt);
    }
}

/// The settings recorded in the stored version-1 checkpoint `name`.
fn stored_settings(name: &str) -> (String, RunSettings) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/checkpoints")
        .join(name);
    let text = Checkpoint::load(path).unwrap().settings;
    let settings = serde_json::from_str(&text).unwrap();
    (text, settings)
}

#[test]
fn run_settings_choose_record_and_default_the_activation() {
    // Older checkpoints record no activation: they trained ReLU.
    let (text, old) = stored_settings("v1-adam.safetensors");
    assert!(!text.contains("activation"), "{text}");
    assert_eq!(old.activation, Activation::Relu);
    // The recorded form names it as the files and flags do.
    for act in Activation::ALL {
        let s = RunSettings {
            activation: act,
            ..old.clone()
        };
        let recorded: serde_json::Value =
            serde_json::from_str(&s.recorded(std::env::temp_dir()).unwrap()).unwrap();
        assert_eq!(recorded["activation"], act.name());
        let back: RunSettings = serde_json::from_value(recorded).unwrap();
        assert_eq!(back.activation, act);
        assert_eq!(s.metrics_json(&[2, 8, 3])["activation"], act.name());
        let (train, _) = s.load_data().unwrap();
        let (model, _) = s.build_model(&train).unwrap();
        assert_eq!(model.activation(), act);
    }
    let unknown = serde_json::json!("swish");
    assert!(serde_json::from_value::<Activation>(unknown).is_err());
    // A linear model has no hidden layer to apply it to.
    let linear = RunSettings {
        model: vnn::settings::ModelKind::Linear,
        ..old
    };
    let err = linear
        .refuse_inapplicable(|o| o == "activation")
        .unwrap_err();
    assert!(matches!(err, vnn::Error::Inapplicable { ref option, .. } if option == "activation"));
    assert!(linear.refuse_inapplicable(|_| false).is_ok());
}

/// Mini-batches, momentum and dropout: the batch order and the masks of
/// every hidden layer must come back right after a resume.
fn run_config() -> TrainConfig {
    TrainConfig {
        epochs: 6,
        lr: 0.05,
        optimizer: Optimizer::Momentum { mu: 0.9 },
        batch_size: Some(32),
        dropout: 0.2,
        seed: 4,
        ..TrainConfig::default()
    }
}

#[test]
fn an_interrupted_run_of_each_activation_resumes_bit_exact() {
    let data = spiral(30, 3, 2);
    for act in [Activation::Tanh, Activation::Sigmoid, Activation::LeakyRelu] {
        let model = || {
            Model::new(&[2, 12, 7, 3], Init::He, 2)
                .unwrap()
                .with_activation(act)
        };
        let whole_dir = scratch(&format!("whole-{act}"));
        let whole = SessionBuilder::new(model(), run_config(), &whole_dir)
            .build(&data, None)
            .unwrap()
            .run()
            .unwrap();
        let dir = scratch(&format!("resumed-{act}"));
        let stop = Interrupter::new();
        stop.interrupt();
        let first = SessionBuilder::new(model(), run_config(), &dir)
            .interrupter(stop)
            .build(&data, None)
            .unwrap()
            .run()
            .unwrap();
        assert!(first.interrupted && first.steps == 1);
        let ckpt_path = dir.join(checkpoint::FILE_NAME);
        assert_eq!(
            Checkpoint::load(&ckpt_path).unwrap().model.activation(),
            act
        );
        // A model of another activation is not this run's.
        let relu = model().with_activation(Activation::Relu);
        let refused = SessionBuilder::new(relu, run_config(), &dir)
            .resume_from(&ckpt_path)
            .unwrap()
            .build(&data, None);
        assert!(matches!(refused, Err(vnn::Error::Mismatch { .. })), "{act}");
        let done = SessionBuilder::new(model(), run_config(), &dir)
            .resume_from(&ckpt_path)
            .unwrap()
            .build(&data, None)
            .unwrap()
            .run()
            .unwrap();
        assert_eq!((done.steps, done.interrupted), (whole.steps, false));
        assert_eq!(done.model.params(), whole.model.params(), "{act}");
        assert_eq!(done.model.activation(), act);
        std::fs::remove_dir_all(&whole_dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn training_is_the_same_bits_for_any_thread_count() {
    // 1100 rows: three row blocks, each with its own dropout masks.
    let data = vnn::data::synthetic(1100, 4, 3, 8);
    let config = TrainConfig {
        epochs: 4,
        lr: 0.1,
        dropout: 0.3,
        dropconnect: 0.1,
        seed: 6,
        ..TrainConfig::default()
    };
    for act in [Activation::Tanh, Activation::Sigmoid, Activation::LeakyRelu] {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let model = Model::new(&[4, 20, 11, 3], Init::He, 1)
                    .unwrap()
                    .with_activation(act);
                let mut trainer = Trainer::new(model, &data, config.clone()).unwrap();
                assert_eq!(trainer.n_blocks(), 3);
                for _ in 0..trainer.total_steps() {
                    trainer.step().unwrap();
                }
                let params = trainer.model().params();
                params.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            })
        };
        let one = run(1);
        for threads in [2, 3] {
            assert!(run(threads) == one, "{act}: 1 and {threads} threads differ");
        }
    }
}

//! Format-version-1 checkpoints (tensors `optimizer.m`, `optimizer.v`) still
//! load and resume bit-exactly: the stored files of `tests/data/checkpoints/`
//! (made by `vnn train` before version 2; see `tests/data/README.md`) are
//! resumed with `vnn train --resume FILE --out DIR` to a longer run, whose
//! final weights must equal, bit for bit, those of the same run left
//! uninterrupted (on a build that computes like the one that wrote the
//! files), and those of a resume from the same state saved as version 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vnn::checkpoint::{self, Checkpoint};
use vnn::train::OptimizerState;

const VNN: &str = env!("CARGO_BIN_EXE_vnn");

fn stored(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/checkpoints")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("checkpoint_v1")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ok(args: &[&str]) -> Output {
    let out = Command::new(VNN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "vnn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn weight_bits(dir: &Path) -> Vec<u32> {
    let model = vnn::model::Model::load(dir.join("model.safetensors")).unwrap();
    model.params().iter().map(|v| v.to_bits()).collect()
}

/// Runs `vnn train` with `args`, then `--epochs epochs --no-plots --out
/// DIR` into a fresh folder `name`, and returns the folder.
fn run(name: &str, args: &[&str], epochs: &str) -> PathBuf {
    let dir = scratch(name);
    let mut all = vec!["train"];
    all.extend(args);
    all.extend([
        "--epochs",
        epochs,
        "--no-plots",
        "--out",
        dir.to_str().unwrap(),
    ]);
    ok(&all);
    dir
}

/// Resumes the stored `file` to `epochs` epochs and returns its run folder,
/// after checking that
/// - the same state saved as version 2 resumes to the same bits, and
/// - where this build computes the stored run's steps to the same bits as
///   the build that made the file (a native x86-64 build with AVX-512: the
///   file's weights equal those of `settings` run for `file_epochs` epochs
///   here), the resumed run ends with the bits of the run of `settings`
///   left uninterrupted. Other builds (the baseline SSE2 one) round the
///   first steps differently; that comparison is then skipped, loudly.
fn resume_matches_uninterrupted(
    file: &str,
    settings: &[&str],
    file_epochs: &str,
    epochs: &str,
) -> PathBuf {
    let name = file.trim_end_matches(".safetensors");
    let path = stored(file);
    let resumed = run(
        &format!("{name}-resumed"),
        &["--resume", path.to_str().unwrap()],
        epochs,
    );
    // The same state as a version-2 file.
    let v2_dir = scratch(&format!("{name}-as-v2"));
    let v2_path = v2_dir.join("v2.safetensors");
    Checkpoint::load(&path).unwrap().save(&v2_path).unwrap();
    let from_v2 = run(
        &format!("{name}-from-v2"),
        &["--resume", v2_path.to_str().unwrap()],
        epochs,
    );
    assert_eq!(
        weight_bits(&resumed),
        weight_bits(&from_v2),
        "{file}: v1 vs v2"
    );
    let stored_bits: Vec<u32> = Checkpoint::load(&path)
        .unwrap()
        .model
        .params()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let prefix = run(&format!("{name}-prefix"), settings, file_epochs);
    if weight_bits(&prefix) != stored_bits {
        eprintln!(
            "SKIPPED {file}: this build rounds the stored run's first steps differently from the native build that wrote it; only the v1 and v2 resumes were compared"
        );
        return resumed;
    }
    let whole = run(&format!("{name}-whole"), settings, epochs);
    assert_eq!(weight_bits(&resumed), weight_bits(&whole), "{file}");
    resumed
}

#[test]
fn version_1_adam_checkpoint_loads_as_adam_and_resumes_bit_exactly() {
    let ckpt = Checkpoint::load(stored("v1-adam.safetensors")).unwrap();
    assert_eq!(ckpt.step, 30);
    let n = ckpt.model.params().len();
    assert_eq!(n, 2 * 8 + 8 + 8 * 3 + 3);
    match &ckpt.optimizer {
        OptimizerState::Adam { m, v } => {
            assert_eq!((m.len(), v.len()), (n, n));
            // The second moment is a mean of squares.
            assert!(v.iter().all(|&x| x >= 0.0));
        }
        other => panic!("expected Adam, got {}", other.name()),
    }
    let settings = [
        "--spiral-points",
        "20",
        "--hidden",
        "8",
        "--optimizer",
        "adam",
        "--lr",
        "0.05",
        "--checkpoint-every",
        "10",
    ];
    let resumed = resume_matches_uninterrupted("v1-adam.safetensors", &settings, "30", "60");
    // The resumed run writes version 2, which names the tensors by what
    // they hold.
    let v2 = Checkpoint::load(resumed.join(checkpoint::FILE_NAME)).unwrap();
    assert_eq!(v2.step, 60);
    assert!(matches!(v2.optimizer, OptimizerState::Adam { .. }));
    let bytes = std::fs::read(resumed.join(checkpoint::FILE_NAME)).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains(checkpoint::TENSOR_ADAM_M));
    assert!(text.contains(checkpoint::TENSOR_ADAM_V));
    assert!(!text.contains("\"optimizer.m\""));
}

#[test]
fn version_1_momentum_checkpoint_loads_the_velocity_and_resumes_bit_exactly() {
    let ckpt = Checkpoint::load(stored("v1-momentum-minibatch.safetensors")).unwrap();
    assert_eq!(ckpt.step, 20);
    let n = ckpt.model.params().len();
    match &ckpt.optimizer {
        OptimizerState::Momentum { velocity } => assert_eq!(velocity.len(), n),
        other => panic!("expected momentum, got {}", other.name()),
    }
    let settings = [
        "--spiral-points",
        "20",
        "--hidden",
        "8",
        "--optimizer",
        "momentum",
        "--momentum",
        "0.9",
        "--lr",
        "0.1",
        "--batch-size",
        "16",
        "--checkpoint-every",
        "7",
    ];
    let resumed =
        resume_matches_uninterrupted("v1-momentum-minibatch.safetensors", &settings, "5", "11");
    let v2 = Checkpoint::load(resumed.join(checkpoint::FILE_NAME)).unwrap();
    assert_eq!(v2.step, 44);
    assert!(matches!(v2.optimizer, OptimizerState::Momentum { .. }));
}

#[test]
fn version_1_and_2_tensor_names_do_not_mix() {
    let v1 = std::fs::read(stored("v1-momentum-minibatch.safetensors")).unwrap();
    // Declaring version 2 makes the version-1 tensor a stranger.
    let n = u64::from_le_bytes(v1[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&v1[8..8 + n]).unwrap();
    header["__metadata__"]["checkpoint_version"] = "2".into();
    let h = serde_json::to_vec(&header).unwrap();
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend(h);
    bytes.extend_from_slice(&v1[8 + n..]);
    match Checkpoint::from_bytes(&bytes, "c") {
        Err(vnn::Error::Model { tensor, msg, .. }) => {
            assert_eq!(tensor.as_deref(), Some(checkpoint::TENSOR_V1_M));
            assert_eq!(msg, "unexpected tensor in a version-2 checkpoint");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    header["__metadata__"]["checkpoint_version"] = "3".into();
    let h = serde_json::to_vec(&header).unwrap();
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend(h);
    bytes.extend_from_slice(&v1[8 + n..]);
    let err = Checkpoint::from_bytes(&bytes, "c").unwrap_err().to_string();
    assert!(err.contains("checkpoint version 3 is newer"), "{err}");
}

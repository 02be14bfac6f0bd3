//! A training run that survives Ctrl-C: checkpoints every 100 steps, stops
//! cleanly on Ctrl-C (saving the model and a checkpoint), and continues
//! from the checkpoint when started again.
//!
//! `cargo run --release --example resume [RUN_FOLDER]` (press Ctrl-C, then
//! run it again).

use std::path::PathBuf;
use vnn::data::spiral;
use vnn::model::{Init, Model};
use vnn::session::{Interrupter, Progress, SessionBuilder};
use vnn::train::TrainConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/resume-run"), PathBuf::from);
    let data = spiral(100, 3, 0);
    let model = Model::new(&[2, 100, 3], Init::He, 0)?;
    let config = TrainConfig {
        epochs: 20_000,
        ..TrainConfig::default()
    };

    let stop = Interrupter::new();
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        flag.interrupt();
    })?;

    let mut run = SessionBuilder::new(model, config, &dir)
        .checkpoint_every(100)
        .data_fingerprint("spiral", &data)
        .interrupter(stop)
        .observer(Progress::new(false, 2000));
    let checkpoint = dir.join(vnn::checkpoint::FILE_NAME);
    if checkpoint.exists() {
        run = run.resume_from(&checkpoint)?;
    }
    let outcome = run.build(&data, None)?.evaluate_at_end(&data).run()?;
    if outcome.interrupted {
        println!(
            "stopped at step {} of {}; run again to continue",
            outcome.steps, outcome.total
        );
    } else {
        let accuracy = outcome.train_eval.map_or(f64::NAN, |e| e.accuracy);
        println!(
            "done: {} steps, accuracy {accuracy:.3}, model in {}",
            outcome.steps,
            outcome.model_path.display()
        );
    }
    Ok(())
}

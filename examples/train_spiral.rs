//! Trains the source text's MLP (2-100-3, SGD lr 1.0, reg 1e-3) on the
//! built-in spiral through the library, prints the accuracy, and saves the
//! model to `target/spiral-model.safetensors` for the `embed` example.
//!
//! `cargo run --release --example train_spiral`

use vnn::data::spiral;
use vnn::model::{Init, Model};
use vnn::train::{evaluate, TrainConfig, Trainer};

fn main() -> vnn::Result<()> {
    let data = spiral(100, 3, 0);
    let model = Model::new(&[2, 100, 3], Init::He, 0)?;
    let mut trainer = Trainer::new(model, &data, TrainConfig::default())?;
    for _ in 0..trainer.total_steps() {
        let stats = trainer.step()?;
        if stats.step % 2000 == 0 {
            println!(
                "step {:>5}: loss {:.4}, accuracy {:.3}",
                stats.step, stats.loss, stats.accuracy
            );
        }
    }
    let model = trainer.into_model();
    let eval = evaluate(&model, &data)?;
    println!(
        "training accuracy {:.3}, loss {:.4}",
        eval.accuracy, eval.loss
    );
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/spiral-model.safetensors");
    model.save(&path)?;
    println!("saved {}", path.display());
    Ok(())
}

//! Embedding a trained model for low-latency inference: load a model file,
//! then call `predict_one` in a loop with one reusable scratch buffer (no
//! allocation per call), timing the calls.
//!
//! `cargo run --release --example train_spiral` first (it writes the model),
//! then `cargo run --release --example embed [MODEL]`.

use std::time::Instant;
use vnn::model::Model;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let default =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/spiral-model.safetensors");
    let path = std::env::args().nth(1).map(Into::into).unwrap_or(default);
    let model = Model::load(&path)?;
    println!(
        "{}: {} {:?}, features {:?}, classes {:?}",
        path.display(),
        model.architecture(),
        model.layout().sizes(),
        model.feature_names(),
        model.class_names()
    );
    let mut scratch = model.scratch();
    let d = model.n_features();
    // A small grid of inputs, reused in the loop.
    let inputs: Vec<Vec<f32>> = (0..64)
        .map(|i| {
            (0..d)
                .map(|j| ((i * 7 + j * 3) % 17) as f32 / 8.5 - 1.0)
                .collect()
        })
        .collect();
    let mut counts = vec![0usize; model.n_classes()];
    let calls = 1_000_000;
    let start = Instant::now();
    for i in 0..calls {
        let class = model.predict_one(&inputs[i % inputs.len()], &mut scratch)?;
        counts[class] += 1;
    }
    let ns = start.elapsed().as_nanos() as f64 / calls as f64;
    println!("{calls} predict_one calls: {ns:.1} ns per call; predicted class counts {counts:?}");
    let probs = model.predict_proba_one(&inputs[0], &mut scratch)?;
    println!("probabilities of the first input: {probs:?}");
    Ok(())
}

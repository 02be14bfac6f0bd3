//! Criterion benches of one full-batch SGD training step: MLP 2-100-3 on the
//! spiral (300 rows) and MLP 784-512-10 on 10,000 synthetic rows.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use vnn::data::{spiral, Dataset};
use vnn::model::{Init, Model};
use vnn::train::{TrainConfig, Trainer};

/// Flops of one step: forward `2N(DH + HK)`, backward `2N(DH + 2HK)`.
fn step_flop(n: usize, d: usize, h: usize, k: usize) -> u64 {
    (2 * n * (2 * d * h + 3 * h * k)) as u64
}

fn bench_step(c: &mut Criterion, name: &str, data: &Dataset, sizes: [usize; 3], lr: f32) {
    let model = Model::new(&sizes, Init::He, 1).unwrap();
    let config = TrainConfig {
        epochs: u64::MAX,
        lr,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, data, config).unwrap();
    let mut group = c.benchmark_group("train_step");
    group.throughput(Throughput::Elements(step_flop(
        data.n_rows(),
        sizes[0],
        sizes[1],
        sizes[2],
    )));
    if data.n_rows() > 1000 {
        group.sample_size(10);
    }
    group.bench_function(name, |b| b.iter(|| black_box(trainer.step().unwrap())));
    group.finish();
}

fn train_step(c: &mut Criterion) {
    let spiral_data = spiral(100, 3, 0);
    bench_step(c, "spiral_2-100-3_n300", &spiral_data, [2, 100, 3], 1.0);
    let mnist = vnn::data::synthetic(10_000, 784, 10, 7);
    bench_step(c, "mnist_784-512-10_n10000", &mnist, [784, 512, 10], 1e-3);
}

criterion_group!(benches, train_step);
criterion_main!(benches);

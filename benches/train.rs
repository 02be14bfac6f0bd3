//! Criterion benches of one full-batch SGD training step: MLP 2-100-3 on the
//! spiral (300 rows) and MLP 784-512-10 on 10,000 synthetic rows; and the
//! fused kernel the spiral step runs, against its scalar twin
//! (`narrow_mlp_forward_backward`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::hint::black_box;
use vnn::data::{spiral, Dataset};
use vnn::model::{Init, Model};
use vnn::train::{TrainConfig, Trainer};
use vnn_kernels::activation::Activation;
use vnn_kernels::fused::{self, MlpGrads, NarrowMlp};

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

fn data(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

type Step = fn(&NarrowMlp, f32, MlpGrads, &mut [f32]) -> vnn_kernels::softmax::CrossEntropy;

/// The fused kernel of the spiral step
/// (`vnn_kernels::fused::narrow_mlp_forward_backward`) alone on its shapes,
/// `simd` (the public kernel) and `scalar` (its twin) on the same inputs,
/// for every activation.
fn kernel_step(c: &mut Criterion) {
    let (rows, d, h, k) = (300, 2, 100, 3);
    let x = data(rows * d, 1, 1.0);
    let labels: Vec<u32> = (0..rows).map(|r| (r % k) as u32).collect();
    // W1, b1, W2, b2
    let p = [
        data(d * h, 2, 1.0),
        data(h, 3, 0.1),
        data(h * k, 4, 0.1),
        data(k, 5, 0.1),
    ];
    let mut grads = [
        vec![0.0; d * h],
        vec![0.0; h],
        vec![0.0; h * k],
        vec![0.0; k],
    ];
    let mut scratch = vec![0.0; fused::narrow_mlp_scratch(rows, d, h, k)];
    let mut g = c.benchmark_group("narrow_mlp_forward_backward");
    g.sample_size(10);
    g.throughput(Throughput::Elements(
        (2 * rows * (2 * d * h + 3 * h * k)) as u64,
    ));
    let variants: [(&str, Step); 2] = [
        ("simd", fused::narrow_mlp_forward_backward),
        ("scalar", fused::narrow_mlp_forward_backward_scalar),
    ];
    for act in Activation::ALL {
        let net = NarrowMlp {
            act,
            x: &x,
            labels: &labels,
            w1: &p[0],
            b1: &p[1],
            w2: &p[2],
            b2: &p[3],
            n_in: d,
            hidden: h,
            classes: k,
        };
        for (variant, step) in variants {
            g.bench_function(format!("{act}/{variant}/{rows}x{d}-{h}-{k}"), |b| {
                b.iter(|| {
                    let [dw1, db1, dw2, db2] = &mut grads;
                    let grads = MlpGrads { dw1, db1, dw2, db2 };
                    black_box(step(
                        black_box(&net),
                        1.0 / rows as f32,
                        grads,
                        &mut scratch,
                    ))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, train_step, kernel_step);
criterion_main!(benches);

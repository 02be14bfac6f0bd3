//! Criterion bench of the fused network step
//! (`vnn_kernels::fused::narrow_mlp_forward_backward`) on the spiral's
//! shapes (300 rows, 2-100-3): `simd`, the public kernel, and `scalar`, its
//! twin, on the same inputs, for every activation. Throughput counts the
//! step's `2 N (D H + 3 H K + D H)` floating-point operations as elements.
//!
//! Record `RUSTFLAGS` with every number. Quick run:
//! `cargo bench --bench mlp_step -- --warm-up-time 0.5 --measurement-time 1`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use vnn_kernels::activation::Activation;
use vnn_kernels::fused::{self, MlpGrads, NarrowMlp};

fn data(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

type Step = fn(&NarrowMlp, f32, MlpGrads, &mut [f32]) -> vnn_kernels::softmax::CrossEntropy;

fn bench_mlp_step(c: &mut Criterion) {
    let (rows, d, h, k) = (300, 2, 100, 3);
    let x = data(rows * d, 1, 1.0);
    let labels: Vec<u32> = (0..rows).map(|r| (r % k) as u32).collect();
    let (w1, b1) = (data(d * h, 2, 1.0), data(h, 3, 0.1));
    let (w2, b2) = (data(h * k, 4, 0.1), data(k, 5, 0.1));
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
            w1: &w1,
            b1: &b1,
            w2: &w2,
            b2: &b2,
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

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_mlp_step
}
criterion_main!(benches);

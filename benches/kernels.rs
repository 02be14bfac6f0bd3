//! Criterion benches of every kernel in `vnn-kernels`.
//!
//! One group per op, ids `op/variant/size`:
//! - `simd`: the public kernel;
//! - `scalar`: its scalar twin (same signature, same results);
//! - `naive`: the plain first loop anyone would write (std `exp`, a
//!   `random::<f32>() < keep` mask from `Xoshiro256PlusPlus`, indexed loops).
//!
//! GEMM variants are `simd` (the `gemm` dispatch), `packed`
//! (`matrixmultiply`), `blocked` (the crate's own packed GEMM with a
//! workspace allocated once) and `naive` (the triple loop); throughput counts
//! `2 m n k` floating-point operations as elements.
//!
//! `wide` picks its instructions at compile time: the project builds with
//! `-C target-cpu=native` (`.cargo/config.toml`), so record `RUSTFLAGS` with
//! every number. Quick run:
//! `cargo bench --bench kernels -- --warm-up-time 0.5 --measurement-time 1`.
// The naive variants are the index loops a first attempt would write.
#![allow(clippy::needless_range_loop)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use vnn_kernels::gemm::{self, Transpose};
use vnn_kernels::{activation, mask, reduce, softmax, update};

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// `(rows, cols)` of the element-wise and row-wise benches: the spiral hidden
/// layer, the MNIST-like hidden layer, and 1M elements.
const SIZES: [(usize, usize); 3] = [(300, 100), (10000, 512), (1000, 1000)];
/// Softmax / cross-entropy additionally at their real row widths.
const LOGIT_SIZES: [(usize, usize); 2] = [(300, 3), (10000, 10)];

fn size_id(rows: usize, cols: usize) -> String {
    format!("{rows}x{cols}")
}

fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> Group<'a> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g
}

// --- GEMM ------------------------------------------------------------------

/// The products of one training step: `(name, ta, tb, m, n, k, beta)`.
/// Spiral: N=300, D=2, H=100, K=3. MNIST-like on a row block of 1250 rows:
/// D=784, H=512, K=10.
const GEMM_SHAPES: [(&str, Transpose, Transpose, usize, usize, usize, f32); 10] = [
    (
        "spiral_x_w1",
        Transpose::No,
        Transpose::No,
        300,
        100,
        2,
        0.0,
    ),
    (
        "spiral_a1_w2",
        Transpose::No,
        Transpose::No,
        300,
        3,
        100,
        0.0,
    ),
    (
        "spiral_a1t_ds",
        Transpose::Yes,
        Transpose::No,
        100,
        3,
        300,
        1.0,
    ),
    (
        "spiral_ds_w2t",
        Transpose::No,
        Transpose::Yes,
        300,
        100,
        3,
        0.0,
    ),
    (
        "spiral_xt_dz1",
        Transpose::Yes,
        Transpose::No,
        2,
        100,
        300,
        1.0,
    ),
    (
        "mnist_x_w1",
        Transpose::No,
        Transpose::No,
        1250,
        512,
        784,
        0.0,
    ),
    (
        "mnist_a1_w2",
        Transpose::No,
        Transpose::No,
        1250,
        10,
        512,
        0.0,
    ),
    (
        "mnist_a1t_ds",
        Transpose::Yes,
        Transpose::No,
        512,
        10,
        1250,
        1.0,
    ),
    (
        "mnist_ds_w2t",
        Transpose::No,
        Transpose::Yes,
        1250,
        512,
        10,
        0.0,
    ),
    (
        "mnist_xt_dz1",
        Transpose::Yes,
        Transpose::No,
        784,
        512,
        1250,
        1.0,
    ),
];

fn bench_gemm(c: &mut Criterion) {
    let mut g = group(c, "gemm");
    for (name, ta, tb, m, n, k, beta) in GEMM_SHAPES {
        let a = data(m * k, 1);
        let b = data(k * n, 2);
        let mut out = vec![0.0f32; m * n];
        let id = format!("{name}_{m}x{n}x{k}");
        g.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        g.bench_function(format!("simd/{id}"), |bench| {
            bench.iter(|| {
                gemm::gemm(ta, tb, m, n, k, 1.0, black_box(&a), &b, beta, &mut out);
                black_box(&out);
            })
        });
        let mut ws = vec![0.0f32; gemm::GEMM_WORKSPACE];
        g.bench_function(format!("blocked/{id}"), |bench| {
            bench.iter(|| {
                let (a, c) = (black_box(&a), &mut out);
                gemm::gemm_blocked(ta, tb, m, n, k, 1.0, a, &b, beta, c, &mut ws);
                black_box(&out);
            })
        });
        g.bench_function(format!("packed/{id}"), |bench| {
            bench.iter(|| {
                gemm::gemm_packed(ta, tb, m, n, k, 1.0, black_box(&a), &b, beta, &mut out);
                black_box(&out);
            })
        });
        // The triple loop takes about a second on the two big products.
        if m * n * k <= 50_000_000 {
            g.bench_function(format!("naive/{id}"), |bench| {
                bench.iter(|| {
                    gemm::gemm_scalar(ta, tb, m, n, k, 1.0, black_box(&a), &b, beta, &mut out);
                    black_box(&out);
                })
            });
        }
    }
    g.finish();
}

/// Batch-1 inference: `out = x W + b` for the layers of both models.
fn bench_matvec(c: &mut Criterion) {
    let mut g = group(c, "matvec_bias");
    for (n_in, n_out) in [(784, 512), (512, 10), (2, 100), (100, 3)] {
        let x = data(n_in, 1);
        let w = data(n_in * n_out, 2);
        let bias = data(n_out, 3);
        let mut out = vec![0.0f32; n_out];
        let id = size_id(n_in, n_out);
        g.throughput(Throughput::Elements((n_in * n_out) as u64));
        g.bench_function(format!("simd/{id}"), |bench| {
            bench.iter(|| gemm::matvec_bias(black_box(&x), &w, &bias, n_in, n_out, &mut out))
        });
        g.bench_function(format!("scalar/{id}"), |bench| {
            bench.iter(|| gemm::matvec_bias_scalar(black_box(&x), &w, &bias, n_in, n_out, &mut out))
        });
        g.bench_function(format!("naive/{id}"), |bench| {
            bench.iter(|| {
                for j in 0..n_out {
                    let mut s = bias[j];
                    for i in 0..n_in {
                        s += x[i] * w[i * n_out + j];
                    }
                    out[j] = s;
                }
                black_box(&out);
            })
        });
    }
    g.finish();
}

/// The packed batch-1 product on the wide layer shapes, against the
/// unpacked `matvec_bias` on the same inputs and the packed twin.
fn bench_matvec_packed(c: &mut Criterion) {
    let mut g = group(c, "matvec_bias_packed");
    for (n_in, n_out) in [(784, 512), (512, 512), (100, 200)] {
        let x = data(n_in, 1);
        let w = data(n_in * n_out, 2);
        let bias = data(n_out, 3);
        let mut packed = vec![0.0f32; gemm::matvec_packed_len(n_in, n_out)];
        gemm::matvec_pack(&w, n_in, n_out, &mut packed);
        let mut out = vec![0.0f32; n_out];
        let id = size_id(n_in, n_out);
        g.throughput(Throughput::Elements((n_in * n_out) as u64));
        g.bench_function(format!("simd/{id}"), |bench| {
            bench.iter(|| {
                gemm::matvec_bias_packed(black_box(&x), &packed, Some(&bias), n_in, n_out, &mut out)
            })
        });
        g.bench_function(format!("unpacked/{id}"), |bench| {
            bench.iter(|| gemm::matvec_bias(black_box(&x), &w, &bias, n_in, n_out, &mut out))
        });
        g.bench_function(format!("scalar/{id}"), |bench| {
            bench.iter(|| {
                let b = Some(&bias[..]);
                gemm::matvec_bias_packed_scalar(black_box(&x), &packed, b, n_in, n_out, &mut out)
            })
        });
    }
    g.finish();
}

/// The one-call batch-1 ReLU network on the spiral's and the MNIST-shaped
/// sizes, against its two packed products called one after the other and
/// its scalar twin.
fn bench_mlp_one(c: &mut Criterion) {
    let mut g = group(c, "mlp_relu_one_packed");
    for (n_in, hidden, n_out) in [(2, 100, 3), (784, 512, 10)] {
        let pack = |w: &[f32], n_in, n_out| {
            let mut p = vec![0.0f32; gemm::matvec_packed_len(n_in, n_out)];
            gemm::matvec_pack(w, n_in, n_out, &mut p);
            p
        };
        let w1 = pack(&data(n_in * hidden, 1), n_in, hidden);
        let w2 = pack(&data(hidden * n_out, 2), hidden, n_out);
        let (b1, b2, x) = (data(hidden, 3), data(n_out, 4), data(n_in, 5));
        let net = gemm::PackedReluMlp {
            w1: &w1,
            b1: &b1,
            w2: &w2,
            b2: &b2,
        };
        let (mut h, mut out) = (vec![0.0f32; hidden], vec![0.0f32; n_out]);
        let id = format!("{n_in}-{hidden}-{n_out}");
        g.throughput(Throughput::Elements((hidden * (n_in + n_out)) as u64));
        g.bench_function(format!("simd/{id}"), |bench| {
            bench.iter(|| gemm::mlp_relu_one_packed(&net, black_box(&x), &mut h, &mut out))
        });
        g.bench_function(format!("two-calls/{id}"), |bench| {
            bench.iter(|| {
                gemm::matvec_bias_relu_packed(black_box(&x), &w1, Some(&b1), n_in, hidden, &mut h);
                gemm::matvec_bias_packed(&h, &w2, Some(&b2), hidden, n_out, &mut out)
            })
        });
        g.bench_function(format!("scalar/{id}"), |bench| {
            bench.iter(|| gemm::mlp_relu_one_packed_scalar(&net, black_box(&x), &mut h, &mut out))
        });
    }
    g.finish();
}

// --- activations -------------------------------------------------------------

fn bench_bias_relu(c: &mut Criterion) {
    let mut g = group(c, "bias_relu_forward");
    for (rows, cols) in SIZES {
        let mut z = data(rows * cols, 1);
        let bias = data(cols, 2);
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements((rows * cols) as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| activation::bias_relu_forward(black_box(&mut z), &bias, rows, cols))
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| activation::bias_relu_forward_scalar(black_box(&mut z), &bias, rows, cols))
        });
        g.bench_function(format!("naive/{id}"), |b| {
            b.iter(|| {
                for r in 0..rows {
                    for c in 0..cols {
                        z[r * cols + c] = (z[r * cols + c] + bias[c]).max(0.0);
                    }
                }
                black_box(&z);
            })
        });
    }
    g.finish();
}

fn bench_bias_relu_dropout(c: &mut Criterion) {
    let mut g = group(c, "bias_relu_dropout_forward");
    let p_drop = 0.5f32;
    for (rows, cols) in SIZES {
        let mut z = data(rows * cols, 1);
        let bias = data(cols, 2);
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements((rows * cols) as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| {
                activation::bias_relu_dropout_forward(
                    black_box(&mut z),
                    &bias,
                    rows,
                    cols,
                    p_drop,
                    7,
                    0,
                )
            })
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| {
                activation::bias_relu_dropout_forward_scalar(
                    black_box(&mut z),
                    &bias,
                    rows,
                    cols,
                    p_drop,
                    7,
                    0,
                )
            })
        });
        g.bench_function(format!("naive/{id}"), |b| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
            let keep = 1.0 - p_drop;
            let scale = 1.0 / keep;
            b.iter(|| {
                for r in 0..rows {
                    for c in 0..cols {
                        let i = r * cols + c;
                        z[i] = if rng.random::<f32>() < keep {
                            (z[i] + bias[c]).max(0.0) * scale
                        } else {
                            0.0
                        };
                    }
                }
                black_box(&z);
            })
        });
    }
    g.finish();
}

fn bench_relu_backward(c: &mut Criterion) {
    let mut g = group(c, "relu_backward");
    for (rows, cols) in SIZES {
        let mut a = data(rows * cols, 1);
        let da = data(rows * cols, 2);
        let mut db = vec![0.0f32; cols];
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements((rows * cols) as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| activation::relu_backward(black_box(&mut a), &da, rows, cols, 1.0, &mut db))
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| {
                activation::relu_backward_scalar(black_box(&mut a), &da, rows, cols, 1.0, &mut db)
            })
        });
        g.bench_function(format!("naive/{id}"), |b| {
            b.iter(|| {
                for r in 0..rows {
                    for c in 0..cols {
                        let i = r * cols + c;
                        a[i] = if a[i] > 0.0 { da[i] } else { 0.0 };
                        db[c] += a[i];
                    }
                }
                black_box(&a);
            })
        });
    }
    g.finish();
}

/// The hidden-layer size of the benches of every activation (the spiral's).
const ACT_SIZE: (usize, usize) = (300, 100);

/// The dropout of the activation benches.
const ACT_DROPOUT: mask::Dropout = mask::Dropout {
    p_drop: 0.5,
    seed: 7,
    stream: 0,
};

/// The inputs of the activation benches: every iteration starts from a
/// fresh copy of `start`. Run in place over and over, the outputs would
/// drift (leaky ReLU multiplies negatives by 0.01 each time, the backward
/// multiplies by derivatives below 1) into subnormal numbers, which are
/// far slower and never seen in training.
fn fresh(start: &[f32]) -> impl FnMut() -> Vec<f32> + '_ {
    || start.to_vec()
}

fn bench_act_forward(c: &mut Criterion) {
    let mut g = group(c, "bias_act_forward");
    let (rows, cols) = ACT_SIZE;
    let bias = data(cols, 2);
    let z0 = data(rows * cols, 1);
    let id = size_id(rows, cols);
    g.throughput(Throughput::Elements((rows * cols) as u64));
    for act in activation::Activation::ALL {
        for (kind, dropout) in [("", None), ("-dropout", Some(ACT_DROPOUT))] {
            g.bench_function(format!("{act}{kind}/simd/{id}"), |b| {
                b.iter_batched_ref(
                    fresh(&z0),
                    |z| activation::bias_act_forward(act, z, &bias, rows, cols, dropout),
                    BatchSize::PerIteration,
                )
            });
            g.bench_function(format!("{act}{kind}/scalar/{id}"), |b| {
                b.iter_batched_ref(
                    fresh(&z0),
                    |z| activation::bias_act_forward_scalar(act, z, &bias, rows, cols, dropout),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

fn bench_act_backward(c: &mut Criterion) {
    let mut g = group(c, "act_backward");
    let (rows, cols) = ACT_SIZE;
    let da = data(rows * cols, 2);
    let id = size_id(rows, cols);
    g.throughput(Throughput::Elements((rows * cols) as u64));
    for act in activation::Activation::ALL {
        for (kind, dropout) in [("", None), ("-dropout", Some(ACT_DROPOUT))] {
            // Outputs of the forward, as the backward gets them.
            let mut a0 = data(rows * cols, 1);
            activation::bias_act_forward(act, &mut a0, &vec![0.0; cols], rows, cols, dropout);
            let mut db = vec![0.0f32; cols];
            g.bench_function(format!("{act}{kind}/simd/{id}"), |b| {
                b.iter_batched_ref(
                    fresh(&a0),
                    |a| activation::act_backward(act, a, &da, rows, cols, dropout, &mut db),
                    BatchSize::PerIteration,
                )
            });
            g.bench_function(format!("{act}{kind}/scalar/{id}"), |b| {
                b.iter_batched_ref(
                    fresh(&a0),
                    |a| activation::act_backward_scalar(act, a, &da, rows, cols, dropout, &mut db),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

/// The narrow fused strips of every activation at the spiral's shapes: the
/// forward `act(X W1 + b1)` (300 x 2 -> 100) against its twin and the
/// unfused `gemm` + `bias_act_forward`, and the backward through `W2`
/// (100 -> 3) with `dW2` fused, against its twin.
fn bench_narrow_act(c: &mut Criterion) {
    use vnn_kernels::fused;
    let mut g = group(c, "narrow_act");
    let (rows, n_in, width, k) = (300, 2, 100, 3);
    let (x, w, bias) = (data(rows * n_in, 1), data(n_in * width, 2), data(width, 3));
    let (ds, w_t) = (data(rows * k, 4), data(k * width, 5));
    g.throughput(Throughput::Elements((rows * width) as u64));
    for act in activation::Activation::ALL {
        let mut a = vec![0.0f32; rows * width];
        g.bench_function(format!("{act}-forward/simd/{rows}x{n_in}x{width}"), |b| {
            b.iter(|| {
                fused::narrow_bias_act_forward(
                    act,
                    &x,
                    &w,
                    &bias,
                    rows,
                    n_in,
                    width,
                    black_box(&mut a),
                )
            })
        });
        g.bench_function(format!("{act}-forward/scalar/{rows}x{n_in}x{width}"), |b| {
            b.iter(|| {
                fused::narrow_bias_act_forward_scalar(
                    act,
                    &x,
                    &w,
                    &bias,
                    rows,
                    n_in,
                    width,
                    black_box(&mut a),
                )
            })
        });
        g.bench_function(
            format!("{act}-forward/unfused/{rows}x{n_in}x{width}"),
            |b| {
                b.iter(|| {
                    let (no, a) = (Transpose::No, black_box(&mut a[..]));
                    gemm::gemm(no, no, rows, width, n_in, 1.0, &x, &w, 0.0, a);
                    activation::bias_act_forward(act, a, &bias, rows, width, None);
                })
            },
        );
        fused::narrow_bias_act_forward(act, &x, &w, &bias, rows, n_in, width, &mut a);
        let (mut db, mut dw) = (vec![0.0f32; width], vec![0.0f32; width * k]);
        g.bench_function(format!("{act}-backward-dw/simd/{rows}x{width}x{k}"), |b| {
            b.iter_batched_ref(
                fresh(&a),
                |a| {
                    fused::narrow_act_backward_dw(
                        act, a, &ds, &w_t, rows, width, k, &mut db, &mut dw,
                    )
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function(
            format!("{act}-backward-dw/scalar/{rows}x{width}x{k}"),
            |b| {
                b.iter_batched_ref(
                    fresh(&a),
                    |a| {
                        fused::narrow_act_backward_dw_scalar(
                            act, a, &ds, &w_t, rows, width, k, &mut db, &mut dw,
                        )
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    g.finish();
}

// --- softmax family ------------------------------------------------------------

fn naive_softmax_rows(x: &mut [f32], rows: usize, cols: usize) {
    for r in 0..rows {
        let row = &mut x[r * cols..(r + 1) * cols];
        let mut max = f32::NEG_INFINITY;
        for &v in row.iter() {
            if v > max {
                max = v;
            }
        }
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}

fn bench_softmax(c: &mut Criterion) {
    let mut g = group(c, "softmax_rows");
    for (rows, cols) in LOGIT_SIZES.into_iter().chain(SIZES) {
        let x0 = data(rows * cols, 1);
        let mut x = x0.clone();
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements((rows * cols) as u64));
        // Each iteration restores the logits first (a copy, the same for
        // every variant) so the input does not drift towards uniform rows.
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| {
                x.copy_from_slice(&x0);
                softmax::softmax_rows(black_box(&mut x), rows, cols)
            })
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| {
                x.copy_from_slice(&x0);
                softmax::softmax_rows_scalar(black_box(&mut x), rows, cols)
            })
        });
        g.bench_function(format!("naive/{id}"), |b| {
            b.iter(|| {
                x.copy_from_slice(&x0);
                naive_softmax_rows(black_box(&mut x), rows, cols)
            })
        });
    }
    g.finish();
}

fn bench_logsumexp(c: &mut Criterion) {
    let mut g = group(c, "logsumexp_rows");
    for (rows, cols) in LOGIT_SIZES.into_iter().chain(SIZES) {
        let x = data(rows * cols, 1);
        let mut out = vec![0.0f32; rows];
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements((rows * cols) as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| softmax::logsumexp_rows(black_box(&x), rows, cols, &mut out))
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| softmax::logsumexp_rows_scalar(black_box(&x), rows, cols, &mut out))
        });
        g.bench_function(format!("naive/{id}"), |b| {
            b.iter(|| {
                for r in 0..rows {
                    let row = &x[r * cols..(r + 1) * cols];
                    let mut max = f32::NEG_INFINITY;
                    for &v in row {
                        if v > max {
                            max = v;
                        }
                    }
                    let mut sum = 0.0;
                    for &v in row {
                        sum += (v - max).exp();
                    }
                    out[r] = max + sum.ln();
                }
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn bench_softmax_cross_entropy(c: &mut Criterion) {
    let mut g = group(c, "softmax_cross_entropy");
    for (rows, cols) in LOGIT_SIZES.into_iter().chain(SIZES) {
        let x0 = data(rows * cols, 1);
        let mut x = x0.clone();
        let labels: Vec<u32> = (0..rows).map(|r| (r * 7 % cols) as u32).collect();
        let inv_n = 1.0 / rows as f32;
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements((rows * cols) as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| {
                x.copy_from_slice(&x0);
                softmax::softmax_cross_entropy(black_box(&mut x), &labels, rows, cols, inv_n)
            })
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| {
                x.copy_from_slice(&x0);
                softmax::softmax_cross_entropy_scalar(black_box(&mut x), &labels, rows, cols, inv_n)
            })
        });
        g.bench_function(format!("naive/{id}"), |b| {
            b.iter(|| {
                x.copy_from_slice(&x0);
                naive_softmax_rows(black_box(&mut x), rows, cols);
                let mut loss = 0.0f64;
                for r in 0..rows {
                    let y = labels[r] as usize;
                    loss -= (x[r * cols + y] as f64).ln();
                    x[r * cols + y] -= 1.0;
                    for c in 0..cols {
                        x[r * cols + c] *= inv_n;
                    }
                }
                black_box(loss * inv_n as f64)
            })
        });
    }
    g.finish();
}

// --- masks ----------------------------------------------------------------------

fn bench_bernoulli_mask(c: &mut Criterion) {
    let mut g = group(c, "bernoulli_mask");
    let p_drop = 0.5f32;
    for (rows, cols) in SIZES {
        let mut out = vec![0.0f32; rows * cols];
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements((rows * cols) as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| mask::bernoulli_mask(black_box(&mut out), p_drop, 7, 0))
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| mask::bernoulli_mask_scalar(black_box(&mut out), p_drop, 7, 0))
        });
        g.bench_function(format!("naive/{id}"), |b| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
            let keep = 1.0 - p_drop;
            let scale = 1.0 / keep;
            b.iter(|| {
                for v in out.iter_mut() {
                    *v = if rng.random::<f32>() < keep {
                        scale
                    } else {
                        0.0
                    };
                }
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn bench_apply_mask(c: &mut Criterion) {
    let mut g = group(c, "apply_mask");
    for (rows, cols) in SIZES {
        let len = rows * cols;
        let mut x = data(len, 1);
        let m: Vec<f32> = (0..len)
            .map(|i| if i % 3 == 0 { 0.0 } else { 1.5 })
            .collect();
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements(len as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| mask::apply_mask(black_box(&mut x), &m))
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| mask::apply_mask_scalar(black_box(&mut x), &m))
        });
        g.bench_function(format!("naive/{id}"), |b| {
            b.iter(|| {
                for i in 0..len {
                    x[i] *= m[i];
                }
                black_box(&x);
            })
        });
    }
    g.finish();
}

// --- optimizer updates ------------------------------------------------------------

fn bench_updates(c: &mut Criterion) {
    let (lr, reg, mu) = (1e-3f32, 1e-4f32, 0.9f32);
    let mut g = group(c, "sgd_update");
    for (rows, cols) in SIZES {
        let len = rows * cols;
        let mut w = data(len, 1);
        let gr = data(len, 2);
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements(len as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| update::sgd_update(black_box(&mut w), &gr, lr, reg))
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| update::sgd_update_scalar(black_box(&mut w), &gr, lr, reg))
        });
        g.bench_function(format!("naive/{id}"), |b| {
            b.iter(|| {
                for i in 0..len {
                    w[i] -= lr * (gr[i] + reg * w[i]);
                }
                black_box(&w);
            })
        });
    }
    g.finish();

    let mut g = group(c, "momentum_update");
    for (rows, cols) in SIZES {
        let len = rows * cols;
        let mut w = data(len, 1);
        let gr = data(len, 2);
        let mut v = vec![0.0f32; len];
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements(len as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| update::momentum_update(black_box(&mut w), &gr, &mut v, lr, reg, mu))
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| update::momentum_update_scalar(black_box(&mut w), &gr, &mut v, lr, reg, mu))
        });
        g.bench_function(format!("naive/{id}"), |b| {
            b.iter(|| {
                for i in 0..len {
                    v[i] = mu * v[i] + (gr[i] + reg * w[i]);
                    w[i] -= lr * v[i];
                }
                black_box(&w);
            })
        });
    }
    g.finish();

    let mut g = group(c, "adam_update");
    for (rows, cols) in SIZES {
        let len = rows * cols;
        let mut w = data(len, 1);
        let gr = data(len, 2);
        let mut m = vec![0.0f32; len];
        let mut v = vec![0.0f32; len];
        let step = update::AdamStep::new(lr, reg, 10);
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements(len as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| update::adam_update(black_box(&mut w), &gr, &mut m, &mut v, &step))
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| update::adam_update_scalar(black_box(&mut w), &gr, &mut m, &mut v, &step))
        });
        g.bench_function(format!("naive/{id}"), |b| {
            let (beta1, beta2, eps, t) = (0.9f32, 0.999f32, 1e-8f32, 10);
            b.iter(|| {
                for i in 0..len {
                    let gi = gr[i] + reg * w[i];
                    m[i] = beta1 * m[i] + (1.0 - beta1) * gi;
                    v[i] = beta2 * v[i] + (1.0 - beta2) * gi * gi;
                    let m_hat = m[i] / (1.0 - beta1.powi(t));
                    let v_hat = v[i] / (1.0 - beta2.powi(t));
                    w[i] -= lr * m_hat / (v_hat.sqrt() + eps);
                }
                black_box(&w);
            })
        });
    }
    g.finish();
}

// --- reductions ---------------------------------------------------------------------

fn bench_reductions(c: &mut Criterion) {
    let mut g = group(c, "sum_squares");
    for (rows, cols) in SIZES {
        let x = data(rows * cols, 1);
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements((rows * cols) as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| reduce::sum_squares(black_box(&x)))
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| reduce::sum_squares_scalar(black_box(&x)))
        });
        g.bench_function(format!("naive/{id}"), |b| {
            b.iter(|| {
                let mut s = 0.0f32;
                for &v in black_box(&x) {
                    s += v * v;
                }
                s
            })
        });
    }
    g.finish();

    let mut g = group(c, "argmax_rows");
    for (rows, cols) in LOGIT_SIZES.into_iter().chain(SIZES) {
        let x = data(rows * cols, 1);
        let mut out = vec![0u32; rows];
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements((rows * cols) as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| reduce::argmax_rows(black_box(&x), rows, cols, &mut out))
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| reduce::argmax_rows_scalar(black_box(&x), rows, cols, &mut out))
        });
        g.bench_function(format!("naive/{id}"), |b| {
            b.iter(|| {
                for r in 0..rows {
                    let mut best = 0;
                    for c in 1..cols {
                        if x[r * cols + c] > x[r * cols + best] {
                            best = c;
                        }
                    }
                    out[r] = best as u32;
                }
                black_box(&out);
            })
        });
    }
    g.finish();

    let mut g = group(c, "column_sums");
    for (rows, cols) in LOGIT_SIZES.into_iter().chain(SIZES) {
        let x = data(rows * cols, 1);
        let mut out = vec![0.0f32; cols];
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements((rows * cols) as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| reduce::column_sums(black_box(&x), rows, cols, &mut out))
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| reduce::column_sums_scalar(black_box(&x), rows, cols, &mut out))
        });
        g.bench_function(format!("naive/{id}"), |b| {
            b.iter(|| {
                for r in 0..rows {
                    for c in 0..cols {
                        out[c] += x[r * cols + c];
                    }
                }
                black_box(&out);
            })
        });
    }
    g.finish();

    let mut g = group(c, "add_assign");
    for (rows, cols) in SIZES {
        let len = rows * cols;
        let mut dst = data(len, 1);
        let src = data(len, 2);
        let id = size_id(rows, cols);
        g.throughput(Throughput::Elements(len as u64));
        g.bench_function(format!("simd/{id}"), |b| {
            b.iter(|| reduce::add_assign(black_box(&mut dst), &src))
        });
        g.bench_function(format!("scalar/{id}"), |b| {
            b.iter(|| reduce::add_assign_scalar(black_box(&mut dst), &src))
        });
        g.bench_function(format!("naive/{id}"), |b| {
            b.iter(|| {
                for i in 0..len {
                    dst[i] += src[i];
                }
                black_box(&dst);
            })
        });
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
    targets = bench_gemm, bench_matvec, bench_matvec_packed, bench_mlp_one, bench_bias_relu, bench_bias_relu_dropout,
        bench_relu_backward, bench_act_forward, bench_act_backward, bench_narrow_act, bench_softmax,
        bench_logsumexp, bench_softmax_cross_entropy, bench_bernoulli_mask, bench_apply_mask, bench_updates, bench_reductions
}
criterion_main!(benches);

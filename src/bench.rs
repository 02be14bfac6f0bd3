//! The workloads of `vnn bench`: timings of the training step, batch-1
//! inference and the f32 FMA peak of the machine.
//!
//! Every workload is warmed up, then timed over many samples; a sample
//! times a batch of calls so that fast calls still get nanosecond
//! resolution. A [`Report`] gives the median, minimum and maximum per call.
//! Multi-threaded workloads use the current rayon pool.

use crate::data::{self, Dataset};
use crate::error::{Error, Result};
use crate::model::{Init, Model};
use crate::train::{TrainConfig, Trainer};
use std::hint::black_box;
use std::time::{Duration, Instant};
use vnn_kernels::gemm;
use wide::{f32x16, f32x8};

pub mod minibatch;

/// A workload to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// One full-batch SGD step of MLP 2-100-3 on the spiral (300 rows).
    Spiral,
    /// One full-batch SGD step of MLP 784-512-10 on 10,000 synthetic rows.
    Mnist,
    /// Adam steps of MLP 784-256-10 on batches of 128 of 10,000 synthetic
    /// rows, each step timed alone ([`minibatch`]).
    Minibatch,
    /// Batch-1 `predict_one` on 2-100-3.
    InferSmall,
    /// Batch-1 `predict_one` on 784-512-10 (and split over two threads).
    InferMnist,
    /// f32 FMA peak over all threads.
    Peak,
    /// Everything above.
    All,
}

impl Workload {
    /// Every workload with its command-line name and a one-line
    /// description.
    pub const LIST: [(Workload, &'static str, &'static str); 7] = [
        (
            Workload::Spiral,
            "spiral",
            "One full-batch SGD step of MLP 2-100-3 on the spiral (300 rows)",
        ),
        (
            Workload::Mnist,
            "mnist",
            "One full-batch SGD step of MLP 784-512-10 on 10,000 synthetic rows",
        ),
        (
            Workload::Minibatch,
            "minibatch",
            "Adam steps of MLP 784-256-10 on batches of 128 of 10,000 synthetic rows",
        ),
        (
            Workload::InferSmall,
            "infer-small",
            "Batch-1 `predict_one` on 2-100-3",
        ),
        (
            Workload::InferMnist,
            "infer-mnist",
            "Batch-1 `predict_one` on 784-512-10 (and split over two threads)",
        ),
        (Workload::Peak, "peak", "f32 FMA peak over all threads"),
        (Workload::All, "all", "Everything above"),
    ];
}

/// Per-call timings of one workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The workload's name (`spiral`, `infer-mnist-split`, `peak-f32x16`, ...).
    pub workload: &'static str,
    /// Threads the workload ran on.
    pub threads: usize,
    /// Per-call times in nanoseconds, sorted (at least one).
    pub ns: Vec<f64>,
    /// Floating-point operations of one call, where they are meaningful.
    pub flop: Option<f64>,
    /// Calls per sample.
    pub calls_per_sample: usize,
}

impl Report {
    /// The median time per call in nanoseconds.
    ///
    /// # Example
    /// ```
    /// let r = vnn::bench::Report {
    ///     workload: "x", threads: 1, ns: vec![1.0, 2.0, 4.0, 8.0], flop: Some(6.0), calls_per_sample: 1,
    /// };
    /// assert_eq!((r.median(), r.min(), r.max()), (3.0, 1.0, 8.0));
    /// assert_eq!(r.gflops(), Some(2.0));
    /// ```
    pub fn median(&self) -> f64 {
        let n = self.ns.len();
        if n % 2 == 1 {
            self.ns[n / 2]
        } else {
            0.5 * (self.ns[n / 2 - 1] + self.ns[n / 2])
        }
    }

    /// The fastest call in nanoseconds.
    pub fn min(&self) -> f64 {
        self.ns[0]
    }

    /// The slowest call in nanoseconds.
    pub fn max(&self) -> f64 {
        self.ns[self.ns.len() - 1]
    }

    /// GFLOP/s at the median time, where the flops are meaningful.
    pub fn gflops(&self) -> Option<f64> {
        self.flop.map(|f| f / self.median())
    }

    /// The report as one JSON object: `workload`, `threads`, `median_ns`,
    /// `min_ns`, `max_ns`, `samples`, `calls_per_sample` and, where
    /// meaningful, `gflops`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut o = serde_json::json!({
            "workload": self.workload,
            "threads": self.threads,
            "median_ns": self.median(),
            "min_ns": self.min(),
            "max_ns": self.max(),
            "samples": self.ns.len(),
            "calls_per_sample": self.calls_per_sample,
        });
        if let Some(g) = self.gflops() {
            o["gflops"] = serde_json::json!(g);
        }
        o
    }
}

/// One line: workload, threads, median, minimum and maximum per call,
/// GFLOP/s where meaningful, samples and calls per sample.
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self
            .gflops()
            .map_or(String::new(), |g| format!("  {g:7.1} GFLOP/s"));
        write!(
            f,
            "{:<18} threads {:>2}  median {:>12}  min {:>12}  max {:>12}{g}  ({} samples x {} calls)",
            self.workload,
            self.threads,
            fmt_ns(self.median()),
            fmt_ns(self.min()),
            fmt_ns(self.max()),
            self.ns.len(),
            self.calls_per_sample
        )
    }
}

/// `1.23 us`-style text of a duration in nanoseconds.
fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

/// How long to measure one workload.
struct Budget {
    /// Warm-up time (at least one call).
    warmup: Duration,
    /// Measuring time (at least `min_samples` samples).
    measure: Duration,
    min_samples: usize,
    max_samples: usize,
    /// Target duration of one sample (calls are batched up to this).
    sample: Duration,
}

/// Warms `f` up, then times it in samples of several calls each.
fn measure(budget: &Budget, mut f: impl FnMut()) -> (Vec<f64>, usize) {
    // Warm-up, which also estimates the time of one call.
    let start = Instant::now();
    let mut calls = 0u64;
    while calls == 0 || start.elapsed() < budget.warmup {
        f();
        calls += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / calls as f64;
    let inner = ((budget.sample.as_secs_f64() / per_call).ceil() as usize).max(1);
    let samples = ((budget.measure.as_secs_f64() / (per_call * inner as f64)) as usize)
        .clamp(budget.min_samples, budget.max_samples);
    let mut ns = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        for _ in 0..inner {
            f();
        }
        ns.push(t.elapsed().as_nanos() as f64 / inner as f64);
    }
    ns.sort_by(f64::total_cmp);
    (ns, inner)
}

/// Flops of one full-batch training step of an `n_in-h-k` MLP on `n` rows:
/// forward `2N(DH + HK)`, backward `2N(DH + 2HK)` (no input gradient).
fn step_flop(n: usize, d: usize, h: usize, k: usize) -> f64 {
    2.0 * n as f64 * (2.0 * (d * h) as f64 + 3.0 * (h * k) as f64)
}

/// Times full-batch SGD steps of `sizes` on `data`.
fn bench_step(
    name: &'static str,
    data: &Dataset,
    sizes: &[usize],
    lr: f32,
    budget: &Budget,
) -> Result<Report> {
    let model = Model::new(sizes, Init::He, 1)?;
    let config = TrainConfig {
        epochs: u64::MAX,
        lr,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, data, config)?;
    let mut failed = None;
    let (ns, inner) = measure(budget, || {
        if let Err(e) = trainer.step() {
            failed.get_or_insert(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let (d, h, k) = (sizes[0], sizes[1], sizes[2]);
    Ok(Report {
        workload: name,
        threads: rayon::current_num_threads(),
        ns,
        flop: Some(step_flop(data.n_rows(), d, h, k)),
        calls_per_sample: inner,
    })
}

/// Times `predict_one` on a model of `sizes`.
fn bench_infer(name: &'static str, sizes: &[usize], budget: &Budget) -> Result<Report> {
    let model = Model::new(sizes, Init::He, 2)?;
    let mut scratch = model.scratch();
    let x = data::synthetic(1, sizes[0], 2, 3).features;
    let mut failed = None;
    let (ns, inner) = measure(budget, || {
        if let Err(e) = black_box(model.predict_one(black_box(&x), &mut scratch)) {
            failed.get_or_insert(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Report {
        workload: name,
        threads: 1,
        ns,
        flop: Some(infer_flop(sizes)),
        calls_per_sample: inner,
    })
}

fn infer_flop(sizes: &[usize]) -> f64 {
    sizes.windows(2).map(|w| 2.0 * (w[0] * w[1]) as f64).sum()
}

/// A one-hidden-layer model whose hidden units are cut in two halves, each
/// half with its own contiguous copy of its weights, so that two threads
/// each read only their half.
struct SplitMlp {
    halves: [Half; 2],
    b2: Vec<f32>,
    k: usize,
}

struct Half {
    /// `d x h_half` first-layer weights and biases.
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// `h_half x k` rows of the second layer.
    w2: Vec<f32>,
}

impl SplitMlp {
    fn new(model: &Model) -> SplitMlp {
        let (w1, b1) = model.layer(0);
        let (w2, b2) = model.layer(1);
        let (d, h, k) = (
            model.layout.sizes[0],
            model.layout.sizes[1],
            model.layout.sizes[2],
        );
        let cut = (h / 2).next_multiple_of(8).min(h);
        let half = |lo: usize, hi: usize| Half {
            w1: (0..d)
                .flat_map(|i| w1[i * h + lo..i * h + hi].iter().copied())
                .collect(),
            b1: b1[lo..hi].to_vec(),
            w2: w2[lo * k..hi * k].to_vec(),
        };
        SplitMlp {
            halves: [half(0, cut), half(cut, h)],
            b2: b2.to_vec(),
            k,
        }
    }

    /// Partial logits of one half (`k` values, no output bias).
    fn half_logits(half: &Half, x: &[f32], hidden: &mut [f32], out: &mut [f32]) {
        let hh = half.b1.len();
        gemm::matvec_bias(x, &half.w1, &half.b1, x.len(), hh, hidden);
        for v in hidden.iter_mut() {
            *v = v.max(0.0);
        }
        out.fill(0.0);
        for (&a, row) in hidden.iter().zip(half.w2.chunks_exact(out.len())) {
            for (o, &w) in out.iter_mut().zip(row) {
                *o += a * w;
            }
        }
    }

    /// The predicted class, the halves run with `rayon::join`.
    fn predict_one(&self, x: &[f32], scratch: &mut [Vec<f32>; 4]) -> usize {
        let [h0, h1, o0, o1] = scratch;
        rayon::join(
            || Self::half_logits(&self.halves[0], x, h0, o0),
            || Self::half_logits(&self.halves[1], x, h1, o1),
        );
        let mut best = 0;
        let mut best_v = f32::NEG_INFINITY;
        for j in 0..self.k {
            let v = self.b2[j] + o0[j] + o1[j];
            if v > best_v {
                best_v = v;
                best = j;
            }
        }
        best
    }
}

/// Times batch-1 inference of 784-512-10 with each of two threads holding
/// half of the hidden units.
fn bench_infer_split(sizes: &[usize], budget: &Budget) -> Result<Report> {
    let model = Model::new(sizes, Init::He, 2)?;
    let split = SplitMlp::new(&model);
    let x = data::synthetic(1, sizes[0], 2, 3).features;
    let mut scratch = [
        vec![0f32; split.halves[0].b1.len()],
        vec![0f32; split.halves[1].b1.len()],
        vec![0f32; split.k],
        vec![0f32; split.k],
    ];
    // The split agrees with the plain path on the class.
    let mut s = model.scratch();
    assert_eq!(
        split.predict_one(&x, &mut scratch),
        model.predict_one(&x, &mut s)?,
        "infer-mnist-split disagrees with predict_one"
    );
    let (ns, inner) = measure(budget, || {
        black_box(split.predict_one(black_box(&x), &mut scratch));
    });
    Ok(Report {
        workload: "infer-mnist-split",
        threads: 2,
        ns,
        flop: Some(infer_flop(sizes)),
        calls_per_sample: inner,
    })
}

/// Independent FMA chains per thread: enough accumulators to cover the FMA
/// latency times the number of FMA pipes.
const PEAK_CHAINS: usize = 12;
const PEAK_ITERS: usize = 200_000;

/// `iters` rounds of [`PEAK_CHAINS`] independent `f32x8` multiply-adds.
#[inline(never)]
fn fma_chains(iters: usize, m: f32, a: f32) -> f32 {
    let m = f32x8::splat(m);
    let a = f32x8::splat(a);
    let mut acc: [f32x8; PEAK_CHAINS] = std::array::from_fn(|i| f32x8::splat(i as f32 * 1e-3));
    for _ in 0..iters {
        for s in acc.iter_mut() {
            *s = s.mul_add(m, a);
        }
    }
    acc.iter().fold(f32x8::ZERO, |x, &y| x + y).reduce_add()
}

/// [`fma_chains`] on 16-lane vectors (AVX-512 where the build enables it).
#[inline(never)]
fn fma_chains_16(iters: usize, m: f32, a: f32) -> f32 {
    let m = f32x16::splat(m);
    let a = f32x16::splat(a);
    let mut acc: [f32x16; PEAK_CHAINS] = std::array::from_fn(|i| f32x16::splat(i as f32 * 1e-3));
    for _ in 0..iters {
        for s in acc.iter_mut() {
            *s = s.mul_add(m, a);
        }
    }
    acc.iter().fold(f32x16::ZERO, |x, &y| x + y).reduce_add()
}

/// Times [`fma_chains_16`] on every thread of the pool at once.
fn bench_peak_16(budget: &Budget) -> Report {
    let threads = rayon::current_num_threads();
    let (ns, inner) = measure(budget, || {
        rayon::broadcast(|_| {
            black_box(fma_chains_16(
                PEAK_ITERS,
                black_box(0.999_999),
                black_box(1e-7),
            ))
        });
    });
    Report {
        workload: "peak-f32x16",
        threads,
        ns,
        flop: Some((threads * PEAK_ITERS * PEAK_CHAINS * 16 * 2) as f64),
        calls_per_sample: inner,
    }
}

/// Times [`fma_chains`] on every thread of the pool at once.
fn bench_peak(budget: &Budget) -> Report {
    let threads = rayon::current_num_threads();
    let (ns, inner) = measure(budget, || {
        rayon::broadcast(|_| {
            black_box(fma_chains(
                PEAK_ITERS,
                black_box(0.999_999),
                black_box(1e-7),
            ))
        });
    });
    Report {
        workload: "peak",
        threads,
        ns,
        flop: Some((threads * PEAK_ITERS * PEAK_CHAINS * 8 * 2) as f64),
        calls_per_sample: inner,
    }
}

/// Times `workload` in the current rayon pool, handing each report to
/// `emit` as soon as it is measured.
///
/// # Errors
/// The library's error when a workload fails (a training step or
/// `predict_one`), or the error of `emit`.
///
/// # Panics
/// If the split batch-1 MLP disagrees with `Model::predict_one` on the
/// class (a bug).
pub fn run<E: From<Error>>(
    workload: Workload,
    mut emit: impl FnMut(Report) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let threads = rayon::current_num_threads();
    let w = workload;
    let all = w == Workload::All;
    let fast = Budget {
        warmup: Duration::from_millis(300),
        measure: Duration::from_millis(2000),
        min_samples: 20,
        max_samples: 2000,
        sample: Duration::from_millis(1),
    };
    if all || w == Workload::Spiral {
        let data = data::spiral(100, 3, 0);
        emit(bench_step("spiral", &data, &[2, 100, 3], 1.0, &fast)?)?;
    }
    if all || w == Workload::Mnist {
        let data = data::synthetic(10_000, 784, 10, 7);
        let slow = Budget {
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(5),
            min_samples: 15,
            max_samples: 60,
            sample: Duration::ZERO,
        };
        emit(bench_step("mnist", &data, &[784, 512, 10], 1e-3, &slow)?)?;
    }
    if all || w == Workload::Minibatch {
        emit(minibatch::bench()?)?;
    }
    if all || w == Workload::InferSmall {
        emit(bench_infer("infer-small", &[2, 100, 3], &fast)?)?;
    }
    if all || w == Workload::InferMnist {
        emit(bench_infer("infer-mnist", &[784, 512, 10], &fast)?)?;
        if threads >= 2 {
            emit(bench_infer_split(&[784, 512, 10], &fast)?)?;
        }
    }
    if all || w == Workload::Peak {
        let peak = Budget {
            sample: Duration::ZERO,
            min_samples: 30,
            max_samples: 200,
            ..fast
        };
        emit(bench_peak(&peak))?;
        emit(bench_peak_16(&peak))?;
    }
    Ok(())
}

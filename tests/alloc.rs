//! Heap allocations per training step, counted by a global allocator that
//! wraps the system one.
//!
//! The counter is global (every thread, rayon's workers included), so this
//! file holds a single test that runs its scenarios one after another while
//! nothing else runs in the process.
//!
//! Claims checked:
//! - batch-1 inference (`predict_one`, `predict_proba_one`) allocates
//!   nothing once its scratch exists, for every hidden activation;
//! - batch inference (`logits_into`) allocates nothing but packing buffers
//!   once its workspace has grown to the batch, and `logits` its output and
//!   one workspace buffer, never one per layer or block;
//! - after the first step the count per step is the same for every step;
//! - at the spiral size (2-100-3, 300 rows, one row block) it is zero with
//!   SGD, momentum, Adam and dropconnect, on the default pool and on a
//!   one-thread pool;
//! - every allocation a step makes is one of `matrixmultiply`'s packing
//!   buffers (one per call that takes the packed GEMM path), and their
//!   number is what the trainer's products and the kernels' dispatch rule
//!   ([`use_small`]) predict ([`packed_calls`]): with dropout at the spiral
//!   size the forward `X W0` (300 x 100 x 2) may pack, and at 2000 rows of
//!   256-128-10 (four row blocks) the forward `X W0` and the backward
//!   `X^T dZ0` of each block pack, the products with a dimension of 10 do
//!   not: eight per step;
//! - the activations other than ReLU take the same narrow fused kernels as
//!   ReLU without dropout, so the spiral step allocates nothing for them
//!   either; with dropout they take the GEMM forward and one `dA = dS W^T`
//!   per block in the backward, and allocate nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use vnn::data::{spiral, Dataset};
use vnn::kernels::fused::NARROW_MAX;
use vnn::kernels::gemm::use_small;
use vnn::kernels::layer::{relu_dense_backward_path, BackwardPath, CHUNK_ROWS};
use vnn::model::{Activation, Init, Model};
use vnn::train::{Optimizer, TrainConfig, Trainer};

/// Counts every allocation (`alloc`, `alloc_zeroed`, `realloc`), and
/// separately those aligned to 32 or 64 bytes: `matrixmultiply`'s packing
/// buffers are (its kernels' alignment), while `Vec`s are not and
/// crossbeam's cache-padded structures in rayon are aligned to 128.
struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static ALIGNED: AtomicUsize = AtomicUsize::new(0);

fn count(layout: Layout) {
    ALLOCS.fetch_add(1, Relaxed);
    if (32..=64).contains(&layout.align()) {
        ALIGNED.fetch_add(1, Relaxed);
    }
}

// SAFETY: every method forwards to `System` unchanged; the counters are
// atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// `(all, aligned)` allocations of each of `steps` steps.
fn per_step(trainer: &mut Trainer<'_>, steps: usize) -> Vec<(usize, usize)> {
    (0..steps)
        .map(|_| {
            let (a0, p0) = (ALLOCS.load(Relaxed), ALIGNED.load(Relaxed));
            trainer.step().unwrap();
            (ALLOCS.load(Relaxed) - a0, ALIGNED.load(Relaxed) - p0)
        })
        .collect()
}

fn config(optimizer: Optimizer, dropout: f32, dropconnect: f32) -> TrainConfig {
    TrainConfig {
        epochs: 100,
        lr: if optimizer == Optimizer::Adam {
            1e-2
        } else {
            0.5
        },
        reg: 1e-3,
        optimizer,
        batch_size: None,
        dropout,
        dropconnect,
        seed: 3,
    }
}

/// Runs `steps` steps (in `pool` if given) of a model of hidden activation
/// `act` and returns the counts per step.
fn measure_act(
    pool: Option<&rayon::ThreadPool>,
    act: Activation,
    sizes: &[usize],
    data: &Dataset,
    config: &TrainConfig,
    steps: usize,
) -> Vec<(usize, usize)> {
    let run = || {
        let model = Model::new(sizes, Init::He, 1).unwrap().with_activation(act);
        let mut trainer = Trainer::new(model, data, config.clone()).unwrap();
        per_step(&mut trainer, steps)
    };
    match pool {
        Some(p) => p.install(run),
        None => run(),
    }
}

/// [`measure_act`] of a ReLU model.
fn measure(
    pool: Option<&rayon::ThreadPool>,
    sizes: &[usize],
    data: &Dataset,
    config: &TrainConfig,
    steps: usize,
) -> Vec<(usize, usize)> {
    measure_act(pool, Activation::Relu, sizes, data, config, steps)
}

/// The number of packed GEMM calls of one step on blocks of `block_rows`,
/// following the products the trainer makes per block:
/// forward, per hidden layer, the fused narrow kernel (no dropout and at most
/// `NARROW_MAX` inputs) or `Z = A W` (`rows x n_out x n_in`), and the logits
/// `A W` (`rows x k x n_in`); backward, per layer, `dW = A^T dZ`
/// (`n_in x n_out x rows`) and, above the first layer, the fused narrow
/// kernel (at most `NARROW_MAX` outputs and at least as many rows) or
/// `dA = dZ W^T` in chunks of `CHUNK_ROWS` rows (`chunk x n_in x n_out`).
/// An activation other than ReLU takes the same fused kernels without
/// dropout; with dropout, `Z = A W` on every layer and `dA = dZ W^T` for
/// the whole block (`rows x n_in x n_out`), as it does when the backward is
/// not narrow. The first layer's `Z = A W` and `dW = A^T dZ` never
/// allocate: where they would pack, they take the blocked GEMM with the
/// block's own workspace.
fn packed_calls(sizes: &[usize], block_rows: &[usize], dropout: bool) -> usize {
    packed_calls_act(Activation::Relu, sizes, block_rows, dropout)
}

/// [`packed_calls`] for hidden activation `act`.
fn packed_calls_act(
    act: Activation,
    sizes: &[usize],
    block_rows: &[usize],
    dropout: bool,
) -> usize {
    let relu = act == Activation::Relu;
    let packs = |m, n, k| usize::from(!use_small(m, n, k));
    let n_layers = sizes.len() - 1;
    let mut calls = 0;
    for &rows in block_rows {
        for l in 0..n_layers {
            let (n_in, n_out) = (sizes[l], sizes[l + 1]);
            let hidden = l + 1 < n_layers;
            if l > 0 && !(hidden && !dropout && n_in <= NARROW_MAX) {
                calls += packs(rows, n_out, n_in);
            }
            if l > 0 {
                calls += packs(n_in, n_out, rows);
            }
            let narrow = n_out <= NARROW_MAX && rows >= n_out;
            assert_eq!(
                narrow,
                relu_dense_backward_path(rows, n_out) != BackwardPath::Chunked
            );
            if l > 0 && !relu && (dropout || !narrow) {
                calls += packs(rows, n_in, n_out);
            } else if l > 0 && relu && !narrow {
                for c0 in (0..rows).step_by(CHUNK_ROWS) {
                    calls += packs(CHUNK_ROWS.min(rows - c0), n_in, n_out);
                }
            }
        }
    }
    calls
}

#[test]
fn allocations_per_step() {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // Let every worker thread (of these pools and the global one) finish
    // starting up, so their one-time allocations are not counted as a
    // step's.
    one.broadcast(|_| ());
    two.broadcast(|_| ());
    rayon::broadcast(|_| ());

    // ---- spiral size: nothing at all without dropout ----
    let data = spiral(100, 3, 1);
    // Without dropout no activation packs: the forward X W0 and the
    // backward dA products are the narrow fused kernels.
    let relu = Activation::Relu;
    let variants = [
        ("sgd", relu, config(Optimizer::Sgd, 0.0, 0.0)),
        ("adam", relu, config(Optimizer::Adam, 0.0, 0.0)),
        (
            "momentum",
            relu,
            config(Optimizer::Momentum { mu: 0.9 }, 0.0, 0.0),
        ),
        ("sgd dropconnect", relu, config(Optimizer::Sgd, 0.0, 0.3)),
        ("adam dropout", relu, config(Optimizer::Adam, 0.5, 0.0)),
        (
            "tanh sgd",
            Activation::Tanh,
            config(Optimizer::Sgd, 0.0, 0.0),
        ),
        (
            "sigmoid adam dropout",
            Activation::Sigmoid,
            config(Optimizer::Adam, 0.5, 0.0),
        ),
        (
            "leaky-relu dropconnect",
            Activation::LeakyRelu,
            config(Optimizer::Sgd, 0.0, 0.3),
        ),
    ];
    for (name, act, cfg) in &variants {
        let dropout = cfg.dropout > 0.0;
        let packed = packed_calls_act(*act, &[2, 100, 3], &[300], dropout);
        if !dropout {
            assert_eq!(packed, 0, "spiral {name}: a product packs");
        }
        for (pool_name, pool) in [("default pool", None), ("1-thread pool", Some(&one))] {
            let counts = measure_act(pool, *act, &[2, 100, 3], &data, cfg, 20);
            eprintln!(
                "spiral {name}, {pool_name}: first step {:?}, then {:?}",
                counts[0], counts[1]
            );
            assert!(
                counts[1..].iter().all(|&c| c == (packed, packed)),
                "spiral {name}, {pool_name}: allocations per step {counts:?}, expected {packed} packing buffers"
            );
        }
    }

    // ---- a network whose first layer packs: the block workspace, no allocation ----
    let (rows, d, h, k) = (2000, 256, 128, 10);
    // The trainer's products per block of r rows (r = 512 or 464) and which
    // GEMM path each takes.
    for r in [512, 464] {
        assert!(!use_small(r, h, d), "forward X W0 packs");
        assert!(!use_small(d, h, r), "backward X^T dZ0 packs");
        assert!(use_small(r, k, h), "forward A W1 does not pack");
        assert!(use_small(h, k, r), "backward A^T dS does not pack");
    }
    let data = vnn::data::synthetic(rows, d, k, 2);
    let cfgs = [
        ("sgd", config(Optimizer::Sgd, 0.0, 0.0)),
        ("adam", config(Optimizer::Adam, 0.0, 0.0)),
    ];
    for (name, cfg) in &cfgs {
        for (pool_name, pool) in [("1-thread pool", Some(&one)), ("2-thread pool", Some(&two))] {
            let model = Model::new(&[d, h, k], Init::He, 1).unwrap();
            let blocks = Trainer::new(model, &data, cfg.clone()).unwrap().n_blocks();
            assert_eq!(blocks, 4);
            let packed = packed_calls(&[d, h, k], &[512, 512, 512, 464], false);
            // Both packing products are the first layer's: the workspace.
            assert_eq!(packed, 0);
            let counts = measure(pool, &[d, h, k], &data, cfg, 6);
            eprintln!(
                "{rows} rows, {d}-{h}-{k} {name}, {pool_name}: first step {:?}, then {:?}",
                counts[0], counts[1]
            );
            assert!(
                counts[1..].iter().all(|&c| c == (packed, packed)),
                "{name}, {pool_name}: allocations per step {counts:?}, expected {packed} packing buffers"
            );
        }
    }

    // Called from outside any pool, a multi-block step enters rayon's
    // global pool twice (block passes, gradient sum); rayon's job queue
    // allocates one block per 63 entries, so about one extra allocation
    // every 31 steps. Packing buffers stay at zero.
    let cfg = config(Optimizer::Sgd, 0.0, 0.0);
    let steps = 80;
    let counts = measure(None, &[d, h, k], &data, &cfg, steps);
    let extra: usize = counts[1..]
        .iter()
        .map(|&(all, packing)| all - packing)
        .sum();
    eprintln!(
        "{rows} rows, {d}-{h}-{k} sgd, called outside the pool: first step {:?}, then {extra} non-packing allocations in {} steps",
        counts[0],
        steps - 1
    );
    assert!(counts[1..].iter().all(|&(_, packing)| packing == 0));
    assert!(extra <= 2 * steps / 63 + 1, "{counts:?}");

    // ---- batch-1 inference: predict_one and predict_proba_one allocate nothing ----
    let shapes = [&[2usize, 100, 3][..], &[784, 512, 10], &[5, 7, 9, 4]];
    for (sizes, act) in shapes
        .into_iter()
        .flat_map(|s| Activation::ALL.map(|a| (s, a)))
    {
        let model = Model::new(sizes, Init::He, 3).unwrap().with_activation(act);
        let model = model
            .with_standardizer(
                vnn::data::Standardizer::new(vec![0.1; sizes[0]], vec![2.0; sizes[0]]).unwrap(),
            )
            .unwrap();
        let mut scratch = model.scratch();
        let x: Vec<f32> = (0..sizes[0]).map(|i| (i as f32 * 0.37).sin()).collect();
        let before = ALLOCS.load(Relaxed);
        let mut classes = 0;
        for _ in 0..100 {
            classes += model.predict_one(&x, &mut scratch).unwrap();
            let p = model.predict_proba_one(&x, &mut scratch).unwrap();
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        let allocated = ALLOCS.load(Relaxed) - before;
        assert!(classes < 100 * sizes[sizes.len() - 1]);
        assert_eq!(
            allocated, 0,
            "{sizes:?} {act}: predict_one allocated {allocated} times in 100 calls"
        );
    }

    // ---- batch inference: nothing with a grown workspace, else output + workspace ----
    let data = spiral(200, 3, 4); // 600 rows: blocks of 256, 256 and 88
    for sizes in [&[2usize, 100, 3][..], &[2, 64, 32, 3], &[5, 7, 9, 4]] {
        let model = Model::new(sizes, Init::He, 3).unwrap();
        let model = model
            .with_standardizer(
                vnn::data::Standardizer::new(vec![0.1; sizes[0]], vec![2.0; sizes[0]]).unwrap(),
            )
            .unwrap();
        let rows = 600;
        let x: Vec<f32> = (0..rows * sizes[0])
            .map(|i| data.features()[i % data.features().len()])
            .collect();
        let k = sizes[sizes.len() - 1];
        for (pool_name, pool) in [("1-thread pool", &one), ("2-thread pool", &two)] {
            pool.install(|| {
                let mut workspace = vnn::model::Workspace::default();
                let mut out = vec![0f32; rows * k];
                model.logits_into(&x, rows, &mut workspace, &mut out).unwrap();
                // Allocations other than matrixmultiply's packing buffers
                // (the products of 256 x 32 x 64 pack).
                let others = || ALLOCS.load(Relaxed) - ALIGNED.load(Relaxed);
                let before = others();
                for _ in 0..20 {
                    model.logits_into(&x, rows, &mut workspace, &mut out).unwrap();
                }
                let reused = others() - before;
                let before = others();
                let fresh = model.logits(&x, rows).unwrap();
                let one_call = others() - before;
                eprintln!("{sizes:?} batch predict, {pool_name}: {reused} non-packing allocations in 20 calls with a workspace, {one_call} in logits");
                assert_eq!(fresh, out);
                assert_eq!(reused, 0, "{sizes:?}, {pool_name}");
                assert_eq!(one_call, 2, "{sizes:?}, {pool_name}: output and workspace");
            });
        }
    }
}

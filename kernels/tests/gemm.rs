//! GEMM and matvec paths against their scalar twins.
//!
//! Tolerance: the paths sum the `k` products in a different order than the
//! twin (register tiles, lanes, chunks) and may fuse multiply-adds, so they
//! are not bit-equal. The standard bound for a floating-point sum of `k`
//! products is `|computed - exact| <= gamma(k) * sum |products|` with
//! `gamma(k) ~ k * eps`; the scaling by `alpha` and `beta` adds two more
//! roundings. Two implementations within that bound differ by at most twice
//! it, so each element is checked against
//! `2 * (k + 2) * eps * (|alpha| * sum_l |a_il * b_lj| + |beta * c_ij|)`.
//! The bound scales with the magnitude of the terms, not with the result, so
//! it stays tight under cancellation and does not pass arbitrary output. An
//! absolute `2 * (k + 2) * f32::MIN_POSITIVE` is added for products in the
//! subnormal range, where rounding is absolute (found by the fuzz target).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use vnn_kernels::gemm::{
    gemm, gemm_blocked, gemm_packed, gemm_scalar, gemm_small, matvec_bias, matvec_bias_packed,
    matvec_bias_packed_scalar, matvec_bias_relu_packed, matvec_bias_scalar, matvec_pack,
    matvec_packed_len, mlp_relu_one_packed, mlp_relu_one_packed_scalar, small_kernel, use_small,
    PackedReluMlp, SmallKernel, Transpose, GEMM_WORKSPACE, MATVEC_PANEL,
};

// --- allocation counter: proves the small paths never touch the heap -------

struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; the counter
// is a const-initialised thread local, which does not allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// --- helpers ----------------------------------------------------------------

const TRANSPOSES: [(Transpose, Transpose); 4] = [
    (Transpose::No, Transpose::No),
    (Transpose::No, Transpose::Yes),
    (Transpose::Yes, Transpose::No),
    (Transpose::Yes, Transpose::Yes),
];

const KERNELS: [SmallKernel; 3] = [
    SmallKernel::Axpy,
    SmallKernel::AxpyTransposed,
    SmallKernel::Dot,
];

/// A GEMM implementation under test.
#[derive(Clone, Copy, Debug)]
enum Path {
    Dispatch,
    Packed,
    Blocked,
    Small(SmallKernel),
}

const PATHS: [Path; 6] = [
    Path::Dispatch,
    Path::Packed,
    Path::Blocked,
    Path::Small(SmallKernel::Axpy),
    Path::Small(SmallKernel::AxpyTransposed),
    Path::Small(SmallKernel::Dot),
];

#[allow(clippy::too_many_arguments)]
fn run(
    path: Path,
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    match path {
        Path::Dispatch => gemm(ta, tb, m, n, k, alpha, a, b, beta, c),
        Path::Packed => gemm_packed(ta, tb, m, n, k, alpha, a, b, beta, c),
        Path::Blocked => WORKSPACE.with_borrow_mut(|ws| {
            gemm_blocked(ta, tb, m, n, k, alpha, a, b, beta, c, ws);
        }),
        Path::Small(kernel) => gemm_small(kernel, ta, tb, m, n, k, alpha, a, b, beta, c),
    }
}

thread_local! {
    /// The packing workspace of [`Path::Blocked`], one per test thread.
    static WORKSPACE: std::cell::RefCell<Vec<f32>> =
        std::cell::RefCell::new(vec![0.0; GEMM_WORKSPACE]);
}

fn random_vec(rng: &mut Xoshiro256PlusPlus, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// `sum_l |op(A)[i, l] * op(B)[l, j]|` for every `(i, j)`: the scale of the
/// rounding error of any summation order.
#[allow(clippy::too_many_arguments)]
fn magnitudes(
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
) -> Vec<f32> {
    let abs_a: Vec<f32> = a.iter().map(|v| v.abs()).collect();
    let abs_b: Vec<f32> = b.iter().map(|v| v.abs()).collect();
    let mut mag = vec![0.0; m * n];
    gemm_scalar(ta, tb, m, n, k, 1.0, &abs_a, &abs_b, 0.0, &mut mag);
    mag
}

/// Sentinel written around `C` to detect stray writes.
const GUARD_VALUE: f32 = 12345.0;
/// Guard elements on each side of `C`.
const GUARD: usize = 19;

/// Runs `path` and the scalar twin on the same random data and compares them
/// element by element, with `C` embedded in a larger guarded buffer.
#[allow(clippy::too_many_arguments)]
fn check(
    path: Path,
    ta: Transpose,
    tb: Transpose,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
    seed: u64,
) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let a = random_vec(&mut rng, m * k);
    let b = random_vec(&mut rng, k * n);
    // beta == 0 must not read C: fill it with NaN so any read shows up.
    let c0 = if beta == 0.0 {
        vec![f32::NAN; m * n]
    } else {
        random_vec(&mut rng, m * n)
    };
    let mut expected = c0.clone();
    gemm_scalar(ta, tb, m, n, k, alpha, &a, &b, beta, &mut expected);

    let mut buffer = vec![GUARD_VALUE; m * n + 2 * GUARD];
    buffer[GUARD..GUARD + m * n].copy_from_slice(&c0);
    run(
        path,
        ta,
        tb,
        m,
        n,
        k,
        alpha,
        &a,
        &b,
        beta,
        &mut buffer[GUARD..GUARD + m * n],
    );

    let what = format!("{path:?} {ta:?}{tb:?} m={m} n={n} k={k} alpha={alpha} beta={beta}");
    assert!(
        buffer[..GUARD]
            .iter()
            .chain(&buffer[GUARD + m * n..])
            .all(|&v| v == GUARD_VALUE),
        "{what}: wrote outside C"
    );
    let got = &buffer[GUARD..GUARD + m * n];
    let mag = magnitudes(ta, tb, m, n, k, &a, &b);
    for idx in 0..m * n {
        let prev = if beta == 0.0 { 0.0 } else { beta * c0[idx] };
        let scale = alpha.abs() * mag[idx] + prev.abs();
        let tol = 2.0 * (k as f32 + 2.0) * (f32::EPSILON * scale + f32::MIN_POSITIVE);
        let (g, e) = (got[idx], expected[idx]);
        assert!(
            !g.is_nan() && (g - e).abs() <= tol,
            "{what}: C[{}, {}] = {g}, expected {e} (tolerance {tol})",
            idx / n,
            idx % n
        );
    }
}

/// Alpha/beta pairs cycled over the shapes: overwrite, accumulate, general
/// scaling, and `alpha = 0` (`C = beta * C`).
const SCALARS: [(f32, f32); 5] = [(1.0, 0.0), (1.0, 1.0), (-1.5, 0.25), (0.5, 0.0), (0.0, 2.0)];

// --- tests --------------------------------------------------------------------

#[test]
fn every_path_matches_scalar_on_all_shapes_up_to_12() {
    let mut seed = 0u64;
    for (ta, tb) in TRANSPOSES {
        for m in 0..=12 {
            for n in 0..=12 {
                for k in 0..=12 {
                    seed += 1;
                    let (alpha, beta) = SCALARS[seed as usize % SCALARS.len()];
                    for path in PATHS {
                        check(path, ta, tb, m, n, k, alpha, beta, seed);
                    }
                }
            }
        }
    }
}

/// Large and odd shapes: full register tiles plus every kind of remainder,
/// and the stage chunking (`k` above 1024 for a staged axpy, `n * k` above
/// 8192 for a staged dot).
#[test]
fn every_path_matches_scalar_on_large_odd_shapes() {
    let shapes = [
        (67, 129, 33),
        (1250, 10, 512),
        (300, 100, 3),
        (33, 17, 1100),
        (9, 7, 2051),
        (5, 40, 300),
        (41, 23, 700),
    ];
    let mut seed = 1000;
    for (m, n, k) in shapes {
        for (ta, tb) in TRANSPOSES {
            for (alpha, beta) in [(1.0, 0.0), (0.75, 1.0)] {
                seed += 1;
                for path in PATHS {
                    check(path, ta, tb, m, n, k, alpha, beta, seed);
                }
            }
        }
    }
}

/// The products of one training step, with the `beta` each is called with.
/// Spiral: N=300, D=2, H=100, K=3. MNIST-like row block: N=1250, D=784,
/// H=512, K=10.
const TRAINING: [(Transpose, Transpose, usize, usize, usize, f32); 10] = [
    (Transpose::No, Transpose::No, 300, 100, 2, 0.0), // Z1 = X W1
    (Transpose::No, Transpose::No, 300, 3, 100, 0.0), // S = A1 W2
    (Transpose::Yes, Transpose::No, 100, 3, 300, 1.0), // dW2 += A1^T dS
    (Transpose::No, Transpose::Yes, 300, 100, 3, 0.0), // dA1 = dS W2^T
    (Transpose::Yes, Transpose::No, 2, 100, 300, 1.0), // dW1 += X^T dZ1
    (Transpose::No, Transpose::No, 1250, 512, 784, 0.0), // Z1 = X W1
    (Transpose::No, Transpose::No, 1250, 10, 512, 0.0), // S = A1 W2
    (Transpose::Yes, Transpose::No, 512, 10, 1250, 1.0), // dW2 += A1^T dS
    (Transpose::No, Transpose::Yes, 1250, 512, 10, 0.0), // dA1 = dS W2^T
    (Transpose::Yes, Transpose::No, 784, 512, 1250, 1.0), // dW1 += X^T dZ1
];

#[test]
fn every_path_matches_scalar_on_training_shapes() {
    for (i, &(ta, tb, m, n, k, beta)) in TRAINING.iter().enumerate() {
        if !use_small(m, n, k) {
            // X W1 and X^T dZ1 go to the packed GEMM, which the other tests
            // cover; the twin would take minutes on them in a debug build.
            continue;
        }
        for path in PATHS {
            check(path, ta, tb, m, n, k, 1.0, beta, 2000 + i as u64);
        }
    }
}

#[test]
fn dispatch_sends_thin_training_products_to_small_kernels() {
    for &(ta, tb, m, n, k, _) in &TRAINING {
        // Thin products go to the small kernels, except an inner dimension
        // of at most 4 under a large C (packed is faster there).
        let thin = m.min(n).min(k) <= 16 && !(k <= 4 && m >= 64 && n >= 64);
        assert_eq!(use_small(m, n, k), thin, "{ta:?}{tb:?} {m}x{n}x{k}");
    }
    let no = Transpose::No;
    let yes = Transpose::Yes;
    assert_eq!(small_kernel(no, no, 300, 100, 2), SmallKernel::Axpy);
    assert_eq!(small_kernel(no, no, 300, 3, 100), SmallKernel::Dot);
    assert_eq!(
        small_kernel(yes, no, 100, 3, 300),
        SmallKernel::AxpyTransposed
    );
    assert_eq!(small_kernel(no, yes, 300, 100, 3), SmallKernel::Axpy);
    assert_eq!(small_kernel(yes, no, 2, 100, 300), SmallKernel::Axpy);
    assert_eq!(small_kernel(no, no, 1250, 10, 512), SmallKernel::Dot);
    assert_eq!(
        small_kernel(yes, no, 512, 10, 1250),
        SmallKernel::AxpyTransposed
    );
    assert_eq!(small_kernel(no, yes, 1250, 512, 10), SmallKernel::Axpy);
}

/// Infinities and NaNs in the inputs: wherever the twin gives NaN or an
/// infinity, so must every path (the sums of infinite terms do not depend on
/// their order), and no path may invent one from padding or overlapping
/// lanes (e.g. `0 * inf`).
#[test]
fn non_finite_inputs_propagate_like_the_twin() {
    let mut seed = 5000;
    for (m, n, k) in [(9, 11, 13), (4, 33, 17), (21, 3, 40), (8, 8, 8), (3, 2, 5)] {
        for (ta, tb) in TRANSPOSES {
            seed += 1;
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut special = |len: usize| -> Vec<f32> {
                (0..len)
                    .map(|_| match rng.random_range(0..40u32) {
                        0 => f32::INFINITY,
                        1 => f32::NEG_INFINITY,
                        2 => f32::NAN,
                        3 => 0.0,
                        _ => rng.random_range(-1.0f32..1.0),
                    })
                    .collect()
            };
            let a = special(m * k);
            let b = special(k * n);
            let mut expected = vec![f32::NAN; m * n];
            gemm_scalar(ta, tb, m, n, k, 1.0, &a, &b, 0.0, &mut expected);
            for path in PATHS {
                let mut got = vec![f32::NAN; m * n];
                run(path, ta, tb, m, n, k, 1.0, &a, &b, 0.0, &mut got);
                for (idx, (&g, &e)) in got.iter().zip(&expected).enumerate() {
                    let same = if e.is_nan() {
                        g.is_nan()
                    } else if e.is_infinite() {
                        g == e
                    } else {
                        g.is_finite()
                    };
                    assert!(
                        same,
                        "{path:?} {ta:?}{tb:?} {m}x{n}x{k} at {idx}: got {g}, expected {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn small_paths_and_matvec_do_not_allocate() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    for &(ta, tb, m, n, k, beta) in &TRAINING {
        if !use_small(m, n, k) {
            continue;
        }
        let a = random_vec(&mut rng, m * k);
        let b = random_vec(&mut rng, k * n);
        let mut c = vec![0.0; m * n];
        let before = allocations();
        gemm(ta, tb, m, n, k, 1.0, &a, &b, beta, &mut c);
        for kernel in KERNELS {
            gemm_small(kernel, ta, tb, m, n, k, 1.0, &a, &b, beta, &mut c);
        }
        assert_eq!(allocations(), before, "{ta:?}{tb:?} {m}x{n}x{k} allocated");
    }
    for (n_in, n_out) in [(784, 512), (512, 10), (2, 100), (100, 3)] {
        let x = random_vec(&mut rng, n_in);
        let w = random_vec(&mut rng, n_in * n_out);
        let bias = random_vec(&mut rng, n_out);
        let mut out = vec![0.0; n_out];
        let before = allocations();
        matvec_bias(&x, &w, &bias, n_in, n_out, &mut out);
        let mut packed = vec![0.0; matvec_packed_len(n_in, n_out)];
        let before_packed = allocations();
        matvec_pack(&w, n_in, n_out, &mut packed);
        matvec_bias_packed(&x, &packed, Some(&bias), n_in, n_out, &mut out);
        assert_eq!(
            allocations(),
            before_packed,
            "packed {n_in}x{n_out} allocated"
        );
        assert_eq!(allocations(), before + 1, "matvec {n_in}x{n_out} allocated");
    }
}

#[test]
fn gemm_known_values() {
    // [1 2 3; 4 5 6] * [1 0; 0 1; 1 1] = [4 5; 10 11]
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    for path in PATHS {
        let mut c = [1.0, 1.0, 1.0, 1.0];
        run(
            path,
            Transpose::No,
            Transpose::No,
            2,
            2,
            3,
            2.0,
            &a,
            &b,
            1.0,
            &mut c,
        );
        assert_eq!(c, [9.0, 11.0, 21.0, 23.0], "{path:?}");
    }
}

#[test]
#[should_panic(expected = "A has 5 elements")]
fn gemm_rejects_wrong_lengths() {
    let mut c = [0.0; 4];
    gemm(
        Transpose::No,
        Transpose::No,
        2,
        2,
        3,
        1.0,
        &[0.0; 5],
        &[0.0; 6],
        0.0,
        &mut c,
    );
}

#[test]
#[should_panic(expected = "C has 3 elements")]
fn gemm_small_rejects_wrong_lengths() {
    let mut c = [0.0; 3];
    gemm_small(
        SmallKernel::Dot,
        Transpose::No,
        Transpose::No,
        2,
        2,
        3,
        1.0,
        &[0.0; 6],
        &[0.0; 6],
        0.0,
        &mut c,
    );
}

// --- matvec ---------------------------------------------------------------------

/// Sizes of the matvec tests, for `n_in` and `n_out`: 0, 1, lane - 1,
/// lane, lane + 1 for 8 and 16 lanes, odd, the 64-output panel's edges and
/// large.
const MATVEC_SIZES: [usize; 12] = [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000];

/// Checks `got` (inside its guards) against `expected` under the GEMM
/// tolerance with `k = n_in` and the bias as the `beta * C` term.
fn check_matvec(what: &str, x: &[f32], w: &[f32], bias: &[f32], buffer: &[f32], expected: &[f32]) {
    let (n_in, n_out) = (x.len(), bias.len());
    assert!(buffer[..GUARD]
        .iter()
        .chain(&buffer[GUARD + n_out..])
        .all(|&v| v == GUARD_VALUE));
    for j in 0..n_out {
        let mag: f32 = (0..n_in)
            .map(|i| (x[i] * w[i * n_out + j]).abs())
            .sum::<f32>()
            + bias[j].abs();
        let tol = 2.0 * (n_in as f32 + 1.0) * f32::EPSILON * mag;
        let (g, e) = (buffer[GUARD + j], expected[j]);
        assert!(
            (g - e).abs() <= tol,
            "{what} {n_in}x{n_out} out[{j}] = {g}, expected {e} (tolerance {tol})"
        );
    }
}

/// An output buffer of `n` NaNs between guards.
fn guarded_out(n: usize) -> Vec<f32> {
    let mut buffer = vec![GUARD_VALUE; n + 2 * GUARD];
    buffer[GUARD..GUARD + n].fill(f32::NAN);
    buffer
}

/// `matvec_bias` against its twin.
#[test]
fn matvec_matches_scalar() {
    let mut seed = 9000;
    for n_in in MATVEC_SIZES {
        for n_out in MATVEC_SIZES {
            seed += 1;
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let x = random_vec(&mut rng, n_in);
            let w = random_vec(&mut rng, n_in * n_out);
            let bias = random_vec(&mut rng, n_out);
            let mut expected = vec![f32::NAN; n_out];
            matvec_bias_scalar(&x, &w, &bias, n_in, n_out, &mut expected);
            let mut buffer = guarded_out(n_out);
            let out = &mut buffer[GUARD..GUARD + n_out];
            matvec_bias(&x, &w, &bias, n_in, n_out, out);
            check_matvec("matvec", &x, &w, &bias, &buffer, &expected);
        }
    }
}

/// `matvec_bias_packed` against `matvec_bias_scalar` on the unpacked
/// matrix (same tolerance), against its own twin (the same bound), and
/// bit for bit against `matvec_bias` where that streams the rows (more
/// than 64 outputs, at least 64 inputs) in builds with FMA
/// (its row-streaming path adds the rows in the same order with the same
/// fused multiply-adds, in whole vectors: its last `n_out % 8` columns are
/// scalar).
#[test]
fn matvec_packed_matches_scalar() {
    let mut seed = 9500;
    for n_in in MATVEC_SIZES {
        for n_out in MATVEC_SIZES.into_iter().chain([130, 520]) {
            seed += 1;
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let x = random_vec(&mut rng, n_in);
            let w = random_vec(&mut rng, n_in * n_out);
            let bias = random_vec(&mut rng, n_out);
            let mut packed = vec![f32::NAN; matvec_packed_len(n_in, n_out)];
            matvec_pack(&w, n_in, n_out, &mut packed);
            let mut expected = vec![f32::NAN; n_out];
            matvec_bias_scalar(&x, &w, &bias, n_in, n_out, &mut expected);
            let mut buffer = guarded_out(n_out);
            let out = &mut buffer[GUARD..GUARD + n_out];
            matvec_bias_packed(&x, &packed, Some(&bias), n_in, n_out, out);
            check_matvec("matvec packed", &x, &w, &bias, &buffer, &expected);
            let mut twin = guarded_out(n_out);
            let out = &mut twin[GUARD..GUARD + n_out];
            matvec_bias_packed_scalar(&x, &packed, Some(&bias), n_in, n_out, out);
            check_matvec("matvec packed twin", &x, &w, &bias, &twin, &expected);
            let rows_path = n_out > MATVEC_PANEL && n_in >= MATVEC_PANEL;
            if rows_path && cfg!(target_feature = "fma") {
                matvec_bias(&x, &w, &bias, n_in, n_out, &mut expected);
                let whole = n_out / 8 * 8;
                let got = &buffer[GUARD..GUARD + whole];
                assert_eq!(got, &expected[..whole], "{n_in}x{n_out}");
            }
        }
    }
}

/// The one-call ReLU network equals its two packed products bit for bit,
/// and its scalar twin (the naive products with ReLU between them) within
/// the GEMM tolerance; neither writes outside its outputs.
#[test]
fn mlp_one_packed_matches_its_products() {
    let mut seed = 9700;
    for (n_in, hidden, n_out) in [
        (2, 100, 3),
        (1, 1, 1),
        (17, 13, 12),
        (64, 65, 13),
        (784, 512, 10),
    ] {
        seed += 1;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let pack = |w: &[f32], n_in, n_out| {
            let mut p = vec![f32::NAN; matvec_packed_len(n_in, n_out)];
            matvec_pack(w, n_in, n_out, &mut p);
            p
        };
        let (w1, w2) = (
            random_vec(&mut rng, n_in * hidden),
            random_vec(&mut rng, hidden * n_out),
        );
        let (b1, b2, x) = (
            random_vec(&mut rng, hidden),
            random_vec(&mut rng, n_out),
            random_vec(&mut rng, n_in),
        );
        let (p1, p2) = (pack(&w1, n_in, hidden), pack(&w2, hidden, n_out));
        let net = PackedReluMlp {
            w1: &p1,
            b1: &b1,
            w2: &p2,
            b2: &b2,
        };
        let (mut h, mut out) = (guarded_out(hidden), guarded_out(n_out));
        let (hv, ov) = (
            &mut h[GUARD..GUARD + hidden],
            &mut out[GUARD..GUARD + n_out],
        );
        mlp_relu_one_packed(&net, &x, hv, ov);
        let mut h2 = vec![f32::NAN; hidden];
        matvec_bias_relu_packed(&x, &p1, Some(&b1), n_in, hidden, &mut h2);
        let mut o2 = vec![f32::NAN; n_out];
        matvec_bias_packed(&h2, &p2, Some(&b2), hidden, n_out, &mut o2);
        assert_eq!(
            &h[GUARD..GUARD + hidden],
            &h2[..],
            "{n_in}-{hidden}-{n_out} hidden"
        );
        assert_eq!(
            &out[GUARD..GUARD + n_out],
            &o2[..],
            "{n_in}-{hidden}-{n_out} out"
        );
        let mut naive_h = vec![f32::NAN; hidden];
        matvec_bias_scalar(&x, &w1, &b1, n_in, hidden, &mut naive_h);
        naive_h.iter_mut().for_each(|v| *v = v.max(0.0));
        check_matvec("mlp one packed, hidden", &x, &w1, &b1, &h, &naive_h);
        let mut expected = vec![f32::NAN; n_out];
        matvec_bias_scalar(&naive_h, &w2, &b2, hidden, n_out, &mut expected);
        check_matvec("mlp one packed", &naive_h, &w2, &b2, &out, &expected);
        let (mut th, mut to) = (guarded_out(hidden), guarded_out(n_out));
        let (thv, tov) = (
            &mut th[GUARD..GUARD + hidden],
            &mut to[GUARD..GUARD + n_out],
        );
        mlp_relu_one_packed_scalar(&net, &x, thv, tov);
        check_matvec("mlp one packed twin", &naive_h, &w2, &b2, &to, &expected);
    }
}

/// Without a bias the packed product is `x * W` (the twin with a zero bias).
#[test]
fn matvec_packed_without_bias() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9999);
    let (n_in, n_out) = (65, 130);
    let x = random_vec(&mut rng, n_in);
    let w = random_vec(&mut rng, n_in * n_out);
    let zero = vec![0.0; n_out];
    let mut packed = vec![0.0; matvec_packed_len(n_in, n_out)];
    matvec_pack(&w, n_in, n_out, &mut packed);
    let mut expected = vec![f32::NAN; n_out];
    matvec_bias_scalar(&x, &w, &zero, n_in, n_out, &mut expected);
    let mut buffer = guarded_out(n_out);
    matvec_bias_packed(
        &x,
        &packed,
        None,
        n_in,
        n_out,
        &mut buffer[GUARD..GUARD + n_out],
    );
    check_matvec("matvec packed, no bias", &x, &w, &zero, &buffer, &expected);
}

#[test]
#[should_panic(expected = "matvec_bias_packed: the packed W has")]
fn matvec_packed_rejects_an_unpacked_matrix() {
    let mut out = [0.0; 3];
    matvec_bias_packed(&[1.0, 2.0], &[0.0; 6], None, 2, 3, &mut out);
}

#[test]
fn matvec_known_values() {
    // x = [1, 2]; W = [1 2 3; 4 5 6]; b = [0.5, 0, -1]
    let mut out = [f32::NAN; 3];
    matvec_bias(
        &[1.0, 2.0],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        &[0.5, 0.0, -1.0],
        2,
        3,
        &mut out,
    );
    assert_eq!(out, [9.5, 12.0, 14.0]);
}

#[test]
#[should_panic(expected = "matvec_bias: W has")]
fn matvec_rejects_wrong_lengths() {
    let mut out = [0.0; 3];
    matvec_bias(&[1.0, 2.0], &[0.0; 5], &[0.0; 3], 2, 3, &mut out);
}

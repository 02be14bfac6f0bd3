//! Every activation's kernels (`bias_act_forward`, `act_backward`) against
//! their scalar twins, the backward against central finite differences of
//! the scalar forward, and the saturation and NaN rules.
//!
//! Tolerances: the forward of tanh and sigmoid within `1e-6` relative or
//! `1e-7` absolute of the twin (a polynomial `exp` against `std`); ReLU,
//! leaky ReLU and every backward bit for bit (two NaNs count as equal).

mod common;

use approx::relative_eq;
use common::{assert_bits_eq, rng};
use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;
use vnn_kernels::activation::{
    act_backward, act_backward_scalar, bias_act_forward, bias_act_forward_scalar,
    bias_relu_dropout_forward, bias_relu_forward, relu_backward, Activation, LEAKY_RELU_SLOPE,
};
use vnn_kernels::mask::{bernoulli_mask, keep_scale, Dropout};

/// Lengths around the 8- and 16-lane boundaries, odd lengths and a large one.
const LENGTHS: [usize; 12] = [0, 1, 7, 8, 9, 15, 16, 17, 31, 63, 65, 1000];

/// Values the random data is skewed towards.
const SPECIALS: [f32; 9] = [
    0.0,
    -0.0,
    1e30,
    -1e30,
    f32::NEG_INFINITY,
    f32::INFINITY,
    f32::NAN,
    f32::MIN_POSITIVE,
    -90.0,
];

/// Relative bound of the tanh and sigmoid forward against the twin.
const MAX_RELATIVE: f32 = 1e-6;
/// Absolute bound of the same (values near 0, where `std` keeps subnormals
/// that the shared `exp` flushes).
const EPSILON: f32 = 1e-7;

const DROPOUTS: [Option<Dropout>; 3] = [
    None,
    Some(Dropout {
        p_drop: 0.3,
        seed: 7,
        stream: 2,
    }),
    Some(Dropout {
        p_drop: 0.0,
        seed: 1,
        stream: 0,
    }),
];

/// Uniform values in `[-6, 6)`, about one in eight replaced by a special
/// value when `specials` is set.
fn data(r: &mut Xoshiro256PlusPlus, n: usize, specials: bool) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if specials && r.random_range(0..8) == 0 {
                SPECIALS[r.random_range(0..SPECIALS.len())]
            } else {
                r.random_range(-6.0f32..6.0)
            }
        })
        .collect()
}

/// `(rows, cols)`: every length as the columns of one and of three rows and
/// as a column vector, then random shapes from a fixed seed.
fn shapes() -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for n in LENGTHS {
        out.extend([(1, n), (3, n), (n, 1)]);
    }
    let mut r = rng(0xAC7);
    for _ in 0..20 {
        out.push((r.random_range(0..30), r.random_range(0..70)));
    }
    out
}

/// NaN where the twin is NaN, equal infinities, else [`MAX_RELATIVE`] or
/// [`EPSILON`].
#[track_caller]
fn assert_close(simd: &[f32], scalar: &[f32], what: &str) {
    assert_eq!(simd.len(), scalar.len(), "{what}: lengths");
    for (i, (&a, &b)) in simd.iter().zip(scalar).enumerate() {
        let ok = if a.is_nan() || b.is_nan() {
            a.is_nan() && b.is_nan()
        } else if a.is_infinite() || b.is_infinite() {
            a == b
        } else {
            relative_eq!(a, b, epsilon = EPSILON, max_relative = MAX_RELATIVE)
        };
        assert!(ok, "{what}: element {i}: simd {a:e} vs scalar {b:e}");
    }
}

fn is_exact(act: Activation) -> bool {
    matches!(act, Activation::Relu | Activation::LeakyRelu)
}

#[test]
fn forward_matches_twin_for_every_activation_with_and_without_dropout() {
    let mut r = rng(1);
    for act in Activation::ALL {
        for dropout in DROPOUTS {
            for (rows, cols) in shapes() {
                let z = data(&mut r, rows * cols, true);
                let bias = data(&mut r, cols, true);
                let (mut a, mut b) = (z.clone(), z);
                bias_act_forward(act, &mut a, &bias, rows, cols, dropout);
                bias_act_forward_scalar(act, &mut b, &bias, rows, cols, dropout);
                let what = format!("{act} forward {rows}x{cols} {dropout:?}");
                if is_exact(act) {
                    assert_bits_eq(&a, &b, &what);
                } else {
                    assert_close(&a, &b, &what);
                }
            }
        }
    }
}

#[test]
fn backward_matches_twin_exactly_for_every_activation() {
    let mut r = rng(2);
    for act in Activation::ALL {
        for dropout in DROPOUTS {
            for (rows, cols) in shapes() {
                // A from the forward (so dropped units are 0), plus raw specials.
                let mut a = data(&mut r, rows * cols, true);
                let bias = vec![0.0; cols];
                bias_act_forward(act, &mut a, &bias, rows, cols, dropout);
                if let Some(v) = a.first_mut() {
                    *v = f32::NAN;
                }
                let da = data(&mut r, rows * cols, true);
                // db accumulates: start from non-zero values.
                let db0 = data(&mut r, cols, false);
                let (mut a1, mut a2) = (a.clone(), a);
                let (mut db1, mut db2) = (db0.clone(), db0);
                act_backward(act, &mut a1, &da, rows, cols, dropout, &mut db1);
                act_backward_scalar(act, &mut a2, &da, rows, cols, dropout, &mut db2);
                let what = format!("{act} backward {rows}x{cols} {dropout:?}");
                assert_bits_eq(&a1, &a2, &what);
                assert_bits_eq(&db1, &db2, &what);
            }
        }
    }
}

#[test]
fn relu_entries_are_the_relu_kernels_bit_for_bit() {
    let mut r = rng(3);
    let (rows, cols) = (5, 37);
    let z = data(&mut r, rows * cols, true);
    let bias = data(&mut r, cols, true);
    let d = DROPOUTS[1].unwrap();
    let (mut a, mut b) = (z.clone(), z.clone());
    bias_act_forward(Activation::Relu, &mut a, &bias, rows, cols, None);
    bias_relu_forward(&mut b, &bias, rows, cols);
    assert_bits_eq(&a, &b, "relu forward");
    let (mut a, mut b) = (z.clone(), z);
    bias_act_forward(Activation::Relu, &mut a, &bias, rows, cols, Some(d));
    bias_relu_dropout_forward(&mut b, &bias, rows, cols, d.p_drop, d.seed, d.stream);
    assert_bits_eq(&a, &b, "relu dropout forward");
    let da = data(&mut r, rows * cols, true);
    let (mut db1, mut db2) = (vec![0.5; cols], vec![0.5; cols]);
    let mut b2 = b.clone();
    act_backward(Activation::Relu, &mut b, &da, rows, cols, Some(d), &mut db1);
    relu_backward(&mut b2, &da, rows, cols, keep_scale(d.p_drop), &mut db2);
    assert_bits_eq(&b, &b2, "relu backward dZ");
    assert_bits_eq(&db1, &db2, "relu backward db");
}

#[test]
fn dropout_forward_equals_forward_times_mask_and_drops_to_zero() {
    let mut r = rng(4);
    let (rows, cols) = (7, 45);
    let d = DROPOUTS[1].unwrap();
    let mut mask = vec![f32::NAN; rows * cols];
    bernoulli_mask(&mut mask, d.p_drop, d.seed, d.stream);
    for act in Activation::ALL {
        let z = data(&mut r, rows * cols, false);
        let bias = data(&mut r, cols, false);
        let (mut fused, mut plain) = (z.clone(), z);
        bias_act_forward(act, &mut fused, &bias, rows, cols, Some(d));
        bias_act_forward(act, &mut plain, &bias, rows, cols, None);
        let unfused: Vec<f32> = plain.iter().zip(&mask).map(|(a, m)| a * m).collect();
        assert_bits_eq(&fused, &unfused, &format!("{act} dropout forward"));
        for (&a, &m) in fused.iter().zip(&mask) {
            if m == 0.0 {
                // 0 * act: -0.0 where the activation is negative.
                assert_eq!(a, 0.0, "{act}: a dropped unit is 0");
            }
        }
    }
}

/// The scalar forward of one unit, as `f64` for the difference quotient.
fn forward_unit(act: Activation, z: f32, bias: f32, dropout: Option<Dropout>, pos: usize) -> f64 {
    let mut row = vec![0.0; pos + 1];
    row[pos] = z;
    let mut b = vec![0.0; pos + 1];
    b[pos] = bias;
    bias_act_forward_scalar(act, &mut row, &b, 1, pos + 1, dropout);
    row[pos] as f64
}

#[test]
fn backward_matches_central_differences_of_the_scalar_forward() {
    // dZ = dA * dA_out/dZ, with dA_out/dZ ~ (F(z + h) - F(z - h)) / 2h of the
    // scalar forward F. For tanh and sigmoid: F''' is at most 2 (tanh) and
    // 1/8 (sigmoid), so the truncation error is below h²/3 = 3.3e-5; f32
    // rounding adds about 1e-7 / h = 1e-5. Bound: 2e-4 absolute, times
    // |dA| and the dropout scale. Leaky ReLU keeps |z| >= 0.05 > h, away
    // from its kink.
    let h = 1e-2f32;
    let mut r = rng(5);
    let cols = 19;
    for act in [Activation::Tanh, Activation::Sigmoid, Activation::LeakyRelu] {
        for dropout in DROPOUTS {
            let z: Vec<f32> = (0..cols)
                .map(|_| {
                    let v = r.random_range(-3.0f32..3.0);
                    if v.abs() < 0.05 {
                        0.5
                    } else {
                        v
                    }
                })
                .collect();
            let bias = data(&mut r, cols, false)
                .iter()
                .map(|b| b * 0.01)
                .collect::<Vec<_>>();
            let da = data(&mut r, cols, false);
            let mut a = z.clone();
            bias_act_forward_scalar(act, &mut a, &bias, 1, cols, dropout);
            let mut db = vec![0.0; cols];
            act_backward_scalar(act, &mut a, &da, 1, cols, dropout, &mut db);
            let scale = dropout.map_or(1.0, |d| keep_scale(d.p_drop)) as f64;
            for c in 0..cols {
                let (hi, lo) = (z[c] + h, z[c] - h);
                let slope = (forward_unit(act, hi, bias[c], dropout, c)
                    - forward_unit(act, lo, bias[c], dropout, c))
                    / (hi - lo) as f64;
                let want = da[c] as f64 * slope;
                let bound = 2e-4 * (da[c].abs() as f64) * scale;
                assert!(
                    (a[c] as f64 - want).abs() <= bound,
                    "{act} {dropout:?} col {c}: dZ {} vs difference quotient {want}",
                    a[c]
                );
                assert_eq!(db[c], a[c], "{act}: db is the column sum of one row");
            }
        }
    }
}

#[test]
fn tanh_and_sigmoid_saturate_in_range_and_propagate_nan() {
    let inputs = [
        1e30,
        -1e30,
        f32::MAX,
        f32::MIN,
        100.0,
        -100.0,
        88.0,
        -88.0,
        87.5,
        -87.5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        0.0,
        -0.0,
        1e-30,
        -1e-30,
    ];
    let n = inputs.len();
    // A bias of -0.0 keeps every input as it is (-0.0 + -0.0 = -0.0).
    let mut t = inputs;
    bias_act_forward(Activation::Tanh, &mut t, &[-0.0; 17], 1, n, None);
    let mut s = inputs;
    bias_act_forward(Activation::Sigmoid, &mut s, &[-0.0; 17], 1, n, None);
    // tanh(±large) = ±1, sigmoid(large) = 1, sigmoid(-large) = 0.
    assert_eq!(
        &t[..12],
        &[1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    );
    assert_eq!(
        &s[..12],
        &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    );
    assert!(t[12].is_nan() && s[12].is_nan());
    // tanh(±0) = ±0 with its sign; tanh(x) = x for tiny x; sigmoid(0) = 1/2.
    assert_eq!(t[13].to_bits(), 0.0f32.to_bits());
    assert_eq!(t[14].to_bits(), (-0.0f32).to_bits());
    assert_eq!(&t[15..], &[1e-30, -1e-30]);
    assert_eq!(&s[13..], &[0.5; 4]);
}

#[test]
fn tanh_and_sigmoid_are_finite_in_range_and_accurate_over_a_sweep() {
    // Every finite input in a sweep over [-100, 100] (odd steps, so lanes see
    // varied values) stays finite and in range, within 1e-6 relative or
    // 1e-7 absolute of the f64 reference.
    let z: Vec<f32> = (0..40_001).map(|i| -100.0 + i as f32 * 0.005).collect();
    let n = z.len();
    for act in [Activation::Tanh, Activation::Sigmoid] {
        let mut a = z.clone();
        bias_act_forward(act, &mut a, &[0.0], n, 1, None);
        for (&x, &v) in z.iter().zip(&a) {
            let x64 = x as f64;
            let want = match act {
                Activation::Tanh => x64.tanh(),
                _ => 1.0 / (1.0 + (-x64).exp()),
            };
            let low = if act == Activation::Tanh { -1.0 } else { 0.0 };
            assert!(
                v.is_finite() && (low..=1.0).contains(&v),
                "{act}({x}) = {v}"
            );
            let err = (v as f64 - want).abs();
            assert!(
                err <= 1e-7 || err <= 1e-6 * want.abs(),
                "{act}({x}) = {v}, f64 {want}"
            );
        }
    }
}

#[test]
fn backward_derivatives_from_the_output() {
    // tanh' = 1 - A², sigmoid' = A (1 - A), leaky' = 1 (A > 0) or the slope.
    let a = [0.5f32, -0.5, 0.0, 1.0];
    let da = [2.0f32; 4];
    let expect = |act, want: [f32; 4]| {
        let mut dz = a;
        let mut db = [0.0; 4];
        act_backward(act, &mut dz, &da, 1, 4, None, &mut db);
        assert_eq!(dz, want, "{act}");
        assert_eq!(db, want, "{act}");
    };
    expect(Activation::Tanh, [1.5, 1.5, 2.0, 0.0]);
    expect(Activation::Sigmoid, [0.5, -1.5, 0.0, 0.0]);
    let s = 2.0 * LEAKY_RELU_SLOPE;
    expect(Activation::LeakyRelu, [2.0, s, s, 2.0]);
}

#[test]
fn backward_with_dropout_zeroes_dropped_units_even_where_the_derivative_is_not_zero() {
    // tanh(0) = 0 has derivative 1: a dropped unit (A = 0 too) must still get 0.
    let (rows, cols) = (4, 33);
    let d = DROPOUTS[1].unwrap();
    let mut mask = vec![0.0; rows * cols];
    bernoulli_mask(&mut mask, d.p_drop, d.seed, d.stream);
    for act in [Activation::Tanh, Activation::LeakyRelu] {
        let mut a = vec![0.0; rows * cols];
        bias_act_forward(act, &mut a, &vec![0.0; cols], rows, cols, Some(d));
        let mut db = vec![0.0; cols];
        act_backward(
            act,
            &mut a,
            &vec![1.0; rows * cols],
            rows,
            cols,
            Some(d),
            &mut db,
        );
        for (&dz, &m) in a.iter().zip(&mask) {
            let want = if act == Activation::Tanh {
                m
            } else {
                m * LEAKY_RELU_SLOPE
            };
            assert_eq!(dz, want, "{act}: dZ = M * act'(0)");
        }
    }
}

#[test]
fn names_round_trip() {
    for act in Activation::ALL {
        assert_eq!(Activation::from_name(act.name()), Some(act));
        assert_eq!(act.to_string().parse::<Activation>(), Ok(act));
    }
    let names: Vec<&str> = Activation::ALL.iter().map(|a| a.name()).collect();
    assert_eq!(names, ["relu", "tanh", "sigmoid", "leaky-relu"]);
    let err = "swish".parse::<Activation>().unwrap_err();
    assert!(err.to_string().contains("unknown activation 'swish'"));
}

/// `X W` by the triple loop in `f64`, `X` `rows x k`, `W` `k x n`, with
/// either operand read transposed through `x_at` / `w_at`.
fn naive_product(
    rows: usize,
    k: usize,
    n: usize,
    x_at: impl Fn(usize, usize) -> f32,
    w_at: impl Fn(usize, usize) -> f32,
) -> Vec<f32> {
    let mut out = vec![0.0; rows * n];
    for r in 0..rows {
        for c in 0..n {
            let s: f64 = (0..k).map(|l| x_at(r, l) as f64 * w_at(l, c) as f64).sum();
            out[r * n + c] = s as f32;
        }
    }
    out
}

#[test]
fn layer_ops_take_any_activation_and_relu_unchanged() {
    use vnn_kernels::layer::{
        act_dense_backward, act_dense_backward_scratch, dense_act_forward, dense_relu_forward,
        relu_dense_backward, relu_dense_backward_scratch, DenseShape,
    };
    let mut r = rng(6);
    let d = DROPOUTS[1].unwrap();
    for (rows, n_in, n_out) in [(1, 3, 5), (9, 2, 17), (40, 33, 3), (150, 20, 70)] {
        let shape = DenseShape { rows, n_in, n_out };
        let x = data(&mut r, rows * n_in, false);
        let w = data(&mut r, n_in * n_out, false);
        let b = data(&mut r, n_out, false);
        for dropout in [None, Some(d)] {
            // ReLU: the ReLU ops, bit for bit.
            let (mut a1, mut a2) = (vec![f32::NAN; rows * n_out], vec![f32::NAN; rows * n_out]);
            dense_act_forward(Activation::Relu, shape, &x, &w, &b, dropout, &mut a1);
            dense_relu_forward(shape, &x, &w, &b, dropout, &mut a2);
            assert_bits_eq(&a1, &a2, "relu layer forward");
            // The backward of the next layer (n_out inputs, n_in outputs).
            let next = DenseShape {
                rows,
                n_in: n_out,
                n_out: n_in,
            };
            let w2 = data(&mut r, n_out * n_in, false);
            let ds2 = data(&mut r, rows * n_in, false);
            let (mut dw1, mut dw2) = (vec![0.0; n_out * n_in], vec![0.0; n_out * n_in]);
            let (mut db1, mut db2) = (vec![0.0; n_out], vec![0.0; n_out]);
            let mut s1 = vec![0.0; act_dense_backward_scratch(Activation::Relu, next)];
            let mut s2 = vec![0.0; relu_dense_backward_scratch(next)];
            let scale = dropout.map_or(1.0, |d| keep_scale(d.p_drop));
            act_dense_backward(
                Activation::Relu,
                next,
                &mut a1,
                &ds2,
                &w2,
                dropout,
                &mut dw1,
                &mut db1,
                &mut s1,
            );
            relu_dense_backward(next, &mut a2, &ds2, &w2, scale, &mut dw2, &mut db2, &mut s2);
            assert_bits_eq(&a1, &a2, "relu layer backward dZ");
            assert_bits_eq(&dw1, &dw2, "relu layer backward dW");
            assert_bits_eq(&db1, &db2, "relu layer backward db");

            for act in [Activation::Tanh, Activation::Sigmoid, Activation::LeakyRelu] {
                let what = format!("{act} {rows}x{n_in}x{n_out} {dropout:?}");
                // Forward against X W in f64 and the scalar twin: 1e-5.
                let mut a = vec![f32::NAN; rows * n_out];
                dense_act_forward(act, shape, &x, &w, &b, dropout, &mut a);
                let mut want = naive_product(
                    rows,
                    n_in,
                    n_out,
                    |i, l| x[i * n_in + l],
                    |l, c| w[l * n_out + c],
                );
                bias_act_forward_scalar(act, &mut want, &b, rows, n_out, dropout);
                for (i, (&g, &e)) in a.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-5 * (1.0 + e.abs()),
                        "{what}: A[{i}] {g} vs {e}"
                    );
                }
                // Backward through the output layer S = A W2' + c (W2' n_out x n_in
                // as `next` has it): dW against Aᵀ dS, dZ against the twin on
                // dA = dS W2'ᵀ, db the column sums of dZ.
                let mut dz = a.clone();
                let mut dw = vec![0.0; n_out * n_in];
                let mut db = vec![0.0; n_out];
                let mut scratch = vec![f32::NAN; act_dense_backward_scratch(act, next)];
                act_dense_backward(
                    act,
                    next,
                    &mut dz,
                    &ds2,
                    &w2,
                    dropout,
                    &mut dw,
                    &mut db,
                    &mut scratch,
                );
                let want_dw = naive_product(
                    n_out,
                    rows,
                    n_in,
                    |j, i| a[i * n_out + j],
                    |i, c| ds2[i * n_in + c],
                );
                let da = naive_product(
                    rows,
                    n_in,
                    n_out,
                    |i, l| ds2[i * n_in + l],
                    |l, j| w2[j * n_in + l],
                );
                let mut want_dz = a.clone();
                let mut want_db = vec![0.0; n_out];
                act_backward_scalar(act, &mut want_dz, &da, rows, n_out, dropout, &mut want_db);
                // Bounds: 1e-5 of the same sums over absolute values (|act'| <= 1,
                // the mask at most its scale).
                let scale = dropout.map_or(1.0, |d| keep_scale(d.p_drop));
                let dw_mag = naive_product(
                    n_out,
                    rows,
                    n_in,
                    |j, i| a[i * n_out + j].abs(),
                    |i, c| ds2[i * n_in + c].abs(),
                );
                let dz_mag: Vec<f32> = naive_product(
                    rows,
                    n_in,
                    n_out,
                    |i, l| ds2[i * n_in + l].abs(),
                    |l, j| w2[j * n_in + l].abs(),
                )
                .iter()
                .map(|v| v * scale)
                .collect();
                let db_mag: Vec<f32> = (0..n_out)
                    .map(|j| (0..rows).map(|i| dz_mag[i * n_out + j]).sum())
                    .collect();
                for (name, got, want, mag) in [
                    ("dW", &dw, &want_dw, &dw_mag),
                    ("dZ", &dz, &want_dz, &dz_mag),
                    ("db", &db, &want_db, &db_mag),
                ] {
                    for (i, ((&g, &e), &m)) in got.iter().zip(want).zip(mag).enumerate() {
                        let bound = 1e-5 * (1.0 + m);
                        assert!((g - e).abs() <= bound, "{what}: {name}[{i}] {g} vs {e}");
                    }
                }
            }
        }
    }
}

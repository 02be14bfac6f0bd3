//! SGD, momentum and Adam updates and the sum of squares: SIMD against the
//! scalar twin. Fused multiply-adds (with FMA enabled) change roundings, so
//! each result is compared within a bound computed from its operands' sizes;
//! NaN-ness and infinities must agree exactly.
#![no_main]

mod elementwise_input;

use elementwise_input::{assert_bits_eq, Input};
use libfuzzer_sys::fuzz_target;
use vnn_kernels::reduce::{sum_squares, sum_squares_scalar};
use vnn_kernels::update::{
    adam_update, adam_update_scalar, momentum_update, momentum_update_scalar, sgd_update,
    sgd_update_scalar, AdamStep,
};

/// A few unit roundoffs of `magnitude`: what skipping or adding one rounding
/// in an expression of terms that large can change.
fn bound(magnitude: f64) -> f64 {
    4.0 * f32::EPSILON as f64 * magnitude
}

#[track_caller]
fn check(a: f32, b: f32, magnitude: f64, what: &str) {
    let ok = if a.is_nan() || b.is_nan() {
        a.is_nan() && b.is_nan()
    } else if a.is_infinite() || b.is_infinite() {
        a == b
    } else {
        ((a as f64) - (b as f64)).abs() <= bound(magnitude)
    };
    assert!(
        ok,
        "{what}: simd {a:e} vs scalar {b:e} (magnitude {magnitude:e})"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let n = input.u16() as usize % 1025;
    let w = input.vec(n, Input::moderate_f32);
    let g = input.vec(n, Input::moderate_f32);
    let aux = input.vec(n, Input::moderate_f32);
    let (lr, reg, mu) = (input.unit(), input.unit(), input.unit());

    // w -= lr (g + reg w)
    let (mut a, mut b) = (w.clone(), w.clone());
    sgd_update(&mut a, &g, lr, reg);
    sgd_update_scalar(&mut b, &g, lr, reg);
    for i in 0..n {
        let mag = w[i].abs() as f64 + lr as f64 * (g[i].abs() + reg * w[i].abs()) as f64;
        check(a[i], b[i], mag, "sgd w");
    }

    // v = mu v + (g + reg w); w -= lr v
    let (mut wa, mut wb) = (w.clone(), w.clone());
    let (mut va, mut vb) = (aux.clone(), aux.clone());
    momentum_update(&mut wa, &g, &mut va, lr, reg, mu);
    momentum_update_scalar(&mut wb, &g, &mut vb, lr, reg, mu);
    for i in 0..n {
        let v_mag = (mu * aux[i].abs()) as f64 + (g[i].abs() + reg * w[i].abs()) as f64;
        check(va[i], vb[i], v_mag, "momentum v");
        check(
            wa[i],
            wb[i],
            w[i].abs() as f64 + lr as f64 * v_mag,
            "momentum w",
        );
    }

    // Adam: m and v within their bounds; given the kernel's own m and v the
    // w step has nothing to fuse and equals the twin's formula exactly.
    let step = AdamStep::new(lr, reg, input.u16() as u64);
    let v0: Vec<f32> = aux.iter().map(|v| v.abs()).collect();
    let (mut wa, mut wb) = (w.clone(), w.clone());
    let (mut ma, mut mb) = (aux.clone(), aux.clone());
    let (mut va, mut vb) = (v0.clone(), v0.clone());
    adam_update(&mut wa, &g, &mut ma, &mut va, &step);
    adam_update_scalar(&mut wb, &g, &mut mb, &mut vb, &step);
    let (inv_bc1, inv_bc2) = (1.0 / step.bias_correction1, 1.0 / step.bias_correction2);
    for i in 0..n {
        let gr = (g[i].abs() + step.reg * w[i].abs()) as f64;
        let m_mag = step.beta1 as f64 * aux[i].abs() as f64 + (1.0 - step.beta1) as f64 * gr;
        check(ma[i], mb[i], m_mag, "adam m");
        let v_mag = step.beta2 as f64 * v0[i] as f64 + (1.0 - step.beta2) as f64 * gr * gr;
        // g' itself may differ by the rounding the fused `g + reg * w`
        // skips, which the square doubles: twice the bound of one term.
        check(va[i], vb[i], 2.0 * v_mag, "adam v");
    }
    let want: Vec<f32> = (0..n)
        .map(|i| w[i] - step.lr * (ma[i] * inv_bc1) / ((va[i] * inv_bc2).sqrt() + step.eps))
        .collect();
    assert_bits_eq(&wa, &want, "adam w");

    // sum of squares: n non-negative terms, any order, within n roundoffs.
    let (s_a, s_b) = (sum_squares(&w), sum_squares_scalar(&w));
    let total: f64 = w.iter().map(|&v| v as f64 * v as f64).sum();
    let mag = (n as f64 + 1.0) * total;
    let ok = if s_b.is_nan() {
        s_a.is_nan()
    } else if s_b.is_infinite() {
        s_a == s_b
    } else {
        ((s_a as f64) - (s_b as f64)).abs() <= bound(mag)
    };
    assert!(ok, "sum_squares: simd {s_a:e} vs scalar {s_b:e}");
});

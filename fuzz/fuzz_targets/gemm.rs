//! Every GEMM path (dispatch, packed, the crate's own blocked GEMM, each
//! small kernel) against the scalar
//! twin on arbitrary transposes, shapes up to 40, scalars and values.
//!
//! Input layout: 6 header bytes (transposes and kernel order, m, n, k,
//! alpha, beta), then little-endian `f32` values for A, B and C, repeated
//! cyclically when the input is short. Non-finite values are replaced by
//! finite ones so the tolerance below is meaningful; the NaN/inf rules are
//! tested in `kernels/tests/gemm.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use vnn_kernels::gemm::{
    gemm, gemm_blocked, gemm_packed, gemm_scalar, gemm_small, SmallKernel, Transpose,
    GEMM_WORKSPACE,
};

const MAX_DIM: usize = 40;

thread_local! {
    /// The blocked GEMM's packing workspace, allocated once per thread.
    static WORKSPACE: RefCell<Vec<f32>> = RefCell::new(vec![0.0; GEMM_WORKSPACE]);
}

fn transpose(bit: u8) -> Transpose {
    if bit & 1 == 0 {
        Transpose::No
    } else {
        Transpose::Yes
    }
}

/// A few meaningful scalars (0 and 1 take special paths).
fn scalar(byte: u8) -> f32 {
    [0.0, 1.0, -1.0, 0.5, 2.0, -0.25, 1e-3, 3.5][byte as usize % 8]
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let (head, body) = data.split_at(6);
    let ta = transpose(head[0]);
    let tb = transpose(head[0] >> 1);
    let m = head[1] as usize % (MAX_DIM + 1);
    let n = head[2] as usize % (MAX_DIM + 1);
    let k = head[3] as usize % (MAX_DIM + 1);
    let alpha = scalar(head[4]);
    let beta = scalar(head[5]);

    let words: Vec<f32> = body
        .chunks_exact(4)
        .map(|w| {
            let v = f32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            // Keep values finite and moderate: |v| <= 1e4.
            if v.is_finite() {
                v.clamp(-1e4, 1e4)
            } else {
                1.0
            }
        })
        .collect();
    let value = |i: usize| {
        if words.is_empty() {
            (i % 7) as f32 - 3.0
        } else {
            words[i % words.len()]
        }
    };
    let a: Vec<f32> = (0..m * k).map(value).collect();
    let b: Vec<f32> = (0..k * n).map(|i| value(i + m * k)).collect();
    let c0: Vec<f32> = (0..m * n).map(|i| value(i + m * k + k * n)).collect();

    let mut expected = c0.clone();
    gemm_scalar(ta, tb, m, n, k, alpha, &a, &b, beta, &mut expected);

    // Tolerance: both sums of k products are within about k * eps of the
    // sum of the absolute products (see kernels/tests/gemm.rs).
    let abs_a: Vec<f32> = a.iter().map(|v| v.abs()).collect();
    let abs_b: Vec<f32> = b.iter().map(|v| v.abs()).collect();
    let mut mag = vec![0.0; m * n];
    gemm_scalar(ta, tb, m, n, k, 1.0, &abs_a, &abs_b, 0.0, &mut mag);

    let paths: [(&str, Option<SmallKernel>); 6] = [
        ("gemm", None),
        ("gemm_packed", None),
        ("gemm_blocked", None),
        ("axpy", Some(SmallKernel::Axpy)),
        ("axpy_transposed", Some(SmallKernel::AxpyTransposed)),
        ("dot", Some(SmallKernel::Dot)),
    ];
    for (name, kernel) in paths {
        // beta == 0 must not read C: poison it.
        let mut c = if beta == 0.0 {
            vec![f32::NAN; m * n]
        } else {
            c0.clone()
        };
        match (name, kernel) {
            (_, Some(kernel)) => gemm_small(kernel, ta, tb, m, n, k, alpha, &a, &b, beta, &mut c),
            ("gemm", None) => gemm(ta, tb, m, n, k, alpha, &a, &b, beta, &mut c),
            ("gemm_blocked", None) => WORKSPACE.with(|ws| {
                let ws = &mut ws.borrow_mut();
                gemm_blocked(ta, tb, m, n, k, alpha, &a, &b, beta, &mut c, ws)
            }),
            _ => gemm_packed(ta, tb, m, n, k, alpha, &a, &b, beta, &mut c),
        }
        for i in 0..m * n {
            let prev = if beta == 0.0 {
                0.0
            } else {
                (beta * c0[i]).abs()
            };
            // Plus an absolute floor for products that underflow into the
            // subnormal range, where rounding is absolute, not relative.
            let tol = 2.0
                * (k as f32 + 2.0)
                * (f32::EPSILON * (alpha.abs() * mag[i] + prev) + f32::MIN_POSITIVE);
            assert!(
                (c[i] - expected[i]).abs() <= tol,
                "{name} {ta:?}{tb:?} m={m} n={n} k={k} alpha={alpha} beta={beta}: \
                 C[{i}] = {}, expected {} (tolerance {tol})",
                c[i],
                expected[i]
            );
        }
    }
});

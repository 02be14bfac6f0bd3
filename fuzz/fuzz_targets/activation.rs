//! Every activation's fused bias + activation forward (with and without
//! dropout) and its backward fused with the bias gradient: SIMD against the
//! scalar twin on any bit patterns. ReLU and leaky ReLU forwards and every
//! backward bit for bit; the tanh and sigmoid forwards within 1e-7 absolute
//! or 1e-6 relative (the shared polynomial `exp` against `std`), and always
//! in range.
//!
//! Then the narrow fused strips of the same activation (`narrow_bias_act_forward`,
//! `narrow_act_backward_dw`) against their twins on values of a coarse grid
//! (`i8 / 16`), where every sum is exact whatever the order or fusing: the
//! forward as above, `dZ` and `db` bit for bit, `dW` (sums of off-grid
//! products) within 4 ulps per row of the sum of absolute terms.
#![no_main]

mod elementwise_input;

use elementwise_input::{assert_bits_eq, assert_close, Input};
use libfuzzer_sys::fuzz_target;
use vnn_kernels::activation::{
    act_backward, act_backward_scalar, bias_act_forward, bias_act_forward_scalar, Activation,
};
use vnn_kernels::fused::{
    narrow_act_backward_dw, narrow_act_backward_dw_scalar, narrow_bias_act_forward,
    narrow_bias_act_forward_scalar, NARROW_MAX,
};
use vnn_kernels::mask::{keep_scale, Dropout};

/// A value of the grid `i8 / 16`.
fn grid(input: &mut Input) -> f32 {
    input.u8() as i8 as f32 / 16.0
}

/// The narrow strips of `act` on a `rows x n_in -> width -> k` layer pair.
fn narrow(input: &mut Input, act: Activation) {
    let (rows, width) = (input.dim(), input.dim());
    let n_in = input.u8() as usize % (NARROW_MAX + 2);
    let k = input.u8() as usize % (NARROW_MAX + 2);
    let x = input.vec(rows * n_in, grid);
    let w = input.vec(n_in * width, grid);
    let bias = input.vec(width, grid);
    let (mut a, mut b) = (vec![f32::NAN; rows * width], vec![f32::NAN; rows * width]);
    narrow_bias_act_forward(act, &x, &w, &bias, rows, n_in, width, &mut a);
    narrow_bias_act_forward_scalar(act, &x, &w, &bias, rows, n_in, width, &mut b);
    let what = format!("{act} narrow forward {rows}x{n_in}x{width}");
    match act {
        Activation::Relu | Activation::LeakyRelu => assert_bits_eq(&a, &b, &what),
        Activation::Tanh | Activation::Sigmoid => assert_close(&a, &b, 1e-7, 1e-6, &what),
    }
    let ds = input.vec(rows * k, grid);
    let w_t = input.vec(k * width, grid);
    let db = input.vec(width, grid);
    let dw = input.vec(width * k, grid);
    let (mut db_a, mut db_b, mut dw_a, mut dw_b) = (db.clone(), db, dw.clone(), dw.clone());
    let a_in = a.clone();
    let mut dz_b = a.clone();
    narrow_act_backward_dw(act, &mut a, &ds, &w_t, rows, width, k, &mut db_a, &mut dw_a);
    let (dbb, dwb) = (&mut db_b, &mut dw_b);
    narrow_act_backward_dw_scalar(act, &mut dz_b, &ds, &w_t, rows, width, k, dbb, dwb);
    let what = format!("{act} narrow backward {rows}x{width}x{k}");
    assert_bits_eq(&a, &dz_b, &format!("{what}: dZ"));
    assert_bits_eq(&db_a, &db_b, &format!("{what}: db"));
    for j in 0..width {
        for c in 0..k {
            let terms = (0..rows).map(|r| (a_in[r * width + j] * ds[r * k + c]).abs());
            let scale = dw[j * k + c].abs() + terms.sum::<f32>();
            let (g, e) = (dw_a[j * k + c], dw_b[j * k + c]);
            let bound = (rows as f32 + 1.0) * 4.0 * f32::EPSILON * scale;
            assert!(
                (g - e).abs() <= bound,
                "{what}: dW[{j}, {c}] {g:e} vs {e:e}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let act = Activation::ALL[input.u8() as usize % Activation::ALL.len()];
    let dropout = (input.u8() % 2 == 1).then(|| Dropout {
        p_drop: input.unit(),
        seed: input.u64(),
        stream: input.u64(),
    });
    let (rows, cols) = (input.dim(), input.dim());
    let n = rows * cols;
    let z = input.vec(n, Input::any_f32);
    let bias = input.vec(cols, Input::any_f32);
    let da = input.vec(n, Input::any_f32);
    let db = input.vec(cols, Input::any_f32);

    let (mut a, mut b) = (z.clone(), z);
    bias_act_forward(act, &mut a, &bias, rows, cols, dropout);
    bias_act_forward_scalar(act, &mut b, &bias, rows, cols, dropout);
    let what = format!("{act} forward {dropout:?}");
    match act {
        Activation::Relu | Activation::LeakyRelu => assert_bits_eq(&a, &b, &what),
        Activation::Tanh | Activation::Sigmoid => {
            assert_close(&a, &b, 1e-7, 1e-6, &what);
            // In [-1, 1] (tanh) or [0, 1] (sigmoid), times the kept scale.
            let low = if act == Activation::Tanh { -1.0 } else { 0.0 };
            let scale = dropout.map_or(1.0, |d| keep_scale(d.p_drop));
            for &v in &a {
                assert!(
                    v.is_nan() || (low * scale..=scale).contains(&v),
                    "{what}: {v}"
                );
            }
        }
    }

    // The backward from the SIMD forward's output, in both versions.
    let (mut db_a, mut db_b) = (db.clone(), db);
    let mut dz_b = a.clone();
    act_backward(act, &mut a, &da, rows, cols, dropout, &mut db_a);
    act_backward_scalar(act, &mut dz_b, &da, rows, cols, dropout, &mut db_b);
    assert_bits_eq(&a, &dz_b, &format!("{act} backward dZ {dropout:?}"));
    assert_bits_eq(&db_a, &db_b, &format!("{act} backward db {dropout:?}"));

    narrow(&mut input, act);
});

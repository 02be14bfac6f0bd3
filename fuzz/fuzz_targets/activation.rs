//! Every activation's fused bias + activation forward (with and without
//! dropout) and its backward fused with the bias gradient: SIMD against the
//! scalar twin on any bit patterns. ReLU and leaky ReLU forwards and every
//! backward bit for bit; the tanh and sigmoid forwards within 1e-7 absolute
//! or 1e-6 relative (the shared polynomial `exp` against `std`), and always
//! in range.
#![no_main]

mod elementwise_input;

use elementwise_input::{assert_bits_eq, assert_close, Input};
use libfuzzer_sys::fuzz_target;
use vnn_kernels::activation::{
    act_backward, act_backward_scalar, bias_act_forward, bias_act_forward_scalar, Activation,
};
use vnn_kernels::mask::{keep_scale, Dropout};

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
});

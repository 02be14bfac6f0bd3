//! Fused bias + ReLU forward and its backward, plus the exact reductions the
//! backward uses (column sums, accumulation) and argmax: SIMD against the
//! scalar twin, bit for bit, on any bit patterns.
#![no_main]

mod elementwise_input;

use elementwise_input::{assert_bits_eq, Input};
use libfuzzer_sys::fuzz_target;
use vnn_kernels::activation::{
    bias_relu_forward, bias_relu_forward_scalar, relu_backward, relu_backward_scalar,
};
use vnn_kernels::reduce::{
    add_assign, add_assign_scalar, argmax_rows, argmax_rows_scalar, column_sums, column_sums_scalar,
};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let (rows, cols) = (input.dim(), input.dim());
    let n = rows * cols;
    let z = input.vec(n, Input::any_f32);
    let bias = input.vec(cols, Input::any_f32);
    let da = input.vec(n, Input::any_f32);
    let db = input.vec(cols, Input::any_f32);
    let scale = 1.0 / (1.0 - input.unit());

    let (mut a, mut b) = (z.clone(), z.clone());
    bias_relu_forward(&mut a, &bias, rows, cols);
    bias_relu_forward_scalar(&mut b, &bias, rows, cols);
    assert_bits_eq(&a, &b, "bias_relu_forward");

    let (mut db_a, mut db_b) = (db.clone(), db.clone());
    let mut dz_b = a.clone();
    relu_backward(&mut a, &da, rows, cols, scale, &mut db_a);
    relu_backward_scalar(&mut dz_b, &da, rows, cols, scale, &mut db_b);
    assert_bits_eq(&a, &dz_b, "relu_backward dZ");
    assert_bits_eq(&db_a, &db_b, "relu_backward db");

    let (mut s_a, mut s_b) = (db.clone(), db);
    column_sums(&z, rows, cols, &mut s_a);
    column_sums_scalar(&z, rows, cols, &mut s_b);
    assert_bits_eq(&s_a, &s_b, "column_sums");

    let (mut d_a, mut d_b) = (da.clone(), da);
    add_assign(&mut d_a, &z);
    add_assign_scalar(&mut d_b, &z);
    assert_bits_eq(&d_a, &d_b, "add_assign");

    if cols > 0 {
        let (mut i_a, mut i_b) = (vec![u32::MAX; rows], vec![u32::MAX; rows]);
        argmax_rows(&z, rows, cols, &mut i_a);
        argmax_rows_scalar(&z, rows, cols, &mut i_b);
        assert_eq!(i_a, i_b, "argmax_rows");
    }
});

//! Bernoulli masks and the fused dropout forward: SIMD generator against the
//! `rand_xoshiro` scalar reader, the fused kernel against its twin and
//! against ReLU followed by the stored mask, all bit for bit.
#![no_main]

mod elementwise_input;

use elementwise_input::{assert_bits_eq, Input};
use libfuzzer_sys::fuzz_target;
use vnn_kernels::activation::{
    bias_relu_dropout_forward, bias_relu_dropout_forward_scalar, bias_relu_forward,
};
use vnn_kernels::mask::{
    apply_mask, apply_mask_scalar, bernoulli_mask, bernoulli_mask_scalar, MaskBits, MaskBitsSimd,
};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let p = input.unit();
    let (seed, stream) = (input.u64(), input.u64());

    // Whole masks of up to 4096 positions.
    let n = input.u16() as usize % 4097;
    let mut a = vec![f32::NAN; n];
    let mut b = vec![f32::NAN; n];
    bernoulli_mask(&mut a, p, seed, stream);
    bernoulli_mask_scalar(&mut b, p, seed, stream);
    assert_bits_eq(&a, &b, "bernoulli_mask");

    // Reads of 8 and of 1 in the order the input picks.
    let mut simd = MaskBitsSimd::new(seed, stream);
    let mut scalar = MaskBits::new(seed, stream);
    for _ in 0..input.u8() {
        if input.u8() & 1 == 0 {
            assert_eq!(simd.take1(), scalar.next_u32(), "take1");
        } else {
            let want: [u32; 8] = std::array::from_fn(|_| scalar.next_u32());
            assert_eq!(simd.take8(), want, "take8");
        }
    }

    // Fused dropout forward.
    let (rows, cols) = (input.dim(), input.dim());
    let z = input.vec(rows * cols, Input::any_f32);
    let bias = input.vec(cols, Input::any_f32);
    let (mut f, mut t, mut u) = (z.clone(), z.clone(), z);
    bias_relu_dropout_forward(&mut f, &bias, rows, cols, p, seed, stream);
    bias_relu_dropout_forward_scalar(&mut t, &bias, rows, cols, p, seed, stream);
    assert_bits_eq(&f, &t, "bias_relu_dropout_forward vs twin");
    bias_relu_forward(&mut u, &bias, rows, cols);
    let mut m = vec![0.0f32; rows * cols];
    bernoulli_mask(&mut m, p, seed, stream);
    let mut u2 = u.clone();
    apply_mask(&mut u, &m);
    apply_mask_scalar(&mut u2, &m);
    assert_bits_eq(&u, &u2, "apply_mask");
    assert_bits_eq(&f, &u, "bias_relu_dropout_forward vs relu then apply_mask");
});

//! The activation of a narrow strip as a type: the forward's last step
//! (`A = act(Z)`) and the backward's (`dZ` from the summed `dA` and the
//! output `A`), chosen once per call so the inner loops carry no branch on
//! the activation. ReLU keeps its own rules (`relu`, `where_active` with the
//! dropout scale), so its strips are the same code as before.

use crate::activation::{self, Activation};
use crate::simd::{Lane, Wide};

/// One activation's epilogues, on lanes and on single values.
pub(super) trait Epilogue {
    /// `act(x)` on lanes.
    fn forward<S: Lane>(x: S) -> S;
    /// `act(x)` for the elements past the last full vector of the row paths.
    fn forward_tail(v: &mut [f32]);
    /// `dZ` from the summed `dA` and the output `A` (`scale`: ReLU's
    /// dropout scale; the others are called without dropout and ignore it).
    fn backward<S: Lane>(da: S, a: S, scale: S) -> S;
    /// [`Epilogue::backward`] on one value, bit for bit.
    fn backward_value(da: f32, a: f32, scale: f32) -> f32;
}

/// ReLU: `relu(x)`; `dZ = dA * scale` where `A > 0`, else `+0.0`.
pub(super) struct Relu;

impl Epilogue for Relu {
    #[inline(always)]
    fn forward<S: Lane>(x: S) -> S {
        x.relu()
    }
    #[inline(always)]
    fn forward_tail(v: &mut [f32]) {
        for v in v {
            *v = activation::relu_scalar_value(*v);
        }
    }
    #[inline(always)]
    fn backward<S: Lane>(da: S, a: S, scale: S) -> S {
        // A = relu(Z + b) * s  =>  dZ = dA * s where A > 0 (NaN: inactive)
        da.mul(scale).where_active(a)
    }
    #[inline(always)]
    fn backward_value(da: f32, a: f32, scale: f32) -> f32 {
        if a > 0.0 {
            da * scale
        } else {
            0.0
        }
    }
}

/// The activations whose derivative is a function of the output
/// ([`activation::bias_act_forward`] and [`activation::act_backward`]).
macro_rules! from_output {
    ($($name:ident => $act:expr;)*) => {$(
        #[doc = concat!("`", stringify!($name), "`: the rules of `activation::bias_act_forward`")]
        /// and `activation::act_backward` without dropout.
        pub(super) struct $name;

        impl Epilogue for $name {
            #[inline(always)]
            fn forward<S: Lane>(x: S) -> S {
                activation::act_lanes($act, x)
            }
            #[inline(always)]
            fn forward_tail(v: &mut [f32]) {
                // The lane formula (not `std`), as the full vectors.
                let n = v.len();
                let y = Self::forward(Wide::load_padded(v, 0.0));
                v.copy_from_slice(&y.to_array()[..n]);
            }
            #[inline(always)]
            fn backward<S: Lane>(da: S, a: S, _scale: S) -> S {
                // A = act(Z + b)  =>  dZ = dA * act'(A)
                da.mul(activation::derivative_lanes($act, a))
            }
            #[inline(always)]
            fn backward_value(da: f32, a: f32, _scale: f32) -> f32 {
                da * activation::derivative_scalar($act, a)
            }
        }
    )*};
}

from_output! {
    Tanh => Activation::Tanh;
    Sigmoid => Activation::Sigmoid;
    LeakyRelu => Activation::LeakyRelu;
}

/// Calls `$body` with `$e` bound to the [`Epilogue`] type of `$act`.
macro_rules! with_epilogue {
    ($act:expr, $e:ident => $body:expr) => {
        match $act {
            crate::activation::Activation::Relu => {
                type $e = $crate::fused::epilogue::Relu;
                $body
            }
            crate::activation::Activation::Tanh => {
                type $e = $crate::fused::epilogue::Tanh;
                $body
            }
            crate::activation::Activation::Sigmoid => {
                type $e = $crate::fused::epilogue::Sigmoid;
                $body
            }
            crate::activation::Activation::LeakyRelu => {
                type $e = $crate::fused::epilogue::LeakyRelu;
                $body
            }
        }
    };
}
pub(super) use with_epilogue;

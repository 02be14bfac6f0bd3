//! What several test files share: references written from the math alone.

use vnn::model::Activation;

/// The hidden activation `act` at `z`, in `f64`, from its definition
/// (leaky ReLU's slope for `z <= 0` is 0.01).
pub fn ref_act(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Relu => z.max(0.0),
        Activation::Tanh => z.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::LeakyRelu => {
            if z > 0.0 {
                z
            } else {
                0.01 * z
            }
        }
    }
}

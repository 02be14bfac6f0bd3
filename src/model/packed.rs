//! The batch-1 copies of a model's weight matrices, packed (in column
//! panels or transposed) for [`gemm::matvec_bias_packed`] (the forward pass of one row,
//! `forward_rows`, takes them through [`layer::dense_act_forward_packed`]).
//!
//! A [`Model`](super::Model) makes them once, on its first batch-1 use
//! ([`Model::scratch`](super::Model::scratch) or
//! [`Model::predict_one`](super::Model::predict_one)), and drops them in
//! [`Model::params_mut`](super::Model::params_mut): the parameters are
//! private to the model, so no other path can change them, and the copies
//! can never be stale. They cost the memory of the packed layers' weights
//! (1.6 MB for 784-512-10); layers that [`gemm::matvec_packs`] does not
//! choose are not copied.

use super::{LayerSlot, Layout};
use std::sync::OnceLock;
use vnn_kernels::gemm;
#[cfg(doc)]
use vnn_kernels::layer;

/// The packed weights of each layer (`None` where the layer is used as
/// stored), made on first use.
#[derive(Clone, Default)]
pub(crate) struct PackedLayers(OnceLock<Vec<Option<Vec<f32>>>>);

impl PackedLayers {
    /// The packed weights for `layout` and `params`, made now if they were
    /// not yet.
    pub(crate) fn get(&self, layout: &Layout, params: &[f32]) -> &[Option<Vec<f32>>] {
        self.0.get_or_init(|| {
            let pack = |s: &LayerSlot| {
                let mut packed = vec![0.0; gemm::matvec_packed_len(s.n_in, s.n_out)];
                gemm::matvec_pack(&params[s.weight_range()], s.n_in, s.n_out, &mut packed);
                packed
            };
            let packs = |s: &&LayerSlot| gemm::matvec_packs(s.n_in, s.n_out);
            let layers = layout.layers.iter();
            layers.map(|s| Some(s).filter(packs).map(pack)).collect()
        })
    }
}

/// A copy derived from the parameters: models are equal when their other
/// fields are.
impl PartialEq for PackedLayers {
    fn eq(&self, _: &PackedLayers) -> bool {
        true
    }
}

impl std::fmt::Debug for PackedLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let made = self.0.get().is_some();
        f.debug_struct("PackedLayers").field("made", &made).finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Activation, Init, Model};

    /// Batch-1 logits of `model` on `x`, through the packed copies.
    fn logits_one(model: &Model, x: &[f32]) -> Vec<f32> {
        let mut scratch = model.scratch();
        model.predict_proba_one(x, &mut scratch).unwrap().to_vec()
    }

    /// The packed copies follow the parameters: after `params_mut` the
    /// batch-1 path computes what a fresh model with those parameters does,
    /// and what the unpacked batch path computes (within rounding).
    #[test]
    fn packed_copies_are_never_stale() {
        for act in Activation::ALL {
            let mut model = Model::new(&[70, 130, 3], Init::He, 1).unwrap();
            model = model.with_activation(act);
            let x: Vec<f32> = (0..70).map(|i| (i as f32 * 0.3).cos()).collect();
            let before = logits_one(&model, &x);
            assert!(model.packed.0.get().is_some(), "{act}: not packed");
            for p in model.params_mut() {
                *p *= -1.5;
            }
            assert!(model.packed.0.get().is_none(), "{act}: stale copy kept");
            let after = logits_one(&model, &x);
            assert_ne!(before, after);
            let fresh = Model::from_params(&[70, 130, 3], model.params().to_vec()).unwrap();
            let fresh = fresh.with_activation(act);
            assert_eq!(after, logits_one(&fresh, &x), "{act}");
            let mut batch = model.logits(&x, 1).unwrap();
            vnn_kernels::softmax::softmax_rows(&mut batch, 1, 3);
            for (a, b) in after.iter().zip(&batch) {
                assert!((a - b).abs() <= 1e-5, "{act}: {a} against {b}");
            }
        }
    }
}

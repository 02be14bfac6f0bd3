//! A model's parts: the checked constructors that assemble a [`Model`] from
//! parameters, names and a standardizer, and the accessors that read them.

use super::{Activation, Layout, Model};
use crate::data::{generic_class_names, generic_feature_names, Standardizer};
use crate::error::{Error, Result};

/// What is wrong with the `names` under `key` for a model with `expected`
/// of them, if anything: their count, or a name given twice.
pub(crate) fn names_problem(key: &str, names: &[String], expected: usize) -> Option<String> {
    if names.len() != expected {
        return Some(format!(
            "{key} has {} names but the model has {expected}",
            names.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .find(|n| !seen.insert(n.as_str()))
        .map(|dup| format!("{key} has the name '{dup}' twice"))
}

impl Model {
    /// A model of `layout` and `params` (of the layout's length) with the
    /// generic names, no standardizer and ReLU.
    pub(crate) fn with_layout(layout: Layout, params: Vec<f32>) -> Model {
        Model {
            feature_names: generic_feature_names(layout.n_in()),
            class_names: generic_class_names(layout.n_out()),
            layout,
            params,
            packed: Default::default(),
            standardizer: None,
            activation: Activation::Relu,
        }
    }

    /// A model for `sizes` holding `params` (laid out as [`Layout`]
    /// describes: `W0, b0, W1, b1, ...`), with the generic names of
    /// [`Model::new`] and no standardizer.
    ///
    /// # Errors
    /// [`Error::Setting`] if the sizes are invalid (see [`Layout::new`]) or
    /// a parameter is not finite; [`Error::Shape`] if `params` is not of
    /// the layout's length.
    ///
    /// # Example
    /// ```
    /// use vnn::model::Model;
    /// let model = Model::from_params(&[2, 1], vec![1.0, -1.0, 0.5]).unwrap();
    /// assert_eq!(model.layer(0), (&[1.0, -1.0][..], &[0.5][..]));
    /// assert!(Model::from_params(&[2, 1], vec![1.0, -1.0]).is_err());
    /// ```
    pub fn from_params(sizes: &[usize], params: Vec<f32>) -> Result<Model> {
        let layout = Layout::new(sizes)?;
        if params.len() != layout.len {
            return Err(Error::Shape {
                what: format!("parameters of network {sizes:?}"),
                expected: layout.len,
                got: params.len(),
            });
        }
        if let Some(i) = params.iter().position(|v| !v.is_finite()) {
            return Err(Error::setting(
                format!("parameter {i}"),
                "a finite number",
                params[i],
            ));
        }
        Ok(Model::with_layout(layout, params))
    }

    /// This model with the given feature names (one per input, in input
    /// order) and class names (one per class, in class-index order).
    ///
    /// # Errors
    /// [`Error::Setting`] if a count differs from the model's or a name is
    /// given twice.
    ///
    /// # Example
    /// ```
    /// use vnn::model::{Init, Model};
    /// let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    /// let model = Model::new(&[2, 2], Init::He, 0).unwrap();
    /// let named = model.clone().with_names(names(&["w", "h"]), names(&["no", "yes"])).unwrap();
    /// assert_eq!(named.class_names()[1], "yes");
    /// assert!(model.with_names(names(&["w", "w"]), names(&["no", "yes"])).is_err());
    /// ```
    pub fn with_names(self, feature_names: Vec<String>, class_names: Vec<String>) -> Result<Model> {
        let problem = names_problem("feature_names", &feature_names, self.n_features())
            .or_else(|| names_problem("class_names", &class_names, self.n_classes()));
        match problem {
            Some(msg) => Err(Error::setting(
                "the model's names",
                "one distinct name per feature and per class",
                msg,
            )),
            None => Ok(Model {
                feature_names,
                class_names,
                ..self
            }),
        }
    }

    /// This model standardizing its raw inputs with `standardizer` before
    /// the first layer.
    ///
    /// # Errors
    /// [`Error::Shape`] if the standardizer is not of the model's feature
    /// count.
    ///
    /// # Example
    /// ```
    /// use vnn::data::Standardizer;
    /// use vnn::model::{Init, Model};
    /// let model = Model::new(&[2, 2], Init::He, 0).unwrap();
    /// let s = Standardizer::new(vec![0.0, 1.0], vec![1.0, 2.0]).unwrap();
    /// let model = model.with_standardizer(s).unwrap();
    /// assert_eq!(model.standardizer().unwrap().scale(), &[1.0, 2.0]);
    /// ```
    pub fn with_standardizer(self, standardizer: Standardizer) -> Result<Model> {
        if standardizer.n_features() != self.n_features() {
            return Err(Error::Shape {
                what: "standardizer".into(),
                expected: self.n_features(),
                got: standardizer.n_features(),
            });
        }
        Ok(Model {
            standardizer: Some(standardizer),
            ..self
        })
    }

    /// This model without standardization of its inputs.
    pub fn without_standardizer(self) -> Model {
        Model {
            standardizer: None,
            ..self
        }
    }

    /// This model with `activation` after each hidden layer (a linear
    /// model has none, so it computes the same with any); the weights stay
    /// as they are. [`Model::new`] and [`Model::from_params`] give ReLU.
    ///
    /// # Example
    /// ```
    /// use vnn::model::{Activation, Init, Model};
    /// let relu = Model::new(&[2, 8, 3], Init::He, 0).unwrap();
    /// assert_eq!(relu.activation(), Activation::Relu);
    /// let tanh = relu.clone().with_activation(Activation::Tanh);
    /// assert_eq!(tanh.activation(), Activation::Tanh);
    /// assert_eq!(tanh.params(), relu.params());
    /// let x = [0.3, -0.7];
    /// assert_ne!(tanh.logits(&x, 1).unwrap(), relu.logits(&x, 1).unwrap());
    /// ```
    pub fn with_activation(self, activation: Activation) -> Model {
        Model { activation, ..self }
    }

    /// The activation of the hidden layers.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The parameter layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// All weights and biases, laid out by [`Model::layout`].
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// All weights and biases, to change in place (the length is fixed).
    /// Drops the packed batch-1 copies of the weights (see
    /// [`Model::scratch`]); the next batch-1 use packs them again.
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.packed = Default::default();
        &mut self.params
    }

    /// The layout with the parameters to change in place (as
    /// [`Model::params_mut`]).
    pub(crate) fn layout_and_params_mut(&mut self) -> (&Layout, &mut [f32]) {
        self.packed = Default::default();
        (&self.layout, &mut self.params)
    }

    /// The parameter buffer itself, for tests that break a model's parts.
    #[cfg(all(test, feature = "onnx"))]
    pub(crate) fn params_vec_mut(&mut self) -> &mut Vec<f32> {
        self.packed = Default::default();
        &mut self.params
    }

    /// Replaces the parameters with `params` of the same length (as
    /// [`Model::params_mut`]).
    ///
    /// # Panics
    /// If the length differs.
    pub(crate) fn set_params(&mut self, params: Vec<f32>) {
        assert_eq!(params.len(), self.params.len(), "set_params: length");
        self.packed = Default::default();
        self.params = params;
    }

    /// Names of the input features, in input order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Names of the classes, in class-index order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The standardization applied to raw inputs, if any.
    pub fn standardizer(&self) -> Option<&Standardizer> {
        self.standardizer.as_ref()
    }
}

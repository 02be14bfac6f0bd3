//! Datasets: the built-in spiral, a stratified split, and standardization.

use crate::error::{Error, Result};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// What errors about a dataset built in memory name as its file.
const DATASET: &str = "<dataset>";

/// A classification dataset on flat buffers.
///
/// Its fields are private so that every dataset holds together: build one
/// with [`Dataset::new`] (and [`Dataset::with_names`]), read it through the
/// accessors.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `n_rows x n_features` features, row-major.
    pub(crate) features: Vec<f32>,
    /// `n_rows` class indices, each `< n_classes`.
    pub(crate) labels: Vec<u32>,
    /// Number of feature columns.
    pub(crate) n_features: usize,
    /// Number of classes.
    pub(crate) n_classes: usize,
    /// Names of the feature columns, `n_features` of them.
    pub(crate) feature_names: Vec<String>,
    /// Name of every class, in class-index order (`n_classes` of them).
    pub(crate) class_names: Vec<String>,
}

/// The generic names `x0, x1, ...` of `n` feature columns.
pub(crate) fn generic_feature_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("x{i}")).collect()
}

/// The generic names `0, 1, ...` of `n` classes.
pub(crate) fn generic_class_names(n: usize) -> Vec<String> {
    (0..n).map(|c| c.to_string()).collect()
}

impl Dataset {
    /// A dataset of `features` (`n_rows x n_features`, row-major) and
    /// `labels` (`n_rows` class indices), with the generic feature names
    /// `x0, x1, ...` and class names `0, 1, ...`.
    ///
    /// # Errors
    /// [`Error::Data`] if `features.len()` is not `labels.len() *
    /// n_features`, a label is not below `n_classes`, or a feature is not
    /// finite.
    ///
    /// # Example
    /// ```
    /// use vnn::data::Dataset;
    /// let d = Dataset::new(vec![0.0, 1.0, 2.0, 3.0], vec![0, 1], 2, 2).unwrap();
    /// assert_eq!((d.n_rows(), d.row(1)), (2, &[2.0, 3.0][..]));
    /// assert!(Dataset::new(vec![0.0, 1.0], vec![2], 2, 2).is_err());
    /// ```
    pub fn new(
        features: Vec<f32>,
        labels: Vec<u32>,
        n_features: usize,
        n_classes: usize,
    ) -> Result<Dataset> {
        let data = Dataset::with_generic_names(features, labels, n_features, n_classes);
        data.validate(DATASET)?;
        Ok(data)
    }

    /// The dataset of [`Dataset::new`], unchecked: for data built right.
    fn with_generic_names(
        features: Vec<f32>,
        labels: Vec<u32>,
        n_features: usize,
        n_classes: usize,
    ) -> Dataset {
        Dataset {
            features,
            labels,
            n_features,
            n_classes,
            feature_names: generic_feature_names(n_features),
            class_names: generic_class_names(n_classes),
        }
    }

    /// This dataset with the given feature and class names.
    ///
    /// # Errors
    /// [`Error::Data`] if there are not `n_features` feature names and
    /// `n_classes` class names.
    ///
    /// # Example
    /// ```
    /// use vnn::data::Dataset;
    /// let d = Dataset::new(vec![0.5], vec![1], 1, 2).unwrap();
    /// let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    /// let d = d.with_names(names(&["height"]), names(&["cat", "dog"])).unwrap();
    /// assert_eq!(d.class_names()[1], "dog");
    /// ```
    pub fn with_names(
        self,
        feature_names: Vec<String>,
        class_names: Vec<String>,
    ) -> Result<Dataset> {
        let data = Dataset {
            feature_names,
            class_names,
            ..self
        };
        data.validate(DATASET)?;
        Ok(data)
    }

    /// The features, `n_rows x n_features`, row-major.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// The class index of every row, each below [`Dataset::n_classes`].
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Number of feature columns.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Names of the feature columns, in column order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Names of the classes, in class-index order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    /// Row `i`'s features.
    ///
    /// # Panics
    /// If `i` is not below [`Dataset::n_rows`].
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.n_features..(i + 1) * self.n_features]
    }

    /// Checks the internal consistency of the buffers (lengths, label range,
    /// finite features, at least two classes present is *not* required here).
    pub(crate) fn validate(&self, name: &str) -> Result<()> {
        let err = |msg: String| Error::Data {
            path: name.into(),
            line: None,
            column: None,
            msg,
        };
        if self.features.len() != self.labels.len() * self.n_features {
            return Err(err(format!(
                "{} feature values for {} rows of {} features",
                self.features.len(),
                self.labels.len(),
                self.n_features
            )));
        }
        if self.feature_names.len() != self.n_features {
            return Err(err(format!(
                "{} feature names for {} features",
                self.feature_names.len(),
                self.n_features
            )));
        }
        if self.class_names.len() != self.n_classes {
            return Err(err(format!(
                "{} class names for {} classes",
                self.class_names.len(),
                self.n_classes
            )));
        }
        if let Some(&y) = self.labels.iter().find(|&&y| y as usize >= self.n_classes) {
            return Err(err(format!(
                "label {y} out of range for {} classes",
                self.n_classes
            )));
        }
        if let Some(i) = self.features.iter().position(|v| !v.is_finite()) {
            return Err(err(format!(
                "row {}, feature {}: value {} is not finite",
                i / self.n_features.max(1),
                i % self.n_features.max(1),
                self.features[i]
            )));
        }
        Ok(())
    }

    /// The rows at `indices`, in that order.
    ///
    /// # Panics
    /// If an index is not below [`Dataset::n_rows`].
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(indices.len() * self.n_features);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            features.extend_from_slice(self.row(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            features,
            labels,
            ..self.clone_meta()
        }
    }

    /// This dataset with its features standardized by `standardizer`.
    ///
    /// # Errors
    /// [`Error::Data`] if the standardizer is not of this dataset's feature
    /// count, or a standardized value overflows to infinity.
    ///
    /// # Example
    /// ```
    /// use vnn::data::{spiral, Standardizer};
    /// let raw = spiral(50, 3, 0);
    /// let s = Standardizer::fit(raw.features(), raw.n_features());
    /// let std = raw.standardized(&s).unwrap();
    /// let mean0 = std.features().iter().step_by(2).sum::<f32>() / 150.0;
    /// assert!(mean0.abs() < 1e-5);
    /// ```
    pub fn standardized(&self, standardizer: &Standardizer) -> Result<Dataset> {
        if standardizer.n_features() != self.n_features {
            return Err(Error::Data {
                path: DATASET.into(),
                line: None,
                column: None,
                msg: format!(
                    "a standardizer of {} features for {} features",
                    standardizer.n_features(),
                    self.n_features
                ),
            });
        }
        let mut data = self.clone();
        standardizer.apply(&mut data.features);
        data.validate(DATASET)?;
        Ok(data)
    }

    /// The rows of this dataset, then those of `other`.
    ///
    /// # Errors
    /// [`Error::Data`] if the two differ in their features or classes
    /// (counts or names).
    ///
    /// # Example
    /// ```
    /// let a = vnn::data::spiral(10, 3, 0);
    /// let b = vnn::data::spiral(5, 3, 1);
    /// let both = a.concat(&b).unwrap();
    /// assert_eq!(both.n_rows(), 45);
    /// assert_eq!(both.row(30), b.row(0));
    /// assert!(a.concat(&vnn::data::spiral(5, 2, 1)).is_err());
    /// ```
    pub fn concat(&self, other: &Dataset) -> Result<Dataset> {
        if (self.n_features, &self.feature_names) != (other.n_features, &other.feature_names)
            || (self.n_classes, &self.class_names) != (other.n_classes, &other.class_names)
        {
            return Err(Error::Data {
                path: DATASET.into(),
                line: None,
                column: None,
                msg: "the datasets differ in their features or classes".into(),
            });
        }
        let mut all = self.clone();
        all.features.extend_from_slice(&other.features);
        all.labels.extend_from_slice(&other.labels);
        Ok(all)
    }

    fn clone_meta(&self) -> Dataset {
        Dataset {
            features: Vec::new(),
            labels: Vec::new(),
            n_features: self.n_features,
            n_classes: self.n_classes,
            feature_names: self.feature_names.clone(),
            class_names: self.class_names.clone(),
        }
    }
}

/// The spiral of the source text: `classes` arms of `points_per_class`
/// points in 2-D, radius growing linearly from 0 to 1 and angle
/// `4 * (class + t) + 0.2 * noise` with standard normal noise, from `seed`.
/// Feature columns are `x0`, `x1`; classes are named `0`, `1`, ...
///
/// # Panics
/// If `2 * points_per_class * classes` overflows `usize` (a size from
/// outside is checked against the memory budget first, as
/// [`RunSettings::load_data`](crate::settings::RunSettings::load_data) does).
///
/// # Example
/// ```
/// let d = vnn::data::spiral(100, 3, 1);
/// assert_eq!((d.n_rows(), d.n_features(), d.n_classes()), (300, 2, 3));
/// ```
pub fn spiral(points_per_class: usize, classes: usize, seed: u64) -> Dataset {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n = points_per_class
        .checked_mul(classes)
        .filter(|n| n.checked_mul(2).is_some())
        .expect("the spiral's size overflows usize");
    let mut features = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for class in 0..classes {
        for i in 0..points_per_class {
            let t = if points_per_class > 1 {
                i as f64 / (points_per_class - 1) as f64
            } else {
                0.0
            };
            let r = t;
            let noise: f64 = StandardNormal.sample(&mut rng);
            let theta = 4.0 * (class as f64 + t) + noise * 0.2;
            features.push((r * theta.sin()) as f32);
            features.push((r * theta.cos()) as f32);
            labels.push(class as u32);
        }
    }
    Dataset::with_generic_names(features, labels, 2, classes)
}

/// `rows` rows of `n_features` standard normal features with labels drawn
/// uniformly from `0..n_classes`, from `seed`: the synthetic data of the
/// benchmarks (an MNIST-like shape without the download).
///
/// # Example
/// ```
/// let d = vnn::data::synthetic(100, 784, 10, 0);
/// assert_eq!((d.n_rows(), d.features().len()), (100, 78_400));
/// assert!(d.labels().iter().all(|&y| y < 10));
/// ```
///
/// # Panics
/// If `rows > 0` and `n_classes == 0` (no label could be drawn).
pub fn synthetic(rows: usize, n_features: usize, n_classes: usize, seed: u64) -> Dataset {
    assert!(rows == 0 || n_classes > 0, "synthetic data needs a class");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let features = (0..rows * n_features)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut rng);
            z as f32
        })
        .collect();
    let labels = (0..rows)
        .map(|_| rng.random_range(0..n_classes.max(1) as u32))
        .collect();
    Dataset::with_generic_names(features, labels, n_features, n_classes)
}

/// A stratified split: each class contributes `round(test_fraction * count)`
/// of its rows (chosen by a seeded shuffle) to the test set. Returns
/// `(train, test)`.
///
/// # Errors
/// If `test_fraction` is not in `(0, 1)`, or either side would be empty.
pub fn stratified_split(
    data: &Dataset,
    test_fraction: f64,
    seed: u64,
) -> Result<(Dataset, Dataset)> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::setting("test split", "in (0, 1)", test_fraction));
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5851_F42D_4C95_7F2D);
    let mut train_idx = Vec::new();
    let mut test_idx = Vec::new();
    for class in 0..data.n_classes as u32 {
        let mut rows: Vec<usize> = (0..data.n_rows())
            .filter(|&i| data.labels[i] == class)
            .collect();
        // Fisher-Yates with the seeded generator.
        for i in (1..rows.len()).rev() {
            let j = rng.random_range(0..=i);
            rows.swap(i, j);
        }
        let n_test = (test_fraction * rows.len() as f64).round() as usize;
        test_idx.extend_from_slice(&rows[..n_test]);
        train_idx.extend_from_slice(&rows[n_test..]);
    }
    train_idx.sort_unstable();
    test_idx.sort_unstable();
    if train_idx.is_empty() || test_idx.is_empty() {
        return Err(Error::setting(
            "test split",
            "a fraction that leaves both training and test rows",
            format!(
                "{test_fraction} of {} rows ({} training and {} test rows)",
                data.n_rows(),
                train_idx.len(),
                test_idx.len()
            ),
        ));
    }
    Ok((data.subset(&train_idx), data.subset(&test_idx)))
}

/// Per-feature standardization `x' = (x - mean) / scale`, kept with a model
/// so prediction applies the same transform. The scale is the population
/// standard deviation; a constant column gets scale 1 (never a division by
/// zero).
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    /// Per-feature mean, finite.
    pub(crate) mean: Vec<f32>,
    /// Per-feature scale (standard deviation, or 1 for constant columns),
    /// finite and at least `f32::MIN_POSITIVE`.
    pub(crate) scale: Vec<f32>,
}

/// What is wrong with a standardizer of `mean` and `scale` for `n`
/// features, if anything: the counts, a mean that is not finite, or a scale
/// that is not finite or below `f32::MIN_POSITIVE` (dividing by it could
/// overflow).
pub(crate) fn standardizer_problem(mean: &[f32], scale: &[f32], n: usize) -> Option<String> {
    if mean.len() != n || scale.len() != n {
        return Some(format!(
            "{} means and {} scales for {n} features",
            mean.len(),
            scale.len()
        ));
    }
    if let Some(i) = mean.iter().position(|v| !v.is_finite()) {
        return Some(format!("mean {i} is {}", mean[i]));
    }
    if let Some(i) = scale.iter().position(|v| !(v.is_finite() && *v != 0.0)) {
        return Some(format!(
            "scale {i} is {}, not a finite non-zero number",
            scale[i]
        ));
    }
    if let Some(i) = scale.iter().position(|v| *v < f32::MIN_POSITIVE) {
        return Some(format!(
            "scale {i} is {:?}, not at least {:?} (the smallest normal f32)",
            scale[i],
            f32::MIN_POSITIVE
        ));
    }
    None
}

impl Standardizer {
    /// A standardizer of per-feature `mean` and `scale`.
    ///
    /// # Errors
    /// [`Error::Setting`] if the lengths differ, a mean is not finite, or a
    /// scale is not finite or below `f32::MIN_POSITIVE`.
    ///
    /// # Example
    /// ```
    /// use vnn::data::Standardizer;
    /// let s = Standardizer::new(vec![1.0, 2.0], vec![2.0, 4.0]).unwrap();
    /// let mut row = [3.0, 6.0];
    /// s.apply_row(&mut row);
    /// assert_eq!(row, [1.0, 1.0]);
    /// assert!(Standardizer::new(vec![0.0], vec![1e-45]).is_err());
    /// ```
    pub fn new(mean: Vec<f32>, scale: Vec<f32>) -> Result<Standardizer> {
        match standardizer_problem(&mean, &scale, mean.len()) {
            Some(msg) => Err(Error::setting(
                "a standardizer",
                "one finite mean and one finite scale of at least the smallest normal f32 per feature",
                msg,
            )),
            None => Ok(Standardizer { mean, scale }),
        }
    }

    /// Per-feature mean.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Per-feature scale.
    pub fn scale(&self) -> &[f32] {
        &self.scale
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    /// Fits mean and scale on `features` (`rows x n_features`), in f64.
    pub fn fit(features: &[f32], n_features: usize) -> Standardizer {
        let rows = features.len().checked_div(n_features).unwrap_or(0);
        let mut mean = vec![0f64; n_features];
        let mut sq = vec![0f64; n_features];
        for row in features.chunks_exact(n_features.max(1)).take(rows) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        let n = rows.max(1) as f64;
        mean.iter_mut().for_each(|m| *m /= n);
        for row in features.chunks_exact(n_features.max(1)).take(rows) {
            for ((s, &v), &m) in sq.iter_mut().zip(row).zip(&mean) {
                *s += (v as f64 - m).powi(2);
            }
        }
        let scale = sq
            .iter()
            .map(|&s| {
                let sd = (s / n).sqrt();
                if sd > 1e-12 * (1.0 + sd) && sd.is_finite() && sd as f32 >= f32::MIN_POSITIVE {
                    sd as f32
                } else {
                    1.0
                }
            })
            .collect();
        Standardizer {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            scale,
        }
    }

    /// Applies the transform to every row of `features` in place.
    pub fn apply(&self, features: &mut [f32]) {
        let d = self.mean.len();
        if d == 0 {
            return;
        }
        for row in features.chunks_exact_mut(d) {
            self.apply_row(row);
        }
    }

    /// Applies the transform to one row in place.
    #[inline]
    pub fn apply_row(&self, row: &mut [f32]) {
        for ((v, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
            *v = (*v - m) / s;
        }
    }
}

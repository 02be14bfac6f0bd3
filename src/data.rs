//! Datasets: the built-in spiral, a stratified split, and standardization.

use crate::error::{Error, Result};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A classification dataset on flat buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `n_rows x n_features` features, row-major.
    pub features: Vec<f32>,
    /// `n_rows` class indices, each `< n_classes`.
    pub labels: Vec<u32>,
    /// Number of feature columns.
    pub n_features: usize,
    /// Number of classes.
    pub n_classes: usize,
    /// Names of the feature columns, `n_features` of them.
    pub feature_names: Vec<String>,
    /// Name of every class, in class-index order (`n_classes` of them).
    pub class_names: Vec<String>,
}

impl Dataset {
    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    /// Row `i`'s features.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.n_features..(i + 1) * self.n_features]
    }

    /// Checks the internal consistency of the buffers (lengths, label range,
    /// finite features, at least two classes present is *not* required here).
    pub fn validate(&self, name: &str) -> Result<()> {
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
/// assert_eq!((d.n_rows(), d.n_features, d.n_classes), (300, 2, 3));
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
    Dataset {
        features,
        labels,
        n_features: 2,
        n_classes: classes,
        feature_names: vec!["x0".into(), "x1".into()],
        class_names: (0..classes).map(|c| c.to_string()).collect(),
    }
}

/// `rows` rows of `n_features` standard normal features with labels drawn
/// uniformly from `0..n_classes`, from `seed`: the synthetic data of the
/// benchmarks (an MNIST-like shape without the download).
///
/// # Example
/// ```
/// let d = vnn::data::synthetic(100, 784, 10, 0);
/// assert_eq!((d.n_rows(), d.features.len()), (100, 78_400));
/// assert!(d.labels.iter().all(|&y| y < 10));
/// ```
pub fn synthetic(rows: usize, n_features: usize, n_classes: usize, seed: u64) -> Dataset {
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
    Dataset {
        features,
        labels,
        n_features,
        n_classes,
        feature_names: (0..n_features).map(|i| format!("x{i}")).collect(),
        class_names: (0..n_classes).map(|c| c.to_string()).collect(),
    }
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
    /// Per-feature mean.
    pub mean: Vec<f32>,
    /// Per-feature scale (standard deviation, or 1 for constant columns).
    pub scale: Vec<f32>,
}

impl Standardizer {
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
                if sd > 1e-12 * (1.0 + sd) && sd.is_finite() && sd as f32 > 0.0 {
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

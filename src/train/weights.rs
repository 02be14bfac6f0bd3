//! Class weights: each training row's loss (and its gradient) scaled by
//! the weight of its class.

/// scikit-learn's `class_weight="balanced"`: class `c` gets
/// `n_samples / (n_classes * count(c))` over the training `labels`
/// (`n_classes` classes). A class without rows gets 1 (it scales nothing).
///
/// ```
/// let w = vnn::train::balanced_class_weights(&[0, 0, 0, 1], 3);
/// assert_eq!(w, [4.0 / 9.0, 4.0 / 3.0, 1.0]);
/// assert_eq!(vnn::train::balanced_class_weights(&[0, 1, 1, 0], 2), [1.0, 1.0]);
/// ```
pub fn balanced_class_weights(labels: &[u32], n_classes: usize) -> Vec<f32> {
    let mut counts = vec![0u64; n_classes];
    for &y in labels {
        if let Some(c) = counts.get_mut(y as usize) {
            *c += 1;
        }
    }
    let n = labels.len() as f64;
    counts
        .iter()
        .map(|&c| match c {
            0 => 1.0,
            c => (n / (n_classes as f64 * c as f64)) as f32,
        })
        .collect()
}

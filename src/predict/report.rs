//! The classification report of an evaluation: precision, recall, F1 and
//! support per class, and their macro and weighted averages, as
//! scikit-learn's `precision_recall_fscore_support` and
//! `classification_report` compute them (a division by zero gives 0).

use serde_json::{json, Value};

/// Precision, recall, F1 and support of one class, or their average over
/// the classes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassScores {
    /// Of the rows predicted as the class, the fraction that are of it
    /// (`tp / (tp + fp)`; 0 when the class is never predicted).
    pub precision: f64,
    /// Of the rows of the class, the fraction predicted as it
    /// (`tp / support`; 0 when the class has no rows).
    pub recall: f64,
    /// The harmonic mean of precision and recall
    /// (`2 tp / (2 tp + fp + fn)`; 0 when `tp` is 0).
    pub f1: f64,
    /// Rows of the class (for an average: all rows).
    pub support: u64,
}

/// The classification report of a confusion matrix: [`ClassScores`] per
/// class, and their macro average (the plain mean over all classes, those
/// without rows or predictions included) and weighted average (weighted by
/// support).
///
/// The averages are scikit-learn's `precision_recall_fscore_support` with
/// `average="macro"` and `average="weighted"`, `zero_division=0` and
/// `labels` set to every class of the model (scikit-learn's default leaves
/// out a class that is neither among the labels nor the predictions).
///
/// # Example
/// ```
/// use vnn::predict::ClassificationReport;
/// // rows = true class, columns = predicted class
/// let r = ClassificationReport::from_confusion(&[vec![3, 1], vec![0, 4]]);
/// assert_eq!((r.per_class[0].precision, r.per_class[0].recall), (1.0, 0.75));
/// assert_eq!((r.per_class[1].precision, r.per_class[1].recall), (0.8, 1.0));
/// assert!((r.macro_avg.f1 - (6.0 / 7.0 + 8.0 / 9.0) / 2.0).abs() < 1e-12);
/// assert_eq!((r.per_class[0].support, r.weighted_avg.support), (4, 8));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ClassificationReport {
    /// The scores of every class, in class order.
    pub per_class: Vec<ClassScores>,
    /// The unweighted mean over the classes (support: all rows).
    pub macro_avg: ClassScores,
    /// The mean over the classes weighted by support (support: all rows);
    /// all 0 without rows.
    pub weighted_avg: ClassScores,
}

/// `num / den`, or 0 when `den` is 0 (scikit-learn's `zero_division=0`).
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// The mean of the scores of `per_class` with the weights `weight` (0 when
/// the weights sum to 0); the support is the sum of the supports.
fn average(per_class: &[ClassScores], weight: impl Fn(&ClassScores) -> f64) -> ClassScores {
    let total: f64 = per_class.iter().map(&weight).sum();
    let mean = |f: fn(&ClassScores) -> f64| {
        let sum: f64 = per_class.iter().map(|s| weight(s) * f(s)).sum();
        if total == 0.0 {
            0.0
        } else {
            sum / total
        }
    };
    ClassScores {
        precision: mean(|s| s.precision),
        recall: mean(|s| s.recall),
        f1: mean(|s| s.f1),
        support: per_class.iter().map(|s| s.support).sum(),
    }
}

impl ClassificationReport {
    /// The report of `confusion[true][predicted]` (a square matrix; an
    /// empty one gives an empty report).
    pub fn from_confusion(confusion: &[Vec<u64>]) -> ClassificationReport {
        let k = confusion.len();
        let predicted: Vec<u64> = (0..k)
            .map(|c| {
                confusion
                    .iter()
                    .map(|row| row.get(c).copied().unwrap_or(0))
                    .sum()
            })
            .collect();
        let per_class: Vec<ClassScores> = confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let tp = row.get(c).copied().unwrap_or(0);
                let support: u64 = row.iter().sum();
                let (fp, fneg) = (predicted[c] - tp, support - tp);
                ClassScores {
                    precision: ratio(tp, tp + fp),
                    recall: ratio(tp, support),
                    f1: ratio(2 * tp, 2 * tp + fp + fneg),
                    support,
                }
            })
            .collect();
        ClassificationReport {
            macro_avg: average(&per_class, |_| 1.0),
            weighted_avg: average(&per_class, |s| s.support as f64),
            per_class,
        }
    }

    /// The report as text lines, in the layout of scikit-learn's
    /// `classification_report`: a header, one line per class (named by
    /// `class_names`), then `macro avg` and `weighted avg`; scores with 4
    /// decimals.
    ///
    /// # Example
    /// ```
    /// let r = vnn::predict::ClassificationReport::from_confusion(&[vec![1, 1], vec![0, 2]]);
    /// let lines = r.lines(&["a".to_string(), "b".to_string()]);
    /// assert_eq!(lines[0], "              precision    recall  f1-score   support");
    /// assert_eq!(lines[1], "           a     1.0000    0.5000    0.6667         2");
    /// assert_eq!(lines[4], "weighted avg     0.8333    0.7500    0.7333         4");
    /// ```
    pub fn lines(&self, class_names: &[String]) -> Vec<String> {
        let width = class_names
            .iter()
            .map(|c| c.chars().count())
            .chain([12])
            .max()
            .unwrap_or(12);
        let row = |name: &str, s: &ClassScores| {
            format!(
                "{name:>width$} {:>10.4} {:>9.4} {:>9.4} {:>9}",
                s.precision, s.recall, s.f1, s.support
            )
        };
        let mut lines = vec![format!(
            "{:>width$} {:>10} {:>9} {:>9} {:>9}",
            "", "precision", "recall", "f1-score", "support"
        )];
        for (name, s) in class_names.iter().zip(&self.per_class) {
            lines.push(row(name, s));
        }
        lines.push(row("macro avg", &self.macro_avg));
        lines.push(row("weighted avg", &self.weighted_avg));
        lines
    }

    /// The JSON of `vnn eval --json`: `per_class` (one
    /// `{class, precision, recall, f1, support}` per class, `class` given by
    /// `class(i)`), `macro_f1`, `weighted_f1`, and the other averages as
    /// `macro_precision`, `macro_recall`, `weighted_precision` and
    /// `weighted_recall`, added to `obj`.
    pub fn add_json(&self, obj: &mut Value, class: impl Fn(usize) -> Value) {
        let per_class: Vec<Value> = self
            .per_class
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({"class": class(i), "precision": s.precision, "recall": s.recall,
                       "f1": s.f1, "support": s.support})
            })
            .collect();
        let (m, w) = (&self.macro_avg, &self.weighted_avg);
        obj["per_class"] = json!(per_class);
        obj["macro_precision"] = json!(m.precision);
        obj["macro_recall"] = json!(m.recall);
        obj["macro_f1"] = json!(m.f1);
        obj["weighted_precision"] = json!(w.precision);
        obj["weighted_recall"] = json!(w.recall);
        obj["weighted_f1"] = json!(w.f1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// Compares the scores within 1e-12 (all are ratios of small integers).
    fn close(got: &ClassScores, want: (f64, f64, f64, u64)) {
        assert_abs_diff_eq!(got.precision, want.0, epsilon = 1e-12);
        assert_abs_diff_eq!(got.recall, want.1, epsilon = 1e-12);
        assert_abs_diff_eq!(got.f1, want.2, epsilon = 1e-12);
        assert_eq!(got.support, want.3);
    }

    #[test]
    fn a_class_never_predicted_and_a_class_without_rows_score_zero() {
        // true \ predicted:  a  b  c  d
        //   a (5 rows)       3  1  0  1
        //   b (3 rows)       1  2  0  0
        //   c (2 rows)       2  0  0  0   never predicted
        //   d (0 rows)       0  0  0  0   predicted once, never true
        let confusion = [
            vec![3, 1, 0, 1],
            vec![1, 2, 0, 0],
            vec![2, 0, 0, 0],
            vec![0, 0, 0, 0],
        ];
        let r = ClassificationReport::from_confusion(&confusion);
        // a: tp 3, fp 3 (1 + 2), fn 2: P 3/6, R 3/5, F1 6/11
        close(&r.per_class[0], (0.5, 0.6, 6.0 / 11.0, 5));
        // b: tp 2, fp 1, fn 1: P 2/3, R 2/3, F1 4/6
        close(&r.per_class[1], (2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 3));
        // c: tp 0, never predicted: P 0 (0/0), R 0, F1 0
        close(&r.per_class[2], (0.0, 0.0, 0.0, 2));
        // d: tp 0, fp 1, no rows: P 0, R 0 (0/0), F1 0
        close(&r.per_class[3], (0.0, 0.0, 0.0, 0));
        let macro_avg = (
            (0.5 + 2.0 / 3.0) / 4.0,
            (0.6 + 2.0 / 3.0) / 4.0,
            (6.0 / 11.0 + 2.0 / 3.0) / 4.0,
            10,
        );
        close(&r.macro_avg, macro_avg);
        let weighted = (
            (5.0 * 0.5 + 3.0 * 2.0 / 3.0) / 10.0,
            (5.0 * 0.6 + 3.0 * 2.0 / 3.0) / 10.0,
            (5.0 * 6.0 / 11.0 + 3.0 * 2.0 / 3.0) / 10.0,
            10,
        );
        close(&r.weighted_avg, weighted);
    }

    #[test]
    fn a_perfect_matrix_scores_one_and_an_empty_one_zero() {
        let r = ClassificationReport::from_confusion(&[vec![2, 0], vec![0, 7]]);
        for s in r.per_class.iter().chain([&r.macro_avg, &r.weighted_avg]) {
            close(s, (1.0, 1.0, 1.0, s.support));
        }
        assert_eq!(r.weighted_avg.support, 9);
        let none = ClassificationReport::from_confusion(&[vec![0, 0], vec![0, 0]]);
        close(&none.macro_avg, (0.0, 0.0, 0.0, 0));
        close(&none.weighted_avg, (0.0, 0.0, 0.0, 0));
        let empty = ClassificationReport::from_confusion(&[]);
        assert!(empty.per_class.is_empty());
        close(&empty.macro_avg, (0.0, 0.0, 0.0, 0));
    }

    #[test]
    fn the_json_names_every_class_and_the_averages() {
        let r = ClassificationReport::from_confusion(&[vec![1, 1], vec![0, 2]]);
        let mut obj = json!({"accuracy": 0.75});
        r.add_json(&mut obj, |i| json!(["x", "y"][i]));
        assert_eq!(obj["accuracy"], 0.75);
        assert_eq!(obj["per_class"][1]["class"], "y");
        assert_eq!(obj["per_class"][1]["support"], 2);
        assert_abs_diff_eq!(
            obj["per_class"][1]["precision"].as_f64().unwrap(),
            2.0 / 3.0
        );
        assert_abs_diff_eq!(obj["macro_f1"].as_f64().unwrap(), (2.0 / 3.0 + 0.8) / 2.0);
        let weighted_f1 = (2.0 * 2.0 / 3.0 + 2.0 * 0.8) / 4.0;
        assert_abs_diff_eq!(obj["weighted_f1"].as_f64().unwrap(), weighted_f1);
    }
}

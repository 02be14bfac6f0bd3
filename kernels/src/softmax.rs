//! Numerically stable row softmax, log-sum-exp, and the fused softmax
//! cross-entropy loss and gradient.
//!
//! Every row is shifted by its maximum before `exp`, so any finite input,
//! however large (`±1e30`), gives finite probabilities that sum to 1 and a
//! finite loss. `-inf` entries get probability 0. NaN anywhere in a row makes
//! that row's outputs (and the loss) NaN. A row of only `-inf`, or one holding
//! `+inf`, has no defined softmax and gives NaN.
//!
//! The SIMD versions use `wide`'s polynomial `exp` (max relative error about
//! 1e-7 against `f64`) and sum in a different order than the twins: compare
//! with a relative tolerance.

/// Result of [`softmax_cross_entropy`] on one block of rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropy {
    /// `inv_n * sum over rows of (logsumexp(row) - row[label])`, summed in f64.
    pub loss: f64,
    /// Rows whose first maximal logit is at the label (correct predictions).
    pub correct: usize,
}

#[track_caller]
fn check_rows(x: &[f32], rows: usize, cols: usize, op: &str) {
    assert_eq!(
        x.len(),
        rows * cols,
        "{op}: input has {} elements, expected rows*cols = {rows}*{cols}",
        x.len()
    );
}

/// Maximum of a row and the index of its first maximum (NaN never wins
/// unless first).
fn row_max_scalar(row: &[f32]) -> (f32, usize) {
    let mut best = row[0];
    let mut idx = 0;
    for (j, &v) in row.iter().enumerate().skip(1) {
        if v > best {
            best = v;
            idx = j;
        }
    }
    (best, idx)
}

/// Row softmax in place: `x[r, :] = exp(x[r, :] - max) / sum(exp(x[r, :] - max))`.
///
/// - `x`: `rows x cols`, logits in, probabilities out.
///
/// # Panics
/// If `x.len() != rows * cols`.
///
/// # Example
/// ```
/// use vnn_kernels::softmax::softmax_rows;
/// let mut x = [1e30, 0.0, 2.0, 2.0];
/// softmax_rows(&mut x, 2, 2);
/// assert_eq!(x[0], 1.0);
/// assert!((x[2] - 0.5).abs() < 1e-6);
/// ```
#[track_caller]
pub fn softmax_rows(x: &mut [f32], rows: usize, cols: usize) {
    softmax_rows_scalar(x, rows, cols);
}

/// Scalar twin of [`softmax_rows`] (std `exp`).
///
/// # Panics
/// If `x.len() != rows * cols`.
#[track_caller]
pub fn softmax_rows_scalar(x: &mut [f32], rows: usize, cols: usize) {
    check_rows(x, rows, cols, "softmax_rows");
    if cols == 0 {
        return;
    }
    for row in x.chunks_exact_mut(cols) {
        let max = row.iter().fold(
            f32::NEG_INFINITY,
            |m, &v| if v > m || v.is_nan() { v } else { m },
        );
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// Log-sum-exp of every row: `out[r] = max + ln(sum(exp(x[r, :] - max)))`.
///
/// - `x`: `rows x cols`; `out`: `rows`. A row with `cols == 0` gives `-inf`.
///
/// # Panics
/// If `x.len() != rows * cols` or `out.len() != rows`.
#[track_caller]
pub fn logsumexp_rows(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    logsumexp_rows_scalar(x, rows, cols, out);
}

/// Scalar twin of [`logsumexp_rows`].
///
/// # Panics
/// If `x.len() != rows * cols` or `out.len() != rows`.
#[track_caller]
pub fn logsumexp_rows_scalar(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    check_rows(x, rows, cols, "logsumexp_rows");
    assert_eq!(
        out.len(),
        rows,
        "logsumexp_rows: out has {} elements, expected rows = {rows}",
        out.len()
    );
    if cols == 0 {
        out.fill(f32::NEG_INFINITY);
        return;
    }
    for (row, o) in x.chunks_exact(cols).zip(out.iter_mut()) {
        let max = row.iter().fold(
            f32::NEG_INFINITY,
            |m, &v| if v > m || v.is_nan() { v } else { m },
        );
        let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
        *o = max + sum.ln();
    }
}

/// Fused softmax cross-entropy, loss and gradient in one pass per row.
///
/// For each row `r` with label `y = labels[r]`:
/// `loss_r = logsumexp(x[r, :]) - x[r, y]` (never `ln(softmax)`), and the row
/// is overwritten with `dlogits[r, :] = (softmax(x[r, :]) - onehot(y)) * inv_n`.
/// Returns `inv_n * sum(loss_r)` and the number of rows whose first maximum
/// is at `y`. Pass `inv_n = 1 / N` with `N` the rows of the whole batch, so
/// the blocks of a batch sum to the mean loss and its gradient.
///
/// - `logits_then_grad`: `rows x cols`, logits in, `dlogits` out.
/// - `labels`: `rows` class indices, each `< cols`.
///
/// # Panics
/// If the lengths do not match the shapes, or a label is `>= cols`.
///
/// # Example
/// ```
/// use vnn_kernels::softmax::softmax_cross_entropy;
/// let mut x = [0.0f32, 0.0];
/// let ce = softmax_cross_entropy(&mut x, &[1], 1, 2, 1.0);
/// assert!((ce.loss - std::f64::consts::LN_2).abs() < 1e-6);
/// assert_eq!(x, [0.5, -0.5]);
/// ```
#[track_caller]
pub fn softmax_cross_entropy(
    logits_then_grad: &mut [f32],
    labels: &[u32],
    rows: usize,
    cols: usize,
    inv_n: f32,
) -> CrossEntropy {
    softmax_cross_entropy_scalar(logits_then_grad, labels, rows, cols, inv_n)
}

/// Scalar twin of [`softmax_cross_entropy`].
///
/// # Panics
/// If the lengths do not match the shapes, or a label is `>= cols`.
#[track_caller]
pub fn softmax_cross_entropy_scalar(
    logits_then_grad: &mut [f32],
    labels: &[u32],
    rows: usize,
    cols: usize,
    inv_n: f32,
) -> CrossEntropy {
    check_rows(logits_then_grad, rows, cols, "softmax_cross_entropy");
    assert_eq!(
        labels.len(),
        rows,
        "softmax_cross_entropy: {} labels, expected rows = {rows}",
        labels.len()
    );
    let mut out = CrossEntropy {
        loss: 0.0,
        correct: 0,
    };
    if rows == 0 {
        return out;
    }
    assert!(
        cols > 0,
        "softmax_cross_entropy: cols must be > 0 when rows > 0"
    );
    let mut loss = 0.0f64;
    for (row, &y) in logits_then_grad.chunks_exact_mut(cols).zip(labels) {
        let y = y as usize;
        assert!(
            y < cols,
            "softmax_cross_entropy: label {y} out of range for {cols} classes"
        );
        let (_, arg) = row_max_scalar(row);
        let max = row.iter().fold(
            f32::NEG_INFINITY,
            |m, &v| if v > m || v.is_nan() { v } else { m },
        );
        if arg == y {
            out.correct += 1;
        }
        // loss_r = lse - x_y = ln(sum(exp(x - max))) - (x_y - max)
        let shifted_y = row[y] - max;
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        loss += (sum.ln() - shifted_y) as f64;
        for v in row.iter_mut() {
            *v *= inv * inv_n;
        }
        row[y] -= inv_n;
    }
    out.loss = loss * inv_n as f64;
    out
}

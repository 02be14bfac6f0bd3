//! Numerically stable row softmax, log-sum-exp, and the fused softmax
//! cross-entropy loss and gradient.
//!
//! Every row is shifted by its maximum before `exp`, so any finite input,
//! however large (`±1e30`), gives finite probabilities that sum to 1 and a
//! finite loss. `-inf` entries get probability 0. NaN anywhere in a row makes
//! that row's outputs (and the loss) NaN. A row of only `-inf`, or one holding
//! `+inf`, has no defined softmax and gives NaN.
//!
//! The SIMD versions use their own polynomial `exp` on the shifted values
//! (all `<= 0`; max relative error about 1e-7 against `f64`, like `wide`'s),
//! which returns exactly 0 below `e^-87.3` (about 1.2e-38, where std's `exp`
//! gives subnormals), and sum in a different order than the twins: compare
//! with a relative tolerance, and an absolute one of 1e-37.
//!
//! Long rows (at least two vectors) are done row by row: a SIMD maximum, then
//! one pass that writes `exp(x - max)` and sums it, then the scaling. Short
//! rows (a handful of classes) are done in blocks of rows: a scalar pass per
//! row finds the maximum and subtracts it, one SIMD `exp` pass covers the
//! whole block as a flat slice (full lanes whatever the row length), and a
//! last pass sums and scales each row. The vectors are 16 lanes wide in
//! builds with AVX-512 and 8 lanes otherwise.

// The grouped rows are reached only by the run-time AVX2 path in builds
// without FMA, and by the tests; the group of columns also by the network
// step of the narrow fused kernels.
#[cfg_attr(target_feature = "fma", allow(dead_code))]
mod groups;
pub(crate) use groups::group_in_columns;
mod weighted;

pub use weighted::{softmax_cross_entropy_weighted, softmax_cross_entropy_weighted_scalar};

use crate::simd::{exp_nonpositive, max_nan, Lane};

/// The vector of the row-wise paths: 16 lanes in builds with AVX-512, 8
/// otherwise.
#[cfg(target_feature = "avx512f")]
type Lanes = wide::f32x16;
/// The vector of the row-wise paths: 16 lanes in builds with AVX-512, 8
/// otherwise.
#[cfg(not(target_feature = "avx512f"))]
type Lanes = wide::f32x8;

/// Lanes per SIMD vector.
const LANES: usize = <Lanes as Lane>::LANES;

/// Rows per block at most (sizes the stack arrays of per-row values).
const BLOCK_ROWS: usize = 64;

/// Elements per block, roughly: blocks stay in the L1 cache.
const BLOCK_ELEMS: usize = 4096;

/// Rows at least this long are reduced with SIMD lanes and done row by row;
/// shorter ones sequentially, in blocks of rows.
const SIMD_ROW_MIN: usize = 2 * LANES;

/// The row maximum: NaN if the row holds a NaN, `-inf` if empty (the fold
/// of [`row_max_scalar`], in lanes for long rows).
#[inline]
fn row_max(row: &[f32]) -> f32 {
    if row.len() < SIMD_ROW_MIN {
        return row_max_scalar(row);
    }
    // The same rule per lane: a lane that met a NaN stays NaN.
    let mut best = Lanes::splat(f32::NEG_INFINITY);
    let mut lanes = row.chunks_exact(LANES);
    for c in &mut lanes {
        best = best.max_nan(Lanes::load(c));
    }
    let max = best.reduce_max_nan(f32::NEG_INFINITY);
    lanes.remainder().iter().fold(max, |m, &v| max_nan(m, v))
}

/// Scalar twin of [`row_max`]: the sequential [`max_nan`] fold.
#[inline]
fn row_max_scalar(row: &[f32]) -> f32 {
    row.iter().fold(f32::NEG_INFINITY, |m, &v| max_nan(m, v))
}

/// `row -= max`, elementwise (the shift before `exp`).
#[inline]
fn sub_in_place(row: &mut [f32], max: f32) {
    let mut lanes = row.chunks_exact_mut(LANES);
    let m = Lanes::splat(max);
    for c in &mut lanes {
        Lanes::load(c).sub(m).store(c);
    }
    for v in lanes.into_remainder() {
        *v -= max;
    }
}

/// `row *= k`, elementwise.
#[inline]
fn scale_in_place(row: &mut [f32], k: f32) {
    let mut lanes = row.chunks_exact_mut(LANES);
    let kl = Lanes::splat(k);
    for c in &mut lanes {
        Lanes::load(c).mul(kl).store(c);
    }
    for v in lanes.into_remainder() {
        *v *= k;
    }
}

/// Sum of a row: sequential when short, in lanes when long.
#[inline]
fn row_sum(row: &[f32]) -> f32 {
    if row.len() < SIMD_ROW_MIN {
        return row.iter().sum();
    }
    let mut acc = Lanes::ZERO;
    let mut lanes = row.chunks_exact(LANES);
    for c in &mut lanes {
        acc += Lanes::load(c);
    }
    acc.reduce_add() + lanes.remainder().iter().sum::<f32>()
}

/// `x = exp(x)` for shifted values (`<= 0`), the tail through a padded
/// vector so every element sees the same polynomial.
#[inline]
fn exp_in_place(x: &mut [f32]) {
    let mut lanes = x.chunks_exact_mut(LANES);
    for c in &mut lanes {
        exp_nonpositive(Lanes::load(c)).store(c);
    }
    let rest = lanes.into_remainder();
    if !rest.is_empty() {
        let v = exp_nonpositive(Lanes::load_padded(rest, 0.0));
        rest.copy_from_slice(&v.as_array()[..rest.len()]);
    }
}

/// `row = exp(row - max)` in one pass; returns the sum of the new row (in
/// lanes; the tail padded with `-inf`, whose `exp` is 0).
#[inline]
fn exp_shifted_sum_in_place(row: &mut [f32], max: f32) -> f32 {
    let m = Lanes::splat(max);
    let mut acc = Lanes::ZERO;
    let mut lanes = row.chunks_exact_mut(LANES);
    for c in &mut lanes {
        let e = exp_nonpositive(Lanes::load(c) - m);
        e.store(c);
        acc += e;
    }
    let rest = lanes.into_remainder();
    if !rest.is_empty() {
        let e = exp_nonpositive(Lanes::load_padded(rest, f32::NEG_INFINITY) - m);
        rest.copy_from_slice(&e.as_array()[..rest.len()]);
        acc += e;
    }
    acc.reduce_add()
}

/// `sum(exp(row - max))` without writing (the tail padded with `-inf`).
#[inline]
fn exp_shifted_sum(row: &[f32], max: f32) -> f32 {
    let m = Lanes::splat(max);
    let mut acc = Lanes::ZERO;
    let mut lanes = row.chunks_exact(LANES);
    for c in &mut lanes {
        acc += exp_nonpositive(Lanes::load(c) - m);
    }
    let rest = lanes.remainder();
    if !rest.is_empty() {
        acc += exp_nonpositive(Lanes::load_padded(rest, f32::NEG_INFINITY) - m);
    }
    acc.reduce_add()
}

/// Rows per block for rows of `cols` elements (`cols > 0`).
#[inline]
fn block_rows(cols: usize) -> usize {
    (BLOCK_ELEMS / cols).clamp(1, BLOCK_ROWS)
}

/// Result of [`softmax_cross_entropy`] on one block of rows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
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
    check_rows(x, rows, cols, "softmax_rows");
    if cols == 0 {
        return;
    }
    if cols >= SIMD_ROW_MIN {
        for row in x.chunks_exact_mut(cols) {
            let sum = exp_shifted_sum_in_place(row, row_max(row));
            scale_in_place(row, 1.0 / sum);
        }
        return;
    }
    for block in x.chunks_mut(block_rows(cols) * cols) {
        for row in block.chunks_exact_mut(cols) {
            sub_in_place(row, row_max(row));
        }
        exp_in_place(block);
        for row in block.chunks_exact_mut(cols) {
            scale_in_place(row, 1.0 / row_sum(row));
        }
    }
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
        let max = row_max_scalar(row);
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

/// The shape checks of [`logsumexp_rows`] and its twin, and the empty rows
/// (`cols == 0`: every output `-inf`). Returns whether that finished it.
#[track_caller]
fn logsumexp_prologue(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) -> bool {
    check_rows(x, rows, cols, "logsumexp_rows");
    assert_eq!(
        out.len(),
        rows,
        "logsumexp_rows: out has {} elements, expected rows = {rows}",
        out.len()
    );
    if cols == 0 {
        out.fill(f32::NEG_INFINITY);
    }
    cols == 0
}

/// Log-sum-exp of every row: `out[r] = max + ln(sum(exp(x[r, :] - max)))`.
///
/// - `x`: `rows x cols`; `out`: `rows`. A row with `cols == 0` gives `-inf`.
///
/// # Panics
/// If `x.len() != rows * cols` or `out.len() != rows`.
#[track_caller]
pub fn logsumexp_rows(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    if logsumexp_prologue(x, rows, cols, out) {
        return;
    }
    if cols >= SIMD_ROW_MIN {
        // `x` is read-only, so each row is exponentiated in registers.
        for (row, o) in x.chunks_exact(cols).zip(out.iter_mut()) {
            let max = row_max(row);
            *o = max + exp_shifted_sum(row, max).ln();
        }
        return;
    }
    // Short rows: a block of shifted rows is copied to the stack, where one
    // flat `exp` pass covers it.
    let per_block = block_rows(cols);
    let mut buf = [0.0f32; BLOCK_ELEMS];
    let mut maxima = [0.0f32; BLOCK_ROWS];
    for (block, block_out) in x.chunks(per_block * cols).zip(out.chunks_mut(per_block)) {
        let shifted = &mut buf[..block.len()];
        for ((src, dst), m) in block
            .chunks_exact(cols)
            .zip(shifted.chunks_exact_mut(cols))
            .zip(maxima.iter_mut())
        {
            *m = row_max(src);
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = v - *m;
            }
        }
        exp_in_place(shifted);
        for ((row, o), &m) in shifted.chunks_exact(cols).zip(block_out).zip(&maxima) {
            *o = m + row_sum(row).ln();
        }
    }
}

/// Scalar twin of [`logsumexp_rows`].
///
/// # Panics
/// If `x.len() != rows * cols` or `out.len() != rows`.
#[track_caller]
pub fn logsumexp_rows_scalar(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    if logsumexp_prologue(x, rows, cols, out) {
        return;
    }
    for (row, o) in x.chunks_exact(cols).zip(out.iter_mut()) {
        let max = row_max_scalar(row);
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
    if !cross_entropy_prologue(logits_then_grad, labels, rows, cols) {
        return CrossEntropy::default();
    }
    let mut loss = 0.0f64;
    let mut correct = 0;
    // Builds without FMA (the default x86_64 build runs `wide` on SSE2):
    // short rows in groups through AVX2 + FMA when the CPU has them.
    #[cfg(all(target_arch = "x86_64", not(target_feature = "fma")))]
    let (logits_then_grad, labels) = {
        let mut rest = (logits_then_grad, labels);
        if cols <= groups::GROUP_MAX_COLS {
            if let Some(isa) = crate::simd::detect() {
                let (group_loss, group_correct, done) = isa.run(groups::GroupRows {
                    logits_then_grad: &mut *rest.0,
                    labels: rest.1,
                    cols,
                    inv_n,
                });
                (loss, correct) = (group_loss, group_correct);
                rest = (&mut rest.0[done * cols..], &rest.1[done..]);
            }
        }
        rest
    };
    let per_block = block_rows(cols);
    let blocks = logits_then_grad.chunks_mut(per_block * cols);
    for (block, block_labels) in blocks.zip(labels.chunks(per_block)) {
        correct += cross_entropy_block(block, block_labels, None, cols, inv_n, &mut loss);
    }
    CrossEntropy {
        loss: loss * inv_n as f64,
        correct,
    }
}

/// The shape checks of [`softmax_cross_entropy`] and its twin. Returns
/// whether there are rows to do.
#[track_caller]
fn cross_entropy_prologue(x: &[f32], labels: &[u32], rows: usize, cols: usize) -> bool {
    check_rows(x, rows, cols, "softmax_cross_entropy");
    assert_eq!(
        labels.len(),
        rows,
        "softmax_cross_entropy: {} labels, expected rows = {rows}",
        labels.len()
    );
    if rows == 0 {
        return false;
    }
    assert!(
        cols > 0,
        "softmax_cross_entropy: cols must be > 0 when rows > 0"
    );
    true
}

/// The label of a row as an index.
///
/// # Panics
/// If it is `>= cols`.
#[inline]
#[track_caller]
fn label_index(y: u32, cols: usize) -> usize {
    let y = y as usize;
    assert!(
        y < cols,
        "softmax_cross_entropy: label {y} out of range for {cols} classes"
    );
    y
}

/// [`softmax_cross_entropy`] on one block of rows (at most [`BLOCK_ROWS`]):
/// adds the rows' `loss_r` to `loss` in row order and returns the correct
/// rows. With `class_weight`, row `r`'s loss and gradient are scaled by
/// `class_weight[y_r]` ([`softmax_cross_entropy_weighted`]); without, by
/// nothing (not even a multiplication by 1).
fn cross_entropy_block(
    block: &mut [f32],
    labels: &[u32],
    class_weight: Option<&[f32]>,
    cols: usize,
    inv_n: f32,
    loss: &mut f64,
) -> usize {
    let wide_rows = cols >= SIMD_ROW_MIN;
    let mut correct = 0;
    let mut shifted_y = [0.0f32; BLOCK_ROWS];
    let mut sums = [1.0f32; BLOCK_ROWS];
    // Pass 1, per row: prediction, maximum, shift (and for long rows the exp
    // and its sum).
    let rows = block.chunks_exact_mut(cols).zip(labels);
    for ((row, &y), (sy, s)) in rows.zip(shifted_y.iter_mut().zip(sums.iter_mut())) {
        let y = label_index(y, cols);
        if crate::reduce::argmax_row(row) == y {
            correct += 1;
        }
        let max = row_max(row);
        // loss_r = lse - x_y = ln(sum(exp(x - max))) - (x_y - max)
        *sy = row[y] - max;
        if wide_rows {
            *s = exp_shifted_sum_in_place(row, max);
        } else {
            sub_in_place(row, max);
        }
    }
    if !wide_rows {
        // Pass 2: exp over the whole block, then the row sums.
        exp_in_place(block);
        for (row, s) in block.chunks_exact(cols).zip(sums.iter_mut()) {
            *s = row_sum(row);
        }
    }
    // Pass 3: the logs of the sums a vector of rows at a time (a sum is at
    // least 1, the exp of the maximum, or NaN), loss and gradient.
    let mut logs = [0.0f32; BLOCK_ROWS];
    for (lc, sc) in logs[..labels.len().next_multiple_of(LANES)]
        .chunks_exact_mut(LANES)
        .zip(sums.chunks_exact(LANES))
    {
        Lanes::load(sc).ln().store(lc);
    }
    let rows = block.chunks_exact_mut(cols).zip(labels);
    for ((row, &y), ((&sum, &ln_sum), &sy)) in rows.zip(sums.iter().zip(&logs).zip(&shifted_y)) {
        let Some(cw) = class_weight else {
            *loss += (ln_sum - sy) as f64;
            // dlogits = (softmax - onehot(y)) * inv_n
            scale_in_place(row, (1.0 / sum) * inv_n);
            row[y as usize] -= inv_n;
            continue;
        };
        // loss_r w_y, and dlogits = (softmax - onehot(y)) * (w_y inv_n)
        let (w, y) = (cw[y as usize], y as usize);
        *loss += (ln_sum - sy) as f64 * w as f64;
        let scale = w * inv_n;
        scale_in_place(row, (1.0 / sum) * scale);
        row[y] -= scale;
    }
    correct
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
    if !cross_entropy_prologue(logits_then_grad, labels, rows, cols) {
        return CrossEntropy::default();
    }
    cross_entropy_rows_scalar(logits_then_grad, labels, None, cols, inv_n)
}

/// The rows of [`softmax_cross_entropy_scalar`] and of
/// [`softmax_cross_entropy_weighted_scalar`]: row `r` weighted by
/// `class_weight[y_r]`, or by nothing (a weight of exactly 1, which leaves
/// every product as it is).
fn cross_entropy_rows_scalar(
    logits_then_grad: &mut [f32],
    labels: &[u32],
    class_weight: Option<&[f32]>,
    cols: usize,
    inv_n: f32,
) -> CrossEntropy {
    let mut out = CrossEntropy::default();
    let mut loss = 0.0f64;
    for (row, &y) in logits_then_grad.chunks_exact_mut(cols).zip(labels) {
        let y = label_index(y, cols);
        let w = class_weight.map_or(1.0, |cw| cw[y]);
        let max = row_max_scalar(row);
        if crate::reduce::argmax_row_scalar(row) == y {
            out.correct += 1;
        }
        // loss_r = lse - x_y = ln(sum(exp(x - max))) - (x_y - max)
        let shifted_y = row[y] - max;
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        loss += (sum.ln() - shifted_y) as f64 * w as f64;
        // dlogits = (softmax - onehot(y)) * (w inv_n)
        let (inv, scale) = (1.0 / sum, w * inv_n);
        for v in row.iter_mut() {
            *v *= inv * scale;
        }
        row[y] -= scale;
    }
    out.loss = loss * inv_n as f64;
    out
}

//! Reductions: sum of squares (the L2 term), argmax per row (predictions),
//! column sums (bias gradients), and elementwise accumulation (summing the
//! partial gradients of row blocks).

use crate::simd::{store, Lane};
use wide::f32x8;

/// Lanes per SIMD vector.
const LANES: usize = 8;

/// `sum(x[i]^2)`. The SIMD version sums in 32 lane accumulators (fused
/// multiply-add when the build enables FMA), so it matches the twin within a
/// relative tolerance, not bit for bit. NaN propagates.
///
/// # Example
/// ```
/// assert_eq!(vnn_kernels::reduce::sum_squares(&[3.0, 4.0]), 25.0);
/// ```
pub fn sum_squares(x: &[f32]) -> f32 {
    // Four independent accumulators hide the add latency.
    let mut acc = [f32x8::ZERO; 4];
    let mut blocks = x.chunks_exact(4 * LANES);
    for block in &mut blocks {
        for (a, c) in acc.iter_mut().zip(block.chunks_exact(LANES)) {
            let v = f32x8::load(c);
            *a = v.mul_add(v, *a);
        }
    }
    let mut lanes = blocks.remainder().chunks_exact(LANES);
    for c in &mut lanes {
        let v = f32x8::load(c);
        acc[0] = v.mul_add(v, acc[0]);
    }
    let total = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    total.reduce_add() + sum_squares_scalar(lanes.remainder())
}

/// Scalar twin of [`sum_squares`].
pub fn sum_squares_scalar(x: &[f32]) -> f32 {
    x.iter().map(|v| v * v).sum()
}

/// Index of the first maximum of each row; a NaN is never selected unless it
/// is the first element of its row (every comparison with NaN is false).
///
/// - `x`: `rows x cols` with `cols > 0` when `rows > 0`; `out`: `rows`.
///
/// Exact: equals [`argmax_rows_scalar`].
///
/// # Panics
/// If the lengths do not match the shapes, or `cols == 0` with `rows > 0`.
///
/// # Example
/// ```
/// let mut out = [0u32; 2];
/// vnn_kernels::reduce::argmax_rows(&[1.0, 3.0, 3.0, 2.0, 1.0, 2.0], 2, 3, &mut out);
/// assert_eq!(out, [1, 0]);
/// ```
#[track_caller]
pub fn argmax_rows(x: &[f32], rows: usize, cols: usize, out: &mut [u32]) {
    if !check_argmax(x, rows, cols, out) {
        return;
    }
    for (row, o) in x.chunks_exact(cols).zip(out.iter_mut()) {
        *o = argmax_row(row) as u32;
    }
}

/// The shape checks of [`argmax_rows`] and its twin; returns whether there
/// are rows to do.
#[track_caller]
fn check_argmax(x: &[f32], rows: usize, cols: usize, out: &[u32]) -> bool {
    assert_eq!(
        x.len(),
        rows * cols,
        "argmax_rows: x has {} elements, expected {rows}*{cols}",
        x.len()
    );
    assert_eq!(
        out.len(),
        rows,
        "argmax_rows: out has {} elements, expected {rows}",
        out.len()
    );
    assert!(
        rows == 0 || cols > 0,
        "argmax_rows: cols must be > 0 when rows > 0"
    );
    rows > 0
}

/// Below this many columns a row is scanned sequentially.
const SIMD_ARGMAX_MIN_COLS: usize = 2 * LANES;

/// Index of the first maximum of a non-empty row, NaN never selected unless
/// first: the sequential `v > best` scan, in two SIMD passes for long rows.
#[inline]
pub(crate) fn argmax_row(row: &[f32]) -> usize {
    if row.len() < SIMD_ARGMAX_MIN_COLS {
        return argmax_row_scalar(row);
    }
    if row[0].is_nan() {
        // Nothing compares greater than the first element.
        return 0;
    }
    // Pass 1: the largest non-NaN value (row[0] is one, so it exists).
    let mut best = f32x8::NEG_INFINITY;
    let mut lanes = row.chunks_exact(LANES);
    for c in &mut lanes {
        let v = f32x8::load(c);
        best = v.simd_gt(best).select(v, best);
    }
    let mut max = best
        .to_array()
        .into_iter()
        .fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
    for &v in lanes.remainder() {
        if v > max {
            max = v;
        }
    }
    // Pass 2: the sequential scan stops at the first element equal to the
    // maximum (`==`, so -0.0 and +0.0 tie and the first one wins).
    let target = f32x8::splat(max);
    let mut lanes = row.chunks_exact(LANES);
    for (k, c) in (&mut lanes).enumerate() {
        let hits = f32x8::load(c).simd_eq(target).to_bitmask();
        if hits != 0 {
            return k * LANES + hits.trailing_zeros() as usize;
        }
    }
    let done = row.len() - lanes.remainder().len();
    let tail = lanes.remainder().iter().position(|&v| v == max);
    done + tail.expect("the maximum is an element of the row")
}

/// The sequential scan of [`argmax_rows_scalar`] on one non-empty row.
#[inline]
pub(crate) fn argmax_row_scalar(row: &[f32]) -> usize {
    let mut best = row[0];
    let mut idx = 0;
    for (j, &v) in row.iter().enumerate().skip(1) {
        if v > best {
            best = v;
            idx = j;
        }
    }
    idx
}

/// Scalar twin of [`argmax_rows`].
///
/// # Panics
/// If the lengths do not match the shapes, or `cols == 0` with `rows > 0`.
#[track_caller]
pub fn argmax_rows_scalar(x: &[f32], rows: usize, cols: usize, out: &mut [u32]) {
    if !check_argmax(x, rows, cols, out) {
        return;
    }
    for (row, o) in x.chunks_exact(cols).zip(out.iter_mut()) {
        *o = argmax_row_scalar(row) as u32;
    }
}

/// The shape checks of [`column_sums`] and its twin; returns whether there
/// are columns to do.
#[track_caller]
fn check_column_sums(x: &[f32], rows: usize, cols: usize, out: &[f32]) -> bool {
    assert_eq!(
        x.len(),
        rows * cols,
        "column_sums: x has {} elements, expected {rows}*{cols}",
        x.len()
    );
    assert_eq!(
        out.len(),
        cols,
        "column_sums: out has {} elements, expected {cols}",
        out.len()
    );
    cols > 0
}

/// Column sums accumulated into `out`: `out[c] += sum over r of x[r, c]`.
///
/// - `x`: `rows x cols`; `out`: `cols`.
///
/// Exact: the SIMD version adds rows in the same order per column, so it
/// equals [`column_sums_scalar`] bit for bit (no FMA involved).
///
/// # Panics
/// If the lengths do not match the shapes.
#[track_caller]
pub fn column_sums(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    if !check_column_sums(x, rows, cols, out) {
        return;
    }
    // Row by row, as the twin: the same additions in the same order for
    // every column; `out` stays in cache while `x` streams past.
    for row in x.chunks_exact(cols) {
        add_assign(out, row);
    }
}

/// Scalar twin of [`column_sums`].
///
/// # Panics
/// If the lengths do not match the shapes.
#[track_caller]
pub fn column_sums_scalar(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    if !check_column_sums(x, rows, cols, out) {
        return;
    }
    for row in x.chunks_exact(cols) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

/// Asserts that two operands of an elementwise `op` have the same length.
#[track_caller]
pub(crate) fn check_same_len(a: &[f32], b: &[f32], op: &str, a_name: &str, b_name: &str) {
    assert_eq!(
        a.len(),
        b.len(),
        "{op}: {a_name} has {} elements, {b_name} {}",
        a.len(),
        b.len()
    );
}

/// `dst += src`, elementwise. Exact: equals [`add_assign_scalar`].
///
/// # Panics
/// If the lengths differ.
#[track_caller]
pub fn add_assign(dst: &mut [f32], src: &[f32]) {
    check_same_len(dst, src, "add_assign", "dst", "src");
    let mut ds = dst.chunks_exact_mut(LANES);
    let mut ss = src.chunks_exact(LANES);
    for (dc, sc) in (&mut ds).zip(&mut ss) {
        store(dc, f32x8::load(dc) + f32x8::load(sc));
    }
    add_assign_scalar(ds.into_remainder(), ss.remainder());
}

/// Scalar twin of [`add_assign`].
///
/// # Panics
/// If the lengths differ.
#[track_caller]
pub fn add_assign_scalar(dst: &mut [f32], src: &[f32]) {
    check_same_len(dst, src, "add_assign", "dst", "src");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

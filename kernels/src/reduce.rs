//! Reductions: sum of squares (the L2 term), argmax per row (predictions),
//! column sums (bias gradients), and elementwise accumulation (summing the
//! partial gradients of row blocks).

/// `sum(x[i]^2)`. The SIMD version sums in lanes, so it matches the twin
/// within a relative tolerance, not bit for bit. NaN propagates.
///
/// # Example
/// ```
/// assert_eq!(vnn_kernels::reduce::sum_squares(&[3.0, 4.0]), 25.0);
/// ```
pub fn sum_squares(x: &[f32]) -> f32 {
    sum_squares_scalar(x)
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
    argmax_rows_scalar(x, rows, cols, out);
}

/// Scalar twin of [`argmax_rows`].
///
/// # Panics
/// If the lengths do not match the shapes, or `cols == 0` with `rows > 0`.
#[track_caller]
pub fn argmax_rows_scalar(x: &[f32], rows: usize, cols: usize, out: &mut [u32]) {
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
    if rows == 0 {
        return;
    }
    assert!(cols > 0, "argmax_rows: cols must be > 0 when rows > 0");
    for (row, o) in x.chunks_exact(cols).zip(out.iter_mut()) {
        let mut best = row[0];
        let mut idx = 0u32;
        for (j, &v) in row.iter().enumerate().skip(1) {
            if v > best {
                best = v;
                idx = j as u32;
            }
        }
        *o = idx;
    }
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
    column_sums_scalar(x, rows, cols, out);
}

/// Scalar twin of [`column_sums`].
///
/// # Panics
/// If the lengths do not match the shapes.
#[track_caller]
pub fn column_sums_scalar(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
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
    if cols == 0 {
        return;
    }
    for row in x.chunks_exact(cols) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

/// `dst += src`, elementwise. Exact: equals [`add_assign_scalar`].
///
/// # Panics
/// If the lengths differ.
#[track_caller]
pub fn add_assign(dst: &mut [f32], src: &[f32]) {
    add_assign_scalar(dst, src);
}

/// Scalar twin of [`add_assign`].
///
/// # Panics
/// If the lengths differ.
#[track_caller]
pub fn add_assign_scalar(dst: &mut [f32], src: &[f32]) {
    assert_eq!(
        dst.len(),
        src.len(),
        "add_assign: dst has {} elements, src {}",
        dst.len(),
        src.len()
    );
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

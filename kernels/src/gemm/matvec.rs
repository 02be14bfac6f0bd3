//! The batch-1 product `out = x * W + bias` (inference on one row), without
//! packing.

use crate::simd::{Lane, Wide as f32x8};

/// `f32` lanes of one vector.
const LANES: usize = 8;

/// Matrix-vector product for one input row: `out = x * W + bias`.
///
/// - `x`: `n_in` elements.
/// - `w`: `n_in x n_out`, row-major (rows = inputs, columns = outputs).
/// - `bias`: `n_out` elements.
/// - `out`: `n_out` elements, overwritten.
///
/// No packing: this is the batch-1 inference path. Each output sums the bias
/// then the rows in order, as the twin does, but with fused multiply-adds
/// (when the build enables FMA) and, for narrow strips, several partial sums
/// over interleaved rows; results agree with [`matvec_bias_scalar`] within
/// rounding. Wide layers (more than 64 outputs and at least 64 inputs)
/// stream `W` row by row in storage order; narrower ones keep column strips
/// in registers over all rows.
///
/// # Panics
/// If a slice length does not match the shapes.
///
/// # Example
/// ```
/// use vnn_kernels::gemm::matvec_bias;
/// let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
/// let mut out = [0.0; 3];
/// matvec_bias(&[1.0, 2.0], &w, &[0.5, 0.0, -1.0], 2, 3, &mut out);
/// assert_eq!(out, [9.5, 12.0, 14.0]);
/// ```
#[track_caller]
pub fn matvec_bias(x: &[f32], w: &[f32], bias: &[f32], n_in: usize, n_out: usize, out: &mut [f32]) {
    check_matvec(x, w, bias, n_in, n_out, out);
    match n_out {
        0 => return,
        1 => return matvec_narrow::<1>(x, w, bias, out),
        2 => return matvec_narrow::<2>(x, w, bias, out),
        3 => return matvec_narrow::<3>(x, w, bias, out),
        4 => return matvec_narrow::<4>(x, w, bias, out),
        5 => return matvec_narrow::<5>(x, w, bias, out),
        6 => return matvec_narrow::<6>(x, w, bias, out),
        7 => return matvec_narrow::<7>(x, w, bias, out),
        _ => {}
    }
    let block = MATVEC_VECTORS * LANES;
    if n_out > block && n_in >= block {
        matvec_rows(x, w, bias, n_out, out);
        return;
    }
    // Column strips of up to 8 vectors, each accumulated in registers over
    // all rows of W (an axpy per row), starting from the bias.
    let mut j = 0;
    while j + block <= n_out {
        matvec_strip::<MATVEC_VECTORS, 1>(x, w, bias, n_out, j, 0, out);
        j += block;
    }
    match (n_out - j) / LANES {
        1 => matvec_strip::<1, 8>(x, w, bias, n_out, j, 0, out),
        2 => matvec_strip::<2, 4>(x, w, bias, n_out, j, 0, out),
        3 => matvec_strip::<3, 4>(x, w, bias, n_out, j, 0, out),
        4 => matvec_strip::<4, 2>(x, w, bias, n_out, j, 0, out),
        5 => matvec_strip::<5, 2>(x, w, bias, n_out, j, 0, out),
        6 => matvec_strip::<6, 2>(x, w, bias, n_out, j, 0, out),
        7 => matvec_strip::<7, 2>(x, w, bias, n_out, j, 0, out),
        _ => {}
    }
    let rem = n_out % LANES;
    if rem != 0 {
        // The last vector overlaps the previous one; only its new lanes are
        // stored.
        matvec_strip::<1, 8>(x, w, bias, n_out, n_out - LANES, LANES - rem, out);
    }
}

/// [`matvec_bias`] for wide layers: `out` (in L1) starts as the bias and
/// takes four rows of `W` per pass, so `W` streams through in storage order
/// (column strips over a long row stride defeat the hardware prefetcher).
fn matvec_rows(x: &[f32], w: &[f32], bias: &[f32], n_out: usize, out: &mut [f32]) {
    out.copy_from_slice(bias);
    let full = n_out / LANES * LANES;
    let mut rows = w.chunks_exact(n_out).zip(x);
    loop {
        let group: [_; 4] = std::array::from_fn(|_| rows.next());
        let [Some((w0, &x0)), Some((w1, &x1)), Some((w2, &x2)), Some((w3, &x3))] = group else {
            // Fewer than four rows left: one at a time.
            for (wr, &xi) in group.into_iter().flatten() {
                axpy_row(out, wr, xi, full);
            }
            break;
        };
        let (x0, x1, x2, x3) = (
            f32x8::splat(x0),
            f32x8::splat(x1),
            f32x8::splat(x2),
            f32x8::splat(x3),
        );
        for (j, o) in out[..full].chunks_exact_mut(LANES).enumerate() {
            let at = j * LANES;
            let mut v = load8(o);
            v = x0.mul_add(load8(&w0[at..]), v);
            v = x1.mul_add(load8(&w1[at..]), v);
            v = x2.mul_add(load8(&w2[at..]), v);
            v = x3.mul_add(load8(&w3[at..]), v);
            o.copy_from_slice(&v.to_array());
        }
        for (wr, xi) in [(w0, x0), (w1, x1), (w2, x2), (w3, x3)] {
            let xi = xi.to_array()[0];
            for (o, &wv) in out[full..].iter_mut().zip(&wr[full..]) {
                *o += xi * wv;
            }
        }
    }
}

/// Loads 8 lanes from the front of `s`.
#[inline(always)]
fn load8(s: &[f32]) -> f32x8 {
    <f32x8 as Lane>::load(s)
}

/// `out += xi * w_row`: vectors over the first `full` columns, scalars after.
fn axpy_row(out: &mut [f32], w_row: &[f32], xi: f32, full: usize) {
    let xv = f32x8::splat(xi);
    for (o, wv) in out[..full]
        .chunks_exact_mut(LANES)
        .zip(w_row.chunks_exact(LANES))
    {
        o.copy_from_slice(&xv.mul_add(load8(wv), load8(o)).to_array());
    }
    for (o, &wv) in out[full..].iter_mut().zip(&w_row[full..]) {
        *o += xi * wv;
    }
}

/// Vectors (of 8 outputs) accumulated at once by [`matvec_bias`].
const MATVEC_VECTORS: usize = 8;

/// `out[j0 + skip .. j0 + 8 V] = bias + x * W[:, same columns]`, with `CH`
/// accumulator chains over interleaved rows (enough independent
/// multiply-adds in flight when `V` is small).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn matvec_strip<const V: usize, const CH: usize>(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n_out: usize,
    j0: usize,
    skip: usize,
    out: &mut [f32],
) {
    let mut acc = [[f32x8::ZERO; V]; CH];
    let b = &bias[j0..j0 + V * LANES];
    acc[0] = std::array::from_fn(|v| load8(&b[v * LANES..]));
    let rows = x.len() / CH * CH;
    for i in (0..rows).step_by(CH) {
        for (c, acc_c) in acc.iter_mut().enumerate() {
            let row = &w[(i + c) * n_out + j0..][..V * LANES];
            let xv = f32x8::splat(x[i + c]);
            for (v, a) in acc_c.iter_mut().enumerate() {
                *a = xv.mul_add(load8(&row[v * LANES..]), *a);
            }
        }
    }
    for (i, &xi) in x.iter().enumerate().skip(rows) {
        let row = &w[i * n_out + j0..][..V * LANES];
        let xv = f32x8::splat(xi);
        for (v, a) in acc[0].iter_mut().enumerate() {
            *a = xv.mul_add(load8(&row[v * LANES..]), *a);
        }
    }
    for v in 0..V {
        let sum = acc.iter().skip(1).fold(acc[0][v], |s, acc_c| s + acc_c[v]);
        let start = j0 + v * LANES + skip;
        out[start..j0 + (v + 1) * LANES].copy_from_slice(&sum.to_array()[skip..]);
    }
}

/// [`matvec_bias`] for fewer than 8 outputs: `N` is the output count, so
/// the column loop unrolls; four accumulator rows over interleaved inputs hide
/// the add latency.
fn matvec_narrow<const N: usize>(x: &[f32], w: &[f32], bias: &[f32], out: &mut [f32]) {
    let mut acc = [[0.0f32; N]; 4];
    let groups = x.len() / 4;
    for (wg, xg) in w.chunks_exact(4 * N).zip(x.chunks_exact(4)).take(groups) {
        for ((acc_r, wr), &xi) in acc.iter_mut().zip(wg.chunks_exact(N)).zip(xg) {
            for (a, &wv) in acc_r.iter_mut().zip(wr) {
                *a += xi * wv;
            }
        }
    }
    for (wr, &xi) in w.chunks_exact(N).zip(x).skip(groups * 4) {
        for (a, &wv) in acc[0].iter_mut().zip(wr) {
            *a += xi * wv;
        }
    }
    for (j, o) in out.iter_mut().enumerate() {
        *o = bias[j] + ((acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]));
    }
}

#[track_caller]
fn check_matvec(x: &[f32], w: &[f32], bias: &[f32], n_in: usize, n_out: usize, out: &[f32]) {
    assert_eq!(
        x.len(),
        n_in,
        "matvec_bias: x has {} elements, expected n_in = {n_in}",
        x.len()
    );
    assert_eq!(
        w.len(),
        n_in * n_out,
        "matvec_bias: W has {} elements, expected {n_in}*{n_out}",
        w.len()
    );
    assert_eq!(
        bias.len(),
        n_out,
        "matvec_bias: bias has {} elements, expected {n_out}",
        bias.len()
    );
    assert_eq!(
        out.len(),
        n_out,
        "matvec_bias: out has {} elements, expected {n_out}",
        out.len()
    );
}

/// Scalar twin of [`matvec_bias`].
///
/// # Panics
/// If a slice length does not match the shapes.
#[track_caller]
pub fn matvec_bias_scalar(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n_in: usize,
    n_out: usize,
    out: &mut [f32],
) {
    check_matvec(x, w, bias, n_in, n_out, out);
    out.copy_from_slice(bias);
    for (i, &xi) in x.iter().enumerate() {
        let row = &w[i * n_out..(i + 1) * n_out];
        for (o, &wv) in out.iter_mut().zip(row) {
            *o += xi * wv;
        }
    }
}

//! The emulation: operands rounded to bf16 values, multiplied by the f32 kernels.

use rayon::prelude::*;

use crate::matmul::Strided;

use super::format::{from_bf16, to_bf16, BLOCK};
use super::Mask;

/// The operands rounded to bf16 values, multiplied in f32 (on all threads, or on this one
/// inside `crate::matmul::one_per_thread`). `b_rounded`: `b` already holds bf16 values
/// (a weight rounded once for many products), so only `a` is rounded.
pub(super) fn emulated(
    (m, k, n): (usize, usize, usize),
    (dst, d, accumulate): (&mut [f32], Strided, bool),
    (a, sa): (&[f32], Strided),
    (b, sb): (&[f32], Strided),
    b_rounded: bool,
) {
    let (ra, sa) = rounded((m, k), a, sa);
    let rb = (!b_rounded).then(|| rounded((k, n), b, sb));
    let b = rb.as_ref().map_or((b, sb), |(rb, sb)| (&rb[..], *sb));
    multiply_f32((m, k, n), (dst, d, accumulate), (&ra[..], sa), b);
}

/// The f32 product, on all threads (one inside `crate::matmul::one_per_thread`).
fn multiply_f32(
    dims: (usize, usize, usize),
    (dst, d, accumulate): (&mut [f32], Strided, bool),
    (a, sa): (&[f32], Strided),
    (b, sb): (&[f32], Strided),
) {
    if crate::matmul::may_use_threads() {
        crate::matmul::matmul_threaded(dims, (dst, d, accumulate), (a, sa), (b, sb));
    } else {
        crate::matmul::matmul(dims, dst, d, accumulate, a, sa, b, sb, 1.0);
    }
}

/// `emulated` (both operands rounded), skipping what `mask` skips in the tiled kernels
/// (`Mask::None`: every block, as `emulated`):
/// each block of 32 rows multiplies only the columns and inner values the mask leaves
/// it, so causal attention keeps its savings without AMX too.
pub(super) fn emulated_masked(
    (m, k, n): (usize, usize, usize),
    (dst, d, accumulate): (&mut [f32], Strided, bool),
    (a, sa): (&[f32], Strided),
    (b, sb): (&[f32], Strided),
    mask: Mask,
) {
    let ((ra, sa), (rb, sb)) = (rounded((m, k), a, sa), rounded((k, n), b, sb));
    let blocks = |len: usize| len.div_ceil(BLOCK);
    for bi in 0..blocks(m) {
        let rows = bi * BLOCK..((bi + 1) * BLOCK).min(m);
        let cols = (mask.column_end(bi, blocks(n)) * BLOCK).min(n);
        let inner = mask.inner(bi, blocks(k));
        let inner = inner.start * BLOCK..(inner.end * BLOCK).min(k);
        let (a_at, b_at) = (sa.at(rows.start, inner.start), sb.at(inner.start, 0));
        let dims = (rows.len(), inner.len(), cols);
        let d_at = d.at(rows.start, 0);
        if inner.is_empty() {
            if !accumulate {
                (rows.clone()).for_each(|r| (0..cols).for_each(|c| dst[d.index(r, c)] = 0.0));
            }
            continue;
        }
        let (a, b) = ((&ra[..], a_at), (&rb[..], b_at));
        multiply_f32(dims, (&mut *dst, d_at, accumulate), a, b);
    }
}

/// The [rows x cols] view of `x` rounded to bf16 values, in a new buffer: row-major, or
/// column-major when the view's columns are contiguous (the products read either), so
/// the rounding reads memory in order and vectorises; rows (columns) in parallel.
pub fn rounded((rows, cols): (usize, usize), x: &[f32], view: Strided) -> (Vec<f32>, Strided) {
    let by_columns = view.row == 1 && view.col != 1;
    let (lines, len, line_stride, step) = match by_columns {
        true => (cols, rows, view.col, view.row),
        false => (rows, cols, view.row, view.col),
    };
    let mut out = vec![0.0f32; lines * len];
    if len > 0 {
        let fill = |(i, line): (usize, &mut [f32])| {
            let start = view.offset + i * line_stride;
            if step == 1 {
                for (o, v) in line.iter_mut().zip(&x[start..start + len]) {
                    *o = from_bf16(to_bf16(*v));
                }
            } else {
                for (j, o) in line.iter_mut().enumerate() {
                    *o = from_bf16(to_bf16(x[start + j * step]));
                }
            }
        };
        if crate::matmul::may_use_threads() {
            out.par_chunks_mut(len).enumerate().for_each(fill);
        } else {
            out.chunks_mut(len).enumerate().for_each(fill);
        }
    }
    let layout = match by_columns {
        true => Strided::rows(0, rows).t(),
        false => Strided::rows(0, cols),
    };
    (out, layout)
}

//! f32 operands to bf16 (round to nearest even, as `optim::newton_schulz::round_bf16`), in
//! the tile layouts the AMX and AVX512-BF16 kernels read: conversion fused into packing,
//! edges padded with zeros so every kernel works on whole 32 x 32 blocks.

use rayon::prelude::*;

use crate::matmul::Strided;

use super::format::{
    avx512_bf16, round_up, to_bf16, BLOCK, TILE_COLS, TILE_K, TILE_LEN, TILE_ROWS,
};
use super::transpose;

/// The left operand [m x k] as panels of 16 rows, each a run of tiles along k; tile t of
/// panel p holds rows 16p.. and inner indices 32t.., 32 values per row.
/// Returns where the packed panels begin in `packed` (see `each_panel`).
pub fn pack_left((m, k): (usize, usize), a: &[f32], view: Strided, packed: &mut Vec<u16>) -> usize {
    each_panel(packed, (m, k), |(p, panel)| {
        let rows = TILE_ROWS.min(m.saturating_sub(p * TILE_ROWS));
        if view.row == 1 && rows > 0 {
            // Columns contiguous (a transposed operand): the panel's 16 rows of each
            // inner index are adjacent.
            // Whole tiles by a transpose in registers, where the panel has 16 rows.
            let whole = whole_tiles(rows, k);
            for t in 0..whole {
                let start = view.offset + t * TILE_K * view.col + p * TILE_ROWS;
                transpose::left_tile(&a[start..], view.col, &mut panel[t * TILE_LEN..]);
            }
            // The rest two inner indices at a time: each row's pair is one 4-byte store.
            let mut pairs = [0u16; TILE_K];
            for i in (whole * TILE_K..k).step_by(2) {
                let start = view.offset + i * view.col + p * TILE_ROWS;
                let even = &a[start..start + rows];
                let odd = (i + 1 < k).then(|| &a[start + view.col..start + view.col + rows]);
                interleave(even, odd, &mut pairs);
                let (t, kk) = (i / TILE_K, i % TILE_K);
                for (r, pair) in pairs[..2 * rows].chunks_exact(2).enumerate() {
                    let at = (t * TILE_ROWS + r) * TILE_K + kk;
                    panel[at..at + 2].copy_from_slice(pair);
                }
            }
            return;
        }
        for r in 0..TILE_ROWS {
            let row = p * TILE_ROWS + r;
            if row >= m {
                break;
            }
            let base = view.offset + row * view.row;
            if view.col == 1 {
                // A contiguous row: 32 values at a time into one tile row.
                let source = &a[base..base + k];
                for (t, chunk) in source.chunks(TILE_K).enumerate() {
                    let at = (t * TILE_ROWS + r) * TILE_K;
                    convert(chunk, &mut panel[at..at + chunk.len()]);
                }
                continue;
            }
            for i in 0..k {
                let (t, kk) = (i / TILE_K, i % TILE_K);
                panel[(t * TILE_ROWS + r) * TILE_K + kk] = to_bf16(a[base + i * view.col]);
            }
        }
    })
}

/// The right operand [k x n] as panels of 16 columns, each a run of tiles along k in the
/// pair-interleaved ("VNNI") layout both kernels multiply: row j of tile t holds, for
/// each of the 16 columns c, the values at inner indices 32t + 2j and 32t + 2j + 1.
/// Returns where the packed panels begin in `packed` (see `each_panel`).
pub fn pack_right(
    (k, n): (usize, usize),
    b: &[f32],
    view: Strided,
    packed: &mut Vec<u16>,
) -> usize {
    each_panel(packed, (n, k), |(q, panel)| {
        let first = q * TILE_COLS;
        let cols = TILE_COLS.min(n.saturating_sub(first));
        if cols == 0 {
            return; // a panel of padding only
        }
        if view.row == 1 {
            // Each column contiguous along the inner dimension (the transpose of a
            // row-major weight). Whole tiles by a transpose in registers, where the panel
            // has 16 columns.
            let whole = whole_tiles(cols, k);
            for t in 0..whole {
                let start = view.offset + first * view.col + t * TILE_K;
                transpose::right_tile(&b[start..], view.col, &mut panel[t * TILE_LEN..]);
            }
            // The rest one column at a time: its pairs into every tile row.
            let done = whole * TILE_K;
            let mut column = vec![0u16; k - done];
            for c in 0..cols {
                let base = view.offset + (first + c) * view.col + done;
                convert(&b[base..base + k - done], &mut column);
                for (i, &v) in (done..).zip(&column) {
                    let (t, kk) = (i / TILE_K, i % TILE_K);
                    panel[(t * TILE_ROWS + kk / 2) * TILE_K + 2 * c + kk % 2] = v;
                }
            }
            return;
        }
        if view.col == 1 {
            // Rows contiguous: two rows at a time, interleaved into one tile row.
            for i in (0..k).step_by(2) {
                let (t, kk) = (i / TILE_K, i % TILE_K);
                let at = (t * TILE_ROWS + kk / 2) * TILE_K;
                let even = &b[view.offset + i * view.row + first..][..cols];
                let odd =
                    (i + 1 < k).then(|| &b[view.offset + (i + 1) * view.row + first..][..cols]);
                // The whole tile row: columns past `cols` are written as zeros.
                let row: &mut [u16; TILE_K] = (&mut panel[at..at + TILE_K]).try_into().unwrap();
                interleave(even, odd, row);
            }
            return;
        }
        for i in 0..k {
            let (t, kk) = (i / TILE_K, i % TILE_K);
            let row = (t * TILE_ROWS + kk / 2) * TILE_K + (kk % 2);
            let base = view.offset + i * view.row;
            for c in 0..cols {
                panel[row + 2 * c] = to_bf16(b[base + (first + c) * view.col]);
            }
        }
    })
}

/// `packed` sized for an operand of `outer` rows (left) or columns (right) and inner
/// dimension `k`, then `fill` on each of its panels of 16, with its index: on all threads,
/// or on this one inside `crate::matmul::one_per_thread`. The panels begin at the
/// returned index, the first 64-byte boundary in `packed`: a tile load whose rows
/// straddle cache lines measured 1.4x slower.
fn each_panel(
    packed: &mut Vec<u16>,
    (outer, k): (usize, usize),
    fill: impl Fn((usize, &mut [u16])) + Sync + Send,
) -> usize {
    let len = round_up(k, TILE_K) / TILE_K * TILE_LEN;
    let panels = round_up(outer, BLOCK) / TILE_ROWS;
    reuse(
        packed,
        panels * len + ALIGN - 1,
        outer % BLOCK != 0 || k % TILE_K != 0,
    );
    let start = (packed.as_ptr() as usize).wrapping_neg() % (2 * ALIGN) / 2;
    let panels = &mut packed[start..start + panels * len];
    if crate::matmul::may_use_threads() {
        panels.par_chunks_mut(len).enumerate().for_each(fill);
    } else {
        panels.chunks_mut(len).enumerate().for_each(fill);
    }
    start
}

/// bf16 values in 64 bytes (a cache line).
const ALIGN: usize = 32;

/// How many of a panel's tiles along `k` the register transposes pack: all whole ones
/// when the panel is full (`width` 16) and the CPU has them, else none.
fn whole_tiles(width: usize, k: usize) -> usize {
    if width == TILE_ROWS && transpose::available() {
        k / TILE_K
    } else {
        0
    }
}

/// `packed` at `len` values, its memory reused from the last product (a fresh allocation
/// of megabytes costs a page fault every 4 KiB), zeroed when some of it is padding the
/// packing will not write.
fn reuse(packed: &mut Vec<u16>, len: usize, padded: bool) {
    if padded {
        packed.clear();
    }
    packed.resize(len, 0);
}

/// `even` and `odd` (at most 16 each; `None`: zeros) to bf16, interleaved: `out[2c]`
/// from `even[c]`, `out[2c + 1]` from `odd[c]`: a row pair of the VNNI layout.
#[inline]
fn interleave(even: &[f32], odd: Option<&[f32]>, out: &mut [u16; TILE_K]) {
    if let (16, Some(odd)) = (even.len(), odd) {
        if transpose::available() {
            // SAFETY: the features are present; 16 values each, 32 written.
            unsafe { interleave_avx512(even, odd, out) };
            return;
        }
    }
    out.fill(0);
    for (c, &x) in even.iter().enumerate() {
        out[2 * c] = to_bf16(x);
    }
    for (c, &x) in odd.unwrap_or(&[]).iter().enumerate() {
        out[2 * c + 1] = to_bf16(x);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn interleave_avx512(even: &[f32], odd: &[f32], out: &mut [u16; TILE_K]) {
    use std::arch::x86_64::*;
    // SAFETY: 16 f32 read from each slice (their lengths are 16), 64 bytes written.
    unsafe {
        let (even, odd) = (
            _mm512_loadu_ps(even.as_ptr()),
            _mm512_loadu_ps(odd.as_ptr()),
        );
        let pairs = transpose::interleaved(even, odd);
        _mm512_storeu_si512(out.as_mut_ptr().cast(), pairs);
    }
}

/// `source` to bf16 into `out`: 16 at a time by `VCVTNEPS2BF16` where the CPU has it
/// (subnormal inputs become zero there, as in the bf16 dot products themselves), else one
/// by one.
#[inline]
fn convert(source: &[f32], out: &mut [u16]) {
    let len = source.len().min(out.len());
    let (source, out) = (&source[..len], &mut out[..len]);
    if avx512_bf16() {
        // SAFETY: the CPU has AVX512-BF16 (checked); lengths are equal.
        unsafe { convert_avx512(source, out) };
    } else {
        for (o, &x) in out.iter_mut().zip(source) {
            *o = to_bf16(x);
        }
    }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn convert_avx512(source: &[f32], out: &mut [u16]) {
    use std::arch::x86_64::*;
    let whole = source.len() / 16 * 16;
    for (chunk, to) in source[..whole]
        .chunks_exact(16)
        .zip(out[..whole].chunks_exact_mut(16))
    {
        // SAFETY: 16 f32 read, 16 bf16 written, both in bounds.
        unsafe {
            let x = _mm512_loadu_ps(chunk.as_ptr());
            let y: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(x));
            _mm256_storeu_si256(to.as_mut_ptr().cast(), y);
        }
    }
    for (o, &x) in out[whole..].iter_mut().zip(&source[whole..]) {
        *o = to_bf16(x);
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::from_bf16;
    use super::*;

    #[test]
    fn packing_places_every_value_and_pads_with_zeros() {
        let (m, k, n) = (18, 35, 20);
        // Small integers, exact in bf16.
        let a: Vec<f32> = (0..m * k).map(|i| (i % 199) as f32).collect();
        let mut left = vec![7u16; 3];
        let start = pack_left((m, k), &a, Strided::rows(0, k), &mut left);
        assert_eq!(
            left[start..].as_ptr() as usize % 64,
            0,
            "panels on a cache line"
        );
        let tiles = 2;
        assert!(left.len() >= start + 2 * tiles * TILE_LEN);
        let at = |p: usize, t: usize, r: usize, kk: usize| {
            from_bf16(left[start + ((p * tiles + t) * TILE_ROWS + r) * TILE_K + kk])
        };
        assert_eq!(at(1, 1, 1, 2), a[17 * k + 34]);
        assert_eq!(at(1, 1, 2, 2), 0.0, "row 18 is padding");
        assert_eq!(at(1, 1, 1, 3), 0.0, "inner index 35 is padding");
        // The right operand read through a transposed view.
        let b: Vec<f32> = (0..k * n).map(|i| (i % 241) as f32).collect();
        let mut right = vec![7u16; 100_000];
        let start = pack_right((k, n), &b, Strided::rows(0, k).t(), &mut right);
        let bt = |i: usize, c: usize| b[c * k + i];
        let at = |q: usize, t: usize, j: usize, c: usize, odd: usize| {
            from_bf16(right[start + ((q * tiles + t) * TILE_ROWS + j) * TILE_K + 2 * c + odd])
        };
        assert_eq!(at(1, 1, 1, 3, 0), bt(34, 19));
        assert_eq!(at(1, 1, 0, 3, 1), bt(33, 19));
        assert_eq!(at(1, 1, 1, 4, 0), 0.0, "column 20 is padding");
    }
}

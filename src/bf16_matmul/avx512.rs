//! The AVX512-BF16 kernel: `VDPBF16PS` (16 lanes, each adding two bf16 products) on the
//! same packed panels as the AMX kernel, 8 rows x 32 columns of the block in registers.

use std::arch::x86_64::*;

use super::format::{avx512_bf16, TILE_K, TILE_LEN, TILE_ROWS};
use super::Accumulator;

/// Whether this CPU runs `VDPBF16PS`.
pub fn available() -> bool {
    avx512_bf16()
}

/// The same as `amx::Tiles::block`. Panics unless `available()`.
pub fn block(a: [&[u16]; 2], b: [&[u16]; 2], tiles: usize, out: Accumulator) {
    assert!(available(), "VDPBF16PS is not available on this CPU");
    for panel in a.iter().chain(&b) {
        assert!(panel.len() >= tiles * TILE_LEN);
    }
    let Accumulator { acc, row, first } = out;
    assert!(row >= 32 && acc.len() >= 31 * row + 32);
    for (half, panel) in a.iter().enumerate() {
        for group in 0..2 {
            let rows = &mut acc[(half * 16 + group * 8) * row..];
            // SAFETY: the CPU has the features (checked above); the panels hold `tiles`
            // tiles and `rows` 8 rows of 32, `row` apart (checked above).
            unsafe { eight_rows(panel, group * 8, b, tiles, (rows, row, first)) };
        }
    }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn eight_rows(
    a: &[u16],
    first_row: usize,
    b: [&[u16]; 2],
    tiles: usize,
    (out, row, first): (&mut [f32], usize, bool),
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; 8];
    if !first {
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: row r of `out` holds 32 values.
            unsafe {
                acc[0] = _mm512_loadu_ps(out.as_ptr().add(r * row));
                acc[1] = _mm512_loadu_ps(out.as_ptr().add(r * row + 16));
            }
        }
    }
    let (a, b0, b1) = (a.as_ptr(), b[0].as_ptr(), b[1].as_ptr());
    for t in 0..tiles {
        for pair in 0..TILE_ROWS {
            let at = (t * TILE_ROWS + pair) * TILE_K;
            // SAFETY: `at + 32` is within each right panel, and each row's pair within
            // the left one (`tiles` tiles, checked by the caller); a pair of bf16 values
            // is read as one 4-byte broadcast (its offset is even).
            unsafe {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b0.add(at).cast()));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b1.add(at).cast()));
                let row0 = a.add((t * TILE_ROWS + first_row) * TILE_K + 2 * pair);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let both = row0.add(r * TILE_K).cast::<i32>().read_unaligned();
                    let pair: __m512bh = std::mem::transmute(_mm512_set1_epi32(both));
                    acc[0] = _mm512_dpbf16_ps(acc[0], pair, b0);
                    acc[1] = _mm512_dpbf16_ps(acc[1], pair, b1);
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        // SAFETY: row r of `out` holds 32 values.
        unsafe {
            _mm512_storeu_ps(out.as_mut_ptr().add(r * row), acc[0]);
            _mm512_storeu_ps(out.as_mut_ptr().add(r * row + 16), acc[1]);
        }
    }
}

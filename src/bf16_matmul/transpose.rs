//! Whole tiles packed from operands that lie transposed in memory (a weight read as
//! `W^T`, a gradient read as `dy^T`): sixteen 64-byte lines converted to bf16, then one
//! 16 x 16 transpose of 4-byte pairs in registers, instead of a scattered store per value
//! (which measured about 1.2 ns per value, the largest part of the packing).

use std::arch::x86_64::*;

use super::format::{avx512_bf16, TILE_K, TILE_LEN, TILE_ROWS};

/// Whether this CPU has what the tile transposes use (AVX512F/BW and AVX512-BF16).
pub fn available() -> bool {
    avx512_bf16() && std::arch::is_x86_feature_detected!("avx512bw")
}

/// A tile of the right operand from 16 columns that each run along the inner dimension:
/// column `c`'s 32 inner values at `src[c * stride..][..32]`. Tile row `j` gets, for each
/// column, its values `2j` and `2j + 1` (the pair-interleaved layout). Panics unless
/// `available()` and the slices hold what is read and written.
pub fn right_tile(src: &[f32], stride: usize, tile: &mut [u16]) {
    assert!(available());
    assert!(src.len() >= 15 * stride + TILE_K && tile.len() >= TILE_LEN);
    // SAFETY: the features are present and the reads and writes are in bounds (checked).
    unsafe { right_tile_avx512(src, stride, tile) }
}

/// A tile of the left operand from 32 inner indices that each hold the tile's 16 rows
/// contiguously: index `i`'s 16 values at `src[i * stride..][..16]`. Tile row `r` gets
/// row `r`'s 32 values in inner order. Panics as `right_tile`.
pub fn left_tile(src: &[f32], stride: usize, tile: &mut [u16]) {
    assert!(available());
    assert!(src.len() >= (TILE_K - 1) * stride + TILE_ROWS && tile.len() >= TILE_LEN);
    // SAFETY: as in `right_tile`.
    unsafe { left_tile_avx512(src, stride, tile) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn right_tile_avx512(src: &[f32], stride: usize, tile: &mut [u16]) {
    // Line c: column c's 32 values as bf16, in order; its 4-byte lane j is the pair j.
    let lines: [__m512i; 16] = std::array::from_fn(|c| {
        let at = src[c * stride..][..TILE_K].as_ptr();
        // SAFETY: 32 values in bounds (the slice above).
        unsafe { to_bf16_pairs(_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16))) }
    });
    // SAFETY: 16 rows of 64 bytes inside `tile` (checked by the caller).
    unsafe { store_transposed(lines, tile) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn left_tile_avx512(src: &[f32], stride: usize, tile: &mut [u16]) {
    // Interleaving indices 2j and 2j + 1 puts row r's pair j in 4-byte lane r of line j.
    let lines: [__m512i; 16] = std::array::from_fn(|j| {
        let even = src[2 * j * stride..][..TILE_ROWS].as_ptr();
        let odd = src[(2 * j + 1) * stride..][..TILE_ROWS].as_ptr();
        // SAFETY: 16 values each, in bounds (the slices above).
        unsafe { interleaved(_mm512_loadu_ps(even), _mm512_loadu_ps(odd)) }
    });
    // SAFETY: as in `right_tile_avx512`.
    unsafe { store_transposed(lines, tile) }
}

/// `low` then `high` (16 values each) as 32 bf16 values in one register.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn to_bf16_pairs(low: __m512, high: __m512) -> __m512i {
    // SAFETY: a bit-for-bit reinterpretation of a 512-bit value.
    unsafe { std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(high, low)) }
}

/// `even` and `odd` (16 values each) as bf16, interleaved: lane 2c from `even[c]`, lane
/// 2c + 1 from `odd[c]` (a row pair of the pair-interleaved layout). Needs `available()`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn interleaved(even: __m512, odd: __m512) -> __m512i {
    // The 16-bit lane order that takes lane 2c from the low half (`even`) and lane
    // 2c + 1 from the high half (`odd`) of what `to_bf16_pairs` packs.
    const ORDER: [u16; 32] = {
        let mut order = [0u16; 32];
        let mut j = 0;
        while j < 32 {
            order[j] = (j / 2 + 16 * (j % 2)) as u16;
            j += 1;
        }
        order
    };
    // SAFETY: 64 bytes read from a 64-byte array; the features are enabled here.
    unsafe {
        let order = _mm512_loadu_si512(ORDER.as_ptr().cast());
        _mm512_permutexvar_epi16(order, to_bf16_pairs(even, odd))
    }
}

/// Writes lane `j` of line `c` to row `j`, lane `c` (4-byte lanes): row j's 64 bytes at
/// `tile[32 j..]`.
#[target_feature(enable = "avx512f")]
unsafe fn store_transposed(r: [__m512i; 16], tile: &mut [u16]) {
    // Pairs of lines, then pairs of pairs (8-byte lanes), then 128-bit lanes twice.
    let t: [__m512i; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    // Within each group of four: u[4g + {0,1,2,3}] from t[4g + {0,2}] and t[4g + {1,3}].
    let u: [__m512i; 16] = std::array::from_fn(|i| {
        let (g, w) = (i / 4 * 4, i % 4);
        let (a, b) = (t[g + w / 2], t[g + w / 2 + 2]);
        if w % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    // 128-bit lanes: v[8h + {0..4}] the even lanes of u[8h + w] and u[8h + w + 4], v[8h
    // + {4..8}] the odd ones.
    let v: [__m512i; 16] = std::array::from_fn(|i| {
        let (h, w) = (i / 8 * 8, i % 4);
        let (a, b) = (u[h + w], u[h + w + 4]);
        if i % 8 < 4 {
            _mm512_shuffle_i32x4::<0x88>(a, b)
        } else {
            _mm512_shuffle_i32x4::<0xDD>(a, b)
        }
    });
    for (row, out) in tile[..TILE_LEN].chunks_exact_mut(TILE_K).enumerate() {
        let (a, b) = (v[row % 8], v[row % 8 + 8]);
        let line = if row < 8 {
            _mm512_shuffle_i32x4::<0x88>(a, b)
        } else {
            _mm512_shuffle_i32x4::<0xDD>(a, b)
        };
        // SAFETY: 64 bytes into a row of 32 u16.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), line) };
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::{from_bf16, to_bf16};
    use super::*;

    fn values(len: usize) -> Vec<f32> {
        (0..len).map(|i| (i % 251) as f32 - 100.5).collect()
    }

    #[test]
    fn a_right_tile_holds_each_columns_pairs() {
        if !available() {
            return;
        }
        let stride = 37;
        let src = values(15 * stride + TILE_K);
        let mut tile = vec![0u16; TILE_LEN];
        right_tile(&src, stride, &mut tile);
        for j in 0..TILE_ROWS {
            for c in 0..16 {
                for odd in 0..2 {
                    let want = to_bf16(src[c * stride + 2 * j + odd]);
                    assert_eq!(tile[j * TILE_K + 2 * c + odd], want, "row {j} column {c}");
                }
            }
        }
    }

    #[test]
    fn a_left_tile_holds_each_rows_values() {
        if !available() {
            return;
        }
        let stride = 21;
        let src = values(31 * stride + TILE_ROWS);
        let mut tile = vec![0u16; TILE_LEN];
        left_tile(&src, stride, &mut tile);
        for r in 0..TILE_ROWS {
            for i in 0..TILE_K {
                let got = from_bf16(tile[r * TILE_K + i]);
                assert_eq!(
                    got,
                    from_bf16(to_bf16(src[i * stride + r])),
                    "row {r} index {i}"
                );
            }
        }
    }
}

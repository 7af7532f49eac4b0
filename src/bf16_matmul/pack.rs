//! f32 operands to bf16 (round to nearest even, as `optim::newton_schulz::round_bf16`), in
//! the tile layouts the AMX and AVX512-BF16 kernels read: conversion fused into packing,
//! edges padded with zeros so every kernel works on whole 32 x 32 blocks.

use rayon::prelude::*;

use crate::matmul::Strided;

/// Rows of a tile (and of a packed panel of the left operand).
pub const TILE_ROWS: usize = 16;
/// Columns of a tile of the result (and of a packed panel of the right operand).
pub const TILE_COLS: usize = 16;
/// The inner dimension one tile covers: 32 bf16 values, 64 bytes per tile row.
pub const TILE_K: usize = 32;
/// bf16 values in one packed tile (16 rows of 64 bytes: 1 KiB).
pub const TILE_LEN: usize = TILE_ROWS * TILE_K;
/// The result is computed in blocks of 2 x 2 tiles.
pub const BLOCK: usize = 32;

/// `x` as bf16 bits, rounded to nearest even; NaN stays a (quiet) NaN.
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

/// The f32 value of bf16 bits.
pub fn from_bf16(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// `n` rounded up to a multiple of `to`.
pub fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// The left operand [m x k] as panels of 16 rows, each a run of tiles along k; tile t of
/// panel p holds rows 16p.. and inner indices 32t.., 32 values per row.
pub fn pack_left((m, k): (usize, usize), a: &[f32], view: Strided) -> Vec<u16> {
    let tiles = round_up(k, TILE_K) / TILE_K;
    let panels = round_up(m, BLOCK) / TILE_ROWS;
    let mut packed = vec![0u16; panels * tiles * TILE_LEN];
    packed
        .par_chunks_mut(tiles * TILE_LEN)
        .enumerate()
        .for_each(|(p, panel)| {
            for r in 0..TILE_ROWS {
                let row = p * TILE_ROWS + r;
                if row >= m {
                    break;
                }
                let base = view.offset + row * view.row;
                for i in 0..k {
                    let (t, kk) = (i / TILE_K, i % TILE_K);
                    panel[(t * TILE_ROWS + r) * TILE_K + kk] = to_bf16(a[base + i * view.col]);
                }
            }
        });
    packed
}

/// The right operand [k x n] as panels of 16 columns, each a run of tiles along k in the
/// pair-interleaved ("VNNI") layout both kernels multiply: row j of tile t holds, for
/// each of the 16 columns c, the values at inner indices 32t + 2j and 32t + 2j + 1.
pub fn pack_right((k, n): (usize, usize), b: &[f32], view: Strided) -> Vec<u16> {
    let tiles = round_up(k, TILE_K) / TILE_K;
    let panels = round_up(n, BLOCK) / TILE_COLS;
    let mut packed = vec![0u16; panels * tiles * TILE_LEN];
    packed
        .par_chunks_mut(tiles * TILE_LEN)
        .enumerate()
        .for_each(|(q, panel)| {
            for i in 0..k {
                let (t, kk) = (i / TILE_K, i % TILE_K);
                let row = (t * TILE_ROWS + kk / 2) * TILE_K + (kk % 2);
                let base = view.offset + i * view.row;
                for c in 0..TILE_COLS {
                    let col = q * TILE_COLS + c;
                    if col >= n {
                        break;
                    }
                    panel[row + 2 * c] = to_bf16(b[base + col * view.col]);
                }
            }
        });
    packed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_rounds_to_nearest_even_like_the_reference() {
        for x in [
            0.0f32,
            -0.0,
            1.0,
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
            -2.71828,
            1e-40,
            3.4e38,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ] {
            let reference = crate::optim::newton_schulz::round_bf16(x);
            assert_eq!(from_bf16(to_bf16(x)).to_bits(), reference.to_bits(), "{x}");
        }
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        // A NaN whose payload lies only in the low bits must not become infinity.
        assert!(from_bf16(to_bf16(f32::from_bits(0x7F80_0001))).is_nan());
    }

    #[test]
    fn packing_places_every_value_and_pads_with_zeros() {
        let (m, k, n) = (18, 35, 20);
        // Small integers, exact in bf16.
        let a: Vec<f32> = (0..m * k).map(|i| (i % 199) as f32).collect();
        let left = pack_left((m, k), &a, Strided::rows(0, k));
        let tiles = 2;
        assert_eq!(left.len(), 2 * tiles * TILE_LEN);
        let at = |p: usize, t: usize, r: usize, kk: usize| {
            from_bf16(left[((p * tiles + t) * TILE_ROWS + r) * TILE_K + kk])
        };
        assert_eq!(at(1, 1, 1, 2), a[17 * k + 34]);
        assert_eq!(at(1, 1, 2, 2), 0.0, "row 18 is padding");
        assert_eq!(at(1, 1, 1, 3), 0.0, "inner index 35 is padding");
        // The right operand read through a transposed view.
        let b: Vec<f32> = (0..k * n).map(|i| (i % 241) as f32).collect();
        let right = pack_right((k, n), &b, Strided::rows(0, k).t());
        let bt = |i: usize, c: usize| b[c * k + i];
        let at = |q: usize, t: usize, j: usize, c: usize, odd: usize| {
            from_bf16(right[((q * tiles + t) * TILE_ROWS + j) * TILE_K + 2 * c + odd])
        };
        assert_eq!(at(1, 1, 1, 3, 0), bt(34, 19));
        assert_eq!(at(1, 1, 0, 3, 1), bt(33, 19));
        assert_eq!(at(1, 1, 1, 4, 0), 0.0, "column 20 is padding");
    }
}

//! The bf16 format (round to nearest even, as `optim::newton_schulz::round_bf16`), the
//! geometry of the tiles every kernel works on, and whether this CPU has the AVX512
//! bf16 instructions that convert and multiply 16 values at a time.

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
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

/// The f32 value of bf16 bits.
#[inline]
pub fn from_bf16(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// `n` rounded up to a multiple of `to`.
pub fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Whether this CPU has AVX512F and AVX512-BF16 (`VCVTNEPS2BF16`, `VDPBF16PS`).
pub fn avx512_bf16() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bf16")
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
            -2.718_5,
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
}

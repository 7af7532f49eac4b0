//! A vectorisable `exp` for softmax and cross-entropy: Cephes' single-precision
//! polynomial (relative error about 1e-7 over the range softmax uses), in arithmetic the
//! compiler vectorises (`vector::softmax` runs it over slices). libm's `expf` is scalar:
//! in a quickstart step it cost as much as the attention products.

/// e^x for x <= 0 down to about -87 (softmax arguments are shifted to be <= 0); below
/// that the result underflows towards 0 smoothly.
#[inline(always)]
pub(super) fn exp_one(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest by adding 1.5 * 2^23: n then sits in the low mantissa bits, which
    // also give 2^n by integer arithmetic. (`round` and float-to-int casts do not
    // vectorise.)
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + MAGIC;
    let n = shifted - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let exponent = shifted
        .to_bits()
        .wrapping_sub(MAGIC.to_bits())
        .wrapping_add(127);
    e * f32::from_bits(exponent << 23)
}

#[cfg(test)]
mod tests {
    use super::super::vector::exp_sum;

    #[test]
    fn matches_libm_to_a_few_ulps_and_sums() {
        let xs: Vec<f32> = (0..2000).map(|i| -80.0 + i as f32 * 0.04).collect();
        let mut ys = xs.clone();
        let sum = exp_sum(&mut ys, 0.0);
        let mut expected_sum = 0.0f64;
        for (x, y) in xs.iter().zip(&ys) {
            let e = f64::from(*x).exp();
            expected_sum += e;
            assert!(
                ((f64::from(*y) - e) / e).abs() < 3e-7,
                "exp({x}) = {y}, not {e}"
            );
        }
        assert!((f64::from(sum) - expected_sum).abs() / expected_sum < 1e-6);
        // The scalar function computes the same values bit for bit.
        let scalar: Vec<f32> = xs.iter().map(|&x| super::exp_one(x)).collect();
        assert_eq!(scalar, ys);
    }

    #[test]
    fn shift_and_extremes() {
        let mut xs = vec![3.0f32, 3.0 - 1000.0, 0.0];
        exp_sum(&mut xs, 3.0);
        assert_eq!(xs[0], 1.0);
        assert!(xs[1] >= 0.0 && xs[1] < 1e-37);
        assert!((xs[2] - (-3.0f32).exp()).abs() < 1e-7);
    }
}

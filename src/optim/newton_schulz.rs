//! Newton-Schulz orthogonalisation, the heart of Muon: the CPU reference.
//!
//! X = G / (||G||_F * f + 1e-7) (f = 1 for NS5, 1.01 for Polar Express); if G is tall,
//! work on X^T; each step A = X X^T, B = bA + cA^2, X = aX + BX. The products run on all
//! threads (`crate::matmul`); with `Bf16` every product's operands are rounded to bfloat16
//! first, as a bf16 GPU kernel would see them.

use crate::matmul::{matmul_scaled, matmul_threaded, Strided};
use crate::spec::run_config::{MuonVariant, Precision};

/// The quintic of Keller Jordan's Muon, used at every step.
pub const NS5: (f32, f32, f32) = (3.4445, -4.7750, 2.0315);

/// "Polar Express" coefficients, one triple per step.
pub const POLAR_EXPRESS: [(f64, f64, f64); 5] = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
];

/// The (a, b, c) of each of `steps` iterations.
pub fn coefficients(variant: MuonVariant, steps: usize) -> Vec<(f32, f32, f32)> {
    match variant {
        MuonVariant::Ns5 => vec![NS5; steps],
        MuonVariant::PolarExpress => POLAR_EXPRESS[..steps.min(POLAR_EXPRESS.len())]
            .iter()
            .map(|&(a, b, c)| (a as f32, b as f32, c as f32))
            .collect(),
    }
}

/// Frobenius-norm divisor factor of each variant.
pub fn norm_factor(variant: MuonVariant) -> f32 {
    match variant {
        MuonVariant::Ns5 => 1.0,
        MuonVariant::PolarExpress => 1.01,
    }
}

/// Rounds to the nearest bfloat16 (ties to even), kept in an f32.
pub fn round_bf16(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) & 0xFFFF_0000;
    f32::from_bits(rounded)
}

fn round_all(m: &mut [f32], precision: Precision) {
    if precision == Precision::Bf16 {
        m.iter_mut().for_each(|v| *v = round_bf16(*v));
    }
}

/// [rows x cols] row-major to [cols x rows].
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = m[r * cols + c];
        }
    }
    out
}

/// The orthogonalised [rows x cols] matrix `g` (row-major).
pub fn orthogonalize(
    g: &[f32],
    rows: usize,
    cols: usize,
    variant: MuonVariant,
    steps: usize,
    precision: Precision,
) -> Vec<f32> {
    let norm = g
        .iter()
        .map(|v| f64::from(*v) * f64::from(*v))
        .sum::<f64>()
        .sqrt() as f32;
    let scale = 1.0 / (norm * norm_factor(variant) + 1e-7);
    // Work on the wide orientation: X is [r x c] with r <= c, its Gram matrix [r x r].
    // A tall matrix is read and written in its own layout through transposed views (no
    // copies): X = G^T.
    let tall = rows > cols;
    let (r, c) = if tall { (cols, rows) } else { (rows, cols) };
    let mut x: Vec<f32> = g.iter().map(|v| v * scale).collect();
    let wide = if tall {
        Strided::rows(0, cols).t()
    } else {
        Strided::rows(0, c)
    };
    let square = Strided::rows(0, r);
    let mut gram = vec![0.0f32; r * r];
    let mut poly = vec![0.0f32; r * r];
    let mut next = vec![0.0f32; r * c];
    for (a, b, coef_c) in coefficients(variant, steps) {
        round_all(&mut x, precision);
        // A = X X^T
        matmul_threaded(
            (r, c, r),
            (&mut gram, square, false),
            (&x, wide),
            (&x, wide.t()),
        );
        round_all(&mut gram, precision);
        // B = b A + c A A
        poly.iter_mut().zip(&gram).for_each(|(p, g)| *p = b * g);
        matmul_scaled(
            (r, r, r),
            (&mut poly, square, true),
            (&gram, square),
            (&gram, square),
            coef_c,
        );
        round_all(&mut poly, precision);
        // X = a X + B X
        next.iter_mut().zip(&x).for_each(|(n, x)| *n = a * x);
        matmul_threaded(
            (r, r, c),
            (&mut next, wide, true),
            (&poly, square),
            (&x, wide),
        );
        std::mem::swap(&mut x, &mut next);
    }
    x
}

#[cfg(test)]
mod tests {
    use dfdx::prelude::*;

    use super::*;

    type Mat = Tensor<(usize, usize), f32, Cpu>;

    /// Singular values of a [rows x cols] matrix (via the eigenvalues of the Gram matrix,
    /// by Jacobi rotations in f64: plenty for the small test matrices).
    pub(crate) fn singular_values(m: &[f32], rows: usize, cols: usize) -> Vec<f64> {
        let n = rows.min(cols);
        let (outer, inner) = if rows <= cols {
            (rows, cols)
        } else {
            (cols, rows)
        };
        let at = |i: usize, k: usize| -> f64 {
            if rows <= cols {
                f64::from(m[i * cols + k])
            } else {
                f64::from(m[k * cols + i])
            }
        };
        let mut a = vec![0.0f64; n * n];
        for i in 0..outer {
            for j in 0..outer {
                a[i * n + j] = (0..inner).map(|k| at(i, k) * at(j, k)).sum();
            }
        }
        for _ in 0..100 {
            for p in 0..n {
                for q in p + 1..n {
                    let apq = a[p * n + q];
                    if apq.abs() < 1e-15 {
                        continue;
                    }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                    let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                    for k in 0..n {
                        let (akp, akq) = (a[k * n + p], a[k * n + q]);
                        a[k * n + p] = c * akp - s * akq;
                        a[k * n + q] = s * akp + c * akq;
                    }
                    for k in 0..n {
                        let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                        a[p * n + k] = c * apk - s * aqk;
                        a[q * n + k] = s * apk + c * aqk;
                    }
                }
            }
        }
        (0..n).map(|i| a[i * n + i].max(0.0).sqrt()).collect()
    }

    fn random(dev: &Cpu, rows: usize, cols: usize) -> Vec<f32> {
        let t: Mat = dev.sample_normal_like(&(rows, cols));
        t.as_vec()
    }

    #[test]
    fn ns5_puts_singular_values_in_its_band_for_wide_tall_and_square() {
        let dev = Cpu::seed_from_u64(0);
        for (rows, cols) in [(16, 48), (48, 16), (32, 32)] {
            let g = random(&dev, rows, cols);
            let o = orthogonalize(&g, rows, cols, MuonVariant::Ns5, 5, Precision::F32);
            let s = singular_values(&o, rows, cols);
            let (min, max) = s
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            // NS5's quintic does not converge to 1; after 5 steps it lands in about [0.7, 1.2].
            assert!(
                min > 0.5 && max < 1.5,
                "{rows}x{cols}: singular values in [{min}, {max}]"
            );
        }
    }

    #[test]
    fn a_tall_matrix_gives_the_transpose_of_its_transposes_result() {
        let dev = Cpu::seed_from_u64(3);
        let (rows, cols) = (40, 12);
        let g = random(&dev, rows, cols);
        let tall = orthogonalize(&g, rows, cols, MuonVariant::PolarExpress, 5, Precision::F32);
        let wide = orthogonalize(
            &transpose(&g, rows, cols),
            cols,
            rows,
            MuonVariant::PolarExpress,
            5,
            Precision::F32,
        );
        let back = transpose(&wide, cols, rows);
        for (i, (t, w)) in tall.iter().zip(&back).enumerate() {
            assert!((t - w).abs() < 1e-5, "[{i}]: {t} vs {w}");
        }
    }

    #[test]
    fn polar_express_lands_close_to_one() {
        let dev = Cpu::seed_from_u64(1);
        let g = random(&dev, 24, 64);
        let o = orthogonalize(&g, 24, 64, MuonVariant::PolarExpress, 5, Precision::F32);
        let s = singular_values(&o, 24, 64);
        let (min, max) = s
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!(min > 0.8 && max < 1.2, "[{min}, {max}]");
    }

    #[test]
    fn output_is_invariant_to_gradient_scale() {
        let dev = Cpu::seed_from_u64(2);
        let g = random(&dev, 20, 30);
        let big: Vec<f32> = g.iter().map(|v| v * 1000.0).collect();
        let a = orthogonalize(&g, 20, 30, MuonVariant::Ns5, 5, Precision::F32);
        let b = orthogonalize(&big, 20, 30, MuonVariant::Ns5, 5, Precision::F32);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }

    #[test]
    fn bf16_rounding_is_to_nearest_and_close_to_f32() {
        assert_eq!(round_bf16(1.0), 1.0);
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0); // a tie rounds to even
        assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
        let dev = Cpu::seed_from_u64(3);
        let g = random(&dev, 16, 32);
        let a = orthogonalize(&g, 16, 32, MuonVariant::PolarExpress, 5, Precision::F32);
        let b = orthogonalize(&g, 16, 32, MuonVariant::PolarExpress, 5, Precision::Bf16);
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 0.05, "{diff}");
    }
}

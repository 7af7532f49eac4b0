//! The GEMMs of one Newton-Schulz step as cuBLAS sees them (column-major), kept apart
//! from the CUDA code so that their layout is tested on every machine: a host GEMM with
//! cuBLAS's semantics replays the GPU's sequence against the CPU reference.
//!
//! A row-major [r x c] matrix X is, to cuBLAS, the column-major [c x r] matrix X^T.

/// C = alpha op(A) op(B) + beta C, column-major, as `cublasSgemm` / `cublasGemmEx`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmCall {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub lda: usize,
    pub ldb: usize,
    pub beta: f32,
    pub ldc: usize,
}

/// The three products of a step with coefficients (a, b, c) on row-major X [r x c]
/// (r <= c): A = X X^T; B = c A A + b B (B holding a copy of A); Y = B X + a Y (Y holding
/// a copy of X).
pub fn newton_schulz_calls(r: usize, c: usize, (a, b, cc): (f32, f32, f32)) -> [GemmCall; 3] {
    [
        // A = (X^T)^T (X^T): column-major X^T is [c x r] with leading dimension c.
        GemmCall {
            trans_a: true,
            trans_b: false,
            m: r,
            n: r,
            k: c,
            alpha: 1.0,
            lda: c,
            ldb: c,
            beta: 0.0,
            ldc: r,
        },
        // B = c A A + b B; A is symmetric, so its layout does not matter.
        GemmCall {
            trans_a: false,
            trans_b: false,
            m: r,
            n: r,
            k: r,
            alpha: cc,
            lda: r,
            ldb: r,
            beta: b,
            ldc: r,
        },
        // Row-major Y = B X + a Y is column-major Y^T = X^T B^T + a Y^T = X^T B + a Y^T.
        GemmCall {
            trans_a: false,
            trans_b: false,
            m: c,
            n: r,
            k: r,
            alpha: 1.0,
            lda: c,
            ldb: r,
            beta: a,
            ldc: c,
        },
    ]
}

/// The GEMM on the host, with cuBLAS's column-major semantics (the test oracle).
pub fn gemm_host(call: &GemmCall, a: &[f32], b: &[f32], c: &mut [f32]) {
    let at = |i: usize, l: usize| {
        if call.trans_a {
            a[l + i * call.lda]
        } else {
            a[i + l * call.lda]
        }
    };
    let bt = |l: usize, j: usize| {
        if call.trans_b {
            b[j + l * call.ldb]
        } else {
            b[l + j * call.ldb]
        }
    };
    for j in 0..call.n {
        for i in 0..call.m {
            let sum: f32 = (0..call.k).map(|l| at(i, l) * bt(l, j)).sum();
            let out = &mut c[i + j * call.ldc];
            *out = call.alpha * sum + call.beta * *out;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::optim::newton_schulz::{coefficients, norm_factor, orthogonalize, transpose};
    use crate::spec::run_config::{MuonVariant, Precision};

    /// The GPU's sequence (cuda_muon::matrix_update, f32) replayed on the host.
    fn replay(g: &[f32], rows: usize, cols: usize, variant: MuonVariant, steps: usize) -> Vec<f32> {
        let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt();
        let scaled: Vec<f32> = g
            .iter()
            .map(|v| v / (norm * norm_factor(variant) + 1e-7))
            .collect();
        let tall = rows > cols;
        let (r, c) = if tall { (cols, rows) } else { (rows, cols) };
        let mut x = if tall {
            transpose(&scaled, rows, cols)
        } else {
            scaled
        };
        let mut a_buf = vec![0.0; r * r];
        for coefficients in coefficients(variant, steps) {
            let [gram, poly, next] = newton_schulz_calls(r, c, coefficients);
            gemm_host(&gram, &x, &x, &mut a_buf);
            let mut b_buf = a_buf.clone();
            gemm_host(&poly, &a_buf, &a_buf, &mut b_buf);
            let mut y = x.clone();
            gemm_host(&next, &x, &b_buf, &mut y);
            x = y;
        }
        if tall {
            transpose(&x, r, c)
        } else {
            x
        }
    }

    #[test]
    fn the_gpu_gemm_sequence_equals_the_cpu_reference_on_wide_and_tall_matrices() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for (rows, cols) in [(12, 20), (20, 12), (16, 16), (48, 16)] {
            let g: Vec<f32> = (0..rows * cols).map(|_| rng.gen_range(-1.0..1.0)).collect();
            for variant in [MuonVariant::Ns5, MuonVariant::PolarExpress] {
                let expected = orthogonalize(&g, rows, cols, variant, 5, Precision::F32);
                let got = replay(&g, rows, cols, variant, 5);
                let worst = got
                    .iter()
                    .zip(&expected)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    worst < 1e-4,
                    "{rows} x {cols} {variant:?}: max difference {worst}"
                );
            }
        }
    }

    #[test]
    fn the_host_gemm_follows_column_major_conventions() {
        // A = [[1, 2], [3, 4]] column-major is [1, 3, 2, 4]; A^T A = [[10, 14], [14, 20]].
        let a = [1.0, 3.0, 2.0, 4.0];
        let mut c = [0.0; 4];
        let call = GemmCall {
            trans_a: true,
            trans_b: false,
            m: 2,
            n: 2,
            k: 2,
            alpha: 1.0,
            lda: 2,
            ldb: 2,
            beta: 0.0,
            ldc: 2,
        };
        gemm_host(&call, &a, &a, &mut c);
        assert_eq!(c, [10.0, 14.0, 14.0, 20.0]);
    }
}

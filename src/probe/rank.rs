//! Rank metrics of a captured [n x d] activation matrix K.
//!
//! The d x d Gram matrix G = K^T K is accumulated first (cheap, and on the run's device in
//! the training loop); the host finishes in f64 with a symmetric eigensolve (nalgebra):
//! s_i = sqrt(max(lambda_i, 0)) are K's singular values.

use nalgebra::{DMatrix, SymmetricEigen};

use crate::spec::run_config::ProbeMetric;

/// What the metrics need from one [n x d] matrix.
#[derive(Debug, Clone)]
pub struct Spectrum {
    /// Singular values, largest first.
    pub singular_values: Vec<f64>,
    /// tr(C) and tr(C^2) of the centred covariance C = K_c^T K_c / n.
    pub cov_trace: f64,
    pub cov_trace_sq: f64,
}

impl Spectrum {
    /// From the uncentred Gram matrix `gram` (d x d, row-major), the column sums of K
    /// and the row count n.
    pub fn from_gram(gram: &[f64], column_sums: &[f64], n: usize) -> Self {
        let d = column_sums.len();
        let g = DMatrix::from_row_slice(d, d, gram);
        let mut singular_values: Vec<f64> = SymmetricEigen::new(g.clone())
            .eigenvalues
            .iter()
            .map(|&l| l.max(0.0).sqrt())
            .collect();
        singular_values.sort_by(|a, b| b.total_cmp(a));
        // C = G / n - mu mu^T, mu = column means.
        let nf = n as f64;
        let mean: Vec<f64> = column_sums.iter().map(|s| s / nf).collect();
        let mut cov_trace = 0.0;
        let mut cov_trace_sq = 0.0;
        for i in 0..d {
            for j in 0..d {
                let c = g[(i, j)] / nf - mean[i] * mean[j];
                cov_trace_sq += c * c;
                if i == j {
                    cov_trace += c;
                }
            }
        }
        Spectrum {
            singular_values,
            cov_trace,
            cov_trace_sq,
        }
    }

    /// From the rows of K directly (row-major [n x d]).
    pub fn from_rows(k: &[f32], n: usize, d: usize) -> Self {
        let mut gram = vec![0.0f64; d * d];
        let mut sums = vec![0.0f64; d];
        for row in k.chunks_exact(d).take(n) {
            for i in 0..d {
                let ri = f64::from(row[i]);
                sums[i] += ri;
                for j in 0..d {
                    gram[i * d + j] += ri * f64::from(row[j]);
                }
            }
        }
        Spectrum::from_gram(&gram, &sums, n)
    }

    pub fn metric(&self, metric: ProbeMetric) -> f64 {
        let s = &self.singular_values;
        let sum: f64 = s.iter().sum();
        let sum_sq: f64 = s.iter().map(|v| v * v).sum();
        let max = s.first().copied().unwrap_or(0.0);
        match metric {
            ProbeMetric::StudyPr => sum * sum / sum_sq,
            ProbeMetric::CovariancePr => self.cov_trace * self.cov_trace / self.cov_trace_sq,
            ProbeMetric::EntropyRank => {
                let entropy: f64 = s
                    .iter()
                    .filter(|&&v| v > 0.0)
                    .map(|v| {
                        let q = v / sum;
                        -q * q.ln()
                    })
                    .sum();
                entropy.exp()
            }
            ProbeMetric::StableRank => sum_sq / (max * max),
            ProbeMetric::R90 => {
                let mut acc = 0.0;
                s.iter()
                    .position(|v| {
                        acc += v * v;
                        acc >= 0.9 * sum_sq
                    })
                    .map_or(s.len() as f64, |i| (i + 1) as f64)
            }
            ProbeMetric::ConditionNumber => {
                let min = s.last().copied().unwrap_or(0.0);
                if min < max * resolvable_ratio(s.len()) {
                    f64::INFINITY
                } else {
                    max / min
                }
            }
            other => unreachable!("{other:?} is not a rank metric"),
        }
    }
}

/// The smallest s_min / s_max that activations of `d` columns can resolve. They are f32:
/// each element carries a relative error of up to f32's epsilon (more after a forward
/// pass), which moves every singular value by up to ||dK||_2 <= ||dK||_F <= eps sqrt(d)
/// s_max (Weyl). Below this ratio s_min is rounding noise, so the condition number is
/// recorded as infinite: the largest finite value is 1 / ratio (about 1.05e6 for
/// head_dim 64, 7.4e5 for 128).
pub fn resolvable_ratio(d: usize) -> f64 {
    f64::from(f32::EPSILON) * (d as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn gaussian(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect()
    }

    #[test]
    fn hand_computed_3x2_example() {
        // K = [[1, 0], [0, 2], [0, 0]]: singular values 2 and 1.
        let k = [1.0, 0.0, 0.0, 2.0, 0.0, 0.0];
        let s = Spectrum::from_rows(&k, 3, 2);
        assert!(
            (s.singular_values[0] - 2.0).abs() < 1e-12
                && (s.singular_values[1] - 1.0).abs() < 1e-12
        );
        assert!((s.metric(ProbeMetric::StudyPr) - 9.0 / 5.0).abs() < 1e-9);
        assert!((s.metric(ProbeMetric::StableRank) - 5.0 / 4.0).abs() < 1e-9);
        assert!((s.metric(ProbeMetric::ConditionNumber) - 2.0).abs() < 1e-9);
        assert_eq!(s.metric(ProbeMetric::R90), 2.0); // 4/5 < 0.9
        let (q1, q2) = (2.0f64 / 3.0, 1.0f64 / 3.0);
        assert!(
            (s.metric(ProbeMetric::EntropyRank) - (-(q1 * q1.ln()) - q2 * q2.ln()).exp()).abs()
                < 1e-9
        );
        // Centred: columns (1,0,0) and (0,2,0): means 1/3, 2/3; C = [[2/9, -2/9], [-2/9, 8/9]].
        let (c11, c12, c22) = (2.0 / 9.0, -2.0 / 9.0, 8.0 / 9.0);
        let expected = (c11 + c22) * (c11 + c22) / (c11 * c11 + 2.0 * c12 * c12 + c22 * c22);
        assert!((s.metric(ProbeMetric::CovariancePr) - expected).abs() < 1e-9);
    }

    #[test]
    fn isotropic_gaussian_has_pr_close_to_d() {
        let (n, d) = (8192, 64);
        let s = Spectrum::from_rows(&gaussian(n, d, 1), n, d);
        let pr = s.metric(ProbeMetric::StudyPr);
        assert!(pr > 0.95 * d as f64 && pr <= d as f64, "{pr}");
        assert!(s.metric(ProbeMetric::CovariancePr) > 0.9 * d as f64);
    }

    #[test]
    fn rank_k_data_has_pr_at_most_k() {
        let (n, d, k) = (2048, 64, 5);
        let a = gaussian(n, k, 2);
        let b = gaussian(k, d, 3);
        let mut m = vec![0.0f32; n * d];
        for i in 0..n {
            for j in 0..d {
                m[i * d + j] = (0..k).map(|t| a[i * k + t] * b[t * d + j]).sum();
            }
        }
        let s = Spectrum::from_rows(&m, n, d);
        assert!(s.metric(ProbeMetric::StudyPr) <= k as f64 + 1e-6);
        assert!(s.metric(ProbeMetric::R90) <= k as f64);
        assert!(
            s.metric(ProbeMetric::ConditionNumber) > 1e3,
            "rank deficient"
        );
    }

    #[test]
    fn study_pr_and_covariance_pr_differ_on_a_skewed_offset_spectrum() {
        // A large shared offset (mean) dominates the uncentred spectrum but not the
        // centred covariance.
        let (n, d) = (4096, 16);
        let mut k = gaussian(n, d, 4);
        for row in k.chunks_exact_mut(d) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = *v * (1.0 + j as f32) / 4.0 + 10.0;
            }
        }
        let s = Spectrum::from_rows(&k, n, d);
        let (study, cov) = (
            s.metric(ProbeMetric::StudyPr),
            s.metric(ProbeMetric::CovariancePr),
        );
        // Centred variances grow like j^2: their PR is (sum j^2)^2 / sum j^4 = 9.18.
        assert!((cov - 9.18).abs() < 0.5, "{cov}");
        assert!(
            study < cov / 2.0,
            "the mean direction dominates the uncentred PR: {study}"
        );
    }

    #[test]
    fn a_condition_number_beyond_float32_precision_is_infinite() {
        // Orthogonal columns scaled 1, 1e-2 and `small`: condition number 1 / small.
        let (n, d) = (512, 3);
        let q = gaussian(n, d, 5);
        let k_with = |small: f32| -> Vec<f32> {
            // Orthonormalise the three Gaussian columns (Gram-Schmidt), then scale them.
            let mut cols: Vec<Vec<f64>> = (0..d)
                .map(|j| (0..n).map(|i| f64::from(q[i * d + j])).collect())
                .collect();
            for j in 0..d {
                for p in 0..j {
                    let dot: f64 = (0..n).map(|i| cols[j][i] * cols[p][i]).sum();
                    let prev = cols[p].clone();
                    cols[j]
                        .iter_mut()
                        .zip(prev)
                        .for_each(|(c, v)| *c -= dot * v);
                }
                let norm = cols[j].iter().map(|v| v * v).sum::<f64>().sqrt();
                cols[j].iter_mut().for_each(|c| *c /= norm);
            }
            let scales = [1.0, 1e-2, f64::from(small)];
            (0..n * d)
                .map(|x| (cols[x % d][x / d] * scales[x % d]) as f32)
                .collect()
        };
        let limit = 1.0 / resolvable_ratio(d);
        assert!((limit - 4.85e6).abs() < 1e4, "{limit}");
        // 1e4 is resolvable and comes out right (to the f32 rounding of the data);
        // 1e9 is far below float32 noise.
        let resolved =
            Spectrum::from_rows(&k_with(1e-4), n, d).metric(ProbeMetric::ConditionNumber);
        assert!((resolved / 1e4 - 1.0).abs() < 1e-2, "{resolved}");
        let noise = Spectrum::from_rows(&k_with(1e-9), n, d).metric(ProbeMetric::ConditionNumber);
        assert_eq!(noise, f64::INFINITY);
        // Exactly rank-deficient data too.
        let mut flat = k_with(1.0);
        flat.chunks_exact_mut(d).for_each(|row| row[2] = 0.0);
        let deficient = Spectrum::from_rows(&flat, n, d).metric(ProbeMetric::ConditionNumber);
        assert_eq!(deficient, f64::INFINITY);
    }
}

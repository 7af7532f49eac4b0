//! Weight-space probes: whether the keys' collapse is in the weights or only in the
//! activations. Per head: the singular values of W_K's block [head_dim x d_model] and of
//! the bilinear form B = A^T C that attention applies to a query's and a key's inputs,
//! A = diag(g_q) W_Q^h, C = diag(g_k) W_K^(h / group) (QK-norm gains folded in where they
//! are learned; the norms' per-token scalars do not change B's directions). Per layer: the
//! learned gains' mean, min and max.
//!
//! B is [d_model x d_model] of rank <= head_dim; its nonzero squared singular values are
//! the eigenvalues of G_a^(1/2) G_c G_a^(1/2) with G_a = A A^T, G_c = C C^T, both
//! [head_dim x head_dim]: no d_model-sized decomposition is needed.

use nalgebra::{DMatrix, SymmetricEigen};

use crate::spec::run_config::ProbeMetric;

use super::rank::Spectrum;
use super::{ProbePoint, ProbeRow};

/// The site names of the weight probes in probes.parquet.
pub const W_K_SITE: &str = "w_k";
pub const W_QK_SITE: &str = "w_qk";
pub const QK_GAIN_SITE: &str = "qk_gain";

/// The metrics of each weight spectrum.
const METRICS: [ProbeMetric; 2] = [ProbeMetric::StudyPr, ProbeMetric::StableRank];

/// One layer's attention weights, row-major as the model holds them.
pub struct LayerWeights<'a> {
    pub layer: usize,
    /// [heads x head_dim, d_model].
    pub wq: &'a [f32],
    /// [kv_heads x head_dim, d_model].
    pub wk: &'a [f32],
    /// Learned QK-norm gains [head_dim], shared by the heads; None when not learned.
    pub gains: Option<(&'a [f32], &'a [f32])>,
}

/// Heads, key/value heads, head_dim, d_model.
pub type HeadShape = (usize, usize, usize, usize);

/// The rows of `head`'s block of `w` ([rows x d]), each scaled by `gain` if given, f64.
fn block(w: &[f32], head: usize, hd: usize, d: usize, gain: Option<&[f32]>) -> DMatrix<f64> {
    DMatrix::from_fn(hd, d, |r, c| {
        let scale = gain.map_or(1.0, |g| f64::from(g[r]));
        scale * f64::from(w[(head * hd + r) * d + c])
    })
}

/// Singular values (largest first) from the eigenvalues of a Gram-like matrix.
fn from_squares(matrix: DMatrix<f64>) -> Spectrum {
    let mut singular_values: Vec<f64> = SymmetricEigen::new(matrix)
        .eigenvalues
        .iter()
        .map(|&l| l.max(0.0).sqrt())
        .collect();
    singular_values.sort_by(|a, b| b.total_cmp(a));
    Spectrum {
        singular_values,
        cov_trace: f64::NAN,
        cov_trace_sq: f64::NAN,
    }
}

/// The singular values of A^T C for A, C of [hd x d].
pub fn bilinear_spectrum(a: &DMatrix<f64>, c: &DMatrix<f64>) -> Spectrum {
    let g_a = a * a.transpose();
    let g_c = c * c.transpose();
    let eigen = SymmetricEigen::new(g_a);
    let sqrt = DMatrix::from_diagonal(&eigen.eigenvalues.map(|l| l.max(0.0).sqrt()));
    let root = &eigen.eigenvectors * sqrt * eigen.eigenvectors.transpose();
    let s = &root * g_c * &root;
    // Symmetric up to rounding; symmetrise before the eigensolve.
    from_squares((&s + s.transpose()) * 0.5)
}

/// The weight probes of one layer at `at`.
pub fn layer_rows(weights: &LayerWeights, shape: HeadShape, at: ProbePoint) -> Vec<ProbeRow> {
    let (heads, kv_heads, hd, d) = shape;
    let group = heads / kv_heads.max(1);
    let row = |head: Option<usize>, site, metric, value| ProbeRow {
        step: at.step,
        tokens: at.tokens,
        layer: Some(weights.layer as u32),
        head: head.map(|h| h as u32),
        site,
        metric,
        value,
    };
    let mut out = Vec::new();
    let (q_gain, k_gain) = weights.gains.unzip();
    for kv in 0..kv_heads {
        let k = block(weights.wk, kv, hd, d, None);
        let spectrum = from_squares(&k * k.transpose());
        for metric in METRICS {
            out.push(row(
                Some(kv),
                W_K_SITE,
                metric.name(),
                spectrum.metric(metric),
            ));
        }
    }
    for head in 0..heads {
        let a = block(weights.wq, head, hd, d, q_gain);
        let c = block(weights.wk, head / group, hd, d, k_gain);
        let spectrum = bilinear_spectrum(&a, &c);
        for metric in METRICS {
            out.push(row(
                Some(head),
                W_QK_SITE,
                metric.name(),
                spectrum.metric(metric),
            ));
        }
    }
    if let Some((q, k)) = weights.gains {
        let names = [
            ["q_gain_mean", "q_gain_min", "q_gain_max"],
            ["k_gain_mean", "k_gain_min", "k_gain_max"],
        ];
        for (gain, [mean_name, min_name, max_name]) in [q, k].into_iter().zip(names) {
            let mean = gain.iter().map(|&g| f64::from(g)).sum::<f64>() / gain.len() as f64;
            let min = gain.iter().fold(f32::INFINITY, |m, &g| m.min(g));
            let max = gain.iter().fold(f32::NEG_INFINITY, |m, &g| m.max(g));
            out.push(row(None, QK_GAIN_SITE, mean_name, mean));
            out.push(row(None, QK_GAIN_SITE, min_name, f64::from(min)));
            out.push(row(None, QK_GAIN_SITE, max_name, f64::from(max)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random matrix.
    fn matrix(rows: usize, cols: usize, seed: u64) -> DMatrix<f64> {
        let mut state = seed;
        DMatrix::from_fn(rows, cols, |_, _| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        })
    }

    #[test]
    fn the_bilinear_spectrum_is_the_svd_of_the_full_product() {
        let (a, c) = (matrix(3, 7, 1), matrix(3, 7, 2));
        let ours = bilinear_spectrum(&a, &c).singular_values;
        let mut direct: Vec<f64> = (a.transpose() * &c)
            .svd(false, false)
            .singular_values
            .iter()
            .copied()
            .collect();
        direct.sort_by(|x, y| y.total_cmp(x));
        for i in 0..3 {
            assert!(
                (ours[i] - direct[i]).abs() < 1e-12 * direct[0],
                "{ours:?} {direct:?}"
            );
        }
        assert!(direct[3] < 1e-12, "rank at most head_dim");
    }

    #[test]
    fn rows_cover_every_head_and_fold_the_gains_in() {
        // 2 query heads over 1 key/value head of dim 2, d_model 3.
        let wq = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let wk = [1.0, 0.0, 0.0, 0.0, 2.0, 0.0];
        let (qg, kg) = ([1.0f32, 0.5], [2.0f32, 1.0]);
        let weights = LayerWeights {
            layer: 1,
            wq: &wq,
            wk: &wk,
            gains: Some((&qg, &kg)),
        };
        let at = ProbePoint {
            step: 3,
            tokens: 30,
            seq: 4,
        };
        let rows = layer_rows(&weights, (2, 1, 2, 3), at);
        let find = |site: &str, head: Option<u32>, metric: &str| {
            rows.iter()
                .find(|r| r.site == site && r.head == head && r.metric == metric)
                .unwrap()
                .value
        };
        // W_K = diag(1, 2) padded: singular values (2, 1): PR 9/5, stable rank 5/4.
        assert!((find(W_K_SITE, Some(0), "study_pr") - 1.8).abs() < 1e-12);
        assert!((find(W_K_SITE, Some(0), "stable_rank") - 1.25).abs() < 1e-12);
        // Head 0: A = diag(1, 0.5) [e1; e2], C = diag(2, 1) [e1; 2 e2]: A^T C has
        // singular values 2 and 1 (e1 e1^T * 2, e2 e2^T * 0.5 * 2): PR 9/5.
        assert!((find(W_QK_SITE, Some(0), "study_pr") - 1.8).abs() < 1e-12);
        // Head 1: A rows e3 and 0.5 e1; A^T C = 2 e3 e1^T + e1 e2^T: singular values 2, 1.
        assert!((find(W_QK_SITE, Some(1), "stable_rank") - 1.25).abs() < 1e-12);
        assert_eq!(find(QK_GAIN_SITE, None, "q_gain_mean"), 0.75);
        assert_eq!(find(QK_GAIN_SITE, None, "k_gain_max"), 2.0);
        assert_eq!(rows.len(), 2 + 4 + 6);
    }
}

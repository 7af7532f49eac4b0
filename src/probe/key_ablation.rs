//! A causal rank probe: does the model use the key directions a participation ratio
//! counts? Per layer, the keys at the probe site are projected, per KV head, onto their
//! top-r principal directions (uncentred, as `study_pr`: the eigenvectors of K_h^T K_h
//! over the probe's rows) and the validation loss is measured again; the probe records
//! the increase over the unablated loss, for each listed r and for r = the layer's
//! rounded `study_pr`.

use std::sync::OnceLock;

use nalgebra::{DMatrix, SymmetricEigen};

use crate::model::Capture;
use crate::spec::check::MAX_ABLATION_RANK;
use crate::spec::run_config::ProbeMetric;

use super::head_rows;
use super::rank::Spectrum;

/// `loss_increase_r<r>`: the loss increase with the keys projected onto r directions
/// (r <= `MAX_ABLATION_RANK`, as validated).
pub fn rank_metric(r: usize) -> &'static str {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..=MAX_ABLATION_RANK)
            .map(|r| format!("loss_increase_r{r}"))
            .collect()
    });
    &names[r]
}

/// The loss increase with the keys projected onto the layer's rounded `study_pr`
/// directions, and that rank.
pub const AT_PR_METRIC: &str = "loss_increase_at_pr";
pub const RANK_AT_PR_METRIC: &str = "ablation_rank_at_pr";

/// Per KV head of `capture`, the [head_dim x head_dim] projection onto the top `r`
/// eigenvectors of its Gram matrix over the first `rows` rows.
pub fn projections(capture: &Capture, rows: usize, r: usize) -> Vec<Vec<f32>> {
    let d = capture.head_dim;
    (0..capture.heads)
        .map(|head| {
            let values = head_rows(capture, head, rows);
            let k = DMatrix::from_fn(rows, d, |i, j| f64::from(values[i * d + j]));
            let eigen = SymmetricEigen::new(k.transpose() * k);
            let mut order: Vec<usize> = (0..d).collect();
            order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
            let top = DMatrix::from_fn(d, r.min(d), |i, c| eigen.eigenvectors[(i, order[c])]);
            let projection = &top * top.transpose();
            projection.iter().map(|&v| v as f32).collect()
        })
        .collect()
}

/// The layer's `study_pr` (mean over its KV heads) rounded, within 1..=head_dim.
pub fn rank_at_pr(capture: &Capture, rows: usize) -> usize {
    let d = capture.head_dim;
    let pr: f64 = (0..capture.heads)
        .map(|head| {
            let values = head_rows(capture, head, rows);
            Spectrum::from_rows(&values, rows, d).metric(ProbeMetric::StudyPr)
        })
        .sum::<f64>()
        / capture.heads as f64;
    (pr.round() as usize).clamp(1, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::run_config::{Site, Stage, Tensor};

    fn capture() -> Capture {
        // 1 head of dim 3; rows spread mostly along e1, some along e2, none along e3.
        let rows: [[f32; 3]; 4] = [
            [3.0, 1.0, 0.0],
            [-3.0, 1.0, 0.0],
            [3.0, -1.0, 0.0],
            [-3.0, -1.0, 0.0],
        ];
        Capture {
            layer: 0,
            site: Site {
                tensor: Tensor::K,
                after: Stage::Rope,
            },
            rows: 4,
            heads: 1,
            head_dim: 3,
            values: rows.concat(),
        }
    }

    #[test]
    fn projections_keep_the_top_directions() {
        let p1 = &projections(&capture(), 4, 1)[0];
        let expected_1 = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!(
            p1.iter().zip(expected_1).all(|(a, b)| (a - b).abs() < 1e-6),
            "{p1:?}"
        );
        let p2 = &projections(&capture(), 4, 2)[0];
        let expected_2 = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        assert!(
            p2.iter().zip(expected_2).all(|(a, b)| (a - b).abs() < 1e-6),
            "{p2:?}"
        );
        // Singular values 6 and 2: PR (8)^2 / 40 = 1.6, rounded 2.
        assert_eq!(rank_at_pr(&capture(), 4), 2);
        assert_eq!(rank_metric(16), "loss_increase_r16");
    }
}

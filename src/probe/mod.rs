//! Rank probes: metrics of the attention activations captured at probe points.

pub mod rank;

use crate::model::Capture;
use crate::spec::run_config::{RankMetric, Site, Stage, Tensor};

use rank::{metric_name, Spectrum};

/// One probe observation, in tidy form.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRow {
    pub step: u64,
    pub tokens: u64,
    pub layer: u32,
    /// Head index within the captured tensor (a KV head for K and V).
    pub head: u32,
    /// `k_rope`, `q_qknorm`, `v_projection`, ...
    pub site: &'static str,
    pub metric: &'static str,
    pub value: f64,
}

/// The name of a site in probes.parquet: tensor and stage.
pub fn site_name(site: Site) -> &'static str {
    match (site.tensor, site.after) {
        (Tensor::Q, Stage::Projection) => "q_projection",
        (Tensor::Q, Stage::QkNorm) => "q_qknorm",
        (Tensor::Q, Stage::Rope) => "q_rope",
        (Tensor::K, Stage::Projection) => "k_projection",
        (Tensor::K, Stage::QkNorm) => "k_qknorm",
        (Tensor::K, Stage::Rope) => "k_rope",
        (Tensor::V, Stage::Projection) => "v_projection",
        (Tensor::V, Stage::QkNorm) => "v_qknorm",
        (Tensor::V, Stage::Rope) => "v_rope",
    }
}

/// Every metric of every head of every capture, over its first `rows` rows (the probe's
/// share of the eval batch).
pub fn measure(
    captures: &[Capture],
    metrics: &[RankMetric],
    rows: usize,
    step: u64,
    tokens: u64,
) -> Vec<ProbeRow> {
    let mut out = Vec::new();
    for capture in captures {
        let rows = rows.min(capture.rows);
        let d = capture.head_dim;
        for head in 0..capture.heads {
            // Row r of head h starts at (r * heads + h) * d.
            let matrix: Vec<f32> = (0..rows)
                .flat_map(|r| {
                    let start = (r * capture.heads + head) * d;
                    capture.values[start..start + d].iter().copied()
                })
                .collect();
            let spectrum = Spectrum::from_rows(&matrix, rows, d);
            for &metric in metrics {
                out.push(ProbeRow {
                    step,
                    tokens,
                    layer: capture.layer as u32,
                    head: head as u32,
                    site: site_name(capture.site),
                    metric: metric_name(metric),
                    value: spectrum.metric(metric),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_separated_and_rows_limited() {
        // 3 rows, 2 heads of dimension 2: head 0 is rank 1, head 1 is rank 2.
        let values = vec![
            1.0, 0.0, 1.0, 0.0, //
            2.0, 0.0, 0.0, 1.0, //
            3.0, 0.0, 5.0, 5.0, // excluded by rows = 2
        ];
        let capture = Capture {
            layer: 1,
            site: Site {
                tensor: Tensor::K,
                after: Stage::Rope,
            },
            rows: 3,
            heads: 2,
            head_dim: 2,
            values,
        };
        let rows = measure(
            &[capture],
            &[RankMetric::StudyPr, RankMetric::R90],
            2,
            7,
            700,
        );
        assert_eq!(rows.len(), 4);
        assert!(rows
            .iter()
            .all(|r| r.layer == 1 && r.site == "k_rope" && r.step == 7 && r.tokens == 700));
        assert_eq!(
            (rows[0].head, rows[0].metric, rows[0].value),
            (0, "study_pr", 1.0)
        );
        assert_eq!(
            (rows[3].head, rows[3].metric, rows[3].value),
            (1, "r90", 2.0)
        );
        assert!(
            (rows[2].value - 2.0).abs() < 1e-9,
            "head 1 has equal singular values"
        );
    }
}

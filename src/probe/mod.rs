//! Probes: metrics of the activations captured during an evaluation (rank of each head's
//! queries, keys or values; how its attention is spread), and of the model's loss by
//! position.

pub mod attention;
pub mod icl;
pub mod key_ablation;
pub mod rank;
pub mod weights;

use crate::model::Capture;
use crate::spec::run_config::{MetricKind, ProbeConfig, ProbeMetric, Site, Stage, Tensor};

use attention::{head_attention, QueriesKeys};
use rank::Spectrum;

/// One probe observation, in tidy form.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRow {
    pub step: u64,
    pub tokens: u64,
    /// None for a probe of the whole model (`icl_score`).
    pub layer: Option<u32>,
    /// Head index within the captured tensor (a KV head for K and V, a query head for
    /// attention); None for a probe of a whole layer (`dead_head_fraction`).
    pub head: Option<u32>,
    /// `k_rope`, `q_qknorm`, `v_projection`, ..., `attention`, `output`.
    pub site: &'static str,
    pub metric: &'static str,
    pub value: f64,
}

/// The site name of the attention metrics.
pub const ATTENTION_SITE: &str = "attention";
/// The site name of the model-wide metrics.
pub const OUTPUT_SITE: &str = "output";

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

const Q_ROPE: Site = Site {
    tensor: Tensor::Q,
    after: Stage::Rope,
};
const K_ROPE: Site = Site {
    tensor: Tensor::K,
    after: Stage::Rope,
};

fn wants(probes: &ProbeConfig, kind: MetricKind) -> bool {
    probes.metrics.iter().any(|m| m.kind() == kind)
}

/// The sites an evaluation must capture for `probes`: its sites, and the queries and
/// keys attention sees when an attention metric is asked for.
pub fn sites_to_capture(probes: &ProbeConfig) -> Vec<Site> {
    let mut sites = probes.sites.clone();
    if wants(probes, MetricKind::Attention) {
        for site in [Q_ROPE, K_ROPE] {
            if !sites.contains(&site) {
                sites.push(site);
            }
        }
    }
    sites
}

/// Where and when the captures were taken.
#[derive(Debug, Clone, Copy)]
pub struct ProbePoint {
    pub step: u64,
    pub tokens: u64,
    /// Tokens per sequence of the eval batch.
    pub seq: usize,
}

/// Every metric of `probes` over the captures of one evaluation, each over the first
/// `probes.eval_sequences` sequences of the eval batch (the model-wide metrics come from
/// `model_rows`).
pub fn measure(captures: &[Capture], probes: &ProbeConfig, at: ProbePoint) -> Vec<ProbeRow> {
    let rows = probes.eval_sequences * at.seq;
    let row = |layer: usize, head: Option<usize>, site, metric: ProbeMetric, value| ProbeRow {
        step: at.step,
        tokens: at.tokens,
        layer: Some(layer as u32),
        head: head.map(|h| h as u32),
        site,
        metric: metric.name(),
        value,
    };
    let mut out = Vec::new();
    for capture in captures.iter().filter(|c| probes.sites.contains(&c.site)) {
        let rows = rows.min(capture.rows);
        let site = site_name(capture.site);
        let spectra: Vec<Spectrum> = (0..capture.heads)
            .map(|head| {
                Spectrum::from_rows(&head_rows(capture, head, rows), rows, capture.head_dim)
            })
            .collect();
        for (head, spectrum) in spectra.iter().enumerate() {
            for &metric in probes
                .metrics
                .iter()
                .filter(|m| m.kind() == MetricKind::Rank)
            {
                out.push(row(
                    capture.layer,
                    Some(head),
                    site,
                    metric,
                    spectrum.metric(metric),
                ));
            }
        }
        for &metric in &probes.metrics {
            if let ProbeMetric::DeadHeads { below_pr } = metric {
                let dead = spectra
                    .iter()
                    .filter(|s| s.metric(ProbeMetric::StudyPr) < below_pr)
                    .count();
                let fraction = dead as f64 / spectra.len().max(1) as f64;
                out.push(row(capture.layer, None, site, metric, fraction));
            }
        }
    }
    if wants(probes, MetricKind::Attention) {
        let find =
            |layer: usize, site: Site| captures.iter().find(|c| c.layer == layer && c.site == site);
        let layers = captures.iter().map(|c| c.layer + 1).max().unwrap_or(0);
        for layer in 0..layers {
            let (Some(q), Some(k)) = (find(layer, Q_ROPE), find(layer, K_ROPE)) else {
                continue;
            };
            let stats = head_attention(&QueriesKeys {
                q: &q.values,
                k: &k.values,
                heads: q.heads,
                kv_heads: k.heads,
                head_dim: q.head_dim,
                seq: at.seq,
                rows: rows.min(q.rows) / at.seq * at.seq,
            });
            for (head, stat) in stats.iter().enumerate() {
                for &metric in &probes.metrics {
                    let value = match metric {
                        ProbeMetric::AttentionEntropy => stat.entropy,
                        ProbeMetric::MaxAttentionLogit => stat.max_logit,
                        _ => continue,
                    };
                    out.push(row(layer, Some(head), ATTENTION_SITE, metric, value));
                }
            }
        }
    }
    out
}

/// The model-wide metrics of `probes` from the per-token losses of the eval batch
/// ([sequences * seq]).
pub fn model_rows(losses: &[f32], probes: &ProbeConfig, at: ProbePoint) -> Vec<ProbeRow> {
    let mut out = Vec::new();
    for &metric in &probes.metrics {
        if let ProbeMetric::IclScore { early, late } = metric {
            let (early, late, score) = icl::icl_score(losses, at.seq, early, late);
            for (name, value) in [
                ("icl_loss_early", early),
                ("icl_loss_late", late),
                (metric.name(), score),
            ] {
                out.push(ProbeRow {
                    step: at.step,
                    tokens: at.tokens,
                    layer: None,
                    head: None,
                    site: OUTPUT_SITE,
                    metric: name,
                    value,
                });
            }
        }
    }
    out
}

/// Whether `probes` asks for metrics of the loss by position.
pub fn wants_token_losses(probes: &ProbeConfig) -> bool {
    wants(probes, MetricKind::Icl)
}

/// The first `rows` rows of one head of a capture, as a [rows, head_dim] matrix (row r
/// of head h starts at (r * heads + h) * head_dim).
pub(crate) fn head_rows(capture: &Capture, head: usize, rows: usize) -> Vec<f32> {
    let d = capture.head_dim;
    (0..rows)
        .flat_map(|r| {
            let start = (r * capture.heads + head) * d;
            capture.values[start..start + d].iter().copied()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes(metrics: Vec<ProbeMetric>, sites: Vec<Site>) -> ProbeConfig {
        ProbeConfig {
            at_tokens: vec![0],
            every_tokens: None,
            sites,
            metrics,
            eval_sequences: 1,
            spectra: false,
            weights: false,
            key_ablation: Vec::new(),
        }
    }

    fn capture(
        layer: usize,
        site: Site,
        heads: usize,
        head_dim: usize,
        values: Vec<f32>,
    ) -> Capture {
        Capture {
            layer,
            site,
            rows: values.len() / (heads * head_dim),
            heads,
            head_dim,
            values,
        }
    }

    #[test]
    fn heads_are_separated_rows_limited_and_dead_heads_counted() {
        // 3 rows, 2 heads of dimension 2: head 0 is rank 1, head 1 is rank 2.
        let values = vec![
            1.0, 0.0, 1.0, 0.0, //
            2.0, 0.0, 0.0, 1.0, //
            3.0, 0.0, 5.0, 5.0, // excluded: the probe takes one sequence of 2 rows
        ];
        let metrics = vec![
            ProbeMetric::StudyPr,
            ProbeMetric::R90,
            ProbeMetric::DeadHeads { below_pr: 1.5 },
        ];
        let rows = measure(
            &[capture(1, K_ROPE, 2, 2, values)],
            &probes(metrics, vec![K_ROPE]),
            ProbePoint {
                step: 7,
                tokens: 700,
                seq: 2,
            },
        );
        assert_eq!(rows.len(), 5);
        assert!(rows
            .iter()
            .all(|r| r.layer == Some(1) && r.site == "k_rope" && r.step == 7 && r.tokens == 700));
        assert_eq!(
            (rows[0].head, rows[0].metric, rows[0].value),
            (Some(0), "study_pr", 1.0)
        );
        assert_eq!(
            (rows[3].head, rows[3].metric, rows[3].value),
            (Some(1), "r90", 2.0)
        );
        assert!(
            (rows[2].value - 2.0).abs() < 1e-9,
            "head 1 has equal singular values"
        );
        // Head 0 (PR 1) is below 1.5, head 1 (PR 2) is not.
        assert_eq!(
            (rows[4].head, rows[4].metric, rows[4].value),
            (None, "dead_head_fraction", 0.5)
        );
    }

    #[test]
    fn attention_metrics_read_the_queries_and_keys_of_each_layer() {
        let probes = probes(
            vec![
                ProbeMetric::MaxAttentionLogit,
                ProbeMetric::AttentionEntropy,
            ],
            vec![K_ROPE],
        );
        assert_eq!(sites_to_capture(&probes), vec![K_ROPE, Q_ROPE]);
        // One sequence of two tokens, one head of dimension 1: logits (q0 k0) and
        // (q1 k0, q1 k1) = (2), (0, 0).
        let captures = [
            capture(0, Q_ROPE, 1, 1, vec![1.0, 0.0]),
            capture(0, K_ROPE, 1, 1, vec![2.0, 1.0]),
        ];
        let at = ProbePoint {
            step: 0,
            tokens: 0,
            seq: 2,
        };
        let rows: Vec<ProbeRow> = measure(&captures, &probes, at)
            .into_iter()
            .filter(|r| r.site == ATTENTION_SITE)
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].metric, rows[0].value),
            ("max_attention_logit", 2.0)
        );
        assert_eq!(rows[1].metric, "attention_entropy");
        assert!((rows[1].value - 2f64.ln() / 2.0).abs() < 1e-9);
    }

    #[test]
    fn icl_rows_are_model_wide() {
        let probes = probes(
            vec![ProbeMetric::IclScore {
                early: (0, 1),
                late: (1, 2),
            }],
            vec![K_ROPE],
        );
        assert!(wants_token_losses(&probes));
        let rows = model_rows(
            &[3.0, 1.0],
            &probes,
            ProbePoint {
                step: 1,
                tokens: 2,
                seq: 2,
            },
        );
        let got: Vec<(&str, f64)> = rows.iter().map(|r| (r.metric, r.value)).collect();
        assert_eq!(
            got,
            [
                ("icl_loss_early", 3.0),
                ("icl_loss_late", 1.0),
                ("icl_score", -2.0)
            ]
        );
        assert!(rows
            .iter()
            .all(|r| r.layer.is_none() && r.head.is_none() && r.site == OUTPUT_SITE));
    }
}

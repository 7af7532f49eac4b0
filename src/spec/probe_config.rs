//! The run's probes: when and where activations are captured and which metrics are
//! computed from them, with what each metric is (`probes`).

use serde::{Deserialize, Serialize};

use super::data_config::DataConfig;
use super::model_config::ModelConfig;
use super::problems::*;
use super::schedule_config::ScheduleConfig;

use super::is_false;
use super::patch::spec_struct;

spec_struct! {
    /// When and where activations are captured and which rank metrics are computed.
    pub struct ProbeConfig {
        /// Explicit probe points in training tokens (0 is the initial model).
        #[serde(default)]
        pub at_tokens: Vec<u64>,
        /// Also probe every this many tokens.
        #[serde(default)]
        pub every_tokens: Option<u64>,
        pub sites: Vec<Site>,
        pub metrics: Vec<ProbeMetric>,
        /// Validation sequences of the eval batch fed through the model at each probe.
        pub eval_sequences: usize,
        /// Also store the singular spectrum of each head.
        #[serde(default)]
        pub spectra: bool,
        /// Also probe the weights at each probe point: per head the participation ratio
        /// and stable rank of W_K and of the bilinear form W_Q^T W_K attention applies (QK
        /// gains folded in), per layer the QK-norm gains' mean, min and max.
        #[serde(default, skip_serializing_if = "is_false")]
        pub weights: bool,
        /// A causal probe: per layer, the validation loss increase when that layer's keys
        /// at the first K site of `sites` are projected onto each KV head's top-r principal
        /// directions, for each r listed here and for r = the layer's rounded `study_pr`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub key_ablation: Vec<usize>,
    }
}

/// Where in an attention block activations are captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub tensor: Tensor,
    pub after: Stage,
}

/// Which attention input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tensor {
    Q,
    K,
    V,
}

/// How far along its path the captured tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// The raw projection output.
    Projection,
    /// After QK-norm, before RoPE (equal to `Projection` when the run has no QK-norm).
    QkNorm,
    /// After QK-norm (if any) and RoPE: what attention sees. The seed study's site.
    Rope,
}

/// What a probe measures. Rank metrics and `DeadHeads` apply to every site of
/// `probes.sites`; the attention metrics to every layer's attention scores; `IclScore`
/// to the whole model's next-token losses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ProbeMetric {
    /// Rank metrics of a captured [n x d] matrix with singular values s_i:
    /// the seed study's participation ratio (sum s)^2 / sum s^2, uncentred.
    StudyPr,
    /// (tr C)^2 / tr(C^2) of the centred covariance.
    CovariancePr,
    /// exp(entropy of s / sum s).
    EntropyRank,
    /// sum s^2 / s_max^2.
    StableRank,
    /// Smallest r holding 90% of sum s^2.
    R90,
    /// s_max / s_min.
    ConditionNumber,
    /// Per query head: the entropy (nats) of each query's causal attention distribution,
    /// averaged over queries. Low: sharp attention.
    AttentionEntropy,
    /// Per query head: the largest pre-softmax logit q.k / sqrt(head_dim) over every
    /// causal pair (what QK-norm bounds).
    MaxAttentionLogit,
    /// Per layer and site: the fraction of heads whose `StudyPr` is below `below_pr`.
    DeadHeads { below_pr: f64 },
    /// Mean next-token loss at positions `late` minus that at `early` (half-open
    /// [from, to) ranges of sequence positions, over the eval batch): negative when the
    /// model uses its context.
    IclScore {
        early: (usize, usize),
        late: (usize, usize),
    },
}

/// What a probe metric is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// The singular values of each head's activations at a site.
    Rank,
    /// Each query head's causal attention scores.
    Attention,
    /// The rank of every head of a layer at a site.
    DeadHeads,
    /// The model's loss by position.
    Icl,
}

/// How a probe metric's values over layers and heads become one number for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSummary {
    Mean,
    /// The largest value (a bound, e.g. the largest attention logit).
    Max,
}

/// Everything known about a probe metric, in one place: the spec, the probes, the checks
/// and the report read it from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    /// The metric's name in probes.parquet and in report columns.
    pub name: &'static str,
    /// Its name for a reader.
    pub title: &'static str,
    /// Its unit, or what its number means.
    pub unit: &'static str,
    pub kind: MetricKind,
    /// How the report makes one number of it for the whole model.
    pub summary: ModelSummary,
}

impl ProbeMetric {
    /// One of each metric (parameters are placeholders: only `info` is read of these),
    /// the list that maps names back to metrics.
    pub const ALL: [ProbeMetric; 10] = [
        ProbeMetric::StudyPr,
        ProbeMetric::CovariancePr,
        ProbeMetric::EntropyRank,
        ProbeMetric::StableRank,
        ProbeMetric::R90,
        ProbeMetric::ConditionNumber,
        ProbeMetric::AttentionEntropy,
        ProbeMetric::MaxAttentionLogit,
        ProbeMetric::DeadHeads { below_pr: 1.5 },
        ProbeMetric::IclScore {
            early: (0, 1),
            late: (1, 2),
        },
    ];

    pub fn info(self) -> MetricInfo {
        use MetricKind::*;
        let info = |name, title, unit, kind| MetricInfo {
            name,
            title,
            unit,
            kind,
            summary: ModelSummary::Mean,
        };
        match self {
            ProbeMetric::StudyPr => info(
                "study_pr",
                "participation ratio",
                "effective dimensions",
                Rank,
            ),
            ProbeMetric::CovariancePr => info(
                "covariance_pr",
                "covariance participation ratio",
                "effective dimensions",
                Rank,
            ),
            ProbeMetric::EntropyRank => {
                info("entropy_rank", "entropy rank", "effective dimensions", Rank)
            }
            ProbeMetric::StableRank => info("stable_rank", "stable rank", "dimensions", Rank),
            ProbeMetric::R90 => info(
                "r90",
                "dimensions holding 90% of the energy",
                "dimensions",
                Rank,
            ),
            ProbeMetric::ConditionNumber => info(
                "condition_number",
                "condition number",
                "s_max / s_min",
                Rank,
            ),
            ProbeMetric::AttentionEntropy => info(
                "attention_entropy",
                "attention entropy",
                "nats, mean over queries",
                Attention,
            ),
            ProbeMetric::MaxAttentionLogit => MetricInfo {
                summary: ModelSummary::Max,
                ..info(
                    "max_attention_logit",
                    "largest attention logit",
                    "max over layers and heads",
                    Attention,
                )
            },
            ProbeMetric::DeadHeads { .. } => info(
                "dead_head_fraction",
                "dead heads",
                "fraction of heads below the PR threshold",
                DeadHeads,
            ),
            ProbeMetric::IclScore { .. } => info(
                "icl_score",
                "in-context score",
                "nats, late minus early loss",
                Icl,
            ),
        }
    }

    /// The metric's name in probes.parquet (`IclScore` also writes `icl_loss_early` and
    /// `icl_loss_late`).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn kind(self) -> MetricKind {
        self.info().kind
    }

    /// What is known of the metric written as `name` (None for a name of no metric of
    /// this version, e.g. from results of another).
    pub fn info_by_name(name: &str) -> Option<MetricInfo> {
        (Self::ALL.iter())
            .map(|m| m.info())
            .find(|info| info.name == name)
    }
}

// What this section must hold (`check::check_run` runs every section's checks).

/// What the probes' checks read of the other sections.
pub(super) struct Sections<'a> {
    pub probes: &'a ProbeConfig,
    pub data: &'a DataConfig,
    pub model: &'a ModelConfig,
    pub schedule: &'a ScheduleConfig,
}

pub(super) fn check_probes(config: Sections, p: &mut Problems) {
    let probes: &ProbeConfig = config.probes;
    let budget = config.schedule.tokens;
    for &point in probes.at_tokens.iter().filter(|&&point| point > budget) {
        p.push(
            "probes.at_tokens",
            format!("probe point {point} is beyond the budget of {budget} tokens"),
            format!("remove it or raise schedule.tokens to at least {point}"),
        );
    }
    if probes.every_tokens == Some(0) {
        p.push(
            "probes.every_tokens",
            "every_tokens must be at least 1".to_owned(),
            "use None to probe at `at_tokens` only",
        );
    }
    if !probes.key_ablation.is_empty() {
        let largest = config.model.head_dim.min(MAX_ABLATION_RANK);
        if let Some(&r) = probes.key_ablation.iter().find(|&&r| r == 0 || r > largest) {
            p.push(
                "probes.key_ablation",
                format!(
                    "rank {r} is outside 1..={largest} (head_dim, at most {MAX_ABLATION_RANK})"
                ),
                "list ranks between 1 and head_dim, e.g. key_ablation: [1, 4, 16]",
            );
        }
        if !probes.sites.iter().any(|s| s.tensor == Tensor::K) {
            p.push(
                "probes.key_ablation",
                "the key ablation projects the keys at a K site, and `sites` has none".to_owned(),
                "add one, e.g. sites: [(tensor: K, after: Rope)]",
            );
        }
    }
    if probes.sites.is_empty() {
        p.push(
            "probes.sites",
            "no probe sites".to_owned(),
            "e.g. sites: [(tensor: K, after: Rope)]",
        );
    }
    if probes.metrics.is_empty() {
        p.push(
            "probes.metrics",
            "no rank metrics".to_owned(),
            "e.g. metrics: [StudyPr]",
        );
    }
    for site in &probes.sites {
        if site.tensor == Tensor::V && site.after != Stage::Projection {
            p.push(
                "probes.sites",
                format!(
                    "V has no {:?} stage: values are neither QK-normed nor rotated",
                    site.after
                ),
                "use (tensor: V, after: Projection)",
            );
        }
    }
    for (i, site) in probes.sites.iter().enumerate() {
        if probes.sites[..i].contains(site) {
            p.push(
                "probes.sites",
                format!("site {site:?} is listed twice"),
                "list each site once",
            );
        }
    }
    for (i, metric) in probes.metrics.iter().enumerate() {
        let name = metric.name();
        if probes.metrics[..i].iter().any(|m| m.name() == name) {
            p.push(
                "probes.metrics",
                format!("metric {metric:?} is listed twice"),
                "list each metric once (one DeadHeads and one IclScore at most)",
            );
        }
        probe_metric_checks(p, metric, config.data.seq_len);
    }
    p.size(
        "probes.eval_sequences",
        probes.eval_sequences,
        MAX_SEQUENCES,
    );
    if probes.eval_sequences > config.data.eval_sequences {
        p.push(
            "probes.eval_sequences",
            format!(
                "probes use {} eval sequences but the eval batch has {} (data.eval_sequences)",
                probes.eval_sequences, config.data.eval_sequences
            ),
            format!(
                "use at most {} or raise data.eval_sequences",
                config.data.eval_sequences
            ),
        );
    }
}

/// The settings of `DeadHeads` and `IclScore`.
fn probe_metric_checks(p: &mut Problems, metric: &ProbeMetric, seq_len: usize) {
    match *metric {
        ProbeMetric::DeadHeads { below_pr } if !(below_pr.is_finite() && below_pr > 0.0) => {
            p.push(
                "probes.metrics",
                format!("DeadHeads(below_pr: {below_pr}) needs a positive, finite threshold"),
                "a participation ratio is at least 1; e.g. DeadHeads(below_pr: 2.0)",
            );
        }
        ProbeMetric::IclScore { early, late } => {
            for (which, (from, to)) in [("early", early), ("late", late)] {
                if from >= to || to > seq_len {
                    p.push(
                        "probes.metrics",
                        format!(
                            "IclScore {which}: ({from}, {to}) is not a range of positions \
                             [from, to) within the sequence of {seq_len} tokens"
                        ),
                        format!("give from < to <= {seq_len}, e.g. early: (0, 16), late: ({}, {seq_len})", seq_len - seq_len / 8),
                    );
                }
            }
            if early.1 > late.0 && early.0 < late.1 && early.0 < early.1 && late.0 < late.1 {
                p.push(
                    "probes.metrics",
                    format!(
                        "IclScore: early ({}, {}) and late ({}, {}) overlap",
                        early.0, early.1, late.0, late.1
                    ),
                    "give early positions that end where or before the late ones start",
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_listed_once_and_found_by_its_name() {
        // Exhaustive: a new metric does not compile here until it has its place in ALL.
        let position = |m: ProbeMetric| match m {
            ProbeMetric::StudyPr => 0,
            ProbeMetric::CovariancePr => 1,
            ProbeMetric::EntropyRank => 2,
            ProbeMetric::StableRank => 3,
            ProbeMetric::R90 => 4,
            ProbeMetric::ConditionNumber => 5,
            ProbeMetric::AttentionEntropy => 6,
            ProbeMetric::MaxAttentionLogit => 7,
            ProbeMetric::DeadHeads { .. } => 8,
            ProbeMetric::IclScore { .. } => 9,
        };
        for (i, metric) in ProbeMetric::ALL.into_iter().enumerate() {
            assert_eq!(position(metric), i, "{metric:?}");
            let info = metric.info();
            assert_eq!(ProbeMetric::info_by_name(info.name), Some(info));
            assert!(!info.title.is_empty() && !info.unit.is_empty(), "{info:?}");
        }
        assert_eq!(ProbeMetric::info_by_name("no_such_metric"), None);
    }
}

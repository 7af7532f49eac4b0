//! What the report compares: the conditions, the token points, the quantities of each
//! run and the pairs of conditions; shared by the tables and the findings.

use super::conditions::tokens_title;
use super::conditions::{Condition, Quantity};
use super::load::RunResults;
use super::settings::ReportSettings;

/// The probes other than the report's metric that the report summarises at the last
/// probe, when the runs have them: (site, metric).
pub(super) fn other_probes(runs: &[RunResults], site: &str) -> Vec<(String, String)> {
    use crate::spec::run_config::ProbeMetric;
    // Each metric picked out of the list by its kind, not by its place in it.
    let name_of = |kind: fn(&ProbeMetric) -> bool| {
        let metric = ProbeMetric::ALL.into_iter().find(kind);
        metric.expect("every metric is in ProbeMetric::ALL").name()
    };
    let wanted = [
        (
            crate::probe::ATTENTION_SITE,
            ProbeMetric::AttentionEntropy.name(),
        ),
        (
            crate::probe::ATTENTION_SITE,
            ProbeMetric::MaxAttentionLogit.name(),
        ),
        (
            site,
            name_of(|m| matches!(m, ProbeMetric::DeadHeads { .. })),
        ),
        (
            crate::probe::OUTPUT_SITE,
            name_of(|m| matches!(m, ProbeMetric::IclScore { .. })),
        ),
    ];
    wanted
        .iter()
        .filter(|(s, m)| {
            runs.iter()
                .any(|r| r.probes.contains_key(&(s.to_string(), m.to_string())))
        })
        .map(|(s, m)| (s.to_string(), m.to_string()))
        .collect()
}

/// An opt-in probe the comparison shows at the last point when some run has it.
pub(super) struct OptInProbe {
    /// Column name (`loss_increase_r4`, `w_qk_pr`, ...).
    pub key: String,
    /// What it is, for the list of columns.
    pub about: String,
    pub site: String,
    pub metric: String,
    pub digits: usize,
    /// A per-layer value whose worst (largest) layer the comparison shows beside the
    /// mean (`<key>_worst`): a mean over layers does not stand for every layer.
    pub per_layer: bool,
}

/// The opt-in probes the runs have: the causal key ablation at the report's site (each
/// rank, then at the PR), the weight-space PRs and QK-Clip's count of clipped steps.
pub(super) fn opt_in_probes(runs: &[RunResults], site: &str) -> Vec<OptInProbe> {
    use crate::optim::qk_clip::QK_CLIP_STEPS_METRIC;
    use crate::probe::key_ablation::AT_PR_METRIC;
    let has = |s: &str, m: &str| {
        (runs.iter()).any(|r| r.probes.contains_key(&(s.to_owned(), m.to_owned())))
    };
    let probe = |site: &str, metric: &str, key: String, about: String, digits| OptInProbe {
        key,
        about,
        site: site.to_owned(),
        metric: metric.to_owned(),
        digits,
        per_layer: false,
    };
    let mut ranks: Vec<usize> = (runs.iter())
        .flat_map(|r| r.probes.keys())
        .filter(|(s, _)| s == site)
        .filter_map(|(_, m)| m.strip_prefix("loss_increase_r")?.parse().ok())
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    let mut out: Vec<OptInProbe> = (ranks.into_iter())
        .map(|r| {
            let metric = format!("loss_increase_r{r}");
            let about = format!(
                "validation loss increase with one layer's keys cut to their top {r} \
                 directions (nats, mean over layers; `_worst`: the largest layer's)"
            );
            OptInProbe {
                per_layer: true,
                ..probe(site, &metric, metric.clone(), about, 4)
            }
        })
        .collect();
    if has(site, AT_PR_METRIC) {
        let about = "the same, cut to as many directions as the layer's rounded PR".to_owned();
        out.push(OptInProbe {
            per_layer: true,
            ..probe(site, AT_PR_METRIC, AT_PR_METRIC.to_owned(), about, 4)
        });
    }
    for (weights, what) in [
        ("w_k", "W_K per KV head"),
        ("w_qk", "W_Q^T W_K per query head"),
    ] {
        if has(weights, "study_pr") {
            let about = format!("participation ratio of {what} (mean)");
            out.push(probe(
                weights,
                "study_pr",
                format!("{weights}_pr"),
                about,
                2,
            ));
        }
    }
    let attention = crate::probe::ATTENTION_SITE;
    if has(attention, QK_CLIP_STEPS_METRIC) {
        let about = "steps after which QK-Clip clipped a head (mean over heads)".to_owned();
        let key = QK_CLIP_STEPS_METRIC.to_owned();
        out.push(probe(attention, QK_CLIP_STEPS_METRIC, key, about, 1));
    }
    out
}

/// The extra evaluation sets any run measured, by name.
pub(super) fn eval_sets(runs: &[RunResults]) -> Vec<String> {
    let mut names: Vec<String> = (runs.iter())
        .flat_map(|r| r.eval_set_loss.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Everything the report's tables need to know, shared with the findings.
pub(super) struct Context<'a> {
    pub study: String,
    pub description: String,
    pub settings: &'a ReportSettings,
    pub conditions: Vec<Condition<'a>>,
    /// Token points of the side-by-side table.
    pub points: Vec<u64>,
    /// The quantities compared: val loss and the report metric at each point, layer
    /// statistics and the other probes at each run's last probe.
    pub quantities: Vec<Quantity>,
    /// The pairs of conditions compared, as indices into `conditions`.
    pub pairs: Vec<(usize, usize)>,
    pub seeds: usize,
}

/// The key of the validation loss at `tokens`.
pub(super) fn val_loss_key(tokens: u64) -> String {
    format!("val_loss@{tokens}")
}

/// The key of the report metric `metric` (model mean) at `tokens`.
pub(super) fn metric_key(metric: &str, tokens: u64) -> String {
    format!("{metric}@{tokens}")
}

/// The key of the count of layers below `threshold`.
pub(super) fn layers_below_key(threshold: f64) -> String {
    format!("layers_below_{threshold}")
}

/// The quantities of the comparison table.
pub(super) fn quantities(
    settings: &ReportSettings,
    points: &[u64],
    others: &[(String, String)],
    opt_in: &[OptInProbe],
    eval_sets: &[String],
) -> Vec<Quantity> {
    let m = settings.metric.clone();
    // Layer values and the other probes at the last point (a run that has not reached
    // it yet is left out of them).
    let last = points.last().copied().unwrap_or(0);
    let mut out = Vec::new();
    for &p in points {
        out.push(Quantity {
            key: val_loss_key(p),
            title: format!("val loss @{}", tokens_title(p)),
            digits: 4,
            compared: p == last,
            value: Box::new(move |r: &RunResults| r.val_loss.get(&p).copied()),
        });
        out.push(Quantity {
            key: metric_key(&m, p),
            title: format!("{m} @{}", tokens_title(p)),
            digits: 2,
            compared: p == last,
            value: Box::new(move |r: &RunResults| r.model_at(p)),
        });
    }
    let layer_stat = |key: &str, stat: fn(&[f64]) -> Option<f64>| Quantity {
        key: key.to_owned(),
        title: key.replace('_', " "),
        digits: 2,
        compared: false,
        value: Box::new(move |r: &RunResults| stat(&r.layers_at(last))),
    };
    out.push(layer_stat("layer_min", |l| {
        l.iter().copied().reduce(f64::min)
    }));
    out.push(layer_stat("layer_mean", |l| {
        (!l.is_empty()).then(|| l.iter().sum::<f64>() / l.len() as f64)
    }));
    out.push(layer_stat("layer_max", |l| {
        l.iter().copied().reduce(f64::max)
    }));
    let threshold = settings.threshold;
    out.push(Quantity {
        key: layers_below_key(threshold),
        title: format!("layers < {threshold}"),
        digits: 1,
        compared: false,
        value: Box::new(move |r: &RunResults| {
            let layers = r.layers_at(last);
            (!layers.is_empty()).then(|| layers.iter().filter(|&&v| v < threshold).count() as f64)
        }),
    });
    for (site, metric) in others {
        let (site, metric) = (site.clone(), metric.clone());
        out.push(Quantity {
            key: metric.clone(),
            title: metric.replace('_', " "),
            digits: 3,
            compared: true,
            value: Box::new(move |r: &RunResults| r.model_probe(&site, &metric, last)),
        });
    }
    for probe in opt_in {
        let (site, metric) = (probe.site.clone(), probe.metric.clone());
        out.push(Quantity {
            key: probe.key.clone(),
            title: probe.key.replace('_', " "),
            digits: probe.digits,
            compared: true,
            value: Box::new(move |r: &RunResults| r.model_probe(&site, &metric, last)),
        });
        if probe.per_layer {
            let (site, metric) = (probe.site.clone(), probe.metric.clone());
            out.push(Quantity {
                key: format!("{}_worst", probe.key),
                title: format!("{} worst layer", probe.key.replace('_', " ")),
                digits: probe.digits,
                compared: false,
                value: Box::new(move |r: &RunResults| r.largest_probe(&site, &metric, last)),
            });
        }
    }
    // Each eval set's loss at the last point, and its gap to the validation loss there
    // (how much worse the model does off its training distribution).
    for set in eval_sets {
        let loss = {
            let set = set.clone();
            move |r: &RunResults| r.eval_set_loss.get(&set)?.get(&last).copied()
        };
        let gap = {
            let loss = loss.clone();
            move |r: &RunResults| Some(loss(r)? - r.val_loss.get(&last)?)
        };
        out.push(Quantity {
            key: format!("{set}_loss"),
            title: format!("{set} loss"),
            digits: 4,
            compared: true,
            value: Box::new(loss),
        });
        out.push(Quantity {
            key: format!("{set}_gap"),
            title: format!("{set} gap"),
            digits: 4,
            compared: true,
            value: Box::new(gap),
        });
    }
    out
}

/// The quantities a difference is shown for: val loss and the metric at the last
/// point, and the other probes.
pub(super) fn compared<'a>(context: &'a Context) -> Vec<&'a Quantity> {
    context.quantities.iter().filter(|q| q.compared).collect()
}

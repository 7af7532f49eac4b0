//! The report's "findings" paragraph: what the numbers say, in words, generated from
//! them (which condition has the highest and lowest rank, the loss ranking, which paired
//! differences are larger than seed noise).

use super::comparisons::{p_text, tested_pairs};
use super::conditions::{layer_count, metric_name_unit, site_title, tokens_title, Condition};
use super::context::{layers_below_key, metric_key, val_loss_key, Context};
use super::load::RunResults;
use super::lr_sweep;
use super::stats::Estimate;

/// "A1 (Muon + QK-norm)".
fn named(condition: &Condition) -> String {
    if condition.description.is_empty() {
        condition.name.clone()
    } else {
        format!("{} ({})", condition.name, condition.description)
    }
}

/// The conditions with their estimate of the quantity `key`, lowest mean first.
fn ranked<'a>(context: &'a Context, key: &str) -> Vec<(&'a Condition<'a>, Estimate)> {
    let Some(quantity) = context.quantities.iter().find(|q| q.key == key) else {
        return Vec::new();
    };
    let mut ranked: Vec<(&Condition, Estimate)> = context
        .conditions
        .iter()
        .filter_map(|c| Some((c, c.estimate(&*quantity.value)?)))
        .collect();
    ranked.sort_by(|a, b| a.1.mean.total_cmp(&b.1.mean));
    ranked
}

/// The findings paragraph (markdown).
pub(super) fn findings(context: &Context) -> String {
    let Some(&last) = context.points.last() else {
        return "No run has probes yet.".to_owned();
    };
    let settings = context.settings;
    let metric = &settings.metric;
    let mut sentences = Vec::new();
    let rank = ranked(context, &metric_key(metric, last));
    let at = tokens_title(last);
    if let [(low, low_e), .., (high, high_e)] = rank.as_slice() {
        sentences.push(format!(
            "At {at} tokens the {} of {} is highest for {}: {}, and lowest for {}: {}.",
            metric_name_unit(metric).0,
            site_title(&settings.site),
            named(high),
            high_e.display(2),
            named(low),
            low_e.display(2),
        ));
    }
    let loss = ranked(context, &val_loss_key(last));
    let runs: Vec<&RunResults> = context
        .conditions
        .iter()
        .flat_map(|c| c.runs.clone())
        .collect();
    if runs.iter().any(|r| r.x.is_some()) {
        // A learning-rate sweep: one sentence per curve, not a ranking of every grid point.
        sentences.push(lr_sentence(&runs));
    } else if !loss.is_empty() {
        let order: Vec<String> = loss
            .iter()
            .map(|(c, e)| format!("{} {}", c.name, e.display(3)))
            .collect();
        sentences.push(format!(
            "Validation loss at {at} tokens, best to worst: {}.",
            order.join(", ")
        ));
    }
    let threshold = settings.threshold;
    let below = ranked(context, &layers_below_key(threshold));
    let collapsed: Vec<String> = below
        .iter()
        .rev()
        .filter(|(_, e)| e.mean > 0.0)
        .map(|(c, e)| format!("{} {}", c.name, e.display(1)))
        .collect();
    sentences.push(if collapsed.is_empty() {
        format!("No condition has a layer whose {metric} is below {threshold}.")
    } else {
        format!(
            "Layers with {metric} below {threshold} (of {} per run): {}.",
            layer_count(&context.conditions, last),
            collapsed.join(", ")
        )
    });
    sentences.push(differences_sentence(context));
    sentences.join(" ")
}

/// Per curve of a `LogGrid` sweep: the best grid value and the scored loss there, the LR
/// sensitivity, the diverged runs, and the largest attention logit at the grid's top.
fn lr_sentence(runs: &[&RunResults]) -> String {
    let curves = lr_sweep::curves(runs.iter().copied(), &|_| None);
    let parts: Vec<String> = (curves.iter())
        .map(|c| {
            let best = c.best_point();
            let top = c.points.last();
            format!(
                "{}: best at {} (scored loss {}), LR sensitivity {}, {} of {} runs diverged, largest logit at {} {}",
                c.family,
                c.best.map_or("-".to_owned(), lr_sweep::x_text),
                best.and_then(|p| p.loss).map_or("-".to_owned(), |e| e.display(3)),
                c.sensitivity().map_or("-".to_owned(), |e| e.display(3)),
                c.diverged(),
                c.runs(),
                top.map_or("-".to_owned(), |p| lr_sweep::x_text(p.x)),
                top.and_then(|p| p.max_logit).map_or("-".to_owned(), |e| e.display(1)),
            )
        })
        .collect();
    format!(
        "Learning-rate sweep (details in its section below): {}.",
        parts.join("; ")
    )
}

/// Which paired differences the family-wise test shows, and what the intervals of the
/// others bound.
fn differences_sentence(context: &Context) -> String {
    if context.pairs.is_empty() {
        return "There is one condition: nothing to compare.".to_owned();
    }
    if context.seeds < 2 {
        return "With one seed per condition, no difference can be told from seed noise; add a `Seeds` axis for confidence intervals.".to_owned();
    }
    let mut shown = Vec::new();
    let mut bounded = Vec::new();
    for pair in tested_pairs(context) {
        let name = format!("{} − {}", pair.a.name, pair.b.name);
        for (quantity, tested) in &pair.cells {
            let Some(t) = tested else { continue };
            if t.shown() {
                shown.push(format!(
                    "{name} (n = {}): {} {} (p_Holm = {})",
                    t.estimate.n,
                    quantity.title,
                    t.estimate.signed(quantity.digits),
                    p_text(t.p_holm.unwrap_or(f64::NAN))
                ));
            } else if !t.estimate.excludes_zero() && quantity.key.starts_with("val_loss") {
                if let Some(bound) = t.estimate.equivalence_bound() {
                    bounded.push(format!(
                        "{name} {}: |Δ| < {bound:.digits$}",
                        quantity.title,
                        digits = quantity.digits
                    ));
                }
            }
        }
    }
    let mut text = if shown.is_empty() {
        format!(
            "No paired difference is shown by the Holm-corrected test at 5% (up to {} seeds per condition).",
            context.seeds
        )
    } else {
        format!(
            "Paired differences (a − b, by seed) the Holm-corrected test shows at 5%: {}.",
            shown.join("; ")
        )
    };
    if !bounded.is_empty() {
        text += &format!(
            " Where a loss difference's 95% interval includes zero, it bounds the difference (not shown equal, but not larger than this): {}.",
            bounded.join("; ")
        );
    }
    text
}

//! The report's "findings" paragraph: what the numbers say, in words, generated from
//! them (which condition has the highest and lowest rank, the loss ranking, which paired
//! differences are larger than seed noise).

use super::conditions::{
    difference, layer_count, metric_name_unit, site_title, tokens_title, Condition,
};
use super::context::{compared, layers_below_key, metric_key, val_loss_key, Context};
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
    if !loss.is_empty() {
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

/// Which paired differences exclude zero, or why none can be told from seed noise.
fn differences_sentence(context: &Context) -> String {
    if context.pairs.is_empty() {
        return "There is one condition: nothing to compare.".to_owned();
    }
    if context.seeds < 2 {
        return "With one seed per condition, no difference can be told from seed noise; add a `Seeds` axis for confidence intervals.".to_owned();
    }
    let mut significant = Vec::new();
    for &(a, b) in &context.pairs {
        let (a, b) = (&context.conditions[a], &context.conditions[b]);
        let mut n = 0;
        let parts: Vec<String> = compared(context)
            .into_iter()
            .filter_map(|quantity| {
                let d = difference(a, b, &*quantity.value).filter(|d| d.excludes_zero())?;
                n = d.n;
                Some(format!("{} {}", quantity.title, d.signed(quantity.digits)))
            })
            .collect();
        if !parts.is_empty() {
            significant.push(format!(
                "{} − {} (n = {n}): {}",
                a.name,
                b.name,
                parts.join(", ")
            ));
        }
    }
    if significant.is_empty() {
        format!(
            "No paired difference has a 95% confidence interval that excludes zero (up to {} seeds per condition).",
            context.seeds
        )
    } else {
        format!(
            "Paired differences (a − b, by seed) whose 95% confidence interval excludes zero: {}. The other differences in the table are within seed noise.",
            significant.join("; ")
        )
    }
}

//! The learning-rate section of the report (`lr_sweep`'s curves as text): the
//! LR-sensitivity table, the loss / key metric / attention logit at every grid value,
//! and both as CSV (`lr_sensitivity.csv`, `lr_curves.csv`).

use super::lr_sweep::{x_text, Curve, GridPoint};
use super::stats::Estimate;
use super::table_text::{csv_field, table};

/// "3.912 ± 0.010", "3.912", or "-".
fn cell(e: Option<Estimate>, digits: usize) -> String {
    e.map_or("-".to_owned(), |e| e.display(digits))
}

/// A number for a CSV file (empty when missing).
fn num(value: Option<f64>) -> String {
    value
        .filter(|v| v.is_finite())
        .map_or(String::new(), |v| v.to_string())
}

fn half_width(e: Option<Estimate>) -> Option<f64> {
    e?.ci.map(|(lo, hi)| (hi - lo) / 2.0)
}

/// The section's markdown and its CSV files. `axis` names the grid's path, `metric` the
/// report metric.
pub fn lr_section(curves: &[Curve], axis: &str, metric: &str) -> (String, Vec<(String, String)>) {
    let mut md = format!(
        "## Learning-rate sweep (`{axis}`)\n\n\
         Each curve is one condition over the grid of `{axis}`. Scored loss: the final validation \
         loss, or the step-0 validation loss where that is lower or the run diverged (Wortsman \
         et al. 2023). LR sensitivity: per seed, the mean over the grid of the scored loss minus \
         its minimum over the grid; mean ± 95% CI over seeds. The best value is the grid value \
         with the lowest mean scored loss; a grid this coarse places it within one step of the \
         grid, no closer.\n\n"
    );
    let header: Vec<String> = [
        "condition",
        "runs",
        "diverged",
        "best lr",
        "loss at best lr",
        "lr sensitivity",
        &format!("{metric} at best lr"),
        "max logit at best lr",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let rows: Vec<Vec<String>> = curves
        .iter()
        .map(|c| {
            let best = c.best_point();
            vec![
                title(c),
                c.runs().to_string(),
                c.diverged().to_string(),
                c.best.map_or("-".to_owned(), x_text),
                cell(best.and_then(|p| p.loss), 4),
                cell(c.sensitivity, 4),
                cell(best.and_then(|p| p.metric), 2),
                cell(best.and_then(|p| p.max_logit), 1),
            ]
        })
        .collect();
    let (sensitivity_md, _) = table(&header, &rows);
    md += &sensitivity_md;
    md += "\n";
    type Column<'a> = (&'a str, usize, fn(&GridPoint) -> Option<Estimate>);
    let columns: [Column; 3] = [
        ("Scored validation loss", 4, |p| p.loss),
        (metric, 2, |p| p.metric),
        ("Largest attention logit (last training step)", 1, |p| {
            p.max_logit
        }),
    ];
    for (what, digits, value) in columns {
        md += &format!("### {what} at each `{axis}` value\n\n");
        md += &by_grid(curves, digits, &value);
        md += "\n";
    }
    let files = vec![
        (
            "lr_sensitivity.csv".to_owned(),
            sensitivity_csv(curves, metric),
        ),
        ("lr_curves.csv".to_owned(), curves_csv(curves, metric)),
    ];
    (md, files)
}

fn title(c: &Curve) -> String {
    if c.description.is_empty() {
        c.family.clone()
    } else {
        format!("{} {}", c.family, c.description)
    }
}

/// Rows: grid values; columns: curves; a cell holds the estimate and "(k/n diverged)".
fn by_grid(
    curves: &[Curve],
    digits: usize,
    value: &dyn Fn(&GridPoint) -> Option<Estimate>,
) -> String {
    let mut xs: Vec<f64> = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.x))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let header: Vec<String> = std::iter::once("lr".to_owned())
        .chain(curves.iter().map(|c| c.family.clone()))
        .collect();
    let rows: Vec<Vec<String>> = xs
        .iter()
        .map(|&x| {
            std::iter::once(x_text(x))
                .chain(curves.iter().map(|c| match c.at(x) {
                    None => "-".to_owned(),
                    Some(p) if p.diverged > 0 => {
                        format!(
                            "{} ({}/{} diverged)",
                            cell(value(p), digits),
                            p.diverged,
                            p.runs
                        )
                    }
                    Some(p) => cell(value(p), digits),
                }))
                .collect()
        })
        .collect();
    table(&header, &rows).0
}

fn sensitivity_csv(curves: &[Curve], metric: &str) -> String {
    let mut csv = format!(
        "condition,description,runs,diverged,best_lr,loss_at_best_lr,loss_at_best_lr_ci,\
         lr_sensitivity,lr_sensitivity_ci,lr_sensitivity_seeds,{metric}_at_best_lr,max_logit_at_best_lr\n"
    );
    for c in curves {
        let best = c.best_point();
        let loss = best.and_then(|p| p.loss);
        let fields = [
            csv_field(&c.family),
            csv_field(&c.description),
            c.runs().to_string(),
            c.diverged().to_string(),
            num(c.best),
            num(loss.map(|e| e.mean)),
            num(half_width(loss)),
            num(c.sensitivity.map(|e| e.mean)),
            num(half_width(c.sensitivity)),
            c.sensitivity.map_or(0, |e| e.n).to_string(),
            num(best.and_then(|p| p.metric).map(|e| e.mean)),
            num(best.and_then(|p| p.max_logit).map(|e| e.mean)),
        ];
        csv += &(fields.join(",") + "\n");
    }
    csv
}

fn curves_csv(curves: &[Curve], metric: &str) -> String {
    let mut csv = format!(
        "condition,lr,runs,diverged,scored_loss,scored_loss_ci,{metric},{metric}_ci,max_logit,max_logit_ci\n"
    );
    for c in curves {
        for p in &c.points {
            let fields = [
                csv_field(&c.family),
                p.x.to_string(),
                p.runs.to_string(),
                p.diverged.to_string(),
                num(p.loss.map(|e| e.mean)),
                num(half_width(p.loss)),
                num(p.metric.map(|e| e.mean)),
                num(half_width(p.metric)),
                num(p.max_logit.map(|e| e.mean)),
                num(half_width(p.max_logit)),
            ];
            csv += &(fields.join(",") + "\n");
        }
    }
    csv
}

//! The learning-rate section of the report (`lr_sweep`'s curves as text): the
//! LR-sensitivity table, the loss / key metric / attention logit at every grid value,
//! and both as CSV (`lr_sensitivity.csv`, `lr_curves.csv`).

use super::comparisons::p_text;
use super::lr_sweep::{sensitivity_difference, x_text, Curve, GridPoint};
use super::stats::{holm, Estimate};
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
                cell(c.sensitivity(), 4),
                cell(best.and_then(|p| p.metric), 2),
                cell(best.and_then(|p| p.max_logit), 1),
            ]
        })
        .collect();
    let (sensitivity_md, _) = table(&header, &rows);
    md += &sensitivity_md;
    md += "\n";
    let (differences_md, differences_csv) = sensitivity_differences(curves);
    md += &differences_md;
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
    let mut files = vec![
        (
            "lr_sensitivity.csv".to_owned(),
            sensitivity_csv(curves, metric),
        ),
        ("lr_curves.csv".to_owned(), curves_csv(curves, metric)),
    ];
    if !differences_csv.is_empty() {
        files.push(("lr_sensitivity_differences.csv".to_owned(), differences_csv));
    }
    (md, files)
}

/// Every pair of curves' LR sensitivities, paired by seed, with the paired t-test and
/// Holm's correction over these pairs (their own family): markdown and CSV, both empty
/// when no pair shares two seeds.
fn sensitivity_differences(curves: &[Curve]) -> (String, String) {
    let mut tested = Vec::new();
    for (i, a) in curves.iter().enumerate() {
        for b in &curves[i + 1..] {
            if let Some(d) = sensitivity_difference(a, b).filter(|d| d.n > 1) {
                tested.push((a, b, d, d.p_value()));
            }
        }
    }
    if tested.is_empty() {
        return (String::new(), String::new());
    }
    let family: Vec<f64> = tested.iter().filter_map(|t| t.3).collect();
    let mut adjusted = holm(&family).into_iter();
    let header: Vec<String> = ["a − b", "n", "Δ lr sensitivity [95% CI]", "p", "p_Holm"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rows: Vec<Vec<String>> = (tested.iter())
        .map(|(a, b, d, p)| {
            let holm = p.and_then(|_| adjusted.next());
            let star = if holm.is_some_and(|h| h < 0.05) {
                " *"
            } else {
                ""
            };
            vec![
                format!("{} − {}", a.family, b.family),
                d.n.to_string(),
                d.signed(4),
                p.map_or("-".to_owned(), p_text),
                holm.map_or("-".to_owned(), |h| format!("{}{star}", p_text(h))),
            ]
        })
        .collect();
    let (table_md, table_csv) = table(&header, &rows);
    let md = format!(
        "LR sensitivity, paired by seed (a − b over the seeds both curves ran every grid \
         value with): paired t-test p, Holm-adjusted over these {} comparisons; * marks \
         p_Holm < 0.05. With two seeds (1 degree of freedom) only a difference far larger \
         than its seed-to-seed spread can be shown.\n\n{table_md}\n",
        rows.len()
    );
    (md, table_csv)
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
            num(c.sensitivity().map(|e| e.mean)),
            num(half_width(c.sensitivity())),
            c.sensitivity().map_or(0, |e| e.n).to_string(),
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

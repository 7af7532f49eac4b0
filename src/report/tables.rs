//! Builds the report's tables from the runs' results.

use std::path::Path;

use crate::store::manifest::RunStatus;

use super::collect::collect_runs;
use super::comparisons::{family_size, tested_pairs, PairTests};
use super::conditions::{
    group, layer_count, metric_name_unit, metric_title, site_title, tokens_title, Condition,
};
use super::context::{eval_sets, opt_in_probes, other_probes, quantities, Context};
use super::findings::findings;
use super::load::RunResults;
use super::lr_sweep;
use super::lr_tables::lr_section;
use super::settings::ReportSettings;
use super::table_text::{csv_field, fmt, table};

/// A rendered report.
#[derive(Debug, Clone)]
pub struct Report {
    pub markdown: String,
    /// (file name, CSV text) of each table.
    pub csv: Vec<(String, String)>,
    /// The runs compared, in matrix order (for the figures).
    pub runs: Vec<RunResults>,
}

/// The cell of a condition's `value`: "4.512" for one run, "4.512 ± 0.031" (95% CI) for
/// seeds, and a single run's infinite value as "inf".
fn value_cell(c: &Condition, value: &dyn Fn(&RunResults) -> Option<f64>, digits: usize) -> String {
    match c.estimate(value) {
        Some(e) => e.display(digits),
        None => {
            let single = (c.runs.len() == 1).then(|| value(c.runs[0])).flatten();
            fmt(single, digits)
        }
    }
}

/// The probe point nearest `fraction` of the budget, among those probed.
fn nearest(points: &[u64], target: f64) -> Option<u64> {
    points.iter().copied().min_by(|a, b| {
        (*a as f64 - target)
            .abs()
            .total_cmp(&(*b as f64 - target).abs())
    })
}

/// Reads `study_dir` and builds the report. Works on partial results: runs still
/// running, failed or missing are listed as such. With seeds, every value is the mean
/// over a condition's seeds with its 95% confidence interval.
pub fn build_report(study_dir: &Path, settings: &ReportSettings) -> Result<Report, String> {
    let (runs, notes, description) = collect_runs(study_dir, settings)?;
    let study = study_dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let all_points: Vec<u64> = {
        let mut p: Vec<u64> = runs.iter().flat_map(|r| r.probe_tokens()).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let budget = runs.iter().map(|r| r.budget).max().unwrap_or(0);
    let points: Vec<u64> = if settings.at_tokens.is_empty() {
        let last = all_points.last().copied();
        let two_thirds =
            nearest(&all_points, budget as f64 * 2.0 / 3.0).filter(|p| Some(*p) != last);
        two_thirds.into_iter().chain(last).collect()
    } else {
        // A requested point is shown at the nearest probe.
        settings
            .at_tokens
            .iter()
            .filter_map(|&t| nearest(&all_points, t as f64))
            .collect()
    };
    let conditions = group(&runs);
    // The pairs shown: those the study lists (its primary ones first), else every pair.
    let pairs: Vec<(usize, usize)> =
        if settings.differences.is_empty() && settings.primary.is_empty() {
            let n = conditions.len();
            (0..n)
                .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
                .collect()
        } else {
            let index = |name: &String| conditions.iter().position(|c| &c.name == name);
            let mut pairs: Vec<(usize, usize)> = Vec::new();
            for (a, b) in settings.primary.iter().chain(&settings.differences) {
                let Some(pair) = index(a).zip(index(b)) else {
                    continue;
                };
                if !pairs.contains(&pair) {
                    pairs.push(pair);
                }
            }
            pairs
        };
    let others = other_probes(&runs, &settings.site);
    let opt_in = opt_in_probes(&runs, &settings.site);
    let sets = eval_sets(&runs);
    let seeds = conditions.iter().map(|c| c.runs.len()).max().unwrap_or(0);
    let context = Context {
        study,
        description,
        settings,
        quantities: quantities(settings, &points, &others, &opt_in, &sets),
        conditions,
        points,
        pairs,
        seeds,
    };
    let mut csv = Vec::new();
    let (m, site) = (&settings.metric, &settings.site);
    let mut markdown = format!("# {}", context.study);
    if !context.description.is_empty() {
        markdown += &format!(": {}", context.description);
    }
    let (name, unit) = metric_name_unit(m);
    markdown += &format!(
        "\n\nMetric: {name} of {} (`{m}` at `{site}`, {unit}), mean over heads and layers. ",
        site_title(site)
    );
    markdown += &if context.seeds > 1 {
        format!("Each value is the mean over a condition's seeds (n = {}) ± the half-width of its 95% confidence interval (Student's t).\n\n", context.seeds)
    } else {
        "One run per condition: no confidence intervals (add a `Seeds` axis for them).\n\n"
            .to_owned()
    };
    markdown += &format!("## Findings\n\n{}\n\n", findings(&context));

    let (md, text) = comparison_table(&context);
    let mut columns = vec![
        "val loss: validation loss (nats)".to_owned(),
        format!("{m}: {} of {}", metric_title(m), site_title(site)),
    ];
    columns.extend(
        others
            .iter()
            .map(|(_, o)| format!("{}: {}", o.replace('_', " "), metric_title(o))),
    );
    columns.extend(
        (opt_in.iter()).map(|probe| format!("{}: {}", probe.key.replace('_', " "), probe.about)),
    );
    columns.extend(sets.iter().map(|set| {
        format!("{set} loss: the loss on eval set `{set}` (nats); {set} gap: that loss minus the validation loss")
    }));
    markdown += &format!(
        "## Comparison\n\nLayer and probe columns are at the last point. Columns: {}.\n\n{md}\n",
        columns.join("; ")
    );
    csv.push(("comparison.csv".to_owned(), text));
    csv.push(("comparison_long.csv".to_owned(), long_table(&context)));
    if !context.pairs.is_empty() {
        let tested = tested_pairs(&context);
        let (md, text) = differences_table(&tested);
        let family = if settings.primary.is_empty() {
            "every difference in the table".to_owned()
        } else {
            "the study's primary comparisons (rows marked primary); the other rows are exploratory, p uncorrected".to_owned()
        };
        markdown += &format!(
            "## Paired differences\n\nEach row is a − b over the seeds both conditions ran (paired by seed): the mean difference, its 95% confidence interval (Student's t, not corrected), the paired t-test's p and its Holm-adjusted p over a family of {} tests ({family}). * marks p_Holm < 0.05: a difference the family-wise test shows. With few seeds the test has little power: an interval that includes zero bounds the difference, it does not show the conditions equal.\n\n{md}\n",
            family_size(&tested)
        );
        csv.push(("differences.csv".to_owned(), text));
    }
    if let Some(axis) = runs.iter().find_map(|r| r.x_path.clone()) {
        let curves = lr_sweep::curves(&runs, &lr_sweep::final_metric);
        let (md, files) = lr_section(&curves, &axis, &settings.metric);
        markdown += &md;
        csv.extend(files);
    }
    let (md, text) = layer_table(&context);
    let last = context.points.last().copied().unwrap_or(0);
    markdown += &format!(
        "## Layer-wise {m} at {} tokens\n\n{md}\n",
        tokens_title(last)
    );
    csv.push(("layers.csv".to_owned(), text));
    let (md, text) = trajectory_table(&context, &all_points);
    markdown += &format!("## {m} over training\n\n{md}\n");
    csv.push(("trajectories.csv".to_owned(), text));

    if !notes.is_empty() {
        markdown += &format!(
            "## Not complete\n\n{}\n",
            notes.iter().map(|n| format!("- {n}\n")).collect::<String>()
        );
    }
    Ok(Report {
        markdown,
        csv,
        runs,
    })
}

/// "done" for one run, "3/3 done" for seeds.
fn status_cell(condition: &Condition) -> String {
    match condition.runs.as_slice() {
        [run] => run.status.to_string(),
        runs => {
            let done = runs.iter().filter(|r| r.status == RunStatus::Done).count();
            format!("{done}/{} done", runs.len())
        }
    }
}

fn comparison_table(context: &Context) -> (String, String) {
    let mut header = vec!["condition".to_owned(), "status".to_owned()];
    if context.seeds > 1 {
        header.push("n".to_owned());
    }
    header.extend(context.quantities.iter().map(|q| q.title.clone()));
    let rows: Vec<Vec<String>> = context
        .conditions
        .iter()
        .map(|c| {
            let mut row = vec![c.title(), status_cell(c)];
            if context.seeds > 1 {
                row.push(c.runs.len().to_string());
            }
            for q in &context.quantities {
                row.push(value_cell(c, &*q.value, q.digits));
            }
            row
        })
        .collect();
    table(&header, &rows)
}

/// Every estimate in long form: condition, description, quantity, mean, sd, n, ci_low,
/// ci_high (empty where undefined).
fn long_table(context: &Context) -> String {
    let mut csv = "condition,description,quantity,mean,sd,n,ci_low,ci_high\n".to_owned();
    let num = |v: f64| {
        if v.is_nan() {
            String::new()
        } else {
            v.to_string()
        }
    };
    for c in &context.conditions {
        for q in &context.quantities {
            let Some(e) = c.estimate(&*q.value) else {
                continue;
            };
            let (lo, hi) = e.ci.unwrap_or((f64::NAN, f64::NAN));
            csv += &format!(
                "{},{},{},{},{},{},{},{}\n",
                csv_field(&c.name),
                csv_field(&c.description),
                q.key,
                num(e.mean),
                num(e.sd),
                e.n,
                num(lo),
                num(hi)
            );
        }
    }
    csv
}

fn differences_table(tested: &[PairTests]) -> (String, String) {
    let mut header = vec!["a − b".to_owned(), "family".to_owned(), "n".to_owned()];
    if let Some(first) = tested.first() {
        header.extend(first.cells.iter().map(|(q, _)| format!("Δ {}", q.title)));
    }
    let rows: Vec<Vec<String>> = tested
        .iter()
        .map(|pair| {
            let mut row = vec![
                format!("{} − {}", pair.a.name, pair.b.name),
                if pair.primary {
                    "primary"
                } else {
                    "exploratory"
                }
                .to_owned(),
                pair.n().to_string(),
            ];
            row.extend(pair.cells.iter().map(|(q, t)| match t {
                Some(t) => t.cell(q.digits),
                None => "-".to_owned(),
            }));
            row
        })
        .collect();
    table(&header, &rows)
}

fn layer_table(context: &Context) -> (String, String) {
    let last = context.points.last().copied().unwrap_or(0);
    let n_layers = layer_count(&context.conditions, last);
    let header: Vec<String> = std::iter::once("layer".to_owned())
        .chain(context.conditions.iter().map(Condition::title))
        .collect();
    let rows: Vec<Vec<String>> = (0..n_layers)
        .map(|layer| {
            std::iter::once(layer.to_string())
                .chain(
                    context
                        .conditions
                        .iter()
                        .map(|c| value_cell(c, &|r| r.layers_at(last).get(layer).copied(), 2)),
                )
                .collect()
        })
        .collect();
    table(&header, &rows)
}

fn trajectory_table(context: &Context, points: &[u64]) -> (String, String) {
    let header: Vec<String> = std::iter::once("tokens".to_owned())
        .chain(context.conditions.iter().map(Condition::title))
        .collect();
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|&p| {
            std::iter::once(p.to_string())
                .chain(
                    context
                        .conditions
                        .iter()
                        .map(|c| value_cell(c, &|r| r.model_at(p), 2)),
                )
                .collect()
        })
        .collect();
    table(&header, &rows)
}

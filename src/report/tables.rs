//! Builds the report's tables from the runs' results.

use std::path::Path;

use crate::plan::build_plan;
use crate::probe::site_name;
use crate::spec::load_study;
use crate::spec::study::ReportSpec;
use crate::store::manifest::RunStatus;

use crate::store::{run_name, RunPaths};

use super::load::{load_run, run_names, RunResults};

/// What the report shows, from the study's `report` section.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Probe site (`k_rope` for the seed study).
    pub site: String,
    /// Probe metric (`study_pr`: the seed study's participation ratio).
    pub metric: String,
    /// Layers below this value are counted as collapsed.
    pub threshold: f64,
    /// Token points of the side-by-side table (empty: the defaults).
    pub at_tokens: Vec<u64>,
}

impl ReportSettings {
    pub fn from_spec(spec: &ReportSpec) -> Self {
        ReportSettings {
            site: site_name(spec.site).to_owned(),
            metric: spec.metric.name().to_owned(),
            threshold: spec.layer_threshold,
            at_tokens: spec.at_tokens.clone(),
        }
    }
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings::from_spec(&ReportSpec::default())
    }
}

/// A rendered report.
#[derive(Debug, Clone)]
pub struct Report {
    pub markdown: String,
    /// (file name, CSV text) of each table.
    pub csv: Vec<(String, String)>,
    /// The runs compared, in matrix order (for the figures).
    pub runs: Vec<RunResults>,
}

/// A table cell: "-" when missing or NaN, "inf" for a value beyond what the data
/// resolves (a condition number past float32 precision).
fn fmt(value: Option<f64>, digits: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        Some(v) if v.is_infinite() => if v > 0.0 { "inf" } else { "-inf" }.to_owned(),
        _ => "-".to_owned(),
    }
}

/// A markdown table and the same table as CSV.
fn table(header: &[String], rows: &[Vec<String>]) -> (String, String) {
    let mut md = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    let mut csv = header.join(",") + "\n";
    for row in rows {
        md += &format!("| {} |\n", row.join(" | "));
        csv += &(row.join(",") + "\n");
    }
    (md, csv)
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
/// running, failed or missing are listed as such.
pub fn build_report(study_dir: &Path, settings: &ReportSettings) -> Result<Report, String> {
    let names = run_names(study_dir);
    if names.is_empty() {
        return Err(format!(
            "{} has no run directories (runs/...)",
            study_dir.display()
        ));
    }
    // The study as it is now: only runs of its current matrix are compared.
    let expected: Option<Vec<(String, String)>> = load_study(&study_dir.join("study.ron"))
        .ok()
        .and_then(|loaded| build_plan(&loaded).ok())
        .map(|plan| {
            plan.runs
                .iter()
                .map(|r| (r.label.clone(), run_name(r)))
                .collect()
        });
    let mut runs: Vec<RunResults> = Vec::new();
    let mut notes = Vec::new();
    for name in &names {
        if let Some(expected) = &expected {
            if !expected.iter().any(|(_, n)| n == name) {
                notes.push(format!(
                    "{name}: results of an earlier version of the study, not compared"
                ));
                continue;
            }
        }
        match load_run(
            &RunPaths::named(study_dir, name),
            &settings.site,
            &settings.metric,
        ) {
            Some(run) => runs.push(run),
            None => notes.push(format!("{name}: no readable manifest, skipped")),
        }
    }
    if let Some(expected) = &expected {
        for (label, _) in expected {
            if !runs.iter().any(|r| &r.label == label) {
                notes.push(format!("{label}: no results yet"));
            }
        }
    }
    for run in &runs {
        for file in &run.unreadable {
            notes.push(format!("{}: cannot read {file}; left out", run.label));
        }
        if run.status != RunStatus::Done {
            notes.push(format!(
                "{}: {}, shown as far as it got",
                run.label, run.status
            ));
        }
        if run.heads.is_empty() {
            notes.push(format!(
                "{}: no probes of {} at {}",
                run.label, settings.metric, settings.site
            ));
        }
    }
    runs.sort_by_key(|r| r.index);
    let study = study_dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let (m, site, threshold) = (&settings.metric, &settings.site, settings.threshold);
    let mut markdown = format!("# {study}: {m} of {site}, mean over heads and layers\n\n");
    let mut csv = Vec::new();

    // The side-by-side table at the last probe point and the one nearest 2/3 of the budget.
    let budget = runs.iter().map(|r| r.budget).max().unwrap_or(0);
    let all_points: Vec<u64> = {
        let mut p: Vec<u64> = runs.iter().flat_map(|r| r.probe_tokens()).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
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
    let mut header = vec!["condition".to_owned(), "status".to_owned()];
    for p in &points {
        header.push(format!("val loss @{p}"));
        header.push(format!("{m} @{p}"));
    }
    header.extend(
        [
            "layer min",
            "layer mean",
            "layer max",
            &format!("layers < {threshold}"),
        ]
        .map(String::from),
    );
    // Each run's layer values at its last probe, shown by two tables.
    let finals: Vec<Vec<f64>> = runs.iter().map(RunResults::final_layers).collect();
    let rows: Vec<Vec<String>> = runs
        .iter()
        .zip(&finals)
        .map(|(run, final_layers)| {
            let mut row = vec![run.label.clone(), run.status.to_string()];
            for p in &points {
                row.push(fmt(run.val_loss.get(p).copied(), 4));
                row.push(fmt(run.model_at(*p), 2));
            }
            let min = final_layers.iter().copied().reduce(f64::min);
            let max = final_layers.iter().copied().reduce(f64::max);
            let mean = (!final_layers.is_empty())
                .then(|| final_layers.iter().sum::<f64>() / final_layers.len() as f64);
            row.extend([fmt(min, 2), fmt(mean, 2), fmt(max, 2)]);
            row.push(
                final_layers
                    .iter()
                    .filter(|&&v| v < threshold)
                    .count()
                    .to_string(),
            );
            row
        })
        .collect();
    let (md, text) = table(&header, &rows);
    markdown += &format!("## Comparison\n\nLayer columns are at each run's last probe.\n\n{md}\n");
    csv.push(("comparison.csv".to_owned(), text));

    // Layer-wise PR at each run's last probe.
    let n_layers = finals.iter().map(Vec::len).max().unwrap_or(0);
    let header: Vec<String> = std::iter::once("layer".to_owned())
        .chain(runs.iter().map(|r| r.label.clone()))
        .collect();
    let rows: Vec<Vec<String>> = (0..n_layers)
        .map(|layer| {
            std::iter::once(layer.to_string())
                .chain(finals.iter().map(|f| fmt(f.get(layer).copied(), 2)))
                .collect()
        })
        .collect();
    let (md, text) = table(&header, &rows);
    markdown += &format!("## Layer-wise {m} at the last probe\n\n{md}\n");
    csv.push(("layers.csv".to_owned(), text));

    // Trajectories.
    let header: Vec<String> = std::iter::once("tokens".to_owned())
        .chain(runs.iter().map(|r| r.label.clone()))
        .collect();
    let rows: Vec<Vec<String>> = all_points
        .iter()
        .map(|p| {
            std::iter::once(p.to_string())
                .chain(runs.iter().map(|r| fmt(r.model_at(*p), 2)))
                .collect()
        })
        .collect();
    let (md, text) = table(&header, &rows);
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

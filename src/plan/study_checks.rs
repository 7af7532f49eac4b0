//! Checks that need the whole run matrix: run labels that must fit in a directory name,
//! and the `report` section, which must name what the runs actually measure.

use crate::spec::{Diagnostic, LoadedStudy};

use super::PlannedRun;

/// The longest run label: `<label>-<12-hex id>.parquet` and its temporary name
/// (`.<name>.tmp-<pid>`) stay within the 255-byte file-name limit of common filesystems.
pub const MAX_LABEL_BYTES: usize = 200;

/// Runs whose label is too long to be a directory name.
pub fn label_diagnostics(loaded: &LoadedStudy, runs: &[PlannedRun]) -> Vec<Diagnostic> {
    let long: Vec<String> = runs
        .iter()
        .filter(|r| r.label.len() > MAX_LABEL_BYTES)
        .map(|r| r.label.clone())
        .collect();
    if long.is_empty() {
        return Vec::new();
    }
    let longest = long.iter().map(String::len).max().unwrap_or(0);
    vec![Diagnostic::new(format!(
        "a run label of {longest} bytes cannot be part of a directory name (at most {MAX_LABEL_BYTES})"
    ))
    .at(loaded.source.find_key_path(&["sweep"]))
    .in_file(loaded.source.path())
    .for_runs(long)
    .help("give the axes' points shorter names or `labels`: a run's label joins one label per axis")]
}

/// Problems of the `report` section: a threshold that is not a number, a site or metric
/// that some runs do not probe, report points beyond every run's budget.
pub fn report_diagnostics(loaded: &LoadedStudy, runs: &[PlannedRun]) -> Vec<Diagnostic> {
    let report = &loaded.study.report;
    let source = &loaded.source;
    let at = |field: &str| {
        source
            .find_key_path(&["report", field])
            .or_else(|| source.find_key_path(&["report"]))
    };
    let located = |message: String, field: &str, help: String| {
        Diagnostic::new(message)
            .at(at(field))
            .in_file(source.path())
            .help(help)
    };
    let mut diagnostics = Vec::new();
    if !report.layer_threshold.is_finite() {
        diagnostics.push(located(
            format!(
                "`report.layer_threshold` must be a finite number, got {}",
                report.layer_threshold
            ),
            "layer_threshold",
            "e.g. layer_threshold: 10.0 (layers below it count as collapsed)".to_owned(),
        ));
    }
    if report.metric.kind() != crate::spec::run_config::MetricKind::Rank {
        diagnostics.push(located(
            format!(
                "`report.metric` must be a rank metric of each head at `report.site`, not {:?}",
                report.metric
            ),
            "metric",
            "use StudyPr, CovariancePr, EntropyRank, StableRank, R90 or ConditionNumber; the report shows the other probes on their own".to_owned(),
        ));
    }
    for (a, b) in &report.differences {
        for name in [a, b] {
            if !runs.iter().any(|r| &r.condition == name) {
                let mut known: Vec<&str> = Vec::new();
                for run in runs {
                    if !known.contains(&run.condition.as_str()) {
                        known.push(&run.condition);
                    }
                }
                diagnostics.push(located(
                    format!("`report.differences` names condition `{name}`, which no run has"),
                    "differences",
                    format!("use the conditions' names: {}", known.join(", ")),
                ));
            }
        }
        if a == b {
            diagnostics.push(located(
                format!("`report.differences` compares `{a}` with itself"),
                "differences",
                "name two different conditions, e.g. (\"A1\", \"A2\")".to_owned(),
            ));
        }
    }
    let not_probing = |probed: &dyn Fn(&PlannedRun) -> bool| -> Vec<String> {
        runs.iter()
            .filter(|r| !probed(r))
            .map(|r| r.label.clone())
            .collect()
    };
    let missing_site = not_probing(&|r| r.config.probes.sites.contains(&report.site));
    if !missing_site.is_empty() {
        diagnostics.push(
            located(
                format!(
                    "the report shows site {:?} but these runs do not probe it",
                    report.site
                ),
                "site",
                "add the site to probes.sites, or set report.site to one of them".to_owned(),
            )
            .for_runs(missing_site),
        );
    }
    let missing_metric = not_probing(&|r| r.config.probes.metrics.contains(&report.metric));
    if !missing_metric.is_empty() {
        diagnostics.push(
            located(
                format!(
                    "the report shows metric {:?} but these runs do not compute it",
                    report.metric
                ),
                "metric",
                "add the metric to probes.metrics, or set report.metric to one of them".to_owned(),
            )
            .for_runs(missing_metric),
        );
    }
    let largest_budget = runs.iter().map(|r| r.config.schedule.tokens).max();
    if let Some(budget) = largest_budget {
        for &point in report.at_tokens.iter().filter(|&&point| point > budget) {
            diagnostics.push(located(
                format!(
                    "report point {point} is beyond every run's budget (at most {budget} tokens)"
                ),
                "at_tokens",
                format!(
                    "use points up to {budget}, or [] for the last probe and 2/3 of the budget"
                ),
            ));
        }
    }
    diagnostics
}

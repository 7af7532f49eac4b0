//! Which runs the report compares: those of the study as it is now, read back from
//! its results directory, with notes on what is missing, unreadable or unfinished.

use std::path::Path;

use crate::plan::build_plan;
use crate::spec::load_study;
use crate::store::finished::{recorded, Recorded};
use crate::store::manifest::RunStatus;
use crate::store::{run_name, RunPaths};

use super::load::{load_run, RunResults};
use super::settings::ReportSettings;
use crate::store::run_names;

/// The runs of `study_dir` that belong to the study as it is now, in matrix order, and
/// notes on what is missing, unreadable or unfinished.
pub(super) fn collect_runs(
    study_dir: &Path,
    settings: &ReportSettings,
) -> Result<(Vec<RunResults>, Vec<String>, String), String> {
    let names = run_names(study_dir);
    if names.is_empty() {
        return Err(format!(
            "{} has no run directories (runs/...)",
            study_dir.display()
        ));
    }
    // The study as it is now: only runs of its current matrix are compared.
    let loaded = load_study(&study_dir.join("study.ron")).ok();
    let description = loaded
        .as_ref()
        .map(|l| l.study.description.clone())
        .unwrap_or_default();
    let plan = loaded.and_then(|loaded| build_plan(&loaded).ok());
    let expected: Option<Vec<(String, String)>> = plan.as_ref().map(|plan| {
        plan.runs
            .iter()
            .map(|r| (r.label.clone(), run_name(r)))
            .collect()
    });
    // Whether a run is finished is decided as `sweep` and `missing` decide it.
    let contradicted: Vec<(String, String)> = plan
        .iter()
        .flat_map(|plan| &plan.runs)
        .filter_map(|run| match recorded(study_dir, run) {
            unfinished @ Recorded::Unfinished { why: Some(_), .. } => {
                Some((run.label.clone(), unfinished.describe()))
            }
            _ => None,
        })
        .collect();
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
            Some(mut run) => {
                let mut planned = plan.iter().flat_map(|p| &p.runs);
                if let Some(planned) = planned.find(|p| run_name(p) == *name) {
                    run.x = planned.x.as_ref().map(|(_, x)| *x);
                    run.x_path = planned.x.as_ref().map(|(path, _)| path.clone());
                    run.family = planned.family.clone();
                }
                runs.push(run)
            }
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
        if let Some((_, said)) = contradicted.iter().find(|(label, _)| label == &run.label) {
            notes.push(format!(
                "{}: {said}; not finished, shown as far as it got",
                run.label
            ));
        } else if run.status != RunStatus::Done {
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
    Ok((runs, notes, description))
}

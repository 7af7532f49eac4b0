//! The run matrix of a study: every run's label, run id and fully resolved config.

use std::collections::HashMap;

pub mod cost;
pub mod diff;
pub mod expand;
pub mod planned_run;
pub mod run_id;
pub mod study_checks;

use std::path::PathBuf;

use crate::spec::check::{check_run, Problem};
use crate::spec::inputs::check_inputs;
use crate::spec::patch::{Patch, PatchError};
use crate::spec::run_config::{Corpus, Tokenizer};
use crate::spec::study::Execution;
use crate::spec::suggest::closest;
use crate::spec::{
    base_problem, study_diagnostics, Diagnostic, Diagnostics, LoadedStudy, RunConfig,
};

use expand::{Assignment, Point};

pub use planned_run::PlannedRun;

/// A validated study, expanded.
#[derive(Debug, Clone)]
pub struct Plan {
    pub study: String,
    pub description: String,
    pub execution: Execution,
    pub source: PathBuf,
    pub runs: Vec<PlannedRun>,
    /// What the comparison report shows (`report: (...)` of the study).
    pub report: crate::spec::study::ReportSpec,
}

/// Expands and validates a study. Every problem found is returned at once.
pub fn build_plan(loaded: &LoadedStudy) -> Result<Plan, Diagnostics> {
    let mut diagnostics = study_diagnostics(loaded);
    let axes = match expand::axis_points(loaded) {
        Ok(axes) => axes,
        Err(mut errs) => {
            diagnostics.append(&mut errs);
            return Err(Diagnostics(diagnostics));
        }
    };
    let base_problems = check_run(&loaded.study.base);
    let mut per_run: Vec<(Diagnostic, String)> = Vec::new();
    let mut runs = Vec::new();
    let mut inputs_checked: Vec<((Corpus, Tokenizer), Vec<Problem>)> = Vec::new();
    for (index, points) in expand::product(&axes).into_iter().enumerate() {
        let label = expand::run_label(&points);
        match resolve(loaded, &points) {
            Ok(config) => {
                let mut problems = check_run(&config);
                problems.retain(|p| !base_problems.contains(p));
                // The files a run names are checked once per distinct corpus and tokenizer.
                let (corpus, tokenizer) = (&config.data.corpus, &config.data.tokenizer);
                let known = inputs_checked
                    .iter()
                    .find(|((c, t), _)| c == corpus && t == tokenizer);
                let inputs = match known {
                    Some((_, found)) => found.clone(),
                    None => {
                        let found = check_inputs(&config);
                        let key = (corpus.clone(), tokenizer.clone());
                        inputs_checked.push((key, found.clone()));
                        found
                    }
                };
                problems.extend(inputs);
                for problem in problems {
                    let diagnostic = run_problem(loaded, &points, &problem);
                    per_run.push((diagnostic, label.clone()));
                }
                runs.push(PlannedRun {
                    index,
                    condition: expand::run_condition(&points),
                    x: expand::run_x(&points),
                    family: expand::run_family(&points),
                    description: expand::run_description(&points),
                    id: run_id::run_id(&config),
                    label,
                    config,
                    overrides: points
                        .iter()
                        .flat_map(|p| &p.assignments)
                        .map(|a| (a.path.clone(), a.value.as_str().to_owned()))
                        .collect(),
                });
            }
            Err(diagnostic) => per_run.push((*diagnostic, label)),
        }
    }
    diagnostics.extend(group_by_runs(per_run));
    diagnostics.extend(duplicate_runs(loaded, &runs));
    diagnostics.extend(study_checks::label_diagnostics(loaded, &runs));
    diagnostics.extend(study_checks::report_diagnostics(loaded, &runs));
    if diagnostics.is_empty() {
        Ok(Plan {
            study: loaded.study.name.clone(),
            description: loaded.study.description.clone(),
            execution: loaded.study.execution.clone(),
            source: loaded.source.path().to_owned(),
            runs,
            report: loaded.study.report.clone(),
        })
    } else {
        Err(Diagnostics(diagnostics))
    }
}

/// The base config with the points' overrides applied in order.
fn resolve(loaded: &LoadedStudy, points: &[&Point]) -> Result<RunConfig, Box<Diagnostic>> {
    let mut config = loaded.study.base.clone();
    for assignment in points.iter().flat_map(|p| &p.assignments) {
        let path: Vec<&str> = assignment.path.split('.').collect();
        config
            .patch(&path, 0, assignment.value.as_str())
            .map_err(|err| Box::new(patch_diagnostic(loaded, assignment, &path, err)))?;
    }
    Ok(config)
}

fn patch_diagnostic(
    loaded: &LoadedStudy,
    assignment: &Assignment,
    path: &[&str],
    err: PatchError,
) -> Diagnostic {
    let full = &assignment.path;
    let (message, help) = match err {
        PatchError::NoSuchField {
            depth,
            expected,
            note,
        } => {
            let parent = if depth == 0 {
                "the run config".to_owned()
            } else {
                format!("`{}`", path[..depth].join("."))
            };
            let note = note.map(|n| format!(" ({n})")).unwrap_or_default();
            let help = match closest(path[depth], expected) {
                Some(best) => {
                    let mut fixed = path.to_vec();
                    fixed[depth] = best;
                    format!("did you mean `{}`?", fixed.join("."))
                }
                None => format!(
                    "fields of {parent}: {}",
                    crate::spec::suggest::quoted_list(expected)
                ),
            };
            (
                format!(
                    "override path `{full}`: {parent} has no field `{}`{note}",
                    path[depth]
                ),
                help,
            )
        }
        PatchError::NotAStruct { depth } => {
            let parent = path[..depth].join(".");
            (
                format!("override path `{full}`: `{parent}` is a single value without fields"),
                format!("set `{parent}` as a whole"),
            )
        }
        PatchError::BadValue { message } => (
            format!(
                "override `{full}` = `{}`: {message}",
                assignment.value.as_str()
            ),
            format!(
                "write it as the base config does, e.g. `{}`",
                diff::shown_value(&loaded.study.base, full)
            ),
        ),
    };
    Diagnostic::new(message)
        .at(assignment.location.clone())
        .in_file(loaded.source.path())
        .help(help)
}

/// A problem that only some runs have: point at the override that caused it, if any.
fn run_problem(loaded: &LoadedStudy, points: &[&Point], problem: &Problem) -> Diagnostic {
    let related = |a: &&Assignment| {
        let (field, path) = (problem.field.as_str(), a.path.as_str());
        field == path
            || field.starts_with(&format!("{path}."))
            || path.starts_with(&format!("{field}."))
    };
    // Else an override in the same section: `model.n_heads` makes `model.d_model` wrong.
    let section = |path: &str| path.split('.').next().unwrap_or("").to_owned();
    let same_section = |a: &&Assignment| section(&a.path) == section(&problem.field);
    let assignments = || points.iter().flat_map(|p| &p.assignments);
    match assignments()
        .find(related)
        .or_else(|| assignments().find(same_section))
    {
        Some(assignment) => Diagnostic::new(problem.message.clone())
            .at(assignment.location.clone())
            .in_file(loaded.source.path())
            .help(problem.help.clone()),
        None => base_problem(loaded, problem),
    }
}

/// Merges identical diagnostics of different runs into one that lists the runs.
fn group_by_runs(per_run: Vec<(Diagnostic, String)>) -> Vec<Diagnostic> {
    let mut grouped: Vec<Diagnostic> = Vec::new();
    for (diagnostic, label) in per_run {
        match grouped.iter_mut().find(|d| {
            Diagnostic {
                runs: Vec::new(),
                ..(*d).clone()
            } == diagnostic
        }) {
            Some(existing) => existing.runs.push(label),
            None => grouped.push(diagnostic.for_runs(vec![label])),
        }
    }
    grouped
}

/// Two runs with one label would share a directory; two with one id would train the same
/// thing twice.
fn duplicate_runs(loaded: &LoadedStudy, runs: &[PlannedRun]) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let mut by_label: HashMap<&str, &PlannedRun> = HashMap::with_capacity(runs.len());
    let mut by_id: HashMap<&str, &PlannedRun> = HashMap::with_capacity(runs.len());
    for run in runs {
        if let Some(first) = by_label.get(run.label.as_str()) {
            diagnostics.push(
                Diagnostic::new(format!("runs {} and {} have the same label `{}`", first.index + 1, run.index + 1, run.label))
                    .at(loaded.source.find_key_path(&["sweep"]))
                    .in_file(loaded.source.path())
                    .help("give the points of the sweep's axes labels that combine into distinct run labels"),
            );
        }
        if let Some(first) = by_id.get(run.id.as_str()) {
            diagnostics.push(
                Diagnostic::new(format!(
                    "runs `{}` and `{}` resolve to the same config (run id {})",
                    first.label, run.label, run.id
                ))
                .at(loaded.source.find_key_path(&["sweep"]))
                .in_file(loaded.source.path())
                .help("they would train the same thing twice: make their overrides differ or drop one"),
            );
        }
        by_label.entry(&run.label).or_insert(run);
        by_id.entry(&run.id).or_insert(run);
    }
    diagnostics
}

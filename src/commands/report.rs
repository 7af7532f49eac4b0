//! `rankprobe report STUDY_DIR`: the comparison tables of a study's results, written to
//! `STUDY_DIR/report/` and printed. `sweep` writes it at the end with the plan it ran.

use std::path::Path;

use crate::report::write::{write_report, WriteError, Written};
use crate::report::ReportSettings;

use crate::runner::notices::Printed;
use crate::runner::preflight::upgrade_results;

use super::Failure;

/// Writes the report of `study_dir` with `settings`, returning its text to print: the
/// markdown and the figures' names.
pub fn write_and_describe(study_dir: &Path, settings: &ReportSettings) -> Result<String, Failure> {
    let Written { markdown, figures } =
        write_report(study_dir, settings).map_err(|err| match err {
            WriteError::Results(why) => Failure::BadInput(why),
            WriteError::Storage(why) => Failure::RunFailed(why),
        })?;
    Ok(format!("{markdown}Figures: {}\n", figures.join(", ")))
}

pub fn report(study_dir: &Path) -> Result<(), Failure> {
    // The study's own report choices, when its copy is there and still parses.
    let loaded = crate::spec::load_study(&study_dir.join("study.ron")).ok();
    let settings = loaded
        .as_ref()
        .map(|loaded| ReportSettings::from_spec(&loaded.study.report))
        .unwrap_or_default();
    let plan = loaded.and_then(|loaded| crate::plan::build_plan(&loaded).ok());
    upgrade_results(study_dir, plan.as_ref(), &mut Printed)?;
    print!("{}", write_and_describe(study_dir, &settings)?);
    println!("(written to {})", study_dir.join("report").display());
    Ok(())
}

//! `rankprobe report STUDY_DIR`: the comparison tables of a study's results, written to
//! `STUDY_DIR/report/` and printed. `sweep` runs it at the end.

use std::path::Path;

use crate::atomic_file::write_atomic;
use crate::report::{build_report, figure_data, html, plots, ReportSettings};

use super::Failure;

/// Builds, writes and returns the report's markdown.
pub fn write_report(study_dir: &Path) -> Result<String, Failure> {
    // The study's own report choices, when its file is there and still parses.
    let loaded = crate::spec::load_study(&study_dir.join("study.ron")).ok();
    let settings = loaded
        .as_ref()
        .map(|loaded| ReportSettings::from_spec(&loaded.study.report))
        .unwrap_or_default();
    let plan = loaded.and_then(|loaded| crate::plan::build_plan(&loaded).ok());
    crate::runner::sweep::upgrade_results(study_dir, plan.as_ref())?;
    let mut report = build_report(study_dir, &settings).map_err(Failure::BadInput)?;
    // Labels, conditions and descriptions come from files on disk: no escape sequence of
    // theirs reaches a terminal (or a `cat` of the summary).
    report.markdown = crate::spec::diagnostic::printable(&report.markdown);
    let dir = study_dir.join("report");
    crate::atomic_file::create_dir_below(study_dir, &dir)
        .map_err(|e| Failure::RunFailed(format!("cannot create {}: {e}", dir.display())))?;
    let files = std::iter::once(("summary.md".to_owned(), report.markdown.clone()))
        .chain(report.csv.clone());
    for (name, text) in files {
        let path = dir.join(name);
        write_atomic(&path, text.as_bytes())
            .map_err(|e| Failure::RunFailed(format!("cannot write {}: {e}", path.display())))?;
    }
    let figures = figure_data::figures(&report.runs, &settings);
    let mut written = plots::write_plots(&dir, &figures).map_err(|e| {
        Failure::RunFailed(format!("cannot draw the figures in {}: {e}", dir.display()))
    })?;
    // The same figures and tables as one interactive page that works offline.
    let title = format!(
        "{} report",
        study_dir.file_name().unwrap_or_default().to_string_lossy()
    );
    let page = html::page(&title, &report.markdown, &figures, &report.csv);
    let path = dir.join("report.html");
    write_atomic(&path, page.as_bytes())
        .map_err(|e| Failure::RunFailed(format!("cannot write {}: {e}", path.display())))?;
    written.push("report.html".to_owned());
    let figures = written;
    Ok(format!(
        "{}Figures: {}\n",
        report.markdown,
        figures.join(", ")
    ))
}

pub fn report(study_dir: &Path) -> Result<(), Failure> {
    let markdown = write_report(study_dir)?;
    print!("{markdown}");
    println!("(written to {})", study_dir.join("report").display());
    Ok(())
}

//! Writes a study's report into `<study dir>/report/`: summary.md and the CSV tables,
//! the PNG figures, and report.html; every file atomically.

use std::path::Path;

use crate::atomic_file::{create_dir_below, write_atomic};

use super::{build_report, figure_data, html, plots, ReportSettings};

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The report as markdown, safe to print (no escape sequence from a file on disk).
    pub markdown: String,
    /// The figure files, by name (PNGs, then report.html).
    pub figures: Vec<String>,
}

/// Why a report could not be written.
#[derive(Debug)]
pub enum WriteError {
    /// The results cannot make a report (no runs, unreadable tables).
    Results(String),
    /// A file could not be written.
    Storage(String),
}

/// Builds the report of the results in `study_dir` with `settings` and writes it.
pub fn write_report(study_dir: &Path, settings: &ReportSettings) -> Result<Written, WriteError> {
    let mut report = build_report(study_dir, settings).map_err(WriteError::Results)?;
    // Labels, conditions and descriptions come from files on disk: no escape sequence of
    // theirs reaches a terminal (or a `cat` of the summary).
    report.markdown = crate::spec::diagnostic::printable(&report.markdown);
    let dir = study_dir.join("report");
    let storage = |what: &str, path: &Path, err: std::io::Error| {
        WriteError::Storage(format!("cannot {what} {}: {err}", path.display()))
    };
    create_dir_below(study_dir, &dir).map_err(|e| storage("create", &dir, e))?;
    let files = std::iter::once(("summary.md".to_owned(), report.markdown.clone()))
        .chain(report.csv.clone());
    for (name, text) in files {
        let path = dir.join(name);
        write_atomic(&path, text.as_bytes()).map_err(|e| storage("write", &path, e))?;
    }
    let figures = figure_data::figures(&report.runs, settings);
    let mut written = plots::write_plots(&dir, &figures).map_err(|e| {
        WriteError::Storage(format!("cannot draw the figures in {}: {e}", dir.display()))
    })?;
    // The same figures and tables as one interactive page that works offline.
    let title = format!(
        "{} report",
        study_dir.file_name().unwrap_or_default().to_string_lossy()
    );
    let page = html::page(&title, &report.markdown, &figures, &report.csv);
    let path = dir.join("report.html");
    write_atomic(&path, page.as_bytes()).map_err(|e| storage("write", &path, e))?;
    written.push("report.html".to_owned());
    Ok(Written {
        markdown: report.markdown,
        figures: written,
    })
}

//! Whether a run is finished: the one answer `sweep`, `run`, `missing` and `report` use.
//! A run is finished when its manifest (for exactly its run id) records a final status
//! and both of its tables are there as it recorded them: regular files, with the SHA-256
//! the manifest holds, readable parquet with the table's schema, every row naming the run.
//! A foreign or damaged file under a finished run's name leaves it unfinished.

use std::path::Path;

use polars::prelude::DataFrame;

use crate::plan::PlannedRun;

use super::frame::{read_result, RunKeys};
use super::manifest::{Manifest, RunStatus};
use super::metrics::metrics_frame;
use super::probes::probes_frame;
use super::{recorded_manifest, RunPaths, Table};

/// What the results directory holds of a run.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// Finished (done or diverged), every file as its manifest recorded it.
    Finished(Box<Manifest>),
    /// Not finished: the status its manifest records (none without a manifest) and, for a
    /// run whose manifest says finished, why its files do not bear that out.
    Unfinished {
        status: Option<RunStatus>,
        why: Option<String>,
    },
}

impl Recorded {
    pub fn is_finished(&self) -> bool {
        matches!(self, Recorded::Finished(_))
    }

    /// The status as a user should read it: "not started", "running", or a final
    /// status that its files contradict.
    pub fn describe(&self) -> String {
        match self {
            Recorded::Finished(manifest) => manifest.status.to_string(),
            Recorded::Unfinished { status: None, .. } => "not started".to_owned(),
            Recorded::Unfinished {
                status: Some(status),
                why: None,
            } => status.to_string(),
            Recorded::Unfinished {
                status: Some(status),
                why: Some(why),
            } => format!("marked {status}, but {why}"),
        }
    }
}

/// The status of `run` in `study_dir` if it is finished (done or diverged under the same
/// run id, with results that read back); `Err` says why a run marked finished is not
/// (its files are damaged or foreign), to be trained again.
pub fn finished_status(study_dir: &Path, run: &PlannedRun) -> Result<Option<RunStatus>, String> {
    match recorded(study_dir, run) {
        Recorded::Finished(manifest) => Ok(Some(manifest.status)),
        unfinished @ Recorded::Unfinished { why: Some(_), .. } => {
            Err(crate::spec::diagnostic::one_line(&unfinished.describe()))
        }
        Recorded::Unfinished { .. } => Ok(None),
    }
}

/// What `study_dir` holds of `run`.
pub fn recorded(study_dir: &Path, run: &PlannedRun) -> Recorded {
    let Some(manifest) = recorded_manifest(study_dir, run) else {
        return Recorded::Unfinished {
            status: None,
            why: None,
        };
    };
    if !manifest.status.is_final() {
        return Recorded::Unfinished {
            status: Some(manifest.status),
            why: None,
        };
    }
    let paths = RunPaths::of(study_dir, run);
    for table in Table::ALL {
        if let Err(why) = check_table(paths.table(table), table, &manifest) {
            return Recorded::Unfinished {
                status: Some(manifest.status),
                why: Some(format!("{} {why}", table.file_name())),
            };
        }
    }
    Recorded::Finished(Box::new(manifest))
}

/// Whether `path` holds the run's `table` as `manifest` recorded it.
fn check_table(path: &Path, table: Table, manifest: &Manifest) -> Result<(), String> {
    if !manifest.checksums.contains_key(table.file_name()) {
        return Err("has no checksum in the manifest".to_owned());
    }
    let frame =
        read_result(path, table, Some(manifest)).map_err(|e| format!("cannot be read ({e})"))?;
    let keys = RunKeys::of(manifest);
    let expected = match table {
        Table::Metrics => metrics_frame(&keys, &[]),
        Table::Probes => probes_frame(&keys, &[]),
    }
    .map_err(|e| e.to_string())?;
    if frame.schema() != expected.schema() {
        return Err(format!(
            "has columns that are not the table's ({:?})",
            frame.get_column_names()
        ));
    }
    if !all_rows_name(&frame, &manifest.run_id) {
        return Err(format!(
            "holds rows of a run other than {}",
            manifest.run_id
        ));
    }
    Ok(())
}

fn all_rows_name(frame: &DataFrame, run_id: &str) -> bool {
    frame
        .column("run_id")
        .ok()
        .and_then(|c| c.str().ok().cloned())
        .is_some_and(|ids| ids.iter().all(|id| id == Some(run_id)))
}

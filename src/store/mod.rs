//! The results layout on disk and how files get there (atomically).
//!
//! `results/<study>/study.ron` is the study file as given; every run lives in
//! `results/<study>/run=<label>-<run id>/` (hive-style, so dataframe tools can read the
//! run as a column). A changed config changes the id, so old results stay beside new ones.

pub mod frame;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod probes;

use std::path::{Path, PathBuf};

pub use crate::atomic_file::write_atomic;
use crate::plan::PlannedRun;

/// `results/<study>`.
pub fn study_dir(results_root: &Path, study: &str) -> PathBuf {
    results_root.join(study)
}

/// `run=<label>-<id>`.
pub fn run_dir_name(run: &PlannedRun) -> String {
    format!("run={}-{}", run.label, run.id)
}

/// The manifest recorded for `run` under `study_dir`, if its directory has one for
/// exactly this run id.
pub fn recorded_manifest(study_dir: &Path, run: &PlannedRun) -> Option<manifest::Manifest> {
    manifest::Manifest::read_for(&study_dir.join(run_dir_name(run)), &run.id)
}

/// The status recorded for `run` under `study_dir` (see `recorded_manifest`).
pub fn recorded_status(study_dir: &Path, run: &PlannedRun) -> Option<manifest::RunStatus> {
    recorded_manifest(study_dir, run).map(|m| m.status)
}

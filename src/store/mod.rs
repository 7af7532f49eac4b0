//! The results layout on disk and how files get there (atomically).
//!
//! ```text
//! results/<study>/study.ron                       the study file as given
//! results/<study>/metrics/<label>-<run id>.parquet   one table per directory, so that
//! results/<study>/probes/<label>-<run id>.parquet    each reads as one dataset
//! results/<study>/runs/<label>-<run id>/          manifest.json, run.ron, checkpoint
//! results/<study>/report/                         tables and figures
//! ```
//!
//! Every row of the tables names its study, condition, label, run id and seed, so
//! `pandas.read_parquet("results/<study>/metrics")` (or a glob in duckdb and polars)
//! reads every run in one call. A changed config changes the id, so old results stay
//! beside new ones.

pub mod finished;
pub mod frame;
pub mod layout_upgrade;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod probes;
pub mod table;
pub mod weights;

use std::path::{Path, PathBuf};

pub use crate::atomic_file::{create_dir_below, write_atomic};
use crate::plan::PlannedRun;

pub use table::Table;

/// `results/<study>`.
pub fn study_dir(results_root: &Path, study: &str) -> PathBuf {
    results_root.join(study)
}

/// Where the run directories of a study live.
pub const RUNS_DIR: &str = "runs";

/// The names (`<label>-<id>`) of a study's run directories, sorted.
pub fn run_names(study_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(study_dir.join(RUNS_DIR)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        // The entry's own type: a link planted among the runs is not a run.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `<label>-<id>`: a run's directory and the stem of its table files.
pub fn run_name(run: &PlannedRun) -> String {
    format!("{}-{}", run.label, run.id)
}

/// The files of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    /// `runs/<name>/`: manifest, resolved config, checkpoint, lock.
    pub dir: PathBuf,
    /// `<study>/metrics/<name>.parquet` and `<study>/probes/<name>.parquet`.
    tables: [PathBuf; 2],
}

impl RunPaths {
    /// The paths of the run called `name` (`<label>-<id>`) in `study_dir`.
    pub fn named(study_dir: &Path, name: &str) -> RunPaths {
        let table = |t: Table| study_dir.join(t.dir_name()).join(format!("{name}.parquet"));
        RunPaths {
            dir: study_dir.join(RUNS_DIR).join(name),
            tables: Table::ALL.map(table),
        }
    }

    pub fn of(study_dir: &Path, run: &PlannedRun) -> RunPaths {
        RunPaths::named(study_dir, &run_name(run))
    }

    /// The study directory the run is in (`<study>` of `<study>/runs/<name>`).
    pub fn study_dir(&self) -> &Path {
        self.dir
            .ancestors()
            .nth(2)
            .expect("runs/<name> is in a study")
    }

    /// The run's file of `table`.
    pub fn table(&self, table: Table) -> &Path {
        &self.tables[table as usize]
    }

    /// Creates the run's directory and the table directories, refusing any of them (or
    /// the study directory) that is a symbolic link: below the results root, rankprobe
    /// writes only into directories that are really there.
    pub fn create_dirs(&self) -> std::io::Result<()> {
        let root = self.study_dir().parent().unwrap_or(Path::new("."));
        create_dir_below(root, &self.dir)?;
        for path in &self.tables {
            create_dir_below(root, path.parent().expect("tables are in a directory"))?;
        }
        Ok(())
    }
}

/// The manifest recorded for `run` under `study_dir`, if its directory has one for
/// exactly this run id.
pub fn recorded_manifest(study_dir: &Path, run: &PlannedRun) -> Option<manifest::Manifest> {
    manifest::Manifest::read_for(&RunPaths::of(study_dir, run).dir, &run.id)
}

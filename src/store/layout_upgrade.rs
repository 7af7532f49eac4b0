//! Moves results written by earlier versions (`<study>/run=<label>-<id>/` holding the
//! run's manifest and both tables, rows keyed by one `run` column) into today's layout
//! (see `store`), so that a study keeps its finished runs and checkpoints across the
//! upgrade. Each step can be repeated: a process killed midway leaves a directory the
//! next call finishes. Nothing here follows a symbolic link: a linked run directory is
//! left where it is, so the upgrade never rewrites or deletes files outside the study.

use std::fs;
use std::io;
use std::path::Path;

use polars::prelude::DataFrame;

use crate::plan::Plan;
use crate::spec::diagnostic::one_line;

use super::frame::{keyed_frame, read_result, write_parquet, RunKeys};
use super::manifest::Manifest;
use super::{RunPaths, Table, RUNS_DIR};

/// The prefix of a run directory in the earlier layout.
const OLD_PREFIX: &str = "run=";

/// `upgrade_layout`, its lines made printable and its error a sentence.
pub fn upgrade_results(study_dir: &Path, plan: Option<&Plan>) -> Result<Vec<String>, String> {
    let moved = upgrade_layout(study_dir, plan).map_err(|err| {
        format!(
            "cannot move the earlier results in {} into today's layout: {err}",
            study_dir.display()
        )
    })?;
    Ok(moved.iter().map(|line| one_line(line)).collect())
}

/// Moves every earlier-layout run directory of `study_dir` into today's layout; returns
/// one line per run moved. `plan` (the study as it is now) names the runs' conditions;
/// runs it does not hold keep their label as their condition.
pub fn upgrade_layout(study_dir: &Path, plan: Option<&Plan>) -> io::Result<Vec<String>> {
    let Ok(entries) = fs::read_dir(study_dir) else {
        return Ok(Vec::new());
    };
    let mut old: Vec<String> = entries
        .filter_map(Result::ok)
        // The entry's own type (not followed): a link to a directory is not one.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|name| name.starts_with(OLD_PREFIX))
        .collect();
    old.sort();
    let mut moved = Vec::new();
    for dir_name in old {
        let name = &dir_name[OLD_PREFIX.len()..];
        let old_dir = study_dir.join(&dir_name);
        let paths = RunPaths::named(study_dir, name);
        if fs::symlink_metadata(&paths.dir).is_ok() {
            continue; // Both layouts hold this run: keep today's, leave the old one alone.
        }
        paths.create_dirs()?;
        if let Some(mut manifest) = Manifest::read(&old_dir) {
            let planned = plan.and_then(|p| p.runs.iter().find(|r| r.id == manifest.run_id));
            manifest.condition =
                Some(planned.map_or(manifest.label.clone(), |r| r.condition.clone()));
            manifest.description = planned.map(|r| r.description.clone());
            let keys = RunKeys::of(&manifest);
            for table in Table::ALL {
                let old_file = old_dir.join(table.file_name());
                // A link is not a table of this run: leave it alone.
                if !fs::symlink_metadata(&old_file).is_ok_and(|m| m.is_file()) {
                    continue;
                }
                // An unreadable table stays in the run directory, where nothing reads it.
                let Ok(frame) = read_result(&old_file, table, Some(&manifest)) else {
                    continue;
                };
                let mut keyed = with_keys(frame, &keys).map_err(io::Error::other)?;
                let sum = write_parquet(paths.table(table), &mut keyed)?;
                manifest.checksums.insert(table.file_name().to_owned(), sum);
                manifest.write(&old_dir)?;
                fs::remove_file(&old_file)?;
            }
        }
        fs::rename(&old_dir, &paths.dir)?;
        moved.push(format!("{dir_name} -> {RUNS_DIR}/{name}"));
    }
    Ok(moved)
}

/// `frame` with the key columns in place of its `run` column.
fn with_keys(frame: DataFrame, keys: &RunKeys) -> polars::prelude::PolarsResult<DataFrame> {
    let frame = frame.drop("run")?;
    let height = frame.height();
    keyed_frame(keys, height, frame.columns().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::frame::read_parquet;
    use crate::store::manifest::sha256_file;
    use polars::prelude::{Column, DataFrame};

    /// The manifest of the tiny test study's first run, as an earlier version wrote it.
    fn sample_manifest() -> Manifest {
        let loaded = crate::spec::load_study(Path::new("tests/studies/tiny.ron")).unwrap();
        let plan = crate::plan::build_plan(&loaded).unwrap();
        let run = &plan.runs[0];
        Manifest::starting(&plan.study, "A1", "abc", 0, run.config.clone())
    }

    #[test]
    fn an_earlier_run_directory_moves_with_its_rows_keyed() {
        let study = std::env::temp_dir().join(format!("rankprobe-upgrade-{}", std::process::id()));
        let _ = fs::remove_dir_all(&study);
        let old = study.join("run=A1-abc");
        fs::create_dir_all(&old).unwrap();
        let mut manifest = sample_manifest();
        let run = Column::new("run".into(), vec!["A1-abc"; 2]);
        let step = Column::new("step".into(), vec![1u64, 2]);
        let mut frame = DataFrame::new(2, vec![run, step]).unwrap();
        let sum = write_parquet(&old.join("metrics.parquet"), &mut frame).unwrap();
        manifest.checksums.insert("metrics.parquet".into(), sum);
        fs::write(old.join("checkpoint.bin"), b"state").unwrap();
        manifest.write(&old).unwrap();

        let moved = upgrade_layout(&study, None).unwrap();
        assert_eq!(moved, vec!["run=A1-abc -> runs/A1-abc"]);
        let paths = RunPaths::named(&study, "A1-abc");
        assert!(!old.exists());
        assert_eq!(
            fs::read(paths.dir.join("checkpoint.bin")).unwrap(),
            b"state"
        );
        let table = paths.table(Table::Metrics);
        let frame = read_parquet(table).unwrap();
        let names: Vec<&str> = frame
            .get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(
            names,
            ["study", "condition", "label", "run_id", "seed", "step"]
        );
        let manifest = Manifest::read(&paths.dir).unwrap();
        assert_eq!(
            manifest.checksums["metrics.parquet"],
            sha256_file(table).unwrap()
        );
        assert_eq!(manifest.condition.as_deref(), Some("A1"));
        // Nothing left to do the second time.
        assert!(upgrade_layout(&study, None).unwrap().is_empty());
        fs::remove_dir_all(&study).unwrap();
    }
}

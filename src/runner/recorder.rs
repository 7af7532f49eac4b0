//! Connects a training run to the results store and the progress display.

use std::collections::HashMap;

use polars::prelude::{DataFrame, PolarsResult};

use crate::model::snapshot::NamedTensor;

use crate::probe::ProbeRow;
use crate::store::frame::{read_result, rekeyed, rows_through_step, write_parquet, RunKeys};
use crate::store::manifest::Manifest;
use crate::store::metrics::metrics_frame;
use crate::store::probes::probes_frame;
use crate::store::weights::{self, FINAL_WEIGHTS_FILE};
use crate::store::{RunPaths, Table};
use crate::train::{MetricRow, Split, TrainObserver};

use super::progress::Progress;

/// Collects a run's metrics and probes, rewrites its metrics and probes files after
/// every evaluation (so a crash loses at most the steps since),
/// then its manifest with their SHA-256s, and moves the progress bar. A resumed run's
/// earlier rows come first, unchanged.
pub struct RunRecorder<'a> {
    paths: RunPaths,
    /// The run's manifest: its checksums follow every write of the result files (a crash
    /// between the two writes leaves a mismatch, and the files are set aside on resume).
    pub manifest: Manifest,
    /// Rows of the sessions before a resume: (metrics, probes).
    earlier: Option<(DataFrame, DataFrame)>,
    rows: Vec<MetricRow>,
    probes: Vec<ProbeRow>,
    progress: &'a mut Progress,
    /// Whether the files lack something recorded here (an evaluation followed by a
    /// checkpoint would otherwise write the same files twice).
    unsaved: bool,
    /// The first write error; reported when the run ends.
    error: Option<std::io::Error>,
}

impl<'a> RunRecorder<'a> {
    pub fn new(paths: RunPaths, progress: &'a mut Progress, manifest: Manifest) -> Self {
        RunRecorder {
            paths,
            manifest,
            earlier: None,
            rows: Vec::new(),
            probes: Vec::new(),
            progress,
            // A run's files are written at least once, even if it records nothing.
            unsaved: true,
            error: None,
        }
    }

    /// A line for the user, printed without breaking the progress display.
    pub fn note(&mut self, text: &str) {
        self.progress.println(text);
    }

    /// Continues a run resumed at `step`: keeps the rows its files hold up to that step
    /// (later ones were recorded after the checkpoint and will be measured again).
    pub fn resume_at(&mut self, step: u64) -> std::io::Result<()> {
        self.earlier = Some(rows_through(&self.paths, &self.manifest, step, None)?);
        // The files still hold the rows after `step`.
        self.unsaved = true;
        Ok(())
    }

    /// Continues from another run's final state at `step` (`runner::continuation`): takes
    /// over that run's rows, read from `from` as its manifest recorded them, naming this
    /// run.
    pub fn continue_from(
        &mut self,
        from: &RunPaths,
        manifest: &Manifest,
        step: u64,
    ) -> std::io::Result<()> {
        let keys = RunKeys::of(&self.manifest);
        self.earlier = Some(rows_through(from, manifest, step, Some(&keys))?);
        self.unsaved = true;
        Ok(())
    }

    /// Forgets the rows of a resume (`resume_at`): the run starts over from step 0.
    pub fn restart(&mut self) {
        self.earlier = None;
        self.rows.clear();
        self.probes.clear();
        self.unsaved = true;
    }

    /// Writes all metrics and probes so far; returns the first error seen during the run, if any.
    pub fn save(&mut self) -> std::io::Result<()> {
        self.write();
        self.error.take().map_or(Ok(()), Err)
    }

    fn write(&mut self) {
        if let Err(err) = self.try_write() {
            self.error.get_or_insert(err);
        }
    }

    fn try_write(&mut self) -> std::io::Result<()> {
        if !self.unsaved {
            return Ok(());
        }
        let earlier = self.earlier.as_ref();
        let with_earlier = |frame: PolarsResult<DataFrame>, earlier: Option<&DataFrame>| {
            let frame = frame?;
            match earlier {
                Some(earlier) => earlier.vstack(&frame),
                None => Ok(frame),
            }
            .map_err(std::io::Error::other)
        };
        // Every row names the run its manifest describes.
        let keys = RunKeys::of(&self.manifest);
        let metrics_now = metrics_frame(&keys, &self.rows);
        let mut metrics = with_earlier(metrics_now, earlier.map(|(m, _)| m))?;
        let metrics_path = self.paths.table(Table::Metrics);
        let metrics_sum = write_parquet(metrics_path, &mut metrics)?;
        let probes_now = probes_frame(&keys, &self.probes);
        let mut probes = with_earlier(probes_now, earlier.map(|(_, p)| p))?;
        let probes_sum = write_parquet(self.paths.table(Table::Probes), &mut probes)?;
        let checksums = &mut self.manifest.checksums;
        checksums.insert(Table::Metrics.file_name().to_owned(), metrics_sum);
        checksums.insert(Table::Probes.file_name().to_owned(), probes_sum);
        self.manifest.write(&self.paths.dir)?;
        self.unsaved = false;
        Ok(())
    }
}

/// The (metrics, probes) rows through `step` of the run at `paths`, read as `manifest`
/// recorded them; with `rekey`, naming that run instead.
fn rows_through(
    paths: &RunPaths,
    manifest: &Manifest,
    step: u64,
    rekey: Option<&RunKeys>,
) -> std::io::Result<(DataFrame, DataFrame)> {
    let rows = |table: Table| {
        let frame = read_result(paths.table(table), table, Some(manifest))?;
        let rows = rows_through_step(&frame, step);
        match rekey {
            Some(keys) => rows.and_then(|rows| rekeyed(&rows, keys)),
            None => rows,
        }
        .map_err(std::io::Error::other)
    };
    Ok((rows(Table::Metrics)?, rows(Table::Probes)?))
}

impl TrainObserver for RunRecorder<'_> {
    fn metric(&mut self, row: MetricRow) {
        self.rows.push(row);
        self.unsaved = true;
    }

    fn step_done(&mut self, tokens: u64, loss: f32, tokens_per_s: f64) {
        self.progress.step(tokens, loss, tokens_per_s);
    }

    fn probes(&mut self, rows: Vec<ProbeRow>) {
        self.probes.extend(rows);
        self.unsaved = true;
    }

    fn evaluated(&mut self) {
        self.write();
        let val_loss = self
            .rows
            .iter()
            .rev()
            .find(|r| r.split == Split::Val && r.metric == "loss");
        if let Some(row) = val_loss {
            self.progress.evaluated(row.value);
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.try_write()
    }

    /// Keeps the trained model as `final.safetensors` in the run directory, its SHA-256
    /// in the manifest (written with the tables right after).
    fn final_weights(&mut self, weights: Vec<NamedTensor>) {
        let manifest = &self.manifest;
        let metadata = HashMap::from([
            ("format".to_owned(), "rankprobe final weights".to_owned()),
            ("study".to_owned(), manifest.study.clone()),
            ("label".to_owned(), manifest.label.clone()),
            ("run_id".to_owned(), manifest.run_id.clone()),
        ]);
        let path = self.paths.dir.join(FINAL_WEIGHTS_FILE);
        match weights::write(&path, &weights, metadata) {
            Ok(sum) => {
                let checksums = &mut self.manifest.checksums;
                checksums.insert(FINAL_WEIGHTS_FILE.to_owned(), sum);
                self.unsaved = true;
            }
            Err(err) => {
                self.error.get_or_insert(err);
            }
        }
    }
}

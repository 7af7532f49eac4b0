//! Connects a training run to the results store and the progress display.

use std::path::{Path, PathBuf};

use crate::probe::ProbeRow;
use crate::store::metrics::{metrics_frame, write_parquet, METRICS_FILE};
use crate::store::probes::{probes_frame, PROBES_FILE};
use crate::train::{MetricRow, TrainObserver};

use super::progress::Progress;

/// Collects a run's metrics and probes, rewrites its `metrics.parquet` and
/// `probes.parquet` after every evaluation (so a crash loses at most the steps since),
/// and moves the progress bar.
pub struct RunRecorder<'a> {
    run: String,
    dir: PathBuf,
    rows: Vec<MetricRow>,
    probes: Vec<ProbeRow>,
    progress: &'a mut Progress,
    /// The first write error; reported when the run ends.
    error: Option<std::io::Error>,
}

impl<'a> RunRecorder<'a> {
    pub fn new(run: String, run_dir: &Path, progress: &'a mut Progress) -> Self {
        RunRecorder {
            run,
            dir: run_dir.to_owned(),
            rows: Vec::new(),
            probes: Vec::new(),
            progress,
            error: None,
        }
    }

    /// Writes all metrics and probes so far; returns the first error seen during the run, if any.
    pub fn save(&mut self) -> std::io::Result<()> {
        self.write();
        self.error.take().map_or(Ok(()), Err)
    }

    fn write(&mut self) {
        let metrics = metrics_frame(&self.run, &self.rows)
            .map_err(std::io::Error::other)
            .and_then(|mut frame| write_parquet(&self.dir.join(METRICS_FILE), &mut frame));
        let probes = probes_frame(&self.run, &self.probes)
            .map_err(std::io::Error::other)
            .and_then(|mut frame| write_parquet(&self.dir.join(PROBES_FILE), &mut frame));
        for result in [metrics, probes] {
            if let Err(err) = result {
                self.error.get_or_insert(err);
            }
        }
    }
}

impl TrainObserver for RunRecorder<'_> {
    fn metric(&mut self, row: MetricRow) {
        self.rows.push(row);
    }

    fn step_done(&mut self, tokens: u64, loss: f32, tokens_per_s: f64) {
        self.progress.step(tokens, loss, tokens_per_s);
    }

    fn probes(&mut self, rows: Vec<ProbeRow>) {
        self.probes.extend(rows);
    }

    fn evaluated(&mut self) {
        self.write();
    }
}

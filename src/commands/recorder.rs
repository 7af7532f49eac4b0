//! Connects a training run to the results store and the progress display.

use std::path::{Path, PathBuf};

use crate::store::metrics::{metrics_frame, write_parquet, METRICS_FILE};
use crate::train::{MetricRow, TrainObserver};

use super::progress::Progress;

/// Collects a run's metrics, rewrites its `metrics.parquet` after every evaluation (so a
/// crash loses at most the steps since), and moves the progress bar.
pub struct RunRecorder<'a> {
    run: String,
    path: PathBuf,
    rows: Vec<MetricRow>,
    progress: &'a mut Progress,
    /// The first write error; reported when the run ends.
    error: Option<std::io::Error>,
}

impl<'a> RunRecorder<'a> {
    pub fn new(run: String, run_dir: &Path, progress: &'a mut Progress) -> Self {
        RunRecorder {
            run,
            path: run_dir.join(METRICS_FILE),
            rows: Vec::new(),
            progress,
            error: None,
        }
    }

    /// Writes all metrics so far; returns the first error seen during the run, if any.
    pub fn save(&mut self) -> std::io::Result<()> {
        self.write();
        self.error.take().map_or(Ok(()), Err)
    }

    fn write(&mut self) {
        let result = metrics_frame(&self.run, &self.rows)
            .map_err(std::io::Error::other)
            .and_then(|mut frame| write_parquet(&self.path, &mut frame));
        if let Err(err) = result {
            self.error.get_or_insert(err);
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

    fn evaluated(&mut self) {
        self.write();
    }
}

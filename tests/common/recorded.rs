//! One run trained through the library with checkpoints, recording its train losses and
//! every checkpoint it wrote.

use std::path::{Path, PathBuf};

use rankprobe::data::prepare_dataset;
use rankprobe::plan::PlannedRun;
use rankprobe::train::checkpoint::Checkpoint;
use rankprobe::train::{
    train_run, CheckpointPolicy, MetricRow, Split, TrainObserver, TrainOptions,
};

/// Train losses, and every checkpoint as it was on disk when the next one was due.
pub struct Recorded {
    path: PathBuf,
    pub losses: Vec<(u64, f64)>,
    pub checkpoints: Vec<Checkpoint>,
}

impl TrainObserver for Recorded {
    fn metric(&mut self, row: MetricRow) {
        if row.split == Split::Train && row.metric == "loss" {
            self.losses.push((row.step, row.value));
        }
    }

    fn step_done(&mut self, _: u64, _: f32, _: f64) {}

    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(checkpoint) = Checkpoint::read(&self.path).unwrap() {
            self.checkpoints.push(checkpoint);
        }
        Ok(())
    }
}

/// Trains `run` in `dir` with a checkpoint every `every_steps` steps, from `resume` if
/// given; the last checkpoint is the one written at the last due step.
pub fn train_recorded(
    run: &PlannedRun,
    dir: &Path,
    every_steps: u64,
    resume: Option<Checkpoint>,
) -> Recorded {
    let path = dir.join("checkpoint.bin");
    let dataset = prepare_dataset(&run.config.data).unwrap();
    let mut recorded = Recorded {
        path: path.clone(),
        losses: Vec::new(),
        checkpoints: Vec::new(),
    };
    let options = TrainOptions {
        checkpoints: Some(CheckpointPolicy {
            path: path.clone(),
            run_id: run.id.clone(),
            every_tokens: Some(every_steps * run.config.data.tokens_per_step()),
            every: None,
            final_state: None,
        }),
        resume,
        ..TrainOptions::default()
    };
    train_run(&run.config, &dataset, &mut recorded, options).unwrap();
    recorded
        .checkpoints
        .push(Checkpoint::read(&path).unwrap().unwrap());
    recorded
}

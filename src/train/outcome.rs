//! How a training run ends: its outcome, or the error that stopped it.

use std::fmt;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done {
        steps: u64,
        tokens: u64,
        final_val_loss: f64,
        /// Time spent turning captured activations into rank metrics.
        probe_seconds: f64,
        /// Time spent writing checkpoints.
        checkpoint_seconds: f64,
        /// Wall time of the whole run, summed over its sessions (resumes).
        elapsed_s: f64,
    },
    /// Training stopped at `step` because the run diverged: a non-finite loss or
    /// gradient norm, or the study's loss rule (`schedule.divergence`); `reason` says which.
    Diverged { step: u64, reason: String },
    /// Stopped on request (Ctrl-C, SIGTERM) after `step` steps.
    Interrupted { step: u64 },
}

/// Why a run could not train.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainError {
    /// This run cannot train (its config, its data or its checkpoint).
    Run(String),
    /// Its checkpoint does not fit the run (what it holds could not have been written by
    /// it): set it aside and train from step 0. Nothing was trained.
    UnusableCheckpoint(String),
    /// Its results or checkpoint could not be written (a full disk, say): later runs
    /// would fail the same way.
    Storage(String),
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Run(why) => f.write_str(why),
            TrainError::UnusableCheckpoint(why) => write!(f, "the checkpoint does not fit: {why}"),
            TrainError::Storage(why) => write!(f, "cannot write results: {why}"),
        }
    }
}

impl std::error::Error for TrainError {}

/// Why the initial weights at `path` cannot start a run.
pub(super) fn init_error(path: &str, why: &str) -> TrainError {
    TrainError::Run(format!(
        "model.init_from `{path}` cannot start this run: {why}; give the weights of a run \
         with the same model shape and vocabulary (runs/<name>/final.safetensors)"
    ))
}

//! How to run one training run: device, checkpoints to write, one to resume from.

use std::path::PathBuf;
use std::time::Duration;

use crate::spec::Device;

use super::checkpoint::Checkpoint;

/// When a run writes checkpoints, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointPolicy {
    pub path: PathBuf,
    /// Recorded in the checkpoint, so that it is never resumed under another config.
    pub run_id: String,
    pub every_tokens: Option<u64>,
    pub every: Option<Duration>,
    /// Where to write the state at the end of a run that finishes its budget (a
    /// checkpoint at its last step), if it is to be kept.
    pub final_state: Option<PathBuf>,
}

/// How to run: the device (`Cpu` or `Cuda(n)`, see `device::resolve`), checkpoints to
/// write, and one to continue from.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub device: Device,
    /// f32 matrix products on TF32 tensor cores (CUDA; see `execution.tf32`).
    pub tf32: bool,
    pub checkpoints: Option<CheckpointPolicy>,
    pub resume: Option<Checkpoint>,
}

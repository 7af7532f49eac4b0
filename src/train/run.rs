//! Training one run: what can train, how a run ends, and the entry point that picks the
//! compiled model shape.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::data::Dataset;
use crate::model::shapes::{dispatch, not_compiled_help, ModelShape, ShapeRunner};
use crate::spec::run_config::RunConfig;
use crate::spec::Device;

use super::checkpoint::Checkpoint;
use super::observer::TrainObserver;
use super::run_loop::RunLoop;

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
    /// The loss became NaN or infinite at `step`.
    Diverged { step: u64, loss: f64 },
    /// Stopped on request (Ctrl-C, SIGTERM) after `step` steps.
    Interrupted { step: u64 },
}

/// Why a run could not train.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainError {
    /// This run cannot train (its config, its data or its checkpoint).
    Run(String),
    /// Its results or checkpoint could not be written (a full disk, say): later runs
    /// would fail the same way.
    Storage(String),
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Run(why) => f.write_str(why),
            TrainError::Storage(why) => write!(f, "cannot write results: {why}"),
        }
    }
}

impl std::error::Error for TrainError {}

/// Whether this build can train `config` at all; checked for every run before a sweep
/// starts, so that no work begins on a study that would fail later.
pub fn check_trainable(config: &RunConfig, vocab: usize) -> Result<(), TrainError> {
    if config.probes.spectra {
        return Err(TrainError::Run(
            "probes.spectra (storing singular spectra) is not implemented yet; set spectra: false"
                .to_owned(),
        ));
    }
    let shape = ModelShape::of(config, vocab);
    if !shape.is_compiled() {
        return Err(TrainError::Run(format!(
            "the model shape ({shape}) is not compiled into this binary; {}",
            not_compiled_help()
        )));
    }
    Ok(())
}

/// When a run writes checkpoints, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointPolicy {
    pub path: PathBuf,
    /// Recorded in the checkpoint, so that it is never resumed under another config.
    pub run_id: String,
    pub every_tokens: Option<u64>,
    pub every: Option<Duration>,
}

/// How to run: the device (`Cpu` or `Cuda(n)`, see `device::resolve`), checkpoints to
/// write, and one to continue from.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub device: Device,
    pub checkpoints: Option<CheckpointPolicy>,
    pub resume: Option<Checkpoint>,
}

/// Trains one run on `dataset`, reporting to `observer`.
pub fn train_run(
    config: &RunConfig,
    dataset: &Dataset,
    observer: &mut dyn TrainObserver,
    options: TrainOptions,
) -> Result<Outcome, TrainError> {
    check_trainable(config, dataset.tokenizer.vocab_size)?;
    let shape = ModelShape::of(config, dataset.tokenizer.vocab_size);
    dispatch(
        &shape,
        Trainer {
            config,
            dataset,
            observer,
            options,
        },
    )
    .unwrap_or_else(|| Err(TrainError::Run(format!("shape {shape} is not compiled in"))))
}

struct Trainer<'a> {
    config: &'a RunConfig,
    dataset: &'a Dataset,
    observer: &'a mut dyn TrainObserver,
    options: TrainOptions,
}

impl ShapeRunner for Trainer<'_> {
    type Output = Result<Outcome, TrainError>;

    fn run<
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
    >(
        self,
    ) -> Self::Output {
        match self.options.device {
            #[cfg(feature = "cuda")]
            Device::Cuda(_) => RunLoop::<dfdx::prelude::Cuda, V, M, HD, KVW, F, L>::new(
                self.config,
                self.dataset,
                self.options,
            )?
            .run(self.observer),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => Err(TrainError::Run(
                "this build has no CUDA support; build with --features cuda".to_owned(),
            )),
            Device::Cpu | Device::Auto => RunLoop::<dfdx::prelude::Cpu, V, M, HD, KVW, F, L>::new(
                self.config,
                self.dataset,
                self.options,
            )?
            .run(self.observer),
        }
    }
}

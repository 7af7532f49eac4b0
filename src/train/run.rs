//! Training one run: what can train, and the entry point that picks the compiled model
//! shape.

use crate::data::Dataset;
use crate::model::shapes::{dispatch, not_compiled_help, ModelShape, ShapeRunner};
use crate::model::weights_file::read_for;
use crate::spec::run_config::RunConfig;
use crate::spec::Device;

use super::observer::TrainObserver;
use super::options::TrainOptions;
use super::outcome::{init_error, Outcome, TrainError};
use super::run_loop::RunLoop;

/// Whether this build can train `config` at all; checked for every run before a sweep
/// starts, so that no work begins on a study that would fail later: what
/// `check_buildable` checks, and that the initial weights fit.
pub fn check_trainable(config: &RunConfig, vocab: usize) -> Result<(), TrainError> {
    check_buildable(config, vocab)?;
    if let Some(path) = &config.model.init_from {
        read_for(path, &config.model, vocab).map_err(|why| init_error(path, &why))?;
    }
    Ok(())
}

/// Whether this build has the run's model shape and every option it asks for (no file
/// is read: the initial weights are checked as they are loaded).
fn check_buildable(config: &RunConfig, vocab: usize) -> Result<(), TrainError> {
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

/// Trains one run on `dataset`, reporting to `observer`.
pub fn train_run(
    config: &RunConfig,
    dataset: &Dataset,
    observer: &mut dyn TrainObserver,
    options: TrainOptions,
) -> Result<Outcome, TrainError> {
    // The initial weights, if any, are read and checked once, as they are loaded.
    check_buildable(config, dataset.tokenizer.vocab_size)?;
    if let Some(why) = super::device::precision_error(config, options.device) {
        return Err(TrainError::Run(why));
    }
    // Every product of this run's model on this thread in its precision (CPU).
    let _products = crate::bf16_matmul::on_thread::Bf16Products::set(
        config.model.precision == crate::spec::run_config::Precision::Bf16,
    );
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

//! The training loop of one run on the CPU, for any compiled model shape.

use std::fmt;
use std::time::Instant;

use dfdx::optim::{Adam, AdamConfig, WeightDecay};
use dfdx::prelude::*;

use crate::data::batches::{eval_batch, Batch, TrainBatches};
use crate::data::Dataset;
use crate::model::init::init_model;
use crate::model::shapes::{dispatch, not_compiled_help, ModelShape, ShapeRunner};
use crate::model::{cross_entropy, Architecture, Constants, Taps, Transformer};
use crate::optim::groups::AdamWGroup;
use crate::optim::muon::Muon;
use crate::plan::cost::steps_and_tokens;
use crate::probe::measure;
use crate::spec::run_config::{AdamWConfig, OptimizerConfig, RunConfig};

use super::observer::{MetricRow, Split, TrainObserver};
use super::schedule::{eval_steps, lr_multiplier, probe_steps};

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done {
        steps: u64,
        tokens: u64,
        final_val_loss: f64,
        /// Time spent turning captured activations into rank metrics.
        probe_seconds: f64,
    },
    /// The loss became NaN or infinite at `step`.
    Diverged { step: u64, loss: f64 },
    /// Stopped on request (Ctrl-C, SIGTERM) after `step` steps.
    Interrupted { step: u64 },
}

/// Why a run could not train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainError(pub String);

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TrainError {}

/// Whether this build can train `config` at all; checked for every run before a sweep
/// starts, so that no work begins on a study that would fail later.
pub fn check_trainable(config: &RunConfig, vocab: usize) -> Result<(), TrainError> {
    if config.probes.spectra {
        return Err(TrainError(
            "probes.spectra (storing singular spectra) is not implemented yet; set spectra: false"
                .to_owned(),
        ));
    }
    let shape = ModelShape::of(config, vocab);
    if !shape.is_compiled() {
        return Err(TrainError(format!(
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
) -> Result<Outcome, TrainError> {
    check_trainable(config, dataset.tokenizer.vocab_size)?;
    let shape = ModelShape::of(config, dataset.tokenizer.vocab_size);
    dispatch(
        &shape,
        Trainer {
            config,
            dataset,
            observer,
        },
    )
    .unwrap_or_else(|| Err(TrainError(format!("shape {shape} is not compiled in"))))
}

struct Trainer<'a> {
    config: &'a RunConfig,
    dataset: &'a Dataset,
    observer: &'a mut dyn TrainObserver,
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
        train_shape::<V, M, HD, KVW, F, L>(self.config, self.dataset, self.observer)
    }
}

fn data_err(err: crate::data::DataError) -> TrainError {
    TrainError(err.to_string())
}

/// Token ids of a batch: inputs [batch, seq] and targets flattened to [batch * seq].
type TokenTensors = (
    Tensor<(usize, usize), usize, Cpu>,
    Tensor<(usize,), usize, Cpu>,
);

/// The batch's inputs as a [batch, seq] tensor and its targets flattened.
fn batch_tensors(dev: &Cpu, batch: &Batch) -> TokenTensors {
    let inputs = batch.inputs.iter().map(|&t| t as usize).collect();
    let targets = batch.targets.iter().map(|&t| t as usize).collect();
    (
        dev.tensor_from_vec(inputs, (batch.batch_size, batch.seq_len)),
        dev.tensor_from_vec(targets, (batch.batch_size * batch.seq_len,)),
    )
}

fn train_shape<
    const V: usize,
    const M: usize,
    const HD: usize,
    const KVW: usize,
    const F: usize,
    const L: usize,
>(
    config: &RunConfig,
    dataset: &Dataset,
    observer: &mut dyn TrainObserver,
) -> Result<Outcome, TrainError> {
    let started = Instant::now();
    let dev = Cpu::seed_from_u64(config.seed);
    let arch = Architecture::from_config(&config.model);
    let data = &config.data;
    let consts = Constants::<HD, Cpu>::new(&dev, &arch, data.seq_len);
    let mut model: Transformer<V, M, HD, KVW, F, L, f32, Cpu> =
        init_model(&dev, config.model.init_std);
    let mut optimizers = Optimizers::new(&config.optimizer, &model);
    let mut batches = TrainBatches::new(
        &dataset.splits.train,
        data.seq_len,
        data.batch_size,
        config.seed,
    )
    .map_err(data_err)?;
    let eval =
        eval_batch(&dataset.splits.val, data.seq_len, data.eval_sequences).map_err(data_err)?;
    let (eval_inputs, eval_targets) = batch_tensors(&dev, &eval);
    let (steps, _) = steps_and_tokens(config);
    let tokens_per_step = (data.batch_size * data.seq_len) as u64;
    let evals = eval_steps(config, steps);
    let probes = probe_steps(config, steps);
    let probe_rows = config.probes.eval_sequences * data.seq_len;
    let mut probe_seconds = 0.0;
    let mut train_seconds = 0.0;
    let mut last_val = f64::NAN;
    let mut grads = model.alloc_grads();
    for step in 0..=steps {
        let tokens = step * tokens_per_step;
        let elapsed = started.elapsed().as_secs_f64();
        if evals.contains(&step) {
            let probing = probes.contains(&step);
            let mut taps = Taps {
                sites: config.probes.sites.clone(),
                captured: Vec::new(),
            };
            let logits = model.forward(
                &arch,
                &consts,
                eval_inputs.clone(),
                model.embed.clone(),
                probing.then_some(&mut taps),
            );
            if probing {
                let probe_started = Instant::now();
                observer.probes(measure(
                    &taps.captured,
                    &config.probes.metrics,
                    probe_rows,
                    step,
                    tokens,
                ));
                probe_seconds += probe_started.elapsed().as_secs_f64();
            }
            last_val = f64::from(cross_entropy(logits, eval_targets.clone()).array());
            observer.metric(MetricRow {
                step,
                tokens,
                split: Split::Val,
                metric: "loss",
                value: last_val,
                elapsed_s: elapsed,
            });
            observer.evaluated();
            if !last_val.is_finite() {
                return Ok(Outcome::Diverged {
                    step,
                    loss: last_val,
                });
            }
        }
        if step == steps {
            break;
        }
        if super::interrupt::stop_requested() {
            return Ok(Outcome::Interrupted { step });
        }
        let step_started = Instant::now();
        let multiplier = lr_multiplier(
            &config.schedule.lr,
            tokens,
            tokens_per_step,
            config.schedule.tokens,
        );
        let (inputs, targets) = batch_tensors(&dev, &batches.batch(step));
        let logits = model.forward(
            &arch,
            &consts,
            inputs,
            model.embed.clone().traced(grads),
            None,
        );
        let loss = cross_entropy(logits, targets);
        let loss_value = loss.array();
        grads = loss.backward();
        if !loss_value.is_finite() {
            observer.metric(MetricRow {
                step: step + 1,
                tokens: tokens + tokens_per_step,
                split: Split::Train,
                metric: "loss",
                value: f64::from(loss_value),
                elapsed_s: started.elapsed().as_secs_f64(),
            });
            return Ok(Outcome::Diverged {
                step: step + 1,
                loss: f64::from(loss_value),
            });
        }
        let lrs = optimizers.step(&mut model, &grads, &arch, multiplier)?;
        model.zero_grads(&mut grads);
        train_seconds += step_started.elapsed().as_secs_f64();
        let done = (step + 1) * tokens_per_step;
        let tokens_per_s = done as f64 / train_seconds.max(1e-9);
        let elapsed = started.elapsed().as_secs_f64();
        let rows = [
            ("loss", f64::from(loss_value)),
            ("tokens_per_s", tokens_per_s),
        ];
        for (metric, value) in rows.into_iter().chain(lrs) {
            observer.metric(MetricRow {
                step: step + 1,
                tokens: done,
                split: Split::Train,
                metric,
                value,
                elapsed_s: elapsed,
            });
        }
        observer.step_done(done, loss_value, tokens_per_s);
    }
    Ok(Outcome::Done {
        steps,
        tokens: steps * tokens_per_step,
        final_val_loss: last_val,
        probe_seconds,
    })
}

/// The optimizers of a run: AdamW on everything, or Muon on the hidden matrices and
/// AdamW on the rest, each owning exactly its parameters.
enum Optimizers<
    const V: usize,
    const M: usize,
    const HD: usize,
    const KVW: usize,
    const F: usize,
    const L: usize,
> {
    AdamW {
        config: AdamWConfig,
        adam: Adam<Transformer<V, M, HD, KVW, F, L, f32, Cpu>, f32, Cpu>,
    },
    Muon {
        muon: Muon,
        lr: f64,
        config: AdamWConfig,
        adam: Adam<AdamWGroup<V, M, HD, KVW, F, L>, f32, Cpu>,
    },
}

fn adam_config(adamw: &AdamWConfig) -> AdamConfig {
    AdamConfig {
        lr: adamw.lr,
        betas: [adamw.betas.0, adamw.betas.1],
        eps: adamw.eps,
        weight_decay: Some(WeightDecay::Decoupled(adamw.weight_decay)),
    }
}

/// Applies an Adam update; tensors of other architecture variants (an untied head, a
/// SwiGLU gate, frozen gains) get no gradient, which is expected.
fn adam_update<Mod: TensorCollection<f32, Cpu>>(
    adam: &mut Adam<Mod, f32, Cpu>,
    module: &mut Mod,
    grads: &Gradients<f32, Cpu>,
) -> Result<(), TrainError> {
    match adam.update(module, grads) {
        Ok(()) | Err(OptimizerUpdateError::UnusedParams(_)) => Ok(()),
        Err(err) => Err(TrainError(format!("optimizer update failed: {err:?}"))),
    }
}

impl<
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
    > Optimizers<V, M, HD, KVW, F, L>
{
    fn new(config: &OptimizerConfig, model: &Transformer<V, M, HD, KVW, F, L, f32, Cpu>) -> Self {
        match config {
            OptimizerConfig::AdamW(adamw) => Optimizers::AdamW {
                config: adamw.clone(),
                adam: Adam::new(model, adam_config(adamw)),
            },
            OptimizerConfig::Muon(muon) => Optimizers::Muon {
                muon: Muon::new(muon),
                lr: muon.lr,
                config: muon.adamw.clone(),
                adam: Adam::new(AdamWGroup::of(model), adam_config(&muon.adamw)),
            },
        }
    }

    /// One update at the schedule's `multiplier`; returns the learning rates used, as
    /// metrics (`lr` is the main optimizer's, `adamw_lr` AdamW's in a Muon run).
    fn step(
        &mut self,
        model: &mut Transformer<V, M, HD, KVW, F, L, f32, Cpu>,
        grads: &Gradients<f32, Cpu>,
        arch: &Architecture,
        multiplier: f64,
    ) -> Result<Vec<(&'static str, f64)>, TrainError> {
        match self {
            Optimizers::AdamW { config, adam } => {
                adam.cfg.lr = config.lr * multiplier;
                adam_update(adam, model, grads)?;
                Ok(vec![("lr", adam.cfg.lr)])
            }
            Optimizers::Muon {
                muon,
                lr,
                config,
                adam,
            } => {
                let muon_lr = *lr * multiplier;
                muon.step(model, grads, arch.activation, muon_lr);
                adam.cfg.lr = config.lr * multiplier;
                adam_update(adam, AdamWGroup::of_mut(model), grads)?;
                Ok(vec![("lr", muon_lr), ("adamw_lr", adam.cfg.lr)])
            }
        }
    }
}

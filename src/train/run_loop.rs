//! The training loop of one run on the CPU for one compiled model shape: evaluate and
//! probe on schedule, step, checkpoint, and stop on divergence or request.

use std::time::Instant;

use dfdx::prelude::*;

use crate::data::batches::{eval_batch, Batch, TrainBatches};
use crate::data::Dataset;
use crate::model::init::init_model;
use crate::model::snapshot::{named_tensors, tensors_from_host, tensors_to_host};
use crate::model::weights_file::{load_into, read_for};
use crate::model::{Architecture, Constants, Taps, Transformer};
use crate::optim::grad_clip;
use crate::optim::qk_clip::QkClip;
use crate::optim::state::RestoreError;
use crate::optim::trained::{self, tensor_sizes, Reads};
use crate::optim::Optimizer;
use crate::plan::cost::steps_and_tokens;
use crate::profile;
use crate::spec::run_config::{EvalWindows, RunConfig};

use super::checkpoint::{Checkpoint, Counters, StateLayout};
use super::device::TrainDevice;
use super::observer::{
    eval_set_metric, layer_logit_metric, MetricRow, Split, TrainObserver, GRAD_NORM_METRIC,
    MAX_LOGIT_METRIC,
};
use super::options::{CheckpointPolicy, TrainOptions};
use super::outcome::{Outcome, TrainError};
use super::schedule::{eval_steps, lr_multiplier, probe_steps};

use crate::model::forward::TokenBatch as TokenTensors;

/// The batch's inputs as a [batch, seq] tensor and its targets flattened.
fn batch_tensors<D: TrainDevice>(dev: &D, batch: &Batch) -> TokenTensors<D> {
    let inputs = batch.inputs.iter().map(|&t| t as usize).collect();
    let targets = batch.targets.iter().map(|&t| t as usize).collect();
    (
        dev.tensor_from_vec(inputs, (batch.batch_size, batch.seq_len)),
        dev.tensor_from_vec(targets, (batch.batch_size * batch.seq_len,)),
    )
}

/// The metrics table's rows of one step's attention logits (per layer, per query head):
/// the largest over the model (`max_logit`) and each layer's (`max_logit.layer<i>`).
fn logit_rows(logits: &[Vec<f32>]) -> Vec<(&'static str, f64)> {
    if logits.is_empty() {
        return Vec::new();
    }
    let layers: Vec<f64> = (logits.iter())
        .map(|heads| f64::from(heads.iter().copied().fold(f32::NEG_INFINITY, f32::max)))
        .collect();
    let overall = layers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let per_layer = (layers.into_iter().enumerate()).map(|(l, v)| (layer_logit_metric(l), v));
    std::iter::once((MAX_LOGIT_METRIC, overall))
        .chain(per_layer)
        .collect()
}

fn data_err(err: crate::data::DataError) -> TrainError {
    TrainError::Run(err.to_string())
}

pub(super) struct RunLoop<
    'a,
    D: TrainDevice,
    const V: usize,
    const M: usize,
    const HD: usize,
    const KVW: usize,
    const F: usize,
    const L: usize,
> {
    pub(super) config: &'a RunConfig,
    pub(super) dev: D,
    pub(super) arch: Architecture,
    pub(super) consts: Constants<HD, D>,
    pub(super) model: Transformer<V, M, HD, KVW, F, L, f32, D>,
    pub(super) optimizer: Box<dyn Optimizer<Transformer<V, M, HD, KVW, F, L, f32, D>, D>>,
    /// QK-Clip after every optimizer step, when the model asks for it.
    pub(super) clip: Option<QkClip>,
    /// The tensors the model reads: the only ones with optimizer state and updates.
    pub(super) reads: Reads,
    pub(super) batches: TrainBatches<'a>,
    pub(super) eval: TokenTensors<D>,
    /// The extra evaluation sets' batches, by their loss metric (`loss.<name>`).
    pub(super) eval_sets: Vec<(&'static str, TokenTensors<D>)>,
    pub(super) steps: u64,
    pub(super) tokens_per_step: u64,
    /// The step the loop starts at: 0, or a resumed checkpoint's step (evaluated already).
    pub(super) start: u64,
    pub(super) counters: Counters,
    pub(super) checkpoints: Option<CheckpointPolicy>,
}

impl<
        'a,
        D: TrainDevice,
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
    > RunLoop<'a, D, V, M, HD, KVW, F, L>
{
    pub(super) fn new(
        config: &'a RunConfig,
        dataset: &'a Dataset,
        options: TrainOptions,
    ) -> Result<Self, TrainError> {
        let ordinal = match options.device {
            crate::spec::Device::Cuda(ordinal) => ordinal,
            _ => 0,
        };
        let dev = D::open(ordinal, config.seed, options.tf32)?;
        let arch = Architecture::from_config(&config.model);
        let data = &config.data;
        let batches = TrainBatches::new(
            &dataset.splits.train,
            data.seq_len,
            data.batch_size,
            config.seed,
        )
        .map_err(data_err)?;
        let eval = eval_batch(
            &dataset.splits.val,
            data.seq_len,
            data.eval_sequences,
            data.eval_windows,
        )
        .map_err(data_err)?;
        let mut eval_sets = Vec::new();
        for set in &dataset.eval_sets {
            let batch = eval_batch(
                &set.tokens,
                data.seq_len,
                data.eval_sequences,
                EvalWindows::Spread,
            )
            .map_err(|err| {
                TrainError::Run(format!("eval set `{}` ({}): {err}", set.name, set.origin))
            })?;
            eval_sets.push((eval_set_metric(&set.name), batch_tensors(&dev, &batch)));
        }
        let reads: Reads = {
            let arch = arch.clone();
            std::sync::Arc::new(move |path| arch.reads(path))
        };
        let mut run = RunLoop {
            config,
            consts: Constants::<HD, D>::new(&dev, &arch, data.seq_len),
            model: init_model(&dev, config.model.init_std),
            optimizer: crate::optim::build(
                &crate::optim::coupled_weight_decay(&config.optimizer, config.schedule.lr_scale),
                &arch,
                &reads,
            ),
            clip: (config.model.qk_clip)
                .map(|clip| QkClip::new(clip.tau, L, arch.n_heads, arch.n_kv_heads)),
            reads,
            batches,
            eval: batch_tensors(&dev, &eval),
            eval_sets,
            steps: steps_and_tokens(config).0,
            tokens_per_step: data.tokens_per_step(),
            start: 0,
            counters: Counters::start(),
            checkpoints: options.checkpoints,
            dev,
            arch,
        };
        if let Some(path) = &config.model.init_from {
            // Checked before the sweep too (`check_trainable`); read and checked as it is now.
            let init_error = |why: String| super::outcome::init_error(path, &why);
            let tensors = read_for(path, &config.model, V).map_err(init_error)?;
            load_into(&mut run.model, &tensors).map_err(init_error)?;
        }
        if let Some(checkpoint) = options.resume {
            run.restore(checkpoint)?;
        }
        Ok(run)
    }

    fn restore(&mut self, checkpoint: Checkpoint) -> Result<(), TrainError> {
        // Everything the checkpoint holds must fit this run before any of it is used:
        // the model here, the optimizer's state by the optimizer before it takes it.
        let layout = StateLayout {
            steps: self.steps,
            model: tensor_sizes(&mut self.model, &trained::all())
                .map_err(|e| TrainError::Run(format!("{e:?}")))?
                .into_iter()
                .map(|(len, _)| len)
                .collect(),
        };
        checkpoint
            .check(&layout)
            .map_err(TrainError::UnusableCheckpoint)?;
        let mut optimizer_state = checkpoint.optimizer;
        let mut clip = self.clip.clone();
        let restored = match &mut clip {
            // The clip's statistics are saved beside the optimizer's state.
            Some(clip) => clip.restore_from(&mut optimizer_state, checkpoint.step),
            None => Ok(()),
        }
        .and_then(|()| {
            self.optimizer
                .restore(&self.dev, &mut self.model, optimizer_state, checkpoint.step)
        });
        match restored {
            Ok(()) => {}
            Err(RestoreError::Misfit(why)) => return Err(TrainError::UnusableCheckpoint(why)),
            Err(RestoreError::Device(why)) => return Err(TrainError::Run(why)),
        }
        // A tensor the model does not read keeps its initial value: a checkpoint written
        // before such tensors were left alone holds a weight-decayed copy.
        tensors_from_host(&mut self.model, &checkpoint.model, &*self.reads)
            .map_err(|mismatch| TrainError::UnusableCheckpoint(mismatch.0))?;
        self.clip = clip;
        self.start = checkpoint.step;
        self.counters = checkpoint.counters;
        Ok(())
    }

    pub(super) fn run(mut self, observer: &mut dyn TrainObserver) -> Result<Outcome, TrainError> {
        let session = Instant::now();
        let elapsed_before = self.counters.elapsed_s;
        let elapsed = move || elapsed_before + session.elapsed().as_secs_f64();
        let evals = eval_steps(self.config, self.steps);
        let probes = probe_steps(self.config, self.steps);
        let mut last_checkpoint = (self.start, Instant::now());
        let mut grads = self.model.alloc_grads();
        for step in self.start..=self.steps {
            let tokens = step * self.tokens_per_step;
            let resumed_here = step == self.start && step > 0;
            if evals.contains(&step) && !resumed_here {
                self.evaluate(observer, step, probes.contains(&step), elapsed());
                if let Some(reason) = self.diverged_at_evaluation(step) {
                    return Ok(Outcome::Diverged { step, reason });
                }
            }
            if step == self.steps {
                break;
            }
            let stop = super::interrupt::stop_requested();
            if step > self.start && (stop || self.checkpoint_due(step, last_checkpoint)) {
                self.counters.elapsed_s = elapsed();
                let saving = Instant::now();
                self.save_checkpoint(observer, step)?;
                self.counters.checkpoint_seconds += saving.elapsed().as_secs_f64();
                last_checkpoint = (step, Instant::now());
            }
            if stop {
                return Ok(Outcome::Interrupted { step });
            }
            let step_started = Instant::now();
            let multiplier = self.config.schedule.lr_scale
                * lr_multiplier(
                    &self.config.schedule.lr,
                    tokens,
                    self.tokens_per_step,
                    self.config.schedule.tokens,
                );
            let (inputs, targets) = batch_tensors(&self.dev, &self.batches.batch(step));
            let forward_span = profile::span("step: forward + loss");
            // Each head's largest logit of this very forward pass: recorded every step
            // (attention-logit growth), and what QK-Clip reads. The attention kernel
            // finds them for its softmax anyway.
            let mut taps = Taps {
                max_logits: Some(Vec::new()),
                ..Taps::default()
            };
            let loss = self.model.training_loss(
                &self.arch,
                &self.consts,
                (inputs, targets),
                self.model.embed.clone().traced(grads),
                Some(&mut taps),
                self.config.schedule.z_loss.unwrap_or(0.0) as f32,
            );
            let loss_value = f64::from(loss.as_vec()[0]);
            drop(forward_span);
            let backward_span = profile::span("step: backward");
            grads = loss.backward();
            drop(backward_span);
            let done = (step + 1) * self.tokens_per_step;
            let mut row = |metric, value| {
                observer.metric(MetricRow {
                    step: step + 1,
                    tokens: done,
                    split: Split::Train,
                    metric,
                    value,
                    elapsed_s: elapsed(),
                })
            };
            let logits = taps.max_logits.unwrap_or_default();
            for (metric, value) in logit_rows(&logits) {
                row(metric, value);
            }
            if !loss_value.is_finite() {
                row("loss", loss_value);
                return Ok(Outcome::Diverged {
                    step: step + 1,
                    reason: format!("the training loss became {loss_value}"),
                });
            }
            let grad_norm = grad_clip::clip(
                &mut self.model,
                &mut grads,
                &self.reads,
                self.config.schedule.max_grad_norm,
            )
            .map_err(|err| TrainError::Run(format!("gradient norm: {err:?}")))?;
            row(GRAD_NORM_METRIC, grad_norm);
            if !grad_norm.is_finite() {
                row("loss", loss_value);
                return Ok(Outcome::Diverged {
                    step: step + 1,
                    reason: format!("the gradient norm became {grad_norm}"),
                });
            }
            let mut lrs = self
                .optimizer
                .step(&mut self.model, &mut grads, multiplier)
                .map_err(TrainError::Run)?;
            if let Some(clip) = &mut self.clip {
                let clipped = clip
                    .apply(&mut self.model, &logits)
                    .map_err(TrainError::Run)?;
                lrs.extend(clipped.metrics());
            }
            let zero_span = profile::span("step: zero gradients");
            self.model.zero_grads(&mut grads);
            drop(zero_span);
            self.counters.train_seconds += step_started.elapsed().as_secs_f64();
            let tokens_per_s = done as f64 / self.counters.train_seconds.max(1e-9);
            let rows = [("loss", loss_value), ("tokens_per_s", tokens_per_s)];
            for (metric, value) in rows.into_iter().chain(lrs) {
                row(metric, value);
            }
            observer.step_done(done, loss_value as f32, tokens_per_s);
        }
        observer.final_weights(named_tensors(&self.model, &*self.reads));
        if let Some(path) = self
            .checkpoints
            .as_ref()
            .and_then(|p| p.final_state.clone())
        {
            self.counters.elapsed_s = elapsed();
            self.write_state(self.steps, &path)?;
        }
        Ok(Outcome::Done {
            steps: self.steps,
            tokens: self.steps * self.tokens_per_step,
            final_val_loss: self.counters.last_val,
            probe_seconds: self.counters.probe_seconds,
            checkpoint_seconds: self.counters.checkpoint_seconds,
            elapsed_s: elapsed(),
        })
    }

    /// Why the run counts as diverged after the evaluation at `step` (its loss is in
    /// `counters.last_val`): a non-finite loss, or the study's rule of a loss above the
    /// step-0 loss plus a margin at several evaluations in a row.
    fn diverged_at_evaluation(&mut self, step: u64) -> Option<String> {
        let loss = self.counters.last_val;
        if !loss.is_finite() {
            return Some(format!("the validation loss became {loss}"));
        }
        if step == 0 {
            self.counters.initial_val = loss;
            return None;
        }
        let rule = self.config.schedule.divergence?;
        let bound = self.counters.initial_val + rule.margin;
        if loss > bound {
            self.counters.evals_above_bound += 1;
        } else {
            self.counters.evals_above_bound = 0;
        }
        (self.counters.evals_above_bound as usize >= rule.evaluations).then(|| {
            format!(
                "the validation loss {loss:.4} was above the step-0 loss {:.4} + margin {} at \
                 {} evaluations in a row",
                self.counters.initial_val, rule.margin, rule.evaluations
            )
        })
    }

    fn checkpoint_due(&self, step: u64, (last_step, last_time): (u64, Instant)) -> bool {
        let Some(policy) = &self.checkpoints else {
            return false;
        };
        let by_tokens = policy
            .every_tokens
            .is_some_and(|every| (step - last_step) * self.tokens_per_step >= every);
        let by_time = policy
            .every
            .is_some_and(|every| last_time.elapsed() >= every);
        by_tokens || by_time
    }

    /// Persists the observations so far, then the state after `step` steps, so that a
    /// checkpoint never points past the recorded metrics.
    fn save_checkpoint(
        &self,
        observer: &mut dyn TrainObserver,
        step: u64,
    ) -> Result<(), TrainError> {
        let Some(policy) = &self.checkpoints else {
            return Ok(());
        };
        let storage =
            |what: &str, err: std::io::Error| TrainError::Storage(format!("{what}: {err}"));
        observer
            .flush()
            .map_err(|err| storage("metrics before a checkpoint", err))?;
        self.write_state(step, &policy.path)
    }

    /// Writes the state after `step` steps to `path`, as a checkpoint.
    fn write_state(&self, step: u64, path: &std::path::Path) -> Result<(), TrainError> {
        let run_id = self.checkpoints.as_ref().map(|p| p.run_id.clone());
        let checkpoint = Checkpoint {
            run_id: run_id.unwrap_or_default(),
            step,
            counters: self.counters,
            model: tensors_to_host(&self.model),
            optimizer: {
                let mut state = self.optimizer.state(&self.dev).map_err(TrainError::Run)?;
                if let Some(clip) = &self.clip {
                    clip.save(&mut state);
                }
                state
            },
        };
        checkpoint
            .write(path)
            .map_err(|err| TrainError::Storage(format!("{}: {err}", path.display())))
    }
}

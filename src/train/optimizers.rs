//! The optimizers of a run: AdamW on everything, or Muon on the hidden matrices and
//! AdamW on the rest, each owning exactly its parameters among those the model reads;
//! their state for checkpoints.

use dfdx::prelude::*;

use crate::model::{Architecture, Transformer};
use crate::optim::adamw::{adam_config, AdamW, AdamWState};
use crate::optim::groups::AdamWGroup;
use crate::optim::muon::Muon;
use crate::optim::trained::{Reads, TensorSizes};
use crate::optim::MuonStep;
use crate::profile;
use crate::spec::run_config::{AdamWConfig, OptimizerConfig};

use super::device::TrainDevice;
use super::outcome::TrainError;

pub(super) enum Optimizers<
    D: TrainDevice,
    const V: usize,
    const M: usize,
    const HD: usize,
    const KVW: usize,
    const F: usize,
    const L: usize,
> {
    AdamW {
        config: AdamWConfig,
        adamw: AdamW<D>,
    },
    Muon {
        muon: D::Muon,
        lr: f64,
        config: AdamWConfig,
        adamw: AdamW<D>,
    },
}

fn device_err(err: impl std::fmt::Debug) -> TrainError {
    TrainError::Run(format!("optimizer update failed: {err:?}"))
}

impl<
        D: TrainDevice,
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
    > Optimizers<D, V, M, HD, KVW, F, L>
{
    /// The optimizers of `config`, owning the tensors that `reads` accepts.
    pub(super) fn new(config: &OptimizerConfig, reads: &Reads) -> Self {
        match config {
            OptimizerConfig::AdamW(adamw) => Optimizers::AdamW {
                config: adamw.clone(),
                adamw: AdamW::new(adam_config(adamw), reads.clone()),
            },
            OptimizerConfig::Muon(muon) => Optimizers::Muon {
                muon: D::muon(muon),
                lr: muon.lr,
                config: muon.adamw.clone(),
                adamw: AdamW::new(adam_config(&muon.adamw), reads.clone()),
            },
        }
    }

    /// One update at the schedule's `multiplier`; returns the learning rates used, as
    /// metrics (`lr` is the main optimizer's, `adamw_lr` AdamW's in a Muon run).
    pub(super) fn step(
        &mut self,
        model: &mut Transformer<V, M, HD, KVW, F, L, f32, D>,
        grads: &mut Gradients<f32, D>,
        arch: &Architecture,
        multiplier: f64,
    ) -> Result<Vec<(&'static str, f64)>, TrainError> {
        match self {
            Optimizers::AdamW { config, adamw } => {
                let _span = profile::span("step: AdamW update");
                adamw.cfg.lr = config.lr * multiplier;
                adamw.update(model, grads).map_err(device_err)?;
                Ok(vec![("lr", adamw.cfg.lr)])
            }
            Optimizers::Muon {
                muon,
                lr,
                config,
                adamw,
            } => {
                let muon_lr = *lr * multiplier;
                let muon_span = profile::span("step: Muon update");
                muon.step(model, grads, arch, muon_lr).map_err(device_err)?;
                drop(muon_span);
                let _span = profile::span("step: AdamW update");
                adamw.cfg.lr = config.lr * multiplier;
                adamw
                    .update(AdamWGroup::of_mut(model), grads)
                    .map_err(device_err)?;
                Ok(vec![("lr", muon_lr), ("adamw_lr", adamw.cfg.lr)])
            }
        }
    }

    /// AdamW's state and Muon's momentum buffers (none in an AdamW run).
    pub(super) fn state(&self, dev: &D) -> Result<(AdamWState, Vec<Vec<f32>>), TrainError> {
        Ok(match self {
            Optimizers::AdamW { adamw, .. } => (adamw.state(dev).map_err(device_err)?, Vec::new()),
            Optimizers::Muon { muon, adamw, .. } => (
                adamw.state(dev).map_err(device_err)?,
                muon.momentum_buffers().map_err(device_err)?,
            ),
        })
    }

    /// The tensors of AdamW's module (length, updated by AdamW) and the lengths of the
    /// Muon momentum buffers (none in an AdamW run), as a checkpoint of this run holds them.
    pub(super) fn state_sizes(
        &self,
        model: &mut Transformer<V, M, HD, KVW, F, L, f32, D>,
        optimizer: &OptimizerConfig,
        arch: &Architecture,
    ) -> Result<(TensorSizes, Vec<usize>), TrainError> {
        Ok(match (self, optimizer) {
            (Optimizers::AdamW { adamw, .. }, _) => {
                (adamw.tensor_sizes(model).map_err(device_err)?, Vec::new())
            }
            (Optimizers::Muon { adamw, .. }, OptimizerConfig::Muon(muon)) => {
                let group = AdamWGroup::of_mut(model);
                let matrices = Muon::matrices(muon, arch.activation, M, KVW, F, L);
                (
                    adamw.tensor_sizes(group).map_err(device_err)?,
                    matrices.iter().map(|m| m.rows * m.cols).collect(),
                )
            }
            (Optimizers::Muon { .. }, OptimizerConfig::AdamW(_)) => {
                unreachable!("the optimizers are built from this config")
            }
        })
    }

    pub(super) fn restore(
        &mut self,
        dev: &D,
        adamw_state: &AdamWState,
        momentum: Vec<Vec<f32>>,
    ) -> Result<(), TrainError> {
        match self {
            Optimizers::AdamW { adamw, .. } => {
                if !momentum.is_empty() {
                    return Err(TrainError::Run(
                        "the checkpoint holds Muon momentum but the run uses AdamW".to_owned(),
                    ));
                }
                adamw.restore(dev, adamw_state).map_err(device_err)
            }
            Optimizers::Muon { muon, adamw, .. } => {
                muon.restore_momentum(momentum).map_err(device_err)?;
                adamw.restore(dev, adamw_state).map_err(device_err)
            }
        }
    }
}

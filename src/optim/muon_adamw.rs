//! The optimizer of a `Muon(...)` run: Muon on the hidden matrices, AdamW on the rest
//! (embeddings, LM head, norm gains), each owning exactly its parameters (`groups.rs`).

use dfdx::prelude::*;

use crate::model::{Architecture, Transformer};
use crate::profile;
use crate::spec::run_config::MuonConfig;

use super::adamw::{adam_config, AdamW};
use super::device::OptimDevice;
use super::groups::AdamWGroup;
use super::muon::Muon;
use super::state::{OptimizerState, RestoreError};
use super::trained::Reads;
use super::{MuonStep, Optimizer};

/// The name of the momentum buffer of the Muon matrix at `index` (`Muon::matrices`
/// order) in a saved state.
pub fn momentum_name(index: usize) -> String {
    format!("muon.momentum.{index}")
}

pub struct MuonAdamW<D: OptimDevice> {
    config: MuonConfig,
    arch: Architecture,
    muon: D::Muon,
    adamw: AdamW<D>,
}

impl<D: OptimDevice> MuonAdamW<D> {
    pub fn new(config: &MuonConfig, arch: &Architecture, reads: &Reads) -> Self {
        MuonAdamW {
            config: config.clone(),
            arch: arch.clone(),
            muon: D::muon(config),
            adamw: AdamW::<D>::new(adam_config(&config.adamw), reads.clone()),
        }
    }
}

impl<
        D: OptimDevice,
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
    > Optimizer<Transformer<V, M, HD, KVW, F, L, f32, D>, D> for MuonAdamW<D>
{
    fn step(
        &mut self,
        model: &mut Transformer<V, M, HD, KVW, F, L, f32, D>,
        grads: &mut Gradients<f32, D>,
        multiplier: f64,
    ) -> Result<Vec<(&'static str, f64)>, String> {
        let muon_lr = self.config.lr * multiplier;
        let muon_span = profile::span("step: Muon update");
        self.muon
            .step(model, grads, &self.arch, muon_lr)
            .map_err(|err| format!("optimizer update failed: {err}"))?;
        drop(muon_span);
        let adamw_lr = self
            .adamw
            .update_scaled(AdamWGroup::of_mut(model), grads, multiplier)?;
        Ok(vec![("lr", muon_lr), ("adamw_lr", adamw_lr)])
    }

    fn state(&self, dev: &D) -> Result<OptimizerState, String> {
        let mut out = OptimizerState::default();
        self.adamw.save(dev, &mut out)?;
        for (index, buffer) in self.muon.momentum_buffers()?.into_iter().enumerate() {
            out.buffer(momentum_name(index), buffer);
        }
        Ok(out)
    }

    fn restore(
        &mut self,
        dev: &D,
        model: &mut Transformer<V, M, HD, KVW, F, L, f32, D>,
        state: OptimizerState,
        step: u64,
    ) -> Result<(), RestoreError> {
        let mut from = state.restoring()?;
        let adamw = self
            .adamw
            .take_state(AdamWGroup::of_mut(model), &mut from, step)?;
        // Every matrix has momentum after the first step, and a checkpoint is written
        // after one at least.
        let matrices = Muon::matrices(&self.config, self.arch.activation, M, KVW, HD, F, L);
        let momentum = (matrices.iter().enumerate())
            .map(|(index, m)| from.buffer(&momentum_name(index), m.rows * m.cols))
            .collect::<Result<Vec<_>, _>>()?;
        from.finish()?;
        let device = |err: String| RestoreError::Device(err);
        self.muon.restore_momentum(momentum).map_err(device)?;
        self.adamw
            .restore_state(dev, &adamw)
            .map_err(|err| device(format!("{err:?}")))
    }
}

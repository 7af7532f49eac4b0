//! Optimizers: each is one file implementing `Optimizer` (a step, its state by name,
//! a restore from it), chosen from the spec by `build`. Training and checkpoints see
//! only the trait and named state, so adding an optimizer touches the spec and this
//! module alone. Also: Muon's pieces (CPU reference, CUDA kernels, Newton-Schulz) and
//! the split of a model's parameters between Muon and AdamW.

pub mod adamw;
pub mod apply_update;
#[cfg(feature = "cuda")]
pub mod cuda_gemm;
#[cfg(feature = "cuda")]
pub mod cuda_muon;
pub mod device;
pub mod gemm_plan;
pub mod grad_clip;
pub mod groups;
pub mod host_buffers;
pub mod lion;
pub mod muon;
pub mod muon_adamw;
pub mod newton_schulz;
pub mod qk_clip;
pub mod state;
pub mod trained;

use dfdx::prelude::{Device, Gradients};

use crate::model::{Architecture, Transformer};
use crate::spec::run_config::OptimizerConfig;

use self::device::OptimDevice;
use self::state::{OptimizerState, RestoreError};
use self::trained::Reads;

/// An optimizer of a run's `Model` on device `D`. Errors other than a misfit state are
/// device errors, as text.
pub trait Optimizer<Model, D: Device<f32>> {
    /// One update of `model` from `grads` at `multiplier` times the configured learning
    /// rates (the schedule's); returns the rates used, as metrics: `lr` is the main
    /// optimizer's, others are named after theirs (`adamw_lr`).
    fn step(
        &mut self,
        model: &mut Model,
        grads: &mut Gradients<f32, D>,
        multiplier: f64,
    ) -> Result<Vec<(&'static str, f64)>, String>;

    /// Its state on the host, by name (for checkpoints).
    fn state(&self, dev: &D) -> Result<OptimizerState, String>;

    /// Continues from `state`, saved after `step` steps of training `model`. A state this
    /// optimizer could not have written for this model is refused (`Misfit`) before
    /// anything changes.
    fn restore(
        &mut self,
        dev: &D,
        model: &mut Model,
        state: OptimizerState,
        step: u64,
    ) -> Result<(), RestoreError>;
}

/// `config` with every independent weight decay (`independent_weight_decay`) turned into
/// the decoupled one the optimizers apply, p *= 1 - lr_t x wd': wd' = wd / (lr x
/// lr_scale), so that lr_t x wd' = wd x the schedule's multiplier at every step, whatever
/// the rate. Groups without it are unchanged.
pub fn coupled_weight_decay(config: &OptimizerConfig, lr_scale: f64) -> OptimizerConfig {
    let couple = |wd: &mut f64, lr: f64, independent: &mut bool| {
        if *independent {
            *wd /= lr * lr_scale;
            *independent = false;
        }
    };
    let mut out = config.clone();
    match &mut out {
        OptimizerConfig::AdamW(a) => {
            couple(&mut a.weight_decay, a.lr, &mut a.independent_weight_decay)
        }
        OptimizerConfig::Lion(l) => {
            couple(&mut l.weight_decay, l.lr, &mut l.independent_weight_decay)
        }
        OptimizerConfig::Muon(m) => {
            couple(&mut m.weight_decay, m.lr, &mut m.independent_weight_decay);
            let a = &mut m.adamw;
            couple(&mut a.weight_decay, a.lr, &mut a.independent_weight_decay);
        }
    }
    out
}

/// The optimizer `config` names for a model of `arch`, owning the tensors `reads` accepts.
pub fn build<
    D: OptimDevice,
    const V: usize,
    const M: usize,
    const HD: usize,
    const KVW: usize,
    const F: usize,
    const L: usize,
>(
    config: &OptimizerConfig,
    arch: &Architecture,
    reads: &Reads,
) -> Box<dyn Optimizer<Transformer<V, M, HD, KVW, F, L, f32, D>, D>> {
    match config {
        OptimizerConfig::AdamW(adamw) => Box::new(adamw::AdamW::<D>::new(
            adamw::adam_config(adamw),
            reads.clone(),
        )),
        OptimizerConfig::Muon(muon) => Box::new(muon_adamw::MuonAdamW::<D>::new(muon, arch, reads)),
        OptimizerConfig::Lion(lion) => Box::new(lion::Lion::new(lion, reads.clone())),
    }
}

/// Muon on one kind of device: the CPU reference (`muon::Muon`) or the CUDA kernels
/// (`cuda_muon::CudaMuon`). Errors are device errors, as text.
pub trait MuonStep<D: Device<f32>> {
    /// One step on every hidden matrix of `model` from `grads`, at learning rate `lr`.
    fn step<
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
    >(
        &mut self,
        model: &mut Transformer<V, M, HD, KVW, F, L, f32, D>,
        grads: &mut Gradients<f32, D>,
        arch: &Architecture,
        lr: f64,
    ) -> Result<(), String>;

    /// The momentum buffers on the host, one per Muon matrix (for checkpoints).
    fn momentum_buffers(&self) -> Result<Vec<Vec<f32>>, String>;

    fn restore_momentum(&mut self, buffers: Vec<Vec<f32>>) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::run_config::{AdamWConfig, LionConfig};

    #[test]
    fn independent_weight_decay_follows_the_schedule_not_the_rate() {
        let adamw = |wd, independent| AdamWConfig {
            lr: 0.004,
            betas: (0.9, 0.95),
            eps: 1e-8,
            weight_decay: wd,
            independent_weight_decay: independent,
        };
        // lr 0.004 x lr_scale 2.5 = 0.01: wd' = 1e-4 / 0.01; at schedule multiplier s the
        // rate is 0.01 s and the decay 0.01 s x 0.01 = 1e-4 s.
        let OptimizerConfig::AdamW(coupled) =
            coupled_weight_decay(&OptimizerConfig::AdamW(adamw(1e-4, true)), 2.5)
        else {
            unreachable!()
        };
        assert!((coupled.weight_decay - 0.01).abs() < 1e-15, "{coupled:?}");
        assert!(!coupled.independent_weight_decay);
        for schedule in [1.0, 0.3] {
            let lr_t = 0.004 * 2.5 * schedule;
            assert!((lr_t * coupled.weight_decay - 1e-4 * schedule).abs() < 1e-18);
        }
        // Coupled decays are left alone; in a Muon run each group converts on its own.
        let plain = OptimizerConfig::AdamW(adamw(0.1, false));
        assert_eq!(coupled_weight_decay(&plain, 2.5), plain);
        let lion = OptimizerConfig::Lion(LionConfig {
            lr: 1e-4,
            betas: (0.9, 0.99),
            weight_decay: 1e-3,
            independent_weight_decay: true,
        });
        let OptimizerConfig::Lion(lion) = coupled_weight_decay(&lion, 1.0) else {
            unreachable!()
        };
        assert!((lion.weight_decay - 10.0).abs() < 1e-12);
    }
}

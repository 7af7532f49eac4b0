//! Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), the
//! optimizer of a `Lion(...)` run, on every tensor the model reads:
//!
//!   c = beta1 * m + (1 - beta1) * g
//!   p = p * (1 - lr * weight_decay) - lr * sign(c)      (sign(0) = 0)
//!   m = beta2 * m + (1 - beta2) * g
//!
//! Every coordinate moves by exactly lr (plus decay), so Lion's learning rate is usually
//! 3-10x smaller than AdamW's and its weight decay as much larger. The update is
//! elementwise and computed on the host (a copy of each tensor and its gradient per
//! step; cheap on the CPU, a transfer each way on a GPU).

use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::*;

use crate::profile;
use crate::spec::run_config::LionConfig;

use super::device::OptimDevice;
use super::host_buffers::HostBuffers;
use super::state::{OptimizerState, RestoreError};
use super::trained::{self, state_at, Reads, TensorAction};
use super::Optimizer;

/// The name of the momentum of the tensor at `index` (visiting order) in a saved state.
pub fn momentum_name(index: usize) -> String {
    format!("lion.m.{index}")
}

pub struct Lion {
    config: LionConfig,
    reads: Reads,
    /// The learning rate of the current step.
    lr: f64,
    /// Momentum by the tensor's position in the visiting order; `None` until its first
    /// update, and always for a tensor not read.
    momentum: Vec<Option<Vec<f32>>>,
}

impl Lion {
    pub fn new(config: &LionConfig, reads: Reads) -> Self {
        Lion {
            config: config.clone(),
            reads,
            lr: config.lr,
            momentum: Vec::new(),
        }
    }

    /// One update of every tensor of `module` the model reads, at learning rate
    /// `multiplier * lr`; returns the rate.
    pub fn update<D: HostBuffers, Mod: TensorCollection<f32, D>>(
        &mut self,
        module: &mut Mod,
        grads: &mut Gradients<f32, D>,
        multiplier: f64,
    ) -> Result<f64, D::Err> {
        self.lr = self.config.lr * multiplier;
        let reads = self.reads.clone();
        trained::walk(module, &reads, &mut Update { opt: self, grads })?;
        Ok(self.lr)
    }
}

/// Lion's update of one tensor `param` from `grad`, advancing its momentum `m`.
pub fn lion_update(config: &LionConfig, lr: f64, param: &mut [f32], grad: &[f32], m: &mut [f32]) {
    let (b1, b2) = (config.betas.0 as f32, config.betas.1 as f32);
    let (lr, decay) = (lr as f32, (1.0 - lr * config.weight_decay) as f32);
    for ((p, g), m) in param.iter_mut().zip(grad).zip(m.iter_mut()) {
        let c = b1 * *m + (1.0 - b1) * g;
        let sign = if c > 0.0 {
            1.0
        } else if c < 0.0 {
            -1.0
        } else {
            c // 0 (either sign) or NaN, which then shows as divergence
        };
        *p = *p * decay - lr * sign;
        *m = b2 * *m + (1.0 - b2) * g;
    }
}

struct Update<'a, D: Device<f32>> {
    opt: &'a mut Lion,
    grads: &'a mut Gradients<f32, D>,
}

impl<D: HostBuffers> TensorAction<D> for Update<'_, D> {
    fn read<S: Shape>(
        &mut self,
        index: usize,
        param: &mut Tensor<S, f32, D>,
    ) -> Result<(), D::Err> {
        let len = param.shape().num_elements();
        let grad = {
            let slot = self.grads.get_or_alloc_mut(param)?;
            param.device().download(slot)?
        };
        let (config, lr) = (&self.opt.config, self.opt.lr);
        let m = state_at(&mut self.opt.momentum, index, || {
            Ok::<_, D::Err>(vec![0.0; len])
        })?;
        let mut values = param.as_vec();
        lion_update(config, lr, &mut values, &grad, m);
        param.copy_from(&values);
        Ok(())
    }

    fn unread(&mut self, index: usize, _len: usize) {
        if let Some(slot) = self.opt.momentum.get_mut(index) {
            *slot = None;
        }
    }
}

impl<D: OptimDevice, Model: TensorCollection<f32, D>> Optimizer<Model, D> for Lion {
    fn step(
        &mut self,
        model: &mut Model,
        grads: &mut Gradients<f32, D>,
        multiplier: f64,
    ) -> Result<Vec<(&'static str, f64)>, String> {
        let _span = profile::span("step: Lion update");
        let lr = self
            .update(model, grads, multiplier)
            .map_err(|err| format!("optimizer update failed: {err:?}"))?;
        Ok(vec![("lr", lr)])
    }

    fn state(&self, _dev: &D) -> Result<OptimizerState, String> {
        let mut out = OptimizerState::default();
        for (index, slot) in self.momentum.iter().enumerate() {
            if let Some(m) = slot {
                out.buffer(momentum_name(index), m.clone());
            }
        }
        Ok(out)
    }

    fn restore(
        &mut self,
        _dev: &D,
        model: &mut Model,
        state: OptimizerState,
        _step: u64,
    ) -> Result<(), RestoreError> {
        let mut from = state.restoring()?;
        let sizes = trained::tensor_sizes(model, &self.reads)
            .map_err(|err| RestoreError::Device(format!("{err:?}")))?;
        let mut momentum = Vec::with_capacity(sizes.len());
        for (index, (len, read)) in sizes.into_iter().enumerate() {
            let name = momentum_name(index);
            momentum.push(match read {
                true => Some(from.buffer(&name, len)?),
                false => None,
            });
        }
        from.finish()?;
        let used = momentum
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        momentum.truncate(used);
        self.momentum = momentum;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LionConfig {
        LionConfig {
            lr: 0.1,
            betas: (0.9, 0.99),
            weight_decay: 0.5,
            independent_weight_decay: false,
        }
    }

    #[test]
    fn two_steps_match_a_hand_computation() {
        let (mut p, mut m) = (vec![1.0f32, -2.0, 0.5], vec![0.0f32; 3]);
        // Step 1, m = 0: c = 0.1 g = [0.1, -0.3, 0] -> sign [1, -1, 0];
        // p = p * (1 - 0.05) - 0.1 sign = [0.85, -1.8, 0.475]; m = 0.01 g = [0.01, -0.03, 0].
        lion_update(&config(), 0.1, &mut p, &[1.0, -3.0, 0.0], &mut m);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(&p, &[0.85, -1.8, 0.475]), "{p:?}");
        assert!(close(&m, &[0.01, -0.03, 0.0]), "{m:?}");
        // Step 2, g = [-0.5, -0.5, 2]: c = 0.9 m + 0.1 g = [-0.041, -0.077, 0.2] -> [-1, -1, 1];
        // p = [0.8075 + 0.1, -1.71 + 0.1, 0.45125 - 0.1]; m = 0.99 m + 0.01 g.
        lion_update(&config(), 0.1, &mut p, &[-0.5, -0.5, 2.0], &mut m);
        assert!(close(&p, &[0.9075, -1.61, 0.35125]), "{p:?}");
        assert!(close(&m, &[0.0049, -0.0347, 0.02]), "{m:?}");
    }

    #[test]
    fn a_model_update_matches_the_elementwise_rule_and_skips_unread_tensors() {
        let dev = Cpu::seed_from_u64(3);
        let mut model: (Tensor<Rank1<4>, f32, Cpu>, Tensor<Rank1<2>, f32, Cpu>) =
            (dev.sample_normal(), dev.sample_normal());
        let before = (model.0.as_vec(), model.1.as_vec());
        let x: Tensor<Rank1<4>, f32, Cpu> = dev.tensor([0.5, -1.0, 2.0, 0.25]);
        let grads = (model.0.clone().traced(model.alloc_grads()) * x)
            .square()
            .sum()
            .backward();
        let grad = grads.get(&model.0).as_vec();
        // "1." is the second tensor of the tuple: not read.
        let reads: Reads = std::sync::Arc::new(|path: &str| !path.starts_with('1'));
        let mut lion = Lion::new(&config(), reads);
        let mut grads = grads;
        assert_eq!(lion.update(&mut model, &mut grads, 0.5).unwrap(), 0.05);
        let (mut expected, mut m) = (before.0.clone(), vec![0.0; 4]);
        lion_update(&config(), 0.05, &mut expected, &grad, &mut m);
        assert_eq!(model.0.as_vec(), expected);
        assert_eq!(model.1.as_vec(), before.1, "an unread tensor is left alone");
        assert_eq!(lion.momentum, vec![Some(m)]);
    }
}

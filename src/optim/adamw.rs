//! AdamW whose state rankprobe owns. dfdx's `Adam` keeps its moments private, so a run
//! using it could not be checkpointed; this one runs the very same dfdx Adam kernel
//! (decoupled weight decay) but keeps the moments where they can be saved and restored.

use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::*;

use crate::profile;
use crate::spec::run_config::AdamWConfig;

use super::device::OptimDevice;
use super::host_buffers::{Buffer, HostBuffers};
use super::state::{OptimizerState, RestoreError, Restoring};
use super::trained::{self, Reads, TensorAction};
use super::Optimizer;

/// The names of AdamW's items in a saved state: its step counter and, for the tensor at
/// `index` of its module's visiting order, the first and second moments.
pub const STEP: &str = "adamw.step";

pub fn moment_names(index: usize) -> (String, String) {
    (format!("adamw.m.{index}"), format!("adamw.v.{index}"))
}

/// AdamW over the tensors of the module it is applied to that the model reads; apply one
/// instance to one parameter group only (it keeps one step counter).
pub struct AdamW<D: Device<f32>> {
    pub cfg: AdamConfig,
    /// The configured learning rate, before any schedule.
    base_lr: f64,
    reads: Reads,
    /// Updates taken so far (Adam's bias correction).
    step: i32,
    /// First and second moments, by the tensor's position in the visiting order;
    /// `None` until the tensor's first update, and always for a tensor not read.
    moments: Vec<Option<(Buffer<D>, Buffer<D>)>>,
}

/// The state of an `AdamW` on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWState {
    pub step: i32,
    pub moments: Vec<Option<(Vec<f32>, Vec<f32>)>>,
}

/// dfdx's Adam settings for an AdamW config (learning rate before any schedule).
pub fn adam_config(adamw: &AdamWConfig) -> AdamConfig {
    AdamConfig {
        lr: adamw.lr,
        betas: [adamw.betas.0, adamw.betas.1],
        eps: adamw.eps,
        weight_decay: Some(WeightDecay::Decoupled(adamw.weight_decay)),
    }
}

impl<D: HostBuffers> AdamW<D> {
    /// AdamW on the tensors `reads` accepts (`trained::all()` for every one).
    pub fn new(cfg: AdamConfig, reads: Reads) -> Self {
        AdamW {
            base_lr: cfg.lr,
            cfg,
            reads,
            step: 0,
            moments: Vec::new(),
        }
    }

    /// One update of every trainable tensor of `module` that is read, from `grads`. A
    /// read tensor without a gradient gets a zero one (as `alloc_grads` gives it).
    ///
    /// Moments held for a tensor that is not read are dropped: a checkpoint written
    /// before unread tensors were skipped holds such moments, all zero (their gradient
    /// always was), so dropping them continues that run exactly.
    pub fn update<Mod: TensorCollection<f32, D>>(
        &mut self,
        module: &mut Mod,
        grads: &mut Gradients<f32, D>,
    ) -> Result<(), D::Err> {
        self.step = self.step.checked_add(1).expect("fewer than 2^31 steps");
        let reads = self.reads.clone();
        trained::walk(module, &reads, &mut Update { opt: self, grads })
    }

    /// The state on the host, in one canonical form: positions past the last tensor
    /// with moments are left out (however the vector grew).
    pub fn host_state(&self, dev: &D) -> Result<AdamWState, D::Err> {
        let used = self
            .moments
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        let moments = self.moments[..used]
            .iter()
            .map(|slot| {
                slot.as_ref()
                    .map(|(m, v)| Ok((dev.download(m)?, dev.download(v)?)))
                    .transpose()
            })
            .collect::<Result<_, D::Err>>()?;
        Ok(AdamWState {
            step: self.step,
            moments,
        })
    }

    /// The tensors of `module` in visiting order: (length, whether this AdamW updates it).
    pub fn tensor_sizes<Mod: TensorCollection<f32, D>>(
        &self,
        module: &mut Mod,
    ) -> Result<trained::TensorSizes, D::Err> {
        trained::tensor_sizes(module, &self.reads)
    }

    /// `update` at `multiplier` times the configured learning rate; returns the rate.
    pub fn update_scaled<Mod: TensorCollection<f32, D>>(
        &mut self,
        module: &mut Mod,
        grads: &mut Gradients<f32, D>,
        multiplier: f64,
    ) -> Result<f64, String> {
        let _span = profile::span("step: AdamW update");
        self.cfg.lr = self.base_lr * multiplier;
        self.update(module, grads).map_err(device_err)?;
        Ok(self.cfg.lr)
    }

    /// Adds its state, by name, to `out`.
    pub fn save(&self, dev: &D, out: &mut OptimizerState) -> Result<(), String> {
        let state = self.host_state(dev).map_err(device_err)?;
        out.counter(STEP, i64::from(state.step));
        for (index, slot) in state.moments.into_iter().enumerate() {
            if let Some((m, v)) = slot {
                let (m_name, v_name) = moment_names(index);
                out.buffer(m_name, m);
                out.buffer(v_name, v);
            }
        }
        Ok(())
    }

    /// Its state taken from `from`, saved after `step` steps of training `module`: the
    /// counter must be the run's step, every tensor it updates must have moments of
    /// the tensor's length, second moments must not be negative. Nothing changes yet.
    pub fn take_state<Mod: TensorCollection<f32, D>>(
        &self,
        module: &mut Mod,
        from: &mut Restoring,
        step: u64,
    ) -> Result<AdamWState, RestoreError> {
        let counted = from.counter(STEP)?;
        if counted != step as i64 {
            return Err(RestoreError::Misfit(format!(
                "AdamW counted {counted} steps where the run is at step {step}"
            )));
        }
        let sizes = self
            .tensor_sizes(module)
            .map_err(|err| RestoreError::Device(device_err(err)))?;
        let mut moments = Vec::with_capacity(sizes.len());
        for (index, (len, updated)) in sizes.into_iter().enumerate() {
            let (m_name, v_name) = moment_names(index);
            // Moments of a tensor AdamW does not update are dropped at the next step
            // (checkpoints of earlier versions hold some); their length must still fit.
            let slot = match (
                from.optional_buffer(&m_name, len)?,
                from.optional_buffer(&v_name, len)?,
            ) {
                (Some(m), Some(v)) => {
                    if v.iter().any(|x| *x < 0.0) {
                        return Err(RestoreError::Misfit(format!(
                            "AdamW's second moment `{v_name}` is negative"
                        )));
                    }
                    Some((m, v))
                }
                (None, None) if !updated => None,
                _ => {
                    return Err(RestoreError::Misfit(format!(
                        "AdamW has no moments for tensor {index}, which it updates every step"
                    )))
                }
            };
            moments.push(slot);
        }
        let used = moments
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        moments.truncate(used);
        Ok(AdamWState {
            step: counted as i32,
            moments,
        })
    }

    pub fn restore_state(&mut self, dev: &D, state: &AdamWState) -> Result<(), D::Err> {
        self.step = state.step;
        self.moments = state
            .moments
            .iter()
            .map(|slot| {
                slot.as_ref()
                    .map(|(m, v)| Ok((dev.upload(m)?, dev.upload(v)?)))
                    .transpose()
            })
            .collect::<Result<_, D::Err>>()?;
        Ok(())
    }
}

fn device_err(err: impl std::fmt::Debug) -> String {
    format!("optimizer update failed: {err:?}")
}

/// AdamW on every tensor the model reads: the optimizer of an `AdamW(...)` run.
impl<D: OptimDevice, Model: TensorCollection<f32, D>> Optimizer<Model, D> for AdamW<D> {
    fn step(
        &mut self,
        model: &mut Model,
        grads: &mut Gradients<f32, D>,
        multiplier: f64,
    ) -> Result<Vec<(&'static str, f64)>, String> {
        Ok(vec![("lr", self.update_scaled(model, grads, multiplier)?)])
    }

    fn state(&self, dev: &D) -> Result<OptimizerState, String> {
        let mut out = OptimizerState::default();
        self.save(dev, &mut out)?;
        Ok(out)
    }

    fn restore(
        &mut self,
        dev: &D,
        model: &mut Model,
        state: OptimizerState,
        step: u64,
    ) -> Result<(), RestoreError> {
        let mut from = state.restoring()?;
        let taken = self.take_state(model, &mut from, step)?;
        from.finish()?;
        self.restore_state(dev, &taken)
            .map_err(|err| RestoreError::Device(device_err(err)))
    }
}

struct Update<'a, D: Device<f32>> {
    opt: &'a mut AdamW<D>,
    grads: &'a mut Gradients<f32, D>,
}

impl<D: Device<f32>> TensorAction<D> for Update<'_, D> {
    fn read<S: Shape>(
        &mut self,
        index: usize,
        param: &mut Tensor<S, f32, D>,
    ) -> Result<(), D::Err> {
        let (dev, len) = (param.device(), param.shape().num_elements());
        let zeros = || <D as Storage<f32>>::try_alloc_len(dev, len);
        let (m, v) = trained::state_at(&mut self.opt.moments, index, || Ok((zeros()?, zeros()?)))?;
        let grad = self.grads.get_or_alloc_mut(param)?;
        self.opt.cfg.try_update(self.opt.step, param, m, v, grad)
    }

    fn unread(&mut self, index: usize, _len: usize) {
        if let Some(slot) = self.opt.moments.get_mut(index) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::optim::{Adam, Optimizer};

    fn model(dev: &Cpu) -> (Tensor<Rank2<3, 4>, f32, Cpu>, Tensor<Rank1<4>, f32, Cpu>) {
        (dev.sample_normal(), dev.sample_normal())
    }

    fn config() -> AdamConfig {
        AdamConfig {
            lr: 0.01,
            betas: [0.9, 0.95],
            eps: 1e-8,
            weight_decay: Some(WeightDecay::Decoupled(0.1)),
        }
    }

    fn loss_grads(
        dev: &Cpu,
        m: &(Tensor<Rank2<3, 4>, f32, Cpu>, Tensor<Rank1<4>, f32, Cpu>),
        grads: Gradients<f32, Cpu>,
    ) -> Gradients<f32, Cpu> {
        let x: Tensor<Rank2<3, 4>, f32, Cpu> = dev.tensor([[0.5; 4], [-1.0; 4], [2.0; 4]]);
        let y = (m.0.clone().traced(grads) * x).sum::<Rank1<4>, _>() + m.1.clone();
        y.square().sum().backward()
    }

    #[test]
    fn matches_dfdx_adam_step_for_step() {
        let dev = Cpu::seed_from_u64(3);
        let mut ours = model(&dev);
        let mut theirs = (ours.0.clone(), ours.1.clone());
        let mut adamw = AdamW::<Cpu>::new(config(), trained::all());
        let mut adam = Adam::new(&theirs, config());
        for _ in 0..5 {
            let mut g = loss_grads(&dev, &ours, ours.alloc_grads());
            adamw.update(&mut ours, &mut g).unwrap();
            let g = loss_grads(&dev, &theirs, theirs.alloc_grads());
            adam.update(&mut theirs, &g).unwrap();
        }
        assert_eq!(ours.0.as_vec(), theirs.0.as_vec());
        assert_eq!(ours.1.as_vec(), theirs.1.as_vec());
    }

    #[test]
    fn a_restored_state_continues_exactly() {
        let dev = Cpu::seed_from_u64(5);
        let mut straight = model(&dev);
        let mut adamw = AdamW::<Cpu>::new(config(), trained::all());
        for _ in 0..3 {
            let mut g = loss_grads(&dev, &straight, straight.alloc_grads());
            adamw.update(&mut straight, &mut g).unwrap();
        }
        let state = adamw.host_state(&dev).unwrap();
        assert_eq!(state.step, 3);
        let mut resumed = (
            dev.tensor_from_vec(straight.0.as_vec(), (Const::<3>, Const::<4>)),
            dev.tensor_from_vec(straight.1.as_vec(), (Const::<4>,)),
        );
        let mut restored = AdamW::new(config(), trained::all());
        restored.restore_state(&dev, &state).unwrap();
        for _ in 0..2 {
            let mut g = loss_grads(&dev, &straight, straight.alloc_grads());
            adamw.update(&mut straight, &mut g).unwrap();
            let mut g = loss_grads(&dev, &resumed, resumed.alloc_grads());
            restored.update(&mut resumed, &mut g).unwrap();
        }
        assert_eq!(straight.0.as_vec(), resumed.0.as_vec());
        assert_eq!(
            restored.host_state(&dev).unwrap(),
            adamw.host_state(&dev).unwrap()
        );
    }

    #[test]
    fn a_tensor_not_read_keeps_its_values_and_gets_no_state() {
        let dev = Cpu::seed_from_u64(7);
        let mut model = model(&dev);
        let bias_before = model.1.as_vec();
        // Tuples name their fields by position: "1." is the bias.
        let reads: Reads = std::sync::Arc::new(|path: &str| !path.starts_with('1'));
        let mut adamw = AdamW::new(config(), reads);
        // A moment left by an older layout for the unread tensor is dropped.
        let zeros = || dev.upload(&[0.0; 4]).unwrap();
        adamw.moments = vec![None, Some((zeros(), zeros()))];
        for _ in 0..3 {
            let mut g = loss_grads(&dev, &model, model.alloc_grads());
            adamw.update(&mut model, &mut g).unwrap();
        }
        assert_eq!(model.1.as_vec(), bias_before);
        let state = adamw.host_state(&dev).unwrap();
        assert!(state.moments[0].is_some());
        assert_eq!(state.moments.len(), 1, "no trailing empty positions");
    }
}

//! p = p (1 - lr wd) - lr u for every tensor of a module that the model reads, where u is
//! the tensor's gradient slot (holding an update computed elsewhere, e.g. Muon's): dfdx's
//! SGD kernel without momentum, restricted like every optimizer here to what is read, so
//! an unused tensor is not weight-decayed.

use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::*;

use super::host_buffers::Buffer;
use super::trained::{self, Reads, TensorAction};

/// Applies updates with decoupled weight decay.
pub struct ApplyUpdate<D: Device<f32>> {
    pub lr: f64,
    weight_decay: f64,
    reads: Reads,
    /// dfdx's SGD kernel takes a velocity buffer even without momentum (and leaves it
    /// alone): one per tensor, allocated once, by position in the visiting order.
    velocity: Vec<Option<Buffer<D>>>,
}

impl<D: Device<f32>> ApplyUpdate<D> {
    pub fn new(weight_decay: f64, reads: Reads) -> Self {
        ApplyUpdate {
            lr: 0.0,
            weight_decay,
            reads,
            velocity: Vec::new(),
        }
    }

    /// Updates every read tensor of `module` from its slot in `grads`.
    pub fn apply<Mod: TensorCollection<f32, D>>(
        &mut self,
        module: &mut Mod,
        grads: &mut Gradients<f32, D>,
    ) -> Result<(), D::Err> {
        let reads = self.reads.clone();
        trained::walk(module, &reads, &mut Step { apply: self, grads })
    }
}

struct Step<'a, D: Device<f32>> {
    apply: &'a mut ApplyUpdate<D>,
    grads: &'a mut Gradients<f32, D>,
}

impl<D: Device<f32>> TensorAction<D> for Step<'_, D> {
    fn read<S: Shape>(
        &mut self,
        index: usize,
        param: &mut Tensor<S, f32, D>,
    ) -> Result<(), D::Err> {
        let (dev, len) = (param.device(), param.shape().num_elements());
        let velocity = trained::state_at(&mut self.apply.velocity, index, || {
            <D as Storage<f32>>::try_alloc_len(dev, len)
        })?;
        let config = SgdConfig {
            lr: self.apply.lr,
            momentum: None,
            weight_decay: Some(WeightDecay::Decoupled(self.apply.weight_decay)),
        };
        let update = self.grads.get_or_alloc_mut(param)?;
        config.try_update(param, velocity, update)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::optim::{Optimizer, Sgd};

    type Pair = (Tensor<Rank2<3, 4>, f32, Cpu>, Tensor<Rank1<4>, f32, Cpu>);

    #[test]
    fn equals_dfdx_sgd_on_what_is_read_and_leaves_the_rest() {
        let dev = Cpu::seed_from_u64(2);
        let start: Pair = (dev.sample_normal(), dev.sample_normal());
        let (mut ours, mut theirs) = (start.clone(), start.clone());
        let mut grads = ours.alloc_grads();
        grads.get_or_alloc_mut(&ours.0).unwrap().fill(0.5);
        grads.get_or_alloc_mut(&ours.1).unwrap().fill(-2.0);
        // Tuples name their fields by position: "0." is the matrix.
        let mut apply = ApplyUpdate::new(0.1, std::sync::Arc::new(|p: &str| p.starts_with('0')));
        apply.lr = 0.02;
        apply.apply(&mut ours, &mut grads).unwrap();
        let mut sgd = Sgd::new(
            &theirs,
            SgdConfig {
                lr: 0.02,
                momentum: None,
                weight_decay: Some(WeightDecay::Decoupled(0.1)),
            },
        );
        sgd.update(&mut theirs, &grads).unwrap();
        assert_eq!(ours.0.as_vec(), theirs.0.as_vec());
        assert_ne!(ours.0.as_vec(), start.0.as_vec());
        assert_eq!(ours.1.as_vec(), start.1.as_vec());
    }
}

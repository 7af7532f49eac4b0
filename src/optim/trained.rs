//! The tensors an optimizer owns: those of a module (a model or a parameter group) that
//! the configured model reads. A tied LM head, the SwiGLU gate of another activation and
//! frozen QK-norm gains are allocated but never read, so they get no optimizer state, no
//! update and no weight decay. (They keep a gradient buffer, always zero: dfdx's
//! `alloc_grads`/`zero_grads` mark which gradients survive a backward pass by tensor ids
//! that only dfdx can see, so the buffers are allocated for the whole model.)
//!
//! Walks keep the module's visiting order and number every tensor, read or not, so state
//! kept by position (AdamW's moments, a checkpoint's tensors) lines up whatever is skipped.

use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
};
use dfdx::prelude::*;

/// Which tensors, by path, the model reads (`Architecture::reads`); `all` for a module
/// every tensor of which is used.
pub type Reads = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Every tensor is read.
pub fn all() -> Reads {
    std::sync::Arc::new(|_| true)
}

/// What a walk does with each tensor.
pub trait TensorAction<D: Device<f32>> {
    /// A trainable tensor the model reads, at position `index` of the visiting order.
    fn read<S: Shape>(&mut self, index: usize, param: &mut Tensor<S, f32, D>)
        -> Result<(), D::Err>;

    /// A tensor the model does not read (or one marked not trainable), of `len` values.
    fn unread(&mut self, _index: usize, _len: usize) {}
}

/// Calls `action` on every tensor of `module` in visiting order, split by `reads`.
pub fn walk<D: Device<f32>, Mod: TensorCollection<f32, D>, A: TensorAction<D>>(
    module: &mut Mod,
    reads: &Reads,
    action: &mut A,
) -> Result<(), D::Err> {
    let mut visit = Visit {
        reads,
        action,
        index: 0,
    };
    Mod::iter_tensors(&mut RecursiveWalker {
        m: (module, String::new()),
        f: &mut visit,
    })?;
    Ok(())
}

struct Visit<'a, A> {
    reads: &'a Reads,
    action: &'a mut A,
    index: usize,
}

impl<D: Device<f32>, A: TensorAction<D>> TensorVisitor<f32, D> for Visit<'_, A> {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = D::Err;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        (param, path): (&mut Tensor<S, f32, D>, String),
    ) -> Result<Option<Tensor<S, f32, D>>, D::Err> {
        let index = self.index;
        self.index += 1;
        if opts.do_gradient_update && (self.reads)(&path) {
            self.action.read(index, param)?;
        } else {
            self.action.unread(index, param.shape().num_elements());
        }
        Ok(None)
    }
}

/// The state kept for the tensor at position `index` (AdamW's moments, SGD's velocity),
/// created by `make` at its first use; state is kept by position in the visiting order.
pub fn state_at<B, E>(
    states: &mut Vec<Option<B>>,
    index: usize,
    make: impl FnOnce() -> Result<B, E>,
) -> Result<&mut B, E> {
    if states.len() <= index {
        states.resize_with(index + 1, || None);
    }
    if states[index].is_none() {
        states[index] = Some(make()?);
    }
    Ok(states[index].as_mut().expect("created above"))
}

/// Every tensor of a module in visiting order: (length, whether it is read and trained).
pub type TensorSizes = Vec<(usize, bool)>;

/// The `TensorSizes` of `module`.
pub fn tensor_sizes<D: Device<f32>, Mod: TensorCollection<f32, D>>(
    module: &mut Mod,
    reads: &Reads,
) -> Result<TensorSizes, D::Err> {
    struct Sizes(Vec<(usize, bool)>);
    impl<D: Device<f32>> TensorAction<D> for Sizes {
        fn read<S: Shape>(
            &mut self,
            _: usize,
            param: &mut Tensor<S, f32, D>,
        ) -> Result<(), D::Err> {
            self.0.push((param.shape().num_elements(), true));
            Ok(())
        }

        fn unread(&mut self, _: usize, len: usize) {
            self.0.push((len, false));
        }
    }
    let mut sizes = Sizes(Vec::new());
    walk(module, reads, &mut sizes)?;
    Ok(sizes.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number of values in the tensors of `module` that are read: what is trained.
    pub fn count<D: Device<f32>, Mod: TensorCollection<f32, D>>(
        module: &mut Mod,
        reads: &Reads,
    ) -> usize {
        struct Count(usize);
        impl<D: Device<f32>> TensorAction<D> for Count {
            fn read<S: Shape>(
                &mut self,
                _: usize,
                p: &mut Tensor<S, f32, D>,
            ) -> Result<(), D::Err> {
                self.0 += p.shape().num_elements();
                Ok(())
            }
        }
        let mut n = Count(0);
        walk(module, reads, &mut n).unwrap_or_else(|_| unreachable!("counting allocates nothing"));
        n.0
    }
    use crate::model::init::init_model;
    use crate::model::{Architecture, Transformer};
    use crate::plan::cost::param_count;

    type Tiny = Transformer<11, 16, 4, 8, 24, 2, f32, Cpu>;

    #[test]
    fn what_is_read_is_what_param_count_counts() {
        let dev = Cpu::seed_from_u64(1);
        let mut model: Tiny = init_model(&dev, 0.2);
        for config in crate::spec::test_fixtures::small_model_variants() {
            let arch = Architecture::from_config(&config);
            let reads: Reads = std::sync::Arc::new(move |p| arch.reads(p));
            let counted = count(&mut model, &reads) as u64;
            assert_eq!(counted, param_count(&config, 11).total(), "{config:?}");
        }
        assert_eq!(count(&mut model, &all()), model.num_trainable_params());
    }
}

//! A model's tensors as host vectors, in the model's visiting order, and back: what a
//! checkpoint stores of the model.

use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorRef,
};
use dfdx::prelude::*;

/// Every tensor of `module` (trainable or not), in visiting order.
pub fn tensors_to_host<D: Device<f32>, Mod: TensorCollection<f32, D>>(
    module: &Mod,
) -> Vec<Vec<f32>> {
    let mut collect = Collect(Vec::new());
    Mod::iter_tensors(&mut RecursiveWalker {
        m: module,
        f: &mut collect,
    })
    .unwrap_or_else(|never| match never {});
    collect.0
}

/// Why a snapshot does not fit a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMismatch(pub String);

/// Overwrites every tensor of `module` with `values` (as `tensors_to_host` gave them).
pub fn tensors_from_host<D: Device<f32>, Mod: TensorCollection<f32, D>>(
    module: &mut Mod,
    values: &[Vec<f32>],
) -> Result<(), SnapshotMismatch> {
    let mut fill = Fill { values, index: 0 };
    Mod::iter_tensors(&mut RecursiveWalker {
        m: module,
        f: &mut fill,
    })?;
    if fill.index != values.len() {
        return Err(SnapshotMismatch(format!(
            "the snapshot has {} tensors, the model {}",
            values.len(),
            fill.index
        )));
    }
    Ok(())
}

struct Collect(Vec<Vec<f32>>);

impl<D: Device<f32>> TensorVisitor<f32, D> for Collect {
    type Viewer = ViewTensorRef;
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, D>,
        t: &Tensor<S, f32, D>,
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        self.0.push(t.as_vec());
        Ok(None)
    }
}

struct Fill<'a> {
    values: &'a [Vec<f32>],
    index: usize,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for Fill<'_> {
    type Viewer = ViewTensorMut;
    type Err = SnapshotMismatch;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, D>,
        t: &mut Tensor<S, f32, D>,
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        let index = self.index;
        self.index += 1;
        let values = self.values.get(index).ok_or_else(|| {
            SnapshotMismatch(format!(
                "the snapshot has only {} tensors",
                self.values.len()
            ))
        })?;
        let len = t.shape().num_elements();
        if values.len() != len {
            return Err(SnapshotMismatch(format!(
                "tensor {index} has {len} values in the model, {} in the snapshot",
                values.len()
            )));
        }
        t.copy_from(values);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_shapes() {
        let dev = Cpu::seed_from_u64(1);
        let a: (Tensor<Rank2<2, 3>, f32, Cpu>, Tensor<Rank1<3>, f32, Cpu>) =
            (dev.sample_normal(), dev.sample_normal());
        let mut b: (Tensor<Rank2<2, 3>, f32, Cpu>, Tensor<Rank1<3>, f32, Cpu>) =
            (dev.zeros(), dev.zeros());
        let host = tensors_to_host(&a);
        assert_eq!(host.len(), 2);
        tensors_from_host(&mut b, &host).unwrap();
        assert_eq!(tensors_to_host(&b), host);
        let mut other: Tensor<Rank1<4>, f32, Cpu> = dev.zeros();
        assert!(tensors_from_host(&mut other, &host).is_err());
    }
}

//! A model's tensors as host vectors, in the model's visiting order, and back: what a
//! checkpoint stores of the model; and one CPU tensor's values in row-major order.

use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
    ViewTensorRef,
};
use dfdx::prelude::*;

/// A tensor's values in row-major order. dfdx lends no view of a tensor's memory, so this
/// is a copy of its buffer (a memcpy: cheap next to the kernels). A permuted or broadcast
/// view is first made contiguous by dfdx (free for the standard-layout tensors the
/// forward pass hands over), so the buffer is always in row-major order.
pub fn host<S: Shape>(t: &Tensor<S, f32, Cpu>) -> Vec<f32> {
    let t = t.clone().contiguous();
    let mut values = vec![0.0f32; t.shape().num_elements()];
    t.copy_into(&mut values);
    values
}

/// Every tensor of `module` (trainable or not), in visiting order.
pub fn tensors_to_host<D: Device<f32>, Mod: TensorCollection<f32, D>>(
    module: &Mod,
) -> Vec<Vec<f32>> {
    collect(module)
        .into_iter()
        .map(|(_, values)| values)
        .collect()
}

/// Every tensor of `module` in visiting order: its shape and values.
fn collect<D: Device<f32>, Mod: TensorCollection<f32, D>>(
    module: &Mod,
) -> Vec<(Vec<usize>, Vec<f32>)> {
    let mut collect = Collect(Vec::new());
    Mod::iter_tensors(&mut RecursiveWalker {
        m: module,
        f: &mut collect,
    })
    .unwrap_or_else(|never| match never {});
    collect.0
}

/// A tensor with its path in the model and its shape ([out, in] for matrices, as in
/// PyTorch's `Linear`): what a weights file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The tensors of `module` whose path `keep` accepts (e.g. those the model reads), in
/// visiting order, with their names and shapes.
pub fn named_tensors<D: Device<f32>, Mod: TensorCollection<f32, D>>(
    module: &Mod,
    keep: &dyn Fn(&str) -> bool,
) -> Vec<NamedTensor> {
    (tensor_names::<D, Mod>().into_iter())
        .zip(collect(module))
        .filter(|(name, _)| keep(name))
        .map(|(name, (shape, values))| NamedTensor {
            name,
            shape,
            values,
        })
        .collect()
}

/// The path of every tensor of a module type in visiting order (e.g. `blocks.3.q_gain`):
/// the names of a snapshot's or an optimizer state's positions.
pub fn tensor_names<D: Device<f32>, Mod: TensorCollection<f32, D>>() -> Vec<String> {
    let mut names = Names(Vec::new());
    Mod::iter_tensors(&mut RecursiveWalker {
        m: String::new(),
        f: &mut names,
    })
    .unwrap_or_else(|never| match never {});
    names.0
}

struct Names(Vec<String>);

impl<D: Device<f32>> TensorVisitor<f32, D> for Names {
    type Viewer = ViewTensorName;
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, D>,
        name: String,
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        self.0.push(name);
        Ok(None)
    }
}

/// Why a snapshot does not fit a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMismatch(pub String);

/// Overwrites the tensors of `module` whose path `take` accepts with `values` (as
/// `tensors_to_host` gave them); the others keep their values. Every tensor's values
/// must fit, taken or not.
pub fn tensors_from_host<D: Device<f32>, Mod: TensorCollection<f32, D>>(
    module: &mut Mod,
    values: &[Vec<f32>],
    take: &dyn Fn(&str) -> bool,
) -> Result<(), SnapshotMismatch> {
    let mut fill = Fill {
        values,
        take,
        index: 0,
    };
    Mod::iter_tensors(&mut RecursiveWalker {
        m: (module, String::new()),
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

struct Collect(Vec<(Vec<usize>, Vec<f32>)>);

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
        self.0
            .push((t.shape().concrete().into_iter().collect(), t.as_vec()));
        Ok(None)
    }
}

struct Fill<'a> {
    values: &'a [Vec<f32>],
    take: &'a dyn Fn(&str) -> bool,
    index: usize,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for Fill<'_> {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = SnapshotMismatch;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, D>,
        (t, path): (&mut Tensor<S, f32, D>, String),
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
        if (self.take)(&path) {
            t.copy_from(values);
        }
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
        tensors_from_host(&mut b, &host, &|_| true).unwrap();
        assert_eq!(tensors_to_host(&b), host);
        let mut other: Tensor<Rank1<4>, f32, Cpu> = dev.zeros();
        assert!(tensors_from_host(&mut other, &host, &|_| true).is_err());
        // Tuples name their fields by position ("1." is the second).
        let mut c: (Tensor<Rank2<2, 3>, f32, Cpu>, Tensor<Rank1<3>, f32, Cpu>) =
            (dev.zeros(), dev.zeros());
        tensors_from_host(&mut c, &host, &|path| path.starts_with('0')).unwrap();
        assert_eq!(c.0.as_vec(), host[0]);
        assert_eq!(c.1.as_vec(), vec![0.0; 3]);
        type Pair = (Tensor<Rank2<2, 3>, f32, Cpu>, Tensor<Rank1<3>, f32, Cpu>);
        assert_eq!(tensor_names::<Cpu, Pair>(), ["0.", "1."]);
        type Tiny = crate::model::Transformer<5, 4, 2, 4, 8, 2, f32, Cpu>;
        let names = tensor_names::<Cpu, Tiny>();
        assert_eq!(names.len(), 2 + 2 * 11 + 1);
        assert_eq!(names[..3], ["embed", "lm_head", "blocks.0.attn_norm"]);
        assert_eq!(names[7], "blocks.0.q_gain");
    }
}

//! The tapes the forward pass works with.

use dfdx::prelude::*;

/// Recording (`OwnedTape`, to train) or not (`NoneTape`, to evaluate).
pub trait ModelTape<D: Device<f32>>: Tape<f32, D> + Merge<NoneTape> + Merge<Self> {}
impl<D: Device<f32>, T: Tape<f32, D> + Merge<NoneTape> + Merge<T>> ModelTape<D> for T {}

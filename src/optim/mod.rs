//! Optimizers beyond dfdx's own: Muon (CPU reference) and the split of a model's
//! parameters between Muon and AdamW.

pub mod adamw;
pub mod apply_update;
#[cfg(feature = "cuda")]
pub mod cuda_muon;
pub mod gemm_plan;
pub mod groups;
pub mod muon;
pub mod newton_schulz;
pub mod trained;

use dfdx::prelude::{Device, Gradients};

use crate::model::{Architecture, Transformer};

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

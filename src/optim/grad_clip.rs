//! Global gradient-norm clipping, before any optimizer: the L2 norm of every trained
//! tensor's gradient together, and PyTorch's `clip_grad_norm_` rule on it (multiply
//! every gradient by max / (norm + 1e-6) when the norm exceeds max). Only tensors the
//! model reads count: an unread tensor's gradient is always zero and gets no update.

use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::*;

use super::host_buffers::HostBuffers;
use super::trained::{self, Reads, TensorAction};

/// What PyTorch adds to the norm before dividing (keeps the factor finite at norm 0).
pub const NORM_EPS: f64 = 1e-6;

/// The factor every gradient is multiplied by: 1 when `norm` is within `max`.
pub fn clip_factor(norm: f64, max: f64) -> f64 {
    if norm > max {
        max / (norm + NORM_EPS)
    } else {
        1.0
    }
}

/// The global L2 norm of the gradients of the tensors of `module` that `reads` accepts.
pub fn global_norm<D: HostBuffers, Mod: TensorCollection<f32, D>>(
    module: &mut Mod,
    grads: &mut Gradients<f32, D>,
    reads: &Reads,
) -> Result<f64, D::Err> {
    struct SumSquares<'a, D: HostBuffers> {
        grads: &'a mut Gradients<f32, D>,
        total: f64,
    }
    impl<D: HostBuffers> TensorAction<D> for SumSquares<'_, D> {
        fn read<S: Shape>(&mut self, _: usize, p: &mut Tensor<S, f32, D>) -> Result<(), D::Err> {
            let dev = p.device().clone();
            self.total += dev.sum_squares(self.grads.get_or_alloc_mut(p)?)?;
            Ok(())
        }
    }
    let mut sum = SumSquares { grads, total: 0.0 };
    trained::walk(module, reads, &mut sum)?;
    Ok(sum.total.sqrt())
}

/// Multiplies the gradient of every tensor of `module` that `reads` accepts by `factor`.
pub fn scale_grads<D: HostBuffers, Mod: TensorCollection<f32, D>>(
    module: &mut Mod,
    grads: &mut Gradients<f32, D>,
    reads: &Reads,
    factor: f32,
) -> Result<(), D::Err> {
    struct Scale<'a, D: HostBuffers> {
        grads: &'a mut Gradients<f32, D>,
        factor: f32,
    }
    impl<D: HostBuffers> TensorAction<D> for Scale<'_, D> {
        fn read<S: Shape>(&mut self, _: usize, p: &mut Tensor<S, f32, D>) -> Result<(), D::Err> {
            let dev = p.device().clone();
            dev.scale(self.grads.get_or_alloc_mut(p)?, self.factor)
        }
    }
    trained::walk(module, reads, &mut Scale { grads, factor })
}

/// Clips the gradients of `module` to global norm `max` (when given); returns the norm
/// before the clip.
pub fn clip<D: HostBuffers, Mod: TensorCollection<f32, D>>(
    module: &mut Mod,
    grads: &mut Gradients<f32, D>,
    reads: &Reads,
    max: Option<f64>,
) -> Result<f64, D::Err> {
    let norm = global_norm(module, grads, reads)?;
    if let Some(max) = max {
        let factor = clip_factor(norm, max);
        if factor < 1.0 {
            scale_grads(module, grads, reads, factor as f32)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pair = (Tensor<Rank2<2, 3>, f32, Cpu>, Tensor<Rank1<4>, f32, Cpu>);

    fn grads_of(pair: &Pair, a: f32, b: f32) -> Gradients<f32, Cpu> {
        let mut grads = pair.alloc_grads();
        grads.get_or_alloc_mut(&pair.0).unwrap().fill(a);
        grads.get_or_alloc_mut(&pair.1).unwrap().fill(b);
        grads
    }

    #[test]
    fn the_norm_counts_read_tensors_and_the_clip_bounds_it() {
        let dev = Cpu::seed_from_u64(0);
        let mut pair: Pair = (dev.sample_normal(), dev.sample_normal());
        // 6 values of 2 and 4 of -1: sqrt(24 + 4).
        let mut grads = grads_of(&pair, 2.0, -1.0);
        let all = trained::all();
        let norm = global_norm(&mut pair, &mut grads, &all).unwrap();
        assert!((norm - 28f64.sqrt()).abs() < 1e-12, "{norm}");
        // Only the matrix ("0.") read: sqrt(24).
        let matrix_only: Reads = std::sync::Arc::new(|p: &str| p.starts_with('0'));
        let norm = global_norm(&mut pair, &mut grads, &matrix_only).unwrap();
        assert!((norm - 24f64.sqrt()).abs() < 1e-12);

        let before = clip(&mut pair, &mut grads, &all, Some(1.0)).unwrap();
        assert!((before - 28f64.sqrt()).abs() < 1e-12);
        let after = global_norm(&mut pair, &mut grads, &all).unwrap();
        assert!(after <= 1.0 && after > 1.0 - 1e-5, "{after}");
        // Direction kept: every value scaled by the same factor.
        let factor = 1.0 / (28f64.sqrt() + NORM_EPS);
        let g0 = grads.get_or_alloc_mut(&pair.0).unwrap().to_vec();
        assert!(g0
            .iter()
            .all(|&v| (f64::from(v) - 2.0 * factor).abs() < 1e-6));
    }

    #[test]
    fn a_clipped_gradient_step_moves_the_weights_at_most_lr_times_the_bound() {
        // Whatever the gradient's size, p - lr * g after the clip moves p by at most
        // lr * max_grad_norm in L2: the guarantee clipping exists for.
        let dev = Cpu::seed_from_u64(3);
        for scale in [1e-3f32, 1.0, 1e3, 1e6] {
            let mut pair: Pair = (dev.sample_normal(), dev.sample_normal());
            let before = (pair.0.as_vec(), pair.1.as_vec());
            let mut grads = pair.alloc_grads();
            let g0: Vec<f32> = (0..6).map(|i| scale * (i as f32 - 2.5)).collect();
            grads
                .get_or_alloc_mut(&pair.0)
                .unwrap()
                .copy_from_slice(&g0);
            grads.get_or_alloc_mut(&pair.1).unwrap().fill(scale);
            let all = trained::all();
            clip(&mut pair, &mut grads, &all, Some(0.5)).unwrap();
            let mut sgd = super::super::apply_update::ApplyUpdate::new(0.0, all);
            sgd.lr = 0.1;
            sgd.apply(&mut pair, &mut grads).unwrap();
            let moved: f64 = (pair.0.as_vec().iter().zip(&before.0))
                .chain(pair.1.as_vec().iter().zip(&before.1))
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                moved <= 0.1 * 0.5 * (1.0 + 1e-5),
                "scale {scale}: moved {moved}"
            );
        }
    }

    #[test]
    fn a_norm_within_the_bound_is_left_alone() {
        let dev = Cpu::seed_from_u64(0);
        let mut pair: Pair = (dev.sample_normal(), dev.sample_normal());
        let mut grads = grads_of(&pair, 0.1, 0.1);
        let all = trained::all();
        let norm = clip(&mut pair, &mut grads, &all, Some(1.0)).unwrap();
        assert!(norm < 1.0);
        assert_eq!(
            grads.get_or_alloc_mut(&pair.1).unwrap().to_vec(),
            vec![0.1; 4]
        );
        assert_eq!(clip_factor(0.5, 1.0), 1.0);
        assert_eq!(clip_factor(f64::INFINITY, 1.0), 0.0);
    }
}

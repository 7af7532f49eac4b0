//! The time of one Muon update (momentum, Newton-Schulz, scaling) for each matrix shape
//! of a run, in f32 and bf16, on the CPU and, where this build and machine have one, on
//! CUDA device 0.

use std::time::Instant;

use dfdx::prelude::*;

use crate::optim::muon::{matrix_update, MuonMatrix};
use crate::spec::run_config::{MuonConfig, Precision};

use super::peak::matmul_flops;

/// One matrix shape's timings.
#[derive(Debug, Clone)]
pub struct ShapeTiming {
    pub rows: usize,
    pub cols: usize,
    /// How many of the run's Muon matrices have this shape.
    pub count: usize,
    /// Seconds of one update, f32 (`[0]`) and bf16 (`[1]`); on CUDA, each may have failed.
    pub seconds: [Result<f64, String>; 2],
    /// CPU only: FLOP/s of the shape's Newton-Schulz product on the CPU kernels.
    pub matmul_flops: Option<f64>,
}

/// The distinct shapes of `matrices`, each with its count.
fn shapes(matrices: &[MuonMatrix]) -> Vec<(usize, usize, usize)> {
    let mut shapes: Vec<(usize, usize)> = matrices.iter().map(|m| (m.rows, m.cols)).collect();
    shapes.sort_unstable();
    shapes.dedup();
    (shapes.into_iter())
        .map(|(rows, cols)| {
            let count = (matrices.iter())
                .filter(|m| (m.rows, m.cols) == (rows, cols))
                .count();
            (rows, cols, count)
        })
        .collect()
}

/// A random [rows x cols] gradient.
fn gradient(rows: usize, cols: usize) -> Vec<f32> {
    let dev = Cpu::seed_from_u64(0);
    let grad: Tensor<(usize, usize), f32, _> = dev.sample_normal_like(&(rows, cols));
    grad.as_vec()
}

fn with_precision(muon: &MuonConfig, precision: Precision) -> MuonConfig {
    MuonConfig {
        precision,
        ..muon.clone()
    }
}

/// Best of 3 on the CPU.
pub fn cpu(muon: &MuonConfig, matrices: &[MuonMatrix]) -> Vec<ShapeTiming> {
    (shapes(matrices).into_iter())
        .map(|(rows, cols, count)| {
            let grad = gradient(rows, cols);
            let seconds = [Precision::F32, Precision::Bf16].map(|precision| {
                let config = with_precision(muon, precision);
                let mut buf = vec![0.0f32; grad.len()];
                let mut best = f64::INFINITY;
                for _ in 0..3 {
                    let started = Instant::now();
                    std::hint::black_box(matrix_update(&config, &mut buf, &grad, rows, cols));
                    best = best.min(started.elapsed().as_secs_f64());
                }
                Ok(best)
            });
            let (small, large) = (rows.min(cols), rows.max(cols));
            ShapeTiming {
                rows,
                cols,
                count,
                seconds,
                matmul_flops: Some(matmul_flops(small, large, small)),
            }
        })
        .collect()
}

/// Mean of 20 after a warm-up on CUDA device 0; `None` without one.
#[cfg(feature = "cuda")]
pub fn cuda(muon: &MuonConfig, matrices: &[MuonMatrix]) -> Option<Vec<ShapeTiming>> {
    use crate::optim::cuda_muon::CudaMuon;
    use crate::spec::Device;
    if crate::train::device::resolve(Device::Auto) != Ok(Device::Cuda(0)) {
        return None;
    }
    let timings = (shapes(matrices).into_iter())
        .map(|(rows, cols, count)| {
            let grad = gradient(rows, cols);
            let seconds = [Precision::F32, Precision::Bf16].map(|precision| {
                CudaMuon::new(&with_precision(muon, precision)).time_update(
                    0,
                    &grad,
                    (rows, cols),
                    20,
                )
            });
            ShapeTiming {
                rows,
                cols,
                count,
                seconds,
                matmul_flops: None,
            }
        })
        .collect();
    Some(timings)
}

/// Without CUDA support there is no GPU half.
#[cfg(not(feature = "cuda"))]
pub fn cuda(_muon: &MuonConfig, _matrices: &[MuonMatrix]) -> Option<Vec<ShapeTiming>> {
    None
}

/// Seconds of one optimizer step: every matrix's update, per precision (failed shapes
/// left out).
pub fn per_step(timings: &[ShapeTiming]) -> [f64; 2] {
    [0, 1].map(|slot| {
        (timings.iter())
            .filter_map(|t| t.seconds[slot].as_ref().ok().map(|s| s * t.count as f64))
            .sum()
    })
}

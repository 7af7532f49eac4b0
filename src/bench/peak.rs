//! The machine's own limit, measured in the same process as what is compared with it:
//! the fastest large f32 matrix product (rankprobe's CPU kernels, or dfdx's cuBLAS on a
//! GPU), and peak memory.

#[cfg(feature = "cuda")]
use std::time::Instant;

#[cfg(feature = "cuda")]
use dfdx::prelude::*;

use crate::spec::Device as RunDevice;
#[cfg(feature = "cuda")]
use crate::train::device::TrainDevice;

pub use crate::matmul::{measured_flops as matmul_flops, PEAK_SIDE};

/// The same on a dfdx device, timed between synchronisations.
#[cfg(feature = "cuda")]
fn dfdx_matmul_flops<D: Device<f32> + Synchronize>(
    dev: &D,
    rows: usize,
    k: usize,
    n: usize,
) -> f64 {
    let a: Tensor<(usize, usize), f32, D> = dev.sample_normal_like(&(rows, k));
    let b: Tensor<(usize, usize), f32, D> = dev.sample_normal_like(&(k, n));
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        dev.synchronize();
        let started = Instant::now();
        let c = a.clone().matmul(b.clone());
        dev.synchronize();
        best = best.min(started.elapsed().as_secs_f64());
        std::hint::black_box(c);
    }
    2.0 * (rows * k * n) as f64 / best
}

/// The side of the square product the peak is measured on: a GPU needs a larger one
/// to be busy.
pub fn peak_side(device: RunDevice) -> usize {
    match device {
        RunDevice::Cuda(_) => PEAK_SIDE * 4,
        _ => PEAK_SIDE,
    }
}

/// The peak reference on the device a bench trains on: one large square product (with
/// TF32 tensor cores where the run uses them).
pub fn peak_flops(device: RunDevice, tf32: bool) -> f64 {
    match device {
        #[cfg(feature = "cuda")]
        RunDevice::Cuda(ordinal) => match <Cuda as TrainDevice>::open(ordinal, 0, tf32) {
            Ok(dev) => {
                let side = peak_side(device);
                dfdx_matmul_flops(&dev, side, side, side)
            }
            Err(_) => f64::NAN,
        },
        _ => {
            let _ = tf32;
            matmul_flops(PEAK_SIDE, PEAK_SIDE, PEAK_SIDE)
        }
    }
}

/// Peak memory of the run on `device`, in MiB: the CUDA pool's high-water mark on a GPU,
/// this process's peak resident memory (VmHWM, the largest run so far) on the CPU.
pub fn peak_memory_mib(device: RunDevice) -> Option<f64> {
    match device {
        #[cfg(feature = "cuda")]
        RunDevice::Cuda(ordinal) => crate::train::cuda_memory::peak_bytes(ordinal)
            .ok()
            .map(|bytes| bytes as f64 / (1024.0 * 1024.0)),
        _ => peak_rss_mib(),
    }
}

/// Starts a new peak for `peak_memory_mib` where the device allows it (the GPU's pool).
pub fn reset_peak_memory(device: RunDevice) {
    #[cfg(feature = "cuda")]
    if let RunDevice::Cuda(ordinal) = device {
        let _ = crate::train::cuda_memory::reset_peak(ordinal);
    }
    let _ = device;
}

/// This process's peak resident memory (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

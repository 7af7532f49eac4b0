//! The devices a run trains on: what each needs beyond what the model and the
//! optimizers need of it (opening it, choosing it).

use dfdx::prelude::Cpu;
#[cfg(feature = "cuda")]
use dfdx::prelude::Cuda;

use crate::optim::device::OptimDevice;
use crate::spec::Device;

use super::outcome::TrainError;

pub trait TrainDevice: OptimDevice + crate::model::ModelOps {
    /// The device `ordinal` (ignored by the CPU), with its random numbers seeded; `tf32`:
    /// f32 matrix products on TF32 tensor cores (CUDA only; the CPU computes in f32 and
    /// the caller has said so).
    fn open(ordinal: usize, seed: u64, tf32: bool) -> Result<Self, TrainError>;
}

impl TrainDevice for Cpu {
    fn open(_ordinal: usize, seed: u64, _tf32: bool) -> Result<Self, TrainError> {
        super::subnormals::flush_to_zero();
        Ok(Cpu::seed_from_u64(seed))
    }
}

#[cfg(feature = "cuda")]
impl TrainDevice for Cuda {
    fn open(ordinal: usize, seed: u64, tf32: bool) -> Result<Self, TrainError> {
        use super::cublas_math::{handles_made_by, set_tf32};
        let (dev, handles) = handles_made_by(|| Cuda::try_build(ordinal, seed));
        let dev = dev.map_err(|err| {
            TrainError::Run(format!("cannot open CUDA device {ordinal}: {err:?}"))
        })?;
        // dfdx makes one handle, for every product of the model.
        match (tf32, handles.as_slice()) {
            (false, _) => {}
            // SAFETY: the handle is dfdx's, alive as long as `dev`.
            (true, &[handle]) => unsafe { set_tf32(handle, true) }.map_err(|why| {
                TrainError::Run(format!(
                    "cannot turn TF32 on for CUDA device {ordinal}: {why}"
                ))
            })?,
            (true, other) => {
                return Err(TrainError::Run(format!(
                    "cannot turn TF32 on: opening CUDA device {ordinal} made {} cuBLAS \
                     handles, expected dfdx's one (a dfdx or cudarc upgrade?); set \
                     `execution.tf32: false`",
                    other.len()
                )))
            }
        }
        load_kernels(&dev)
            .map_err(|why| TrainError::Run(format!("CUDA device {ordinal}: {why}")))?;
        // Best effort: without it training is correct, only slower.
        if let Err(why) = super::cuda_memory::keep_freed_memory(ordinal) {
            eprintln!(
                "note: the CUDA memory pool of device {ordinal} releases freed memory ({why})"
            );
        }
        Ok(dev)
    }
}

/// Compiles and loads our kernels (`kernels/*.cu`) into dfdx's device now, so that a
/// failure is reported before training, not in the first backward pass. dfdx does not
/// hand out its `CudaDevice`; a gradient buffer's does (it is allocated on it).
#[cfg(feature = "cuda")]
fn load_kernels(dev: &Cuda) -> Result<(), String> {
    use dfdx::prelude::{Gradients, Rank1, Tensor, ZerosTensor};
    let probe: Tensor<Rank1<1>, f32, Cuda> = dev.zeros();
    let mut grads = Gradients::leaky();
    let slot = grads
        .get_or_alloc_mut(&probe)
        .map_err(|e| format!("allocating: {e:?}"))?;
    let device = cudarc::driver::CudaSlice::device(slot);
    crate::cuda_kernels::ALL
        .iter()
        .try_for_each(|file| crate::cuda_kernels::load(&device, file))
}

/// Whether f32 products run on TF32 tensor cores: asked for (`execution.tf32`) and on a
/// GPU; the CPU has no TF32 and computes in f32.
pub fn uses_tf32(asked: bool, device: Device) -> bool {
    asked && matches!(device, Device::Cuda(_))
}

/// Why `config` cannot train on `device`: bf16 products (`model.precision: Bf16`) exist
/// on the CPU only so far.
pub fn precision_error(config: &crate::spec::RunConfig, device: Device) -> Option<String> {
    let bf16 = config.model.precision == crate::spec::run_config::Precision::Bf16;
    (bf16 && matches!(device, Device::Cuda(_))).then(|| {
        format!(
            "model.precision: Bf16 runs on the CPU only in this version (the CUDA bf16 \
             products are not built yet), and this run would train on {device}; set \
             model.precision: F32, or execution.device: Cpu"
        )
    })
}

/// The device a run trains on: `Auto` is CUDA device 0 in a CUDA build on a machine with
/// a GPU, else the CPU. Asking for CUDA where it cannot be had says why.
pub fn resolve(requested: Device) -> Result<Device, TrainError> {
    match requested {
        Device::Cpu => Ok(Device::Cpu),
        Device::Auto => Ok(match cuda_devices() {
            Ok(count) if count > 0 => Device::Cuda(0),
            _ => Device::Cpu,
        }),
        Device::Cuda(ordinal) => match cuda_devices() {
            Ok(count) if ordinal < count => Ok(requested),
            Ok(count) => Err(TrainError::Run(format!(
                "device cuda:{ordinal} requested, but this machine has {count} CUDA device(s); \
                 use --device cpu or a smaller ordinal"
            ))),
            Err(why) => Err(TrainError::Run(format!(
                "device cuda:{ordinal} requested, but {why}; use --device cpu"
            ))),
        },
    }
}

/// How many CUDA devices the driver reports.
#[cfg(feature = "cuda")]
fn cuda_devices() -> Result<usize, String> {
    use cudarc::driver::result;
    result::init()
        .and_then(|()| result::device::get_count())
        .map(|count| count.max(0) as usize)
        // The error's code only: its Debug asks the driver for a description, which a
        // broken driver cannot give.
        .map_err(|err| format!("the CUDA driver reports no usable GPU ({:?})", err.0))
}

#[cfg(not(feature = "cuda"))]
fn cuda_devices() -> Result<usize, String> {
    Err(
        "this build of rankprobe has no CUDA support (build it with `--features cuda`, \
         see docs/gpu.md)"
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::run_config::Precision;

    #[test]
    fn bf16_products_are_refused_on_cuda_only() {
        let mut config = crate::spec::test_fixtures::tiny();
        assert_eq!(precision_error(&config, Device::Cuda(0)), None);
        config.model.precision = Precision::Bf16;
        assert_eq!(precision_error(&config, Device::Cpu), None);
        let why = precision_error(&config, Device::Cuda(1)).expect("refused");
        assert!(
            why.contains("model.precision: Bf16") && why.contains("cuda:1"),
            "{why}"
        );
    }
}

//! The forward pass's custom operations on CUDA: where dfdx's composition would do work
//! whose result nothing reads. Kernels in `kernels/model.cu`.

use cudarc::driver::{result::DriverError, sys::CUresult};
use cudarc::driver::{DevicePtr, DeviceSlice, LaunchAsync, LaunchConfig};
use dfdx::prelude::*;

use crate::cuda_kernels::{self, MODEL};

use super::composed::AddConstant;
use super::tape::ModelTape;

impl AddConstant for Cuda {
    /// `x + constant`, whose backward pass adds the output's gradient to `x`'s only.
    /// dfdx's add would also reduce it into a gradient for the constant (for the causal
    /// mask: [seq, seq], summed over the batch with atomics, per head and layer) that
    /// nothing reads. `x` must be laid out contiguously, as an operation's output is.
    fn add_constant<S: Shape, T: ModelTape<Self>>(
        x: Tensor<S, f32, Self, T>,
        constant: Tensor<S, f32, Self>,
    ) -> Tensor<S, f32, Self, T> {
        let (x, mut tape) = x.split_tape();
        let (x_ghost, n) = (x.ghost(), x.shape().num_elements());
        // Untaped: dfdx records no backward operation for it.
        let out = x + constant;
        if T::OWNS_TAPE {
            let out_ghost = out.ghost();
            tape.add_backward_op(move |grads| {
                grads.try_alloc_for(&x_ghost)?;
                grads.try_alloc_for(&out_ghost)?;
                let d_out = grads.get_or_alloc_mut(&out_ghost)?;
                let (d_out_at, d_out_len) = (*d_out.device_ptr(), d_out.len());
                let dev = d_out.device();
                let dx = grads.get_or_alloc_mut(&x_ghost)?;
                // Both slots are live, distinct buffers of `grads`; the kernel reads one
                // through its address while `dx` is borrowed.
                assert!(
                    dx.len() == n && d_out_len == n && *dx.device_ptr() != d_out_at,
                    "add_constant: gradients of {n} values expected in two buffers, got \
                     {} and {d_out_len}",
                    dx.len()
                );
                let add = cuda_kernels::function(&dev, &MODEL, "add_in_place").map_err(|why| {
                    eprintln!("rankprobe: {why}");
                    DriverError(CUresult::CUDA_ERROR_NOT_FOUND)
                })?;
                let cfg = LaunchConfig::for_num_elems(n as u32);
                // SAFETY: the kernel checks i < n; both buffers hold n values (above).
                unsafe { add.launch(cfg, (&mut **dx, d_out_at, n as u64)) }?;
                Ok(())
            });
        }
        out.put_tape(tape)
    }
}

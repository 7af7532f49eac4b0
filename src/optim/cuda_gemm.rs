//! The GPU plumbing of Muon: our kernels (`kernels/muon.cu`) loaded on dfdx's device with
//! a cuBLAS handle on its stream, and one GEMM of a Newton-Schulz plan in f32 or with
//! bf16 operands on tensor cores.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use cudarc::cublas::{sys as blas, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{
    CudaDevice, CudaFunction, CudaSlice, DevicePtr, DevicePtrMut, DeviceSlice, LaunchAsync,
    LaunchConfig,
};

use crate::cuda_kernels::{self, MUON};
use crate::spec::run_config::Precision;

use super::gemm_plan::GemmCall;

/// A device error, as text naming what failed.
pub(super) fn err(what: &str, error: impl std::fmt::Debug) -> String {
    format!("{what}: {error:?}")
}

/// The loaded kernels and a cuBLAS handle on one device's default stream.
pub struct Kernels {
    pub(super) dev: Arc<CudaDevice>,
    blas: CudaBlas,
    functions: HashMap<&'static str, CudaFunction>,
}

impl Kernels {
    pub fn load(dev: Arc<CudaDevice>) -> Result<Kernels, String> {
        let functions = MUON
            .functions
            .iter()
            .map(|&name| Ok((name, cuda_kernels::function(&dev, &MUON, name)?)))
            .collect::<Result<_, String>>()?;
        let blas = CudaBlas::new(dev.clone()).map_err(|e| err("creating a cuBLAS handle", e))?;
        Ok(Kernels {
            dev,
            blas,
            functions,
        })
    }

    /// Launches `name` over `n` elements (1024 threads a block; `sum_squares` relies on it).
    pub(super) fn launch<P>(&self, name: &str, n: usize, params: P) -> Result<(), String>
    where
        CudaFunction: LaunchAsync<P>,
    {
        let function = self.functions[name].clone();
        // SAFETY: every kernel checks its index against n, and the buffers passed are at
        // least n long (see the callers).
        unsafe { function.launch(LaunchConfig::for_num_elems(n as u32), params) }
            .map_err(|e| err(name, e))
    }

    pub(super) fn zeros<T: cudarc::driver::ValidAsZeroBits + cudarc::driver::DeviceRepr>(
        &self,
        n: usize,
    ) -> Result<CudaSlice<T>, String> {
        self.dev
            .alloc_zeros(n)
            .map_err(|e| err("allocating GPU memory", e))
    }

    pub(super) fn copy(
        &self,
        src: &CudaSlice<f32>,
        src_at: usize,
        dst: &mut CudaSlice<f32>,
        dst_at: usize,
        n: usize,
    ) -> Result<(), String> {
        let (src_at, dst_at, count) = (src_at as u64, dst_at as u64, n as u64);
        self.launch("copy_range", n, (src, src_at, dst, dst_at, count))
    }

    /// dst[dst_at..] = (the [rows x cols] matrix at src[src_at..])^T.
    pub(super) fn transpose(
        &self,
        src: &CudaSlice<f32>,
        src_at: usize,
        dst: &mut CudaSlice<f32>,
        dst_at: usize,
        (rows, cols): (usize, usize),
    ) -> Result<(), String> {
        let args = (
            src,
            src_at as u64,
            dst,
            dst_at as u64,
            rows as u64,
            cols as u64,
        );
        self.launch("transpose", rows * cols, args)
    }
}

/// Runs `call` (column-major) in f32, or with bf16 operands (f32 accumulation and
/// output) on tensor cores.
fn op(trans: bool) -> blas::cublasOperation_t {
    if trans {
        blas::cublasOperation_t::CUBLAS_OP_T
    } else {
        blas::cublasOperation_t::CUBLAS_OP_N
    }
}

pub(super) fn gemm(
    k: &Kernels,
    call: GemmCall,
    precision: Precision,
    (a, b): (&CudaSlice<f32>, &CudaSlice<f32>),
    c: &mut CudaSlice<f32>,
    (half_a, half_b): (&mut CudaSlice<u16>, &mut CudaSlice<u16>),
) -> Result<(), String> {
    let dims = |v: usize| v as std::ffi::c_int;
    match precision {
        Precision::F32 => {
            let cfg = GemmConfig {
                transa: op(call.trans_a),
                transb: op(call.trans_b),
                m: dims(call.m),
                n: dims(call.n),
                k: dims(call.k),
                alpha: call.alpha,
                lda: dims(call.lda),
                ldb: dims(call.ldb),
                beta: call.beta,
                ldc: dims(call.ldc),
            };
            // SAFETY: the workspace buffers hold the matrices the dimensions describe.
            unsafe { k.blas.gemm(cfg, a, b, c) }.map_err(|e| err("cuBLAS sgemm", e))
        }
        Precision::Bf16 => {
            let (na, nb) = (a.len(), b.len());
            k.launch("to_bf16", na, (a, &mut *half_a, na as u64))?;
            k.launch("to_bf16", nb, (b, &mut *half_b, nb as u64))?;
            let (alpha, beta) = (call.alpha, call.beta);
            // SAFETY: as above; the bf16 copies have the operands' lengths.
            let status = unsafe {
                blas::cublasGemmEx(
                    *k.blas.handle(),
                    op(call.trans_a),
                    op(call.trans_b),
                    dims(call.m),
                    dims(call.n),
                    dims(call.k),
                    &alpha as *const f32 as *const c_void,
                    *half_a.device_ptr() as *const c_void,
                    blas::cudaDataType::CUDA_R_16BF,
                    dims(call.lda),
                    *half_b.device_ptr() as *const c_void,
                    blas::cudaDataType::CUDA_R_16BF,
                    dims(call.ldb),
                    &beta as *const f32 as *const c_void,
                    *c.device_ptr_mut() as *mut c_void,
                    blas::cudaDataType::CUDA_R_32F,
                    dims(call.ldc),
                    blas::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    blas::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT_TENSOR_OP,
                )
            };
            status.result().map_err(|e| err("cuBLAS GemmEx (bf16)", e))
        }
    }
}

//! Muon on the GPU, the same algorithm as the CPU reference (`muon.rs`,
//! `newton_schulz.rs`): momentum, Frobenius pre-normalisation, Newton-Schulz with cuBLAS
//! GEMMs (f32, or bf16 operands on tensor cores), update scaling.
//!
//! It works on dfdx's own CUDA buffers: a gradient slot (`Gradients::get_or_alloc_mut`)
//! is a `CudaSlice` on dfdx's device and stream, so every kernel and GEMM here is ordered
//! after the backward pass without a synchronisation. The orthogonalised update is
//! written back into the gradient slots, and dfdx's SGD (decoupled weight decay) applies
//! it to the Muon group only: p = p (1 - lr wd) - lr update.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use cudarc::cublas::{sys as blas, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{
    CudaDevice, CudaFunction, CudaSlice, DevicePtr, DevicePtrMut, DeviceSlice, LaunchAsync,
    LaunchConfig,
};
use dfdx::prelude::*;

use crate::cuda_kernels::{self, MUON};
use crate::model::{Architecture, Transformer};
use crate::spec::run_config::{Activation, MuonConfig, MuonMatrices, Precision};

use super::apply_update::ApplyUpdate;
use super::gemm_plan::{newton_schulz_calls, GemmCall};
use super::groups::MuonGroup;
use super::muon::update_scale;
use super::newton_schulz::{coefficients, norm_factor};
use super::MuonStep;

/// A device error, as text naming what failed.
fn err(what: &str, error: impl std::fmt::Debug) -> String {
    format!("{what}: {error:?}")
}

/// The loaded kernels and a cuBLAS handle on one device's default stream.
pub struct Kernels {
    dev: Arc<CudaDevice>,
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
    fn launch<P>(&self, name: &str, n: usize, params: P) -> Result<(), String>
    where
        CudaFunction: LaunchAsync<P>,
    {
        let function = self.functions[name].clone();
        // SAFETY: every kernel checks its index against n, and the buffers passed are at
        // least n long (see the callers).
        unsafe { function.launch(LaunchConfig::for_num_elems(n as u32), params) }
            .map_err(|e| err(name, e))
    }

    fn zeros<T: cudarc::driver::ValidAsZeroBits + cudarc::driver::DeviceRepr>(
        &self,
        n: usize,
    ) -> Result<CudaSlice<T>, String> {
        self.dev
            .alloc_zeros(n)
            .map_err(|e| err("allocating GPU memory", e))
    }

    fn copy(
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
    fn transpose(
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

/// Buffers for one matrix shape, reused every step.
struct Workspace {
    /// The direction, then the scaled update, [rows x cols].
    update: CudaSlice<f32>,
    /// X and the next X, [r x c] with r = min(rows, cols).
    x: CudaSlice<f32>,
    y: CudaSlice<f32>,
    /// A = X X^T and B = bA + cA^2, [r x r].
    a: CudaSlice<f32>,
    b: CudaSlice<f32>,
    /// bf16 operands of a tensor-core GEMM.
    half_a: CudaSlice<u16>,
    half_b: CudaSlice<u16>,
    sum_squares: CudaSlice<f32>,
}

impl Workspace {
    fn new(k: &Kernels, rows: usize, cols: usize) -> Result<Workspace, String> {
        let n = rows * cols;
        let r = rows.min(cols);
        Ok(Workspace {
            update: k.zeros(n)?,
            x: k.zeros(n)?,
            y: k.zeros(n)?,
            a: k.zeros(r * r)?,
            b: k.zeros(r * r)?,
            half_a: k.zeros(n.max(r * r))?,
            half_b: k.zeros(n.max(r * r))?,
            sum_squares: k.zeros(1)?,
        })
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

fn gemm(
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

/// Momentum, orthogonalisation and scaling of one [rows x cols] matrix: on return
/// `ws.update` holds the update, and `buf` the new momentum.
fn matrix_update(
    k: &Kernels,
    config: &MuonConfig,
    ws: &mut Workspace,
    buf: &mut CudaSlice<f32>,
    grad: &CudaSlice<f32>,
    (rows, cols): (usize, usize),
) -> Result<(), String> {
    let n = rows * cols;
    let count = n as u64;
    let nesterov = i32::from(config.nesterov);
    let beta = config.momentum as f32;
    k.launch(
        "momentum",
        n,
        (&mut *buf, grad, &mut ws.update, beta, nesterov, count),
    )?;
    k.dev
        .memset_zeros(&mut ws.sum_squares)
        .map_err(|e| err("memset", e))?;
    k.launch("sum_squares", n, (&ws.update, &mut ws.sum_squares, count))?;
    let factor = norm_factor(config.variant);
    k.launch(
        "divide_by_norm",
        n,
        (&mut ws.update, &ws.sum_squares, factor, 1e-7f32, count),
    )?;
    // Work on the wide orientation: X is [r x c] with r <= c.
    let tall = rows > cols;
    let (r, c) = if tall { (cols, rows) } else { (rows, cols) };
    if tall {
        k.transpose(&ws.update, 0, &mut ws.x, 0, (rows, cols))?;
    } else {
        k.copy(&ws.update, 0, &mut ws.x, 0, n)?;
    }
    let bf16 = config.precision == Precision::Bf16;
    for step in coefficients(config.variant, config.ns_steps) {
        let [gram, poly, next] = newton_schulz_calls(r, c, step);
        if bf16 {
            k.launch("round_bf16", n, (&mut ws.x, count))?;
        }
        let halves = (&mut ws.half_a, &mut ws.half_b);
        gemm(k, gram, config.precision, (&ws.x, &ws.x), &mut ws.a, halves)?;
        if bf16 {
            k.launch("round_bf16", r * r, (&mut ws.a, (r * r) as u64))?;
        }
        k.copy(&ws.a, 0, &mut ws.b, 0, r * r)?;
        let halves = (&mut ws.half_a, &mut ws.half_b);
        gemm(k, poly, config.precision, (&ws.a, &ws.a), &mut ws.b, halves)?;
        if bf16 {
            k.launch("round_bf16", r * r, (&mut ws.b, (r * r) as u64))?;
        }
        k.copy(&ws.x, 0, &mut ws.y, 0, n)?;
        let halves = (&mut ws.half_a, &mut ws.half_b);
        gemm(k, next, config.precision, (&ws.x, &ws.b), &mut ws.y, halves)?;
        std::mem::swap(&mut ws.x, &mut ws.y);
    }
    if tall {
        k.transpose(&ws.x, 0, &mut ws.update, 0, (r, c))?;
    } else {
        k.copy(&ws.x, 0, &mut ws.update, 0, n)?;
    }
    let scale = update_scale(config.update_scale, rows, cols);
    k.launch("scale", n, (&mut ws.update, scale, count))
}

/// Muon's state on the GPU: one momentum buffer per Muon matrix, workspaces per shape.
pub struct CudaMuon {
    config: MuonConfig,
    kernels: Option<Kernels>,
    buffers: Vec<CudaSlice<f32>>,
    /// Momentum restored from a checkpoint before the device was known.
    pending: Option<Vec<Vec<f32>>>,
    workspaces: HashMap<(usize, usize), Workspace>,
    /// The stacked [Q; K; V; O^T] gradient of the merged matrix.
    stack: Option<CudaSlice<f32>>,
    /// Applies the updates to the Muon group (built at the first step, from the model's
    /// architecture).
    apply: Option<ApplyUpdate<Cuda>>,
}

impl CudaMuon {
    pub fn new(config: &MuonConfig) -> CudaMuon {
        CudaMuon {
            config: config.clone(),
            kernels: None,
            buffers: Vec::new(),
            pending: None,
            workspaces: HashMap::new(),
            stack: None,
            apply: None,
        }
    }

    /// Loads the kernels on `dev` at first use, and uploads restored momentum.
    fn ready(&mut self, dev: Arc<CudaDevice>) -> Result<(), String> {
        if self.kernels.is_none() {
            self.kernels = Some(Kernels::load(dev.clone())?);
        }
        if let Some(pending) = self.pending.take() {
            self.buffers = pending
                .iter()
                .map(|b| {
                    dev.htod_sync_copy(b)
                        .map_err(|e| err("uploading momentum", e))
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    /// The update of matrix `index` from `grad` ([rows x cols]), left in the shape's
    /// workspace (`update`).
    fn update(
        &mut self,
        index: usize,
        grad: &CudaSlice<f32>,
        shape: (usize, usize),
    ) -> Result<&CudaSlice<f32>, String> {
        let k = self.kernels.as_ref().expect("ready() ran");
        while self.buffers.len() <= index {
            self.buffers.push(k.zeros(0)?);
        }
        if self.buffers[index].len() != shape.0 * shape.1 {
            self.buffers[index] = k.zeros(shape.0 * shape.1)?;
        }
        let ws = match self.workspaces.entry(shape) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(Workspace::new(k, shape.0, shape.1)?),
        };
        matrix_update(k, &self.config, ws, &mut self.buffers[index], grad, shape)?;
        Ok(&ws.update)
    }

    /// Opens device `ordinal` (sharing dfdx's primary context), readies the kernels there
    /// and uploads `grad`.
    fn upload(
        &mut self,
        ordinal: usize,
        grad: &[f32],
    ) -> Result<(Arc<CudaDevice>, CudaSlice<f32>), String> {
        let dev = CudaDevice::new(ordinal).map_err(|e| err("opening the GPU", e))?;
        self.ready(dev.clone())?;
        let grad = dev.htod_sync_copy(grad).map_err(|e| err("uploading", e))?;
        Ok((dev, grad))
    }

    /// One Muon update of a [rows x cols] matrix given on the host (tests, benchmarks):
    /// runs on CUDA device `ordinal` and returns the scaled update.
    pub fn update_on_host(
        &mut self,
        ordinal: usize,
        index: usize,
        grad: &[f32],
        rows: usize,
        cols: usize,
    ) -> Result<Vec<f32>, String> {
        let (dev, grad) = self.upload(ordinal, grad)?;
        let update = self.update(index, &grad, (rows, cols))?;
        dev.dtoh_sync_copy(update)
            .map_err(|e| err("downloading", e))
    }

    /// Seconds per Muon update of a [rows x cols] matrix on device `ordinal`: the mean
    /// of `repeats` updates after one warm-up, timed between device synchronisations.
    pub fn time_update(
        &mut self,
        ordinal: usize,
        grad: &[f32],
        (rows, cols): (usize, usize),
        repeats: usize,
    ) -> Result<f64, String> {
        let (dev, grad) = self.upload(ordinal, grad)?;
        self.update(0, &grad, (rows, cols))?;
        dev.synchronize().map_err(|e| err("synchronize", e))?;
        let started = std::time::Instant::now();
        for _ in 0..repeats {
            self.update(0, &grad, (rows, cols))?;
        }
        dev.synchronize().map_err(|e| err("synchronize", e))?;
        Ok(started.elapsed().as_secs_f64() / repeats.max(1) as f64)
    }
}

type Grads = Gradients<f32, Cuda>;

/// The gradient slot of `t`, as dfdx's `CudaSlice`.
fn slot<'g, S: Shape>(
    grads: &'g mut Grads,
    t: &Tensor<S, f32, Cuda>,
) -> Result<&'g mut CudaSlice<f32>, String> {
    grads
        .get_or_alloc_mut(t)
        .map(|slot| &mut **slot)
        .map_err(|e| err("gradient slot", e))
}

impl MuonStep<Cuda> for CudaMuon {
    fn step<
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
    >(
        &mut self,
        model: &mut Transformer<V, M, HD, KVW, F, L, f32, Cuda>,
        grads: &mut Grads,
        arch: &Architecture,
        lr: f64,
    ) -> Result<(), String> {
        let activation = arch.activation;
        let dev = slot(grads, &model.embed)?.device();
        self.ready(dev)?;
        let merged = self.config.matrices == MuonMatrices::MergedQkvo;
        let stack_rows = 2 * M + 2 * KVW;
        if merged && self.stack.is_none() {
            let k = self.kernels.as_ref().expect("ready");
            self.stack = Some(k.zeros(stack_rows * M)?);
        }
        let mut index = 0;
        // Where Q, K, V and O^T start in the stacked matrix.
        let offsets = [0, M * M, M * M + KVW * M, M * M + 2 * KVW * M];
        for block in &model.blocks {
            if merged {
                let mut stack = self.stack.take().expect("allocated above");
                {
                    let k = self.kernels.as_ref().expect("ready");
                    k.copy(slot(grads, &block.wq)?, 0, &mut stack, offsets[0], M * M)?;
                    k.copy(slot(grads, &block.wk)?, 0, &mut stack, offsets[1], KVW * M)?;
                    k.copy(slot(grads, &block.wv)?, 0, &mut stack, offsets[2], KVW * M)?;
                    k.transpose(slot(grads, &block.wo)?, 0, &mut stack, offsets[3], (M, M))?;
                }
                self.update(index, &stack, (stack_rows, M))?;
                index += 1;
                let k = self.kernels.as_ref().expect("ready");
                let update = &self.workspaces[&(stack_rows, M)].update;
                k.copy(update, offsets[0], slot(grads, &block.wq)?, 0, M * M)?;
                k.copy(update, offsets[1], slot(grads, &block.wk)?, 0, KVW * M)?;
                k.copy(update, offsets[2], slot(grads, &block.wv)?, 0, KVW * M)?;
                k.transpose(update, offsets[3], slot(grads, &block.wo)?, 0, (M, M))?;
                self.stack = Some(stack);
            } else {
                self.in_place(index, slot(grads, &block.wq)?, (M, M))?;
                self.in_place(index + 1, slot(grads, &block.wk)?, (KVW, M))?;
                self.in_place(index + 2, slot(grads, &block.wv)?, (KVW, M))?;
                self.in_place(index + 3, slot(grads, &block.wo)?, (M, M))?;
                index += 4;
            }
            self.in_place(index, slot(grads, &block.w_up)?, (F, M))?;
            index += 1;
            if activation == Activation::SwiGlu {
                self.in_place(index, slot(grads, &block.w_gate)?, (F, M))?;
                index += 1;
            }
            self.in_place(index, slot(grads, &block.w_down)?, (M, F))?;
            index += 1;
        }
        // p = p (1 - lr wd) - lr update, on the Muon group's tensors that are read.
        let weight_decay = self.config.weight_decay;
        let apply = self.apply.get_or_insert_with(|| {
            let arch = arch.clone();
            ApplyUpdate::new(weight_decay, Arc::new(move |path| arch.reads(path)))
        });
        apply.lr = lr;
        apply
            .apply(MuonGroup::of_mut(model), grads)
            .map_err(|e| err("applying the Muon update", e))
    }

    fn momentum_buffers(&self) -> Result<Vec<Vec<f32>>, String> {
        if let Some(pending) = &self.pending {
            return Ok(pending.clone());
        }
        let Some(k) = &self.kernels else {
            return Ok(Vec::new());
        };
        self.buffers
            .iter()
            .map(|b| {
                k.dev
                    .dtoh_sync_copy(b)
                    .map_err(|e| err("downloading momentum", e))
            })
            .collect()
    }

    fn restore_momentum(&mut self, buffers: Vec<Vec<f32>>) -> Result<(), String> {
        self.pending = Some(buffers);
        Ok(())
    }
}

impl CudaMuon {
    /// Replaces the gradient in `grad` ([rows x cols]) by its Muon update.
    fn in_place(
        &mut self,
        index: usize,
        grad: &mut CudaSlice<f32>,
        shape: (usize, usize),
    ) -> Result<(), String> {
        self.update(index, grad, shape)?;
        let k = self.kernels.as_ref().expect("ready");
        let update = &self.workspaces[&shape].update;
        k.copy(update, 0, grad, 0, shape.0 * shape.1)
    }
}

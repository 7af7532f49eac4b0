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
use std::sync::Arc;

use cudarc::driver::{CudaDevice, CudaSlice, DeviceSlice};
use dfdx::prelude::*;

use crate::model::{Architecture, Transformer};
use crate::spec::run_config::{Activation, MuonConfig, MuonMatrices, Precision};

use super::apply_update::ApplyUpdate;
use super::cuda_gemm::{err, gemm, Kernels};
use super::gemm_plan::newton_schulz_calls;
use super::groups::MuonGroup;
use super::muon::update_scale;
use super::newton_schulz::{coefficients, norm_factor};
use super::MuonStep;

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
    /// The stacked [Q; K; V; O^T] gradient of the merged matrix; with per-head
    /// matrices, one head's block and O^T.
    stack: Option<CudaSlice<f32>>,
    head: Option<CudaSlice<f32>>,
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
            head: None,
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
            } else if self.config.matrices == MuonMatrices::PerHead {
                index = self.per_head::<M, HD, KVW>(
                    index,
                    grads,
                    [&block.wq, &block.wo],
                    [&block.wk, &block.wv],
                )?;
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
    /// The per-head Muon matrices of one block, from Muon matrix `index` on (the order of
    /// `muon::attention_groups`: Q's heads, K's, V's, O^T's); returns the next index. Each
    /// head's rows are copied out, updated and copied back; O is transposed first and
    /// back after, its heads being rows of O^T.
    fn per_head<const M: usize, const HD: usize, const KVW: usize>(
        &mut self,
        mut index: usize,
        grads: &mut Grads,
        [wq, wo]: [&Tensor<Rank2<M, M>, f32, Cuda>; 2],
        [wk, wv]: [&Tensor<Rank2<KVW, M>, f32, Cuda>; 2],
    ) -> Result<usize, String> {
        if self.stack.is_none() {
            let k = self.kernels.as_ref().expect("ready");
            self.stack = Some(k.zeros(M * M)?);
        }
        let mut o_t = self.stack.take().expect("allocated above");
        let result = (|| {
            index = self.heads_in_place(index, slot(grads, wq)?, M / HD, HD, M)?;
            index = self.heads_in_place(index, slot(grads, wk)?, KVW / HD, HD, M)?;
            index = self.heads_in_place(index, slot(grads, wv)?, KVW / HD, HD, M)?;
            let k = self.kernels.as_ref().expect("ready");
            k.transpose(slot(grads, wo)?, 0, &mut o_t, 0, (M, M))?;
            index = self.heads_in_place(index, &mut o_t, M / HD, HD, M)?;
            let k = self.kernels.as_ref().expect("ready");
            k.transpose(&o_t, 0, slot(grads, wo)?, 0, (M, M))?;
            Ok(index)
        })();
        self.stack = Some(o_t);
        result
    }

    /// Replaces each of the `heads` [hd x cols] row blocks of `grad` by its Muon update,
    /// as Muon matrices `index..index + heads`; returns the next index.
    fn heads_in_place(
        &mut self,
        index: usize,
        grad: &mut CudaSlice<f32>,
        heads: usize,
        hd: usize,
        cols: usize,
    ) -> Result<usize, String> {
        let n = hd * cols;
        if self.head.as_ref().is_none_or(|b| b.len() != n) {
            let k = self.kernels.as_ref().expect("ready");
            self.head = Some(k.zeros(n)?);
        }
        let mut block = self.head.take().expect("allocated above");
        let mut result = Ok(());
        for head in 0..heads {
            result = (|| {
                let k = self.kernels.as_ref().expect("ready");
                k.copy(grad, head * n, &mut block, 0, n)?;
                self.update(index + head, &block, (hd, cols))?;
                let k = self.kernels.as_ref().expect("ready");
                let update = &self.workspaces[&(hd, cols)].update;
                k.copy(update, 0, grad, head * n, n)
            })();
            if result.is_err() {
                break;
            }
        }
        self.head = Some(block);
        result.map(|()| index + heads)
    }

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

//! Muon on a transformer's hidden matrices (CPU reference): momentum, Newton-Schulz
//! orthogonalisation, update scaling and decoupled weight decay, applied in place.

use dfdx::prelude::*;
use rayon::prelude::*;

use crate::model::snapshot::host;
use crate::model::{Architecture, Transformer};
use crate::spec::run_config::{Activation, MuonConfig, MuonMatrices, UpdateScale};

use super::newton_schulz::{orthogonalize, transpose};

/// Momentum step: buf = lerp(buf, g, 1 - beta); returns the direction to orthogonalise:
/// Nesterov lerp(g, buf, beta), or buf itself.
pub fn momentum(buf: &mut [f32], grad: &[f32], beta: f32, nesterov: bool) -> Vec<f32> {
    for (b, g) in buf.iter_mut().zip(grad) {
        *b += (1.0 - beta) * (g - *b);
    }
    if nesterov {
        grad.iter()
            .zip(buf.iter())
            .map(|(g, b)| g + beta * (b - g))
            .collect()
    } else {
        buf.to_vec()
    }
}

/// The factor applied to the orthogonalised update of a [rows x cols] matrix.
pub fn update_scale(rule: UpdateScale, rows: usize, cols: usize) -> f32 {
    match rule {
        UpdateScale::AspectRatio => (rows as f32 / cols as f32).max(1.0).sqrt(),
        UpdateScale::AdamRms(factor) => factor as f32 * (rows.max(cols) as f32).sqrt(),
    }
}

/// A Muon matrix: one or several weight tensors stacked by rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuonMatrix {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
}

/// The orthogonalised, scaled update of one matrix, updating its momentum buffer.
pub fn matrix_update(
    config: &MuonConfig,
    buf: &mut [f32],
    grad: &[f32],
    rows: usize,
    cols: usize,
) -> Vec<f32> {
    let direction = momentum(buf, grad, config.momentum as f32, config.nesterov);
    let scale = update_scale(config.update_scale, rows, cols);
    let mut update = orthogonalize(
        &direction,
        rows,
        cols,
        config.variant,
        config.ns_steps,
        config.precision,
    );
    update.iter_mut().for_each(|u| *u *= scale);
    update
}

/// p = p * (1 - lr * wd) - lr * update.
fn apply(param: &mut [f32], update: &[f32], lr: f32, weight_decay: f32) {
    let decay = 1.0 - lr * weight_decay;
    for (p, u) in param.iter_mut().zip(update) {
        *p = *p * decay - lr * u;
    }
}

/// Q, K, V and O^T by their index in a block's attention matrices.
const ATTENTION_NAMES: [&str; 4] = ["wq", "wk", "wv", "wo"];

/// Rows `start..start + rows` of attention matrix `matrix` (0 Q, 1 K, 2 V, 3 O^T; each
/// [width x d_model]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRange {
    pub matrix: usize,
    pub start: usize,
    pub rows: usize,
}

/// The row ranges of [Q, K, V, O^T] (row counts `widths`) stacked into each Muon matrix,
/// in `Muon::matrices` order.
pub fn attention_groups(
    matrices: MuonMatrices,
    widths: [usize; 4],
    head_dim: usize,
) -> Vec<Vec<RowRange>> {
    let whole = |matrix: usize| RowRange {
        matrix,
        start: 0,
        rows: widths[matrix],
    };
    match matrices {
        MuonMatrices::MergedQkvo => vec![(0..4).map(whole).collect()],
        MuonMatrices::Separate => (0..4).map(|m| vec![whole(m)]).collect(),
        MuonMatrices::PerHead => (0..4)
            .flat_map(|matrix| {
                (0..widths[matrix] / head_dim).map(move |head| {
                    vec![RowRange {
                        matrix,
                        start: head * head_dim,
                        rows: head_dim,
                    }]
                })
            })
            .collect(),
    }
}

/// Muon over every hidden matrix of a model, with one momentum buffer per Muon matrix.
pub struct Muon {
    config: MuonConfig,
    buffers: Vec<Vec<f32>>,
}

impl Muon {
    pub fn new(config: &MuonConfig) -> Self {
        Muon {
            config: config.clone(),
            buffers: Vec::new(),
        }
    }

    /// The Muon matrices of a model: per layer the attention projections (merged as
    /// [Q; K; V; O^T], separate, or per head) and the feed-forward matrices in use.
    pub fn matrices(
        config: &MuonConfig,
        activation: Activation,
        d_model: usize,
        kv_width: usize,
        head_dim: usize,
        d_ff: usize,
        n_layers: usize,
    ) -> Vec<MuonMatrix> {
        let m = |name: String, rows, cols| MuonMatrix { name, rows, cols };
        let widths = [d_model, kv_width, kv_width, d_model];
        let mut out = Vec::new();
        for layer in 0..n_layers {
            for group in attention_groups(config.matrices, widths, head_dim) {
                let rows = group.iter().map(|range| range.rows).sum();
                let name = match config.matrices {
                    MuonMatrices::MergedQkvo => "qkvo".to_owned(),
                    MuonMatrices::Separate => ATTENTION_NAMES[group[0].matrix].to_owned(),
                    MuonMatrices::PerHead => {
                        let range = group[0];
                        let head = range.start / head_dim;
                        format!("{}.head{head}", ATTENTION_NAMES[range.matrix])
                    }
                };
                out.push(m(format!("blocks.{layer}.{name}"), rows, d_model));
            }
            out.push(m(format!("blocks.{layer}.w_up"), d_ff, d_model));
            if activation == Activation::SwiGlu {
                out.push(m(format!("blocks.{layer}.w_gate"), d_ff, d_model));
            }
            out.push(m(format!("blocks.{layer}.w_down"), d_model, d_ff));
        }
        out
    }

    /// One Muon step on every hidden matrix of `model`, from `grads`, at learning rate `lr`:
    /// the gradients are gathered in `matrices` order, the matrices' updates computed in
    /// parallel (each Newton-Schulz on one thread), then applied.
    pub fn step<
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
    >(
        &mut self,
        model: &mut Transformer<V, M, HD, KVW, F, L, f32, Cpu>,
        grads: &mut Gradients<f32, Cpu>,
        activation: Activation,
        lr: f64,
    ) {
        let (lr, wd) = (lr as f32, self.config.weight_decay as f32);
        let groups = attention_groups(self.config.matrices, [M, KVW, KVW, M], HD);
        // 1. Each Muon matrix's gradient, [rows x cols].
        let mut jobs: Vec<(Vec<f32>, usize, usize)> = Vec::new();
        for block in &model.blocks {
            let attention = [
                grad_of(grads, &block.wq),
                grad_of(grads, &block.wk),
                grad_of(grads, &block.wv),
                // O enters the stack transposed: its rows are the attention width.
                transpose(&grad_of(grads, &block.wo), M, M),
            ];
            for group in &groups {
                let rows = group.iter().map(|range| range.rows).sum();
                let stacked = group.iter().flat_map(|range| {
                    attention[range.matrix][range.start * M..(range.start + range.rows) * M]
                        .iter()
                        .copied()
                });
                jobs.push((stacked.collect(), rows, M));
            }
            jobs.push((grad_of(grads, &block.w_up), F, M));
            if activation == Activation::SwiGlu {
                jobs.push((grad_of(grads, &block.w_gate), F, M));
            }
            jobs.push((grad_of(grads, &block.w_down), M, F));
        }
        // 2. The updates, in parallel over matrices.
        if self.buffers.len() < jobs.len() {
            self.buffers.resize(jobs.len(), Vec::new());
        }
        let config = &self.config;
        let updates: Vec<Vec<f32>> = self.buffers[..jobs.len()]
            .par_iter_mut()
            .zip(&jobs)
            .map(|(buf, (grad, rows, cols))| {
                if buf.is_empty() {
                    *buf = vec![0.0; grad.len()];
                }
                crate::matmul::one_per_thread(|| matrix_update(config, buf, grad, *rows, *cols))
            })
            .collect();
        // 3. Applied in the same order.
        let mut updates = updates.into_iter();
        for block in model.blocks.iter_mut() {
            let mut attention = [
                host(&block.wq),
                host(&block.wk),
                host(&block.wv),
                transpose(&host(&block.wo), M, M),
            ];
            for group in &groups {
                let update = updates.next().expect("one update per matrix");
                let mut offset = 0;
                for range in group {
                    let (from, len) = (range.start * M, range.rows * M);
                    let rows = &mut attention[range.matrix][from..from + len];
                    apply(rows, &update[offset..offset + len], lr, wd);
                    offset += len;
                }
            }
            block.wq.copy_from(&attention[0]);
            block.wk.copy_from(&attention[1]);
            block.wv.copy_from(&attention[2]);
            block.wo.copy_from(&transpose(&attention[3], M, M));
            let mut next = || updates.next().expect("one update per matrix");
            apply_to(&mut block.w_up, &next(), lr, wd);
            if activation == Activation::SwiGlu {
                apply_to(&mut block.w_gate, &next(), lr, wd);
            }
            apply_to(&mut block.w_down, &next(), lr, wd);
        }
    }
}

/// A parameter's gradient, row-major (zeros if it has none).
fn grad_of<S: Shape>(grads: &mut Gradients<f32, Cpu>, t: &Tensor<S, f32, Cpu>) -> Vec<f32> {
    match grads.get_or_alloc_mut(t) {
        Ok(slot) => slot.to_vec(),
        Err(_) => vec![0.0; t.shape().num_elements()],
    }
}

/// `apply` on a parameter tensor.
fn apply_to<S: Shape>(param: &mut Tensor<S, f32, Cpu>, update: &[f32], lr: f32, wd: f32) {
    let mut v = host(param);
    apply(&mut v, update, lr, wd);
    param.copy_from(&v);
}

impl super::MuonStep<Cpu> for Muon {
    fn step<
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
    >(
        &mut self,
        model: &mut Transformer<V, M, HD, KVW, F, L, f32, Cpu>,
        grads: &mut Gradients<f32, Cpu>,
        arch: &Architecture,
        lr: f64,
    ) -> Result<(), String> {
        Muon::step(self, model, grads, arch.activation, lr);
        Ok(())
    }

    /// One buffer per Muon matrix in `matrices` order (none before the first step).
    fn momentum_buffers(&self) -> Result<Vec<Vec<f32>>, String> {
        Ok(self.buffers.clone())
    }

    fn restore_momentum(&mut self, buffers: Vec<Vec<f32>>) -> Result<(), String> {
        self.buffers = buffers;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn momentum_matches_a_hand_computation() {
        let mut buf = vec![0.0, 1.0];
        // buf = 0.9 * buf + 0.1 * g = [0.2, 1.2]; nesterov = 0.1 * g + 0.9 * buf = [0.38, 1.38]
        let nesterov = momentum(&mut buf, &[2.0, 3.0], 0.9, true);
        assert!(
            (buf[0] - 0.2).abs() < 1e-6 && (buf[1] - 1.2).abs() < 1e-6,
            "{buf:?}"
        );
        assert!(
            (nesterov[0] - 0.38).abs() < 1e-6 && (nesterov[1] - 1.38).abs() < 1e-6,
            "{nesterov:?}"
        );
        let plain = momentum(&mut buf, &[2.0, 3.0], 0.9, false);
        // buf = 0.9 * [0.2, 1.2] + 0.1 * [2, 3] = [0.38, 1.38]
        assert!(
            (plain[0] - 0.38).abs() < 1e-6 && (plain[1] - 1.38).abs() < 1e-6,
            "{plain:?}"
        );
    }

    #[test]
    fn update_scales_follow_both_rules() {
        assert_eq!(
            update_scale(UpdateScale::AspectRatio, 1536, 512),
            3f32.sqrt()
        );
        assert_eq!(update_scale(UpdateScale::AspectRatio, 512, 2048), 1.0);
        assert!(
            (update_scale(UpdateScale::AdamRms(0.2), 512, 2048) - 0.2 * 2048f32.sqrt()).abs()
                < 1e-5
        );
    }

    #[test]
    fn weight_decay_is_decoupled() {
        let mut p = vec![1.0, -2.0];
        apply(&mut p, &[0.5, 0.5], 0.1, 0.2);
        assert!(
            (p[0] - (0.98 - 0.05)).abs() < 1e-6 && (p[1] - (-1.96 - 0.05)).abs() < 1e-6,
            "{p:?}"
        );
    }
}

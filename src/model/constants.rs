//! Sequence-length-dependent constants of the forward pass: RoPE tables and the causal
//! mask.

use std::sync::Arc;

use dfdx::prelude::*;

use super::arch::Architecture;
use super::cpu_ops::RopeTable;

/// Large negative score for masked (future) positions: exp underflows to 0 without the
/// NaNs that -inf can produce in the backward pass.
const MASKED: f32 = -1e30;

pub struct Constants<const HD: usize, D: Device<f32>> {
    /// The sequence length these constants are for.
    pub seq: usize,
    /// [seq, HD] cos and sin of position * frequency, in "rotate half" layout.
    pub cos: Tensor<(usize, Const<HD>), f32, D>,
    pub sin: Tensor<(usize, Const<HD>), f32, D>,
    /// The same tables on the host, for the CPU's fused RoPE.
    pub rope_table: RopeTable,
    /// [HD, HD]: x @ rotate = (-x2, x1).
    pub rotate: Tensor<Rank2<HD, HD>, f32, D>,
    /// [seq, seq]: 0 where a query may attend, MASKED after it (for devices without a
    /// fused causal attention).
    pub mask: Tensor<(usize, usize), f32, D>,
    /// Per query head h, [HD, heads * HD] with ones at (d, h * HD + d): a head's
    /// attention output times it lands in the head's columns.
    pub placements: Vec<Tensor<(Const<HD>, usize), f32, D>>,
}

impl<const HD: usize, D: Device<f32>> Constants<HD, D> {
    pub fn new(dev: &D, arch: &Architecture, seq_len: usize) -> Self {
        let half = HD / 2;
        let mut cos = Vec::with_capacity(seq_len * HD);
        let mut sin = Vec::with_capacity(seq_len * HD);
        for pos in 0..seq_len {
            for i in 0..HD {
                let freq = arch.rope_base.powf(-2.0 * (i % half) as f64 / HD as f64);
                let angle = pos as f64 * freq;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let mut rotate = vec![0.0f32; HD * HD];
        for j in 0..half {
            rotate[(j + half) * HD + j] = -1.0;
            rotate[j * HD + j + half] = 1.0;
        }
        let mut mask = Vec::with_capacity(seq_len * seq_len);
        for query in 0..seq_len {
            mask.extend((0..seq_len).map(|key| if key <= query { 0.0 } else { MASKED }));
        }
        let width = arch.n_heads * HD;
        let placements = (0..arch.n_heads)
            .map(|h| {
                let mut e = vec![0.0f32; HD * width];
                for d in 0..HD {
                    e[d * width + h * HD + d] = 1.0;
                }
                dev.tensor_from_vec(e, (Const::<HD>, width))
            })
            .collect();
        Constants {
            seq: seq_len,
            rope_table: RopeTable {
                cos: Arc::from(cos.as_slice()),
                sin: Arc::from(sin.as_slice()),
                head_dim: HD,
                seq: seq_len,
            },
            cos: dev.tensor_from_vec(cos, (seq_len, Const::<HD>)),
            sin: dev.tensor_from_vec(sin, (seq_len, Const::<HD>)),
            rotate: dev.tensor_from_vec(rotate, (Const::<HD>, Const::<HD>)),
            mask: dev.tensor_from_vec(mask, (seq_len, seq_len)),
            placements,
        }
    }
}

//! Format 1 of checkpoints (rankprobe up to 2026-12-03), still read so that runs
//! checkpointed then resume. Its header named the optimizer state after AdamW and Muon,
//! the only optimizers of the time; it becomes today's named state under the names
//! those optimizers use (`tests/fixtures/v1-checkpoints` holds real files of it).

use serde::Deserialize;

use crate::optim::adamw;
use crate::optim::muon_adamw::momentum_name;
use crate::optim::state::OptimizerState;

use super::checkpoint::{corrupt, Checkpoint, CheckpointError, Counters, Values};

pub(super) const MAGIC: &[u8; 16] = b"rankprobe-ckpt1\n";

#[derive(Deserialize)]
struct Header {
    run_id: String,
    step: u64,
    counters: Counters,
    adamw_step: i32,
    /// Lengths of the tensors of each section, in order.
    model: Vec<usize>,
    /// 0 for a tensor AdamW had not updated.
    adamw_moments: Vec<usize>,
    muon: Vec<usize>,
}

/// The checkpoint of a format-1 `header` and its `values` (model tensors, then both
/// moments of each AdamW tensor with any, then the Muon buffers).
pub(super) fn decode(header: &[u8], values: &mut Values) -> Result<Checkpoint, CheckpointError> {
    let header: Header = serde_json::from_slice(header)
        .map_err(|err| corrupt(format!("unreadable header: {err}")))?;
    let model = values.tensors(&header.model)?;
    let mut optimizer = OptimizerState::default();
    optimizer.counter(adamw::STEP, i64::from(header.adamw_step));
    for (index, &len) in header.adamw_moments.iter().enumerate() {
        if len > 0 {
            let (m, v) = adamw::moment_names(index);
            optimizer.buffer(m, values.take(len)?);
            optimizer.buffer(v, values.take(len)?);
        }
    }
    for (index, &len) in header.muon.iter().enumerate() {
        optimizer.buffer(momentum_name(index), values.take(len)?);
    }
    Ok(Checkpoint {
        run_id: header.run_id,
        step: header.step,
        counters: header.counters,
        model,
        optimizer,
    })
}

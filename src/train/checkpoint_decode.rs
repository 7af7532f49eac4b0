//! Reading a checkpoint of either format back: the current one (`checkpoint`) and
//! version 1 (`checkpoint_v1`), told apart by their magic. Here, above both, so that
//! neither format's module needs the other.

use sha2::{Digest, Sha256};

use crate::optim::state::OptimizerState;

use super::checkpoint::{corrupt, Checkpoint, CheckpointError, Header, Values, MAGIC};
use super::checkpoint_v1;

impl Checkpoint {
    /// A checkpoint of either format.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        if bytes.len() < MAGIC.len() + 8 + 32 {
            return Err(corrupt(
                "not a rankprobe checkpoint (bad magic or too short)",
            ));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        let (magic, rest) = body.split_at(MAGIC.len());
        let version_1 = magic == checkpoint_v1::MAGIC;
        if magic != MAGIC && !version_1 {
            return Err(corrupt(
                "not a rankprobe checkpoint (bad magic or too short)",
            ));
        }
        if Sha256::digest(body).as_slice() != digest {
            return Err(corrupt("checksum mismatch (truncated or damaged file)"));
        }
        let header_len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
        let rest = &rest[8..];
        let header_len = usize::try_from(header_len)
            .ok()
            .filter(|&len| len <= rest.len())
            .ok_or_else(|| corrupt("header longer than the file"))?;
        let (header, values) = rest.split_at(header_len);
        let mut values = Values(values);
        let checkpoint = if version_1 {
            checkpoint_v1::decode(header, &mut values)?
        } else {
            let header: Header = serde_json::from_slice(header)
                .map_err(|err| corrupt(format!("unreadable header: {err}")))?;
            let model = values.tensors(&header.model)?;
            let mut optimizer = OptimizerState {
                counters: header.optimizer_counters,
                buffers: Vec::with_capacity(header.optimizer_buffers.len()),
            };
            for (name, len) in header.optimizer_buffers {
                optimizer.buffer(name, values.take(len)?);
            }
            Checkpoint {
                run_id: header.run_id,
                step: header.step,
                counters: header.counters,
                model,
                optimizer,
            }
        };
        if !values.0.is_empty() {
            return Err(corrupt("trailing bytes after the last section"));
        }
        Ok(checkpoint)
    }
}

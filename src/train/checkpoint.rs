//! A run's training state at a step boundary, on disk: model tensors, the optimizer's
//! named state and the loop's counters. Batches are a function of (seed, step) and
//! nothing else draws random numbers after initialisation, so the step is the whole
//! data position and RNG state.
//!
//! Format 2: the magic line, a little-endian u64 header length, a JSON header, the f32
//! values (little-endian) of every section in header order, and a SHA-256 of all the
//! bytes before it, so a truncated or damaged file is recognised as such. The optimizer's
//! state is a list of named counters and buffers: the file does not know which optimizer
//! wrote it. Format 1 (fields named after AdamW and Muon) is still read
//! (`checkpoint_v1.rs`), so runs checkpointed by earlier versions resume.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::atomic_file::write_atomic;
use crate::optim::state::OptimizerState;

/// The file name in a run directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.bin";

/// A finished run's final state, kept when the study asks for it
/// (`execution.keep_final_state`): a checkpoint at the run's last step.
pub const FINAL_STATE_FILE: &str = "final_state.bin";

pub(super) const MAGIC: &[u8; 16] = b"rankprobe-ckpt2\n";

/// Loop counters that continue across a resume.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Seconds since the run first started, summed over its sessions.
    pub elapsed_s: f64,
    /// Seconds spent in training steps (for tokens/s).
    pub train_seconds: f64,
    pub probe_seconds: f64,
    #[serde(default)]
    pub checkpoint_seconds: f64,
    /// The last validation loss (NaN before the first evaluation).
    #[serde(with = "f64_bits")]
    pub last_val: f64,
    /// The step-0 validation loss (NaN before it is measured): what the divergence
    /// rule's margin is above. Checkpoints from before the rule read as NaN.
    #[serde(default = "nan", with = "f64_bits")]
    pub initial_val: f64,
    /// Evaluations in a row whose loss was above the divergence rule's bound.
    #[serde(default)]
    pub evals_above_bound: u32,
}

fn nan() -> f64 {
    f64::NAN
}

impl Counters {
    /// A run's counters before its first step.
    pub fn start() -> Self {
        Counters {
            elapsed_s: 0.0,
            train_seconds: 0.0,
            probe_seconds: 0.0,
            checkpoint_seconds: 0.0,
            last_val: f64::NAN,
            initial_val: f64::NAN,
            evals_above_bound: 0,
        }
    }
}

/// An f64 as its bit pattern: JSON has no NaN, and the value must come back exactly.
mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        u64::deserialize(deserializer).map(f64::from_bits)
    }
}

/// Everything needed to continue a run exactly where it stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The run id of the config that produced it; a checkpoint of another config is
    /// never resumed.
    pub run_id: String,
    /// Optimizer steps taken; the loop continues at this step (its evaluation is done).
    pub step: u64,
    pub counters: Counters,
    /// The model's tensors in visiting order.
    pub model: Vec<Vec<f32>>,
    /// The optimizer's state, by name (what fits is the optimizer's to judge).
    pub optimizer: OptimizerState,
}

/// The current format's header (`checkpoint_decode` reads it back).
#[derive(Serialize, Deserialize)]
pub(super) struct Header {
    pub(super) run_id: String,
    pub(super) step: u64,
    pub(super) counters: Counters,
    /// Lengths of the model's tensors, in order.
    pub(super) model: Vec<usize>,
    /// The optimizer's counters.
    pub(super) optimizer_counters: Vec<(String, i64)>,
    /// The optimizer's buffers: name and length, in order (after the model's tensors).
    pub(super) optimizer_buffers: Vec<(String, usize)>,
}

/// What a checkpoint of a run must hold besides its optimizer's state, read off the
/// model built for it.
#[derive(Debug, Clone, PartialEq)]
pub struct StateLayout {
    /// The run's number of optimizer steps.
    pub steps: u64,
    /// The length of every model tensor, in visiting order.
    pub model: Vec<usize>,
}

/// Why a checkpoint file cannot be used.
#[derive(Debug)]
pub enum CheckpointError {
    Io(std::io::Error),
    /// Truncated, damaged or not a checkpoint.
    Corrupt(String),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io(err) => write!(f, "{err}"),
            CheckpointError::Corrupt(why) => write!(f, "corrupt checkpoint: {why}"),
        }
    }
}

impl std::error::Error for CheckpointError {}

pub(super) fn corrupt(why: impl Into<String>) -> CheckpointError {
    CheckpointError::Corrupt(why.into())
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let header = Header {
            run_id: self.run_id.clone(),
            step: self.step,
            counters: self.counters,
            model: self.model.iter().map(Vec::len).collect(),
            optimizer_counters: self.optimizer.counters.clone(),
            optimizer_buffers: (self.optimizer.buffers.iter())
                .map(|(name, values)| (name.clone(), values.len()))
                .collect(),
        };
        let header = serde_json::to_vec(&header).expect("a header always serialises");
        let values: usize = self.tensors().map(<[f32]>::len).sum();
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + header.len() + 4 * values + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for tensor in self.tensors() {
            tensor.iter().for_each(|v| out.extend(v.to_le_bytes()));
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    /// The model's tensors, then the optimizer's buffers.
    fn tensors(&self) -> impl Iterator<Item = &[f32]> {
        let model = self.model.iter().map(Vec::as_slice);
        model.chain(self.optimizer.buffers.iter().map(|(_, v)| v.as_slice()))
    }

    /// Whether this checkpoint can continue a run of `layout`: its step, counters and
    /// model tensors must be ones the run could have written, and every value finite.
    /// The optimizer's state is checked by the optimizer as it restores it.
    pub fn check(&self, layout: &StateLayout) -> Result<(), String> {
        if self.step == 0 || self.step > layout.steps {
            return Err(format!(
                "it is at step {}, outside the run's steps 1..={}",
                self.step, layout.steps
            ));
        }
        let c = &self.counters;
        for (name, value) in [
            ("elapsed_s", c.elapsed_s),
            ("train_seconds", c.train_seconds),
            ("probe_seconds", c.probe_seconds),
            ("checkpoint_seconds", c.checkpoint_seconds),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("its counter {name} is {value}"));
            }
        }
        for (name, value) in [("last", c.last_val), ("initial", c.initial_val)] {
            if value < 0.0 || value == f64::INFINITY {
                return Err(format!("its {name} validation loss is {value}"));
            }
        }
        same_lengths("model tensor", &self.model, &layout.model)?;
        if let Some(i) = self
            .model
            .iter()
            .position(|t| t.iter().any(|v| !v.is_finite()))
        {
            return Err(format!("model tensor {i} is not finite"));
        }
        let buffers = self.optimizer.buffers.iter();
        if let Some((name, _)) = buffers
            .clone()
            .find(|(_, t)| t.iter().any(|v| !v.is_finite()))
        {
            return Err(format!("the optimizer's buffer `{name}` is not finite"));
        }
        Ok(())
    }

    /// Writes the checkpoint atomically: readers see the previous one or this one whole.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_atomic(path, &self.encode())
    }

    /// The checkpoint at `path`; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
        match crate::regular_file::read(path) {
            Ok(bytes) => Checkpoint::decode(&bytes).map(Some),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(CheckpointError::Io(err)),
        }
    }
}

/// Checks that `found` has the `expected` number of tensors with the expected lengths.
fn same_lengths(what: &str, found: &[Vec<f32>], expected: &[usize]) -> Result<(), String> {
    if found.len() != expected.len() {
        return Err(format!(
            "it holds {} {what}s, the run has {}",
            found.len(),
            expected.len()
        ));
    }
    match found
        .iter()
        .zip(expected)
        .position(|(t, &len)| t.len() != len)
    {
        Some(i) => Err(format!(
            "{what} {i} holds {} values, the run's holds {}",
            found[i].len(),
            expected[i]
        )),
        None => Ok(()),
    }
}

/// The f32 payload, consumed front to back.
pub(super) struct Values<'a>(pub(super) &'a [u8]);

impl Values<'_> {
    pub(super) fn take(&mut self, len: usize) -> Result<Vec<f32>, CheckpointError> {
        let bytes = len
            .checked_mul(4)
            .filter(|&n| n <= self.0.len())
            .ok_or_else(|| corrupt("sections longer than the file"))?;
        let (head, tail) = self.0.split_at(bytes);
        self.0 = tail;
        Ok(head
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }

    pub(super) fn tensors(&mut self, lens: &[usize]) -> Result<Vec<Vec<f32>>, CheckpointError> {
        lens.iter().map(|&len| self.take(len)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let mut optimizer = OptimizerState::default();
        optimizer.counter("adamw.step", 7);
        optimizer.buffer("adamw.m.0", vec![0.1, 0.2, 0.3]);
        optimizer.buffer("adamw.v.0", vec![1.0, 2.0, 3.0]);
        optimizer.buffer("muon.momentum.0", vec![9.0; 4]);
        Checkpoint {
            run_id: "d41100dccce8".to_owned(),
            step: 7,
            counters: Counters {
                elapsed_s: 1.5,
                train_seconds: 1.0,
                probe_seconds: 0.25,
                checkpoint_seconds: 0.5,
                last_val: f64::NAN,
                initial_val: 7.5,
                evals_above_bound: 1,
            },
            model: vec![vec![1.0, -2.0, 3.5], vec![f32::MIN_POSITIVE]],
            optimizer,
        }
    }

    /// Equal, reading a NaN last validation loss as equal to itself.
    fn same(a: &Checkpoint, b: &Checkpoint) -> bool {
        let nan_free = |c: &Checkpoint| Checkpoint {
            counters: Counters {
                last_val: 0.0,
                ..c.counters
            },
            ..c.clone()
        };
        a.counters.last_val.to_bits() == b.counters.last_val.to_bits() && nan_free(a) == nan_free(b)
    }

    #[test]
    fn round_trips_bit_for_bit() {
        let ckpt = sample();
        let bytes = ckpt.encode();
        assert_eq!(&bytes[..MAGIC.len()], b"rankprobe-ckpt2\n");
        assert!(same(&Checkpoint::decode(&bytes).unwrap(), &ckpt));
    }

    /// `ckpt` in format 1, as rankprobe wrote it until 2026-12-03.
    fn format_1(ckpt: &Checkpoint, adamw_moments: &[usize], muon: &[usize]) -> Vec<u8> {
        let header = serde_json::json!({
            "run_id": ckpt.run_id,
            "step": ckpt.step,
            "counters": ckpt.counters,
            "adamw_step": 7,
            "model": ckpt.model.iter().map(Vec::len).collect::<Vec<_>>(),
            "adamw_moments": adamw_moments,
            "muon": muon,
        });
        let header = serde_json::to_vec(&header).unwrap();
        let mut out = b"rankprobe-ckpt1\n".to_vec();
        out.extend((header.len() as u64).to_le_bytes());
        out.extend(&header);
        for tensor in ckpt.tensors() {
            tensor.iter().for_each(|v| out.extend(v.to_le_bytes()));
        }
        let digest = Sha256::digest(&out);
        out.extend(digest);
        out
    }

    #[test]
    fn format_1_is_read_under_the_names_its_optimizers_use_today() {
        let ckpt = sample();
        // Format 1 wrote 0 for a tensor without moments (here the second model tensor).
        let v1 = format_1(&ckpt, &[3, 0], &[4]);
        assert!(same(&Checkpoint::decode(&v1).unwrap(), &ckpt));
        let mut damaged = v1.clone();
        let at = damaged.len() - 40;
        damaged[at] ^= 1;
        assert!(Checkpoint::decode(&damaged).is_err());
    }

    #[test]
    fn truncation_and_damage_are_detected() {
        let bytes = sample().encode();
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            let err = Checkpoint::decode(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, CheckpointError::Corrupt(_)),
                "cut {cut}: {err}"
            );
        }
        let mut flipped = bytes.clone();
        let at = flipped.len() - 40;
        flipped[at] ^= 1;
        let err = Checkpoint::decode(&flipped).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        let mut other = bytes;
        other[..16].copy_from_slice(b"rankprobe-ckpt9\n");
        let err = Checkpoint::decode(&other).unwrap_err().to_string();
        assert!(err.contains("bad magic"), "{err}");
    }

    fn layout() -> StateLayout {
        StateLayout {
            steps: 10,
            model: vec![3, 1],
        }
    }

    #[test]
    fn a_checkpoint_that_fits_its_run_passes_and_each_misfit_is_named() {
        assert_eq!(sample().check(&layout()), Ok(()));
        let misfit = |change: &dyn Fn(&mut Checkpoint), says: &str| {
            let mut ckpt = sample();
            change(&mut ckpt);
            let why = ckpt.check(&layout()).unwrap_err();
            assert!(why.contains(says), "{says}: {why}");
        };
        misfit(&|c| c.step = 11, "outside the run's steps");
        misfit(&|c| c.step = 0, "outside the run's steps");
        misfit(&|c| c.counters.elapsed_s = -1.0, "elapsed_s");
        misfit(&|c| c.counters.train_seconds = f64::NAN, "train_seconds");
        misfit(&|c| c.counters.last_val = -0.5, "validation loss");
        misfit(&|c| c.model[0].truncate(2), "model tensor 0 holds 2");
        misfit(&|c| c.model.push(vec![]), "3 model tensors");
        misfit(
            &|c| c.model[1][0] = f32::NAN,
            "model tensor 1 is not finite",
        );
        misfit(
            &|c| c.optimizer.buffers[2].1[0] = f32::INFINITY,
            "`muon.momentum.0` is not finite",
        );
    }

    #[test]
    fn a_missing_file_is_no_checkpoint() {
        let path = std::env::temp_dir().join("rankprobe-no-such-checkpoint.bin");
        assert!(Checkpoint::read(&path).unwrap().is_none());
    }
}

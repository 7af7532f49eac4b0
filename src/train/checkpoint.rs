//! A run's training state at a step boundary, on disk: model tensors, AdamW moments,
//! Muon momentum and the loop's counters. Batches are a function of (seed, step) and
//! nothing else draws random numbers after initialisation, so the step is the whole
//! data position and RNG state.
//!
//! Format: the magic line, a little-endian u64 header length, a JSON header, the f32
//! values (little-endian) of every section in header order, and a SHA-256 of all the
//! bytes before it, so a truncated or damaged file is recognised as such.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::atomic_file::write_atomic;
use crate::optim::adamw::AdamWState;
use crate::optim::trained::TensorSizes;

/// The file name in a run directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.bin";

const MAGIC: &[u8; 16] = b"rankprobe-ckpt1\n";

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
    pub adamw: AdamWState,
    /// Muon momentum buffers, one per Muon matrix (empty for an AdamW run).
    pub muon: Vec<Vec<f32>>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    run_id: String,
    step: u64,
    counters: Counters,
    adamw_step: i32,
    /// Lengths of the tensors of each section, in order.
    model: Vec<usize>,
    /// 0 for a tensor AdamW has not updated yet.
    adamw_moments: Vec<usize>,
    muon: Vec<usize>,
}

/// What a checkpoint of a run must hold, read off the model and optimizers built for it.
#[derive(Debug, Clone, PartialEq)]
pub struct StateLayout {
    /// The run's number of optimizer steps.
    pub steps: u64,
    /// The length of every model tensor, in visiting order.
    pub model: Vec<usize>,
    /// The tensors of AdamW's module, in its visiting order: (length, updated by AdamW).
    pub adamw: TensorSizes,
    /// The length of each Muon matrix's momentum buffer (none in an AdamW run).
    pub muon: Vec<usize>,
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

fn corrupt(why: impl Into<String>) -> CheckpointError {
    CheckpointError::Corrupt(why.into())
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let lens = |tensors: &[Vec<f32>]| tensors.iter().map(Vec::len).collect();
        let header = Header {
            run_id: self.run_id.clone(),
            step: self.step,
            counters: self.counters,
            adamw_step: self.adamw.step,
            model: lens(&self.model),
            adamw_moments: self
                .adamw
                .moments
                .iter()
                .map(|slot| slot.as_ref().map_or(0, |(m, _)| m.len()))
                .collect(),
            muon: lens(&self.muon),
        };
        let header = serde_json::to_vec(&header).expect("a header always serialises");
        let values: usize = self
            .model
            .iter()
            .chain(&self.muon)
            .map(Vec::len)
            .sum::<usize>()
            + 2 * header_moments_len(&self.adamw);
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + header.len() + 4 * values + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        let mut put = |values: &[f32]| values.iter().for_each(|v| out.extend(v.to_le_bytes()));
        self.model.iter().for_each(|t| put(t));
        for (m, v) in self.adamw.moments.iter().flatten() {
            put(m);
            put(v);
        }
        self.muon.iter().for_each(|t| put(t));
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        if bytes.len() < MAGIC.len() + 8 + 32 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt(
                "not a rankprobe checkpoint (bad magic or too short)",
            ));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err(corrupt("checksum mismatch (truncated or damaged file)"));
        }
        let mut rest = &body[MAGIC.len()..];
        let header_len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
        rest = &rest[8..];
        if header_len > rest.len() {
            return Err(corrupt("header longer than the file"));
        }
        let header: Header = serde_json::from_slice(&rest[..header_len])
            .map_err(|err| corrupt(format!("unreadable header: {err}")))?;
        let mut values = Values(&rest[header_len..]);
        let model = values.tensors(&header.model)?;
        let mut moments = Vec::with_capacity(header.adamw_moments.len());
        for &len in &header.adamw_moments {
            moments.push(match len {
                0 => None,
                _ => Some((values.take(len)?, values.take(len)?)),
            });
        }
        let muon = values.tensors(&header.muon)?;
        if !values.0.is_empty() {
            return Err(corrupt("trailing bytes after the last section"));
        }
        Ok(Checkpoint {
            run_id: header.run_id,
            step: header.step,
            counters: header.counters,
            model,
            adamw: AdamWState {
                step: header.adamw_step,
                moments,
            },
            muon,
        })
    }

    /// Whether this checkpoint can continue a run of `layout`: every length, count and
    /// counter it holds must be one the run could have written at its step. A checkpoint
    /// that passes restores without a panic and trains every tensor as the run would.
    pub fn check(&self, layout: &StateLayout) -> Result<(), String> {
        if self.step == 0 || self.step > layout.steps {
            return Err(format!(
                "it is at step {}, outside the run's steps 1..={}",
                self.step, layout.steps
            ));
        }
        if i64::from(self.adamw.step) != self.step as i64 {
            return Err(format!(
                "AdamW counted {} steps where the run is at step {}",
                self.adamw.step, self.step
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
        if c.last_val < 0.0 || c.last_val == f64::INFINITY {
            return Err(format!("its last validation loss is {}", c.last_val));
        }
        same_lengths("model tensor", &self.model, &layout.model)?;
        if self.adamw.moments.len() > layout.adamw.len() {
            return Err(format!(
                "it holds AdamW moments for {} tensors, the run has {}",
                self.adamw.moments.len(),
                layout.adamw.len()
            ));
        }
        for (i, &(len, updated)) in layout.adamw.iter().enumerate() {
            match self.adamw.moments.get(i).and_then(Option::as_ref) {
                // Moments of a tensor AdamW does not update are dropped at the next step
                // (checkpoints of earlier versions hold some); their length must still fit.
                Some((m, v)) if m.len() != len || v.len() != len => {
                    return Err(format!(
                        "AdamW's moments of tensor {i} hold {} values, the tensor {len}",
                        m.len()
                    ))
                }
                None if updated => {
                    return Err(format!(
                        "AdamW has no moments for tensor {i}, which it updates every step"
                    ))
                }
                _ => {}
            }
        }
        same_lengths("Muon momentum buffer", &self.muon, &layout.muon)?;
        let mut tensors = self.model.iter().chain(&self.muon);
        if let Some(i) = tensors.position(|t| t.iter().any(|v| !v.is_finite())) {
            return Err(format!("tensor {i} of its model or momentum is not finite"));
        }
        for (m, v) in self.adamw.moments.iter().flatten() {
            if m.iter().any(|x| !x.is_finite()) || v.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
                return Err("an AdamW moment is not finite (or a second moment negative)".into());
            }
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

fn header_moments_len(state: &AdamWState) -> usize {
    state.moments.iter().flatten().map(|(m, _)| m.len()).sum()
}

/// The f32 payload, consumed front to back.
struct Values<'a>(&'a [u8]);

impl Values<'_> {
    fn take(&mut self, len: usize) -> Result<Vec<f32>, CheckpointError> {
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

    fn tensors(&mut self, lens: &[usize]) -> Result<Vec<Vec<f32>>, CheckpointError> {
        lens.iter().map(|&len| self.take(len)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            run_id: "d41100dccce8".to_owned(),
            step: 7,
            counters: Counters {
                elapsed_s: 1.5,
                train_seconds: 1.0,
                probe_seconds: 0.25,
                checkpoint_seconds: 0.5,
                last_val: f64::NAN,
            },
            model: vec![vec![1.0, -2.0, 3.5], vec![f32::MIN_POSITIVE]],
            adamw: AdamWState {
                step: 7,
                moments: vec![Some((vec![0.1, 0.2, 0.3], vec![1.0, 2.0, 3.0])), None],
            },
            muon: vec![vec![9.0; 4]],
        }
    }

    #[test]
    fn round_trips_bit_for_bit() {
        let ckpt = sample();
        let back = Checkpoint::decode(&ckpt.encode()).unwrap();
        assert!(back.counters.last_val.is_nan());
        let same = |c: &Checkpoint| Checkpoint {
            counters: Counters {
                last_val: 0.0,
                ..c.counters
            },
            ..c.clone()
        };
        assert_eq!(same(&back), same(&ckpt));
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
    }

    fn layout() -> StateLayout {
        StateLayout {
            steps: 10,
            model: vec![3, 1],
            adamw: vec![(3, true), (1, false)],
            muon: vec![4],
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
        misfit(&|c| c.adamw.step = 6, "AdamW counted 6");
        misfit(&|c| c.counters.elapsed_s = -1.0, "elapsed_s");
        misfit(&|c| c.counters.train_seconds = f64::NAN, "train_seconds");
        misfit(&|c| c.counters.last_val = -0.5, "validation loss");
        misfit(&|c| c.model[0].truncate(2), "model tensor 0 holds 2");
        misfit(&|c| c.model.push(vec![]), "3 model tensors");
        misfit(&|c| c.adamw.moments[0] = None, "no moments for tensor 0");
        misfit(&|c| c.adamw.moments.push(None), "moments for 3 tensors");
        misfit(
            &|c| c.adamw.moments[1] = Some((vec![0.0; 2], vec![0.0; 2])),
            "tensor 1 hold 2",
        );
        misfit(&|c| c.muon.clear(), "0 Muon momentum buffers");
        misfit(&|c| c.muon[0].push(0.0), "buffer 0 holds 5");
        misfit(&|c| c.model[1][0] = f32::NAN, "not finite");
        misfit(
            &|c| c.adamw.moments[0] = Some((vec![0.0; 3], vec![-1.0; 3])),
            "negative",
        );
        // An earlier version's moments of a tensor AdamW no longer updates still fit.
        let mut earlier = sample();
        earlier.adamw.moments[1] = Some((vec![0.0], vec![0.0]));
        assert_eq!(earlier.check(&layout()), Ok(()));
    }

    #[test]
    fn a_missing_file_is_no_checkpoint() {
        let path = std::env::temp_dir().join("rankprobe-no-such-checkpoint.bin");
        assert!(Checkpoint::read(&path).unwrap().is_none());
    }
}

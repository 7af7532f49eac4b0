//! A finished run's final weights: `runs/<name>/final.safetensors`, every tensor the model
//! reads under its path in the model (`embed`, `blocks.0.wq`, ..., `final_norm`), f32,
//! matrices [out, in]; written atomically with its SHA-256 in the manifest like the
//! tables. It is read back (`export`, `model.init_from`) bounded and checked like a file
//! from elsewhere (`model::weights_file`).

use std::collections::HashMap;
use std::path::Path;

use crate::atomic_file::write_atomic;
use crate::digest::sha256_hex;
use crate::model::snapshot::NamedTensor;
use crate::model::weights_file::encode;

/// The file name in a run directory.
pub const FINAL_WEIGHTS_FILE: &str = "final.safetensors";

/// Writes `tensors` to `path` atomically; returns the file's SHA-256.
pub fn write(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: HashMap<String, String>,
) -> std::io::Result<String> {
    let bytes = encode(tensors, metadata);
    write_atomic(path, &bytes)?;
    Ok(sha256_hex(&bytes))
}

//! A finished run's final weights: `runs/<name>/final.safetensors`, every tensor the model
//! reads under its path in the model (`embed`, `blocks.0.wq`, ..., `final_norm`), f32,
//! matrices [out, in]; written atomically with its SHA-256 in the manifest like the
//! tables. Read back with the same checks a file from elsewhere gets.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::atomic_file::write_atomic;
use crate::digest::sha256_hex;
use crate::model::snapshot::NamedTensor;

/// The file name in a run directory.
pub const FINAL_WEIGHTS_FILE: &str = "final.safetensors";

/// The bytes of a safetensors file holding `tensors`, with `metadata` in its header.
pub fn encode(tensors: &[NamedTensor], metadata: HashMap<String, String>) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> = (tensors.iter())
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors.iter().zip(&bytes).map(|(t, data)| {
        let view =
            TensorView::new(Dtype::F32, t.shape.clone(), data).expect("the values fill the shape");
        (t.name.clone(), view)
    });
    safetensors::serialize(views, Some(metadata)).expect("f32 tensors always serialise")
}

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

/// The f32 tensors of the safetensors file at `path`, in the file's order; a file that is
/// not one, or holds another type, is refused with the reason.
pub fn read(path: &Path) -> Result<Vec<NamedTensor>, String> {
    let bytes = crate::regular_file::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    decode(&bytes).map_err(|why| format!("{}: {why}", path.display()))
}

pub fn decode(bytes: &[u8]) -> Result<Vec<NamedTensor>, String> {
    let file =
        SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file ({e})"))?;
    let mut tensors: Vec<(usize, NamedTensor)> = Vec::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format!("tensor `{name}` is {:?}, not F32", view.dtype()));
        }
        let values = (view.data().chunks_exact(4))
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        // The file's own order: by where each tensor's data starts.
        let start = view.data().as_ptr() as usize;
        tensors.push((
            start,
            NamedTensor {
                name,
                shape: view.shape().to_vec(),
                values,
            },
        ));
    }
    tensors.sort_by_key(|(start, _)| *start);
    Ok(tensors.into_iter().map(|(_, t)| t).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_round_trip_in_order_and_other_types_are_refused() {
        let tensors = vec![
            NamedTensor {
                name: "embed".into(),
                shape: vec![2, 3],
                values: vec![1.0, -2.0, 3.5, 0.0, f32::MIN_POSITIVE, 6.0],
            },
            NamedTensor {
                name: "blocks.0.attn_norm".into(),
                shape: vec![3],
                values: vec![1.0, 1.0, 0.5],
            },
        ];
        let bytes = encode(&tensors, HashMap::new());
        let back = decode(&bytes).unwrap();
        let mut sorted = tensors.clone();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let mut back_sorted = back.clone();
        back_sorted.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back_sorted, sorted);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(b"not a file").is_err());
    }
}

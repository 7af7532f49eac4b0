//! A weights file: safetensors holding named f32 tensors (`NamedTensor`), what a run's
//! final weights are written as and what `model.init_from` reads; and the check that a
//! file's tensors are exactly the ones a model reads, with their shapes.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::spec::run_config::{Activation, Gain, ModelConfig, QkNorm};

use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::Device;

use super::snapshot::{tensor_names, tensors_from_host, tensors_to_host, NamedTensor};

/// The bytes of a safetensors file holding `tensors`, with `metadata` in its header.
pub fn encode(tensors: &[NamedTensor], metadata: HashMap<String, String>) -> Vec<u8> {
    let raw = tensors.iter().map(|t| {
        let bytes = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        (t.name.clone(), Dtype::F32, t.shape.clone(), bytes)
    });
    encode_raw(raw.collect(), metadata)
}

/// A safetensors file of (name, type, shape, little-endian bytes) tensors.
pub fn encode_raw(
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
) -> Vec<u8> {
    let views = tensors.iter().map(|(name, dtype, shape, bytes)| {
        let view = TensorView::new(*dtype, shape.clone(), bytes).expect("the bytes fill the shape");
        (name.clone(), view)
    });
    safetensors::serialize(views, Some(metadata)).expect("tensors of known types serialise")
}

/// The named f32 tensors of a safetensors file, in the file's order; a file that is not
/// one, or holds another type, is refused with the reason.
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

/// The weights file at `path` for a model of `config` with vocabulary `vocab`: read,
/// decoded and checked to hold exactly the tensors the model reads, with their shapes.
pub fn read_for(
    path: &str,
    config: &ModelConfig,
    vocab: usize,
) -> Result<Vec<NamedTensor>, String> {
    let expected = expected_shapes(config, vocab);
    let bytes = read_bounded(std::path::Path::new(path), size_limit(&expected))?;
    let tensors = decode(&bytes)?;
    check_fits(&tensors, &expected)?;
    Ok(tensors)
}

/// Sets the tensors of `module` that `tensors` name to their values; the others keep
/// theirs. The tensors must fit (`check_fits`).
pub fn load_into<D: Device<f32>, Mod: TensorCollection<f32, D>>(
    module: &mut Mod,
    tensors: &[NamedTensor],
) -> Result<(), String> {
    let mut values = tensors_to_host(module);
    let by_name: HashMap<&str, &NamedTensor> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    for (slot, name) in values.iter_mut().zip(tensor_names::<D, Mod>()) {
        if let Some(t) = by_name.get(name.as_str()) {
            slot.clone_from(&t.values);
        }
    }
    tensors_from_host(module, &values, &|_| true).map_err(|mismatch| mismatch.0)
}

/// The most bytes a weights file holding `expected` can take: its f32 values and a
/// generous header (names, shapes, offsets, metadata).
pub fn size_limit(expected: &[(String, Vec<usize>)]) -> u64 {
    let values: usize = expected
        .iter()
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum();
    4 * values as u64 + (1 << 20) + 256 * expected.len() as u64
}

/// The bytes of the regular file at `path`, refused without reading further once they
/// pass `limit`.
pub fn read_bounded(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file = crate::regular_file::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "it is larger than weights of this model can be ({limit} bytes at most)"
        ));
    }
    Ok(bytes)
}

/// The tensors a model of `config` with vocabulary `vocab` reads, with their shapes, in
/// visiting order (what its weights file holds).
pub fn expected_shapes(config: &ModelConfig, vocab: usize) -> Vec<(String, Vec<usize>)> {
    let (d, hd, ff) = (config.d_model, config.head_dim, config.d_ff);
    let kv = config.n_kv_heads * hd;
    let mut out = vec![("embed".to_owned(), vec![vocab, d])];
    if !config.tied_embeddings {
        out.push(("lm_head".to_owned(), vec![vocab, d]));
    }
    let learnable_gains = config.qk_norm
        == QkNorm::RmsNorm {
            gain: Gain::Learnable,
        };
    for layer in 0..config.n_layers {
        let mut tensor = |name: &str, shape: Vec<usize>| {
            out.push((format!("blocks.{layer}.{name}"), shape));
        };
        tensor("attn_norm", vec![d]);
        tensor("wq", vec![d, d]);
        tensor("wk", vec![kv, d]);
        tensor("wv", vec![kv, d]);
        tensor("wo", vec![d, d]);
        if learnable_gains {
            tensor("q_gain", vec![hd]);
            tensor("k_gain", vec![hd]);
        }
        tensor("ffn_norm", vec![d]);
        tensor("w_up", vec![ff, d]);
        if config.activation == Activation::SwiGlu {
            tensor("w_gate", vec![ff, d]);
        }
        tensor("w_down", vec![d, ff]);
    }
    out.push(("final_norm".to_owned(), vec![d]));
    out
}

/// Checks that `tensors` are exactly the `expected` ones (by name, any order) with their
/// shapes, and finite; names the first tensor that is missing, extra, of another shape or
/// not finite.
pub fn check_fits(
    tensors: &[NamedTensor],
    expected: &[(String, Vec<usize>)],
) -> Result<(), String> {
    let found: HashMap<&str, &NamedTensor> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    for (name, shape) in expected {
        match found.get(name.as_str()) {
            None => return Err(format!("it has no tensor `{name}` (shape {shape:?})")),
            Some(t) if &t.shape != shape => {
                return Err(format!(
                    "its tensor `{name}` has shape {:?}, the model's is {shape:?}",
                    t.shape
                ))
            }
            Some(t) if t.values.iter().any(|v| !v.is_finite()) => {
                return Err(format!(
                    "its tensor `{name}` holds values that are not finite"
                ))
            }
            Some(_) => {}
        }
    }
    match tensors
        .iter()
        .find(|t| !expected.iter().any(|(name, _)| *name == t.name))
    {
        Some(extra) => Err(format!(
            "it holds a tensor `{}` (shape {:?}) that this model does not read",
            extra.name, extra.shape
        )),
        None if tensors.len() != expected.len() => Err("it holds a tensor name twice".to_owned()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init::init_model;
    use crate::model::snapshot::named_tensors;
    use crate::model::{Architecture, Transformer};
    use dfdx::prelude::*;

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

    #[test]
    fn expected_shapes_are_the_tensors_a_model_reads() {
        type Tiny = Transformer<11, 16, 4, 8, 24, 2, f32, Cpu>;
        let dev = Cpu::seed_from_u64(1);
        let model: Tiny = init_model(&dev, 0.2);
        for config in crate::spec::test_fixtures::small_model_variants() {
            let arch = Architecture::from_config(&config);
            let tensors = named_tensors(&model, &|p| arch.reads(p));
            let found: Vec<(String, Vec<usize>)> = tensors
                .iter()
                .map(|t| (t.name.clone(), t.shape.clone()))
                .collect();
            assert_eq!(found, expected_shapes(&config, 11), "{config:?}");
            assert_eq!(check_fits(&tensors, &found), Ok(()));
        }
    }

    #[test]
    fn a_misfit_names_the_tensor_and_both_shapes() {
        let expected = vec![
            ("embed".to_owned(), vec![2, 3]),
            ("final_norm".to_owned(), vec![3]),
        ];
        let tensor = |name: &str, shape: Vec<usize>| NamedTensor {
            name: name.into(),
            values: vec![0.5; shape.iter().product()],
            shape,
        };
        let says = |tensors: Vec<NamedTensor>, text: &str| {
            let why = check_fits(&tensors, &expected).unwrap_err();
            assert!(why.contains(text), "{text}: {why}");
        };
        says(
            vec![tensor("embed", vec![2, 3])],
            "no tensor `final_norm` (shape [3])",
        );
        says(
            vec![tensor("embed", vec![3, 2]), tensor("final_norm", vec![3])],
            "`embed` has shape [3, 2], the model's is [2, 3]",
        );
        says(
            vec![
                tensor("embed", vec![2, 3]),
                tensor("final_norm", vec![3]),
                tensor("lm_head", vec![2, 3]),
            ],
            "`lm_head` (shape [2, 3]) that this model does not read",
        );
        let mut nan = tensor("final_norm", vec![3]);
        nan.values[1] = f32::NAN;
        says(vec![tensor("embed", vec![2, 3]), nan], "not finite");
    }
}

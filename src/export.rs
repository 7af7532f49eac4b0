//! `export`: a study's finished runs as PyTorch-ready directories. Per run: the final
//! weights (`model.safetensors`, checked against the manifest's SHA-256), `config.json`
//! (every architecture field, the vocabulary, the sequence length, the run's identity and
//! recorded final validation loss), the run's validation batch (`eval_batch.safetensors`,
//! int32), the run's tokenizer (`tokenizer.json`, Hugging Face format; none for GPT-2's,
//! tiktoken's `gpt2`) and `rankprobe_model.py`, a self-contained PyTorch module and
//! loader that rebuilds the exact model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::Dtype;

use crate::atomic_file::{create_dir_below, write_atomic};
use crate::data::batches::eval_batch;
use crate::data::prepare_dataset;
use crate::digest::sha256_hex;
use crate::model::weights_file::{encode_raw, expected_shapes, read_bounded, size_limit};
use crate::store::manifest::{Manifest, RunStatus};
use crate::store::weights::FINAL_WEIGHTS_FILE;
use crate::store::{run_names, RunPaths};

/// The PyTorch module written into every export.
pub const MODEL_PY: &str = include_str!("../scripts/rankprobe_model.py");

/// One run exported.
#[derive(Debug, Clone)]
pub struct Exported {
    pub label: String,
    pub dir: PathBuf,
    pub tensors: usize,
    pub weight_bytes: usize,
}

/// A run that was not exported, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub name: String,
    pub why: String,
}

/// Exports the finished runs of `study_dir` (those labelled in `only`, all when empty)
/// into `<to>/<label>-<run id>/`. Errors are about the destination; a run that cannot be
/// exported is skipped with the reason.
pub fn export(
    study_dir: &Path,
    only: &[String],
    to: &Path,
) -> Result<(Vec<Exported>, Vec<Skipped>), String> {
    refuse_inside_results(study_dir, to)?;
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let mut exported = Vec::new();
    let mut skipped = Vec::new();
    let mut found = Vec::new();
    for name in run_names(study_dir) {
        let run_dir = RunPaths::named(study_dir, &name).dir;
        let Some(manifest) = Manifest::read(&run_dir) else {
            continue;
        };
        if !only.is_empty() && !only.contains(&manifest.label) {
            continue;
        }
        found.push(manifest.label.clone());
        match export_run(&run_dir, &manifest, &to.join(&name), to) {
            Ok(run) => exported.push(run),
            Err(why) => skipped.push(Skipped { name, why }),
        }
    }
    if let Some(label) = only.iter().find(|l| !found.contains(l)) {
        return Err(format!(
            "{} has no run labelled `{label}`",
            study_dir.display()
        ));
    }
    Ok((exported, skipped))
}

/// The directories of a study's results that readers take whole (`runs/`, one dataset per
/// table, `report/`) and the study directory itself: an export written there would
/// break them (model files among the metrics' parquet files, say).
fn refuse_inside_results(study_dir: &Path, to: &Path) -> Result<(), String> {
    let study = resolved(study_dir);
    let to_resolved = resolved(to);
    let mut owned: Vec<PathBuf> = vec![study.join(crate::store::RUNS_DIR), study.join("report")];
    owned.extend(
        crate::store::Table::ALL
            .iter()
            .map(|t| study.join(t.dir_name())),
    );
    let inside = to_resolved == study || owned.iter().any(|dir| to_resolved.starts_with(dir));
    if inside {
        return Err(format!(
            "--to {} is inside the study's results ({}), whose runs/, table and report \
             directories are read whole by other tools; export somewhere else, e.g. \
             --to exported/{}",
            to.display(),
            study_dir.display(),
            study_dir.file_name().unwrap_or_default().to_string_lossy()
        ));
    }
    Ok(())
}

/// `path` with its longest existing ancestor resolved (links, `..`) and the rest as
/// written: what the path will be once created.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest
                .iter()
                .rev()
                .fold(real, |acc: PathBuf, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

fn export_run(
    run_dir: &Path,
    manifest: &Manifest,
    out: &Path,
    to: &Path,
) -> Result<Exported, String> {
    if manifest.status != RunStatus::Done {
        return Err(format!("it is {}, not done", manifest.status));
    }
    let Some(expected) = manifest.checksums.get(FINAL_WEIGHTS_FILE) else {
        return Err(format!(
            "it has no {FINAL_WEIGHTS_FILE} (finished by a version that did not keep weights)"
        ));
    };
    let config = &manifest.config;
    let dataset = prepare_dataset(&config.data).map_err(|e| e.to_string())?;
    let shapes = expected_shapes(&config.model, dataset.tokenizer.vocab_size);
    let path = run_dir.join(FINAL_WEIGHTS_FILE);
    let bytes = read_bounded(&path, size_limit(&shapes))?;
    if &sha256_hex(&bytes) != expected {
        return Err(format!(
            "{} does not have the SHA-256 its manifest recorded (damaged or replaced)",
            path.display()
        ));
    }
    let tensors = crate::model::weights_file::decode(&bytes)?;
    // The weights must be the model `config.json` will describe (a manifest whose config
    // was edited after the run passes its checksum but not this).
    crate::model::weights_file::check_fits(&tensors, &shapes).map_err(|why| {
        format!(
            "{} does not fit the model its manifest describes: {why}",
            path.display()
        )
    })?;
    let data = &config.data;
    let batch = eval_batch(
        &dataset.splits.val,
        data.seq_len,
        data.eval_sequences,
        data.eval_windows,
    )
    .map_err(|e| e.to_string())?;
    // The run's own tokenizer, for `tokenizers` users (GPT-2's is tiktoken's `gpt2`).
    let tokenizer_json = dataset.tokenizer.hugging_face_json();
    let config_json = serde_json::json!({
        "format": "rankprobe export 1",
        "study": manifest.study,
        "label": manifest.label,
        "run_id": manifest.run_id,
        "model": config.model,
        "vocab": dataset.tokenizer.vocab_size,
        "end_of_text": dataset.tokenizer.eot,
        "tokenizer_file": tokenizer_json.as_ref().map(|_| "tokenizer.json"),
        "seq_len": data.seq_len,
        "tokenizer": config.data.tokenizer,
        "final_val_loss": manifest.final_val_loss,
        "tokens": manifest.tokens,
    });
    create_dir_below(to, out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let shape = vec![batch.batch_size, batch.seq_len];
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("model.safetensors", bytes.clone()),
        (
            "config.json",
            serde_json::to_vec_pretty(&config_json).expect("JSON values serialise"),
        ),
        (
            "eval_batch.safetensors",
            int32_tensors(&[
                ("inputs", &shape, &batch.inputs),
                ("targets", &shape, &batch.targets),
            ]),
        ),
        ("rankprobe_model.py", MODEL_PY.as_bytes().to_vec()),
    ];
    if let Some(json) = tokenizer_json {
        files.push(("tokenizer.json", json.into_bytes()));
    }
    for (name, content) in files {
        let path = out.join(name);
        write_atomic(&path, &content)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(Exported {
        label: manifest.label.clone(),
        dir: out.to_owned(),
        tensors: tensors.len(),
        weight_bytes: bytes.len(),
    })
}

/// A safetensors file of int32 tensors: (name, shape, values).
fn int32_tensors(tensors: &[(&str, &Vec<usize>, &Vec<u32>)]) -> Vec<u8> {
    let raw = tensors.iter().map(|(name, shape, values)| {
        let bytes = values
            .iter()
            .flat_map(|&v| (v as i32).to_le_bytes())
            .collect();
        (name.to_string(), Dtype::I32, shape.to_vec(), bytes)
    });
    encode_raw(raw.collect(), HashMap::new())
}

//! Reading a study's results back: every run directory's manifest, metrics and probes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;

use crate::store::frame::read_parquet;

use crate::store::manifest::{Manifest, RunStatus};
use crate::store::metrics::METRICS_FILE;
use crate::store::probes::PROBES_FILE;

/// What the report needs of one run.
#[derive(Debug, Clone)]
pub struct RunResults {
    pub label: String,
    pub index: usize,
    pub status: RunStatus,
    pub budget: u64,
    /// Validation loss by tokens.
    pub val_loss: BTreeMap<u64, f64>,
    /// Per (tokens, layer): the probe metric of each head at the report's site.
    pub heads: BTreeMap<(u64, u32), Vec<f64>>,
    /// Result files that exist but cannot be read (damaged by a crash or a copy).
    pub unreadable: Vec<String>,
}

impl RunResults {
    /// Layer PR (mean over heads) by layer, at `tokens`.
    pub fn layers_at(&self, tokens: u64) -> Vec<f64> {
        self.heads
            .range((tokens, 0)..=(tokens, u32::MAX))
            .map(|(_, heads)| heads.iter().sum::<f64>() / heads.len() as f64)
            .collect()
    }

    /// Model PR (mean of layer PRs) at `tokens`, if probed then.
    pub fn model_at(&self, tokens: u64) -> Option<f64> {
        let layers = self.layers_at(tokens);
        (!layers.is_empty()).then(|| layers.iter().sum::<f64>() / layers.len() as f64)
    }

    /// The last token point with probes.
    pub fn last_probe(&self) -> Option<u64> {
        self.heads.keys().next_back().map(|&(tokens, _)| tokens)
    }

    /// Layer PRs at the last probe (empty without probes).
    pub fn final_layers(&self) -> Vec<f64> {
        self.last_probe()
            .map(|t| self.layers_at(t))
            .unwrap_or_default()
    }

    /// Token points with probes.
    pub fn probe_tokens(&self) -> Vec<u64> {
        let mut tokens: Vec<u64> = self.heads.keys().map(|(t, _)| *t).collect();
        tokens.dedup();
        tokens
    }
}

/// The run directories of a study (`run=*`), sorted.
pub fn run_dirs(study_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(study_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("run="))
        })
        .collect();
    dirs.sort();
    dirs
}

fn strings(frame: &DataFrame, name: &str) -> Option<Vec<String>> {
    let column = frame.column(name).ok()?.str().ok()?.clone();
    Some(
        column
            .downcast_iter()
            .flat_map(|a| {
                a.iter()
                    .map(|v| v.unwrap_or("").to_owned())
                    .collect::<Vec<_>>()
            })
            .collect(),
    )
}

fn numbers(frame: &DataFrame, name: &str) -> Option<Vec<f64>> {
    let column = frame
        .column(name)
        .ok()?
        .cast(&polars::prelude::DataType::Float64)
        .ok()?;
    Some(column.f64().ok()?.into_no_null_iter().collect())
}

/// One run's results, reading `metric` at `site` from its probes. None if the directory
/// has no readable manifest.
pub fn load_run(dir: &Path, site: &str, metric: &str) -> Option<RunResults> {
    let manifest = Manifest::read(dir)?;
    let mut results = RunResults {
        label: manifest.label.clone(),
        index: manifest.index,
        status: manifest.status,
        budget: manifest.config.schedule.tokens,
        val_loss: BTreeMap::new(),
        heads: BTreeMap::new(),
        unreadable: Vec::new(),
    };
    let mut read = |name: &str| {
        let path = dir.join(name);
        match read_parquet(&path) {
            Ok(frame) => Some(frame),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => {
                results.unreadable.push(format!("{name} ({err})"));
                None
            }
        }
    };
    let (metrics_frame, probes_frame) = (read(METRICS_FILE), read(PROBES_FILE));
    if let Some(frame) = metrics_frame {
        let (splits, metrics) = (strings(&frame, "split")?, strings(&frame, "metric")?);
        let (tokens, values) = (numbers(&frame, "tokens")?, numbers(&frame, "value")?);
        for i in 0..frame.height() {
            if splits[i] == "val" && metrics[i] == "loss" {
                results.val_loss.insert(tokens[i] as u64, values[i]);
            }
        }
    }
    if let Some(frame) = probes_frame {
        let (sites, metrics) = (strings(&frame, "site")?, strings(&frame, "metric")?);
        let (tokens, layers, values) = (
            numbers(&frame, "tokens")?,
            numbers(&frame, "layer")?,
            numbers(&frame, "value")?,
        );
        for i in 0..frame.height() {
            if sites[i] == site && metrics[i] == metric {
                results
                    .heads
                    .entry((tokens[i] as u64, layers[i] as u32))
                    .or_default()
                    .push(values[i]);
            }
        }
    }
    Some(results)
}

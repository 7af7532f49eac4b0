//! Reading a study's results back: every run directory's manifest, metrics and probes.

use std::collections::BTreeMap;

use polars::prelude::DataFrame;

use crate::quiet_panic::{panic_text, quietly};
use crate::spec::run_config::{ModelSummary, ProbeMetric};
use crate::store::frame::read_result;

use crate::store::manifest::{Manifest, RunStatus};
use crate::store::metrics::METRICS_FILE;
use crate::store::probes::PROBES_FILE;
use crate::store::{RunPaths, Table};
use crate::train::observer::{EVAL_SET_PREFIX, MAX_LOGIT_METRIC};

/// What the report needs of one run.
#[derive(Debug, Clone)]
pub struct RunResults {
    pub label: String,
    /// The label without its seed: the runs of one condition are its seeds.
    pub condition: String,
    /// What the condition is ("Muon + QK-norm"); may be empty.
    pub description: String,
    pub seed: u64,
    pub index: usize,
    pub status: RunStatus,
    pub budget: u64,
    /// Validation loss by tokens.
    pub val_loss: BTreeMap<u64, f64>,
    /// The loss of each extra evaluation set (`loss.<name>`) by name, then tokens.
    pub eval_set_loss: BTreeMap<String, BTreeMap<u64, f64>>,
    /// Per (tokens, layer): the probe metric of each head at the report's site.
    pub heads: BTreeMap<(u64, u32), Vec<f64>>,
    /// Every probe value by (site, metric), then tokens: over layers and heads.
    pub probes: BTreeMap<(String, String), BTreeMap<u64, Vec<f64>>>,
    /// Result files that exist but cannot be read (damaged by a crash or a copy).
    pub unreadable: Vec<String>,
    /// The run's value on the study's `LogGrid` axis (set from the plan; None without
    /// one): the x of the learning-rate table and figures.
    pub x: Option<f64>,
    /// The path that axis sets (`schedule.lr_scale`).
    pub x_path: Option<String>,
    /// The curve the run belongs to on that axis: its label without seed and grid value.
    pub family: String,
    /// The largest attention logit of the training batch at the last step recorded
    /// with a finite value (`max_logit`).
    pub max_logit_last: Option<f64>,
}

impl RunResults {
    /// The validation loss of the initial model (step 0), if measured.
    pub fn initial_loss(&self) -> Option<f64> {
        self.val_loss.get(&0).copied()
    }

    /// The validation loss at the end of the budget, for a run that finished it.
    pub fn final_loss(&self) -> Option<f64> {
        if self.status != RunStatus::Done {
            return None;
        }
        self.val_loss.range(1..).next_back().map(|(_, &loss)| loss)
    }

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

    /// Token points with probes.
    pub fn probe_tokens(&self) -> Vec<u64> {
        let mut tokens: Vec<u64> = self.heads.keys().map(|(t, _)| *t).collect();
        tokens.dedup();
        tokens
    }

    /// One number for the whole model of probe `metric` at `site` at `tokens`: as the
    /// metric's `ModelSummary` says (the largest value of `max_attention_logit`, what
    /// QK-norm bounds), else the mean over layers and heads.
    pub fn model_probe(&self, site: &str, metric: &str, tokens: u64) -> Option<f64> {
        let values = self
            .probes
            .get(&(site.to_owned(), metric.to_owned()))?
            .get(&tokens)?;
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return None;
        }
        let summary = ProbeMetric::info_by_name(metric).map(|info| info.summary);
        Some(if summary == Some(ModelSummary::Max) {
            finite.iter().copied().fold(f64::MIN, f64::max)
        } else {
            finite.iter().sum::<f64>() / finite.len() as f64
        })
    }

    /// The largest finite value of probe `metric` at `site` at `tokens` over its layers
    /// and heads (the worst layer of a loss increase).
    pub fn largest_probe(&self, site: &str, metric: &str, tokens: u64) -> Option<f64> {
        let values = self
            .probes
            .get(&(site.to_owned(), metric.to_owned()))?
            .get(&tokens)?;
        values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .reduce(f64::max)
    }

    /// Token points at which `metric` at `site` was probed.
    pub fn probe_points(&self, site: &str, metric: &str) -> Vec<u64> {
        self.probes
            .get(&(site.to_owned(), metric.to_owned()))
            .map(|by_tokens| by_tokens.keys().copied().collect())
            .unwrap_or_default()
    }
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
    // A null (the layer of a model-wide probe) reads as NaN.
    Some(
        column
            .f64()
            .ok()?
            .iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect(),
    )
}

/// One run's results, reading `metric` at `site` from its probes. None if the directory
/// has no readable manifest. A result file that fails its checksum, cannot be parsed or
/// lacks a column is listed in `unreadable`, never a panic.
pub fn load_run(paths: &RunPaths, site: &str, metric: &str) -> Option<RunResults> {
    let results = load_run_once(paths, site, metric)?;
    // A run still training rewrites its files, then its manifest: a read in between sees
    // new files against old checksums. Read once more a moment later.
    if results.status == RunStatus::Running && !results.unreadable.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        return load_run_once(paths, site, metric);
    }
    Some(results)
}

fn load_run_once(paths: &RunPaths, site: &str, metric: &str) -> Option<RunResults> {
    let manifest = Manifest::read(&paths.dir)?;
    let mut results = RunResults {
        label: manifest.label.clone(),
        condition: manifest
            .condition
            .clone()
            .unwrap_or_else(|| manifest.label.clone()),
        description: manifest.description.clone().unwrap_or_default(),
        seed: manifest.seed,
        index: manifest.index,
        status: manifest.status,
        budget: manifest.config.schedule.tokens,
        val_loss: BTreeMap::new(),
        eval_set_loss: BTreeMap::new(),
        heads: BTreeMap::new(),
        probes: BTreeMap::new(),
        unreadable: Vec::new(),
        x: None,
        x_path: None,
        family: manifest
            .condition
            .clone()
            .unwrap_or_else(|| manifest.label.clone()),
        max_logit_last: None,
    };
    let read = |table: Table| match read_result(paths.table(table), table, Some(&manifest)) {
        Ok(frame) => Ok(Some(frame)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(format!("{} ({err})", table.file_name())),
    };
    match read(Table::Metrics)
        .and_then(|frame| frame.map_or(Ok(()), |f| val_losses(&f, &mut results)))
    {
        Ok(()) => {}
        Err(why) => results.unreadable.push(why),
    }
    let probes = read(Table::Probes)
        .and_then(|frame| frame.map_or(Ok(()), |f| head_values(&f, site, metric, &mut results)));
    if let Err(why) = probes {
        results.unreadable.push(why);
    }
    Some(results)
}

/// String columns and numeric columns of a frame, as asked for.
type Columns = (Vec<Vec<String>>, Vec<Vec<f64>>);

/// The columns of `frame`, or why they cannot be read (a missing column, a column of
/// another type, or a reader panic on damaged data).
fn columns(
    frame: &DataFrame,
    file: &str,
    strings_of: &[&str],
    numbers_of: &[&str],
) -> Result<Columns, String> {
    let read = || {
        let s: Option<Vec<_>> = strings_of.iter().map(|n| strings(frame, n)).collect();
        let n: Option<Vec<_>> = numbers_of.iter().map(|n| numbers(frame, n)).collect();
        (s, n)
    };
    match quietly(read) {
        Ok((Some(s), Some(n)))
            if s.iter()
                .map(Vec::len)
                .chain(n.iter().map(Vec::len))
                .all(|l| l == frame.height()) =>
        {
            Ok((s, n))
        }
        Ok(_) => Err(format!(
            "{file} (columns missing, of the wrong type or of unequal length)"
        )),
        Err(panic) => Err(format!("{file} (unreadable: {})", panic_text(&*panic))),
    }
}

fn val_losses(frame: &DataFrame, results: &mut RunResults) -> Result<(), String> {
    let (s, n) = columns(
        frame,
        METRICS_FILE,
        &["split", "metric"],
        &["tokens", "value"],
    )?;
    let mut last_logit: Option<(f64, f64)> = None;
    for (((split, metric), tokens), value) in s[0].iter().zip(&s[1]).zip(&n[0]).zip(&n[1]) {
        let latest = last_logit.is_none_or(|(t, _)| *tokens >= t);
        if split == "train" && metric == MAX_LOGIT_METRIC && value.is_finite() && latest {
            last_logit = Some((*tokens, *value));
        }
        if split != "val" {
            continue;
        }
        if metric == "loss" {
            results.val_loss.insert(*tokens as u64, *value);
        } else if let Some(set) = metric.strip_prefix(EVAL_SET_PREFIX) {
            (results.eval_set_loss.entry(set.to_owned()).or_default())
                .insert(*tokens as u64, *value);
        }
    }
    results.max_logit_last = last_logit.map(|(_, v)| v);
    Ok(())
}

fn head_values(
    frame: &DataFrame,
    site: &str,
    metric: &str,
    results: &mut RunResults,
) -> Result<(), String> {
    let (s, n) = columns(
        frame,
        PROBES_FILE,
        &["site", "metric"],
        &["tokens", "layer", "value"],
    )?;
    let rows = s[0].iter().zip(&s[1]).zip(&n[0]).zip(&n[1]).zip(&n[2]);
    for ((((row_site, row_metric), tokens), layer), value) in rows {
        if row_site == site && row_metric == metric {
            results
                .heads
                .entry((*tokens as u64, *layer as u32))
                .or_default()
                .push(*value);
        }
        results
            .probes
            .entry((row_site.clone(), row_metric.clone()))
            .or_default()
            .entry(*tokens as u64)
            .or_default()
            .push(*value);
    }
    Ok(())
}

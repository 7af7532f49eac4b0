//! `manifest.json`: what a run is, where and when it ran, and how it ended.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::atomic_file::write_atomic;
use crate::digest::hex;
use crate::spec::RunConfig;

pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Done,
    Failed,
    Diverged,
    /// Stopped by Ctrl-C or SIGTERM; a later sweep resumes it from its checkpoint.
    Interrupted,
}

/// The lowercase name, as in `manifest.json` (honours width and alignment).
impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
            RunStatus::Diverged => "diverged",
            RunStatus::Interrupted => "interrupted",
        })
    }
}

impl RunStatus {
    /// Whether the run is finished: later sweeps keep it (training it again would give
    /// the same result) unless told `--force`.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Done | RunStatus::Diverged)
    }
}

/// The source tree a binary ran from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitState {
    pub commit: String,
    /// Uncommitted changes to tracked files.
    pub dirty: bool,
}

/// Everything recorded about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub study: String,
    pub label: String,
    /// The label without its seed (absent in manifests before it was recorded).
    #[serde(default)]
    pub condition: Option<String>,
    /// What the run's named conditions are.
    #[serde(default)]
    pub description: Option<String>,
    pub run_id: String,
    pub index: usize,
    pub seed: u64,
    pub status: RunStatus,
    /// Why it failed or diverged.
    pub error: Option<String>,
    pub config: RunConfig,
    pub overrides: Vec<(String, String)>,
    pub device: String,
    /// Whether f32 products ran on TF32 tensor cores (`execution.tf32` on a GPU).
    #[serde(default)]
    pub tf32: bool,
    pub git: Option<GitState>,
    /// rankprobe and the versions of the crates that shape results.
    pub versions: Vec<(String, String)>,
    pub data: Option<DataSummary>,
    /// Parameters the optimizers train: those the configured model reads (a tied LM
    /// head, an unused SwiGLU gate or frozen QK gains are not counted), as in `plan`.
    #[serde(default)]
    pub trained_params: Option<u64>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub wall_seconds: Option<f64>,
    pub steps: Option<u64>,
    pub tokens: Option<u64>,
    pub final_val_loss: Option<f64>,
    /// Seconds spent computing rank probes from captured activations (the forward pass
    /// is shared with the validation loss), and their share of the wall time.
    pub probe_seconds: Option<f64>,
    pub probe_share: Option<f64>,
    /// The checkpoint step this session of the run started from (none: from scratch).
    #[serde(default)]
    pub resumed_from_step: Option<u64>,
    /// The run id of the finished run whose final state this run continued (a raised
    /// budget, `runner::continuation`): its rows through `resumed_from_step` are that
    /// run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continued_from: Option<String>,
    /// Time spent writing checkpoints, and its share of the run's wall time.
    #[serde(default)]
    pub checkpoint_seconds: Option<f64>,
    #[serde(default)]
    pub checkpoint_share: Option<f64>,
    /// SHA-256 (hex) of each result file (`metrics.parquet`, `probes.parquet`) as the run
    /// left it, recorded when the run ends and checked on every read of a file.
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
}

/// The data a run trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    pub corpus: String,
    pub tokenizer: String,
    pub vocab_size: usize,
    pub train_tokens: usize,
    pub val_tokens: usize,
    /// The extra evaluation sets (`data.eval_sets`): where each came from, its tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eval_sets: Vec<EvalSetSummary>,
}

/// One extra evaluation set a run was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSetSummary {
    pub name: String,
    pub origin: String,
    pub tokens: usize,
}

impl Manifest {
    /// The manifest of a run that is starting now: what it is (its seed is the config's),
    /// status `running`, nothing yet about how it went.
    pub fn starting(
        study: &str,
        label: &str,
        run_id: &str,
        index: usize,
        config: RunConfig,
    ) -> Self {
        Manifest {
            study: study.to_owned(),
            label: label.to_owned(),
            condition: None,
            description: None,
            run_id: run_id.to_owned(),
            index,
            seed: config.seed,
            status: RunStatus::Running,
            error: None,
            config,
            overrides: Vec::new(),
            device: String::new(),
            tf32: false,
            git: None,
            versions: Vec::new(),
            data: None,
            trained_params: None,
            started_at: now(),
            ended_at: None,
            wall_seconds: None,
            steps: None,
            tokens: None,
            final_val_loss: None,
            probe_seconds: None,
            probe_share: None,
            resumed_from_step: None,
            continued_from: None,
            checkpoint_seconds: None,
            checkpoint_share: None,
            checksums: BTreeMap::new(),
        }
    }

    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).expect("manifests serialise");
        write_atomic(&run_dir.join(MANIFEST_FILE), json.as_bytes())
    }

    pub fn read(run_dir: &Path) -> Option<Manifest> {
        let text = crate::regular_file::read_to_string(&run_dir.join(MANIFEST_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The manifest in `run_dir` if it is the one of run id `run_id`.
    pub fn read_for(run_dir: &Path, run_id: &str) -> Option<Manifest> {
        Manifest::read(run_dir).filter(|m| m.run_id == run_id)
    }
}

/// The SHA-256 of the file at `path`, as lowercase hex (as `sha256_hex` of its bytes).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut crate::regular_file::open(path)?, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// The commit of the working directory's git checkout, if there is one.
pub fn git_state() -> Option<GitState> {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "HEAD"])?;
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(GitState { commit, dirty })
}

/// Versions recorded in manifests (set by build.rs from Cargo.lock).
pub fn versions() -> Vec<(String, String)> {
    vec![
        ("rankprobe".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        ("dfdx".to_owned(), env!("RANKPROBE_DFDX_VERSION").to_owned()),
        (
            "polars".to_owned(),
            env!("RANKPROBE_POLARS_VERSION").to_owned(),
        ),
        (
            "tokenizers".to_owned(),
            env!("RANKPROBE_TOKENIZERS_VERSION").to_owned(),
        ),
    ]
}

/// Now, as an RFC 3339 UTC timestamp.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::RunStatus;

    #[test]
    fn status_names_are_the_manifest_names() {
        use RunStatus::*;
        for status in [Running, Done, Failed, Diverged, Interrupted] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
        }
        assert_eq!(format!("[{:<6}]", Done), "[done  ]");
    }
}

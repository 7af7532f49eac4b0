//! The PyTorch eager reference (`scripts/torch_reference.py`, embedded so the binary runs
//! anywhere): the same model, batch and optimizer, timed by a Python subprocess.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::export::MODEL_PY;
use crate::spec::run_config::RunConfig;

use super::peak::PEAK_SIDE;

const TORCH_REFERENCE: &str = include_str!("../../scripts/torch_reference.py");

/// What the PyTorch reference measured.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchFigures {
    pub tokens_per_s: f64,
    /// Its own fastest square f32 product, FLOP/s (one more measurement of the peak).
    pub peak_flops: f64,
    /// The same in bf16, for a run in `model.precision: Bf16` (NaN otherwise).
    pub bf16_peak_flops: f64,
    pub peak_rss_mib: f64,
    pub version: String,
}

/// Runs the PyTorch reference on the CPU with `threads` threads for `steps` timed steps
/// after one warm-up (`RANKPROBE_PYTHON`, default `python3`): its figures, or why not.
pub fn torch_reference(
    config: &RunConfig,
    vocab: usize,
    steps: u64,
    threads: usize,
) -> Result<TorchFigures, String> {
    let python = std::env::var("RANKPROBE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let job = serde_json::json!({
        "config": config,
        "vocab": vocab,
        "steps": steps,
        "warmup": 1,
        "threads": threads,
        "peak_side": PEAK_SIDE,
    });
    // The reference imports the exported model's helpers (`rankprobe_model.py`), from a
    // directory made here and now (never one found in /tmp).
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("rankprobe-torch-{}-{stamp}", std::process::id());
    let helpers = std::env::temp_dir().join(name);
    std::fs::create_dir(&helpers)
        .and_then(|()| std::fs::write(helpers.join("rankprobe_model.py"), MODEL_PY))
        .map_err(|err| format!("cannot write {}: {err}", helpers.display()))?;
    let figures = run_reference(&python, &job, &helpers);
    let _ = std::fs::remove_dir_all(&helpers);
    figures
}

/// Runs the reference with `job` on its stdin and `helpers` on its module path.
fn run_reference(
    python: &str,
    job: &serde_json::Value,
    helpers: &std::path::Path,
) -> Result<TorchFigures, String> {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(TORCH_REFERENCE)
        .env("PYTHONPATH", helpers)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot start `{python}` ({err}); set RANKPROBE_PYTHON"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(job.to_string().as_bytes())
            .map_err(|err| format!("cannot talk to `{python}`: {err}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|err| format!("`{python}` failed: {err}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        // What another program printed reaches the terminal escaped, on one line.
        let last = crate::spec::diagnostic::one_line(stderr.lines().last().unwrap_or("").trim());
        return Err(match output.status.code() {
            Some(3) => last,
            _ => format!("the PyTorch reference failed: {last}"),
        });
    }
    let figures: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|err| format!("the PyTorch reference printed no figures ({err})"))?;
    // Figures from another program are believed only where they can be true: a speed,
    // a peak and a memory are positive and finite; anything else is missing (NaN).
    let number = |key: &str| {
        (figures[key].as_f64())
            .filter(|v| v.is_finite() && *v > 0.0)
            .unwrap_or(f64::NAN)
    };
    let version: String = figures["torch"]
        .as_str()
        .unwrap_or("?")
        .chars()
        .take(40)
        .collect();
    Ok(TorchFigures {
        tokens_per_s: number("tokens_per_s"),
        peak_flops: number("peak_gflops") * 1e9,
        bf16_peak_flops: number("bf16_peak_gflops") * 1e9,
        peak_rss_mib: number("peak_rss_mib"),
        version: crate::spec::diagnostic::one_line(&version),
    })
}

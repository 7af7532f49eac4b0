//! Speeds remembered per machine, device and model shape (`speed.json` in the cache
//! directory), and the device's matmul peak: what `speed_range` estimates from before
//! anything trains.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::atomic_file::write_atomic;
use crate::data::cache::cache_dir;
use crate::store::lock::host;

/// A measured speed, remembered in the cache directory (`speed.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub host: String,
    /// "cpu" or "cuda:N".
    pub device: String,
    /// The model shape (`ModelShape`), or `PEAK_KEY` for the device's matmul peak.
    pub shape: String,
    pub params: u64,
    pub flops_per_s: f64,
    /// Training FLOPs per token of the shape (absent in older caches: about 6 per
    /// parameter is assumed there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops_per_token: Option<f64>,
    /// Seconds since the Unix epoch.
    pub measured_at: u64,
    /// "sweep" (wall time, evaluations included), "bench" (training steps only) or
    /// "peak" (one large f32 matrix product).
    pub by: String,
}

impl Measured {
    pub(super) fn tokens_per_s(&self) -> f64 {
        let per_token = self
            .flops_per_token
            .filter(|f| f.is_finite() && *f > 0.0)
            .unwrap_or(6.0 * self.params.max(1) as f64);
        self.flops_per_s / per_token
    }
}

/// The key under which a device's f32 matmul peak is remembered: the bound no training
/// step on it can beat.
pub const PEAK_KEY: &str = "f32 matmul peak";

fn speed_file() -> PathBuf {
    cache_dir().join("speed.json")
}

/// The slowest training speed believed (1 MFLOP/s: slower than any computer this runs
/// on) and the fastest (100 PFLOP/s: about fifty times an H200's dense bf16 peak). A
/// remembered speed outside them was not measured (a damaged or edited cache) and would
/// print an estimate of centuries or of nothing as if measured.
pub const SLOWEST_FLOPS: f64 = 1e6;
pub const FASTEST_FLOPS: f64 = 1e17;

/// Whether `flops_per_s` could have been measured.
fn physical(flops_per_s: f64) -> bool {
    flops_per_s.is_finite() && (SLOWEST_FLOPS..=FASTEST_FLOPS).contains(&flops_per_s)
}

/// The remembered speeds that could have been measured, and how many others the file
/// held.
fn read_checked() -> (Vec<Measured>, usize) {
    let all = crate::regular_file::read(&speed_file())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Vec<Measured>>(&bytes).ok())
        .unwrap_or_default();
    let total = all.len();
    // The file is read, not trusted: only speeds that could have been measured.
    let kept: Vec<Measured> = all
        .into_iter()
        .filter(|m| physical(m.flops_per_s))
        .collect();
    let discarded = total - kept.len();
    (kept, discarded)
}

fn read_all() -> Vec<Measured> {
    read_checked().0
}

/// How many remembered speeds were ignored as impossible (see `SLOWEST_FLOPS`).
pub fn impossible_speeds() -> usize {
    read_checked().1
}

/// What one measurement of a shape's training speed says about it.
#[derive(Debug, Clone, Copy)]
pub struct ShapeSpeed {
    pub params: u64,
    pub flops_per_s: f64,
    pub flops_per_token: f64,
}

/// Remembers `speed` of `shape` on `device` of this machine (the latest one per key).
/// Failing to write the cache changes nothing else.
pub fn remember(device: &str, shape: &str, speed: ShapeSpeed, by: &str) {
    if !physical(speed.flops_per_s) {
        return;
    }
    let host = host();
    let mut all = read_all();
    all.retain(|m| !(m.host == host && m.device == device && m.shape == shape));
    all.push(Measured {
        host,
        device: device.to_owned(),
        shape: shape.to_owned(),
        params: speed.params,
        flops_per_s: speed.flops_per_s,
        flops_per_token: Some(speed.flops_per_token).filter(|f| f.is_finite() && *f > 0.0),
        measured_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        by: by.to_owned(),
    });
    let dir = cache_dir();
    if std::fs::create_dir_all(&dir).is_ok() {
        if let Ok(json) = serde_json::to_vec_pretty(&all) {
            let _ = write_atomic(&speed_file(), &json);
        }
    }
}

/// Remembers `device`'s f32 matmul peak (see `PEAK_KEY`).
pub fn remember_peak(device: &str, flops_per_s: f64) {
    let speed = ShapeSpeed {
        params: 0,
        flops_per_s,
        flops_per_token: 0.0,
    };
    remember(device, PEAK_KEY, speed, "peak");
}

/// This machine's remembered measurements for `device`: its shapes' speeds and its peak.
pub(super) fn mine(device: &str) -> (Vec<Measured>, Option<f64>) {
    let host = host();
    let (peaks, shapes): (Vec<Measured>, Vec<Measured>) = read_all()
        .into_iter()
        .filter(|m| m.host == host && m.device == device)
        .partition(|m| m.shape == PEAK_KEY);
    (shapes, peaks.first().map(|p| p.flops_per_s))
}

/// Whether a matmul peak is remembered for `device` of this machine.
pub fn peak_known(device: &str) -> bool {
    mine(device).1.is_some()
}

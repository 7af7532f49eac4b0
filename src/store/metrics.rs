//! `metrics.parquet`: a run's observations in long form, written through polars.

use polars::prelude::{DataFrame, PolarsResult};

pub use super::frame::write_parquet;
use super::frame::{column, keyed_frame, RunKeys};

use crate::train::MetricRow;

/// The table's name in manifests and messages.
pub const METRICS_FILE: &str = "metrics.parquet";

/// Column names after the key columns (`frame::KEY_COLUMNS`), in order: step (u64),
/// tokens (u64), split (str), metric (str), value (f64), elapsed_s (f64).
pub const METRIC_COLUMNS: [&str; 6] = ["step", "tokens", "split", "metric", "value", "elapsed_s"];

/// The rows as a DataFrame, after the key columns.
pub fn metrics_frame(keys: &RunKeys, rows: &[MetricRow]) -> PolarsResult<DataFrame> {
    keyed_frame(
        keys,
        rows.len(),
        vec![
            column(METRIC_COLUMNS[0], rows, |r| r.step),
            column(METRIC_COLUMNS[1], rows, |r| r.tokens),
            column(METRIC_COLUMNS[2], rows, |r| r.split.as_str()),
            column(METRIC_COLUMNS[3], rows, |r| r.metric),
            column(METRIC_COLUMNS[4], rows, |r| r.value),
            column(METRIC_COLUMNS[5], rows, |r| r.elapsed_s),
        ],
    )
}

//! `metrics.parquet`: a run's observations in long form, written through polars.

use polars::prelude::{DataFrame, PolarsResult};

pub use super::frame::write_parquet;
use super::frame::{column, run_frame};

use crate::train::MetricRow;

/// The file name in a run directory.
pub const METRICS_FILE: &str = "metrics.parquet";

/// Column names, in order: run (str), step (u64), tokens (u64), split (str), metric (str),
/// value (f64), elapsed_s (f64).
pub const METRIC_COLUMNS: [&str; 7] = [
    "run",
    "step",
    "tokens",
    "split",
    "metric",
    "value",
    "elapsed_s",
];

/// The rows as a DataFrame with `run` as the first column.
pub fn metrics_frame(run: &str, rows: &[MetricRow]) -> PolarsResult<DataFrame> {
    run_frame(
        run,
        rows.len(),
        vec![
            column(METRIC_COLUMNS[1], rows, |r| r.step),
            column(METRIC_COLUMNS[2], rows, |r| r.tokens),
            column(METRIC_COLUMNS[3], rows, |r| r.split.as_str()),
            column(METRIC_COLUMNS[4], rows, |r| r.metric),
            column(METRIC_COLUMNS[5], rows, |r| r.value),
            column(METRIC_COLUMNS[6], rows, |r| r.elapsed_s),
        ],
    )
}

//! `metrics.parquet`: a run's observations in long form, written through polars.

use std::fs::File;
use std::path::Path;

use polars::prelude::{Column, DataFrame, ParquetCompression, ParquetWriter, PolarsResult};

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
    let [c_run, c_step, c_tokens, c_split, c_metric, c_value, c_elapsed] = METRIC_COLUMNS;
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(c_run.into(), vec![run; rows.len()]),
            Column::new(
                c_step.into(),
                rows.iter().map(|r| r.step).collect::<Vec<u64>>(),
            ),
            Column::new(
                c_tokens.into(),
                rows.iter().map(|r| r.tokens).collect::<Vec<u64>>(),
            ),
            Column::new(
                c_split.into(),
                rows.iter().map(|r| r.split.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                c_metric.into(),
                rows.iter().map(|r| r.metric).collect::<Vec<_>>(),
            ),
            Column::new(
                c_value.into(),
                rows.iter().map(|r| r.value).collect::<Vec<f64>>(),
            ),
            Column::new(
                c_elapsed.into(),
                rows.iter().map(|r| r.elapsed_s).collect::<Vec<f64>>(),
            ),
        ],
    )
}

/// Writes `frame` to `path` atomically (temporary sibling, then rename).
pub fn write_parquet(path: &Path, frame: &mut DataFrame) -> std::io::Result<()> {
    let temp = path.with_extension(format!("parquet.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&temp)?;
        ParquetWriter::new(&mut file)
            .with_compression(ParquetCompression::Snappy)
            .finish(frame)
            .map_err(std::io::Error::other)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

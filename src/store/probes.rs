//! `probes.parquet`: a run's rank probes in long form.

use polars::prelude::{DataFrame, PolarsResult};

use super::frame::{column, run_frame};

use crate::probe::ProbeRow;

pub const PROBES_FILE: &str = "probes.parquet";

/// Column names, in order: run (str), step (u64), tokens (u64), layer (u32), head (u32),
/// site (str), metric (str), value (f64).
pub const PROBE_COLUMNS: [&str; 8] = [
    "run", "step", "tokens", "layer", "head", "site", "metric", "value",
];

pub fn probes_frame(run: &str, rows: &[ProbeRow]) -> PolarsResult<DataFrame> {
    run_frame(
        run,
        rows.len(),
        vec![
            column(PROBE_COLUMNS[1], rows, |r| r.step),
            column(PROBE_COLUMNS[2], rows, |r| r.tokens),
            column(PROBE_COLUMNS[3], rows, |r| r.layer),
            column(PROBE_COLUMNS[4], rows, |r| r.head),
            column(PROBE_COLUMNS[5], rows, |r| r.site),
            column(PROBE_COLUMNS[6], rows, |r| r.metric),
            column(PROBE_COLUMNS[7], rows, |r| r.value),
        ],
    )
}

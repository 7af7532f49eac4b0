//! `probes.parquet`: a run's rank probes in long form.

use polars::prelude::{DataFrame, PolarsResult};

use super::frame::{column, keyed_frame, RunKeys};

use crate::probe::ProbeRow;

/// The table's name in manifests and messages.
pub const PROBES_FILE: &str = "probes.parquet";

/// Column names after the key columns (`frame::KEY_COLUMNS`), in order: step (u64),
/// tokens (u64), layer (u32, null for a model-wide probe), head (u32, null for a probe of
/// a whole layer), site (str), metric (str), value (f64).
pub const PROBE_COLUMNS: [&str; 7] = ["step", "tokens", "layer", "head", "site", "metric", "value"];

pub fn probes_frame(keys: &RunKeys, rows: &[ProbeRow]) -> PolarsResult<DataFrame> {
    keyed_frame(
        keys,
        rows.len(),
        vec![
            column(PROBE_COLUMNS[0], rows, |r| r.step),
            column(PROBE_COLUMNS[1], rows, |r| r.tokens),
            column(PROBE_COLUMNS[2], rows, |r| r.layer),
            column(PROBE_COLUMNS[3], rows, |r| r.head),
            column(PROBE_COLUMNS[4], rows, |r| r.site),
            column(PROBE_COLUMNS[5], rows, |r| r.metric),
            column(PROBE_COLUMNS[6], rows, |r| r.value),
        ],
    )
}

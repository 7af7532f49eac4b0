//! `probes.parquet`: a run's rank probes in long form.

use polars::prelude::{Column, DataFrame, PolarsResult};

use crate::probe::ProbeRow;

pub const PROBES_FILE: &str = "probes.parquet";

/// Column names, in order: run (str), step (u64), tokens (u64), layer (u32), head (u32),
/// site (str), metric (str), value (f64).
pub const PROBE_COLUMNS: [&str; 8] = [
    "run", "step", "tokens", "layer", "head", "site", "metric", "value",
];

pub fn probes_frame(run: &str, rows: &[ProbeRow]) -> PolarsResult<DataFrame> {
    let [c_run, c_step, c_tokens, c_layer, c_head, c_site, c_metric, c_value] = PROBE_COLUMNS;
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
                c_layer.into(),
                rows.iter().map(|r| r.layer).collect::<Vec<u32>>(),
            ),
            Column::new(
                c_head.into(),
                rows.iter().map(|r| r.head).collect::<Vec<u32>>(),
            ),
            Column::new(
                c_site.into(),
                rows.iter().map(|r| r.site).collect::<Vec<_>>(),
            ),
            Column::new(
                c_metric.into(),
                rows.iter().map(|r| r.metric).collect::<Vec<_>>(),
            ),
            Column::new(
                c_value.into(),
                rows.iter().map(|r| r.value).collect::<Vec<f64>>(),
            ),
        ],
    )
}

//! Building long-form DataFrames from rows of observations.

use polars::prelude::{Column, DataFrame, NamedFrom, PolarsResult, Series};

/// A column `name` holding `value(row)` for every row.
pub fn column<R, V, P: ?Sized>(name: &str, rows: &[R], value: impl Fn(&R) -> V) -> Column
where
    Series: NamedFrom<Vec<V>, P>,
{
    Column::new(name.into(), rows.iter().map(value).collect::<Vec<V>>())
}

/// A frame whose first column is `run` (the same value on every row), then `columns`.
pub fn run_frame(run: &str, height: usize, columns: Vec<Column>) -> PolarsResult<DataFrame> {
    let mut all = vec![Column::new("run".into(), vec![run; height])];
    all.extend(columns);
    DataFrame::new(height, all)
}

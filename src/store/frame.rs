//! Long-form DataFrames of observations: building them from rows, and reading and
//! writing them as parquet.

use std::fs::File;
use std::io;
use std::path::Path;

use polars::prelude::{
    ChunkCompareIneq, Column, DataFrame, NamedFrom, ParquetCompression, ParquetReader,
    ParquetWriter, PolarsResult, SerReader, Series,
};

use crate::atomic_file::write_atomic;

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

/// Writes `frame` to `path` atomically: readers see the old file or the whole new one.
pub fn write_parquet(path: &Path, frame: &mut DataFrame) -> io::Result<()> {
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .with_compression(ParquetCompression::Snappy)
        .finish(frame)
        .map_err(io::Error::other)?;
    write_atomic(path, &bytes)
}

/// The frame in the parquet file at `path`; an error names what is wrong with it.
pub fn read_parquet(path: &Path) -> io::Result<DataFrame> {
    ParquetReader::new(File::open(path)?)
        .finish()
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))
}

/// The rows of `frame` whose `step` is at most `step` (what a checkpoint at `step` has
/// seen).
pub fn rows_through_step(frame: &DataFrame, step: u64) -> PolarsResult<DataFrame> {
    let mask = frame.column("step")?.u64()?.lt_eq(step);
    frame.filter(&mask)
}

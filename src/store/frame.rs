//! Long-form DataFrames of observations: building them from rows, and reading and
//! writing them as parquet.

use std::io;
use std::path::Path;

use polars::prelude::{
    ChunkCompareIneq, Column, DataFrame, NamedFrom, ParquetCompression, ParquetReader,
    ParquetWriter, PolarsResult, SerReader, Series,
};

use crate::atomic_file::write_atomic;
pub use crate::quiet_panic::{panic_text, quietly};

use super::manifest::{sha256_file, Manifest};
use super::Table;
use crate::digest::sha256_hex;

/// A column `name` holding `value(row)` for every row.
pub fn column<R, V, P: ?Sized>(name: &str, rows: &[R], value: impl Fn(&R) -> V) -> Column
where
    Series: NamedFrom<Vec<V>, P>,
{
    Column::new(name.into(), rows.iter().map(value).collect::<Vec<V>>())
}

/// What every row of a run's tables says about the run, so that the tables of many
/// runs (and studies) read as one dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKeys {
    pub study: String,
    /// The label without its seed: runs of one condition are its repeats.
    pub condition: String,
    pub label: String,
    pub run_id: String,
    pub seed: u64,
}

/// The key columns, first in every table: study, condition, label, run_id (str), seed
/// (u64).
pub const KEY_COLUMNS: [&str; 5] = ["study", "condition", "label", "run_id", "seed"];

impl RunKeys {
    /// The keys of the run `manifest` describes (a manifest that names no condition, as
    /// earlier versions wrote them, is its own condition).
    pub fn of(manifest: &Manifest) -> RunKeys {
        RunKeys {
            study: manifest.study.clone(),
            condition: manifest
                .condition
                .clone()
                .unwrap_or_else(|| manifest.label.clone()),
            label: manifest.label.clone(),
            run_id: manifest.run_id.clone(),
            seed: manifest.seed,
        }
    }
}

/// A frame of the key columns (the same values on every row), then `columns`.
pub fn keyed_frame(keys: &RunKeys, height: usize, columns: Vec<Column>) -> PolarsResult<DataFrame> {
    let text = |i: usize, value: &str| Column::new(KEY_COLUMNS[i].into(), vec![value; height]);
    let mut all = vec![
        text(0, &keys.study),
        text(1, &keys.condition),
        text(2, &keys.label),
        text(3, &keys.run_id),
        Column::new(KEY_COLUMNS[4].into(), vec![keys.seed; height]),
    ];
    all.extend(columns);
    DataFrame::new(height, all)
}

/// `frame` (a run's table) with its key columns naming the run of `keys` instead: the
/// rows a run continued from another run's final state takes over.
pub fn rekeyed(frame: &DataFrame, keys: &RunKeys) -> PolarsResult<DataFrame> {
    let others: Vec<Column> = (frame.columns().iter())
        .filter(|c| !KEY_COLUMNS.contains(&c.name().as_str()))
        .cloned()
        .collect();
    keyed_frame(keys, frame.height(), others)
}

/// Writes `frame` to `path` atomically (readers see the old file or the whole new one);
/// returns the SHA-256 of the bytes written, for the run's manifest.
pub fn write_parquet(path: &Path, frame: &mut DataFrame) -> io::Result<String> {
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .with_compression(ParquetCompression::Snappy)
        .finish(frame)
        .map_err(io::Error::other)?;
    write_atomic(path, &bytes)?;
    Ok(sha256_hex(&bytes))
}

/// The frame in the parquet file at `path`; an error names what is wrong with it. A
/// damaged file can make the parquet reader panic (an assertion, an index out of range):
/// that panic is caught, kept off the terminal, and returned as `InvalidData`.
pub fn read_parquet(path: &Path) -> io::Result<DataFrame> {
    let file = crate::regular_file::open(path)?;
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    match quietly(|| ParquetReader::new(file).finish()) {
        Ok(frame) => frame.map_err(|err| invalid(err.to_string())),
        Err(panic) => Err(invalid(format!(
            "unreadable parquet ({})",
            panic_text(&*panic)
        ))),
    }
}

/// The frame of a run's `table` file at `path`, after checking it against the SHA-256
/// its manifest recorded (if it recorded one): a flipped bit that the parquet reader
/// would accept is caught here.
pub fn read_result(
    path: &Path,
    table: Table,
    manifest: Option<&Manifest>,
) -> io::Result<DataFrame> {
    let name = table.file_name();
    if let Some(expected) = manifest.and_then(|m| m.checksums.get(name)) {
        let found = sha256_file(path)?;
        if &found != expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("checksum mismatch: {} changed after its run recorded it (sha256 {found}, recorded {expected})", path.display()),
            ));
        }
    }
    read_parquet(path)
}

/// The rows of `frame` whose `step` is at most `step` (what a checkpoint at `step` has
/// seen).
pub fn rows_through_step(frame: &DataFrame, step: u64) -> PolarsResult<DataFrame> {
    let mask = frame.column("step")?.u64()?.lt_eq(step);
    frame.filter(&mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_panics_become_errors() {
        let path =
            std::env::temp_dir().join(format!("rankprobe-garbage-{}.parquet", std::process::id()));
        for bytes in [&b""[..], b"PAR1", b"PAR1 not really parquet PAR1"] {
            std::fs::write(&path, bytes).unwrap();
            let err = read_parquet(&path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        }
        std::fs::remove_file(&path).unwrap();
        let caught = quietly(|| -> u8 { panic!("inside a reader") }).unwrap_err();
        assert_eq!(panic_text(&*caught), "inside a reader");
        assert_eq!(quietly(|| 7).unwrap(), 7);
    }
}

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
pub use crate::quiet_panic::{panic_text, quietly};

use super::manifest::{sha256_file, sha256_hex, Manifest};

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
    let file = File::open(path)?;
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    match quietly(|| ParquetReader::new(file).finish()) {
        Ok(frame) => frame.map_err(|err| invalid(err.to_string())),
        Err(panic) => Err(invalid(format!(
            "unreadable parquet ({})",
            panic_text(&*panic)
        ))),
    }
}

/// The frame of the result file `name` in `run_dir`, after checking it against the
/// SHA-256 its manifest recorded (if it recorded one): a flipped bit that the parquet
/// reader would accept is caught here.
pub fn read_result(
    run_dir: &Path,
    name: &str,
    manifest: Option<&Manifest>,
) -> io::Result<DataFrame> {
    if let Some(expected) = manifest.and_then(|m| m.checksums.get(name)) {
        let found = sha256_file(&run_dir.join(name))?;
        if &found != expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("checksum mismatch: {name} changed after its run recorded it (sha256 {found}, recorded {expected})"),
            ));
        }
    }
    read_parquet(&run_dir.join(name))
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

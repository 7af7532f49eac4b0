//! Reading a text column of a parquet file (user corpora), through polars.

use std::path::Path;

use polars::prelude::{ParquetReader, SerReader};

use crate::quiet_panic::{panic_text, quietly};

use super::DataError;

/// Every non-null string of `column` in `file`, in row order.
pub fn read_text_column(file: &Path, column: &str) -> Result<Vec<String>, DataError> {
    let handle = crate::regular_file::open(file).map_err(|e| DataError::io(file, e))?;
    let cannot =
        |why: String| DataError::Input(format!("{}: cannot read parquet: {why}", file.display()));
    // A damaged file can make the reader panic: an error like any other, said once.
    let frame = match quietly(|| ParquetReader::new(handle).finish()) {
        Ok(frame) => frame.map_err(|e| cannot(e.to_string()))?,
        Err(panic) => return Err(cannot(panic_text(&*panic))),
    };
    let names: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let series = frame.column(column).map_err(|_| {
        DataError::Input(format!(
            "{}: no column `{column}` (columns: {})",
            file.display(),
            names.join(", ")
        ))
    })?;
    let strings = series.str().map_err(|_| {
        DataError::Input(format!(
            "{}: column `{column}` is {}, not text",
            file.display(),
            series.dtype()
        ))
    })?;
    Ok(strings
        .downcast_iter()
        .flat_map(|array| {
            array
                .iter()
                .flatten()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect())
}

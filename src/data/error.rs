//! Why data could not be prepared.

use std::fmt;
use std::path::Path;

/// Why data could not be prepared.
#[derive(Debug)]
pub enum DataError {
    /// The user's input (files, sizes) is wrong.
    Input(String),
    /// A built-in corpus could not be fetched or verified.
    Fetch(String),
    Tokenizer(String),
    Io(String),
    /// Asked for something this version cannot do yet.
    Unsupported(String),
}

impl DataError {
    pub fn io(path: &Path, err: std::io::Error) -> Self {
        DataError::Io(format!("{}: {err}", path.display()))
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Input(m)
            | DataError::Fetch(m)
            | DataError::Io(m)
            | DataError::Unsupported(m) => f.write_str(m),
            DataError::Tokenizer(m) => write!(f, "tokenizer: {m}"),
        }
    }
}

impl std::error::Error for DataError {}

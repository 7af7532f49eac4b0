//! Data: corpus -> tokenizer -> cached token shards -> batches and the fixed eval batch.

pub mod batches;
pub mod cache;
pub mod corpus;
pub mod fetch;
pub mod llmc;
pub mod mix;
pub mod parquet_text;
pub mod shards;
pub mod tokenizer;

use std::fmt;
use std::path::Path;

use crate::spec::run_config::DataConfig;

use corpus::{load_corpus, Documents};
use shards::{prepare_shards, split_documents, TokenSplits};
use tokenizer::{prepare_tokenizer, TextTokenizer};

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

/// A tokenized corpus, ready to batch.
pub struct Dataset {
    pub tokenizer: TextTokenizer,
    pub splits: TokenSplits,
}

/// Loads (fetching, training and tokenizing on first use) the data a run config names.
pub fn prepare_dataset(config: &DataConfig) -> Result<Dataset, DataError> {
    let corpus = load_corpus(&config.corpus)?;
    if corpus.documents.is_empty() {
        return Err(DataError::Input(format!(
            "corpus {} has no documents",
            corpus.origin
        )));
    }
    let training_texts = || match &corpus.documents {
        Documents::Text(texts) => {
            let (train, _) = split_documents(texts.len(), config.val_fraction);
            train.iter().map(|&i| texts[i].as_str()).collect()
        }
        Documents::Tokens(_) => Vec::new(),
    };
    let tokenizer = prepare_tokenizer(&config.tokenizer, &corpus.hash, training_texts)?;
    let splits = prepare_shards(&corpus, &tokenizer, config.val_fraction)?;
    Ok(Dataset { tokenizer, splits })
}

//! Data: corpus -> tokenizer -> cached token shards -> batches and the fixed eval batch.

pub mod batches;
pub mod cache;
pub mod corpus;
pub mod error;
pub mod fetch;
pub mod llmc;
pub mod mix;
pub mod parquet_text;
pub mod shards;
pub mod tokenizer;

use crate::spec::run_config::DataConfig;

use corpus::{load_corpus, Documents};
use shards::{prepare_shards, split_documents, TokenSplits};
use tokenizer::{prepare_tokenizer, TextTokenizer};

pub use error::DataError;

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

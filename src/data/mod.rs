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

/// A tokenized corpus, ready to batch, with the study's extra evaluation sets.
pub struct Dataset {
    pub tokenizer: TextTokenizer,
    pub splits: TokenSplits,
    pub eval_sets: Vec<EvalSetTokens>,
}

/// An extra evaluation set, tokenized with the study's tokenizer.
pub struct EvalSetTokens {
    pub name: String,
    pub tokens: shards::TokenFile,
    /// Its tokens that decode to something other than whitespace: a set of blank text
    /// has many tokens and nothing to score.
    pub real_tokens: usize,
    /// Where its text came from, for manifests and messages.
    pub origin: String,
}

/// The token cache splits every corpus by document; an eval set is read from its
/// "validation" split at this fraction, which holds all of its documents but one.
const EVAL_SET_FRACTION: f64 = 1.0;

/// How many of `tokens` decode to text that is not only whitespace (each distinct id is
/// decoded once).
fn real_tokens(tokens: &shards::TokenFile, tokenizer: &TextTokenizer) -> Result<usize, DataError> {
    let mut real: std::collections::HashMap<u32, bool> = std::collections::HashMap::new();
    let mut count = 0;
    const CHUNK: usize = 1 << 20;
    for start in (0..tokens.len()).step_by(CHUNK) {
        for id in tokens.read(start, CHUNK.min(tokens.len() - start)) {
            let is_real = match real.get(&id) {
                Some(&known) => known,
                None => {
                    let text = tokenizer.decode(&[id])?;
                    let known = text.chars().any(|c| !c.is_whitespace());
                    real.insert(id, known);
                    known
                }
            };
            count += usize::from(is_real);
        }
    }
    Ok(count)
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
    let mut eval_sets = Vec::new();
    for set in &config.eval_sets {
        let context = |err: DataError| {
            DataError::Input(format!("eval set `{}` (data.eval_sets): {err}", set.name))
        };
        let corpus = load_corpus(&set.corpus).map_err(context)?;
        let tokens = prepare_shards(&corpus, &tokenizer, EVAL_SET_FRACTION).map_err(context)?;
        eval_sets.push(EvalSetTokens {
            name: set.name.clone(),
            real_tokens: real_tokens(&tokens.val, &tokenizer).map_err(context)?,
            tokens: tokens.val,
            origin: corpus.origin,
        });
    }
    Ok(Dataset {
        tokenizer,
        splits,
        eval_sets,
    })
}

//! Token shards: a corpus tokenized once into a train and a val file of little-endian
//! uint16 (or uint32 for vocabularies over 65,536) tokens, memory-mapped for reading and
//! cached by corpus, tokenizer and split.

use std::fs;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::atomic_file::write_atomic;

use super::cache::{cache_dir, hash_parts};
use super::corpus::{Documents, LoadedCorpus};
use super::tokenizer::TextTokenizer;
use super::DataError;

/// The train/val split is the same for every run and seed of a study: it must not move
/// with the run's seed, or runs would be evaluated on different data.
const SPLIT_SEED: u64 = 0x5EED_5911;
const FORMAT: &[u8] = b"rankprobe-tokens-v1";

/// What a token directory holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub bytes_per_token: usize,
    pub train_tokens: usize,
    pub val_tokens: usize,
    pub train_documents: usize,
    pub val_documents: usize,
    pub vocab_size: usize,
    pub eot: u32,
    pub corpus: String,
    pub tokenizer: String,
}

/// A memory-mapped token file.
pub struct TokenFile {
    map: Option<Mmap>,
    bytes_per_token: usize,
}

impl TokenFile {
    fn open(path: &Path, bytes_per_token: usize) -> Result<Self, DataError> {
        let file = crate::regular_file::open(path).map_err(|e| DataError::io(path, e))?;
        let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        // An empty file cannot be mapped; it simply has no tokens.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: cache files are written once (atomically) and never modified in place.
            Some(unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?)
        };
        Ok(TokenFile {
            map,
            bytes_per_token,
        })
    }

    pub fn len(&self) -> usize {
        self.map
            .as_ref()
            .map_or(0, |m| m.len() / self.bytes_per_token)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens `start..start + len`.
    pub fn read(&self, start: usize, len: usize) -> Vec<u32> {
        let bytes = &self.map.as_ref().expect("read from an empty token file")
            [start * self.bytes_per_token..(start + len) * self.bytes_per_token];
        match self.bytes_per_token {
            2 => bytes
                .chunks_exact(2)
                .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            _ => bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        }
    }
}

/// The tokenized train and validation splits.
pub struct TokenSplits {
    pub train: TokenFile,
    pub val: TokenFile,
    pub meta: ShardMeta,
    pub dir: PathBuf,
}

/// Which documents are held out: a fixed shuffle, the first `val_fraction` of it (at
/// least one document each side when there are two or more).
pub fn split_documents(n_documents: usize, val_fraction: f64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n_documents).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(SPLIT_SEED));
    let mut n_val = (n_documents as f64 * val_fraction).round() as usize;
    if n_documents >= 2 {
        n_val = n_val.clamp(1, n_documents - 1);
    }
    let mut val = order[..n_val].to_vec();
    let mut train = order[n_val..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// Opens the cached shards of (corpus, tokenizer, split), tokenizing on first use.
pub fn prepare_shards(
    corpus: &LoadedCorpus,
    tokenizer: &TextTokenizer,
    val_fraction: f64,
) -> Result<TokenSplits, DataError> {
    let key = hash_parts(&[
        FORMAT,
        corpus.hash.as_bytes(),
        tokenizer.hash.as_bytes(),
        &val_fraction.to_le_bytes(),
    ]);
    let dir = cache_dir().join("tokens").join(&key[..24]);
    let meta_path = dir.join("meta.json");
    if !meta_path.is_file() {
        write_shards(corpus, tokenizer, val_fraction, &dir)?;
    }
    let meta_text = crate::regular_file::read_to_string(&meta_path)
        .map_err(|e| DataError::io(&meta_path, e))?;
    let meta: ShardMeta = serde_json::from_str(&meta_text).map_err(|e| {
        DataError::Input(format!(
            "{} is damaged ({e}); delete {} to rebuild it",
            meta_path.display(),
            dir.display()
        ))
    })?;
    let train = TokenFile::open(&dir.join("train.bin"), meta.bytes_per_token)?;
    let val = TokenFile::open(&dir.join("val.bin"), meta.bytes_per_token)?;
    if train.len() != meta.train_tokens || val.len() != meta.val_tokens {
        return Err(DataError::Input(format!(
            "token cache {} is truncated; delete it to rebuild",
            dir.display()
        )));
    }
    Ok(TokenSplits {
        train,
        val,
        meta,
        dir,
    })
}

fn write_shards(
    corpus: &LoadedCorpus,
    tokenizer: &TextTokenizer,
    val_fraction: f64,
    dir: &Path,
) -> Result<(), DataError> {
    eprintln!(
        "tokenizing {} documents ({})",
        corpus.documents.len(),
        tokenizer.description
    );
    let (train_docs, val_docs) = split_documents(corpus.documents.len(), val_fraction);
    let bytes_per_token = if tokenizer.vocab_size <= 1 << 16 {
        2
    } else {
        4
    };
    let encode_split = |indices: &[usize]| -> Result<Vec<u8>, DataError> {
        let mut out = Vec::new();
        for &i in indices {
            let tokens = match &corpus.documents {
                Documents::Text(texts) => tokenizer.encode(&texts[i])?,
                Documents::Tokens(docs) => docs[i].clone(),
            };
            for token in tokens.into_iter().chain([tokenizer.eot]) {
                if token as usize >= tokenizer.vocab_size {
                    return Err(DataError::Input(format!(
                        "token {token} is outside the tokenizer's vocabulary of {}",
                        tokenizer.vocab_size
                    )));
                }
                match bytes_per_token {
                    2 => out.extend((token as u16).to_le_bytes()),
                    _ => out.extend(token.to_le_bytes()),
                }
            }
        }
        Ok(out)
    };
    let train = encode_split(&train_docs)?;
    let val = encode_split(&val_docs)?;
    let meta = ShardMeta {
        bytes_per_token,
        train_tokens: train.len() / bytes_per_token,
        val_tokens: val.len() / bytes_per_token,
        train_documents: train_docs.len(),
        val_documents: val_docs.len(),
        vocab_size: tokenizer.vocab_size,
        eot: tokenizer.eot,
        corpus: corpus.origin.clone(),
        tokenizer: tokenizer.description.clone(),
    };
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        write_atomic(&path, bytes).map_err(|e| DataError::io(&path, e))
    };
    write("train.bin", &train)?;
    write("val.bin", &val)?;
    // meta.json last: its presence marks a complete directory.
    let json = serde_json::to_string_pretty(&meta).expect("meta serialises");
    write("meta.json", json.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_disjoint_complete_and_fixed() {
        let (train, val) = split_documents(100, 0.1);
        assert_eq!(val.len(), 10);
        assert_eq!(train.len(), 90);
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(split_documents(100, 0.1), (train, val));
    }

    #[test]
    fn tiny_corpora_keep_a_document_on_each_side() {
        let (train, val) = split_documents(2, 0.01);
        assert_eq!((train.len(), val.len()), (1, 1));
    }
}

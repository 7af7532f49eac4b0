//! Tokenizers: GPT-2 (r50k_base, built in), a byte-level BPE trained on the corpus and
//! cached, or a Hugging Face `tokenizer.json`.

use std::fs;
use std::path::Path;

use tiktoken_rs::CoreBPE;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerBuilder};

use crate::spec::run_config::Tokenizer as TokenizerSpec;

use super::cache::{cache_dir, hash_parts};
use super::DataError;

pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A tokenizer ready to encode, with what the model needs to know about it.
pub struct TextTokenizer {
    engine: Engine,
    pub vocab_size: usize,
    /// Appended after every document.
    pub eot: u32,
    /// Identifies the tokenizer's behaviour, for cache keys and manifests.
    pub hash: String,
    pub description: String,
}

enum Engine {
    Gpt2(&'static CoreBPE),
    HuggingFace(Box<tokenizers::Tokenizer>),
}

impl TextTokenizer {
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        match &self.engine {
            Engine::Gpt2(bpe) => Ok(bpe.encode_ordinary(text)),
            Engine::HuggingFace(tokenizer) => tokenizer
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| DataError::Tokenizer(e.to_string())),
        }
    }

    pub fn decode(&self, tokens: &[u32]) -> Result<String, DataError> {
        match &self.engine {
            Engine::Gpt2(bpe) => bpe
                .decode(tokens)
                .map_err(|e| DataError::Tokenizer(e.to_string())),
            Engine::HuggingFace(tokenizer) => tokenizer
                .decode(tokens, false)
                .map_err(|e| DataError::Tokenizer(e.to_string())),
        }
    }
}

/// The tokenizer a run config names. A BPE is trained on `training_texts` on first use.
pub fn prepare_tokenizer<'a>(
    spec: &TokenizerSpec,
    corpus_hash: &str,
    training_texts: impl Fn() -> Vec<&'a str>,
) -> Result<TextTokenizer, DataError> {
    match spec {
        TokenizerSpec::Gpt2 => Ok(TextTokenizer {
            engine: Engine::Gpt2(tiktoken_rs::r50k_base_singleton()),
            vocab_size: 50_257,
            eot: 50_256,
            hash: "gpt2-r50k_base".to_owned(),
            description: "GPT-2 r50k_base".to_owned(),
        }),
        TokenizerSpec::Bpe { vocab } => {
            let key = hash_parts(&[b"bpe-v1", corpus_hash.as_bytes(), &vocab.to_le_bytes()]);
            let path = cache_dir()
                .join("tokenizers")
                .join(format!("bpe-{vocab}-{}.json", &key[..16]));
            if !path.is_file() {
                train_bpe(*vocab, &training_texts(), &path)?;
            }
            let mut tokenizer = load_file(&path)?;
            tokenizer.hash = key;
            tokenizer.description =
                format!("byte-level BPE, {vocab} tokens, trained on the corpus");
            Ok(tokenizer)
        }
        TokenizerSpec::File(path) => load_file(Path::new(path)),
    }
}

fn load_file(path: &Path) -> Result<TextTokenizer, DataError> {
    let bytes = crate::regular_file::read(path).map_err(|e| DataError::io(path, e))?;
    let tokenizer = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
        DataError::Input(format!(
            "{} is not a Hugging Face tokenizer.json: {e}",
            path.display()
        ))
    })?;
    let eot = ["<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"]
        .iter()
        .find_map(|t| tokenizer.token_to_id(t))
        .ok_or_else(|| {
            DataError::Input(format!(
                "{} has no end-of-text token (<|endoftext|>, </s>, <|end_of_text|> or <eos>) to separate documents",
                path.display()
            ))
        })?;
    Ok(TextTokenizer {
        vocab_size: tokenizer.get_vocab_size(true),
        eot,
        hash: hash_parts(&[b"file", &bytes]),
        description: format!("tokenizer.json {}", path.display()),
        engine: Engine::HuggingFace(Box::new(tokenizer)),
    })
}

/// Trains a byte-level BPE with `vocab` tokens (256 bytes, merges, `<|endoftext|>`).
fn train_bpe(vocab: usize, texts: &[&str], path: &Path) -> Result<(), DataError> {
    eprintln!(
        "training a {vocab}-token byte-level BPE on {} documents",
        texts.len()
    );
    let err = |e: tokenizers::Error| DataError::Tokenizer(e.to_string());
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab)
        .min_frequency(2)
        .special_tokens(vec![AddedToken::from(END_OF_TEXT.to_owned(), true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer =
        TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, ByteLevel, ByteLevel>::new()
            .with_model(BPE::default())
            .with_normalizer(None)
            .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
            .with_post_processor(Some(ByteLevel::new(false, true, true)))
            .with_decoder(Some(ByteLevel::new(false, true, true)))
            .build()
            .map_err(err)?;
    tokenizer.train(&mut trainer, texts.iter()).map_err(err)?;
    let dir = path.parent().expect("cache paths have a parent");
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let json = tokenizer.to_string(false).map_err(err)?;
    crate::atomic_file::write_atomic(path, json.as_bytes()).map_err(|e| DataError::io(path, e))
}

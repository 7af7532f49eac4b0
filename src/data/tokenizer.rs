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

/// The longest text encoded in one call: a longer document is encoded piece by piece,
/// cut at whitespace, so that a document of hundreds of MB costs memory in proportion
/// to its tokens, not a tokenizer's per-call structures over all of it.
const MAX_PIECE: usize = 1 << 20;

/// The longest run of non-whitespace characters encoded as one piece: BPE merges within
/// a pre-token take time quadratic in its length, so a longer run (a blob without
/// spaces) is cut into runs of this size. Prose does not have one (the longest in the
/// `Sotu` corpus is 75 bytes), so its tokens are the same as in one call.
const MAX_RUN: usize = 1 << 10;

/// `text` as pieces of at most `max_piece` bytes, cut before whitespace, with no run of
/// non-whitespace longer than `max_run` bytes in one piece. A text within both bounds
/// is one piece: itself.
fn bounded_pieces(text: &str, max_piece: usize, max_run: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let window = floor_boundary(rest, max_piece);
        // The first long run within reach: cut before it, or cut it.
        let mut run_start = None;
        let mut cut = None;
        for (at, c) in rest[..window].char_indices() {
            if c.is_whitespace() {
                run_start = None;
                cut = Some(at).filter(|&at| at > 0).or(cut);
            } else {
                let start = *run_start.get_or_insert(at);
                if at + c.len_utf8() - start > max_run {
                    cut = Some(if start > 0 {
                        start
                    } else {
                        floor_boundary(rest, max_run)
                    });
                    break;
                }
            }
        }
        let end = match cut {
            _ if window == rest.len() && run_start.is_none_or(|s| rest.len() - s <= max_run) => {
                rest.len()
            }
            Some(at) => at,
            None => window,
        };
        let end = end.max(rest.chars().next().map_or(1, char::len_utf8));
        pieces.push(&rest[..end]);
        rest = &rest[end..];
    }
    pieces
}

/// The largest char boundary of `text` at or below `at`, at least one character.
fn floor_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    let mut at = at;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at.max(text.chars().next().map_or(0, char::len_utf8))
}

impl TextTokenizer {
    /// The tokens of `text`, encoded in bounded pieces (`bounded_pieces`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        let mut tokens = Vec::new();
        for piece in bounded_pieces(text, MAX_PIECE, MAX_RUN) {
            tokens.extend(self.encode_piece(piece)?);
        }
        Ok(tokens)
    }

    fn encode_piece(&self, text: &str) -> Result<Vec<u32>, DataError> {
        match &self.engine {
            Engine::Gpt2(bpe) => Ok(bpe.encode_ordinary(text)),
            Engine::HuggingFace(tokenizer) => tokenizer
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| DataError::Tokenizer(e.to_string())),
        }
    }

    /// The tokenizer as a Hugging Face `tokenizer.json` (what `tokenizers.Tokenizer
    /// .from_file` loads); None for GPT-2's, which is tiktoken's `gpt2` encoding.
    pub fn hugging_face_json(&self) -> Option<String> {
        match &self.engine {
            Engine::Gpt2(_) => None,
            Engine::HuggingFace(tokenizer) => tokenizer.to_string(false).ok(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_within_bounds_is_one_piece_and_long_text_is_cut_before_whitespace() {
        assert_eq!(bounded_pieces("a few words", 100, 10), vec!["a few words"]);
        assert_eq!(bounded_pieces("", 100, 10), Vec::<&str>::new());
        let pieces = bounded_pieces("aaaa bbbb cccc dddd", 12, 10);
        assert_eq!(pieces, vec!["aaaa bbbb", " cccc dddd"]);
        // A run longer than max_run is cut, before it and within it.
        let pieces = bounded_pieces("ab xxxxxxxxxxxxxxxxxxxxxxxxx yz", 100, 10);
        assert_eq!(pieces, vec!["ab ", "xxxxxxxxxx", "xxxxxxxxxx", "xxxxx yz"]);
        // Multi-byte characters are never split.
        let text = "é".repeat(20);
        let pieces = bounded_pieces(&text, 7, 5);
        assert!(
            pieces.iter().all(|p| p.len() <= 5 && !p.is_empty()),
            "{pieces:?}"
        );
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn pieces_always_cover_the_text_within_their_bounds() {
        let samples = [
            "plain words and more words ".repeat(200),
            "x".repeat(1000),
            format!("{} tail", "y".repeat(333)),
            "ünï cødé ".repeat(120),
            "\n\n  \t ".repeat(100),
        ];
        for text in &samples {
            for (max_piece, max_run) in [(64, 16), (100, 100), (50, 7)] {
                let pieces = bounded_pieces(text, max_piece, max_run);
                assert_eq!(pieces.concat(), *text);
                for piece in &pieces {
                    assert!(piece.len() <= max_piece, "{piece:?}");
                    let longest = piece.split(char::is_whitespace).map(str::len).max();
                    assert!(longest.unwrap_or(0) <= max_run, "{piece:?}");
                }
            }
        }
    }

    #[test]
    fn a_huge_document_without_spaces_encodes_in_bounded_pieces() {
        let gpt2 = prepare_tokenizer(&TokenizerSpec::Gpt2, "", Vec::new).unwrap();
        // A blob without spaces (quadratic for BPE in one piece) and a 4 MB one-line
        // document: both in bounded pieces, both decoding back to themselves.
        let blob = "ab".repeat(1 << 17);
        let tokens = gpt2.encode(&blob).unwrap();
        assert_eq!(gpt2.decode(&tokens).unwrap(), blob);
        let line = "The state of the union is strong, and getting stronger. ".repeat(75_000);
        let tokens = gpt2.encode(&line).unwrap();
        assert_eq!(gpt2.decode(&tokens).unwrap(), line);
        // Text within the bounds: the same tokens as one call.
        let prose = "The state of the union is strong. ".repeat(100);
        assert_eq!(
            gpt2.encode(&prose).unwrap(),
            gpt2.encode_piece(&prose).unwrap()
        );
    }
}

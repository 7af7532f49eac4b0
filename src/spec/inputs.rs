//! Checks that files a run config names exist, so a missing corpus is reported before
//! any work starts. Relative paths are relative to the directory `rankprobe` runs in.

use std::path::Path;

use super::check::Problem;
use super::run_config::{Corpus, RunConfig, Tokenizer};

/// Problems with the files `config` refers to (built-in corpora are fetched later).
pub fn check_inputs(config: &RunConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let corpus_glob = match &config.data.corpus {
        Corpus::Sotu | Corpus::Mix => None,
        Corpus::Text(glob) | Corpus::LlmcBin(glob) => Some(glob),
        Corpus::Jsonl { glob, .. } | Corpus::Parquet { glob, .. } => Some(glob),
    };
    if let Some(pattern) = corpus_glob.filter(|p| !p.trim().is_empty()) {
        match count_matches(pattern) {
            Ok(0) => problems.push(Problem {
                field: "data.corpus".to_owned(),
                message: format!("no file matches the corpus glob `{pattern}`"),
                help: format!(
                    "check the pattern (relative to {}), or use the built-in corpus Sotu",
                    current_dir()
                ),
            }),
            Ok(_) => {}
            Err(err) => problems.push(Problem {
                field: "data.corpus".to_owned(),
                message: format!("`{pattern}` is not a valid glob: {err}"),
                help: "use *, ? and [..] wildcards, e.g. \"data/**/*.txt\"".to_owned(),
            }),
        }
    }
    if let Tokenizer::File(path) = &config.data.tokenizer {
        if !path.trim().is_empty() && !Path::new(path).is_file() {
            problems.push(Problem {
                field: "data.tokenizer".to_owned(),
                message: format!("tokenizer file `{path}` does not exist"),
                help: format!(
                    "give the path of a Hugging Face tokenizer.json (relative to {}), or use Gpt2 or Bpe(vocab: N)",
                    current_dir()
                ),
            });
        }
    }
    problems
}

fn count_matches(pattern: &str) -> Result<usize, glob::PatternError> {
    Ok(glob::glob(pattern)?.filter_map(Result::ok).count())
}

fn current_dir() -> String {
    std::env::current_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_else(|_| "the current directory".to_owned())
}

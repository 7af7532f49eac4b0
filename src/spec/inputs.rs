//! Checks that files a run config names exist, so a missing corpus (or a glob too broad
//! to expand: the same bounds as loading it) is reported before any work starts. Relative paths are relative to the directory `rankprobe` runs in.

use crate::glob_files::{glob_files, GlobError};

use super::check::Problem;
use super::run_config::{Corpus, RunConfig, Tokenizer};

/// Problems with the files `config` refers to (built-in corpora are fetched later).
pub fn check_inputs(config: &RunConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    corpus_problems("data.corpus", &config.data.corpus, &mut problems);
    for set in &config.data.eval_sets {
        corpus_problems("data.eval_sets", &set.corpus, &mut problems);
    }
    if let Some(path) = &config.model.init_from {
        let found = std::fs::metadata(path);
        if !found.as_ref().is_ok_and(|m| m.is_file()) {
            let what = match found {
                Ok(_) => "is not a regular file",
                Err(_) => "does not exist",
            };
            problems.push(Problem {
                field: "model.init_from".to_owned(),
                message: format!("initial weights `{path}` {what}"),
                help: format!(
                    "give the path of a safetensors file (a run's runs/<name>/final.safetensors or an export's model.safetensors), relative to {}",
                    current_dir()
                ),
            });
        }
    }
    if let Tokenizer::File(path) = &config.data.tokenizer {
        let found = std::fs::metadata(path);
        if !path.trim().is_empty() && !found.as_ref().is_ok_and(|m| m.is_file()) {
            let what = if found.is_ok() {
                "is not a regular file"
            } else {
                "does not exist"
            };
            problems.push(Problem {
                field: "data.tokenizer".to_owned(),
                message: format!("tokenizer file `{path}` {what}"),
                help: format!(
                    "give the path of a Hugging Face tokenizer.json (relative to {}), or use Gpt2 or Bpe(vocab: N)",
                    current_dir()
                ),
            });
        }
    }
    problems
}

/// Whether the files of the corpus at `field` exist (built-in corpora are fetched later).
fn corpus_problems(field: &str, corpus: &Corpus, problems: &mut Vec<Problem>) {
    let corpus_glob = match corpus {
        Corpus::Sotu | Corpus::Mix | Corpus::MixSource(_) => None,
        Corpus::Text(glob) | Corpus::LlmcBin(glob) => Some(glob),
        Corpus::Jsonl { glob, .. } | Corpus::Parquet { glob, .. } => Some(glob),
    };
    let Some(pattern) = corpus_glob.filter(|p| !p.trim().is_empty()) else {
        return;
    };
    let problem = |message: String, help: String| Problem {
        field: field.to_owned(),
        message,
        help,
    };
    match glob_files(pattern, false) {
        Ok(files) if files.is_empty() => problems.push(problem(
            format!("no file matches the corpus glob `{pattern}`"),
            format!(
                "check the pattern (relative to {}; directories do not count: name the files, e.g. \"data/*.txt\"), or use the built-in corpus Sotu",
                current_dir()
            ),
        )),
        Ok(_) => {}
        Err(GlobError::Pattern(message)) => problems.push(problem(
            message,
            "use *, ? and [..] wildcards, e.g. \"data/**/*.txt\"".to_owned(),
        )),
        Err(GlobError::TooBroad(message)) => problems.push(problem(
            message,
            "point the glob at the corpus's own directory, e.g. \"data/**/*.txt\"".to_owned(),
        )),
    }
}

fn current_dir() -> String {
    std::env::current_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_else(|_| "the current directory".to_owned())
}

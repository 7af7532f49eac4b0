//! Checks that files a run config names exist, so a missing corpus (or a glob too broad
//! to expand: the same bounds as loading it) is reported before any work starts. Relative paths are relative to the directory `rankprobe` runs in.

use crate::glob_files::{first_unreadable_match, glob_files, GlobError};

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
            let what = why_not_a_file(path, &found);
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
            let what = why_not_a_file(path, &found);
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

/// Why `path`, whose metadata (links followed) is `found`, is not a readable regular
/// file: "is not a regular file", "is a symbolic-link loop", "is a symbolic link to
/// nothing (`target`)", "cannot be read (...)" or "does not exist".
fn why_not_a_file(path: &str, found: &std::io::Result<std::fs::Metadata>) -> String {
    /// Linux's ELOOP: too many levels of symbolic links.
    const ELOOP: i32 = 40;
    let err = match found {
        Ok(_) => return "is not a regular file".to_owned(),
        Err(err) => err,
    };
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if err.raw_os_error() == Some(ELOOP) {
        return "is a symbolic-link loop".to_owned();
    }
    match err.kind() {
        std::io::ErrorKind::NotFound if is_link => {
            let target = std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            format!("is a symbolic link to nothing (`{target}`)")
        }
        std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        _ => format!("cannot be read ({err})"),
    }
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
        Ok(files) if files.is_empty() => problems.push(match first_unreadable_match(pattern) {
            Some((path, what)) => problem(
                format!(
                    "the corpus glob `{pattern}` matches no regular file; `{}` matches it but \
                     is {what}, which a corpus cannot be read from",
                    path.display()
                ),
                "point the glob at regular text files (a link to one is fine)".to_owned(),
            ),
            None => problem(
            format!("no file matches the corpus glob `{pattern}`"),
            format!(
                "check the pattern (relative to {}; directories do not count: name the files, e.g. \"data/*.txt\"), or use the built-in corpus Sotu",
                current_dir()
            ),
            ),
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_says_why_links_included() {
        let dir = std::env::temp_dir().join(format!("rankprobe-inputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let why = |name: &str| {
            let path = dir.join(name).display().to_string();
            why_not_a_file(&path, &std::fs::metadata(&path))
        };
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("b"), dir.join("a")).unwrap();
            std::os::unix::fs::symlink(dir.join("a"), dir.join("b")).unwrap();
            std::os::unix::fs::symlink(dir.join("gone"), dir.join("dangling")).unwrap();
            assert_eq!(why("a"), "is a symbolic-link loop");
            assert!(
                why("dangling").starts_with("is a symbolic link to nothing"),
                "{}",
                why("dangling")
            );
        }
        assert_eq!(why("missing"), "does not exist");
        assert_eq!(why(""), "is not a regular file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

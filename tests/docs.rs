//! The manual (README.md and docs/*.md) stays true: every relative link leads to a file
//! that exists and, with `#anchor`, to one of its headings; every `rankprobe` command it
//! names is one the binary has; every study, script, test, source or asset file it names
//! exists.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{rankprobe, root};

fn manual() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The lines of `text` outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    prose(&text)
        .into_iter()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

/// Every `](target)` of a markdown link in `line`.
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        targets.push(after[..end].to_owned());
        rest = &after[end..];
    }
    targets
}

#[test]
fn every_link_of_the_manual_leads_somewhere() {
    let mut checked = 0;
    for file in manual() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in prose(&text).into_iter().enumerate() {
            for target in link_targets(line) {
                if target.starts_with("http://") || target.starts_with("https://") {
                    continue;
                }
                let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
                let linked = if path.is_empty() {
                    file.clone()
                } else {
                    file.parent().unwrap().join(path)
                };
                let at = format!("{}: line {} links {target}", file.display(), n + 1);
                assert!(linked.exists(), "{at}: no such file");
                if !anchor.is_empty() {
                    assert!(anchors(&linked).contains(anchor), "{at}: no such heading");
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} links: is the manual's structure gone?"
    );
}

#[test]
fn every_command_and_file_the_manual_names_exists() {
    let help = rankprobe(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let commands: BTreeSet<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        commands.contains("sweep") && commands.contains("report"),
        "{help}"
    );
    let named_file = |word: &str| {
        let word = word.trim_matches(|c: char| "`'\"(),;:.[]<>".contains(c));
        [
            "experiments/",
            "scripts/",
            "tests/",
            "src/",
            "assets/",
            "kernels/",
            "docs/",
        ]
        .iter()
        .any(|dir| word.starts_with(dir))
            && !word.contains(['*', '<', '{', '$'])
            && Path::new(word).extension().is_some()
    };
    for file in manual() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut fenced = false;
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
            }
            let at = format!("{}: line {}", file.display(), n + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            for (i, pair) in words.windows(2).enumerate() {
                let command = pair[1].trim_matches('`');
                // A command as code: a code block's line that starts with it, inline as
                // `rankprobe ...`, or after `cargo run --release --`.
                let invoked = pair[0] == "`rankprobe"
                    || (fenced && i == 0 && pair[0] == "rankprobe")
                    || (pair[0] == "--" && line.contains("cargo run"));
                if invoked && command.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                    assert!(
                        command.is_empty() || commands.contains(command),
                        "{at}: `rankprobe {command}` is not a command ({commands:?})"
                    );
                }
            }
            let tokens = line.split(|c: char| c.is_whitespace() || "[]()`'\",;|".contains(c));
            for word in tokens.filter(|w| named_file(w)) {
                let word = word.trim_matches(|c: char| "`'\"(),;:.[]<>".contains(c));
                // `file:line` and `file.md#anchor` name the file (links' anchors are
                // checked with the links).
                let path = word.split([':', '#']).next().unwrap();
                assert!(root().join(path).exists(), "{at}: {path} does not exist");
            }
        }
    }
}

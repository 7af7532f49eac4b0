//! The regular files a corpus glob names, found within bounds: a pattern such as
//! `/**/*` would otherwise walk the whole filesystem before anything is reported.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// At most this many files per corpus (far more than any real corpus of text files).
pub const MAX_FILES: usize = 100_000;
/// Expanding a glob stops with an error after this long.
pub const MAX_WALK: Duration = Duration::from_secs(10);

/// Why a glob gave no usable file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobError {
    /// Not a glob pattern at all.
    Pattern(String),
    /// More than `MAX_FILES` files, or more than `MAX_WALK` walking the directories.
    TooBroad(String),
}

impl std::fmt::Display for GlobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlobError::Pattern(why) | GlobError::TooBroad(why) => f.write_str(why),
        }
    }
}

/// The regular files matching `pattern`, sorted; directories and unreadable entries are
/// left out. With `first_only`, stops at the first file (enough to check a corpus exists).
pub fn glob_files(pattern: &str, first_only: bool) -> Result<Vec<PathBuf>, GlobError> {
    glob_files_within(pattern, first_only, MAX_FILES, MAX_WALK)
}

/// When `pattern` matches no regular file: the first match that is something a corpus
/// cannot be read from (a FIFO, a device, a socket; links followed), and what it is.
/// Directories are not named: a glob over a tree matches many, and none is a file.
pub fn first_unreadable_match(pattern: &str) -> Option<(PathBuf, &'static str)> {
    let deadline = Instant::now() + Duration::from_secs(1);
    for path in glob::glob(pattern).ok()?.filter_map(Result::ok) {
        if Instant::now() > deadline {
            return None;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if let Some(what) = crate::regular_file::special_kind(&meta.file_type()) {
            return Some((path, what));
        }
    }
    None
}

fn glob_files_within(
    pattern: &str,
    first_only: bool,
    max_files: usize,
    max_walk: Duration,
) -> Result<Vec<PathBuf>, GlobError> {
    let paths = glob::glob(pattern)
        .map_err(|e| GlobError::Pattern(format!("`{pattern}` is not a valid glob: {e}")))?;
    // `glob` walks lazily and yields only matches, so a pattern that matches little
    // under a huge tree runs long without yielding: the walk runs on its own thread and
    // is abandoned at the deadline (the process ends soon after an error anyway).
    let (sender, receiver) = std::sync::mpsc::sync_channel(64);
    std::thread::spawn(move || {
        for path in paths.filter_map(Result::ok).filter(|p| p.is_file()) {
            if sender.send(path).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + max_walk;
    let mut files = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(path) => {
                files.push(path);
                if first_only {
                    break;
                }
                if files.len() > max_files {
                    return Err(GlobError::TooBroad(format!(
                        "the glob `{pattern}` matches more than {max_files} files; name the corpus's files more narrowly"
                    )));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                return Err(GlobError::TooBroad(format!(
                    "expanding the glob `{pattern}` took more than {} s; name the corpus's directory more narrowly",
                    max_walk.as_secs()
                )))
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_only_sorted_and_bounded() {
        let dir = std::env::temp_dir().join(format!("rankprobe-glob-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub.txt")).unwrap();
        for name in ["b.txt", "a.txt", "c.txt"] {
            std::fs::write(dir.join(name), "x").unwrap();
        }
        let pattern = format!("{}/*.txt", dir.display());
        let files = glob_files(&pattern, false).unwrap();
        let names: Vec<_> = files.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(
            names,
            ["a.txt", "b.txt", "c.txt"],
            "the directory sub.txt is left out"
        );
        assert_eq!(glob_files(&pattern, true).unwrap().len(), 1);
        let too_many = glob_files_within(&pattern, false, 2, MAX_WALK).unwrap_err();
        assert!(
            too_many.to_string().contains("more than 2 files"),
            "{too_many}"
        );
        // A walk over the whole filesystem that matches nothing is abandoned at the deadline.
        let nothing = "/**/rankprobe-no-such-file-anywhere";
        let slow = glob_files_within(nothing, false, 10, Duration::ZERO).unwrap_err();
        assert!(slow.to_string().contains("took more than"), "{slow}");
        let only_dir = format!("{}/sub.txt", dir.display());
        assert!(glob_files(&only_dir, false).unwrap().is_empty());
        assert!(matches!(glob_files("[", false), Err(GlobError::Pattern(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

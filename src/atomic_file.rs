//! Writing files so that readers see the old file or the whole new one, never a part, and
//! never through a symbolic link someone planted where a file or directory of ours goes.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Writes `contents` to `path` so that readers see the old file or the whole new one,
/// never a part: write a temporary sibling, flush it to disk, rename it into place. The
/// temporary file is created new (`O_EXCL`: a link at its name is not followed), and the
/// rename replaces whatever is at `path`, a link included, never the link's target.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    // A temporary file of an earlier process with our pid (or anything planted there).
    match fs::remove_file(&temp) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Creates `dir` and its parents below `root` (which must exist or is created as is: the
/// user may link it anywhere), refusing any of them that is a symbolic link or not a
/// directory: files written below a link would land outside the tree.
pub fn create_dir_below(root: &Path, dir: &Path) -> io::Result<()> {
    let below = dir.strip_prefix(root).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not inside {}", dir.display(), root.display()),
        )
    })?;
    fs::create_dir_all(root)?;
    let mut at = root.to_path_buf();
    for part in below.components() {
        at.push(part);
        if is_real_dir(&at)? {
            continue;
        }
        match fs::create_dir(&at) {
            // Made meanwhile by another process: it must be a directory too.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                if !is_real_dir(&at)? {
                    return Err(err);
                }
            }
            other => other?,
        }
    }
    Ok(())
}

/// Whether `path` is a directory (not a link to one); `false` when nothing is there. An
/// error names a link or other file in its place: nothing may be written below it.
pub fn is_real_dir(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(meta) => Err(not_a_directory(path, meta.file_type().is_symlink())),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

fn not_a_directory(path: &Path, link: bool) -> io::Error {
    let what = if link {
        "a symbolic link; rankprobe writes nothing through a link inside a results tree"
    } else {
        "not a directory"
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is {what}: move it away (or remove it) and run again",
            path.display()
        ),
    )
}

/// Removes the temporary files a killed writer left in `dir` (`.NAME.tmp-PID`). Call it
/// only while holding the directory's lock, when no other process writes there.
pub fn remove_stale_temps(dir: &Path) -> io::Result<Vec<String>> {
    remove_temps_where(dir, |_| true)
}

/// Removes the temporary files a killed writer of `path` left beside it (in a directory
/// other writers share: only while holding the lock of `path`'s owner).
pub fn remove_stale_temps_of(path: &Path) -> io::Result<Vec<String>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let prefix = format!(
        ".{}.tmp-",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    match remove_temps_where(dir, |name| name.starts_with(&prefix)) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        other => other,
    }
}

fn remove_temps_where(dir: &Path, keep: impl Fn(&str) -> bool) -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp-") && keep(&name) {
            // Removing a link removes the link, never its target.
            fs::remove_file(dir.join(&name))?;
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("rankprobe-store-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.ron");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "second");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.ron")]);
        // A writer killed mid-write leaves its temporary file; the next owner removes it.
        fs::write(dir.join(".x.ron.tmp-99999"), b"half").unwrap();
        assert_eq!(remove_stale_temps(&dir).unwrap(), vec![".x.ron.tmp-99999"]);
        // In a shared directory only the named file's temporaries go.
        fs::write(dir.join(".x.ron.tmp-99999"), b"half").unwrap();
        fs::write(dir.join(".y.ron.tmp-99999"), b"other").unwrap();
        assert_eq!(
            remove_stale_temps_of(&path).unwrap(),
            vec![".x.ron.tmp-99999"]
        );
        fs::remove_file(dir.join(".y.ron.tmp-99999")).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "second");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn links_at_the_target_or_the_temporary_name_are_replaced_not_followed() {
        let dir = std::env::temp_dir().join(format!("rankprobe-links-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let outside = dir.join("outside");
        fs::write(&outside, b"keep").unwrap();
        let path = dir.join("x.ron");
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let temp = dir.join(format!(".x.ron.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&outside, &temp).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(fs::read(&path).unwrap(), b"new");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn directories_below_the_root_are_created_and_links_among_them_refused() {
        let dir = std::env::temp_dir().join(format!("rankprobe-dirs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let root = dir.join("results");
        create_dir_below(&root, &root.join("study/runs/a")).unwrap();
        assert!(root.join("study/runs/a").is_dir());
        fs::create_dir_all(dir.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere"), root.join("study/report")).unwrap();
        let err = create_dir_below(&root, &root.join("study/report")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        fs::write(root.join("study/metrics"), b"").unwrap();
        let err = create_dir_below(&root, &root.join("study/metrics")).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        // The root itself may be a link (results on another disk).
        std::os::unix::fs::symlink(&root, dir.join("linked")).unwrap();
        create_dir_below(&dir.join("linked"), &dir.join("linked/study/probes")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}

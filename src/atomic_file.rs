//! Writing files so that readers see the old file or the whole new one, never a part.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Writes `contents` to `path` so that readers see the old file or the whole new one,
/// never a part: write a temporary sibling, flush it to disk, rename it into place.
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
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
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
}

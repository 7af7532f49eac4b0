//! Reading files rankprobe did not just write (studies, manifests, checkpoints, tables,
//! corpora, tokenizers): only regular files. A FIFO would block the read forever, a
//! device could stream without end, and a directory fails with an obscure message; each
//! is refused, saying what the path is. A link to a regular file is read (users link
//! their corpora); opening never blocks, whatever the path is.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// `O_NONBLOCK` on Linux: opening a FIFO returns at once instead of waiting for a writer
/// (on a regular file the flag changes nothing).
const O_NONBLOCK: i32 = 0o4000;

/// `path` opened for reading, if it is a regular file (checked on the open file, so
/// nothing can swap it in between).
pub fn open(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let what = if kind.is_dir() {
        "a directory"
    } else {
        special_kind(&kind).unwrap_or("not a regular file")
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is {what}, not a regular file", path.display()),
    ))
}

/// What a FIFO, device or socket is, in words; None for anything else.
pub fn special_kind(kind: &std::fs::FileType) -> Option<&'static str> {
    if kind.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        None
    }
}

/// The bytes of the regular file at `path`.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The text of the regular file at `path` (UTF-8).
pub fn read_to_string(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn fifos_directories_and_devices_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("rankprobe-regular-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("pipe");
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let err = read(&fifo).unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");
        let err = read(&dir).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
        let err = read(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(err.contains("a device"), "{err}");
        let file = dir.join("ok.txt");
        std::fs::write(&file, "text").unwrap();
        std::os::unix::fs::symlink(&file, dir.join("link")).unwrap();
        assert_eq!(read_to_string(&dir.join("link")).unwrap(), "text");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

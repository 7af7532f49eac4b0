//! A lock per run directory, so that two sweeps on one results directory never train the
//! same run at once. The lock file holds the owner's host and pid; a lock whose process
//! is gone (same host, no such pid) is stale and taken over.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".lock";

/// Held while a run trains; removed on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
}

fn host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn alive(holder: &Holder) -> bool {
    // On another host the process cannot be checked: assume it is alive.
    holder.host != host() || Path::new(&format!("/proc/{}", holder.pid)).exists()
}

fn read_holder(path: &Path) -> Option<Holder> {
    let text = fs::read_to_string(path).ok()?;
    let (host, pid) = text.trim().rsplit_once(' ')?;
    Some(Holder {
        host: host.to_owned(),
        pid: pid.parse().ok()?,
    })
}

/// Takes the lock of `run_dir`, or says who holds it.
pub fn try_lock(run_dir: &Path) -> std::io::Result<Result<RunLock, Holder>> {
    let path = run_dir.join(LOCK_FILE);
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                writeln!(file, "{} {}", host(), std::process::id())?;
                file.sync_all()?;
                return Ok(Ok(RunLock { path }));
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => match read_holder(&path)
            {
                Some(holder) if alive(&holder) => return Ok(Err(holder)),
                // Stale (or half-written by a process that died): take it over.
                _ => {
                    let _ = fs::remove_file(&path);
                }
            },
            Err(err) => return Err(err),
        }
    }
    Ok(Err(read_holder(&path).unwrap_or(Holder {
        host: "unknown".to_owned(),
        pid: 0,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_stale_lock_is_taken_over_and_drop_releases() {
        let dir = std::env::temp_dir().join(format!("rankprobe-lock-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let first = try_lock(&dir).unwrap().unwrap();
        let holder = try_lock(&dir).unwrap().unwrap_err();
        assert_eq!(holder.pid, std::process::id());
        drop(first);
        assert!(!dir.join(LOCK_FILE).exists());
        // A lock left by a process that no longer exists.
        fs::write(dir.join(LOCK_FILE), format!("{} 4000000000\n", host())).unwrap();
        let taken = try_lock(&dir).unwrap();
        assert!(taken.is_ok());
        drop(taken);
        fs::remove_dir_all(&dir).unwrap();
    }
}

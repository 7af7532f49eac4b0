//! A lock per run directory, so that two sweeps on one results directory never train the
//! same run at once. The lock is a lease: the file holds the owner's host and pid, and
//! the owner renews it (sets its modification time) every `RENEW_EVERY` while it holds
//! it. A lock whose lease has not been renewed for `LEASE` is taken over, whichever host
//! wrote it (a node that crashed cannot be asked about its processes); on this host a
//! lock whose process is gone is taken over at once.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

pub const LOCK_FILE: &str = ".lock";

/// How long a lock stays valid without being renewed. Well above `RENEW_EVERY` and above
/// the clock differences of a cluster's nodes (the file server stamps the time).
pub const LEASE: Duration = Duration::from_secs(300);

/// How often a holder renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(60);

/// How far in the future a renewal may be stamped and still count (another node's clock
/// ahead of ours). A lock stamped further ahead was not renewed by any clock a cluster
/// keeps in step (NTP holds nodes within seconds): it counts as expired, so a clock set
/// wrong once cannot hold a run forever.
pub const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(300);

/// Held while a run trains: renewed by a thread of its own, removed on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<JoinHandle<()>>,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        // Only our own lock: one taken over while this process stalled is the new owner's.
        if read_holder(&self.path).is_some_and(|holder| holder == me()) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
}

/// This machine's host name, as locks (and other records of "where") name it.
pub fn host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn me() -> Holder {
    Holder {
        host: host(),
        pid: std::process::id(),
    }
}

/// Whether the lock at `path`, held by `holder`, is still in force.
fn in_force(path: &Path, holder: &Holder, lease: Duration) -> bool {
    if holder.host == host() && !Path::new(&format!("/proc/{}", holder.pid)).exists() {
        return false;
    }
    let renewed = fs::symlink_metadata(path).and_then(|m| m.modified());
    match renewed.map(|at| SystemTime::now().duration_since(at)) {
        Ok(Ok(age)) => age < lease,
        // Renewed "in the future" (another node's clock ahead of ours): in force while
        // within what clock differences explain.
        Ok(Err(ahead)) => ahead.duration() <= MAX_CLOCK_AHEAD,
        Err(_) => false,
    }
}

fn read_holder(path: &Path) -> Option<Holder> {
    // A lock is a small regular file; anything else (a link, a FIFO) is not a lock.
    if !fs::symlink_metadata(path).ok()?.is_file() {
        return None;
    }
    let text = fs::read_to_string(path).ok()?;
    let (host, pid) = text.trim().rsplit_once(' ')?;
    Some(Holder {
        host: host.to_owned(),
        pid: pid.parse().ok()?,
    })
}

/// A directory, FIFO, socket or device at the lock's path is damage this process must
/// not guess about (it cannot remove it, and no holder wrote it): an error naming it.
/// A regular file or a symbolic link (removed as a link) is a lock's business.
fn refuse_non_file(path: &Path) -> std::io::Result<()> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    let kind = meta.file_type();
    if kind.is_file() || kind.is_symlink() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    Err(std::io::Error::other(format!(
        "the run's lock path {} is {what}, not a lock file written by rankprobe; \
         remove it (nothing in it is a result) and run the sweep again",
        path.display()
    )))
}

/// Takes the lock of `run_dir`, or says who holds it.
pub fn try_lock(run_dir: &Path) -> std::io::Result<Result<RunLock, Holder>> {
    try_lock_with(run_dir, LEASE, RENEW_EVERY)
}

/// `try_lock` with a given lease and renewal interval (shorter in tests).
pub fn try_lock_with(
    run_dir: &Path,
    lease: Duration,
    renew_every: Duration,
) -> std::io::Result<Result<RunLock, Holder>> {
    let path = run_dir.join(LOCK_FILE);
    refuse_non_file(&path)?;
    for _ in 0..2 {
        // `create_new` fails on any existing name, a planted link included: it never
        // writes through one.
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let holder = me();
                writeln!(file, "{} {}", holder.host, holder.pid)?;
                file.sync_all()?;
                return Ok(Ok(RunLock::hold(path, renew_every)));
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => match read_holder(&path)
            {
                Some(holder) if in_force(&path, &holder, lease) => return Ok(Err(holder)),
                // Expired, its process gone, half-written by a process that died, or not
                // a lock at all: take it over (removing a link removes the link only).
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

impl RunLock {
    fn hold(path: PathBuf, renew_every: Duration) -> RunLock {
        let (stop, stopped) = mpsc::channel::<()>();
        let renewed = path.clone();
        let renewer = std::thread::Builder::new()
            .name("rankprobe-lock".to_owned())
            .spawn(move || loop {
                match stopped.recv_timeout(renew_every) {
                    Err(RecvTimeoutError::Timeout) => renew(&renewed),
                    _ => return,
                }
            })
            .ok();
        RunLock {
            path,
            stop: Some(stop),
            renewer,
        }
    }
}

/// Sets the lock's modification time to now, if the lock is still ours.
fn renew(path: &Path) {
    if read_holder(path).is_some_and(|holder| holder == me()) {
        if let Ok(file) = OpenOptions::new().append(true).open(path) {
            let _ = file.set_modified(SystemTime::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rankprobe-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn age(path: &Path, by: Duration) {
        let file = OpenOptions::new().append(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn second_lock_fails_stale_lock_is_taken_over_and_drop_releases() {
        let dir = temp_dir("lock");
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

    #[test]
    fn another_hosts_lock_holds_while_renewed_and_is_taken_over_when_its_lease_expires() {
        let dir = temp_dir("lease");
        let path = dir.join(LOCK_FILE);
        fs::write(&path, "node-that-crashed.cluster 4242\n").unwrap();
        let holder = try_lock(&dir).unwrap().unwrap_err();
        assert_eq!(holder.host, "node-that-crashed.cluster");
        age(&path, LEASE - Duration::from_secs(30));
        assert!(try_lock(&dir).unwrap().is_err(), "a lease still running");
        age(&path, LEASE + Duration::from_secs(1));
        let lock = try_lock(&dir)
            .unwrap()
            .expect("an expired lease is taken over");
        assert_eq!(read_holder(&path), Some(me()));
        drop(lock);
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_holder_renews_its_lease_and_leaves_a_lock_taken_over_from_it() {
        let dir = temp_dir("renew");
        let path = dir.join(LOCK_FILE);
        let lock = try_lock_with(&dir, LEASE, Duration::from_millis(20))
            .unwrap()
            .unwrap();
        age(&path, Duration::from_secs(3600));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !in_force(&path, &me(), LEASE) {
            assert!(
                std::time::Instant::now() < deadline,
                "the lease was never renewed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Taken over by another host while this process stalled: drop leaves it alone.
        fs::write(&path, "other-node 7\n").unwrap();
        drop(lock);
        assert_eq!(fs::read_to_string(&path).unwrap(), "other-node 7\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_renewal_stamped_far_in_the_future_is_no_renewal() {
        let dir = temp_dir("lock-future");
        let path = dir.join(LOCK_FILE);
        fs::write(&path, "node-ahead 99\n").unwrap();
        let ahead = |by: Duration| {
            let file = OpenOptions::new().append(true).open(&path).unwrap();
            file.set_modified(SystemTime::now() + by).unwrap();
        };
        ahead(Duration::from_secs(60));
        assert!(try_lock(&dir).unwrap().is_err(), "a clock a minute ahead");
        ahead(MAX_CLOCK_AHEAD + Duration::from_secs(3600));
        let lock = try_lock(&dir).unwrap().expect("an hour past the allowance");
        drop(lock);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_at_the_lock_path_is_an_error_not_a_holder() {
        let dir = temp_dir("lock-dir");
        fs::create_dir_all(dir.join(LOCK_FILE)).unwrap();
        let err = try_lock(&dir).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_link_planted_as_the_lock_is_never_written_through() {
        let dir = temp_dir("lock-link");
        let outside = dir.join("outside.txt");
        fs::write(&outside, "keep").unwrap();
        let run = dir.join("run");
        fs::create_dir_all(&run).unwrap();
        std::os::unix::fs::symlink(&outside, run.join(LOCK_FILE)).unwrap();
        let lock = try_lock(&run).unwrap().expect("a link is not a lock");
        drop(lock);
        assert_eq!(fs::read_to_string(&outside).unwrap(), "keep");
        fs::remove_dir_all(&dir).unwrap();
    }
}

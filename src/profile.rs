//! An opt-in wall-clock profile of named phases (`rankprobe bench --profile`): the
//! training loop's phases and each fused CPU operation's forward and backward. Off, a
//! span costs one atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// (phase, seconds, calls), in first-seen order.
static TOTALS: Mutex<Vec<(&'static str, f64, u64)>> = Mutex::new(Vec::new());

/// Starts (or stops) recording and forgets what was recorded.
pub fn enable(on: bool) {
    TOTALS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    ENABLED.store(on, Ordering::Relaxed);
}

/// Times the phase `name` until the returned guard drops (nothing when disabled).
pub fn span(name: &'static str) -> Option<Span> {
    ENABLED.load(Ordering::Relaxed).then(|| Span {
        name,
        started: Instant::now(),
    })
}

pub struct Span {
    name: &'static str,
    started: Instant,
}

impl Drop for Span {
    fn drop(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64();
        let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
        match totals.iter_mut().find(|(name, _, _)| *name == self.name) {
            Some(entry) => {
                entry.1 += seconds;
                entry.2 += 1;
            }
            None => totals.push((self.name, seconds, 1)),
        }
    }
}

/// What was recorded since `enable(true)`: (phase, seconds, calls).
pub fn totals() -> Vec<(&'static str, f64, u64)> {
    TOTALS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_add_up_per_name_only_while_enabled() {
        // Other tests run fused operations (which open spans) in parallel: look only at
        // this test's own phase names.
        let mine = |totals: Vec<(&'static str, f64, u64)>| -> Vec<(&'static str, u64)> {
            totals
                .into_iter()
                .filter(|(name, _, _)| name.starts_with("profile test"))
                .map(|(name, _, calls)| (name, calls))
                .collect()
        };
        drop(span("profile test off"));
        enable(true);
        for _ in 0..3 {
            let _t = span("profile test phase");
        }
        drop(span("profile test other"));
        let recorded = mine(totals());
        enable(false);
        assert_eq!(
            recorded,
            [("profile test phase", 3), ("profile test other", 1)]
        );
        drop(span("profile test after"));
        assert!(mine(totals()).is_empty());
    }
}

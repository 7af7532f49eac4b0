//! A request to stop, set by Ctrl-C / SIGTERM and read by the training loop between steps.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks running training to stop after its current step.
pub fn request_stop() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

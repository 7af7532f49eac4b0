//! Running code that may panic on damaged input (a dependency's reader) so that the
//! panic becomes an error value and its message stays off the terminal.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// Panics caught by `quietly` in progress: while nonzero, the panic hook stays silent
/// (a global count, since the reader may panic on one of its worker threads).
static QUIET_PANICS: AtomicUsize = AtomicUsize::new(0);

/// Runs `f`, turning a panic into an `Err` without printing it.
pub fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET_PANICS.load(Ordering::SeqCst) == 0 {
                default(info);
            }
        }));
    });
    QUIET_PANICS.fetch_add(1, Ordering::SeqCst);
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET_PANICS.fetch_sub(1, Ordering::SeqCst);
    result
}

/// A caught panic's message.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

//! Ctrl-C and SIGTERM during a sweep: the run in progress stops after its current step,
//! writes what it has and is marked interrupted (`train::interrupt`). A second Ctrl-C
//! exits at once (every file is written atomically, so none is left half-written);
//! further SIGTERMs change nothing.

/// Installs the handler once per process.
pub fn install_interrupt_handler() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            return;
        };
        std::thread::spawn(move || {
            let mut interrupts = 0;
            for signal in signals.forever() {
                // A scheduler may send SIGTERM more than once (Slurm does): each is the
                // same request. Only a second Ctrl-C means "exit now".
                if signal == SIGINT {
                    interrupts += 1;
                    if interrupts > 1 {
                        eprintln!("second interrupt: exiting now");
                        std::process::exit(130);
                    }
                }
                if !crate::train::interrupt::stop_requested() {
                    let what = if signal == SIGINT {
                        "interrupt"
                    } else {
                        "SIGTERM"
                    };
                    eprintln!(
                        "{what}: stopping after the current step (Ctrl-C again to exit at once)"
                    );
                }
                crate::train::interrupt::request_stop();
            }
        });
    });
}

//! The last line of defence of a one-shot check: a thread that ends the
//! process shortly after the deadline, whatever the checks are stuck in (a
//! UNIX connect into a full backlog, a file on slow storage). The resident
//! mode never uses it: there every check is bounded by its own deadline.

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long after the deadline the watchdog ends the process. Short enough
/// that the process is gone by deadline + 100 ms, long enough that the main
/// thread normally reports the timeout itself, naming the phase.
pub const GRACE: Duration = Duration::from_millis(40);

/// A started watchdog; dropping it stops it.
pub struct Watchdog {
    _stop: mpsc::Sender<()>,
}

/// At `fire_at` calls `on_expiry` (which reports, and returns the exit
/// code) and ends the process with that code. If the thread cannot be
/// started the check goes on without it: every socket operation is bounded
/// by the deadline anyway.
pub fn start(
    fire_at: Instant,
    on_expiry: impl FnOnce() -> Option<u8> + Send + 'static,
) -> Watchdog {
    let (stop, stopped) = mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            let left = fire_at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if let Some(code) = on_expiry() {
                    std::process::exit(i32::from(code));
                }
                return;
            }
            match stopped.recv_timeout(left) {
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                // Stopped: the check ended in time.
                _ => return,
            }
        });
    if let Err(e) = spawned {
        log::warn!("watchdog thread not started: {e}");
    }
    Watchdog { _stop: stop }
}

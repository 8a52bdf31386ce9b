//! One deadline for the whole check.
//!
//! Per-operation timeouts are not a deadline: a server that sends one byte
//! every 100 ms satisfies every read timeout forever. So every blocking
//! operation asks [`Deadline::remaining`] first and gets only what is left.

use std::time::{Duration, Instant};

use crate::outcome::{Failure, Phase};

#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    start: Instant,
    end: Instant,
}

impl Deadline {
    /// A deadline `timeout` after `start`; a timeout too large for the
    /// clock is as good as none.
    pub fn starting_at(start: Instant, timeout: Duration) -> Self {
        Deadline {
            start,
            end: start
                .checked_add(timeout)
                .unwrap_or_else(|| far_future(start)),
        }
    }

    /// The time left for an operation of `phase`, or the timeout failure
    /// naming that phase when nothing is left.
    pub fn remaining(&self, phase: Phase) -> Result<Duration, Failure> {
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(Failure::Timeout(phase))
        } else {
            Ok(left)
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn end(&self) -> Instant {
        self.end
    }
}

/// The latest instant the clock can hold after `start`, within a century.
pub fn far_future(start: Instant) -> Instant {
    let mut step = Duration::from_secs(100 * 365 * 86_400);
    let mut at = start;
    while !step.is_zero() {
        if let Some(later) = at.checked_add(step) {
            at = later;
        }
        step /= 2;
    }
    at
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn remaining_reports_the_phase_once_expired() {
        let past = Instant::now() - Duration::from_secs(1);
        let d = Deadline::starting_at(past, Duration::from_millis(10));
        assert_eq!(
            d.remaining(Phase::Receive),
            Err(Failure::Timeout(Phase::Receive))
        );
        let d = Deadline::starting_at(Instant::now(), Duration::from_secs(10));
        assert!(d.remaining(Phase::Connect).is_ok());
    }

    #[test]
    fn a_huge_timeout_does_not_overflow() {
        let d = Deadline::starting_at(Instant::now(), Duration::MAX);
        assert!(d.remaining(Phase::Connect).is_ok());
        assert!(d.end() > Instant::now());
    }
}

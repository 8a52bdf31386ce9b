//! A target's health as the resident mode reports it, counted over its
//! results the way HAProxy counts its own checks: `fall` failures in a row
//! take an up target down, `rise` passes in a row bring it back. Pure: the
//! checker feeds it results, and asks it when to check next.

use std::time::Duration;

use crate::args::send_state::state_word;
use crate::args::target::Cadence;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No result yet.
    Pending,
    Up,
    Down,
}

impl Health {
    pub fn word(self) -> &'static str {
        match self {
            Health::Pending => "PENDING",
            Health::Up => "UP",
            Health::Down => "DOWN",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracker {
    pub health: Health,
    /// Results in a row that disagree with `health`.
    pub against: u32,
}

impl Default for Tracker {
    fn default() -> Tracker {
        Tracker {
            health: Health::Pending,
            against: 0,
        }
    }
}

impl Tracker {
    /// Records a result; the new health when it changed. The first result
    /// decides at once: a server broken at start-up is down after one
    /// check, not after `fall`.
    pub fn record(&mut self, healthy: bool, cadence: &Cadence) -> Option<Health> {
        let (agrees, needed) = match self.health {
            Health::Pending => {
                self.health = if healthy { Health::Up } else { Health::Down };
                return Some(self.health);
            }
            Health::Up => (healthy, cadence.fall),
            Health::Down => (!healthy, cadence.rise),
        };
        if agrees {
            self.against = 0;
            return None;
        }
        self.against = self.against.saturating_add(1);
        if self.against < needed.max(1) {
            return None;
        }
        self.against = 0;
        self.health = match self.health {
            Health::Up => Health::Down,
            _ => Health::Up,
        };
        Some(self.health)
    }

    /// The state word HAProxy's `http-check send-state` would send for a
    /// server whose checks had these results (`UP`, `UP 2/3`, `DOWN 1/2`,
    /// `DOWN`): HAProxy's health counter runs from 0 (down) to
    /// `rise + fall - 1` (up), a failure taking one off an up server, a
    /// pass adding one to a down one. `None` before the first result.
    pub fn state_word(&self, cadence: &Cadence) -> Option<String> {
        let (rise, fall) = (u64::from(cadence.rise), u64::from(cadence.fall));
        let against = u64::from(self.against);
        let (running, health) = match self.health {
            Health::Pending => return None,
            Health::Up => (2, (rise + fall).saturating_sub(1).saturating_sub(against)),
            Health::Down => (0, against),
        };
        Some(state_word(running, true, health, rise, fall))
    }

    /// How long until the next check, as HAProxy spaces its own: `inter`
    /// when steady, `fastinter` while the state is changing, `downinter`
    /// while down.
    pub fn interval(&self, cadence: &Cadence) -> Duration {
        match (self.health, self.against) {
            (_, n) if n > 0 => cadence.fastinter,
            (Health::Down, _) => cadence.downinter,
            _ => cadence.inter,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn cadence() -> Cadence {
        Cadence {
            inter: Duration::from_secs(2),
            fastinter: Duration::from_millis(500),
            downinter: Duration::from_secs(10),
            rise: 2,
            fall: 3,
        }
    }

    #[test]
    fn the_first_result_decides_then_rise_and_fall_count() {
        let c = cadence();
        let mut t = Tracker::default();
        assert_eq!(t.interval(&c), c.inter);
        assert_eq!(t.record(true, &c), Some(Health::Up));
        assert_eq!(t.record(false, &c), None);
        assert_eq!(t.interval(&c), c.fastinter);
        assert_eq!(t.record(true, &c), None, "a pass resets the count");
        assert_eq!(t.interval(&c), c.inter);
        assert_eq!(t.record(false, &c), None);
        assert_eq!(t.record(false, &c), None);
        assert_eq!(t.record(false, &c), Some(Health::Down));
        assert_eq!(t.interval(&c), c.downinter);
        assert_eq!(t.record(true, &c), None);
        assert_eq!(t.interval(&c), c.fastinter);
        assert_eq!(t.record(true, &c), Some(Health::Up));
        let mut broken = Tracker::default();
        assert_eq!(broken.record(false, &c), Some(Health::Down));
    }

    #[test]
    fn state_words_as_haproxy_counts() {
        let c = cadence();
        let mut t = Tracker::default();
        assert_eq!(t.state_word(&c), None);
        let mut words = Vec::new();
        for healthy in [true, false, false, false, true, true] {
            t.record(healthy, &c);
            words.push(t.state_word(&c).unwrap());
        }
        assert_eq!(words, ["UP", "UP 2/3", "UP 1/3", "DOWN", "DOWN 1/2", "UP"]);
    }

    #[test]
    fn rise_and_fall_of_one_flip_at_once() {
        let c = Cadence {
            rise: 1,
            fall: 1,
            ..cadence()
        };
        let mut t = Tracker::default();
        t.record(true, &c);
        assert_eq!(t.record(false, &c), Some(Health::Down));
        assert_eq!(t.record(true, &c), Some(Health::Up));
    }
}

//! The resident mode's table: every target with its settings and its latest
//! state. Checkers write a target's state when its check ends; the agent
//! (and any other reader) copies what it needs under that target's lock,
//! held for microseconds, and never waits on a check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::health::{Health, Tracker};
use crate::args::target::Cadence;
use crate::outcome::{Context, Outcome};
use crate::plan::Settings;

/// One target of the table.
pub struct Target {
    /// What the agent is asked for: `BACKEND/SERVER`, or the target's URL.
    pub key: String,
    pub context: Arc<Context>,
    pub cadence: Cadence,
    pub timeout: Duration,
    /// The check: held by the one checker running it.
    pub settings: Mutex<Settings>,
    pub state: Mutex<State>,
}

/// What the checks of a target came to so far.
#[derive(Debug, Clone)]
pub struct State {
    pub tracker: Tracker,
    pub last: Option<Arc<Outcome>>,
    /// When the last check ended.
    pub last_at: Option<Instant>,
    pub last_wall: Option<SystemTime>,
    /// When the health last changed (or the target was loaded).
    pub since: SystemTime,
    /// Changes of health so far.
    pub changes: u64,
    /// Checks by exit code.
    pub checks: [u64; 7],
    /// The checks' durations, in [`BUCKETS`].
    pub durations: Histogram,
    /// The last [`RECENT`] checks: duration (µs) and whether it passed.
    pub recent: std::collections::VecDeque<(u32, bool)>,
    /// The service's ISTag, and when it last changed.
    pub istag: Option<String>,
    pub istag_since: Option<SystemTime>,
}

/// How many checks the history (the status page's sparkline) keeps.
pub const RECENT: usize = 40;

/// Upper bounds of the duration histogram's buckets, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A histogram of durations: counts per bucket (not cumulative), sum, count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub counts: [u64; BUCKETS.len() + 1],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn add(&mut self, secs: f64) {
        let i = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c = c.saturating_add(1);
        }
        self.sum += secs;
        self.count = self.count.saturating_add(1);
    }
}

impl State {
    fn new() -> State {
        State {
            tracker: Tracker::default(),
            last: None,
            last_at: None,
            last_wall: None,
            since: SystemTime::now(),
            changes: 0,
            checks: [0; 7],
            durations: Histogram::default(),
            recent: std::collections::VecDeque::with_capacity(RECENT),
            istag: None,
            istag_since: None,
        }
    }

    /// Records a check's outcome; the new health when it changed.
    pub fn record(&mut self, outcome: Outcome, cadence: &Cadence) -> Option<Health> {
        let status = outcome.exit_status();
        if let Some(n) = self.checks.get_mut(usize::from(status.code())) {
            *n = n.saturating_add(1);
        }
        let changed = self.tracker.record(outcome.verdict.is_ok(), cadence);
        let now = SystemTime::now();
        let took = outcome.observed.timings.total;
        self.durations.add(took.as_secs_f64());
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.recent.push_back((micros, outcome.verdict.is_ok()));
        if let Some(tag) = &outcome.observed.istag {
            if self.istag.as_ref() != Some(tag) {
                self.istag = Some(tag.clone());
                self.istag_since = Some(now);
            }
        }
        if changed.is_some() {
            self.since = now;
            self.changes = self.changes.saturating_add(1);
        }
        self.last = Some(Arc::new(outcome));
        self.last_at = Some(Instant::now());
        self.last_wall = Some(now);
        changed
    }
}

/// Every target, found by its key.
pub struct Table {
    pub targets: Vec<Target>,
    index: HashMap<String, usize>,
    /// When this set of targets was loaded.
    pub loaded: Instant,
}

impl Table {
    /// A table of `settings`; a target also in `old` (same key) keeps its
    /// state, so a reload does not reset what is known.
    pub fn new(settings: Vec<Settings>, old: Option<&Table>) -> Table {
        let mut index = HashMap::with_capacity(settings.len());
        let mut targets = Vec::with_capacity(settings.len());
        for s in settings {
            let context = s.context.clone();
            let key = key_of(&context);
            if index.contains_key(&key) {
                // The same server twice (a URL given twice): checked once.
                continue;
            }
            let state = old
                .and_then(|t| t.get(&key))
                .map_or_else(State::new, |t| t.lock_state().clone());
            index.insert(key.clone(), targets.len());
            targets.push(Target {
                key,
                cadence: s.cadence,
                timeout: s.timeout,
                context,
                settings: Mutex::new(s),
                state: Mutex::new(state),
            });
        }
        Table {
            targets,
            index,
            loaded: Instant::now(),
        }
    }

    /// The keys of `self` that `old` lacks or checks otherwise (another
    /// address, probe, HAProxy state, cadence or timeout), and those of
    /// `old` that `self` lacks.
    pub fn difference<'a>(&'a self, old: &'a Table) -> (Vec<&'a str>, Vec<&'a str>) {
        let changed = self
            .targets
            .iter()
            .filter(|t| {
                old.get(&t.key).is_none_or(|o| {
                    o.context != t.context || o.cadence != t.cadence || o.timeout != t.timeout
                })
            })
            .map(|t| t.key.as_str())
            .collect();
        let gone = old
            .targets
            .iter()
            .filter(|o| self.get(&o.key).is_none())
            .map(|o| o.key.as_str())
            .collect();
        (changed, gone)
    }

    /// Takes the settings of `new`, a table of the same targets checked the
    /// same way, for each target whose check is not running now (a running
    /// one takes them at the next refresh): what changes between reads
    /// of HAProxy's pool without changing the check, like the counts
    /// `--send-state` sends.
    pub fn renew(&self, new: Table) {
        for t in new.targets {
            let Some(mine) = self.get(&t.key) else {
                continue;
            };
            if let Ok(mut settings) = mine.settings.try_lock() {
                *settings = t
                    .settings
                    .into_inner()
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Target> {
        self.index.get(key).and_then(|&i| self.targets.get(i))
    }

    /// The only target, when there is one: the agent's answer to a
    /// connection that names none.
    pub fn only(&self) -> Option<&Target> {
        match self.targets.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

impl Target {
    pub fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The longest a result may age before the target's checker is taken
    /// to be stuck: `max(rise, fall) + 1` of its longest interval, plus
    /// its timeout.
    pub fn stale_after(&self) -> Duration {
        let c = &self.cadence;
        let longest = c.inter.max(c.fastinter).max(c.downinter);
        longest
            .saturating_mul(c.rise.max(c.fall).saturating_add(1))
            .saturating_add(self.timeout)
    }
}

/// `BACKEND/SERVER` when the target has both names, else its URL.
fn key_of(c: &Context) -> String {
    match (&c.backend, &c.server) {
        (Some(b), Some(s)) => format!("{b}/{s}"),
        _ => c.target.clone(),
    }
}

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

//! Checking every target forever, each on its own schedule: a scheduler
//! thread hands due checks to a pool of worker threads that grows while
//! checks are in flight (a hanging server holds one worker until its own
//! deadline, never another target's turn) and shrinks when they are idle.
//! Start times are spread over each target's interval: never a burst.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::health::Health;
use super::table::Table;
use crate::run;

/// A check to run: the target `index` of `table`, due at `due`.
struct Due {
    table: Arc<Table>,
    index: usize,
    due: Instant,
}

/// How long an idle worker waits for work before it ends.
const IDLE: Duration = Duration::from_secs(30);
/// Checks due within this much of the first are handed out together: one
/// wake-up of the scheduler for several checks (1% of a 1 s interval).
const BATCH: Duration = Duration::from_millis(10);
/// The most checks in flight at once.
const MAX_WORKERS: usize = 512;
/// Idle workers kept for the next checks; one more ends instead of waiting.
const SPARE: usize = 8;

/// What the checker calls with each change of a target's health.
type OnChange = dyn Fn(&super::table::Target, Health) + Send + Sync;

pub struct Checker {
    /// The current table; replaced on reload.
    pub table: Arc<RwLock<Arc<Table>>>,
    /// Checks waiting for their time, by due time (earliest first).
    waiting: Mutex<BinaryHeap<Reverse<(Instant, usize, u64)>>>,
    /// Which table the waiting checks belong to (changes on reload).
    generation: Mutex<(u64, Arc<Table>)>,
    wake: Condvar,
    /// Checks due now, for the workers.
    ready: Mutex<Ready>,
    work: Condvar,
    /// Called with each change of a target's health.
    on_change: Box<OnChange>,
}

struct Ready {
    queue: VecDeque<Due>,
    idle: usize,
    workers: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Checker {
    /// Starts checking `table`'s targets; returns at once.
    pub fn start(
        table: Arc<Table>,
        on_change: impl Fn(&super::table::Target, Health) + Send + Sync + 'static,
    ) -> Arc<Checker> {
        let checker = Arc::new(Checker {
            table: Arc::new(RwLock::new(table.clone())),
            waiting: Mutex::new(BinaryHeap::new()),
            generation: Mutex::new((0, table.clone())),
            wake: Condvar::new(),
            ready: Mutex::new(Ready {
                queue: VecDeque::new(),
                idle: 0,
                workers: 0,
            }),
            work: Condvar::new(),
            on_change: Box::new(on_change),
        });
        checker.schedule_all(&table, 0);
        let scheduler = checker.clone();
        let spawned = std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || scheduler.schedule_loop());
        if let Err(e) = spawned {
            super::log(&format!("cannot start the scheduler: {e}"));
        }
        checker
    }

    /// The table checked now.
    pub fn current(&self) -> Arc<Table> {
        self.table
            .read()
            .map_or_else(|e| e.into_inner().clone(), |t| t.clone())
    }

    /// Replaces the table: its targets are checked from now on (spread over
    /// their intervals), the old table's checks are dropped as they end.
    pub fn replace(&self, table: Arc<Table>) {
        let generation = {
            let mut g = lock(&self.generation);
            g.0 += 1;
            g.1 = table.clone();
            g.0
        };
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = table.clone();
        lock(&self.waiting).clear();
        self.schedule_all(&table, generation);
    }

    /// Every target's first check, spread over its interval.
    fn schedule_all(&self, table: &Table, generation: u64) {
        let now = Instant::now();
        let n = table.targets.len().max(1) as u32;
        let mut waiting = lock(&self.waiting);
        for (i, t) in table.targets.iter().enumerate() {
            let offset = t.cadence.inter / n * u32::try_from(i).unwrap_or(u32::MAX);
            waiting.push(Reverse((now + offset, i, generation)));
        }
        self.wake.notify_all();
    }

    fn schedule_loop(self: Arc<Self>) {
        loop {
            let mut waiting = lock(&self.waiting);
            let now = Instant::now();
            match waiting.peek() {
                Some(Reverse((due, _, _))) if *due <= now => {}
                Some(Reverse((due, _, _))) => {
                    let wait = due.saturating_duration_since(now);
                    let _ = self.wake.wait_timeout(waiting, wait);
                    continue;
                }
                None => {
                    let _ = self.wake.wait_timeout(waiting, Duration::from_secs(1));
                    continue;
                }
            }
            let mut batch = Vec::new();
            while let Some(Reverse((due, _, _))) = waiting.peek() {
                if *due > now + BATCH {
                    break;
                }
                if let Some(Reverse(item)) = waiting.pop() {
                    batch.push(item);
                }
            }
            drop(waiting);
            let (generation, table) = {
                let g = lock(&self.generation);
                (g.0, g.1.clone())
            };
            for (due, index, of) in batch {
                if of == generation {
                    self.dispatch(Due {
                        table: table.clone(),
                        index,
                        due,
                    });
                }
            }
        }
    }

    /// Hands a due check to an idle worker, or to a new one.
    fn dispatch(self: &Arc<Self>, due: Due) {
        let mut ready = lock(&self.ready);
        ready.queue.push_back(due);
        if ready.idle == 0 && ready.workers < MAX_WORKERS {
            ready.workers += 1;
            let checker = self.clone();
            let spawned = std::thread::Builder::new()
                .name("check".into())
                .stack_size(256 * 1024)
                .spawn(move || checker.work_loop());
            if spawned.is_err() {
                // The ones there take it when free.
                ready.workers -= 1;
            }
        }
        self.work.notify_one();
    }

    fn work_loop(self: Arc<Self>) {
        loop {
            let job = {
                let mut ready = lock(&self.ready);
                loop {
                    if let Some(job) = ready.queue.pop_front() {
                        break Some(job);
                    }
                    // Enough are idle already: after a stall (a server
                    // hanging, the machine starved) the pool shrinks back
                    // at once. Waiting for IDLE alone, it never did: the
                    // checks kept waking every idle worker in turn, and
                    // each kept its stack and its share of the allocator.
                    if ready.idle >= SPARE {
                        ready.workers -= 1;
                        break None;
                    }
                    ready.idle += 1;
                    let (r, timeout) = self
                        .work
                        .wait_timeout(ready, IDLE)
                        .unwrap_or_else(PoisonError::into_inner);
                    ready = r;
                    ready.idle -= 1;
                    if timeout.timed_out() && ready.queue.is_empty() {
                        ready.workers -= 1;
                        break None;
                    }
                }
            };
            let Some(job) = job else {
                return;
            };
            self.check(job);
        }
    }

    /// Runs one check, records it, and schedules the target's next one.
    fn check(&self, job: Due) {
        let Some(target) = job.table.targets.get(job.index) else {
            return;
        };
        let outcome = {
            let mut settings = lock(&target.settings);
            // `--send-state` without HAProxy's state (read from its
            // runtime API): this process's own, as HAProxy would say it.
            if settings.context.haproxy_state.is_none() {
                if let Some(mut state) = settings.send_state.clone() {
                    state.state = target.lock_state().tracker.state_word(&target.cadence);
                    settings.probe.renew_send_state(state.header_with(None));
                }
            }
            run::execute(&mut settings, Instant::now())
        };
        let (changed, interval) = {
            let mut state = target.lock_state();
            let changed = state.record(outcome, &target.cadence);
            (changed, state.tracker.interval(&target.cadence))
        };
        if let Some(health) = changed {
            (self.on_change)(target, health);
        }
        // At a fixed rate from when it was due, so a check's own duration
        // does not drift the schedule; never in the past.
        let next = (job.due + interval).max(Instant::now());
        let generation = lock(&self.generation);
        if Arc::ptr_eq(&generation.1, &job.table) {
            let mut waiting = lock(&self.waiting);
            // The scheduler sleeps until the earliest check: wake it only
            // when this one comes before that.
            let sooner = waiting
                .peek()
                .is_none_or(|Reverse((first, _, _))| next < *first);
            waiting.push(Reverse((next, job.index, generation.0)));
            if sooner {
                self.wake.notify_one();
            }
        }
    }
}

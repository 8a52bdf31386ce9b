//! Running planned checks once: one, or many at once on a bounded number
//! of threads, each under its own deadline; `--repeat`. The one-shot run
//! ends the process when a check outlives what sockets can bound
//! ([`watchdog`]); the report is then made from what finished, with every
//! unfinished check a deadline failure.

pub mod watchdog;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::net::Deadline;
use crate::outcome::{Context, Failure, Observed, Outcome, Phase};
use crate::plan::{Job, Settings};
use crate::report::{repeat, Reporter};

/// How many checks run at once when there are several targets.
pub const DEFAULT_JOBS: usize = 16;

/// Runs one check; its deadline starts at `started`. Nothing here ends the
/// process: the resident mode runs checks through this too.
pub fn execute(settings: &mut Settings, started: Instant) -> Outcome {
    let deadline = Deadline::starting_at(started, settings.timeout);
    let mut observed = Observed::default();
    let verdict = settings.probe.run(deadline, &mut observed);
    Outcome {
        context: settings.context.clone(),
        verdict,
        observed,
    }
}

/// Runs every job, at most `threads` at once, and reports them. Returns the
/// exit code. One check's deadline starts at `started` (the process's
/// start); with several, each check's starts when it does.
pub fn run(mut jobs: Vec<Job>, threads: usize, started: Instant, reporter: &Reporter) -> u8 {
    // The common case, a check that sockets bound: no board, no thread.
    if let [Job::Ready(settings)] = jobs.as_mut_slice() {
        if settings.probe.bounded_by_deadline() {
            let outcome = execute(settings, started);
            return reporter.finish(&[outcome], started.elapsed());
        }
    }
    let board = Arc::new(Board::new(&jobs));
    let _watchdog = guard(&jobs, threads, started, &board, reporter);
    let single = jobs.len() == 1;
    let slots: Vec<Mutex<Option<Job>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let next = AtomicUsize::new(0);
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = slots.get(i) else {
            return;
        };
        let job = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        let outcome = match job {
            Some(Job::Ready(mut settings)) => {
                board.start(i);
                execute(&mut settings, if single { started } else { Instant::now() })
            }
            Some(Job::Failed(context, failure)) => Outcome::failed(context, failure),
            Some(Job::Skipped(context)) => Outcome::not_probed(context),
            None => continue,
        };
        board.finish(i, outcome);
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.clamp(1, slots.len().max(1)) {
            // A thread that cannot be started leaves its share to the others.
            let _ = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(scope, worker);
        }
        worker();
    });
    if !board.claim_report() {
        // The watchdog is reporting: it ends the process.
        loop {
            std::thread::park();
        }
    }
    reporter.finish(&board.take_outcomes(Instant::now()), started.elapsed())
}

/// Starts the watchdog where sockets cannot bound the run: one check whose
/// probe may block elsewhere, or several checks, which the run holds to the
/// checks one thread may run in a row.
fn guard(
    jobs: &[Job],
    threads: usize,
    started: Instant,
    board: &Arc<Board>,
    reporter: &Reporter,
) -> Option<watchdog::Watchdog> {
    let ready = jobs.iter().filter_map(|j| match j {
        Job::Ready(s) => Some(s),
        Job::Failed(..) | Job::Skipped(_) => None,
    });
    let bound = match jobs {
        [Job::Ready(s)] => s.timeout,
        _ => {
            let longest = ready.map(|s| s.timeout).max().unwrap_or_default();
            let in_a_row = jobs.len().div_ceil(threads.max(1));
            (longest.saturating_add(watchdog::GRACE))
                .saturating_mul(u32::try_from(in_a_row).unwrap_or(u32::MAX))
        }
    };
    let fire_at = Deadline::starting_at(started, bound)
        .end()
        .checked_add(watchdog::GRACE)?;
    let (board, reporter) = (board.clone(), reporter.clone());
    Some(watchdog::start(fire_at, move || {
        if !board.claim_report() {
            return None;
        }
        log::warn!(
            "the run outlived its bound of {}",
            crate::args::time::format_time(bound)
        );
        Some(reporter.finish(&board.take_outcomes(Instant::now()), started.elapsed()))
    }))
}

/// Every check's state, for the report at the end or the watchdog's.
struct Board {
    slots: Vec<Mutex<Slot>>,
    reported: AtomicBool,
}

enum Slot {
    Waiting(Arc<Context>),
    Running(Arc<Context>, Instant),
    Done(Box<Outcome>),
}

impl Board {
    fn new(jobs: &[Job]) -> Board {
        let slots = jobs
            .iter()
            .map(|j| Mutex::new(Slot::Waiting(j.context().clone())))
            .collect();
        Board {
            slots,
            reported: AtomicBool::new(false),
        }
    }

    fn lock(&self, i: usize) -> Option<std::sync::MutexGuard<'_, Slot>> {
        self.slots
            .get(i)
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn start(&self, i: usize) {
        if let Some(mut slot) = self.lock(i) {
            if let Slot::Waiting(c) = &*slot {
                *slot = Slot::Running(c.clone(), Instant::now());
            }
        }
    }

    fn finish(&self, i: usize, outcome: Outcome) {
        if let Some(mut slot) = self.lock(i) {
            *slot = Slot::Done(Box::new(outcome));
        }
    }

    /// True for the first caller only: the report is made once.
    fn claim_report(&self) -> bool {
        !self.reported.swap(true, Ordering::SeqCst)
    }

    /// Every outcome, taken out, in the order of the jobs; a check not
    /// finished by `now` is a deadline failure. Called once, by whoever
    /// claimed the report.
    fn take_outcomes(&self, now: Instant) -> Vec<Outcome> {
        (0..self.slots.len())
            .filter_map(|i| {
                let mut slot = self.lock(i)?;
                Some(match &mut *slot {
                    Slot::Done(o) => {
                        let context = o.context.clone();
                        std::mem::replace(
                            &mut **o,
                            Outcome::failed(context, Failure::Timeout(Phase::Check)),
                        )
                    }
                    Slot::Waiting(c) => Outcome::failed(c.clone(), Failure::Timeout(Phase::Check)),
                    Slot::Running(c, since) => {
                        let mut o = Outcome::failed(c.clone(), Failure::Timeout(Phase::Check));
                        o.observed.timings.total = now.saturating_duration_since(*since);
                        o
                    }
                })
            })
            .collect()
    }
}

/// `--repeat N`: the same check N times, `interval` apart, a line each,
/// then min/median/max of every phase and how many failed.
pub fn repeat(settings: &mut Settings, runs: u32, interval: Duration, reporter: &Reporter) -> u8 {
    let mut summary = repeat::Summary::default();
    for run in 0..runs {
        if run > 0 {
            std::thread::sleep(interval);
        }
        let started = Instant::now();
        let _watchdog = (!settings.probe.bounded_by_deadline()).then(|| {
            let (context, reporter) = (settings.context.clone(), reporter.clone());
            let end = Deadline::starting_at(started, settings.timeout).end();
            let fire_at = end.checked_add(watchdog::GRACE).unwrap_or(end);
            watchdog::start(fire_at, move || {
                let mut o = Outcome::failed(context, Failure::Timeout(Phase::Check));
                o.observed.timings.total = started.elapsed();
                Some(reporter.finish(&[o], started.elapsed()))
            })
        });
        let outcome = execute(settings, started);
        reporter.progress(&outcome, &mut summary);
    }
    reporter.finish_repeat(&mut summary)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::outcome::Context;
    use crate::report::Format;

    fn context(target: &str) -> Arc<Context> {
        Arc::new(Context {
            haproxy: false,
            backend: None,
            server: None,
            target: target.into(),
            probe: "OPTIONS".into(),
            protocol: "ICAP",
            syslog: None,
            haproxy_state: None,
        })
    }

    /// What the watchdog reports: the finished checks as they finished,
    /// the others as deadline failures, in the run's format.
    #[test]
    fn an_expired_run_reports_every_check() {
        let jobs = vec![
            Job::Failed(context("icap://a/x"), Failure::Usage("bad".into())),
            Job::Failed(context("icap://b/x"), Failure::Usage("bad".into())),
            Job::Failed(context("icap://c/x"), Failure::Usage("bad".into())),
        ];
        let board = Board::new(&jobs);
        board.finish(
            0,
            Outcome::failed(context("icap://a/x"), Failure::Connect("refused".into())),
        );
        board.start(1);
        assert!(board.claim_report());
        assert!(!board.claim_report(), "the report is made once");
        let outcomes = board.take_outcomes(Instant::now());
        let codes: Vec<u8> = outcomes.iter().map(|o| o.exit_status().code()).collect();
        assert_eq!(codes, [3, 4, 4]);
        let out = Reporter::new(Format::Nagios).render(&outcomes, Duration::ZERO);
        assert_eq!(out.code, 2);
        assert!(
            out.stdout.contains("0 of 3 targets healthy"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("timeout while running the check"),
            "{}",
            out.stdout
        );
    }

    #[test]
    fn a_stopped_watchdog_does_not_fire_and_one_that_fires_reports() {
        let (tx, rx) = std::sync::mpsc::channel();
        let fired = tx.clone();
        let dog = watchdog::start(Instant::now() + Duration::from_millis(50), move || {
            let _ = fired.send("fired");
            None
        });
        drop(dog);
        let _dog = watchdog::start(Instant::now(), move || {
            let _ = tx.send("second");
            None
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)), Ok("second"));
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    }
}

//! Running checks: one, or many at once on a bounded number of threads,
//! each with its own deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::deadline::Deadline;
use crate::report::Context;
use crate::settings::Settings;
use crate::timings::Observed;
use crate::verdict::{Failure, Verdict};

/// A check ready to run, or one that failed before it could (a usage error
/// for that target: its outcome is reported with the others).
pub enum Job {
    Ready(Box<Settings>),
    Failed(Context, Failure),
}

/// What one check came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub context: Context,
    pub verdict: Verdict,
    pub observed: Observed,
    /// Where a failure is also reported.
    pub syslog: Option<(crate::syslog::Target, u8)>,
}

/// Runs one prepared check; its deadline starts at `started`.
pub fn execute(settings: &mut Settings, started: Instant) -> Outcome {
    let deadline = Deadline::starting_at(started, settings.timeout);
    let mut observed = Observed::default();
    let verdict = settings.probe.run(deadline, &mut observed);
    Outcome {
        context: settings.context.clone(),
        verdict,
        observed,
        syslog: settings.syslog.clone(),
    }
}

/// Runs every job, at most `threads` at once; outcomes come back in the
/// order of the jobs. Each check's deadline starts when the check does.
pub fn execute_all(jobs: Vec<Job>, threads: usize) -> Vec<Outcome> {
    let count = jobs.len();
    let slots: Vec<Mutex<Option<Job>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let results: Vec<Mutex<Option<Outcome>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            return;
        }
        let job = slots[i].lock().ok().and_then(|mut s| s.take());
        let outcome = match job {
            Some(Job::Ready(mut settings)) => execute(&mut settings, Instant::now()),
            Some(Job::Failed(context, failure)) => Outcome {
                context,
                verdict: Err(failure),
                observed: Observed::default(),
                syslog: None,
            },
            None => continue,
        };
        if let Ok(mut slot) = results[i].lock() {
            *slot = Some(outcome);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.clamp(1, count.max(1)) {
            // A thread that cannot be started leaves its share to the others.
            let _ = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(scope, worker);
        }
        worker();
    });
    results
        .into_iter()
        .filter_map(|r| r.into_inner().ok().flatten())
        .collect()
}

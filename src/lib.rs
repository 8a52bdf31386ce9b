//! icap-check: a health check for ICAP servers that HAProxy runs as its
//! `external-check command`, and that an operator runs by hand.
//!
//! The path of one check: argv + env → [`cli`] (+ [`config`] file) →
//! [`plan`] ([`invocation`] or [`haproxy_cfg`] → [`settings`]) → [`check`]
//! ([`connection`] under one [`deadline`] → [`probe`]) → [`verdict`] →
//! [`report`] / [`output`] line and exit code. The library exists for the
//! binary, its tests and its fuzz targets; it is not a stable API.
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod config;
pub mod connection;
pub mod deadline;
pub mod haproxy_cfg;
pub mod http;
pub mod icap;
pub mod inspect;
pub mod invocation;
pub mod output;
pub mod plan;
pub mod probe;
pub mod report;
pub mod sample;
pub mod settings;
pub mod syslog;
pub mod tcp;
pub mod timings;
pub mod tls;
pub mod verdict;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::check::{Job, Outcome};
use crate::cli::Format;
use crate::deadline::Deadline;
use crate::verdict::{ExitStatus, Failure, Phase};

/// How many checks run at once when there are several targets.
const DEFAULT_JOBS: usize = 16;

/// Runs the checks the arguments ask for. `env` reads the environment
/// (HAProxy's variables).
pub fn run<I>(args: I, env: &dyn Fn(&str) -> Option<String>) -> ExitCode
where
    I: IntoIterator<Item = OsString>,
{
    let started = Instant::now();
    let args: Vec<OsString> = args.into_iter().collect();
    let typed = match cli::parse(&args) {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            report::usage_error(&Failure::Usage(cli::one_line_error(&e)));
            // Even when the arguments do not parse, a Nagios plugin says UNKNOWN.
            return usage_code(cli::asks_for_nagios(&args));
        }
        Err(e) => {
            // --help, --version
            let _ = write!(std::io::stdout().lock(), "{}", e.render());
            return exit(ExitStatus::Healthy);
        }
    };
    let format = typed.format.unwrap_or(Format::Human);
    let usage_exit = |failure: &Failure| {
        report::usage_error(failure);
        usage_code(format == Format::Nagios)
    };
    if typed.check_config {
        let (text, status) = inspect::check_config(&typed, &args, env);
        if status == ExitStatus::Healthy {
            let _ = write!(std::io::stdout().lock(), "{text}");
        } else {
            let _ = write!(std::io::stderr().lock(), "{text}");
        }
        return exit(status);
    }
    if typed.repeat.is_some() && (format != Format::Human || typed.haproxy_cfg.is_some()) {
        return usage_exit(&Failure::Usage(
            "--repeat works with one target and --format human".into(),
        ));
    }
    let planned = match plan::build(&typed, &args, env) {
        Ok(p) => p,
        Err(failure) => return usage_exit(&failure),
    };
    let verbose = planned
        .iter()
        .filter_map(|p| p.settings().map(|s| s.verbose))
        .max()
        .unwrap_or(typed.verbose);
    if verbose > 0 {
        init_logger(verbose);
    }
    if typed.explain {
        return explain(&args, &planned);
    }
    if let Some(runs) = typed.repeat {
        if planned.len() != 1 {
            return usage_exit(&Failure::Usage("--repeat works with one target".into()));
        }
        let interval = typed.interval.unwrap_or(Duration::from_secs(1));
        return repeat(&typed, &args, env, planned, runs, interval);
    }
    let mut jobs: Vec<Job> = planned.into_iter().map(|p| p.job).collect();
    let outcomes = match jobs.as_mut_slice() {
        [Job::Ready(settings)] => vec![single(settings, started)],
        _ => {
            let threads = typed.jobs.map_or(DEFAULT_JOBS, usize::from);
            guard_run(&jobs, threads, started);
            check::execute_all(jobs, threads)
        }
    };
    finish(&outcomes, format, &typed, started.elapsed())
}

/// One check: the process is gone by its deadline plus a few milliseconds
/// whatever the main thread is stuck in. Where sockets alone bound every wait
/// the deadline does that by itself; elsewhere the watchdog thread does. A
/// check that needs no thread saves its cost (about 0.07 ms and 70 KiB).
fn single(settings: &mut settings::Settings, started: Instant) -> Outcome {
    let deadline = Deadline::starting_at(started, settings.timeout);
    if !settings.probe.bounded_by_deadline() {
        start_watchdog(settings, deadline);
    }
    check::execute(settings, started)
}

fn start_watchdog(settings: &settings::Settings, deadline: Deadline) {
    let context = settings.context.clone();
    let syslog = settings.syslog.clone();
    deadline.start_watchdog(move || {
        let failure = Failure::Timeout(Phase::Check);
        if let Some((target, facility)) = &syslog {
            syslog::send(target, *facility, &context.failure_text(&failure));
        }
        context.emit(&Err(failure), deadline.elapsed());
    });
}

/// Several checks: each has its own deadline, starting when it starts, so
/// the run as a whole is bounded by the checks one thread may run in a row.
/// The watchdog holds the process to that bound.
fn guard_run(jobs: &[Job], threads: usize, started: Instant) {
    let longest = jobs
        .iter()
        .filter_map(|j| match j {
            Job::Ready(s) => Some(s.timeout),
            Job::Failed(..) => None,
        })
        .max()
        .unwrap_or_default();
    let in_a_row = jobs.len().div_ceil(threads.max(1)) as u32;
    let bound = (longest + deadline::WATCHDOG_GRACE) * in_a_row;
    Deadline::starting_at(started, bound).start_watchdog(move || {
        let _ = writeln!(
            std::io::stderr().lock(),
            "icap-check: timeout: the run outlived its bound of {}",
            deadline::format_time(bound)
        );
    });
}

/// Reports the outcomes in the asked format, sends failures to syslog, and
/// gives the run's exit code.
fn finish(outcomes: &[Outcome], format: Format, typed: &cli::Cli, elapsed: Duration) -> ExitCode {
    for o in outcomes {
        log::info!("{}: {}", o.context.target, output::timings_line(o));
    }
    let mut stdout = std::io::stdout().lock();
    let code = match (format, outcomes) {
        // A pool read from haproxy.cfg is always a table: it names backend and server.
        (Format::Human, [o]) if typed.haproxy_cfg.is_none() => {
            o.context.emit(&o.verdict, o.observed.timings.total);
            output::worst(outcomes).code()
        }
        (Format::Human, _) => {
            let _ = write!(stdout, "{}", output::human(outcomes, elapsed));
            output::worst(outcomes).code()
        }
        (Format::Json, _) => {
            let _ = write!(stdout, "{}", output::json(outcomes));
            output::worst(outcomes).code()
        }
        (Format::Prometheus, _) => {
            let _ = write!(stdout, "{}", output::prometheus(outcomes));
            output::worst(outcomes).code()
        }
        (Format::Nagios, _) => {
            let thresholds = output::Thresholds {
                warning: typed.warning,
                critical: typed.critical,
            };
            let (text, state) = output::nagios(outcomes, thresholds);
            let _ = write!(stdout, "{text}");
            state
        }
    };
    drop(stdout);
    send_to_syslog(outcomes);
    ExitCode::from(code)
}

/// Failures only: a healthy check costs nothing here.
fn send_to_syslog(outcomes: &[Outcome]) {
    for o in outcomes {
        if let (Some((target, facility)), Some(line)) = (&o.syslog, output::failure_line(o)) {
            syslog::send(target, *facility, &line);
        }
    }
}

fn explain(args: &[OsString], planned: &[plan::Planned]) -> ExitCode {
    let argv0 = args.first().cloned().unwrap_or_default();
    let mut out = String::new();
    let mut status = ExitStatus::Healthy;
    for (i, p) in planned.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match &p.job {
            Job::Ready(settings) => out.push_str(&inspect::explain(
                args,
                p.applied.as_ref(),
                settings,
                &argv0,
            )),
            Job::Failed(context, failure) => {
                status = ExitStatus::Usage;
                out.push_str(&format!(
                    "target:   {} ({})\nerror:    {failure}\n",
                    context.target,
                    context.label().unwrap_or_default()
                ));
            }
        }
    }
    let _ = write!(std::io::stdout().lock(), "{out}");
    exit(status)
}

/// `--repeat N`: the same check N times, a line each, then min/median/max
/// of every phase and how many failed: the flapping-server question.
fn repeat(
    typed: &cli::Cli,
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
    first: Vec<plan::Planned>,
    runs: u32,
    interval: Duration,
) -> ExitCode {
    let mut outcomes = Vec::with_capacity(runs as usize);
    let mut planned = first;
    for run in 0..runs {
        if run > 0 {
            std::thread::sleep(interval);
            // A check consumes its sample and output file: prepare it anew.
            planned = match plan::build(typed, args, env) {
                Ok(p) => p,
                Err(failure) => {
                    report::usage_error(&failure);
                    return exit(ExitStatus::Usage);
                }
            };
        }
        let Some(plan::Planned {
            job: Job::Ready(mut settings),
            ..
        }) = planned.pop()
        else {
            return exit(ExitStatus::Usage);
        };
        let outcome = check::execute(&mut settings, Instant::now());
        outcome
            .context
            .emit(&outcome.verdict, outcome.observed.timings.total);
        outcomes.push(outcome);
    }
    let _ = write!(
        std::io::stdout().lock(),
        "{}",
        output::repeat_summary(&outcomes)
    );
    send_to_syslog(&outcomes);
    exit(output::worst(&outcomes))
}

/// A usage error's exit code: 2, or UNKNOWN (3) for a Nagios plugin, which
/// by the monitoring-plugins convention says so when it cannot run.
fn usage_code(nagios: bool) -> ExitCode {
    if nagios {
        ExitCode::from(3)
    } else {
        exit(ExitStatus::Usage)
    }
}

fn exit(status: ExitStatus) -> ExitCode {
    ExitCode::from(status.code())
}

/// Flags, not RUST_LOG: HAProxy clears the environment of its checks.
fn init_logger(verbosity: u8) {
    let level = match verbosity {
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .format(|buf, record| writeln!(buf, "icap-check: {}", record.args()))
        .target(env_logger::Target::Stderr)
        .try_init();
}

//! The one-shot run, end to end: arguments → plan → run → report. Every
//! exit goes through the reporter.

use std::ffi::OsString;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::args::{self, Gathered};
use crate::plan::{self, explain, Job};
use crate::report::{self, line::Stream, Format, Reporter, Thresholds};
use crate::run;

/// Runs the checks the arguments ask for; returns the exit code. `env`
/// reads the environment (HAProxy's variables).
pub fn run(argv: Vec<OsString>, env: &dyn Fn(&str) -> Option<String>) -> u8 {
    let started = Instant::now();
    // Kept for the resident mode's reloads (a few short strings).
    let kept = argv.clone();
    let arguments = match args::gather(argv, env) {
        Ok(Gathered::Run(a)) => a,
        Ok(Gathered::Help(text)) => {
            Reporter::new(Format::Human).text(&text, Stream::Stdout);
            return 0;
        }
        Ok(Gathered::CheckConfig { text, valid }) => {
            let stream = if valid {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            Reporter::new(Format::Human).text(&text, stream);
            return if valid { 0 } else { report::usage_code(false) };
        }
        Err(e) => {
            report::usage_error(&e.failure);
            return report::usage_code(e.nagios);
        }
    };
    if arguments.cli.run.agent_listen.is_some() || arguments.cli.run.metrics_listen.is_some() {
        return crate::resident::run(*arguments, kept, env);
    }
    let cli = arguments.cli.clone();
    let reporter = Reporter {
        format: arguments.format(),
        thresholds: Thresholds {
            warning: cli.run.warning,
            critical: cli.run.critical,
        },
        table: arguments.pool,
    };
    if cli.run.repeat.is_some() && (reporter.format != Format::Human || arguments.pool) {
        return reporter.usage(&crate::outcome::Failure::Usage(
            "--repeat works with one target and --format human".into(),
        ));
    }
    let looked_for = arguments.looked_for.clone();
    let planned = match plan::build(*arguments) {
        Ok(p) => p,
        Err(failure) => return reporter.usage(&failure),
    };
    let verbose = planned
        .iter()
        .filter_map(|p| p.settings().map(|s| s.verbose))
        .max()
        .unwrap_or(cli.verbose);
    if verbose > 0 {
        init_logger(verbose);
        for note in planned
            .iter()
            .filter_map(|p| p.settings())
            .flat_map(|s| &s.notes)
        {
            log::info!("{note}");
        }
    }
    if cli.config.explain {
        let (text, valid) = explain::explain(&planned, &looked_for);
        reporter.text(&text, Stream::Stdout);
        return if valid { 0 } else { report::usage_code(false) };
    }
    // A Vec of its own, not an in-place collect that keeps the plan's.
    let mut jobs: Vec<Job> = Vec::with_capacity(planned.len());
    jobs.extend(planned.into_iter().map(|p| p.job));
    if let Some(runs) = cli.run.repeat {
        let [Job::Ready(settings)] = jobs.as_mut_slice() else {
            return reporter.usage(&crate::outcome::Failure::Usage(
                "--repeat works with one target".into(),
            ));
        };
        let interval = cli.run.interval.unwrap_or(Duration::from_secs(1));
        return run::repeat(settings, runs, interval, &reporter);
    }
    let threads = cli.run.jobs.map_or(run::DEFAULT_JOBS, usize::from);
    run::run(jobs, threads, started, &reporter)
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

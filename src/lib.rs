//! icap-check: a health check for ICAP servers that HAProxy runs as its
//! `external-check command`, and that an operator runs by hand.
//!
//! The path of one check: argv + env → [`invocation`] → [`settings`] (with
//! [`cli`]) → [`connection`] under one [`deadline`] → [`icap::probe`] →
//! [`verdict`] → [`report`] line and exit code. The library exists for the
//! binary, its tests and its fuzz targets; it is not a stable API.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod connection;
pub mod deadline;
pub mod haproxy_cfg;
pub mod icap;
pub mod inspect;
pub mod invocation;
pub mod probe;
pub mod report;
pub mod sample;
pub mod settings;
pub mod timings;
pub mod verdict;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use crate::deadline::Deadline;
use crate::verdict::{ExitStatus, Failure, Phase};

/// Runs one check. `env` reads the environment (HAProxy's variables).
pub fn run<I>(args: I, env: &dyn Fn(&str) -> Option<String>) -> ExitCode
where
    I: IntoIterator<Item = OsString>,
{
    let started = Instant::now();
    let args: Vec<OsString> = args.into_iter().collect();
    let typed = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            report::usage_error(&Failure::Usage(cli::one_line_error(&e)));
            return exit(ExitStatus::Usage);
        }
        Err(e) => {
            // --help, --version
            let _ = write!(std::io::stdout().lock(), "{}", e.render());
            return exit(ExitStatus::Healthy);
        }
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
    let prepared = config::apply(&typed, &args, env).and_then(|(cli, applied)| {
        if cli.verbose > 0 {
            init_logger(cli.verbose);
        }
        let inv = invocation::parse(&cli.targets, env)?;
        Ok((settings::resolve(&cli, &typed, &inv)?, applied))
    });
    let (mut settings, applied) = match prepared {
        Ok(s) => s,
        Err(failure) => {
            report::usage_error(&failure);
            return exit(failure.exit_status());
        }
    };
    if typed.explain {
        let argv0 = args.first().cloned().unwrap_or_default();
        let text = inspect::explain(&args, applied.as_ref(), &settings, &argv0);
        let _ = write!(std::io::stdout().lock(), "{text}");
        return exit(ExitStatus::Healthy);
    }
    let deadline = Deadline::starting_at(started, settings.timeout);
    let watchdog_context = settings.context.clone();
    deadline.start_watchdog(move || {
        watchdog_context.emit(&Err(Failure::Timeout(Phase::Check)), deadline.elapsed());
    });
    let mut observed = timings::Observed::default();
    let verdict = settings.probe.run(deadline, &mut observed);
    log::debug!("timings: {:?}", observed.timings.phases());
    settings.context.emit(&verdict, deadline.elapsed());
    exit(match &verdict {
        Ok(_) => ExitStatus::Healthy,
        Err(f) => f.exit_status(),
    })
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

//! The resident mode: the same checks, run another way. One long-running
//! process loads its targets as a run of several checks does, checks each
//! forever on its own schedule in threads ([`checker`]), keeps the latest
//! state of each in a table ([`table`], [`health`]), and answers HAProxy's
//! agent check from that table ([`agent`]). Nothing here ends the process to
//! bound a check: every check is bounded by its own deadline.
//!
//! SIGHUP rereads haproxy.cfg and the config file (the old targets stay when
//! the new ones do not load); SIGTERM and SIGINT stop at once. A change of
//! a target's health is one line on stderr (and syslog, if configured),
//! never a line per check.

pub mod agent;
pub mod checker;
pub mod health;
pub mod table;

use std::ffi::OsString;
use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;

use self::agent::{Counts, Extras};
use self::health::Health;
use self::table::Table;
use crate::args::{self, Gathered};
use crate::outcome::{ExitStatus, Failure};
use crate::plan::{self, Job, Settings};
use crate::report;

/// Runs until SIGTERM: `arguments` are the first load's; `argv` and `env`
/// are read again on SIGHUP.
pub fn run(
    arguments: args::Arguments,
    argv: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> u8 {
    let cli = arguments.cli.clone();
    let Some(addr) = cli.run.agent_listen else {
        return ExitStatus::Usage.code();
    };
    let settings = match ready(arguments) {
        Ok(s) => s,
        Err(f) => {
            report::usage_error(&f);
            return ExitStatus::Usage.code();
        }
    };
    let listener = match listen(addr) {
        Ok(l) => l,
        Err(e) => {
            report::usage_error(&Failure::Usage(format!(
                "--agent-listen {addr}: cannot listen: {}",
                crate::text::describe_io(&e)
            )));
            return ExitStatus::Usage.code();
        }
    };
    // Signals first, so a SIGTERM during start-up is not the default action
    // in the middle of a write.
    let signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ]) {
        Ok(s) => s,
        Err(e) => {
            report::usage_error(&Failure::Usage(format!("cannot handle signals: {e}")));
            return ExitStatus::Usage.code();
        }
    };
    let table = Arc::new(Table::new(settings, None));
    log(&format!(
        "checking {} targets; agent on {addr}",
        table.targets.len()
    ));
    let checker = checker::Checker::start(table, on_change);
    let extras = Extras {
        maxconn: cli.run.agent_maxconn,
        weight: cli.run.agent_weight,
    };
    let counts = Arc::new(Counts::default());
    {
        let (table, counts) = (checker.table.clone(), counts.clone());
        let spawned = std::thread::Builder::new()
            .name("agent-listener".into())
            .spawn(move || agent::serve(listener, table, extras, counts));
        if let Err(e) = spawned {
            report::usage_error(&Failure::Usage(format!("cannot start the agent: {e}")));
            return ExitStatus::Usage.code();
        }
    }
    wait_for_signals(signals, &argv, env, &checker, &counts)
}

/// Connections the kernel queues for the agent before it accepts them.
/// std listens with 128: a burst of other connections (a thousand idle
/// clients connecting at once, tests/it/resident.rs) filled that queue
/// while the accept loop started their threads, and HAProxy's connect was
/// dropped and sent again a second later. The kernel caps it at
/// net.core.somaxconn (4096 by default).
const BACKLOG: i32 = 4096;

/// The agent's listening socket, as std's `TcpListener::bind` makes it
/// (SO_REUSEADDR, close-on-exec) but with [`BACKLOG`].
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The main thread's work: reload on SIGHUP, stop on SIGTERM/SIGINT.
fn wait_for_signals(
    mut signals: signal_hook::iterator::Signals,
    argv: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
    checker: &checker::Checker,
    counts: &Counts,
) -> u8 {
    loop {
        for signal in signals.wait() {
            if signal != signal_hook::consts::SIGHUP {
                let said: Vec<String> = agent::Said::ALL
                    .iter()
                    .map(|s| format!("{} {}", s.name(), counts.get(*s)))
                    .collect();
                log(&format!("stopping; agent replies: {}", said.join(", ")));
                return 0;
            }
            let old = checker
                .table
                .read()
                .map_or_else(|e| e.into_inner().clone(), |t| t.clone());
            match load(argv, env) {
                Ok(settings) => {
                    let table = Arc::new(Table::new(settings, Some(&old)));
                    log(&format!(
                        "reloaded: {} targets (were {})",
                        table.targets.len(),
                        old.targets.len()
                    ));
                    checker.replace(table);
                }
                Err(f) => log(&format!(
                    "reload failed, still checking the {} targets loaded before: {}",
                    old.targets.len(),
                    match &f {
                        Failure::Usage(why) => why.clone(),
                        other => other.to_string(),
                    }
                )),
            }
        }
    }
}

/// Every target the arguments name, ready to check. A target whose settings
/// are wrong is an error of the whole load: the resident mode does not
/// start, nor reload, with half a pool.
fn load(argv: &[OsString], env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Settings>, Failure> {
    match args::gather(argv.to_vec(), env) {
        Ok(Gathered::Run(a)) => ready(*a),
        Ok(_) => Err(Failure::Usage("the resident mode runs checks".into())),
        Err(e) => Err(e.failure),
    }
}

/// The settings of every target of `arguments`.
fn ready(arguments: args::Arguments) -> Result<Vec<Settings>, Failure> {
    plan::build(arguments)?
        .into_iter()
        .map(|p| match p.job {
            Job::Ready(settings) => Ok(*settings),
            Job::Failed(context, failure) => Err(Failure::Usage(format!(
                "{}: {}",
                context.label().unwrap_or_else(|| context.target.clone()),
                match failure {
                    Failure::Usage(why) => why,
                    other => other.to_string(),
                }
            ))),
        })
        .collect()
}

/// A change of health: one line.
fn on_change(target: &table::Target, health: Health) {
    let state = target.lock_state();
    let why = match state.last.as_deref().map(|o| &o.verdict) {
        Some(Err(f)) if health == Health::Down => {
            format!(": {f} (exit {})", f.exit_status().code())
        }
        _ => String::new(),
    };
    let line = format!("{} {}{why}", target.key, health.word());
    log(&line);
    if let Some(syslog) = &target.context.syslog {
        report::syslog::send(
            &syslog.target,
            syslog.facility,
            &crate::text::escape_all(&line),
        );
    }
}

/// One line on stderr (the journal under systemd), escaped.
pub fn log(line: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "icap-check: {}",
        crate::text::escape_all(line)
    );
}

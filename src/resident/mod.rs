//! The resident mode: the same checks, run another way. One long-running
//! process loads its targets as a run of several checks does, checks each
//! forever on its own schedule in threads ([`checker`]), keeps the latest
//! state of each in a table ([`table`], [`health`]), and answers HAProxy's
//! agent check from that table ([`agent`]). Nothing here ends the process to
//! bound a check: every check is bounded by its own deadline.
//!
//! SIGHUP rereads haproxy.cfg and the config file (the old targets stay when
//! the new ones do not load); SIGTERM and SIGINT stop at once. A pool read
//! from the running HAProxy (`--haproxy-socket`) is read again every
//! `--haproxy-refresh`. A change of
//! a target's health is one line on stderr (and syslog, if configured),
//! never a line per check.

pub mod agent;
pub mod checker;
pub mod health;
pub mod http;
pub mod metrics;
pub mod page;
pub mod table;

use std::ffi::OsString;
use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    let settings = match ready(arguments) {
        Ok(s) => s,
        Err(f) => {
            report::usage_error(&f);
            return ExitStatus::Usage.code();
        }
    };
    let bind = |addr: Option<std::net::SocketAddr>, flag: &str| match addr {
        None => Ok(None),
        Some(addr) => listen(addr).map(|l| Some((l, addr))).map_err(|e| {
            Failure::Usage(format!(
                "--{flag} {addr}: cannot listen: {}",
                crate::text::describe_io(&e)
            ))
        }),
    };
    let listeners = bind(cli.run.agent_listen, "agent-listen")
        .and_then(|a| Ok((a, bind(cli.run.metrics_listen, "metrics-listen")?)));
    let (agent, metrics) = match listeners {
        Ok(l) => l,
        Err(f) => {
            report::usage_error(&f);
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
    let listening: Vec<String> = [("agent", &agent), ("metrics", &metrics)]
        .iter()
        .filter_map(|(what, l)| l.as_ref().map(|(_, addr)| format!("{what} on {addr}")))
        .collect();
    log(&format!(
        "checking {} targets; {}",
        table.targets.len(),
        listening.join(", ")
    ));
    let checker = checker::Checker::start(table, on_change);
    let counts = Arc::new(Counts::default());
    let process = Arc::new(metrics::Process::new(counts.clone()));
    if let Some((listener, _)) = agent {
        let extras = Extras {
            maxconn: cli.run.agent_maxconn,
            weight: cli.run.agent_weight,
        };
        let (table, counts) = (checker.table.clone(), counts.clone());
        spawn("agent-listener", move || {
            agent::serve(listener, table, extras, counts)
        });
    }
    if let Some((listener, _)) = metrics {
        let handler = web(checker.table.clone(), process.clone());
        spawn("metrics-listener", move || http::serve(listener, handler));
    }
    // Only a pool read from the running HAProxy changes by itself.
    let refresh = cli.run.haproxy_socket.as_ref().map(|_| {
        cli.run
            .haproxy_refresh
            .unwrap_or(args::cli::DEFAULT_HAPROXY_REFRESH)
    });
    wait_for_signals(signals, refresh, &argv, env, &checker, process)
}

/// Starts a listener's thread; without it the process cannot do its job.
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(f) {
        report::usage_error(&Failure::Usage(format!("cannot start the {name}: {e}")));
        std::process::exit(i32::from(ExitStatus::Usage.code()));
    }
}

/// The metrics listener's pages.
fn web(
    table: Arc<std::sync::RwLock<Arc<Table>>>,
    process: Arc<metrics::Process>,
) -> Arc<dyn Fn(&http::Request) -> http::Response + Send + Sync> {
    Arc::new(move |req: &http::Request| {
        let current = table
            .read()
            .map_or_else(|e| e.into_inner().clone(), |t| t.clone());
        match req.path.as_str() {
            "/metrics" => http::Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: metrics::metrics(&current, &process).into_bytes(),
            },
            // Only a configured target: no query may make this process
            // connect anywhere it was not configured to.
            "/probe" => match http::query_value(&req.query, "target")
                .and_then(|key| metrics::probe(&current, &key))
            {
                Some(text) => http::Response {
                    status: 200,
                    content_type: "text/plain; version=0.0.4; charset=utf-8",
                    body: text.into_bytes(),
                },
                None => http::Response::text(
                    404,
                    "unknown target: give target=BACKEND/SERVER (or the URL) of a configured target\n",
                ),
            },
            "/" => http::Response {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: page::page(&current, std::time::SystemTime::now()).into_bytes(),
            },
            _ => http::Response::text(404, "not found: /, /metrics, /probe?target=...\n"),
        }
    })
}

/// Connections the kernel queues for a listener before it accepts them.
/// std listens with 128: a burst of other connections (a thousand idle
/// clients connecting at once, tests/it/resident.rs) filled that queue
/// while the accept loop started their threads, and HAProxy's connect was
/// dropped and sent again a second later. The kernel caps it at
/// net.core.somaxconn (4096 by default).
const BACKLOG: i32 = 4096;

/// A listening socket (the agent's, the metrics'), as std's `TcpListener::bind` makes it
/// (SO_REUSEADDR, close-on-exec) but with [`BACKLOG`].
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The main thread's work: reload on SIGHUP, stop on SIGTERM/SIGINT, and
/// with `--haproxy-socket` read the running HAProxy's pool again every
/// `refresh`.
fn wait_for_signals(
    mut signals: signal_hook::iterator::Signals,
    refresh: Option<Duration>,
    argv: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
    checker: &checker::Checker,
    process: Arc<metrics::Process>,
) -> u8 {
    // SIGTERM and SIGINT are handled on the signals' own thread: a stop is
    // never held behind a reload or a refresh reading a slow socket (up to
    // its 3 s deadline). SIGHUP comes to this thread through a channel, so
    // that the wait for one can end at the next refresh.
    let (tx, rx) = std::sync::mpsc::channel();
    let stopping = process.clone();
    spawn("signals", move || {
        for signal in signals.forever() {
            if signal != signal_hook::consts::SIGHUP {
                stop(&stopping);
            }
            if tx.send(signal).is_err() {
                return;
            }
        }
    });
    let mut refreshing = Refreshing::default();
    let mut next = refresh.map(|r| Instant::now() + r);
    loop {
        let signal = match next {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match signal {
            Ok(_) => reload(argv, env, checker, &process),
            Err(RecvTimeoutError::Disconnected) => stop(&process),
            Err(RecvTimeoutError::Timeout) => {
                refreshing.refresh(argv, env, checker);
                next = refresh.map(|r| Instant::now() + r);
            }
        }
    }
}

/// SIGTERM, SIGINT: one line, and the process ends at once (no check holds
/// anything that must be written back).
fn stop(process: &metrics::Process) -> ! {
    let said: Vec<String> = agent::Said::ALL
        .iter()
        .map(|s| format!("{} {}", s.name(), process.replies.get(*s)))
        .collect();
    log(&format!("stopping; agent replies: {}", said.join(", ")));
    std::process::exit(0)
}

/// SIGHUP: everything read again; the old targets stay when the new ones do
/// not load.
fn reload(
    argv: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
    checker: &checker::Checker,
    process: &metrics::Process,
) {
    let old = checker.current();
    match load(argv, env) {
        Ok(settings) => {
            let table = Arc::new(Table::new(settings, Some(&old)));
            log(&format!(
                "reloaded: {} targets (were {})",
                table.targets.len(),
                old.targets.len()
            ));
            checker.replace(table);
            process.reloaded(true);
        }
        Err(f) => {
            process.reloaded(false);
            log(&format!(
                "reload failed, still checking the {} targets loaded before: {}",
                old.targets.len(),
                usage_text(f)
            ));
        }
    }
}

/// The periodic read of `--haproxy-socket`, and whether the last one failed
/// (said once, not every refresh).
#[derive(Default)]
struct Refreshing {
    failing: bool,
}

impl Refreshing {
    /// Reads the pool again. Servers added, deleted, moved or whose
    /// HAProxy state changed make a new table (the others keep their
    /// state); otherwise only the settings of idle checks are renewed, so
    /// that `--send-state` sends what HAProxy says now. A failed read
    /// keeps the servers read before.
    fn refresh(
        &mut self,
        argv: &[OsString],
        env: &dyn Fn(&str) -> Option<String>,
        checker: &checker::Checker,
    ) {
        let old = checker.current();
        let settings = match load(argv, env) {
            Ok(s) => s,
            Err(f) => {
                if !self.failing {
                    log(&format!(
                        "cannot read HAProxy's pool again, still checking the {} targets read before: {}",
                        old.targets.len(),
                        usage_text(f)
                    ));
                }
                self.failing = true;
                return;
            }
        };
        if std::mem::take(&mut self.failing) {
            log("HAProxy's pool read again");
        }
        let table = Table::new(settings, Some(&old));
        let (added, removed) = table.difference(&old);
        if added.is_empty() && removed.is_empty() {
            old.renew(table);
            return;
        }
        let shown = |keys: &[&str]| match keys {
            [] => "none".to_string(),
            keys => keys.join(" "),
        };
        log(&format!(
            "HAProxy's pool changed: {} targets; new or changed: {}; gone: {}",
            table.targets.len(),
            shown(&added),
            shown(&removed)
        ));
        checker.replace(Arc::new(table));
    }
}

fn usage_text(f: Failure) -> String {
    match f {
        Failure::Usage(why) => why,
        other => other.to_string(),
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
        .filter_map(|p| match p.job {
            Job::Ready(settings) => Some(Ok(*settings)),
            Job::Failed(context, failure) => Some(Err(Failure::Usage(format!(
                "{}: {}",
                context.label().unwrap_or_else(|| context.target.clone()),
                usage_text(failure)
            )))),
            // In MAINT in HAProxy, which checks none of it either: a
            // refresh adds it back when it leaves MAINT.
            Job::Skipped(_) => None,
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

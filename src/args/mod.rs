//! The arguments stage: argv and the environment go in once; typed, merged
//! options for every target come out, and nothing later sees argv.
//!
//! The command line ([`cli`]), the config file's sections merged under it
//! ([`config_file`]), the targets it names ([`target`]: HAProxy's four
//! arguments or URLs) or a pool read from haproxy.cfg ([`haproxy_cfg`]) or
//! from the running HAProxy ([`haproxy_api`]), in HAProxy's time format
//! ([`time`]); what `--send-state` tells a server ([`send_state`]).

pub mod cli;
pub mod config_file;
pub mod haproxy_api;
pub mod haproxy_cfg;
pub mod send_state;
pub mod target;
pub mod time;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::Arc;

use self::cli::Cli;
use self::config_file::{Applied, ConfigFile, Entry, Wanted};
use self::target::Target;
use crate::net::Deadline;
use crate::outcome::{Failure, HaproxyState};
use crate::report::Format;

/// What the command line asks for.
pub enum Gathered {
    /// `--help` or `--version`: the text to print, and exit 0.
    Help(String),
    /// `--check-config`: its report, and whether the file is valid.
    CheckConfig {
        text: String,
        valid: bool,
    },
    Run(Box<Arguments>),
}

/// A usage error before any target: its line, and whether the run asked
/// for Nagios output (whose usage errors exit 3, UNKNOWN).
#[derive(Debug)]
pub struct UsageError {
    pub failure: Failure,
    pub nagios: bool,
}

/// The arguments of a run.
pub struct Arguments {
    /// The command line as typed: the run's own options come from here.
    pub cli: Cli,
    pub targets: Vec<TargetArgs>,
    /// The targets are the servers of a pool read from haproxy.cfg or from
    /// HAProxy's runtime API.
    pub pool: bool,
    /// Where a config file was looked for, for `--explain` when none was
    /// found (only then).
    pub looked_for: String,
}

/// One target and its options.
pub struct TargetArgs {
    /// `backend` and `server` names, and the target as text, for a target
    /// whose arguments are wrong (its failure is reported with the others).
    pub backend: Option<String>,
    pub server: Option<String>,
    pub shown: String,
    /// The server's state in HAProxy, when read from its runtime API.
    pub haproxy_state: Option<HaproxyState>,
    pub prepared: Result<Box<Prepared>, Failure>,
}

/// A target whose arguments are all valid.
pub struct Prepared {
    pub target: Target,
    /// The command line over the config file's sections for this target.
    /// Shared by the targets whose options come from the same sections.
    pub options: Arc<Cli>,
    /// The ids of the options typed on the command line (options from a
    /// config file may be meant for other sections, and are not mistakes).
    pub typed: Arc<[String]>,
    /// What the config file gave, for `--explain` (only then).
    pub applied: Option<Applied>,
    /// The effective settings as `key=value ...`, for `--explain`.
    pub described: Option<String>,
}

impl Arguments {
    pub fn format(&self) -> Format {
        self.cli.run.format.unwrap_or(Format::Human)
    }
}

/// Reads the command line and the environment.
pub fn gather(
    argv: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Gathered, UsageError> {
    let (typed, given) = match cli::parse_typed(&argv) {
        Ok(parsed) => parsed,
        Err(e) if e.use_stderr() => {
            return Err(UsageError {
                failure: Failure::Usage(cli::one_line_error(&e)),
                nagios: cli::asks_for_nagios(&argv),
            })
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            return Ok(Gathered::Help(cli::help()))
        }
        // --version
        Err(e) => return Ok(Gathered::Help(e.render().to_string())),
    };
    let nagios = typed.run.format == Some(Format::Nagios);
    let usage = |failure| UsageError { failure, nagios };
    let argv0 = argv.first().cloned().unwrap_or_default();
    if typed.config.check_config {
        let (text, valid) = check_config(&typed, &argv0, env);
        return Ok(Gathered::CheckConfig { text, valid });
    }
    // The pool, when the targets are haproxy.cfg's servers.
    let cfg = match &typed.run.haproxy_cfg {
        Some(_) if !typed.targets.is_empty() => {
            return Err(usage(Failure::Usage(
                "--haproxy-cfg reads the targets from the file: give no targets".into(),
            )))
        }
        Some(path) => Some(haproxy_cfg::load(path).map_err(usage)?),
        None => None,
    };
    // The pool, when the targets are the running HAProxy's servers.
    let runtime = match &typed.run.haproxy_socket {
        Some(_) if !typed.targets.is_empty() => {
            return Err(usage(Failure::Usage(
                "--haproxy-socket reads the targets from HAProxy: give no targets".into(),
            )))
        }
        Some(addr) => Some(read_runtime(addr, &typed.config.backend, cfg.as_ref()).map_err(usage)?),
        None => None,
    };
    // By hand the sections are those of --backend/--server, else HAProxy's variables.
    let named =
        |flag: Option<String>, var: &str| flag.or_else(|| env(var).filter(|v| !v.is_empty()));
    let names = (
        named(typed.config.backend.last().cloned(), "HAPROXY_PROXY_NAME"),
        named(typed.config.server.clone(), "HAPROXY_SERVER_NAME"),
    );
    let wanted = match (&runtime, &cfg) {
        (Some(servers), _) => {
            let mut wanted = Wanted::one(None, None);
            for s in servers {
                wanted.add(Some(&s.backend), Some(&s.name));
            }
            wanted
        }
        (None, Some(cfg)) => {
            let mut wanted = Wanted::one(None, None);
            for backend in cfg.select(&typed.config.backend).map_err(usage)? {
                for server in &backend.servers {
                    wanted.add(Some(&backend.name), Some(&server.name));
                }
            }
            wanted
        }
        (None, None) => Wanted::one(names.0.as_deref(), names.1.as_deref()),
    };
    let file = match config_file::locate(typed.config.config.as_deref(), env, &argv0) {
        Ok(Some((path, source))) => Some(config_file::load(&path, source, &wanted).map_err(usage)?),
        Ok(None) => None,
        Err(f) => return Err(usage(f)),
    };
    let merging = Merging {
        file: file.as_ref(),
        argv: &argv,
        cli: Arc::new(typed.clone()),
        typed: given.into(),
        explain: typed.config.explain,
        merged: RefCell::new(HashMap::new()),
        described: RefCell::new(HashMap::new()),
    };
    let (targets, pool) = match (&runtime, &cfg) {
        (Some(servers), cfg) => (
            runtime_pool(servers, cfg.as_ref(), &merging, typed.run.interval),
            true,
        ),
        (None, Some(cfg)) => (pool(&typed, cfg, &merging).map_err(usage)?, true),
        (None, None) => (
            named_targets(&typed, names, env, &merging).map_err(usage)?,
            false,
        ),
    };
    let typed_explain = typed.config.explain;
    Ok(Gathered::Run(Box::new(Arguments {
        cli: typed,
        targets,
        pool,
        looked_for: match typed_explain {
            true => looked_for(&argv0),
            false => String::new(),
        },
    })))
}

/// What merging a target's options needs.
struct Merging<'a> {
    file: Option<&'a ConfigFile>,
    argv: &'a [OsString],
    /// What argv parsed to.
    cli: Arc<Cli>,
    typed: Arc<[String]>,
    explain: bool,
    /// The options of each set of sections met (by their lines): the
    /// servers of a pool mostly share theirs, parsed once.
    merged: RefCell<HashMap<Vec<usize>, Merged>>,
    /// Their `key=value` descriptions, for `--explain`, likewise.
    described: RefCell<HashMap<Vec<usize>, Result<String, Failure>>>,
}

/// The options of one set of sections, or why they are wrong.
type Merged = Result<Arc<Cli>, Failure>;

impl Merging<'_> {
    /// The command line over the sections of the file for `backend` and
    /// `server`: the sections' lines go to clap first, then the command
    /// line, and the last occurrence of an option wins.
    fn merge(
        &self,
        target: impl FnOnce() -> Result<Target, Failure>,
        backend: Option<String>,
        server: Option<String>,
    ) -> Result<Box<Prepared>, Failure> {
        let layers = self
            .file
            .map(|f| f.layers(backend.as_deref(), server.as_deref()))
            .unwrap_or_default();
        let key: Vec<usize> = layers.iter().map(|s| s.line).collect();
        let options = self
            .merged
            .borrow_mut()
            .entry(key.clone())
            .or_insert_with(|| self.parse(&layers))
            .clone()?;
        let (applied, described) = match self.explain {
            false => (None, None),
            true => (
                self.file.map(|file| Applied {
                    path: file.path.clone(),
                    source: file.source,
                    sections: layers.iter().map(|s| (s.kind.clone(), s.line)).collect(),
                    backend,
                    server,
                }),
                Some(
                    self.described
                        .borrow_mut()
                        .entry(key)
                        .or_insert_with(|| cli::describe(&self.args(&layers)[1..]))
                        .clone()?,
                ),
            ),
        };
        Ok(Box::new(Prepared {
            target: target()?,
            options,
            typed: self.typed.clone(),
            applied,
            described,
        }))
    }

    /// The sections' lines as arguments, then the command line.
    fn args(&self, layers: &[&config_file::Section]) -> Vec<OsString> {
        let argv0 = self.argv.first().cloned().unwrap_or_default();
        let mut merged = Vec::with_capacity(self.argv.len() + 8);
        merged.push(argv0);
        merged.extend(layers.iter().flat_map(|s| s.entries.iter().map(Entry::arg)));
        merged.extend(self.argv.iter().skip(1).cloned());
        merged
    }

    /// The options of one set of sections.
    fn parse(&self, layers: &[&config_file::Section]) -> Merged {
        let Some(file) = self
            .file
            .filter(|_| layers.iter().any(|s| !s.entries.is_empty()))
        else {
            // Nothing from the file: the command line as already parsed.
            return Ok(self.cli.clone());
        };
        // An unknown key is named before clap sees it: clap's suggestions
        // cost seconds on a key of megabytes.
        for entry in layers.iter().flat_map(|s| &s.entries) {
            if cli::in_file(&entry.key).is_none() {
                return Err(file.error_at(
                    entry.line,
                    format!("unknown key '{}'", crate::text::escape(&entry.key)),
                ));
            }
        }
        match cli::parse(&self.args(layers)) {
            Ok(cli) => Ok(Arc::new(cli)),
            Err(e) => {
                // Only on failure is each line checked alone, to name the one at fault.
                for entry in layers.iter().flat_map(|s| &s.entries) {
                    config_file::validate(file, entry)?;
                }
                Err(Failure::Usage(format!(
                    "{}: {}",
                    file.path.display(),
                    cli::error_reason(&e)
                )))
            }
        }
    }
}

/// HAProxy's four arguments, or one or more URLs, with the config-file
/// sections `names` (backend, server). Any error is the run's.
fn named_targets(
    typed: &Cli,
    (backend, server): (Option<String>, Option<String>),
    env: &dyn Fn(&str) -> Option<String>,
    merging: &Merging<'_>,
) -> Result<Vec<TargetArgs>, Failure> {
    let urls = typed.targets.iter().any(|t| t.contains("://"));
    let sets: Vec<&[String]> = if urls && typed.targets.len() > 1 {
        typed.targets.chunks(1).collect()
    } else {
        vec![&typed.targets[..]]
    };
    sets.into_iter()
        .map(|args| {
            let shown = args.join(" ");
            let mut prepared =
                merging.merge(|| target::parse(args, env), backend.clone(), server.clone())?;
            // Only now is it known whether `--send-state` (a setting the
            // config file may hold) asks for what HAProxy's variables say.
            if prepared.options.probe_args.http.send_state && prepared.target.haproxy {
                prepared.target.send_state =
                    target::haproxy_send_state(&prepared.target).map(Box::new);
            }
            Ok(TargetArgs {
                backend: prepared.target.backend.clone(),
                server: prepared.target.server.clone(),
                shown,
                haproxy_state: None,
                prepared: Ok(prepared),
            })
        })
        .collect()
}

/// Every enabled server of the selected backends. A server whose settings
/// are wrong fails alone (exit 2 in its outcome); the pool is still checked.
fn pool(
    typed: &Cli,
    cfg: &haproxy_cfg::HaproxyConfig,
    merging: &Merging<'_>,
) -> Result<Vec<TargetArgs>, Failure> {
    let backends = cfg.select(&typed.config.backend)?;
    let mut targets = Vec::new();
    for backend in backends {
        for server in backend.servers.iter().filter(|s| !s.disabled) {
            let (addr, port) = server.check_target();
            let (addr, port) = (addr.as_str(), port.as_str());
            let names = (Some(backend.name.clone()), Some(server.name.clone()));
            let target = || {
                if let Some(problem) = &server.problem {
                    return Err(Failure::Usage(problem.clone()));
                }
                Ok(Target {
                    haproxy: false,
                    endpoint: target::parse_server(addr, port)?,
                    url_path: None,
                    scheme: None,
                    server_ssl: server.ssl,
                    backend: names.0.clone(),
                    server: names.1.clone(),
                    // As HAProxy would pass it; how many it has now is its own.
                    maxconn: Some(server.maxconn),
                    curconn: None,
                    notes: Vec::new(),
                    // --interval where the line gives no `inter`.
                    cadence: Some(
                        server.cadence.with_default(
                            typed
                                .run
                                .interval
                                .unwrap_or(target::Cadence::default().inter),
                        ),
                    ),
                    haproxy_state: None,
                    send_state: None,
                })
            };
            let prepared = merging
                .merge(target, names.0.clone(), names.1.clone())
                .map(|mut p| {
                    // The names, address and port from the file; the
                    // resident mode adds its own state word.
                    if p.options.probe_args.http.send_state {
                        p.target.send_state = target::haproxy_send_state(&p.target).map(Box::new);
                    }
                    p
                });
            targets.push(TargetArgs {
                backend: names.0,
                server: names.1,
                shown: format!("{addr}:{port}"),
                haproxy_state: None,
                prepared,
            });
        }
    }
    if targets.is_empty() {
        return Err(Failure::Usage(format!(
            "{}: no enabled server in the selected backends",
            cfg.path.display()
        )));
    }
    Ok(targets)
}

/// Reads the servers of the running HAProxy: the backends typed with
/// `--backend`, else those haproxy.cfg marks with `option external-check`,
/// else all. A backend asked for that the runtime API lists no server of
/// is the run's error: the file and the running HAProxy disagree, or a
/// name is mistyped.
fn read_runtime(
    addr: &crate::net::Endpoint,
    typed_backends: &[String],
    cfg: Option<&haproxy_cfg::HaproxyConfig>,
) -> Result<Vec<haproxy_api::RuntimeServer>, Failure> {
    let (backends, from) = match cfg {
        Some(cfg) if typed_backends.is_empty() => {
            let marked: Vec<String> = cfg.select(&[])?.iter().map(|b| b.name.clone()).collect();
            if marked.is_empty() {
                return Err(Failure::Usage(format!(
                    "{}: no backend has `option external-check` or an `agent-check` server: name the backends to check with --backend",
                    cfg.path.display()
                )));
            }
            (
                marked,
                " (marked `option external-check` or `agent-check` in haproxy.cfg)",
            )
        }
        _ => (typed_backends.to_vec(), ""),
    };
    let deadline = Deadline::starting_at(std::time::Instant::now(), haproxy_api::TIMEOUT);
    let servers = haproxy_api::read_pool(addr, deadline, &backends)?;
    for b in &backends {
        if !servers.iter().any(|s| &s.backend == b) {
            return Err(Failure::Usage(format!(
                "HAProxy's runtime API at {} lists no server in backend '{}'{from}: no such backend, or it is empty",
                haproxy_api::shown(addr),
                crate::text::escape(b)
            )));
        }
    }
    if servers.is_empty() {
        return Err(Failure::Usage(format!(
            "HAProxy's runtime API at {} lists no server",
            haproxy_api::shown(addr)
        )));
    }
    Ok(servers)
}

/// Every server the runtime API listed, at its current address and check
/// port, with its config-file sections. A server whose address the runtime
/// API does not show (`unix@`: `-`) takes its path from haproxy.cfg, or
/// fails alone. Servers in MAINT are here too: the plan lists them
/// without probing them.
fn runtime_pool(
    servers: &[haproxy_api::RuntimeServer],
    cfg: Option<&haproxy_cfg::HaproxyConfig>,
    merging: &Merging<'_>,
    interval: Option<std::time::Duration>,
) -> Vec<TargetArgs> {
    let mut targets = Vec::with_capacity(servers.len());
    for s in servers {
        let in_file = cfg
            .and_then(|c| c.backends.iter().find(|b| b.name == s.backend))
            .and_then(|b| b.servers.iter().find(|f| f.name == s.name));
        let addr = s
            .check_address()
            .or_else(|| match in_file.map(|f| &f.address) {
                Some(haproxy_cfg::ServerAddress::Unix(path)) => Some(path.display().to_string()),
                _ => None,
            });
        let port = s.check_port_text();
        let names = (Some(s.backend.clone()), Some(s.name.clone()));
        let target = || {
            let Some(addr) = &addr else {
                return Err(Failure::Usage(format!(
                    "address not readable from the runtime API (a unix@ server?){}",
                    if cfg.is_some() {
                        ", nor found in haproxy.cfg"
                    } else {
                        ": give --haproxy-cfg to read it from the file"
                    }
                )));
            };
            Ok(Target {
                haproxy: false,
                endpoint: target::parse_server(addr, &port)?,
                url_path: None,
                scheme: None,
                server_ssl: s.ssl || in_file.is_some_and(|f| f.ssl),
                backend: names.0.clone(),
                server: names.1.clone(),
                // The file's maxconn and inter/rise/fall, where it has
                // the server: the runtime API lists neither.
                maxconn: in_file.map(|f| f.maxconn),
                curconn: None,
                notes: Vec::new(),
                cadence: in_file.map(|f| {
                    f.cadence
                        .with_default(interval.unwrap_or(target::Cadence::default().inter))
                }),
                haproxy_state: Some(s.state),
                send_state: Some(Box::new(s.send_state.clone())),
            })
        };
        let prepared = merging.merge(target, names.0.clone(), names.1.clone());
        targets.push(TargetArgs {
            backend: names.0,
            server: names.1,
            shown: match &addr {
                Some(a) if a.starts_with('/') => a.clone(),
                Some(a) if a.contains(':') => format!("[{a}]:{port}"),
                Some(a) => format!("{a}:{port}"),
                None => "-".into(),
            },
            haproxy_state: Some(s.state),
            prepared,
        });
    }
    targets
}

/// `--check-config`: every line of the config file checked, and each
/// section's effective settings. The report, and whether the file is valid.
fn check_config(
    typed: &Cli,
    argv0: &OsString,
    env: &dyn Fn(&str) -> Option<String>,
) -> (String, bool) {
    let fail = |f: Failure| (failure_text(&f), false);
    let located = match config_file::locate(typed.config.config.as_deref(), env, argv0) {
        Ok(l) => l,
        Err(f) => return fail(f),
    };
    let Some((path, source)) = located else {
        return (
            format!(
                "no config file (looked for {}); built-in defaults apply\n",
                looked_for(argv0)
            ),
            true,
        );
    };
    let file = match config_file::load(&path, source, &Wanted::All) {
        Ok(f) => f,
        Err(f) => return fail(f),
    };
    let errors: Vec<String> = file
        .sections
        .iter()
        .flat_map(|s| &s.entries)
        .filter_map(|e| config_file::validate(&file, e).err())
        .map(|f| failure_text(&f))
        .collect();
    if !errors.is_empty() {
        return (errors.concat(), false);
    }
    let mut out = format!(
        "{}: OK, {} sections\n",
        file.path.display(),
        file.sections.len()
    );
    for section in &file.sections {
        let (backend, server) = section.kind.names();
        let layers = file.layers(backend, server);
        let args: Vec<OsString> = layers
            .iter()
            .flat_map(|s| s.entries.iter().map(Entry::arg))
            .collect();
        match cli::describe(&args) {
            Ok(text) => out.push_str(&format!(
                "{} (line {}): {text}\n",
                section.kind, section.line
            )),
            Err(f) => return fail(f),
        }
    }
    (out, true)
}

/// The files a config lookup tries when none is named, in order.
fn looked_for(argv0: &OsString) -> String {
    let paths: Vec<String> = config_file::candidates(argv0)
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    paths.join(", ")
}

fn failure_text(f: &Failure) -> String {
    match f {
        Failure::Usage(why) => format!("{why}\n"),
        other => format!("{other}\n"),
    }
}

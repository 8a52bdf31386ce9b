//! From the arguments of every target to checks ready to run: every usage
//! error is found here, before anything is sent. Which options fit which
//! probe comes from the options' `--help` headings.

pub mod explain;

use std::sync::Arc;
use std::time::Duration;

use crate::args::cli::{self, Cli};
use crate::args::config_file::Applied;
use crate::args::send_state::SendState;
use crate::args::target::{Cadence, Target};
use crate::args::{Arguments, TargetArgs};
use crate::net::{Endpoint, TlsClient};
use crate::outcome::{Context, Failure};
use crate::probes::{heading, Probe, Protocol, Spec, TlsArgs};
use crate::text::escape_all;

/// One check, validated.
pub struct Settings {
    pub timeout: Duration,
    pub probe: Probe,
    pub context: Arc<Context>,
    pub verbose: u8,
    /// What `--explain` and `-v` should say besides the settings (an
    /// adjustment made on the operator's behalf).
    pub notes: Vec<String>,
    /// How often the resident mode checks it.
    pub cadence: Cadence,
    /// What `--send-state` sends, when it is asked for: the resident mode
    /// puts its own state word in it when HAProxy's is not known. Boxed:
    /// a pool keeps one `Settings` per server, and most send none.
    pub send_state: Option<Box<SendState>>,
}

/// How often the resident mode checks a target haproxy.cfg says nothing
/// of: HAProxy's default `inter`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

/// A check ready to run, or one that failed before it could (a usage error
/// for that target: its outcome is reported with the others), or a server
/// listed but not probed (HAProxy has it in MAINT).
pub enum Job {
    Ready(Box<Settings>),
    Failed(Arc<Context>, Failure),
    Skipped(Arc<Context>),
}

/// A job with what `--explain` says of its settings.
pub struct Planned {
    pub job: Job,
    pub applied: Option<Applied>,
    pub described: Option<String>,
}

impl Planned {
    pub fn settings(&self) -> Option<&Settings> {
        match &self.job {
            Job::Ready(s) => Some(s),
            Job::Failed(..) | Job::Skipped(_) => None,
        }
    }
}

impl Job {
    /// Who the job is about.
    pub fn context(&self) -> &Arc<Context> {
        match self {
            Job::Ready(s) => &s.context,
            Job::Failed(c, _) | Job::Skipped(c) => c,
        }
    }
}

/// Plans every target. An error in a target named on the command line is
/// the run's; in a pool, a server's error is that server's alone.
pub fn build(arguments: Arguments) -> Result<Vec<Planned>, Failure> {
    // Several URLs share the options: each applies to the targets it fits.
    let several = !arguments.pool && arguments.targets.len() > 1;
    let explain = arguments.cli.config.explain;
    // Collected into a Vec of its own: an in-place collect would keep the
    // arguments' (larger) allocation for the whole run.
    let mut planned = Vec::with_capacity(arguments.targets.len());
    for t in arguments.targets {
        planned.push({
            let TargetArgs {
                backend,
                server,
                shown,
                haproxy_state,
                prepared,
            } = t;
            let context = || {
                Arc::new(Context {
                    haproxy: false,
                    backend: backend.as_deref().map(escape_all),
                    server: server.as_deref().map(escape_all),
                    target: escape_all(&shown),
                    probe: "-".into(),
                    protocol: "ICAP",
                    syslog: None,
                    haproxy_state,
                })
            };
            let failed = |failure| Planned {
                job: Job::Failed(context(), failure),
                applied: None,
                described: None,
            };
            // Listed, not probed: named as the check would name it when its
            // settings are valid, else by its address.
            if matches!(haproxy_state, Some(s) if !s.probed()) {
                let resolved = prepared
                    .ok()
                    .and_then(|p| resolve(&p.options, &p.target, &p.typed, several, explain).ok());
                planned.push(Planned {
                    job: Job::Skipped(resolved.map_or_else(context, |s| s.context)),
                    applied: None,
                    described: None,
                });
                continue;
            }
            let prepared = match prepared {
                Ok(p) => p,
                Err(f) if arguments.pool => {
                    planned.push(failed(f));
                    continue;
                }
                Err(f) => return Err(f),
            };
            match resolve(
                &prepared.options,
                &prepared.target,
                &prepared.typed,
                several,
                explain,
            ) {
                Ok(settings) => Planned {
                    job: Job::Ready(Box::new(settings)),
                    applied: prepared.applied,
                    described: prepared.described,
                },
                Err(f) if arguments.pool => failed(f),
                Err(f) => return Err(f),
            }
        });
    }
    Ok(planned)
}

/// The settings of one target: `options` is the command line over the
/// config file; `typed` lists the ids of the options typed on the command line.
pub fn resolve(
    options: &Cli,
    target: &Target,
    typed: &[String],
    several: bool,
    explain: bool,
) -> Result<Settings, Failure> {
    let is_typed = |id: &str| typed.iter().any(|t| t == id);
    let timeout = options.timeout.unwrap_or(cli::DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        return Err(Failure::Usage("--timeout must be greater than 0".into()));
    }
    let protocol = protocol(options, target, &is_typed)?;
    if !several {
        check_options_fit(protocol, typed)?;
    }
    let tls = tls_client(options, target, protocol, typed, several, explain)?;
    let send_state = match (options.probe_args.http.send_state, &target.send_state) {
        (true, Some(state)) => Some(SendState::clone(state).with_local_node()),
        _ => None,
    };
    let spec = Spec {
        endpoint: target.endpoint.clone(),
        url_path: target.url_path.clone(),
        tls,
        typed: &is_typed,
        dry_run: explain,
        resident: options.run.agent_listen.is_some() || options.run.metrics_listen.is_some(),
        maxconn: target.maxconn,
        curconn: target.curconn,
        send_state: send_state.as_ref().map(SendState::header),
    };
    let probe = Probe::build(protocol, &options.probe_args, spec)?;
    Ok(Settings {
        timeout,
        // Names from HAProxy's variables and haproxy.cfg, a socket path:
        // escaped here, once, for every report.
        context: Arc::new(Context {
            haproxy: target.haproxy,
            backend: target.backend.as_deref().map(escape_all),
            server: target.server.as_deref().map(escape_all),
            target: escape_all(&probe.target()),
            probe: probe.name(),
            protocol: probe.protocol_label(),
            syslog: options.syslog(),
            haproxy_state: target.haproxy_state,
        }),
        probe,
        verbose: options.verbose,
        notes: target.notes.clone(),
        cadence: target
            .cadence
            .unwrap_or_else(|| Cadence::every(options.run.interval.unwrap_or(DEFAULT_INTERVAL))),
        send_state: send_state.map(Box::new),
    })
}

/// By hand the URL's scheme picks the probe; `--probe` may only agree with
/// it. In the HAProxy form `--probe` (from the command line or the config
/// file) picks it; ICAP by default.
fn protocol(
    options: &Cli,
    target: &Target,
    typed: &dyn Fn(&str) -> bool,
) -> Result<Protocol, Failure> {
    match target.scheme {
        Some(scheme) => match options.probe {
            Some(p) if typed("probe") && p != scheme.protocol => Err(Failure::Usage(format!(
                "--probe {} contradicts the URL's scheme",
                p.name().to_ascii_lowercase()
            ))),
            _ => Ok(scheme.protocol),
        },
        None => Ok(options.probe.unwrap_or(Protocol::Icap)),
    }
}

/// Options typed for another probe are mistakes; from a config file they
/// may be meant for other sections, and are ignored. Where an option
/// applies is its `--help` heading.
fn check_options_fit(protocol: Protocol, typed: &[String]) -> Result<(), Failure> {
    for id in typed {
        let Some((long, heading)) = cli::placement(id) else {
            continue;
        };
        if cli::protocols_under(heading.as_deref()).is_some_and(|fits| !fits.contains(&protocol)) {
            return Err(Failure::Usage(format!(
                "--{long} does not apply to the {} probe",
                protocol.name()
            )));
        }
    }
    Ok(())
}

/// TLS on or off, and its configuration, built only when on.
///
/// By hand: the scheme (icaps, https, tls) or `--tls`. HAProxy form: the last
/// of `--tls`/`--no-tls` (config file, then command line), else
/// HAPROXY_SERVER_SSL=1.
fn tls_client(
    options: &Cli,
    target: &Target,
    protocol: Protocol,
    typed: &[String],
    several: bool,
    explain: bool,
) -> Result<Option<TlsClient>, Failure> {
    let args = &options.probe_args.tls;
    let on = match target.scheme {
        Some(scheme) => {
            if scheme.tls && typed.iter().any(|t| t == "no_tls") && args.no_tls {
                return Err(Failure::Usage(
                    "--no-tls contradicts the URL's scheme".into(),
                ));
            }
            scheme.tls || args.tls
        }
        None => args.tls || (!args.no_tls && target.server_ssl),
    };
    if !on && !several {
        for id in typed
            .iter()
            .filter(|id| !TlsArgs::SWITCHES.contains(&id.as_str()))
        {
            if let Some((long, Some(h))) = cli::placement(id) {
                if h == heading::TLS {
                    return Err(Failure::Usage(format!(
                        "--{long} needs TLS: give --tls or use {}://",
                        protocol.tls_scheme()
                    )));
                }
            }
        }
    }
    if !on {
        return Ok(None);
    }
    let host = match &target.endpoint {
        Endpoint::Tcp { host, .. } => Some(host),
        Endpoint::Unix(_) => None,
    };
    let client = TlsClient::new(&args.options(), host)?;
    if args.insecure && !explain {
        crate::report::usage_error(&Failure::Usage(
            "warning: --insecure: the server's certificate and name are not verified".into(),
        ));
    }
    Ok(Some(client))
}

/// Settings of a TCP check of 127.0.0.1:1 with `context`, for other
/// modules' tests.
#[cfg(test)]
pub fn test_settings(context: Arc<Context>, cadence: Cadence) -> Settings {
    let spec = Spec {
        endpoint: crate::net::Endpoint::Tcp {
            host: crate::net::Host::Ip(std::net::Ipv4Addr::LOCALHOST.into()),
            port: 1,
        },
        url_path: None,
        tls: None,
        typed: &|_| false,
        dry_run: false,
        resident: true,
        maxconn: None,
        curconn: None,
        send_state: None,
    };
    let probe = Probe::build(Protocol::Tcp, &crate::probes::ProbeArgs::default(), spec)
        .expect("a TCP probe");
    Settings {
        timeout: Duration::from_millis(500),
        probe,
        context,
        verbose: 0,
        notes: Vec::new(),
        cadence,
        send_state: None,
    }
}

#[cfg(test)]
mod test {
    use std::ffi::OsString;

    use crate::args::{self, Gathered};

    /// The checks planned from these arguments, with no config file of this
    /// machine's applying.
    fn plan(args: &[&str]) -> Vec<super::Planned> {
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/icap-check.conf");
        let mut argv = vec![
            OsString::from("icap-check"),
            "--config".into(),
            config.into(),
        ];
        argv.extend(args.iter().map(OsString::from));
        match args::gather(argv, &|_| None) {
            Ok(Gathered::Run(a)) => super::build(*a).expect("a plan"),
            _ => panic!("{args:?} do not plan"),
        }
    }

    fn needs_watchdog(args: &[&str]) -> bool {
        let planned = plan(args);
        !planned[0]
            .settings()
            .expect("a ready check")
            .probe
            .bounded_by_deadline()
    }

    #[test]
    fn the_watchdog_guards_what_sockets_cannot_bound() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sample.pdf");
        // Sockets only: the deadline bounds every wait (names resolve on a helper thread).
        assert!(!needs_watchdog(&["icap://127.0.0.1/echo"]));
        assert!(!needs_watchdog(&["icap://localhost/echo"]));
        assert!(!needs_watchdog(&[
            "--method",
            "respmod",
            "icap://[::1]/echo"
        ]));
        assert!(!needs_watchdog(&["http://127.0.0.1/"]));
        assert!(!needs_watchdog(&["tcp://127.0.0.1:25"]));
        // A UNIX connect into a full backlog retries without blocking.
        assert!(!needs_watchdog(&[
            "--service",
            "echo",
            "NOT_USED",
            "NOT_USED",
            "/run/c-icap.sock",
            "NOT_USED"
        ]));
        // A file on slow storage.
        assert!(needs_watchdog(&[
            "--method",
            "respmod",
            "--file",
            sample,
            "icap://127.0.0.1/echo"
        ]));
        assert!(needs_watchdog(&[
            "--method",
            "respmod",
            "--output",
            "/dev/null",
            "icap://127.0.0.1/echo"
        ]));
    }

    #[test]
    fn options_for_another_probe_are_named() {
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/icap-check.conf");
        let fails = |args: &[&str], says: &str| {
            let mut argv = vec![
                OsString::from("icap-check"),
                "--config".into(),
                config.into(),
            ];
            argv.extend(args.iter().map(OsString::from));
            let Ok(Gathered::Run(a)) = args::gather(argv, &|_| None) else {
                panic!("{args:?}")
            };
            match super::build(*a) {
                Err(crate::outcome::Failure::Usage(why)) => assert!(why.contains(says), "{why}"),
                Err(other) => panic!("{args:?}: {other:?}"),
                Ok(_) => panic!("{args:?} planned"),
            }
        };
        fails(
            &["--send", "x", "icap://h/echo"],
            "--send does not apply to the ICAP probe",
        );
        fails(
            &["--service", "x", "http://h/"],
            "--service does not apply to the HTTP probe",
        );
        fails(
            &["--method", "get", "tcp://h:1"],
            "--method does not apply to the TCP probe",
        );
        fails(
            &["--expect-string", "x", "icap://h/e"],
            "--expect-string does not apply to the ICAP",
        );
        fails(
            &["--sni", "x", "icap://h/echo"],
            "--sni needs TLS: give --tls or use icaps://",
        );
        fails(
            &["--probe", "http", "icap://h/echo"],
            "--probe http contradicts the URL's scheme",
        );
        assert_eq!(plan(&["--expect-string", "x", "tcp://h:1"]).len(), 1);
        assert_eq!(plan(&["--sni", "x", "https://h/"]).len(), 1);
    }
}

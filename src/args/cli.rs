//! The command line: one definition per option, whose doc comment is its
//! `--help` text, its man page entry and its config-file key, and whose
//! `--help` heading says where it applies: a probe's options sit under that
//! probe's heading (they are defined beside it, in `probes/`), options that
//! cannot go in a config file under a "command line only" heading.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::time::parse_time;
use crate::outcome::{ExitStatus, Failure, Syslog};
use crate::probes::{heading, ProbeArgs, Protocol, SCHEMES};
use crate::report::{syslog, Format};

/// The default deadline: below HAProxy's default `inter` (2s), after which
/// HAProxy kills the check and logs no reason.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

/// The heading of options that apply to every check: clap's own "Options".
/// Set explicitly because the probes' options, flattened before them, would
/// otherwise lend them their heading.
const COMMON: Option<&str> = None;

/// Headings of the options that only make sense on the command line: the
/// config file rejects them as keys.
pub mod only {
    /// Options that choose or inspect the configuration: not settings of a check.
    pub const CONFIG: &str = "Config file (command line only)";
    /// Options of the run as a whole.
    pub const RUN: &str = "Several targets and output (command line only)";
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "icap-check",
    version,
    about = "Health check for ICAP servers, run by HAProxy as its external-check command or by hand",
    // The epilogue (`after_help()`) is added only when help is shown: a
    // check does not pay for formatting it.
    max_term_width = 100,
    // Config-file sections and then the command line are given to clap as
    // one argument list: the last occurrence of an option wins.
    args_override_self = true
)]
pub struct Cli {
    /// URLs (icap, icaps, http, https, tcp or tls; one or more), or HAProxy's four arguments
    #[arg(value_name = "TARGET", allow_hyphen_values = false)]
    pub targets: Vec<String>,

    #[command(flatten)]
    pub probe_args: ProbeArgs,

    /// Deadline for the whole check (resolve, connect, every write and read), in HAProxy's time
    /// format: a bare number is milliseconds; us, ms, s, m, h, d accepted. Keep it below the
    /// server's `inter` [default: 1500ms]
    #[arg(long, value_name = "TIME", value_parser = parse_time, help_heading = COMMON)]
    pub timeout: Option<Duration>,

    /// Protocol of the probe: icap, http (HTTP/1.1, with TLS https) or tcp (connect, then
    /// --send/--expect-*; with TLS a handshake). A URL's scheme picks it by hand [default: icap]
    #[arg(long, value_enum, ignore_case = true, value_name = "PROTOCOL", help_heading = COMMON)]
    pub probe: Option<Protocol>,

    /// Log the exchange to stderr: -v request and response heads, -vv progress, -vvv everything
    #[arg(short, long, action = clap::ArgAction::Count, help_heading = COMMON)]
    pub verbose: u8,

    /// Also send the reason of a failure to syslog: /dev/log (the default), another UNIX datagram
    /// socket path, or udp:HOST:PORT. Nothing is sent on success; an unreachable syslog never
    /// delays or fails the check
    #[arg(long, value_name = "TARGET", num_args = 0..=1, default_missing_value = "/dev/log",
          value_parser = syslog::parse_target, help_heading = COMMON)]
    pub syslog: Option<crate::outcome::SyslogTarget>,

    /// Syslog facility: kern, user, daemon, auth, syslog, local0..local7 [default: daemon]
    #[arg(long, value_name = "NAME", value_parser = syslog::parse_facility, help_heading = COMMON)]
    pub syslog_facility: Option<u8>,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Choosing and inspecting the config file.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = only::CONFIG)]
pub struct ConfigArgs {
    /// Config file to read [default: $ICAP_CHECK_CONFIG, else the command's own path + .conf,
    /// else /etc/icap-check.conf, else none]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Config section `backend NAME` to apply [default: $HAPROXY_PROXY_NAME, set by HAProxy].
    /// With --haproxy-cfg or --haproxy-socket: a backend to check (repeatable)
    #[arg(long, value_name = "NAME")]
    pub backend: Vec<String>,

    /// Config section `server BACKEND/NAME` to apply [default: $HAPROXY_SERVER_NAME, set by HAProxy]
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,

    /// Validate the config file and print each section's effective settings; exit 0 or 2
    #[arg(long, conflicts_with = "explain")]
    pub check_config: bool,

    /// Print which config file and sections apply to these arguments and the resulting probe,
    /// without sending anything
    #[arg(long)]
    pub explain: bool,
}

/// The run as a whole: its targets, its output.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = only::RUN)]
pub struct RunArgs {
    /// Check every server of a pool as read from haproxy.cfg: the backends named by --backend, by
    /// default every one with `option external-check` or a server with `agent-check`, each with
    /// its config-file sections
    #[arg(long, value_name = "PATH")]
    pub haproxy_cfg: Option<PathBuf>,

    /// Check every server of the running HAProxy, read from its runtime API (`stats socket`; level
    /// user is enough): a UNIX socket path, or ipv4@IP:PORT / ipv6@[IP]:PORT. The backends named
    /// by --backend, by default those --haproxy-cfg selects (`option external-check` or `agent-check`), else all.
    /// Servers in MAINT are listed, not probed; every output shows HAProxy's state beside the
    /// check's. Read with read-only commands under a fixed 3s deadline
    #[arg(long, value_name = "ADDR", value_parser = super::haproxy_api::parse_socket)]
    pub haproxy_socket: Option<crate::net::Endpoint>,

    /// Resident mode: how often --haproxy-socket is read again, so that servers added, moved or
    /// deleted are picked up (HAProxy time format). A one-shot run reads it once [default: 5s]
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub haproxy_refresh: Option<Duration>,

    /// Checks run at once when there are several targets [default: 16]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,

    /// Output: human (one line per target), json (one object per target per line), nagios
    /// (monitoring-plugins output and exit codes), prometheus (text exposition for node_exporter's
    /// textfile collector) [default: human]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,

    /// Nagios WARNING when a healthy check took longer than this (HAProxy time format)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub warning: Option<Duration>,

    /// Nagios CRITICAL when a healthy check took longer than this (HAProxy time format)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub critical: Option<Duration>,

    /// Run the check N times (at most 1000000) and print min/median/max of every phase and how
    /// many failed
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_REPEAT))]
    pub repeat: Option<u32>,

    /// Pause between --repeat runs (HAProxy time format) [default: 1s]. In the resident mode, how
    /// often a target haproxy.cfg gives no `inter` for is checked [default: 2s, HAProxy's]
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub interval: Option<Duration>,

    /// Resident mode: stay running, check every target on its own schedule in threads of this
    /// process, and answer HAProxy's agent-check on ADDR:PORT (a port alone: 127.0.0.1) from the
    /// latest results: `up` or `down` and the reason. SIGHUP rereads the files, SIGTERM stops
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_listen)]
    pub agent_listen: Option<std::net::SocketAddr>,

    /// Resident mode: serve the targets' state on ADDR:PORT (a port alone: 127.0.0.1): Prometheus
    /// metrics at /metrics, one target's at /probe?target=BACKEND/SERVER, a status page at /.
    /// Turns the resident mode on by itself (monitoring only) or beside --agent-listen
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_listen)]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Resident mode: add `maxconn:N` to agent replies, N the service's OPTIONS Max-Connections
    /// [default: off]
    #[arg(long)]
    pub agent_maxconn: bool,

    /// Resident mode: add a weight to agent replies from the check's duration: 100% up to a
    /// quarter of --timeout, down to 10% at it [default: off; HAProxy's static algorithms take
    /// only 0% and 100%]
    #[arg(long)]
    pub agent_weight: bool,
}

/// `ADDR:PORT`, `[IPv6]:PORT`, or a port alone (loopback: an agent or a
/// metrics page answers the machine itself unless told otherwise).
pub fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    let text = text.trim();
    let port = text.strip_prefix(':').unwrap_or(text);
    if let Some(p) = super::target::port_number(port) {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], p)));
    }
    text.parse().map_err(|_| {
        format!(
            "invalid address '{}': expected IP:PORT, [IPv6]:PORT or a port",
            crate::text::escape(text)
        )
    })
}

/// How often the resident mode reads `--haproxy-socket` again.
pub const DEFAULT_HAPROXY_REFRESH: Duration = Duration::from_secs(5);

/// The most runs `--repeat` takes: a day and a half at 0.1 s apart.
pub const MAX_REPEAT: i64 = 1_000_000;

impl Cli {
    /// The syslog destination, if any.
    pub fn syslog(&self) -> Option<Syslog> {
        self.syslog.clone().map(|target| Syslog {
            target,
            facility: self.syslog_facility.unwrap_or(syslog::DEFAULT_FACILITY),
        })
    }
}

/// The `--help` text, with its epilogue.
pub fn help() -> String {
    use clap::CommandFactory;
    Cli::command()
        .after_help(after_help())
        .render_help()
        .to_string()
}

/// The `--help` epilogue: targets from the scheme table, exit codes from
/// the exit status table, the severity order from its constant.
pub fn after_help() -> String {
    let mut out = String::from("Targets:\n");
    let mut row = |form: &str, about: &str| {
        if form.len() < 36 {
            let _ = writeln!(out, "  {form:36}{about}");
        } else {
            let _ = writeln!(out, "  {form}\n  {:36}{about}", "");
        }
    };
    for s in &SCHEMES {
        row(s.form, s.about);
    }
    row(
        "PROXY_ADDR PROXY_PORT SERVER_ADDR SERVER_PORT",
        "as HAProxy's external-check runs it: SERVER_ADDR may be",
    );
    for more in [
        "a bare IPv6 address or a UNIX socket path (port NOT_USED);",
        "the probe is --probe (icap by default); TLS is on with",
        "--tls, or with HAPROXY_SERVER_SSL=1 unless --no-tls",
    ] {
        let _ = writeln!(out, "{:38}{more}", "");
    }
    out.push_str("\nExit status:\n");
    for (status, meaning) in ExitStatus::TABLE {
        // Wrapped by hand: clap would not indent the continuation.
        let mut line = format!("  {}  ", status.code());
        for word in meaning.split(' ') {
            if line.len() + word.len() > 95 {
                let _ = writeln!(out, "{}", line.trim_end());
                line = " ".repeat(5);
            }
            line.push_str(word);
            line.push(' ');
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = write!(
        out,
        "  Several targets: the worst code, in this order from worst: {}.\n  \
         --format nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (usage errors).\n\n\
         Config file: sections `defaults`, `backend NAME` and `server BACKEND/SERVER`, each followed by\n\
         lines `KEY [VALUE]`, where KEY is a long option without its dashes (`timeout 1500ms`, `method\n\
         respmod`); not the options under a \"command line only\" heading. Server over backend over\n\
         defaults; command-line options over all.\n\n\
         Output: with HAProxy's four arguments, nothing on success and one line on stderr on failure;\n\
         with a URL, one line on stdout (OK ... or FAIL ...).",
        ExitStatus::severity_text()
    );
    out
}

thread_local! {
    /// The options' definition, built on first use and never dropped.
    static COMMAND: std::cell::RefCell<Option<&'static mut clap::Command>> =
        const { std::cell::RefCell::new(None) };
}

/// The options' definition. Built once per process (about half of the
/// instructions of a whole OPTIONS check go into building clap's definition
/// of some 60 options) and left to the process's exit to free.
fn with_command<T>(f: impl FnOnce(&mut clap::Command) -> T) -> T {
    use clap::CommandFactory;
    COMMAND.with_borrow_mut(|slot| {
        let command = slot.get_or_insert_with(|| Box::leak(Box::new(Cli::command())));
        f(command)
    })
}

/// Parses arguments (argv[0] first) with the one definition of the options.
pub fn parse(args: &[std::ffi::OsString]) -> Result<Cli, clap::Error> {
    Ok(parse_typed(args)?.0)
}

/// [`parse`], and the ids of the options given in `args`.
pub fn parse_typed(args: &[std::ffi::OsString]) -> Result<(Cli, Vec<String>), clap::Error> {
    use clap::FromArgMatches;
    with_command(|command| {
        let mut matches = command.try_get_matches_from_mut(args)?;
        // Matched ids include clap derive's group of each flattened struct.
        let given = matches
            .ids()
            .map(|id| id.as_str())
            .filter(|id| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
            .filter(|id| command.get_arguments().any(|a| a.get_id() == *id))
            .map(str::to_string)
            .collect();
        let cli = Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(command))?;
        Ok((cli, given))
    })
}

/// `key=value` for every setting in `args` (no argv[0]), the last
/// occurrence winning, in the order of the definition: what `--explain` and
/// `--check-config` show.
pub fn describe(args: &[std::ffi::OsString]) -> Result<String, Failure> {
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(std::ffi::OsString::from("icap-check"));
    argv.extend_from_slice(args);
    let options = options(); // before borrowing the definition below
    with_command(|command| {
        let matches = command
            .try_get_matches_from_mut(&argv)
            .map_err(|e| Failure::Usage(one_line_error(&e)))?;
        let mut parts = Vec::new();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            let setting = options.iter().any(|o| o.id == id && o.is_setting());
            if !setting || matches.value_source(id) != Some(clap::parser::ValueSource::CommandLine)
            {
                continue;
            }
            let key = arg.get_long().unwrap_or(id);
            if let clap::ArgAction::Count = arg.get_action() {
                parts.push(format!("{key}={}", matches.get_count(id)));
            } else if arg.get_action().takes_values() {
                if let Some(last) = matches.get_raw(id).and_then(|mut v| v.next_back()) {
                    parts.push(format!(
                        "{key}={}",
                        crate::text::escape(&last.to_string_lossy())
                    ));
                }
            } else {
                parts.push(key.to_string());
            }
        }
        Ok(if parts.is_empty() {
            "(built-in defaults)".to_string()
        } else {
            parts.join(" ")
        })
    })
}

/// What the definition says of one option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionInfo {
    pub id: String,
    pub long: Option<String>,
    pub heading: Option<String>,
    /// Takes a value, or is a flag (counted flags too).
    pub takes_value: bool,
    /// The value may be left out (`syslog` alone means /dev/log).
    pub value_optional: bool,
    /// Counted (`-vvv`).
    pub counted: bool,
}

impl OptionInfo {
    /// Whether it is a setting of a check (for descriptions of settings).
    pub fn is_setting(&self) -> bool {
        self.long.is_some()
            && self.heading.as_deref() != Some(only::CONFIG)
            && !matches!(self.id.as_str(), "help" | "version")
    }
}

/// The long name and `--help` heading of the option with clap id `id`.
/// Looks at the definition directly: a check with a few options typed
/// does not pay for [`options`].
pub fn placement(id: &str) -> Option<(String, Option<String>)> {
    with_command(|command| {
        command
            .get_arguments()
            .find(|a| a.get_id().as_str() == id)
            .map(|a| {
                (
                    a.get_long().unwrap_or(id).to_string(),
                    a.get_help_heading().map(str::to_string),
                )
            })
    })
}

/// The probes an option under `heading` applies to; `None`: every probe.
pub fn protocols_under(heading: Option<&str>) -> Option<Vec<Protocol>> {
    use clap::ValueEnum;
    let h = heading?;
    heading::PROBE_SPECIFIC.contains(&h).then(|| {
        Protocol::value_variants()
            .iter()
            .copied()
            .filter(|p| p.headings().contains(&h))
            .collect()
    })
}

/// Whether the config file may set the option with this long name (`None`:
/// there is no such option).
pub fn in_file(long: &str) -> Option<bool> {
    with_command(|command| {
        command.build();
        command
            .get_arguments()
            .find(|a| a.get_long() == Some(long))
            .map(|a| {
                !matches!(a.get_help_heading(), Some(only::CONFIG) | Some(only::RUN))
                    && !matches!(a.get_id().as_str(), "help" | "version")
            })
    })
}

/// Whether the option with this long name may be given more than once
/// (`--header`).
pub fn repeatable(long: &str) -> bool {
    with_command(|command| {
        command
            .get_arguments()
            .find(|a| a.get_long() == Some(long))
            .is_some_and(|a| matches!(a.get_action(), clap::ArgAction::Append))
    })
}

/// Every option of the definition, in definition order (read once).
pub fn options() -> &'static [OptionInfo] {
    static OPTIONS: std::sync::OnceLock<Vec<OptionInfo>> = std::sync::OnceLock::new();
    OPTIONS.get_or_init(|| {
        with_command(|command| {
            command.build();
            command
                .get_arguments()
                .map(|a| {
                    let takes_value = a.get_action().takes_values();
                    OptionInfo {
                        id: a.get_id().as_str().to_string(),
                        long: a.get_long().map(str::to_string),
                        heading: a.get_help_heading().map(str::to_string),
                        takes_value,
                        value_optional: takes_value
                            && a.get_num_args().is_some_and(|n| n.min_values() == 0),
                        counted: matches!(a.get_action(), clap::ArgAction::Count),
                    }
                })
                .collect()
        })
    })
}

/// The option whose long name is `long`.
pub fn option(long: &str) -> Option<&'static OptionInfo> {
    options().iter().find(|o| o.long.as_deref() == Some(long))
}

/// Whether raw arguments that clap rejected asked for `--format nagios`.
pub fn asks_for_nagios(args: &[std::ffi::OsString]) -> bool {
    args.windows(2)
        .any(|w| w[0] == "--format" && w[1] == "nagios")
        || args.iter().any(|a| a == "--format=nagios")
}

/// clap's error as one line (its first), for HAProxy's log and cron mail.
pub fn one_line_error(e: &clap::Error) -> String {
    format!("{} (see --help)", error_reason(e))
}

/// The first line of clap's error, without its "error: " prefix, escaped
/// (it quotes what was typed).
pub fn error_reason(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments");
    crate::text::escape(first.strip_prefix("error: ").unwrap_or(first))
}

#[cfg(test)]
mod test {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_option_is_documented() {
        let cmd = Cli::command();
        for arg in cmd.get_arguments() {
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
        }
    }

    /// Every option sits under a heading that says where it applies, and
    /// the lists derived from the headings are the ones the code relied on.
    #[test]
    fn headings_say_where_each_option_applies() {
        let known = [
            heading::ICAP,
            heading::HTTP,
            heading::TCP,
            heading::ICAP_HTTP,
            heading::HTTP_TCP,
            heading::TLS,
            only::CONFIG,
            only::RUN,
        ];
        let all = options();
        for o in all {
            if let Some(h) = &o.heading {
                assert!(
                    known.contains(&h.as_str()),
                    "--{}: unknown heading {h}",
                    o.id
                );
            }
        }
        let not_in_file: Vec<&str> = all
            .iter()
            .filter(|o| o.long.as_deref().is_some_and(|l| in_file(l) == Some(false)))
            .map(|o| o.id.as_str())
            .collect();
        assert_eq!(
            not_in_file,
            [
                "config",
                "backend",
                "server",
                "check_config",
                "explain",
                "haproxy_cfg",
                "haproxy_socket",
                "haproxy_refresh",
                "jobs",
                "format",
                "warning",
                "critical",
                "repeat",
                "interval",
                "agent_listen",
                "metrics_listen",
                "agent_maxconn",
                "agent_weight",
                "help",
                "version"
            ]
        );
        let of = |id: &str| placement(id).and_then(|(_, h)| protocols_under(h.as_deref()));
        assert_eq!(of("service"), Some(vec![Protocol::Icap]));
        assert_eq!(of("method"), Some(vec![Protocol::Icap, Protocol::Http]));
        assert_eq!(
            of("expect_string"),
            Some(vec![Protocol::Http, Protocol::Tcp])
        );
        assert_eq!(of("send"), Some(vec![Protocol::Tcp]));
        assert_eq!(of("headers"), Some(vec![Protocol::Http]));
        assert_eq!(of("ca_file"), None);
        for common in [
            "timeout",
            "probe",
            "verbose",
            "syslog",
            "syslog_facility",
            "targets",
        ] {
            let o = options().iter().find(|o| o.id == common).unwrap();
            assert_eq!(o.heading, None, "{common}");
        }
        assert_eq!(option("header").map(|o| o.id.as_str()), Some("headers"));
        assert!(option("syslog").is_some_and(|o| o.value_optional));
        assert!(option("verbose").is_some_and(|o| o.counted));
    }

    /// The exit codes in --help are the ones the code uses, word for word.
    #[test]
    fn help_lists_every_exit_code_and_scheme() {
        let help: String = after_help()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for (status, meaning) in ExitStatus::TABLE {
            let line = format!("{} {meaning}", status.code());
            assert!(help.contains(&line), "--help lacks '{line}'");
        }
        for s in &SCHEMES {
            assert!(help.contains(s.form), "--help lacks {}", s.form);
        }
        assert!(help.contains("from worst: 2, 3, 4, 6, 5, 1, 0."));
    }

    #[test]
    fn readme_documents_every_option_and_the_severity_order() {
        let readme = include_str!("../../README.md");
        for arg in Cli::command().get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(
                    readme.contains(&format!("`--{long}")),
                    "README.md does not document --{long}"
                );
            }
        }
        assert!(readme.contains(&format!("from worst: {}", ExitStatus::severity_text())));
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("9711"), Ok("127.0.0.1:9711".parse().unwrap()));
        assert_eq!(parse_listen(":9711"), Ok("127.0.0.1:9711".parse().unwrap()));
        assert_eq!(
            parse_listen("0.0.0.0:9711"),
            Ok("0.0.0.0:9711".parse().unwrap())
        );
        assert_eq!(
            parse_listen("[::1]:9711"),
            Ok("[::1]:9711".parse().unwrap())
        );
        assert!(parse_listen("host:9711").is_err());
        assert!(parse_listen("70000").is_err());
    }

    #[test]
    fn errors_fit_on_one_line() {
        let e = Cli::try_parse_from(["icap-check", "--timeout", "soon", "icap://h/s"]).unwrap_err();
        let line = one_line_error(&e);
        assert!(!line.contains('\n'));
        assert!(line.contains("--timeout"), "{line}");
        assert!(line.contains("invalid time 'soon'"), "{line}");
    }

    #[test]
    fn parse_says_what_was_given() {
        let argv: Vec<std::ffi::OsString> = ["icap-check", "--service", "echo", "-vv", "x"]
            .iter()
            .map(Into::into)
            .collect();
        let (cli, mut given) = parse_typed(&argv).unwrap();
        assert_eq!(cli.verbose, 2);
        given.sort();
        assert_eq!(given, ["service", "targets", "verbose"]);
    }
}

//! The command line: one definition per option, whose doc comment is its
//! `--help` text (and, with the packaging, its man page entry).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::deadline::parse_time;
use crate::icap::probe::Preview;
use crate::icap::request::Method;

/// The default deadline: below HAProxy's default `inter` (2s), after which
/// HAProxy kills the check and logs no reason.
pub const DEFAULT_TIMEOUT: &str = "1500ms";

const AFTER_HELP: &str = "\
Targets:
  icap://HOST[:PORT]/SERVICE ...      by hand, one or more; port 1344 by default, IPv6 as icap://[::1]:1344/echo
  PROXY_ADDR PROXY_PORT SERVER_ADDR SERVER_PORT
                                      as HAProxy's external-check runs it; SERVER_ADDR may be a
                                      bare IPv6 address or a UNIX socket path (port NOT_USED)

Exit status:
  0  healthy
  1  the server answered, and the answer is unhealthy (status, missing ISTag,
     method not offered, HTTP status inside)
  2  usage or configuration error (bad option or value, unreadable file)
  3  cannot connect (refused, unreachable, name not resolved)
  4  deadline passed
  5  protocol error (not ICAP, malformed, truncated, oversized)
  6  TLS failure
  Several targets: the worst code, in this order from worst: 2, 3, 4, 6, 5, 1, 0.
  --format nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (usage errors).

Config file: sections `defaults`, `backend NAME` and `server BACKEND/SERVER`, each followed by
lines `KEY [VALUE]`, where KEY is a long option without its dashes (`timeout 1500ms`, `method respmod`).
Server over backend over defaults; command-line options over all.

Output: with HAProxy's four arguments, nothing on success and one line on stderr on failure;
with a URL, one line on stdout (OK ... or FAIL ...).";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "icap-check",
    version,
    about = "Health check for ICAP servers, run by HAProxy as its external-check command or by hand",
    after_help = AFTER_HELP,
    max_term_width = 100,
    // Config-file sections and then the command line are given to clap as
    // one argument list: the last occurrence of an option wins.
    args_override_self = true
)]
pub struct Cli {
    /// icap://HOST[:PORT]/SERVICE (one or more), or HAProxy's four arguments
    #[arg(value_name = "TARGET", allow_hyphen_values = false)]
    pub targets: Vec<String>,

    /// ICAP service to check, the path of icap://HOST/SERVICE; overrides the URL's. Required: there
    /// is no default service
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,

    /// ICAP method to send [default: options]
    #[arg(long, value_enum, ignore_case = true, value_name = "METHOD")]
    pub method: Option<MethodArg>,

    /// File sent as the body of a RESPMOD or REQMOD [default: a small PDF built into the binary]
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// Body bytes sent before waiting for 100 Continue: auto (the service's Preview, learnt by an
    /// OPTIONS request first on the same connection), off (no preview), or a number, which saves
    /// the OPTIONS round trip [default: auto; off with --output]
    #[arg(long, value_name = "auto|off|N", value_parser = parse_preview)]
    pub preview: Option<Preview>,

    /// Save the adapted body of a RESPMOD or REQMOD to PATH. The request then omits `Allow: 204`,
    /// so the server must send the body back
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Unhealthy unless the service's OPTIONS Methods lists this method. With --method respmod or
    /// reqmod and --preview auto, the method sent is always required
    #[arg(long, value_enum, ignore_case = true, value_name = "METHOD")]
    pub require_method: Option<RequiredMethod>,

    /// Deadline for the whole check (resolve, connect, every write and read), in HAProxy's time
    /// format: a bare number is milliseconds; us, ms, s, m, h, d accepted. Keep it below the
    /// server's `inter` [default: 1500ms]
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub timeout: Option<Duration>,

    /// Log the exchange to stderr: -v request and response heads, -vv progress, -vvv everything
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Config file to read [default: $ICAP_CHECK_CONFIG, else the command's own path + .conf,
    /// else /etc/icap-check.conf, else none]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Config section `backend NAME` to apply [default: $HAPROXY_PROXY_NAME, set by HAProxy].
    /// With --haproxy-cfg: a backend to check (repeatable)
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

    /// Check every server of a pool as read from haproxy.cfg: the backends named by --backend, by
    /// default every one with `option external-check`, each with its config-file sections
    #[arg(long, value_name = "PATH")]
    pub haproxy_cfg: Option<PathBuf>,

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

    /// Also send the reason of a failure to syslog: /dev/log (the default), another UNIX datagram
    /// socket path, or udp:HOST:PORT. Nothing is sent on success; an unreachable syslog never
    /// delays or fails the check
    #[arg(long, value_name = "TARGET", num_args = 0..=1, default_missing_value = "/dev/log",
          value_parser = crate::syslog::parse_target)]
    pub syslog: Option<crate::syslog::Target>,

    /// Syslog facility: kern, user, daemon, auth, syslog, local0..local7 [default: daemon]
    #[arg(long, value_name = "NAME", value_parser = crate::syslog::parse_facility)]
    pub syslog_facility: Option<u8>,

    /// Run the check N times and print min/median/max of every phase and how many failed
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: Option<u32>,

    /// Pause between --repeat runs (HAProxy time format) [default: 1s]
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub interval: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Nagios,
    Prometheus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    Options,
    Respmod,
    Reqmod,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::Options => Method::Options,
            MethodArg::Respmod => Method::Respmod,
            MethodArg::Reqmod => Method::Reqmod,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RequiredMethod {
    Respmod,
    Reqmod,
}

impl RequiredMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RequiredMethod::Respmod => "RESPMOD",
            RequiredMethod::Reqmod => "REQMOD",
        }
    }
}

fn parse_preview(text: &str) -> Result<Preview, String> {
    match text.trim() {
        t if t.eq_ignore_ascii_case("auto") => Ok(Preview::Auto),
        t if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("none") => Ok(Preview::Off),
        t => match t.parse::<u64>() {
            Ok(n) if n <= u64::from(u32::MAX) => Ok(Preview::Bytes(n)),
            _ => Err(format!(
                "invalid preview '{t}': expected auto, off or a byte count"
            )),
        },
    }
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

/// The first line of clap's error, without its "error: " prefix.
pub fn error_reason(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments");
    first.strip_prefix("error: ").unwrap_or(first).to_string()
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

    /// The exit codes in --help are the ones the code uses, word for word.
    #[test]
    fn help_lists_every_exit_code() {
        let help: String = AFTER_HELP.split_whitespace().collect::<Vec<_>>().join(" ");
        for (status, meaning) in crate::verdict::ExitStatus::TABLE {
            let line = format!("{} {meaning}", status.code());
            assert!(help.contains(&line), "--help lacks '{line}'");
        }
    }

    #[test]
    fn readme_documents_every_option() {
        let readme = include_str!("../README.md");
        for arg in Cli::command().get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(
                    readme.contains(&format!("`--{long}")),
                    "README.md does not document --{long}"
                );
            }
        }
    }

    #[test]
    fn preview_values() {
        assert_eq!(parse_preview("auto"), Ok(Preview::Auto));
        assert_eq!(parse_preview("OFF"), Ok(Preview::Off));
        assert_eq!(parse_preview("1024"), Ok(Preview::Bytes(1024)));
        assert!(parse_preview("-1").is_err());
        assert!(parse_preview("lots").is_err());
    }

    #[test]
    fn errors_fit_on_one_line() {
        let e = Cli::try_parse_from(["icap-check", "--timeout", "soon", "icap://h/s"]).unwrap_err();
        let line = one_line_error(&e);
        assert!(!line.contains('\n'));
        assert!(line.contains("--timeout"), "{line}");
        assert!(line.contains("invalid time 'soon'"), "{line}");
    }
}

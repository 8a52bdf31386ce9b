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
  icaps://HOST[:PORT]/SERVICE         ICAP over TLS; port 11344 by default
  http[s]://HOST[:PORT]/PATH          the HTTP probe (ports 80, 443 by default)
  tcp://HOST:PORT, tls://HOST:PORT    the TCP probe: connect (and handshake), --send, --expect-*
  PROXY_ADDR PROXY_PORT SERVER_ADDR SERVER_PORT
                                      as HAProxy's external-check runs it; SERVER_ADDR may be a
                                      bare IPv6 address or a UNIX socket path (port NOT_USED).
                                      The probe is --probe (icap by default); TLS is on with
                                      --tls, or with HAPROXY_SERVER_SSL=1 unless --no-tls

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
    /// URLs (icap, icaps, http, https, tcp or tls; one or more), or HAProxy's four arguments
    #[arg(value_name = "TARGET", allow_hyphen_values = false)]
    pub targets: Vec<String>,

    /// ICAP service to check, the path of icap://HOST/SERVICE; overrides the URL's. Required: there
    /// is no default service
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,

    /// Method to send: for ICAP options, respmod or reqmod [default: options]; for HTTP GET,
    /// HEAD, OPTIONS, POST, PUT, DELETE, PATCH or TRACE [default: GET]. Any case
    #[arg(long, value_name = "METHOD", value_parser = parse_method)]
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

    /// Protocol of the probe: icap, http (HTTP/1.1, with TLS https) or tcp (connect, then
    /// --send/--expect-*; with TLS a handshake). A URL's scheme picks it by hand [default: icap]
    #[arg(long, value_enum, ignore_case = true, value_name = "PROTOCOL")]
    pub probe: Option<ProbeKind>,

    /// HTTP: path and query requested [default: /]
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,

    /// HTTP: a request header 'Name: value'; repeatable; Host replaces the target's
    #[arg(long = "header", value_name = "NAME: VALUE", action = clap::ArgAction::Append,
          value_parser = parse_header)]
    pub headers: Vec<(String, String)>,

    /// HTTP: request body, sent with Content-Length [default: none]
    #[arg(long, value_name = "TEXT")]
    pub body: Option<String>,

    /// HTTP: statuses that are healthy, as a list of codes and ranges (200,204,300-399)
    /// [default: 200-399, as HAProxy's httpchk]
    #[arg(long, value_name = "LIST", value_parser = parse_status_list)]
    pub expect_status: Option<crate::http::StatusList>,

    /// HTTP and TCP: unhealthy unless the answer contains TEXT (HTTP: in the first 64 KiB of the
    /// body; TCP: in the first 16 KiB received) [default: not checked]
    #[arg(long, value_name = "TEXT")]
    pub expect_string: Option<String>,

    /// HTTP and TCP: unhealthy unless the regular expression RE matches the answer, read as for
    /// --expect-string [default: not checked]
    #[arg(long, value_name = "RE")]
    pub expect_regex: Option<String>,

    /// HTTP: follow up to 5 redirects on the same server; a redirect elsewhere is unhealthy
    /// [default: a 3xx is the answer, healthy under the default --expect-status]
    #[arg(long)]
    pub follow_redirects: bool,

    /// TCP: bytes sent once connected; escapes \r \n \t \0 \\ and \xHH [default: nothing sent]
    #[arg(long, value_name = "TEXT", value_parser = crate::tcp::parse_escapes)]
    pub send: Option<crate::tcp::Bytes>,

    /// Speak TLS to the server. Implied by icaps://, https:// and tls:// URLs and, in the HAProxy
    /// form, by HAPROXY_SERVER_SSL=1 (the server line's `ssl`) [default: off]
    #[arg(long, overrides_with = "no_tls")]
    pub tls: bool,

    /// No TLS, even when HAProxy sets HAPROXY_SERVER_SSL=1 (e.g. `ssl` is there for traffic
    /// but the check port is plain text). The last of --tls and --no-tls wins
    #[arg(long, overrides_with = "tls")]
    pub no_tls: bool,

    /// TLS: trust the CA certificates in this PEM file instead of the built-in Mozilla roots (for
    /// the system's: /etc/ssl/certs/ca-certificates.crt) [default: built-in roots]
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// TLS: server name sent (SNI) and verified [default: the target's host name; none for an IP
    /// address, whose certificate must then name the IP]
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,

    /// TLS: client certificate chain (PEM), for servers that require one; needs --client-key.
    /// Under TLS 1.3 a server refuses a client certificate after the handshake: a tls:// probe
    /// sees that only with --send or --expect-*
    #[arg(long, value_name = "PATH", requires = "client_key")]
    pub client_cert: Option<PathBuf>,

    /// TLS: private key (PEM: PKCS#8, PKCS#1 or SEC1) of --client-cert
    #[arg(long, value_name = "PATH", requires = "client_cert")]
    pub client_key: Option<PathBuf>,

    /// TLS: do not verify the server's certificate or name (says so on stderr); the handshake
    /// must still succeed [default: verified]
    #[arg(long)]
    pub insecure: bool,

    /// TLS: unhealthy (exit 1) when the server's certificate expires within N days
    /// [default: not checked]
    #[arg(long, value_name = "N")]
    pub cert_expiry_days: Option<u32>,

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

/// A method as typed, upper-cased: which probe it suits is decided in settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodArg(pub String);

/// The methods `--method` accepts: ICAP's, then HTTP's.
pub const ICAP_METHODS: [&str; 3] = ["OPTIONS", "RESPMOD", "REQMOD"];
pub const HTTP_METHODS: [&str; 8] = [
    "GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE",
];

impl MethodArg {
    /// The ICAP method, if it is one.
    pub fn icap(&self) -> Option<Method> {
        match self.0.as_str() {
            "OPTIONS" => Some(Method::Options),
            "RESPMOD" => Some(Method::Respmod),
            "REQMOD" => Some(Method::Reqmod),
            _ => None,
        }
    }

    pub fn is_http(&self) -> bool {
        HTTP_METHODS.contains(&self.0.as_str())
    }
}

fn parse_method(text: &str) -> Result<MethodArg, String> {
    let upper = text.trim().to_ascii_uppercase();
    if ICAP_METHODS.contains(&upper.as_str()) || HTTP_METHODS.contains(&upper.as_str()) {
        Ok(MethodArg(upper))
    } else {
        Err("expected options, respmod, reqmod (ICAP) or GET, HEAD, OPTIONS, POST, PUT, DELETE, PATCH, TRACE (HTTP)".into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeKind {
    Icap,
    Http,
    Tcp,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| "expected 'Name: value'".to_string())?;
    let name = name.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("invalid header name '{name}'"));
    }
    let value = value.trim();
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err("control character in header value".into());
    }
    Ok((name.to_string(), value.to_string()))
}

fn parse_status_list(text: &str) -> Result<crate::http::StatusList, String> {
    crate::http::StatusList::parse(text)
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

thread_local! {
    /// The options' definition, built on first use and never dropped.
    static COMMAND: std::cell::RefCell<Option<&'static mut clap::Command>> =
        const { std::cell::RefCell::new(None) };
}

/// Parses arguments (argv[0] first) with the one definition of the options.
///
/// `Cli::try_parse_from` builds clap's definition of some 60 options on every
/// call and drops it after: half of the instructions of a whole OPTIONS check.
/// Here it is built once per process, reused by the second parse of a check
/// that applies config sections, and left to the process's exit to free.
pub fn parse(args: &[std::ffi::OsString]) -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    COMMAND.with_borrow_mut(|slot| {
        let command = slot.get_or_insert_with(|| Box::leak(Box::new(Cli::command())));
        let mut matches = command.try_get_matches_from_mut(args)?;
        Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(command))
    })
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
    fn methods_any_case_one_list() {
        assert_eq!(parse_method("respmod"), Ok(MethodArg("RESPMOD".into())));
        assert_eq!(parse_method("Get").unwrap().icap(), None);
        assert!(parse_method("Get").unwrap().is_http());
        assert_eq!(
            parse_method("options").unwrap().icap(),
            Some(Method::Options)
        );
        assert!(parse_method("options").unwrap().is_http());
        assert!(parse_method("sideways").is_err());
        assert!(parse_method("RESPMOD").unwrap().icap().is_some());
        assert!(!parse_method("RESPMOD").unwrap().is_http());
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("Host:  example.org "),
            Ok(("Host".into(), "example.org".into()))
        );
        assert_eq!(
            parse_header("X-Empty:"),
            Ok(("X-Empty".into(), String::new()))
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("Bad Name: x").is_err());
        assert!(parse_header("X: a\r\nInjected: yes").is_err());
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

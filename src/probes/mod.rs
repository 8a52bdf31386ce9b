//! The probes, one per protocol: each owns its options (a clap `Args` group
//! under its own `--help` heading), how it is built from them, how
//! `--explain` describes it, and how it runs. This file is the one place
//! that lists them: the URL schemes, the `--probe` names, the dispatch.
//!
//! Adding a probe: its file here (options, build, describe, run), a row in
//! [`SCHEMES`], a variant in [`Protocol`] and [`Probe`], and its options
//! flattened into [`ProbeArgs`].

pub mod expect;
pub mod http;
pub mod icap;
pub mod tcp;

use clap::ValueEnum;

use crate::net::{Deadline, Endpoint, TlsClient, TlsOptions};
use crate::outcome::{Failure, Observed, Verdict};

/// The `User-Agent` of every request that has one.
pub const USER_AGENT: &str = concat!("icap-check/", env!("CARGO_PKG_VERSION"));

/// `--help` headings. An option's heading says which probes it applies to:
/// settings derive from it which options fit a check, and the config-file
/// reader which keys a file may hold.
pub mod heading {
    pub const ICAP: &str = "ICAP probe";
    pub const HTTP: &str = "HTTP probe";
    pub const TCP: &str = "TCP probe";
    pub const ICAP_HTTP: &str = "ICAP and HTTP probes";
    pub const HTTP_TCP: &str = "HTTP and TCP probes";
    pub const TLS: &str = "TLS (every probe)";
    /// Every heading that belongs to some probes and not others.
    pub const PROBE_SPECIFIC: [&str; 5] = [ICAP, HTTP, TCP, ICAP_HTTP, HTTP_TCP];
}

/// The protocol of a probe (`--probe`; by hand, a URL's scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    Icap,
    Http,
    Tcp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Icap => "ICAP",
            Protocol::Http => "HTTP",
            Protocol::Tcp => "TCP",
        }
    }

    /// The `--help` headings whose options apply to this protocol's probe.
    pub fn headings(self) -> &'static [&'static str] {
        match self {
            Protocol::Icap => &[heading::ICAP, heading::ICAP_HTTP],
            Protocol::Http => &[heading::HTTP, heading::ICAP_HTTP, heading::HTTP_TCP],
            Protocol::Tcp => &[heading::TCP, heading::HTTP_TCP],
        }
    }

    /// The scheme that says TLS for this protocol, for messages.
    pub fn tls_scheme(self) -> &'static str {
        match self {
            Protocol::Icap => "icaps",
            Protocol::Http => "https",
            Protocol::Tcp => "tls",
        }
    }
}

/// A URL scheme: the probe it runs, whether it speaks TLS, its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    pub name: &'static str,
    pub protocol: Protocol,
    pub tls: bool,
    /// `None`: the URL must give a port.
    pub default_port: Option<u16>,
    /// Whether a path after the authority means something.
    pub takes_path: bool,
    /// How the URL is written, and what it does: `--help` and the man page.
    pub form: &'static str,
    pub about: &'static str,
}

/// The ICAP port when a URL or a server line gives none.
pub const ICAP_PORT: u16 = 1344;

/// Every URL scheme a target may have.
pub const SCHEMES: [Scheme; 6] = [
    Scheme {
        name: "icap",
        protocol: Protocol::Icap,
        tls: false,
        default_port: Some(ICAP_PORT),
        takes_path: true,
        form: "icap://HOST[:PORT]/SERVICE",
        about: "ICAP, port 1344 by default; IPv6 as icap://[::1]:1344/echo",
    },
    Scheme {
        name: "icaps",
        protocol: Protocol::Icap,
        tls: true,
        default_port: Some(11344),
        takes_path: true,
        form: "icaps://HOST[:PORT]/SERVICE",
        about: "ICAP over TLS, port 11344 by default",
    },
    Scheme {
        name: "http",
        protocol: Protocol::Http,
        tls: false,
        default_port: Some(80),
        takes_path: true,
        form: "http://HOST[:PORT]/PATH",
        about: "the HTTP probe, port 80 by default",
    },
    Scheme {
        name: "https",
        protocol: Protocol::Http,
        tls: true,
        default_port: Some(443),
        takes_path: true,
        form: "https://HOST[:PORT]/PATH",
        about: "HTTP over TLS, port 443 by default",
    },
    Scheme {
        name: "tcp",
        protocol: Protocol::Tcp,
        tls: false,
        default_port: None,
        takes_path: false,
        form: "tcp://HOST:PORT",
        about: "the TCP probe: connect, then --send and --expect-*",
    },
    Scheme {
        name: "tls",
        protocol: Protocol::Tcp,
        tls: true,
        default_port: None,
        takes_path: false,
        form: "tls://HOST:PORT",
        about: "the TCP probe with a TLS handshake",
    },
];

/// The scheme named `name`, any case.
pub fn scheme(name: &str) -> Option<&'static Scheme> {
    SCHEMES.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// Every probe's options, flattened into the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub icap: icap::IcapArgs,

    /// Method to send: for ICAP options, respmod or reqmod [default: options]; for HTTP GET,
    /// HEAD, OPTIONS, POST, PUT, DELETE, PATCH or TRACE [default: GET]. Any case
    #[arg(long, value_name = "METHOD", value_parser = parse_method, help_heading = heading::ICAP_HTTP)]
    pub method: Option<MethodArg>,

    #[command(flatten)]
    pub http: http::HttpArgs,

    #[command(flatten)]
    pub expect: expect::ExpectArgs,

    #[command(flatten)]
    pub tcp: tcp::TcpArgs,

    #[command(flatten)]
    pub tls: TlsArgs,
}

/// TLS for any probe.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = heading::TLS)]
pub struct TlsArgs {
    /// Speak TLS to the server. Implied by icaps://, https:// and tls:// URLs and, in the HAProxy
    /// form, by HAPROXY_SERVER_SSL=1 (the server line's `ssl`) [default: off]
    #[arg(long, overrides_with = "no_tls")]
    pub tls: bool,

    /// No TLS, even when HAProxy sets HAPROXY_SERVER_SSL=1 (e.g. `ssl` is there for traffic
    /// but the check port is plain text). The last of --tls and --no-tls wins
    #[arg(long, overrides_with = "tls")]
    pub no_tls: bool,

    /// TLS: trust the CA certificates in this PEM file instead of the built-in Mozilla roots (for
    /// the system's: /etc/ssl/certs/ca-certificates.crt). A server certificate in it is trusted as
    /// it is, even a self-signed CA:TRUE one; its dates and names are still verified. At most 1 MiB
    /// [default: built-in roots]
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<std::path::PathBuf>,

    /// TLS: server name sent (SNI) and verified [default: the target's host name; none for an IP
    /// address, whose certificate must then name the IP]
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,

    /// TLS: client certificate chain (PEM), for servers that require one; needs --client-key.
    /// Under TLS 1.3 a server refuses a client certificate after the handshake: a tls:// probe
    /// sees that only with --send or --expect-*
    #[arg(long, value_name = "PATH", requires = "client_key")]
    pub client_cert: Option<std::path::PathBuf>,

    /// TLS: private key (PEM: PKCS#8, PKCS#1 or SEC1) of --client-cert
    #[arg(long, value_name = "PATH", requires = "client_cert")]
    pub client_key: Option<std::path::PathBuf>,

    /// TLS: do not verify the server's certificate or name (says so on stderr); the handshake
    /// must still succeed [default: verified]
    #[arg(long)]
    pub insecure: bool,

    /// TLS: unhealthy (exit 1) when the server's certificate expires within N days
    /// [default: not checked]
    #[arg(long, value_name = "N")]
    pub cert_expiry_days: Option<u32>,
}

impl TlsArgs {
    /// The ids of the options that turn TLS on or off; the others are TLS
    /// settings, which need TLS on.
    pub const SWITCHES: [&'static str; 2] = ["tls", "no_tls"];

    pub fn options(&self) -> TlsOptions {
        TlsOptions {
            ca_file: self.ca_file.clone(),
            sni: self.sni.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            insecure: self.insecure,
            cert_expiry_days: self.cert_expiry_days,
        }
    }
}

/// A method as typed, upper-cased: which probe it suits is decided when the
/// probe is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodArg(pub String);

/// The methods `--method` accepts: ICAP's, then HTTP's.
const ICAP_METHODS: [&str; 3] = ["OPTIONS", "RESPMOD", "REQMOD"];
const HTTP_METHODS: [&str; 8] = [
    "GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE",
];

fn parse_method(text: &str) -> Result<MethodArg, String> {
    let upper = text.trim().to_ascii_uppercase();
    if ICAP_METHODS.contains(&upper.as_str()) || HTTP_METHODS.contains(&upper.as_str()) {
        Ok(MethodArg(upper))
    } else {
        Err("expected options, respmod, reqmod (ICAP) or GET, HEAD, OPTIONS, POST, PUT, DELETE, PATCH, TRACE (HTTP)".into())
    }
}

/// What a probe is built from besides its options.
pub struct Spec<'a> {
    pub endpoint: Endpoint,
    /// The path of the target's URL, without its leading `/`: the ICAP
    /// service or the HTTP path and query.
    pub url_path: Option<String>,
    pub tls: Option<TlsClient>,
    /// Whether the option with this clap id was typed on the command line
    /// (options from a config file may be meant for other sections).
    pub typed: &'a dyn Fn(&str) -> bool,
    /// Nothing will be sent (`--explain`): create no file.
    pub dry_run: bool,
    /// The resident mode: checks run again and again, and nothing may block
    /// but a socket (files are read once, here, or refused).
    pub resident: bool,
    /// HAProxy's maxconn for the server (0: no limit) and its current
    /// connections, in the HAProxy form.
    pub maxconn: Option<u64>,
    pub curconn: Option<u64>,
    /// `--send-state`: the `X-Haproxy-Server-State` value, when the server
    /// is known well enough to build one.
    pub send_state: Option<String>,
}

/// The connection's buffer must hold the largest head any parser
/// accepts, and what follows it in the same read.
const _: () = assert!(icap::response::MAX_HEAD + 16 * 1024 <= crate::net::connection::READ_BUFFER);

/// A probe ready to run against its endpoint.
pub enum Probe {
    Icap(icap::IcapProbe),
    Http(http::HttpProbe),
    Tcp(tcp::TcpProbe),
}

impl Probe {
    pub fn build(protocol: Protocol, args: &ProbeArgs, spec: Spec<'_>) -> Result<Probe, Failure> {
        Ok(match protocol {
            Protocol::Icap => Probe::Icap(icap::IcapProbe::build(args, spec)?),
            Protocol::Http => Probe::Http(http::HttpProbe::build(args, spec)?),
            Protocol::Tcp => Probe::Tcp(tcp::TcpProbe::build(args, spec)?),
        })
    }

    /// The name in report lines: the method (`OPTIONS`, `RESPMOD`, `GET`...)
    /// or `TCP`/`TLS`.
    pub fn name(&self) -> String {
        match self {
            Probe::Icap(p) => p.method.as_str().to_string(),
            Probe::Http(p) => p.method.clone(),
            Probe::Tcp(p) => p.name().to_string(),
        }
    }

    /// What is checked, as a URL (see [`Endpoint::url`]).
    pub fn target(&self) -> String {
        match self {
            Probe::Icap(p) => p.target(),
            Probe::Http(p) => p.target(),
            Probe::Tcp(p) => p.target(),
        }
    }

    /// The protocol as monitoring names it: ICAP, HTTP, TCP or TLS.
    pub fn protocol_label(&self) -> &'static str {
        match self {
            Probe::Icap(_) => "ICAP",
            Probe::Http(_) => "HTTP",
            Probe::Tcp(p) => p.name(),
        }
    }

    /// The probe in one line, for `--explain`.
    pub fn describe(&self) -> String {
        let (text, tls) = match self {
            Probe::Icap(p) => (p.describe(), &p.tls),
            Probe::Http(p) => (p.describe(), &p.tls),
            Probe::Tcp(p) => (p.describe(), &p.tls),
        };
        let tls = tls
            .as_ref()
            .map_or("TLS off".to_string(), TlsClient::describe);
        format!("{text}, {tls}")
    }

    /// Whether every wait of this probe is a socket operation that the
    /// deadline bounds (name lookups and UNIX connects included: they wait
    /// for the time left on a helper thread, or retry without blocking).
    /// When not, a one-shot check starts the watchdog: a file read or
    /// written during the exchange may block on its storage.
    pub fn bounded_by_deadline(&self) -> bool {
        match self {
            Probe::Icap(p) => p.in_memory(),
            Probe::Http(_) | Probe::Tcp(_) => true,
        }
    }

    /// The `X-Haproxy-Server-State` header sent from now on, for a probe
    /// that sends one (`--send-state`): the resident mode's state changes.
    pub fn renew_send_state(&mut self, header: String) {
        if let Probe::Http(p) = self {
            if p.send_state.is_some() {
                p.send_state = Some(header);
            }
        }
    }

    pub fn run(&mut self, deadline: Deadline, observed: &mut Observed) -> Verdict {
        let verdict = match self {
            Probe::Icap(p) => p.run(deadline, observed),
            Probe::Http(p) => p.run(deadline, observed),
            Probe::Tcp(p) => p.run(deadline, observed),
        };
        observed.timings.total = deadline.elapsed();
        verdict
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn methods_any_case_one_list() {
        assert_eq!(parse_method("respmod"), Ok(MethodArg("RESPMOD".into())));
        assert_eq!(parse_method("Get"), Ok(MethodArg("GET".into())));
        assert!(parse_method("sideways").is_err());
    }

    #[test]
    fn every_protocol_has_a_plain_and_a_tls_scheme() {
        for p in Protocol::value_variants() {
            let of = |tls: bool| {
                SCHEMES
                    .iter()
                    .filter(move |s| s.protocol == *p && s.tls == tls)
            };
            assert_eq!(of(false).count(), 1, "{p:?}");
            assert_eq!(
                of(true).map(|s| s.name).collect::<Vec<_>>(),
                [p.tls_scheme()]
            );
        }
        assert_eq!(scheme("ICAPS").map(|s| s.tls), Some(true));
        assert!(scheme("ftp").is_none());
    }
}

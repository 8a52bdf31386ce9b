//! From what the user typed to a validated check: every usage error is found
//! here, before anything is sent.

use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

use crate::cli::{Cli, ProbeKind};
use crate::connection::{Endpoint, Host};
use crate::deadline::parse_time;
use crate::http::{Expect, HttpCheck, StatusList};
use crate::icap::probe::{IcapCheck, Preview};
use crate::icap::request::Method;
use crate::invocation::Invocation;
use crate::probe::Probe;
use crate::report::Context;
use crate::sample::Sample;
use crate::tcp::TcpCheck;
use crate::tls::{TlsClient, TlsOptions};
use crate::verdict::Failure;

pub struct Settings {
    pub timeout: Duration,
    pub probe: Probe,
    pub context: Context,
    /// Where a failure is also reported, and with which facility.
    pub syslog: Option<(crate::syslog::Target, u8)>,
    pub verbose: u8,
}

/// `cli` is the command line with the config file applied; `typed` what was
/// typed, for the errors that only make sense about the command line.
pub fn resolve(cli: &Cli, typed: &Cli, inv: &Invocation) -> Result<Settings, Failure> {
    let timeout = match cli.timeout {
        Some(t) => t,
        None => parse_time(crate::cli::DEFAULT_TIMEOUT).map_err(Failure::Usage)?,
    };
    if timeout.is_zero() {
        return Err(Failure::Usage("--timeout must be greater than 0".into()));
    }
    let kind = probe_kind(cli, typed, inv)?;
    // Several URLs share the options: each applies to the targets it fits.
    let several = inv.scheme.is_some() && typed.targets.len() > 1;
    let tls = tls_client(cli, typed, inv, kind, several)?;
    if !several {
        check_options_fit(typed, kind)?;
    }
    let (probe, target) = match kind {
        ProbeKind::Icap => resolve_icap(cli, typed, inv, tls)?,
        ProbeKind::Http => {
            let c = http_check(cli, inv, tls)?;
            let target = match &inv.endpoint {
                Endpoint::Unix(path) => format!("unix:{} {}{}", path.display(), c.origin, c.path),
                Endpoint::Tcp { .. } => format!("{}{}", c.origin, c.path),
            };
            (Probe::Http(c), target)
        }
        ProbeKind::Tcp => {
            let scheme = if tls.is_some() { "tls" } else { "tcp" };
            let target = match &inv.endpoint {
                Endpoint::Unix(path) => format!("unix:{}", path.display()),
                Endpoint::Tcp { host, port } => format!("{scheme}://{host}:{port}"),
            };
            let c = TcpCheck {
                endpoint: inv.endpoint.clone(),
                tls,
                send: cli.send.clone().map(|b| b.0),
                expect: expectation(cli)?,
            };
            (Probe::Tcp(c), target)
        }
    };
    Ok(Settings {
        syslog: cli.syslog.clone().map(|t| {
            (
                t,
                cli.syslog_facility
                    .unwrap_or(crate::syslog::DEFAULT_FACILITY),
            )
        }),
        verbose: cli.verbose,
        timeout,
        context: Context {
            haproxy: inv.haproxy,
            backend: inv.backend.clone(),
            server: inv.server.clone(),
            target,
            probe: probe.name(),
        },
        probe,
    })
}

/// By hand the URL's scheme picks the probe; `--probe` may only agree with
/// it. In the HAProxy form `--probe` (from the command line or the config
/// file) picks it; ICAP by default.
fn probe_kind(cli: &Cli, typed: &Cli, inv: &Invocation) -> Result<ProbeKind, Failure> {
    match inv.scheme {
        Some(scheme) => match typed.probe {
            Some(p) if p != scheme.probe() => Err(Failure::Usage(format!(
                "--probe {} contradicts the URL's scheme",
                probe_text(p)
            ))),
            _ => Ok(scheme.probe()),
        },
        None => Ok(cli.probe.unwrap_or(ProbeKind::Icap)),
    }
}

fn probe_text(p: ProbeKind) -> &'static str {
    match p {
        ProbeKind::Icap => "icap",
        ProbeKind::Http => "http",
        ProbeKind::Tcp => "tcp",
    }
}

/// TLS on or off, and its configuration, built only when on.
///
/// By hand: the scheme (icaps, https, tls) or `--tls`. HAProxy form: the last
/// of `--tls`/`--no-tls` (config file, then command line), else
/// HAPROXY_SERVER_SSL=1.
fn tls_client(
    cli: &Cli,
    typed: &Cli,
    inv: &Invocation,
    kind: ProbeKind,
    several: bool,
) -> Result<Option<TlsClient>, Failure> {
    let on = match inv.scheme {
        Some(scheme) => {
            if scheme.tls() && typed.no_tls {
                return Err(Failure::Usage(
                    "--no-tls contradicts the URL's scheme".into(),
                ));
            }
            scheme.tls() || cli.tls
        }
        None => cli.tls || (!cli.no_tls && inv.server_ssl),
    };
    let options = TlsOptions {
        ca_file: cli.ca_file.clone(),
        sni: cli.sni.clone(),
        client_cert: cli.client_cert.clone(),
        client_key: cli.client_key.clone(),
        insecure: cli.insecure,
        cert_expiry_days: cli.cert_expiry_days,
    };
    if !on && !several {
        for (given, flag) in [
            (typed.ca_file.is_some(), "--ca-file"),
            (typed.sni.is_some(), "--sni"),
            (typed.client_cert.is_some(), "--client-cert"),
            (typed.client_key.is_some(), "--client-key"),
            (typed.insecure, "--insecure"),
            (typed.cert_expiry_days.is_some(), "--cert-expiry-days"),
        ] {
            if given {
                let how = match kind {
                    ProbeKind::Icap => "icaps://",
                    ProbeKind::Http => "https://",
                    ProbeKind::Tcp => "tls://",
                };
                return Err(Failure::Usage(format!(
                    "{flag} needs TLS: give --tls or use {how}"
                )));
            }
        }
    }
    if !on {
        return Ok(None);
    }
    let host = match &inv.endpoint {
        Endpoint::Tcp { host, .. } => Some(host),
        Endpoint::Unix(_) => None,
    };
    let client = TlsClient::new(&options, host)?;
    if options.insecure && !cli.explain && !cli.check_config {
        crate::report::usage_error(&Failure::Usage(
            "warning: --insecure: the server's certificate and name are not verified".into(),
        ));
    }
    Ok(Some(client))
}

/// Options typed for another probe are mistakes; from a config file they
/// may be meant for other sections, and are ignored.
fn check_options_fit(typed: &Cli, kind: ProbeKind) -> Result<(), Failure> {
    let icap = [
        (typed.service.is_some(), "--service"),
        (typed.file.is_some(), "--file"),
        (typed.preview.is_some(), "--preview"),
        (typed.output.is_some(), "--output"),
        (typed.require_method.is_some(), "--require-method"),
    ];
    let http = [
        (typed.path.is_some(), "--path"),
        (!typed.headers.is_empty(), "--header"),
        (typed.body.is_some(), "--body"),
        (typed.expect_status.is_some(), "--expect-status"),
        (typed.follow_redirects, "--follow-redirects"),
    ];
    let tcp = [(typed.send.is_some(), "--send")];
    let expect = [
        (typed.expect_string.is_some(), "--expect-string"),
        (typed.expect_regex.is_some(), "--expect-regex"),
    ];
    let (name, wrong): (&str, Vec<(bool, &str)>) = match kind {
        ProbeKind::Icap => ("ICAP", [&http[..], &tcp, &expect].concat()),
        ProbeKind::Http => ("HTTP", [&icap[..], &tcp].concat()),
        ProbeKind::Tcp => {
            let method = [(typed.method.is_some(), "--method")];
            ("TCP", [&icap[..], &http, &method].concat())
        }
    };
    match wrong.iter().find(|(given, _)| *given) {
        Some((_, flag)) => Err(Failure::Usage(format!(
            "{flag} does not apply to the {name} probe"
        ))),
        None => Ok(()),
    }
}

fn expectation(cli: &Cli) -> Result<Option<Expect>, Failure> {
    match (&cli.expect_string, &cli.expect_regex) {
        (Some(_), Some(_)) => Err(Failure::Usage(
            "give --expect-string or --expect-regex, not both".into(),
        )),
        (Some(s), None) => Ok(Some(Expect::String(s.clone()))),
        (None, Some(re)) => Expect::regex(re).map(Some),
        (None, None) => Ok(None),
    }
}

fn http_check(cli: &Cli, inv: &Invocation, tls: Option<TlsClient>) -> Result<HttpCheck, Failure> {
    let method = match &cli.method {
        None => "GET".to_string(),
        Some(m) if m.is_http() => m.0.clone(),
        Some(m) => {
            return Err(Failure::Usage(format!(
                "--method {} is not an HTTP method (GET, HEAD, OPTIONS, POST, ...)",
                m.0.to_ascii_lowercase()
            )))
        }
    };
    let path = match (&cli.path, &inv.service) {
        (Some(p), _) => p.clone(),
        (None, Some(from_url)) => format!("/{from_url}"),
        (None, None) => "/".to_string(),
    };
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(Failure::Usage(format!(
            "invalid --path '{}': must start with / and have no spaces",
            crate::report::escape(&path)
        )));
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let origin = match &inv.endpoint {
        Endpoint::Tcp { host, port } => format!("{scheme}://{host}:{port}"),
        Endpoint::Unix(_) => format!("{scheme}://localhost"),
    };
    Ok(HttpCheck {
        endpoint: inv.endpoint.clone(),
        tls,
        origin,
        method,
        path,
        headers: cli.headers.clone(),
        body: cli.body.clone(),
        expect_status: cli
            .expect_status
            .clone()
            .unwrap_or_else(StatusList::default_healthy),
        expect: expectation(cli)?,
        follow_redirects: cli.follow_redirects,
    })
}

fn resolve_icap(
    cli: &Cli,
    typed: &Cli,
    inv: &Invocation,
    tls: Option<TlsClient>,
) -> Result<(Probe, String), Failure> {
    let method: Method = match &cli.method {
        None => Method::Options,
        Some(m) => m.icap().ok_or_else(|| {
            Failure::Usage(format!(
                "--method {} is not an ICAP method (options, respmod, reqmod)",
                m.0
            ))
        })?,
    };
    let service = cli
        .service
        .clone()
        .or_else(|| inv.service.clone())
        .ok_or_else(|| {
            Failure::Usage(
                "no ICAP service: give --service NAME or icap://HOST[:PORT]/SERVICE".into(),
            )
        })?;
    let service = service.trim_start_matches('/').to_string();
    if service.is_empty() || service.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(Failure::Usage(format!("invalid service name '{service}'")));
    }
    // A config file may set a body for every section while one backend uses
    // OPTIONS; only options typed for an OPTIONS check are a mistake.
    if method == Method::Options {
        for (given, flag) in [
            (typed.file.is_some(), "--file"),
            (typed.output.is_some(), "--output"),
            (typed.preview.is_some(), "--preview"),
        ] {
            if given {
                return Err(Failure::Usage(format!(
                    "{flag} applies to --method respmod or reqmod, not options"
                )));
            }
        }
    }
    let sample = match (method, &cli.file) {
        (Method::Options, _) => None,
        (_, Some(path)) => Some(Sample::open(path)?),
        (_, None) => Some(Sample::embedded()),
    };
    let output = match &cli.output {
        // --explain sends nothing and writes nothing: the settings line names the file.
        Some(_) if typed.explain => None,
        Some(path) => {
            // Opening a FIFO for writing blocks until a reader comes, and the
            // deadline has not started yet. (/dev/null stays allowed.)
            if std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo()) {
                return Err(Failure::Usage(format!(
                    "cannot write --output {}: it is a FIFO",
                    path.display()
                )));
            }
            let file = File::create(path).map_err(|e| {
                Failure::Usage(format!(
                    "cannot write --output {}: {}",
                    path.display(),
                    crate::connection::describe(&e)
                ))
            })?;
            Some((file, path.display().to_string()))
        }
        None => None,
    };
    // The request line says icap:// over TLS too: servers behind a TLS
    // terminator (and c-icap) know no other scheme.
    let shown = if tls.is_some() { "icaps" } else { "icap" };
    let (uri, host, target) = match &inv.endpoint {
        Endpoint::Tcp { host, port } => {
            let uri = format!("icap://{host}:{port}/{service}");
            let target = format!("{shown}://{host}:{port}/{service}");
            let host = match host {
                Host::Ip(ip) => ip.to_string(),
                Host::Name(n) => n.clone(),
            };
            (uri, host, target)
        }
        Endpoint::Unix(path) => {
            let uri = format!("icap://localhost/{service}");
            let target = format!("unix:{} {shown}://localhost/{service}", path.display());
            (uri, "localhost".to_string(), target)
        }
    };
    let probe = Probe::Icap(IcapCheck {
        endpoint: inv.endpoint.clone(),
        tls,
        uri,
        host,
        method,
        require_method: cli.require_method.map(|m| m.as_str().to_string()),
        // A server may answer 204 after a preview even without Allow: 204
        // (RFC 3507 4.5); --output wants the body back, so no preview by default.
        preview: cli.preview.unwrap_or(if cli.output.is_some() {
            Preview::Off
        } else {
            Preview::Auto
        }),
        sample,
        output,
    });
    Ok((probe, target))
}

impl Settings {
    /// The probe in one line, for `--explain`.
    pub fn describe(&self) -> String {
        let timeout = format!("timeout {}", crate::deadline::format_time(self.timeout));
        let tls = |t: &Option<TlsClient>| {
            t.as_ref()
                .map_or("TLS off".to_string(), TlsClient::describe)
        };
        let c = match &self.probe {
            Probe::Icap(c) => c,
            Probe::Http(h) => {
                let mut parts = vec![format!("HTTP {} {}{}", h.method, h.origin, h.path)];
                for (name, value) in &h.headers {
                    parts.push(format!("header '{name}: {value}'"));
                }
                if let Some(b) = &h.body {
                    parts.push(format!("body {} bytes", b.len()));
                }
                parts.push(format!("healthy on {}", h.expect_status));
                if let Some(e) = &h.expect {
                    parts.push(format!(
                        "body must have {e} (first {} KiB read)",
                        crate::http::MAX_BODY / 1024
                    ));
                }
                parts.push(if h.follow_redirects {
                    format!(
                        "follows up to {} redirects on the same server",
                        crate::http::MAX_REDIRECTS
                    )
                } else {
                    "redirects not followed".to_string()
                });
                parts.push(timeout);
                parts.push(tls(&h.tls));
                return parts.join(", ");
            }
            Probe::Tcp(t) => {
                let mut parts = vec![format!("{} connect", t.name())];
                if let Some(bytes) = &t.send {
                    parts.push(format!(
                        "send \"{}\"",
                        crate::report::escape(&String::from_utf8_lossy(bytes))
                    ));
                }
                if let Some(e) = &t.expect {
                    parts.push(format!(
                        "expect {e} (first {} KiB read)",
                        crate::tcp::MAX_EXPECT / 1024
                    ));
                }
                parts.push(timeout);
                parts.push(tls(&t.tls));
                return parts.join(", ");
            }
        };
        let mut parts = vec![format!("{} {}", c.method, c.uri)];
        if let Some(sample) = &c.sample {
            parts.push(format!(
                "body {} ({} bytes, {})",
                sample.name, sample.len, sample.content_type
            ));
            parts.push(match c.preview {
                Preview::Auto => "preview from OPTIONS".to_string(),
                Preview::Off => "no preview".to_string(),
                Preview::Bytes(n) => format!("preview {n} bytes"),
            });
        }
        if let Some(m) = &c.require_method {
            parts.push(format!("requires {m} in Methods"));
        }
        if let Some((_, name)) = &c.output {
            parts.push(format!("adapted body saved to {name}"));
        }
        parts.push(timeout);
        parts.push(tls(&c.tls));
        parts.join(", ")
    }
}

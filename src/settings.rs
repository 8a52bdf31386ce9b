//! From what the user typed to a validated check: every usage error is found
//! here, before anything is sent.

use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

use crate::cli::Cli;
use crate::connection::Endpoint;
use crate::deadline::parse_time;
use crate::icap::probe::{IcapCheck, Preview};
use crate::icap::request::Method;
use crate::invocation::Invocation;
use crate::probe::Probe;
use crate::report::Context;
use crate::sample::Sample;
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
    let method: Method = cli.method.map_or(Method::Options, Method::from);
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
    let (uri, host, target) = match &inv.endpoint {
        Endpoint::Tcp { host, port } => {
            let uri = format!("icap://{host}:{port}/{service}");
            let host = match host {
                crate::connection::Host::Ip(ip) => ip.to_string(),
                crate::connection::Host::Name(n) => n.clone(),
            };
            (uri.clone(), host, uri)
        }
        Endpoint::Unix(path) => {
            let uri = format!("icap://localhost/{service}");
            let target = format!("unix:{} {uri}", path.display());
            (uri, "localhost".to_string(), target)
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
            probe: method.as_str().to_string(),
        },
        probe: Probe::Icap(IcapCheck {
            endpoint: inv.endpoint.clone(),
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
        }),
    })
}

impl Settings {
    /// The probe in one line, for `--explain`.
    pub fn describe(&self) -> String {
        let Probe::Icap(c) = &self.probe;
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
        parts.push(format!(
            "timeout {}",
            crate::deadline::format_time(self.timeout)
        ));
        parts.push("TLS off".to_string());
        parts.join(", ")
    }
}

//! The ICAP probe (RFC 3507), spoken by our own code: wire formats as pure
//! functions ([`request`], [`response`], [`chunked`]), the response as a
//! sans-IO state machine ([`reader`]), the body sent ([`sample`]), the
//! exchange over a connection with its verdict rules ([`exchange`]), the
//! detection canary's file and catch rules ([`canary`]), and what OPTIONS
//! says of the service's capacity ([`capacity`]).

pub mod canary;
pub mod capacity;
pub mod chunked;
pub mod exchange;
pub mod reader;
pub mod request;
pub mod response;
pub mod sample;

use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use clap::ValueEnum;

use self::request::Method;
use self::sample::Body;
use super::{heading, MethodArg, Spec};
use crate::net::{Deadline, Endpoint, TlsClient};
use crate::outcome::{Failure, Observed, Verdict};
use crate::text::{describe_io, escape};

#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = heading::ICAP)]
pub struct IcapArgs {
    /// ICAP service to check, the path of icap://HOST/SERVICE; overrides the URL's. Required: there
    /// is no default service
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,

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

    /// Also send the EICAR antivirus test file, after the check's own request (on the same
    /// connection when the server keeps it open), as a RESPMOD (a REQMOD with --method reqmod),
    /// and require the service to flag it: an antivirus that lets everything through is down.
    /// The file is built in memory, never stored as its bytes [default: off]
    #[arg(long)]
    pub canary: bool,

    /// Unhealthy when HAProxy's maxconn for the server (HAPROXY_SERVER_MAXCONN; 0 is no limit)
    /// exceeds the service's OPTIONS Max-Connections, or its current connections
    /// (HAPROXY_SERVER_CURCONN) have reached it. Needs an OPTIONS request: --method options, or
    /// --preview auto [default: off; reported, not judged]
    #[arg(long)]
    pub require_capacity: bool,
}

/// How many body bytes go before waiting for `100 Continue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preview {
    /// The service's `Preview` from an OPTIONS request sent first on the same connection.
    Auto,
    /// No preview: the whole body is sent at once.
    Off,
    Bytes(u64),
}

fn parse_preview(text: &str) -> Result<Preview, String> {
    match text.trim() {
        t if t.eq_ignore_ascii_case("auto") => Ok(Preview::Auto),
        t if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("none") => Ok(Preview::Off),
        t => match t.parse::<u64>() {
            Ok(n) if n <= u64::from(u32::MAX) => Ok(Preview::Bytes(n)),
            _ => Err(format!(
                "invalid preview '{}': expected auto, off or a byte count",
                escape(t)
            )),
        },
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

/// Where the adapted body is saved (`--output`): created when configured,
/// so errors are found before anything is sent; created again for each
/// later check.
pub struct Output {
    pub path: PathBuf,
    created: Option<File>,
}

impl Output {
    fn create(path: &std::path::Path) -> Result<File, Failure> {
        File::create(path).map_err(|e| {
            Failure::Usage(format!(
                "cannot write --output {}: {}",
                escape(&path.display().to_string()),
                describe_io(&e)
            ))
        })
    }

    /// The file of one check.
    pub fn file(&mut self) -> Result<File, Failure> {
        match self.created.take() {
            Some(file) => Ok(file),
            None => Output::create(&self.path),
        }
    }
}

/// Everything one ICAP check needs, validated.
pub struct IcapProbe {
    pub endpoint: Endpoint,
    /// ICAP over TLS (icaps://, --tls).
    pub tls: Option<TlsClient>,
    /// `icap://host:port/service`, as the request line has it.
    pub uri: String,
    /// The `Host:` header.
    pub host: String,
    pub service: String,
    pub method: Method,
    pub require_method: Option<String>,
    pub preview: Preview,
    /// The body of a RESPMOD or REQMOD.
    pub body: Option<Body>,
    pub output: Option<Output>,
    /// The detection canary's body (`--canary`).
    pub canary: Option<Body>,
    /// HAProxy's maxconn and current connections for the server.
    pub maxconn: Option<u64>,
    pub curconn: Option<u64>,
    pub require_capacity: bool,
}

impl IcapProbe {
    pub fn build(args: &super::ProbeArgs, spec: Spec<'_>) -> Result<IcapProbe, Failure> {
        let a = &args.icap;
        let method = match &args.method {
            None => Method::Options,
            Some(MethodArg(m)) => Method::parse(m).ok_or_else(|| {
                Failure::Usage(format!(
                    "--method {m} is not an ICAP method (options, respmod, reqmod)"
                ))
            })?,
        };
        let service = a
            .service
            .clone()
            .or_else(|| spec.url_path.clone())
            .ok_or_else(|| {
                Failure::Usage(
                    "no ICAP service: give --service NAME or icap://HOST[:PORT]/SERVICE".into(),
                )
            })?;
        let service = service.trim_start_matches('/').to_string();
        if service.is_empty() || service.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(Failure::Usage(format!(
                "invalid service name '{}'",
                escape(&service)
            )));
        }
        // A config file may set a body for every section while one backend uses
        // OPTIONS; only options typed for an OPTIONS check are a mistake.
        if method == Method::Options {
            for id in ["file", "output", "preview"] {
                if (spec.typed)(id) {
                    return Err(Failure::Usage(format!(
                        "--{id} applies to --method respmod or reqmod, not options"
                    )));
                }
            }
        }
        // Capacity comes from OPTIONS, which --preview N or off does not send.
        let preview = a.preview.unwrap_or(if a.output.is_some() {
            Preview::Off
        } else {
            Preview::Auto
        });
        if a.require_capacity
            && (spec.typed)("require_capacity")
            && method != Method::Options
            && preview != Preview::Auto
        {
            return Err(Failure::Usage(
                "--require-capacity needs the OPTIONS request that --preview N or off skips: use --preview auto".into(),
            ));
        }
        let body = match (method, &a.file) {
            (Method::Options, _) => None,
            (_, Some(path)) if spec.resident => Some(Body::file(path)?.into_memory()?),
            (_, Some(path)) => Some(Body::file(path)?),
            (_, None) => Some(Body::embedded()),
        };
        if spec.resident && a.output.is_some() {
            return Err(Failure::Usage(
                "--output does not apply to the resident mode (a file written on every check)"
                    .into(),
            ));
        }
        let output = match (&a.output, method) {
            (Some(path), Method::Respmod | Method::Reqmod) => {
                // Opening a FIFO for writing blocks until a reader comes, and the
                // deadline has not started yet. (/dev/null stays allowed.)
                if std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo()) {
                    return Err(Failure::Usage(format!(
                        "cannot write --output {}: it is a FIFO",
                        escape(&path.display().to_string())
                    )));
                }
                Some(Output {
                    path: path.clone(),
                    created: match spec.dry_run {
                        true => None,
                        false => Some(Output::create(path)?),
                    },
                })
            }
            _ => None,
        };
        Ok(IcapProbe {
            // The request line says icap:// over TLS too: servers behind a TLS
            // terminator (and c-icap) know no other scheme.
            uri: format!("icap://{}/{service}", spec.endpoint.authority()),
            host: spec.endpoint.host_header(),
            endpoint: spec.endpoint,
            tls: spec.tls,
            service,
            method,
            require_method: a.require_method.map(|m| m.as_str().to_string()),
            // A server may answer 204 after a preview even without Allow: 204
            // (RFC 3507 4.5); --output wants the body back, so no preview by default.
            preview,
            body,
            output,
            canary: a.canary.then(Body::canary),
            maxconn: spec.maxconn,
            curconn: spec.curconn,
            require_capacity: a.require_capacity,
        })
    }

    pub fn target(&self) -> String {
        let scheme = if self.tls.is_some() { "icaps" } else { "icap" };
        self.endpoint.url(scheme, &format!("/{}", self.service))
    }

    /// The method the canary goes as: the check's own when it carries a
    /// body, RESPMOD after an OPTIONS check.
    pub fn canary_method(&self) -> Method {
        match self.method {
            Method::Reqmod => Method::Reqmod,
            _ => Method::Respmod,
        }
    }

    /// Whether an OPTIONS request is sent, from which the service's
    /// capacity is learnt.
    pub fn sends_options(&self) -> bool {
        self.method == Method::Options || self.preview == Preview::Auto
    }

    /// Whether the check reads and writes no file.
    pub fn in_memory(&self) -> bool {
        self.body.as_ref().is_none_or(Body::in_memory) && self.output.is_none()
    }

    pub fn describe(&self) -> String {
        let mut parts = vec![format!("{} {}", self.method, self.uri)];
        if let Some(body) = &self.body {
            parts.push(format!(
                "body {} ({} bytes, {})",
                body.name, body.len, body.content_type
            ));
            parts.push(match self.preview {
                Preview::Auto => "preview from OPTIONS".to_string(),
                Preview::Off => "no preview".to_string(),
                Preview::Bytes(n) => format!("preview {n} bytes"),
            });
        }
        if let Some(m) = &self.require_method {
            parts.push(format!("requires {m} in Methods"));
        }
        if let Some(output) = &self.output {
            parts.push(format!(
                "adapted body saved to {}",
                escape(&output.path.display().to_string())
            ));
        }
        if self.canary.is_some() {
            parts.push(format!(
                "then the EICAR canary ({} bytes, built in memory) as a {}, which must be flagged: \
                 ICAP 403, an HTTP status other than 2xx inside ICAP 200, the file replaced, or a \
                 header {} (201 too); 204 or the file back unchanged is unhealthy",
                canary::LEN,
                self.canary_method(),
                canary::FLAG_HEADERS.join(", ")
            ));
        }
        if self.maxconn.is_some() || self.curconn.is_some() || self.require_capacity {
            let known = |v: Option<u64>| v.map_or_else(|| "unknown".to_string(), |n| n.to_string());
            let haproxy = match (self.maxconn, self.curconn) {
                (Some(0), cur) => format!("HAProxy's maxconn 0 (no limit), curconn {}", known(cur)),
                (max, cur) => format!("HAProxy's maxconn {}, curconn {}", known(max), known(cur)),
            };
            let service = if self.sends_options() {
                "against the service's Max-Connections from OPTIONS"
            } else {
                "the service's Max-Connections unknown: no OPTIONS is sent with this --preview"
            };
            let judged = if self.require_capacity {
                "required"
            } else {
                "reported"
            };
            parts.push(format!("capacity {judged}: {haproxy} {service}"));
        }
        parts.join(", ")
    }

    pub fn run(&mut self, deadline: Deadline, observed: &mut Observed) -> Verdict {
        exchange::run(self, deadline, observed)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn preview_values() {
        assert_eq!(parse_preview("auto"), Ok(Preview::Auto));
        assert_eq!(parse_preview("OFF"), Ok(Preview::Off));
        assert_eq!(parse_preview("1024"), Ok(Preview::Bytes(1024)));
        assert!(parse_preview("-1").is_err());
        assert!(parse_preview("lots").is_err());
    }
}

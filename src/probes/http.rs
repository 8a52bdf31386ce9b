//! The HTTP(S) probe, through ureq: the expectation rules (status list,
//! string, regex) as pure functions, and ureq running over our own
//! [`Connection`] so that connect, TLS, timings and the one deadline are the
//! same as for every other probe.

use std::fmt;
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};

use super::expect::Expect;
use super::{heading, MethodArg, Spec, USER_AGENT};
use crate::net::{Connection, Deadline, Endpoint, TlsClient};
use crate::outcome::{Failure, Healthy, Observed, Phase, Timings, Verdict};
use crate::text::{describe_io, escape, is_token_char};

/// How much of a body --expect-string/--expect-regex look at; the rest is
/// not read.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest response head read (status line and headers), as for ICAP.
const MAX_HEAD: usize = super::icap::response::MAX_HEAD;
/// Redirects followed with --follow-redirects.
pub const MAX_REDIRECTS: usize = 5;

/// Healthy statuses: codes and inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList(Vec<(u16, u16)>);

impl StatusList {
    /// HAProxy's httpchk: 2xx and 3xx.
    pub fn default_healthy() -> StatusList {
        StatusList(vec![(200, 399)])
    }

    /// `200,204,300-399`
    pub fn parse(text: &str) -> Result<StatusList, String> {
        let code = |t: &str| -> Result<u16, String> {
            match t.trim().parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => Ok(c),
                _ => Err(format!("invalid status '{}': expected 100-599", t.trim())),
            }
        };
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let range = match part.split_once('-') {
                Some((lo, hi)) => (code(lo)?, code(hi)?),
                None => {
                    let c = code(part)?;
                    (c, c)
                }
            };
            if range.0 > range.1 {
                return Err(format!("invalid range '{}'", part.trim()));
            }
            ranges.push(range);
        }
        Ok(StatusList(ranges))
    }

    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

impl fmt::Display for StatusList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The verdict on a final answer's status and (a prefix of) its body.
pub fn judge(
    status: u16,
    reason: &str,
    expect_status: &StatusList,
    expect: Option<(&Expect, &[u8])>,
) -> Verdict {
    let head = format!("{status} {}", escape(reason))
        .trim_end()
        .to_string();
    if !expect_status.contains(status) {
        return Err(Failure::Unhealthy(format!(
            "HTTP {head} (expected {expect_status})"
        )));
    }
    match expect {
        None => Ok(Healthy { summary: head }),
        Some((e, body)) if e.matches(body) => Ok(Healthy {
            summary: format!("{head}, body has {e}"),
        }),
        Some((e, body)) => Err(Failure::Unhealthy(format!(
            "HTTP {head} but {e} is not in the first {} body bytes",
            body.len()
        ))),
    }
}

/// Where a redirect leads: a path on the same server, or elsewhere.
pub fn redirect_target(location: &str, origin: &str, current_path: &str) -> Result<String, String> {
    let location = location.trim();
    if let Some(rest) = location.strip_prefix(origin) {
        if rest.is_empty() {
            return Ok("/".into());
        }
        if rest.starts_with('/') || rest.starts_with('?') {
            return Ok(if rest.starts_with('?') {
                format!("/{rest}")
            } else {
                rest.to_string()
            });
        }
    }
    if location.starts_with("//") || location.contains("://") {
        return Err(location.to_string());
    }
    if location.starts_with('/') {
        return Ok(location.to_string());
    }
    // Relative to the current path's directory.
    let path = current_path.split(['?', '#']).next().unwrap_or("/");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Ok(format!(
        "{}{location}",
        if dir.is_empty() { "/" } else { dir }
    ))
}

#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = heading::HTTP)]
pub struct HttpArgs {
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
    #[arg(long, value_name = "LIST", value_parser = StatusList::parse)]
    pub expect_status: Option<StatusList>,

    /// HTTP: follow up to 5 redirects on the same server; a redirect elsewhere is unhealthy
    /// [default: a 3xx is the answer, healthy under the default --expect-status]
    #[arg(long)]
    pub follow_redirects: bool,

    /// HTTP: send HAProxy's X-Haproxy-Server-State header (as `http-check send-state`), built from
    /// what is known of the server: with --haproxy-socket its state, weight and sessions; run by
    /// HAProxy its names, address and HAPROXY_SERVER_CURCONN/MAXCONN. Fields not known are left out
    #[arg(long)]
    pub send_state: bool,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| "expected 'Name: value'".to_string())?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(format!("invalid header name '{}'", escape(name)));
    }
    let value = value.trim();
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err("control character in header value".into());
    }
    Ok((name.to_string(), value.to_string()))
}

pub struct HttpProbe {
    pub endpoint: Endpoint,
    pub tls: Option<TlsClient>,
    /// `http://host:port` or `https://host:port`, for the request line, the
    /// default Host header and redirects.
    pub origin: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub expect_status: StatusList,
    pub expect: Option<Expect>,
    pub follow_redirects: bool,
    /// `--send-state`: the `X-Haproxy-Server-State` value.
    pub send_state: Option<String>,
}

/// The header `--send-state` sends, as HAProxy names it.
pub const SEND_STATE_HEADER: &str = "X-Haproxy-Server-State";

impl HttpProbe {
    pub fn build(args: &super::ProbeArgs, spec: Spec<'_>) -> Result<HttpProbe, Failure> {
        let h = &args.http;
        let method = match &args.method {
            None => "GET".to_string(),
            Some(MethodArg(m)) if m != "RESPMOD" && m != "REQMOD" => m.clone(),
            Some(MethodArg(m)) => {
                return Err(Failure::Usage(format!(
                    "--method {} is not an HTTP method (GET, HEAD, OPTIONS, POST, ...)",
                    m.to_ascii_lowercase()
                )))
            }
        };
        let path = match (&h.path, &spec.url_path) {
            (Some(p), _) => p.clone(),
            (None, Some(from_url)) => format!("/{from_url}"),
            (None, None) => "/".to_string(),
        };
        if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(Failure::Usage(format!(
                "invalid --path '{}': must start with / and have no spaces",
                escape(&path)
            )));
        }
        let send_state = match (h.send_state, spec.send_state) {
            (false, _) => None,
            (true, Some(value)) => Some(value),
            (true, None) => {
                return Err(Failure::Usage(
                    "--send-state needs to know the server: run it by HAProxy (its \
                     HAPROXY_PROXY_NAME and HAPROXY_SERVER_NAME), or with --haproxy-socket"
                        .into(),
                ))
            }
        };
        let scheme = if spec.tls.is_some() { "https" } else { "http" };
        let origin = format!("{scheme}://{}", spec.endpoint.authority());
        Ok(HttpProbe {
            endpoint: spec.endpoint,
            tls: spec.tls,
            origin,
            method,
            path,
            headers: h.headers.clone(),
            body: h.body.clone(),
            expect_status: h
                .expect_status
                .clone()
                .unwrap_or_else(StatusList::default_healthy),
            expect: args.expect.build()?,
            follow_redirects: h.follow_redirects,
            send_state,
        })
    }

    pub fn target(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.endpoint.url(scheme, &self.path)
    }

    pub fn describe(&self) -> String {
        let mut parts = vec![format!("HTTP {} {}{}", self.method, self.origin, self.path)];
        for (name, value) in &self.headers {
            parts.push(format!("header '{name}: {}'", escape(value)));
        }
        if let Some(b) = &self.body {
            parts.push(format!("body {} bytes", b.len()));
        }
        parts.push(format!("healthy on {}", self.expect_status));
        if let Some(e) = &self.expect {
            parts.push(format!(
                "body must have {e} (first {} KiB read)",
                MAX_BODY / 1024
            ));
        }
        parts.push(if self.follow_redirects {
            format!("follows up to {MAX_REDIRECTS} redirects on the same server")
        } else {
            "redirects not followed".to_string()
        });
        if let Some(state) = &self.send_state {
            parts.push(format!("header '{SEND_STATE_HEADER}: {state}'"));
        }
        parts.join(", ")
    }

    pub fn run(&self, deadline: Deadline, observed: &mut Observed) -> Verdict {
        let state = SharedState::default();
        let verdict = exchange(self, deadline, &state);
        let shared = lock(&state);
        observed.timings = shared.timings;
        observed.cert_not_after = shared.cert_not_after;
        observed.status = shared.status;
        verdict
    }
}

/// What the connector learns and ureq's errors cannot carry.
#[derive(Default)]
struct Shared {
    failure: Option<Failure>,
    timings: Timings,
    /// The final answer's status.
    status: Option<u16>,
    /// The answer's head has been read: what is read now is its body.
    head_read: bool,
    cert_not_after: Option<i64>,
}

type SharedState = Arc<Mutex<Shared>>;

fn lock(state: &SharedState) -> std::sync::MutexGuard<'_, Shared> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn exchange(check: &HttpProbe, deadline: Deadline, state: &SharedState) -> Verdict {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent(USER_AGENT)
        // No timeout of ureq's own: it would race the deadline, which every
        // read and write of our transport keeps (a deadline is always exit 4).
        .timeout_global(None)
        .build();
    let connector = ProbeConnector {
        endpoint: check.endpoint.clone(),
        tls: check.tls.clone(),
        deadline,
        state: state.clone(),
    };
    let agent = ureq::Agent::with_parts(config, connector, NoResolver);
    let mut method = check.method.clone();
    let mut path = check.path.clone();
    let mut body = check.body.clone();
    let mut hops = 0;
    loop {
        lock(state).head_read = false;
        let url = format!("{}{path}", check.origin);
        log::info!("> {method} {url}");
        let mut request = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(&url);
        if let Some(state) = &check.send_state {
            request = request.header(SEND_STATE_HEADER, state);
        }
        for (name, value) in &check.headers {
            request = request.header(name, value);
        }
        let sent = match &body {
            Some(b) => request
                .body(b.clone().into_bytes())
                .map_err(|e| Failure::Usage(format!("invalid request: {e}")))
                .and_then(|r| agent.run(r).map_err(|e| failure(e, state))),
            None => request
                .body(())
                .map_err(|e| Failure::Usage(format!("invalid request: {e}")))
                .and_then(|r| agent.run(r).map_err(|e| failure(e, state))),
        };
        let mut response = sent?;
        let status = response.status();
        {
            let mut shared = lock(state);
            shared.status = Some(status.as_u16());
            shared.head_read = true;
        }
        log::info!("< {:?} {status}", response.version());
        if check.follow_redirects && status.is_redirection() {
            if let Some(location) = response.headers().get("location") {
                let location = String::from_utf8_lossy(location.as_bytes()).into_owned();
                hops += 1;
                if hops > MAX_REDIRECTS {
                    return Err(Failure::Unhealthy(format!(
                        "more than {MAX_REDIRECTS} redirects (last to {})",
                        escape(&location)
                    )));
                }
                path = redirect_target(&location, &check.origin, &path).map_err(|elsewhere| {
                    Failure::Unhealthy(format!(
                        "HTTP {} redirects to another server: {}",
                        status.as_u16(),
                        escape(&elsewhere)
                    ))
                })?;
                if matches!(status.as_u16(), 301..=303) && method != "HEAD" {
                    method = "GET".into();
                    body = None;
                }
                log::debug!("following the redirect to {path}");
                continue;
            }
        }
        let reason = status.canonical_reason().unwrap_or("");
        let Some(expect) = &check.expect else {
            return judge(status.as_u16(), reason, &check.expect_status, None);
        };
        if !check.expect_status.contains(status.as_u16()) {
            return judge(status.as_u16(), reason, &check.expect_status, None);
        }
        let mut prefix = Vec::with_capacity(4096);
        response
            .body_mut()
            .as_reader()
            .take(MAX_BODY as u64)
            .read_to_end(&mut prefix)
            .map_err(|e| {
                lock(state).failure.take().unwrap_or_else(|| {
                    if e.kind() == std::io::ErrorKind::TimedOut {
                        Failure::Timeout(Phase::Body)
                    } else {
                        Failure::Protocol(format!("{} while reading the body", describe_io(&e)))
                    }
                })
            })?;
        return judge(
            status.as_u16(),
            reason,
            &check.expect_status,
            Some((expect, &prefix)),
        );
    }
}

/// A ureq error as a failure class; what our connection found comes first.
fn failure(e: ureq::Error, state: &SharedState) -> Failure {
    if let Some(f) = lock(state).failure.take() {
        return f;
    }
    match e {
        ureq::Error::Timeout(_) => Failure::Timeout(Phase::Receive),
        ureq::Error::Io(io) => Failure::Protocol(describe_io(&io)),
        ureq::Error::Protocol(p) => {
            Failure::Protocol(format!("not HTTP: {}", escape(&p.to_string())))
        }
        ureq::Error::BadUri(u) => Failure::Usage(format!("invalid URL: {}", escape(&u))),
        ureq::Error::Http(h) => Failure::Usage(format!("invalid request: {h}")),
        other => Failure::Protocol(escape(&other.to_string())),
    }
}

/// The target is ours, not the URL's: no name resolution by ureq.
#[derive(Debug)]
struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok(addrs)
    }
}

/// Connects to the check's endpoint (TCP or UNIX, TLS or not) whatever the URL says.
struct ProbeConnector {
    endpoint: Endpoint,
    tls: Option<TlsClient>,
    deadline: Deadline,
    state: SharedState,
}

impl fmt::Debug for ProbeConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeConnector")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Connector<()> for ProbeConnector {
    type Out = ProbeTransport;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<ProbeTransport>, ureq::Error> {
        match Connection::open(&self.endpoint, self.tls.as_ref(), self.deadline) {
            Ok(conn) => {
                {
                    let mut shared = lock(&self.state);
                    shared.timings = conn.timings;
                    shared.cert_not_after = conn.cert_not_after;
                }
                Ok(Some(ProbeTransport {
                    conn,
                    tls: self.tls.is_some(),
                    buffers: LazyBuffers::new(MAX_HEAD, 16 * 1024),
                    state: self.state.clone(),
                    sent: false,
                }))
            }
            Err(f) => Err(stash(&self.state, f)),
        }
    }
}

fn stash(state: &SharedState, f: Failure) -> ureq::Error {
    let e = match &f {
        Failure::Timeout(_) => ureq::Error::Timeout(ureq::Timeout::Global),
        _ => ureq::Error::Io(std::io::Error::other(f.to_string())),
    };
    lock(state).failure = Some(f);
    e
}

struct ProbeTransport {
    conn: Connection,
    tls: bool,
    buffers: LazyBuffers,
    state: SharedState,
    sent: bool,
}

impl fmt::Debug for ProbeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeTransport")
            .field("tls", &self.tls)
            .finish()
    }
}

impl ProbeTransport {
    fn record(&mut self) {
        lock(&self.state).timings = self.conn.timings;
    }
}

impl Transport for ProbeTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, _timeout: NextTimeout) -> Result<(), ureq::Error> {
        let out = &self.buffers.output()[..amount];
        let result = self.conn.send(out, Phase::Send);
        result.map_err(|f| stash(&self.state, f))?;
        self.sent = true;
        Ok(())
    }

    fn await_input(&mut self, _timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if self.sent && self.conn.timings.request_sent.is_none() {
            self.conn.mark_sent();
        }
        if self.conn.buffered().is_empty() {
            let phase = if lock(&self.state).head_read {
                Phase::Body
            } else {
                Phase::Receive
            };
            let filled = self.conn.fill(phase);
            self.record();
            filled.map_err(|f| stash(&self.state, f))?;
        }
        let data = self.conn.buffered();
        let room = self.buffers.input_append_buf();
        if room.is_empty() && !data.is_empty() {
            // ureq holds the head until it parses: one this large never will.
            let head = !lock(&self.state).head_read;
            let f = Failure::Protocol(match head {
                true => format!("response head larger than {} KiB", MAX_HEAD / 1024),
                false => "response larger than the receive buffer".into(),
            });
            return Err(stash(&self.state, f));
        }
        let n = data.len().min(room.len());
        room[..n].copy_from_slice(&data[..n]);
        self.buffers.input_appended(n);
        self.conn.consume(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        !self.conn.at_eof()
    }

    fn is_tls(&self) -> bool {
        self.tls
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn status_lists() {
        let l = StatusList::parse("200, 204,300-399").unwrap();
        assert!(l.contains(200) && l.contains(204) && l.contains(302));
        assert!(!l.contains(201) && !l.contains(400));
        assert_eq!(l.to_string(), "200,204,300-399");
        assert!(StatusList::default_healthy().contains(399));
        assert!(!StatusList::default_healthy().contains(404));
        for bad in ["", "2xx", "99", "600", "300-200", "200,", "-"] {
            assert!(StatusList::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn judging() {
        let ok = StatusList::default_healthy();
        assert_eq!(judge(200, "OK", &ok, None).unwrap().summary, "200 OK");
        assert_eq!(judge(302, "Found", &ok, None).unwrap().summary, "302 Found");
        assert_eq!(
            judge(503, "Service Unavailable", &ok, None),
            Err(Failure::Unhealthy(
                "HTTP 503 Service Unavailable (expected 200-399)".into()
            ))
        );
        let e = Expect::String("ready".into());
        assert!(judge(200, "OK", &ok, Some((&e, b"all ready"))).is_ok());
        assert_eq!(
            judge(200, "OK", &ok, Some((&e, b"starting"))),
            Err(Failure::Unhealthy(
                "HTTP 200 OK but string \"ready\" is not in the first 8 body bytes".into()
            ))
        );
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
    fn redirects() {
        let o = "http://127.0.0.1:8080";
        assert_eq!(redirect_target("/b", o, "/a"), Ok("/b".into()));
        assert_eq!(
            redirect_target("http://127.0.0.1:8080/c?x", o, "/a"),
            Ok("/c?x".into())
        );
        assert_eq!(
            redirect_target("http://127.0.0.1:8080", o, "/a"),
            Ok("/".into())
        );
        assert_eq!(redirect_target("d/", o, "/x/y"), Ok("/x/d/".into()));
        assert_eq!(redirect_target("d", o, "/"), Ok("/d".into()));
        assert!(redirect_target("http://127.0.0.1:8081/", o, "/").is_err());
        assert!(redirect_target("https://127.0.0.1:8080/", o, "/").is_err());
        assert!(redirect_target("//other/", o, "/").is_err());
    }
}

//! One ICAP check over a connection: OPTIONS, or RESPMOD/REQMOD with a
//! sample body and preview, and the rules that turn the answer into a verdict.

use std::fs::File;
use std::io::Write;
use std::time::Duration;

use super::canary::{self, Judged};
use super::capacity;
use super::chunked::{self, LAST_CHUNK, LAST_CHUNK_IEOF};
use super::reader::{log_head, Progress, Response, ResponseReader};
use super::request::{self, Address, Encapsulation, Method};
use super::response::{parse_encapsulated, Head, Section};
use super::sample::{Body, Sample, CHUNK};
use super::{IcapProbe, Preview};
use crate::net::{Connection, Deadline};
use crate::outcome::{Canary, Capacity, Failure, Healthy, Observed, Phase, Verdict};
use crate::text::{describe_io, escape};

/// While sending a body, how long one write may wait for room in the socket
/// before we look again at what the server has sent.
const WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// The adapted body read without --output may be 4 times the sample, or this.
const MIN_BODY_LIMIT: u64 = 16 << 20;

pub fn run(check: &mut IcapProbe, deadline: Deadline, observed: &mut Observed) -> Verdict {
    let mut conn = Connection::open(&check.endpoint, check.tls.as_ref(), deadline)?;
    let verdict = exchange(check, deadline, &mut conn, observed);
    observed.timings = conn.timings;
    observed.cert_not_after = conn.cert_not_after;
    verdict
}

fn exchange(
    check: &mut IcapProbe,
    deadline: Deadline,
    conn: &mut Connection,
    observed: &mut Observed,
) -> Verdict {
    let to = Address {
        uri: &check.uri,
        host: &check.host,
    };
    // With a canary to follow, the server is asked to keep the connection.
    let keep_alive = check.canary.is_some();
    let mut service_preview = None;
    let mut options_head = None;
    if check.method == Method::Options || check.preview == Preview::Auto {
        let head = options(conn, &to, keep_alive || check.method != Method::Options)?;
        observe(observed, &head);
        service_preview = head
            .headers
            .get("Preview")
            .and_then(|p| p.trim().parse().ok());
        options_head = Some(head);
    }
    observe_capacity(check, observed, options_head.as_ref());
    let (healthy, preview, reusable) = match &options_head {
        Some(head) if check.method == Method::Options => (
            judge_options(head, check.require_method.as_deref())?,
            service_preview,
            reusable(head),
        ),
        _ => own_modify(
            check,
            deadline,
            conn,
            observed,
            options_head.as_ref(),
            service_preview,
        )?,
    };
    let healthy = judge_capacity(check, observed, healthy)?;
    if check.canary.is_none() {
        return Ok(healthy);
    }
    let timings = conn.timings;
    let judged = canary(check, deadline, conn, reusable, preview);
    // The phases are those of the check's own request; total covers both.
    conn.timings = timings;
    let (method, response, unchanged) = judged.map_err(|f| match f {
        Failure::Timeout(_) => Failure::Timeout(Phase::Canary),
        Failure::Connect(why) => Failure::Connect(format!("EICAR canary: {why}")),
        Failure::Protocol(why) => Failure::Protocol(format!("EICAR canary: {why}")),
        Failure::Tls(why) => Failure::Tls(format!("EICAR canary: {why}")),
        other => other,
    })?;
    let judged = canary::judge(method, &response, unchanged);
    log::info!(
        "canary {method}: {}",
        match &judged {
            Judged::Caught { threat, how } => format!(
                "caught, {how}{}",
                threat
                    .as_deref()
                    .map(|t| format!(": {t}"))
                    .unwrap_or_default()
            ),
            Judged::Missed(how) => format!("passed undetected ({how})"),
            Judged::Failed(why) => why.clone(),
        }
    );
    let status = response.head.status;
    match judged {
        Judged::Caught { threat, how } => {
            let summary = format!(
                "{}, EICAR caught: {}",
                healthy.summary,
                threat.as_deref().unwrap_or(&how)
            );
            observed.canary = Some(Canary {
                caught: true,
                threat,
                status,
                detail: how,
            });
            Ok(Healthy { summary })
        }
        Judged::Missed(how) => {
            let why = format!("EICAR test file passed undetected ({how})");
            observed.canary = Some(Canary {
                caught: false,
                threat: None,
                status,
                detail: how,
            });
            Err(Failure::Unhealthy(why))
        }
        Judged::Failed(why) => {
            observed.canary = Some(Canary {
                caught: false,
                threat: None,
                status,
                detail: why.clone(),
            });
            Err(Failure::Unhealthy(format!("EICAR canary: {why}")))
        }
    }
}

/// The check's own RESPMOD or REQMOD, after its OPTIONS (`options_head`)
/// when the preview comes from the service. Returns the verdict, the
/// preview used, and whether the connection can carry another request.
fn own_modify(
    check: &mut IcapProbe,
    deadline: Deadline,
    conn: &mut Connection,
    observed: &mut Observed,
    options_head: Option<&Head>,
    service_preview: Option<u64>,
) -> Result<(Healthy, Option<u64>, bool), Failure> {
    let to = Address {
        uri: &check.uri,
        host: &check.host,
    };
    let preview = match (check.preview, options_head) {
        (Preview::Off, _) => None,
        (Preview::Bytes(n), _) => Some(n),
        (Preview::Auto, head) => {
            if let Some(head) = head {
                let required = check
                    .require_method
                    .as_deref()
                    .unwrap_or(check.method.as_str());
                judge_options(head, Some(required))?;
                log::debug!("service preview: {service_preview:?}");
                if !reusable(head) {
                    let timings = conn.timings;
                    *conn = Connection::open(&check.endpoint, check.tls.as_ref(), deadline)?;
                    conn.timings = timings;
                }
            }
            service_preview
        }
    };
    let Some(body) = check.body.as_mut() else {
        return Err(Failure::Usage(format!(
            "{} needs a sample body",
            check.method
        )));
    };
    let output = match check.output.as_mut() {
        Some(o) => Some((o.file()?, o.path.display().to_string())),
        None => None,
    };
    let mut sink = BodySink {
        output,
        error: None,
        compare: None,
    };
    let keep_alive = check.canary.is_some();
    let (response, whole) = modify(
        conn,
        &to,
        check.method,
        body,
        preview,
        &mut sink,
        keep_alive,
    )?;
    observe(observed, &response.head);
    if let Some(why) = sink.error {
        return Err(Failure::Usage(why));
    }
    let healthy = judge_modify(check.method, &response)?;
    // Reused only when the exchange ended cleanly: the whole request sent,
    // the whole answer read, nothing after it, the server not closing.
    let reusable = keep_alive
        && whole
        && !response.head.headers.lists("Connection", "close")
        && conn.buffered().is_empty()
        && !conn.at_eof();
    Ok((healthy, preview, reusable))
}

/// The detection canary: the EICAR test file on the same connection when
/// the server kept it, else on a new one. Returns the method it went as,
/// the answer, and whether the file came back unchanged.
fn canary(
    check: &mut IcapProbe,
    deadline: Deadline,
    conn: &mut Connection,
    reusable: bool,
    preview: Option<u64>,
) -> Result<(Method, Response, bool), Failure> {
    let method = check.canary_method();
    let Some(body) = check.canary.as_mut() else {
        return Err(Failure::Usage("no canary configured".into()));
    };
    if reusable {
        log::debug!("canary: on the same connection");
    } else {
        log::debug!("canary: on a new connection (the server did not keep the first)");
        *conn = Connection::open(&check.endpoint, check.tls.as_ref(), deadline)?;
    }
    let to = Address {
        uri: &check.uri,
        host: &check.host,
    };
    let mut sink = BodySink {
        output: None,
        error: None,
        compare: Some(Compare {
            expected: canary::eicar(),
            seen: 0,
            same: true,
        }),
    };
    let (response, _) = modify(conn, &to, method, body, preview, &mut sink, false)?;
    let unchanged = sink
        .compare
        .is_some_and(|c| c.same && c.seen == canary::LEN);
    Ok((method, response, unchanged))
}

fn observe(observed: &mut Observed, head: &Head) {
    observed.status = Some(head.status);
    observed.istag = head.headers.get("ISTag").map(escape);
}

/// The service's numbers from its OPTIONS answer (when one was read) beside
/// HAProxy's; `-v` says what is known.
fn observe_capacity(check: &IcapProbe, observed: &mut Observed, options: Option<&Head>) {
    let capacity = match options {
        Some(head) => capacity::from_options(head, check.maxconn, check.curconn),
        None if check.maxconn.is_some() || check.curconn.is_some() || check.require_capacity => {
            Capacity {
                maxconn: check.maxconn,
                curconn: check.curconn,
                ..Capacity::default()
            }
        }
        None => return,
    };
    if log::log_enabled!(log::Level::Info) {
        log::info!("capacity: {}", capacity::describe(&capacity));
        if let Some(why) = capacity.shortfall() {
            log::warn!("capacity: {why}");
        }
    }
    observed.capacity = Some(capacity);
}

/// `--require-capacity` fails a check whose server HAProxy may load past
/// the service's Max-Connections; otherwise the shortfall is only reported.
fn judge_capacity(check: &IcapProbe, observed: &Observed, healthy: Healthy) -> Verdict {
    let Some(why) = observed.capacity.as_ref().and_then(Capacity::shortfall) else {
        return Ok(healthy);
    };
    if check.require_capacity {
        return Err(Failure::Unhealthy(why));
    }
    Ok(Healthy {
        summary: format!("{}; warning: {why}", healthy.summary),
    })
}

/// Whether the connection can carry the next request after an OPTIONS reply.
fn reusable(head: &Head) -> bool {
    let body = head
        .headers
        .get("Encapsulated")
        .and_then(|v| parse_encapsulated(v).ok())
        .map(|e| e.body());
    !head.headers.lists("Connection", "close") && body == Some(Section::NullBody)
}

fn options(conn: &mut Connection, to: &Address<'_>, keep_alive: bool) -> Result<Head, Failure> {
    let req = request::options(to, keep_alive);
    log_head(">", &req);
    conn.send(&req, Phase::Send)?;
    conn.mark_sent();
    let mut reader = ResponseReader::new(Method::Options, false);
    receive(conn, &mut reader, Phase::Receive, &mut |_| {})?;
    reader
        .into_response()
        .map(|r| r.head)
        .ok_or_else(|| Failure::Protocol("incomplete OPTIONS response".into()))
}

/// OPTIONS is healthy with status 200, an ISTag, and the required method in Methods.
pub fn judge_options(head: &Head, require_method: Option<&str>) -> Verdict {
    if head.status != 200 {
        return Err(Failure::Unhealthy(format!(
            "OPTIONS answered {} {}",
            head.status,
            escape(&head.reason)
        )));
    }
    let istag = head
        .headers
        .get("ISTag")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Failure::Unhealthy("OPTIONS 200 without ISTag".into()))?;
    if let Some(method) = require_method {
        if !head.headers.lists("Methods", method) {
            return Err(Failure::Unhealthy(format!(
                "service does not offer {} (Methods: {})",
                method.to_ascii_uppercase(),
                escape(head.headers.get("Methods").unwrap_or("none"))
            )));
        }
    }
    Ok(Healthy {
        summary: format!("200 ISTag={}", escape(istag)),
    })
}

/// Where the adapted body goes: `--output`, or nowhere; for the canary,
/// compared with the file sent.
struct BodySink {
    output: Option<(File, String)>,
    error: Option<String>,
    compare: Option<Compare>,
}

/// Whether the body coming back is the canary's file, byte for byte.
struct Compare {
    expected: [u8; canary::LEN],
    seen: usize,
    same: bool,
}

impl Compare {
    fn feed(&mut self, data: &[u8]) {
        let end = self.seen.saturating_add(data.len());
        self.same = self.same && self.expected.get(self.seen..end) == Some(data);
        self.seen = end;
    }
}

impl BodySink {
    fn write(&mut self, data: &[u8]) {
        if let Some(compare) = self.compare.as_mut() {
            compare.feed(data);
        }
        if let (Some((file, name)), None) = (self.output.as_mut(), &self.error) {
            if let Err(e) = file.write_all(data) {
                self.error = Some(format!(
                    "cannot write --output {}: {}",
                    escape(name),
                    describe_io(&e)
                ));
            }
        }
    }
}

/// Sends a RESPMOD or REQMOD with its body, honouring the preview, while
/// reading the answer: the request is cut short once the answer is complete.
/// Returns the answer, and whether the whole request was sent.
fn modify(
    conn: &mut Connection,
    to: &Address<'_>,
    method: Method,
    body: &mut Body,
    preview: Option<u64>,
    sink: &mut BodySink,
    keep_alive: bool,
) -> Result<(Response, bool), Failure> {
    let (len, content_type) = (body.len, body.content_type);
    let sample = &mut body.sample()?;
    let message = match method {
        Method::Reqmod => Encapsulation::reqmod(len, content_type),
        _ => Encapsulation::respmod(len, content_type),
    };
    // With --output the body is wanted back, so "unchanged" (204) is not offered.
    let allow_204 = sink.output.is_none();
    let mut out = request::modify(method, to, &message, preview, allow_204, keep_alive);
    log_head(">", &out);
    let mut reader = ResponseReader::new(method, sink.output.is_some());
    if sink.output.is_none() {
        // Enough for an echo or a rebuilt file; an endless body ends at once.
        reader.limit_body(len.saturating_mul(4).max(MIN_BODY_LIMIT));
    }
    let mut x = Exchange {
        conn,
        reader: &mut reader,
        sink,
        cut_short: false,
    };
    let answered = match preview {
        Some(n) => {
            x.send_body(&mut out, sample, Some(n))? || {
                let ieof = sample.at_end()?;
                out.extend_from_slice(if ieof { LAST_CHUNK_IEOF } else { LAST_CHUNK });
                x.flush(&mut out)? || {
                    x.reader.allow_continue(!ieof);
                    if x.receive(Phase::Continue)? == Progress::Continue {
                        log::debug!("100 Continue: sending the rest");
                        x.send_body(&mut out, sample, None)? || {
                            out.extend_from_slice(LAST_CHUNK);
                            x.flush(&mut out)?
                        }
                    } else {
                        true
                    }
                }
            }
        }
        None => {
            x.send_body(&mut out, sample, None)? || {
                out.extend_from_slice(LAST_CHUNK);
                x.flush(&mut out)?
            }
        }
    };
    if answered {
        log::debug!("the answer came before the request was complete");
    } else {
        x.conn.mark_sent();
    }
    x.receive(Phase::Receive)?;
    // A final answer right after a preview ends the request as the
    // protocol has it; one that stopped the sending leaves it half sent.
    let whole = !x.cut_short;
    reader
        .into_response()
        .map(|r| (r, whole))
        .ok_or_else(|| Failure::Protocol("incomplete response".into()))
}

/// Sending and receiving on one connection at once.
struct Exchange<'c, 'r, 's> {
    conn: &'c mut Connection,
    reader: &'r mut ResponseReader,
    sink: &'s mut BodySink,
    /// The answer ended the sending before the request was all written.
    cut_short: bool,
}

impl Exchange<'_, '_, '_> {
    /// Appends chunks of the sample to `out`, sending whenever a chunk's
    /// worth is ready, up to `limit` body bytes (all without one). What is
    /// left in `out` goes with the last chunk. True if the server's answer
    /// ended the sending.
    fn send_body(
        &mut self,
        out: &mut Vec<u8>,
        sample: &mut Sample,
        limit: Option<u64>,
    ) -> Result<bool, Failure> {
        let mut sent = 0u64;
        loop {
            let max = match limit {
                Some(l) => usize::try_from(l - sent).unwrap_or(CHUNK).min(CHUNK),
                None => CHUNK,
            };
            if max == 0 {
                return Ok(false);
            }
            let data = sample.peek(max)?;
            if data.is_empty() {
                return Ok(false);
            }
            let n = data.len();
            chunked::encode_chunk(out, data);
            sample.advance(n);
            sent += n as u64;
            if out.len() >= CHUNK && self.flush(out)? {
                return Ok(true);
            }
        }
    }

    /// Sends `out`, taking in the server's answer between writes. True if the
    /// answer is complete (or the server closed) before all was sent.
    fn flush(&mut self, out: &mut Vec<u8>) -> Result<bool, Failure> {
        let mut off = 0;
        let mut stopped = false;
        while off < out.len() {
            self.conn.try_receive(Phase::Send)?;
            if self.take_answer()? {
                stopped = true;
                break;
            }
            match self
                .conn
                .write_some(&out[off..], Phase::Send, WATCH_INTERVAL)
            {
                Ok(n) => off += n,
                Err(e) => {
                    // A server that answered and closed: its answer is the diagnosis.
                    let _ = self.conn.try_receive(Phase::Send);
                    if self.take_answer()? {
                        stopped = true;
                        break;
                    }
                    return Err(e);
                }
            }
        }
        out.clear();
        self.cut_short |= stopped;
        Ok(stopped)
    }

    /// Feeds what has arrived to the reader; true once the answer is
    /// complete or nothing more can come.
    fn take_answer(&mut self) -> Result<bool, Failure> {
        let sink = &mut *self.sink;
        let (used, progress) = self
            .reader
            .advance(self.conn.buffered(), false, &mut |d| sink.write(d))?;
        self.conn.consume(used);
        Ok(progress == Progress::Complete || self.conn.at_eof())
    }

    fn receive(&mut self, phase: Phase) -> Result<Progress, Failure> {
        let sink = &mut *self.sink;
        receive(self.conn, self.reader, phase, &mut |d| sink.write(d))
    }
}

/// Reads until the reader has a complete answer or a `100 Continue`.
fn receive(
    conn: &mut Connection,
    reader: &mut ResponseReader,
    phase: Phase,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<Progress, Failure> {
    loop {
        let (used, progress) = reader.advance(conn.buffered(), conn.at_eof(), sink)?;
        conn.consume(used);
        if progress != Progress::NeedMore {
            return Ok(progress);
        }
        conn.fill(phase)?;
    }
}

/// RESPMOD/REQMOD is healthy on 204, or on 200 whose encapsulated HTTP
/// message is a request or a 2xx response.
pub fn judge_modify(method: Method, response: &Response) -> Verdict {
    let head = &response.head;
    let istag = head
        .headers
        .get("ISTag")
        .map(|t| format!(" ISTag={}", escape(t)))
        .unwrap_or_default();
    match head.status {
        204 => Ok(Healthy {
            summary: format!("204 {}{istag}", escape(&head.reason)),
        }),
        200 => match &response.http {
            Some(http) if !(200..300).contains(&http.status) => Err(Failure::Unhealthy(format!(
                "ICAP 200 wraps HTTP {} {}",
                http.status,
                escape(&http.reason)
            ))),
            http => {
                let what = match http {
                    Some(h) => format!(" HTTP {}", h.status),
                    None => " adapted request".to_string(),
                };
                let bytes = response
                    .body_bytes
                    .map(|n| format!(", {n} body bytes"))
                    .unwrap_or_default();
                Ok(Healthy {
                    summary: format!("200{istag}{what}{bytes}"),
                })
            }
        },
        status => Err(Failure::Unhealthy(format!(
            "{method} answered {status} {}",
            escape(&head.reason)
        ))),
    }
}

//! One ICAP check over a connection: OPTIONS, or RESPMOD/REQMOD with a
//! sample body and preview, and the rules that turn the answer into a verdict.

use std::fs::File;
use std::io::Write;
use std::time::Duration;

use super::chunked::{self, LAST_CHUNK, LAST_CHUNK_IEOF};
use super::reader::{log_head, Progress, Response, ResponseReader};
use super::request::{self, Address, Encapsulation, Method};
use super::response::{parse_encapsulated, Head, Section};
use super::sample::{Body, Sample, CHUNK};
use super::{IcapProbe, Preview};
use crate::net::{Connection, Deadline};
use crate::outcome::{Failure, Healthy, Observed, Phase, Verdict};
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
    if check.method == Method::Options {
        let head = options(conn, &to, false)?;
        observe(observed, &head);
        return judge_options(&head, check.require_method.as_deref());
    }
    let preview = match check.preview {
        Preview::Off => None,
        Preview::Bytes(n) => Some(n),
        Preview::Auto => {
            let head = options(conn, &to, true)?;
            observe(observed, &head);
            let required = check
                .require_method
                .as_deref()
                .unwrap_or(check.method.as_str());
            judge_options(&head, Some(required))?;
            let preview = head
                .headers
                .get("Preview")
                .and_then(|p| p.trim().parse().ok());
            log::debug!("service preview: {preview:?}");
            if !reusable(&head) {
                let timings = conn.timings;
                *conn = Connection::open(&check.endpoint, check.tls.as_ref(), deadline)?;
                conn.timings = timings;
            }
            preview
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
    };
    let response = modify(conn, &to, check.method, body, preview, &mut sink)?;
    observe(observed, &response.head);
    if let Some(why) = sink.error {
        return Err(Failure::Usage(why));
    }
    judge_modify(check.method, &response)
}

fn observe(observed: &mut Observed, head: &Head) {
    observed.status = Some(head.status);
    observed.istag = head.headers.get("ISTag").map(escape);
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

/// Where the adapted body goes: `--output`, or nowhere.
struct BodySink {
    output: Option<(File, String)>,
    error: Option<String>,
}

impl BodySink {
    fn write(&mut self, data: &[u8]) {
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
fn modify(
    conn: &mut Connection,
    to: &Address<'_>,
    method: Method,
    body: &mut Body,
    preview: Option<u64>,
    sink: &mut BodySink,
) -> Result<Response, Failure> {
    let (len, content_type) = (body.len, body.content_type);
    let sample = &mut body.sample()?;
    let message = match method {
        Method::Reqmod => Encapsulation::reqmod(len, content_type),
        _ => Encapsulation::respmod(len, content_type),
    };
    // With --output the body is wanted back, so "unchanged" (204) is not offered.
    let allow_204 = sink.output.is_none();
    let mut out = request::modify(method, to, &message, preview, allow_204);
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
    reader
        .into_response()
        .ok_or_else(|| Failure::Protocol("incomplete response".into()))
}

/// Sending and receiving on one connection at once.
struct Exchange<'c, 'r, 's> {
    conn: &'c mut Connection,
    reader: &'r mut ResponseReader,
    sink: &'s mut BodySink,
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

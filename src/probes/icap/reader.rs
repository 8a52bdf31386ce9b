//! An ICAP response as a state machine over arriving bytes: the ICAP head,
//! the encapsulated HTTP headers, then the chunked body.
//!
//! Sans-IO, so the probe can feed it while it is still sending: c-icap's echo
//! streams its answer while the upload goes on, and a server may answer and
//! stop reading. Either way the probe learns from here when the answer is
//! complete.

use super::chunked::Decoder;
use super::request::Method;
use super::response::{
    self, parse_encapsulated, parse_head_at, Encapsulated, Head, HeadError, Parsed, Protocol,
    Section,
};
use crate::outcome::Failure;
use crate::text::escape;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    NeedMore,
    /// A `100 Continue` head was read; another head follows.
    Continue,
    Complete,
}

/// What was read of a complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub head: Head,
    /// The encapsulated HTTP response head (`res-hdr`), if any.
    pub http: Option<Head>,
    /// Body bytes decoded, when the body was read.
    pub body_bytes: Option<u64>,
}

enum Stage {
    Head,
    Headers(Head, Encapsulated),
    Body(Response, Decoder),
    Done(Response),
}

pub struct ResponseReader {
    method: Method,
    continue_allowed: bool,
    /// Read the body even when the HTTP status already decides (for --output).
    keep_body: bool,
    /// Most body bytes read before the answer is called oversized.
    body_limit: Option<u64>,
    stage: Stage,
    /// How much of the input the head parser has already seen.
    scanned: usize,
    line_start: usize,
}

impl ResponseReader {
    pub fn new(method: Method, keep_body: bool) -> Self {
        ResponseReader {
            method,
            continue_allowed: false,
            keep_body,
            body_limit: None,
            stage: Stage::Head,
            scanned: 0,
            line_start: 0,
        }
    }

    /// Bounds the body: past `limit` bytes the answer is a protocol error.
    pub fn limit_body(&mut self, limit: u64) {
        self.body_limit = Some(limit);
    }

    /// Whether a `100 Continue` is a valid answer now (after a preview without ieof).
    pub fn allow_continue(&mut self, allowed: bool) {
        self.continue_allowed = allowed;
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.stage, Stage::Done(_))
    }

    pub fn into_response(self) -> Option<Response> {
        match self.stage {
            Stage::Done(r) => Some(r),
            _ => None,
        }
    }

    /// Takes what it can of `input` (bytes received and not yet consumed),
    /// handing body data to `sink`; returns how many bytes it consumed.
    /// `eof`: the server has closed, nothing more will come.
    pub fn advance(
        &mut self,
        input: &[u8],
        eof: bool,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(usize, Progress), Failure> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let stage = std::mem::replace(&mut self.stage, Stage::Head);
            let before = stage.kind();
            let (n, next) = match stage {
                Stage::Done(r) => {
                    self.stage = Stage::Done(r);
                    return Ok((used, Progress::Complete));
                }
                Stage::Head => match self.head(rest)? {
                    None => (0, Stage::Head),
                    Some((head, n)) if head.status == 100 => {
                        if !self.continue_allowed {
                            return Err(Failure::Protocol("unexpected 100 Continue".into()));
                        }
                        self.continue_allowed = false;
                        return Ok((used + n, Progress::Continue));
                    }
                    Some((head, n)) => (n, self.after_head(head)?),
                },
                Stage::Headers(head, enc) => self.headers(rest, head, enc)?,
                Stage::Body(mut response, mut decoder) => {
                    let mut bytes = response.body_bytes.unwrap_or(0);
                    let n = decoder
                        .decode(rest, &mut |data| {
                            bytes += data.len() as u64;
                            sink(data);
                        })
                        .map_err(|e| {
                            Failure::Protocol(format!("{} after {bytes} body bytes", e.message()))
                        })?;
                    response.body_bytes = Some(bytes);
                    if let Some(limit) = self.body_limit.filter(|l| bytes > *l) {
                        return Err(Failure::Protocol(format!(
                            "adapted body longer than {limit} bytes"
                        )));
                    }
                    if decoder.is_done() {
                        log::debug!("body complete: {bytes} bytes");
                        (n, Stage::Done(response))
                    } else {
                        (n, Stage::Body(response, decoder))
                    }
                }
            };
            let changed = next.kind() != before;
            self.stage = next;
            used += n;
            if n == 0 && !changed {
                if eof {
                    return Err(self.truncated(&input[used..]));
                }
                return Ok((used, Progress::NeedMore));
            }
        }
    }

    /// Parses the head once enough has arrived. The parser runs again only
    /// when a new line has ended or a line outgrew its limit, so a server
    /// dribbling bytes costs linear, not quadratic, time.
    fn head(&mut self, data: &[u8]) -> Result<Option<(Head, usize)>, Failure> {
        let scanned = self.scanned.min(data.len());
        let fresh = &data[scanned..];
        if let Some(i) = fresh.iter().rposition(|&b| b == b'\n') {
            self.line_start = scanned + i + 1;
        }
        let worth_parsing = (scanned == 0 && !data.is_empty())
            || fresh.contains(&b'\n')
            || data.len().saturating_sub(self.line_start) > response::MAX_LINE
            || data.len() > response::MAX_HEAD;
        self.scanned = data.len();
        if !worth_parsing {
            return Ok(None);
        }
        match parse_head_at(data, Protocol::Icap) {
            Ok(Parsed::Complete(head, n)) => {
                log_head("<", &data[..n]);
                self.scanned = 0;
                self.line_start = 0;
                Ok(Some((head, n)))
            }
            Ok(Parsed::Partial) => Ok(None),
            Err((e, at)) => Err(head_failure(e, data, at)),
        }
    }

    /// What follows an ICAP head: only a 200 carries encapsulated sections
    /// that matter to the verdict.
    fn after_head(&self, head: Head) -> Result<Stage, Failure> {
        if head.status != 200 || self.method == Method::Options {
            return Ok(done(head, None, None));
        }
        let value = head
            .headers
            .get("Encapsulated")
            .ok_or_else(|| Failure::Protocol("200 without an Encapsulated header".into()))?;
        let enc = parse_encapsulated(value)
            .map_err(|why| Failure::Protocol(format!("{why}: {}", escape(value))))?;
        if enc.headers_len() > response::MAX_HEAD {
            return Err(Failure::Protocol(format!(
                "encapsulated headers of {} bytes exceed 64 KiB",
                enc.headers_len()
            )));
        }
        Ok(Stage::Headers(head, enc))
    }

    fn headers(
        &self,
        data: &[u8],
        head: Head,
        enc: Encapsulated,
    ) -> Result<(usize, Stage), Failure> {
        let len = enc.headers_len();
        if data.len() < len {
            return Ok((0, Stage::Headers(head, enc)));
        }
        let http = match enc.header_range(Section::ResHdr) {
            Some(range) => Some(parse_http(&data[range])?),
            None if self.method == Method::Respmod => {
                return Err(Failure::Protocol("RESPMOD 200 without res-hdr".into()))
            }
            None => None,
        };
        let healthy_http = http.as_ref().is_none_or(|h| (200..300).contains(&h.status));
        let has_body = matches!(
            enc.body(),
            Section::ReqBody | Section::ResBody | Section::OptBody
        );
        let stage = if has_body && (healthy_http || self.keep_body) {
            Stage::Body(
                Response {
                    head,
                    http,
                    body_bytes: Some(0),
                },
                Decoder::new(),
            )
        } else {
            done(head, http, None)
        };
        Ok((len, stage))
    }

    fn truncated(&self, rest: &[u8]) -> Failure {
        Failure::Protocol(match &self.stage {
            Stage::Head if rest.is_empty() => "connection closed without a response".to_string(),
            Stage::Head => format!(
                "connection closed after {} bytes of an incomplete response head",
                rest.len()
            ),
            Stage::Headers(_, enc) => format!(
                "connection closed inside the encapsulated headers ({} of the {} bytes Encapsulated announced)",
                rest.len(),
                enc.headers_len()
            ),
            Stage::Body(r, _) => format!(
                "connection closed inside the body after {} bytes",
                r.body_bytes.unwrap_or(0)
            ),
            Stage::Done(_) => "connection closed".to_string(),
        })
    }
}

impl Stage {
    fn kind(&self) -> u8 {
        match self {
            Stage::Head => 0,
            Stage::Headers(..) => 1,
            Stage::Body(..) => 2,
            Stage::Done(_) => 3,
        }
    }
}

fn done(head: Head, http: Option<Head>, body_bytes: Option<u64>) -> Stage {
    Stage::Done(Response {
        head,
        http,
        body_bytes,
    })
}

fn parse_http(block: &[u8]) -> Result<Head, Failure> {
    match parse_head_at(block, Protocol::Http) {
        Ok(Parsed::Complete(head, _)) => {
            log_head("<", block);
            Ok(head)
        }
        Ok(Parsed::Partial) => Err(Failure::Protocol(
            "encapsulated HTTP headers do not end where Encapsulated says".into(),
        )),
        Err((e, at)) => Err(head_failure(e, block, at)),
    }
}

/// A head that does not parse, quoting the line at fault (its start).
fn head_failure(e: HeadError, data: &[u8], at: std::ops::Range<usize>) -> Failure {
    let line = data.get(at).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Failure::Protocol(format!(
        "{}: {}",
        e.message(),
        quote(&line[..line.len().min(80)])
    ))
}

fn quote(data: &[u8]) -> String {
    format!("\"{}\"", escape(&String::from_utf8_lossy(data)))
}

pub fn log_head(direction: &str, bytes: &[u8]) {
    if log::log_enabled!(log::Level::Info) {
        let text = String::from_utf8_lossy(bytes);
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        for line in head.lines() {
            log::info!("{direction} {}", escape(line));
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const RESPMOD_200: &[u8] = b"ICAP/1.0 200 OK\r\nISTag: x\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n0\r\n\r\n";

    fn feed(
        reader: &mut ResponseReader,
        input: &[u8],
        eof: bool,
    ) -> Result<(usize, Progress), Failure> {
        reader.advance(input, eof, &mut |_| {})
    }

    /// A message quotes the line at fault, not the status line.
    #[test]
    fn errors_quote_the_line_at_fault() {
        let cases: [(&[u8], &str); 3] = [
            (
                b"ICAP/1.0 200 OK\r\nISTag: x\r\nno colon here\r\n\r\n",
                "malformed header line: \"no colon here\"",
            ),
            (
                b"ICAP/1.0 204 No Content\r\nISTag: x\r\nBad Name: y\r\n\r\n",
                "malformed header line: \"Bad Name: y\"",
            ),
            (
                b"ICAP/1.0 200 OK\r\nISTag: x\r\nEncapsulated: res-hdr=0, null-body=27\r\n\r\nHTTP/1.1 200 OK\r\nX Y: z\r\n\r\n",
                "malformed header line: \"X Y: z\"",
            ),
        ];
        for (input, says) in cases {
            let mut r = ResponseReader::new(Method::Respmod, false);
            match feed(&mut r, input, true) {
                Err(Failure::Protocol(why)) => assert!(why.contains(says), "{why}"),
                other => panic!("{other:?}"),
            }
        }
        let mut long = b"ICAP/1.0 200 OK\r\nX-Long: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 9000));
        let mut r = ResponseReader::new(Method::Options, false);
        match feed(&mut r, &long, false) {
            Err(Failure::Protocol(why)) => {
                assert!(
                    why.starts_with("header line longer than 8 KiB: \"X-Long: aaa"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_whole_answer_in_one_piece() {
        let mut r = ResponseReader::new(Method::Respmod, false);
        let mut body = Vec::new();
        let (n, p) = r
            .advance(RESPMOD_200, false, &mut |d| body.extend_from_slice(d))
            .unwrap();
        assert_eq!((n, p), (RESPMOD_200.len(), Progress::Complete));
        assert_eq!(body, b"hello");
        let response = r.into_response().unwrap();
        assert_eq!(response.http.unwrap().status, 200);
        assert_eq!(response.body_bytes, Some(5));
    }

    #[test]
    fn every_prefix_needs_more_and_every_split_completes() {
        for cut in 0..RESPMOD_200.len() {
            let mut r = ResponseReader::new(Method::Respmod, false);
            let (n, p) = feed(&mut r, &RESPMOD_200[..cut], false).unwrap();
            assert_eq!(p, Progress::NeedMore, "cut {cut}");
            let (m, p) = feed(&mut r, &RESPMOD_200[n..], false).unwrap();
            assert_eq!(p, Progress::Complete, "cut {cut}");
            assert_eq!(n + m, RESPMOD_200.len());
            // Truncated there, the answer is a protocol error, never a panic.
            let mut r = ResponseReader::new(Method::Respmod, false);
            assert!(
                matches!(
                    feed(&mut r, &RESPMOD_200[..cut], true),
                    Err(Failure::Protocol(_))
                ),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn continue_only_when_allowed() {
        let mut r = ResponseReader::new(Method::Respmod, false);
        assert!(matches!(
            feed(&mut r, b"ICAP/1.0 100 Continue\r\n\r\n", false),
            Err(Failure::Protocol(_))
        ));
        let mut r = ResponseReader::new(Method::Respmod, false);
        r.allow_continue(true);
        assert_eq!(
            feed(&mut r, b"ICAP/1.0 100 Continue\r\n\r\n", false)
                .unwrap()
                .1,
            Progress::Continue
        );
        assert!(
            feed(&mut r, b"ICAP/1.0 100 Continue\r\n\r\n", false).is_err(),
            "twice"
        );
    }

    #[test]
    fn an_unhealthy_http_status_needs_no_body() {
        let answer = b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=26\r\n\r\nHTTP/1.0 403 Forbidden\r\n\r\n";
        let mut r = ResponseReader::new(Method::Respmod, false);
        assert_eq!(feed(&mut r, answer, false).unwrap().1, Progress::Complete);
        let mut r = ResponseReader::new(Method::Respmod, true);
        assert_eq!(
            feed(&mut r, answer, false).unwrap().1,
            Progress::NeedMore,
            "--output reads it"
        );
    }

    #[test]
    fn the_body_is_bounded() {
        let mut r = ResponseReader::new(Method::Respmod, false);
        r.limit_body(4);
        match feed(&mut r, RESPMOD_200, false) {
            Err(Failure::Protocol(why)) => assert_eq!(why, "adapted body longer than 4 bytes"),
            other => panic!("{other:?}"),
        }
    }
}

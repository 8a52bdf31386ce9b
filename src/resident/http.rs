//! A small HTTP/1.1 server for the metrics listener: GET only, one request
//! per connection, answered from memory. Requests are parsed by httparse
//! (bounded: 8 KiB, 32 headers); the loop around it is ours, with the
//! bounds a listener facing a hostile network needs: a deadline to send the
//! request, a cap on connections at once (past it: 503 at once), a write
//! deadline.
//!
//! tiny_http was measured and not taken: unmaintained, a thread per
//! connection without a cap, no read timeout, unbounded headers (64 MiB
//! accepted), and its accept thread stops for good at the descriptor limit.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request, and to take the answer.
const DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once (one thread each); past it, 503. Each client
/// that dawdles holds one for up to [`DEADLINE`]: a Prometheus scrape must
/// still get through while a hundred of them do (at 32, a hundred held
/// connections answered every scrape 503 for as long as they were renewed).
/// A thread parked on a read costs tens of KiB.
const MAX_CONNECTIONS: usize = 256;

/// A request: the path and the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    pub query: String,
    /// `HEAD`: the answer's head only.
    pub head_only: bool,
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }

    fn head(&self) -> String {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "",
        };
        // A 405 must say which methods are allowed (RFC 9110, 15.5.6).
        let allow = if self.status == 405 {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
    }
}

/// What a request head says: a request, more bytes needed, or the answer
/// to a bad request.
pub fn parse(head: &[u8]) -> Result<Option<Request>, Response> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Partial) if head.len() >= MAX_HEAD => {
            Err(Response::text(431, "request head too large\n"))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(_)) => {
            if !matches!(req.method, Some("GET") | Some("HEAD")) {
                return Err(Response::text(405, "GET only\n"));
            }
            let target = req.path.unwrap_or("/");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            Ok(Some(Request {
                path: path.to_string(),
                query: query.to_string(),
                head_only: req.method == Some("HEAD"),
            }))
        }
        Err(httparse::Error::TooManyHeaders) => Err(Response::text(431, "too many headers\n")),
        Err(_) => Err(Response::text(400, "bad request\n")),
    }
}

/// The value of `name` in a query string (`target=pool%2Fs1`), decoded.
pub fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves `handler`'s answers on `listener` until the process ends.
pub fn serve(listener: TcpListener, handler: Arc<dyn Fn(&Request) -> Response + Send + Sync>) {
    let open = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(mut stream) = conn else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            let _ = stream.set_nonblocking(true);
            let _ = send(&mut stream, &Response::text(503, "busy\n"), false);
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (handler, done) = (handler.clone(), open.clone());
        let spawned = std::thread::Builder::new()
            .name("http".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let (answer, head_only) = match read_request(&mut stream) {
                    Ok(req) => (handler(&req), req.head_only),
                    Err(r) => (r, false),
                };
                let _ = send(&mut stream, &answer, head_only);
                done.fetch_sub(1, Ordering::Relaxed);
            });
        if spawned.is_err() {
            open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn read_request(stream: &mut TcpStream) -> Result<Request, Response> {
    let until = Instant::now() + DEADLINE;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut have = 0;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(Response::text(408, "timeout\n"));
        }
        match stream.read(&mut buf[have..]) {
            Ok(0) => return Err(Response::text(400, "incomplete request\n")),
            Ok(n) => have += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(Response::text(408, "timeout\n")),
        }
        if let Some(req) = parse(&buf[..have])? {
            return Ok(req);
        }
        if have == buf.len() {
            return Err(Response::text(431, "request head too large\n"));
        }
    }
}

fn send(stream: &mut TcpStream, r: &Response, head_only: bool) -> std::io::Result<()> {
    // One deadline for the whole answer: a client reading a byte at a time
    // does not hold the thread longer.
    let until = Instant::now() + DEADLINE;
    write_by(stream, r.head().as_bytes(), until)?;
    if !head_only {
        write_by(stream, &r.body, until)?;
    }
    // Read what the client still sends (up to a bound) so that closing
    // does not reset the connection before it has the answer.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    Ok(())
}

/// Writes all of `bytes` by `until`, or fails.
fn write_by(stream: &mut TcpStream, mut bytes: &[u8], until: Instant) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(
            parse(b"GET /probe?target=pool%2Fs1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Some(Request {
                path: "/probe".into(),
                query: "target=pool%2Fs1".into(),
                head_only: false,
            }))
        );
        assert!(
            parse(b"HEAD /metrics HTTP/1.1\r\n\r\n")
                .unwrap()
                .unwrap()
                .head_only
        );
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost"), Ok(None));
        assert_eq!(parse(b"POST / HTTP/1.1\r\n\r\n").unwrap_err().status, 405);
        assert_eq!(parse(b"\x01\x02 garbage\r\n\r\n").unwrap_err().status, 400);
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes())
                .unwrap_err()
                .status,
            431
        );
        let long = vec![b'a'; MAX_HEAD];
        assert_eq!(parse(&long).unwrap_err().status, 431);
    }

    #[test]
    fn a_405_says_what_is_allowed() {
        let not_allowed = parse(b"POST / HTTP/1.1\r\n\r\n").unwrap_err();
        assert!(not_allowed.head().contains("\r\nAllow: GET, HEAD\r\n"));
        assert!(!Response::text(404, "").head().contains("Allow"));
    }

    #[test]
    fn query_values() {
        assert_eq!(
            query_value("target=pool%2Fs1&x=1", "target").as_deref(),
            Some("pool/s1")
        );
        assert_eq!(query_value("a=b+c", "a").as_deref(), Some("b c"));
        assert_eq!(query_value("a=%zz", "a").as_deref(), Some("%zz"));
        assert_eq!(query_value("a=1", "target"), None);
    }
}

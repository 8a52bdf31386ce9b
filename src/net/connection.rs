//! Connecting (TCP or UNIX) and moving bytes, every operation bounded by the
//! one deadline, reads bounded by a fixed buffer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustls::ClientConnection;

use super::deadline::Deadline;
use super::endpoint::{Endpoint, Host};
use super::tls::{self, TlsClient};
use crate::outcome::{Failure, Phase, Timings};
use crate::text::describe_io as describe;

/// The longest one blocking read or write waits before the deadline is
/// asked again. Linux's timer wheel makes a socket timeout seconds away
/// expire late by up to a few hundred milliseconds (seen: 3 s firing after
/// 3.04 s); short timeouts are precise.
const MAX_WAIT: Duration = Duration::from_millis(200);

/// Room for the largest head the protocol parsers accept (64 KiB), plus
/// what follows it in the same read.
pub const READ_BUFFER: usize = 80 * 1024;

/// The buffer starts this small (an OPTIONS answer is a few hundred bytes)
/// and doubles, up to [`READ_BUFFER`], whenever a read fills it.
const FIRST_READ: usize = 4096;

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn set_timeout(&self, t: Duration, reading: bool) -> io::Result<()> {
        match (self, reading) {
            (Stream::Tcp(s), true) => s.set_read_timeout(Some(t)),
            (Stream::Tcp(s), false) => s.set_write_timeout(Some(t)),
            (Stream::Unix(s), true) => s.set_read_timeout(Some(t)),
            (Stream::Unix(s), false) => s.set_write_timeout(Some(t)),
        }
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }
}

/// The deadline passed during an operation of this phase: carried inside an
/// `io::Error` through rustls and ureq, back to [`io_failure`].
#[derive(Debug, Clone, Copy)]
struct DeadlinePassed(Phase);

impl std::fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "timeout while {}", self.0)
    }
}

impl std::error::Error for DeadlinePassed {}

/// The socket under the deadline. Every read and write, whoever makes it
/// (our parsers, rustls looping in its handshake or over a record that
/// trickles in, ureq), first asks the deadline, waits only for what is left
/// (in slices of [`MAX_WAIT`]), and fails with [`DeadlinePassed`] once it
/// has passed: no loop above can outlive the deadline.
struct Timed {
    sock: Stream,
    deadline: Deadline,
    /// The phase a timeout is reported in.
    phase: Phase,
    /// Stop waiting here with `WouldBlock`: a write that leaves room to
    /// look at the answer in between, or a read of what has arrived.
    until: Option<Instant>,
}

impl Timed {
    fn wait<T>(
        &mut self,
        reading: bool,
        mut op: impl FnMut(&mut Stream) -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            let left = self
                .deadline
                .remaining(self.phase)
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, DeadlinePassed(self.phase)))?;
            let mut wait = left.min(MAX_WAIT);
            if let Some(until) = self.until {
                let rest = until.saturating_duration_since(Instant::now());
                // A zero timeout means none: wait at least a microsecond.
                wait = wait.min(rest.max(Duration::from_micros(1)));
            }
            self.sock.set_timeout(wait, reading)?;
            match op(&mut self.sock) {
                Err(e) if retryable(&e) => {
                    if self.until.is_some_and(|u| Instant::now() >= u) {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                }
                result => return result,
            }
        }
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.wait(true, |s| match s {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        })
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.wait(false, |s| match s {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The socket, and TLS over it when the check asks for it.
struct Channel {
    sock: Timed,
    tls: Option<Box<ClientConnection>>,
}

impl Channel {
    /// Reads plaintext. TLS output still pending (the request) goes first,
    /// since the server may be waiting for it.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.sock.read(buf),
            Some(tls) => tls_read(tls, &mut self.sock, buf, true),
        }
    }

    /// Reads what has arrived without writing anything (the socket is non-blocking).
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.sock.read(buf),
            Some(tls) => tls_read(tls, &mut self.sock, buf, false),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.sock.write(buf),
            Some(tls) => tls_write(tls, &mut self.sock, buf),
        }
    }
}

fn tls_read(
    tls: &mut ClientConnection,
    sock: &mut Timed,
    buf: &mut [u8],
    flush: bool,
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            // Ok(0): the server's close_notify.
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // Closed without close_notify: an end like a plain one; the
            // protocol parsers tell a truncated answer from a whole one.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        if flush && tls.wants_write() {
            // What is still being sent is the request: a timeout here is
            // one while sending.
            let phase = std::mem::replace(&mut sock.phase, Phase::Send);
            let sent = (|| {
                while tls.wants_write() {
                    tls.write_tls(sock)?;
                }
                Ok::<(), io::Error>(())
            })();
            sock.phase = phase;
            sent?;
        }
        // At the end of the stream the reader reports it on the next turn.
        tls.read_tls(sock)?;
        tls.process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
}

/// Hands `buf` to rustls (it takes at most its buffer's worth once the
/// previous records are out) and sends what it can without waiting past
/// what the socket allows.
fn tls_write(tls: &mut ClientConnection, sock: &mut Timed, buf: &[u8]) -> io::Result<usize> {
    while tls.wants_write() {
        tls.write_tls(sock)?;
    }
    let n = tls.writer().write(buf)?;
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(_) => {}
            Err(e) if retryable(&e) => break,
            Err(e) => return Err(e),
        }
    }
    if n == 0 && !buf.is_empty() {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(n)
}

pub struct Connection {
    stream: Channel,
    /// Phases this connection went through; the probe copies them out.
    pub timings: Timings,
    /// With TLS: when the server's certificate expires (seconds since 1970).
    pub cert_not_after: Option<i64>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl Connection {
    /// Connects, then with `tls` does the handshake and the certificate
    /// expiry check (an unhealthy verdict) before any byte of the probe.
    pub fn open(
        endpoint: &Endpoint,
        tls: Option<&TlsClient>,
        deadline: Deadline,
    ) -> Result<Connection, Failure> {
        let mut timings = Timings::default();
        let sock = match endpoint {
            Endpoint::Tcp { host, port } => {
                Stream::Tcp(connect_tcp(host, *port, deadline, &mut timings)?)
            }
            Endpoint::Unix(path) => Stream::Unix(connect_unix(path, deadline)?),
        };
        timings.connect = Some(deadline.elapsed());
        let mut sock = Timed {
            sock,
            deadline,
            phase: Phase::Handshake,
            until: None,
        };
        let tls = match tls {
            None => None,
            Some(client) => {
                let conn = handshake(client, &mut sock)?;
                timings.tls = Some(deadline.elapsed());
                Some(Box::new(conn))
            }
        };
        let cert_not_after = tls.as_ref().and_then(|c| {
            c.peer_certificates()?
                .first()
                .and_then(|leaf| tls::der::not_after(leaf))
        });
        Ok(Connection {
            stream: Channel { sock, tls },
            timings,
            cert_not_after,
            buf: vec![0; FIRST_READ],
            start: 0,
            end: 0,
            eof: false,
        })
    }

    /// Bytes received and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// The phase a timeout is reported in, and how long an operation may
    /// wait short of the deadline.
    fn arm(&mut self, phase: Phase, until: Option<Instant>) {
        self.stream.sock.phase = phase;
        self.stream.sock.until = until;
    }

    /// Reads more bytes into the buffer; `Ok(0)` means the server closed.
    pub fn fill(&mut self, phase: Phase) -> Result<usize, Failure> {
        if self.eof {
            return Ok(0);
        }
        self.compact();
        if self.end == self.buf.len() && !self.grow() {
            // Parsers reject anything this large before it fills the buffer.
            return Err(Failure::Protocol(
                "response larger than the receive buffer".into(),
            ));
        }
        self.arm(phase, None);
        match self.stream.read(&mut self.buf[self.end..]) {
            Ok(0) => {
                self.eof = true;
                Ok(0)
            }
            Ok(n) => {
                self.received(n);
                Ok(n)
            }
            Err(e) => Err(io_failure(&e, phase)),
        }
    }

    /// Sends all of `bytes` within the deadline.
    pub fn send(&mut self, bytes: &[u8], phase: Phase) -> Result<(), Failure> {
        self.arm(phase, None);
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.stream.write(rest) {
                Ok(0) => {
                    return Err(Failure::Protocol(format!(
                        "connection closed while {phase}"
                    )))
                }
                Ok(n) => rest = &rest[n..],
                Err(e) => return Err(io_failure(&e, phase)),
            }
        }
        Ok(())
    }

    /// One write that waits at most `max_wait` (never past the deadline) for
    /// room in the socket; returns the bytes written, 0 if there was none.
    /// Sending a body in such slices lets the caller look at the server's
    /// answer in between: a server may answer and stop reading.
    pub fn write_some(
        &mut self,
        bytes: &[u8],
        phase: Phase,
        max_wait: Duration,
    ) -> Result<usize, Failure> {
        self.arm(phase, Instant::now().checked_add(max_wait));
        match self.stream.write(bytes) {
            Ok(0) if !bytes.is_empty() => Err(Failure::Protocol(format!(
                "connection closed while {phase}"
            ))),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(io_failure(&e, phase)),
        }
    }

    /// Takes whatever the server has sent, without waiting.
    pub fn try_receive(&mut self, phase: Phase) -> Result<(), Failure> {
        if self.eof {
            return Ok(());
        }
        self.compact();
        if self.end == self.buf.len() && !self.grow() {
            return Ok(());
        }
        self.arm(phase, Some(Instant::now()));
        self.stream
            .sock
            .sock
            .set_nonblocking(true)
            .map_err(|e| io_failure(&e, phase))?;
        let got = self.stream.try_read(&mut self.buf[self.end..]);
        self.stream
            .sock
            .sock
            .set_nonblocking(false)
            .map_err(|e| io_failure(&e, phase))?;
        match got {
            Ok(0) => self.eof = true,
            Ok(n) => self.received(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io_failure(&e, phase)),
        }
        Ok(())
    }

    fn received(&mut self, n: usize) {
        self.end += n;
        self.mark_first_byte();
        if self.end == self.buf.len() {
            self.grow();
        }
    }

    fn mark_first_byte(&mut self) {
        if self.timings.first_byte.is_none() {
            self.timings.first_byte = Some(self.stream.sock.deadline.elapsed());
        }
    }

    /// Records that the whole request has been written.
    pub fn mark_sent(&mut self) {
        self.timings.request_sent = Some(self.stream.sock.deadline.elapsed());
    }

    /// The server has closed its side: what is buffered is all there will be.
    pub fn at_eof(&self) -> bool {
        self.eof
    }

    /// Doubles the buffer up to [`READ_BUFFER`]; false when it is that large.
    fn grow(&mut self) -> bool {
        let len = self.buf.len();
        if len >= READ_BUFFER {
            return false;
        }
        self.buf.resize((len * 2).min(READ_BUFFER), 0);
        true
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

/// A wait that ended without an error of its own: the socket's timeout
/// slice, or a signal. [`Timed`] asks the deadline again and retries.
fn retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// An error of an operation of `phase` as a failure class: the deadline's
/// (whichever phase it passed in), TLS's, or the connection's.
fn io_failure(e: &io::Error, phase: Phase) -> Failure {
    let inner = e.get_ref();
    if let Some(DeadlinePassed(at)) = inner.and_then(|i| i.downcast_ref::<DeadlinePassed>()) {
        return Failure::Timeout(*at);
    }
    match inner.and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(e) => Failure::Tls(tls::describe_error(e)),
        None => Failure::Protocol(format!("{} while {phase}", describe(e))),
    }
}

/// The TLS handshake, bounded by the deadline (rustls loops over reads
/// and writes until it is done; each goes through [`Timed`]); then the
/// expiry rule.
fn handshake(client: &TlsClient, sock: &mut Timed) -> Result<ClientConnection, Failure> {
    let phase = Phase::Handshake;
    sock.phase = phase;
    sock.until = None;
    let mut conn = ClientConnection::new(client.config.clone(), client.server_name.clone())
        .map_err(|e| Failure::Tls(tls::describe_error(&e)))?;
    while conn.is_handshaking() {
        match conn.complete_io(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(Failure::Tls(
                    "the server closed the connection during the handshake (is it speaking TLS?)"
                        .into(),
                ))
            }
            Err(e) => {
                return Err(match io_failure(&e, phase) {
                    Failure::Protocol(why) => Failure::Tls(why),
                    other => other,
                })
            }
        }
    }
    if let Some(version) = conn.protocol_version() {
        log::debug!(
            "TLS: {version:?}, {:?}",
            conn.negotiated_cipher_suite().map(|s| s.suite())
        );
    }
    if let Some(days) = client.options.cert_expiry_days {
        let leaf = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| Failure::Tls("the server sent no certificate".into()))?;
        tls::check_expiry(leaf, days, std::time::SystemTime::now())?;
    }
    Ok(conn)
}

fn connect_tcp(
    host: &Host,
    port: u16,
    deadline: Deadline,
    timings: &mut Timings,
) -> Result<TcpStream, Failure> {
    let addrs = match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => {
            let addrs = resolve(name, port, deadline)?;
            timings.resolve = Some(deadline.elapsed());
            addrs
        }
    };
    let mut last = None;
    for addr in &addrs {
        let left = deadline.remaining(Phase::Connect)?;
        match TcpStream::connect_timeout(addr, left) {
            Ok(stream) => {
                // Requests go out in few, whole writes; don't let Nagle hold the last one back.
                let _ = stream.set_nodelay(true);
                log::debug!("connected to {addr}");
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                deadline.remaining(Phase::Connect)?;
                last = Some(e);
            }
            Err(e) => last = Some(e),
        }
    }
    let why = last.map_or_else(|| "no address".to_string(), |e| describe(&e));
    Err(Failure::Connect(format!("{why} ({})", list_addrs(&addrs))))
}

fn list_addrs(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The system resolver has no timeout of its own: ask it on a helper thread
/// and wait only for the time left.
fn resolve(name: &str, port: u16, deadline: Deadline) -> Result<Vec<SocketAddr>, Failure> {
    let (tx, rx) = mpsc::channel();
    let query = name.to_string();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let result = (query.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<_>>());
            let _ = tx.send(result);
        })
        .map_err(|e| Failure::Connect(format!("cannot resolve {name}: {}", describe(&e))))?;
    match rx.recv_timeout(deadline.remaining(Phase::Resolve)?) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(Failure::Connect(format!(
            "cannot resolve {name}: no address"
        ))),
        Ok(Err(e)) => Err(Failure::Connect(format!(
            "cannot resolve {name}: {}",
            describe(&e)
        ))),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(Failure::Timeout(Phase::Resolve)),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(Failure::Connect(format!("cannot resolve {name}")))
        }
    }
}

/// A UNIX connect does not wait for the network, but blocks while the
/// server's backlog is full. Made without blocking, it fails at once
/// (`EAGAIN`) then, and is tried again until the deadline.
fn connect_unix(path: &Path, deadline: Deadline) -> Result<UnixStream, Failure> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let failed = |e: &io::Error| {
        Failure::Connect(format!(
            "{} ({})",
            describe(e),
            crate::text::escape(&path.display().to_string())
        ))
    };
    let addr = SockAddr::unix(path).map_err(|e| failed(&e))?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| failed(&e))?;
    socket.set_nonblocking(true).map_err(|e| failed(&e))?;
    loop {
        match socket.connect(&addr) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The backlog is full: look again in a moment.
                let left = deadline.remaining(Phase::Connect)?;
                std::thread::sleep(left.min(Duration::from_millis(5)));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(&e)),
        }
    }
    socket.set_nonblocking(false).map_err(|e| failed(&e))?;
    Ok(UnixStream::from(std::os::fd::OwnedFd::from(socket)))
}

#[cfg(test)]
mod test {
    use super::*;
    use std::net::TcpListener;

    fn deadline() -> Deadline {
        Deadline::starting_at(std::time::Instant::now(), Duration::from_secs(5))
    }

    #[test]
    fn refused_is_a_connect_failure() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let host = Host::Ip("127.0.0.1".parse().unwrap());
        match Connection::open(&Endpoint::Tcp { host, port }, None, deadline()) {
            Err(Failure::Connect(why)) => assert!(why.starts_with("connection refused"), "{why}"),
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn reads_stop_at_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let host = Host::Ip("127.0.0.1".parse().unwrap());
        let d = Deadline::starting_at(std::time::Instant::now(), Duration::from_millis(100));
        let mut c = Connection::open(&Endpoint::Tcp { host, port }, None, d).unwrap();
        let _peer = l.accept().unwrap();
        assert_eq!(
            c.fill(Phase::Receive),
            Err(Failure::Timeout(Phase::Receive))
        );
    }

    #[test]
    fn a_full_socket_does_not_block_past_max_wait() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let host = Host::Ip("127.0.0.1".parse().unwrap());
        let mut c = Connection::open(&Endpoint::Tcp { host, port }, None, deadline()).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        let big = vec![b'x'; 1 << 20];
        // The peer never reads: the socket buffers fill, then writes return 0.
        let mut zero_writes = 0;
        while zero_writes == 0 {
            if c.write_some(&big, Phase::Send, Duration::from_millis(20))
                .unwrap()
                == 0
            {
                zero_writes += 1;
            }
        }
        peer.write_all(b"ICAP/1.0 204 No Content\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        c.try_receive(Phase::Send).unwrap();
        assert!(c.buffered().starts_with(b"ICAP/1.0 204"));
        assert!(!c.at_eof());
    }

    #[test]
    fn the_buffer_grows_to_read_buffer_and_no_further() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let host = Host::Ip("127.0.0.1".parse().unwrap());
        let mut c = Connection::open(&Endpoint::Tcp { host, port }, None, deadline()).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        let sent: Vec<u8> = (0..READ_BUFFER + 1000).map(|i| (i % 251) as u8).collect();
        peer.write_all(&sent).unwrap();
        // Nothing consumed: the buffer must grow from FIRST_READ to hold it all.
        while c.buffered().len() < READ_BUFFER {
            assert!(c.fill(Phase::Receive).unwrap() > 0);
        }
        assert_eq!(c.buffered(), &sent[..READ_BUFFER]);
        assert!(matches!(c.fill(Phase::Receive), Err(Failure::Protocol(_))));
        c.consume(READ_BUFFER);
        assert_eq!(c.fill(Phase::Receive), Ok(1000));
        assert_eq!(c.buffered(), &sent[READ_BUFFER..]);
    }
}

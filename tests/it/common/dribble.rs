//! A TLS server (rustls' server side) that sends slowly: every byte one at
//! a time, [`EVERY`] apart, either from its first handshake byte on, or
//! only once the handshake is done (the answer's TLS record trickles in).
//!
//! No socket timeout can bound such a peer: a byte always comes well within
//! any read timeout. Only a deadline asked between the bytes can, wherever
//! the bytes are read: our own code, rustls looping in `complete_io`, or
//! rustls assembling a record.
//!
//! Std and rustls only; one thread per connection, each looking at the stop
//! flag at least every [`TICK`], so nothing outlives its test by more than
//! a few ms once the server is dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

use super::tls::Cert;

/// One byte every 20 ms: 50 bytes in a second, far less than a handshake
/// (about 800 bytes with an EC P-256 certificate) or an answer's record.
pub const EVERY: Duration = Duration::from_millis(20);
/// How often a waiting thread looks at the stop flag.
const TICK: Duration = Duration::from_millis(10);
/// Largest request read before answering.
const MAX_REQUEST: usize = 64 * 1024;

/// What is sent slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slow {
    /// Every byte, from the first byte of the handshake.
    Handshake,
    /// The handshake at full speed, then the answer one byte at a time.
    Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

/// What the client is answered, once its request has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An ICAP OPTIONS `200`, after a request head (icaps://).
    Icap,
    /// An HTTP/1.1 `200` with a small body, after a request head (https://).
    Http,
    /// A greeting line, then `PONG`, after `PING` (tls:// with `--send PING
    /// --expect-string PONG`). `PONG` alone would be a record of 26 to 33
    /// bytes: in by 0.7 s, within the deadline however slowly it comes.
    Pong,
}

impl Answer {
    fn bytes(self) -> &'static [u8] {
        match self {
            Answer::Icap => b"ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nISTag: \"x\"\r\nEncapsulated: null-body=0\r\n\r\n",
            Answer::Http => b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n",
            Answer::Pong => b"+ a server whose every byte comes 20 ms after the last\r\nPONG\r\n",
        }
    }

    /// The request has been read whole.
    fn request_read(self, request: &[u8]) -> bool {
        match self {
            Answer::Icap | Answer::Http => request.windows(4).any(|w| w == b"\r\n\r\n"),
            Answer::Pong => request.windows(4).any(|w| w == b"PING"),
        }
    }
}

pub struct DribbleTls {
    pub port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

impl DribbleTls {
    /// Listens on 127.0.0.1 and a free port, with `cert` (from
    /// [`super::tls::Pki`]), speaking only `version`.
    pub fn start(cert: &Cert, version: Version, slow: Slow, answer: Answer) -> DribbleTls {
        let config = Arc::new(server_config(cert, version));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let (stop, accepted) = (stop.clone(), accepted.clone());
            std::thread::spawn(move || {
                let mut workers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            let (config, stop) = (config.clone(), stop.clone());
                            workers.push(std::thread::spawn(move || {
                                serve(stream, config, slow, answer, &stop);
                            }));
                        }
                        Err(_) => std::thread::sleep(TICK),
                    }
                }
                for w in workers {
                    let _ = w.join();
                }
            })
        };
        DribbleTls {
            port,
            stop,
            accepted,
            acceptor: Some(acceptor),
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for DribbleTls {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn server_config(cert: &Cert, version: Version) -> ServerConfig {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert.cert)
        .expect("open the certificate")
        .collect::<Result<_, _>>()
        .expect("read the certificate");
    let key = PrivateKeyDer::from_pem_file(&cert.key).expect("read the key");
    let version = match version {
        Version::Tls12 => &rustls::version::TLS12,
        Version::Tls13 => &rustls::version::TLS13,
    };
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[version])
        .expect("protocol version")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate and key")
}

/// One connection: the handshake, the request, the answer. Ends (the
/// connection closed) when the client goes away or the server stops.
fn serve(
    mut sock: TcpStream,
    config: Arc<ServerConfig>,
    slow: Slow,
    answer: Answer,
    stop: &AtomicBool,
) -> Option<()> {
    let _ = sock.set_nodelay(true);
    let _ = sock.set_read_timeout(Some(TICK));
    let _ = sock.set_write_timeout(Some(TICK));
    let mut tls = ServerConnection::new(config).ok()?;
    let slow_handshake = slow == Slow::Handshake;
    while tls.is_handshaking() {
        send(&mut tls, &mut sock, slow_handshake, stop)?;
        receive(&mut tls, &mut sock, stop)?;
    }
    // The end of the handshake (TLS 1.2) and TLS 1.3's session tickets.
    send(&mut tls, &mut sock, slow_handshake, stop)?;
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.request_read(&request) {
        match tls.reader().read(&mut buf) {
            Ok(0) => return None,
            Ok(n) if request.len() + n <= MAX_REQUEST => request.extend_from_slice(&buf[..n]),
            Ok(_) => return None,
            Err(e) if e.kind() == ErrorKind::WouldBlock => receive(&mut tls, &mut sock, stop)?,
            Err(_) => return None,
        }
    }
    tls.writer().write_all(answer.bytes()).ok()?;
    send(&mut tls, &mut sock, true, stop)
}

/// Sends what rustls has to send: at once, or one byte every [`EVERY`].
fn send(
    tls: &mut ServerConnection,
    sock: &mut TcpStream,
    slowly: bool,
    stop: &AtomicBool,
) -> Option<()> {
    let mut out = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut out).ok()?;
    }
    if !slowly {
        return write_all(sock, &out, stop);
    }
    for byte in out.chunks(1) {
        write_all(sock, byte, stop)?;
        pause(EVERY, stop)?;
    }
    Some(())
}

/// Reads what the client sent and hands it to rustls.
fn receive(tls: &mut ServerConnection, sock: &mut TcpStream, stop: &AtomicBool) -> Option<()> {
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        match tls.read_tls(sock) {
            Ok(0) => return None,
            Ok(_) => {
                tls.process_new_packets().ok()?;
                return Some(());
            }
            Err(e) if retry(&e) => {}
            Err(_) => return None,
        }
    }
}

fn write_all(sock: &mut TcpStream, mut bytes: &[u8], stop: &AtomicBool) -> Option<()> {
    while !bytes.is_empty() {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        match sock.write(bytes) {
            Ok(0) => return None,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if retry(&e) => {}
            Err(_) => return None,
        }
    }
    Some(())
}

fn pause(d: Duration, stop: &AtomicBool) -> Option<()> {
    let until = Instant::now() + d;
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Some(());
        }
        std::thread::sleep(left.min(TICK));
    }
}

fn retry(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

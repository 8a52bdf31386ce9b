//! A misbehaving server for the fault-injection tests: std only, listening
//! on 127.0.0.1:0, running one script of [`Step`]s per connection on its own
//! thread. Steps are bytes in and bytes out, nothing ICAP-specific, so the
//! HTTP and TCP probes can reuse it.
//!
//! Every step ends when the peer goes away (a failed write, EOF) or the
//! server is dropped, so no thread outlives its test by more than a few ms.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a waiting step looks at the stop flag.
const TICK: Duration = Duration::from_millis(10);
/// Largest request head [`Step::ReadHead`] looks for the end of.
const MAX_HEAD: usize = 1 << 20;
/// How much of what each connection received is kept for assertions.
const KEEP: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub enum Step {
    /// Reads until a blank line (`\r\n\r\n`) has been read, or EOF.
    ReadHead,
    /// Reads and discards until `pattern` has been read (e.g. `0\r\n\r\n`,
    /// the end of a chunked body), or EOF.
    ReadUntil(Vec<u8>),
    Write(Vec<u8>),
    /// Writes `bytes` `times` times, without holding it all in memory:
    /// a 100 MiB header line, a million headers.
    Repeat {
        bytes: Vec<u8>,
        times: u64,
    },
    /// Writes `bytes` over and over, forever.
    Forever(Vec<u8>),
    /// Writes one byte of `bytes` (cycling) every `every`, forever.
    Dribble {
        bytes: Vec<u8>,
        every: Duration,
    },
    /// Writes all of `bytes` at once every `every`, forever: a chunked
    /// body whose chunks come on time, each read ending well within any
    /// socket timeout.
    Every {
        bytes: Vec<u8>,
        every: Duration,
    },
    /// Keeps the connection open and reads nothing, until the server is
    /// dropped: the peer's writes fill the socket buffers and stall.
    Hold,
    /// Closes with a FIN (what happens anyway once the script ends).
    Close,
    /// Closes with a RST. std cannot set SO_LINGER 0 (`set_linger` is
    /// unstable), but closing a socket with unread bytes in its receive
    /// buffer makes Linux send a RST: so this waits (up to 2 s) until
    /// unread bytes are there, and closes without reading them. Use it
    /// before the step that would read them.
    Reset,
}

/// What happened on one connection.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The first [`KEEP`] bytes received.
    pub received: Vec<u8>,
    /// All bytes received.
    pub total: u64,
    /// The script ran to its end (the peer did not go away first).
    pub finished: bool,
    /// The peer was seen to close or reset.
    pub peer_gone: bool,
}

pub struct FaultServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    records: Arc<Mutex<Vec<Record>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Runs `script` on every connection.
    pub fn start(script: Vec<Step>) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let records = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, accepted, records) = (stop.clone(), accepted.clone(), records.clone());
            std::thread::spawn(move || {
                let mut workers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            let (script, stop, records) =
                                (script.clone(), stop.clone(), records.clone());
                            workers.push(std::thread::spawn(move || {
                                let record = serve(stream, &script, &stop);
                                records.lock().unwrap().push(record);
                            }));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK),
                        Err(_) => std::thread::sleep(TICK),
                    }
                }
                for w in workers {
                    let _ = w.join();
                }
            })
        };
        FaultServer {
            addr,
            stop,
            accepted,
            records,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `icap://127.0.0.1:PORT/service`
    pub fn url(&self) -> String {
        format!("icap://127.0.0.1:{}/service", self.port())
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Stops the server, waits for every connection's thread, and returns
    /// what each connection saw.
    pub fn finish(mut self) -> Vec<Record> {
        self.shutdown();
        std::mem::take(&mut *self.records.lock().unwrap())
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

enum Outcome {
    Next,
    /// The peer went away (or the server is stopping): the script ends.
    End,
}

fn serve(mut stream: TcpStream, script: &[Step], stop: &AtomicBool) -> Record {
    let mut record = Record::default();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(TICK));
    let _ = stream.set_write_timeout(Some(TICK));
    for step in script {
        match run_step(&mut stream, step, stop, &mut record) {
            Outcome::Next => {}
            Outcome::End => return record,
        }
        if matches!(step, Step::Close | Step::Reset) {
            record.finished = true;
            return record;
        }
    }
    record.finished = true;
    record
}

fn run_step(stream: &mut TcpStream, step: &Step, stop: &AtomicBool, rec: &mut Record) -> Outcome {
    match step {
        Step::ReadHead => read_until(stream, b"\r\n\r\n", stop, rec, MAX_HEAD),
        Step::ReadUntil(pattern) => read_until(stream, pattern, stop, rec, usize::MAX),
        Step::Write(bytes) => write_all(stream, bytes, stop, rec),
        Step::Repeat { bytes, times } => {
            // Batch small pieces so a million headers are not a million syscalls.
            let per = (64 * 1024 / bytes.len().max(1)).max(1) as u64;
            let batch = bytes.repeat(per as usize);
            let mut left = *times;
            while left > 0 {
                let n = left.min(per);
                let piece = &batch[..bytes.len() * n as usize];
                if let Outcome::End = write_all(stream, piece, stop, rec) {
                    return Outcome::End;
                }
                left -= n;
            }
            Outcome::Next
        }
        Step::Forever(bytes) => loop {
            if let Outcome::End = write_all(stream, bytes, stop, rec) {
                return Outcome::End;
            }
        },
        Step::Dribble { bytes, every } => {
            for b in bytes.iter().cycle() {
                if let Outcome::End = write_all(stream, &[*b], stop, rec) {
                    return Outcome::End;
                }
                if let Outcome::End = sleep(*every, stop) {
                    return Outcome::End;
                }
            }
            Outcome::Next
        }
        Step::Every { bytes, every } => loop {
            if let Outcome::End = write_all(stream, bytes, stop, rec) {
                return Outcome::End;
            }
            if let Outcome::End = sleep(*every, stop) {
                return Outcome::End;
            }
        },
        Step::Hold => loop {
            if let Outcome::End = sleep(TICK, stop) {
                return Outcome::End;
            }
        },
        Step::Close => {
            let _ = stream.shutdown(Shutdown::Both);
            Outcome::End
        }
        Step::Reset => {
            let until = Instant::now() + Duration::from_secs(2);
            let mut probe = [0u8; 1];
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                match stream.peek(&mut probe) {
                    Ok(n) if n > 0 => break,
                    Ok(_) => break, // EOF: nothing to reset
                    Err(_) => {}
                }
            }
            // Dropping the stream with unread bytes sends the RST.
            Outcome::End
        }
    }
}

fn sleep(d: Duration, stop: &AtomicBool) -> Outcome {
    let until = Instant::now() + d;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Outcome::End;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::Next;
        }
        std::thread::sleep(left.min(TICK));
    }
}

/// One read; `None` when the peer is gone or the server stops.
fn read_some(
    stream: &mut TcpStream,
    buf: &mut [u8],
    stop: &AtomicBool,
    rec: &mut Record,
) -> Option<usize> {
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        match stream.read(buf) {
            Ok(0) => {
                rec.peer_gone = true;
                return None;
            }
            Ok(n) => {
                let keep = (KEEP - rec.received.len().min(KEEP)).min(n);
                rec.received.extend_from_slice(&buf[..keep]);
                rec.total += n as u64;
                return Some(n);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                rec.peer_gone = true;
                return None;
            }
        }
    }
}

/// Reads one byte at a time until `pattern` ends what was read (bytes after
/// it stay unread), giving up after `limit` bytes.
fn read_until(
    stream: &mut TcpStream,
    pattern: &[u8],
    stop: &AtomicBool,
    rec: &mut Record,
    limit: usize,
) -> Outcome {
    let mut tail: Vec<u8> = Vec::with_capacity(pattern.len());
    let mut byte = [0u8; 1];
    let mut read = 0usize;
    while read < limit {
        if read_some(stream, &mut byte, stop, rec).is_none() {
            return Outcome::End;
        }
        read += 1;
        if tail.len() == pattern.len() {
            tail.remove(0);
        }
        tail.push(byte[0]);
        if tail == pattern {
            return Outcome::Next;
        }
    }
    Outcome::Next
}

fn write_all(
    stream: &mut TcpStream,
    mut bytes: &[u8],
    stop: &AtomicBool,
    rec: &mut Record,
) -> Outcome {
    while !bytes.is_empty() {
        if stop.load(Ordering::SeqCst) {
            return Outcome::End;
        }
        match stream.write(bytes) {
            Ok(0) => {
                rec.peer_gone = true;
                return Outcome::End;
            }
            Ok(n) => bytes = &bytes[n..],
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                rec.peer_gone = true;
                return Outcome::End;
            }
        }
    }
    Outcome::Next
}

//! HAProxy's agent check, answered from the table: HAProxy connects, sends
//! its `agent-send` line (`BACKEND/SERVER\n`), and reads one line back:
//! `up` or `down`, then `#` and the reason, which HAProxy's log shows
//! (`via agent : down (...)`). The reply is made from memory in
//! microseconds, whatever the checks are doing.
//!
//! The protocol is pure functions ([`identity`], [`reply`]); the listener
//! ([`serve`]) answers a connection whose line has arrived in the accept
//! loop itself, and hands the others to a few threads with a short
//! deadline, so that idle or flooding clients never delay HAProxy. When
//! more are waiting than that, the oldest wait ends early: idle clients
//! are the ones that wait long, never a line already on its way.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::health::Health;
use super::table::{State, Table, Target};
use crate::outcome::Outcome;

/// HAProxy keeps this much of the text after `#` (its `last_agt`).
pub const MAX_REASON: usize = 128;
/// The longest `agent-send` line read; past it the connection is answered.
const MAX_LINE: usize = 256;
/// How long a connection may take to send its line.
const LINE_DEADLINE: Duration = Duration::from_millis(500);
/// With one target, how long a connection that has sent nothing is given
/// to send a line before it is taken to send none (HAProxy without
/// `agent-send`) and answered with that target's health: well under
/// HAProxy's agent timeout (`agent-inter`, 2 s by default; 500 ms seen).
const SILENT_AFTER: Duration = Duration::from_millis(100);
/// Connections waiting for their line at once; past it, the oldest one's
/// wait ends (see [`make_room`]).
const MAX_WAITING: usize = 64;

/// The connections waiting for their line, each on its thread, oldest
/// first: its id, and a handle to end its wait.
type Waiting = Mutex<VecDeque<(u64, TcpStream)>>;

/// What the agent adds to its replies beyond the health word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extras {
    /// `maxconn:N` from the service's Max-Connections.
    pub maxconn: bool,
    /// `N%` from the check's duration.
    pub weight: bool,
}

/// What a reply said, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    Up,
    Down,
    /// No result yet: no health word.
    Pending,
    /// The last result is too old: no health word.
    Stale,
    /// The line names no target: no health word.
    Unknown,
}

impl Said {
    pub const ALL: [Said; 5] = [
        Said::Up,
        Said::Down,
        Said::Pending,
        Said::Stale,
        Said::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Said::Up => "up",
            Said::Down => "down",
            Said::Pending => "pending",
            Said::Stale => "stale",
            Said::Unknown => "unknown",
        }
    }
}

/// Replies served, by what they said.
#[derive(Debug, Default)]
pub struct Counts([AtomicU64; 5]);

impl Counts {
    fn add(&self, said: Said) {
        if let Some(c) = Said::ALL
            .iter()
            .position(|s| *s == said)
            .and_then(|i| self.0.get(i))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, said: Said) -> u64 {
        Said::ALL
            .iter()
            .position(|s| *s == said)
            .and_then(|i| self.0.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// The target a line names: the text up to its first line end, trimmed
/// (`agent-send "icap_pool/icap01\n"`). `None` for an empty or non-UTF-8 line.
pub fn identity(line: &[u8]) -> Option<&str> {
    let end = line
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap_or(line.len());
    let name = std::str::from_utf8(&line[..end]).ok()?.trim();
    (!name.is_empty()).then_some(name)
}

/// The reply for a target in `state`, at `now`; the table was loaded at
/// `loaded`.
pub fn reply(
    target: &Target,
    state: &State,
    now: Instant,
    loaded: Instant,
    extras: Extras,
) -> (Said, String) {
    let age = state.last_at.map(|at| now.saturating_duration_since(at));
    let stale_after = target.stale_after();
    let Some(last) = state.last.as_deref() else {
        let waited = now.saturating_duration_since(loaded);
        if waited > stale_after {
            let why = format!(
                "icap-check: stale: no result in the {:.1} s since the target was loaded",
                waited.as_secs_f64()
            );
            return (Said::Stale, line(None, &why));
        }
        return (
            Said::Pending,
            line(None, "icap-check: no result yet (first check pending)"),
        );
    };
    if age.is_some_and(|a| a > stale_after) {
        let why = format!(
            "icap-check: stale: the last check ended {:.1} s ago, one is due every {:.1} s",
            age.unwrap_or_default().as_secs_f64(),
            target.cadence.inter.as_secs_f64()
        );
        return (Said::Stale, line(None, &why));
    }
    let verdict = match &last.verdict {
        Ok(h) => format!("{} {}", last.context.probe, h.summary),
        Err(f) => format!(
            "{}: {f} (exit {})",
            last.context.probe,
            f.exit_status().code()
        ),
    };
    let t = &state.tracker;
    let (said, why) = match (t.health, t.against) {
        (Health::Up, 0) | (Health::Pending, _) => (Said::Up, verdict),
        (Health::Down, 0) => (Said::Down, verdict),
        (Health::Up, n) => (
            Said::Up,
            format!(
                "{n} of {} failures to go down; last: {verdict}",
                target.cadence.fall
            ),
        ),
        (Health::Down, n) => (
            Said::Down,
            format!(
                "{n} of {} passes to come up; last: {verdict}",
                target.cadence.rise
            ),
        ),
    };
    let mut words = vec![said.name().to_string()];
    if extras.maxconn {
        if let Some(n) = max_connections(last) {
            words.push(format!("maxconn:{n}"));
        }
    }
    if extras.weight && said == Said::Up {
        words.push(format!(
            "{}%",
            weight(last.observed.timings.total, target.timeout)
        ));
    }
    (said, line(Some(&words.join(" ")), &why))
}

/// The service's Max-Connections, when its OPTIONS answer had one.
fn max_connections(_last: &Outcome) -> Option<u32> {
    None
}

/// 100% up to a quarter of the timeout, falling linearly to 10% at it.
pub fn weight(took: Duration, timeout: Duration) -> u32 {
    let quarter = timeout / 4;
    if took <= quarter || timeout.is_zero() {
        return 100;
    }
    let over = (took - quarter).as_secs_f64() / (timeout - quarter).as_secs_f64().max(1e-9);
    (100.0 - 90.0 * over.min(1.0)).round().clamp(10.0, 100.0) as u32
}

/// `WORDS #REASON\n`: the reason escaped and cut to what HAProxy keeps.
fn line(words: Option<&str>, reason: &str) -> String {
    let mut why = crate::text::escape_all(reason);
    if why.len() > MAX_REASON {
        let mut end = MAX_REASON - 3;
        while !why.is_char_boundary(end) {
            end -= 1;
        }
        why.truncate(end);
        why.push_str("...");
    }
    match words {
        Some(w) => format!("{w} #{why}\n"),
        None => format!("#{why}\n"),
    }
}

/// The reply to a connection that sent `got` (maybe nothing).
fn answer(table: &Table, got: &[u8], extras: Extras, counts: &Counts) -> String {
    let target = match identity(got) {
        Some(name) => table.get(name),
        None => table.only(),
    };
    let (said, text) = match target {
        Some(t) => reply(t, &t.lock_state(), Instant::now(), table.loaded, extras),
        None => {
            let name = identity(got).unwrap_or_default();
            unknown(name);
            let why = match name {
                "" => "icap-check: which server? send agent-send \"BACKEND/SERVER\\n\"".to_string(),
                n => format!("icap-check: unknown server '{n}'"),
            };
            (Said::Unknown, line(None, &why))
        }
    };
    counts.add(said);
    text
}

/// One log line per unknown name (a misconfigured agent-send would
/// otherwise write one every check).
fn unknown(name: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.len() < 1000 && !seen.iter().any(|n| n == name) {
        seen.push(name.to_string());
        super::log(&format!(
            "agent: asked for unknown server '{}' (agent-send names BACKEND/SERVER of haproxy.cfg)",
            crate::text::escape(name)
        ));
    }
}

/// Answers agent checks on `listener` until the process ends.
pub fn serve(
    listener: TcpListener,
    table: Arc<RwLock<Arc<Table>>>,
    extras: Extras,
    counts: Arc<Counts>,
) {
    let waiting: Arc<Waiting> = Arc::default();
    let mut ids = 0u64;
    for conn in listener.incoming() {
        let Ok(mut stream) = conn else {
            // Out of descriptors, or a connection reset before accept: go on.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let current = table
            .read()
            .map_or_else(|e| e.into_inner().clone(), |t| t.clone());
        // HAProxy sends its line with the connect: it is usually here already.
        let mut buf = [0u8; MAX_LINE];
        let got = peek_line(&mut stream, &mut buf);
        // Nothing yet is not "no line", even with one target: a line naming
        // another server may be on its way, and answering it as the only
        // target would give one server's health for another's.
        let complete = got.contains(&b'\n') || got.len() == MAX_LINE;
        let handle = match complete {
            true => None,
            false => stream.try_clone().ok(),
        };
        let Some(handle) = handle else {
            let text = answer(&current, got, extras, &counts);
            let _ = stream.set_nonblocking(true);
            let _ = stream.write_all(text.as_bytes());
            continue;
        };
        let have = got.len();
        ids += 1;
        let id = ids;
        {
            let mut w = waiting.lock().unwrap_or_else(PoisonError::into_inner);
            make_room(&mut w);
            w.push_back((id, handle));
        }
        let (table, counts, done) = (current, counts.clone(), waiting.clone());
        let spawned = std::thread::Builder::new()
            .name("agent".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let silent_after = match table.only() {
                    Some(_) => SILENT_AFTER,
                    None => LINE_DEADLINE,
                };
                let got = read_line(&mut stream, &mut buf, have, silent_after);
                let text = answer(&table, got, extras, &counts);
                let _ = stream.write_all(text.as_bytes());
                forget(&done, id);
            });
        if spawned.is_err() {
            // No thread: the connection is dropped, as an unreachable agent
            // (HAProxy keeps the server's state).
            forget(&waiting, id);
        }
    }
}

/// Ends the wait of the oldest connections until there is room for one
/// more. Their reads end at once (as at their deadline), with their line
/// if it has come: a client that is still silent after MAX_WAITING others
/// connected is idle, while a well-behaved client's line arrives right
/// after its connect. Answering the newest at once instead, as this did,
/// told a well-behaved client whose line was still on its way "which
/// server?" whenever MAX_WAITING idle clients were connected.
fn make_room(waiting: &mut VecDeque<(u64, TcpStream)>) {
    while waiting.len() >= MAX_WAITING {
        if let Some((_, oldest)) = waiting.pop_front() {
            // Its queued bytes stay readable; the write of the reply works.
            let _ = oldest.shutdown(Shutdown::Read);
        }
    }
}

/// The connection `id` no longer waits.
fn forget(waiting: &Waiting, id: u64) {
    let mut w = waiting.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(at) = w.iter().position(|(i, _)| *i == id) {
        w.remove(at);
    }
}

/// What has arrived without waiting.
fn peek_line<'b>(stream: &mut TcpStream, buf: &'b mut [u8]) -> &'b [u8] {
    let _ = stream.set_nonblocking(true);
    let n = stream.read(buf).unwrap_or(0);
    let _ = stream.set_nonblocking(false);
    &buf[..n]
}

/// Reads until a line end, `buf` is full, the peer stops, or the deadline:
/// `silent_after` while nothing has come, [`LINE_DEADLINE`] once it has.
fn read_line<'b>(
    stream: &mut TcpStream,
    buf: &'b mut [u8],
    mut have: usize,
    silent_after: Duration,
) -> &'b [u8] {
    let start = Instant::now();
    while have < buf.len() && !buf[..have].contains(&b'\n') {
        let until = start
            + if have == 0 {
                silent_after
            } else {
                LINE_DEADLINE
            };
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buf[have..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => have += n,
        }
    }
    let _ = stream.set_write_timeout(Some(LINE_DEADLINE));
    &buf[..have]
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::outcome::{Failure, Healthy, Observed};

    #[test]
    fn identities() {
        assert_eq!(identity(b"icap_pool/icap01\n"), Some("icap_pool/icap01"));
        assert_eq!(
            identity(b" icap_pool/icap01 \r\nrest"),
            Some("icap_pool/icap01")
        );
        assert_eq!(identity(b"icap_pool/icap01"), Some("icap_pool/icap01"));
        assert_eq!(identity(b"\n"), None);
        assert_eq!(identity(b"\xff\xfe\n"), None);
    }

    #[test]
    fn reasons_are_escaped_and_cut_to_what_haproxy_keeps() {
        let l = line(Some("down"), &format!("a\r\nb{}", "x".repeat(300)));
        assert!(l.starts_with("down #a\\x0d\\x0ab"), "{l}");
        assert!(l.ends_with("...\n") && l.matches('\n').count() == 1, "{l}");
        assert_eq!(l.len(), "down #".len() + MAX_REASON + 1);
        let wide = line(None, &"é".repeat(100));
        assert!(wide.len() <= MAX_REASON + 2, "{wide}");
    }

    #[test]
    fn weights() {
        let t = Duration::from_millis(1000);
        assert_eq!(weight(Duration::from_millis(100), t), 100);
        assert_eq!(weight(Duration::from_millis(250), t), 100);
        assert_eq!(weight(Duration::from_millis(1000), t), 10);
        assert_eq!(weight(Duration::from_millis(5000), t), 10);
        assert_eq!(weight(Duration::from_millis(625), t), 55);
    }

    fn outcome(ok: bool) -> Outcome {
        Outcome {
            context: Arc::new(crate::outcome::Context {
                haproxy: false,
                backend: Some("pool".into()),
                server: Some("s1".into()),
                target: "icap://h/echo".into(),
                probe: "RESPMOD".into(),
                protocol: "ICAP",
                syslog: None,
            }),
            verdict: match ok {
                true => Ok(Healthy {
                    summary: "204 No Content".into(),
                }),
                false => Err(Failure::Unhealthy(
                    "ICAP 200 wraps HTTP 403 Forbidden".into(),
                )),
            },
            observed: Observed::default(),
        }
    }

    fn target() -> Target {
        let cadence = crate::args::target::Cadence::every(Duration::from_secs(1));
        let settings = crate::plan::test_settings(outcome(true).context, cadence);
        let table = Table::new(vec![settings], None);
        table.targets.into_iter().next().unwrap()
    }

    #[test]
    fn replies_say_the_health_and_why() {
        let t = target();
        let now = Instant::now();
        let mut s = t.lock_state().clone();
        assert_eq!(
            reply(&t, &s, now, now, Extras::default()),
            (
                Said::Pending,
                "#icap-check: no result yet (first check pending)\n".into()
            )
        );
        let much_later = now + t.stale_after() + Duration::from_secs(1);
        assert_eq!(
            reply(&t, &s, much_later, now, Extras::default()).0,
            Said::Stale
        );
        s.record(outcome(false), &t.cadence);
        let (said, text) = reply(&t, &s, Instant::now(), now, Extras::default());
        assert_eq!(said, Said::Down);
        assert_eq!(
            text,
            "down #RESPMOD: unhealthy: ICAP 200 wraps HTTP 403 Forbidden (exit 1)\n"
        );
        s.record(outcome(true), &t.cadence);
        let (said, text) = reply(&t, &s, Instant::now(), now, Extras::default());
        assert_eq!(said, Said::Down);
        assert!(
            text.starts_with("down #1 of 2 passes to come up; last: RESPMOD 204"),
            "{text}"
        );
        s.record(outcome(true), &t.cadence);
        let (said, text) = reply(
            &t,
            &s,
            Instant::now(),
            now,
            Extras {
                weight: true,
                maxconn: false,
            },
        );
        assert_eq!(
            (said, text.as_str()),
            (Said::Up, "up 100% #RESPMOD 204 No Content\n")
        );
        // A checker that stopped reporting: no health word.
        let later = Instant::now() + t.stale_after() + Duration::from_secs(1);
        let (said, text) = reply(&t, &s, later, now, Extras::default());
        assert_eq!(said, Said::Stale);
        assert!(text.starts_with("#icap-check: stale:"), "{text}");
    }
}

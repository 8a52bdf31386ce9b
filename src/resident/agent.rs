//! HAProxy's agent check, answered from the table: HAProxy connects, sends
//! its `agent-send` line (`BACKEND/SERVER\n`), and reads one line back:
//! `up` or `down`, then `#` and the reason, which HAProxy's log shows
//! (`via agent : down (...)`). The reply is made from memory in
//! microseconds, whatever the checks are doing.
//!
//! The protocol is pure functions ([`identity`], [`reply`]); the listener
//! ([`serve`]) answers a connection whose line has arrived in the accept
//! loop itself, and hands the others to one thread that looks at them
//! more and more rarely until a short deadline, so that idle or flooding
//! clients never delay HAProxy and cost no thread each.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
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
/// before it is taken to send nothing (HAProxy without `agent-send`) and
/// answered with that target's health: a line naming another server may
/// still be on its way, and answering it as the only target would give
/// one server's health for another's. Well under HAProxy's agent timeout.
const SILENT_AFTER: Duration = Duration::from_millis(100);
/// Connections waiting for their line at once; past it, the oldest one's
/// wait ends (see [`Waiting::add`]).
const MAX_WAITING: usize = 256;

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
fn max_connections(last: &Outcome) -> Option<u64> {
    last.observed.capacity.as_ref()?.max_connections
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
///
/// HAProxy sends its line as soon as it is connected, so it has usually
/// arrived by the time the connection is accepted: then the reply goes out
/// at once, from this thread. A connection still without its line joins a
/// waiting list that one other thread looks at again, more rarely the older
/// it gets, until its deadline: a client that sends nothing costs a few
/// reads, never a thread, and never delays anyone else.
pub fn serve(
    listener: TcpListener,
    table: Arc<RwLock<Arc<Table>>>,
    extras: Extras,
    counts: Arc<Counts>,
) {
    let waiting = Arc::new(Waiting::default());
    {
        let (waiting, table, counts) = (waiting.clone(), table.clone(), counts.clone());
        let spawned = std::thread::Builder::new()
            .name("agent-waiting".into())
            .stack_size(64 * 1024)
            .spawn(move || waiting.serve(&table, extras, &counts));
        if let Err(e) = spawned {
            super::log(&format!("agent: cannot start its second thread: {e}"));
        }
    }
    for conn in listener.incoming() {
        let Ok(stream) = conn else {
            // Out of descriptors, or a connection reset before accept: go on.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        let mut conn = Conn {
            stream,
            buf: Box::new([0; MAX_LINE]),
            have: 0,
            since: Instant::now(),
            tries: 0,
        };
        if conn.read_more() {
            conn.reply(&current(&table), extras, &counts);
        } else if let Some(mut oldest) = waiting.add(conn) {
            oldest.reply(&current(&table), extras, &counts);
        }
    }
}

/// The table readers use now.
fn current(table: &RwLock<Arc<Table>>) -> Arc<Table> {
    table
        .read()
        .map_or_else(|e| e.into_inner().clone(), |t| t.clone())
}

/// A connection and what it has sent so far.
struct Conn {
    stream: TcpStream,
    buf: Box<[u8; MAX_LINE]>,
    have: usize,
    since: Instant,
    tries: u32,
}

impl Conn {
    /// Reads what has arrived (the socket is non-blocking); true once the
    /// line is complete, the buffer full, or the peer has stopped sending.
    fn read_more(&mut self) -> bool {
        loop {
            if self.buf[..self.have].contains(&b'\n') || self.have == self.buf.len() {
                return true;
            }
            match self.stream.read(&mut self.buf[self.have..]) {
                Ok(0) => return true,
                Ok(n) => self.have += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return e.kind() != std::io::ErrorKind::WouldBlock,
            }
        }
    }

    fn reply(&mut self, table: &Table, extras: Extras, counts: &Counts) {
        let text = answer(table, &self.buf[..self.have], extras, counts);
        // A reply is a few dozen bytes: it fits the socket's buffer.
        let _ = self.stream.write_all(text.as_bytes());
    }

    /// When to look at it again: soon at first (HAProxy's line is in
    /// flight), then more and more rarely.
    fn next_look(&self) -> Instant {
        const STEPS_MS: [u64; 9] = [0, 1, 3, 10, 30, 100, 200, 350, 500];
        let step = STEPS_MS.get(self.tries as usize).copied().unwrap_or(500);
        self.since + Duration::from_micros(100) + Duration::from_millis(step)
    }
}

/// Connections waiting for their line.
#[derive(Default)]
struct Waiting {
    conns: std::sync::Mutex<Vec<Conn>>,
    added: std::sync::Condvar,
}

impl Waiting {
    /// Adds a connection. When the list is full, the oldest one's wait
    /// ends: it is given back, to be answered with what it has sent. A
    /// client still silent after MAX_WAITING others connected is idle,
    /// while a well-behaved client's line comes right after its connect:
    /// answering the newest at once instead would tell a well-behaved
    /// client whose line was still on its way "which server?" whenever
    /// MAX_WAITING idle clients are connected.
    fn add(&self, conn: Conn) -> Option<Conn> {
        let mut conns = self
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let oldest = match conns.len() >= MAX_WAITING {
            true => (0..conns.len())
                .min_by_key(|&i| conns[i].since)
                .map(|i| conns.swap_remove(i)),
            false => None,
        };
        conns.push(conn);
        self.added.notify_one();
        oldest
    }

    fn serve(&self, table: &RwLock<Arc<Table>>, extras: Extras, counts: &Counts) {
        let mut conns = self
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            let now = Instant::now();
            let table = current(table);
            let mut i = 0;
            while i < conns.len() {
                let c = &mut conns[i];
                if c.next_look() > now {
                    i += 1;
                    continue;
                }
                c.tries += 1;
                // A single target needs no line to be named, once it is
                // clear none is coming.
                let deadline = match (c.have, table.only()) {
                    (0, Some(_)) => SILENT_AFTER,
                    _ => LINE_DEADLINE,
                };
                let done = c.read_more() || now.saturating_duration_since(c.since) >= deadline;
                if done {
                    let mut c = conns.swap_remove(i);
                    c.reply(&table, extras, counts);
                } else {
                    i += 1;
                }
            }
            let wake = conns.iter().map(Conn::next_look).min();
            let wait = wake.map_or(Duration::from_secs(1), |w| {
                w.saturating_duration_since(Instant::now())
            });
            conns = self
                .added
                .wait_timeout(conns, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
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
                haproxy_state: None,
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
    fn maxconn_comes_from_max_connections() {
        let t = target();
        let mut s = t.lock_state().clone();
        let mut o = outcome(true);
        o.observed.capacity = Some(crate::outcome::Capacity {
            max_connections: Some(40),
            ..Default::default()
        });
        s.record(o, &t.cadence);
        let extras = Extras {
            maxconn: true,
            weight: false,
        };
        let (_, text) = reply(&t, &s, Instant::now(), Instant::now(), extras);
        assert!(text.starts_with("up maxconn:40 #"), "{text}");
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

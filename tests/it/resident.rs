//! The resident mode (`--agent-listen`): icap-check keeps running, checks
//! every target on its own schedule, and answers HAProxy's agent check from
//! the latest results. Debian's HAProxy 2.6 asks the agent as it does in
//! production (one connection per check, its `agent-send` line, one line
//! back); real c-icap servers stop and start; the fault server stands in
//! only for what no real server does (an ICAP 200 wrapping HTTP 403, a
//! server that never answers). Signals are sent with kill(1).
//!
//! HAProxy's agent semantics (shared/HAPROXY-CONTRACT.md, the HAProxy
//! notes): `down` takes a server DOWN at once, even while its regular
//! `check` passes; `up` cannot bring back a server whose regular check
//! fails; no health word changes nothing. With `option log-health-checks`
//! HAProxy logs every change of the agent's result (`Agent check for
//! server B/S failed, ... info: "via agent : down (...)"`), whichever
//! check took the server down first.
//!
//! The tests run in parallel, each with its own servers, agent and HAProxy
//! on free loopback ports; bounds are what the settings imply plus slack.

use crate::common::fault::{FaultServer, Step};
use crate::common::haproxy::{HAProxy, Row, SLACK};
use crate::common::resident::{self, Resident};
use crate::common::*;

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The checks' deadline in the tests' config files, below every `inter`.
const TIMEOUT: Duration = Duration::from_millis(600);
/// `inter` on the server lines, which the resident mode checks at.
const INTER: Duration = Duration::from_secs(1);
/// HAProxy's `agent-inter`: how often it asks the agent.
const AGENT_INTER: Duration = Duration::from_millis(500);

/// icap-check's config file: the echo service, a deadline below `inter`.
fn check_conf(extra: &str) -> String {
    format!(
        "# written by tests/it/resident.rs\ndefaults\n    service echo\n    timeout {}ms\n{extra}",
        TIMEOUT.as_millis()
    )
}

/// A haproxy.cfg around `backends`, as HAProxy and icap-check both read it.
fn haproxy_cfg(backends: &str) -> String {
    format!(
        "# written by tests/it/resident.rs\ndefaults\n    mode tcp\n    timeout connect 1s\n    \
         timeout client 5s\n    timeout server 5s\n{backends}"
    )
}

/// A server line whose agent is icap-check on `agent_port`; `extra` goes
/// before the agent keywords (`check`, say).
fn server(backend: &str, name: &str, port: u16, agent_port: u16, extra: &str) -> String {
    format!(
        "    server {name} 127.0.0.1:{port} {extra}agent-check agent-addr 127.0.0.1 \
         agent-port {agent_port} agent-inter {}ms agent-send \"{backend}/{name}\\n\"\n",
        AGENT_INTER.as_millis()
    )
}

/// `default-server` with the cadence the resident mode reads.
fn cadence(fall: u32, rise: u32) -> String {
    format!(
        "    default-server inter {}ms fall {fall} rise {rise}\n",
        INTER.as_millis()
    )
}

/// Files in a temp dir, as paths the binary takes.
struct Files {
    dir: TempDir,
}

impl Files {
    fn new(tag: &str) -> Files {
        Files {
            dir: TempDir::new(tag),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The agent's fields of a `show stat` row, for the test's output.
fn agent_fields(row: &Row) -> String {
    [
        "status",
        "check_status",
        "agent_status",
        "agent_code",
        "agent_duration",
        "last_agt",
        "agent_desc",
        "agent_health",
    ]
    .iter()
    .map(|k| format!("{k}={:?}", row.get(*k).map_or("", String::as_str)))
    .collect::<Vec<_>>()
    .join(" ")
}

/// `show stat`'s status, without the `* ` of a check in progress.
fn status(row: &Row) -> &str {
    row["status"].as_str()
}

/// The agent said `up` last (`via agent : up (REASON)`).
fn agent_said_up(row: &Row) -> bool {
    row["last_agt"].starts_with("via agent : up")
}

/// A c-icap stops: its server goes DOWN through the agent, HAProxy's log
/// saying `via agent : down (OPTIONS: ...)` with the failure that took it
/// down, and its `show stat`, once c-icap is gone, `via agent : down
/// (OPTIONS: cannot connect: connection refused (...) (exit 3))`; it
/// starts again: UP again. `pool/icap01` has
/// the agent alone; `checked/icap02` also has HAProxy's TCP `check`, which
/// fails too when c-icap stops, so either may take it down first: its
/// backend logs health checks, and the agent's `down` with the reason is
/// asserted in that line.
#[test]
fn agent_takes_a_stopped_c_icap_down_and_back_up() {
    let mut icaps = [CIcap::start(), CIcap::start()];
    let agent_port = free_port();
    let files = Files::new("agent-updown");
    let cfg = files.write(
        "haproxy.cfg",
        &haproxy_cfg(&format!(
            "backend pool\n{}{}backend checked\n    option log-health-checks\n{}{}",
            cadence(2, 2),
            server("pool", "icap01", icaps[0].port, agent_port, ""),
            cadence(2, 2),
            server("checked", "icap02", icaps[1].port, agent_port, "check "),
        )),
    );
    let conf = files.write("icap-check.conf", &check_conf(""));
    let agent = Resident::start(
        agent_port,
        &["--haproxy-cfg", s(&cfg), "--config", s(&conf)],
    );
    let haproxy = HAProxy::start_cfg(&cfg);
    // Servers start UP in HAProxy; the agent's first `up` is the proof it is asked.
    let up = |s: &HashMap<String, Row>| {
        agent_said_up(&s["pool/icap01"])
            && status(&s["pool/icap01"]) == "no check"
            && agent_said_up(&s["checked/icap02"])
            && status(&s["checked/icap02"]) == "UP"
    };
    haproxy.wait_for(
        "both servers UP, the agent saying up",
        INTER * 2 + SLACK,
        up,
    );
    let servers = haproxy.servers();
    eprintln!("up:   {}", agent_fields(&servers["pool/icap01"]));

    // A c-icap that has served takes about a second to stop: both at once.
    std::thread::scope(|scope| {
        for icap in &mut icaps {
            scope.spawn(|| icap.stop());
        }
    });
    let stopped = Instant::now();
    let reason = |port: u16| {
        format!(
            "via agent : down (OPTIONS: cannot connect: connection refused (127.0.0.1:{port}) (exit 3))"
        )
    };
    // Both c-icaps are gone now: the agent's next answers say so.
    let bound = INTER * 2 + TIMEOUT + AGENT_INTER + SLACK;
    let took = haproxy.wait_for("both servers DOWN, the agent saying why", bound, |s| {
        s.values().all(|r| status(r).starts_with("DOWN"))
            && s["pool/icap01"]["last_agt"] == reason(icaps[0].port)
            && s["checked/icap02"]["last_agt"] == reason(icaps[1].port)
    });
    eprintln!("DOWN after {took:?} (bound {bound:?})");
    let servers = haproxy.servers();
    for name in ["pool/icap01", "checked/icap02"] {
        eprintln!("down: {name} {}", agent_fields(&servers[name]));
        assert_eq!(
            servers[name]["agent_status"].trim_start_matches("* "),
            "L7STS"
        );
    }
    // HAProxy logs the agent's reason when the server goes down (and,
    // with log-health-checks, when the agent's result changes): the failure
    // of the check that took it down, normally `cannot connect`; a check
    // made while c-icap was still stopping (about a second) may have timed
    // out or been cut instead.
    let log = haproxy.log();
    let logged = |prefix: &str| {
        log.lines()
            .find(|l| l.contains(prefix))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no {prefix:?} in HAProxy's log:\n{log}"))
    };
    let down = logged("Server pool/icap01 is DOWN, reason: Layer7 wrong status, code: 0, info: \"via agent : down (OPTIONS: ");
    let failed = logged("Agent check for server checked/icap02 failed, reason: Layer7 wrong status, code: 0, info: \"via agent : down (OPTIONS: ");
    eprintln!("{down}\n{failed}");
    // Refused (3), timed out (4), or cut while c-icap stopped (5).
    for line in [&down, &failed] {
        assert!(
            ["(exit 3))", "(exit 4))", "(exit 5))"]
                .iter()
                .any(|code| line.contains(code)),
            "{line}"
        );
    }
    // icap-check's own log: one line per change, the reason on DOWN.
    let own = agent.log();
    assert!(own.contains("icap-check: pool/icap01 DOWN: "), "{own}");

    std::thread::scope(|scope| {
        for icap in &mut icaps {
            scope.spawn(|| icap.restart());
        }
    });
    let bound = INTER * 2 + AGENT_INTER + SLACK;
    let took = haproxy.wait_for("both servers UP again", bound, up);
    eprintln!(
        "UP again after {took:?} (bound {bound:?}); stopped to up {:?}",
        stopped.elapsed()
    );
    let servers = haproxy.servers();
    eprintln!("up:   {}", agent_fields(&servers["checked/icap02"]));
    let log = haproxy.stop();
    assert!(log.contains("Server pool/icap01 is UP"), "{log}");
    assert!(log.contains("Server checked/icap02 is UP"), "{log}");
    let own = agent.log();
    for name in ["pool/icap01", "checked/icap02"] {
        let changes: Vec<&str> = own
            .lines()
            .filter(|l| l.starts_with(&format!("icap-check: {name} ")))
            .collect();
        assert_eq!(changes.len(), 3, "UP, DOWN, UP: one line each:\n{own}");
        assert!(changes[2].ends_with(" UP"), "{own}");
    }
}

/// A server that answers OPTIONS well and RESPMOD with an ICAP 200
/// wrapping HTTP 403 (how Glasswall's rebuild service fails) goes DOWN
/// through the agent while HAProxy's own TCP check keeps passing: the
/// agent's `down` wins over a passing check. Its config section asks for
/// RESPMOD; the c-icap beside it, in the same backend, stays UP on OPTIONS.
/// The other way round, the agent's `up` does not win over a failing
/// check: the same c-icap in a backend whose `tcp-check` connects to a
/// closed port (a rule icap-check does not read) stays DOWN.
#[test]
fn a_respmod_403_takes_its_server_down_while_the_tcp_check_passes() {
    let options_ok: &[u8] =
        b"ICAP/1.0 200 OK\r\nMethods: RESPMOD, REQMOD\r\nISTag: \"fault-1\"\r\n\
Preview: 1024\r\nEncapsulated: null-body=0\r\n\r\n";
    let http = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    let forbidden = format!(
        "ICAP/1.0 200 OK\r\nISTag: \"fault-1\"\r\nEncapsulated: res-hdr=0, null-body={}\r\n\r\n{http}",
        http.len()
    );
    // OPTIONS first on the same connection (--preview auto), then the
    // RESPMOD's head; the answer comes while the sample is sent, and the
    // rest is read until the check closes (HAProxy's TCP check: at once).
    let bad = FaultServer::start(vec![
        Step::ReadHead,
        Step::Write(options_ok.to_vec()),
        Step::ReadHead,
        Step::Write(forbidden.into_bytes()),
        Step::ReadUntil(b"\0never sent\0".to_vec()),
    ]);
    let good = CIcap::start();
    let agent_port = free_port();
    let files = Files::new("agent-403");
    let cfg = files.write(
        "haproxy.cfg",
        &haproxy_cfg(&format!(
            "backend pool\n{}{}{}backend strict\n    option tcp-check\n    \
             tcp-check connect port {}\n{}{}",
            cadence(2, 2),
            server("pool", "icap01", good.port, agent_port, "check "),
            server("pool", "gw01", bad.port(), agent_port, "check "),
            free_port(),
            cadence(2, 2),
            server("strict", "icap01", good.port, agent_port, "check "),
        )),
    );
    let conf = files.write(
        "icap-check.conf",
        &check_conf("server pool/gw01\n    method respmod\n"),
    );
    let agent = Resident::start(
        agent_port,
        &["--haproxy-cfg", s(&cfg), "--config", s(&conf)],
    );
    let haproxy = HAProxy::start_cfg(&cfg);
    let took = haproxy.wait_for(
        "gw01 DOWN through the agent, its TCP check passing; icap01 UP; \
         strict/icap01 DOWN by its check, the agent saying up",
        INTER * 2 + TIMEOUT + AGENT_INTER * 2 + SLACK,
        |s| {
            let gw = &s["pool/gw01"];
            let strict = &s["strict/icap01"];
            status(gw).starts_with("DOWN")
                && gw["check_status"].trim_start_matches("* ") == "L4OK"
                && status(&s["pool/icap01"]) == "UP"
                && agent_said_up(&s["pool/icap01"])
                && status(strict) == "DOWN"
                && agent_said_up(strict)
        },
    );
    let servers = haproxy.servers();
    for name in ["pool/gw01", "strict/icap01"] {
        eprintln!("{name} after {took:?}: {}", agent_fields(&servers[name]));
    }
    let why = "RESPMOD: unhealthy: ICAP 200 wraps HTTP 403 Forbidden (exit 1)";
    assert_eq!(
        servers["pool/gw01"]["last_agt"],
        format!("via agent : down ({why})")
    );
    let log = haproxy.stop();
    assert!(
        log.contains(&format!(
            "Server pool/gw01 is DOWN, reason: Layer7 wrong status, code: 0, info: \"via agent : down ({why})\""
        )),
        "{log}"
    );
    assert!(!log.contains("Server pool/icap01 is DOWN"), "{log}");
    assert!(
        agent.log().contains(
            "icap-check: pool/gw01 DOWN: unhealthy: ICAP 200 wraps HTTP 403 Forbidden (exit 1)"
        ),
        "{}",
        agent.log()
    );
    let methods = good.access_log();
    assert!(
        methods.contains("OPTIONS") && !methods.contains("RESPMOD"),
        "{methods}"
    );
}

/// A server line without `inter` is checked every `--interval` (the help's
/// promise; HAProxy's 2 s only when neither is given), while the line's
/// `fall` and `rise` still apply.
#[test]
fn interval_applies_where_haproxy_cfg_gives_no_inter() {
    let icap = CIcap::start();
    let agent_port = free_port();
    let files = Files::new("agent-interval");
    let cfg = files.write(
        "haproxy.cfg",
        &haproxy_cfg(&format!(
            "backend pool\n{}",
            server("pool", "icap01", icap.port, agent_port, "fall 1 rise 1 ")
        )),
    );
    let conf = files.write("icap-check.conf", &check_conf(""));
    let every = Duration::from_millis(250);
    let agent = Resident::start(
        agent_port,
        &[
            "--haproxy-cfg",
            s(&cfg),
            "--config",
            s(&conf),
            "--interval",
            &format!("{}ms", every.as_millis()),
        ],
    );
    agent.wait_reply("pool/icap01\n", SLACK, |r| r.starts_with("up "));
    let (before, start) = (lines(&icap), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let probes = lines(&icap) - before;
    let expected = start.elapsed().as_secs_f64() / every.as_secs_f64();
    eprintln!("{probes} OPTIONS in 2 s at --interval {every:?} (expected {expected:.1})");
    // At least half: the bug this guards against checked once in 2 s;
    // a starved machine delays checks, never adds them.
    assert!(
        (expected / 2.0..=expected + 1.5).contains(&(probes as f64)),
        "{probes} OPTIONS in 2 s with --interval {every:?}"
    );
}

/// Access-log lines of `icap`, now.
fn lines(icap: &CIcap) -> usize {
    icap.access_log().lines().count()
}

/// Two HAProxy instances ask one agent twice a second each: c-icap
/// still sees one OPTIONS per `inter`, since the agent answers from its
/// table and never probes for a question.
#[test]
fn two_haproxies_asking_one_agent_cost_one_probe_per_interval() {
    let icap = CIcap::start();
    let agent_port = free_port();
    let files = Files::new("agent-two");
    let cfg = files.write(
        "haproxy.cfg",
        &haproxy_cfg(&format!(
            "backend pool\n{}{}",
            cadence(2, 2),
            server("pool", "icap01", icap.port, agent_port, ""),
        )),
    );
    let conf = files.write("icap-check.conf", &check_conf(""));
    let agent = Resident::start(
        agent_port,
        &["--haproxy-cfg", s(&cfg), "--config", s(&conf)],
    );
    let haproxies = [HAProxy::start_cfg(&cfg), HAProxy::start_cfg(&cfg)];
    for h in &haproxies {
        h.wait_for("the agent said up", INTER * 2 + SLACK, |s| {
            agent_said_up(&s["pool/icap01"])
        });
    }
    let window = Duration::from_secs(5);
    let (before, start) = (lines(&icap), Instant::now());
    std::thread::sleep(window);
    let probes = lines(&icap) - before;
    let elapsed = start.elapsed();
    let expected = elapsed.as_secs_f64() / INTER.as_secs_f64();
    eprintln!("{probes} OPTIONS in {elapsed:?} (one per inter: {expected:.1})");
    assert!(
        // A starved machine may delay a check; one a question would be 20.
        (expected - 2.0..=expected + 1.5).contains(&(probes as f64)),
        "{probes} OPTIONS in {elapsed:?} with inter {INTER:?}:\n{}",
        icap.access_log()
    );
    drop(haproxies);
    agent.signal("TERM");
    let log = agent.wait_log("stopping; agent replies:", Duration::from_secs(2));
    // Both asked: 2 instances x 2 a second over the window, at least.
    let ups: u64 = log
        .split("agent replies: up ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of up replies in:\n{log}"));
    eprintln!("the agent answered up {ups} times");
    assert!(ups as f64 >= 3.0 * elapsed.as_secs_f64(), "{log}");
}

/// SIGHUP rereads haproxy.cfg: a server added is checked and answered
/// `up`, one removed is unknown; a server kept keeps its state (no
/// `pending` in between). A config file that does not load on SIGHUP
/// leaves the old targets checked and answered, with one log line naming
/// the file and line; fixed, the next SIGHUP loads it.
#[test]
fn sighup_adds_and_removes_servers_and_a_bad_config_keeps_the_old_ones() {
    let icap = CIcap::start();
    let agent_port = free_port();
    let files = Files::new("agent-hup");
    let pool = |names: &[&str]| {
        let mut text = format!("backend pool\n{}", cadence(2, 2));
        for n in names {
            text += &server("pool", n, icap.port, agent_port, "");
        }
        haproxy_cfg(&text)
    };
    let cfg = files.write("haproxy.cfg", &pool(&["icap01", "icap02"]));
    let conf = files.write("icap-check.conf", &check_conf(""));
    let agent = Resident::start(
        agent_port,
        &["--haproxy-cfg", s(&cfg), "--config", s(&conf)],
    );
    let is_up = |r: &str| r.starts_with("up #OPTIONS 200 ");
    for name in ["pool/icap01\n", "pool/icap02\n"] {
        agent.wait_reply(name, INTER * 2 + SLACK, is_up);
    }

    files.write("haproxy.cfg", &pool(&["icap01", "icap03"]));
    agent.signal("HUP");
    agent.wait_log("reloaded: 2 targets (were 2)", Duration::from_secs(5));
    assert!(
        is_up(&agent.ask("pool/icap01\n")),
        "a kept server keeps its state"
    );
    assert_eq!(
        agent.ask("pool/icap02\n"),
        "#icap-check: unknown server 'pool/icap02'\n"
    );
    let reply = agent.wait_reply("pool/icap03\n", INTER * 2 + SLACK, |r| !r.starts_with("#"));
    assert!(is_up(&reply), "{reply:?}");

    // An unknown key in defaults: the whole reload is refused.
    files.write("icap-check.conf", &check_conf("    frobnicate 1\n"));
    let probes = lines(&icap);
    agent.signal("HUP");
    let log = agent.wait_log("reload failed", Duration::from_secs(5));
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reload failed"))
        .collect();
    // The line names the file and line (after the target whose settings
    // were being read when it failed).
    let at = format!("{}:5: unknown key 'frobnicate'", conf.display());
    assert!(
        failed.len() == 1
            && failed[0].starts_with(
                "icap-check: reload failed, still checking the 2 targets loaded before: "
            )
            && failed[0].ends_with(&at),
        "one line naming {at}:\n{log}"
    );
    // Still checked (c-icap sees them), still answered.
    let until = Instant::now() + INTER * 2 + SLACK;
    while lines(&icap) < probes + 2 {
        assert!(Instant::now() < until, "no check since the failed reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    for name in ["pool/icap01\n", "pool/icap03\n"] {
        let reply = agent.ask(name);
        assert!(is_up(&reply), "{name:?}: {reply:?}");
    }

    files.write("icap-check.conf", &check_conf(""));
    agent.signal("HUP");
    let until = Instant::now() + Duration::from_secs(5);
    while agent
        .log()
        .matches("icap-check: reloaded: 2 targets (were 2)")
        .count()
        < 2
    {
        assert!(
            Instant::now() < until,
            "the fixed file did not load:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(is_up(&agent.ask("pool/icap03\n")));
}

/// SIGTERM stops the resident mode at once, checks in flight or not (a
/// server that never answers holds one): measured from kill(1) to exit.
#[test]
fn sigterm_stops_at_once() {
    let icap = CIcap::start();
    let silent = FaultServer::start(vec![Step::ReadUntil(b"\0never sent\0".to_vec())]);
    let files = Files::new("agent-term");
    let conf = files.write("icap-check.conf", "defaults\n    timeout 5s\n");
    let mut agent = Resident::start(
        free_port(),
        &[
            "--config",
            s(&conf),
            "--interval",
            "200ms",
            &icap.url("echo"),
            &silent.url(),
        ],
    );
    agent.wait_reply(&format!("{}\n", icap.url("echo")), SLACK, |r| {
        r.starts_with("up ")
    });
    // The silent server holds a check for its 5 s deadline.
    let until = Instant::now() + SLACK;
    while silent.accepted() == 0 {
        assert!(
            Instant::now() < until,
            "the silent server was never checked"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = Instant::now();
    agent.signal("TERM");
    let status = loop {
        if let Some(status) = agent.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_micros(500));
    };
    let took = sent.elapsed();
    eprintln!(
        "SIGTERM to exit: {:.1} ms (kill(1)'s own start included)",
        took.as_secs_f64() * 1000.0
    );
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert!(
        agent
            .log()
            .contains("icap-check: stopping; agent replies: up "),
        "{}",
        agent.log()
    );
}

/// One well-behaved agent check (its line sent with the connect), timed
/// from connect to the reply's line end.
fn timed_ask(agent: std::net::SocketAddr, line: &str) -> (Duration, String) {
    let start = Instant::now();
    let reply = resident::ask(agent, line);
    (start.elapsed(), reply)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Raises this process's soft limit on descriptors to its hard limit (the
/// test holds a thousand connections; CI's soft limit may be 1024).
fn raise_nofile() {
    const PRLIMIT: &str = "/usr/bin/prlimit";
    assert!(
        Path::new(PRLIMIT).exists(),
        "{PRLIMIT} is missing: Debian's util-linux has it"
    );
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .expect("Max open files in /proc/self/limits");
    let raised = std::process::Command::new(PRLIMIT)
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={hard}:"),
        ])
        .status()
        .expect("run prlimit");
    assert!(raised.success(), "prlimit --nofile={hard}:");
}

/// With one target, a connection that sends nothing is answered with that
/// target's health (HAProxy without `agent-send`), but a connection that
/// names another server is told it is unknown, even when its line comes a
/// little after its connect, as it may on a busy machine.
#[test]
fn one_target_answers_silence_but_never_for_another_name() {
    let icap = CIcap::start();
    let echo = icap.url("echo");
    let agent = Resident::start(free_port(), &["--timeout", "600ms", &echo]);
    agent.wait_reply(&format!("{echo}\n"), SLACK, |r| r.starts_with("up "));
    let read_reply = |s: &mut TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(2))).ok();
        let mut reply = String::new();
        let _ = std::io::Read::read_to_string(s, &mut reply);
        reply
    };
    for delay in [Duration::ZERO, Duration::from_millis(30)] {
        let mut s = TcpStream::connect(agent.agent).expect("connect to the agent");
        std::thread::sleep(delay);
        std::io::Write::write_all(&mut s, b"pool/other\n").expect("send the line");
        assert_eq!(
            read_reply(&mut s),
            "#icap-check: unknown server 'pool/other'\n",
            "its line sent {delay:?} after the connect"
        );
    }
    // Sends nothing and waits, as HAProxy does without agent-send.
    let asked = Instant::now();
    let mut s = TcpStream::connect(agent.agent).expect("connect to the agent");
    let reply = read_reply(&mut s);
    let took = asked.elapsed();
    assert!(reply.starts_with("up #OPTIONS 200 "), "{reply:?}");
    eprintln!("a silent connection answered after {took:?}");
    assert!(
        took < Duration::from_millis(400),
        "{took:?}: HAProxy's agent timeout may be 500 ms"
    );
}

/// What the resident process holds: RSS (KiB), descriptors, threads.
fn holds(agent: &Resident) -> (u64, usize, usize) {
    (agent.rss_kib(), agent.fds(), agent.threads())
}

/// One round of hostile clients against the agent at `addr`: one that
/// connects and sends nothing, one that sends a megabyte without a line
/// end, and a thousand idle connections, all held open until well-behaved
/// clients have asked 200 times while the thousand connect and 200 times
/// once they are all open. Returns each set's latencies, sorted, and how
/// many replies while they connected had no health word.
///
/// Every reply held open is `up`. While they connect, the agent ends the
/// wait of its oldest waiting connection each time one past 256 comes: a
/// client of ours whose line was not sent before 256 more connections
/// were accepted (its thread put off between connect and write on a busy
/// 2-core machine) is answered `#icap-check: which server? ...`, which
/// HAProxy ignores (the server keeps its state).
/// That is what the agent promises under a connect flood: never a wrong
/// health word, and almost always the right one.
fn hostile_round(agent: &Resident, ask_line: &str) -> ([Vec<Duration>; 2], usize) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let addr = agent.agent;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let silent = TcpStream::connect(addr).expect("connect: the silent client");
    let megabyte = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).expect("connect: the megabyte client");
        // The agent answers after 256 bytes and stops reading: the rest fails.
        let _ = std::io::Write::write_all(&mut s, &vec![b'x'; 1 << 20]);
        s
    });
    let (opened, all_open) = std::sync::mpsc::channel();
    let idle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::with_capacity(1000);
            for _ in 0..1000 {
                match TcpStream::connect(addr) {
                    Ok(s) => held.push(s),
                    Err(e) => return Err(e),
                }
            }
            let _ = opened.send(());
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(held)
        })
    };
    let ask = |took: &mut Vec<Duration>, flood: bool| {
        let (t, reply) = timed_ask(addr, ask_line);
        let unsure = flood && reply.starts_with("#icap-check: which server? ");
        assert!(
            reply.starts_with("up ") || unsure,
            "{reply:?} after {t:?}, {}\n{}",
            if flood {
                "while they connect"
            } else {
                "while they are held"
            },
            agent.log()
        );
        took.push(t);
        usize::from(unsure)
    };
    let (mut connecting, mut unsure) = (Vec::new(), 0);
    while connecting.len() < 200 || all_open.try_recv().is_err() {
        if connecting.len() < 200 {
            unsure += ask(&mut connecting, true);
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut open = Vec::new();
    while open.len() < 200 {
        ask(&mut open, false);
    }
    let under = holds(agent);
    stop.store(true, Ordering::SeqCst);
    let held = idle.join().expect("the idle clients' thread");
    let held = held.unwrap_or_else(|e| panic!("an idle client could not connect: {e}"));
    assert_eq!(held.len(), 1000);
    let flooded = megabyte.join().expect("the megabyte client's thread");
    drop((held, flooded, silent));
    eprintln!(
        "under hostile clients: RSS {} KiB, {} fds, {} threads",
        under.0, under.1, under.2
    );
    for t in [&mut connecting, &mut open] {
        t.sort();
    }
    ([connecting, open], unsure)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Rounds of hostile clients: 3,000 connections in all.
const ROUNDS: usize = 3;
/// What the process may hold after a round beyond what it held before the
/// first (measured: 2-3 MiB alone, up to 4.9 MiB beside two CPU hogs); a
/// leak of 3 KiB a connection would pass it by the last round.
const RSS_GROWTH_KIB: u64 = 8 * 1024;

/// Hostile clients of the agent (see [`hostile_round`]): well-behaved
/// clients (their line sent with the connect) are still answered `up`, and
/// fast, both while a thousand idle connections are made and while they
/// are held, never after a dropped connect; and once they are gone the
/// process holds what it held before: its descriptors and threads
/// exactly, and its RSS within a few MiB, the same cap after every round
/// (what it keeps is the allocator's per-thread arenas and its cache of
/// thread stacks, bounded by how many threads ran at once, never by how
/// many clients came).
#[test]
fn hostile_agent_clients_neither_slow_replies_nor_leave_anything_behind() {
    raise_nofile();
    let icap = CIcap::start();
    let echo = icap.url("echo");
    // Two targets: a connection naming none is not the only target's.
    let agent = Resident::start(
        free_port(),
        &["--timeout", "600ms", &echo, &icap.url("other")],
    );
    let ask_line = format!("{echo}\n");
    agent.wait_reply(&ask_line, SLACK, |r| r.starts_with("up "));
    // Warm: the agent's code paths and the checker's workers exist.
    for _ in 0..20 {
        timed_ask(agent.agent, &ask_line);
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = holds(&agent);
    let mut after = Vec::new();
    for round in 1..=ROUNDS {
        let ([connecting, open], unsure) = hostile_round(&agent, &ask_line);
        eprintln!("round {round}: {unsure} of 200 replies while they connected said which server?");
        assert!(
            unsure <= 10,
            "{unsure} of 200 replies without a health word"
        );
        // Generous bounds: a loaded 2-core machine and the debug build; the
        // precise figures are a benchmark's. While the thousand connect, a
        // well-behaved connection queues behind those not yet accepted: a
        // looser bound there.
        for (what, took, bound) in [
            (
                "while 1,000 connect",
                &connecting,
                Duration::from_millis(200),
            ),
            ("while they are held", &open, Duration::from_millis(50)),
        ] {
            let (p50, p99) = (percentile(took, 0.5), percentile(took, 0.99));
            let max = took[took.len() - 1];
            eprintln!(
                "round {round}, {} replies {what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                took.len(),
                ms(p50),
                ms(p99),
                ms(max)
            );
            assert!(p99 < bound, "p99 {p99:?} {what}");
            // A second or more is a connect dropped from a full listen
            // queue and sent again (the kernel's 1 s SYN retry), which no
            // scheduling delay comes near.
            assert!(
                max < Duration::from_millis(900),
                "a reply took {max:?} {what}"
            );
        }
        // The agent's waiting connections end by their 500 ms line deadline.
        let until = Instant::now() + Duration::from_secs(3);
        let now = loop {
            let now = holds(&agent);
            if (now.1 <= before.1 && now.2 <= before.2) || Instant::now() > until {
                break now;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        eprintln!(
            "round {round}: RSS {} -> {} KiB, fds {} -> {}, threads {} -> {}",
            before.0, now.0, before.1, now.1, before.2, now.2
        );
        assert!(
            now.1 <= before.1 && now.2 <= before.2,
            "fds or threads left:\n{}",
            agent.log()
        );
        after.push(now.0);
    }
    // Bounded: the same cap after every round, whatever came before.
    assert!(
        after.iter().all(|kib| *kib <= before.0 + RSS_GROWTH_KIB),
        "RSS {} KiB, after each round {after:?} KiB",
        before.0
    );
    // Still answering.
    assert!(agent.ask(&ask_line).starts_with("up "));
}

/// Arrival times of new access-log lines of several c-icaps, polled.
fn watch_logs(icaps: &[CIcap], window: Duration) -> Vec<Vec<Instant>> {
    let mut seen: Vec<usize> = icaps.iter().map(lines).collect();
    let mut arrivals = vec![Vec::new(); icaps.len()];
    let end = Instant::now() + window;
    while Instant::now() < end {
        for (i, icap) in icaps.iter().enumerate() {
            let n = lines(icap);
            let now = Instant::now();
            for _ in seen[i]..n {
                arrivals[i].push(now);
            }
            seen[i] = n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    arrivals
}

/// A hundred targets that never answer beside ten healthy c-icaps,
/// `inter 1s`, `timeout 800ms`: the hanging checks each hold a worker
/// until their deadline, and every healthy target is still checked once
/// an interval, the gaps within 10% of it (plus the log polling's
/// resolution; at least 90% of them, so that a machine starved for a
/// moment does not fail the test, and none skipped).
#[test]
fn a_hundred_hanging_targets_do_not_delay_the_healthy_ones() {
    let icaps: Vec<CIcap> = (0..10)
        .map(|_| std::thread::spawn(CIcap::start))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("start c-icap"))
        .collect();
    let hanging = FaultServer::start(vec![Step::ReadUntil(b"\0never sent\0".to_vec())]);
    let agent_port = free_port();
    let mut text = format!("backend hot\n{}", cadence(2, 2));
    for (i, icap) in icaps.iter().enumerate() {
        text += &server("hot", &format!("h{i}"), icap.port, agent_port, "");
    }
    text += &format!("backend cold\n{}", cadence(2, 2));
    for i in 0..100 {
        text += &server("cold", &format!("c{i}"), hanging.port(), agent_port, "");
    }
    let files = Files::new("agent-hanging");
    let cfg = files.write("haproxy.cfg", &haproxy_cfg(&text));
    let conf = files.write(
        "icap-check.conf",
        "defaults\n    service echo\n    timeout 800ms\n",
    );
    let agent = Resident::start(
        agent_port,
        &["--haproxy-cfg", s(&cfg), "--config", s(&conf)],
    );
    // Every hanging target checked once: the pool is at its steady state.
    let until = Instant::now() + INTER * 2 + SLACK;
    while hanging.accepted() < 100 || icaps.iter().any(|c| lines(c) == 0) {
        let seen: Vec<usize> = icaps.iter().map(lines).collect();
        assert!(
            Instant::now() < until,
            "not every target checked: {} hanging connections, c-icap requests {seen:?}\n{}",
            hanging.accepted(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let window = Duration::from_millis(5200);
    let arrivals = watch_logs(&icaps, window);
    let poll = Duration::from_millis(30);
    let (low, high) = (INTER.mul_f64(0.9) - poll, INTER.mul_f64(1.1) + poll);
    // Every target checked every interval, none skipped; each gap within
    // 10%, but for a rare one when the machine is starved (two CPU hogs on
    // top of the suite made one check 0.9 s late, the next on time).
    let (mut worst, mut within, mut all) = (Duration::ZERO, 0, 0);
    for (i, times) in arrivals.iter().enumerate() {
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            (4..=6).contains(&times.len()),
            "h{i}: {} checks in {window:?}, gaps {gaps:?}",
            times.len()
        );
        for g in &gaps {
            worst = worst.max(g.abs_diff(INTER));
            within += usize::from((low..=high).contains(g));
            all += 1;
            assert!(*g < INTER * 2, "h{i}: a check skipped, gaps {gaps:?}");
        }
    }
    eprintln!(
        "healthy targets: {} checks each in {window:?}, {within} of {all} gaps within 10% of inter, \
         the worst {worst:?} off; {} hanging connections",
        arrivals[0].len(),
        hanging.accepted()
    );
    assert!(
        within * 10 >= all * 9,
        "{within} of {all} gaps within 10% of inter"
    );
    assert!(agent.ask("hot/h0\n").starts_with("up #OPTIONS 200 "));
    let cold = agent.ask("cold/c0\n");
    assert!(
        cold.starts_with("down #OPTIONS: ") && cold.contains("(exit 4)"),
        "{cold:?}"
    );
    eprintln!("threads: {}", agent.threads());
    // A c-icap that has served takes about a second to stop: the ten at once.
    std::thread::scope(|scope| {
        for icap in icaps {
            scope.spawn(move || drop(icap));
        }
    });
}

/// Whether the web server of [`send_state_is_the_resident_modes_own`]
/// answers 200 (else 503).
static WEB_HEALTHY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

fn web_answer(_: &str) -> Vec<u8> {
    let status = match WEB_HEALTHY.load(std::sync::atomic::Ordering::SeqCst) {
        true => "200 OK",
        false => "503 Service Unavailable",
    };
    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes()
}

/// `--send-state` in the resident mode without HAProxy's runtime API: the
/// state word is this process's own, counted as HAProxy counts (rise 2,
/// fall 3): `UP`, then after failures `UP 2/3`, `UP 1/3`, `DOWN`, then a
/// pass `DOWN 1/2`; the names, address and port from haproxy.cfg.
#[test]
fn send_state_is_the_resident_modes_own() {
    let web = crate::common::tls::FakeHttp::start(web_answer);
    let dir = TempDir::new("resident-send-state");
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "backend web\n    option external-check\n    server w1 127.0.0.1:{} inter 150ms rise 2 fall 3\n",
            web.port
        ),
    )
    .unwrap();
    let headers = || -> Vec<String> {
        web.requests
            .lock()
            .unwrap()
            .iter()
            .filter_map(|r| {
                r.lines().find_map(|l| {
                    l.strip_prefix("x-haproxy-server-state: ")
                        .map(str::to_string)
                })
            })
            .collect()
    };
    let wait = |what: &str, n: usize| {
        let until = Instant::now() + SLACK;
        while headers().len() < n {
            assert!(Instant::now() < until, "{what}: {:?}", headers());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let agent = Resident::start(
        free_port(),
        &[
            "--haproxy-cfg",
            &cfg.to_string_lossy(),
            "--probe",
            "http",
            "--send-state",
            "--timeout",
            "100ms",
        ],
    );
    wait("two checks", 2);
    WEB_HEALTHY.store(false, std::sync::atomic::Ordering::SeqCst);
    let failing_from = headers().len();
    wait("failing checks", failing_from + 4);
    WEB_HEALTHY.store(true, std::sync::atomic::Ordering::SeqCst);
    let passing_from = headers().len();
    wait("a passing check", passing_from + 2);
    drop(agent);
    let seen = headers();
    let words: Vec<&str> = seen
        .iter()
        .map(|h| h.split("; address=").next().unwrap_or_default())
        .collect();
    let rest = format!("address=127.0.0.1; port={}; name=web/w1; node=", web.port);
    // The first check knows nothing yet: no state word.
    assert!(seen[0].starts_with(&rest), "{seen:?}");
    assert!(seen[1..].iter().all(|h| h.contains(&rest)), "{seen:?}");
    let joined = words[1..].join(",");
    assert!(joined.contains("UP,UP 2/3,UP 1/3,DOWN"), "{joined}");
    assert!(joined.contains("DOWN,DOWN 1/2"), "{joined}");
}

/// After a stall (every check of sixty targets hanging until its deadline)
/// the pool of check threads shrinks back at once: without it the checks
/// kept waking every idle worker in turn, none ever idle long enough to
/// end, and each kept its stack and its share of the allocator (an hour's
/// soak grew from 6 to 27 MiB after the machine was starved for a while).
#[test]
fn the_check_threads_shrink_back_after_a_stall() {
    let icap = CIcap::start();
    // Connections complete in the kernel's backlog and are never answered.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = black_hole.local_addr().unwrap().port();
    let mut args: Vec<String> = (0..60)
        .map(|i| format!("icap://127.0.0.1:{port}/s{i}"))
        .collect();
    args.push(icap.url("echo"));
    args.extend(["--interval", "300ms", "--timeout", "250ms"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Resident::start(free_port(), &args);
    let until = Instant::now() + SLACK;
    let mut busiest = 0;
    while busiest < 30 {
        busiest = busiest.max(agent.threads());
        assert!(
            Instant::now() < until,
            "the stall never held 30 threads (at most {busiest})\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The hanging targets now refuse at once: every check is quick again.
    drop(black_hole);
    let until = Instant::now() + Duration::from_secs(5);
    let settled = loop {
        let now = agent.threads();
        // main, signals, scheduler, the agent's two, at most 8 spare
        // workers and a few checks running.
        if now <= 18 || Instant::now() > until {
            break now;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("check threads: {busiest} during the stall, {settled} after");
    assert!(
        settled <= 18,
        "{settled} threads after the stall ({busiest} during it)"
    );
}

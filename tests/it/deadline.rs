//! One deadline for the whole check, wherever the check is stuck: a TLS
//! handshake, or the TLS record of an answer, trickling in one byte every
//! 20 ms (each read ends well within any socket timeout, so only a deadline
//! asked between the bytes bounds it); an HTTP body, its chunks or its
//! trailer sent slowly (ureq's own timer must not race ours); several
//! targets where one cannot be bounded by sockets (every target that
//! finished is still reported, in the format asked for); a `--timeout` so
//! large that the run's bound does not fit in the clock.
//!
//! "Ends by the deadline": exit 4, the process gone by `--timeout` + 150 ms,
//! a timeout named in the report, no panic. Every run is killed after 20 s,
//! so a check that hangs fails its case instead of hanging the suite. The
//! cases of a test run in parallel threads: a test takes about one deadline.
//! Each run's figures are printed (`--nocapture`) for the closing note.

use crate::common::dribble::{Answer, DribbleTls, Slow, Version};
use crate::common::fault::{FaultServer, Step};
use crate::common::tls::{Cert, Pki};
use crate::common::*;

use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(1);
/// How long after its deadline the process may still be alive.
const GRACE: Duration = Duration::from_millis(150);
/// A run still going by then is killed and fails its case.
const KILL_AFTER: Duration = Duration::from_secs(20);

/// Runs the binary with a cleared environment plus `env`, as HAProxy does.
fn check(args: &[String], env: &[(&str, &str)]) -> Ran {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear().envs(env.iter().copied());
    run_killed_after(&mut cmd, KILL_AFTER)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// One run of a case and what is wrong with it (nothing, when it passes).
struct Case {
    name: String,
    ran: Ran,
    wrong: Vec<String>,
}

impl Case {
    fn new(name: impl Into<String>, ran: Ran, wrong: Vec<String>) -> Case {
        Case {
            name: name.into(),
            ran,
            wrong,
        }
    }
}

/// Gone by the deadline + grace, not killed, no panic: what every run here
/// must show, whatever its exit code.
fn in_time(ran: &Ran) -> Vec<String> {
    let mut wrong = Vec::new();
    if ran.killed {
        wrong.push(format!("still running after {KILL_AFTER:?}: killed"));
    } else if ran.wall > TIMEOUT + GRACE {
        wrong.push(format!(
            "took {:.0} ms, past the deadline + {} ms",
            ms(ran.wall),
            GRACE.as_millis()
        ));
    }
    if ran.panicked() {
        wrong.push("panicked".into());
    }
    wrong
}

/// Exit 4 by the deadline, with a timeout named in the report.
fn by_the_deadline(ran: &Ran) -> Vec<String> {
    let mut wrong = in_time(ran);
    if ran.code != Some(4) {
        wrong.push(format!("exit {}, not 4", code_text(ran)));
    }
    if !ran.stdout.contains("timeout") && !ran.stderr.contains("timeout") {
        wrong.push("no 'timeout' in the report".into());
    }
    wrong
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn code_text(ran: &Ran) -> String {
    match (ran.killed, ran.code) {
        (true, _) => "none (killed)".into(),
        (false, Some(c)) => c.to_string(),
        (false, None) => "none (signal)".into(),
    }
}

/// A case to run on its own thread: it starts its servers and runs the check.
type Run<'a> = Box<dyn FnOnce() -> Vec<Case> + Send + 'a>;

/// Runs `cases` on threads at once, each returning its [`Case`]s.
fn in_parallel<'a>(cases: Vec<Run<'a>>) -> Vec<Case> {
    std::thread::scope(|scope| {
        let running: Vec<_> = cases.into_iter().map(|c| scope.spawn(c)).collect();
        running
            .into_iter()
            .flat_map(|r| r.join().expect("a case's thread panicked"))
            .collect()
    })
}

/// Prints every run's figures and fails with every case that went wrong.
fn assert_all(cases: &[Case]) {
    for c in cases {
        eprintln!(
            "measured: {}: exit {} in {:.0} ms: {}",
            c.name,
            code_text(&c.ran),
            ms(c.ran.wall),
            first_line(&c.ran)
        );
    }
    let failed: Vec<String> = cases
        .iter()
        .filter(|c| !c.wrong.is_empty())
        .map(|c| {
            format!(
                "{}: {}\n  stdout: {}\n  stderr: {}",
                c.name,
                c.wrong.join("; "),
                c.ran.stdout.trim_end(),
                c.ran.stderr.trim_end()
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} runs went wrong:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

fn first_line(ran: &Ran) -> String {
    let text = if ran.stdout.trim().is_empty() {
        &ran.stderr
    } else {
        &ran.stdout
    };
    text.lines().next().unwrap_or("").to_string()
}

// ---- TLS that trickles in -------------------------------------------------

const SCHEMES: [&str; 3] = ["icaps", "https", "tls"];
const VERSIONS: [Version; 2] = [Version::Tls12, Version::Tls13];

/// What the server answers a check of `scheme`.
fn answer_for(scheme: &str) -> Answer {
    match scheme {
        "icaps" => Answer::Icap,
        "https" => Answer::Http,
        _ => Answer::Pong,
    }
}

/// A check of `scheme` on `port`, trusting the test CA: tls:// sends PING
/// and expects PONG, so the answer is read too.
fn tls_args(scheme: &str, port: u16, ca: &str, timeout: &str) -> Vec<String> {
    let mut args = strings(&["--timeout", timeout, "--ca-file", ca]);
    match scheme {
        "icaps" => args.push(format!("icaps://127.0.0.1:{port}/echo")),
        "https" => args.push(format!("https://127.0.0.1:{port}/")),
        _ => {
            args.extend(strings(&["--send", "PING", "--expect-string", "PONG"]));
            args.push(format!("tls://127.0.0.1:{port}"));
        }
    }
    args
}

/// The certificate the dribbling servers present, and the CA's path.
fn pki() -> (Pki, Cert, String) {
    let pki = Pki::new();
    let cert = pki.server("dribble", 30);
    let ca = pki.ca().to_str().expect("utf-8 temp path").to_string();
    (pki, cert, ca)
}

/// Every scheme over TLS 1.2 and 1.3 against a server sending `slow`ly,
/// each run checked by `judge`.
fn tls_matrix<'a>(
    cert: &'a Cert,
    ca: &'a str,
    slow: Slow,
    timeout: &'a str,
    judge: fn(&Ran) -> Vec<String>,
) -> Vec<Run<'a>> {
    let mut cases: Vec<Run<'a>> = Vec::new();
    for version in VERSIONS {
        for scheme in SCHEMES {
            cases.push(Box::new(move || {
                let server = DribbleTls::start(cert, version, slow, answer_for(scheme));
                let ran = check(&tls_args(scheme, server.port, ca, timeout), &[]);
                let mut wrong = judge(&ran);
                if server.accepted() == 0 {
                    wrong.push("never connected to the server".into());
                }
                let name = format!("{scheme}:// {version:?}, {slow:?} one byte every 20 ms");
                vec![Case::new(name, ran, wrong)]
            }));
        }
    }
    cases
}

/// The handshake, every byte 20 ms apart: rustls' `complete_io` loops
/// over the socket until the handshake is done, and a byte comes well
/// within each read's timeout (measured before the fix: exit 4 only once
/// the handshake had trickled in whole, after 13 s).
#[test]
fn tls_handshake_dribbled_ends_by_the_deadline() {
    let (_pki, cert, ca) = pki();
    let mut cases = tls_matrix(&cert, &ca, Slow::Handshake, "1s", by_the_deadline);
    // HAProxy's form with `ssl` on the server line: icaps to the service.
    let (cert, ca) = (&cert, ca.as_str());
    cases.push(Box::new(move || {
        let server = DribbleTls::start(cert, Version::Tls13, Slow::Handshake, Answer::Icap);
        let port = server.port.to_string();
        let args = strings(&[
            "--timeout",
            "1s",
            "--service",
            "echo",
            "--ca-file",
            ca,
            "NOT_USED",
            "NOT_USED",
            "127.0.0.1",
            &port,
        ]);
        let ran = check(&args, &[("HAPROXY_SERVER_SSL", "1")]);
        let mut wrong = by_the_deadline(&ran);
        if !ran.stdout.is_empty() {
            wrong.push("HAProxy's form reports on stderr only".into());
        }
        vec![Case::new(
            "HAProxy form, HAPROXY_SERVER_SSL=1, Tls13, Handshake one byte every 20 ms",
            ran,
            wrong,
        )]
    }));
    assert_all(&in_parallel(cases));
}

/// The handshake at full speed, then the answer's TLS record one byte every
/// 20 ms: rustls reads the whole record before our code sees a byte of it
/// (measured before the fix: exit 0 after 1.8 to 2.1 s).
#[test]
fn tls_answer_dribbled_ends_by_the_deadline() {
    let (_pki, cert, ca) = pki();
    assert_all(&in_parallel(tls_matrix(
        &cert,
        &ca,
        Slow::Answer,
        "1s",
        by_the_deadline,
    )));
}

/// The control for the two tests above: given time, the same server's
/// answer arrives whole and is healthy, and it takes longer than their
/// 1 s deadline. So their exit 4 is the deadline's, not a broken server's.
#[test]
fn tls_answer_dribbled_is_healthy_given_time() {
    let (_pki, cert, ca) = pki();
    fn healthy_but_slow(ran: &Ran) -> Vec<String> {
        let mut wrong = Vec::new();
        if ran.code != Some(0) || ran.killed || ran.panicked() {
            wrong.push(format!("exit {}, not 0", code_text(ran)));
        }
        // Every answer's record outlasts the 1 s deadline of the tests above.
        if ran.wall <= TIMEOUT + GRACE {
            wrong.push(format!("took only {:.0} ms", ms(ran.wall)));
        }
        wrong
    }
    assert_all(&in_parallel(tls_matrix(
        &cert,
        &ca,
        Slow::Answer,
        "15s",
        healthy_but_slow,
    )));
}

// ---- an HTTP body that trickles in ------------------------------------------

const CHUNKED_200: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
/// How many times each HTTP case runs: the race with ureq's own timer lost
/// about 9 runs in 15.
const RUNS: usize = 15;

/// Runs a check for a string never sent, `RUNS` times at once, against a
/// server that answers `head` and then runs `rest`: every run must be a
/// timeout (exit 4), never a protocol error (exit 5).
fn http_body_slowly(what: &str, head: Vec<u8>, rest: Step) {
    let server = FaultServer::start(vec![Step::ReadHead, Step::Write(head), rest]);
    let url = format!("http://127.0.0.1:{}/", server.port());
    let args = strings(&["--timeout", "1s", "--expect-string", "never-there", &url]);
    let runs: Vec<Run<'_>> = (0..RUNS)
        .map(|i| {
            let args = &args;
            Box::new(move || {
                let ran = check(args, &[]);
                let mut wrong = by_the_deadline(&ran);
                if ran.stdout.contains("protocol error") {
                    wrong.push("a protocol error, not the deadline".into());
                }
                vec![Case::new(format!("{what}, run {}", i + 1), ran, wrong)]
            }) as Run<'_>
        })
        .collect();
    let cases = in_parallel(runs);
    drop(server);
    assert_all(&cases);
}

/// The first chunk announces 1 MiB, whose bytes come one every 20 ms.
#[test]
fn http_body_dribbled_ends_by_the_deadline() {
    let mut head = CHUNKED_200.to_vec();
    head.extend_from_slice(b"100000\r\n");
    let dribble = Step::Dribble {
        bytes: b"x".to_vec(),
        every: Duration::from_millis(20),
    };
    http_body_slowly("HTTP body one byte every 20 ms", head, dribble);
}

/// Whole one-byte chunks, one every 20 ms, forever.
#[test]
fn http_chunks_every_20_ms_end_by_the_deadline() {
    let chunks = Step::Every {
        bytes: b"1\r\nx\r\n".to_vec(),
        every: Duration::from_millis(20),
    };
    http_body_slowly("HTTP chunk every 20 ms", CHUNKED_200.to_vec(), chunks);
}

/// The body ends (the last chunk), then a trailer comes one byte every
/// 20 ms and never ends.
#[test]
fn http_trailer_dribbled_ends_by_the_deadline() {
    let mut head = CHUNKED_200.to_vec();
    head.extend_from_slice(b"1\r\nx\r\n0\r\n");
    let dribble = Step::Dribble {
        bytes: b"X-Trailer: slow\r\n".to_vec(),
        every: Duration::from_millis(20),
    };
    http_body_slowly("HTTP trailer one byte every 20 ms", head, dribble);
}

// ---- several targets, one stuck where sockets cannot bound it --------------

fn json_objects(ran: &Ran) -> Result<Vec<serde_json::Value>, String> {
    ran.stdout
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("not JSON ({e}): {l}")))
        .collect()
}

/// `objects` are one healthy object for `healthy` and one deadline failure
/// (exit 4) for `stuck`, in that order, each keyed by `key` (target or server).
fn healthy_and_stuck(ran: &Ran, key: &str, healthy: &str, stuck: &str) -> Vec<String> {
    let objects = match json_objects(ran) {
        Ok(o) => o,
        Err(e) => return vec![e],
    };
    let mut wrong = Vec::new();
    let [ok, late] = objects.as_slice() else {
        return vec![format!("{} JSON objects, not 2", objects.len())];
    };
    if ok[key] != healthy || ok["healthy"] != true || ok["exit_code"] != 0 {
        wrong.push(format!("not the healthy {healthy}: {ok}"));
    }
    let reason = late["reason"].as_str().unwrap_or_default();
    if late[key] != stuck || late["exit_code"] != 4 || !reason.contains("timeout") {
        wrong.push(format!("not {stuck}'s deadline failure: {late}"));
    }
    wrong
}

/// `--format` FORMAT's report of a healthy c-icap target (`icap`) beside a
/// stuck one (`stuck`): each finished target as it finished, the stuck one
/// a deadline failure.
fn reports_both(format: &str, ran: &Ran, icap: &str, stuck: &str) -> Vec<String> {
    let mut wrong = in_time(ran);
    let code = if format == "nagios" { 2 } else { 4 };
    if ran.code != Some(code) {
        wrong.push(format!("exit {}, not {code}", code_text(ran)));
    }
    let text = &ran.stdout;
    let lines: Vec<&str> = text.lines().collect();
    let has = |prefix: &str, target: &str, also: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(prefix) && l.contains(target) && l.contains(also))
    };
    let sample = |name: &str, target: &str, value: &str| {
        lines.iter().any(|l| {
            l.starts_with(&format!("{name}{{"))
                && l.contains(&format!("target=\"{target}\""))
                && l.ends_with(&format!("}} {value}"))
        })
    };
    match format {
        "human" => {
            if !(lines.len() == 3
                && has("OK    ", icap, "200 ISTag")
                && has("FAIL  ", stuck, "timeout")
                && lines[2].starts_with("2 targets: 1 healthy, 1 failed (exit 4) in "))
            {
                wrong.push("not a table of an OK row, a FAIL row and the summary".into());
            }
        }
        "json" => wrong.extend(healthy_and_stuck(ran, "target", icap, stuck)),
        "nagios" => {
            if !(text.starts_with("ICAP CRITICAL - 1 of 2 targets healthy | ")
                && has("[OK] ", icap, "OPTIONS 200")
                && has("[CRITICAL] ", stuck, "timeout"))
            {
                wrong.push("not CRITICAL with both targets listed".into());
            }
        }
        _ => {
            if !(sample("probe_success", icap, "1")
                && sample("probe_success", stuck, "0")
                && sample("probe_exit_code", icap, "0")
                && sample("probe_exit_code", stuck, "4"))
            {
                wrong.push("not both targets' probe_success and probe_exit_code".into());
            }
        }
    }
    wrong
}

/// A healthy c-icap and a TLS server whose handshake trickles in, in every
/// format. Whether the stuck check ends itself at its deadline or the run's
/// watchdog ends the process at the run's bound (deadline + 80 ms), the
/// healthy target's outcome must be in the report.
#[test]
fn several_targets_report_the_finished_and_the_stuck() {
    let server = CIcap::start();
    let (_pki, cert, ca) = pki();
    let stuck = DribbleTls::start(&cert, Version::Tls13, Slow::Handshake, Answer::Pong);
    let icap = server.url("echo");
    let tls = format!("tls://127.0.0.1:{}", stuck.port);
    let cases = ["human", "json", "nagios", "prometheus"]
        .into_iter()
        .map(|format| {
            let (icap, tls, ca) = (&icap, &tls, &ca);
            Box::new(move || {
                let args = strings(&[
                    "--timeout",
                    "1s",
                    "--format",
                    format,
                    "--ca-file",
                    ca,
                    icap,
                    tls,
                ]);
                let ran = check(&args, &[]);
                let wrong = reports_both(format, &ran, icap, tls);
                vec![Case::new(
                    format!("--format {format}, c-icap and a TLS handshake one byte every 20 ms"),
                    ran,
                    wrong,
                )]
            }) as Run<'_>
        })
        .collect();
    assert_all(&in_parallel(cases));
}

/// Writes haproxy.cfg with a backend `pool` of `servers` (lines after
/// `server`), and an icap-check.conf of `conf`; returns their paths.
fn pool_files(dir: &TempDir, servers: &[String], conf: &str) -> (String, String) {
    let mut cfg = String::from(
        "global\n    external-check\ndefaults\n    mode tcp\n    option external-check\nbackend pool\n",
    );
    for s in servers {
        cfg.push_str(&format!("    server {s}\n"));
    }
    let (cfg_path, conf_path) = (
        dir.path().join("haproxy.cfg"),
        dir.path().join("icap-check.conf"),
    );
    std::fs::write(&cfg_path, cfg).expect("write haproxy.cfg");
    std::fs::write(&conf_path, conf).expect("write icap-check.conf");
    let text = |p: std::path::PathBuf| p.to_str().expect("utf-8 temp path").to_string();
    (text(cfg_path), text(conf_path))
}

/// A pool from haproxy.cfg: c-icap beside a UNIX socket whose backlog is
/// full (a connect no socket timeout bounds: the watchdog's case).
#[test]
fn a_pool_with_a_full_unix_backlog_reports_every_server() {
    let server = CIcap::start();
    let backlog = FullBacklog::start();
    let dir = TempDir::new("pool-unix");
    let servers = [
        format!("icap 127.0.0.1:{} check", server.port),
        format!("stuck {} check", backlog.path()),
    ];
    let (cfg, conf) = pool_files(&dir, &servers, "defaults\n    service echo\n");
    let args = strings(&[
        "--timeout",
        "1s",
        "--haproxy-cfg",
        &cfg,
        "--config",
        &conf,
        "--format",
        "json",
    ]);
    let ran = check(&args, &[]);
    let mut wrong = by_the_deadline(&ran);
    wrong.extend(healthy_and_stuck(&ran, "server", "icap", "stuck"));
    drop(backlog);
    assert_all(&[Case::new(
        "pool: c-icap and a full UNIX backlog, --format json",
        ran,
        wrong,
    )]);
}

/// A pool from haproxy.cfg: c-icap beside a server with `ssl` on its line
/// whose handshake trickles in.
#[test]
fn a_pool_with_a_stuck_tls_server_reports_every_server() {
    let server = CIcap::start();
    let (_pki, cert, ca) = pki();
    let stuck = DribbleTls::start(&cert, Version::Tls13, Slow::Handshake, Answer::Icap);
    let dir = TempDir::new("pool-tls");
    let servers = [
        format!("icap 127.0.0.1:{} check", server.port),
        format!("stuck 127.0.0.1:{} check ssl", stuck.port),
    ];
    let conf = format!("defaults\n    service echo\n    ca-file {ca}\n");
    let (cfg, conf) = pool_files(&dir, &servers, &conf);
    let args = strings(&[
        "--timeout",
        "1s",
        "--haproxy-cfg",
        &cfg,
        "--config",
        &conf,
        "--format",
        "json",
    ]);
    let ran = check(&args, &[]);
    let mut wrong = by_the_deadline(&ran);
    wrong.extend(healthy_and_stuck(&ran, "server", "icap", "stuck"));
    assert_all(&[Case::new(
        "pool: c-icap and `ssl` with a TLS handshake one byte every 20 ms, --format json",
        ran,
        wrong,
    )]);
}

// ---- a deadline too large for the clock ------------------------------------

/// The run's bound is (timeout + 40 ms) x the checks one thread runs in a
/// row: with `--timeout 9999999999d` (the largest accepted, 8.6e14 s) and
/// 11,000 checks on one thread it is 9.5e18 s, past what an `Instant` can
/// hold (i64 seconds), so adding it to the start overflows unless checked.
/// A pool from haproxy.cfg carries the targets: 11,000 URLs on the command
/// line take the debug build 20 s to parse (argv is copied per target).
#[test]
fn a_bound_past_the_clock_does_not_panic() {
    const TARGETS: usize = 11_000;
    let dir = TempDir::new("huge-bound");
    let port = free_port();
    let servers: Vec<String> = (0..TARGETS)
        .map(|i| format!("s{i} 127.0.0.1:{port} check"))
        .collect();
    let (cfg, conf) = pool_files(&dir, &servers, "defaults\n    service echo\n");
    let args = strings(&[
        "--jobs",
        "1",
        "--timeout",
        "9999999999d",
        "--haproxy-cfg",
        &cfg,
        "--config",
        &conf,
    ]);
    let ran = check(&args, &[]);
    let mut wrong = Vec::new();
    if ran.killed || ran.panicked() || ran.code != Some(3) {
        wrong.push(format!("exit {}, not 3", code_text(&ran)));
    }
    let refused = ran
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL ") && l.contains("connection refused"))
        .count();
    if refused != TARGETS {
        wrong.push(format!("{refused} rows refused, not {TARGETS}"));
    }
    let summary = format!("{TARGETS} targets: 0 healthy, {TARGETS} failed (exit 3) in ");
    if !ran
        .stdout
        .lines()
        .last()
        .is_some_and(|l| l.starts_with(&summary))
    {
        wrong.push("no summary".into());
    }
    // The same timeout on the command line's targets, the form of the report.
    let url = format!("icap://127.0.0.1:{port}/echo");
    let two = check(
        &strings(&["--jobs", "1", "--timeout", "9999999999d", &url, &url]),
        &[],
    );
    let mut two_wrong = Vec::new();
    if two.killed || two.panicked() || two.code != Some(3) {
        two_wrong.push(format!("exit {}, not 3", code_text(&two)));
    }
    assert_all(&[
        Case::new(
            format!("--jobs 1 --timeout 9999999999d, {TARGETS} refused servers of a pool"),
            ran,
            wrong,
        ),
        Case::new(
            "--jobs 1 --timeout 9999999999d, two refused URLs",
            two,
            two_wrong,
        ),
    ]);
}

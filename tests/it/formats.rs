//! Several targets, whole pools from haproxy.cfg, and every output format,
//! against the real c-icap. Machine formats are parsed, not grepped.

use crate::common::*;
use std::collections::HashMap;
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// A listener that accepts (the kernel does) but never answers.
fn silent_server() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("icap://127.0.0.1:{}/echo", l.local_addr().unwrap().port());
    (l, url)
}

fn closed_url() -> String {
    format!("icap://127.0.0.1:{}/echo", free_port())
}

#[test]
fn json_one_object_per_target() {
    let server = CIcap::start();
    let closed = closed_url();
    let out = run(
        &[
            "--format",
            "json",
            &server.url("echo"),
            &closed,
            &server.url("nope"),
        ],
        &[],
    );
    assert_eq!(code(&out), 3, "worst of 0, 3, 1 is 3: {}", stdout(&out));
    let objects = json_lines(&out);
    assert_eq!(objects.len(), 3);
    let ok = &objects[0];
    assert_eq!(ok["target"], server.url("echo"));
    assert_eq!(ok["probe"], "OPTIONS");
    assert_eq!(ok["healthy"], true);
    assert_eq!(ok["exit_code"], 0);
    assert_eq!(ok["status"], 200);
    assert!(
        ok["istag"].as_str().unwrap().starts_with("\"CI0001"),
        "{ok}"
    );
    assert!(ok["reason"].is_null());
    assert!(ok["backend"].is_null() && ok["server"].is_null());
    let t = &ok["timings"];
    let (connect, first, total) = (
        t["connect"].as_f64().unwrap(),
        t["first_byte"].as_f64().unwrap(),
        t["total"].as_f64().unwrap(),
    );
    assert!(
        0.0 < connect && connect <= first && first <= total && total < 5.0,
        "{t}"
    );
    assert_eq!(objects[1]["exit_code"], 3);
    assert_eq!(objects[1]["healthy"], false);
    assert!(objects[1]["reason"]
        .as_str()
        .unwrap()
        .contains("connection refused"));
    assert!(objects[1]["timings"]["connect"].is_null());
    assert_eq!(objects[2]["exit_code"], 1);
    assert_eq!(
        objects[2]["status"], 404,
        "the status of a failed answer is reported too"
    );
}

/// name{labels} value lines of the text exposition format.
fn prometheus_samples(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "{line}"
            );
            continue;
        }
        let (name, rest) = line
            .split_once('{')
            .unwrap_or_else(|| panic!("no labels: {line}"));
        let (labels, value) = rest
            .rsplit_once("} ")
            .unwrap_or_else(|| panic!("bad sample: {line}"));
        let mut map = HashMap::new();
        for pair in labels.split("\",") {
            let (k, v) = pair
                .split_once("=\"")
                .unwrap_or_else(|| panic!("bad label: {pair}"));
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        samples.push((
            name.to_string(),
            map,
            value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}")),
        ));
    }
    samples
}

#[test]
fn prometheus_text_exposition() {
    let server = CIcap::start();
    let closed = closed_url();
    let out = run(
        &["--format", "prometheus", &server.url("echo"), &closed],
        &[],
    );
    assert_eq!(code(&out), 3);
    let text = stdout(&out);
    for name in [
        "probe_success",
        "probe_exit_code",
        "probe_duration_seconds",
        "probe_status_code",
    ] {
        assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{text}");
    }
    let samples = prometheus_samples(&text);
    let find = |name: &str, target: &str, phase: Option<&str>| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l["target"] == target
                    && phase.is_none_or(|p| l.get("phase").map(String::as_str) == Some(p))
            })
            .map(|s| s.2)
    };
    let echo = server.url("echo");
    assert_eq!(find("probe_success", &echo, None), Some(1.0));
    assert_eq!(find("probe_success", &closed, None), Some(0.0));
    assert_eq!(find("probe_exit_code", &closed, None), Some(3.0));
    assert_eq!(find("probe_status_code", &echo, None), Some(200.0));
    assert_eq!(find("probe_status_code", &closed, None), None);
    let connect = find("probe_duration_seconds", &echo, Some("connect")).unwrap();
    let total = find("probe_duration_seconds", &echo, Some("total")).unwrap();
    assert!(0.0 < connect && connect <= total, "{connect} {total}");
    let labels = &samples[0].1;
    assert!(
        labels.contains_key("backend")
            && labels.contains_key("server")
            && labels.contains_key("probe")
    );
}

#[test]
fn nagios_states_and_perfdata() {
    let server = CIcap::start();
    let echo = server.url("echo");
    let out = run(&["--format", "nagios", &echo], &[]);
    assert_eq!(code(&out), 0);
    let line = stdout(&out);
    assert!(
        line.starts_with(&format!("ICAP OK - {echo} OPTIONS 200 ISTag=")),
        "{line}"
    );
    let perf = line.split_once(" | ").unwrap().1.trim();
    let time = perf.split(' ').next().unwrap();
    assert!(
        time.starts_with("time=") && time.ends_with(";;;0"),
        "{perf}"
    );
    let secs: f64 = time["time=".len()..]
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs > 0.0 && secs < 5.0);

    // Thresholds on the total time: nothing real answers in under a microsecond.
    let out = run(&["--format", "nagios", "--warning", "1us", &echo], &[]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).starts_with("ICAP WARNING - "));
    assert!(stdout(&out).contains(";0.000001;;0"), "{}", stdout(&out));
    let out = run(
        &[
            "--format",
            "nagios",
            "--warning",
            "1us",
            "--critical",
            "2us",
            &echo,
        ],
        &[],
    );
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).starts_with("ICAP CRITICAL - "));
    let out = run(&["--format", "nagios", "--warning", "10s", &echo], &[]);
    assert_eq!(code(&out), 0);

    let out = run(&["--format", "nagios", &echo, &closed_url()], &[]);
    assert_eq!(code(&out), 2);
    let text = stdout(&out);
    assert!(
        text.starts_with("ICAP CRITICAL - 1 of 2 targets healthy | '"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("[CRITICAL] ") && l.contains("connection refused")),
        "{text}"
    );

    // A plugin that cannot run is UNKNOWN.
    let out = run(&["--format", "nagios", "--timeout", "soon", &echo], &[]);
    assert_eq!(code(&out), 3);
}

#[test]
fn human_lines_are_aligned_with_a_summary() {
    let server = CIcap::start();
    let closed = closed_url();
    let out = run(&[&server.url("echo"), &closed], &[]);
    assert_eq!(code(&out), 3);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("OK    icap://"), "{text}");
    assert!(lines[1].starts_with("FAIL  icap://"), "{text}");
    let col = |l: &str| l.find("OPTIONS").unwrap();
    assert_eq!(col(lines[0]), col(lines[1]), "columns line up:\n{text}");
    assert!(
        lines[2].starts_with("2 targets: 1 healthy, 1 failed (exit 3) in "),
        "{text}"
    );
}

/// Checks run at once: three servers that never answer, a 1 s deadline,
/// three jobs: done in about one deadline, not three.
#[test]
fn targets_run_concurrently_within_one_deadline() {
    let server = CIcap::start();
    let silent: Vec<_> = (0..3).map(|_| silent_server()).collect();
    let closed = closed_url();
    let mut args = vec![
        "--timeout".to_string(),
        "1s".to_string(),
        "--jobs".to_string(),
        "5".to_string(),
    ];
    args.push(server.url("echo"));
    args.push(closed.clone());
    args.extend(silent.iter().map(|(_, u)| u.clone()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let began = Instant::now();
    let out = run(&args, &[]);
    let took = began.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "took {took:?}: not concurrent"
    );
    assert_eq!(
        code(&out),
        3,
        "connect failures rank above timeouts: {}",
        stdout(&out)
    );
    let text = stdout(&out);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("timeout while reading the response"))
            .count(),
        3,
        "{text}"
    );
    assert!(
        text.contains("5 targets: 1 healthy, 4 failed (exit 3)"),
        "{text}"
    );
}

#[test]
fn a_whole_pool_from_haproxy_cfg() {
    let a = CIcap::start();
    let b = CIcap::start();
    let dir = TempDir::new("pool");
    let closed = free_port();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    external-check\ndefaults\n    mode tcp\n    option external-check\n\
             backend icap_pool\n    server a 127.0.0.1:{} check\n    server b localhost:{} check\n\
             \x20   server down 127.0.0.1:{closed} check\n    server off 127.0.0.1:{closed} check disabled\n\
             backend av\n    server av1 127.0.0.1:9 check port {}\n\
             backend web\n    no option external-check\n    server w 127.0.0.1:{closed}\n",
            a.port, b.port, b.port
        ),
    )
    .unwrap();
    let conf = dir.path().join("icap-check.conf");
    std::fs::write(
        &conf,
        "defaults\n service echo\nbackend av\n method respmod\n",
    )
    .unwrap();
    let (cfg, conf) = (cfg.to_str().unwrap(), conf.to_str().unwrap());

    let out = run(
        &["--haproxy-cfg", cfg, "--config", conf, "--format", "json"],
        &[],
    );
    assert_eq!(code(&out), 3, "{}", stdout(&out));
    let objects = json_lines(&out);
    let seen: Vec<(String, String, i64)> = objects
        .iter()
        .map(|o| {
            (
                o["backend"].as_str().unwrap().to_string(),
                o["server"].as_str().unwrap().to_string(),
                o["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    let expect = |b: &str, s: &str, c: i64| (b.to_string(), s.to_string(), c);
    assert_eq!(
        seen,
        [
            expect("icap_pool", "a", 0),
            expect("icap_pool", "b", 0),
            expect("icap_pool", "down", 3),
            expect("av", "av1", 0)
        ],
        "disabled servers and backends without external-check are skipped; 'check port' is used"
    );
    assert_eq!(
        objects[3]["probe"], "RESPMOD",
        "the backend's config section applies"
    );
    assert_eq!(
        objects[1]["target"],
        format!("icap://localhost:{}/echo", b.port),
        "names are resolved"
    );

    let out = run(
        &["--haproxy-cfg", cfg, "--config", conf, "--backend", "av"],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 targets: 1 healthy, 0 failed"),
        "{}",
        stdout(&out)
    );

    let out = run(&["--haproxy-cfg", cfg, "--backend", "nope"], &[]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no backend 'nope'"),
        "{}",
        stderr(&out)
    );

    // A server line that cannot be read fails that server alone (exit 2 in
    // its row); the rest of the pool is still checked.
    let bad = dir.path().join("bad.cfg");
    std::fs::write(
        &bad,
        format!(
            "backend b\n    option external-check\n    server s1 127.0.0.1:99999 check\n\
             \x20   server s2 127.0.0.1:1000-1010 check\n    server s3 127.0.0.1:{} check\n",
            a.port
        ),
    )
    .unwrap();
    let out = run(
        &["--haproxy-cfg", bad.to_str().unwrap(), "--config", conf],
        &[],
    );
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "{}:3: server 's1': invalid port '99999'",
            bad.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("port ranges and offsets are not read"),
        "{text}"
    );
    assert!(
        text.contains("3 targets: 1 healthy, 2 failed (exit 2)"),
        "{text}"
    );
}

#[test]
fn syslog_gets_failures_only() {
    let server = CIcap::start();
    let dir = TempDir::new("syslog");
    let path = dir.path().join("log");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let log = path.to_str().unwrap();
    let env = [
        ("HAPROXY_PROXY_NAME", "icap_pool"),
        ("HAPROXY_SERVER_NAME", "icap01"),
    ];

    let port = server.port.to_string();
    let out = run(
        &[
            "--syslog",
            log,
            "--service",
            "echo",
            "NOT_USED",
            "NOT_USED",
            "127.0.0.1",
            &port,
        ],
        &env,
    );
    assert_eq!(code(&out), 0);
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    assert!(
        sock.recv(&mut buf).is_err(),
        "a healthy check sent something to syslog"
    );
    sock.set_nonblocking(false).unwrap();

    let closed = free_port().to_string();
    let out = run(
        &[
            "--syslog",
            log,
            "--service",
            "echo",
            "NOT_USED",
            "NOT_USED",
            "127.0.0.1",
            &closed,
        ],
        &env,
    );
    assert_eq!(code(&out), 3);
    let n = sock.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        msg.starts_with("<27>icap-check["),
        "daemon.err by default: {msg}"
    );
    assert!(
        msg.contains("]: icap_pool/icap01 icap://127.0.0.1:"),
        "{msg}"
    );
    let expected_end = format!("cannot connect: connection refused (127.0.0.1:{closed}) (exit 3)");
    assert!(msg.ends_with(&expected_end), "{msg}");

    // From the config file, as an operator sets it for HAProxy's daemon mode; facility local0; over UDP.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let conf = dir.path().join("c.conf");
    std::fs::write(
        &conf,
        format!(
            "defaults\n service echo\n syslog udp:{}\n syslog-facility local0\n",
            udp.local_addr().unwrap()
        ),
    )
    .unwrap();
    let out = run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "NOT_USED",
            "NOT_USED",
            "127.0.0.1",
            &closed,
        ],
        &env,
    );
    assert_eq!(code(&out), 3);
    let n = udp.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.starts_with("<131>1 20"), "RFC 5424, local0.err: {msg}");
    assert!(
        msg.contains(" icap-check ") && msg.contains("connection refused"),
        "{msg}"
    );

    // `syslog` alone means /dev/log; a missing syslog never changes the verdict.
    std::fs::write(&conf, "defaults\n service echo\n syslog\n").unwrap();
    let out = run(&["--config", conf.to_str().unwrap(), "--check-config"], &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(&["--syslog", "/nonexistent/log", &closed_url()], &[]);
    assert_eq!(code(&out), 3);
    let out = run(&["--syslog", "udp:loghost:514", &server.url("echo")], &[]);
    assert_eq!(
        code(&out),
        2,
        "only literal addresses: a lookup could delay the check"
    );
}

#[test]
fn repeat_summarises_phases_and_failures() {
    let server = CIcap::start();
    let out = run(
        &["--repeat", "3", "--interval", "10ms", &server.url("echo")],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("OK ")).count(),
        3,
        "{text}"
    );
    assert!(text.contains("phase"), "{text}");
    let total = text.lines().find(|l| l.starts_with("total")).unwrap();
    assert!(total.trim_end().ends_with(" 3"), "{total}");
    assert!(text.trim_end().ends_with("3 runs, 0 failed"), "{text}");
    let out = run(&["--repeat", "2", "--interval", "1ms", &closed_url()], &[]);
    assert_eq!(code(&out), 3);
    assert!(
        stdout(&out)
            .trim_end()
            .ends_with("2 runs, 2 failed (exit 3 x2)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn verbose_shows_phase_timings() {
    let server = CIcap::start();
    let out = run(&["-v", &server.url("echo")], &[]);
    assert_eq!(code(&out), 0);
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains(": connect "))
        .unwrap_or_else(|| panic!("{err}"));
    for phase in ["connect", "request sent", "first byte", "total"] {
        assert!(line.contains(phase), "{line}");
    }
}

//! Pools from the running HAProxy (`--haproxy-socket`): Debian's HAProxy 2.6
//! with server lines, a `server-template`, a server added at runtime and
//! one put in maintenance, read through a socket at `level user` (the
//! admin socket is only the tests' own setup); what HAProxy believes held
//! against what the check finds; a socket that is not HAProxy's.

use crate::common::fault::{FaultServer, Step::*};
use crate::common::haproxy::{Runtime, SLACK};
use crate::common::*;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `backend/server` → the object of its outcome.
fn by_server(objects: &[serde_json::Value]) -> HashMap<String, &serde_json::Value> {
    objects
        .iter()
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["backend"].as_str().unwrap(),
                    o["server"].as_str().unwrap()
                ),
                o,
            )
        })
        .collect()
}

fn conf(dir: &TempDir, text: &str) -> String {
    let path = dir.path().join("icap-check.conf");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// Two server lines, a `server-template` of three slots and a server added
/// at runtime: all six found at their addresses and checked, through the
/// `level user` socket (UNIX and TCP). One in maintenance is listed and
/// not probed: its c-icap sees no request until it is ready again.
#[test]
fn six_servers_of_every_kind_found_and_one_in_maint_not_probed() {
    let main = CIcap::start();
    let other = CIcap::start();
    let rt = Runtime::start(&format!(
        "backend icap_pool\n    server s1 127.0.0.1:{a} check inter 1s\n    \
         server s2 127.0.0.1:{b} check inter 1s\n    \
         server-template slot 3 127.0.0.1:{a} check inter 1s\n",
        a = main.port,
        b = other.port
    ));
    rt.admin(
        &format!(
            "add server icap_pool/dyn1 127.0.0.1:{} check inter 1s",
            main.port
        ),
        "New server registered",
    );
    rt.admin("enable server icap_pool/dyn1", "");
    rt.admin("enable health icap_pool/dyn1", "");
    rt.admin("set server icap_pool/s2 state maint", "");
    // The socket icap-check reads refuses what needs more than level user.
    let mut user = std::os::unix::net::UnixStream::connect(&rt.user_sock).unwrap();
    user.write_all(b"show cli level\n").unwrap();
    let mut level = String::new();
    user.read_to_string(&mut level).unwrap();
    assert_eq!(level, "user\n\n");
    rt.haproxy
        .wait_for("six servers, s2 in MAINT, the others UP", SLACK, |s| {
            s.len() == 6
                && s["icap_pool/s2"]["status"] == "MAINT"
                && s.iter()
                    .all(|(n, r)| n == "icap_pool/s2" || r["status"] == "UP")
        });
    let dir = TempDir::new("rt-six");
    let conf = conf(&dir, "defaults\n    service echo\n");

    for socket in [rt.user_path(), format!("ipv4@{}", rt.user_tcp)] {
        let out = run(
            &[
                "--haproxy-socket",
                &socket,
                "--config",
                &conf,
                "--format",
                "json",
            ],
            &[],
        );
        assert_eq!(code(&out), 0, "{socket}: {}{}", stdout(&out), stderr(&out));
        let objects = json_lines(&out);
        let seen = by_server(&objects);
        let mut names: Vec<&str> = seen.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "icap_pool/dyn1",
                "icap_pool/s1",
                "icap_pool/s2",
                "icap_pool/slot1",
                "icap_pool/slot2",
                "icap_pool/slot3"
            ],
            "{socket}"
        );
        for (name, o) in &seen {
            if name == "icap_pool/s2" {
                assert_eq!(o["haproxy_state"], "MAINT");
                assert_eq!(o["healthy"], serde_json::Value::Null);
                assert_eq!(o["reason"], "not probed: HAProxy has it in MAINT");
            } else {
                assert_eq!(o["haproxy_state"], "UP", "{name}");
                assert_eq!(o["healthy"], true, "{name}: {o}");
                assert_eq!(
                    o["target"],
                    format!("icap://127.0.0.1:{}/echo", main.port),
                    "{name}"
                );
            }
        }
    }
    // Not one ICAP request reached the server in maintenance.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(other.access_log(), "", "s2 was probed while in MAINT");

    let out = run(
        &["--haproxy-socket", &rt.user_path(), "--config", &conf],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("SKIP  HAProxy MAINT  icap_pool/s2 ")
            && text.contains("6 targets: 5 healthy, 0 failed, 1 not probed (MAINT)"),
        "{text}"
    );

    // Ready again: probed again.
    rt.admin("set server icap_pool/s2 state ready", "");
    let out = run(
        &[
            "--haproxy-socket",
            &rt.user_path(),
            "--config",
            &conf,
            "--backend",
            "icap_pool",
        ],
        &[],
    );
    assert!(
        stdout(&out).contains("6 targets: 6 healthy, 0 failed"),
        "{}",
        stdout(&out)
    );
    let until = Instant::now() + SLACK;
    while !other.access_log().contains("OPTIONS") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        other.access_log().contains("OPTIONS"),
        "s2 not probed once ready"
    );
    rt.haproxy.stop();
}

/// ICAP 200 wrapping HTTP 403, to every RESPMOD (HAProxy's TCP check only
/// connects, and keeps the server UP).
fn wraps_403() -> FaultServer {
    let http = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    let reply = format!(
        "ICAP/1.0 200 OK\r\nISTag: \"fault-1\"\r\nEncapsulated: res-hdr=0, null-body={}\r\n\r\n{http}",
        http.len()
    );
    FaultServer::start(vec![
        ReadHead,
        ReadUntil(b"\r\n0\r\n\r\n".to_vec()),
        Write(reply.into_bytes()),
        Close,
    ])
}

/// HAProxy's plain TCP check keeps a server UP whose ICAP service answers
/// 200 wrapping HTTP 403: the run exits 1 and names it. A server HAProxy
/// has DOWN that fails is no news (exit 0 for that backend alone); one it
/// has DOWN that passes is named too.
#[test]
fn haproxy_sends_traffic_to_a_broken_server() {
    let good = CIcap::start();
    let broken = wraps_403();
    let closed = free_port();
    let rt = Runtime::start(&format!(
        "backend icap_pool\n    default-server check inter 1s fall 1 rise 1\n    \
         server good 127.0.0.1:{g}\n    server broken 127.0.0.1:{f}\n\
         backend standby\n    default-server check inter 1s fall 1 rise 1\n    \
         server dead 127.0.0.1:{closed}\n    server back 127.0.0.1:{g}\n",
        g = good.port,
        f = broken.port(),
    ));
    // `back` works, but HAProxy is told it is DOWN and keeps it so.
    rt.admin("disable health standby/back", "");
    rt.admin("set server standby/back health down", "");
    rt.haproxy.wait_for(
        "good and broken UP by HAProxy's TCP check, dead and back DOWN",
        Duration::from_secs(3) + SLACK,
        |s| {
            s.len() == 4
                && s["icap_pool/good"]["status"] == "UP"
                && s["icap_pool/broken"]["status"] == "UP"
                && s["icap_pool/broken"]["check_status"].ends_with("L4OK")
                && s["standby/dead"]["status"] == "DOWN"
                && s["standby/back"]["status"] == "DOWN"
        },
    );
    let dir = TempDir::new("rt-disagree");
    let conf = conf(
        &dir,
        "defaults\n    service echo\n    method respmod\n    preview off\n",
    );
    let user = rt.user_path();
    let args = |extra: &[&str]| {
        let mut a = vec!["--haproxy-socket", user.as_str(), "--config", conf.as_str()];
        a.extend_from_slice(extra);
        run(&a, &[])
    };

    let out = args(&[]);
    let text = stdout(&out);
    // Shown with --nocapture: what the README's example is.
    eprintln!("{text}");
    assert_eq!(code(&out), 1, "{text}{}", stderr(&out));
    let row = |server: &str| {
        text.lines()
            .find(|l| l.contains(&format!(" {server} ")))
            .unwrap_or_else(|| panic!("no row for {server}: {text}"))
            .to_string()
    };
    assert!(
        row("icap_pool/good").starts_with("OK    HAProxy UP "),
        "{text}"
    );
    assert!(
        row("icap_pool/broken").starts_with("FAIL  HAProxy UP "),
        "{text}"
    );
    assert!(
        row("standby/dead").starts_with("FAIL  HAProxy DOWN "),
        "{text}"
    );
    assert!(
        row("standby/back").starts_with("OK    HAProxy DOWN "),
        "{text}"
    );
    assert!(
        text.contains(
            "HAProxy sends traffic to a failing server: icap_pool/broken HAProxy: UP, check: \
             RESPMOD unhealthy: ICAP 200 wraps HTTP 403 Forbidden (exit 1)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "HAProxy has DOWN a server that passes: standby/back HAProxy: DOWN, check: RESPMOD "
        ),
        "{text}"
    );
    assert!(
        !text.contains(": standby/dead"),
        "an expected failure is no disagreement: {text}"
    );

    // The DOWN server failing alone does not fail the run.
    let out = args(&["--backend", "standby"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).contains(
            "2 targets: 1 healthy, 1 failed (exit 0: HAProxy sends the failing ones no traffic)"
        ),
        "{}",
        stdout(&out)
    );

    let out = args(&["--format", "nagios"]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    let first = stdout(&out).lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with("ICAP CRITICAL - 2 of 4 targets healthy; HAProxy sends traffic to a failing server: icap_pool/broken; HAProxy has DOWN a server that passes: standby/back |"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("[OK] standby/dead HAProxy: DOWN, check: RESPMOD cannot connect"),
        "{}",
        stdout(&out)
    );

    let out = args(&["--format", "json"]);
    let objects = json_lines(&out);
    let seen = by_server(&objects);
    assert_eq!(
        seen["icap_pool/broken"]["disagreement"],
        "failing_in_service"
    );
    assert_eq!(seen["standby/back"]["disagreement"], "passing_while_down");
    assert_eq!(
        seen["standby/dead"]["disagreement"],
        serde_json::Value::Null
    );
    assert_eq!(seen["standby/dead"]["exit_code"], 3);

    let out = args(&["--format", "prometheus"]);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("icap_check_haproxy_state{")
                && l.contains("server=\"broken\"")
                && l.ends_with(",state=\"UP\"} 1")),
        "{text}"
    );
    rt.haproxy.stop();
}

/// A forwarder from a UNIX socket to a TCP port (HAProxy's `unix@` server
/// in front of c-icap), stopped on drop.
struct UnixForward(Child);

impl UnixForward {
    fn start(path: &Path, to_port: u16) -> UnixForward {
        let child = Command::new("/usr/bin/socat")
            .arg(format!("UNIX-LISTEN:{},fork", path.display()))
            .arg(format!("TCP:127.0.0.1:{to_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat (tests/run installs it)");
        let until = Instant::now() + Duration::from_secs(5);
        while !path.exists() {
            assert!(Instant::now() < until, "socat did not listen on {path:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        UnixForward(child)
    }
}

impl Drop for UnixForward {
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}

/// The runtime API shows a `unix@` server's address as `-`: its path comes
/// from haproxy.cfg when given, else that server alone fails, saying so.
#[test]
fn a_unix_server_takes_its_path_from_haproxy_cfg() {
    let icap = CIcap::start();
    let dir = TempDir::new("rt-unix");
    let path = dir.path().join("icap.sock");
    let _forward = UnixForward::start(&path, icap.port);
    let rt = Runtime::start(&format!(
        "backend unix_pool\n    server u1 unix@{} check inter 1s\n    \
         server t1 127.0.0.1:{} check inter 1s\n",
        path.display(),
        icap.port
    ));
    let conf = conf(&dir, "defaults\n    service echo\n");
    let user = rt.user_path();
    let out = run(&["--haproxy-socket", &user, "--config", &conf], &[]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("unix_pool/u1")
            && text.contains(
                "address not readable from the runtime API (a unix@ server?): give --haproxy-cfg"
            ),
        "{text}"
    );
    assert!(text.contains("OK    HAProxy UP  unix_pool/t1"), "{text}");

    let cfg = rt.cfg.to_string_lossy().into_owned();
    let out = run(
        &[
            "--haproxy-socket",
            &user,
            "--haproxy-cfg",
            &cfg,
            "--backend",
            "unix_pool",
            "--config",
            &conf,
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!("unix:{} icap://localhost/echo", path.display())),
        "{}",
        stdout(&out)
    );
    // haproxy.cfg marks no backend `option external-check`: say how to choose.
    let out = run(&["--haproxy-socket", &user, "--haproxy-cfg", &cfg], &[]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("name the backends to check with --backend"),
        "{}",
        stderr(&out)
    );
    rt.haproxy.stop();
}

/// `--send-state` over HTTP: the header as HAProxy writes it, from the
/// runtime API; and in the HAProxy form from its variables.
#[test]
fn send_state_tells_the_server_what_haproxy_believes() {
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec();
    let web = FaultServer::start(vec![ReadHead, Write(ok), Close]);
    let rt = Runtime::start(&format!(
        "backend web\n    server w1 127.0.0.1:{} check inter 1s weight 3\n",
        web.port()
    ));
    let node = rt
        .haproxy
        .api("show info")
        .lines()
        .find_map(|l| l.strip_prefix("node: ").map(str::to_string))
        .expect("show info has a node");
    let out = run(
        &[
            "--probe",
            "http",
            "--send-state",
            "--haproxy-socket",
            &rt.user_path(),
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let out = run(
        &[
            "--probe",
            "http",
            "--send-state",
            "NOT_USED",
            "NOT_USED",
            "127.0.0.1",
            &web.port().to_string(),
        ],
        &[
            ("HAPROXY_PROXY_NAME", "web"),
            ("HAPROXY_SERVER_NAME", "w1"),
            ("HAPROXY_SERVER_CURCONN", "2"),
            ("HAPROXY_SERVER_MAXCONN", "50"),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    rt.haproxy.stop();
    let headers: Vec<String> = web
        .finish()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.received).into_owned())
        .filter(|r| r.starts_with("GET "))
        .filter_map(|r| {
            r.lines().find_map(|l| {
                l.strip_prefix("x-haproxy-server-state: ")
                    .map(str::to_string)
            })
        })
        .collect();
    let port = web_port_text(&headers);
    assert_eq!(
        headers,
        [
            format!("UP; address=127.0.0.1; port={port}; name=web/w1; node={node}; weight=3/3; scur=0/0; qcur=0"),
            format!("address=127.0.0.1; port={port}; name=web/w1; node={node}; scur=2/50"),
        ]
    );
}

/// The port both headers name (the fault server's, read back).
fn web_port_text(headers: &[String]) -> String {
    headers
        .first()
        .and_then(|h| h.split("port=").nth(1))
        .and_then(|p| p.split(';').next())
        .unwrap_or_default()
        .to_string()
}

/// A socket that is not HAProxy's runtime API is the run's error (exit 2),
/// said clearly; nothing is probed; a silent one ends at the 3 s deadline.
#[test]
fn a_socket_that_is_not_haproxys_is_a_clear_usage_error() {
    let dir = TempDir::new("rt-bad");
    let file = dir.path().join("haproxy.cfg");
    std::fs::write(&file, "global\n").unwrap();
    let gone = dir.path().join("gone.sock");
    drop(UnixListener::bind(&gone).unwrap());
    let serve = |name: &str, answer: &'static [u8], hold: bool| {
        let path = dir.path().join(name);
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for mut c in listener.incoming().flatten() {
                let mut buf = [0; 256];
                let _ = c.read(&mut buf);
                let _ = c.write_all(answer);
                if hold {
                    std::thread::sleep(Duration::from_secs(10));
                }
            }
        });
        path.to_string_lossy().into_owned()
    };
    let garbage = serve("garbage.sock", b"\x1b[2J220 mail.example ESMTP\r\n", false);
    let unknown = serve(
        "unknown.sock",
        b"Unknown command, but maybe one of the following ones is a better match:\n  help\n\n",
        false,
    );
    let huge_row = serve(
        "short.sock",
        b"1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight \
          srv_iweight srv_time_since_last_change srv_check_status srv_check_result \
          srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id \
          srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr \
          srv_agent_port\n2 b 1 s 127.0.0.1 2 0 1 1 5 6 3 4 6 0 0 0 - 1344 - 0 0 - - 0 extra\n\n",
        false,
    );
    let silent = serve("silent.sock", b"1\n", true);
    let refused_tcp = format!("ipv4@127.0.0.1:{}", free_port());
    let cases: [(&str, &str); 8] = [
        (file.to_str().unwrap(), "is a regular file, not a UNIX socket"),
        (dir.path().to_str().unwrap(), "is a directory, not a UNIX socket"),
        (gone.to_str().unwrap(), "cannot connect: connection refused"),
        (&refused_tcp, "cannot connect: connection refused"),
        (&garbage, "not HAProxy's answer to 'show servers state': it begins '\\x1b[2J220 mail.example ESMTP'"),
        (&unknown, "'show servers state' is an unknown command there"),
        (&huge_row, "line 3: 26 fields for 25 columns"),
        (&silent, "timeout while reading the response"),
    ];
    for (socket, says) in cases {
        let started = Instant::now();
        let out = run(&["--haproxy-socket", socket, "--service", "echo"], &[]);
        let took = started.elapsed();
        assert_eq!(code(&out), 2, "{socket}: {}{}", stdout(&out), stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("icap-check: HAProxy's runtime API at ") && err.contains(says),
            "{socket}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(stdout(&out), "");
        assert!(took < Duration::from_secs(3) + SLACK, "{socket}: {took:?}");
    }
    let out = run(
        &["--haproxy-socket", &garbage, "icap://127.0.0.1/echo"],
        &[],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("give no targets"), "{}", stderr(&out));
    let out = run(&["--haproxy-socket", "tcp@127.0.0.1:1"], &[]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("invalid runtime API address"),
        "{}",
        stderr(&out)
    );
}

/// A resident icap-check, stopped however its test ends.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` from the resident mode's metrics listener.
fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// The resident mode reads the running HAProxy's pool again every
/// `--haproxy-refresh`: a server added at runtime is checked, one put in
/// MAINT and deleted is dropped, one moved is checked at its new address,
/// and a socket that stops answering keeps the servers read before, said
/// once on stderr.
#[test]
fn the_resident_mode_follows_the_running_pool() {
    let main = CIcap::start();
    let other = CIcap::start();
    let rt = Runtime::start(&format!(
        "backend icap_pool\n    server s1 127.0.0.1:{a}\n    server s2 127.0.0.1:{a}\n",
        a = main.port
    ));
    let dir = TempDir::new("rt-resident");
    let conf = conf(&dir, "defaults\n    service echo\n");
    let metrics = format!("127.0.0.1:{}", free_port());
    let err_path = dir.path().join("stderr");
    let mut child = Stopped(
        Command::new(BIN)
            .args([
                "--haproxy-socket",
                &rt.user_path(),
                "--config",
                &conf,
                "--metrics-listen",
                &metrics,
                "--interval",
                "200ms",
                "--haproxy-refresh",
                "300ms",
            ])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let success = |server: &str, port: u16| {
        format!(
            "probe_success{{target=\"icap://127.0.0.1:{port}/echo\",backend=\"icap_pool\",server=\"{server}\",probe=\"OPTIONS\"}} 1\n"
        )
    };
    let wait = |what: &str, ok: &dyn Fn(&str) -> bool| {
        let until = Instant::now() + SLACK;
        loop {
            let text = http_get(&metrics, "/metrics");
            if ok(&text) {
                return;
            }
            if Instant::now() > until {
                panic!(
                    "{what}:\n{text}\n{}",
                    std::fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("s1 and s2 checked", &|t| {
        t.contains(&success("s1", main.port)) && t.contains(&success("s2", main.port))
    });

    rt.admin(
        &format!("add server icap_pool/dyn1 127.0.0.1:{}", main.port),
        "New server registered",
    );
    rt.admin("enable server icap_pool/dyn1", "");
    wait("a server added at runtime checked", &|t| {
        t.contains(&success("dyn1", main.port))
    });

    rt.admin("set server icap_pool/s2 state maint", "");
    rt.admin("del server icap_pool/s2", "Server deleted");
    wait("a deleted server dropped", &|t| {
        t.contains("server=\"dyn1\"") && !t.contains("server=\"s2\"")
    });

    rt.admin(
        &format!("set server icap_pool/s1 addr 127.0.0.1 port {}", other.port),
        "",
    );
    wait("a moved server checked at its new address", &|t| {
        t.contains(&success("s1", other.port))
            && !t.contains(&format!(
                "{}/echo\",backend=\"icap_pool\",server=\"s1\"",
                main.port
            ))
    });

    // HAProxy gone: the servers read before are still checked (and now
    // fail), and the failed reads are said once.
    rt.haproxy.stop();
    std::thread::sleep(Duration::from_millis(1500));
    let text = http_get(&metrics, "/metrics");
    assert!(
        text.contains("server=\"s1\"") && text.contains("server=\"dyn1\""),
        "{text}"
    );
    // A socket that accepts and never answers: a refresh now waits out its
    // 3 s deadline, and SIGTERM still ends the process at once.
    // (HAProxy's directory went with it.)
    std::fs::create_dir_all(rt.user_sock.parent().unwrap()).unwrap();
    let silent = UnixListener::bind(&rt.user_sock).expect("bind the silent socket");
    silent.set_nonblocking(true).unwrap();
    let until = Instant::now() + SLACK;
    let _held = loop {
        if let Ok((held, _)) = silent.accept() {
            break held;
        }
        assert!(Instant::now() < until, "no refresh came");
        std::thread::sleep(Duration::from_millis(10));
    };
    let asked = Instant::now();
    terminate(&mut child.0);
    let took = asked.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "SIGTERM during a refresh took {took:?}"
    );
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(err.contains("stopping; agent replies"), "{err}");
    assert_eq!(
        err.matches("cannot read HAProxy's pool again").count(),
        1,
        "{err}"
    );
    assert!(
        err.contains(
            "HAProxy's pool changed: 3 targets; new or changed: icap_pool/dyn1; gone: none"
        ),
        "{err}"
    );
    assert!(err.contains("gone: icap_pool/s2"), "{err}");
}

//! End to end: Debian's HAProxy 2.6 runs icap-check as its external check
//! against real c-icap servers; server states are read from HAProxy's
//! runtime API and exit codes from its log. HAProxy passes the check no
//! arguments, so every setting comes from `icap-check.conf` beside it.
//!
//! The tests run in parallel, each with its own HAProxy and servers; every
//! bound asserted is the one HAProxy's settings imply plus a generous slack.

use crate::common::haproxy::*;
use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn conf(extra: &str) -> String {
    format!(
        "# written by tests/haproxy.rs\ndefaults\n    service echo\n    timeout {}ms\n{extra}",
        CHECK_TIMEOUT.as_millis()
    )
}

fn local(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// No healthy run may ever be killed by HAProxy: the check's own deadline
/// ends it first. HAProxy logs `External check timeout` only when the kill
/// changes a server's state, but `[WARNING] (PID) : kill CHILD` every time.
fn assert_no_external_timeout(log: &str) {
    assert!(
        !log.contains("External check timeout") && !log.contains(") : kill "),
        "HAProxy had to kill a check:\n{log}"
    );
}

/// Three servers; one c-icap stops, its server goes DOWN with exit code 3 in
/// HAProxy's log while the others stay UP; it starts again and comes back UP.
#[test]
fn server_goes_down_and_up_with_its_exit_code_logged() {
    let mut icaps: Vec<CIcap> = (0..3).map(|_| CIcap::start()).collect();
    let haproxy = HAProxy::start(Setup {
        binary: Path::new(BIN),
        check_conf: &conf(""),
        backends: vec![Backend {
            name: "icap_pool",
            servers: icaps
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("icap0{}", i + 1), local(c.port)))
                .collect(),
        }],
        chroot: false,
        wrapper: false,
    });
    let t = TIMING;
    // HAProxy starts servers UP; PROCOK says a check has passed since.
    haproxy.wait_for(
        "all three servers UP after a passing check",
        t.inter * 2 + SLACK,
        |s| s.len() == 3 && s.values().all(is_up),
    );

    icaps[1].stop();
    let bound = t.inter * t.fall + CHECK_TIMEOUT + SLACK;
    let took = haproxy.wait_for("icap02 DOWN after its c-icap stopped", bound, |s| {
        is_down(&s["icap_pool/icap02"])
    });
    let servers = haproxy.servers();
    for other in ["icap_pool/icap01", "icap_pool/icap03"] {
        assert!(is_up(&servers[other]), "{}", summary(&servers));
    }
    assert_eq!(check_status(&servers["icap_pool/icap02"]), "PROCERR");
    eprintln!("DOWN after {took:?} (bound {bound:?})");
    let log = haproxy.log();
    assert!(
        log.contains("Server icap_pool/icap02 is DOWN, reason: External check error, code: 3,"),
        "no exit code 3 for the closed port in HAProxy's log:\n{log}"
    );
    // The check's own line reaches HAProxy's stderr too.
    assert!(
        log.contains("icap-check: icap_pool/icap02 icap://127.0.0.1:")
            && log.contains("cannot connect: connection refused"),
        "{log}"
    );

    icaps[1].restart();
    let bound = t.inter * t.rise + SLACK;
    let took = haproxy.wait_for("icap02 UP after its c-icap restarted", bound, |s| {
        s.values().all(is_up)
    });
    eprintln!("UP again after {took:?} (bound {bound:?})");
    let log = haproxy.stop();
    assert!(log.contains("Server icap_pool/icap02 is UP"), "{log}");
    for never_down in ["icap01", "icap03"] {
        assert!(
            !log.contains(&format!("Server icap_pool/{never_down} is DOWN")),
            "{log}"
        );
    }
    assert_no_external_timeout(&log);
}

/// A wrapper script that drops its arguments (`exec icap-check`, no "$@")
/// still checks the server HAProxy means: its address and port come from
/// HAPROXY_SERVER_ADDR/PORT. UP, then DOWN when its c-icap stops.
#[test]
fn a_wrapper_that_drops_the_arguments_still_checks_the_right_server() {
    let mut icap = CIcap::start();
    let haproxy = HAProxy::start(Setup {
        binary: Path::new(BIN),
        check_conf: &conf(""),
        backends: vec![Backend {
            name: "icap_pool",
            servers: vec![("icap01".into(), local(icap.port))],
        }],
        chroot: false,
        wrapper: true,
    });
    let t = TIMING;
    haproxy.wait_for("icap01 UP through the wrapper", t.inter * 2 + SLACK, |s| {
        s.values().all(is_up) && s.len() == 1
    });
    icap.stop();
    haproxy.wait_for(
        "icap01 DOWN through the wrapper after its c-icap stopped",
        t.inter * t.fall + CHECK_TIMEOUT + SLACK,
        |s| is_down(&s["icap_pool/icap01"]),
    );
    let log = haproxy.stop();
    assert!(
        log.contains("Server icap_pool/icap01 is DOWN, reason: External check error, code: 3,"),
        "{log}"
    );
    assert_no_external_timeout(&log);
}

/// One binary and one config file, two backends checked differently: OPTIONS
/// on one, RESPMOD with the embedded PDF on the other. Each backend has its
/// own c-icap, whose access log shows the methods it received.
#[test]
fn two_backends_one_config_file_options_and_respmod() {
    let options_icap = CIcap::start();
    let respmod_icap = CIcap::start();
    let haproxy = HAProxy::start(Setup {
        binary: Path::new(BIN),
        check_conf: &conf("backend scan_pool\n    method respmod\n"),
        backends: vec![
            Backend {
                name: "options_pool",
                servers: vec![("a".into(), local(options_icap.port))],
            },
            Backend {
                name: "scan_pool",
                servers: vec![("b".into(), local(respmod_icap.port))],
            },
        ],
        chroot: false,
        wrapper: false,
    });
    let within = TIMING.inter * 2 + SLACK;
    haproxy.wait_for("both servers UP after a passing check", within, |s| {
        s.len() == 2 && s.values().all(is_up)
    });
    // c-icap may write its access log after answering: poll it too.
    let until = Instant::now() + within;
    while !respmod_icap.access_log().contains("RESPMOD") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = haproxy.stop();
    let options_log = options_icap.access_log();
    let respmod_log = respmod_icap.access_log();
    assert!(options_log.contains("OPTIONS"), "{options_log}");
    assert!(
        !options_log.contains("RESPMOD") && !options_log.contains("REQMOD"),
        "{options_log}"
    );
    assert!(respmod_log.contains("RESPMOD"), "{respmod_log}");
    assert_no_external_timeout(&log);
}

/// A forwarder from `listen` to c-icap, stopped on drop.
struct Socat(Child);

impl Socat {
    fn start(listen: &str, to_port: u16) -> Socat {
        assert!(
            Path::new("/usr/bin/socat").exists(),
            "/usr/bin/socat is missing: run tests/run, which installs it"
        );
        let child = Command::new("/usr/bin/socat")
            .arg(listen)
            .arg(format!("TCP:127.0.0.1:{to_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat");
        Socat(child)
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}

fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < until, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// HAProxy hands the check a bare `::1` and a socket path with port
/// NOT_USED. Servers at a closed IPv6 port and a missing socket go DOWN with
/// code 3, which proves the check connects where HAProxy says; a server that
/// never answers goes DOWN with code 4, not killed by HAProxy.
#[test]
fn ipv6_and_unix_socket_servers() {
    let icap = CIcap::start();
    let dir = TempDir::new("forwarders");
    let v6_port = free_port_v6();
    let _v6 = Socat::start(
        &format!("TCP6-LISTEN:{v6_port},bind=[::1],reuseaddr,fork"),
        icap.port,
    );
    let sock: PathBuf = dir.path().join("icap.sock");
    let _unix = Socat::start(&format!("UNIX-LISTEN:{},fork", sock.display()), icap.port);
    let v6_addr: std::net::SocketAddr = format!("[::1]:{v6_port}").parse().unwrap();
    wait_until("socat did not listen on [::1]", || {
        wait_for_port(v6_addr, Duration::from_millis(100))
    });
    wait_until("socat did not create its UNIX socket", || sock.exists());

    let closed_v6 = free_port_v6();
    let missing_sock = dir.path().join("nobody.sock");
    let silent_port = silent_server();
    let haproxy = HAProxy::start(Setup {
        binary: Path::new(BIN),
        check_conf: &conf(""),
        backends: vec![Backend {
            name: "icap_pool",
            servers: vec![
                ("v6".into(), format!("[::1]:{v6_port}")),
                ("unix".into(), format!("unix@{}", sock.display())),
                ("v6_closed".into(), format!("[::1]:{closed_v6}")),
                (
                    "unix_missing".into(),
                    format!("unix@{}", missing_sock.display()),
                ),
                ("silent".into(), local(silent_port)),
            ],
        }],
        chroot: false,
        wrapper: false,
    });
    let within = TIMING.inter * 2 + CHECK_TIMEOUT + SLACK;
    haproxy.wait_for(
        "v6 and unix UP, v6_closed, unix_missing and silent DOWN",
        within,
        |s| {
            is_up(&s["icap_pool/v6"])
                && is_up(&s["icap_pool/unix"])
                && is_down(&s["icap_pool/v6_closed"])
                && is_down(&s["icap_pool/unix_missing"])
                && is_down(&s["icap_pool/silent"])
        },
    );
    let log = haproxy.stop();
    // A server that accepts and never answers: the check's own deadline
    // (below inter) ends it with code 4 before HAProxy would kill it.
    assert!(
        log.contains("Server icap_pool/silent is DOWN, reason: External check error, code: 4,"),
        "{log}"
    );
    assert_no_external_timeout(&log);
    for down in ["v6_closed", "unix_missing"] {
        assert!(
            log.contains(&format!(
                "Server icap_pool/{down} is DOWN, reason: External check error, code: 3,"
            )),
            "{log}"
        );
    }
    assert!(
        log.contains(&format!(
            "icap-check: icap_pool/v6_closed icap://[::1]:{closed_v6}/echo"
        )),
        "{log}"
    );
    assert!(
        !log.contains("Server icap_pool/v6 is DOWN")
            && !log.contains("Server icap_pool/unix is DOWN"),
        "{log}"
    );
    // Both forwarders reached the one c-icap.
    assert!(
        icap.access_log().lines().count() >= 2,
        "{}",
        icap.access_log()
    );
}

/// A loopback port that accepts connections and never answers (a hung
/// ICAP server); the listener lives as long as the test process.
fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    port
}

fn free_port_v6() -> u16 {
    let l = std::net::TcpListener::bind("[::1]:0").expect("bind [::1]:0 (no IPv6 on lo?)");
    l.local_addr().expect("local addr").port()
}

/// The static build in HAProxy's chroot, a directory holding nothing but the
/// binary and its `.conf`: a RESPMOD with the embedded sample passes.
#[test]
fn chroot_holding_only_the_static_binary_and_its_conf() {
    let static_bin = static_binary();
    // Alone in an empty root: no loader, no libraries, no /etc, no /dev.
    let empty = TempDir::new("empty-root");
    std::fs::copy(&static_bin, empty.path().join("icap-check")).expect("copy static binary");
    let out = Command::new("/usr/sbin/chroot")
        .arg(empty.path())
        .args(["/icap-check", "--version"])
        .env_clear()
        .output()
        .expect("run chroot (the chroot tests need root, as HAProxy's chroot does)");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("icap-check {}\n", env!("CARGO_PKG_VERSION")),
        "in an empty chroot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let icap = CIcap::start();
    let closed = free_port();
    let haproxy = HAProxy::start(Setup {
        binary: &static_bin,
        check_conf: &conf("    method respmod\n"),
        backends: vec![Backend {
            name: "icap_pool",
            servers: vec![
                ("icap01".into(), local(icap.port)),
                ("closed".into(), local(closed)),
            ],
        }],
        chroot: true,
        wrapper: false,
    });
    let jail = haproxy.check_bin.parent().unwrap().to_path_buf();
    let mut inside: Vec<String> = std::fs::read_dir(&jail)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    assert_eq!(inside, ["icap-check", "icap-check.conf"]);
    let within = TIMING.inter * 2 + CHECK_TIMEOUT + SLACK;
    haproxy.wait_for("icap01 UP and closed DOWN in the chroot", within, |s| {
        is_up(&s["icap_pool/icap01"]) && is_down(&s["icap_pool/closed"])
    });
    let until = Instant::now() + within;
    while !icap.access_log().contains("RESPMOD") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = haproxy.stop();
    // Exit code 3, not 255 (exec failed) nor 2 (no config found): the binary
    // ran and read its .conf inside the jail.
    assert!(
        log.contains("Server icap_pool/closed is DOWN, reason: External check error, code: 3,"),
        "{log}"
    );
    assert!(
        icap.access_log().contains("RESPMOD"),
        "{}",
        icap.access_log()
    );
    assert_no_external_timeout(&log);
}

/// Built by tests/run (packaging/build-static) before cargo test: cargo
/// cannot run inside a cargo test.
fn static_binary() -> PathBuf {
    let bin = Path::new(BIN);
    // BIN is <target>/<profile>/icap-check.
    let target = bin.parent().and_then(Path::parent).unwrap();
    let host = std::env::consts::ARCH.to_string() + "-unknown-linux-gnu";
    let path = target.join(host).join("release/icap-check");
    assert!(
        path.exists(),
        "{} is missing: run tests/run, which builds it with packaging/build-static",
        path.display()
    );
    let ldd = Command::new("ldd").arg(&path).output().expect("run ldd");
    let said =
        String::from_utf8_lossy(&ldd.stdout).into_owned() + &String::from_utf8_lossy(&ldd.stderr);
    assert!(
        said.contains("not a dynamic executable") || said.contains("statically linked"),
        "{} is not static: {said}",
        path.display()
    );
    path
}

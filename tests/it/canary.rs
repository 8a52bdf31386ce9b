//! The detection canary (`--canary`) against Debian's c-icap antivirus
//! service with ClamAV reading a signature database the test writes
//! (common::clamav), and against c-icap's echo service, which lets
//! everything through; the EICAR file absent from every build and from the
//! repository; and capacity (`Max-Connections` against HAProxy's maxconn)
//! against an in-test server.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::clamav::{AntivirusICap, Signatures, THREAT};
use crate::common::fault::{FaultServer, Step};
use crate::common::*;

fn json(out: &std::process::Output) -> serde_json::Value {
    let text = stdout(out);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Every check kind: OPTIONS (the canary as a RESPMOD), RESPMOD and REQMOD
/// with the preview from OPTIONS, a numeric one, and none.
const KINDS: [&[&str]; 6] = [
    &[],
    &["--method", "respmod"],
    &["--method", "reqmod"],
    &["--method", "respmod", "--preview", "16"],
    &["--method", "respmod", "--preview", "off"],
    &["--method", "reqmod", "--preview", "0"],
];

fn check(url: &str, kind: &[&str], extra: &[&str]) -> std::process::Output {
    let mut args: Vec<&str> = vec!["--canary", "--timeout", "10s"];
    args.extend_from_slice(kind);
    args.extend_from_slice(extra);
    args.push(url);
    run(&args, &[])
}

#[test]
fn caught_by_the_antivirus_is_healthy() {
    let av = AntivirusICap::start(Signatures::Eicar);
    for kind in KINDS {
        let out = check(&av.url("avscan"), kind, &[]);
        assert_eq!(code(&out), 0, "{kind:?}: {}{}", stdout(&out), stderr(&out));
        assert!(
            stdout(&out).contains(&format!("EICAR caught: {THREAT}")),
            "{kind:?}: {}",
            stdout(&out)
        );
    }
    let out = check(&av.url("avscan"), &[], &["--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let v = json(&out);
    assert_eq!(v["canary"]["caught"], true, "{v}");
    assert_eq!(v["canary"]["threat"], THREAT, "{v}");
    assert_eq!(v["canary"]["status"], 200, "{v}");
    assert_eq!(
        v["service"], "C-ICAP/0.5.10 server - Antivirus service",
        "{v}"
    );
    assert_eq!(v["options_ttl"], 3600, "{v}");
    // c-icap sends no Max-Connections.
    assert_eq!(v["max_connections"], serde_json::Value::Null, "{v}");
    let out = check(&av.url("avscan"), &[], &["--format", "prometheus"]);
    assert!(
        stdout(&out).contains("icap_canary_caught{target=\""),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("} 1\n"), "{}", stdout(&out));
    // Without --canary the check is what it was: one request, no canary field.
    let out = run(&["--format", "json", &av.url("avscan")], &[]);
    assert_eq!(json(&out)["canary"], serde_json::Value::Null);
}

/// The canary goes on the connection the server kept, when it kept it.
#[test]
fn the_connection_is_reused() {
    let av = AntivirusICap::start(Signatures::Eicar);
    for kind in [
        &[][..],
        &["--method", "respmod"],
        &["--method", "reqmod", "--preview", "off"],
    ] {
        let out = check(&av.url("avscan"), kind, &["-vv"]);
        assert_eq!(code(&out), 0, "{kind:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("canary: on the same connection"),
            "{kind:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn the_echo_service_lets_it_through() {
    let av = AntivirusICap::start(Signatures::Eicar);
    for kind in KINDS {
        let out = check(&av.url("echo"), kind, &[]);
        assert_eq!(code(&out), 1, "{kind:?}: {}", stdout(&out));
        assert!(
            stdout(&out).contains("unhealthy: EICAR test file passed undetected ("),
            "{kind:?}: {}",
            stdout(&out)
        );
    }
    let out = check(&av.url("echo"), &[], &["--format", "json"]);
    let v = json(&out);
    assert_eq!(v["canary"]["caught"], false, "{v}");
    assert_eq!(v["exit_code"], 1, "{v}");
    let out = check(&av.url("echo"), &[], &["--format", "nagios"]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("ICAP CRITICAL - ")
            && stdout(&out).contains("EICAR test file passed undetected"),
        "{}",
        stdout(&out)
    );
}

/// ClamAV without signatures: c-icap starts, every check without the
/// canary passes, and the service answers 204 to everything.
#[test]
fn an_antivirus_without_signatures_is_down() {
    let av = AntivirusICap::start(Signatures::Empty);
    let plain = run(&["--method", "respmod", &av.url("avscan")], &[]);
    assert_eq!(code(&plain), 0, "{}", stdout(&plain));
    for kind in KINDS {
        let out = check(&av.url("avscan"), kind, &[]);
        assert_eq!(code(&out), 1, "{kind:?}: {}", stdout(&out));
        assert!(
            stdout(&out).contains("EICAR test file passed undetected (204)"),
            "{kind:?}: {}",
            stdout(&out)
        );
    }
}

/// As HAProxy runs it: four arguments, its variables, `canary` in the
/// backend's section of the config file.
#[test]
fn haproxy_form_with_canary_in_the_config_file() {
    let dir = TempDir::new("canary-conf");
    let conf = dir.path().join("icap-check.conf");
    std::fs::write(
        &conf,
        "defaults\n    timeout 10s\nbackend av_pool\n    service avscan\n    method respmod\n    canary\n",
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    for (signatures, expected) in [(Signatures::Eicar, 0), (Signatures::Empty, 1)] {
        let av = AntivirusICap::start(signatures);
        let port = av.port.to_string();
        let env = [
            ("HAPROXY_PROXY_NAME", "av_pool"),
            ("HAPROXY_SERVER_NAME", "av01"),
            ("HAPROXY_SERVER_MAXCONN", "0"),
            ("HAPROXY_SERVER_CURCONN", "0"),
        ];
        let out = run(
            &["--config", conf, "NOT_USED", "NOT_USED", "127.0.0.1", &port],
            &env,
        );
        assert_eq!(code(&out), expected, "{signatures:?}: {}", stderr(&out));
        if expected == 0 {
            assert!(stderr(&out).is_empty(), "{}", stderr(&out));
        } else {
            assert_eq!(
                stderr(&out).trim(),
                format!(
                    "icap-check: av_pool/av01 icap://127.0.0.1:{port}/avscan RESPMOD: unhealthy: EICAR test file passed undetected (204) (exit 1)"
                )
            );
        }
        let explained = run(
            &[
                "--config",
                conf,
                "--explain",
                "NOT_USED",
                "NOT_USED",
                "127.0.0.1",
                &port,
            ],
            &env,
        );
        assert!(
            stdout(&explained)
                .contains("then the EICAR canary (68 bytes, built in memory) as a RESPMOD"),
            "{}",
            stdout(&explained)
        );
    }
}

/// The binaries as built by tests/run: debug (this test's), release, and
/// the static build the .deb ships.
fn built_binaries() -> Vec<PathBuf> {
    let bin = Path::new(BIN);
    let target = bin.parent().and_then(Path::parent).expect("target dir");
    let host = std::env::consts::ARCH.to_string() + "-unknown-linux-gnu";
    let all = vec![
        bin.to_path_buf(),
        target.join("release/icap-check"),
        target.join(host).join("release/icap-check"),
    ];
    for path in &all {
        assert!(
            path.exists(),
            "{} is missing: run tests/run, which builds it (cargo build --release, packaging/build-static)",
            path.display()
        );
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Scanners quarantine files holding the EICAR string: no build and no
/// file of the repository may hold it as its bytes.
#[test]
fn the_test_file_is_never_stored_as_its_bytes() {
    let file = icap_check::canary::eicar();
    assert_eq!(file.len(), icap_check::canary::LEN);
    // The first bytes alone are distinctive enough to find a partial copy.
    for path in built_binaries() {
        let bytes = std::fs::read(&path).expect("read the binary");
        assert!(
            !contains(&bytes, &file),
            "{} holds the EICAR file",
            path.display()
        );
        assert!(
            !contains(&bytes, &file[..20]),
            "{} holds its start",
            path.display()
        );
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .expect("git ls-files");
    assert!(listed.status.success());
    let mut read = 0;
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let path = Path::new(root).join(String::from_utf8_lossy(name).as_ref());
        if let Ok(bytes) = std::fs::read(&path) {
            read += 1;
            assert!(
                !contains(&bytes, &file),
                "{} holds the EICAR file",
                path.display()
            );
        }
    }
    assert!(read > 50, "only {read} files read");
}

/// An ICAP server whose OPTIONS says `Max-Connections: 10`; a RESPMOD
/// after it is answered 204.
fn limited_server() -> FaultServer {
    FaultServer::start(vec![
        Step::ReadHead,
        Step::Write(
            b"ICAP/1.0 200 OK\r\nMethods: RESPMOD, REQMOD\r\nService: Limited AV\r\nISTag: \"L1\"\r\n\
Max-Connections: 10\r\nOptions-TTL: 600\r\nAllow: 204\r\nEncapsulated: null-body=0\r\n\r\n"
                .to_vec(),
        ),
        Step::ReadUntil(b"\r\n0\r\n\r\n".to_vec()),
        Step::Write(b"ICAP/1.0 204 No Content\r\nISTag: \"L1\"\r\n\r\n".to_vec()),
        Step::Close,
    ])
}

fn haproxy_check(
    server: &FaultServer,
    maxconn: &str,
    curconn: &str,
    flags: &[&str],
) -> std::process::Output {
    let port = server.port().to_string();
    let mut args = vec!["--service", "av"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["NOT_USED", "NOT_USED", "127.0.0.1", &port]);
    run(
        &args,
        &[
            ("HAPROXY_PROXY_NAME", "av_pool"),
            ("HAPROXY_SERVER_NAME", "av01"),
            ("HAPROXY_SERVER_MAXCONN", maxconn),
            ("HAPROXY_SERVER_CURCONN", curconn),
        ],
    )
}

#[test]
fn maxconn_above_max_connections_warns() {
    let server = limited_server();
    let out = haproxy_check(&server, "50", "0", &["--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let v = json(&out);
    assert_eq!(v["max_connections"], 10, "{v}");
    assert_eq!(v["maxconn"], 50, "{v}");
    assert_eq!(v["options_ttl"], 600, "{v}");
    assert_eq!(v["service"], "Limited AV", "{v}");
    assert_eq!(
        v["capacity_warning"], "HAProxy's maxconn 50 exceeds the service's Max-Connections 10",
        "{v}"
    );
    let out = haproxy_check(&server, "50", "0", &["--format", "nagios"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("ICAP WARNING - ")
            && stdout(&out)
                .contains("HAProxy's maxconn 50 exceeds the service's Max-Connections 10"),
        "{}",
        stdout(&out)
    );
    let out = haproxy_check(&server, "50", "0", &["--format", "prometheus"]);
    assert!(
        stdout(&out).contains("icap_max_connections{"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("icap_capacity_exceeded{"),
        "{}",
        stdout(&out)
    );
    // Within the service's limit: nothing to say.
    let out = haproxy_check(&server, "10", "3", &["--format", "nagios"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let out = haproxy_check(&server, "50", "0", &["--explain"]);
    assert!(
        stdout(&out).contains("capacity reported: HAProxy's maxconn 50, curconn 0 against the service's Max-Connections from OPTIONS"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn require_capacity_fails_with_both_numbers() {
    let server = limited_server();
    let out = haproxy_check(&server, "50", "0", &["--require-capacity"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "unhealthy: HAProxy's maxconn 50 exceeds the service's Max-Connections 10 (exit 1)"
        ),
        "{}",
        stderr(&out)
    );
    let out = haproxy_check(&server, "10", "10", &["--require-capacity"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "HAProxy's current connections 10 have reached the service's Max-Connections 10"
        ),
        "{}",
        stderr(&out)
    );
    let out = haproxy_check(&server, "10", "9", &["--require-capacity"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // RESPMOD with the preview from OPTIONS learns it too.
    let out = haproxy_check(
        &server,
        "50",
        "0",
        &["--require-capacity", "--method", "respmod"],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    // A numeric preview sends no OPTIONS: capacity is unknown, and says so.
    let out = haproxy_check(
        &server,
        "50",
        "0",
        &["--method", "respmod", "--preview", "1024", "--explain"],
    );
    assert!(
        stdout(&out).contains("the service's Max-Connections unknown: no OPTIONS is sent"),
        "{}",
        stdout(&out)
    );
    let out = haproxy_check(
        &server,
        "50",
        "0",
        &[
            "--require-capacity",
            "--method",
            "respmod",
            "--preview",
            "1024",
        ],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--require-capacity needs the OPTIONS request"),
        "{}",
        stderr(&out)
    );
}

//! Nothing a server or an operator writes can forge a line: every text from
//! outside (a server's ISTag and reason, HAProxy's variables, names in
//! haproxy.cfg, what was typed) reaches stdout, stderr, Nagios, JSON,
//! Prometheus and syslog escaped: no control character, no Unicode format
//! character (bidi overrides and isolates, zero-width, BOM), no line or
//! paragraph separator, and in Nagios output no `|`.

use crate::common::fault::{FaultServer, Step};
use crate::common::*;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// What a hostile text carries: a newline with a fake syslog record after
/// it, an escape sequence, a right-to-left override, an isolate, a zero-width
/// space, a BOM, the line and paragraph separators, and Nagios' perfdata bar.
const HOSTILE: &str = "x\n<27>icap-check[1]: fake\x1b[31m\u{202E}\u{2066}\u{200B}\u{FEFF}\u{2028}\u{2029}| time=9s;;;0 evil=1";

/// The characters that must never come out raw.
fn raw_hidden(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c as u32, 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0xFEFF)
        })
        .collect()
}

fn assert_clean(what: &str, text: &str) {
    assert!(
        raw_hidden(text).is_empty(),
        "{what}: raw {:?} in {text:?}",
        raw_hidden(text)
    );
    assert!(
        !text.contains("\n<27>"),
        "{what}: a second record in {text:?}"
    );
}

/// A server whose ISTag and reason phrase carry the hostile text.
fn hostile_server() -> FaultServer {
    let escaped = HOSTILE.replace('\n', " ");
    let answer = format!(
        "ICAP/1.0 200 OK {escaped}\r\nMethods: RESPMOD\r\nISTag: \"{escaped}\"\r\nEncapsulated: null-body=0\r\n\r\n"
    );
    FaultServer::start(vec![Step::ReadHead, Step::Write(answer.into_bytes())])
}

#[test]
fn a_servers_text_is_escaped_in_every_format() {
    let server = hostile_server();
    let url = server.url();
    for format in ["human", "json", "nagios", "prometheus"] {
        let out = run(&["--format", format, &url, &url], &[]);
        assert_clean(format, &stdout(&out));
        assert_clean(format, &stderr(&out));
        if format == "nagios" {
            for line in stdout(&out).lines() {
                assert!(
                    line.matches('|').count() <= 1,
                    "a server wrote perfdata: {line}"
                );
            }
        }
        if format == "json" {
            for line in stdout(&out).lines() {
                let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
                assert!(
                    v["istag"].as_str().unwrap_or_default().contains("fake"),
                    "{line}"
                );
            }
        }
    }
    // One target, by hand and in HAProxy's form.
    let out = run(&["--format", "nagios", &url], &[]);
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    assert_eq!(stdout(&out).matches('|').count(), 1, "{}", stdout(&out));
    let out = run(&[&url], &[]);
    assert_clean("the one line", &stdout(&out));
}

/// HAProxy's variables and haproxy.cfg's names are the operator's text, and
/// are escaped as well: a newline in HAPROXY_PROXY_NAME cannot make a second
/// stderr line or a second syslog record.
#[test]
fn an_operators_names_are_escaped_on_stderr_and_in_syslog() {
    let dir = TempDir::new("escaping");
    let log = dir.path().join("log");
    let sock = UnixDatagram::bind(&log).expect("bind the syslog socket");
    sock.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let log = log.to_str().expect("utf-8 path");
    // Nothing listens on port 1.
    let closed = "1".to_string();
    let out = run(
        &[
            "--service",
            "echo",
            "--syslog",
            log,
            "NOT_USED",
            "NOT_USED",
            "127.0.0.1",
            &closed,
        ],
        &[
            ("HAPROXY_PROXY_NAME", HOSTILE),
            ("HAPROXY_SERVER_NAME", "s\r1"),
        ],
    );
    assert_eq!(code(&out), 3);
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert_clean("stderr", &stderr(&out));
    let mut record = [0u8; 4096];
    let n = sock.recv(&mut record).expect("a syslog record");
    let record = String::from_utf8_lossy(&record[..n]).into_owned();
    assert_clean("syslog", &record);
    // One record: the fake one is text inside it, after an escaped newline.
    assert!(
        record.starts_with("<27>icap-check[") && !record.contains('\n'),
        "{record}"
    );
    assert!(record.contains("x\\x0a<27>icap-check[1]: fake"), "{record}");

    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "backend b\x1b[2J\n option external-check\n server s\u{202E}1 127.0.0.1:{closed}\n"
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    for format in ["human", "nagios", "json", "prometheus"] {
        let out = run(
            &[
                "--haproxy-cfg",
                cfg,
                "--service",
                "echo",
                "--format",
                format,
            ],
            &[],
        );
        assert_clean(format, &stdout(&out));
    }
}

/// What was typed is quoted escaped in usage errors: one line.
#[test]
fn usage_errors_do_not_echo_control_characters() {
    for args in [
        vec!["--service", "echo\r\nX: y", "icap://127.0.0.1:1/"],
        vec!["--timeout", "1\x1b[31ms", "icap://127.0.0.1:1/echo"],
        vec!["icap://127.0.0.1:1\u{202E}/echo"],
        vec!["--method", "get\u{2028}", "icap://127.0.0.1:1/echo"],
    ] {
        let out = run(&args, &[]);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
        assert_clean("usage", &stderr(&out));
    }
}

//! Messages that say what happened, from the binary's own output: the
//! phase of a timeout, the variables and paths HAProxy's form refuses, a
//! config file's byte-order mark, what `--explain` notes.

use std::time::Duration;

use crate::common::fault::{FaultServer, Step};
use crate::common::tls::{tls_never_reads, Pki};
use crate::common::*;

/// HTTP headers sent one byte at a time are still the response's head: a
/// timeout there is "reading the response", not "the response body".
#[test]
fn slow_http_headers_time_out_reading_the_response() {
    let server = FaultServer::start(vec![
        Step::ReadHead,
        Step::Dribble {
            bytes: b"HTTP/1.1 200 OK\r\nX-Slow: abcdefghijklmnopqrstuvwxyz\r\n".to_vec(),
            every: Duration::from_millis(20),
        },
    ]);
    let url = format!("http://127.0.0.1:{}/", server.port());
    let out = run(&["--timeout", "400ms", &url], &[]);
    assert_eq!(code(&out), 4, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("timeout while reading the response (exit 4)"),
        "{}",
        stdout(&out)
    );
}

/// An HTTPS POST to a server that never reads: the request still waits in
/// rustls and the socket when the deadline passes, so the check was
/// sending, not reading (rustls flushes what it holds when asked to read).
#[test]
fn an_https_post_to_a_server_that_never_reads_times_out_sending() {
    let dir = TempDir::new("never-reads");
    let conf = dir.path().join("c.conf");
    // A config file takes what one command-line argument (128 KiB) cannot.
    std::fs::write(&conf, format!("defaults\n body {}\n", "x".repeat(3 << 20))).unwrap();
    let pki = Pki::new();
    let cert = pki.server("never-reads", 30);
    let server = tls_never_reads(&cert);
    let ca = pki.ca();
    let url = format!("https://127.0.0.1:{}/", server.port);
    let out = run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "--method",
            "post",
            "--timeout",
            "800ms",
            "--ca-file",
            ca.to_str().unwrap(),
            &url,
        ],
        &[],
    );
    assert_eq!(code(&out), 4, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("timeout while sending the request (exit 4)"),
        "{}",
        stdout(&out)
    );
}

/// HAProxy's variables are checked, not guessed: `ssl` is 1 or 0.
#[test]
fn haproxy_server_ssl_other_than_1_or_0_is_a_usage_error() {
    for value in ["yes", "true", "2"] {
        let out = run(
            &[
                "--service",
                "echo",
                "NOT_USED",
                "NOT_USED",
                "127.0.0.1",
                "1",
            ],
            &[("HAPROXY_SERVER_SSL", value)],
        );
        assert_eq!(code(&out), 2, "{value}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("HAPROXY_SERVER_SSL is '{value}': expected 1 or 0")),
            "{}",
            stderr(&out)
        );
    }
}

/// A socket path the kernel cannot take is the configuration's error (2),
/// not a server that cannot be reached (3).
#[test]
fn a_unix_path_too_long_is_a_usage_error() {
    let path = format!("/tmp/{}", "s".repeat(120));
    let out = run(
        &[
            "--service",
            "echo",
            "NOT_USED",
            "NOT_USED",
            &path,
            "NOT_USED",
        ],
        &[],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("UNIX socket path longer than 107 bytes"),
        "{}",
        stderr(&out)
    );
}

/// Port 0 (a server line without a port) probes the ICAP port, and says so;
/// arguments that disagree with HAProxy's variables win, and say so.
#[test]
fn explain_notes_what_was_decided_for_the_operator() {
    let out = run(
        &[
            "--explain",
            "--service",
            "echo",
            "NOT_USED",
            "NOT_USED",
            "10.0.0.5",
            "0",
        ],
        &[
            ("HAPROXY_SERVER_ADDR", "10.0.0.6"),
            ("HAPROXY_SERVER_PORT", "1344"),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("note:     port 0 (the server line gives none): checking the ICAP port 1344"),
        "{text}"
    );
    assert!(text.contains("the arguments win"), "{text}");
    assert!(text.contains("icap://10.0.0.5:1344/echo"), "{text}");
}

/// Editors on other systems start a file with a byte-order mark.
#[test]
fn a_config_file_with_a_byte_order_mark_is_read() {
    let dir = TempDir::new("bom");
    let conf = dir.path().join("c.conf");
    std::fs::write(
        &conf,
        "\u{feff}defaults\n    service echo\n    timeout 2s\n",
    )
    .unwrap();
    let out = run(
        &[
            "--explain",
            "--config",
            conf.to_str().unwrap(),
            "icap://127.0.0.1:1/",
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("settings: service=echo timeout=2s"),
        "{}",
        stdout(&out)
    );
}

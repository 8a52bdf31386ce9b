//! The binary against the real c-icap server (Debian package, echo service).

use crate::common::*;

#[test]
fn options_is_healthy() {
    let server = CIcap::start();
    let out = run(&[&server.url("echo")], &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let line = stdout(&out);
    assert!(
        line.starts_with(&format!("OK {} OPTIONS 200 ISTag=", server.url("echo"))),
        "{line}"
    );
    assert!(line.trim_end().ends_with(" ms"), "{line}");
    assert_eq!(line.lines().count(), 1);
    assert!(stderr(&out).is_empty());
}

/// c-icap's echo service lists RESPMOD and REQMOD; a service lacking the
/// method is covered against the in-test server.
#[test]
fn require_method_is_checked_against_methods() {
    let server = CIcap::start();
    for method in ["reqmod", "RESPMOD"] {
        let out = run(&["--require-method", method, &server.url("echo")], &[]);
        assert_eq!(code(&out), 0, "{}", stdout(&out));
    }
    let out = run(&["--require-method", "bogus", &server.url("echo")], &[]);
    assert_eq!(code(&out), 2);
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn respmod_with_the_embedded_pdf() {
    let server = CIcap::start();
    let out = run(&["--method", "respmod", &server.url("echo")], &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(stdout(&out).contains(" RESPMOD "), "{}", stdout(&out));
}

#[test]
fn respmod_output_equals_the_file_echoed() {
    let server = CIcap::start();
    let dir = TempDir::new("output");
    let saved = dir.path().join("adapted.pdf");
    let out = run(
        &[
            "--method",
            "respmod",
            "--output",
            saved.to_str().unwrap(),
            &server.url("echo"),
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let expected =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sample.pdf")).unwrap();
    assert_eq!(std::fs::read(&saved).unwrap(), expected);
}

/// 5 MB through preview, 100 Continue and c-icap's streaming echo; the
/// saved body must be the file, byte for byte.
#[test]
fn respmod_with_a_5_mb_file() {
    let server = CIcap::start();
    let dir = TempDir::new("5mb");
    let file = dir.path().join("big.bin");
    let data: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    for preview in ["auto", "off", "1024"] {
        let saved = dir.path().join(format!("out-{preview}"));
        let out = run(
            &[
                "--method",
                "respmod",
                "--timeout",
                "20s",
                "--preview",
                preview,
                "--file",
                file.to_str().unwrap(),
                "--output",
                saved.to_str().unwrap(),
                &server.url("echo"),
            ],
            &[],
        );
        assert_eq!(code(&out), 0, "preview {preview}: {}", stdout(&out));
        let got = std::fs::read(&saved).unwrap();
        // With a preview the server may answer 204 (unchanged) and send nothing back.
        if stdout(&out).contains(" RESPMOD 200 ") {
            assert!(
                got == data,
                "preview {preview}: saved body differs ({} bytes)",
                got.len()
            );
        } else {
            assert!(stdout(&out).contains(" RESPMOD 204 "), "{}", stdout(&out));
        }
    }
    // Without a preview the echo must come back whole.
    let saved = dir.path().join("out-whole");
    let out = run(
        &[
            "--method",
            "respmod",
            "--timeout",
            "20s",
            "--file",
            file.to_str().unwrap(),
            "--output",
            saved.to_str().unwrap(),
            &server.url("echo"),
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(std::fs::read(&saved).unwrap() == data);
}

#[test]
fn reqmod_is_healthy() {
    let server = CIcap::start();
    let out = run(&["--method", "reqmod", &server.url("echo")], &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(stdout(&out).contains(" REQMOD "), "{}", stdout(&out));
}

#[test]
fn unknown_service_is_unhealthy() {
    let server = CIcap::start();
    let out = run(&[&server.url("no-such-service")], &[]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("OPTIONS answered 404"),
        "{}",
        stdout(&out)
    );
    let out = run(
        &["--method", "respmod", &server.url("no-such-service")],
        &[],
    );
    assert_eq!(code(&out), 1, "{}", stdout(&out));
}

#[test]
fn closed_port_cannot_connect() {
    let port = free_port().to_string();
    let out = run(&[&format!("icap://127.0.0.1:{port}/echo")], &[]);
    assert_eq!(code(&out), 3, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("connection refused"),
        "{}",
        stdout(&out)
    );
}

/// HAProxy's form: four arguments, cleared environment, silent when healthy,
/// one stderr line naming backend/server when not.
#[test]
fn haproxy_argv_form() {
    let server = CIcap::start();
    let port = server.port.to_string();
    let env = [
        ("PATH", ""),
        ("HAPROXY_PROXY_NAME", "icap_pool"),
        ("HAPROXY_SERVER_NAME", "icap01"),
        ("HAPROXY_SERVER_ADDR", "127.0.0.1"),
        ("HAPROXY_SERVER_PORT", port.as_str()),
    ];
    let out = run(
        &[
            "--service",
            "echo",
            "NOT_USED",
            "NOT_USED",
            "127.0.0.1",
            &port,
        ],
        &env,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "a healthy check must be silent"
    );

    let closed = free_port().to_string();
    let out = run(
        &[
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
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("icap-check: icap_pool/icap01 icap://127.0.0.1:"),
        "{err}"
    );
    assert!(
        err.contains("OPTIONS: cannot connect: connection refused"),
        "{err}"
    );
    assert!(err.trim_end().ends_with("(exit 3)"), "{err}");
}

#[test]
fn verbose_logs_the_exchange_to_stderr() {
    let server = CIcap::start();
    let out = run(&["-v", &server.url("echo")], &[]);
    assert_eq!(code(&out), 0);
    let err = stderr(&out);
    assert!(err.contains("> OPTIONS icap://127.0.0.1:"), "{err}");
    assert!(err.contains("< ICAP/1.0 200 OK"), "{err}");
}

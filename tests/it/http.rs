//! The HTTP and TCP probes against real servers on loopback: Python's
//! http.server (HTTP/1.0) and a scripted in-test server (HTTP/1.1).

use crate::common::tls::*;
use crate::common::*;

fn answer(request: &str) -> Vec<u8> {
    let path = request.split(' ').nth(1).unwrap_or("/");
    let (status, extra, body) = match path {
        "/health" => ("200 OK", "", "status: ready\n".to_string()),
        "/down" => ("503 Service Unavailable", "", "down\n".to_string()),
        "/created" => ("201 Created", "", String::new()),
        "/moved" => ("302 Found", "Location: /health\r\n", String::new()),
        "/away" => (
            "301 Moved Permanently",
            "Location: http://127.0.0.2:1/x\r\n",
            String::new(),
        ),
        "/loop" => ("302 Found", "Location: /loop\r\n", String::new()),
        // The marker sits after the 64 KiB that are read.
        "/big" => ("200 OK", "", format!("{}MARKER", "x".repeat(70 * 1024))),
        _ => ("404 Not Found", "", "no\n".to_string()),
    };
    format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn status_rules_http_1_1() {
    let server = FakeHttp::start(answer);
    for (path, args, want) in [
        ("/health", &[][..], 0),
        ("/down", &[][..], 1),
        ("/missing", &[][..], 1),
        ("/moved", &[][..], 0),
        ("/moved", &["--expect-status", "200"][..], 1),
        ("/created", &["--expect-status", "200,201"][..], 0),
        ("/down", &["--expect-status", "500-599"][..], 0),
    ] {
        let url = server.url(path);
        let mut a: Vec<&str> = args.to_vec();
        a.push(&url);
        let out = run(&a, &[]);
        assert_eq!(code(&out), want, "{path} {args:?}: {}", stdout(&out));
    }
    let out = run(&[&server.url("/down")], &[]);
    assert!(
        stdout(&out).contains("GET: unhealthy: HTTP 503 Service Unavailable (expected 200-399)"),
        "{}",
        stdout(&out)
    );
    assert!(server.last_request().starts_with("GET /down HTTP/1.1\r\n"));
}

#[test]
fn strings_and_regexes_in_a_bounded_body() {
    let server = FakeHttp::start(answer);
    let url = server.url("/health");
    for (args, want) in [
        (&["--expect-string", "ready"][..], 0),
        (&["--expect-string", "READY"][..], 1),
        (&["--expect-regex", "(?m)^status: (ok|ready)$"][..], 0),
        (&["--expect-regex", "^down"][..], 1),
    ] {
        let mut a = args.to_vec();
        a.push(&url);
        let out = run(&a, &[]);
        assert_eq!(code(&out), want, "{args:?}: {}", stdout(&out));
    }
    // Only the first 64 KiB are read.
    let out = run(&["--expect-string", "MARKER", &server.url("/big")], &[]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("first 65536 body bytes"),
        "{}",
        stdout(&out)
    );
    let out = run(&["--expect-regex", "(unclosed", &url], &[]);
    assert_eq!(code(&out), 2);
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn redirects_followed_only_when_asked_and_only_on_the_same_server() {
    let server = FakeHttp::start(answer);
    let out = run(&["--expect-string", "ready", &server.url("/moved")], &[]);
    assert_eq!(code(&out), 1, "not followed: {}", stdout(&out));
    let out = run(
        &[
            "--follow-redirects",
            "--expect-string",
            "ready",
            &server.url("/moved"),
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(server.last_request().starts_with("GET /health "));
    let out = run(&["--follow-redirects", &server.url("/away")], &[]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("redirects to another server: http://127.0.0.2:1/x"),
        "{}",
        stdout(&out)
    );
    let out = run(&["--follow-redirects", &server.url("/loop")], &[]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("more than 5 redirects"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn method_headers_host_override_and_body() {
    let server = FakeHttp::start(answer);
    let out = run(
        &[
            "--method",
            "post",
            "--header",
            "Host: icap.example",
            "--header",
            "X-Check: 1",
            "--body",
            "ping=1",
            &server.url("/health"),
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let req = server.last_request();
    assert!(req.starts_with("POST /health HTTP/1.1\r\n"), "{req}");
    let lower = req.to_ascii_lowercase();
    assert!(lower.contains("\r\nhost: icap.example\r\n"), "{req}");
    assert_eq!(lower.matches("\r\nhost:").count(), 1, "{req}");
    assert!(lower.contains("\r\nx-check: 1\r\n"), "{req}");
    assert!(req.ends_with("\r\n\r\nping=1"), "{req}");
    let out = run(&["--method", "head", &server.url("/health")], &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(server.last_request().starts_with("HEAD /health "));
    // An ICAP method for the HTTP probe, an HTTP option for ICAP: one-line usage errors.
    for args in [
        &["--method", "respmod", &server.url("/")][..],
        &["--expect-status", "200", "icap://127.0.0.1:1/echo"][..],
        &["--method", "get", "icap://127.0.0.1:1/echo"][..],
    ] {
        let out = run(args, &[]);
        assert_eq!(code(&out), 2, "{args:?}");
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
}

#[test]
fn python_http_server_http_1_0() {
    let root = TempDir::new("www");
    std::fs::write(root.path().join("index.html"), "<p>icap pool up</p>").unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    std::fs::write(root.path().join("sub/index.html"), "sub ok").unwrap();
    let server = python_http(root.path());
    let base = format!("http://127.0.0.1:{}", server.port);
    let out = run(&["--expect-string", "pool up", &format!("{base}/")], &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with(&format!("OK {base}/ GET 200 OK")),
        "{}",
        stdout(&out)
    );
    let out = run(&[&format!("{base}/nothing-here")], &[]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("HTTP 404"), "{}", stdout(&out));
    // http.server redirects a directory without its slash (301).
    let out = run(&["--expect-string", "sub ok", &format!("{base}/sub")], &[]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let out = run(
        &[
            "--follow-redirects",
            "--expect-string",
            "sub ok",
            &format!("{base}/sub"),
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    // The HAProxy form: target from argv, the probe from flags.
    let port = server.port.to_string();
    let out = run(
        &[
            "--probe",
            "http",
            "--path",
            "/sub/",
            "NOT_USED",
            "NOT_USED",
            "127.0.0.1",
            &port,
        ],
        &[("HAPROXY_PROXY_NAME", "web"), ("HAPROXY_SERVER_NAME", "w1")],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).is_empty() && stdout(&out).is_empty());
    let out = run(
        &[
            "--probe",
            "http",
            "--path",
            "/gone",
            "NOT_USED",
            "NOT_USED",
            "127.0.0.1",
            &port,
        ],
        &[("HAPROXY_PROXY_NAME", "web"), ("HAPROXY_SERVER_NAME", "w1")],
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with(&format!(
            "icap-check: web/w1 http://127.0.0.1:{port}/gone GET: unhealthy: HTTP 404"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn not_http_and_refused() {
    let server = CIcap::start();
    let out = run(&[&format!("http://127.0.0.1:{}/", server.port)], &[]);
    assert!(matches!(code(&out), 4 | 5), "{}", stdout(&out));
    let out = run(&[&format!("http://127.0.0.1:{}/", free_port())], &[]);
    assert_eq!(code(&out), 3, "{}", stdout(&out));
}

#[test]
fn tcp_send_expect() {
    let server = CIcap::start();
    let url = format!("tcp://127.0.0.1:{}", server.port);
    let out = run(&[&url], &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with(&format!("OK {url} TCP connected")),
        "{}",
        stdout(&out)
    );
    let options = "OPTIONS icap://127.0.0.1/echo ICAP/1.0\\r\\nHost: 127.0.0.1\\r\\nEncapsulated: null-body=0\\r\\n\\r\\n";
    let out = run(
        &["--send", options, "--expect-string", "ICAP/1.0 200", &url],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let out = run(
        &[
            "--send",
            options,
            "--expect-regex",
            "(?i)istag: *\"?CI",
            &url,
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let out = run(
        &[
            "--timeout",
            "3s",
            "--send",
            "BOGUS\\r\\n\\r\\n",
            "--expect-string",
            "ICAP/1.0 200",
            &url,
        ],
        &[],
    );
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("not in the"), "{}", stdout(&out));
    let out = run(&[&format!("tcp://127.0.0.1:{}", free_port())], &[]);
    assert_eq!(code(&out), 3);
    let out = run(&["--send", "\\xZZ", &url], &[]);
    assert_eq!(code(&out), 2);
}

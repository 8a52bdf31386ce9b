//! TLS for every probe against real servers on loopback: `openssl s_server`
//! with certificates made by the `openssl` CLI, and the real c-icap behind
//! socat's OPENSSL-LISTEN (Debian's c-icap is built without TLS).

use crate::common::tls::*;
use crate::common::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// The failure text of a check that failed its TLS (exit 6), refused when
/// Rust's Debug formatting leaked into it (`Other(OtherError(...))`,
/// `received fatal alert: CertificateRequired`).
fn tls_failure(out: &std::process::Output) -> String {
    let text = stdout(out);
    assert_eq!(code(out), 6, "{text}");
    assert!(!debug_in(&text), "Debug formatting in: {text}");
    text
}

fn debug_in(text: &str) -> bool {
    let debug = regex_lite::Regex::new(r"\([A-Z][a-z]+[A-Z]").unwrap();
    text.contains("Other(") || debug.is_match(text)
}

/// One CA and the certificates every case needs, made once per test.
struct Setup {
    pki: Pki,
    good: Cert,
}

fn setup() -> Setup {
    let pki = Pki::new();
    let good = pki.server("good", 365);
    Setup { pki, good }
}

#[test]
fn verification_outcomes() {
    let Setup { pki, good } = setup();
    let ca = pki.ca();
    let server = s_server(&good, &[]);
    let https = format!("https://127.0.0.1:{}/", server.port);
    let tls = format!("tls://127.0.0.1:{}", server.port);

    // Trusted through --ca-file, by IP and by name.
    let out = run(&["--ca-file", s(&ca), &https], &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with(&format!("OK {https} GET 200")),
        "{}",
        stdout(&out)
    );
    let by_name = format!("https://localhost:{}/", server.port);
    let out = run(
        &["--ca-file", s(&ca), "--expect-string", "Ciphers", &by_name],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let out = run(&["--ca-file", s(&ca), &tls], &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).contains(" TLS handshake done"),
        "{}",
        stdout(&out)
    );
    // Nagios names the probe's protocol, not a guess from the URL ("TL OK").
    for (url, label) in [(&tls, "TLS OK - "), (&https, "HTTP OK - ")] {
        let out = run(&["--format", "nagios", "--ca-file", s(&ca), url], &[]);
        assert_eq!(code(&out), 0, "{}", stdout(&out));
        assert!(stdout(&out).starts_with(label), "{}", stdout(&out));
    }
    let out = run(
        &[
            "--ca-file",
            s(&ca),
            "--send",
            "GET / HTTP/1.0\\r\\n\\r\\n",
            "--expect-regex",
            "^HTTP/1.0 200",
            &tls,
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));

    // Not trusted: the built-in roots do not know the test CA.
    let out = run(&[&https], &[]);
    let text = tls_failure(&out);
    assert!(
        text.contains(
            "tls: the server's certificate is issued by an untrusted CA \"CN=icap-check ca\""
        ),
        "{text}"
    );
    // Wrong host name.
    let out = run(&["--ca-file", s(&ca), "--sni", "icap.example", &tls], &[]);
    let text = tls_failure(&out);
    assert!(
        text.contains("names localhost and 127.0.0.1 but not icap.example"),
        "{text}"
    );
    // --insecure: no verification, said on stderr.
    let out = run(&["--insecure", "--sni", "icap.example", &https], &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(stderr(&out).contains("not verified"), "{}", stderr(&out));
    // Certificate expiry: the certificate is good for 365 days.
    let out = run(
        &["--ca-file", s(&ca), "--cert-expiry-days", "30", &tls],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let out = run(
        &["--ca-file", s(&ca), "--cert-expiry-days", "400", &tls],
        &[],
    );
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let year = &date(365 * 86_400)[..4];
    assert!(
        stdout(&out).contains(&format!("unhealthy: certificate expires on {year}-")),
        "{}",
        stdout(&out)
    );
    // TLS to a plain-text server is a TLS failure, not a hang.
    let plain = CIcap::start();
    let out = run(
        &[
            "--timeout",
            "3s",
            &format!("tls://127.0.0.1:{}", plain.port),
        ],
        &[],
    );
    assert!(matches!(code(&out), 4 | 6), "{}", stdout(&out));
    assert!(!debug_in(&stdout(&out)), "{}", stdout(&out));
}

#[test]
fn expired_and_untrusted_ca() {
    let Setup { pki, .. } = setup();
    let ca = pki.ca();
    let expired = pki.issue(
        "expired",
        "IP:127.0.0.1",
        "ca",
        "20200101000000Z",
        "20200201000000Z",
    );
    let server = s_server(&expired, &[]);
    let url = format!("tls://127.0.0.1:{}", server.port);
    let out = run(&["--ca-file", s(&ca), &url], &[]);
    let text = tls_failure(&out);
    assert!(
        text.contains("certificate expired on 2020-02-01 00:00:00 UTC"),
        "{text}"
    );
    // Unverified, the expiry check still names the date.
    let out = run(&["--insecure", "--cert-expiry-days", "0", &url], &[]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("certificate expired on 2020-02-01 00:00:00 UTC"),
        "{}",
        stdout(&out)
    );
    drop(server);

    let stranger = pki.issue(
        "stranger",
        "IP:127.0.0.1",
        "other-ca",
        &date(-86_400),
        &date(86_400 * 30),
    );
    let server = s_server(&stranger, &[]);
    let out = run(
        &[
            "--ca-file",
            s(&ca),
            &format!("https://127.0.0.1:{}/", server.port),
        ],
        &[],
    );
    let text = tls_failure(&out);
    assert!(
        text.contains("issued by an untrusted CA \"CN=icap-check other-ca\""),
        "{text}"
    );
}

#[test]
fn client_certificate_required() {
    let Setup { pki, good } = setup();
    let ca = pki.ca();
    let client = pki.issue(
        "client",
        "DNS:icap-check.client",
        "ca",
        &date(-86_400),
        &date(86_400 * 30),
    );
    let server = s_server(&good, &["-Verify", "1", "-CAfile", s(&ca)]);
    let url = format!("https://127.0.0.1:{}/", server.port);
    let out = run(&["--ca-file", s(&ca), &url], &[]);
    let text = tls_failure(&out);
    assert!(
        text.contains("the server requires a client certificate (TLS alert certificate_required)"),
        "{text}"
    );
    let out = run(
        &[
            "--ca-file",
            s(&ca),
            "--client-cert",
            s(&client.cert),
            "--client-key",
            s(&client.key),
            &url,
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    // One without the other, or a missing file: usage errors.
    let out = run(
        &["--ca-file", s(&ca), "--client-cert", s(&client.cert), &url],
        &[],
    );
    assert_eq!(code(&out), 2);
    let out = run(&["--ca-file", "/nonexistent.pem", &url], &[]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("cannot read --ca-file /nonexistent.pem"),
        "{}",
        stderr(&out)
    );
}

/// Certificates made the ways operators make them, each served by
/// `openssl s_server`: what the check says of each, and that no failure
/// text carries Rust's Debug formatting.
#[test]
fn certificates_as_operators_make_them() {
    let Setup { pki, good } = setup();
    let day = 86_400;
    let (start, end) = (date(-day), date(30 * day));
    let self_ca = pki.self_signed("self-ca", "localhost", "DNS:localhost", true);
    let self_ee = pki.self_signed("self-ee", "localhost", "DNS:localhost", false);
    let self_ip = pki.self_signed("self-ip", "127.0.0.1", "IP:127.0.0.1", true);
    let cn_only = pki.self_signed("cn-only", "localhost", "", true);
    let cn_only_leaf = pki.issue("localhost", "", "ca", &start, &end);
    let v1 = pki.issue_v1("v1", "ca", &start, &end);
    let ip_only = pki.issue("ip-only", "IP:127.0.0.1", "ca", &start, &end);
    let both = "DNS:localhost,IP:127.0.0.1";
    let expired = pki.issue("expired", both, "ca", "20200101000000Z", "20200201000000Z");
    let future = pki.issue("future", both, "ca", "20990101000000Z", "21000101000000Z");
    let stranger = pki.issue("stranger", both, "other-ca", &start, &end);
    // 5,000 names make a certificate of 75 KiB (OpenSSL drops repeated
    // certificates from a chain, so one large one stands for a large chain).
    let many: Vec<String> = (0..5000).map(|i| format!("DNS:n{i:04}.example")).collect();
    let huge = pki.issue(
        "huge",
        &format!("DNS:localhost,{}", many.join(",")),
        "ca",
        &start,
        &end,
    );

    let ca_path = pki.ca();
    let ca = s(&ca_path);
    let verify_client = ["-Verify", "1", "-CAfile", ca];
    let verify_client_tls12 = ["-Verify", "1", "-CAfile", ca, "-tls1_2"];
    let trust_ca = ["--ca-file", ca];
    let trust_self_ca = ["--ca-file", s(&self_ca.cert)];
    let self_ca_other_name = ["--ca-file", s(&self_ca.cert), "--sni", "other.example"];
    let trust_self_ee = ["--ca-file", s(&self_ee.cert)];
    let trust_self_ip = ["--ca-file", s(&self_ip.cert)];
    let trust_cn_only = ["--ca-file", s(&cn_only.cert)];
    let wrong_sni = ["--ca-file", ca, "--sni", "icap.example"];
    let no_san = "the server's certificate names no DNS or IP subjectAltName; its CN \
                  \"localhost\" is not used for verification \
                  (reissue it with subjectAltName=DNS:localhost)";
    let cases = [
        Case::new(
            "openssl req -x509's default (CA:TRUE) as its own --ca-file",
            &self_ca,
        )
        .args(&trust_self_ca)
        .ok(),
        Case::new("self-signed CA:FALSE as its own --ca-file", &self_ee)
            .args(&trust_self_ee)
            .ok(),
        Case::new("self-signed CA:TRUE with an IP subjectAltName", &self_ip)
            .args(&trust_self_ip)
            .host("127.0.0.1")
            .ok(),
        Case::new("a leaf of a private CA", &good)
            .args(&trust_ca)
            .ok(),
        Case::new("a leaf naming only 127.0.0.1", &ip_only)
            .args(&trust_ca)
            .host("127.0.0.1")
            .ok(),
        Case::new("self-signed CA:TRUE, wrong name", &self_ca)
            .args(&self_ca_other_name)
            .host("127.0.0.1")
            .fails(
                "the server's certificate names localhost but not other.example \
                 (--sni NAME sets the name verified)",
            ),
        Case::new("self-signed CA:TRUE not in --ca-file", &self_ca)
            .args(&trust_ca)
            .fails(
                "the server's certificate \"CN=localhost\" is a CA certificate (CA:TRUE) used \
                 as the server's (give that very certificate with --ca-file to trust it as it is)",
            ),
        Case::new("self-signed CA:FALSE not in --ca-file", &self_ee)
            .args(&trust_ca)
            .fails(
                "the server's certificate \"CN=localhost\" is self-signed and not trusted \
                 (give that certificate with --ca-file)",
            ),
        Case::new("CN only, no subjectAltName, as its own --ca-file", &cn_only)
            .args(&trust_cn_only)
            .fails(no_san),
        Case::new("a leaf with CN only, no subjectAltName", &cn_only_leaf)
            .args(&trust_ca)
            .fails(no_san),
        Case::new("a version 1 certificate (no extensions at all)", &v1)
            .args(&trust_ca)
            .fails(
                "the server's certificate is X.509 version 1 or 2, without subjectAltName \
                 (reissue it with subjectAltName=DNS:NAME)",
            ),
        Case::new("expired", &expired)
            .args(&trust_ca)
            .fails("the server's certificate expired on 2020-02-01 00:00:00 UTC"),
        Case::new("not yet valid", &future)
            .args(&trust_ca)
            .fails("the server's certificate is not valid before 2099-01-01 00:00:00 UTC"),
        Case::new("wrong name", &good)
            .args(&wrong_sni)
            .host("127.0.0.1")
            .fails("the server's certificate names localhost and 127.0.0.1 but not icap.example"),
        Case::new("a leaf naming only 127.0.0.1, asked by name", &ip_only)
            .args(&trust_ca)
            .fails("the server's certificate names 127.0.0.1 but not localhost"),
        Case::new("untrusted CA", &stranger).args(&trust_ca).fails(
            "the server's certificate is issued by an untrusted CA \
             \"CN=icap-check other-ca\" (give the issuing CA with --ca-file)",
        ),
        Case::new("a private CA against the built-in roots", &good)
            .fails("the server's certificate is issued by an untrusted CA \"CN=icap-check ca\""),
        Case::new("a certificate chain over 64 KiB", &huge)
            .args(&trust_ca)
            .fails("usually its certificate chain, is larger than 64 KiB"),
        // https://: under TLS 1.3 the server says so only once a request goes.
        Case::new("client certificate required (TLS 1.3)", &good)
            .server(&verify_client)
            .args(&trust_ca)
            .https()
            .fails(
                "the server requires a client certificate (TLS alert certificate_required): \
                 give one with --client-cert and --client-key",
            ),
        Case::new("client certificate required (TLS 1.2)", &good)
            .server(&verify_client_tls12)
            .args(&trust_ca)
            .fails(
                "the server refused the handshake (TLS alert handshake_failure): no TLS \
                 version or cipher suite in common, or it requires a client certificate",
            ),
    ];

    let mut failures = Vec::new();
    for case in &cases {
        let server = s_server(case.cert, case.server);
        let url = match case.https {
            true => format!("https://{}:{}/", case.host, server.port),
            false => format!("tls://{}:{}", case.host, server.port),
        };
        let mut argv = case.args.to_vec();
        argv.push(&url);
        let out = run(&argv, &[]);
        let (text, what) = (stdout(&out), case.what);
        assert_eq!(code(&out), case.code, "{what}: {text}{}", stderr(&out));
        assert!(text.contains(case.text), "{what}: {text}");
        if case.code != 0 {
            failures.push(text);
        }
    }
    // TLS to a plain-text server.
    let plain = PlainText::start();
    let url = format!("tls://127.0.0.1:{}", plain.port);
    let text = stdout(&run(&["--ca-file", ca, &url], &[]));
    assert!(
        text.contains(
            "tls: the server answered with something that is not TLS \
             (is the server speaking TLS on this port?)"
        ),
        "{text}"
    );
    failures.push(text);

    let leaked: Vec<&String> = failures.iter().filter(|t| debug_in(t)).collect();
    assert!(leaked.is_empty(), "Debug formatting in: {leaked:#?}");
    assert!(
        failures.iter().all(|t| t.contains("(exit 6)")),
        "{failures:#?}"
    );
    // The rule catches what rustls' own texts were.
    for before in [
        "tls: invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
        "tls: received corrupt message of type (InvalidContentType)",
    ] {
        assert!(debug_in(before), "{before}");
    }
}

/// One certificate case: a server, the check's arguments, what it says.
struct Case<'a> {
    what: &'a str,
    cert: &'a Cert,
    /// `openssl s_server`'s extra arguments.
    server: &'a [&'a str],
    /// The check's arguments before the URL.
    args: &'a [&'a str],
    host: &'a str,
    https: bool,
    code: i32,
    text: &'a str,
}

impl<'a> Case<'a> {
    fn new(what: &'a str, cert: &'a Cert) -> Case<'a> {
        Case {
            what,
            cert,
            server: &[],
            args: &[],
            host: "localhost",
            https: false,
            code: 0,
            text: "",
        }
    }
    fn server(self, server: &'a [&'a str]) -> Self {
        Case { server, ..self }
    }
    fn args(self, args: &'a [&'a str]) -> Self {
        Case { args, ..self }
    }
    fn host(self, host: &'a str) -> Self {
        Case { host, ..self }
    }
    fn https(self) -> Self {
        Case {
            https: true,
            ..self
        }
    }
    fn ok(self) -> Self {
        Case {
            code: 0,
            text: "OK ",
            ..self
        }
    }
    /// Exit 6 with `text` in the report.
    fn fails(self, text: &'a str) -> Self {
        Case {
            code: 6,
            text,
            ..self
        }
    }
}

#[test]
fn icaps_to_c_icap_behind_socat() {
    let Setup { pki, good } = setup();
    let ca = pki.ca();
    let cicap = CIcap::start();
    let front = socat_tls(&good, cicap.port);
    let url = format!("icaps://127.0.0.1:{}/echo", front.port);
    let out = run(&["--ca-file", s(&ca), &url], &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with(&format!("OK {url} OPTIONS 200 ISTag=")),
        "{}",
        stdout(&out)
    );
    let out = run(&["--ca-file", s(&ca), "--method", "respmod", &url], &[]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));

    // 5 MB through TLS, echoed, saved byte for byte (no preview with --output).
    let dir = TempDir::new("icaps-5mb");
    let file = dir.path().join("big.bin");
    let data: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    for preview in [None, Some("1024")] {
        let saved = dir.path().join("out.bin");
        let mut args = vec![
            "--ca-file",
            s(&ca),
            "--method",
            "respmod",
            "--timeout",
            "20s",
            "--file",
            s(&file),
            "--output",
            s(&saved),
        ];
        if let Some(p) = preview {
            args.extend(["--preview", p]);
        }
        args.push(&url);
        let out = run(&args, &[]);
        assert_eq!(code(&out), 0, "{preview:?}: {}", stdout(&out));
        let got = std::fs::read(&saved).unwrap();
        if preview.is_none() || stdout(&out).contains(" RESPMOD 200 ") {
            assert!(
                got == data,
                "{preview:?}: saved body differs ({} bytes)",
                got.len()
            );
        } else {
            assert!(stdout(&out).contains(" RESPMOD 204 "), "{}", stdout(&out));
        }
    }

    // The HAProxy form: HAPROXY_SERVER_SSL=1 turns TLS on; --no-tls
    // (here from the config file) turns it off again.
    let port = front.port.to_string();
    let env = [
        ("HAPROXY_SERVER_SSL", "1"),
        ("HAPROXY_PROXY_NAME", "icap"),
        ("HAPROXY_SERVER_NAME", "s1"),
    ];
    let argv = |extra: &[&str]| {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend(["NOT_USED", "NOT_USED", "127.0.0.1", &port].map(String::from));
        a
    };
    let a = argv(&["--service", "echo", "--ca-file", s(&ca)]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = run(&a, &env);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).is_empty() && stderr(&out).is_empty());
    let a = argv(&["--service", "echo"]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = run(&a, &env);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("icap-check: icap/s1 icaps://127.0.0.1:"),
        "{}",
        stderr(&out)
    );
    let conf = dir.path().join("check.conf");
    std::fs::write(&conf, "backend icap\n no-tls\n service echo\n").unwrap();
    // Several URLs share the options: --ca-file applies to the TLS ones.
    let out = run(&["--ca-file", s(&ca), &url, &cicap.url("echo")], &[]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("OK "))
            .count(),
        2,
        "{}",
        stdout(&out)
    );
    let plain_port = cicap.port.to_string();
    let out = run(
        &[
            "--config",
            s(&conf),
            "NOT_USED",
            "NOT_USED",
            "127.0.0.1",
            &plain_port,
        ],
        &env,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn explain_describes_tls_and_new_probes() {
    let Setup { pki, .. } = setup();
    let ca = pki.ca();
    let out = run(
        &[
            "--explain",
            "--ca-file",
            s(&ca),
            "--cert-expiry-days",
            "14",
            "icaps://127.0.0.1/echo",
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("icaps://127.0.0.1:11344/echo"), "{text}");
    assert!(
        text.contains("TLS to 127.0.0.1, verified against"),
        "{text}"
    );
    assert!(text.contains("valid 14 more days"), "{text}");
    let out = run(
        &["--explain", "--expect-regex", "ok", "https://127.0.0.1/h"],
        &[],
    );
    assert!(
        stdout(&out).contains("HTTP GET https://127.0.0.1:443/h"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("built-in Mozilla roots"),
        "{}",
        stdout(&out)
    );
    let out = run(
        &["--explain", "--send", "PING\\r\\n", "tcp://127.0.0.1:6379"],
        &[],
    );
    assert!(
        stdout(&out).contains("TCP connect, send \"PING\\x0d\\x0a\""),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("TLS off"), "{}", stdout(&out));
}

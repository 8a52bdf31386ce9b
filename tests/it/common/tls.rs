//! Servers for the HTTP, TCP and TLS probes, started on free loopback ports
//! and stopped on drop: certificates made with the `openssl` CLI,
//! `openssl s_server`, socat's OPENSSL-LISTEN in front of c-icap, Python's
//! http.server, and a scripted in-test HTTP server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{free_port, terminate, wait_for_port, TempDir};

pub const OPENSSL: &str = "/usr/bin/openssl";
pub const SOCAT: &str = "/usr/bin/socat";
pub const PYTHON: &str = "/usr/bin/python3";

fn need(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: run tests/run, which installs Debian's {package}"
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    need(OPENSSL, "openssl");
    let out = Command::new(OPENSSL)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and certificates it signed (EC P-256: fast to make), plus a
/// second CA nobody trusts.
pub struct Pki {
    pub dir: TempDir,
}

/// A certificate and its key.
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = TempDir::new("pki");
        let d = dir.path();
        for ca in ["ca", "other-ca"] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-days",
                    "365",
                    "-subj",
                    &format!("/CN=icap-check {ca}"),
                ],
            );
        }
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        std::fs::write(
            d.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = d\n[d]\ndatabase = {0}/index.txt\nnew_certs_dir = {0}\n\
                 serial = {0}/serial\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\n\
                 unique_subject = no\n[p]\ncommonName = supplied\n",
                d.display()
            ),
        )
        .unwrap();
        Pki { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for `names` (DNS:x or IP:x; none when empty, CN only),
    /// signed by `ca` ("ca" or "other-ca"), valid from `start` to `end`
    /// (openssl ca's YYYYMMDDHHMMSSZ; Debian's openssl 3.0 has no `req
    /// -not_after`).
    pub fn issue(&self, name: &str, names: &str, ca: &str, start: &str, end: &str) -> Cert {
        let san = format!("subjectAltName={names}");
        // Without any extension OpenSSL makes a version 1 certificate.
        let extension = if names.is_empty() {
            "basicConstraints=critical,CA:FALSE"
        } else {
            &san
        };
        self.issue_with(name, &[extension], ca, start, end)
    }

    /// A version 1 certificate (no extensions, so no subjectAltName), as
    /// `openssl ca` makes from a bare CSR.
    pub fn issue_v1(&self, name: &str, ca: &str, start: &str, end: &str) -> Cert {
        self.issue_with(name, &[], ca, start, end)
    }

    fn issue_with(
        &self,
        name: &str,
        extensions: &[&str],
        ca: &str,
        start: &str,
        end: &str,
    ) -> Cert {
        let d = self.dir.path();
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let subject = format!("/CN={name}");
        let mut req = vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ];
        for e in extensions {
            req.extend(["-addext", e]);
        }
        openssl(d, &req);
        openssl(
            d,
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-batch",
                "-notext",
                "-cert",
                &format!("{ca}.pem"),
                "-keyfile",
                &format!("{ca}.key"),
                "-startdate",
                start,
                "-enddate",
                end,
                "-in",
                &csr,
                "-out",
                &pem,
            ],
        );
        Cert {
            cert: d.join(pem),
            key: d.join(key),
        }
    }

    /// A self-signed certificate made the way operators make one:
    /// `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=CN -addext
    /// subjectAltName=SAN`, which OpenSSL marks CA:TRUE; with `ca` false,
    /// also `-addext basicConstraints=critical,CA:FALSE`. No SAN when `san`
    /// is empty. Its certificate is its own CA file.
    pub fn self_signed(&self, name: &str, cn: &str, san: &str, ca: bool) -> Cert {
        let d = self.dir.path();
        let key = format!("{name}.key");
        let pem = format!("{name}.pem");
        let subject = format!("/CN={cn}");
        let san = format!("subjectAltName={san}");
        let mut req = vec![
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem,
            "-subj", &subject,
        ];
        if !san.ends_with('=') {
            req.extend(["-addext", &san]);
        }
        if !ca {
            req.extend(["-addext", "basicConstraints=critical,CA:FALSE"]);
        }
        openssl(d, &req);
        Cert {
            cert: d.join(pem),
            key: d.join(key),
        }
    }

    /// Valid for 127.0.0.1 and localhost for `days` from now.
    pub fn server(&self, name: &str, days: u32) -> Cert {
        self.issue(
            name,
            "DNS:localhost,IP:127.0.0.1",
            "ca",
            &date(-86_400),
            &date(i64::from(days) * 86_400),
        )
    }
}

/// Now + `offset` seconds in openssl ca's format, from `date` (no chrono here).
pub fn date(offset: i64) -> String {
    let out = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", now() + offset),
            "+%Y%m%d%H%M%SZ",
        ])
        .output()
        .expect("run date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A child process listening on a loopback port, stopped on drop.
pub struct Listener {
    pub port: u16,
    child: Child,
}

impl Listener {
    /// Starts `make(port)` until one listens (a free port may be taken meanwhile).
    fn start(what: &str, mut make: impl FnMut(u16) -> Command) -> Listener {
        for _ in 0..5 {
            let port = free_port();
            let mut child = make(port)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {what}: {e}"));
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            // Listening, and ours: a server that failed to bind has exited.
            if wait_for_port(addr, Duration::from_secs(10)) && matches!(child.try_wait(), Ok(None))
            {
                return Listener { port, child };
            }
            terminate(&mut child);
        }
        panic!("{what} did not start listening");
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// `openssl s_server -www` (answers any GET with a status page, HTTP/1.0),
/// with `extra` arguments (e.g. `-Verify 1 -CAfile ca.pem`).
pub fn s_server(cert: &Cert, extra: &[&str]) -> Listener {
    need(OPENSSL, "openssl");
    Listener::start("openssl s_server", |port| {
        let mut c = Command::new(OPENSSL);
        c.args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert.cert)
            .arg("-key")
            .arg(&cert.key)
            .args(extra);
        c
    })
}

/// A plain-text server (an ICAP one, say) on a port a check takes for
/// TLS: each connection is read once and answered `ICAP/1.0 400 Bad
/// request`, then closed.
pub struct PlainText {
    pub port: u16,
}

impl PlainText {
    pub fn start() -> PlainText {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(b"ICAP/1.0 400 Bad request\r\n\r\n");
            }
        });
        PlainText { port }
    }
}

/// socat terminating TLS in front of a plain-text server on `to_port`.
pub fn socat_tls(cert: &Cert, to_port: u16) -> Listener {
    need(SOCAT, "socat");
    Listener::start("socat", |port| {
        let mut c = Command::new(SOCAT);
        // Without nodelay, socat's Nagle holds its second TLS record until
        // our delayed ACK (40 ms a check).
        c.arg(format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,cert={},key={},verify=0,fork,reuseaddr,nodelay",
            cert.cert.display(),
            cert.key.display()
        ))
        .arg(format!("TCP:127.0.0.1:{to_port},nodelay"));
        c
    })
}

/// Python's http.server (HTTP/1.0) serving `root`.
pub fn python_http(root: &Path) -> Listener {
    need(PYTHON, "python3");
    Listener::start("python3 -m http.server", |port| {
        let mut c = Command::new(PYTHON);
        c.args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(root);
        c
    })
}

/// A TLS server (Python's ssl) that completes the handshake and then never
/// reads, with a small receive buffer: a client sending a large body fills
/// the socket and waits (loopback's buffers would otherwise take megabytes).
pub fn tls_never_reads(cert: &Cert) -> Listener {
    need(PYTHON, "python3");
    let script = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
held = []
while True:
    c, _ = s.accept()
    try:
        held.append(ctx.wrap_socket(c, server_side=True))
    except OSError:
        pass
"#;
    let (cert, key) = (cert.cert.clone(), cert.key.clone());
    Listener::start("a TLS server that never reads", move |port| {
        let mut c = Command::new(PYTHON);
        c.arg("-c")
            .arg(script)
            .arg(port.to_string())
            .arg(&cert)
            .arg(&key);
        c
    })
}

/// A scripted HTTP server on a thread: each connection's request head is
/// recorded and answered with what `answer` returns for it.
pub struct FakeHttp {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FakeHttp {
    pub fn start(answer: fn(&str) -> Vec<u8>) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                // A body announced by Content-Length is read and kept too.
                let len = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                let _ = stream.read_exact(&mut body);
                seen.lock()
                    .unwrap()
                    .push(format!("{text}{}", String::from_utf8_lossy(&body)));
                let _ = stream.write_all(&answer(&text));
            }
        });
        FakeHttp { port, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn last_request(&self) -> String {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

//! The two ways icap-check is called, turned into a target.
//!
//! HAProxy runs `icap-check PROXY_ADDR PROXY_PORT SERVER_ADDR SERVER_PORT`
//! with a cleared environment; an operator runs the same four arguments by
//! hand to reproduce a check, or gives a URL. See HAPROXY-CONTRACT.md.

use std::net::IpAddr;
use std::path::PathBuf;

use super::send_state::SendState;
use crate::net::{Endpoint, Host};
use crate::outcome::{Failure, HaproxyState};
use crate::probes::icap::capacity;
use crate::probes::{self, Scheme, ICAP_PORT};
use crate::text::escape;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Called with HAProxy's four arguments: silent on success, reports on stderr.
    pub haproxy: bool,
    pub endpoint: Endpoint,
    /// The path of a URL after the authority, without its leading `/`: the
    /// ICAP service (`icap://host/SERVICE`), or the HTTP path and query.
    pub url_path: Option<String>,
    /// The URL's scheme; `None` in the HAProxy form.
    pub scheme: Option<&'static Scheme>,
    /// HAPROXY_SERVER_SSL=1: the server line has `ssl`.
    pub server_ssl: bool,
    /// HAPROXY_PROXY_NAME, the backend.
    pub backend: Option<String>,
    /// HAPROXY_SERVER_NAME.
    pub server: Option<String>,
    /// HAPROXY_SERVER_MAXCONN: the server line's `maxconn` (0: none, no limit).
    pub maxconn: Option<u64>,
    /// HAPROXY_SERVER_CURCONN: the server's current connections.
    pub curconn: Option<u64>,
    /// What `-v` and `--explain` should say of how the target was read.
    pub notes: Vec<String>,
    /// How often the resident mode checks it, when haproxy.cfg says
    /// (otherwise `--interval`).
    pub cadence: Option<Cadence>,
    /// The server's state in HAProxy, read from its runtime API.
    pub haproxy_state: Option<HaproxyState>,
    /// What `--send-state` can tell the server of itself; `None` when not
    /// even its names are known, and when not asked for. Boxed: one per
    /// server of a pool, and most have none.
    pub send_state: Option<Box<SendState>>,
}

/// How often a target is checked in the resident mode, as HAProxy says it
/// on a server line: `inter` normally, `fastinter` while the state is
/// changing, `downinter` while it is down; `rise` passes in a row to come
/// up, `fall` failures to go down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    pub inter: std::time::Duration,
    pub fastinter: std::time::Duration,
    pub downinter: std::time::Duration,
    pub rise: u32,
    pub fall: u32,
}

impl Default for Cadence {
    /// HAProxy's defaults: `inter 2s rise 2 fall 3`.
    fn default() -> Cadence {
        Cadence::every(std::time::Duration::from_secs(2))
    }
}

impl Cadence {
    /// Every `inter`, with HAProxy's `rise 2 fall 3`.
    pub fn every(inter: std::time::Duration) -> Cadence {
        Cadence {
            inter,
            fastinter: inter,
            downinter: inter,
            rise: 2,
            fall: 3,
        }
    }
}

pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Target, Failure> {
    match args {
        [url] => parse_url(url),
        [_proxy_addr, _proxy_port, addr, port] => haproxy_form(addr, port, env, false),
        // A wrapper script that drops its arguments (how the check this
        // project replaces made every server look healthy) still checks
        // the server HAProxy means.
        [] => match env("HAPROXY_SERVER_ADDR").filter(|a| !a.is_empty()) {
            Some(addr) => {
                let port = env("HAPROXY_SERVER_PORT").unwrap_or_default();
                haproxy_form(&addr, &port, env, true)
            }
            None => Err(Failure::Usage(
                "no target: give icap://HOST[:PORT]/SERVICE (or icaps, http, https, tcp, tls URL), or HAProxy's four arguments PROXY_ADDR PROXY_PORT SERVER_ADDR SERVER_PORT".into(),
            )),
        },
        other => Err(Failure::Usage(format!(
            "expected one URL or HAProxy's four arguments, got {} arguments",
            other.len()
        ))),
    }
}

/// HAProxy's form: the server's address and port from argv (or, with
/// `from_env`, from HAPROXY_SERVER_ADDR/PORT), the rest from its variables.
fn haproxy_form(
    addr: &str,
    port: &str,
    env: &dyn Fn(&str) -> Option<String>,
    from_env: bool,
) -> Result<Target, Failure> {
    let named = |var: &str| env(var).filter(|v| !v.is_empty());
    let mut notes = Vec::new();
    if from_env {
        notes.push(format!(
            "no arguments: the server is HAProxy's HAPROXY_SERVER_ADDR {} and HAPROXY_SERVER_PORT '{}'",
            escape(addr),
            escape(port)
        ));
    } else if let Some(env_addr) = named("HAPROXY_SERVER_ADDR") {
        let env_port = env("HAPROXY_SERVER_PORT").unwrap_or_default();
        let same_port = env_port == port || (env_port.is_empty() && port == "NOT_USED");
        if env_addr != addr || !same_port {
            notes.push(format!(
                "the arguments name {} port {}, HAProxy's variables {} port '{}': the arguments win",
                escape(addr),
                escape(port),
                escape(&env_addr),
                escape(&env_port)
            ));
        }
    }
    if port == "0" {
        notes.push(format!(
            "port 0 (the server line gives none): checking the ICAP port {ICAP_PORT}"
        ));
    }
    // `send_state` is filled in only when `--send-state` asks for it
    // ([`haproxy_send_state`]): a check without it runs no code for it.
    let mut number = |var: &str| {
        let text = named(var)?;
        let n = capacity::count(&text);
        if n.is_none() {
            notes.push(format!(
                "{var} is '{}', not a number: ignored",
                escape(&text)
            ));
        }
        n
    };
    let (maxconn, curconn) = (
        number("HAPROXY_SERVER_MAXCONN"),
        number("HAPROXY_SERVER_CURCONN"),
    );
    Ok(Target {
        haproxy: true,
        endpoint: parse_server(addr, port)?,
        url_path: None,
        scheme: None,
        server_ssl: server_ssl(env("HAPROXY_SERVER_SSL").as_deref())?,
        backend: named("HAPROXY_PROXY_NAME"),
        server: named("HAPROXY_SERVER_NAME"),
        maxconn,
        curconn,
        notes,
        cadence: None,
        haproxy_state: None,
        send_state: None,
    })
}

/// What a target itself tells of its server for `--send-state`: its names,
/// address and port, and (in HAProxy's form) HAPROXY_SERVER_CURCONN/MAXCONN.
/// Not its state or weight, which HAProxy does not pass to an external
/// check (the resident mode adds its own state word). `None` without the
/// names.
pub fn haproxy_send_state(target: &Target) -> Option<SendState> {
    let (backend, server) = (target.backend.as_deref()?, target.server.as_deref()?);
    let (address, port) = match &target.endpoint {
        Endpoint::Unix(_) => ("unix".to_string(), String::new()),
        Endpoint::Tcp { host, port } => (host.bare(), port.to_string()),
    };
    Some(SendState {
        address: Some(address),
        port: Some(port),
        name: format!("{backend}/{server}"),
        // Read (and any garbage noted) once, by `haproxy_form`.
        scur: target.curconn.zip(target.maxconn),
        ..SendState::default()
    })
}

/// HAPROXY_SERVER_SSL, the server line's `ssl`: `1` or `0` (or unset).
/// Anything else is a mistake, not "no TLS": a check that quietly probes
/// without TLS reports the wrong thing.
fn server_ssl(value: Option<&str>) -> Result<bool, Failure> {
    match value {
        None | Some("") | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => Err(Failure::Usage(format!(
            "HAPROXY_SERVER_SSL is '{}': expected 1 or 0",
            escape(other)
        ))),
    }
}

/// The longest UNIX socket path the kernel takes (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// HAProxy's SERVER_ADDR and SERVER_PORT: an IPv4 or bare IPv6 address and
/// a port, or a UNIX socket path with the port `NOT_USED` (or empty).
pub fn parse_server(addr: &str, port: &str) -> Result<Endpoint, Failure> {
    let path = addr.strip_prefix("unix@").unwrap_or(addr);
    if path.starts_with('/') {
        if path.len() > MAX_SOCKET_PATH {
            return Err(Failure::Usage(format!(
                "UNIX socket path longer than {MAX_SOCKET_PATH} bytes: {}",
                escape(path)
            )));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    if addr.is_empty() || addr == "NOT_USED" {
        return Err(Failure::Usage("empty server address".into()));
    }
    let port = match port {
        "" | "NOT_USED" => {
            return Err(Failure::Usage(format!(
                "server port is '{}' but the address '{}' is not a UNIX socket path",
                escape(port),
                escape(addr)
            )))
        }
        p => parse_port(p)?,
    };
    Ok(Endpoint::Tcp {
        host: parse_host(addr)?,
        port,
    })
}

/// A port number; 0 (a server line without a port) means the ICAP default.
fn parse_port(text: &str) -> Result<u16, Failure> {
    match port_number(text) {
        Some(0) => Ok(ICAP_PORT),
        Some(p) => Ok(p),
        None => Err(Failure::Usage(format!(
            "invalid port '{}': expected 1-65535",
            escape(text)
        ))),
    }
}

/// Digits only: `str::parse` would also take a sign (`+80`).
pub fn port_number(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_host(text: &str) -> Result<Host, Failure> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let valid = !bare.is_empty()
        && bare.len() <= 253
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if valid {
        Ok(Host::Name(bare.to_string()))
    } else {
        Err(Failure::Usage(format!("invalid host '{}'", escape(text))))
    }
}

/// `icap://HOST[:PORT]/SERVICE`; IPv6 as `icap://[::1]:1344/echo`; also
/// icaps://, http://, https://, and tcp:// or tls:// with a port.
fn parse_url(url: &str) -> Result<Target, Failure> {
    let bad = |why: &str| Failure::Usage(format!("invalid target '{}': {why}", escape(url)));
    let (scheme_text, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected icap://HOST[:PORT]/SERVICE"))?;
    let scheme = probes::scheme(scheme_text).ok_or_else(|| {
        let names: Vec<&str> = probes::SCHEMES.iter().map(|s| s.name).collect();
        bad(&format!(
            "unsupported scheme '{}' (use {})",
            escape(scheme_text),
            names.join(", ")
        ))
    })?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("brackets hold an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
        };
        (format!("[{h}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match (port, scheme.default_port) {
        (None, Some(default)) => default,
        (None, None) => return Err(bad(&format!("{}:// needs a port", scheme.name))),
        (Some(p), _) => match port_number(p) {
            Some(p) if p > 0 => p,
            _ => return Err(bad(&format!("invalid port '{}'", escape(p)))),
        },
    };
    let url_path = path.strip_prefix('/').unwrap_or(path);
    if !scheme.takes_path && !url_path.is_empty() {
        return Err(bad(&format!("{}:// takes no path", scheme.name)));
    }
    Ok(Target {
        haproxy: false,
        endpoint: Endpoint::Tcp {
            host: parse_host(&host)?,
            port,
        },
        url_path: (!url_path.is_empty()).then(|| url_path.to_string()),
        scheme: Some(scheme),
        server_ssl: false,
        backend: None,
        server: None,
        maxconn: None,
        curconn: None,
        notes: Vec::new(),
        cadence: None,
        haproxy_state: None,
        send_state: None,
    })
}

#[cfg(test)]
mod test {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: parse_host(host).unwrap(),
            port,
        }
    }

    #[test]
    fn haproxy_form_ipv4_ipv6_unix() {
        let env = |k: &str| match k {
            "HAPROXY_PROXY_NAME" => Some("icap_pool".to_string()),
            "HAPROXY_SERVER_NAME" => Some("icap01".to_string()),
            _ => None,
        };
        let inv = parse(&args(&["NOT_USED", "NOT_USED", "10.0.0.5", "1344"]), &env).unwrap();
        assert!(inv.haproxy);
        assert_eq!(inv.endpoint, tcp("10.0.0.5", 1344));
        assert_eq!(
            (inv.backend.as_deref(), inv.server.as_deref()),
            (Some("icap_pool"), Some("icap01"))
        );
        let inv = parse(&args(&["NOT_USED", "NOT_USED", "::1", "11344"]), &no_env).unwrap();
        assert_eq!(inv.endpoint, tcp("::1", 11344));
        assert_eq!(inv.server, None);
        let inv = parse(
            &args(&["NOT_USED", "NOT_USED", "/run/c-icap.sock", "NOT_USED"]),
            &no_env,
        )
        .unwrap();
        assert_eq!(inv.endpoint, Endpoint::Unix("/run/c-icap.sock".into()));
        let inv = parse(&args(&["1.2.3.4", "80", "10.0.0.5", "0"]), &no_env).unwrap();
        assert_eq!(inv.endpoint, tcp("10.0.0.5", ICAP_PORT));
    }

    #[test]
    fn haproxy_form_rejects_what_haproxy_never_sends() {
        for bad in [
            ["NOT_USED", "NOT_USED", "10.0.0.5", "70000"],
            ["NOT_USED", "NOT_USED", "10.0.0.5", "-1"],
            ["NOT_USED", "NOT_USED", "10.0.0.5", "+80"],
            ["NOT_USED", "NOT_USED", "10.0.0.5", "+0"],
            ["NOT_USED", "NOT_USED", "", "1344"],
            ["NOT_USED", "NOT_USED", "10.0.0.5", "NOT_USED"],
            ["NOT_USED", "NOT_USED", "bad host!", "1344"],
        ] {
            assert!(
                matches!(parse(&args(&bad), &no_env), Err(Failure::Usage(_))),
                "{bad:?}"
            );
        }
        assert!(parse(&args(&["a", "b", "c"]), &no_env).is_err());
        assert!(parse(&[], &no_env).is_err());
    }

    #[test]
    fn url_form() {
        let inv = parse(&args(&["icap://127.0.0.1:1344/echo"]), &no_env).unwrap();
        assert!(!inv.haproxy);
        assert_eq!(inv.endpoint, tcp("127.0.0.1", 1344));
        assert_eq!(inv.url_path.as_deref(), Some("echo"));
        let inv = parse(&args(&["ICAP://[::1]/echo?mode=x"]), &no_env).unwrap();
        assert_eq!(inv.endpoint, tcp("::1", ICAP_PORT));
        assert_eq!(inv.url_path.as_deref(), Some("echo?mode=x"));
        let inv = parse(&args(&["icap://icap.example:11344"]), &no_env).unwrap();
        assert_eq!(inv.endpoint, tcp("icap.example", 11344));
        assert_eq!(inv.url_path, None);
    }

    #[test]
    fn schemes_pick_probe_tls_and_port() {
        use crate::probes::Protocol;
        for (url, probe, tls, port) in [
            ("icaps://h/echo", Protocol::Icap, true, 11344),
            ("http://h/", Protocol::Http, false, 80),
            ("HTTPS://h/x?y", Protocol::Http, true, 443),
            ("tcp://h:25", Protocol::Tcp, false, 25),
            ("tls://[::1]:993", Protocol::Tcp, true, 993),
        ] {
            let inv = parse(&args(&[url]), &no_env).unwrap();
            let scheme = inv.scheme.unwrap();
            assert_eq!((scheme.protocol, scheme.tls), (probe, tls), "{url}");
            match inv.endpoint {
                Endpoint::Tcp { port: p, .. } => assert_eq!(p, port, "{url}"),
                other => panic!("{other:?}"),
            }
        }
        let inv = parse(&args(&["https://h/x?y"]), &no_env).unwrap();
        assert_eq!(inv.url_path.as_deref(), Some("x?y"));
    }

    #[test]
    fn haproxy_server_ssl() {
        let a = args(&["NOT_USED", "NOT_USED", "10.0.0.5", "1344"]);
        let ssl =
            |v: &'static str| move |k: &str| (k == "HAPROXY_SERVER_SSL").then(|| v.to_string());
        assert!(parse(&a, &ssl("1")).unwrap().server_ssl);
        assert!(!parse(&a, &ssl("0")).unwrap().server_ssl);
        assert!(!parse(&a, &no_env).unwrap().server_ssl);
        for bad in ["yes", "true", "2", " 1"] {
            match parse(&a, &ssl(bad)) {
                Err(Failure::Usage(why)) => {
                    assert!(why.starts_with("HAPROXY_SERVER_SSL is"), "{why}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn no_arguments_take_haproxys_variables() {
        let env = |k: &str| match k {
            "HAPROXY_SERVER_ADDR" => Some("127.0.0.1".to_string()),
            "HAPROXY_SERVER_PORT" => Some("1344".to_string()),
            _ => None,
        };
        let t = parse(&[], &env).unwrap();
        assert!(t.haproxy);
        assert_eq!(t.endpoint, tcp("127.0.0.1", 1344));
        assert!(t.notes[0].starts_with("no arguments"), "{:?}", t.notes);
        // Both: argv wins, and says so.
        let t = parse(&args(&["NOT_USED", "NOT_USED", "10.0.0.9", "1344"]), &env).unwrap();
        assert_eq!(t.endpoint, tcp("10.0.0.9", 1344));
        assert!(t.notes[0].contains("the arguments win"), "{:?}", t.notes);
        let agree = parse(&args(&["NOT_USED", "NOT_USED", "127.0.0.1", "1344"]), &env).unwrap();
        assert!(agree.notes.is_empty());
        let unix = |k: &str| match k {
            "HAPROXY_SERVER_ADDR" => Some("/run/c.sock".to_string()),
            "HAPROXY_SERVER_PORT" => Some(String::new()),
            _ => None,
        };
        let t = parse(
            &args(&["NOT_USED", "NOT_USED", "/run/c.sock", "NOT_USED"]),
            &unix,
        )
        .unwrap();
        assert!(t.notes.is_empty(), "{:?}", t.notes);
        assert_eq!(
            parse(&[], &unix).unwrap().endpoint,
            Endpoint::Unix("/run/c.sock".into())
        );
    }

    #[test]
    fn haproxy_maxconn_and_curconn() {
        let a = args(&["NOT_USED", "NOT_USED", "10.0.0.5", "1344"]);
        let env = |max: &'static str, cur: &'static str| {
            move |k: &str| match k {
                "HAPROXY_SERVER_MAXCONN" => Some(max.to_string()),
                "HAPROXY_SERVER_CURCONN" => Some(cur.to_string()),
                _ => None,
            }
        };
        let t = parse(&a, &env("50", "3")).unwrap();
        assert_eq!((t.maxconn, t.curconn), (Some(50), Some(3)));
        assert!(t.notes.is_empty(), "{:?}", t.notes);
        let t = parse(&a, &env("0", "")).unwrap();
        assert_eq!((t.maxconn, t.curconn), (Some(0), None));
        // Garbage from outside is noted and ignored, never wrapped.
        let t = parse(&a, &env("-5", "99999999999999999999999")).unwrap();
        assert_eq!((t.maxconn, t.curconn), (None, None));
        assert_eq!(t.notes.len(), 2, "{:?}", t.notes);
        assert!(t.notes[0].starts_with("HAPROXY_SERVER_MAXCONN is '-5'"));
        let t = parse(&a, &env("\x1b[1m", "1")).unwrap();
        assert!(t.notes[0].contains("\\x1b[1m"), "{:?}", t.notes);
        let t = parse(&args(&["icap://h/echo"]), &env("50", "3")).unwrap();
        assert_eq!((t.maxconn, t.curconn), (None, None));
    }

    #[test]
    fn send_state_from_haproxys_variables() {
        let env = |k: &str| {
            Some(
                match k {
                    "HAPROXY_PROXY_NAME" => "icap_pool",
                    "HAPROXY_SERVER_NAME" => "icap01",
                    "HAPROXY_SERVER_CURCONN" => "3",
                    "HAPROXY_SERVER_MAXCONN" => "100",
                    _ => return None,
                }
                .to_string(),
            )
        };
        let state = |a: &[&str], env: &dyn Fn(&str) -> Option<String>| {
            let t = parse(&args(a), env).unwrap();
            assert_eq!(t.send_state, None, "built only when asked for");
            haproxy_send_state(&t)
        };
        let v6 = ["NOT_USED", "NOT_USED", "::1", "1344"];
        assert_eq!(
            state(&v6, &env).unwrap().header_with(Some("h")),
            "address=::1; port=1344; name=icap_pool/icap01; node=h; scur=3/100"
        );
        let unix = ["NOT_USED", "NOT_USED", "/run/c.sock", "NOT_USED"];
        assert_eq!(
            state(&unix, &env).unwrap().header_with(None),
            "address=unix; port=; name=icap_pool/icap01; scur=3/100"
        );
        // Without the names nothing is known.
        assert_eq!(state(&v6, &no_env), None);
    }

    #[test]
    fn port_zero_and_long_socket_paths() {
        let t = parse(&args(&["NOT_USED", "NOT_USED", "10.0.0.5", "0"]), &no_env).unwrap();
        assert!(t.notes[0].starts_with("port 0"), "{:?}", t.notes);
        let long = format!("/{}", "s".repeat(107));
        assert!(matches!(
            parse_server(&long, "NOT_USED"),
            Err(Failure::Usage(_))
        ));
        assert!(parse_server(&long[..107], "NOT_USED").is_ok());
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "127.0.0.1:1344",
            "ftp://x/echo",
            "tcp://x",
            "tls://x:443/path",
            "icap:///echo",
            "icap://h:0/echo",
            "icap://h:99999/echo",
            "icap://[::1/echo",
            "icap://[::1]x/echo",
            "icap://127.0.0.1:+1/echo",
            "icap://[localhost]:1/echo",
            "icap://[127.0.0.1]:1/echo",
            "icap://a b/echo",
        ] {
            assert!(
                matches!(parse(&args(&[bad]), &no_env), Err(Failure::Usage(_))),
                "{bad}"
            );
        }
    }
}

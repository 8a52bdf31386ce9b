//! Reading the servers of a pool from haproxy.cfg, so one command checks a
//! whole pool the way HAProxy would (`--haproxy-cfg`).
//!
//! Only what a check needs is read: `backend`/`listen` sections, whether
//! they run `option external-check` or their servers `agent-check`, their
//! `server` and `default-server` lines, and `defaults` sections, which HAProxy applies to the proxies that
//! follow them. Everything else is skipped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config_file::split_words;
use super::target::Cadence;
use super::time::parse_time;
use crate::outcome::Failure;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAddress {
    /// An IP address or a host name, resolved when checked.
    Host(String),
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub line: usize,
    pub address: ServerAddress,
    /// The traffic port; absent on `unix@` servers and on servers without one.
    pub port: Option<u16>,
    /// `port N`: the port HAProxy checks instead of the traffic port.
    pub check_port: Option<u16>,
    /// `addr A`: the address HAProxy checks instead of the server's.
    pub check_addr: Option<String>,
    /// `ssl` or `check-ssl`.
    pub ssl: bool,
    /// `maxconn N`; HAProxy's default, 0, is no limit.
    pub maxconn: u64,
    pub disabled: bool,
    /// `agent-check`: HAProxy asks an agent (the resident mode) about it.
    pub agent_check: bool,
    /// Why the line cannot be checked (an address form not read, a bad
    /// port): that server fails alone, with this reason, as a
    /// configuration error.
    pub problem: Option<String>,
    /// `inter`, `fastinter`, `downinter`, `rise`, `fall`: how often the
    /// resident mode checks it.
    pub cadence: CadenceGiven,
}

/// A server line's `inter`, `fastinter`, `downinter` (each only if given,
/// there or on `default-server`), `rise` and `fall` (HAProxy's 2 and 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CadenceGiven {
    pub inter: Option<Duration>,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub rise: u32,
    pub fall: u32,
}

impl Default for CadenceGiven {
    fn default() -> CadenceGiven {
        let haproxy = Cadence::default();
        CadenceGiven {
            inter: None,
            fastinter: None,
            downinter: None,
            rise: haproxy.rise,
            fall: haproxy.fall,
        }
    }
}

impl CadenceGiven {
    /// As HAProxy reads the line, with `inter` defaulting to `default_inter`
    /// (`--interval`, or HAProxy's 2 s), and `fastinter` and `downinter`
    /// to `inter`.
    pub fn with_default(&self, default_inter: Duration) -> Cadence {
        let inter = self.inter.unwrap_or(default_inter);
        Cadence {
            inter,
            fastinter: self.fastinter.unwrap_or(inter),
            downinter: self.downinter.unwrap_or(inter),
            rise: self.rise,
            fall: self.fall,
        }
    }
}

impl Server {
    /// Address and port a check connects to, in HAProxy's argv form.
    pub fn check_target(&self) -> (String, String) {
        let addr = match (&self.check_addr, &self.address) {
            (Some(a), _) => a.clone(),
            (None, ServerAddress::Host(h)) => h.clone(),
            (None, ServerAddress::Unix(p)) => p.display().to_string(),
        };
        let port = match (self.check_port, self.port, &self.address) {
            (Some(p), _, _) | (None, Some(p), _) => p.to_string(),
            (None, None, ServerAddress::Unix(_)) => "NOT_USED".to_string(),
            (None, None, ServerAddress::Host(_)) => "0".to_string(),
        };
        (addr, port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub line: usize,
    pub external_check: bool,
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyConfig {
    pub path: PathBuf,
    pub backends: Vec<Backend>,
}

impl HaproxyConfig {
    /// The backends named, or by default every one with `option
    /// external-check` or a server with `agent-check` (a pool whose agent is
    /// the resident mode has no external check).
    pub fn select(&self, names: &[String]) -> Result<Vec<&Backend>, Failure> {
        if names.is_empty() {
            return Ok(self
                .backends
                .iter()
                .filter(|b| b.external_check || b.servers.iter().any(|s| s.agent_check))
                .collect());
        }
        names
            .iter()
            .map(|n| {
                self.backends.iter().find(|b| &b.name == n).ok_or_else(|| {
                    Failure::Usage(format!("{}: no backend '{n}'", self.path.display()))
                })
            })
            .collect()
    }
}

pub fn load(path: &Path) -> Result<HaproxyConfig, Failure> {
    let text = super::config_file::read_text_file(path, "haproxy.cfg")?;
    parse(&text, path)
}

/// Settings a `defaults` section passes to the proxies after it.
#[derive(Debug, Clone, Default)]
struct Inherited {
    external_check: bool,
    default_server: Vec<String>,
}

pub fn parse(text: &str, path: &Path) -> Result<HaproxyConfig, Failure> {
    let at = |line: usize, why: String| Failure::Usage(format!("{}:{line}: {why}", path.display()));
    let mut defaults = Inherited::default();
    let mut backends: Vec<Backend> = Vec::new();
    // The section being read: None outside proxies we care about.
    enum Current {
        Defaults,
        Proxy(Inherited),
        Other,
    }
    let mut current = Current::Other;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let words = split_words(raw).map_err(|why| at(line, why.to_string()))?;
        let Some(keyword) = words.first().map(String::as_str) else {
            continue;
        };
        match keyword {
            "defaults" => {
                // A new defaults section starts from scratch (HAProxy resets them).
                defaults = Inherited::default();
                current = Current::Defaults;
                continue;
            }
            "backend" | "listen" => {
                let name = words
                    .get(1)
                    .ok_or_else(|| at(line, format!("'{keyword}' without a name")))?;
                backends.push(Backend {
                    name: name.clone(),
                    line,
                    external_check: defaults.external_check,
                    servers: Vec::new(),
                });
                current = Current::Proxy(defaults.clone());
                continue;
            }
            "global" | "frontend" | "peers" | "resolvers" | "userlist" | "mailers" | "program"
            | "http-errors" | "ring" | "cache" | "crt-store" | "traces" | "log-forward" => {
                current = Current::Other;
                continue;
            }
            _ => {}
        }
        let (option, negated) = match (
            words.first().map(String::as_str),
            words.get(1).map(String::as_str),
        ) {
            (Some("no"), Some("option")) => (words.get(2).map(String::as_str), true),
            (Some("option"), _) => (words.get(1).map(String::as_str), false),
            _ => (None, false),
        };
        match &mut current {
            Current::Defaults => {
                if option == Some("external-check") {
                    defaults.external_check = !negated;
                } else if keyword == "default-server" {
                    defaults.default_server.extend(words[1..].iter().cloned());
                }
            }
            Current::Proxy(inherited) => {
                let Some(backend) = backends.last_mut() else {
                    continue;
                };
                if option == Some("external-check") {
                    backend.external_check = !negated;
                } else if keyword == "default-server" {
                    inherited.default_server.extend(words[1..].iter().cloned());
                } else if keyword == "server" {
                    let name = words
                        .get(1)
                        .ok_or_else(|| at(line, "'server' without a name".to_string()))?;
                    // One unreadable server line does not take the pool down.
                    let server =
                        parse_server(&words, &inherited.default_server).unwrap_or_else(|why| {
                            Server {
                                name: name.clone(),
                                line,
                                address: ServerAddress::Host(String::new()),
                                port: None,
                                check_port: None,
                                check_addr: None,
                                ssl: false,
                                maxconn: 0,
                                disabled: false,
                                agent_check: false,
                                cadence: CadenceGiven::default(),
                                problem: Some(format!(
                                    "{}:{line}: {}",
                                    path.display(),
                                    crate::text::escape_all(&why)
                                )),
                            }
                        });
                    backend.servers.push(Server { line, ..server });
                } else if keyword == "server-template" {
                    log::warn!(
                        "{}:{line}: server-template is not read; its servers are not checked",
                        path.display()
                    );
                }
            }
            Current::Other => {}
        }
    }
    Ok(HaproxyConfig {
        path: path.to_path_buf(),
        backends,
    })
}

/// `server NAME ADDRESS[:PORT] [PARAMS...]`, after the `default-server` params.
fn parse_server(words: &[String], defaults: &[String]) -> Result<Server, String> {
    let name = words.get(1).ok_or("'server' without a name")?;
    let address = words
        .get(2)
        .ok_or_else(|| format!("server '{name}' without an address"))?;
    let (address, port) =
        parse_address(address).map_err(|why| format!("server '{name}': {why}"))?;
    let mut server = Server {
        name: name.clone(),
        line: 0,
        address,
        port,
        check_port: None,
        check_addr: None,
        ssl: false,
        maxconn: 0,
        disabled: false,
        agent_check: false,
        problem: None,
        cadence: CadenceGiven::default(),
    };
    let params: Vec<&String> = defaults.iter().chain(&words[3..]).collect();
    let mut i = 0;
    while i < params.len() {
        let value = params.get(i + 1).map(|s| s.as_str());
        match params[i].as_str() {
            "port" => {
                let v = value.ok_or_else(|| format!("server '{name}': 'port' without a value"))?;
                server.check_port =
                    Some(parse_port(v).map_err(|why| format!("server '{name}': {why}"))?);
                i += 1;
            }
            "addr" => {
                let v = value.ok_or_else(|| format!("server '{name}': 'addr' without a value"))?;
                server.check_addr = Some(v.to_string());
                i += 1;
            }
            key @ ("inter" | "fastinter" | "downinter") => {
                let v = value.ok_or_else(|| format!("server '{name}': '{key}' without a value"))?;
                let t = parse_time(v)
                    .ok()
                    .filter(|t| !t.is_zero())
                    .ok_or_else(|| format!("server '{name}': invalid {key} '{v}'"))?;
                match key {
                    "inter" => server.cadence.inter = Some(t),
                    "fastinter" => server.cadence.fastinter = Some(t),
                    _ => server.cadence.downinter = Some(t),
                }
                i += 1;
            }
            key @ ("rise" | "fall") => {
                let v = value.ok_or_else(|| format!("server '{name}': '{key}' without a value"))?;
                let n = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| format!("server '{name}': invalid {key} '{v}'"))?;
                match key {
                    "rise" => server.cadence.rise = n,
                    _ => server.cadence.fall = n,
                }
                i += 1;
            }
            "maxconn" => {
                let v =
                    value.ok_or_else(|| format!("server '{name}': 'maxconn' without a value"))?;
                server.maxconn = crate::probes::icap::capacity::count(v)
                    .ok_or_else(|| format!("server '{name}': invalid maxconn '{v}'"))?;
                i += 1;
            }
            "ssl" | "check-ssl" => server.ssl = true,
            "no-ssl" | "no-check-ssl" => server.ssl = false,
            "disabled" => server.disabled = true,
            "enabled" => server.disabled = false,
            "agent-check" => server.agent_check = true,
            "no-agent-check" => server.agent_check = false,
            _ => {}
        }
        i += 1;
    }
    Ok(server)
}

fn parse_port(text: &str) -> Result<u16, String> {
    match super::target::port_number(text) {
        Some(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port '{text}'")),
    }
}

/// HAProxy's address forms: `1.2.3.4:80`, `host:80`, `[::1]:80`, `::1:80`
/// (as in HAProxy, the last colon always separates the port), `ipv4@`/`ipv6@`
/// prefixes, `unix@/path` or a bare path, and names or IPv4 without a port.
fn parse_address(text: &str) -> Result<(ServerAddress, Option<u16>), String> {
    if let Some(path) = text.strip_prefix("unix@") {
        return Ok((ServerAddress::Unix(PathBuf::from(path)), None));
    }
    if text.starts_with('/') {
        return Ok((ServerAddress::Unix(PathBuf::from(text)), None));
    }
    if text.contains('$') {
        return Err(format!(
            "address '{text}' uses an environment variable, which is not read"
        ));
    }
    let bare = text
        .strip_prefix("ipv4@")
        .or_else(|| text.strip_prefix("ipv6@"))
        .unwrap_or(text);
    if let Some(rest) = bare.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in '{text}'"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if after.is_empty() => None,
            None => return Err(format!("junk after ']' in '{text}'")),
        };
        return Ok((ServerAddress::Host(host.to_string()), port));
    }
    match bare.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            if port.contains(['-', '+']) {
                return Err(format!("port ranges and offsets are not read ('{text}')"));
            }
            let port = if port.is_empty() {
                None
            } else {
                Some(parse_port(port)?)
            };
            Ok((ServerAddress::Host(host.to_string()), port))
        }
        Some(_) => Err(format!("invalid address '{text}'")),
        None if bare.is_empty() => Err("empty address".into()),
        None => Ok((ServerAddress::Host(bare.to_string()), None)),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const CFG: &str = "\
global
    external-check
    insecure-fork-wanted
defaults
    mode tcp
    option external-check
    default-server inter 2s fall 3
frontend fe
    bind :80
    default_backend icap_pool
backend icap_pool
    external-check command /usr/local/bin/icap-check
    server icap01 10.0.0.5:1344 check inter 5s
    server icap02 10.0.0.6 check port 11344 ssl
    server icap03 [::1]:1344 check
    server icap04 ::1:1345 check addr 127.0.0.2
    server icap05 unix@/run/c-icap.sock check
    server icap06 icap.example.com:1344 check disabled
    server icap07 ipv4@127.0.0.1:1344 check
defaults
    mode http
backend web
    default-server port 8080
    server web1 127.0.0.1:80 check
listen both
    option external-check
    server l1 /run/l.sock
";

    fn parsed() -> HaproxyConfig {
        parse(CFG, Path::new("/etc/haproxy/haproxy.cfg")).unwrap()
    }

    #[test]
    fn backends_and_inheritance() {
        let c = parsed();
        let names: Vec<_> = c
            .backends
            .iter()
            .map(|b| (b.name.as_str(), b.external_check))
            .collect();
        assert_eq!(names, [("icap_pool", true), ("web", false), ("both", true)]);
        let selected: Vec<_> = c
            .select(&[])
            .unwrap()
            .iter()
            .map(|b| b.name.clone())
            .collect();
        assert_eq!(selected, ["icap_pool", "both"]);
        assert!(c.select(&["nope".into()]).is_err());
        assert_eq!(
            c.select(&["web".into()]).unwrap()[0].servers[0].check_port,
            Some(8080)
        );
    }

    #[test]
    fn maxconn_from_the_line_or_default_server() {
        let c = parse(
            "backend b\n    option external-check\n    default-server maxconn 20\n    server s1 10.0.0.5:1344 check\n    server s2 10.0.0.6:1344 maxconn 50\nbackend c\n    server s3 10.0.0.7:1344\n    server s4 10.0.0.8:1344 maxconn lots\n",
            Path::new("h.cfg"),
        )
        .unwrap();
        let maxconn: Vec<u64> = c
            .backends
            .iter()
            .flat_map(|b| &b.servers)
            .map(|s| s.maxconn)
            .collect();
        assert_eq!(maxconn[..3], [20, 50, 0]);
        let bad = &c.backends[1].servers[1];
        assert!(
            bad.problem
                .as_deref()
                .is_some_and(|p| p.contains("invalid maxconn 'lots'")),
            "{:?}",
            bad.problem
        );
    }

    #[test]
    fn every_server_line_form() {
        let c = parsed();
        let s = &c.backends[0].servers;
        let targets: Vec<_> = s.iter().map(Server::check_target).collect();
        let expect = |a: &str, p: &str| (a.to_string(), p.to_string());
        assert_eq!(targets[0], expect("10.0.0.5", "1344"));
        assert_eq!(targets[1], expect("10.0.0.6", "11344"));
        assert!(s[1].ssl && !s[0].ssl);
        assert_eq!(targets[2], expect("::1", "1344"));
        assert_eq!(targets[3], expect("127.0.0.2", "1345"));
        assert_eq!(targets[4], expect("/run/c-icap.sock", "NOT_USED"));
        assert!(s[5].disabled);
        assert_eq!(targets[5], expect("icap.example.com", "1344"));
        assert_eq!(targets[6], expect("127.0.0.1", "1344"));
        assert_eq!(s[0].line, 13);
        assert_eq!(
            c.backends[2].servers[0].check_target(),
            expect("/run/l.sock", "NOT_USED")
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        // Lines that break the file: the whole pool is a usage error.
        let cases = [
            ("backend b\n server\n", 2, "without a name"),
            ("backend\n", 1, "without a name"),
            ("backend b\n server s1 \"10.0.0.1\n", 2, "unterminated"),
        ];
        for (text, line, why) in cases {
            match parse(text, Path::new("h.cfg")) {
                Err(Failure::Usage(msg)) => {
                    assert!(msg.starts_with(&format!("h.cfg:{line}: ")), "{msg}");
                    assert!(msg.contains(why), "{text:?}: {msg}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    /// A server line that cannot be checked fails that server alone.
    #[test]
    fn bad_server_lines_fail_alone() {
        let cases = [
            ("server s1", "without an address"),
            ("server s1 10.0.0.1:99999", "invalid port"),
            ("server s1 10.0.0.1:65536", "invalid port"),
            ("server s1 10.0.0.1:1344 port x", "invalid port 'x'"),
            ("server s1 10.0.0.1:1344 port", "'port' without a value"),
            ("server s1 10.0.0.1:1000-1010", "ranges"),
            ("server s1 ${ADDR}:80", "environment variable"),
            ("server s1 [::1:80", "unclosed"),
        ];
        for (line, why) in cases {
            let text = format!("backend b\n {line}\n server ok 10.0.0.2:1344\n");
            let c = parse(&text, Path::new("h.cfg")).unwrap();
            let s = &c.backends[0].servers;
            let problem = s[0].problem.as_deref().unwrap_or_default();
            assert!(
                problem.starts_with("h.cfg:2: ") && problem.contains(why),
                "{line}: {problem}"
            );
            assert_eq!((s[1].name.as_str(), s[1].problem.as_deref()), ("ok", None));
        }
    }

    #[test]
    fn check_intervals_as_haproxy_reads_them() {
        let c = parse(
            "backend b\n default-server inter 5s fall 4\n server a 10.0.0.1:1344 check rise 3\n\
             server b 10.0.0.2:1344 check inter 500 fastinter 100ms downinter 10s\n\
             server c 10.0.0.3:1344 inter soon\n",
            Path::new("x"),
        )
        .unwrap();
        let s = &c.backends[0].servers;
        let ms = |d: std::time::Duration| d.as_millis();
        let haproxy = Cadence::default().inter;
        let a = s[0].cadence.with_default(haproxy);
        assert_eq!(
            (
                ms(a.inter),
                ms(a.fastinter),
                ms(a.downinter),
                a.rise,
                a.fall
            ),
            (5000, 5000, 5000, 3, 4)
        );
        let b = s[1].cadence.with_default(haproxy);
        assert_eq!(
            (
                ms(b.inter),
                ms(b.fastinter),
                ms(b.downinter),
                b.rise,
                b.fall
            ),
            (500, 100, 10000, 2, 4)
        );
        assert!(s[2]
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("invalid inter 'soon'")));
        // No `inter` anywhere: the caller's default (--interval) for all three.
        let d = parse(
            "backend b\n server d 10.0.0.4:1344 fall 1 fastinter 300ms\n",
            Path::new("x"),
        )
        .unwrap();
        let d = d.backends[0].servers[0]
            .cadence
            .with_default(Duration::from_millis(700));
        assert_eq!(
            (
                ms(d.inter),
                ms(d.fastinter),
                ms(d.downinter),
                d.rise,
                d.fall
            ),
            (700, 300, 700, 2, 1)
        );
    }

    /// A pool whose agent is the resident mode has no external check: its
    /// `agent-check` servers (on the line or `default-server`) select it.
    #[test]
    fn agent_check_servers_select_their_backend() {
        let c = parse(
            "backend agent\n server a 10.0.0.1:1344 agent-check agent-port 5555\n\
             backend by_default\n default-server agent-check agent-port 5555\n server b 10.0.0.2:1344\n\
             backend not_any_more\n default-server agent-check\n server c 10.0.0.3:1344 no-agent-check\n\
             backend plain\n server d 10.0.0.4:1344 check\n",
            Path::new("x"),
        )
        .unwrap();
        let selected: Vec<_> = c
            .select(&[])
            .unwrap()
            .iter()
            .map(|b| b.name.clone())
            .collect();
        assert_eq!(selected, ["agent", "by_default"]);
    }

    #[test]
    fn no_option_external_check_overrides_defaults() {
        let c = parse(
            "defaults\n option external-check\nbackend a\n no option external-check\n",
            Path::new("x"),
        )
        .unwrap();
        assert!(!c.backends[0].external_check);
    }
}

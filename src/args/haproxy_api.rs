//! The servers of the running HAProxy, read from its runtime API
//! (`--haproxy-socket`): the file knows neither `add server`, nor
//! `server-template` slots, nor addresses changed by resolvers, nor servers
//! in maintenance.
//!
//! Only read-only commands, so a socket declared `level user` is enough:
//! `show servers state` (names, addresses, ports, states; at level user
//! `show stat` has no addresses), `show stat` (weights, sessions, rise and
//! fall, for `--send-state`) and `show info` (the node name). The socket is
//! outside input like a server: one deadline for all of it, answers bounded,
//! every field checked. The parsers are pure functions; [`read_pool`] is the
//! small client around them, for the one-shot run and the resident mode.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::send_state::{state_word, SendState};
use crate::net::{Connection, Deadline, Endpoint, Host};
use crate::outcome::{Failure, HaproxyState, Phase};
use crate::text::{describe_io, escape};

/// The deadline of one reading of the runtime API, all its commands
/// together. Fixed, not `--timeout` (a check's, which a config section may
/// change per server): the socket is local and answers 1,000 servers in a
/// few milliseconds; a HAProxy that takes seconds is stuck.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The largest answer read: `show stat` of 1,000 servers is 230 KB.
pub const MAX_ANSWER: usize = 16 << 20;

/// The command that lists servers with their addresses at level user.
pub const SERVERS_STATE: &str = "show servers state";
/// Servers and backends (`-1`: every proxy, `6`: backends and servers, `-1`:
/// every server); `show stat` alone also lists frontends.
pub const STAT: &str = "show stat -1 6 -1";
pub const INFO: &str = "show info";

/// `--haproxy-socket`: a UNIX socket path, or `ipv4@IP:PORT` /
/// `ipv6@[IP]:PORT` as `stats socket` writes them (`unix@PATH` too).
pub fn parse_socket(text: &str) -> Result<Endpoint, String> {
    let bad = |why: &str| format!("invalid runtime API address '{}': {why}", escape(text));
    if let Some(path) = text.strip_prefix("unix@") {
        return unix_path(path).map_err(|why| bad(&why));
    }
    let tcp = |rest: &str, v6: bool| -> Result<Endpoint, String> {
        let (host, port) = if v6 {
            let inner = rest
                .strip_prefix('[')
                .and_then(|r| r.split_once("]:"))
                .ok_or_else(|| bad("expected ipv6@[IP]:PORT"))?;
            (inner.0, inner.1)
        } else {
            rest.rsplit_once(':')
                .ok_or_else(|| bad("expected ipv4@IP:PORT"))?
        };
        let ip: IpAddr = host.parse().map_err(|_| bad("not a literal IP address"))?;
        if ip.is_ipv6() != v6 {
            return Err(bad("the address family does not match its prefix"));
        }
        let port = match super::target::port_number(port) {
            Some(p) if p > 0 => p,
            _ => return Err(bad("invalid port")),
        };
        Ok(Endpoint::Tcp {
            host: Host::Ip(ip),
            port,
        })
    };
    if let Some(rest) = text.strip_prefix("ipv4@") {
        return tcp(rest, false);
    }
    if let Some(rest) = text.strip_prefix("ipv6@") {
        return tcp(rest, true);
    }
    if text.contains('@') {
        return Err(bad("use a path, unix@PATH, ipv4@IP:PORT or ipv6@[IP]:PORT"));
    }
    unix_path(text).map_err(|why| bad(&why))
}

fn unix_path(path: &str) -> Result<Endpoint, String> {
    // `sun_path` holds 107 bytes and its NUL.
    match path.len() {
        0 => Err("empty path".into()),
        n if n > 107 => Err("a UNIX socket path is at most 107 bytes".into()),
        _ => Ok(Endpoint::Unix(PathBuf::from(path))),
    }
}

/// One row of `show servers state`, the fields a check needs, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRow {
    pub backend: String,
    pub server: String,
    /// `srv_addr`: an IP (IPv6 without brackets); `None` for `-` (a
    /// `unix@` server, or an address not resolved).
    pub addr: Option<IpAddr>,
    pub op_state: u8,
    pub admin_state: u32,
    pub check_health: u64,
    /// `srv_check_state` flags: 0x04 is "enabled".
    pub check_state: u32,
    /// `srv_port`, 0 when none (`unix@`, or no port on the server line).
    pub port: u16,
    /// `srv_check_port`, 0 unless `port N`.
    pub check_port: u16,
    /// `srv_check_addr`, `addr A`.
    pub check_addr: Option<IpAddr>,
    pub ssl: bool,
}

impl StateRow {
    /// HAProxy's state word as its stats show it, from `srv_op_state` and
    /// `srv_admin_state` (include/haproxy/server-t.h): maintenance flags
    /// first (forced, inherited, `disabled`, resolution: 0x01 0x02 0x04
    /// 0x20), then stopped is DOWN, stopping NOLB, running or starting UP
    /// unless drained (0x08 forced, 0x10 inherited).
    pub fn state(&self) -> HaproxyState {
        const MAINT: u32 = 0x01 | 0x02 | 0x04 | 0x20;
        const DRAIN: u32 = 0x08 | 0x10;
        if self.admin_state & MAINT != 0 {
            HaproxyState::Maint
        } else if self.op_state == 0 {
            HaproxyState::Down
        } else if self.op_state == 3 {
            HaproxyState::Nolb
        } else if self.admin_state & DRAIN != 0 {
            HaproxyState::Drain
        } else {
            HaproxyState::Up
        }
    }

    fn check_enabled(&self) -> bool {
        self.check_state & 0x04 != 0
    }
}

/// Why an answer of the runtime API cannot be read: said of its first
/// line, which is what HAProxy says when it refuses a command.
fn refused(answer: &str, command: &str) -> String {
    let first = answer.lines().next().unwrap_or("").trim();
    if first.is_empty() {
        return format!("empty answer to '{command}': is this HAProxy's runtime API?");
    }
    if first.starts_with("Unknown command") {
        return format!(
            "'{command}' is an unknown command there: not HAProxy's runtime API, or a HAProxy older than 1.8"
        );
    }
    if first.starts_with("Permission denied") {
        return format!(
            "'{command}': permission denied (declare the socket `level user` or above)"
        );
    }
    format!(
        "not HAProxy's answer to '{command}': it begins '{}'",
        escape(first)
    )
}

/// HAProxy's names (proxies, servers): letters, digits, `-_.:`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn number<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The lines of an answer before the empty line that ends every answer,
/// and whether that line came (no: the answer is truncated). Anything but
/// blank lines after it is not one answer.
fn body<'a>(answer: &'a str, command: &str) -> Result<(Vec<&'a str>, bool), String> {
    let end = if answer.starts_with('\n') {
        Some(0)
    } else {
        answer.find("\n\n")
    };
    let Some(end) = end else {
        return Ok((answer.lines().collect(), false));
    };
    if !answer[end..].trim().is_empty() {
        return Err(format!("more than one answer to '{command}'"));
    }
    Ok((
        answer[..end].split('\n').filter(|_| end > 0).collect(),
        true,
    ))
}

fn truncated(command: &str) -> String {
    format!("the answer to '{command}' is truncated")
}

/// `show servers state`: a version line `1`, `# ` and the column names,
/// one row per server of exactly as many fields separated by spaces, an
/// empty line. Columns are found by name, so columns HAProxy adds later do
/// not matter.
pub fn parse_servers_state(answer: &str) -> Result<Vec<StateRow>, String> {
    let (lines, complete) = body(answer, SERVERS_STATE)?;
    let (Some(&"1"), Some(header)) = (lines.first(), lines.get(1)) else {
        return Err(refused(answer, SERVERS_STATE));
    };
    let names: Vec<&str> = header
        .strip_prefix("# ")
        .ok_or_else(|| refused(answer, SERVERS_STATE))?
        .split(' ')
        .collect();
    if !complete {
        return Err(truncated(SERVERS_STATE));
    }
    let column = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| format!("'{SERVERS_STATE}' has no column {name}"))
    };
    let [be, srv, addr, op, adm, health, chk_state, port, chk_port, chk_addr, ssl] = [
        "be_name",
        "srv_name",
        "srv_addr",
        "srv_op_state",
        "srv_admin_state",
        "srv_check_health",
        "srv_check_state",
        "srv_port",
        "srv_check_port",
        "srv_check_addr",
        "srv_use_ssl",
    ]
    .map(column);
    let [be, srv, addr, op, adm, health, chk_state, port, chk_port, chk_addr, ssl] = [
        be?, srv?, addr?, op?, adm?, health?, chk_state?, port?, chk_port?, chk_addr?, ssl?,
    ];
    let mut rows = Vec::with_capacity(lines.len() - 2);
    for (i, line) in lines.iter().enumerate().skip(2) {
        let at = |why: &str| format!("'{SERVERS_STATE}' line {}: {why}", i + 1);
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() != names.len() {
            return Err(at(&format!(
                "{} fields for {} columns",
                fields.len(),
                names.len()
            )));
        }
        let field = |i: usize| fields[i];
        let num = |i: usize, what: &str| {
            number::<u64>(field(i))
                .ok_or_else(|| at(&format!("{what} '{}' is not a number", escape(field(i)))))
        };
        let ip = |i: usize, what: &str| match field(i) {
            "-" => Ok(None),
            a => a
                .parse::<IpAddr>()
                .map(Some)
                .map_err(|_| at(&format!("{what} '{}' is not an IP address", escape(a)))),
        };
        let small = |v: u64, what: &str| {
            u16::try_from(v).map_err(|_| at(&format!("{what} {v} is out of range")))
        };
        let (backend, server) = (field(be), field(srv));
        if !valid_name(backend) || !valid_name(server) {
            return Err(at(&format!(
                "'{}/{}' is not a HAProxy name",
                escape(backend),
                escape(server)
            )));
        }
        let op_state = num(op, "srv_op_state")?;
        if op_state > 3 {
            return Err(at(&format!("unknown srv_op_state {op_state}")));
        }
        rows.push(StateRow {
            backend: backend.to_string(),
            server: server.to_string(),
            addr: ip(addr, "srv_addr")?,
            op_state: op_state as u8,
            admin_state: u32::try_from(num(adm, "srv_admin_state")?)
                .map_err(|_| at("srv_admin_state out of range"))?,
            check_health: num(health, "srv_check_health")?,
            check_state: u32::try_from(num(chk_state, "srv_check_state")?)
                .map_err(|_| at("srv_check_state out of range"))?,
            port: small(num(port, "srv_port")?, "srv_port")?,
            check_port: small(num(chk_port, "srv_check_port")?, "srv_check_port")?,
            check_addr: ip(chk_addr, "srv_check_addr")?,
            ssl: num(ssl, "srv_use_ssl")? != 0,
        });
    }
    Ok(rows)
}

/// One row of `show stat`, what `--send-state` needs. Empty fields are
/// `None` (a server without checks has no rise or fall).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatRow {
    pub proxy: String,
    /// The server's name, or `BACKEND` for the backend's own row.
    pub name: String,
    pub scur: Option<u64>,
    pub qcur: Option<u64>,
    /// Effective weight; the backend's row holds the total.
    pub weight: Option<u64>,
    pub rise: Option<u64>,
    pub fall: Option<u64>,
}

/// Splits one CSV line of `show stat`: HAProxy quotes a field that holds a
/// comma or a quote (`"a ""b"", c"`).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, '"') if field.is_empty() => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err("an unterminated quote".into());
    }
    fields.push(field);
    Ok(fields)
}

/// `show stat`: `# ` and the column names separated by commas, one CSV row
/// per proxy or server, an empty line. Columns by name.
pub fn parse_stat(answer: &str) -> Result<Vec<StatRow>, String> {
    let (lines, complete) = body(answer, STAT)?;
    let header = lines
        .first()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| refused(answer, STAT))?;
    if !complete {
        return Err(truncated(STAT));
    }
    let names = csv_fields(header)?;
    let column = |name: &str| names.iter().position(|n| n == name);
    let (Some(px), Some(sv)) = (column("pxname"), column("svname")) else {
        return Err(refused(answer, STAT));
    };
    let [scur, qcur, weight, rise, fall] =
        ["scur", "qcur", "weight", "check_rise", "check_fall"].map(column);
    let mut rows = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate().skip(1) {
        let fields = csv_fields(line).map_err(|why| format!("'{STAT}' line {}: {why}", i + 1))?;
        let get = |c: Option<usize>| c.and_then(|c| fields.get(c)).map(String::as_str);
        let num = |c: Option<usize>| get(c).and_then(number::<u64>);
        let (Some(proxy), Some(name)) = (get(Some(px)), get(Some(sv))) else {
            return Err(format!("'{STAT}' line {}: too few fields", i + 1));
        };
        rows.push(StatRow {
            proxy: proxy.to_string(),
            name: name.to_string(),
            scur: num(scur),
            qcur: num(qcur),
            weight: num(weight),
            rise: num(rise),
            fall: num(fall),
        });
    }
    Ok(rows)
}

/// `show info`'s `node: NAME` line (2.6 writes it in lower case), HAProxy's
/// `node` setting, its host's name by default.
pub fn parse_node(answer: &str) -> Option<String> {
    answer
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(key, _)| key.eq_ignore_ascii_case("node"))
        .map(|(_, n)| n.trim().to_string())
        .filter(|n| !n.is_empty())
}

/// A server of the running HAProxy, as a check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeServer {
    pub backend: String,
    pub name: String,
    pub state: HaproxyState,
    /// The server's address; `None` when the runtime API does not say (a
    /// `unix@` server: its path is only in haproxy.cfg).
    pub addr: Option<IpAddr>,
    /// The traffic port, 0 when none.
    pub port: u16,
    /// `addr A` and `port N` of the server line: where HAProxy checks.
    pub check_addr: Option<IpAddr>,
    pub check_port: u16,
    pub ssl: bool,
    /// For `--send-state`.
    pub send_state: SendState,
}

impl RuntimeServer {
    /// The address a check connects to, as HAProxy's `SERVER_ADDR`, if known.
    pub fn check_address(&self) -> Option<String> {
        self.check_addr.or(self.addr).map(|ip| ip.to_string())
    }

    /// The port a check connects to, as HAProxy's `SERVER_PORT`: the check
    /// port, else the traffic port; `0` (none on the server line) means
    /// the ICAP port, as in the HAProxy form.
    pub fn check_port_text(&self) -> String {
        match self.check_port {
            0 => self.port.to_string(),
            p => p.to_string(),
        }
    }
}

/// Joins the answers: every server of `backends` (all when empty), in the
/// order HAProxy lists them, with what `show stat` and `show info` add.
pub fn servers(
    rows: Vec<StateRow>,
    stats: &[StatRow],
    node: Option<String>,
    backends: &[String],
) -> Vec<RuntimeServer> {
    let stat: HashMap<(&str, &str), &StatRow> = stats
        .iter()
        .map(|s| ((s.proxy.as_str(), s.name.as_str()), s))
        .collect();
    rows.into_iter()
        .filter(|r| backends.is_empty() || backends.contains(&r.backend))
        .map(|r| {
            let own = stat.get(&(r.backend.as_str(), r.server.as_str()));
            let total = stat.get(&(r.backend.as_str(), "BACKEND"));
            let state = own.map(|s| {
                state_word(
                    r.op_state,
                    r.check_enabled(),
                    r.check_health,
                    s.rise.unwrap_or(0),
                    s.fall.unwrap_or(0),
                )
            });
            let send_state = SendState {
                state,
                address: Some(r.addr.map_or("unix".to_string(), |a| a.to_string())),
                port: Some(match (r.addr, r.port) {
                    (None, _) => String::new(),
                    (Some(_), p) => p.to_string(),
                }),
                name: format!("{}/{}", r.backend, r.server),
                node: node.clone(),
                weight: own.and_then(|s| s.weight).zip(total.and_then(|t| t.weight)),
                // HAProxy writes the backend's connections less its queue.
                scur: own.and_then(|s| s.scur).zip(
                    total
                        .and_then(|t| t.scur.zip(t.qcur))
                        .map(|(c, q)| c.saturating_sub(q)),
                ),
                qcur: own.and_then(|s| s.qcur),
            };
            RuntimeServer {
                state: r.state(),
                backend: r.backend,
                name: r.server,
                addr: r.addr,
                port: r.port,
                check_addr: r.check_addr,
                check_port: r.check_port,
                ssl: r.ssl,
                send_state,
            }
        })
        .collect()
}

/// Reads the servers of `backends` (all when empty) from the runtime API at
/// `addr`, within `deadline`. Any failure is the reading's as a whole: a
/// usage error saying what is wrong with the socket or its answers.
pub fn read_pool(
    addr: &Endpoint,
    deadline: Deadline,
    backends: &[String],
) -> Result<Vec<RuntimeServer>, Failure> {
    let fail =
        |why: String| Failure::Usage(format!("HAProxy's runtime API at {}: {why}", shown(addr)));
    let rows = parse_servers_state(&query(addr, SERVERS_STATE, deadline)?).map_err(fail)?;
    let stats = parse_stat(&query(addr, STAT, deadline)?).map_err(fail)?;
    let node = parse_node(&query(addr, INFO, deadline)?);
    Ok(servers(rows, &stats, node, backends))
}

/// The address as the operator wrote it.
pub fn shown(addr: &Endpoint) -> String {
    match addr {
        Endpoint::Unix(p) => escape(&p.display().to_string()),
        Endpoint::Tcp { host, port } => format!("{host}:{port}"),
    }
}

/// Sends one command and reads the whole answer: HAProxy's runtime API
/// runs it and closes (it is not in `prompt` mode), so the answer is what
/// comes before the end of the stream, at most [`MAX_ANSWER`].
pub fn query(addr: &Endpoint, command: &str, deadline: Deadline) -> Result<String, Failure> {
    let fail = |why: String| {
        Failure::Usage(format!(
            "HAProxy's runtime API at {} ('{command}'): {why}",
            shown(addr)
        ))
    };
    let mut conn = connect(addr, deadline).map_err(|f| fail(f.to_string()))?;
    conn.send(format!("{command}\n").as_bytes(), Phase::Send)
        .map_err(|f| fail(f.to_string()))?;
    let mut answer = Vec::new();
    loop {
        let got = conn.fill(Phase::Receive).map_err(|f| fail(f.to_string()))?;
        let data = conn.buffered();
        if answer.len() + data.len() > MAX_ANSWER {
            return Err(fail(format!(
                "an answer larger than {} MiB",
                MAX_ANSWER >> 20
            )));
        }
        answer.extend_from_slice(data);
        let n = data.len();
        conn.consume(n);
        if got == 0 {
            break;
        }
    }
    String::from_utf8(answer).map_err(|_| fail("an answer that is not text: not HAProxy".into()))
}

/// Connects. A UNIX socket is looked at first, so that a path that is a
/// regular file says so; its connect runs on a helper thread, since only a
/// full backlog could block it and no socket timeout bounds that.
fn connect(addr: &Endpoint, deadline: Deadline) -> Result<Connection, Failure> {
    let Endpoint::Unix(path) = addr else {
        return Connection::open(addr, None, deadline);
    };
    not_a_socket(path)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let (endpoint, at) = (addr.clone(), deadline);
    std::thread::Builder::new()
        .name("runtime-api".into())
        .spawn(move || {
            let _ = tx.send(Connection::open(&endpoint, None, at));
        })
        .map_err(|e| Failure::Connect(describe_io(&e)))?;
    match rx.recv_timeout(deadline.remaining(Phase::Connect)?) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Failure::Timeout(Phase::Connect)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(Failure::Connect("the connecting thread ended".into()))
        }
    }
}

/// A path that exists and is not a socket (a regular file, a directory).
fn not_a_socket(path: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::metadata(path) else {
        // Missing, or not readable: connect says which.
        return Ok(());
    };
    let kind = meta.file_type();
    let what = if kind.is_socket() {
        return Ok(());
    } else if kind.is_file() {
        "a regular file"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a socket"
    };
    Err(Failure::Connect(format!(
        "{} is {what}, not a UNIX socket (HAProxy's `stats socket` path?)",
        escape(&path.display().to_string())
    )))
}

#[cfg(test)]
mod test {
    use super::*;

    /// `show servers state` of HAProxy 2.6.12 (the research notes): config
    /// servers, a dynamic one, template slots, states of every kind.
    pub const STATE: &str = "1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
2 icap_pool 1 s1 127.0.0.1 2 0 1 1 5 6 3 4 6 0 0 0 - 57151 - 0 0 - - 0
2 icap_pool 2 s2_dead 127.0.0.1 0 0 1 1 5 8 2 0 6 0 0 0 - 41549 - 0 0 - - 0
2 icap_pool 4 s4_addr 127.0.0.1 2 0 1 1 5 6 3 4 6 0 0 0 - 41549 - 0 49451 127.0.0.2 127.0.0.2 49451
2 icap_pool 5 s5_unix - 2 0 1 1 5 6 3 4 6 0 0 0 - 0 - 0 0 - - 0
2 icap_pool 6 s6_v6 ::1 2 0 1 1 5 6 3 4 6 0 0 0 - 60391 - 0 0 - - 0
2 icap_pool 7 s7_disabled 127.0.0.1 0 5 1 1 5 1 0 0 14 0 0 0 - 57151 - 0 0 - - 0
2 icap_pool 8 s8_maint 127.0.0.1 0 1 1 1 1 6 3 0 14 0 0 0 - 57151 - 0 0 - - 0
2 icap_pool 9 s9_drain 127.0.0.1 2 8 1 1 0 6 3 4 6 0 0 0 - 57151 - 0 0 - - 0
2 icap_pool 11 s11_nolb 127.0.0.1 3 0 1 1 0 6 3 4 6 0 0 0 - 57151 - 0 0 - - 0
2 icap_pool 15 s15_ssl 127.0.0.1 2 0 1 1 5 1 0 2 0 0 0 0 - 57151 - 1 0 - - 0
2 icap_pool 17 dyn1 127.0.0.1 2 0 1 1 2 1 0 0 2 0 0 0 - 57151 - 0 0 - - 0
5 tpl_host_none 1 th1 - 0 32 1 1 5 1 0 0 14 0 0 0 localhost 57151 - 0 0 - - 0
3 tpl_ip 1 tpl1 127.0.0.1 2 0 1 1 5 6 3 4 6 0 0 0 - 57151 - 0 0 - - 0

";

    const STAT_CSV: &str =
        "# pxname,svname,qcur,qmax,scur,smax,slim,status,weight,check_rise,check_fall,check_desc,-,
icap_pool,s1,0,0,2,5,,UP,1,2,3,\"Layer4, \"\"quoted\"\" check passed\",,
icap_pool,s2_dead,0,0,0,0,,DOWN,1,2,3,Layer4 connection problem,,
icap_pool,BACKEND,1,0,7,9,,UP,10,,,,,

";

    fn rows() -> Vec<StateRow> {
        parse_servers_state(STATE).unwrap()
    }

    #[test]
    fn every_row_and_its_state() {
        use HaproxyState::*;
        let r = rows();
        let seen: Vec<(&str, HaproxyState)> =
            r.iter().map(|r| (r.server.as_str(), r.state())).collect();
        assert_eq!(
            seen,
            [
                ("s1", Up),
                ("s2_dead", Down),
                ("s4_addr", Up),
                ("s5_unix", Up),
                ("s6_v6", Up),
                ("s7_disabled", Maint),
                ("s8_maint", Maint),
                ("s9_drain", Drain),
                ("s11_nolb", Nolb),
                ("s15_ssl", Up),
                ("dyn1", Up),
                ("th1", Maint),
                ("tpl1", Up),
            ]
        );
        assert_eq!(r[0].port, 57151);
        assert_eq!(r[2].check_addr, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(r[2].check_port, 49451);
        assert_eq!(r[3].addr, None);
        assert_eq!(r[4].addr, Some("::1".parse().unwrap()));
        assert!(r[9].ssl && !r[0].ssl);
        assert_eq!(r[11].backend, "tpl_host_none");
    }

    #[test]
    fn where_a_check_connects() {
        let s = servers(rows(), &[], None, &[]);
        let at = |i: usize| (s[i].check_address(), s[i].check_port_text());
        assert_eq!(at(0), (Some("127.0.0.1".into()), "57151".into()));
        assert_eq!(at(2), (Some("127.0.0.2".into()), "49451".into()));
        assert_eq!(at(3), (None, "0".into()));
        assert_eq!(at(4), (Some("::1".into()), "60391".into()));
        let only = servers(rows(), &[], None, &["tpl_ip".into()]);
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].name, "tpl1");
    }

    #[test]
    fn send_state_from_the_runtime_api() {
        let stats = parse_stat(STAT_CSV).unwrap();
        assert_eq!(stats[0].scur, Some(2));
        assert_eq!(stats.len(), 3);
        let s = servers(rows(), &stats, Some("vm".into()), &[]);
        assert_eq!(
            s[0].send_state.header(),
            "UP; address=127.0.0.1; port=57151; name=icap_pool/s1; node=vm; weight=1/10; scur=2/6; qcur=0"
        );
        assert_eq!(
            s[1].send_state.header(),
            "DOWN; address=127.0.0.1; port=41549; name=icap_pool/s2_dead; node=vm; weight=1/10; scur=0/6; qcur=0"
        );
        // No `show stat` row: what the state rows say.
        assert_eq!(
            s[3].send_state.header_with(None),
            "address=unix; port=; name=icap_pool/s5_unix; node=vm"
        );
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(
            csv_fields("a,\"b, \"\"c\"\"\",,d").unwrap(),
            ["a", "b, \"c\"", "", "d"]
        );
        assert!(csv_fields("a,\"b").is_err());
    }

    #[test]
    fn what_is_not_haproxy_is_named() {
        let says = |answer: &str, what: &str| match parse_servers_state(answer) {
            Err(why) => assert!(why.contains(what), "{answer:?}: {why}"),
            Ok(rows) => panic!("{answer:?}: {rows:?}"),
        };
        says("", "empty answer");
        says(
            "Unknown command, but maybe one of the following ones is a better match:\n  help\n\n",
            "unknown command",
        );
        says("Permission denied\n\n", "permission denied");
        says("SSH-2.0-OpenSSH_9.2\r\n", "not HAProxy's answer");
        says("HTTP/1.1 400 Bad Request\r\n\r\n", "not HAProxy's answer");
        // Truncated: no empty line at the end.
        let cut = &STATE[..STATE.len() - 40];
        says(cut, "truncated");
        says(
            &STATE.replace("2 icap_pool 1 s1", "2 icap_pool 1 s1 extra"),
            "26 fields for 25 columns",
        );
        says(
            &STATE.replace(
                "57151 - 0 0 - - 0\n2 icap_pool 2",
                "5715x - 0 0 - - 0\n2 icap_pool 2",
            ),
            "srv_port '5715x' is not a number",
        );
        says(
            &STATE.replace(" 41549 - 0 0", " 99999 - 0 0"),
            "srv_port 99999 is out of range",
        );
        says(
            &STATE.replace("s6_v6 ::1", "s6_v6 not-an-ip"),
            "srv_addr 'not-an-ip'",
        );
        says(
            &STATE.replace("s6_v6", "s6\u{1b}[2J"),
            "'icap_pool/s6\\x1b[2J' is not a HAProxy name",
        );
        says(&STATE.replace("srv_port", "srv_prot"), "no column srv_port");
        says(
            &STATE.replace("s1 127.0.0.1 2 0", "s1 127.0.0.1 7 0"),
            "unknown srv_op_state 7",
        );
        says(&format!("{STATE}{STATE}"), "more than one answer");
        // One newline short of the end is truncated too.
        says(&STATE[..STATE.len() - 1], "truncated");
        says("\n", "empty answer");
    }

    #[test]
    fn an_empty_pool_is_an_answer() {
        let header_end = STATE.find("\n2 ").unwrap() + 1;
        let empty = format!("{}\n", &STATE[..header_end]);
        assert_eq!(parse_servers_state(&empty), Ok(vec![]));
    }

    #[test]
    fn socket_addresses() {
        assert_eq!(
            parse_socket("/run/haproxy/admin.sock"),
            Ok(Endpoint::Unix("/run/haproxy/admin.sock".into()))
        );
        assert_eq!(
            parse_socket("unix@/run/h.sock"),
            Ok(Endpoint::Unix("/run/h.sock".into()))
        );
        assert_eq!(
            parse_socket("ipv4@127.0.0.1:9999"),
            Ok(Endpoint::Tcp {
                host: Host::Ip("127.0.0.1".parse().unwrap()),
                port: 9999
            })
        );
        assert_eq!(
            parse_socket("ipv6@[::1]:9999"),
            Ok(Endpoint::Tcp {
                host: Host::Ip("::1".parse().unwrap()),
                port: 9999
            })
        );
        for bad in [
            "",
            "ipv4@127.0.0.1",
            "ipv4@localhost:9999",
            "ipv4@::1:9999",
            "ipv6@::1:9999",
            "ipv6@[127.0.0.1]:9999",
            "ipv4@127.0.0.1:0",
            "ipv4@127.0.0.1:+80",
            "tcp@127.0.0.1:9999",
        ] {
            assert!(parse_socket(bad).is_err(), "{bad}");
        }
        assert!(parse_socket(&format!("/{}", "s".repeat(107))).is_err());
    }

    #[test]
    fn node_from_show_info() {
        assert_eq!(
            parse_node("Name: HAProxy\nVersion: 2.6.12\nnode: vm\nUptime_sec: 3\n\n"),
            Some("vm".into())
        );
        assert_eq!(parse_node("Node: other\n\n"), Some("other".into()));
        assert_eq!(parse_node("Name: HAProxy\n\n"), None);
    }

    #[test]
    fn a_regular_file_is_not_a_socket() {
        let me = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        match not_a_socket(Path::new(me)) {
            Err(Failure::Connect(why)) => assert!(why.contains("is a regular file"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(not_a_socket(Path::new("/nonexistent/haproxy.sock")).is_ok());
    }
}

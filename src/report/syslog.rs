//! The failure reason where operators already look. HAProxy's log shows
//! only `code: N`, and in daemon mode a check's stderr goes nowhere, so a
//! failing check can also send its one line to syslog, beside HAProxy's own
//! "Server ... is DOWN". Nothing is sent on success, and a syslog that is
//! missing or full never delays or fails the check: one non-blocking
//! datagram, errors ignored.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::date::rfc3339_utc;
use crate::outcome::{Outcome, SyslogTarget as Target};

pub const DEFAULT_FACILITY: u8 = 3; // daemon
const SEVERITY_ERR: u8 = 3;
const TAG: &str = "icap-check";

const FACILITIES: [(&str, u8); 14] = [
    ("kern", 0),
    ("user", 1),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("authpriv", 10),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

pub fn parse_facility(name: &str) -> Result<u8, String> {
    FACILITIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|&(_, code)| code)
        .ok_or_else(|| {
            let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
            format!("unknown facility '{name}' (use {})", names.join(", "))
        })
}

/// `PATH` or `udp:IP:PORT`. Only a literal address: a name lookup could
/// delay the check.
pub fn parse_target(text: &str) -> Result<Target, String> {
    if let Some(addr) = text
        .strip_prefix("udp:")
        .or_else(|| text.strip_prefix("udp@"))
    {
        let addr: SocketAddr = addr.parse().map_err(|_| {
            format!("invalid syslog target '{text}': expected udp:IP:PORT with a literal IP")
        })?;
        return Ok(Target::Udp(addr));
    }
    if text.starts_with('/') {
        return Ok(Target::Unix(PathBuf::from(text)));
    }
    Err(format!(
        "invalid syslog target '{text}': expected a socket path such as /dev/log, or udp:IP:PORT"
    ))
}

/// Sends the failure line of every failed outcome that has a syslog
/// destination. A healthy check costs nothing here.
pub fn send_failures(outcomes: &[Outcome]) {
    for o in outcomes {
        if let (Some(syslog), Err(f)) = (&o.context.syslog, &o.verdict) {
            // One record: nothing from outside may start another.
            let line = crate::text::escape_all(&o.context.failure_text(f));
            send(&syslog.target, syslog.facility, &line);
        }
    }
}

/// Sends `message` at severity err. Never blocks, never fails.
pub fn send(target: &Target, facility: u8, message: &str) {
    let pri = facility * 8 + SEVERITY_ERR;
    let pid = std::process::id();
    let result = match target {
        Target::Unix(path) => UnixDatagram::unbound().and_then(|s| {
            s.set_nonblocking(true)?;
            s.send_to(format_local(pri, pid, message).as_bytes(), path)
        }),
        Target::Udp(addr) => {
            let bind: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            UdpSocket::bind(bind).and_then(|s| {
                s.set_nonblocking(true)?;
                let line = format_5424(pri, SystemTime::now(), &hostname(), pid, message);
                s.send_to(line.as_bytes(), addr)
            })
        }
    };
    if let Err(e) = result {
        log::debug!("syslog not sent: {e}");
    }
}

/// RFC 3164 as the C library sends to /dev/log; the daemon adds time and host.
pub fn format_local(pri: u8, pid: u32, message: &str) -> String {
    format!("<{pri}>{TAG}[{pid}]: {message}")
}

/// RFC 5424 with a UTC timestamp.
pub fn format_5424(pri: u8, now: SystemTime, host: &str, pid: u32, message: &str) -> String {
    format!(
        "<{pri}>1 {} {host} {TAG} {pid} - - {message}",
        rfc3339_utc(now)
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "-".to_string())
}

#[cfg(test)]
mod test {
    use super::*;
    use std::time::Duration;

    #[test]
    fn facilities_and_targets() {
        assert_eq!(parse_facility("daemon"), Ok(3));
        assert_eq!(parse_facility("LOCAL0"), Ok(16));
        assert!(parse_facility("mail2").is_err());
        assert_eq!(
            parse_target("/dev/log"),
            Ok(Target::Unix("/dev/log".into()))
        );
        assert_eq!(
            parse_target("udp:127.0.0.1:514"),
            Ok(Target::Udp("127.0.0.1:514".parse().unwrap()))
        );
        assert!(parse_target("udp:[::1]:514").is_ok());
        assert!(parse_target("udp:loghost:514").is_err());
        assert!(parse_target("relative/path").is_err());
    }

    #[test]
    fn message_formats() {
        assert_eq!(format_local(27, 42, "down"), "<27>icap-check[42]: down");
        let t = std::time::UNIX_EPOCH + Duration::from_millis(1_795_377_001_123);
        assert_eq!(
            format_5424(134, t, "lb1", 7, "x"),
            "<134>1 2026-11-22T19:50:01.123Z lb1 icap-check 7 - - x"
        );
    }

    #[test]
    fn a_missing_socket_is_ignored() {
        send(
            &Target::Unix("/nonexistent/log".into()),
            DEFAULT_FACILITY,
            "x",
        );
    }
}

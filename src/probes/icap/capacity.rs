//! What an OPTIONS answer says of the service besides its ISTag:
//! `Max-Connections`, `Options-TTL` and `Service` (RFC 3507 4.10.2), read
//! beside HAProxy's `maxconn` and current connections for the server. When
//! HAProxy may open more connections than the service accepts, the pool
//! fails under load (503s at peak), which no health check sees otherwise.

use super::response::Head;
use crate::outcome::Capacity;
use crate::text::escape;

/// A count from outside (a header, HAProxy's variables): digits only (no
/// sign, no space inside), and only what fits in a u64; anything else is
/// not a count.
pub fn count(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Checked: a number past u64 is an error here, not a wrapped value.
    text.parse().ok()
}

/// The service's numbers from an OPTIONS answer, and HAProxy's.
/// `Max-Connections: 0` would mean no connection at all: taken as unknown.
pub fn from_options(head: &Head, maxconn: Option<u64>, curconn: Option<u64>) -> Capacity {
    let header = |name| head.headers.get(name);
    Capacity {
        options_read: true,
        service: header("Service").filter(|s| !s.is_empty()).map(escape),
        max_connections: header("Max-Connections").and_then(count).filter(|n| *n > 0),
        options_ttl: header("Options-TTL").and_then(count),
        maxconn,
        curconn,
    }
}

/// What `-v` says of it.
pub fn describe(c: &Capacity) -> String {
    let known = |v: Option<u64>| v.map_or_else(|| "none".to_string(), |n| n.to_string());
    let service = if c.options_read {
        format!(
            "the service's Max-Connections {}, Options-TTL {}",
            known(c.max_connections),
            c.options_ttl
                .map_or_else(|| "none".to_string(), |n| format!("{n} s"))
        )
    } else {
        "the service's Max-Connections unknown (no OPTIONS sent)".to_string()
    };
    let haproxy = match (c.maxconn, c.curconn) {
        (None, None) => "HAProxy's maxconn unknown".to_string(),
        (Some(0), cur) => format!("HAProxy's maxconn 0 (no limit), curconn {}", known(cur)),
        (max, cur) => format!("HAProxy's maxconn {}, curconn {}", known(max), known(cur)),
    };
    format!("{service}; {haproxy}")
}

#[cfg(test)]
mod test {
    use super::super::response::{parse_head, Parsed, Protocol};
    use super::*;

    fn head(text: &str) -> Head {
        match parse_head(text.as_bytes(), Protocol::Icap) {
            Ok(Parsed::Complete(h, _)) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counts_are_digits_that_fit() {
        assert_eq!(count("10"), Some(10));
        assert_eq!(count(" 3600 "), Some(3600));
        assert_eq!(count("18446744073709551615"), Some(u64::MAX));
        for garbage in [
            "",
            "ten",
            "-1",
            "+5",
            "1 0",
            "0x10",
            "1.5",
            "18446744073709551616",
            "99999999999999999999999999999999",
            "\u{661}",
        ] {
            assert_eq!(count(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn options_numbers() {
        let c = from_options(
            &head("ICAP/1.0 200 OK\r\nService: Antivirus \x1b[2J\r\nMax-Connections: 10\r\nOptions-TTL: 3600\r\nISTag: x\r\n\r\n"),
            Some(50),
            Some(3),
        );
        assert_eq!(
            c,
            Capacity {
                options_read: true,
                service: Some("Antivirus \\x1b[2J".into()),
                max_connections: Some(10),
                options_ttl: Some(3600),
                maxconn: Some(50),
                curconn: Some(3),
            }
        );
        assert_eq!(
            describe(&c),
            "the service's Max-Connections 10, Options-TTL 3600 s; HAProxy's maxconn 50, curconn 3"
        );
    }

    #[test]
    fn garbage_and_huge_numbers_are_unknown() {
        let c = from_options(
            &head("ICAP/1.0 200 OK\r\nMax-Connections: lots\r\nOptions-TTL: 99999999999999999999999\r\n\r\n"),
            None,
            None,
        );
        assert_eq!(
            (c.max_connections, c.options_ttl, c.service),
            (None, None, None)
        );
        let c = from_options(
            &head("ICAP/1.0 200 OK\r\nMax-Connections: 0\r\nOptions-TTL: 0\r\n\r\n"),
            Some(0),
            None,
        );
        assert_eq!((c.max_connections, c.options_ttl), (None, Some(0)));
        assert_eq!(c.shortfall(), None);
        let huge = from_options(
            &head("ICAP/1.0 200 OK\r\nMax-Connections: 18446744073709551615\r\n\r\n"),
            Some(u64::MAX),
            Some(u64::MAX),
        );
        assert!(huge.shortfall().unwrap().contains("reached"));
        assert_eq!(
            describe(&Capacity::default()),
            "the service's Max-Connections unknown (no OPTIONS sent); HAProxy's maxconn unknown"
        );
    }
}

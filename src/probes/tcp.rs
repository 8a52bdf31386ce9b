//! The TCP probe, in the shape of HAProxy's `tcp-check connect / send /
//! expect`: connect (and with TLS, handshake), optionally send bytes, and
//! optionally expect a string or regex in what comes back.

use super::expect::Expect;
use super::{heading, Spec};
use crate::net::{Connection, Deadline, Endpoint, TlsClient};
use crate::outcome::{Failure, Healthy, Observed, Phase, Verdict};
use crate::text::escape;

/// How much of the server's answer --expect-string/--expect-regex look at.
pub const MAX_EXPECT: usize = 16 * 1024;

#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = heading::TCP)]
pub struct TcpArgs {
    /// TCP: bytes sent once connected; escapes \r \n \t \0 \\ and \xHH [default: nothing sent]
    #[arg(long, value_name = "TEXT", value_parser = parse_escapes)]
    pub send: Option<Bytes>,
}

pub struct TcpProbe {
    pub endpoint: Endpoint,
    pub tls: Option<TlsClient>,
    pub send: Option<Vec<u8>>,
    pub expect: Option<Expect>,
}

impl TcpProbe {
    pub fn build(args: &super::ProbeArgs, spec: Spec<'_>) -> Result<TcpProbe, Failure> {
        Ok(TcpProbe {
            endpoint: spec.endpoint,
            tls: spec.tls,
            send: args.tcp.send.clone().map(|b| b.0),
            expect: args.expect.build()?,
        })
    }

    /// `TCP` or `TLS`, the probe's name in report lines.
    pub fn name(&self) -> &'static str {
        if self.tls.is_some() {
            "TLS"
        } else {
            "TCP"
        }
    }

    pub fn target(&self) -> String {
        let scheme = if self.tls.is_some() { "tls" } else { "tcp" };
        self.endpoint.url(scheme, "")
    }

    pub fn describe(&self) -> String {
        let mut parts = vec![format!("{} connect", self.name())];
        if let Some(bytes) = &self.send {
            parts.push(format!(
                "send \"{}\"",
                escape(&String::from_utf8_lossy(bytes))
            ));
        }
        if let Some(e) = &self.expect {
            parts.push(format!("expect {e} (first {} KiB read)", MAX_EXPECT / 1024));
        }
        parts.join(", ")
    }

    pub fn run(&self, deadline: Deadline, observed: &mut Observed) -> Verdict {
        let mut conn = Connection::open(&self.endpoint, self.tls.as_ref(), deadline)?;
        let verdict = exchange(self, &mut conn);
        observed.timings = conn.timings;
        observed.cert_not_after = conn.cert_not_after;
        verdict
    }
}

fn exchange(check: &TcpProbe, conn: &mut Connection) -> Verdict {
    let mut summary = vec![if check.tls.is_some() {
        "handshake done".to_string()
    } else {
        "connected".to_string()
    }];
    if let Some(bytes) = &check.send {
        conn.send(bytes, Phase::Send)?;
        conn.mark_sent();
        summary.push(format!("sent {} bytes", bytes.len()));
    }
    if let Some(expect) = &check.expect {
        loop {
            let got = conn.buffered();
            let seen = &got[..got.len().min(MAX_EXPECT)];
            if expect.matches(seen) {
                summary.push(format!("got {expect}"));
                break;
            }
            if seen.len() == MAX_EXPECT || conn.at_eof() {
                let why = if conn.at_eof() {
                    "connection closed"
                } else {
                    "limit reached"
                };
                return Err(Failure::Unhealthy(format!(
                    "{expect} not in the {} bytes received ({why}): \"{}\"",
                    seen.len(),
                    escape(&String::from_utf8_lossy(seen))
                )));
            }
            conn.fill(Phase::Receive)?;
        }
    }
    Ok(Healthy {
        summary: summary.join(", "),
    })
}

/// Bytes given as escaped text (clap would take a `Vec<u8>` for a list of numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

/// `--send` text with `\r \n \t \0 \\ \xHH` escapes, as tcp-check's `send`.
pub fn parse_escapes(text: &str) -> Result<Bytes, String> {
    unescape(text).map(Bytes)
}

fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let value = std::str::from_utf8(&hex)
                    .ok()
                    .filter(|h| h.len() == 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "\\x needs two hex digits".to_string())?;
                out.push(value);
            }
            Some(other) => return Err(format!("unknown escape '\\{}'", other as char)),
            None => return Err("'\\' at the end".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(unescape("PING\\r\\n").unwrap(), b"PING\r\n");
        assert_eq!(unescape("a\\tb\\\\c\\0").unwrap(), b"a\tb\\c\0");
        assert_eq!(unescape("\\x00\\xfF\\x41").unwrap(), b"\x00\xff\x41");
        assert_eq!(unescape("plain").unwrap(), b"plain");
        for bad in ["\\", "\\q", "\\x", "\\x4", "\\xzz"] {
            assert!(unescape(bad).is_err(), "{bad}");
        }
    }
}

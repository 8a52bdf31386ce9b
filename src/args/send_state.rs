//! HAProxy's `X-Haproxy-Server-State` header (`http-check send-state`),
//! built from what is known of a server: the runtime API (state, weights,
//! sessions), or HAProxy's variables in the external-check form (names,
//! address, HAPROXY_SERVER_CURCONN/MAXCONN). `--send-state` sends it.
//!
//! HAProxy 2.6 writes (`httpchk_build_status_header` in src/check.c):
//! `UP 2/3; address=127.0.0.1; port=1344; name=be/srv; node=host;
//! weight=1/11; scur=0/0; qcur=0`. A field icap-check cannot know is left
//! out rather than made up: a receiver reads `key=value` pairs.

/// What is known of a server for the header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendState {
    /// `UP`, `UP 2/3`, `DOWN 1/2`, `NOLB`, `no check` (see [`state_word`]).
    pub state: Option<String>,
    /// The server's address (not the check's): an IP, or `unix`.
    pub address: Option<String>,
    /// The traffic port; empty for a UNIX socket.
    pub port: Option<String>,
    /// `BACKEND/SERVER`.
    pub name: String,
    /// HAProxy's `node` (`show info`'s `Node`); this host's name when unknown.
    pub node: Option<String>,
    /// The server's effective weight / the backend's total.
    pub weight: Option<(u64, u64)>,
    /// The server's sessions / the second number (see README: the backend's
    /// connections from the runtime API, HAPROXY_SERVER_MAXCONN in the
    /// external-check form, the only one HAProxy passes).
    pub scur: Option<(u64, u64)>,
    /// Connections queued for the server.
    pub qcur: Option<u64>,
}

impl SendState {
    /// The header's value; `node` stands in when the state has none.
    pub fn header_with(&self, node: Option<&str>) -> String {
        let mut parts: Vec<String> = Vec::with_capacity(8);
        if let Some(s) = &self.state {
            parts.push(safe(s));
        }
        if let Some(a) = &self.address {
            parts.push(format!("address={}", safe(a)));
        }
        if let Some(p) = &self.port {
            parts.push(format!("port={}", safe(p)));
        }
        parts.push(format!("name={}", safe(&self.name)));
        if let Some(n) = self.node.as_deref().or(node) {
            parts.push(format!("node={}", safe(n)));
        }
        if let Some((w, total)) = self.weight {
            parts.push(format!("weight={w}/{total}"));
        }
        if let Some((cur, of)) = self.scur {
            parts.push(format!("scur={cur}/{of}"));
        }
        if let Some(q) = self.qcur {
            parts.push(format!("qcur={q}"));
        }
        parts.join("; ")
    }

    /// The same, its node this host's name when it has none: read once,
    /// for a header sent again and again (the resident mode).
    pub fn with_local_node(mut self) -> SendState {
        if self.node.is_none() {
            self.node = local_node();
        }
        self
    }

    /// The header's value, with this host's name as the node when the
    /// state has none (HAProxy's default `node` is its host's name). Read
    /// only when the header is sent.
    pub fn header(&self) -> String {
        match &self.node {
            Some(_) => self.header_with(None),
            None => self.header_with(local_node().as_deref()),
        }
    }
}

/// HAProxy's state word with its counts, as `httpchk_build_status_header`
/// writes it: `health` runs from 0 to `rise + fall - 1`; a running server
/// is `UP` at the top and `UP n/fall` below it (n more failures to DOWN),
/// a stopped one `DOWN` at 0 and `DOWN n/rise` above it (n successes so
/// far); a stopping one says `NOLB` instead of `UP`.
pub fn state_word(op_state: u8, check_enabled: bool, health: u64, rise: u64, fall: u64) -> String {
    const STOPPED: u8 = 0;
    const STOPPING: u8 = 3;
    if !check_enabled {
        return "no check".into();
    }
    if op_state != STOPPED {
        let word = if op_state == STOPPING { "NOLB" } else { "UP" };
        if health >= rise.saturating_add(fall).saturating_sub(1) {
            word.into()
        } else {
            format!(
                "{word} {}/{fall}",
                health.saturating_add(1).saturating_sub(rise)
            )
        }
    } else if health > 0 {
        format!("DOWN {health}/{rise}")
    } else {
        "DOWN".into()
    }
}

/// A value as a header may carry it: visible ASCII and spaces. Whatever
/// else came from outside (the runtime API, HAProxy's variables) becomes
/// `?`, and `;`, which would start a field of its own, too.
fn safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' '..='~' if c != ';' => c,
            _ => '?',
        })
        .collect()
}

/// This host's name, as HAProxy's default `node`: none inside a chroot
/// without /proc.
fn local_node() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| crate::file::read_text(std::path::Path::new(p), "hostname", 256).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod test {
    use super::*;

    /// The header HAProxy 2.6.12 sent in the research notes, rebuilt.
    #[test]
    fn as_haproxy_writes_it() {
        let s = SendState {
            state: Some(state_word(2, true, 2, 2, 3)),
            address: Some("127.0.0.1".into()),
            port: Some("38193".into()),
            name: "web_http/w1".into(),
            node: Some("vm".into()),
            weight: Some((1, 11)),
            scur: Some((0, 0)),
            qcur: Some(0),
        };
        assert_eq!(
            s.header(),
            "UP 1/3; address=127.0.0.1; port=38193; name=web_http/w1; node=vm; weight=1/11; scur=0/0; qcur=0"
        );
    }

    #[test]
    fn state_words() {
        // rise 2, fall 3: health 0..=4.
        assert_eq!(state_word(2, true, 4, 2, 3), "UP");
        assert_eq!(state_word(2, true, 3, 2, 3), "UP 2/3");
        assert_eq!(state_word(2, true, 2, 2, 3), "UP 1/3");
        assert_eq!(state_word(0, true, 0, 2, 3), "DOWN");
        assert_eq!(state_word(0, true, 1, 2, 3), "DOWN 1/2");
        assert_eq!(state_word(3, true, 4, 2, 3), "NOLB");
        assert_eq!(state_word(3, true, 3, 2, 3), "NOLB 2/3");
        assert_eq!(state_word(1, true, 4, 2, 3), "UP");
        assert_eq!(state_word(2, false, 0, 2, 3), "no check");
        // Nonsense from outside does not panic.
        assert_eq!(
            state_word(2, true, 0, u64::MAX, u64::MAX),
            "UP 0/18446744073709551615"
        );
    }

    #[test]
    fn only_what_is_known_and_nothing_that_breaks_a_header() {
        let s = SendState {
            name: "icap_pool/icap01".into(),
            scur: Some((3, 100)),
            ..SendState::default()
        };
        assert_eq!(
            s.header_with(Some("host1")),
            "name=icap_pool/icap01; node=host1; scur=3/100"
        );
        let evil = SendState {
            name: "b/s\r\nX-Injected: 1; qcur=9".into(),
            node: Some("h\u{e9}".into()),
            ..SendState::default()
        };
        assert_eq!(evil.header(), "name=b/s??X-Injected: 1? qcur=9; node=h?");
    }
}

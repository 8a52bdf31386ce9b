//! Failure classes and the one place exit codes are defined.
//!
//! HAProxy's log shows nothing of a failed external check but its exit code
//! (`reason: External check error, code: 3`), so every failure is classified
//! into exactly one class, and each class has its own code.

use std::fmt;

/// Exit codes, the contract with HAProxy's log and with scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExitStatus {
    /// The server answered and the answer is healthy.
    Healthy = 0,
    /// The server answered, and the answer is unhealthy.
    Unhealthy = 1,
    /// Bad option, value or configuration; nothing was probed.
    Usage = 2,
    /// Cannot connect: refused, unreachable, name not resolved.
    Connect = 3,
    /// The check's deadline passed.
    Timeout = 4,
    /// The server's answer is not ICAP as RFC 3507 has it: malformed, truncated, oversized.
    Protocol = 5,
    /// TLS handshake or certificate verification failed.
    Tls = 6,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The order of a run's exit statuses, from worst: the run itself is
    /// wrong, then what takes a server out soonest (cannot connect, no answer
    /// in time), then answers that are wrong in a lower layer, then wrong
    /// answers. The worst status of several targets is the run's.
    pub const SEVERITY: [ExitStatus; 7] = [
        ExitStatus::Usage,
        ExitStatus::Connect,
        ExitStatus::Timeout,
        ExitStatus::Tls,
        ExitStatus::Protocol,
        ExitStatus::Unhealthy,
        ExitStatus::Healthy,
    ];

    /// The worst of `statuses` by [`ExitStatus::SEVERITY`]; healthy when empty.
    pub fn worst(statuses: impl IntoIterator<Item = ExitStatus>) -> ExitStatus {
        let rank = |s: &ExitStatus| Self::SEVERITY.iter().position(|x| x == s).unwrap_or(0);
        statuses
            .into_iter()
            .min_by_key(rank)
            .unwrap_or(ExitStatus::Healthy)
    }

    /// The severity order as the documentation spells it: `2, 3, 4, 6, 5, 1, 0`.
    pub fn severity_text() -> String {
        let codes: Vec<String> = Self::SEVERITY
            .iter()
            .map(|s| s.code().to_string())
            .collect();
        codes.join(", ")
    }

    /// Every exit status with its meaning, for `--help`, the man page and the README.
    pub const TABLE: [(ExitStatus, &'static str); 7] = [
        (ExitStatus::Healthy, "healthy"),
        (
            ExitStatus::Unhealthy,
            "the server answered, and the answer is unhealthy (status, missing ISTag, method not offered, HTTP status inside)",
        ),
        (
            ExitStatus::Usage,
            "usage or configuration error (bad option or value, unreadable file)",
        ),
        (
            ExitStatus::Connect,
            "cannot connect (refused, unreachable, name not resolved)",
        ),
        (ExitStatus::Timeout, "deadline passed"),
        (
            ExitStatus::Protocol,
            "protocol error (not ICAP, malformed, truncated, oversized)",
        ),
        (ExitStatus::Tls, "TLS failure"),
    ];
}

/// Where in the exchange a deadline passed; carried by [`Failure::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Resolve,
    Connect,
    /// The TLS handshake.
    Handshake,
    Send,
    /// Waiting for `100 Continue` (or a final reply) after a preview.
    Continue,
    /// Reading the response status line and headers.
    Receive,
    /// Reading the encapsulated HTTP headers and body.
    Body,
    /// The check as a whole, when the watchdog ends it.
    Check,
    /// The detection canary's exchange (`--canary`), whatever its step.
    Canary,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Resolve => "resolving the name",
            Phase::Connect => "connecting",
            Phase::Handshake => "doing the TLS handshake",
            Phase::Send => "sending the request",
            Phase::Continue => "waiting for 100 Continue",
            Phase::Receive => "reading the response",
            Phase::Body => "reading the response body",
            Phase::Check => "running the check",
            Phase::Canary => "sending the EICAR canary and reading its answer",
        })
    }
}

/// Why a check failed. The text is for the one report line; it must already
/// be escaped where it quotes the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Unhealthy(String),
    Usage(String),
    Connect(String),
    Timeout(Phase),
    Protocol(String),
    Tls(String),
}

impl Failure {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Failure::Unhealthy(_) => ExitStatus::Unhealthy,
            Failure::Usage(_) => ExitStatus::Usage,
            Failure::Connect(_) => ExitStatus::Connect,
            Failure::Timeout(_) => ExitStatus::Timeout,
            Failure::Protocol(_) => ExitStatus::Protocol,
            Failure::Tls(_) => ExitStatus::Tls,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unhealthy(why) => write!(f, "unhealthy: {why}"),
            Failure::Usage(why) => write!(f, "usage: {why}"),
            Failure::Connect(why) => write!(f, "cannot connect: {why}"),
            Failure::Timeout(phase) => write!(f, "timeout while {phase}"),
            Failure::Protocol(why) => write!(f, "protocol error: {why}"),
            Failure::Tls(why) => write!(f, "tls: {why}"),
        }
    }
}

/// What a healthy check reports after `OK <target> <METHOD>`, e.g. `200 ISTag="x"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthy {
    pub summary: String,
}

pub type Verdict = Result<Healthy, Failure>;

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn codes_are_distinct_and_documented() {
        let codes: Vec<u8> = ExitStatus::TABLE.iter().map(|(s, _)| s.code()).collect();
        assert_eq!(codes, vec![0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn severity_is_one_order_over_every_status() {
        assert_eq!(ExitStatus::severity_text(), "2, 3, 4, 6, 5, 1, 0");
        let mut all: Vec<u8> = ExitStatus::SEVERITY.iter().map(|s| s.code()).collect();
        all.sort();
        assert_eq!(all, [0, 1, 2, 3, 4, 5, 6]);
        use ExitStatus::*;
        assert_eq!(ExitStatus::worst([Healthy, Unhealthy, Protocol]), Protocol);
        assert_eq!(ExitStatus::worst([Tls, Timeout]), Timeout);
        assert_eq!(ExitStatus::worst([Connect, Usage, Healthy]), Usage);
        assert_eq!(ExitStatus::worst([]), Healthy);
    }

    #[test]
    fn failure_maps_to_its_code() {
        assert_eq!(Failure::Timeout(Phase::Connect).exit_status().code(), 4);
        assert_eq!(Failure::Connect("refused".into()).exit_status().code(), 3);
        assert_eq!(Failure::Protocol("x".into()).exit_status().code(), 5);
        assert_eq!(
            Failure::Timeout(Phase::Continue).to_string(),
            "timeout while waiting for 100 Continue"
        );
    }
}

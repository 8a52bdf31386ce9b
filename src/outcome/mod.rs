//! What a check came to: its failure class and exit code ([`failure`]),
//! what it observed on the way ([`observed`]), and who was checked
//! ([`Context`]). Plain data, the vocabulary every layer shares: it imports
//! nothing of the crate but [`crate::text`].

pub mod failure;
pub mod haproxy;
pub mod observed;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use failure::{ExitStatus, Failure, Healthy, Phase, Verdict};
pub use haproxy::{Disagreement, HaproxyState};
pub use observed::{Canary, Capacity, Observed, Timings};

/// Who is checked and how, for every line about one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Run by HAProxy (or by hand with HAProxy's arguments): silent on
    /// success, the failure on stderr.
    pub haproxy: bool,
    /// The backend (HAPROXY_PROXY_NAME, haproxy.cfg, `--backend`).
    pub backend: Option<String>,
    /// The server (HAPROXY_SERVER_NAME, haproxy.cfg, `--server`).
    pub server: Option<String>,
    /// What is checked, as a URL: `icap://host:port/service`, `unix:/path ...`.
    pub target: String,
    /// The probe's name: the method sent (`OPTIONS`, `RESPMOD`, `GET`) or
    /// `TCP`/`TLS`. The key `probe` in JSON and the Prometheus label.
    pub probe: String,
    /// The protocol as monitoring names it: `ICAP`, `HTTP`, `TCP` or `TLS`
    /// (the Nagios service label).
    pub protocol: &'static str,
    /// Where a failure is also sent.
    pub syslog: Option<Syslog>,
    /// The server's state in HAProxy, when read from its runtime API.
    pub haproxy_state: Option<HaproxyState>,
}

impl Context {
    /// `backend/server`, when known.
    pub fn label(&self) -> Option<String> {
        match (&self.backend, &self.server) {
            (Some(b), Some(s)) => Some(format!("{b}/{s}")),
            (None, Some(s)) => Some(s.clone()),
            (Some(b), None) => Some(format!("{b}/?")),
            (None, None) => None,
        }
    }

    /// `backend/server target PROBE: reason (exit N)`: the failure as HAProxy's
    /// stderr, syslog and the machine formats all report it.
    pub fn failure_text(&self, f: &Failure) -> String {
        format!(
            "{}{} {}: {f} (exit {})",
            self.label().map(|s| format!("{s} ")).unwrap_or_default(),
            self.target,
            self.probe,
            f.exit_status().code()
        )
    }
}

/// A syslog destination and facility (`--syslog`, `--syslog-facility`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog {
    pub target: SyslogTarget,
    pub facility: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTarget {
    /// A local datagram socket, /dev/log by default: RFC 3164 as syslog(3) sends it.
    Unix(PathBuf),
    /// A remote collector, as HAProxy's own `log udp@...` lines: RFC 5424.
    Udp(SocketAddr),
}

/// What one check came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Shared with the check's settings and every outcome of the target.
    pub context: Arc<Context>,
    pub verdict: Verdict,
    pub observed: Observed,
}

impl Outcome {
    pub fn exit_status(&self) -> ExitStatus {
        self.verdict
            .as_ref()
            .map_or_else(Failure::exit_status, |_| ExitStatus::Healthy)
    }

    /// The outcome of a check that could not start, or never finished.
    pub fn failed(context: Arc<Context>, failure: Failure) -> Outcome {
        Outcome {
            context,
            verdict: Err(failure),
            observed: Observed::default(),
        }
    }
}

/// The worst exit status of several outcomes: the run's exit code. With
/// HAProxy's view, only of those that count ([`Outcome::counts`]).
pub fn worst(outcomes: &[Outcome]) -> ExitStatus {
    // Without HAProxy's view (every external check) every outcome counts:
    // the very call that packaging/hot-text.ld names, so that a check's
    // report stays in the hot text.
    let mut viewed = false;
    for o in outcomes {
        viewed |= o.context.haproxy_state.is_some();
    }
    if !viewed {
        return ExitStatus::worst(outcomes.iter().map(Outcome::exit_status));
    }
    ExitStatus::worst(
        outcomes
            .iter()
            .filter(|o| o.counts())
            .map(Outcome::exit_status),
    )
}

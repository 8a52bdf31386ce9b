//! What HAProxy believes of a server, held against what the check found:
//! its state as the runtime API reports it, which states receive traffic,
//! and the rule that makes a run's exit code say whether HAProxy sends
//! traffic to a broken server.

use std::fmt;
use std::sync::Arc;

use super::{Context, ExitStatus, Failure, Healthy, Observed, Outcome};

/// A server's state as HAProxy's stats page and `show stat` name it, from
/// `show servers state`'s `srv_op_state` and `srv_admin_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HaproxyState {
    /// Running (also while failing towards DOWN, `UP 1/3`, and in slowstart).
    Up,
    /// Stopped by its checks (or its agent), or a drained server that is down.
    Down,
    /// In maintenance: by the operator, `disabled`, tracking, or an
    /// unresolved address. HAProxy neither checks it nor sends it traffic.
    Maint,
    /// Drained: weight 0, no new connections but those of persistence.
    Drain,
    /// Stopping (`disable-on-404`, `set server ... health stopping`): no new
    /// connections but those of persistence.
    Nolb,
}

impl HaproxyState {
    pub const ALL: [HaproxyState; 5] = [
        HaproxyState::Up,
        HaproxyState::Down,
        HaproxyState::Maint,
        HaproxyState::Drain,
        HaproxyState::Nolb,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HaproxyState::Up => "UP",
            HaproxyState::Down => "DOWN",
            HaproxyState::Maint => "MAINT",
            HaproxyState::Drain => "DRAIN",
            HaproxyState::Nolb => "NOLB",
        }
    }

    /// HAProxy balances new connections onto it. DRAIN and NOLB servers
    /// only keep what persistence sends them: an operator drains a server to
    /// take it down, and its failing then is expected, not news.
    pub fn takes_traffic(self) -> bool {
        self == HaproxyState::Up
    }

    /// Whether icap-check probes a server in this state: not one in MAINT,
    /// which HAProxy does not check either (its address may be unknown).
    pub fn probed(self) -> bool {
        self != HaproxyState::Maint
    }
}

impl fmt::Display for HaproxyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// HAProxy and the check disagree about a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disagreement {
    /// HAProxy sends it traffic, and the check fails: what a smoke test
    /// from cron is for.
    FailingInService,
    /// HAProxy has it DOWN, and the check passes: capacity HAProxy does not
    /// use (or a server that has just come back, before `rise` checks).
    PassingWhileDown,
}

impl Disagreement {
    /// The key in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Disagreement::FailingInService => "failing_in_service",
            Disagreement::PassingWhileDown => "passing_while_down",
        }
    }

    /// What an operator reads before the server's line.
    pub fn headline(self) -> &'static str {
        match self {
            Disagreement::FailingInService => "HAProxy sends traffic to a failing server",
            Disagreement::PassingWhileDown => "HAProxy has DOWN a server that passes",
        }
    }
}

impl Outcome {
    /// The outcome of a server that was not probed: HAProxy has it in MAINT.
    /// Not a failure; the reports list it apart.
    pub fn not_probed(context: Arc<Context>) -> Outcome {
        let state = context.haproxy_state.map_or("MAINT", HaproxyState::name);
        Outcome {
            context,
            verdict: Ok(Healthy {
                summary: format!("not probed: HAProxy has it in {state}"),
            }),
            observed: Observed::default(),
        }
    }

    /// Whether the check ran (it does unless HAProxy has the server in MAINT).
    pub fn probed(&self) -> bool {
        self.context.haproxy_state.is_none_or(HaproxyState::probed)
    }

    /// Whether this outcome takes part in the run's exit code: every one
    /// whose HAProxy state is unknown, every one HAProxy sends traffic to,
    /// and any usage error (the run could not check what it was asked to).
    /// A server HAProxy has DOWN, drained or stopping that fails is what
    /// HAProxy already knows.
    pub fn counts(&self) -> bool {
        match (self.context.haproxy_state, &self.verdict) {
            (None, _) => true,
            (Some(state), _) if state.takes_traffic() => true,
            (Some(_), Err(f)) => f.exit_status() == ExitStatus::Usage,
            (Some(_), Ok(_)) => false,
        }
    }

    /// How HAProxy's view and the check's verdict disagree, if they do. A
    /// usage error is not a verdict on the server.
    pub fn disagreement(&self) -> Option<Disagreement> {
        let state = self.context.haproxy_state?;
        match &self.verdict {
            Err(Failure::Usage(_)) => None,
            Err(_) if state.takes_traffic() => Some(Disagreement::FailingInService),
            Ok(_) if state == HaproxyState::Down => Some(Disagreement::PassingWhileDown),
            _ => None,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::outcome::{worst, Phase};

    fn outcome(state: Option<HaproxyState>, verdict: Result<(), Failure>) -> Outcome {
        let context = Arc::new(Context {
            haproxy: false,
            backend: Some("icap_pool".into()),
            server: Some("s1".into()),
            target: "icap://127.0.0.1:1344/echo".into(),
            probe: "OPTIONS".into(),
            protocol: "ICAP",
            syslog: None,
            haproxy_state: state,
        });
        Outcome {
            context,
            verdict: verdict.map(|()| Healthy {
                summary: "200".into(),
            }),
            observed: Observed::default(),
        }
    }

    #[test]
    fn the_exit_code_counts_what_haproxy_sends_traffic_to() {
        use HaproxyState::*;
        let refused = || Err(Failure::Connect("refused".into()));
        let unhealthy = || Err(Failure::Unhealthy("HTTP 403".into()));
        // A DOWN server that fails is what HAProxy already knows.
        assert_eq!(
            worst(&[outcome(Some(Up), Ok(())), outcome(Some(Down), refused())]),
            ExitStatus::Healthy
        );
        for state in [Down, Drain, Nolb] {
            assert!(!outcome(Some(state), refused()).counts(), "{state}");
        }
        // One HAProxy sends traffic to is the run's failure.
        assert_eq!(
            worst(&[
                outcome(Some(Up), unhealthy()),
                outcome(Some(Down), refused())
            ]),
            ExitStatus::Unhealthy
        );
        // Without HAProxy's view every outcome counts, as before.
        assert_eq!(worst(&[outcome(None, refused())]), ExitStatus::Connect);
        // A usage error counts whatever the state.
        let usage = outcome(Some(Down), Err(Failure::Usage("no address".into())));
        assert!(usage.counts());
        assert_eq!(usage.disagreement(), None);
    }

    #[test]
    fn disagreements() {
        use Disagreement::*;
        use HaproxyState::*;
        let timeout = || Err(Failure::Timeout(Phase::Receive));
        assert_eq!(
            outcome(Some(Up), timeout()).disagreement(),
            Some(FailingInService)
        );
        assert_eq!(
            outcome(Some(Down), Ok(())).disagreement(),
            Some(PassingWhileDown)
        );
        assert_eq!(outcome(Some(Down), timeout()).disagreement(), None);
        assert_eq!(outcome(Some(Drain), timeout()).disagreement(), None);
        assert_eq!(outcome(Some(Up), Ok(())).disagreement(), None);
        assert_eq!(outcome(None, timeout()).disagreement(), None);
    }

    #[test]
    fn maint_is_listed_not_probed() {
        let o = Outcome::not_probed(outcome(Some(HaproxyState::Maint), Ok(())).context);
        assert!(!o.probed());
        assert!(!o.counts());
        assert_eq!(
            o.verdict.as_ref().map(|h| h.summary.as_str()),
            Ok("not probed: HAProxy has it in MAINT")
        );
        assert!(outcome(Some(HaproxyState::Drain), Ok(())).probed());
        assert!(outcome(None, Ok(())).probed());
    }
}

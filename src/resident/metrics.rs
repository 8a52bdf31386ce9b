//! `/metrics` and `/probe` of the resident mode, from the table: the
//! families of each target's last check (the same encoder and labels as
//! `--format prometheus`), what the resident mode adds over time (state,
//! changes, checks by result, a histogram of durations), and the process's
//! own (agent replies, targets, reloads).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::agent::{Counts, Said};
use super::health::Health;
use super::table::{State, Table, Target, BUCKETS};
use crate::outcome::Outcome;
use crate::report::prometheus::{family, labels, outcome_families, Kind};

/// What the process reports of itself.
pub struct Process {
    pub replies: Arc<Counts>,
    /// The last reload: when, and whether the new files loaded.
    pub reload: Mutex<(SystemTime, bool)>,
}

impl Process {
    pub fn new(replies: Arc<Counts>) -> Process {
        Process {
            replies,
            reload: Mutex::new((SystemTime::now(), true)),
        }
    }

    pub fn reloaded(&self, ok: bool) {
        *self.reload.lock().unwrap_or_else(PoisonError::into_inner) = (SystemTime::now(), ok);
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Every target with a copy of its state, taken under its lock.
pub fn snapshot(table: &Table) -> Vec<(&Target, State)> {
    table
        .targets
        .iter()
        .map(|t| (t, t.lock_state().clone()))
        .collect()
}

/// The whole exposition.
pub fn metrics(table: &Table, process: &Process) -> String {
    let rows = snapshot(table);
    let mut out = String::with_capacity(rows.len() * 2048 + 2048);
    target_families(&rows, &mut out);
    process_families(table, process, &mut out);
    out
}

/// `/probe?target=KEY`: one configured target's families, or `None`.
pub fn probe(table: &Table, key: &str) -> Option<String> {
    let target = table.get(key)?;
    let rows = vec![(target, target.lock_state().clone())];
    let mut out = String::new();
    target_families(&rows, &mut out);
    Some(out)
}

fn target_families(rows: &[(&Target, State)], out: &mut String) {
    let last: Vec<&Outcome> = rows.iter().filter_map(|(_, s)| s.last.as_deref()).collect();
    outcome_families(&last, out);
    let each = |f: &dyn Fn(&Target, &State, &str) -> Option<String>| -> Vec<String> {
        rows.iter()
            .filter_map(|(t, s)| f(t, s, &labels(&t.context)))
            .collect()
    };
    family(
        out,
        "icap_check_state",
        Kind::Gauge,
        "1 if the target is up, 0 if down, as the agent reports it (rise/fall counted); absent before its first result.",
        false,
        each(&|_, s, l| match s.tracker.health {
            Health::Up => Some(format!("icap_check_state{{{l}}} 1")),
            Health::Down => Some(format!("icap_check_state{{{l}}} 0")),
            Health::Pending => None,
        }),
    );
    family(
        out,
        "icap_check_state_changes_total",
        Kind::Counter,
        "Changes of the target's state since it was loaded.",
        false,
        each(&|_, s, l| {
            Some(format!(
                "icap_check_state_changes_total{{{l}}} {}",
                s.changes
            ))
        }),
    );
    family(
        out,
        "icap_check_state_since_seconds",
        Kind::Gauge,
        "When the target's state last changed (or it was loaded), seconds since 1970.",
        false,
        each(&|_, s, l| {
            Some(format!(
                "icap_check_state_since_seconds{{{l}}} {:.3}",
                unix(s.since)
            ))
        }),
    );
    family(
        out,
        "icap_check_last_seconds",
        Kind::Gauge,
        "When the target's last check ended, seconds since 1970.",
        false,
        each(&|_, s, l| {
            s.last_wall
                .map(|t| format!("icap_check_last_seconds{{{l}}} {:.3}", unix(t)))
        }),
    );
    family(
        out,
        "icap_checks_total",
        Kind::Counter,
        "Checks of the target by exit code (0 healthy, 1 unhealthy, 3 connect, 4 timeout, 5 protocol, 6 TLS).",
        false,
        rows.iter().flat_map(|(t, s)| {
            let l = labels(&t.context);
            s.checks
                .iter()
                .enumerate()
                .filter(|&(code, n)| code == 0 || *n > 0)
                .map(move |(code, n)| format!("icap_checks_total{{{l},exit_code=\"{code}\"}} {n}"))
                .collect::<Vec<_>>()
        }),
    );
    family(
        out,
        "icap_check_duration_seconds",
        Kind::Histogram,
        "Durations of the target's checks.",
        false,
        rows.iter().flat_map(|(t, s)| {
            let l = labels(&t.context);
            let h = &s.durations;
            let mut lines = Vec::with_capacity(BUCKETS.len() + 3);
            let mut cumulative = 0u64;
            for (bound, n) in BUCKETS.iter().zip(h.counts.iter()) {
                cumulative = cumulative.saturating_add(*n);
                lines.push(format!(
                    "icap_check_duration_seconds_bucket{{{l},le=\"{bound}\"}} {cumulative}"
                ));
            }
            lines.push(format!(
                "icap_check_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                h.count
            ));
            lines.push(format!(
                "icap_check_duration_seconds_sum{{{l}}} {:.6}",
                h.sum
            ));
            lines.push(format!(
                "icap_check_duration_seconds_count{{{l}}} {}",
                h.count
            ));
            lines
        }),
    );
    family(
        out,
        "icap_istag_changed_seconds",
        Kind::Gauge,
        "When the service's ISTag last changed (an antivirus whose ISTag stays the same for days has stale signatures), seconds since 1970.",
        true,
        each(&|_, s, l| {
            s.istag_since
                .map(|t| format!("icap_istag_changed_seconds{{{l}}} {:.3}", unix(t)))
        }),
    );
}

fn process_families(table: &Table, process: &Process, out: &mut String) {
    family(
        out,
        "icap_check_agent_replies_total",
        Kind::Counter,
        "Agent replies served, by what they said (up, down; pending, stale, unknown name no health word).",
        false,
        Said::ALL.iter().map(|s| {
            format!(
                "icap_check_agent_replies_total{{reply=\"{}\"}} {}",
                s.name(),
                process.replies.get(*s)
            )
        }),
    );
    family(
        out,
        "icap_check_build_info",
        Kind::Gauge,
        "icap-check's version.",
        false,
        [format!(
            "icap_check_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )],
    );
    family(
        out,
        "icap_check_targets",
        Kind::Gauge,
        "Targets loaded.",
        false,
        [format!("icap_check_targets {}", table.targets.len())],
    );
    let (at, ok) = *process
        .reload
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    family(
        out,
        "icap_check_last_reload_seconds",
        Kind::Gauge,
        "When the targets were last loaded (start or SIGHUP), seconds since 1970.",
        false,
        [format!("icap_check_last_reload_seconds {:.3}", unix(at))],
    );
    family(
        out,
        "icap_check_last_reload_success",
        Kind::Gauge,
        "1 if the last load of the files succeeded, 0 if the old targets were kept.",
        false,
        [format!("icap_check_last_reload_success {}", u8::from(ok))],
    );
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::args::target::Cadence;
    use crate::outcome::{Context, Failure, Healthy, Observed, Timings};
    use std::time::Duration;

    fn table() -> Table {
        let context = |server: &str| {
            Arc::new(Context {
                haproxy: false,
                backend: Some("pool".into()),
                server: Some(server.into()),
                target: format!("icap://10.0.0.1:1344/{server}"),
                probe: "OPTIONS".into(),
                protocol: "ICAP",
                syslog: None,
                haproxy_state: None,
            })
        };
        let cadence = Cadence::every(Duration::from_secs(1));
        let t = Table::new(
            vec![
                crate::plan::test_settings(context("s1"), cadence),
                crate::plan::test_settings(context("s2"), cadence),
            ],
            None,
        );
        for (i, ok) in [(0, true), (0, true), (1, false)] {
            let target = &t.targets[i];
            let outcome = Outcome {
                context: target.context.clone(),
                verdict: match ok {
                    true => Ok(Healthy {
                        summary: "200".into(),
                    }),
                    false => Err(Failure::Connect("refused".into())),
                },
                observed: Observed {
                    timings: Timings {
                        total: Duration::from_millis(3),
                        ..Timings::default()
                    },
                    istag: ok.then(|| "\"x\"".to_string()),
                    ..Observed::default()
                },
            };
            target.lock_state().record(outcome, &cadence);
        }
        t
    }

    #[test]
    fn one_family_each_with_every_target() {
        let t = table();
        let text = metrics(&t, &Process::new(Arc::new(Counts::default())));
        let l1 =
            "target=\"icap://10.0.0.1:1344/s1\",backend=\"pool\",server=\"s1\",probe=\"OPTIONS\"";
        for line in [
            format!("probe_success{{{l1}}} 1"),
            format!("icap_check_state{{{l1}}} 1"),
            format!("icap_checks_total{{{l1},exit_code=\"0\"}} 2"),
            format!("icap_check_duration_seconds_bucket{{{l1},le=\"0.005\"}} 2"),
            format!("icap_check_duration_seconds_bucket{{{l1},le=\"+Inf\"}} 2"),
            format!("icap_check_duration_seconds_count{{{l1}}} 2"),
            "icap_check_targets 2".to_string(),
            "icap_check_agent_replies_total{reply=\"up\"} 0".to_string(),
        ] {
            assert!(text.lines().any(|x| x == line), "{line}\n{text}");
        }
        assert!(text.contains("icap_checks_total{target=\"icap://10.0.0.1:1344/s2\",backend=\"pool\",server=\"s2\",probe=\"OPTIONS\",exit_code=\"3\"} 1"));
        // Each family once, its samples together.
        let mut seen = std::collections::HashSet::new();
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            assert!(seen.insert(line.to_string()), "{line} twice");
        }
    }

    #[test]
    fn probe_is_for_configured_targets_only() {
        let t = table();
        assert!(probe(&t, "pool/s1").is_some_and(|p| p.contains("probe_success")));
        assert!(probe(&t, "10.0.0.9:1344").is_none());
    }
}

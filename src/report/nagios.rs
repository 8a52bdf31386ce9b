//! Nagios plugin output (the monitoring-plugins convention): `ICAP OK - ...
//! | perfdata`, and one line per target when there are several; the plugin
//! states replace the exit codes. With HAProxy's view, a failure is
//! CRITICAL only on a server HAProxy sends traffic to, and the summary names
//! the servers where HAProxy and the check disagree.

use std::fmt::Write;
use std::time::Duration;

use super::{beside_haproxy, reason, Thresholds};
use crate::outcome::{Disagreement, ExitStatus, Outcome};

/// Monitoring-plugins states.
pub const OK: u8 = 0;
pub const WARNING: u8 = 1;
pub const CRITICAL: u8 = 2;
pub const UNKNOWN: u8 = 3;

fn nagios_state(o: &Outcome, t: Thresholds) -> u8 {
    match &o.verdict {
        Err(f) if f.exit_status() == ExitStatus::Usage => UNKNOWN,
        // HAProxy already keeps traffic off it (the rule of Outcome::counts).
        Err(_) if !o.counts() => OK,
        Err(_) => CRITICAL,
        Ok(_) if !o.probed() => OK,
        Ok(_) => {
            let total = o.observed.timings.total;
            // HAProxy may open more connections than the service accepts:
            // fine now, 503s at peak.
            let short = o.observed.capacity.as_ref().and_then(|c| c.shortfall());
            if t.critical.is_some_and(|c| total >= c) {
                CRITICAL
            } else if t.warning.is_some_and(|w| total >= w) || short.is_some() {
                WARNING
            } else {
                OK
            }
        }
    }
}

/// The monitoring-plugins convention: `ICAP OK - ... | perfdata`, then one
/// line per target when there are several. Returns the text and the exit code.
pub fn output(outcomes: &[Outcome], t: Thresholds, out: &mut dyn Write) -> u8 {
    let states: Vec<u8> = outcomes.iter().map(|o| nagios_state(o, t)).collect();
    let state = if states.contains(&CRITICAL) {
        CRITICAL
    } else if states.contains(&UNKNOWN) {
        UNKNOWN
    } else if states.contains(&WARNING) {
        WARNING
    } else {
        OK
    };
    let word = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::from(state)];
    // The service label is the probe's protocol: ICAP, HTTP, TCP or TLS.
    let kind = outcomes.first().map_or("ICAP", |o| o.context.protocol);
    let secs = |d: Option<Duration>| {
        d.map(|d| format!("{:.6}", d.as_secs_f64()))
            .unwrap_or_default()
    };
    let (w, c) = (secs(t.warning), secs(t.critical));
    match outcomes {
        [o] => {
            let mut perf = vec![format!(
                "time={:.6}s;{w};{c};0",
                o.observed.timings.total.as_secs_f64()
            )];
            for (name, at) in o.observed.timings.phases() {
                if name != "total" {
                    perf.push(format!("{name}={:.6}s;;;0", at.as_secs_f64()));
                }
            }
            let _ = writeln!(out, "{kind} {word} - {} | {}", line(o), perf.join(" "));
        }
        _ => {
            let failed = outcomes.iter().filter(|o| o.verdict.is_err()).count();
            let skipped = outcomes.iter().filter(|o| !o.probed()).count();
            let perf: Vec<String> = outcomes
                .iter()
                .filter(|o| o.probed())
                .map(|o| {
                    let label = text(
                        &o.context
                            .label()
                            .unwrap_or_else(|| o.context.target.clone())
                            .replace('\'', ""),
                    )
                    .replace('=', "\\x3d");
                    format!(
                        "'{label}'={:.6}s;{w};{c};0",
                        o.observed.timings.total.as_secs_f64()
                    )
                })
                .collect();
            let mut summary = format!(
                "{} of {} targets healthy",
                outcomes.len() - failed - skipped,
                outcomes.len() - skipped
            );
            if skipped > 0 {
                summary += &format!(", {skipped} not probed (MAINT)");
            }
            for kind in [
                Disagreement::FailingInService,
                Disagreement::PassingWhileDown,
            ] {
                let servers: Vec<String> = outcomes
                    .iter()
                    .filter(|o| o.disagreement() == Some(kind))
                    .map(|o| {
                        o.context
                            .label()
                            .unwrap_or_else(|| o.context.target.clone())
                    })
                    .collect();
                if !servers.is_empty() {
                    summary += &format!("; {}: {}", kind.headline(), servers.join(", "));
                }
            }
            let _ = writeln!(
                out,
                "{kind} {word} - {} | {}",
                text(&summary),
                perf.join(" ")
            );
            for (o, s) in outcomes.iter().zip(&states) {
                let _ = writeln!(
                    out,
                    "[{}] {}",
                    ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::from(*s)],
                    line(o)
                );
            }
        }
    }
    state
}

/// One target: `TARGET PROBE REASON`, or with HAProxy's view
/// `backend/server HAProxy: UP, check: PROBE REASON (TARGET)`.
fn line(o: &Outcome) -> String {
    match beside_haproxy(o) {
        Some(beside) => format!("{} ({})", text(&beside), text(&o.context.target)),
        None => format!(
            "{} {} {}",
            text(&o.context.target),
            text(&o.context.probe),
            text(&reason(o))
        ),
    }
}

/// Text in a plugin's output: on one line, and without `|`, which starts
/// the performance data (a server's ISTag or reason could otherwise write
/// perfdata of its own).
fn text(s: &str) -> String {
    crate::text::escape_all(s).replace('|', "\\x7c")
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::report::sample;

    #[test]
    fn one_target() {
        let mut text = String::new();
        let state = output(
            &[sample::healthy("icap://a/echo")],
            Thresholds::default(),
            &mut text,
        );
        assert_eq!(state, OK);
        assert_eq!(text, "ICAP OK - icap://a/echo OPTIONS 200 ISTag=\"CI0001\" | time=0.000700s;;;0 connect=0.000200s;;;0 request_sent=0.000250s;;;0 first_byte=0.000600s;;;0\n");
        let slow = Thresholds {
            warning: Some(Duration::from_micros(500)),
            critical: None,
        };
        assert_eq!(
            output(
                &[sample::healthy("icap://a/echo")],
                slow,
                &mut String::new()
            ),
            WARNING
        );
    }

    #[test]
    fn the_label_is_the_protocol() {
        let mut o = sample::healthy("tls://h:443");
        std::sync::Arc::make_mut(&mut o.context).protocol = "TLS";
        let mut text = String::new();
        output(&[o], Thresholds::default(), &mut text);
        assert!(text.starts_with("TLS OK - tls://h:443"));
    }

    #[test]
    fn a_server_cannot_write_perfdata() {
        let mut o = sample::healthy("icap://a/echo");
        o.verdict = Ok(crate::outcome::Healthy {
            summary: "200 ISTag=\"x| time=9s;;;0 evil=1\"\n2nd line".into(),
        });
        let mut text = String::new();
        output(&[o], Thresholds::default(), &mut text);
        assert_eq!(text.matches('|').count(), 1, "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("ISTag=\"x\\x7c time=9s;;;0 evil=1\"\\x0a2nd line |"),
            "{text}"
        );
    }

    /// A healthy check whose capacity falls short is a WARNING, with the
    /// reason (the probe puts it in the summary).
    #[test]
    fn capacity_shortfall_warns() {
        let mut o = sample::antivirus("icap://a/avscan");
        o.verdict = Ok(crate::outcome::Healthy {
            summary: "200 ISTag=\"CI0001\"; warning: HAProxy's maxconn 50 exceeds the service's Max-Connections 10".into(),
        });
        let mut text = String::new();
        assert_eq!(output(&[o], Thresholds::default(), &mut text), WARNING);
        assert!(
            text.starts_with("ICAP WARNING - icap://a/avscan OPTIONS 200 ISTag=\"CI0001\"; warning: HAProxy's maxconn 50 exceeds the service's Max-Connections 10 |"),
            "{text}"
        );
        let mut fits = sample::antivirus("icap://a/avscan");
        if let Some(c) = fits.observed.capacity.as_mut() {
            c.maxconn = Some(10);
        }
        assert_eq!(
            output(&[fits], Thresholds::default(), &mut String::new()),
            OK
        );
    }

    /// CRITICAL for a failing server HAProxy sends traffic to, named in the
    /// summary; a DOWN one failing is OK; MAINT is listed, not probed.
    #[test]
    fn haproxys_view() {
        use crate::outcome::HaproxyState::*;
        let outcomes = [
            sample::in_haproxy(sample::healthy("icap://a/echo"), Up),
            sample::in_haproxy(sample::refused("icap://b/echo"), Down),
            sample::in_haproxy(sample::wraps_403("icap03"), Up),
            sample::maint("icap04"),
        ];
        let mut text = String::new();
        let state = output(&outcomes, Thresholds::default(), &mut text);
        assert_eq!(state, CRITICAL);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with(
                "ICAP CRITICAL - 1 of 3 targets healthy, 1 not probed (MAINT); \
                 HAProxy sends traffic to a failing server: icap_pool/icap03 | "
            ),
            "{text}"
        );
        assert_eq!(lines[0].matches("s;;;0").count(), 3, "{text}");
        assert!(
            lines[2]
                .starts_with("[OK] icap_pool/icap02 HAProxy: DOWN, check: OPTIONS cannot connect"),
            "{text}"
        );
        assert_eq!(
            lines[3],
            "[CRITICAL] icap_pool/icap03 HAProxy: UP, check: RESPMOD unhealthy: ICAP 200 wraps \
             HTTP 403 Forbidden (exit 1) (icap://10.0.0.7:1344/echo)"
        );
        assert_eq!(
            lines[4],
            "[OK] icap_pool/icap04 HAProxy: MAINT, not probed (icap://10.0.0.9:1344/echo)"
        );
        // Only the DOWN one fails: OK.
        assert_eq!(
            output(&outcomes[..2], Thresholds::default(), &mut String::new()),
            OK
        );
    }

    #[test]
    fn several_targets() {
        let mut text = String::new();
        let state = output(
            &[
                sample::healthy("icap://a/echo"),
                sample::refused("icap://b/echo"),
            ],
            Thresholds::default(),
            &mut text,
        );
        assert_eq!(state, CRITICAL);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with(
                "ICAP CRITICAL - 1 of 2 targets healthy | 'icap_pool/icap01'=0.000700s;;;0"
            ),
            "{text}"
        );
        assert!(
            lines[2].starts_with("[CRITICAL] icap://b/echo OPTIONS cannot connect"),
            "{text}"
        );
    }
}

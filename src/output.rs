//! Reporting many outcomes: the human table, JSON lines, Nagios plugin
//! output and Prometheus text exposition, and the exit code of a run.

use std::fmt::Write as _;
use std::time::Duration;

use crate::check::Outcome;
use crate::verdict::ExitStatus;

/// The worst exit status of a run. From worst: usage (the run itself is
/// wrong), cannot connect, timeout, TLS, protocol error, unhealthy, healthy.
pub fn worst(outcomes: &[Outcome]) -> ExitStatus {
    outcomes
        .iter()
        .map(|o| {
            o.verdict
                .as_ref()
                .map_or_else(|f| f.exit_status(), |_| ExitStatus::Healthy)
        })
        .max_by_key(|s| severity(*s))
        .unwrap_or(ExitStatus::Healthy)
}

fn severity(status: ExitStatus) -> u8 {
    match status {
        ExitStatus::Healthy => 0,
        ExitStatus::Unhealthy => 1,
        ExitStatus::Protocol => 2,
        ExitStatus::Tls => 3,
        ExitStatus::Timeout => 4,
        ExitStatus::Connect => 5,
        ExitStatus::Usage => 6,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn reason(o: &Outcome) -> String {
    match &o.verdict {
        Ok(h) => h.summary.clone(),
        Err(f) => format!("{f} (exit {})", f.exit_status().code()),
    }
}

/// One aligned line per target, then a summary line.
pub fn human(outcomes: &[Outcome], elapsed: Duration) -> String {
    let width = |f: &dyn Fn(&Outcome) -> usize| outcomes.iter().map(f).max().unwrap_or(0);
    let label_w = width(&|o| o.context.label().map_or(0, |l| l.len()));
    let target_w = width(&|o| o.context.target.len());
    let probe_w = width(&|o| o.context.probe.len());
    let mut out = String::new();
    for o in outcomes {
        let word = if o.verdict.is_ok() { "OK" } else { "FAIL" };
        let label = o.context.label().unwrap_or_default();
        let label = if label_w > 0 {
            format!("{label:label_w$}  ")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{word:4}  {label}{:target_w$}  {:probe_w$}  {}  {}",
            o.context.target,
            o.context.probe,
            reason(o),
            ms(o.observed.timings.total)
        );
    }
    let failed = outcomes.iter().filter(|o| o.verdict.is_err()).count();
    let _ = write!(
        out,
        "{} targets: {} healthy, {failed} failed",
        outcomes.len(),
        outcomes.len() - failed
    );
    if failed > 0 {
        let _ = write!(out, " (exit {})", worst(outcomes).code());
    }
    let _ = writeln!(out, " in {}", ms(elapsed));
    out
}

/// Phase timings as one line, for -v.
pub fn timings_line(o: &Outcome) -> String {
    let phases: Vec<String> = o
        .observed
        .timings
        .phases()
        .iter()
        .map(|(name, at)| format!("{} {}", name.replace('_', " "), ms(*at)))
        .collect();
    phases.join(", ")
}

pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt(value: Option<&str>) -> String {
    value.map_or_else(|| "null".to_string(), json_string)
}

/// One JSON object per target per line.
pub fn json(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let c = &o.context;
        let (healthy, code, why, detail) = match &o.verdict {
            Ok(h) => (true, 0, None, Some(h.summary.clone())),
            Err(f) => (false, f.exit_status().code(), Some(f.to_string()), None),
        };
        let timings: Vec<String> = o
            .observed
            .timings
            .phases()
            .iter()
            .map(|(name, at)| format!("\"{name}\":{:.6}", at.as_secs_f64()))
            .collect();
        let _ = writeln!(
            out,
            "{{\"target\":{},\"backend\":{},\"server\":{},\"probe\":{},\"healthy\":{healthy},\"exit_code\":{code},\"reason\":{},\"detail\":{},\"status\":{},\"istag\":{},\"timings\":{{{}}}}}",
            json_string(&c.target),
            json_opt(c.backend.as_deref()),
            json_opt(c.server.as_deref()),
            json_string(&c.probe),
            json_opt(why.as_deref()),
            json_opt(detail.as_deref()),
            o.observed.status.map_or_else(|| "null".to_string(), |s| s.to_string()),
            json_opt(o.observed.istag.as_deref()),
            timings.join(",")
        );
    }
    out
}

/// Nagios thresholds on the total time of a healthy check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Thresholds {
    pub warning: Option<Duration>,
    pub critical: Option<Duration>,
}

/// Monitoring-plugins states.
const OK: u8 = 0;
const WARNING: u8 = 1;
const CRITICAL: u8 = 2;
const UNKNOWN: u8 = 3;

fn nagios_state(o: &Outcome, t: Thresholds) -> u8 {
    match &o.verdict {
        Err(f) if f.exit_status() == ExitStatus::Usage => UNKNOWN,
        Err(_) => CRITICAL,
        Ok(_) => {
            let total = o.observed.timings.total;
            if t.critical.is_some_and(|c| total >= c) {
                CRITICAL
            } else if t.warning.is_some_and(|w| total >= w) {
                WARNING
            } else {
                OK
            }
        }
    }
}

/// The monitoring-plugins convention: `ICAP OK - ... | perfdata`, then one
/// line per target when there are several. Returns the text and the exit code.
pub fn nagios(outcomes: &[Outcome], t: Thresholds) -> (String, u8) {
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
    let kind = outcomes
        .first()
        .map(|o| {
            o.context
                .target
                .split("://")
                .next()
                .unwrap_or("icap")
                .to_ascii_uppercase()
        })
        .map(|k| k.trim_end_matches('S').to_string())
        .filter(|k| !k.contains(' ') && !k.is_empty() && k.len() < 8)
        .unwrap_or_else(|| "ICAP".to_string());
    let secs = |d: Option<Duration>| {
        d.map(|d| format!("{:.6}", d.as_secs_f64()))
            .unwrap_or_default()
    };
    let (w, c) = (secs(t.warning), secs(t.critical));
    let mut out = String::new();
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
            let _ = writeln!(
                out,
                "{kind} {word} - {} {} {} | {}",
                o.context.target,
                o.context.probe,
                reason(o),
                perf.join(" ")
            );
        }
        _ => {
            let failed = outcomes.iter().filter(|o| o.verdict.is_err()).count();
            let perf: Vec<String> = outcomes
                .iter()
                .map(|o| {
                    let label = o
                        .context
                        .label()
                        .unwrap_or_else(|| o.context.target.clone())
                        .replace('\'', "");
                    format!(
                        "'{label}'={:.6}s;{w};{c};0",
                        o.observed.timings.total.as_secs_f64()
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "{kind} {word} - {} of {} targets healthy | {}",
                outcomes.len() - failed,
                outcomes.len(),
                perf.join(" ")
            );
            for (o, s) in outcomes.iter().zip(&states) {
                let _ = writeln!(
                    out,
                    "[{}] {} {} {}",
                    ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::from(*s)],
                    o.context.target,
                    o.context.probe,
                    reason(o)
                );
            }
        }
    }
    (out, state)
}

fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Text exposition for node_exporter's textfile collector.
pub fn prometheus(outcomes: &[Outcome]) -> String {
    let labels = |o: &Outcome| {
        format!(
            "target=\"{}\",backend=\"{}\",server=\"{}\",probe=\"{}\"",
            label_value(&o.context.target),
            label_value(o.context.backend.as_deref().unwrap_or("")),
            label_value(o.context.server.as_deref().unwrap_or("")),
            label_value(&o.context.probe)
        )
    };
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, rows: Vec<String>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for row in rows {
            let _ = writeln!(out, "{name}{row}");
        }
    };
    metric(
        "probe_success",
        "1 if the check found the server healthy, else 0.",
        outcomes
            .iter()
            .map(|o| format!("{{{}}} {}", labels(o), u8::from(o.verdict.is_ok())))
            .collect(),
    );
    metric(
        "probe_exit_code",
        "The check's exit code (0 healthy, 1 unhealthy, 2 usage, 3 connect, 4 timeout, 5 protocol, 6 TLS).",
        outcomes
            .iter()
            .map(|o| {
                let code = o.verdict.as_ref().map_or_else(|f| f.exit_status().code(), |_| 0);
                format!("{{{}}} {code}", labels(o))
            })
            .collect(),
    );
    metric(
        "probe_duration_seconds",
        "Seconds from the check's start to the end of each phase.",
        outcomes
            .iter()
            .flat_map(|o| {
                o.observed
                    .timings
                    .phases()
                    .into_iter()
                    .map(move |(phase, at)| {
                        format!(
                            "{{{},phase=\"{phase}\"}} {:.6}",
                            labels(o),
                            at.as_secs_f64()
                        )
                    })
            })
            .collect(),
    );
    metric(
        "probe_status_code",
        "Status of the server's final answer (ICAP or HTTP), when one was read.",
        outcomes
            .iter()
            .filter_map(|o| o.observed.status.map(|s| format!("{{{}}} {s}", labels(o))))
            .collect(),
    );
    out
}

/// A line for syslog or stderr about a failed outcome.
pub fn failure_line(o: &Outcome) -> Option<String> {
    o.verdict.as_ref().err().map(|f| o.context.failure_text(f))
}

/// min/median/max of every phase over repeated runs, and the failures.
pub fn repeat_summary(outcomes: &[Outcome]) -> String {
    let mut phases: Vec<(&'static str, Vec<Duration>)> = Vec::new();
    for o in outcomes {
        for (name, at) in o.observed.timings.phases() {
            match phases.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(at),
                None => phases.push((name, vec![at])),
            }
        }
    }
    let mut out = format!(
        "{:<14}{:>12}{:>12}{:>12}{:>8}\n",
        "phase", "min", "median", "max", "runs"
    );
    for (name, mut values) in phases {
        values.sort();
        let median = values[values.len() / 2];
        let (min, max) = (values[0], values[values.len() - 1]);
        let _ = writeln!(
            out,
            "{name:<14}{:>12}{:>12}{:>12}{:>8}",
            ms(min),
            ms(median),
            ms(max),
            values.len()
        );
    }
    let mut codes: Vec<(u8, usize)> = Vec::new();
    for o in outcomes {
        if let Err(f) = &o.verdict {
            let code = f.exit_status().code();
            match codes.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => codes.push((code, 1)),
            }
        }
    }
    codes.sort();
    let failed: usize = codes.iter().map(|(_, n)| n).sum();
    let _ = write!(out, "{} runs, {failed} failed", outcomes.len());
    if !codes.is_empty() {
        let list: Vec<String> = codes
            .iter()
            .map(|(c, n)| format!("exit {c} x{n}"))
            .collect();
        let _ = write!(out, " ({})", list.join(", "));
    }
    out.push('\n');
    out
}

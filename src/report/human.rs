//! The human table: one aligned line per target, then a summary line; with
//! HAProxy's view (`--haproxy-socket`), its state in a column and a line for
//! each server where HAProxy and the check disagree.

use std::fmt::Write;
use std::time::Duration;

use super::{beside_haproxy, ms, reason};
use crate::outcome::{worst, Outcome};

/// One aligned line per target, then a summary line, then the
/// disagreements with HAProxy.
pub fn table(outcomes: &[Outcome], elapsed: Duration, out: &mut dyn Write) {
    let width = |f: &dyn Fn(&Outcome) -> usize| outcomes.iter().map(f).max().unwrap_or(0);
    let label_w = width(&|o| o.context.label().map_or(0, |l| l.len()));
    let target_w = width(&|o| o.context.target.len());
    let probe_w = width(&|o| o.context.probe.len());
    // `HAProxy MAINT`: the column only when HAProxy's view was read.
    let state_w = width(&|o| o.context.haproxy_state.map_or(0, |s| s.name().len()));
    for o in outcomes {
        let word = match (o.probed(), o.verdict.is_ok()) {
            (false, _) => "SKIP",
            (true, true) => "OK",
            (true, false) => "FAIL",
        };
        let state = match (state_w, o.context.haproxy_state) {
            (0, _) => String::new(),
            (_, Some(s)) => format!("HAProxy {:state_w$}  ", s.name()),
            (_, None) => format!("HAProxy {:state_w$}  ", "?"),
        };
        let label = o.context.label().unwrap_or_default();
        let label = if label_w > 0 {
            format!("{label:label_w$}  ")
        } else {
            String::new()
        };
        let time = match o.probed() {
            true => ms(o.observed.timings.total),
            false => "-".into(),
        };
        let _ = writeln!(
            out,
            "{word:4}  {state}{label}{:target_w$}  {:probe_w$}  {}  {time}",
            o.context.target,
            o.context.probe,
            reason(o),
        );
    }
    let failed = outcomes.iter().filter(|o| o.verdict.is_err()).count();
    let skipped = outcomes.iter().filter(|o| !o.probed()).count();
    let _ = write!(
        out,
        "{} targets: {} healthy, {failed} failed",
        outcomes.len(),
        outcomes.len() - failed - skipped
    );
    if skipped > 0 {
        let _ = write!(out, ", {skipped} not probed (MAINT)");
    }
    let code = worst(outcomes).code();
    match (failed, code) {
        (0, _) => {}
        (_, 0) => {
            let _ = write!(out, " (exit 0: HAProxy sends the failing ones no traffic)");
        }
        _ => {
            let _ = write!(out, " (exit {code})");
        }
    }
    let _ = writeln!(out, " in {}", ms(elapsed));
    for o in outcomes {
        if let (Some(d), Some(text)) = (o.disagreement(), beside_haproxy(o)) {
            let _ = writeln!(out, "{}: {text}", d.headline());
        }
    }
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

#[cfg(test)]
mod test {
    use super::*;
    use crate::report::sample;

    #[test]
    fn aligned_rows_and_a_summary() {
        let mut text = String::new();
        table(
            &[
                sample::healthy("icap://10.0.0.5:1344/echo"),
                sample::refused("icap://10.0.0.6:1/echo"),
            ],
            Duration::from_micros(1300),
            &mut text,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("OK    icap_pool/icap01  icap://10.0.0.5:1344/echo  OPTIONS  200"),
            "{text}"
        );
        assert!(
            lines[1].starts_with(
                "FAIL  icap_pool/icap02  icap://10.0.0.6:1/echo     OPTIONS  cannot connect"
            ),
            "{text}"
        );
        assert_eq!(
            lines[2],
            "2 targets: 1 healthy, 1 failed (exit 3) in 1.3 ms"
        );
    }

    /// HAProxy's state in a column, MAINT listed not probed, and each
    /// disagreement named after the summary; the exit code is that of the
    /// servers HAProxy sends traffic to.
    #[test]
    fn haproxys_view_beside_the_checks() {
        use crate::outcome::HaproxyState::*;
        let mut down_passing = sample::healthy("icap://10.0.0.8:1344/echo");
        std::sync::Arc::make_mut(&mut down_passing.context).server = Some("icap05".into());
        let outcomes = [
            sample::in_haproxy(sample::healthy("icap://10.0.0.5:1344/echo"), Up),
            sample::in_haproxy(sample::refused("icap://10.0.0.6:1/echo"), Down),
            sample::in_haproxy(sample::wraps_403("icap03"), Up),
            sample::maint("icap04"),
            sample::in_haproxy(down_passing, Down),
        ];
        let mut text = String::new();
        table(&outcomes, Duration::from_micros(1300), &mut text);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0]
                .starts_with("OK    HAProxy UP     icap_pool/icap01  icap://10.0.0.5:1344/echo"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("FAIL  HAProxy DOWN   icap_pool/icap02"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("FAIL  HAProxy UP     icap_pool/icap03"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("SKIP  HAProxy MAINT  icap_pool/icap04")
                && lines[3].ends_with("not probed: HAProxy has it in MAINT  -"),
            "{text}"
        );
        assert_eq!(
            lines[5],
            "5 targets: 2 healthy, 2 failed, 1 not probed (MAINT) (exit 1) in 1.3 ms"
        );
        assert_eq!(
            lines[6],
            "HAProxy sends traffic to a failing server: icap_pool/icap03 HAProxy: UP, check: \
             RESPMOD unhealthy: ICAP 200 wraps HTTP 403 Forbidden (exit 1)"
        );
        assert_eq!(
            lines[7],
            "HAProxy has DOWN a server that passes: icap_pool/icap05 HAProxy: DOWN, check: \
             OPTIONS 200 ISTag=\"CI0001\""
        );
        assert_eq!(lines.len(), 8, "{text}");
        // A DOWN server that fails is no news: exit 0, and said why.
        let mut text = String::new();
        table(&outcomes[..2], Duration::ZERO, &mut text);
        assert!(
            text.contains("2 targets: 1 healthy, 1 failed (exit 0: HAProxy sends the failing ones no traffic)"),
            "{text}"
        );
    }

    #[test]
    fn timings_name_each_phase() {
        assert_eq!(
            timings_line(&sample::healthy("x")),
            "connect 0.2 ms, request sent 0.2 ms, first byte 0.6 ms, total 0.7 ms"
        );
    }
}

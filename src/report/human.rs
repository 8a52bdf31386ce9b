//! The human table: one aligned line per target, then a summary line.

use std::fmt::Write;
use std::time::Duration;

use super::{ms, reason};
use crate::outcome::{worst, Outcome};

/// One aligned line per target, then a summary line.
pub fn table(outcomes: &[Outcome], elapsed: Duration, out: &mut dyn Write) {
    let width = |f: &dyn Fn(&Outcome) -> usize| outcomes.iter().map(f).max().unwrap_or(0);
    let label_w = width(&|o| o.context.label().map_or(0, |l| l.len()));
    let target_w = width(&|o| o.context.target.len());
    let probe_w = width(&|o| o.context.probe.len());
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

    #[test]
    fn timings_name_each_phase() {
        assert_eq!(
            timings_line(&sample::healthy("x")),
            "connect 0.2 ms, request sent 0.2 ms, first byte 0.6 ms, total 0.7 ms"
        );
    }
}

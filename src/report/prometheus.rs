//! Prometheus text exposition, for node_exporter's textfile collector.

use std::fmt::Write;

use crate::outcome::Outcome;

/// A label value: outside text escaped first (so a control character is
/// `\x1b`, not a raw byte), then the exposition format's escapes.
fn label_value(text: &str) -> String {
    crate::text::escape_all(text)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// Text exposition for node_exporter's textfile collector. A server HAProxy
/// has in MAINT was not probed: it has no `probe_*` samples, only its
/// `icap_check_haproxy_state`.
pub fn exposition(all: &[Outcome], out: &mut dyn Write) {
    let outcomes: Vec<&Outcome> = all.iter().filter(|o| o.probed()).collect();
    let labels = |o: &Outcome| {
        format!(
            "target=\"{}\",backend=\"{}\",server=\"{}\",probe=\"{}\"",
            label_value(&o.context.target),
            label_value(o.context.backend.as_deref().unwrap_or("")),
            label_value(o.context.server.as_deref().unwrap_or("")),
            label_value(&o.context.probe)
        )
    };
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
    // Info style: one sample per server, its state a label, so that
    // `probe_success == 0 and on(backend, server) icap_check_haproxy_state{state="UP"}`
    // finds the servers HAProxy sends traffic to that fail.
    if all.iter().any(|o| o.context.haproxy_state.is_some()) {
        metric(
            "icap_check_haproxy_state",
            "HAProxy's state for the server, read from its runtime API (UP, DOWN, MAINT, DRAIN, NOLB).",
            all.iter()
                .filter_map(|o| {
                    let state = o.context.haproxy_state?;
                    Some(format!("{{{},state=\"{state}\"}} 1", labels(o)))
                })
                .collect(),
        );
    }
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
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::report::sample;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(
            label_value("a\"b\\c\nd\u{1b}"),
            "a\\\"b\\\\c\\\\x0ad\\\\x1b"
        );
    }

    #[test]
    fn one_sample_per_outcome_and_phase() {
        let mut text = String::new();
        exposition(
            &[
                sample::healthy("icap://a/echo"),
                sample::refused("icap://b/echo"),
            ],
            &mut text,
        );
        let labels =
            "target=\"icap://a/echo\",backend=\"icap_pool\",server=\"icap01\",probe=\"OPTIONS\"";
        assert!(
            text.contains(&format!("probe_success{{{labels}}} 1\n")),
            "{text}"
        );
        assert!(text.contains("probe_exit_code{target=\"icap://b/echo\",backend=\"icap_pool\",server=\"icap02\",probe=\"OPTIONS\"} 3\n"), "{text}");
        assert!(
            text.contains(&format!(
                "probe_duration_seconds{{{labels},phase=\"first_byte\"}} 0.000600\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("probe_status_code{{{labels}}} 200\n")),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 4);
        assert!(!text.contains("haproxy_state"), "{text}");
    }

    #[test]
    fn haproxys_state_and_no_samples_for_what_was_not_probed() {
        use crate::outcome::HaproxyState::Up;
        let mut text = String::new();
        exposition(
            &[
                sample::in_haproxy(sample::wraps_403("icap03"), Up),
                sample::maint("icap04"),
            ],
            &mut text,
        );
        assert!(
            text.contains("icap_check_haproxy_state{target=\"icap://10.0.0.7:1344/echo\",backend=\"icap_pool\",server=\"icap03\",probe=\"RESPMOD\",state=\"UP\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("server=\"icap04\",probe=\"OPTIONS\",state=\"MAINT\"} 1\n"),
            "{text}"
        );
        assert!(
            !text.contains("probe_success{target=\"icap://10.0.0.9"),
            "{text}"
        );
        assert_eq!(text.matches("probe_success{").count(), 1, "{text}");
        assert_eq!(text.matches("# TYPE").count(), 5);
    }
}

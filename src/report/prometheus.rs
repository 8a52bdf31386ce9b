//! Prometheus text exposition: the one encoder of `--format prometheus`
//! (for node_exporter's textfile collector) and of the resident mode's
//! `/metrics`. Every per-check family is labelled `target`, `backend`,
//! `server`, `probe` ([`labels`]), the same set everywhere.

use std::fmt::Write;

use crate::outcome::{Capacity, Context, Outcome};

/// A label value: outside text escaped first (so a control character is
/// `\x1b`, not a raw byte), then the exposition format's escapes.
pub fn label_value(text: &str) -> String {
    crate::text::escape_all(text)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// `target="...",backend="...",server="...",probe="..."`
pub fn labels(c: &Context) -> String {
    format!(
        "target=\"{}\",backend=\"{}\",server=\"{}\",probe=\"{}\"",
        label_value(&c.target),
        label_value(c.backend.as_deref().unwrap_or("")),
        label_value(c.server.as_deref().unwrap_or("")),
        label_value(&c.probe)
    )
}

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
}

/// Writes one family: its HELP and TYPE, then its samples (each
/// `name{labels} value`, already formatted). A family only some checks
/// have (`optional`) is left out when it has no sample.
pub fn family(
    out: &mut dyn Write,
    name: &str,
    kind: Kind,
    help: &str,
    optional: bool,
    samples: impl IntoIterator<Item = String>,
) {
    let mut samples = samples.into_iter().peekable();
    if optional && samples.peek().is_none() {
        return;
    }
    let kind = match kind {
        Kind::Gauge => "gauge",
        Kind::Counter => "counter",
        Kind::Histogram => "histogram",
    };
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for sample in samples {
        let _ = writeln!(out, "{sample}");
    }
}

/// `--format prometheus`: the families of the checks' outcomes.
/// A server HAProxy has in MAINT was not probed: it has no `probe_*`
/// samples, only its `icap_check_haproxy_state`.
pub fn exposition(all: &[Outcome], out: &mut dyn Write) {
    let probed: Vec<&Outcome> = all.iter().filter(|o| o.probed()).collect();
    outcome_families(&probed, out);
    // Info style: one sample per server, its state a label, so that
    // `probe_success == 0 and on(backend, server) icap_check_haproxy_state{state="UP"}`
    // finds the servers HAProxy sends traffic to that fail.
    family(
        out,
        "icap_check_haproxy_state",
        Kind::Gauge,
        "HAProxy's state for the server, read from its runtime API (UP, DOWN, MAINT, DRAIN, NOLB).",
        true,
        all.iter().filter_map(|o| {
            let state = o.context.haproxy_state?;
            Some(format!(
                "icap_check_haproxy_state{{{},state=\"{state}\"}} 1",
                labels(&o.context)
            ))
        }),
    );
}

/// The families every check's outcome has (or, for some, may have), over
/// `outcomes`: what `--format prometheus` prints, and the part of
/// `/metrics` about each target's last check.
pub fn outcome_families(outcomes: &[&Outcome], out: &mut dyn Write) {
    let labels = |o: &Outcome| labels(&o.context);
    let mut metric = |name: &str, help: &str, rows: Vec<String>| {
        // What only some checks observe (capacity, the canary) is left out
        // when no check did.
        let rows = rows.into_iter().map(|row| format!("{name}{row}"));
        let optional = name.starts_with("icap_") || name.starts_with("probe_ssl");
        family(out, name, Kind::Gauge, help, optional, rows);
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
    let capacity = |o: &Outcome, f: &dyn Fn(&Capacity) -> Option<u64>| {
        o.observed
            .capacity
            .as_ref()
            .and_then(f)
            .map(|n| format!("{{{}}} {n}", labels(o)))
    };
    metric(
        "icap_max_connections",
        "The service's Max-Connections, from its OPTIONS answer.",
        outcomes
            .iter()
            .filter_map(|o| capacity(o, &|c| c.max_connections))
            .collect(),
    );
    metric(
        "icap_options_ttl_seconds",
        "The service's Options-TTL, from its OPTIONS answer.",
        outcomes
            .iter()
            .filter_map(|o| capacity(o, &|c| c.options_ttl))
            .collect(),
    );
    metric(
        "icap_haproxy_maxconn",
        "HAProxy's maxconn for the server (HAPROXY_SERVER_MAXCONN; 0 is no limit).",
        outcomes
            .iter()
            .filter_map(|o| capacity(o, &|c| c.maxconn))
            .collect(),
    );
    metric(
        "icap_capacity_exceeded",
        "1 if HAProxy's maxconn exceeds the service's Max-Connections or its current connections reached it, else 0; when both are known.",
        outcomes
            .iter()
            .filter_map(|o| {
                let c = o.observed.capacity.as_ref()?;
                c.max_connections?;
                c.maxconn.or(c.curconn)?;
                Some(format!("{{{}}} {}", labels(o), u8::from(c.shortfall().is_some())))
            })
            .collect(),
    );
    metric(
        "icap_service_info",
        "The service's OPTIONS Service header and its ISTag (which changes with its signatures), as labels.",
        outcomes
            .iter()
            .filter_map(|o| {
                let service = o.observed.capacity.as_ref().and_then(|c| c.service.as_deref());
                let istag = o.observed.istag.as_deref();
                (service.is_some() || istag.is_some()).then(|| {
                    format!(
                        "{{{},service=\"{}\",istag=\"{}\"}} 1",
                        labels(o),
                        label_value(service.unwrap_or("")),
                        label_value(istag.unwrap_or(""))
                    )
                })
            })
            .collect(),
    );
    metric(
        "probe_ssl_earliest_cert_expiry",
        "When the server's certificate expires, seconds since 1970 (TLS checks).",
        outcomes
            .iter()
            .filter_map(|o| {
                let at = o.observed.cert_not_after?;
                Some(format!("{{{}}} {at}", labels(o)))
            })
            .collect(),
    );
    metric(
        "icap_canary_caught",
        "1 if the service flagged the EICAR test file (--canary), else 0.",
        outcomes
            .iter()
            .filter_map(|o| {
                let caught = o.observed.canary.as_ref()?.caught;
                Some(format!("{{{}}} {}", labels(o), u8::from(caught)))
            })
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
        // The ISTag, for alerts on signatures that stopped changing.
        assert!(
            text.contains(&format!(
                "icap_service_info{{{labels},service=\"\",istag=\"\\\"CI0001\\\"\"}} 1\n"
            )),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 5, "{text}");
        assert!(!text.contains("haproxy_state"), "{text}");
    }

    #[test]
    fn capacity_service_and_canary() {
        let mut text = String::new();
        exposition(
            &[
                sample::antivirus("icap://a/avscan"),
                sample::refused("icap://b/echo"),
            ],
            &mut text,
        );
        let labels =
            "target=\"icap://a/avscan\",backend=\"icap_pool\",server=\"icap01\",probe=\"OPTIONS\"";
        for line in [
            format!("icap_max_connections{{{labels}}} 10\n"),
            format!("icap_options_ttl_seconds{{{labels}}} 3600\n"),
            format!("icap_haproxy_maxconn{{{labels}}} 50\n"),
            format!("icap_capacity_exceeded{{{labels}}} 1\n"),
            format!("icap_service_info{{{labels},service=\"C-ICAP/0.5.10 server - Antivirus service\",istag=\"\\\"CI0001\\\"\"}} 1\n"),
            format!("icap_canary_caught{{{labels}}} 1\n"),
        ] {
            assert!(text.contains(&line), "{line}{text}");
        }
        // Only the check that observed them has them.
        assert_eq!(
            text.matches("target=\"icap://b/echo\"").count(),
            3,
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 10);
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
        // probe_{success,exit_code,duration_seconds,status_code},
        // icap_service_info (its ISTag) and icap_check_haproxy_state.
        assert_eq!(text.matches("# TYPE").count(), 6, "{text}");
    }
}

//! JSON lines: one object per target per line.

use std::fmt::Write;

use crate::outcome::{Capacity, Observed, Outcome};

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
            // Control characters, and what would spoof a line where the
            // JSON is shown (text::is_hidden), as \uXXXX (UTF-16).
            c if crate::text::is_hidden(c) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
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

/// One JSON object per target per line. A server HAProxy has in MAINT is
/// not probed: `healthy` and `exit_code` are null, `reason` says why.
/// `haproxy_state` is HAProxy's state for the server (null without
/// `--haproxy-socket`), `disagreement` how it and the check disagree.
pub fn lines(outcomes: &[Outcome], out: &mut dyn Write) {
    for o in outcomes {
        let c = &o.context;
        let (healthy, code, why, detail) = match &o.verdict {
            Ok(h) if !o.probed() => ("null", "null".into(), Some(h.summary.clone()), None),
            Ok(h) => ("true", "0".into(), None, Some(h.summary.clone())),
            Err(f) => (
                "false",
                f.exit_status().code().to_string(),
                Some(f.to_string()),
                None,
            ),
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
            "{{\"target\":{},\"backend\":{},\"server\":{},\"probe\":{},\"healthy\":{healthy},\"exit_code\":{code},\"reason\":{},\"detail\":{},\"status\":{},\"istag\":{},{}\"haproxy_state\":{},\"disagreement\":{},\"timings\":{{{}}}}}",
            json_string(&c.target),
            json_opt(c.backend.as_deref()),
            json_opt(c.server.as_deref()),
            json_string(&c.probe),
            json_opt(why.as_deref()),
            json_opt(detail.as_deref()),
            o.observed.status.map_or_else(|| "null".to_string(), |s| s.to_string()),
            json_opt(o.observed.istag.as_deref()),
            service_fields(&o.observed),
            json_opt(c.haproxy_state.map(|s| s.name())),
            json_opt(o.disagreement().map(|d| d.key())),
            timings.join(",")
        );
    }
}

fn json_count(value: Option<u64>) -> String {
    value.map_or_else(|| "null".to_string(), |n| n.to_string())
}

/// What OPTIONS said of the service beside HAProxy's numbers, and the
/// detection canary: `service max_connections options_ttl maxconn curconn
/// capacity_warning canary`, each null when unknown or not run, then a comma.
fn service_fields(observed: &Observed) -> String {
    let c = observed.capacity.as_ref();
    let canary = observed.canary.as_ref().map_or_else(
        || "null".to_string(),
        |k| {
            format!(
                "{{\"caught\":{},\"threat\":{},\"status\":{},\"detail\":{}}}",
                k.caught,
                json_opt(k.threat.as_deref()),
                k.status,
                json_string(&k.detail)
            )
        },
    );
    format!(
        "\"service\":{},\"max_connections\":{},\"options_ttl\":{},\"maxconn\":{},\"curconn\":{},\"capacity_warning\":{},\"canary\":{canary},",
        json_opt(c.and_then(|c| c.service.as_deref())),
        json_count(c.and_then(|c| c.max_connections)),
        json_count(c.and_then(|c| c.options_ttl)),
        json_count(c.and_then(|c| c.maxconn)),
        json_count(c.and_then(|c| c.curconn)),
        json_opt(c.and_then(Capacity::shortfall).as_deref()),
    )
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::report::sample;

    #[test]
    fn what_spoofs_a_line_is_escaped_too() {
        assert_eq!(json_string("a\u{202e}b\u{2028}"), "\"a\\u202eb\\u2028\"");
        assert_eq!(json_string("\u{e0041}"), "\"\\udb40\\udc41\"");
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn one_object_per_outcome() {
        let mut text = String::new();
        lines(
            &[
                sample::healthy("icap://a/echo"),
                sample::refused("icap://b/echo"),
            ],
            &mut text,
        );
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].starts_with("{\"target\":\"icap://a/echo\",\"backend\":\"icap_pool\",\"server\":\"icap01\",\"probe\":\"OPTIONS\",\"healthy\":true,\"exit_code\":0,\"reason\":null"), "{}", rows[0]);
        assert!(
            rows[0].contains("\"istag\":\"\\\"CI0001\\\"\""),
            "{}",
            rows[0]
        );
        assert!(rows[0].ends_with("\"timings\":{\"connect\":0.000200,\"request_sent\":0.000250,\"first_byte\":0.000600,\"total\":0.000700}}"), "{}", rows[0]);
        assert!(rows[1].contains("\"healthy\":false,\"exit_code\":3,\"reason\":\"cannot connect: connection refused (127.0.0.1:1)\""), "{}", rows[1]);
        assert!(rows[1].contains("\"status\":null"));
        assert!(
            rows[1].contains("\"service\":null,\"max_connections\":null,\"options_ttl\":null,\"maxconn\":null,\"curconn\":null,\"capacity_warning\":null,\"canary\":null,\"haproxy_state\":null,\"disagreement\":null,"),
            "{}",
            rows[1]
        );
    }

    #[test]
    fn capacity_and_canary() {
        let mut text = String::new();
        lines(&[sample::antivirus("icap://a/avscan")], &mut text);
        assert!(text.contains("\"istag\":\"\\\"CI0001\\\"\",\"service\":\"C-ICAP/0.5.10 server - Antivirus service\",\"max_connections\":10,\"options_ttl\":3600,\"maxconn\":50,\"curconn\":2,\"capacity_warning\":\"HAProxy's maxconn 50 exceeds the service's Max-Connections 10\",\"canary\":{\"caught\":true,\"threat\":\"Eicar-Canary.MD5.UNOFFICIAL\",\"status\":200,\"detail\":\"X-Infection-Found on ICAP 200\"},\"haproxy_state\":null,\"disagreement\":null,\"timings\":{"), "{text}");
    }

    #[test]
    fn haproxys_state_and_disagreement() {
        use crate::outcome::HaproxyState::Up;
        let mut text = String::new();
        lines(
            &[
                sample::in_haproxy(sample::wraps_403("icap03"), Up),
                sample::maint("icap04"),
            ],
            &mut text,
        );
        let rows: Vec<&str> = text.lines().collect();
        assert!(
            rows[0].contains("\"healthy\":false,\"exit_code\":1,"),
            "{}",
            rows[0]
        );
        assert!(
            rows[0].contains("\"haproxy_state\":\"UP\",\"disagreement\":\"failing_in_service\","),
            "{}",
            rows[0]
        );
        assert!(
            rows[1].contains("\"healthy\":null,\"exit_code\":null,\"reason\":\"not probed: HAProxy has it in MAINT\",\"detail\":null,"),
            "{}",
            rows[1]
        );
        assert!(
            rows[1].contains("\"haproxy_state\":\"MAINT\",\"disagreement\":null,"),
            "{}",
            rows[1]
        );
    }
}

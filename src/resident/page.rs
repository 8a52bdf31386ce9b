//! The status page (`GET /` on the metrics listener): one self-contained
//! HTML page (no script, font or style from elsewhere; it works offline and
//! in a restricted browser), a table per backend, failing targets first,
//! each with its state and since when, the last reason, the last duration
//! and a sparkline of its recent checks (inline SVG), ISTag, Max-Connections
//! and the canary's result. It reloads itself every few seconds. All text
//! is HTML-escaped: a server's reason phrase is shown, never run.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use super::health::Health;
use super::table::{State, Table, Target, RECENT};

/// How often the page reloads itself.
const REFRESH_SECS: u32 = 5;

/// Text for HTML: `& < > " '` as entities (what the metrics' escaping left
/// alone), after the escaping every outside text gets.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in crate::text::escape_all(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "3m 12s ago"
fn ago(then: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(then).unwrap_or_default().as_secs();
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m {}s ago", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h {}m ago", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h ago", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// The recent checks' durations as a small bar chart: green for a pass, red
/// for a failure, heights relative to the slowest.
pub fn sparkline(recent: &[(u32, bool)]) -> String {
    let (w, h, bar) = (RECENT as u32 * 3, 18u32, 2u32);
    let max = recent.iter().map(|(us, _)| *us).max().unwrap_or(1).max(1);
    let mut svg = format!(
        "<svg class=\"spark\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"recent checks\">"
    );
    for (i, (us, ok)) in recent.iter().enumerate() {
        let height = (u64::from(*us) * u64::from(h - 1) / u64::from(max)).max(1) as u32 + 1;
        let color = if *ok { "#2e7d32" } else { "#c62828" };
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"{bar}\" height=\"{height}\" fill=\"{color}\"/>",
            i as u32 * 3,
            h - height
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The whole page.
pub fn page(table: &Table, now: SystemTime) -> String {
    let mut rows: Vec<(&Target, State)> = super::metrics::snapshot(table);
    // Failing first (down, then pending/stale), then by name.
    let rank = |s: &State| match (s.tracker.health, s.last.as_ref().map(|o| o.verdict.is_ok())) {
        (Health::Down, _) => 0,
        (_, Some(false)) => 1,
        (Health::Pending, _) => 2,
        _ => 3,
    };
    rows.sort_by(|(a, sa), (b, sb)| rank(sa).cmp(&rank(sb)).then_with(|| a.key.cmp(&b.key)));
    let mut backends: Vec<String> = Vec::new();
    for (t, _) in &rows {
        let b = t.context.backend.clone().unwrap_or_default();
        if !backends.contains(&b) {
            backends.push(b);
        }
    }
    let down = rows
        .iter()
        .filter(|(_, s)| s.tracker.health == Health::Down)
        .count();
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
<title>icap-check: {} targets, {down} down</title><style>{STYLE}</style></head><body>\
<h1>icap-check</h1><p class=\"summary\">{} targets, <span class=\"down\">{down} down</span>; \
version {}; reloads itself every {REFRESH_SECS} s.</p>\n",
        rows.len(),
        rows.len(),
        env!("CARGO_PKG_VERSION")
    );
    for backend in &backends {
        let name = if backend.is_empty() {
            "(no backend)"
        } else {
            backend
        };
        let _ = write!(
            out,
            "<h2>{}</h2>\n<table data-backend=\"{}\"><thead><tr><th>server</th><th>state</th>\
<th>since</th><th>last check</th><th>duration</th><th>recent</th><th>ISTag</th>\
<th>Max-Connections</th><th>canary</th></tr></thead><tbody>\n",
            html(name),
            html(backend)
        );
        for (t, s) in rows
            .iter()
            .filter(|(t, _)| t.context.backend.as_deref().unwrap_or("") == backend)
        {
            row(&mut out, t, s, now);
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str(
        "<p class=\"foot\">Metrics: <a href=\"/metrics\">/metrics</a></p></body></html>\n",
    );
    out
}

fn row(out: &mut String, t: &Target, s: &State, now: SystemTime) {
    let state = s.tracker.health;
    let class = match state {
        Health::Up => "up",
        Health::Down => "down",
        Health::Pending => "pending",
    };
    let server = t
        .context
        .server
        .clone()
        .unwrap_or_else(|| t.context.target.clone());
    let last = s.last.as_deref();
    let reason = last.map_or_else(
        || "no result yet".to_string(),
        |o| match &o.verdict {
            Ok(h) => format!("{} {}", o.context.probe, h.summary),
            Err(f) => format!("{}: {f} (exit {})", o.context.probe, f.exit_status().code()),
        },
    );
    let took = last.map_or(String::new(), |o| ms(o.observed.timings.total));
    let recent: Vec<(u32, bool)> = s.recent.iter().copied().collect();
    let istag = s.istag.clone().unwrap_or_default();
    let maxconn = last
        .and_then(|o| o.observed.capacity.as_ref()?.max_connections)
        .map_or(String::new(), |n| n.to_string());
    let canary = last
        .and_then(|o| o.observed.canary.as_ref())
        .map_or(String::new(), |c| match (c.caught, &c.threat) {
            (true, Some(t)) => format!("caught: {t}"),
            (true, None) => "caught".to_string(),
            (false, _) => "NOT caught".to_string(),
        });
    let _ = writeln!(
        out,
        "<tr class=\"{class}\" data-server=\"{}\" data-state=\"{}\"><td title=\"{}\">{}</td>\
<td class=\"state\">{}</td><td>{}</td><td class=\"reason\">{}</td><td>{}</td><td>{}</td>\
<td>{}</td><td>{}</td><td>{}</td></tr>",
        html(&t.key),
        state.word(),
        html(&t.context.target),
        html(&server),
        state.word(),
        ago(s.since, now),
        html(&reason),
        html(&took),
        sparkline(&recent),
        html(&istag),
        html(&maxconn),
        html(&canary),
    );
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}\
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3em .5em;\
text-align:left;vertical-align:middle}th{background:#f5f5f5}\
tr.down td.state{color:#fff;background:#c62828;font-weight:bold}\
tr.up td.state{color:#fff;background:#2e7d32}tr.pending td.state{background:#ffe082}\
td{white-space:nowrap}td.reason{white-space:normal;font-family:monospace;max-width:40em;\
word-break:break-all}span.down{color:#c62828}\
.foot{color:#777;margin-top:2em}";

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn html_escapes_markup_and_hidden_characters() {
        assert_eq!(
            html("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(html("a\"b'c&\u{202e}"), "a&quot;b&#39;c&amp;\\u{202e}");
    }

    #[test]
    fn sparklines_scale_to_the_slowest() {
        let svg = sparkline(&[(1000, true), (4000, false)]);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            svg.contains("fill=\"#2e7d32\"") && svg.contains("fill=\"#c62828\""),
            "{svg}"
        );
        assert!(svg.contains("height=\"18\" fill=\"#c62828\""), "{svg}");
        assert_eq!(sparkline(&[]).matches("<rect").count(), 0);
    }

    #[test]
    fn ages() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(ago(t, t + Duration::from_secs(5)), "5s ago");
        assert_eq!(ago(t, t + Duration::from_secs(192)), "3m 12s ago");
        assert_eq!(ago(t, t + Duration::from_secs(90_000)), "1d 1h ago");
        assert_eq!(ago(t + Duration::from_secs(5), t), "0s ago");
    }
}

//! `--explain`: where a check's settings came from and what it would send,
//! without sending anything.

use std::fmt::Write as _;

use super::{Job, Planned};
use crate::args::config_file::Applied;
use crate::args::time::format_time;

/// The explanation of every planned check, and whether they are all valid.
pub fn explain(planned: &[Planned], looked_for: &str) -> (String, bool) {
    let mut out = String::new();
    let mut valid = true;
    for (i, p) in planned.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match &p.job {
            Job::Ready(settings) => {
                config_lines(&mut out, p.applied.as_ref(), looked_for);
                if let Some(text) = &p.described {
                    let _ = writeln!(out, "settings: {text}");
                }
                let c = &settings.context;
                let form = if c.haproxy {
                    "HAProxy's arguments"
                } else {
                    "URL"
                };
                let _ = writeln!(
                    out,
                    "target:   {} ({form}{})",
                    c.target,
                    c.server
                        .as_deref()
                        .map(|s| format!(", server {s}"))
                        .unwrap_or_default()
                );
                let _ = writeln!(
                    out,
                    "probe:    {}, timeout {}",
                    settings.probe.describe(),
                    format_time(settings.timeout)
                );
                for note in &settings.notes {
                    let _ = writeln!(out, "note:     {note}");
                }
                let _ = writeln!(out, "nothing was sent (--explain)");
            }
            Job::Skipped(context) => {
                let _ = writeln!(
                    out,
                    "target:   {} ({})\nnot probed: HAProxy has it in {}",
                    context.target,
                    context.label().unwrap_or_default(),
                    context.haproxy_state.map_or("MAINT", |s| s.name())
                );
            }
            Job::Failed(context, failure) => {
                valid = false;
                let _ = writeln!(
                    out,
                    "target:   {} ({})\nerror:    {failure}",
                    context.target,
                    context.label().unwrap_or_default()
                );
            }
        }
    }
    (out, valid)
}

fn config_lines(out: &mut String, applied: Option<&Applied>, looked_for: &str) {
    let Some(a) = applied else {
        let _ = writeln!(out, "config:   none (looked for {looked_for})");
        return;
    };
    let _ = writeln!(
        out,
        "config:   {} (found by {})",
        a.path.display(),
        a.source
    );
    let names = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "selected: backend {}, server {}",
        names(&a.backend),
        names(&a.server)
    );
    let sections: Vec<String> = a
        .sections
        .iter()
        .map(|(k, line)| format!("{k} (line {line})"))
        .collect();
    let _ = writeln!(
        out,
        "sections: {}",
        if sections.is_empty() {
            "none match".to_string()
        } else {
            sections.join(", ")
        }
    );
}

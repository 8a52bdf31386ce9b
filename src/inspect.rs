//! `--check-config` and `--explain`: what an operator needs when a check
//! behaves unexpectedly, without sending anything.

use std::ffi::OsString;
use std::fmt::Write as _;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::config::{self, Applied, Checker, ConfigFile, Entry, SectionKind};
use crate::settings::Settings;
use crate::verdict::{ExitStatus, Failure};

/// Options that are not settings of a check, left out of descriptions.
const NOT_SETTINGS: &[&str] = &[
    "targets",
    "config",
    "check_config",
    "explain",
    "backend",
    "server",
    "help",
    "version",
];

/// Validates every line of the config file and prints each section's
/// effective settings. Returns the report and the exit status.
pub fn check_config(
    typed: &Cli,
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
) -> (String, ExitStatus) {
    let argv0 = args.first().cloned().unwrap_or_default();
    let mut out = String::new();
    let located = match config::locate(typed.config.as_deref(), env, &argv0) {
        Ok(l) => l,
        Err(f) => return (failure_text(&f), ExitStatus::Usage),
    };
    let Some((path, source)) = located else {
        let _ = writeln!(
            out,
            "no config file (looked for {}); built-in defaults apply",
            looked_for(&argv0)
        );
        return (out, ExitStatus::Healthy);
    };
    let file = match config::load(&path, source) {
        Ok(f) => f,
        Err(f) => return (failure_text(&f), ExitStatus::Usage),
    };
    let checker = Checker::new(&argv0);
    let errors: Vec<String> = file
        .sections
        .iter()
        .flat_map(|s| &s.entries)
        .filter_map(|e| checker.check(&file, e).err())
        .map(|f| failure_text(&f))
        .collect();
    if !errors.is_empty() {
        return (errors.concat(), ExitStatus::Usage);
    }
    let _ = writeln!(
        out,
        "{}: OK, {} sections",
        file.path.display(),
        file.sections.len()
    );
    for section in &file.sections {
        let (backend, server) = match &section.kind {
            SectionKind::Defaults => (None, None),
            SectionKind::Backend(b) => (Some(b.as_str()), None),
            SectionKind::Server(name) => match name.split_once('/') {
                Some((b, s)) => (Some(b), Some(s)),
                None => (None, None),
            },
        };
        let layers = file.layers(backend, server);
        let args = layers.iter().flat_map(|s| s.entries.iter().map(Entry::arg));
        match describe(&argv0, args) {
            Ok(text) => {
                let _ = writeln!(out, "{} (line {}): {text}", section.kind, section.line);
            }
            Err(f) => return (failure_text(&f), ExitStatus::Usage),
        }
    }
    (out, ExitStatus::Healthy)
}

/// The plan of a check: where its settings came from and what it would send.
pub fn explain(
    args: &[OsString],
    applied: Option<&Applied>,
    settings: &Settings,
    candidates_of: &OsString,
) -> String {
    let mut out = String::new();
    match applied {
        Some(a) => {
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
            let applied: Vec<String> = a
                .sections
                .iter()
                .map(|(k, line)| format!("{k} (line {line})"))
                .collect();
            let _ = writeln!(
                out,
                "sections: {}",
                if applied.is_empty() {
                    "none match".to_string()
                } else {
                    applied.join(", ")
                }
            );
        }
        None => {
            let _ = writeln!(
                out,
                "config:   none (looked for {})",
                looked_for(candidates_of)
            );
        }
    }
    let given = match applied {
        Some(a) => {
            // Re-read from the file so the listing shows values as written.
            match config::load(&a.path, a.source) {
                Ok(file) => settings_args(&file, a, args),
                Err(_) => args.iter().skip(1).cloned().collect(),
            }
        }
        None => args.iter().skip(1).cloned().collect(),
    };
    let argv0 = args.first().cloned().unwrap_or_default();
    if let Ok(text) = describe(&argv0, given.into_iter()) {
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
    let _ = writeln!(out, "probe:    {}", settings.describe());
    let _ = writeln!(out, "nothing was sent (--explain)");
    out
}

fn settings_args(file: &ConfigFile, applied: &Applied, args: &[OsString]) -> Vec<OsString> {
    let mut given: Vec<OsString> = file
        .layers(applied.backend.as_deref(), applied.server.as_deref())
        .iter()
        .flat_map(|s| s.entries.iter().map(Entry::arg))
        .collect();
    given.extend(args.iter().skip(1).cloned());
    given
}

/// `key=value` for every setting given, last occurrence winning, in the
/// order of the option definitions.
fn describe(argv0: &OsString, given: impl Iterator<Item = OsString>) -> Result<String, Failure> {
    let command = Cli::command();
    let matches = command
        .clone()
        .try_get_matches_from(std::iter::once(argv0.clone()).chain(given))
        .map_err(|e| Failure::Usage(crate::cli::one_line_error(&e)))?;
    let mut parts = Vec::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if NOT_SETTINGS.contains(&id)
            || matches.value_source(id) != Some(clap::parser::ValueSource::CommandLine)
        {
            continue;
        }
        let key = arg.get_long().unwrap_or(id);
        if arg.get_action().takes_values() {
            if let Some(mut values) = matches.get_raw(id) {
                if let Some(last) = values.next_back() {
                    parts.push(format!("{key}={}", last.to_string_lossy()));
                }
            }
        } else if let clap::ArgAction::Count = arg.get_action() {
            parts.push(format!("{key}={}", matches.get_count(id)));
        } else {
            parts.push(key.to_string());
        }
    }
    Ok(if parts.is_empty() {
        "(built-in defaults)".to_string()
    } else {
        parts.join(" ")
    })
}

/// The files a config lookup tries when none is named, in order.
fn looked_for(argv0: &OsString) -> String {
    let paths: Vec<String> = config::candidates(argv0)
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    paths.join(", ")
}

fn failure_text(f: &Failure) -> String {
    match f {
        Failure::Usage(why) => format!("{why}\n"),
        other => format!("{other}\n"),
    }
}

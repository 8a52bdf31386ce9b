//! The one line a check prints, and escaping of what a server sent.
//!
//! By HAProxy (its four arguments): nothing on success, since under systemd
//! every line lands in the journal every few seconds; one line on stderr on
//! failure, naming backend/server. By hand (a URL): one line on stdout.

use std::io::Write;
use std::time::Duration;

use crate::verdict::{Failure, Healthy, Verdict};

/// Longest piece of server text quoted in a report line.
const MAX_QUOTED: usize = 200;

/// Makes text from outside safe for a log line or a terminal: control
/// characters become `\xNN`, and it is cut at [`MAX_QUOTED`] characters.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_QUOTED));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_QUOTED {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            let code = c as u32;
            if code <= 0xff {
                out.push_str(&format!("\\x{code:02x}"));
            } else {
                out.push_str(&format!("\\u{{{code:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Who is checked and how, for every line about this check.
#[derive(Debug, Clone)]
pub struct Context {
    /// Run by HAProxy (or by hand with HAProxy's arguments).
    pub haproxy: bool,
    /// The backend (HAPROXY_PROXY_NAME, or haproxy.cfg).
    pub backend: Option<String>,
    /// The server (HAPROXY_SERVER_NAME, or haproxy.cfg).
    pub server: Option<String>,
    /// `icap://host:port/service`, or the UNIX socket form.
    pub target: String,
    /// `OPTIONS`, `RESPMOD`, ...
    pub probe: String,
}

impl Context {
    /// `backend/server`, when known.
    pub fn label(&self) -> Option<String> {
        match (&self.backend, &self.server) {
            (Some(b), Some(s)) => Some(format!("{b}/{s}")),
            (None, Some(s)) => Some(s.clone()),
            (Some(b), None) => Some(format!("{b}/?")),
            (None, None) => None,
        }
    }

    /// `backend/server target PROBE: reason (exit N)`: the failure as HAProxy's
    /// stderr, syslog and the machine formats all report it.
    pub fn failure_text(&self, f: &Failure) -> String {
        format!(
            "{}{} {}: {f} (exit {})",
            self.label().map(|s| format!("{s} ")).unwrap_or_default(),
            self.target,
            self.probe,
            f.exit_status().code()
        )
    }

    pub fn line(&self, verdict: &Verdict, elapsed: Duration) -> Option<String> {
        let ms = elapsed.as_secs_f64() * 1000.0;
        match (verdict, self.haproxy) {
            (Ok(_), true) => None,
            (Ok(Healthy { summary }), false) => Some(format!(
                "OK {} {} {summary} {ms:.1} ms",
                self.target, self.probe
            )),
            (Err(f), true) => Some(format!("icap-check: {}", self.failure_text(f))),
            (Err(f), false) => Some(format!(
                "FAIL {} {}: {f} (exit {}) {ms:.1} ms",
                self.target,
                self.probe,
                f.exit_status().code()
            )),
        }
    }

    /// Prints the line where it belongs. Errors writing it are ignored: the
    /// exit code still says everything HAProxy will ever see.
    pub fn emit(&self, verdict: &Verdict, elapsed: Duration) {
        if let Some(line) = self.line(verdict, elapsed) {
            if self.haproxy {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            } else {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        }
    }
}

/// A usage error found before there is a target to name.
pub fn usage_error(failure: &Failure) {
    let text = match failure {
        Failure::Usage(why) => why.clone(),
        other => other.to_string(),
    };
    let _ = writeln!(std::io::stderr().lock(), "icap-check: {text}");
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::verdict::Phase;

    fn ctx(haproxy: bool) -> Context {
        Context {
            haproxy,
            backend: Some("icap_pool".into()),
            server: Some("icap01".into()),
            target: "icap://10.0.0.5:1344/echo".into(),
            probe: "OPTIONS".into(),
        }
    }

    #[test]
    fn escapes_control_characters_and_cuts_long_text() {
        assert_eq!(escape("a\x1b[31mb\r\n"), "a\\x1b[31mb\\x0d\\x0a");
        assert_eq!(escape("\u{85}"), "\\x85");
        let long = "x".repeat(500);
        assert_eq!(escape(&long).len(), MAX_QUOTED + 3);
    }

    #[test]
    fn haproxy_form_is_silent_on_success() {
        let ok = Ok(Healthy {
            summary: "200 ISTag=\"x\"".into(),
        });
        assert_eq!(ctx(true).line(&ok, Duration::from_millis(1)), None);
        assert_eq!(
            ctx(false).line(&ok, Duration::from_micros(1234)).unwrap(),
            "OK icap://10.0.0.5:1344/echo OPTIONS 200 ISTag=\"x\" 1.2 ms"
        );
    }

    #[test]
    fn failure_names_server_reason_and_code() {
        let fail = Err(Failure::Timeout(Phase::Receive));
        assert_eq!(
            ctx(true).line(&fail, Duration::from_millis(1500)).unwrap(),
            "icap-check: icap_pool/icap01 icap://10.0.0.5:1344/echo OPTIONS: timeout while reading the response (exit 4)"
        );
        assert!(ctx(false)
            .line(&fail, Duration::from_millis(1500))
            .unwrap()
            .starts_with("FAIL icap://10.0.0.5:1344/echo OPTIONS: timeout"));
    }
}

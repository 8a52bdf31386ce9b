//! The one line a check prints.
//!
//! By HAProxy (its four arguments): nothing on success, since under systemd
//! every line lands in the journal every few seconds; one line on stderr on
//! failure, naming backend/server. By hand (a URL): one line on stdout.

use std::time::Duration;

use crate::outcome::{Context, Healthy, Verdict};

/// Where a line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The line for one check, and where it goes; `None` for a healthy check
/// run by HAProxy.
pub fn line(context: &Context, verdict: &Verdict, elapsed: Duration) -> Option<(Stream, String)> {
    let ms = elapsed.as_secs_f64() * 1000.0;
    match (verdict, context.haproxy) {
        (Ok(_), true) => None,
        (Ok(Healthy { summary }), false) => Some((
            Stream::Stdout,
            format!(
                "OK {} {} {summary} {ms:.1} ms",
                context.target, context.probe
            ),
        )),
        (Err(f), true) => Some((
            Stream::Stderr,
            format!("icap-check: {}", context.failure_text(f)),
        )),
        (Err(f), false) => Some((
            Stream::Stdout,
            format!(
                "FAIL {} {}: {f} (exit {}) {ms:.1} ms",
                context.target,
                context.probe,
                f.exit_status().code()
            ),
        )),
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::outcome::{Failure, Phase};

    pub fn ctx(haproxy: bool) -> Context {
        Context {
            haproxy,
            backend: Some("icap_pool".into()),
            server: Some("icap01".into()),
            target: "icap://10.0.0.5:1344/echo".into(),
            probe: "OPTIONS".into(),
            protocol: "ICAP",
            syslog: None,
            haproxy_state: None,
        }
    }

    #[test]
    fn haproxy_form_is_silent_on_success() {
        let ok = Ok(Healthy {
            summary: "200 ISTag=\"x\"".into(),
        });
        assert_eq!(line(&ctx(true), &ok, Duration::from_millis(1)), None);
        assert_eq!(
            line(&ctx(false), &ok, Duration::from_micros(1234)),
            Some((
                Stream::Stdout,
                "OK icap://10.0.0.5:1344/echo OPTIONS 200 ISTag=\"x\" 1.2 ms".to_string()
            ))
        );
    }

    #[test]
    fn failure_names_server_reason_and_code() {
        let fail = Err(Failure::Timeout(Phase::Receive));
        assert_eq!(
            line(&ctx(true), &fail, Duration::from_millis(1500)),
            Some((
                Stream::Stderr,
                "icap-check: icap_pool/icap01 icap://10.0.0.5:1344/echo OPTIONS: timeout while reading the response (exit 4)".to_string()
            ))
        );
        let (stream, text) = line(&ctx(false), &fail, Duration::from_millis(1500)).unwrap();
        assert_eq!(stream, Stream::Stdout);
        assert!(text.starts_with("FAIL icap://10.0.0.5:1344/echo OPTIONS: timeout"));
    }
}

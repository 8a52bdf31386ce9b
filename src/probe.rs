//! The probes a check can run, one variant per protocol, and the one place
//! that dispatches to them.

use crate::connection::Endpoint;
use crate::deadline::Deadline;
use crate::icap::probe::IcapCheck;
use crate::timings::Observed;
use crate::verdict::Verdict;

pub enum Probe {
    Icap(IcapCheck),
    Http(crate::http::HttpCheck),
    Tcp(crate::tcp::TcpCheck),
}

impl Probe {
    /// The name in report lines: the method (`OPTIONS`, `RESPMOD`, `GET`...) or protocol.
    pub fn name(&self) -> String {
        match self {
            Probe::Icap(c) => c.method.as_str().to_string(),
            Probe::Http(c) => c.method.clone(),
            Probe::Tcp(c) => c.name().to_string(),
        }
    }

    /// Whether every wait of this probe is a socket operation that the
    /// deadline bounds (name lookups included: they wait on a helper thread
    /// for the time left). When not, the watchdog stands guard: a UNIX connect
    /// blocks while the server's backlog is full, and a file read or written
    /// during the exchange may block on its storage.
    pub fn bounded_by_deadline(&self) -> bool {
        let tcp = |e: &Endpoint| matches!(e, Endpoint::Tcp { .. });
        match self {
            Probe::Icap(c) => {
                tcp(&c.endpoint)
                    && c.sample.as_ref().is_none_or(|s| s.in_memory)
                    && c.output.is_none()
            }
            Probe::Http(c) => tcp(&c.endpoint),
            Probe::Tcp(c) => tcp(&c.endpoint),
        }
    }

    pub fn run(&mut self, deadline: Deadline, observed: &mut Observed) -> Verdict {
        let verdict = match self {
            Probe::Icap(check) => crate::icap::probe::run(check, deadline, observed),
            Probe::Http(check) => crate::http::run(check, deadline, observed),
            Probe::Tcp(check) => crate::tcp::run(check, deadline, observed),
        };
        observed.timings.total = deadline.elapsed();
        verdict
    }
}

#[cfg(test)]
mod test {
    use std::ffi::OsString;

    /// Whether the check planned from these arguments needs the watchdog.
    fn needs_watchdog(args: &[&str]) -> bool {
        // A config file of defaults only, so that no file on this machine applies.
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/icap-check.conf");
        let mut argv = vec![
            OsString::from("icap-check"),
            "--config".into(),
            config.into(),
        ];
        argv.extend(args.iter().map(OsString::from));
        let typed = crate::cli::parse(&argv).expect("arguments parse");
        let planned = crate::plan::build(&typed, &argv, &|_| None).expect("a plan");
        let settings = planned[0].settings().expect("a ready check");
        !settings.probe.bounded_by_deadline()
    }

    #[test]
    fn the_watchdog_guards_what_sockets_cannot_bound() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sample.pdf");
        // Sockets only: the deadline bounds every wait (names resolve on a helper thread).
        assert!(!needs_watchdog(&["icap://127.0.0.1/echo"]));
        assert!(!needs_watchdog(&["icap://localhost/echo"]));
        assert!(!needs_watchdog(&[
            "--method",
            "respmod",
            "icap://[::1]/echo"
        ]));
        assert!(!needs_watchdog(&["http://127.0.0.1/"]));
        assert!(!needs_watchdog(&["tcp://127.0.0.1:25"]));
        // A UNIX connect into a full backlog, a file on slow storage.
        assert!(needs_watchdog(&[
            "--service",
            "echo",
            "NOT_USED",
            "NOT_USED",
            "/run/c-icap.sock",
            "NOT_USED"
        ]));
        assert!(needs_watchdog(&[
            "--method",
            "respmod",
            "--file",
            sample,
            "icap://127.0.0.1/echo"
        ]));
        assert!(needs_watchdog(&[
            "--method",
            "respmod",
            "--output",
            "/dev/null",
            "icap://127.0.0.1/echo"
        ]));
    }
}

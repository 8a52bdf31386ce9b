//! Every way the program ends goes through the [`Reporter`]: a check's one
//! line ([`line`]), or a run in the chosen format, one file each
//! ([`human`], [`json`], [`nagios`], [`prometheus`]), `--repeat`'s summary
//! ([`repeat`]), failures to syslog ([`syslog`]), usage errors. Formats are
//! pure functions from outcomes to text, tested on fabricated outcomes.
//!
//! Adding a format: its file here and a variant of [`Format`] with its arm
//! in [`Reporter::render`].

pub mod human;
pub mod json;
pub mod line;
pub mod nagios;
pub mod prometheus;
pub mod repeat;
pub mod syslog;

use std::fmt;
use std::io::Write;
use std::time::Duration;

use clap::ValueEnum;

use self::line::Stream;
use crate::outcome::{worst, ExitStatus, Failure, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Nagios,
    Prometheus,
}

/// Nagios thresholds on the total time of a healthy check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub warning: Option<Duration>,
    pub critical: Option<Duration>,
}

/// How a run reports: cheap to clone, so the watchdog thread can hold one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    pub format: Format,
    pub thresholds: Thresholds,
    /// Outcomes always go in a table, even one (a pool read from haproxy.cfg
    /// names backend and server); otherwise one check is one line.
    pub table: bool,
}

/// A run's report: what goes to stdout and stderr, and the exit code.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

impl Reporter {
    pub fn new(format: Format) -> Reporter {
        Reporter {
            format,
            thresholds: Thresholds::default(),
            table: false,
        }
    }

    /// The report of a run, as text ([`Reporter::finish`] writes it out as
    /// it goes).
    #[cfg(test)]
    pub fn render(&self, outcomes: &[Outcome], elapsed: Duration) -> Rendered {
        let mut out = Rendered::default();
        out.code = self.render_into(outcomes, elapsed, &mut out.stdout, &mut out.stderr);
        out
    }

    /// Writes the report of a run; returns the exit code. Everything goes
    /// through [`Clean`]: what was missed upstream still cannot reach the
    /// output raw.
    fn render_into(
        &self,
        outcomes: &[Outcome],
        elapsed: Duration,
        stdout: &mut dyn fmt::Write,
        stderr: &mut dyn fmt::Write,
    ) -> u8 {
        let (stdout, stderr) = (&mut Clean(stdout), &mut Clean(stderr));
        let mut code = worst(outcomes).code();
        match (self.format, outcomes) {
            (Format::Human, [o]) if !self.table => {
                if let Some((stream, text)) =
                    line::line(&o.context, &o.verdict, o.observed.timings.total)
                {
                    let out: &mut dyn fmt::Write = match stream {
                        Stream::Stdout => stdout,
                        Stream::Stderr => stderr,
                    };
                    let _ = writeln!(out, "{}", crate::text::escape_all(&text));
                }
            }
            (Format::Human, _) => human::table(outcomes, elapsed, stdout),
            (Format::Json, _) => json::lines(outcomes, stdout),
            (Format::Prometheus, _) => prometheus::exposition(outcomes, stdout),
            (Format::Nagios, _) => code = nagios::output(outcomes, self.thresholds, stdout),
        }
        code
    }

    /// Reports a run: its text, its failures to syslog. Returns the exit code.
    pub fn finish(&self, outcomes: &[Outcome], elapsed: Duration) -> u8 {
        for o in outcomes {
            log::info!("{}: {}", o.context.target, human::timings_line(o));
        }
        let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
        let mut out = Io(std::io::BufWriter::new(stdout.lock()));
        let mut err = Io(stderr.lock());
        let code = self.render_into(outcomes, elapsed, &mut out, &mut err);
        let _ = out.0.flush();
        syslog::send_failures(outcomes);
        code
    }

    /// One check of `--repeat` as it ends: its line, its failure to syslog.
    pub fn progress(&self, o: &Outcome, summary: &mut repeat::Summary) {
        if let Some((stream, text)) = line::line(&o.context, &o.verdict, o.observed.timings.total) {
            write_out(&(crate::text::escape_all(&text) + "\n"), stream);
        }
        syslog::send_failures(std::slice::from_ref(o));
        summary.add(o);
    }

    /// The end of `--repeat`: the summary.
    pub fn finish_repeat(&self, summary: &mut repeat::Summary) -> u8 {
        write_out(&summary.render(), Stream::Stdout);
        summary.worst().code()
    }

    /// A usage error found before there is a target to name: one line on
    /// stderr; exit 2, or UNKNOWN (3) for a Nagios plugin, which by the
    /// monitoring-plugins convention says so when it cannot run.
    pub fn usage(&self, failure: &Failure) -> u8 {
        usage_error(failure);
        usage_code(self.format == Format::Nagios)
    }

    /// Text that is the answer itself (`--explain`, `--check-config`, `--help`).
    pub fn text(&self, text: &str, stream: Stream) {
        write_out(text, stream);
    }
}

/// A usage error's exit code: 2, or 3 (UNKNOWN) for a Nagios plugin.
pub fn usage_code(nagios: bool) -> u8 {
    if nagios {
        nagios::UNKNOWN
    } else {
        ExitStatus::Usage.code()
    }
}

/// `icap-check: why` on stderr, one line whatever the text quotes.
pub fn usage_error(failure: &Failure) {
    let text = match failure {
        Failure::Usage(why) => why.clone(),
        other => other.to_string(),
    };
    write_out(
        &format!("icap-check: {}\n", crate::text::escape_all(&text)),
        Stream::Stderr,
    );
}

/// A writer that escapes, in whatever passes through it, the characters
/// that could spoof a line ([`crate::text::is_hidden`]) except the line
/// ends the formats write themselves.
struct Clean<'a>(&'a mut dyn fmt::Write);

impl fmt::Write for Clean<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !s.chars().any(crate::text::is_hidden) {
            return self.0.write_str(s);
        }
        for c in s.chars() {
            if c == '\n' {
                self.0.write_char(c)?;
            } else {
                crate::text::push_escaped(&mut *self.0, c);
            }
        }
        Ok(())
    }
}

/// Formats write text; stdout and stderr take bytes.
struct Io<W: Write>(W);

impl<W: Write> fmt::Write for Io<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Errors writing are ignored: the exit code still says everything
        // HAProxy will ever see.
        let _ = self.0.write_all(s.as_bytes());
        Ok(())
    }
}

/// Errors writing are ignored: the exit code still says everything HAProxy
/// will ever see.
fn write_out(text: &str, stream: Stream) {
    if text.is_empty() {
        return;
    }
    let _ = match stream {
        Stream::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
        Stream::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
    };
}

/// `1.2 ms`
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// What a healthy check says after its probe, or a failure with its code.
fn reason(o: &Outcome) -> String {
    match &o.verdict {
        Ok(h) => h.summary.clone(),
        Err(f) => format!("{f} (exit {})", f.exit_status().code()),
    }
}

/// HAProxy's view beside the check's, for an outcome that has one:
/// `icap_pool/icap03 HAProxy: UP, check: RESPMOD unhealthy: ... (exit 1)`.
fn beside_haproxy(o: &Outcome) -> Option<String> {
    let state = o.context.haproxy_state?;
    let label = o
        .context
        .label()
        .unwrap_or_else(|| o.context.target.clone());
    Some(if o.probed() {
        format!(
            "{label} HAProxy: {state}, check: {} {}",
            o.context.probe,
            reason(o)
        )
    } else {
        format!("{label} HAProxy: {state}, not probed")
    })
}

/// Fabricated outcomes for the formats' tests: no server needed.
#[cfg(test)]
pub mod sample {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::outcome::{Context, Failure, Healthy, Observed, Outcome, Phase, Timings};

    pub fn context(backend: Option<&str>, server: Option<&str>, target: &str) -> Context {
        Context {
            haproxy: false,
            backend: backend.map(str::to_string),
            server: server.map(str::to_string),
            target: target.to_string(),
            probe: "OPTIONS".into(),
            protocol: "ICAP",
            syslog: None,
            haproxy_state: None,
        }
    }

    /// `outcome` with HAProxy's view of its server.
    pub fn in_haproxy(mut outcome: Outcome, state: crate::outcome::HaproxyState) -> Outcome {
        Arc::make_mut(&mut outcome.context).haproxy_state = Some(state);
        outcome
    }

    /// A server HAProxy has in MAINT.
    pub fn maint(server: &str) -> Outcome {
        let mut c = context(Some("icap_pool"), Some(server), "icap://10.0.0.9:1344/echo");
        c.haproxy_state = Some(crate::outcome::HaproxyState::Maint);
        Outcome::not_probed(Arc::new(c))
    }

    /// A RESPMOD that HAProxy's own check would pass: ICAP 200 wrapping HTTP 403.
    pub fn wraps_403(server: &str) -> Outcome {
        let mut o = healthy("icap://10.0.0.7:1344/echo");
        let c = Arc::make_mut(&mut o.context);
        c.server = Some(server.into());
        c.probe = "RESPMOD".into();
        o.verdict = Err(Failure::Unhealthy(
            "ICAP 200 wraps HTTP 403 Forbidden".into(),
        ));
        o
    }

    pub fn healthy(target: &str) -> Outcome {
        Outcome {
            context: Arc::new(context(Some("icap_pool"), Some("icap01"), target)),
            verdict: Ok(Healthy {
                summary: "200 ISTag=\"CI0001\"".into(),
            }),
            observed: Observed {
                timings: Timings {
                    connect: Some(Duration::from_micros(200)),
                    request_sent: Some(Duration::from_micros(250)),
                    first_byte: Some(Duration::from_micros(600)),
                    total: Duration::from_micros(700),
                    ..Timings::default()
                },
                status: Some(200),
                istag: Some("\"CI0001\"".into()),
                ..Observed::default()
            },
        }
    }

    /// An antivirus service: its OPTIONS numbers under HAProxy's, and the
    /// EICAR canary caught.
    pub fn antivirus(target: &str) -> Outcome {
        let mut o = healthy(target);
        o.verdict = Ok(Healthy {
            summary: "200 ISTag=\"CI0001\", EICAR caught: Eicar-Canary.MD5.UNOFFICIAL".into(),
        });
        o.observed.capacity = Some(crate::outcome::Capacity {
            options_read: true,
            service: Some("C-ICAP/0.5.10 server - Antivirus service".into()),
            max_connections: Some(10),
            options_ttl: Some(3600),
            maxconn: Some(50),
            curconn: Some(2),
        });
        o.observed.canary = Some(crate::outcome::Canary {
            caught: true,
            threat: Some("Eicar-Canary.MD5.UNOFFICIAL".into()),
            status: 200,
            detail: "X-Infection-Found on ICAP 200".into(),
        });
        o
    }

    pub fn refused(target: &str) -> Outcome {
        Outcome {
            context: Arc::new(context(Some("icap_pool"), Some("icap02"), target)),
            verdict: Err(Failure::Connect("connection refused (127.0.0.1:1)".into())),
            observed: Observed {
                timings: Timings {
                    total: Duration::from_micros(150),
                    ..Timings::default()
                },
                ..Observed::default()
            },
        }
    }

    pub fn timed_out(target: &str) -> Outcome {
        Outcome::failed(
            Arc::new(context(None, None, target)),
            Failure::Timeout(Phase::Receive),
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn one_check_is_one_line_and_many_a_table() {
        let r = Reporter::new(Format::Human);
        let one = r.render(
            &[sample::refused("icap://127.0.0.1:1/echo")],
            Duration::ZERO,
        );
        assert_eq!(one.code, 3);
        assert!(one
            .stdout
            .starts_with("FAIL icap://127.0.0.1:1/echo OPTIONS: cannot connect"));
        assert_eq!(one.stdout.lines().count(), 1);
        let table = Reporter {
            table: true,
            ..Reporter::new(Format::Human)
        };
        let t = table.render(&[sample::healthy("icap://h/echo")], Duration::ZERO);
        assert!(
            t.stdout.contains("1 targets: 1 healthy, 0 failed"),
            "{}",
            t.stdout
        );
    }

    #[test]
    fn nagios_codes_replace_exit_codes() {
        let r = Reporter::new(Format::Nagios);
        let out = r.render(
            &[sample::refused("icap://127.0.0.1:1/echo")],
            Duration::ZERO,
        );
        assert_eq!(out.code, nagios::CRITICAL);
        assert_eq!(
            r.render(&[sample::healthy("icap://h/echo")], Duration::ZERO)
                .code,
            0
        );
        assert_eq!(usage_code(true), 3);
        assert_eq!(usage_code(false), 2);
    }

    #[test]
    fn every_format_reports_every_outcome() {
        let outcomes = [
            sample::healthy("icap://a/echo"),
            sample::refused("icap://b/echo"),
            sample::timed_out("icap://c/echo"),
        ];
        for format in Format::value_variants() {
            let out = Reporter::new(*format).render(&outcomes, Duration::ZERO);
            for target in ["icap://a/echo", "icap://b/echo", "icap://c/echo"] {
                assert!(out.stdout.contains(target), "{format:?}: {}", out.stdout);
            }
        }
    }
}

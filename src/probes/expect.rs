//! What an answer must contain (`--expect-string`, `--expect-regex`): the
//! HTTP probe looks in the body, the TCP probe in what comes back.

use std::fmt;

use super::heading;
use crate::outcome::Failure;
use crate::text::escape;

#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = heading::HTTP_TCP)]
pub struct ExpectArgs {
    /// HTTP and TCP: unhealthy unless the answer contains TEXT (HTTP: in the first 64 KiB of the
    /// body; TCP: in the first 16 KiB received) [default: not checked]
    #[arg(long, value_name = "TEXT")]
    pub expect_string: Option<String>,

    /// HTTP and TCP: unhealthy unless the regular expression RE matches the answer, read as for
    /// --expect-string [default: not checked]
    #[arg(long, value_name = "RE")]
    pub expect_regex: Option<String>,
}

impl ExpectArgs {
    /// The expectation, with the regex compiled (only when one is given:
    /// it costs nothing otherwise).
    pub fn build(&self) -> Result<Option<Expect>, Failure> {
        match (&self.expect_string, &self.expect_regex) {
            (Some(_), Some(_)) => Err(Failure::Usage(
                "give --expect-string or --expect-regex, not both".into(),
            )),
            (Some(s), None) => Ok(Some(Expect::String(s.clone()))),
            (None, Some(re)) => Expect::regex(re).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// What the answer must contain.
#[derive(Debug, Clone)]
pub enum Expect {
    String(String),
    Regex(regex_lite::Regex),
}

impl Expect {
    pub fn regex(pattern: &str) -> Result<Expect, Failure> {
        regex_lite::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map(Expect::Regex)
            .map_err(|e| {
                let first = e.to_string();
                let line = first.lines().last().unwrap_or("invalid").trim().to_string();
                Failure::Usage(format!(
                    "invalid --expect-regex '{}': {}",
                    escape(pattern),
                    escape(&line)
                ))
            })
    }

    pub fn matches(&self, data: &[u8]) -> bool {
        match self {
            Expect::String(s) => s.is_empty() || data.windows(s.len()).any(|w| w == s.as_bytes()),
            // Matched on text: invalid UTF-8 becomes U+FFFD, the rest is searched.
            Expect::Regex(re) => re.is_match(&String::from_utf8_lossy(data)),
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::String(s) => write!(f, "string \"{}\"", escape(s)),
            Expect::Regex(re) => write!(f, "regex /{}/", escape(re.as_str())),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn expectations() {
        let s = Expect::String("ok".into());
        assert!(s.matches(b"status: ok\n"));
        assert!(!s.matches(b"status: OK\n"));
        let r = Expect::regex("^status: (ok|ready)$").unwrap();
        assert!(!r.matches(b"x\nstatus: ready\n"));
        let r = Expect::regex("(?m)^status: (ok|ready)$").unwrap();
        assert!(r.matches(b"x\nstatus: ready\n"));
        assert!(
            r.matches(b"\xff\xfe\nstatus: ok"),
            "non-UTF-8 bodies are searched too"
        );
        match Expect::regex("(unclosed") {
            Err(Failure::Usage(why)) => {
                assert!(
                    why.starts_with("invalid --expect-regex '(unclosed':"),
                    "{why}"
                );
                assert!(!why.contains('\n'));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_expectation_at_most() {
        let both = ExpectArgs {
            expect_string: Some("a".into()),
            expect_regex: Some("b".into()),
        };
        assert!(both.build().is_err());
        assert!(ExpectArgs::default().build().unwrap().is_none());
    }
}

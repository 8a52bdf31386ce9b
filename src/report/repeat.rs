//! `--repeat`: min/median/max of every phase over the runs, and the
//! failures by exit code: the flapping-server question.
//!
//! Runs are not kept: each adds its phase times (4 bytes a phase) and its
//! exit code to a [`Summary`], so memory grows by at most 24 bytes a run.

use std::fmt::Write as _;
use std::time::Duration;

use super::ms;
use crate::outcome::{ExitStatus, Outcome};

/// What `--repeat` has seen so far.
#[derive(Debug, Default)]
pub struct Summary {
    runs: u64,
    /// Each phase's times in microseconds, in the order phases first came.
    phases: Vec<(&'static str, Vec<u32>)>,
    /// Failures by exit code (index = code).
    failures: [u64; 7],
    worst: Option<ExitStatus>,
}

impl Summary {
    pub fn add(&mut self, o: &Outcome) {
        self.runs += 1;
        for (name, at) in o.observed.timings.phases() {
            let micros = u32::try_from(at.as_micros()).unwrap_or(u32::MAX);
            match self.phases.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(micros),
                None => self.phases.push((name, vec![micros])),
            }
        }
        let status = o.exit_status();
        if status != ExitStatus::Healthy {
            if let Some(n) = self.failures.get_mut(usize::from(status.code())) {
                *n += 1;
            }
        }
        self.worst = Some(ExitStatus::worst(self.worst.into_iter().chain([status])));
    }

    pub fn worst(&self) -> ExitStatus {
        self.worst.unwrap_or(ExitStatus::Healthy)
    }

    pub fn render(&mut self) -> String {
        let mut out = format!(
            "{:<14}{:>12}{:>12}{:>12}{:>8}\n",
            "phase", "min", "median", "max", "runs"
        );
        let us = |v: u32| ms(Duration::from_micros(u64::from(v)));
        for (name, values) in &mut self.phases {
            values.sort_unstable();
            let (Some(min), Some(median), Some(max)) =
                (values.first(), values.get(values.len() / 2), values.last())
            else {
                continue;
            };
            let _ = writeln!(
                out,
                "{name:<14}{:>12}{:>12}{:>12}{:>8}",
                us(*min),
                us(*median),
                us(*max),
                values.len()
            );
        }
        let failed: u64 = self.failures.iter().sum();
        let _ = write!(out, "{} runs, {failed} failed", self.runs);
        let list: Vec<String> = self
            .failures
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(code, n)| format!("exit {code} x{n}"))
            .collect();
        if !list.is_empty() {
            let _ = write!(out, " ({})", list.join(", "));
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::report::sample;

    #[test]
    fn phases_and_failures() {
        let mut s = Summary::default();
        for o in [
            sample::healthy("x"),
            sample::refused("x"),
            sample::refused("x"),
        ] {
            s.add(&o);
        }
        assert_eq!(s.worst(), ExitStatus::Connect);
        let text = s.render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("phase"));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("connect") && l.ends_with('1')),
            "{text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("total") && l.ends_with('3')),
            "{text}"
        );
        assert_eq!(*lines.last().unwrap(), "3 runs, 2 failed (exit 3 x2)");
    }
}

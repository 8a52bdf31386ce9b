//! The probes a check can run, one variant per protocol, and the one place
//! that dispatches to them.

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

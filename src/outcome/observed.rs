//! What a probe observed besides its verdict: when each phase ended,
//! measured from the check's start (blackbox_exporter's phases), and the
//! server's status and ISTag. Shown with -v and in every machine format.

use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Name resolution done (absent for a literal address).
    pub resolve: Option<Duration>,
    /// TCP or UNIX connection established.
    pub connect: Option<Duration>,
    /// TLS handshake done.
    pub tls: Option<Duration>,
    /// The whole request written.
    pub request_sent: Option<Duration>,
    /// The first byte of the answer received.
    pub first_byte: Option<Duration>,
    /// The verdict reached.
    pub total: Duration,
}

impl Timings {
    /// The phases that happened, named, in order.
    pub fn phases(&self) -> Vec<(&'static str, Duration)> {
        let mut out = Vec::with_capacity(6);
        for (name, at) in [
            ("resolve", self.resolve),
            ("connect", self.connect),
            ("tls", self.tls),
            ("request_sent", self.request_sent),
            ("first_byte", self.first_byte),
        ] {
            if let Some(at) = at {
                out.push((name, at));
            }
        }
        out.push(("total", self.total));
        out
    }
}

/// Everything a probe reports besides its verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub timings: Timings,
    /// The status of the final answer (ICAP or HTTP), when one was read.
    pub status: Option<u16>,
    /// The ICAP service tag, as sent.
    pub istag: Option<String>,
}

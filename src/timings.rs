//! When each phase of a check ended, measured from the check's start
//! (blackbox_exporter's phases): shown with -v and in every machine format.

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

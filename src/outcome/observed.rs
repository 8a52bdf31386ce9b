//! What a probe observed besides its verdict: when each phase ended,
//! measured from the check's start (blackbox_exporter's phases), the
//! server's status and ISTag, its capacity against HAProxy's, and what the
//! detection canary came to. Shown with -v and in every machine format.

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
    /// The service's capacity and HAProxy's (ICAP checks).
    pub capacity: Option<Capacity>,
    /// The detection canary's result, when it ran (`--canary`).
    pub canary: Option<Canary>,
    /// With TLS: when the server's certificate expires (seconds since 1970).
    pub cert_not_after: Option<i64>,
}

/// What the detection canary (`--canary`, the EICAR test file) came to,
/// when it was sent and answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    /// The service flagged the test file.
    pub caught: bool,
    /// The threat it named (escaped), when it named one.
    pub threat: Option<String>,
    /// The ICAP status of its answer.
    pub status: u16,
    /// How the answer was read: `X-Infection-Found on ICAP 200`, `204`.
    pub detail: String,
}

/// What an OPTIONS answer said of the service's capacity, beside HAProxy's
/// numbers for the server: HAProxy may be allowed more connections than the
/// service accepts, which shows only under load (503s at peak).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capacity {
    /// An OPTIONS answer was read. Without one (`--preview N`, `off`) the
    /// service's numbers are unknown.
    pub options_read: bool,
    /// OPTIONS' `Service` (escaped).
    pub service: Option<String>,
    /// OPTIONS' `Max-Connections`.
    pub max_connections: Option<u64>,
    /// OPTIONS' `Options-TTL`, seconds.
    pub options_ttl: Option<u64>,
    /// HAProxy's `maxconn` for the server (HAPROXY_SERVER_MAXCONN); 0 is
    /// no limit.
    pub maxconn: Option<u64>,
    /// The server's current connections (HAPROXY_SERVER_CURCONN).
    pub curconn: Option<u64>,
}

impl Capacity {
    /// Why HAProxy may open more connections than the service accepts, or
    /// already has as many as it accepts; `None` when it cannot, or when
    /// either side's number is unknown.
    pub fn shortfall(&self) -> Option<String> {
        let max = self.max_connections?;
        let mut why = Vec::new();
        match self.maxconn {
            Some(0) => why.push(format!(
                "HAProxy has no maxconn for the server (0, no limit) and the service's Max-Connections is {max}"
            )),
            Some(n) if n > max => why.push(format!(
                "HAProxy's maxconn {n} exceeds the service's Max-Connections {max}"
            )),
            _ => {}
        }
        if let Some(cur) = self.curconn.filter(|c| *c >= max) {
            why.push(format!(
                "HAProxy's current connections {cur} have reached the service's Max-Connections {max}"
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn capacity(max: Option<u64>, maxconn: Option<u64>, curconn: Option<u64>) -> Capacity {
        Capacity {
            options_read: true,
            max_connections: max,
            maxconn,
            curconn,
            ..Capacity::default()
        }
    }

    #[test]
    fn shortfall_names_both_numbers() {
        assert_eq!(
            capacity(Some(10), Some(50), Some(0)).shortfall().as_deref(),
            Some("HAProxy's maxconn 50 exceeds the service's Max-Connections 10")
        );
        assert_eq!(
            capacity(Some(10), Some(10), Some(10))
                .shortfall()
                .as_deref(),
            Some("HAProxy's current connections 10 have reached the service's Max-Connections 10")
        );
        let both = capacity(Some(10), Some(0), Some(12)).shortfall().unwrap();
        assert!(both.starts_with("HAProxy has no maxconn"), "{both}");
        assert!(
            both.contains("; HAProxy's current connections 12"),
            "{both}"
        );
    }

    #[test]
    fn no_shortfall_when_it_fits_or_is_unknown() {
        assert_eq!(capacity(Some(10), Some(10), Some(9)).shortfall(), None);
        assert_eq!(capacity(None, Some(50), Some(49)).shortfall(), None);
        assert_eq!(capacity(Some(10), None, None).shortfall(), None);
        assert_eq!(
            capacity(Some(u64::MAX), Some(u64::MAX), Some(0)).shortfall(),
            None
        );
    }
}

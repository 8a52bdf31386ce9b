//! Building ICAP requests into bytes (RFC 3507 4.3, 4.4, 4.8).

use std::fmt;

use crate::probes::USER_AGENT;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Options,
    Respmod,
    Reqmod,
}

impl Method {
    /// `OPTIONS`, `RESPMOD` or `REQMOD`, upper case.
    pub fn parse(text: &str) -> Option<Method> {
        match text {
            "OPTIONS" => Some(Method::Options),
            "RESPMOD" => Some(Method::Respmod),
            "REQMOD" => Some(Method::Reqmod),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Options => "OPTIONS",
            Method::Respmod => "RESPMOD",
            Method::Reqmod => "REQMOD",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a request goes: the request line's URI and the Host header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address<'a> {
    /// `icap://host:port/service`
    pub uri: &'a str,
    /// The host part, as it goes in `Host:`.
    pub host: &'a str,
}

/// `OPTIONS`. `keep_alive` leaves the connection open for a request that follows.
pub fn options(to: &Address<'_>, keep_alive: bool) -> Vec<u8> {
    let mut out = request_line(Method::Options, to);
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"Encapsulated: null-body=0\r\n\r\n");
    out
}

/// The encapsulated HTTP message a RESPMOD or REQMOD carries around the sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encapsulation {
    pub req_hdr: Vec<u8>,
    /// Present for RESPMOD only.
    pub res_hdr: Option<Vec<u8>>,
}

impl Encapsulation {
    /// RESPMOD: the GET that fetched the sample and the response carrying it.
    pub fn respmod(body_len: u64, content_type: &str) -> Self {
        Encapsulation {
            req_hdr: b"GET /icap-check/sample HTTP/1.1\r\nHost: icap-check.invalid\r\n\r\n".to_vec(),
            res_hdr: Some(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {body_len}\r\n\r\n"
                )
                .into_bytes(),
            ),
        }
    }

    /// REQMOD: an upload of the sample.
    pub fn reqmod(body_len: u64, content_type: &str) -> Self {
        Encapsulation {
            req_hdr: format!(
                "POST /icap-check/upload HTTP/1.1\r\nHost: icap-check.invalid\r\nContent-Type: {content_type}\r\nContent-Length: {body_len}\r\n\r\n"
            )
            .into_bytes(),
            res_hdr: None,
        }
    }

    fn encapsulated_header(&self) -> String {
        let req = self.req_hdr.len();
        match &self.res_hdr {
            Some(res) => format!("req-hdr=0, res-hdr={req}, res-body={}", req + res.len()),
            None => format!("req-hdr=0, req-body={req}"),
        }
    }
}

/// RESPMOD or REQMOD up to the start of the chunked body. `preview` is the
/// number of body bytes sent before waiting for `100 Continue`; `allow_204`
/// lets the server answer "unchanged" without sending the body back;
/// `keep_alive` leaves the connection open for a request that follows.
pub fn modify(
    method: Method,
    to: &Address<'_>,
    message: &Encapsulation,
    preview: Option<u64>,
    allow_204: bool,
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = request_line(method, to);
    if allow_204 {
        out.extend_from_slice(b"Allow: 204\r\n");
    }
    if let Some(n) = preview {
        out.extend_from_slice(format!("Preview: {n}\r\n").as_bytes());
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(
        format!("Encapsulated: {}\r\n\r\n", message.encapsulated_header()).as_bytes(),
    );
    out.extend_from_slice(&message.req_hdr);
    if let Some(res) = &message.res_hdr {
        out.extend_from_slice(res);
    }
    out
}

fn request_line(method: Method, to: &Address<'_>) -> Vec<u8> {
    format!(
        "{method} {} ICAP/1.0\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n",
        to.uri, to.host
    )
    .into_bytes()
}

#[cfg(test)]
mod test {
    use super::super::response::{parse_encapsulated, parse_head, Parsed, Protocol, Section};
    use super::*;

    const TO: Address<'static> = Address {
        uri: "icap://127.0.0.1:1344/echo",
        host: "127.0.0.1",
    };

    #[test]
    fn options_request() {
        let req = String::from_utf8(options(&TO, false)).unwrap();
        assert!(
            req.starts_with("OPTIONS icap://127.0.0.1:1344/echo ICAP/1.0\r\nHost: 127.0.0.1\r\n")
        );
        assert!(req.contains("Connection: close\r\n"));
        assert!(req.ends_with("Encapsulated: null-body=0\r\n\r\n"));
        let kept = String::from_utf8(options(&TO, true)).unwrap();
        assert!(!kept.contains("Connection"));
    }

    /// The offsets in Encapsulated must point exactly at each section.
    #[test]
    fn respmod_offsets_match_the_sections() {
        let message = Encapsulation::respmod(607, "application/pdf");
        let req = modify(Method::Respmod, &TO, &message, Some(1024), true, false);
        let text = String::from_utf8(req.clone()).unwrap();
        assert!(text.starts_with("RESPMOD icap://127.0.0.1:1344/echo ICAP/1.0\r\n"));
        assert!(text.contains("Allow: 204\r\nPreview: 1024\r\nConnection: close\r\n"));
        let kept = modify(Method::Respmod, &TO, &message, None, true, true);
        assert!(!String::from_utf8(kept).unwrap().contains("Connection"));
        let icap_head_end = text.find("\r\n\r\n").unwrap() + 4;
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix("Encapsulated: "))
            .unwrap();
        let enc = parse_encapsulated(value).unwrap();
        assert_eq!(enc.body(), Section::ResBody);
        let sections = &req[icap_head_end..];
        assert_eq!(sections.len(), enc.headers_len());
        let res = &sections[enc.header_range(Section::ResHdr).unwrap()];
        match parse_head(res, Protocol::Http).unwrap() {
            Parsed::Complete(head, n) => {
                assert_eq!(n, res.len());
                assert_eq!(head.headers.get("content-length"), Some("607"));
            }
            Parsed::Partial => panic!("partial"),
        }
    }

    #[test]
    fn reqmod_has_a_request_body() {
        let message = Encapsulation::reqmod(10, "application/pdf");
        let req =
            String::from_utf8(modify(Method::Reqmod, &TO, &message, None, false, false)).unwrap();
        assert!(!req.contains("Allow: 204"));
        assert!(!req.contains("Preview"));
        let expected = format!(
            "Encapsulated: req-hdr=0, req-body={}\r\n",
            message.req_hdr.len()
        );
        assert!(req.contains(&expected), "{req}");
        assert!(req.ends_with("Content-Length: 10\r\n\r\n"));
    }
}

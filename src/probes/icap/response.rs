//! Parsing a response head from bytes: the ICAP status line and headers, the
//! HTTP head encapsulated in an ICAP message, and the `Encapsulated` header.
//!
//! Bounded in the manner of httparse: the parser never allocates beyond its
//! limits and answers complete (with the length of the head), partial (more
//! bytes needed, not an error) or invalid (a small `Copy` error).

use std::ops::Range;

use crate::text::is_token_char;

/// Longest status or header line accepted.
pub const MAX_LINE: usize = 8 * 1024;
/// Most header fields accepted in one head.
pub const MAX_HEADERS: usize = 100;
/// Largest head accepted: status line, headers and the blank line.
pub const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Icap,
    Http,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The value and how many bytes of the input it took.
    Complete(T, usize),
    /// More bytes are needed.
    Partial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    NotIcap,
    NotHttp,
    UnsupportedVersion,
    BadStatusLine,
    LineTooLong,
    TooManyHeaders,
    BadHeader,
    TooLarge,
}

impl HeadError {
    pub fn message(self) -> &'static str {
        match self {
            HeadError::NotIcap => "not an ICAP response",
            HeadError::NotHttp => "encapsulated header block is not an HTTP message",
            HeadError::UnsupportedVersion => "unsupported protocol version",
            HeadError::BadStatusLine => "malformed status line",
            HeadError::LineTooLong => "header line longer than 8 KiB",
            HeadError::TooManyHeaders => "more than 100 header fields",
            HeadError::BadHeader => "malformed header line",
            HeadError::TooLarge => "response head larger than 64 KiB",
        }
    }
}

/// Header fields in the order received. Names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// The first field of that name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether a comma-separated field (`Methods`, `Connection`) lists `token`.
    pub fn lists(&self, name: &str, token: &str) -> bool {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// A status line and its headers, ICAP or HTTP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
}

/// Parses a head from the start of `buf`.
pub fn parse_head(buf: &[u8], protocol: Protocol) -> Result<Parsed<Head>, HeadError> {
    parse_head_at(buf, protocol).map_err(|(e, _)| e)
}

/// [`parse_head`], and on error the bytes of the line at fault (for the
/// message: the status line is rarely where a header went wrong).
pub fn parse_head_at(
    buf: &[u8],
    protocol: Protocol,
) -> Result<Parsed<Head>, (HeadError, Range<usize>)> {
    let mut pos = 0;
    let mut head: Option<Head> = None;
    loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            let rest = &buf[pos..];
            let at = pos..buf.len();
            if rest.len() > MAX_LINE {
                return Err((HeadError::LineTooLong, at));
            }
            if buf.len() > MAX_HEAD {
                return Err((HeadError::TooLarge, at));
            }
            // Garbage is recognised before its first line ends.
            if head.is_none() {
                check_prefix(rest, protocol).map_err(|e| (e, at))?;
            }
            return Ok(Parsed::Partial);
        };
        let line_end = pos + nl;
        let at = pos..line_end;
        let line = strip_cr(&buf[pos..line_end]);
        pos = line_end + 1;
        if line.len() > MAX_LINE {
            return Err((HeadError::LineTooLong, at));
        }
        if pos > MAX_HEAD {
            return Err((HeadError::TooLarge, at));
        }
        match head.as_mut() {
            // Blank lines before the status line are tolerated (RFC 9112 2.2).
            None if line.is_empty() => continue,
            None => head = Some(parse_status_line(line, protocol).map_err(|e| (e, at))?),
            Some(h) if line.is_empty() => {
                let complete = std::mem::take(h);
                return Ok(Parsed::Complete(complete, pos));
            }
            Some(h) => parse_header_line(line, &mut h.headers).map_err(|e| (e, at))?,
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn expected_prefix(protocol: Protocol) -> (&'static [u8], HeadError) {
    match protocol {
        Protocol::Icap => (b"ICAP/", HeadError::NotIcap),
        Protocol::Http => (b"HTTP/", HeadError::NotHttp),
    }
}

fn check_prefix(start: &[u8], protocol: Protocol) -> Result<(), HeadError> {
    let (prefix, error) = expected_prefix(protocol);
    let start = match start.iter().position(|&b| b != b'\r') {
        Some(i) => &start[i..],
        None => return Ok(()),
    };
    let n = start.len().min(prefix.len());
    if start[..n] == prefix[..n] {
        Ok(())
    } else {
        Err(error)
    }
}

fn parse_status_line(line: &[u8], protocol: Protocol) -> Result<Head, HeadError> {
    let (prefix, not_ours) = expected_prefix(protocol);
    if !line.starts_with(prefix) {
        return Err(not_ours);
    }
    let mut parts = line.splitn(3, |&b| b == b' ');
    let version = parts.next().unwrap_or_default();
    let accepted: &[&[u8]] = match protocol {
        Protocol::Icap => &[b"ICAP/1.0"],
        Protocol::Http => &[b"HTTP/1.0", b"HTTP/1.1"],
    };
    if !accepted.contains(&version) {
        return Err(HeadError::UnsupportedVersion);
    }
    let code = parts.next().unwrap_or_default();
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::BadStatusLine);
    }
    let status = code
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        return Err(HeadError::BadStatusLine);
    }
    let reason = String::from_utf8_lossy(parts.next().unwrap_or_default())
        .trim()
        .to_string();
    Ok(Head {
        version: String::from_utf8_lossy(version).into_owned(),
        status,
        reason,
        headers: Headers::default(),
    })
}

fn parse_header_line(line: &[u8], headers: &mut Headers) -> Result<(), HeadError> {
    if line[0] == b' ' || line[0] == b'\t' {
        // Obsolete line folding: the line continues the previous value.
        let last = headers.0.last_mut().ok_or(HeadError::BadHeader)?;
        last.1.push(' ');
        last.1.push_str(String::from_utf8_lossy(line).trim());
        return Ok(());
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HeadError::BadHeader)?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().copied().all(is_token_char) {
        return Err(HeadError::BadHeader);
    }
    if headers.0.len() >= MAX_HEADERS {
        return Err(HeadError::TooManyHeaders);
    }
    let value = String::from_utf8_lossy(&line[colon + 1..])
        .trim()
        .to_string();
    headers
        .0
        .push((String::from_utf8_lossy(name).into_owned(), value));
    Ok(())
}

/// The kinds of section an `Encapsulated` header names (RFC 3507 4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    ReqHdr,
    ResHdr,
    ReqBody,
    ResBody,
    OptBody,
    NullBody,
}

impl Section {
    fn from_name(name: &str) -> Option<Section> {
        Some(match name {
            "req-hdr" => Section::ReqHdr,
            "res-hdr" => Section::ResHdr,
            "req-body" => Section::ReqBody,
            "res-body" => Section::ResBody,
            "opt-body" => Section::OptBody,
            "null-body" => Section::NullBody,
            _ => return None,
        })
    }

    fn is_body(self) -> bool {
        !matches!(self, Section::ReqHdr | Section::ResHdr)
    }
}

/// A parsed `Encapsulated` header: sections and their byte offsets, header
/// sections first, exactly one body (or null-body) last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encapsulated {
    entries: Vec<(Section, usize)>,
}

impl Encapsulated {
    /// The body section ending the list: a body, or `NullBody`.
    pub fn body(&self) -> Section {
        self.entries.last().map_or(Section::NullBody, |e| e.0)
    }

    /// How many bytes of header sections precede the body.
    pub fn headers_len(&self) -> usize {
        self.entries.last().map_or(0, |e| e.1)
    }

    /// Where a header section lies within the header bytes.
    pub fn header_range(&self, section: Section) -> Option<Range<usize>> {
        let i = self.entries.iter().position(|e| e.0 == section)?;
        let next = self.entries.get(i + 1)?;
        Some(self.entries[i].1..next.1)
    }
}

pub fn parse_encapsulated(value: &str) -> Result<Encapsulated, &'static str> {
    let mut entries = Vec::with_capacity(3);
    for item in value.split(',') {
        let (name, offset) = item
            .trim()
            .split_once('=')
            .ok_or("Encapsulated entry without '='")?;
        let section = Section::from_name(name.trim().to_ascii_lowercase().as_str())
            .ok_or("unknown section in Encapsulated")?;
        let offset = offset.trim();
        if offset.is_empty() || offset.len() > 9 || !offset.bytes().all(|b| b.is_ascii_digit()) {
            return Err("bad offset in Encapsulated");
        }
        let offset: usize = offset.parse().map_err(|_| "bad offset in Encapsulated")?;
        if entries.len() == 4 {
            return Err("too many entries in Encapsulated");
        }
        if let Some(&(last, last_offset)) = entries.last() {
            if Section::is_body(last) {
                return Err("Encapsulated has an entry after its body");
            }
            if offset < last_offset {
                return Err("Encapsulated offsets go backwards");
            }
        } else if offset != 0 {
            return Err("Encapsulated does not start at offset 0");
        }
        entries.push((section, offset));
    }
    if !entries.last().is_some_and(|e| e.0.is_body()) {
        return Err("Encapsulated does not end with a body section");
    }
    Ok(Encapsulated { entries })
}

#[cfg(test)]
mod test {
    use super::*;

    const OPTIONS_REPLY: &[u8] = b"ICAP/1.0 200 OK\r\n\
Methods: RESPMOD, REQMOD\r\n\
Service: C-ICAP/0.5.10 server - Echo demo service\r\n\
ISTag: \"CI0001-XXXXXXXXX\"\r\n\
Preview: 1024\r\n\
Allow: 204\r\n\
Encapsulated: null-body=0\r\n\
\r\n";

    fn complete(buf: &[u8], p: Protocol) -> (Head, usize) {
        match parse_head(buf, p) {
            Ok(Parsed::Complete(h, n)) => (h, n),
            other => panic!("expected complete, got {other:?}"),
        }
    }

    #[test]
    fn parses_c_icap_options_reply() {
        let (head, len) = complete(OPTIONS_REPLY, Protocol::Icap);
        assert_eq!(len, OPTIONS_REPLY.len());
        assert_eq!(head.status, 200);
        assert_eq!(head.reason, "OK");
        assert_eq!(head.headers.get("istag"), Some("\"CI0001-XXXXXXXXX\""));
        assert_eq!(head.headers.get("PREVIEW"), Some("1024"));
        assert!(head.headers.lists("methods", "respmod"));
        assert!(!head.headers.lists("methods", "OPTIONS"));
    }

    #[test]
    fn every_truncated_prefix_is_partial() {
        for n in 0..OPTIONS_REPLY.len() {
            assert_eq!(
                parse_head(&OPTIONS_REPLY[..n], Protocol::Icap),
                Ok(Parsed::Partial),
                "prefix of {n} bytes"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_left_for_the_body() {
        let mut buf = OPTIONS_REPLY.to_vec();
        buf.extend_from_slice(b"garbage");
        let (_, len) = complete(&buf, Protocol::Icap);
        assert_eq!(len, OPTIONS_REPLY.len());
    }

    #[test]
    fn bare_lf_and_folded_lines_are_accepted() {
        let (head, _) = complete(
            b"ICAP/1.0 204 No Content\nISTag: a\n  b\n\n",
            Protocol::Icap,
        );
        assert_eq!(head.status, 204);
        assert_eq!(head.headers.get("istag"), Some("a b"));
    }

    #[test]
    fn http_head_inside() {
        let (head, _) = complete(
            b"HTTP/1.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
            Protocol::Http,
        );
        assert_eq!((head.status, head.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            parse_head(b"ICAP/1.0 200 OK\r\n\r\n", Protocol::Http),
            Err(HeadError::NotHttp)
        );
    }

    #[test]
    fn invalid_heads() {
        let cases: &[(&[u8], HeadError)] = &[
            (b"HTTP/1.1 400 Bad Request\r\n\r\n", HeadError::NotIcap),
            (b"SSH-2.0-OpenSSH", HeadError::NotIcap),
            (b"\x16\x03\x01", HeadError::NotIcap),
            (b"ICAP/2.0 200 OK\r\n\r\n", HeadError::UnsupportedVersion),
            (b"ICAP/1.0 20 OK\r\n\r\n", HeadError::BadStatusLine),
            (b"ICAP/1.0 abc OK\r\n\r\n", HeadError::BadStatusLine),
            (b"ICAP/1.0 999 OK\r\n\r\n", HeadError::BadStatusLine),
            (b"ICAP/1.0 200 OK\r\nno colon\r\n\r\n", HeadError::BadHeader),
            (b"ICAP/1.0 200 OK\r\n: empty\r\n\r\n", HeadError::BadHeader),
            (
                b"ICAP/1.0 200 OK\r\nbad name: x\r\n\r\n",
                HeadError::BadHeader,
            ),
            (
                b"ICAP/1.0 200 OK\r\n folded-first\r\n\r\n",
                HeadError::BadHeader,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_head(input, Protocol::Icap),
                Err(*expected),
                "{input:?}"
            );
        }
    }

    #[test]
    fn endless_line_is_bounded() {
        let mut buf = b"ICAP/1.0 200 OK\r\nX-Long: ".to_vec();
        buf.resize(MAX_LINE + 100, b'a');
        assert_eq!(
            parse_head(&buf, Protocol::Icap),
            Err(HeadError::LineTooLong)
        );
    }

    #[test]
    fn header_count_is_bounded() {
        let mut buf = b"ICAP/1.0 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        assert_eq!(
            parse_head(&buf, Protocol::Icap),
            Err(HeadError::TooManyHeaders)
        );
    }

    #[test]
    fn head_size_is_bounded() {
        let mut buf = b"ICAP/1.0 200 OK\r\n".to_vec();
        let line = format!("X-Pad: {}\r\n", "p".repeat(MAX_LINE - 10));
        while buf.len() <= MAX_HEAD {
            buf.extend_from_slice(line.as_bytes());
        }
        assert_eq!(parse_head(&buf, Protocol::Icap), Err(HeadError::TooLarge));
    }

    #[test]
    fn encapsulated_sections() {
        let e = parse_encapsulated("req-hdr=0, res-hdr=45, res-body=120").unwrap();
        assert_eq!(e.body(), Section::ResBody);
        assert_eq!(e.headers_len(), 120);
        assert_eq!(e.header_range(Section::ResHdr), Some(45..120));
        assert_eq!(e.header_range(Section::ReqHdr), Some(0..45));
        let e = parse_encapsulated("null-body=0").unwrap();
        assert_eq!((e.body(), e.headers_len()), (Section::NullBody, 0));
        let e = parse_encapsulated("RES-HDR=0,NULL-BODY=10").unwrap();
        assert_eq!(e.header_range(Section::ResHdr), Some(0..10));
    }

    #[test]
    fn bad_encapsulated() {
        for bad in [
            "",
            "res-hdr=0",
            "res-body=0, res-hdr=5",
            "res-hdr=10, res-body=5",
            "res-hdr=3, res-body=5",
            "res-hdr=x, res-body=5",
            "res-hdr=-1, res-body=5",
            "res-hdr=0, res-body=99999999999",
            "foo=0, res-body=1",
            "res-hdr",
            "req-hdr=0, res-hdr=1, req-hdr=2, res-hdr=3, res-body=4",
        ] {
            assert!(parse_encapsulated(bad).is_err(), "{bad}");
        }
    }
}

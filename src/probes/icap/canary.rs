//! The detection canary (`--canary`): the EICAR antivirus test file, sent
//! after the check's own request, which an antivirus service must flag; and
//! the rules that read from its answer whether it did.
//!
//! An antivirus whose engine failed to load its signatures, or that runs
//! "fail open", answers 204 to everything and passes every other check.
//! Only a file it must flag tells the two apart.
//!
//! The file is not stored as its bytes: scanners on the HAProxy host, in a
//! CI pipeline or a mail filter quarantine whatever contains them (this
//! binary, the .deb, the repository). It is kept reversed and masked, and
//! rebuilt in memory when sent.

use super::reader::Response;
use super::request::Method;
use crate::text::escape;

/// The test file's length.
pub const LEN: usize = 68;

/// The file reversed, each byte XORed with `0xA7 + 29 * i` (mod 256), `i`
/// counting from the end of the file.
const MASKED: [u8; LEN] = [
    0x8d, 0x8c, 0xca, 0xb6, 0x3f, 0x19, 0x10, 0x3e, 0xc6, 0xea, 0xe4, 0xb2, //
    0x50, 0x65, 0x69, 0x77, 0x24, 0xc1, 0xe3, 0x87, 0xbd, 0x41, 0x71, 0x0c, //
    0x1e, 0x51, 0xdd, 0xe4, 0x92, 0xb4, 0x43, 0x6b, 0x13, 0x37, 0xac, 0xcc, //
    0xfa, 0x9b, 0xbc, 0x57, 0x0b, 0x31, 0x5e, 0xaf, 0xe0, 0x83, 0xea, 0xd3, //
    0x49, 0x64, 0x79, 0x5a, 0xbe, 0xf0, 0x9f, 0xb2, 0xa3, 0x28, 0x62, 0x06, //
    0x32, 0xd0, 0x88, 0x9a, 0xc6, 0x4b, 0x14, 0x66,
];

/// The EICAR test file, rebuilt in memory.
pub fn eicar() -> [u8; LEN] {
    // Opaque to the optimiser: folded at compile time, the file would sit
    // in the binary in clear, which is what the mask is for.
    let base = std::hint::black_box(0xA7u8);
    let mut out = [0u8; LEN];
    for (i, m) in MASKED.iter().enumerate() {
        // i < 68: the cast is exact.
        out[LEN - 1 - i] = m ^ base.wrapping_add((i as u8).wrapping_mul(29));
    }
    out
}

/// Headers by which ICAP antivirus services name what they found:
/// `X-Infection-Found` (c-icap, Symantec, McAfee/Skyhigh, the draft ICAP
/// extensions), `X-Virus-ID` and `X-Virus-Name` (Kaspersky, Sophos, ESET),
/// `X-Violations-Found` (c-icap), `X-Blocked` and `X-Block-Reason` (content
/// filters). Looked for in this order: the first names the threat best.
pub const FLAG_HEADERS: [&str; 6] = [
    "X-Infection-Found",
    "X-Virus-ID",
    "X-Virus-Name",
    "X-Violations-Found",
    "X-Blocked",
    "X-Block-Reason",
];

/// What the service did with the test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// Flagged: the threat it named (escaped), if any, and how it said so.
    Caught { threat: Option<String>, how: String },
    /// Let through: how it said so (`204`).
    Missed(String),
    /// Neither: an error status, a shape no antivirus uses.
    Failed(String),
}

/// Reads the canary's answer. `unchanged`: the adapted body was read and
/// is the test file, byte for byte.
pub fn judge(method: Method, response: &Response, unchanged: bool) -> Judged {
    let head = &response.head;
    let status = head.status;
    if let (200 | 201 | 204 | 403, Some((name, threat))) = (status, flagged(head)) {
        return Judged::Caught {
            threat,
            how: format!("{name} on ICAP {status}"),
        };
    }
    match status {
        // Trend Micro refuses an infected file outright.
        403 => Judged::Caught {
            threat: None,
            how: "ICAP 403".into(),
        },
        204 => Judged::Missed("204".into()),
        200 => match &response.http {
            Some(http) if !(200..300).contains(&http.status) => Judged::Caught {
                threat: None,
                how: format!("HTTP {} inside ICAP 200", http.status),
            },
            http if unchanged => {
                let what = match http {
                    Some(h) => format!("HTTP {} with the file back unchanged", h.status),
                    None => "the upload back unchanged".into(),
                };
                Judged::Missed(format!("200, {what}"))
            }
            // A content-disarm service rebuilds or drops what it cannot clean.
            Some(http) => Judged::Caught {
                threat: None,
                how: format!("ICAP 200, HTTP {} with the file replaced", http.status),
            },
            None => Judged::Caught {
                threat: None,
                how: "ICAP 200 with the upload replaced".into(),
            },
        },
        201 => Judged::Failed(format!("{method} answered 201 without naming an infection")),
        status => Judged::Failed(format!(
            "{method} answered {status} {}",
            escape(&head.reason)
        )),
    }
}

/// The first header of [`FLAG_HEADERS`] whose value reports a finding, and
/// the threat it names.
fn flagged(head: &super::response::Head) -> Option<(&'static str, Option<String>)> {
    FLAG_HEADERS.iter().find_map(|&name| {
        let value = head.headers.get(name)?.trim();
        if says_nothing(value) {
            return None;
        }
        let threat = match name {
            "X-Infection-Found" => infection_threat(value),
            "X-Violations-Found" => violation_threat(value),
            // `X-Blocked: yes` says that, not what.
            "X-Blocked" if is_yes(value) => None,
            _ => Some(value),
        };
        Some((name, threat.filter(|t| !t.is_empty()).map(escape)))
    })
}

/// Values that report no finding: an empty header, a count of zero.
fn says_nothing(value: &str) -> bool {
    ["", "0", "-", "no", "false", "none", "clean"]
        .iter()
        .any(|v| value.eq_ignore_ascii_case(v))
}

fn is_yes(value: &str) -> bool {
    ["1", "yes", "true"]
        .iter()
        .any(|v| value.eq_ignore_ascii_case(v))
}

/// `Type=0; Resolution=2; Threat=Eicar-Test-Signature;` (the draft ICAP
/// extensions, c-icap, Symantec): the `Threat` parameter.
fn infection_threat(value: &str) -> Option<&str> {
    value.split(';').find_map(|param| {
        let (key, v) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("Threat")
            .then_some(v.trim())
    })
}

/// c-icap's `X-Violations-Found: 1` folded over the lines `-` (file name),
/// the threat, a problem id and a resolution: unfolded, the third word.
/// (A file name with spaces shifts it; the header still reports a finding.)
fn violation_threat(value: &str) -> Option<&str> {
    let mut words = value.split_whitespace();
    let _count = words.next();
    let _file = words.next();
    words.next()
}

#[cfg(test)]
mod test {
    use super::super::reader::{Progress, ResponseReader};
    use super::*;

    /// MD5 (RFC 1321), to check the rebuilt file against its published hash
    /// without the file's bytes appearing anywhere in the source.
    fn md5(data: &[u8]) -> [u8; 16] {
        const S: [u32; 64] = [
            7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20,
            5, 9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
            6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
        ];
        let k: Vec<u32> = (0..64)
            .map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32)
            .collect();
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_le_bytes());
        let mut h: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
        for block in msg.chunks(64) {
            let m: Vec<u32> = block
                .chunks(4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                .collect();
            let [mut a, mut b, mut c, mut d] = h;
            for i in 0..64 {
                let (f, g) = match i / 16 {
                    0 => ((b & c) | (!b & d), i),
                    1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                    2 => (b ^ c ^ d, (3 * i + 5) % 16),
                    _ => (c ^ (b | !d), (7 * i) % 16),
                };
                let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
                a = d;
                d = c;
                c = b;
                b = b.wrapping_add(f.rotate_left(S[i]));
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d]) {
                *x = x.wrapping_add(y);
            }
        }
        let mut out = [0u8; 16];
        for (i, word) in h.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn md5_is_md5() {
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex(&md5(b"The quick brown fox jumps over the lazy dog")),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }

    /// The published MD5 of the EICAR test file.
    #[test]
    fn the_rebuilt_file_is_eicar() {
        let file = eicar();
        assert_eq!(file.len(), 68);
        assert_eq!(hex(&md5(&file)), "44d88612fea8a8f36de82e1278abb02f");
    }

    /// The answer as the reader makes it from these bytes, and whether its
    /// body came back as the test file.
    fn read(method: Method, bytes: &[u8]) -> (Response, bool) {
        let mut r = ResponseReader::new(method, false);
        let mut body = Vec::new();
        let (n, p) = r
            .advance(bytes, true, &mut |d| body.extend_from_slice(d))
            .expect("a response");
        assert_eq!(p, Progress::Complete);
        assert!(n <= bytes.len());
        let unchanged = body == eicar();
        (r.into_response().expect("complete"), unchanged)
    }

    fn judged(method: Method, bytes: &[u8]) -> Judged {
        let (response, unchanged) = read(method, bytes);
        judge(method, &response, unchanged)
    }

    fn caught(threat: Option<&str>, how: &str) -> Judged {
        Judged::Caught {
            threat: threat.map(str::to_string),
            how: how.to_string(),
        }
    }

    /// c-icap's virus_scan with ClamAV, as answered here: X-Violations-Found
    /// folded over tab-indented lines, HTTP 403 inside, a page ending in NULs.
    const C_ICAP_VIRUS: &[u8] = b"ICAP/1.0 200 OK\r\n\
Server: C-ICAP/0.5.10\r\n\
Connection: keep-alive\r\n\
ISTag: \"CI0001-9OPRPm4oRCAVcJKwg9DiggAA\"\r\n\
X-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Canary.MD5.UNOFFICIAL;\r\n\
X-Violations-Found: 1\r\n\
\t-\r\n\
\tEicar-Canary.MD5.UNOFFICIAL\r\n\
\t0\r\n\
\t0\r\n\
Encapsulated: res-hdr=0, res-body=26\r\n\
\r\n\
HTTP/1.0 403 Forbidden\r\n\
\r\n\
10\r\n<b>VIRUS</b>\n\0\0\0\r\n\
0\r\n\
\r\n";

    #[test]
    fn c_icap_clamav() {
        assert_eq!(
            judged(Method::Respmod, C_ICAP_VIRUS),
            caught(
                Some("Eicar-Canary.MD5.UNOFFICIAL"),
                "X-Infection-Found on ICAP 200"
            )
        );
        // The whole page is read when asked for (--output), NULs and all.
        let mut r = ResponseReader::new(Method::Respmod, true);
        let mut body = Vec::new();
        let (n, p) = r
            .advance(C_ICAP_VIRUS, false, &mut |d| body.extend_from_slice(d))
            .unwrap();
        assert_eq!((n, p), (C_ICAP_VIRUS.len(), Progress::Complete));
        assert!(body.ends_with(b"\0\0\0"), "{body:?}");
        let head = r.into_response().unwrap().head;
        assert_eq!(
            head.headers.get("X-Violations-Found"),
            Some("1 - Eicar-Canary.MD5.UNOFFICIAL 0 0")
        );
        // Without X-Infection-Found, the folded header names the threat.
        let only_violations = String::from_utf8_lossy(C_ICAP_VIRUS).replace(
            "X-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Canary.MD5.UNOFFICIAL;\r\n",
            "",
        );
        assert_eq!(
            judged(Method::Respmod, only_violations.as_bytes()),
            caught(
                Some("Eicar-Canary.MD5.UNOFFICIAL"),
                "X-Violations-Found on ICAP 200"
            )
        );
    }

    #[test]
    fn every_vendor_shape_that_flags() {
        let cases: [(&[u8], Option<&str>, &str); 8] = [
            // Symantec: 201 Created with X-Infection-Found.
            (
                b"ICAP/1.0 201 Created\r\nISTag: \"s\"\r\nX-Infection-Found: Type=0; Resolution=2; Threat=EICAR Test String;\r\nEncapsulated: null-body=0\r\n\r\n",
                Some("EICAR Test String"),
                "X-Infection-Found on ICAP 201",
            ),
            // Trend Micro: ICAP 403, with or without a header.
            (
                b"ICAP/1.0 403 Forbidden\r\nISTag: \"t\"\r\nEncapsulated: null-body=0\r\n\r\n",
                None,
                "ICAP 403",
            ),
            (
                b"ICAP/1.0 403 Forbidden\r\nX-Virus-ID: Eicar_test_file\r\nEncapsulated: null-body=0\r\n\r\n",
                Some("Eicar_test_file"),
                "X-Virus-ID on ICAP 403",
            ),
            // Kaspersky: X-Virus-ID on a 200 carrying its block page.
            (
                b"ICAP/1.0 200 OK\r\nISTag: \"k\"\r\nX-Virus-ID: EICAR-Test-File\r\nEncapsulated: res-hdr=0, null-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
                Some("EICAR-Test-File"),
                "X-Virus-ID on ICAP 200",
            ),
            // A finding reported on a 204 (the body "unchanged", the header says otherwise).
            (
                b"ICAP/1.0 204 No Content\r\nISTag: \"x\"\r\nX-Infection-Found: Type=0; Resolution=0; Threat=EICAR;\r\n\r\n",
                Some("EICAR"),
                "X-Infection-Found on ICAP 204",
            ),
            // A content filter's X-Blocked, which says that but not what.
            (
                b"ICAP/1.0 200 OK\r\nX-Blocked: yes\r\nEncapsulated: res-hdr=0, null-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
                None,
                "X-Blocked on ICAP 200",
            ),
            // Glasswall-style: HTTP 403 inside ICAP 200, no header.
            (
                b"ICAP/1.0 200 OK\r\nISTag: \"g\"\r\nEncapsulated: res-hdr=0, res-body=26\r\n\r\nHTTP/1.0 403 Forbidden\r\n\r\n0\r\n\r\n",
                None,
                "HTTP 403 inside ICAP 200",
            ),
            // A rebuilt file: 2xx, but not the file sent.
            (
                b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n5\r\nclean\r\n0\r\n\r\n",
                None,
                "ICAP 200, HTTP 200 with the file replaced",
            ),
        ];
        for (answer, threat, how) in cases {
            assert_eq!(
                judged(Method::Respmod, answer),
                caught(threat, how),
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
    }

    /// The file echoed back as it was sent.
    fn echoed(method: Method) -> Vec<u8> {
        let (enc, http) = match method {
            Method::Reqmod => (
                "req-hdr=0, req-body=45",
                "POST /upload HTTP/1.1\r\nHost: icap.invalid\r\n\r\n",
            ),
            _ => ("res-hdr=0, res-body=19", "HTTP/1.1 200 OK\r\n\r\n"),
        };
        let mut out =
            format!("ICAP/1.0 200 OK\r\nISTag: \"e\"\r\nEncapsulated: {enc}\r\n\r\n{http}44\r\n")
                .into_bytes();
        assert_eq!(http.len(), enc.rsplit('=').next().unwrap().parse().unwrap());
        out.extend_from_slice(&eicar());
        out.extend_from_slice(b"\r\n0\r\n\r\n");
        out
    }

    #[test]
    fn what_lets_it_through() {
        assert_eq!(
            judged(
                Method::Respmod,
                b"ICAP/1.0 204 Unmodified\r\nServer: C-ICAP/0.5.10\r\nISTag: \"CI0001-1B2M2Y8AsgTpgAmY7PhCfgAA\"\r\n\r\n"
            ),
            Judged::Missed("204".into())
        );
        assert_eq!(
            judged(Method::Respmod, &echoed(Method::Respmod)),
            Judged::Missed("200, HTTP 200 with the file back unchanged".into())
        );
        assert_eq!(
            judged(Method::Reqmod, &echoed(Method::Reqmod)),
            Judged::Missed("200, the upload back unchanged".into())
        );
        // Headers that name no finding are not one.
        for quiet in ["X-Violations-Found: 0", "X-Blocked: no", "X-Virus-ID:"] {
            let answer = format!("ICAP/1.0 204 No Content\r\n{quiet}\r\n\r\n");
            assert_eq!(
                judged(Method::Respmod, answer.as_bytes()),
                Judged::Missed("204".into()),
                "{quiet}"
            );
        }
    }

    #[test]
    fn error_statuses_are_failures_not_catches() {
        for (answer, says) in [
            (
                &b"ICAP/1.0 500 Server Error\r\nEncapsulated: null-body=0\r\n\r\n"[..],
                "RESPMOD answered 500 Server Error",
            ),
            (
                b"ICAP/1.0 404 Service Not Found\r\n\r\n",
                "RESPMOD answered 404 Service Not Found",
            ),
            (
                b"ICAP/1.0 201 Created\r\nEncapsulated: null-body=0\r\n\r\n",
                "RESPMOD answered 201 without naming an infection",
            ),
        ] {
            assert_eq!(judged(Method::Respmod, answer), Judged::Failed(says.into()));
        }
    }

    /// A server's threat name reaches the report escaped, and cut.
    #[test]
    fn threat_names_are_escaped() {
        let long = "A".repeat(500);
        let answer = format!(
            "ICAP/1.0 403 Forbidden\r\nX-Infection-Found: Type=0; Threat=\x1b[31mred\u{202e};\r\nX-Virus-ID: {long}\r\n\r\n"
        );
        match judged(Method::Respmod, answer.as_bytes()) {
            Judged::Caught {
                threat: Some(t), ..
            } => assert_eq!(t, "\\x1b[31mred\\u{202e}"),
            other => panic!("{other:?}"),
        }
        let answer = format!("ICAP/1.0 403 Forbidden\r\nX-Virus-ID: {long}\r\n\r\n");
        match judged(Method::Respmod, answer.as_bytes()) {
            Judged::Caught {
                threat: Some(t), ..
            } => assert!(t.len() < 210 && t.ends_with("..."), "{t}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(infection_threat("Type=0; Resolution=2"), None);
        assert_eq!(violation_threat("1"), None);
    }
}

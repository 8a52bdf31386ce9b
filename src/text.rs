//! Text from outside (servers, files, HAProxy's variables, the command line)
//! made safe to print, and the few character classes the wire formats share.

use std::fmt::Write as _;

/// Longest piece of outside text quoted in a report line.
pub const MAX_QUOTED: usize = 200;

/// Makes text from outside safe for a log line or a terminal: control
/// characters become `\xNN`, and it is cut at [`MAX_QUOTED`] characters.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_QUOTED));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_QUOTED {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            let code = c as u32;
            if code <= 0xff {
                let _ = write!(out, "\\x{code:02x}");
            } else {
                let _ = write!(out, "\\u{{{code:x}}}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An I/O error's text without the "(os error N)" suffix, for report lines.
pub fn describe_io(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
    .to_lowercase()
}

/// A token character of HTTP and ICAP header names (RFC 9110 5.6.2).
pub fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn escapes_control_characters_and_cuts_long_text() {
        assert_eq!(escape("a\x1b[31mb\r\n"), "a\\x1b[31mb\\x0d\\x0a");
        assert_eq!(escape("\u{85}"), "\\x85");
        let long = "x".repeat(500);
        assert_eq!(escape(&long).len(), MAX_QUOTED + 3);
    }

    #[test]
    fn describe_drops_the_os_error_number() {
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(describe_io(&e), "connection refused");
    }

    #[test]
    fn tokens() {
        assert!(b"X-Infection-Found".iter().all(|&b| is_token_char(b)));
        assert!(!is_token_char(b' ') && !is_token_char(b':') && !is_token_char(0x7f));
    }
}

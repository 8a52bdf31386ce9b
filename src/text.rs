//! Text from outside (servers, files, HAProxy's variables, the command line)
//! made safe to print, and the few character classes the wire formats share.

/// Longest piece of outside text quoted in a report line.
pub const MAX_QUOTED: usize = 200;

/// Makes text from outside safe for a log line or a terminal: what could
/// move the cursor, end the line or hide and reorder what follows (see
/// [`is_hidden`]) becomes `\xNN` or `\u{NNNN}`, and it is cut at
/// [`MAX_QUOTED`] characters.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_QUOTED));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_QUOTED {
            out.push_str("...");
            break;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// [`escape`] without the cut, for a whole line that must stay one line.
pub fn escape_all(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// `c`, or its escape when it is [`is_hidden`].
pub fn push_escaped(out: &mut (impl std::fmt::Write + ?Sized), c: char) {
    let code = c as u32;
    let _ = match (is_hidden(c), code <= 0xff) {
        (false, _) => out.write_char(c),
        (true, true) => write!(out, "\\x{code:02x}"),
        (true, false) => write!(out, "\\u{{{code:x}}}"),
    };
}

/// Characters that must not reach a terminal, a log or a monitoring line
/// as they are: control characters (C0, DEL, C1: escape sequences, line
/// ends), the line and paragraph separators (Zl, Zp), and format characters
/// (Cf: bidirectional overrides and isolates, zero-width characters, the
/// byte-order mark), with which a log line is spoofed.
pub fn is_hidden(c: char) -> bool {
    c.is_control() || is_format_or_separator(c)
}

/// Unicode 15's general categories Cf, Zl and Zp.
fn is_format_or_separator(c: char) -> bool {
    const RANGES: [(u32, u32); 21] = [
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x2028, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let code = c as u32;
    // Below the first range (all of printable ASCII): the common case of
    // every character of a header, without walking the table.
    if code < RANGES[0].0 {
        return false;
    }
    RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
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
    fn escapes_what_spoofs_a_line() {
        assert_eq!(escape("a\u{AD}b"), "a\\xadb");
        for c in [
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            '\u{200B}',
            '\u{FEFF}',
            '\u{2028}',
            '\u{2029}',
            '\u{E0041}',
        ] {
            let text = format!("a{c}b");
            let escaped = escape(&text);
            assert_eq!(
                escaped,
                format!("a\\u{{{:x}}}b", c as u32),
                "{:x}",
                c as u32
            );
            assert!(!escaped.chars().any(is_hidden));
        }
        assert_eq!(escape_all(&"x\n".repeat(300)).len(), 300 * 5);
        // Letters, CJK, emoji and combining marks pass.
        for text in ["Grüße", "日本語", "🙂", "e\u{301}"] {
            assert_eq!(escape(text), text);
        }
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

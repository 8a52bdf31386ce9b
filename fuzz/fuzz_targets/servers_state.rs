#![no_main]
use icap_check::fuzzing::{parse_servers_state, parse_stat, runtime_servers};
use libfuzzer_sys::fuzz_target;

// The runtime API's `show servers state` is outside input. Never panics; an
// accepted answer ends with its empty line (cut just before it, it is
// refused as truncated), every name in it is a HAProxy name, and the
// `X-Haproxy-Server-State` built from it is one header line of visible ASCII.
fuzz_target!(|text: &str| {
    let stats = parse_stat(text).unwrap_or_default();
    let Ok(rows) = parse_servers_state(text) else {
        return;
    };
    let end = text.find("\n\n").expect("an accepted answer has its empty line");
    assert!(parse_servers_state(&text[..end + 1]).is_err());
    let names = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    };
    for r in &rows {
        assert!(names(&r.backend) && names(&r.server), "{r:?}");
        let _ = r.state();
    }
    for s in runtime_servers(rows, &stats, Some("node".into()), &[]) {
        let header = s.send_state.header_with(None);
        assert!(header.bytes().all(|b| (b' '..=b'~').contains(&b)), "{header:?}");
        let _ = (s.check_address(), s.check_port_text());
    }
});

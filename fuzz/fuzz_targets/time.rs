#![no_main]
use icap_check::fuzzing::{format_time, parse_time};
use libfuzzer_sys::fuzz_target;

// Never panics; what it accepts it accepts with surrounding blanks, and
// format_time writes it back in a form that parses to the same duration.
fuzz_target!(|text: &str| {
    if let Ok(d) = parse_time(text) {
        assert_eq!(parse_time(&format!(" {text} ")), Ok(d));
        assert_eq!(parse_time(&format_time(d)), Ok(d), "{}", format_time(d));
    }
});

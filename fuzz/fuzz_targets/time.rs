#![no_main]
use icap_check::deadline::parse_time;
use libfuzzer_sys::fuzz_target;

// Never panics; what it accepts stays accepted with surrounding blanks.
fuzz_target!(|text: &str| {
    if let Ok(d) = parse_time(text) {
        assert_eq!(parse_time(&format!(" {text} ")), Ok(d));
    }
});

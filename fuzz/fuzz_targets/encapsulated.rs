#![no_main]
use icap_check::fuzzing::{parse_encapsulated, Section};
use libfuzzer_sys::fuzz_target;

// Never panics; header sections of an accepted value lie within its headers.
fuzz_target!(|value: &str| {
    if let Ok(enc) = parse_encapsulated(value) {
        for section in [Section::ReqHdr, Section::ResHdr] {
            if let Some(range) = enc.header_range(section) {
                assert!(range.start <= range.end && range.end <= enc.headers_len());
            }
        }
    }
});

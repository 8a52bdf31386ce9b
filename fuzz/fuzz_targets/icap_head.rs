#![no_main]
use icap_check::fuzzing::{parse_head, Parsed, Protocol, MAX_HEAD};
use libfuzzer_sys::fuzz_target;

// Never panics; a complete head lies within the input and the size bound,
// and parses the same from exactly the bytes it took.
fuzz_target!(|data: &[u8]| {
    for protocol in [Protocol::Icap, Protocol::Http] {
        if let Ok(Parsed::Complete(head, n)) = parse_head(data, protocol) {
            assert!(n <= data.len() && n <= MAX_HEAD);
            assert_eq!(
                parse_head(&data[..n], protocol),
                Ok(Parsed::Complete(head, n))
            );
        }
    }
});

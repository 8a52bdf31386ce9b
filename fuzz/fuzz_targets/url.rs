#![no_main]
use icap_check::fuzzing::parse_target as parse;
use libfuzzer_sys::fuzz_target;

// One argument (a URL) and four (HAProxy's form, split at NUL bytes): never
// panics, and only the four-argument form is HAProxy's.
fuzz_target!(|text: &str| {
    let env = |_: &str| Some("x".to_string());
    if let Ok(inv) = parse(&[text.to_string()], &env) {
        assert!(!inv.haproxy);
    }
    let mut four: Vec<String> = text.splitn(4, '\0').map(str::to_string).collect();
    four.resize(4, String::new());
    if let Ok(inv) = parse(&four, &env) {
        assert!(inv.haproxy);
    }
});

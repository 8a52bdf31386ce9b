#![no_main]
use icap_check::fuzzing::{common_name, fields, name_text, not_after, oid_text, validity};
use libfuzzer_sys::fuzz_target;

// The certificate fields the TLS code reads from what a server sent: never a
// panic; the fields lie within the input; notAfter reads the same alone as
// with notBefore.
fuzz_target!(|der: &[u8]| {
    let within = |part: &[u8]| {
        let (start, end) = (der.as_ptr() as usize, der.as_ptr() as usize + der.len());
        let p = part.as_ptr() as usize;
        part.is_empty() || (start <= p && p + part.len() <= end)
    };
    if let Some(f) = fields(der) {
        assert!(within(f.issuer) && within(f.validity) && within(f.subject));
        let _ = name_text(f.issuer);
        let _ = common_name(f.subject);
    }
    if let Some((_, after)) = validity(der) {
        assert_eq!(not_after(der), Some(after));
    }
    let _ = name_text(der);
    let _ = oid_text(der);
});

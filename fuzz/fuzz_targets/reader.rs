#![no_main]
use icap_check::fuzzing::{Progress, Response, ResponseReader};
use icap_check::fuzzing::Method;
use icap_check::fuzzing::Failure;
use libfuzzer_sys::fuzz_target;

/// Feeds `pieces` as they arrive, the server closing after the last one, the
/// way the probe does: unconsumed bytes stay at the front of the buffer.
/// Returns the outcome and the number of body bytes handed to the sink.
fn read(method: Method, flags: u8, pieces: &[&[u8]]) -> (Result<Response, Failure>, u64) {
    let mut reader = ResponseReader::new(method, flags & 1 != 0);
    reader.allow_continue(flags & 2 != 0);
    let mut sunk = 0u64;
    let mut buf: Vec<u8> = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let eof = i + 1 == pieces.len();
        buf.extend_from_slice(piece);
        loop {
            let (n, progress) = match reader.advance(&buf, eof, &mut |d| sunk += d.len() as u64) {
                Ok(step) => step,
                Err(e) => return (Err(e), sunk),
            };
            assert!(n <= buf.len());
            buf.drain(..n);
            match progress {
                Progress::Complete => {
                    let response = reader.into_response().expect("complete has a response");
                    assert_eq!(response.body_bytes.unwrap_or(0), sunk);
                    return (Ok(response), sunk);
                }
                Progress::Continue => assert!(n > 0),
                Progress::NeedMore if eof => panic!("NeedMore after the server closed"),
                Progress::NeedMore => break,
            }
        }
    }
    unreachable!("the last piece ends complete or in error")
}

// Never panics, never waits for more once the server has closed, and how the
// bytes are split into reads changes neither the response nor the exit code.
fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let (a, b) = input.split_at(usize::from(flags >> 2) * (input.len() + 1) / 64);
    for method in [Method::Options, Method::Respmod, Method::Reqmod] {
        let (whole, whole_sunk) = read(method, flags, &[input]);
        let (split, split_sunk) = read(method, flags, &[a, b]);
        match (&whole, &split) {
            (Ok(w), Ok(s)) => assert_eq!((w, whole_sunk), (s, split_sunk)),
            (Err(w), Err(s)) => assert_eq!(w.exit_status(), s.exit_status(), "{w} / {s}"),
            _ => panic!("whole: {whole:?}, split at {}: {split:?}", a.len()),
        }
    }
});

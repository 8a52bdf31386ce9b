#![no_main]
use icap_check::fuzzing::{ChunkError, Decoder};
use libfuzzer_sys::fuzz_target;

/// Decoded body, bytes consumed and whether the body ended, or the error.
fn decode(pieces: &[&[u8]]) -> (Vec<u8>, Result<(usize, bool), ChunkError>) {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    let mut used = 0;
    for piece in pieces {
        match decoder.decode(piece, &mut |d| out.extend_from_slice(d)) {
            Ok(n) => used += n,
            Err(e) => return (out, Err(e)),
        }
        if decoder.is_done() {
            break; // what follows the body is the caller's
        }
    }
    (out, Ok((used, decoder.is_done())))
}

// Where the input is split must not change what is decoded.
fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let at = usize::from(first) % (input.len() + 1);
    let (a, b) = input.split_at(at);
    assert_eq!(decode(&[input]), decode(&[a, b]));
});

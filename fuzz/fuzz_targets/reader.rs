#![no_main]
use icap_check::icap::reader::{Progress, ResponseReader};
use icap_check::icap::request::Method;
use libfuzzer_sys::fuzz_target;

// A response arriving in two pieces, then the server closes: the reader never
// panics, never asks for more at end of input, and ends complete or in error.
fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let at = usize::from(flags >> 2) * (input.len() + 1) / 64;
    for method in [Method::Options, Method::Respmod, Method::Reqmod] {
        let mut reader = ResponseReader::new(method, flags & 1 != 0);
        reader.allow_continue(flags & 2 != 0);
        let mut sunk = 0u64;
        let mut buf: Vec<u8> = Vec::new();
        let outcome = 'feed: {
            for (piece, eof) in [(&input[..at], false), (&input[at..], true)] {
                buf.extend_from_slice(piece);
                loop {
                    match reader.advance(&buf, eof, &mut |d| sunk += d.len() as u64) {
                        Err(e) => break 'feed Err(e),
                        Ok((n, progress)) => {
                            assert!(n <= buf.len());
                            buf.drain(..n);
                            match progress {
                                Progress::Complete => break 'feed Ok(()),
                                Progress::Continue => assert!(n > 0),
                                Progress::NeedMore if eof => panic!("NeedMore at end of input"),
                                Progress::NeedMore => break,
                            }
                        }
                    }
                }
            }
            unreachable!("the last piece ends complete or in error");
        };
        assert_eq!(outcome.is_ok(), reader.is_complete());
        if let Ok(()) = outcome {
            let response = reader
                .into_response()
                .expect("complete reader has a response");
            assert_eq!(response.body_bytes.unwrap_or(0), sunk);
        }
    }
});

//! Chunked transfer coding (RFC 9112 7.1), which every ICAP body uses.
//!
//! The decoder is a push state machine: it takes whatever bytes have arrived,
//! hands body data to a sink and says how much input it consumed, so a body
//! of any size passes through a fixed buffer. Every unbounded thing a server
//! could send (digits, extensions, trailers) is capped.

/// Ends a body that was sent whole.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// Ends a preview that holds the whole body: the server must not ask for more.
pub const LAST_CHUNK_IEOF: &[u8] = b"0; ieof\r\n\r\n";

/// Appends `data` as one chunk.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return; // an empty chunk would end the body
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Hex digits accepted in a chunk size: 15 fit in a u64 with room (as httparse).
const MAX_SIZE_DIGITS: u8 = 15;
const MAX_EXTENSION: usize = 4096;
const MAX_TRAILER: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    SizeTooLong,
    ExtensionTooLong,
    BadChunkEnd,
    TrailerTooLong,
}

impl ChunkError {
    pub fn message(self) -> &'static str {
        match self {
            ChunkError::BadSize => "invalid chunk size line",
            ChunkError::SizeTooLong => "chunk size has too many digits",
            ChunkError::ExtensionTooLong => "chunk extension longer than 4 KiB",
            ChunkError::BadChunkEnd => "chunk data not followed by CRLF",
            ChunkError::TrailerTooLong => "chunked trailer longer than 8 KiB",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size { value: u64, digits: u8 },
    Extension { len: usize, value: u64 },
    SizeLf { value: u64 },
    Data { left: u64 },
    DataCr,
    DataLf,
    Trailer { line: usize, total: usize },
    Done,
}

#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
        }
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// True once the last chunk and its trailer have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes what it can of `input`, handing body data to `sink`, and
    /// returns the number of bytes consumed. It stops consuming at the end of
    /// the body; bytes after it are the caller's.
    pub fn decode(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            if let State::Data { left } = self.state {
                // Data is handed over in one piece, not byte by byte.
                let available = input.len() - i;
                let take = usize::try_from(left).map_or(available, |l| l.min(available));
                sink(&input[i..i + take]);
                i += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { left }
                };
                continue;
            }
            let b = input[i];
            self.state = match self.state {
                State::Done => return Ok(i),
                // Handled above, before a byte is taken.
                State::Data { left } => State::Data { left },
                State::Size { value, digits } => match hex_value(b) {
                    Some(d) => {
                        if digits == MAX_SIZE_DIGITS {
                            return Err(ChunkError::SizeTooLong);
                        }
                        State::Size {
                            value: value << 4 | u64::from(d),
                            digits: digits + 1,
                        }
                    }
                    None if digits == 0 => return Err(ChunkError::BadSize),
                    None => match b {
                        b';' | b' ' | b'\t' => State::Extension { len: 0, value },
                        b'\r' => State::SizeLf { value },
                        b'\n' => after_size_line(value),
                        _ => return Err(ChunkError::BadSize),
                    },
                },
                State::Extension { len, value } => match b {
                    b'\r' => State::SizeLf { value },
                    b'\n' => after_size_line(value),
                    _ if len >= MAX_EXTENSION => return Err(ChunkError::ExtensionTooLong),
                    _ => State::Extension {
                        len: len + 1,
                        value,
                    },
                },
                State::SizeLf { value } => match b {
                    b'\n' => after_size_line(value),
                    _ => return Err(ChunkError::BadSize),
                },
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    b'\n' => State::Size {
                        value: 0,
                        digits: 0,
                    },
                    _ => return Err(ChunkError::BadChunkEnd),
                },
                State::DataLf => match b {
                    b'\n' => State::Size {
                        value: 0,
                        digits: 0,
                    },
                    _ => return Err(ChunkError::BadChunkEnd),
                },
                State::Trailer { line, total } => {
                    if total >= MAX_TRAILER {
                        return Err(ChunkError::TrailerTooLong);
                    }
                    match b {
                        b'\n' if line == 0 => State::Done,
                        b'\n' => State::Trailer {
                            line: 0,
                            total: total + 1,
                        },
                        b'\r' => State::Trailer {
                            line,
                            total: total + 1,
                        },
                        _ => State::Trailer {
                            line: line + 1,
                            total: total + 1,
                        },
                    }
                }
            };
            i += 1;
        }
        Ok(i)
    }
}

fn after_size_line(value: u64) -> State {
    if value == 0 {
        State::Trailer { line: 0, total: 0 }
    } else {
        State::Data { left: value }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let n = d.decode(input, &mut |b| out.extend_from_slice(b))?;
        Ok((out, n, d.is_done()))
    }

    #[test]
    fn round_trip() {
        let mut enc = Vec::new();
        encode_chunk(&mut enc, b"hello ");
        encode_chunk(&mut enc, b"");
        encode_chunk(&mut enc, &[b'x'; 300]);
        enc.extend_from_slice(LAST_CHUNK);
        assert!(enc.starts_with(b"6\r\nhello \r\n12c\r\n"));
        let (out, n, done) = decode_all(&enc).unwrap();
        assert_eq!(n, enc.len());
        assert!(done);
        assert_eq!(&out[..6], b"hello ");
        assert_eq!(out.len(), 306);
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let input =
            b"4;name=v\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut consumed = 0;
        for i in 0..input.len() {
            consumed += d
                .decode(&input[i..i + 1], &mut |b| out.extend_from_slice(b))
                .unwrap();
        }
        assert!(d.is_done());
        assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(&input[consumed..], b"NEXT");
        let (whole, n, _) = decode_all(input).unwrap();
        assert_eq!(whole, out);
        assert_eq!(n, consumed);
    }

    #[test]
    fn ieof_extension_and_bare_lf() {
        let (out, _, done) = decode_all(b"3\nabc\n0; ieof\n\n").unwrap();
        assert_eq!(out, b"abc");
        assert!(done);
    }

    #[test]
    fn every_prefix_is_not_done_and_not_an_error() {
        let input = b"a\r\n0123456789\r\n0\r\n\r\n";
        for n in 0..input.len() {
            let (_, used, done) = decode_all(&input[..n]).unwrap();
            assert_eq!(used, n);
            assert!(!done, "prefix {n}");
        }
    }

    #[test]
    fn invalid_bodies() {
        let cases: &[(&[u8], ChunkError)] = &[
            (b"zz\r\n", ChunkError::BadSize),
            (b"\r\n", ChunkError::BadSize),
            (b"-1\r\n", ChunkError::BadSize),
            (b"1\rX", ChunkError::BadSize),
            (b"1234567890abcdef0\r\n", ChunkError::SizeTooLong),
            (b"3\r\nabcX", ChunkError::BadChunkEnd),
            (b"3\r\nabc\rX", ChunkError::BadChunkEnd),
        ];
        for (input, expected) in cases {
            assert_eq!(decode_all(input).map(|_| ()), Err(*expected), "{input:?}");
        }
    }

    #[test]
    fn extensions_and_trailers_are_bounded() {
        let mut ext = b"1;".to_vec();
        ext.resize(MAX_EXTENSION + 10, b'e');
        assert_eq!(
            decode_all(&ext).map(|_| ()),
            Err(ChunkError::ExtensionTooLong)
        );
        let mut trailer = b"0\r\n".to_vec();
        trailer.resize(MAX_TRAILER + 10, b't');
        assert_eq!(
            decode_all(&trailer).map(|_| ()),
            Err(ChunkError::TrailerTooLong)
        );
    }

    #[test]
    fn huge_declared_size_needs_the_data() {
        let (out, n, done) = decode_all(b"fffffffffffffff\r\nabc").unwrap();
        assert_eq!((out.as_slice(), n, done), (&b"abc"[..], 20, false));
    }
}

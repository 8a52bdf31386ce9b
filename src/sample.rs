//! The body a RESPMOD or REQMOD check sends: the PDF compiled into the
//! binary (so a check inside HAProxy's chroot needs no file), or `--file`.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::verdict::Failure;

/// A small valid PDF, `fixtures/sample.pdf`.
pub const EMBEDDED_PDF: &[u8] = include_bytes!("../fixtures/sample.pdf");

/// Body bytes are read and sent in pieces of this size: memory does not
/// grow with the file.
pub const CHUNK: usize = 64 * 1024;

pub struct Sample {
    source: Box<dyn Read + Send>,
    /// Length as announced in the encapsulated Content-Length.
    pub len: u64,
    pub content_type: &'static str,
    /// What the report calls it: "embedded sample" or the path.
    pub name: String,
    /// Read from memory (the embedded PDF): nothing can block it.
    pub in_memory: bool,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
}

impl Sample {
    pub fn embedded() -> Sample {
        Sample::new(
            Box::new(EMBEDDED_PDF),
            EMBEDDED_PDF.len() as u64,
            "application/pdf",
            "embedded sample PDF".into(),
            true,
        )
    }

    /// Opens `--file`; any problem is a usage error, found before connecting.
    pub fn open(path: &Path) -> Result<Sample, Failure> {
        let unreadable = |e: io::Error| {
            Failure::Usage(format!(
                "cannot read --file {}: {}",
                path.display(),
                crate::connection::describe(&e)
            ))
        };
        // Asked before opening: opening a FIFO blocks until a writer comes,
        // and nothing bounds that yet (the deadline starts after settings).
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        if meta.is_dir() {
            return Err(Failure::Usage(format!(
                "--file {} is a directory",
                path.display()
            )));
        }
        // A FIFO or device has no length to announce in Content-Length, and
        // /dev/zero would be sent until the deadline.
        if !meta.is_file() {
            return Err(Failure::Usage(format!(
                "--file {} is not a regular file",
                path.display()
            )));
        }
        let file = File::open(path).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        let content_type = match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("pdf") => "application/pdf",
            _ => "application/octet-stream",
        };
        Ok(Sample::new(
            Box::new(file),
            meta.len(),
            content_type,
            path.display().to_string(),
            false,
        ))
    }

    fn new(
        source: Box<dyn Read + Send>,
        len: u64,
        content_type: &'static str,
        name: String,
        in_memory: bool,
    ) -> Sample {
        Sample {
            source,
            len,
            content_type,
            name,
            in_memory,
            buf: vec![0; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK)).max(1)]
                .into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The next at most `max` bytes, without consuming them; empty at the end.
    pub fn peek(&mut self, max: usize) -> Result<&[u8], Failure> {
        if self.start == self.end && !self.eof {
            self.start = 0;
            self.end = loop {
                match self.source.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(Failure::Usage(format!(
                            "cannot read {}: {}",
                            self.name,
                            crate::connection::describe(&e)
                        )))
                    }
                }
            };
            self.eof = self.end == 0;
        }
        let n = (self.end - self.start).min(max);
        Ok(&self.buf[self.start..self.start + n])
    }

    pub fn advance(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// True when every byte has been taken.
    pub fn at_end(&mut self) -> Result<bool, Failure> {
        Ok(self.peek(1)?.is_empty())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn embedded_is_a_pdf() {
        assert!(EMBEDDED_PDF.starts_with(b"%PDF-1."));
        assert!(EMBEDDED_PDF.ends_with(b"%%EOF\n"));
    }

    #[test]
    fn peek_and_advance_walk_the_whole_body() {
        let mut s = Sample::embedded();
        let mut got = Vec::new();
        loop {
            let piece = s.peek(100).unwrap().to_vec();
            if piece.is_empty() {
                break;
            }
            assert!(piece.len() <= 100);
            s.advance(piece.len());
            got.extend_from_slice(&piece);
        }
        assert_eq!(got, EMBEDDED_PDF);
        assert!(s.at_end().unwrap());
    }

    #[test]
    fn directories_and_missing_files_are_usage_errors() {
        let dir = std::env::temp_dir();
        match Sample::open(&dir) {
            Err(Failure::Usage(why)) => assert!(why.ends_with("is a directory"), "{why}"),
            _ => panic!("directory accepted"),
        }
        match Sample::open(Path::new("/dev/zero")) {
            Err(Failure::Usage(why)) => assert!(why.ends_with("is not a regular file"), "{why}"),
            _ => panic!("device accepted"),
        }
        match Sample::open(Path::new("/nonexistent/x.pdf")) {
            Err(Failure::Usage(why)) => assert!(why.contains("no such file"), "{why}"),
            _ => panic!("missing file accepted"),
        }
    }
}

//! The body a RESPMOD or REQMOD check sends: the PDF compiled into the
//! binary (so a check inside HAProxy's chroot needs no file), or `--file`.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::outcome::Failure;
use crate::text::{describe_io, escape};

/// A small valid PDF, `fixtures/sample.pdf`.
pub const EMBEDDED_PDF: &[u8] = include_bytes!("../../../fixtures/sample.pdf");

/// The largest `--file` the resident mode keeps in memory.
pub const MAX_IN_MEMORY: u64 = 16 << 20;

/// Body bytes are read and sent in pieces of this size: memory does not
/// grow with the file.
pub const CHUNK: usize = 64 * 1024;

/// The body a check sends, as configured: where its bytes come from.
pub struct Body {
    source: Source,
    /// Length as announced in the encapsulated Content-Length.
    pub len: u64,
    pub content_type: &'static str,
    /// What the report calls it: "embedded sample PDF" or the path.
    pub name: String,
}

enum Source {
    Memory(&'static [u8]),
    /// A file read once (the resident mode: no file I/O on a check's path).
    Shared(std::sync::Arc<[u8]>),
    /// The EICAR test file, rebuilt for each check (see [`super::canary`]).
    Canary,
    /// A file: opened when configured (so errors are found before anything
    /// is sent), opened again for each later check.
    File {
        path: PathBuf,
        opened: Option<File>,
    },
}

impl Body {
    pub fn embedded() -> Body {
        Body {
            source: Source::Memory(EMBEDDED_PDF),
            len: EMBEDDED_PDF.len() as u64,
            content_type: "application/pdf",
            name: "embedded sample PDF".into(),
        }
    }

    /// The detection canary's body: the EICAR test file.
    pub fn canary() -> Body {
        Body {
            source: Source::Canary,
            len: super::canary::LEN as u64,
            content_type: "application/octet-stream",
            name: "EICAR test file".into(),
        }
    }

    /// `--file`; any problem is a usage error, found before connecting.
    pub fn file(path: &Path) -> Result<Body, Failure> {
        let unreadable = |e: io::Error| {
            Failure::Usage(format!(
                "cannot read --file {}: {}",
                escape(&path.display().to_string()),
                describe_io(&e)
            ))
        };
        // Asked before opening: opening a FIFO blocks until a writer comes,
        // and nothing bounds that yet (the deadline starts after settings).
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        if meta.is_dir() {
            return Err(Failure::Usage(format!(
                "--file {} is a directory",
                escape(&path.display().to_string())
            )));
        }
        // A FIFO or device has no length to announce in Content-Length, and
        // /dev/zero would be sent until the deadline.
        if !meta.is_file() {
            return Err(Failure::Usage(format!(
                "--file {} is not a regular file",
                escape(&path.display().to_string())
            )));
        }
        let file = File::open(path).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        let content_type = match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("pdf") => "application/pdf",
            _ => "application/octet-stream",
        };
        Ok(Body {
            source: Source::File {
                path: path.to_path_buf(),
                opened: Some(file),
            },
            len: meta.len(),
            content_type,
            name: path.display().to_string(),
        })
    }

    /// Read from memory: nothing can block it.
    pub fn in_memory(&self) -> bool {
        matches!(
            self.source,
            Source::Memory(_) | Source::Shared(_) | Source::Canary
        )
    }

    /// The file read into memory now, once, for every check to come.
    pub fn into_memory(self) -> Result<Body, Failure> {
        let Source::File { path, .. } = &self.source else {
            return Ok(self);
        };
        let bytes = crate::file::read_bounded(path, "--file", MAX_IN_MEMORY)?;
        Ok(Body {
            len: bytes.len() as u64,
            source: Source::Shared(bytes.into()),
            ..self
        })
    }

    /// The bytes of one check, from the start.
    pub fn sample(&mut self) -> Result<Sample, Failure> {
        let reader: Box<dyn Read + Send> = match &mut self.source {
            Source::Memory(bytes) => Box::new(*bytes),
            Source::Shared(bytes) => Box::new(std::io::Cursor::new(bytes.clone())),
            Source::Canary => Box::new(io::Cursor::new(super::canary::eicar())),
            Source::File { path, opened } => match opened.take() {
                Some(file) => Box::new(file),
                None => Box::new(File::open(&*path).map_err(|e| {
                    Failure::Usage(format!(
                        "cannot read --file {}: {}",
                        self.name,
                        describe_io(&e)
                    ))
                })?),
            },
        };
        Ok(Sample {
            source: reader,
            name: self.name.clone(),
            buf: vec![0; CHUNK.min(usize::try_from(self.len).unwrap_or(CHUNK)).max(1)]
                .into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
        })
    }
}

/// The body of one check, read in pieces as it is sent.
pub struct Sample {
    source: Box<dyn Read + Send>,
    name: String,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
}

impl Sample {
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
                            describe_io(&e)
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
        let mut s = Body::embedded().sample().unwrap();
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
        match Body::file(&dir) {
            Err(Failure::Usage(why)) => assert!(why.ends_with("is a directory"), "{why}"),
            _ => panic!("directory accepted"),
        }
        match Body::file(Path::new("/dev/zero")) {
            Err(Failure::Usage(why)) => assert!(why.ends_with("is not a regular file"), "{why}"),
            _ => panic!("device accepted"),
        }
        match Body::file(Path::new("/nonexistent/x.pdf")) {
            Err(Failure::Usage(why)) => assert!(why.contains("no such file"), "{why}"),
            _ => panic!("missing file accepted"),
        }
    }
}

//! Reading the files a check is configured with (config file, haproxy.cfg,
//! CA bundle, client certificate and key): regular files only, bounded in
//! size. They are read before the deadline starts, so a FIFO (whose open
//! blocks until a writer comes) or a device such as /dev/zero must neither
//! hang nor bloat the check.

use std::io::Read;
use std::path::Path;

use crate::outcome::Failure;
use crate::text::{describe_io, escape};

/// Largest configuration file read.
pub const MAX_FILE: u64 = 4 << 20;

/// The bytes of `path`, at most `max`; `what` names it in messages
/// (`cannot read config /etc/x.conf: not a regular file`).
pub fn read_bounded(path: &Path, what: &str, max: u64) -> Result<Vec<u8>, Failure> {
    let fail = |why: String| {
        Failure::Usage(format!(
            "cannot read {what} {}: {why}",
            escape(&path.display().to_string())
        ))
    };
    // Asked before opening: opening a FIFO blocks.
    let meta = std::fs::metadata(path).map_err(|e| fail(describe_io(&e)))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let file = std::fs::File::open(path).map_err(|e| fail(describe_io(&e)))?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| fail(describe_io(&e)))?;
    if bytes.len() as u64 > max {
        return Err(fail(format!("larger than {}", size_text(max))));
    }
    Ok(bytes)
}

/// A text file: [`read_bounded`], UTF-8, a leading byte-order mark dropped
/// (editors on other systems write one).
pub fn read_text(path: &Path, what: &str, max: u64) -> Result<String, Failure> {
    let bytes = read_bounded(path, what, max)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Failure::Usage(format!(
            "cannot read {what} {}: not UTF-8 text",
            escape(&path.display().to_string())
        ))
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

fn size_text(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        for (path, why) in [
            ("/dev/zero", "not a regular file"),
            ("/nonexistent/x.conf", "no such file"),
            ("/", "not a regular file"),
        ] {
            match read_bounded(Path::new(path), "config", MAX_FILE) {
                Err(Failure::Usage(msg)) => assert!(msg.contains(why), "{msg}"),
                other => panic!("{path}: {other:?}"),
            }
        }
        let me = concat!(env!("CARGO_MANIFEST_DIR"), "/src/file.rs");
        match read_bounded(Path::new(me), "x", 100) {
            Err(Failure::Usage(msg)) => assert!(msg.ends_with("larger than 0 KiB"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert!(read_text(Path::new(me), "x", MAX_FILE).is_ok());
    }
}

//! Bad input from the user: each is exit 2 with exactly one clear line on
//! stderr and nothing on stdout, found before anything is connected to.
//!
//! The targets name 127.0.0.1 port 1, where nothing listens: a check that
//! got as far as connecting would exit 3, not 2.

use crate::common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TARGET: &str = "icap://127.0.0.1:1/echo";

/// Runs the check (killing it if it has not ended within 5 s: a usage error
/// must never wait for anything) and asserts exit 2 and one line on stderr
/// that contains `says`.
fn usage(args: &[&str], says: &str) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn icap-check");
    let until = Instant::now() + Duration::from_secs(5);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: still running after 5 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("output");
    let (stdout, stderr) = (stdout(&out), stderr(&out));
    let ctx = format!("{args:?}\nstdout: {stdout}\nstderr: {stderr}");
    assert_eq!(code(&out), 2, "{ctx}");
    assert!(stdout.is_empty(), "{ctx}");
    assert_eq!(stderr.lines().count(), 1, "one line: {ctx}");
    assert!(stderr.ends_with('\n'), "{ctx}");
    assert!(stderr.starts_with("icap-check: "), "{ctx}");
    assert!(stderr.contains(says), "expected {says:?}: {ctx}");
    assert!(!stderr.contains("panicked"), "{ctx}");
}

#[test]
fn bad_method() {
    usage(&["--method", "bogus", TARGET], "--method");
    usage(&["--method", "", TARGET], "--method");
    usage(&["--method"], "--method");
}

#[test]
fn bad_preview() {
    let r = ["--method", "respmod"];
    for bad in ["lots", "1.5", "4294967296", ""] {
        usage(&[&r[..], &["--preview", bad, TARGET]].concat(), "--preview");
    }
    // clap takes a leading '-' for an option: the line names the value only.
    usage(&[&r[..], &["--preview", "-1", TARGET]].concat(), "'-1'");
    // A preview means nothing to OPTIONS.
    usage(&["--preview", "10", TARGET], "--preview applies to");
}

#[test]
fn bad_timeout() {
    for (bad, says) in [
        ("soon", "invalid time 'soon'"),
        ("1.5s", "invalid time"),
        ("10x", "unknown unit 'x'"),
        // clap takes a leading '-' for an option: the line names the value only.
        ("-1", "unexpected argument '-1'"),
        ("", "invalid time"),
        ("99999999999", "number too large"),
    ] {
        usage(&["--timeout", bad, TARGET], says);
    }
    usage(
        &["--timeout", "0", TARGET],
        "--timeout must be greater than 0",
    );
    usage(
        &["--timeout", "0ms", TARGET],
        "--timeout must be greater than 0",
    );
}

#[test]
fn bad_require_method() {
    usage(&["--require-method", "bogus", TARGET], "--require-method");
    usage(&["--require-method", "options", TARGET], "--require-method");
}

#[test]
fn bad_service() {
    usage(&["--service", "", TARGET], "invalid service name");
    usage(&["--service", "a b", TARGET], "invalid service name 'a b'");
    usage(&["--service", "a\x07b", TARGET], "invalid service name");
}

#[test]
fn bad_verbose_value() {
    usage(&["--verbose=3", TARGET], "--verbose");
}

#[test]
fn missing_file() {
    usage(
        &[
            "--method",
            "respmod",
            "--file",
            "/nonexistent/x.pdf",
            TARGET,
        ],
        "cannot read --file /nonexistent/x.pdf: no such file or directory",
    );
    // A path through a regular file.
    usage(
        &["--method", "respmod", "--file", "/etc/hostname/x", TARGET],
        "cannot read --file /etc/hostname/x: not a directory",
    );
}

/// Root (which the tests may well run as) reads any file whatever its mode,
/// so `chmod 000` proves nothing. Sysctl files check their mode bits even
/// for root: /proc/sys/vm/drop_caches is write-only (0200) for everyone.
#[test]
fn unreadable_file() {
    let path = "/proc/sys/vm/drop_caches";
    assert!(std::path::Path::new(path).exists(), "{path} is missing");
    usage(
        &["--method", "respmod", "--file", path, TARGET],
        "cannot read --file /proc/sys/vm/drop_caches: permission denied",
    );
}

#[test]
fn directory_as_file() {
    let dir = TempDir::new("dir-as-file");
    let d = dir.path().to_str().expect("utf-8 temp path");
    usage(
        &["--method", "respmod", "--file", d, TARGET],
        &format!("--file {d} is a directory"),
    );
}

/// Opening a FIFO waits for a writer: the check must refuse it, not hang.
#[test]
fn fifo_or_device_as_file() {
    let dir = TempDir::new("fifo");
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let f = fifo.to_str().expect("utf-8 temp path");
    usage(
        &["--method", "respmod", "--file", f, TARGET],
        "is not a regular file",
    );
    usage(
        &["--method", "respmod", "--file", "/dev/zero", TARGET],
        "--file /dev/zero is not a regular file",
    );
    usage(
        &["--method", "respmod", "--output", f, TARGET],
        "it is a FIFO",
    );
}

#[test]
fn file_with_options() {
    usage(
        &["--file", "/etc/hostname", TARGET],
        "--file applies to --method respmod or reqmod",
    );
}

#[test]
fn unwritable_output() {
    usage(
        &[
            "--method",
            "respmod",
            "--output",
            "/nonexistent/out",
            TARGET,
        ],
        "cannot write --output /nonexistent/out: no such file or directory",
    );
    let dir = TempDir::new("output-dir");
    let d = dir.path().to_str().expect("utf-8 temp path");
    usage(
        &["--method", "respmod", "--output", d, TARGET],
        "is a directory",
    );
    usage(
        &["--output", "/tmp/x", TARGET],
        "--output applies to --method respmod or reqmod",
    );
}

/// A count that would need a terabyte for its results is refused, not tried.
#[test]
fn repeat_is_bounded() {
    usage(&["--repeat", "4294967295", TARGET], "--repeat");
    usage(&["--repeat", "1000001", TARGET], "1..=1000000");
    usage(&["--repeat", "0", TARGET], "--repeat");
}

#[test]
fn three_positionals() {
    usage(&["NOT_USED", "NOT_USED", "127.0.0.1"], "got 3 arguments");
    usage(
        &["a", "b", "c", "d", "e"],
        "expected one URL or HAProxy's four arguments, got 5 arguments",
    );
}

#[test]
fn port_70000() {
    usage(
        &[
            "--service",
            "echo",
            "NOT_USED",
            "NOT_USED",
            "127.0.0.1",
            "70000",
        ],
        "70000",
    );
    usage(&["icap://127.0.0.1:70000/echo"], "invalid port '70000'");
}

#[test]
fn empty_address() {
    usage(
        &["--service", "echo", "NOT_USED", "NOT_USED", "", "1344"],
        "empty server address",
    );
    usage(&["icap:///echo"], "no host");
    usage(&[""], "invalid target ''");
}

#[test]
fn not_a_url() {
    usage(&["ftp://127.0.0.1/echo"], "unsupported scheme 'ftp'");
    usage(&["tcp://127.0.0.1"], "tcp:// needs a port");
    usage(&["127.0.0.1:1344"], "expected icap://HOST[:PORT]/SERVICE");
}

#[test]
fn unknown_option() {
    usage(&["--bogus", TARGET], "--bogus");
    usage(&["-x", TARGET], "-x");
}

#[test]
fn no_target() {
    usage(&[], "no target");
    usage(&["--service", "echo"], "no target");
}

#[test]
fn no_service() {
    usage(&["icap://127.0.0.1:1"], "no ICAP service");
    usage(&["icap://127.0.0.1:1/"], "no ICAP service");
    usage(
        &["NOT_USED", "NOT_USED", "127.0.0.1", "1"],
        "no ICAP service",
    );
}

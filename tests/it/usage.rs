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

/// The TLS files (`--ca-file`, `--client-cert`, `--client-key`) naming a
/// FIFO (whose open waits for a writer) or /dev/zero (endless): exit 2
/// within 2 s, one line naming the option and "not a regular file", on the
/// command line, in HAProxy's form with `ssl` (HAPROXY_SERVER_SSL=1), and
/// from a config file's section. Each run is killed after 5 s, and runs
/// under a 128 MiB address-space limit (ample for a check that stops at a
/// usage error), so that reading /dev/zero whole fails fast instead of
/// eating the machine's memory: 1 GB each would be 9 GB resident while the
/// three tests' runs go at once.
fn tls_file_not_regular(option: &str) {
    const AS_LIMIT: u64 = 128 << 20;
    const PRLIMIT: &str = "/usr/bin/prlimit";
    assert!(
        std::path::Path::new(PRLIMIT).exists(),
        "{PRLIMIT} is missing: Debian's util-linux has it"
    );
    let pki = crate::common::tls::Pki::new();
    let good = pki.server("client", 30);
    let dir = TempDir::new("tls-fifo");
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let fifo = fifo.to_str().expect("utf-8 temp path").to_string();
    let (cert, key) = (
        good.cert.to_str().expect("utf-8 temp path"),
        good.key.to_str().expect("utf-8 temp path"),
    );
    // The other half of a client certificate is a good file.
    let other = match option {
        "client-cert" => Some(("client-key", key)),
        "client-key" => Some(("client-cert", cert)),
        _ => None,
    };
    // Each run: its name, its arguments, its environment.
    type Run<'a> = (String, Vec<String>, Vec<(&'a str, &'a str)>);
    let mut runs: Vec<Run> = Vec::new();
    for bad in [fifo.as_str(), "/dev/zero"] {
        let mut flags = vec![format!("--{option}"), bad.to_string()];
        let mut conf = format!("defaults\n    service echo\n    {option} {bad}\n");
        if let Some((name, path)) = other {
            flags.extend([format!("--{name}"), path.to_string()]);
            conf.push_str(&format!("    {name} {path}\n"));
        }
        let conf_path = dir.path().join(format!(
            "{}.conf",
            if bad == "/dev/zero" { "zero" } else { "fifo" }
        ));
        std::fs::write(&conf_path, conf).expect("write the config file");
        let conf_path = conf_path.to_str().expect("utf-8 temp path").to_string();
        let haproxy = ["NOT_USED", "NOT_USED", "127.0.0.1", "1"].map(String::from);
        let ssl = vec![("HAPROXY_SERVER_SSL", "1")];
        let mut url = flags.clone();
        url.push("icaps://127.0.0.1:1/echo".into());
        runs.push((format!("--{option} {bad}, URL"), url, vec![]));
        let mut form = flags.clone();
        form.extend(["--service".to_string(), "echo".to_string()]);
        form.extend(haproxy.clone());
        runs.push((
            format!("--{option} {bad}, HAProxy's form"),
            form,
            ssl.clone(),
        ));
        let mut from_conf = vec!["--config".to_string(), conf_path];
        from_conf.extend(haproxy);
        runs.push((format!("{option} {bad} in a config file"), from_conf, ssl));
    }
    let wrong: Vec<String> = std::thread::scope(|scope| {
        let running: Vec<_> = runs
            .iter()
            .map(|(name, args, env)| {
                scope.spawn(move || {
                    let mut cmd = Command::new(PRLIMIT);
                    cmd.args([&format!("--as={AS_LIMIT}"), "--", BIN])
                        .args(args)
                        .env_clear()
                        .envs(env.iter().copied());
                    let ran = run_killed_after(&mut cmd, Duration::from_secs(5));
                    eprintln!(
                        "measured: {name}: exit {:?}{} in {:.0} ms: {}",
                        ran.code,
                        if ran.killed { " (killed)" } else { "" },
                        ran.wall.as_secs_f64() * 1000.0,
                        ran.stderr.trim_end()
                    );
                    let line = ran.stderr.trim_end();
                    let ok = !ran.killed
                        && ran.code == Some(2)
                        && ran.wall < Duration::from_secs(2)
                        && ran.stdout.is_empty()
                        && ran.stderr.lines().count() == 1
                        && line.starts_with("icap-check: ")
                        && line.contains(option)
                        && line.contains("not a regular file")
                        && !ran.panicked();
                    (!ok).then(|| format!("{name}: {ran:?}"))
                })
            })
            .collect();
        running
            .into_iter()
            .filter_map(|r| r.join().expect("a run's thread panicked"))
            .collect()
    });
    assert!(
        wrong.is_empty(),
        "{} runs went wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn ca_file_not_a_regular_file() {
    tls_file_not_regular("ca-file");
}

#[test]
fn client_cert_not_a_regular_file() {
    tls_file_not_regular("client-cert");
}

#[test]
fn client_key_not_a_regular_file() {
    tls_file_not_regular("client-key");
}

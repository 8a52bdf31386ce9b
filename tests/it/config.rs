//! The config file: lookup order, symlinked names, precedence, and every
//! error path with its FILE:LINE message. `--explain` shows the effective
//! settings without a server, so most of these need none.

use crate::common::*;
use std::path::{Path, PathBuf};

/// A copy of the binary in its own directory, as an operator installs it.
fn install(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(BIN, &path).expect("copy binary");
    path
}

fn run_as(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    // A copy just written can be "busy" for a moment: a child forked by
    // another test thread meanwhile holds its write descriptor until it execs.
    for _ in 0..50 {
        match std::process::Command::new(bin)
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .output()
        {
            // ETXTBSY (ErrorKind::ExecutableFileBusy needs Rust 1.83).
            Err(e) if e.raw_os_error() == Some(26) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            result => return result.expect("run"),
        }
    }
    panic!("{} stayed busy", bin.display())
}

fn settings_line(out: &std::process::Output) -> String {
    stdout(out)
        .lines()
        .find(|l| l.starts_with("settings: "))
        .unwrap_or_default()
        .to_string()
}

const HAPROXY_ARGS: [&str; 4] = ["NOT_USED", "NOT_USED", "127.0.0.1", "1344"];

#[test]
fn lookup_order_flag_env_command_path() {
    let dir = TempDir::new("lookup");
    let bin = install(dir.path(), "icap-check");
    std::fs::write(
        dir.path().join("icap-check.conf"),
        "defaults\n service from-argv0\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("env.conf"), "defaults\n service from-env\n").unwrap();
    std::fs::write(
        dir.path().join("flag.conf"),
        "defaults\n service from-flag\n",
    )
    .unwrap();
    let env_conf = dir.path().join("env.conf");
    let env = [("ICAP_CHECK_CONFIG", env_conf.to_str().unwrap())];
    let flag = dir.path().join("flag.conf");

    let mut args = vec!["--explain"];
    args.extend(HAPROXY_ARGS);
    let out = run_as(&bin, &args, &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        settings_line(&out).contains("service=from-argv0"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("found by the command's path"),
        "{}",
        stdout(&out)
    );

    let out = run_as(&bin, &args, &env);
    assert!(
        settings_line(&out).contains("service=from-env"),
        "{}",
        stdout(&out)
    );

    let mut with_flag = vec!["--config", flag.to_str().unwrap()];
    with_flag.extend(&args);
    let out = run_as(&bin, &with_flag, &env);
    assert!(
        settings_line(&out).contains("service=from-flag"),
        "{}",
        stdout(&out)
    );
}

/// A symlink named icap-check-av reads icap-check-av.conf: one binary, one
/// file per kind of check, all through HAProxy's bare `external-check command`.
#[test]
fn a_symlink_reads_the_conf_of_its_own_name() {
    let dir = TempDir::new("symlink");
    let bin = install(dir.path(), "icap-check");
    let av = dir.path().join("icap-check-av");
    std::os::unix::fs::symlink(&bin, &av).unwrap();
    std::fs::write(
        dir.path().join("icap-check.conf"),
        "defaults\n service plain\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("icap-check-av.conf"),
        "defaults\n service av\n",
    )
    .unwrap();
    let mut args = vec!["--explain"];
    args.extend(HAPROXY_ARGS);
    assert!(settings_line(&run_as(&bin, &args, &[])).contains("service=plain"));
    let out = run_as(&av, &args, &[]);
    assert!(
        settings_line(&out).contains("service=av"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn server_over_backend_over_defaults_and_flags_over_all() {
    let dir = TempDir::new("precedence");
    let bin = install(dir.path(), "icap-check");
    std::fs::write(
        dir.path().join("icap-check.conf"),
        "defaults\n timeout 1500ms\n service base\n method options\n\
         backend pool\n service echo\n method respmod\n\
         server pool/s1\n timeout 5s\n",
    )
    .unwrap();
    let mut args = vec!["--explain"];
    args.extend(HAPROXY_ARGS);
    let haproxy = |server: &str| {
        vec![
            ("HAPROXY_PROXY_NAME", "pool".to_string()),
            ("HAPROXY_SERVER_NAME", server.to_string()),
        ]
    };
    let as_env = |v: &Vec<(&'static str, String)>| {
        v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };
    let e1 = as_env(&haproxy("s1"));
    let env1: Vec<(&str, &str)> = e1.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_as(&bin, &args, &env1);
    assert_eq!(
        settings_line(&out),
        "settings: service=echo method=respmod timeout=5s",
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out)
        .contains("sections: defaults (line 1), backend pool (line 5), server pool/s1 (line 8)"));
    assert!(
        stdout(&out).contains("probe:    RESPMOD icap://127.0.0.1:1344/echo"),
        "{}",
        stdout(&out)
    );

    let e2 = as_env(&haproxy("s2"));
    let env2: Vec<(&str, &str)> = e2.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_as(&bin, &args, &env2);
    assert_eq!(
        settings_line(&out),
        "settings: service=echo method=respmod timeout=1500ms"
    );

    // Flags typed in front of HAProxy's arguments win over every section.
    let mut typed = vec!["--timeout", "250ms", "--method", "reqmod"];
    typed.extend(&args);
    let out = run_as(&bin, &typed, &env1);
    assert_eq!(
        settings_line(&out),
        "settings: service=echo method=reqmod timeout=250ms"
    );

    // By hand, --backend/--server select the sections.
    let out = run_as(
        &bin,
        &[
            "--explain",
            "--backend",
            "pool",
            "--server",
            "s1",
            "icap://127.0.0.1/x",
        ],
        &[],
    );
    assert!(stdout(&out).contains("timeout 5s"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("icap://127.0.0.1:1344/echo"),
        "a section's service overrides the URL's"
    );
}

#[test]
fn every_error_names_file_and_line_and_nothing_is_probed() {
    let dir = TempDir::new("errors");
    // A listener that must never see a connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let cases = [
        ("defaults\n timeout soon\n", 2, "invalid value 'soon'"),
        ("defaults\n bogus 1\n", 2, "unknown key 'bogus'"),
        ("defaults\n service\n", 2, "'service' needs a value"),
        (
            "defaults\n check-config\n",
            2,
            "cannot be set in the config file",
        ),
        (
            "defaults\n method sideways\n",
            2,
            "invalid value 'sideways'",
        ),
        ("defaults\n preview lots\n", 2, "invalid preview"),
        ("service echo\n", 1, "outside a section"),
        ("backend\n", 1, "expected 'backend NAME'"),
        ("server s1\n", 1, "expected 'server BACKEND/SERVER'"),
        ("defaults\ndefaults\n", 2, "already defined at line 1"),
        (
            "defaults\n service \"echo\n",
            2,
            "unterminated double quote",
        ),
    ];
    for (i, (text, line, why)) in cases.iter().enumerate() {
        let conf = dir.path().join(format!("case{i}.conf"));
        std::fs::write(&conf, text).unwrap();
        let conf = conf.to_str().unwrap();
        let out = run(
            &[
                "--config",
                conf,
                "--service",
                "echo",
                "NOT_USED",
                "NOT_USED",
                "127.0.0.1",
                &port,
            ],
            &[],
        );
        assert_eq!(code(&out), 2, "{text:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("icap-check: {conf}:{line}: ")),
            "{text:?}: {err}"
        );
        assert!(err.contains(why), "{text:?}: {err}");
        let out = run(&["--config", conf, "--check-config"], &[]);
        assert_eq!(code(&out), 2, "{text:?}");
        assert!(
            stderr(&out).starts_with(&format!("{conf}:{line}: ")),
            "{}",
            stderr(&out)
        );
    }
    assert!(
        listener.accept().is_err(),
        "a check with a bad config connected"
    );
    let out = run(
        &[
            "--config",
            "/nonexistent/icap-check.conf",
            "icap://127.0.0.1/echo",
        ],
        &[],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("cannot read config /nonexistent/icap-check.conf"),
        "{}",
        stderr(&out)
    );
}

/// An error in a section this check does not use does not take it down
/// (a typo for one backend must not mark every pool DOWN); --check-config
/// still reports it.
#[test]
fn errors_in_other_sections_only_fail_check_config() {
    let dir = TempDir::new("blast");
    let conf = dir.path().join("c.conf");
    std::fs::write(
        &conf,
        "backend good\n service echo\nbackend bad\n timeout soon\n",
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let out = run(
        &[
            "--config",
            conf,
            "--explain",
            "--backend",
            "good",
            "icap://127.0.0.1",
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(
        &[
            "--config",
            conf,
            "--explain",
            "--backend",
            "bad",
            "icap://127.0.0.1/echo",
        ],
        &[],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains(":4: invalid value 'soon'"),
        "{}",
        stderr(&out)
    );
    let out = run(&["--config", conf, "--check-config"], &[]);
    assert_eq!(code(&out), 2);
}

#[test]
fn check_config_prints_each_sections_effective_settings() {
    let dir = TempDir::new("check");
    let conf = dir.path().join("c.conf");
    std::fs::write(
        &conf,
        "# pools\ndefaults\n timeout 1500ms\nbackend icap_pool\n service gw_rebuild\n method respmod\n\
         server icap_pool/icap01\n timeout 5s\n",
    )
    .unwrap();
    let out = run(&["--config", conf.to_str().unwrap(), "--check-config"], &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("{}: OK, 3 sections", conf.display()));
    assert_eq!(lines[1], "defaults (line 2): timeout=1500ms");
    assert_eq!(
        lines[2],
        "backend icap_pool (line 4): service=gw_rebuild method=respmod timeout=1500ms"
    );
    assert_eq!(
        lines[3],
        "server icap_pool/icap01 (line 7): service=gw_rebuild method=respmod timeout=5s"
    );
}

#[test]
fn no_config_file_is_fine() {
    let out = run(&["--explain", "icap://127.0.0.1/echo"], &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The binary is run by its path, so <path>.conf is looked for first, then the system file.
    let expected = format!("config:   none (looked for {BIN}.conf, /etc/icap-check.conf)");
    assert!(stdout(&out).starts_with(&expected), "{}", stdout(&out));
    assert!(stdout(&out).contains("nothing was sent"));
}

/// The whole point: HAProxy's bare arguments and a file beside the binary
/// make a real check against the real c-icap.
#[test]
fn a_real_check_configured_only_by_the_file() {
    let server = CIcap::start();
    let dir = TempDir::new("real");
    let bin = install(dir.path(), "icap-check");
    std::fs::write(
        dir.path().join("icap-check.conf"),
        "backend icap_pool\n service echo\n method respmod\nbackend broken\n service no-such-service\n",
    )
    .unwrap();
    let port = server.port.to_string();
    let args = ["NOT_USED", "NOT_USED", "127.0.0.1", port.as_str()];
    let out = run_as(
        &bin,
        &args,
        &[
            ("HAPROXY_PROXY_NAME", "icap_pool"),
            ("HAPROXY_SERVER_NAME", "s1"),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run_as(
        &bin,
        &args,
        &[
            ("HAPROXY_PROXY_NAME", "broken"),
            ("HAPROXY_SERVER_NAME", "s1"),
        ],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("broken/s1") && stderr(&out).contains("404"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn explain_writes_nothing() {
    let dir = TempDir::new("explain-output");
    let out_file = dir.path().join("adapted.pdf");
    std::fs::write(&out_file, b"keep me").unwrap();
    let out = run(
        &[
            "--explain",
            "--method",
            "respmod",
            "--output",
            out_file.to_str().unwrap(),
            "icap://127.0.0.1/echo",
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(settings_line(&out).contains("output="), "{}", stdout(&out));
    assert_eq!(std::fs::read(&out_file).unwrap(), b"keep me");
}

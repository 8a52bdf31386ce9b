//! SIGTERM, what HAProxy sends a check that outlives its `timeout check`:
//! while connecting and while transferring, the process ends at once and
//! leaves nothing behind (the check never spawns a process).

use crate::common::fault::{FaultServer, Step};
use crate::common::*;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the process may take to go after the signal.
const GONE_WITHIN: Duration = Duration::from_millis(500);

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: anything it left behind would carry its pid as pgid.
        .process_group(0)
        .spawn()
        .expect("spawn icap-check")
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < until, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The children of every thread of `pid`.
fn children(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(c) = std::fs::read_to_string(task.path().join("children")) {
                out.extend(c.split_whitespace().map(str::to_string));
            }
        }
    }
    out
}

/// Processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
            continue;
        };
        if after.split_whitespace().nth(2) == Some(pgid.to_string().as_str()) {
            out.push(stat);
        }
    }
    out
}

/// Sends SIGTERM, asserts the process is gone within [`GONE_WITHIN`], died
/// of that signal (it installs no handler, so nothing can delay it), and
/// left no process behind.
fn terminate_and_check(mut child: Child) {
    let pid = child.id();
    assert_eq!(child.try_wait().expect("try_wait"), None, "ended early");
    assert!(children(pid).is_empty(), "the check spawned processes");
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if signalled.elapsed() > GONE_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running {GONE_WITHIN:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    eprintln!("measured: gone {:?} after SIGTERM", signalled.elapsed());
    assert_eq!(status.signal(), Some(15), "{status:?}");
    let left = group_members(pid);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Whether a socket to `port` on loopback is in SYN_SENT (state 02).
fn syn_sent_to(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let remote = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[2] == remote && f[3] == "02"
    })
}

#[test]
fn sigterm_while_connecting() {
    // A listener that never accepts: once its accept queue is full, Linux
    // drops further SYNs and a connect waits (retransmitting) in SYN_SENT.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let mut queued = Vec::new();
    while let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
        queued.push(s);
        assert!(queued.len() < 10_000, "the accept queue never filled");
    }
    let url = format!("icap://127.0.0.1:{}/echo", addr.port());
    let child = spawn(&["--timeout", "20s", &url]);
    wait_until("the check is connecting", Duration::from_secs(5), || {
        syn_sent_to(addr.port())
    });
    terminate_and_check(child);
    drop(listener);
}

/// Uploading a 20 MB file to a server that stopped reading.
#[test]
fn sigterm_while_sending() {
    let dir = TempDir::new("sigterm");
    let file = dir.path().join("big.bin");
    std::fs::write(&file, vec![b'x'; 20_000_000]).expect("write 20 MB");
    let server = FaultServer::start(vec![Step::ReadHead, Step::Hold]);
    let url = server.url();
    let child = spawn(&[
        "--method",
        "respmod",
        "--preview",
        "off",
        "--timeout",
        "20s",
        "--file",
        file.to_str().expect("utf-8 temp path"),
        &url,
    ]);
    wait_until("the server accepted", Duration::from_secs(5), || {
        server.accepted() == 1
    });
    // Time for the socket buffers to fill and the upload to stall.
    std::thread::sleep(Duration::from_millis(200));
    terminate_and_check(child);
    let records = server.finish();
    assert!(
        records.len() == 1 && records[0].received.starts_with(b"RESPMOD icap://"),
        "{records:?}"
    );
}

/// Reading an answer that dribbles in; the server then sees the connection go.
#[test]
fn sigterm_while_receiving() {
    let server = FaultServer::start(vec![
        Step::ReadHead,
        Step::Dribble {
            bytes: b"ICAP/1.0 200 OK\r\nX-Slow: ".to_vec(),
            every: Duration::from_millis(20),
        },
    ]);
    let url = server.url();
    let child = spawn(&["--timeout", "20s", &url]);
    wait_until("the server accepted", Duration::from_secs(5), || {
        server.accepted() == 1
    });
    std::thread::sleep(Duration::from_millis(200));
    terminate_and_check(child);
    // The kernel closed the socket with the process: the next writes fail.
    std::thread::sleep(Duration::from_millis(200));
    let records = server.finish();
    assert!(
        records.len() == 1 && records[0].peer_gone,
        "the server did not see the connection end: {records:?}"
    );
}

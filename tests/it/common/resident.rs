//! icap-check's resident mode (`--agent-listen`) as a child process: its
//! stderr log in a file, its agent asked as HAProxy asks it, signals sent
//! with `kill` as an operator or systemd sends them, and what it holds
//! (RSS, descriptors, threads) read from /proc.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{terminate, TempDir, BIN};

pub struct Resident {
    pub child: Child,
    pub agent: SocketAddr,
    stderr: PathBuf,
    _dir: TempDir,
}

impl Resident {
    /// Starts `icap-check --agent-listen 127.0.0.1:PORT ARGS...` and waits
    /// until its agent listens (the `checking N targets` line, written once
    /// the port is bound). `port` is chosen by the caller, since the
    /// haproxy.cfg it reads names it too.
    pub fn start(port: u16, args: &[&str]) -> Resident {
        let dir = TempDir::new("resident");
        let stderr = dir.path().join("stderr");
        let file = std::fs::File::create(&stderr).expect("create the stderr file");
        let agent: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(BIN)
            .arg("--agent-listen")
            .arg(agent.to_string())
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn icap-check --agent-listen");
        let mut resident = Resident {
            child,
            agent,
            stderr,
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while !resident.log().contains("targets; agent on ") {
            if let Ok(Some(status)) = resident.child.try_wait() {
                panic!(
                    "icap-check {args:?} exited ({status}) at start:\n{}",
                    resident.log()
                );
            }
            assert!(
                Instant::now() < until,
                "the agent did not start listening:\n{}",
                resident.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        resident
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Polls the log until it contains `text`; returns the log.
    pub fn wait_log(&self, text: &str, within: Duration) -> String {
        let until = Instant::now() + within;
        loop {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            assert!(
                Instant::now() < until,
                "not within {within:?}: {text:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One agent check as HAProxy makes it: connect, send `line` at once,
    /// read the reply up to its line end (or EOF).
    pub fn ask(&self, line: &str) -> String {
        ask(self.agent, line)
    }

    /// Asks until the reply satisfies `ok`; returns it.
    pub fn wait_reply(&self, line: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + within;
        loop {
            let reply = self.ask(line);
            if ok(&reply) {
                return reply;
            }
            assert!(
                Instant::now() < until,
                "not within {within:?}: the reply to {line:?} is still {reply:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`HUP`, `TERM`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {}", self.pid());
    }

    /// VmRSS from /proc/PID/status, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Open descriptors (/proc/PID/fd).
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// Threads (/proc/PID/task).
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .expect("read /proc/PID/task")
            .count()
    }
}

impl Drop for Resident {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// One agent check against `agent`: see [`Resident::ask`].
pub fn ask(agent: SocketAddr, line: &str) -> String {
    let mut s =
        TcpStream::connect_timeout(&agent, Duration::from_secs(2)).expect("connect to the agent");
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    s.write_all(line.as_bytes())
        .expect("send the agent-send line");
    let mut reply = Vec::new();
    let mut byte = [0u8; 256];
    while !reply.contains(&b'\n') {
        match s.read(&mut byte) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&byte[..n]),
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

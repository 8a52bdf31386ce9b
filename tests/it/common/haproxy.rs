//! Debian's HAProxy in the foreground (`-db`), running a copy of icap-check
//! as its external check, observed through its runtime API (`show stat` on
//! a UNIX socket) and its stderr log.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{terminate, TempDir};

pub const HAPROXY: &str = "/usr/sbin/haproxy";

/// How often HAProxy checks, and how many results flip a server.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub inter: Duration,
    pub fall: u32,
    pub rise: u32,
}

/// `inter 1s fall 2 rise 2`, with the check's own timeout (in its config
/// file) well below `inter`.
pub const TIMING: Timing = Timing {
    inter: Duration::from_millis(1000),
    fall: 2,
    rise: 2,
};

/// The check's deadline in the test configs, below TIMING.inter.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(600);

/// On a busy 2-core machine, HAProxy's scheduling, fork and exec add delay:
/// every bound the tests assert gets this much on top.
pub const SLACK: Duration = Duration::from_secs(5);

pub struct Backend {
    pub name: &'static str,
    /// (server name, address as haproxy.cfg writes it: `127.0.0.1:1344`,
    /// `[::1]:1344`, `unix@/path`)
    pub servers: Vec<(String, String)>,
}

pub struct Setup<'a> {
    /// The icap-check binary to copy next to its config file.
    pub binary: &'a Path,
    /// The text of `icap-check.conf`, found as `<command>.conf`.
    pub check_conf: &'a str,
    pub backends: Vec<Backend>,
    /// Run HAProxy in a `chroot` holding only the binary and its config.
    pub chroot: bool,
    /// HAProxy runs a one-line `#!/bin/sh` wrapper that execs the check
    /// without its arguments (how wrapper scripts lose them).
    pub wrapper: bool,
}

pub struct HAProxy {
    child: Option<Child>,
    /// Removed when HAProxy is dropped.
    _dir: TempDir,
    /// The copy HAProxy runs, as seen from outside any chroot.
    pub check_bin: PathBuf,
    sock: PathBuf,
    log: PathBuf,
}

/// One row of `show stat`, by column name.
pub type Row = HashMap<String, String>;

impl HAProxy {
    pub fn start(setup: Setup) -> HAProxy {
        assert!(
            Path::new(HAPROXY).exists(),
            "{HAPROXY} is missing: run tests/run, which installs Debian's haproxy"
        );
        let dir = TempDir::new("haproxy");
        // The jail (or plain directory) holding the check and its .conf.
        let jail = dir.path().join("jail");
        std::fs::create_dir_all(&jail).expect("create jail");
        let check_bin = jail.join("icap-check");
        std::fs::copy(setup.binary, &check_bin).expect("copy icap-check");
        std::fs::write(jail.join("icap-check.conf"), setup.check_conf).expect("write .conf");
        let command = if setup.chroot {
            PathBuf::from("/icap-check")
        } else if setup.wrapper {
            use std::os::unix::fs::PermissionsExt;
            let script = jail.join("check.sh");
            std::fs::write(
                &script,
                format!("#!/bin/sh\nexec {}\n", check_bin.display()),
            )
            .expect("write the wrapper");
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                .expect("make the wrapper executable");
            script
        } else {
            check_bin.clone()
        };

        let sock = dir.path().join("haproxy.sock");
        let mut cfg = format!(
            "global\n    external-check\n    insecure-fork-wanted\n    \
             stats socket {} level admin\n",
            sock.display()
        );
        if setup.chroot {
            cfg += &format!("    chroot {}\n", jail.display());
        }
        cfg += "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    \
                timeout server 5s\n";
        let t = TIMING;
        for backend in &setup.backends {
            cfg += &format!(
                "backend {}\n    option external-check\n    external-check command {}\n    \
                 default-server check inter {}ms fall {} rise {}\n",
                backend.name,
                command.display(),
                t.inter.as_millis(),
                t.fall,
                t.rise
            );
            for (name, addr) in &backend.servers {
                cfg += &format!("    server {name} {addr}\n");
            }
        }
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg_path, &cfg).expect("write haproxy.cfg");

        let log = dir.path().join("haproxy.log");
        let out = std::fs::File::create(&log).expect("create haproxy.log");
        let err = out.try_clone().expect("dup log");
        let child = Command::new(HAPROXY)
            .arg("-f")
            .arg(&cfg_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start haproxy");
        let mut haproxy = HAProxy {
            child: Some(child),
            _dir: dir,
            check_bin,
            sock,
            log,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&haproxy.sock).is_err() {
            if let Some(c) = haproxy.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "haproxy exited ({status}) at start:\n{}\n{cfg}",
                        haproxy.log()
                    );
                }
            }
            assert!(
                Instant::now() < until,
                "haproxy's runtime API did not come up:\n{}",
                haproxy.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        haproxy
    }

    /// HAProxy's stdout and stderr so far, with the checks' own stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends one runtime API command, returns the whole answer.
    pub fn api(&self, command: &str) -> String {
        let mut s = UnixStream::connect(&self.sock).expect("connect to the runtime API");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        s.write_all(format!("{command}\n").as_bytes())
            .expect("write to the runtime API");
        let mut answer = String::new();
        s.read_to_string(&mut answer)
            .expect("read the runtime API's answer");
        answer
    }

    /// `show stat`, servers only, keyed by "backend/server", its CSV read
    /// with quotes: an agent's description (`last_agt`) is quoted when it
    /// holds a quote or a comma (`via agent : up (OPTIONS 200 ISTag="...")`).
    pub fn servers(&self) -> HashMap<String, Row> {
        let csv = self.api("show stat");
        let mut lines = csv.lines();
        let header: Vec<String> = lines
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .map(csv_fields)
            .unwrap_or_else(|| panic!("show stat answered no header: {csv:?}"));
        let mut servers = HashMap::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let row: Row = header.iter().cloned().zip(csv_fields(line)).collect();
            if row["svname"] != "FRONTEND" && row["svname"] != "BACKEND" {
                servers.insert(format!("{}/{}", row["pxname"], row["svname"]), row);
            }
        }
        servers
    }

    /// Polls `show stat` until `ok` holds, for at most `within`; returns how
    /// long it took, or panics with the last states and HAProxy's log.
    pub fn wait_for(
        &self,
        what: &str,
        within: Duration,
        ok: impl Fn(&HashMap<String, Row>) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let servers = self.servers();
            if ok(&servers) {
                return start.elapsed();
            }
            if start.elapsed() > within {
                panic!(
                    "not within {within:?}: {what}\nservers: {}\nhaproxy log:\n{}",
                    summary(&servers),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops HAProxy (SIGTERM), then asserts that no icap-check it started
    /// is still running once the check's own deadline has passed; returns
    /// the whole log.
    pub fn stop(mut self) -> String {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
        let until = Instant::now() + CHECK_TIMEOUT + SLACK;
        loop {
            let left = processes_running(&self.check_bin);
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < until,
                "check processes {left:?} still run after haproxy stopped"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.log()
    }
}

impl Drop for HAProxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }
}

/// Healthy as far as HAProxy knows: UP, and the last check was an external
/// check that passed (not merely the initial state HAProxy starts in).
pub fn is_up(row: &Row) -> bool {
    row["status"] == "UP" && check_status(row) == "PROCOK"
}

/// The last check's result; `show stat` prefixes it with `* ` while the next
/// check runs.
pub fn check_status(row: &Row) -> &str {
    let status = row["check_status"].as_str();
    status.strip_prefix("* ").unwrap_or(status)
}

pub fn is_down(row: &Row) -> bool {
    row["status"] == "DOWN"
}

/// "backend/server status check_status check_code" for each server.
pub fn summary(servers: &HashMap<String, Row>) -> String {
    let mut names: Vec<&String> = servers.keys().collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            let r = &servers[*n];
            let f = |k: &str| r.get(k).cloned().unwrap_or_default();
            format!(
                "{n} {} {} {} agent {} {:?}",
                f("status"),
                f("check_status"),
                f("check_code"),
                f("agent_status"),
                f("last_agt")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Pids of the processes whose executable is `exe`.
pub fn processes_running(exe: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p.as_path() == exe)
        })
        .collect()
}

/// HAProxy running `body` (backends and the like, `defaults` included
/// before it), with two runtime API sockets: the helper's own at `level
/// admin` (for [`HAProxy::api`] and a test's setup) and one at `level
/// user`, the one icap-check is given. No external check.
pub struct Runtime {
    pub haproxy: HAProxy,
    /// `stats socket PATH level user`.
    pub user_sock: PathBuf,
    /// `stats socket ipv4@127.0.0.1:PORT level user`.
    pub user_tcp: String,
    /// The haproxy.cfg HAProxy runs, for `--haproxy-cfg`.
    pub cfg: PathBuf,
}

impl Runtime {
    pub fn start(body: &str) -> Runtime {
        assert!(
            Path::new(HAPROXY).exists(),
            "{HAPROXY} is missing: run tests/run, which installs Debian's haproxy"
        );
        let dir = TempDir::new("haproxy-rt");
        let sock = dir.path().join("admin.sock");
        let user_sock = dir.path().join("user.sock");
        let user_tcp = format!("127.0.0.1:{}", super::free_port());
        let cfg = format!(
            "global\n    stats socket {} mode 600 level admin\n    \
             stats socket {} mode 600 level user\n    stats socket ipv4@{user_tcp} level user\n\
             defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    \
             timeout server 5s\n{body}",
            sock.display(),
            user_sock.display(),
        );
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg_path, &cfg).expect("write haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        let out = std::fs::File::create(&log).expect("create haproxy.log");
        let err = out.try_clone().expect("dup log");
        let child = Command::new(HAPROXY)
            .arg("-f")
            .arg(&cfg_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start haproxy");
        let haproxy = HAProxy {
            child: Some(child),
            _dir: dir,
            // No external check: nothing of ours for stop() to wait for.
            check_bin: PathBuf::from("/nonexistent/icap-check"),
            sock,
            log,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&user_sock).is_err()
            || std::net::TcpStream::connect(&user_tcp).is_err()
        {
            assert!(
                Instant::now() < until,
                "haproxy's runtime API did not come up:\n{}\n{cfg}",
                haproxy.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Runtime {
            haproxy,
            user_sock,
            user_tcp,
            cfg: cfg_path,
        }
    }

    /// The `level user` socket's path, as `--haproxy-socket` takes it.
    pub fn user_path(&self) -> String {
        self.user_sock.to_string_lossy().into_owned()
    }

    /// A command on the admin socket; panics unless HAProxy answers `expect`.
    pub fn admin(&self, command: &str, expect: &str) {
        let answer = self.haproxy.api(command);
        assert!(
            answer.contains(expect),
            "'{command}' answered {answer:?}, not {expect:?}\n{}",
            self.haproxy.log()
        );
    }
}

/// Agent checks: HAProxy runs a haproxy.cfg the test wrote (the same file
/// icap-check's resident mode reads with `--haproxy-cfg`, so the names
/// match), with no external check.
impl HAProxy {
    /// Starts HAProxy on `cfg` as it is. The runtime API socket is added by
    /// a second `-f` file of its own (HAProxy merges `global` sections), so
    /// `cfg` needs none, and two instances can run one `cfg`. `check_bin`
    /// names nothing: [`HAProxy::stop`] finds no check process left.
    pub fn start_cfg(cfg: &Path) -> HAProxy {
        assert!(
            Path::new(HAPROXY).exists(),
            "{HAPROXY} is missing: run tests/run, which installs Debian's haproxy"
        );
        let dir = TempDir::new("haproxy-agent");
        let sock = dir.path().join("haproxy.sock");
        let api_cfg = dir.path().join("api.cfg");
        std::fs::write(
            &api_cfg,
            format!("global\n    stats socket {} level admin\n", sock.display()),
        )
        .expect("write api.cfg");
        let log = dir.path().join("haproxy.log");
        let out = std::fs::File::create(&log).expect("create haproxy.log");
        let err = out.try_clone().expect("dup log");
        let child = Command::new(HAPROXY)
            .arg("-f")
            .arg(cfg)
            .arg("-f")
            .arg(&api_cfg)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start haproxy");
        let mut haproxy = HAProxy {
            child: Some(child),
            check_bin: dir.path().join("no-external-check"),
            _dir: dir,
            sock,
            log,
        };
        haproxy.wait_for_api(cfg);
        haproxy
    }

    /// Waits until the runtime API answers; panics with the log and `cfg`
    /// when HAProxy exits or does not come up.
    fn wait_for_api(&mut self, cfg: &Path) {
        let until = Instant::now() + Duration::from_secs(10);
        let cfg_text = || std::fs::read_to_string(cfg).unwrap_or_default();
        while UnixStream::connect(&self.sock).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "haproxy exited ({status}) at start:\n{}\n{}",
                    self.log(),
                    cfg_text()
                );
            }
            assert!(
                Instant::now() < until,
                "haproxy's runtime API did not come up:\n{}\n{}",
                self.log(),
                cfg_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The fields of one CSV line as HAProxy writes them: a field holding a
/// comma or a quote is quoted, its quotes doubled.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("one field at least");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => field.push(c),
        }
    }
    fields
}

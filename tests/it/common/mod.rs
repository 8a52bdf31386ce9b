//! Shared by the integration tests: the built binary, and real servers
//! (Debian's c-icap) started on a free loopback port and stopped on drop.
//! A missing server is a failure, never a skip: `tests/run` installs them.

pub mod clamav;
pub mod dribble;
pub mod fault;
pub mod haproxy;
pub mod resident;
pub mod tls;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_icap-check");

/// Runs the binary with a cleared environment, as HAProxy does, plus `env`.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run icap-check")
}

/// What one run of the binary did, for checks that may hang: see [`run_killed_after`].
#[derive(Debug)]
pub struct Ran {
    /// `None` when killed by a signal (ours, or an abort).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// From spawn until the process was reaped.
    pub wall: Duration,
    /// Still running after the time given, and killed.
    pub killed: bool,
}

impl Ran {
    /// A panic's text, or an abort's (an allocation failure), anywhere in the output.
    pub fn panicked(&self) -> bool {
        let says = |t: &str| t.contains("panicked") || t.contains("memory allocation of");
        self.code == Some(101) || says(&self.stdout) || says(&self.stderr)
    }
}

/// Runs `cmd` (its stdin null, stdout and stderr captured), killing it if
/// it has not ended within `kill_after`: a binary that hangs fails its test
/// instead of hanging the suite. The pipes are drained on threads, so a
/// large report cannot stall the child while it is polled.
pub fn run_killed_after(cmd: &mut Command, kill_after: Duration) -> Ran {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn icap-check");
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > kill_after {
            killed = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let wall = started.elapsed();
    Ran {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        wall,
        killed,
    }
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A port nobody listens on right now (bound then released).
/// Never the same port twice in one test binary: parallel tests starting
/// servers could otherwise be handed one port, and one would check the
/// other's server.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "icap-check-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn wait_for_port(addr: SocketAddr, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Sends SIGTERM (what HAProxy and systemd send) and waits, then SIGKILL.
/// Does nothing to a child already reaped: its pid may be another's now.
pub fn terminate(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Debian's python3 (tests/run installs it when missing): its `listen(0)`
/// gives a UNIX socket a backlog that a test can fill.
pub const PYTHON: &str = "/usr/bin/python3";

/// A UNIX-socket listener whose backlog is full: a `connect` to it blocks,
/// and no socket timeout can bound that. Stopped on drop.
pub struct FullBacklog {
    pub path: PathBuf,
    listener: Child,
    _dir: TempDir,
}

impl FullBacklog {
    pub fn start() -> FullBacklog {
        let dir = TempDir::new("backlog");
        let path = dir.path().join("icap.sock");
        // std's UnixListener listens with SOMAXCONN; Python's listen(0) keeps
        // one pending connection at most.
        let mut listener = Command::new(PYTHON)
            .arg("-c")
            .arg(
                "import socket, sys, time\n\
                 s = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen(0)\n\
                 print('ready', flush=True)\ntime.sleep(30)\n",
            )
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3's UNIX listener");
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(listener.stdout.take().expect("listener's stdout")),
            &mut ready,
        )
        .expect("listener says ready");
        assert_eq!(ready.trim(), "ready");
        // Fill the backlog from a thread that may block forever (left behind).
        let (tx, rx) = std::sync::mpsc::channel();
        let fill = path.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            loop {
                // Refused once the listener is gone at the end of the test.
                let Ok(s) = std::os::unix::net::UnixStream::connect(&fill) else {
                    return;
                };
                held.push(s);
                let _ = tx.send(held.len());
            }
        });
        // Full when connects stop completing.
        let mut filled = 0;
        while let Ok(n) = rx.recv_timeout(Duration::from_millis(300)) {
            filled = n;
        }
        assert!(filled >= 1, "no connection reached the listener");
        FullBacklog {
            path,
            listener,
            _dir: dir,
        }
    }

    pub fn path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

impl Drop for FullBacklog {
    fn drop(&mut self) {
        terminate(&mut self.listener);
    }
}

pub const C_ICAP: &str = "/usr/bin/c-icap";
pub const C_ICAP_MODULES: &str = "/usr/lib/x86_64-linux-gnu/c_icap";

/// Debian's c-icap server with its `echo` service, on 127.0.0.1 and a free port.
pub struct CIcap {
    pub port: u16,
    child: Child,
    pub dir: TempDir,
}

impl CIcap {
    pub fn start() -> CIcap {
        assert!(
            Path::new(C_ICAP).exists(),
            "{C_ICAP} is missing: run tests/run, which installs Debian's c-icap"
        );
        // A port found free may be taken before c-icap binds it: try again.
        for _ in 0..5 {
            let dir = TempDir::new("c-icap");
            let port = free_port();
            let d = dir.path().display();
            let conf = format!(
                "PidFile {d}/c-icap.pid\nCommandsSocket {d}/c-icap.ctl\nPort 127.0.0.1:{port}\n\
                 StartServers 1\nMaxServers 2\nMinSpareThreads 2\nMaxSpareThreads 8\nThreadsPerChild 8\n\
                 ModulesDir {C_ICAP_MODULES}\nServicesDir {C_ICAP_MODULES}\nTmpDir {d}\n\
                 ServerLog {d}/server.log\nAccessLog {d}/access.log\nDebugLevel 0\n\
                 Service echo srv_echo.so\n"
            );
            let conf_path = dir.path().join("c-icap.conf");
            std::fs::write(&conf_path, conf).expect("write c-icap.conf");
            let mut child = Command::new(C_ICAP)
                .args(["-N", "-f"])
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start c-icap");
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            if wait_for_port(addr, Duration::from_secs(10)) {
                return CIcap { port, child, dir };
            }
            terminate(&mut child);
        }
        panic!("c-icap did not start listening");
    }

    pub fn url(&self, service: &str) -> String {
        format!("icap://127.0.0.1:{}/{service}", self.port)
    }

    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    /// Starts the server again, stopped or not, on the same port and config.
    pub fn restart(&mut self) {
        self.stop();
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        for _ in 0..5 {
            self.child = Command::new(C_ICAP)
                .args(["-N", "-f"])
                .arg(self.dir.path().join("c-icap.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start c-icap");
            if wait_for_port(addr, Duration::from_secs(10)) {
                return;
            }
            terminate(&mut self.child);
        }
        panic!("c-icap did not listen again on port {}", self.port);
    }

    /// c-icap's access log, one line per request.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for CIcap {
    fn drop(&mut self) {
        self.stop();
    }
}

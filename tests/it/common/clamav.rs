//! Debian's c-icap with its antivirus service (`virus_scan`, ClamAV through
//! `clamav_mod`) and its `echo` service, on 127.0.0.1 and a free port, with
//! a signature database the test writes itself: the machine has no
//! internet, and no freshclam data.
//!
//! clamav_mod has no database-directory directive: it loads libclamav's
//! compiled-in /var/lib/clamav. So c-icap runs in a mount namespace of its
//! own (`unshare -m`) where the test's directory is bind-mounted over
//! /var/lib/clamav; the host's directory is not touched. That needs root,
//! as the tests have here and in CI: anything else is a failure that says
//! so, never a skip.
//!
//! The EICAR file itself is never written: the database holds its MD5,
//! computed from the file rebuilt in memory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, terminate, TempDir, C_ICAP, C_ICAP_MODULES};

/// The name the database gives the file; ClamAV reports it with
/// `.UNOFFICIAL` appended (a signature outside its official databases).
pub const SIGNATURE: &str = "Eicar-Canary.MD5";
pub const THREAT: &str = "Eicar-Canary.MD5.UNOFFICIAL";

/// What the antivirus knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signatures {
    /// One `.hdb` line for the EICAR file.
    Eicar,
    /// None at all: c-icap starts, ClamAV fails to load, and the service
    /// lets everything through (204), which is what the canary is for.
    Empty,
}

pub struct AntivirusICap {
    pub port: u16,
    child: Child,
    /// Removed when the server is dropped.
    _dir: TempDir,
}

fn need(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: run tests/run, which installs Debian's {package}"
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The `.hdb` line of the EICAR file: `MD5:SIZE:NAME`, the MD5 from
/// md5sum fed the file from memory.
pub fn hdb_line() -> String {
    let file = icap_check::canary::eicar();
    let mut md5sum = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run md5sum (coreutils)");
    md5sum
        .stdin
        .take()
        .expect("md5sum's stdin")
        .write_all(&file)
        .expect("feed md5sum");
    let out = md5sum.wait_with_output().expect("md5sum's output");
    let sum = String::from_utf8_lossy(&out.stdout);
    let md5 = sum.split_whitespace().next().expect("an MD5");
    assert_eq!(
        md5, "44d88612fea8a8f36de82e1278abb02f",
        "not the EICAR file"
    );
    format!("{md5}:{}:{SIGNATURE}\n", file.len())
}

impl AntivirusICap {
    pub fn start(signatures: Signatures) -> AntivirusICap {
        need(C_ICAP, "c-icap");
        need(
            &format!("{C_ICAP_MODULES}/virus_scan.so"),
            "libc-icap-mod-virus-scan",
        );
        need(
            &format!("{C_ICAP_MODULES}/clamav_mod.so"),
            "libc-icap-mod-virus-scan",
        );
        need("/var/lib/clamav", "clamav-base (with clamav)");
        need("/usr/bin/unshare", "util-linux");
        assert!(
            is_root(),
            "the antivirus tests need root: c-icap's ClamAV module reads only /var/lib/clamav, \
             and the test's signatures are bind-mounted over it in a mount namespace (unshare -m)"
        );
        for _ in 0..5 {
            let dir = TempDir::new("c-icap-av");
            let d = dir.path().display().to_string();
            for sub in ["db", "tmp", "clamtmp"] {
                std::fs::create_dir_all(dir.path().join(sub)).expect("create dirs");
            }
            if signatures == Signatures::Eicar {
                std::fs::write(dir.path().join("db/canary.hdb"), hdb_line()).expect("write .hdb");
            }
            let port = free_port();
            let conf = format!(
                "PidFile {d}/c-icap.pid\nCommandsSocket {d}/c-icap.ctl\nPort 127.0.0.1:{port}\n\
                 StartServers 1\nMaxServers 1\nMinSpareThreads 2\nMaxSpareThreads 8\nThreadsPerChild 8\n\
                 ModulesDir {C_ICAP_MODULES}\nServicesDir {C_ICAP_MODULES}\nTmpDir {d}/tmp\n\
                 ServerLog {d}/server.log\nAccessLog {d}/access.log\nDebugLevel 1\n\
                 Service echo srv_echo.so\n\
                 Service virus_scan virus_scan.so\n\
                 ServiceAlias avscan virus_scan?allow204=on&sizelimit=off&mode=simple\n\
                 virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE GIF JPEG MSOFFICE\n\
                 virus_scan.SendPercentData 0\n\
                 virus_scan.StartSendPercentDataAfter 2M\n\
                 virus_scan.Allow204Responces on\n\
                 virus_scan.PassOnError off\n\
                 virus_scan.MaxObjectSize 5M\n\
                 virus_scan.DefaultEngine clamav\n\
                 Module common clamav_mod.so\n\
                 clamav_mod.TmpDir {d}/clamtmp\n"
            );
            let conf_path = dir.path().join("c-icap.conf");
            std::fs::write(&conf_path, conf).expect("write c-icap.conf");
            // exec all the way down: the child's pid is c-icap's, which
            // stops its own children when terminated.
            let script = format!(
                "mount --bind '{d}/db' /var/lib/clamav && exec {C_ICAP} -N -f '{}'",
                conf_path.display()
            );
            let mut child = Command::new("unshare")
                .args(["-m", "--propagation", "private", "sh", "-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(dir.path().join("stderr.log"))
                        .map(Stdio::from)
                        .unwrap_or_else(|_| Stdio::null()),
                )
                .spawn()
                .expect("start c-icap under unshare");
            if answers_options(port, &mut child, Duration::from_secs(30)) {
                return AntivirusICap {
                    port,
                    child,
                    _dir: dir,
                };
            }
            terminate(&mut child);
            let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            eprintln!("c-icap (antivirus) did not answer on port {port}; its stderr:\n{log}");
        }
        panic!("c-icap with the antivirus service did not start");
    }

    pub fn url(&self, service: &str) -> String {
        format!("icap://127.0.0.1:{}/{service}", self.port)
    }
}

impl Drop for AntivirusICap {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Whether `OPTIONS /avscan` is answered 200 in time: the port alone is
/// not enough, the service is ready once its engine has loaded.
fn answers_options(port: u16, child: &mut Child, within: Duration) -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let until = Instant::now() + within;
    let request = format!(
        "OPTIONS icap://127.0.0.1:{port}/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n"
    );
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut got = [0u8; 16];
            if s.write_all(request.as_bytes()).is_ok()
                && s.read_exact(&mut got).is_ok()
                && got.starts_with(b"ICAP/1.0 200")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

//! The resident mode watched as operators watch it: a real Prometheus
//! (Debian's 2.42) scraping `/metrics` and `/probe` with the shipped alert
//! rules loaded, `promtool check metrics` on the exposition, the status page
//! in a real browser (Debian's Chromium, headless), and the listener under
//! hostile clients. Targets are real c-icap servers, a closed port, and the
//! fault server answering with markup in its reason phrase.
//!
//! One Prometheus for the module (its first scrape comes ~5 s after it
//! starts, whatever the interval): the other tests, each with its own
//! icap-check, run beside it. A missing tool is a failure: tests/run
//! installs prometheus and chromium.

use crate::common::fault::{FaultServer, Step};
use crate::common::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
/// The browser itself, not Debian's wrapper script (which adds flags we do
/// not want and prints shell errors on some machines).
const CHROMIUM: &str = "/usr/lib/chromium/chromium";
const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/icap-check.rules.yml"
);

fn need(tool: &str, package: &str) {
    assert!(
        Path::new(tool).exists(),
        "{tool} is missing: run tests/run, which installs Debian's {package}"
    );
}

fn local(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// haproxy.cfg: backends of `(server, "ADDR:PORT")` checked every 300 ms,
/// down after two failures, so a stopped server shows within a second.
fn haproxy_cfg(backends: &[(&str, Vec<(String, String)>)]) -> String {
    let mut cfg = String::from("# written by tests/it/observe.rs\n");
    for (name, servers) in backends {
        cfg.push_str(&format!(
            "backend {name}\n    mode tcp\n    option external-check\n    \
             default-server check inter 300ms fall 2 rise 1\n"
        ));
        for (server, addr) in servers {
            cfg.push_str(&format!("    server {server} {addr}\n"));
        }
    }
    cfg
}

/// icap-check in the resident mode with `--metrics-listen` on a free port,
/// stopped on drop.
struct Resident {
    port: u16,
    child: Child,
    _dir: TempDir,
}

impl Resident {
    /// Checks the servers of `cfg` (haproxy.cfg) with `conf` (icap-check.conf).
    fn with_haproxy_cfg(cfg: &str, conf: &str) -> Resident {
        let dir = TempDir::new("observe");
        let (cfg_path, conf_path) = (
            dir.path().join("haproxy.cfg"),
            dir.path().join("icap-check.conf"),
        );
        std::fs::write(&cfg_path, cfg).expect("write haproxy.cfg");
        std::fs::write(&conf_path, conf).expect("write icap-check.conf");
        let args: Vec<String> = vec![
            "--haproxy-cfg".into(),
            cfg_path.display().to_string(),
            "--config".into(),
            conf_path.display().to_string(),
        ];
        Resident::start(&args, dir)
    }

    /// Checks `urls` every 300 ms.
    fn with_urls(urls: &[String]) -> Resident {
        let dir = TempDir::new("observe");
        let mut args: Vec<String> = vec!["--interval".into(), "300ms".into()];
        args.extend(urls.iter().cloned());
        Resident::start(&args, dir)
    }

    fn start(args: &[String], dir: TempDir) -> Resident {
        // A port found free may be taken before icap-check binds it: then it
        // exits at once (exit 2, "cannot listen"), and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(BIN)
                .arg("--metrics-listen")
                .arg(local(port))
                .args(args)
                .env_clear()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start icap-check --metrics-listen");
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    return Resident {
                        port,
                        child,
                        _dir: dir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            terminate(&mut child);
        }
        panic!("icap-check --metrics-listen did not start listening");
    }

    fn get(&self, path: &str) -> Http {
        request(
            self.port,
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        )
    }

    /// Waits until every one of `n` targets has a state (its first result).
    fn wait_for_results(&self, n: usize) -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let metrics = self.get("/metrics");
            let states = samples(&metrics.body, "icap_check_state").len();
            if states == n {
                return metrics.body;
            }
            assert!(
                Instant::now() < until,
                "{states} of {n} targets have a state after 10 s:\n{}",
                metrics.body
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Resident {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// An answer from an HTTP server, read to its end.
#[derive(Debug)]
struct Http {
    status: u16,
    head: String,
    body: String,
}

/// Sends `raw` on a new connection to 127.0.0.1:`port` and reads the answer
/// until the server closes (both icap-check, with `Connection: close`, and
/// Prometheus, to an HTTP/1.0 request, close after one answer).
fn request(port: u16, raw: impl AsRef<[u8]>) -> Http {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_ref()).expect("send the request");
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).expect("read the answer");
    parse_http(&bytes)
}

fn parse_http(bytes: &[u8]) -> Http {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Http {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The exposition, read as Prometheus would.

/// One sample: its metric name, its labels and its value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses a sample line (`name{a="x",b="y\"z"} 1.5`), unescaping label values.
fn parse_sample(line: &str) -> Sample {
    fn bad(line: &str) -> ! {
        panic!("not a sample line: {line:?}")
    }
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| bad(line));
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        // name="value", until the closing brace
        let end = loop {
            let Some(&(i, c)) = chars.peek() else {
                bad(line)
            };
            if c == '}' {
                break i + 1;
            }
            if c == ',' {
                chars.next();
                continue;
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line:?}");
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(c @ ('\\' | '"')) => value.push(c),
                        other => panic!("invalid escape {other:?} in {line:?}"),
                    },
                    Some(c) => value.push(c),
                    None => bad(line),
                }
            }
            assert!(
                labels.insert(key.clone(), value).is_none(),
                "label {key} twice in {line:?}"
            );
        };
        rest = &inner[end..];
    }
    let value = rest.trim();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value {v:?} in {line:?}")),
    };
    Sample {
        name,
        labels,
        value,
    }
}

/// The samples of metric `name` in an exposition.
fn samples(text: &str, name: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(parse_sample)
        .filter(|s| s.name == name)
        .collect()
}

/// What `promtool check metrics` does not check (NOTES of the research:
/// it passes duplicate series, interleaved families and a histogram without
/// `+Inf`), checked here: every family has one HELP and one TYPE, its
/// samples follow them together, no series twice, and each histogram's
/// series has cumulative buckets ending in `+Inf` equal to its `_count`,
/// and a `_sum`.
fn lint(text: &str) {
    assert!(text.ends_with('\n'), "no final newline");
    let mut helped = HashSet::new();
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut current: Option<(String, String)> = None;
    let mut series = HashSet::new();
    // histogram family -> labels without le -> (buckets (le, value), sum, count)
    type Buckets = (Vec<(f64, f64)>, Option<f64>, Option<f64>);
    let mut histograms: HashMap<String, BTreeMap<String, Buckets>> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            assert!(helped.insert(name.to_string()), "HELP {name} twice");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split(' ');
            let (name, kind) = (words.next().unwrap(), words.next().unwrap_or_default());
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE {name} twice: a family split in two"
            );
            assert!(
                helped.contains(name),
                "TYPE {name} before (or without) its HELP"
            );
            current = Some((name.to_string(), kind.to_string()));
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let s = parse_sample(line);
        let (family, kind) = current
            .as_ref()
            .unwrap_or_else(|| panic!("sample before any TYPE: {line}"));
        let belongs = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| s.name == format!("{family}{suffix}")),
            _ => &s.name == family,
        };
        assert!(
            belongs,
            "{line} is not in family {family} (families interleaved)"
        );
        assert!(
            series.insert((s.name.clone(), s.labels.clone())),
            "series twice: {line}"
        );
        if kind == "histogram" {
            let mut rest = s.labels.clone();
            let le = rest.remove("le");
            let entry = histograms
                .entry(family.clone())
                .or_default()
                .entry(format!("{rest:?}"))
                .or_default();
            match (s.name.strip_prefix(family.as_str()), le) {
                (Some("_bucket"), Some(le)) => {
                    let bound = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap_or_else(|_| panic!("le {le:?}: {line}"))
                    };
                    entry.0.push((bound, s.value));
                }
                (Some("_sum"), None) => entry.1 = Some(s.value),
                (Some("_count"), None) => entry.2 = Some(s.value),
                _ => panic!("bad histogram line: {line}"),
            }
        }
    }
    for name in &helped {
        assert!(typed.contains_key(name), "HELP {name} without TYPE");
    }
    for (family, by_series) in &histograms {
        for (labels, (buckets, sum, count)) in by_series {
            let what = format!("{family}{labels}");
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{what}: buckets not increasing and cumulative: {buckets:?}"
            );
            let last = buckets
                .last()
                .unwrap_or_else(|| panic!("{what}: no bucket"));
            assert_eq!(last.0, f64::INFINITY, "{what}: no +Inf bucket");
            assert_eq!(Some(last.1), *count, "{what}: +Inf bucket is not _count");
            assert!(sum.is_some(), "{what}: no _sum");
        }
    }
}

/// `promtool check metrics` accepts `text`: exit 0 and nothing said (it
/// prints lint problems on stderr and still exits 0 for some), then [`lint`].
fn check_exposition(text: &str) {
    need(PROMTOOL, "prometheus");
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {:?}\n{}{}\n--- the exposition:\n{text}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    lint(text);
}

/// [`lint`] catches what promtool lets through (so it is worth its lines):
/// each case passes `promtool check metrics` and fails the lint.
#[test]
fn lint_catches_what_promtool_misses() {
    need(PROMTOOL, "prometheus");
    let head = "# HELP a_total A.\n# TYPE a_total counter\n";
    let hist = "# HELP h_seconds H.\n# TYPE h_seconds histogram\n";
    for (what, text) in [
        (
            "a duplicate series",
            format!("{head}a_total{{x=\"1\"}} 1\na_total{{x=\"1\"}} 2\n"),
        ),
        (
            "a family in two places",
            format!("{head}a_total 1\n# HELP b B.\n# TYPE b gauge\nb 1\na_total{{x=\"2\"}} 1\n"),
        ),
        (
            "a histogram without +Inf",
            format!("{hist}h_seconds_bucket{{le=\"1\"}} 1\nh_seconds_sum 0.5\nh_seconds_count 1\n"),
        ),
        (
            "buckets not cumulative",
            format!(
                "{hist}h_seconds_bucket{{le=\"1\"}} 2\nh_seconds_bucket{{le=\"+Inf\"}} 1\n\
                 h_seconds_sum 0.5\nh_seconds_count 1\n"
            ),
        ),
    ] {
        let mut promtool = Command::new(PROMTOOL)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start promtool");
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        assert!(
            promtool.wait().unwrap().success(),
            "promtool now catches {what}: the lint may not be needed for it"
        );
        let linted = std::panic::catch_unwind(|| lint(&text));
        assert!(linted.is_err(), "the lint passed {what}:\n{text}");
    }
}

// ---------------------------------------------------------------------------
// Prometheus.

/// Debian's Prometheus in the foreground on a free loopback port, with a
/// fresh storage dir; stopped on drop.
struct Prometheus {
    port: u16,
    child: Child,
    dir: TempDir,
}

impl Prometheus {
    /// `scrape_configs` is YAML, indented as a top-level key's list.
    fn start(scrape_configs: &str) -> Prometheus {
        need(PROMETHEUS, "prometheus");
        let dir = TempDir::new("prometheus");
        let config = format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{RULES}']\nscrape_configs:\n{scrape_configs}"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
            let mut child = Command::new(PROMETHEUS)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start prometheus");
            // Ready ~0.05 s after start on an empty TSDB.
            let until = Instant::now() + Duration::from_secs(15);
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && get_prometheus(port, "/-/ready").status == 200
                {
                    return Prometheus { port, child, dir };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            terminate(&mut child);
            let log =
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
            assert!(
                log.contains("address already in use"),
                "prometheus did not start:\n{log}"
            );
        }
        panic!("prometheus found no free port");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An API call's `data`.
    fn api(&self, path: &str) -> serde_json::Value {
        let answer = get_prometheus(self.port, path);
        let json: serde_json::Value = serde_json::from_str(&answer.body)
            .unwrap_or_else(|e| panic!("{path}: {e}: {}", answer.body));
        assert!(
            answer.status == 200 && json["status"] == "success",
            "{path}: {answer:?}"
        );
        json["data"].clone()
    }

    /// An instant query's series: their labels and value.
    fn query(&self, q: &str) -> Vec<(BTreeMap<String, String>, String)> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(q)));
        data["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{q}: {data}"))
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                (
                    labels,
                    r["value"][1].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Polls until `f` is true of `q`'s result, or panics after `within`.
    fn wait_for(
        &self,
        what: &str,
        q: &str,
        within: Duration,
        f: impl Fn(&[(BTreeMap<String, String>, String)]) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let result = self.query(q);
            if f(&result) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "{what}: not after {within:?}; {q} = {result:?}\nprometheus log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SIGTERM: Prometheus exits 0 within ~10 ms.
        terminate(&mut self.child);
    }
}

/// HTTP/1.0, so that Go answers without chunked encoding and closes.
fn get_prometheus(port: u16, path: &str) -> Http {
    request(
        port,
        format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
    )
}

/// `server` label -> value, of an icap_check_state query.
fn by_server(result: &[(BTreeMap<String, String>, String)]) -> BTreeMap<String, String> {
    result
        .iter()
        .map(|(l, v)| (l.get("server").cloned().unwrap_or_default(), v.clone()))
        .collect()
}

/// Three c-icap servers in a haproxy.cfg backend, scraped by Prometheus every
/// second both ways the README gives (`/metrics`, and `/probe` per server
/// with the multi-target relabelling), the shipped rules loaded. All three
/// are up; one c-icap stops and its series turns 0 within a few scrapes
/// while the others stay 1, and the shipped IcapServerDown alert takes it
/// (pending: its `for` is a minute). The exposition passes promtool and the
/// checks promtool does not make, before and after.
#[test]
fn prometheus_scrapes_the_pool_and_sees_a_server_go_down() {
    let started = Instant::now();
    let mut icaps: Vec<CIcap> = (0..3).map(|_| CIcap::start()).collect();
    let names = ["icap01", "icap02", "icap03"];
    let servers = names
        .iter()
        .zip(&icaps)
        .map(|(n, c)| (n.to_string(), local(c.port)))
        .collect();
    let resident = Resident::with_haproxy_cfg(
        &haproxy_cfg(&[("icap_pool", servers)]),
        "backend icap_pool\n    service echo\n",
    );
    check_exposition(&resident.wait_for_results(3));

    // As README.md's "Watching the pool" gives them: the job name the
    // rules expect, and the blackbox_exporter multi-target form.
    let prometheus = Prometheus::start(&format!(
        "  - job_name: icap-check\n    static_configs: [{{targets: ['{metrics}']}}]\n\
         \x20 - job_name: icap-check-probe\n    metrics_path: /probe\n\
         \x20   static_configs: [{{targets: [icap_pool/icap01, icap_pool/icap02, icap_pool/icap03]}}]\n\
         \x20   relabel_configs:\n\
         \x20     - {{source_labels: [__address__], target_label: __param_target}}\n\
         \x20     - {{source_labels: [__param_target], target_label: instance}}\n\
         \x20     - {{target_label: __address__, replacement: '{metrics}'}}\n",
        metrics = local(resident.port)
    ));
    let ready = started.elapsed();

    // Two scrapes of every target of both jobs (the first comes ~5 s after
    // Prometheus starts).
    let scraped = prometheus.wait_for(
        "two scrapes of each target",
        "count_over_time(up[1m]) >= 2",
        Duration::from_secs(30),
        |r| r.len() == 4,
    );
    let up = prometheus.query("up");
    assert!(up.iter().all(|(_, v)| v == "1"), "{up:?}");

    let state = prometheus.query("icap_check_state{job=\"icap-check\"}");
    assert_eq!(
        by_server(&state),
        names
            .iter()
            .map(|n| (n.to_string(), "1".to_string()))
            .collect(),
        "{state:?}"
    );
    for (labels, _) in &state {
        assert_eq!(labels["backend"], "icap_pool", "{labels:?}");
        assert!(
            labels["target"].starts_with("icap://127.0.0.1:"),
            "{labels:?}"
        );
    }
    // /probe: each scrape got its own server's series, named by `instance`.
    let probed = prometheus.query("probe_success{job=\"icap-check-probe\"}");
    assert_eq!(probed.len(), 3, "{probed:?}");
    for (labels, value) in &probed {
        assert_eq!(
            labels["instance"],
            format!("icap_pool/{}", labels["server"]),
            "{labels:?}"
        );
        assert_eq!(value, "1", "{labels:?}");
    }
    // The shipped rules loaded and evaluate without error against the
    // real series.
    let rules = prometheus.api("/api/v1/rules");
    let rules: Vec<&serde_json::Value> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(rules.len(), 7, "{rules:?}");
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}");
    }

    icaps[1].stop();
    let stopped = Instant::now();
    let down = prometheus.wait_for(
        "icap02 at 0, the others at 1",
        "icap_check_state{job=\"icap-check\"}",
        Duration::from_secs(20),
        |r| {
            by_server(r)
                == [("icap01", "1"), ("icap02", "0"), ("icap03", "1")]
                    .iter()
                    .map(|(s, v)| (s.to_string(), v.to_string()))
                    .collect()
        },
    );
    let probed = prometheus.query("probe_success{job=\"icap-check-probe\", server=\"icap02\"}");
    assert!(probed.len() == 1, "{probed:?}");
    // The alert: only IcapServerDown, only for icap02, once from each job
    // (the rules hold for both scrape forms). IcapCheckAbsent was pending
    // before the first scrape, and must be gone.
    let until = Instant::now() + Duration::from_secs(10);
    let alerts = loop {
        let alerts = prometheus.api("/api/v1/alerts")["alerts"].clone();
        let alerts = alerts.as_array().unwrap().clone();
        let label = |a: &serde_json::Value, name: &str| {
            a["labels"][name].as_str().unwrap_or_default().to_string()
        };
        let mut seen: Vec<String> = alerts
            .iter()
            .map(|a| {
                format!(
                    "{} {} {}",
                    label(a, "alertname"),
                    label(a, "job"),
                    label(a, "server")
                )
            })
            .collect();
        seen.sort();
        if seen
            == [
                "IcapServerDown icap-check icap02",
                "IcapServerDown icap-check-probe icap02",
            ]
        {
            break alerts;
        }
        assert!(Instant::now() < until, "alerts after 10 s: {alerts:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for alert in &alerts {
        assert_eq!(alert["state"], "pending", "{alert}");
        assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
        assert_eq!(
            alert["annotations"]["summary"], "ICAP server icap_pool/icap02 is down",
            "{alert}"
        );
    }
    let since_stop = stopped.elapsed();

    // The exposition with a failed target (exit code 3, its counters).
    let metrics = resident.get("/metrics").body;
    assert!(
        metrics.contains("server=\"icap02\",probe=\"OPTIONS\",exit_code=\"3\"}"),
        "{metrics}"
    );
    check_exposition(&metrics);
    eprintln!(
        "observe: icap-check and prometheus ready in {ready:?}, two scrapes {scraped:?} later; \
         icap02 at 0 in Prometheus {down:?} after its c-icap stopped, alert pending {since_stop:?}"
    );
}

/// `/probe?target=` answers for configured targets only, by BACKEND/SERVER
/// or by URL, and never connects anywhere else: a listener the test holds,
/// named every way a query can name it, is never connected to.
#[test]
fn probe_answers_for_configured_targets_only() {
    let icap = CIcap::start();
    let bait = TcpListener::bind("127.0.0.1:0").expect("bind the bait");
    bait.set_nonblocking(true).unwrap();
    let bait_port = bait.local_addr().unwrap().port();

    let named = Resident::with_haproxy_cfg(
        &haproxy_cfg(&[("icap_pool", vec![("icap01".into(), local(icap.port))])]),
        "backend icap_pool\n    service echo\n",
    );
    let url = icap.url("echo");
    let by_url = Resident::with_urls(std::slice::from_ref(&url));
    named.wait_for_results(1);
    by_url.wait_for_results(1);

    for (resident, key) in [
        (&named, "icap_pool/icap01".to_string()),
        (&named, encode("icap_pool/icap01")),
        (&by_url, encode(&url)),
        (&by_url, url.clone()),
    ] {
        let answer = resident.get(&format!("/probe?target={key}"));
        assert_eq!(answer.status, 200, "{key}: {answer:?}");
        assert!(
            answer
                .head
                .contains("Content-Type: text/plain; version=0.0.4"),
            "{answer:?}"
        );
        let success = samples(&answer.body, "probe_success");
        assert_eq!(success.len(), 1, "{key}: {}", answer.body);
        assert_eq!(success[0].value, 1.0, "{}", answer.body);
        assert_eq!(success[0].labels["target"], url, "{}", answer.body);
        check_exposition(&answer.body);
    }

    let bait_url = format!("icap://127.0.0.1:{bait_port}/echo");
    for (resident, query) in [
        (&named, format!("target={}", encode(&bait_url))),
        (&named, format!("target={}", local(bait_port))),
        (&named, format!("target=icap_pool/{}", local(bait_port))),
        (&named, "target=icap_pool/nosuch".to_string()),
        (&named, "target=icap_pool".to_string()),
        (&named, format!("target={}", encode(&url))),
        (&named, "target=".to_string()),
        (&named, String::new()),
        (&named, "module=icap&target=127.0.0.1".to_string()),
        (&by_url, format!("target={}", encode(&bait_url))),
        (&by_url, format!("target={bait_url}")),
        (&by_url, format!("target={}", local(bait_port))),
        (&by_url, "target=icap_pool/icap01".to_string()),
        (&by_url, format!("target={}", encode(&format!("{url}/")))),
    ] {
        let answer = resident.get(&format!("/probe?{query}"));
        assert_eq!(answer.status, 404, "{query}: {answer:?}");
        assert!(
            !answer.body.contains("probe_success"),
            "{query}: {answer:?}"
        );
    }
    // An answer is made from memory, so a connection would have been made
    // before it; a little grace for one made on the side.
    std::thread::sleep(Duration::from_millis(200));
    match bait.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("/probe connected to a target it was not given: {other:?}"),
    }
}

/// Runs headless Chromium on `url` with `args`, a fresh profile each time,
/// killed if it runs 30 s (its exit code says nothing: a refused connection
/// is exit 0 with no output, so callers check what it produced).
fn chromium(args: &[&str], url: &str) -> Ran {
    need(CHROMIUM, "chromium");
    let profile = TempDir::new("chromium");
    // No --virtual-time-budget: at or past the page's refresh interval it
    // makes Chromium reload the page for ever.
    run_killed_after(
        Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox", // as root, as here and in CI
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--log-level=3", // else ~30 lines of D-Bus errors
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .arg(url),
        Duration::from_secs(30),
    )
}

/// `(data-server, data-state)` of each row, in document order.
fn rows(dom: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = tag[start..].find('"')?;
        Some(tag[start..start + len].to_string())
    };
    dom.split("<tr")
        .skip(1)
        .filter_map(|t| {
            let tag = &t[..t.find('>')?];
            Some((attr(tag, "data-server")?, attr(tag, "data-state")?))
        })
        .collect()
}

/// The status page as a browser shows it: Chromium's DOM of the page has
/// a row per server with its state, failing servers first; a server whose
/// reason phrase is `<script>alert(1)</script>` (and whose ISTag is an
/// `<img onerror>`) has it shown as text, nothing of it parsed as markup;
/// and a screenshot is kept in target/observe/status-page.png for a person
/// to look at.
#[test]
fn status_page_in_a_real_browser() {
    let icap = CIcap::start();
    let closed = free_port();
    let evil = FaultServer::start(vec![
        Step::ReadHead,
        Step::Write(
            b"ICAP/1.0 500 <script>alert(1)</script>\r\n\
              ISTag: \"<img src=x onerror=alert(2)>\"\r\nEncapsulated: null-body=0\r\n\r\n"
                .to_vec(),
        ),
        Step::Close,
    ]);
    let resident = Resident::with_haproxy_cfg(
        &haproxy_cfg(&[
            (
                "icap_pool",
                vec![
                    ("icap01".into(), local(icap.port)),
                    ("icap02".into(), local(closed)),
                ],
            ),
            ("evil_pool", vec![("evil".into(), evil.addr.to_string())]),
        ]),
        "defaults\n    service echo\n",
    );
    resident.wait_for_results(3);

    // The page itself: nothing from elsewhere, so it works offline.
    let page = resident.get("/");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.head.contains("Content-Type: text/html; charset=utf-8"),
        "{page:?}"
    );
    for outside in [
        "<script", "<link", "<img", "<iframe", " src=\"", "@import", "url(",
    ] {
        assert!(
            !page.body.contains(outside),
            "{outside} in the page:\n{}",
            page.body
        );
    }

    let url = format!("http://{}/", local(resident.port));
    let t = Instant::now();
    let dumped = chromium(&["--dump-dom"], &url);
    let dump_took = t.elapsed();
    let dom = &dumped.stdout;
    assert!(
        !dumped.killed && dom.contains("</html>"),
        "chromium --dump-dom: {dumped:?}"
    );
    assert_eq!(
        rows(dom),
        [
            ("evil_pool/evil", "DOWN"),
            ("icap_pool/icap02", "DOWN"),
            ("icap_pool/icap01", "UP"),
        ]
        .map(|(s, v)| (s.to_string(), v.to_string())),
        "rows, failing first:\n{dom}"
    );
    assert!(
        dom.contains("<title>icap-check: 3 targets, 2 down</title>"),
        "{dom}"
    );
    assert!(
        dom.contains("connection refused"),
        "icap02's reason:\n{dom}"
    );
    // The sparkline of recent checks is there, as SVG.
    assert!(
        dom.contains("<svg class=\"spark\"") && dom.contains("<rect"),
        "{dom}"
    );
    // Markup from a server is text: no element was made of it. The page
    // has no script of its own, so any script element is the server's.
    let lower = dom.to_lowercase();
    assert!(!lower.contains("<script"), "a script element:\n{dom}");
    assert!(!lower.contains("<img"), "an img element:\n{dom}");
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the reason phrase, as text:\n{dom}"
    );
    assert!(
        dom.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "the ISTag, as text:\n{dom}"
    );

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/observe/status-page.png");
    std::fs::create_dir_all(shot.parent().unwrap()).expect("create target/observe");
    let _ = std::fs::remove_file(&shot);
    let t = Instant::now();
    let ran = chromium(
        &[
            "--window-size=1200,800",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    let shot_took = t.elapsed();
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}; {ran:?}", shot.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {}",
        shot.display()
    );
    // A blank 1200x800 page compresses to a few KB; the table is more.
    assert!(
        png.len() > 15_000,
        "{} is {} bytes",
        shot.display(),
        png.len()
    );
    eprintln!(
        "observe: chromium --dump-dom {dump_took:?}, screenshot {shot_took:?} ({} bytes): {}",
        png.len(),
        shot.display()
    );
}

/// The listener faces whoever can reach it: a client that sends nothing is
/// answered 408 (or dropped) after the request deadline (5 s), and 100
/// clients that never finish their requests do not keep others from
/// `/metrics` meanwhile.
#[test]
fn listener_outlasts_idle_and_slow_clients() {
    let resident = Resident::with_urls(&[format!("icap://{}/echo", local(free_port()))]);
    resident.wait_for_results(1);
    let connected = Instant::now();
    let idle = TcpStream::connect(("127.0.0.1", resident.port)).expect("connect");
    let slow: Vec<TcpStream> = (0..100)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", resident.port)).expect("connect");
            // Half a request head each, some mid-line.
            let part = if i % 2 == 0 {
                "GET /metrics HTTP/1.1\r\n"
            } else {
                "GET /met"
            };
            s.write_all(part.as_bytes())
                .expect("send part of a request");
            s
        })
        .collect();
    // Let the listener take them all in.
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..3 {
        let t = Instant::now();
        let answer = resident.get("/metrics");
        assert_eq!(
            answer.status, 200,
            "with 101 clients holding connections: {answer:?}"
        );
        assert!(answer.body.contains("icap_check_targets 1\n"), "{answer:?}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "took {:?}",
            t.elapsed()
        );
    }
    // Each held connection is answered 408, or closed, by the deadline.
    let mut ended = Vec::new();
    for mut s in std::iter::once(idle).chain(slow) {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut bytes = Vec::new();
        let read = s.read_to_end(&mut bytes);
        ended.push(connected.elapsed());
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.starts_with("HTTP/1.1 408 ")
                || (bytes.is_empty() && read.is_ok())
                || matches!(&read, Err(e) if e.kind() == ErrorKind::ConnectionReset),
            "a held connection got {read:?} {text:?}"
        );
    }
    let last = ended.iter().max().unwrap();
    assert!(
        *last < Duration::from_millis(7000),
        "held connections ended by {last:?}, not ~5 s"
    );
    // And the listener still serves.
    assert_eq!(resident.get("/metrics").status, 200);
    eprintln!("observe: 101 held connections ended within {last:?}");
}

/// Requests a metrics endpoint has no business with are refused at once: a
/// 1 MB request head (431, without reading it all), a POST (405, saying
/// which methods are), garbage (400), another path (404).
#[test]
fn listener_refuses_oversized_and_wrong_requests() {
    let resident = Resident::with_urls(&[format!("icap://{}/echo", local(free_port()))]);
    let port = resident.port;

    // The head is sent from a thread: the listener answers after 8 KiB and
    // closes, so the write may fail; the answer is read meanwhile.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut head = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
        head.resize(1 << 20, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        let _ = writer.write_all(&head);
    });
    let t = Instant::now();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    // Read what arrives until the end or a reset (after the answer, a reset
    // may come for the head left unread).
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if !bytes.is_empty() && e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("1 MB head: {e} after {:?}", String::from_utf8_lossy(&bytes)),
        }
    }
    let _ = sender.join();
    let answer = parse_http(&bytes);
    assert_eq!(answer.status, 431, "{answer:?}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "431 after {:?}",
        t.elapsed()
    );

    let post = request(
        port,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(post.status, 405, "{post:?}");
    assert!(post.head.contains("\r\nAllow: GET, HEAD"), "{post:?}");
    let garbage = request(
        port,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    );
    assert_eq!(garbage.status, 400, "{garbage:?}");
    let other = resident.get("/admin");
    assert_eq!(other.status, 404, "{other:?}");
    assert_eq!(resident.get("/metrics").status, 200);
    // HEAD: the head GET would have, its Content-Length included, no body.
    let head = request(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(head.status, 200, "{head:?}");
    assert!(head.head.contains("\r\nContent-Length: "), "{head:?}");
    assert!(!head.head.contains("Content-Length: 0\r\n"), "{head:?}");
    assert_eq!(head.body, "", "{head:?}");
}

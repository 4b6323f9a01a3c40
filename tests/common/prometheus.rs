//! Prometheus for the integration tests: a real `prometheus` (Debian package) started on a free
//! loopback port with the scrape, relabel and alerting rules shipped in `contrib/prometheus/`,
//! and a small client of its HTTP API.
//!
//! ```ignore
//! let port = free_port();
//! let Some(collectd) = Collectd::start_extended(block, &Extra { plugins: &["write_prometheus"],
//!     config: &write_prometheus_block(port), .. }) else { return };
//! let Some(prometheus) = Prometheus::start(&format!("127.0.0.1:{port}")) else { return };
//! let series = prometheus.wait_query("collectd_capture_ps_rss", "RSS series", |s| !s.is_empty());
//! ```
//!
//! [`Prometheus::start`] returns `None` (after printing `SKIP: <reason>` on stderr) when the
//! `prometheus` binary is missing; with the environment variable `CI` set that is a failure
//! instead (CI installs the package). Dropping a [`Prometheus`] stops it; when the test is
//! failing, its log goes to stderr and its directory is kept.

use serde_json::Value;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shipped configuration files, relative to the repository.
pub const CONTRIB: &str = "contrib/prometheus";

/// How often the test Prometheus scrapes and evaluates its rules (the shipped file says 10s).
pub const SCRAPE_INTERVAL: &str = "1s";

/// A port on 127.0.0.1 that was free a moment ago: bound to port 0, read, released.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// The `<Plugin write_prometheus>` block of a collectd that serves on 127.0.0.1:`port` only.
pub fn write_prometheus_block(port: u16) -> String {
    format!("<Plugin write_prometheus>\n  Host \"127.0.0.1\"\n  Port \"{port}\"\n</Plugin>")
}

/// A file of `contrib/prometheus/`, by absolute path.
pub fn contrib_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(CONTRIB)
        .join(name)
}

/// `Err(reason)` when `tool` (`prometheus`, `promtool`) cannot be run here. With `CI` set a
/// missing tool panics instead: CI installs the package, so its absence is a failure there.
pub fn tool_available(tool: &str) -> Result<(), String> {
    match Command::new(tool).arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        result => {
            let reason = format!(
                "`{tool} --version` failed ({}): install the Debian package `prometheus`",
                match result {
                    Ok(output) => output.status.to_string(),
                    Err(e) => e.to_string(),
                }
            );
            if std::env::var_os("CI").is_some() {
                panic!("{reason}; CI is set, so this is a failure, not a skip");
            }
            Err(reason)
        }
    }
}

/// Prints `SKIP: reason` where libtest does not capture it.
pub fn skip(reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}

/// Replaces the one occurrence of `from` in `text`, or panics: the shipped file changed shape
/// and the test must be told, not silently test something else.
fn replace_once(text: &str, from: &str, to: &str, file: &Path) -> String {
    let count = text.matches(from).count();
    assert_eq!(
        count,
        1,
        "{} should contain {from:?} exactly once (found {count} times): the test derives its \
         configuration from it",
        file.display()
    );
    text.replacen(from, to, 1)
}

/// The shipped `contrib/prometheus/prometheus.yml`, as the tests run it: scraping `target`
/// (`host:port` of a write_prometheus) instead of `localhost:9103`, every [`SCRAPE_INTERVAL`],
/// with the shipped `alerts.yml` by absolute path. Its relabel rules are untouched.
pub fn test_config(target: &str) -> String {
    let file = contrib_file("prometheus.yml");
    let text =
        fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let text = replace_once(
        &text,
        "scrape_interval: 10s",
        &format!("scrape_interval: {SCRAPE_INTERVAL}"),
        &file,
    );
    let text = replace_once(
        &text,
        "evaluation_interval: 10s",
        &format!("evaluation_interval: {SCRAPE_INTERVAL}"),
        &file,
    );
    let text = replace_once(&text, "- localhost:9103", &format!("- {target}"), &file);
    let alerts = contrib_file("alerts.yml");
    replace_once(
        &text,
        "- alerts.yml",
        &format!("- {}", alerts.display()),
        &file,
    )
}

/// A running Prometheus in its own temporary directory (configuration, TSDB, log).
pub struct Prometheus {
    dir: Option<tempfile::TempDir>,
    child: Child,
    /// Where its HTTP API listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus with [`test_config`] scraping `target` and waits until it is ready.
    /// `None` (after a `SKIP:` line) when `prometheus` is not installed.
    pub fn start(target: &str) -> Option<Prometheus> {
        Self::start_with_config(&test_config(target))
    }

    /// Starts Prometheus with the configuration `config` and waits until it is ready.
    pub fn start_with_config(config: &str) -> Option<Prometheus> {
        if let Err(reason) = tool_available("prometheus") {
            skip(&reason);
            return None;
        }
        let parent = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/it/tmp");
        fs::create_dir_all(&parent)
            .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
        let dir = tempfile::Builder::new()
            .prefix("prom-")
            .tempdir_in(&parent)
            .unwrap_or_else(|e| panic!("creating a temporary directory: {e}"));
        let root = dir.path();
        let config_path = root.join("prometheus.yml");
        fs::write(&config_path, config).expect("writing prometheus.yml");
        let log = fs::File::create(root.join("prometheus.log")).expect("creating prometheus.log");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("a socket address");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                root.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicating prometheus.log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting prometheus: {e}"));
        let mut prometheus = Prometheus {
            dir: Some(dir),
            child,
            addr,
        };
        super::wait_for("prometheus to be ready", Duration::from_secs(30), || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!(
                    "prometheus exited ({status}) while starting with this config:\n{config}\n\
                     --- log ---\n{}",
                    prometheus.log()
                );
            }
            matches!(http_get(prometheus.addr, "/-/ready"), Ok((200, _))).then_some(())
        });
        Some(prometheus)
    }

    /// Its temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("directory present until drop")
            .path()
    }

    /// What Prometheus logged.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir().join("prometheus.log")).unwrap_or_default()
    }

    /// GET `path` (with its query string) of the API, parsed as JSON; `Err` with the status and
    /// body when it did not succeed.
    pub fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = http_get(self.addr, path)?;
        let json: Value = serde_json::from_str(&body)
            .map_err(|e| format!("GET {path}: status {status}, not JSON ({e}): {body}"))?;
        if status != 200 || json["status"] != "success" {
            return Err(format!("GET {path}: status {status}: {body}"));
        }
        Ok(json["data"].clone())
    }

    /// The result of the instant query `expr` now: the series of a vector (or matrix), each
    /// `{"metric": {...}, "value": [t, "v"]}`; a scalar or string result as one element.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        self.query_path(expr, &format!("/api/v1/query?query={}", url_encode(expr)))
    }

    /// Like [`query`](Self::query), evaluated at `time` (seconds since the epoch).
    pub fn query_at(&self, expr: &str, time: f64) -> Result<Vec<Value>, String> {
        let path = format!("/api/v1/query?query={}&time={time:.3}", url_encode(expr));
        self.query_path(expr, &path)
    }

    fn query_path(&self, expr: &str, path: &str) -> Result<Vec<Value>, String> {
        let data = self.api(path)?;
        match (data["resultType"].as_str(), &data["result"]) {
            (Some("vector" | "matrix"), Value::Array(series)) => Ok(series.clone()),
            (Some("scalar" | "string"), value) => Ok(vec![value.clone()]),
            _ => Err(format!("query {expr:?}: unexpected data {data}")),
        }
    }

    /// Polls the query `expr` every 250 ms until `accept` takes its result, which it returns;
    /// panics after `timeout` with the last result or error and `what`.
    pub fn wait_query(
        &self,
        expr: &str,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let result = self.query(expr);
            if let Ok(series) = &result {
                if accept(series) {
                    return series.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}: query {expr:?} returned {}",
                match &result {
                    Ok(series) => serde_json::to_string_pretty(series).unwrap_or_default(),
                    Err(e) => e.clone(),
                }
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        super::stop(&mut self.child, "prometheus", Duration::from_secs(10));
        if std::thread::panicking() {
            let dir = self.dir.take().expect("directory present until drop");
            eprintln!(
                "--- prometheus log ---\n{}\n--- kept {} for inspection ---",
                fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default(),
                dir.path().display()
            );
            std::mem::forget(dir);
        }
    }
}

/// The value of one series of a query result (`"value": [t, "1.5"]`) as a number.
pub fn sample_value(series: &Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric value in {series}"))
}

/// The label `name` of one series of a query result, if it has it.
pub fn label<'a>(series: &'a Value, name: &str) -> Option<&'a str> {
    series["metric"][name].as_str()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A plain HTTP/1.0 GET (no chunked encoding, the server closes the connection): the status
/// and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let fail = |e: std::io::Error| format!("GET http://{addr}{path}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(fail)?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(fail)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET http://{addr}{path}: no end of headers in {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET http://{addr}{path}: bad status line in {head:?}"))?;
    Ok((status, body.to_string()))
}

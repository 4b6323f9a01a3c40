//! The Prometheus side of collectd-capture, with the files shipped in `contrib/`:
//!
//! - `contrib/prometheus/alerts.yml` passes `promtool check rules` and its unit tests
//!   (`alerts_test.yml`, `promtool test rules`); `prometheus.yml` passes `promtool check config`.
//! - The relabel rules of `contrib/prometheus/prometheus.yml` split instance names into `user`,
//!   `comm` and `pid` labels, checked on a table of names served to a real Prometheus.
//! - End to end: collectd (capture + write_prometheus on a free loopback port) → Prometheus
//!   (Debian package, scraping every second with the shipped configuration) → query API: the
//!   workload's series carry its user, comm and pid; a CPU burner's rate matches what the kernel
//!   says it used; the alert rules select real series; every query of the Grafana dashboard
//!   `contrib/grafana/collectd-capture.json` returns data.
//!
//! Tests skip (`SKIP: ...` on stderr) when not root (the end-to-end test) or when `prometheus` /
//! `promtool` are missing; with `CI` set a missing tool is a failure.

mod common;

use common::prometheus::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

// ------------------------------------------------------------------------------------------------
// promtool

/// Runs `promtool ARGS` in `contrib/prometheus` and panics with its output unless it succeeds.
fn promtool(args: &[&str]) -> String {
    let dir = contrib_file("");
    let output = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("running promtool: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "`promtool {}` in {} failed ({}):\n{text}",
        args.join(" "),
        dir.display(),
        output.status
    );
    text
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    if let Err(reason) = tool_available("promtool") {
        return skip(&reason);
    }
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // The configuration, with the rule file it names.
    let config = promtool(&["check", "config", "prometheus.yml"]);
    assert!(config.contains("SUCCESS"), "{config}");
    eprintln!("{checked}{tested}{config}");
}

/// Every alert of alerts.yml has a firing case in alerts_test.yml, and a case where it must
/// not fire (`exp_alerts: []`): a rule cannot be added without its unit test.
#[test]
fn every_alert_has_firing_and_quiet_unit_tests() {
    let alerts = std::fs::read_to_string(contrib_file("alerts.yml")).expect("alerts.yml");
    let tests = std::fs::read_to_string(contrib_file("alerts_test.yml")).expect("alerts_test.yml");
    let names: Vec<&str> = alerts
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();
    assert!(names.len() >= 6, "alerts found in alerts.yml: {names:?}");
    // Each case: `alertname: X` followed by its `exp_alerts:` line.
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for name in names {
        let mut firing = false;
        let mut quiet = false;
        for (i, line) in lines.iter().enumerate() {
            if *line != format!("alertname: {name}") {
                continue;
            }
            match lines.get(i + 1) {
                Some(&"exp_alerts: []") => quiet = true,
                Some(&"exp_alerts:") => firing = true,
                other => panic!("alertname: {name} followed by {other:?} in alerts_test.yml"),
            }
        }
        assert!(firing, "alert {name} has no firing case in alerts_test.yml");
        assert!(quiet, "alert {name} has no case where it must not fire");
    }
}

// ------------------------------------------------------------------------------------------------
// Relabeling, on a table of instance names

/// A minimal exporter: serves `body` as Prometheus text to every request until dropped.
struct StaticExporter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StaticExporter {
    fn start(body: String) -> StaticExporter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = serve(stream, &body);
                }
            }
        });
        StaticExporter {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

/// Reads the request's head, answers with `body`, closes.
fn serve(mut stream: TcpStream, body: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 && line != "\r\n" {
        line.clear();
    }
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

impl Drop for StaticExporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Labels a series has besides those Prometheus and write_prometheus give every series.
fn identity(series: &Value) -> BTreeMap<String, String> {
    ["user", "comm", "pid"]
        .iter()
        .filter_map(|name| label(series, name).map(|v| (name.to_string(), v.to_string())))
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn relabel_rules_split_instance_names_into_user_comm_and_pid() {
    // (instance name as the plugin sanitizes it, the labels the shipped rules must give)
    let table: &[(&str, &[(&str, &str)])] = &[
        // GroupBy "{user}:{comm}:{pid}"
        (
            "root:sshd:812",
            &[("user", "root"), ("comm", "sshd"), ("pid", "812")],
        ),
        // A uid without a name, a comm with ':' and a space in it.
        (
            "1001:a:b c:7",
            &[("user", "1001"), ("comm", "a:b c"), ("pid", "7")],
        ),
        (
            "www-data:php-fpm7.4:4194304",
            &[
                ("user", "www-data"),
                ("comm", "php-fpm7.4"),
                ("pid", "4194304"),
            ],
        ),
        // A comm that ends in ':<digits>' itself.
        (
            "root:worker:3:99",
            &[("user", "root"), ("comm", "worker:3"), ("pid", "99")],
        ),
        // GroupBy "{comm}" and Process rules: the name is the comm.
        ("postgres", &[("comm", "postgres")]),
        ("kworker", &[("comm", "kworker")]),
        ("Web Content", &[("comm", "Web Content")]),
        // A process named like a plugin instance gets a '_' appended by the plugin.
        ("self_", &[("comm", "self_")]),
        // The plugin's own instances: left alone.
        ("self", &[]),
        ("unattributed", &[]),
        ("forwarded", &[]),
    ];
    let mut body = String::new();
    for (name, _) in table {
        body.push_str(&format!(
            "collectd_capture_ps_count_processes{{capture=\"{name}\",instance=\"web1\"}} 1\n"
        ));
    }
    // A series of another plugin, without a capture label: untouched.
    body.push_str("collectd_load_shortterm{instance=\"web1\"} 0.5\n");
    let exporter = StaticExporter::start(body);
    let Some(prometheus) = Prometheus::start(&exporter.addr.to_string()) else {
        return;
    };
    let series = prometheus.wait_query(
        "collectd_capture_ps_count_processes",
        "every instance name scraped",
        Duration::from_secs(20),
        |s| s.len() == table.len(),
    );
    let by_name: BTreeMap<&str, &Value> = series
        .iter()
        .map(|s| (label(s, "capture").expect("a capture label"), s))
        .collect();
    for (name, want) in table {
        let got = by_name
            .get(name)
            .unwrap_or_else(|| panic!("no series for capture={name:?} in {series:?}"));
        assert_eq!(
            identity(got),
            labels(want),
            "labels of capture={name:?}: {got}"
        );
        // honor_labels keeps the host write_prometheus names.
        assert_eq!(label(got, "instance"), Some("web1"), "{got}");
        assert_eq!(label(got, "job"), Some("collectd"), "{got}");
    }
    let load = prometheus.query("collectd_load_shortterm").expect("query");
    assert_eq!(load.len(), 1, "{load:?}");
    assert_eq!(identity(&load[0]), BTreeMap::new(), "{}", load[0]);
}

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
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

// ------------------------------------------------------------------------------------------------
// End to end: collectd → write_prometheus → Prometheus → query API, alerts and dashboard

/// The host name collectd reports as (`instance` label).
const HOST: &str = "web1";

/// utime + stime of `pid` from /proc/PID/stat, in µs.
fn cputime_us(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/stat: {e}"));
    // Fields after the comm (which may hold spaces and ')'): state is 0, utime 11, stime 12.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a comm") + 1..]
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> f64 { fields[i].parse().expect("a number of ticks") };
    (ticks(11) + ticks(12)) * 1e6 / clock_ticks_per_second()
}

/// utime + stime of a process read every 20 ms by a thread of its own, until dropped.
struct CpuLog {
    samples: Arc<std::sync::Mutex<Vec<(f64, f64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CpuLog {
    fn start(pid: u32) -> CpuLog {
        let samples = Arc::new(std::sync::Mutex::new(vec![(now(), cputime_us(pid))]));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopping) = (Arc::clone(&samples), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                let sample = (now(), cputime_us(pid));
                log.lock().expect("the CPU log").push(sample);
            }
        });
        CpuLog {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The CPU time in µs at `time`, interpolated between the two readings around it.
    fn at(&self, time: f64) -> f64 {
        let samples = self.samples.lock().expect("the CPU log");
        let after = samples
            .iter()
            .position(|(t, _)| *t >= time)
            .unwrap_or_else(|| panic!("no reading of the CPU time after {time}"));
        assert!(after > 0, "no reading of the CPU time before {time}");
        let ((t0, c0), (t1, c1)) = (samples[after - 1], samples[after]);
        c0 + (c1 - c0) * (time - t0) / (t1 - t0).max(1e-9)
    }
}

impl Drop for CpuLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The (metric name, `type` label) pairs of a query result.
fn families(series: &[Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = series
        .iter()
        .map(|s| {
            (
                label(s, "__name__").unwrap_or("").to_string(),
                label(s, "type").unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What every process instance reports, as write_prometheus names it (README, "Metrics").
const PROCESS_FAMILIES: &[(&str, &str)] = &[
    ("collectd_capture_disk_octets_read_total", ""),
    ("collectd_capture_disk_octets_write_total", ""),
    ("collectd_capture_file_handles", ""),
    ("collectd_capture_file_handles", "limit"),
    ("collectd_capture_if_octets_rx_total", ""),
    ("collectd_capture_if_octets_tx_total", ""),
    ("collectd_capture_if_packets_rx_total", ""),
    ("collectd_capture_if_packets_tx_total", ""),
    ("collectd_capture_io_octets_rx_total", ""),
    ("collectd_capture_io_octets_tx_total", ""),
    ("collectd_capture_io_ops_read_total", ""),
    ("collectd_capture_io_ops_write_total", ""),
    ("collectd_capture_percent", "cpu"),
    ("collectd_capture_percent", "file_handles"),
    ("collectd_capture_percent", "memory"),
    ("collectd_capture_ps_count_processes", ""),
    ("collectd_capture_ps_count_threads", ""),
    ("collectd_capture_ps_cputime_syst_total", ""),
    ("collectd_capture_ps_cputime_user_total", ""),
    ("collectd_capture_ps_rss", ""),
    ("collectd_capture_ps_vm", ""),
];

/// Waits until Prometheus has a series of `metric` for the workload named `comm`: the plugin
/// has seen the process and a scrape has carried its first values.
fn wait_seen(prometheus: &Prometheus, metric: &str, comm: &str) -> Vec<Value> {
    prometheus.wait_query(
        &format!("{metric}{{comm=\"{comm}\"}}"),
        &format!("{metric} of workload {comm}"),
        Duration::from_secs(30),
        |s| !s.is_empty(),
    )
}

#[test]
fn collectd_to_prometheus_end_to_end() {
    if let Err(reason) = tool_available("prometheus") {
        return skip(&reason);
    }
    let started = Instant::now();
    let port = free_port();
    // A watched group no process has, one whose process runs (both named like GroupBy "{comm}"
    // names them), the workloads each on their own as GroupBy "{user}:{comm}:{pid}" would put
    // them, and every other process by command name. (Every process on its own would be 1,000
    // instances and more on a busy test box: MaxInstances would leave new ones out.)
    let watched = unique_comm("cw_gone_");
    let named = unique_comm("cw_named_");
    let (burner_comm, writer_comm) = (unique_comm("cw:b:"), unique_comm("cw_w_"));
    let (server_comm, client_comm) = (unique_comm("cw_srv_"), unique_comm("cw_cli_"));
    let block = format!(
        "Process \"{watched}\"\nProcess \"{named}\"\n\
         <Match \"{{user}}:{{comm}}:{{pid}}\">\n  Comm \"^({burner_comm}|{writer_comm}|{server_comm}|{client_comm})$\"\n</Match>\n\
         GroupBy \"{{comm}}\""
    );
    let Some(collectd) = Collectd::start_extended(
        Some(&block),
        &Extra {
            plugins: &["write_prometheus"],
            config: &write_prometheus_block(port),
            hostname: Some(HOST),
            without_capture: false,
        },
    ) else {
        return;
    };
    let Some(prometheus) = Prometheus::start(&format!("127.0.0.1:{port}")) else {
        return;
    };
    eprintln!(
        "collectd and prometheus up after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Workloads: a CPU burner whose command name holds ':' (the relabel rule must anchor on the
    // user and the pid), a process of the named group, a disk writer, and a loopback TCP
    // transfer. The writer and the client wait until Prometheus has their first values, so
    // their counters grow where Prometheus sees it.
    let mut burner = collectd.spawn(&burner_comm, &["burn", "120"]);
    burner.expect_line("ready");
    let mut member = collectd.spawn(&named, &["sleep", "120"]);
    member.expect_line("ready");
    let file = collectd.dir().join("written.bin");
    let mut writer = collectd.spawn_gated(
        &writer_comm,
        &[
            "write",
            "20",
            file.to_str().expect("UTF-8 path"),
            "120",
            "sync",
        ],
    );
    let mut server = collectd.spawn(&server_comm, &["tcp-serve", "127.0.0.1", "120"]);
    let server_port = server.expect_line_starting("port ");
    let mut client = collectd.spawn_gated(
        &client_comm,
        &[
            "tcp-send",
            &format!("127.0.0.1:{server_port}"),
            "2000000",
            "10",
            "120",
        ],
    );
    wait_seen(
        &prometheus,
        "collectd_capture_disk_octets_write_total",
        &writer.comm,
    );
    writer.go();
    wait_seen(
        &prometheus,
        "collectd_capture_if_octets_tx_total",
        &client.comm,
    );
    client.go();
    writer.expect_line("ready");
    client.expect_line("sent");

    // The CPU window starts here: what the kernel says the burner used, every 20 ms.
    let t0 = now();
    let kernel = CpuLog::start(burner.pid);

    // 1. Identity: every series of the burner carries user, comm and pid.
    let series = wait_seen(
        &prometheus,
        "collectd_capture_ps_count_processes",
        &burner.comm,
    );
    assert_eq!(series.len(), 1, "{series:?}");
    let pid = burner.pid.to_string();
    let capture = format!("root:{}:{pid}", burner.comm);
    let want = labels(&[("user", "root"), ("comm", &burner.comm), ("pid", &pid)]);
    assert_eq!(identity(&series[0]), want, "{}", series[0]);
    assert_eq!(label(&series[0], "capture"), Some(capture.as_str()));
    assert_eq!(label(&series[0], "instance"), Some(HOST));
    assert_eq!(sample_value(&series[0]), 1.0, "{}", series[0]);
    let all = prometheus
        .query(&format!("{{capture=\"{capture}\"}}"))
        .expect("query");
    for series in &all {
        assert_eq!(identity(series), want, "{series}");
    }
    let found = families(&all);
    for (name, type_) in PROCESS_FAMILIES {
        assert!(
            found.contains(&(name.to_string(), type_.to_string())),
            "no {name}{{type={type_:?}}} for {capture}; found {found:?}"
        );
    }
    // A group named after a command (Process rule, as GroupBy "{comm}"): comm only.
    let named_series = wait_seen(&prometheus, "collectd_capture_ps_count_processes", &named);
    assert_eq!(
        identity(&named_series[0]),
        labels(&[("comm", &named)]),
        "{}",
        named_series[0]
    );
    // The plugin's own instances: no identity labels at all.
    let own = prometheus
        .query("{capture=~\"self|unattributed|forwarded\"}")
        .expect("query");
    assert!(!own.is_empty());
    for series in &own {
        assert_eq!(identity(series), BTreeMap::new(), "{series}");
    }
    let found = families(&own);
    for (name, type_) in [
        ("collectd_capture_duration_seconds", "sampler"),
        ("collectd_capture_count", "processes"),
        ("collectd_capture_count", "instances"),
        ("collectd_capture_count", "instances_dropped"),
    ] {
        assert!(
            found.contains(&(name.to_string(), type_.to_string())),
            "no {name}{{type={type_:?}}} for self; found {found:?}"
        );
    }
    assert!(
        found
            .iter()
            .any(|(name, type_)| name == "collectd_capture_derive_total"
                && type_.starts_with("pcap_dropped-")),
        "no collectd_capture_derive_total{{type=\"pcap_dropped-<iface>\"}}; found {found:?}"
    );

    // 2. The watched group with no process: 0 processes, and its alert pending.
    let gone = wait_seen(&prometheus, "collectd_capture_ps_count_processes", &watched);
    assert_eq!(sample_value(&gone[0]), 0.0, "{}", gone[0]);
    prometheus.wait_query(
        &format!(
            "ALERTS{{alertname=\"CaptureWatchedGroupGone\",capture=\"{watched}\",\
             alertstate=\"pending\"}}"
        ),
        "the watched group's alert to be pending",
        Duration::from_secs(15),
        |s| s.len() == 1,
    );

    // 3. Every selector of every alert rule matches series of this collectd.
    check_rule_selectors(&prometheus);

    // 4. Every query of the Grafana dashboard returns data.
    check_dashboard(&prometheus, &collectd, &watched);

    // 5. The burner's CPU rate over 10 s as Prometheus computes it from the plugin's samples,
    //    against what the kernel says it used between the first and the last of them (the
    //    box may be busy: the burner gets what it gets, but both must see the same).
    let t1 = now().max(t0 + 10.0);
    std::thread::sleep(Duration::from_secs_f64((t1 - now()).max(0.0)));
    // Samples are stamped when the plugin took them and reach Prometheus within about two
    // seconds (one interval, one scrape): wait for them, then ask about the window ending at t1.
    std::thread::sleep(Duration::from_secs(3));
    let window = format!("{}ms", ((t1 - t0) * 1000.0) as u64);
    let expr = |name: &str, range: &str| {
        format!(
            "{range}(collectd_capture_ps_cputime_{name}_total{{capture=\"{capture}\"}}[{window}])"
        )
    };
    let rate = prometheus
        .query_at(
            &format!(
                "({} + {}) / 1e6",
                expr("user", "rate"),
                expr("syst", "rate")
            ),
            t1,
        )
        .expect("query");
    assert_eq!(rate.len(), 1, "{rate:?}");
    let rate = sample_value(&rate[0]);
    // The samples themselves: user and syst, stamped alike.
    let samples = |name: &str| -> Vec<(f64, f64)> {
        let raw = prometheus.query_at(&expr(name, ""), t1).expect("query");
        raw[0]["values"]
            .as_array()
            .expect("a range of samples")
            .iter()
            .map(|pair| {
                let value: f64 = pair[1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .expect("a sample value");
                (pair[0].as_f64().expect("a time stamp"), value)
            })
            .collect()
    };
    let (user, syst) = (samples("user"), samples("syst"));
    let stamps: Vec<f64> = user.iter().map(|(t, _)| *t).collect();
    let (first, last) = (stamps[0], stamps[stamps.len() - 1]);
    assert!(
        stamps.len() >= 5 && last - first >= 5.0,
        "samples of the burner in the {window} window: {stamps:?}"
    );
    assert_eq!(
        syst.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        stamps,
        "user and syst samples stamped differently"
    );
    let used = (kernel.at(last) - kernel.at(first)) / 1e6 / (last - first);
    let grown = |s: &[(f64, f64)]| s[s.len() - 1].1 - s[0].1;
    let sampled = (grown(&user) + grown(&syst)) / 1e6 / (last - first);
    eprintln!(
        "burner over {window} ({} samples over {:.1} s): {sampled:.3} cores in its samples, \
         {rate:.3} by rate(), {used:.3} by /proc/{}/stat",
        stamps.len(),
        last - first,
        burner.pid
    );
    // What the plugin sampled is what the kernel counted between the same two moments (the
    // box may be busy: the burner gets what it gets, but both must see the same).
    assert!(
        (sampled - used).abs() <= 0.03 + 0.1 * used,
        "burner's samples grew by {sampled} cores, {used} cores by /proc"
    );
    // rate() extrapolates the samples' increase towards the window's edges, fully only when
    // the samples reach within 1.1 intervals of them: a sample lost between two scrapes at
    // an edge leaves part of the window uncovered. So it lies between the increase spread
    // over the whole window and the increase over the covered span (+ a few percent); one
    // thread never uses more than a core.
    let span = (t1 - t0).max(last - first);
    let (low, high) = (sampled * (last - first) / span, sampled * 1.05);
    assert!(
        rate > 0.0 && rate <= 1.05,
        "burner's rate {rate} cores is outside 0..1.05"
    );
    assert!(
        (low - 0.03..=high + 0.03).contains(&rate),
        "burner's rate() {rate} cores is outside {low:.3}..{high:.3} (samples: {sampled} cores \
         over {:.1} s of a {window} window)",
        last - first
    );
    eprintln!("end to end took {:.1} s", started.elapsed().as_secs_f64());
}

/// Selectors `collectd_capture_*{...}` of a PromQL expression.
fn selectors(expr: &str) -> Vec<String> {
    let re = regex::Regex::new(r"collectd_capture_\w+(\{[^}]*\})?").expect("a regex");
    re.find_iter(expr).map(|m| m.as_str().to_string()).collect()
}

/// Each selector of each rule Prometheus loaded from alerts.yml matches at least one series:
/// the rules use the names and labels write_prometheus and the relabel rules really produce.
fn check_rule_selectors(prometheus: &Prometheus) {
    let data = prometheus.api("/api/v1/rules").expect("rules");
    let mut checked = 0;
    for group in data["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            assert_eq!(rule["health"], "ok", "{rule}");
            let query = rule["query"].as_str().expect("a query");
            for selector in selectors(query) {
                let count = prometheus
                    .query(&format!("count({selector})"))
                    .expect("query");
                assert!(
                    !count.is_empty(),
                    "selector {selector} of rule {} matches no series",
                    rule["name"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} selectors in the rules");
}

/// The dashboard as shipped.
fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/grafana/collectd-capture.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A query of the dashboard with its template variables replaced as Grafana would for host
/// `host`, every user and command, the top 10, and a rate interval of a minute.
fn substitute(expr: &str, host: &str) -> String {
    let mut out = expr.to_string();
    for (name, value) in [
        ("__rate_interval", "1m"),
        ("instance", host),
        ("user", ".*"),
        ("comm", ".*"),
        ("top", "10"),
    ] {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(!out.contains('$'), "unknown variable in {expr:?}");
    out
}

/// The queries of the panels, by title.
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("a target without expr in panel {}", panel["title"]));
            let title = panel["title"].as_str().expect("a title").to_string();
            out.push((title, expr.to_string()));
        }
    }
    out
}

/// Runs every panel query and variable query of the dashboard against `prometheus`.
fn check_dashboard(prometheus: &Prometheus, collectd: &Collectd, watched: &str) {
    let dashboard = dashboard();
    let disk_backed = !matches!(fs_type(collectd.dir()).as_str(), "tmpfs" | "ramfs");
    // Panels the workloads give non-zero values: CPU, memory, descriptors, network both ways,
    // and disk writes where the file system has a block layer.
    let mut must_be_positive = vec![
        "CPU (cores)",
        "Memory (RSS)",
        "Open file descriptors",
        "Network received",
        "Network sent",
    ];
    if disk_backed {
        must_be_positive.push("Disk writes");
    }
    let queries = panel_queries(&dashboard);
    for (title, expr) in &queries {
        let expr = substitute(expr, HOST);
        let positive = must_be_positive.contains(&title.as_str());
        let watching = title == "Watched groups without a process";
        // Rates need two samples in their window: a series that appeared a moment ago may
        // have data only after the next scrape.
        prometheus.wait_query(
            &expr,
            &format!("data in panel {title:?}"),
            Duration::from_secs(20),
            |result| {
                !result.is_empty()
                    && (!positive || result.iter().any(|s| sample_value(s) > 0.0))
                    && (!watching || result.iter().any(|s| label(s, "capture") == Some(watched)))
            },
        );
    }
    eprintln!("{} dashboard queries returned data", queries.len());
    // Variables: label_values(SELECTOR, LABEL) finds series with LABEL.
    let re = regex::Regex::new(r"^label_values\((.*), *(\w+)\)$").expect("a regex");
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if variable["type"] != "query" {
            continue;
        }
        let definition = variable["definition"].as_str().expect("a definition");
        let captures = re
            .captures(definition)
            .unwrap_or_else(|| panic!("variable query {definition:?} is not label_values(..)"));
        let selector = substitute(&captures[1], HOST);
        let wanted = &captures[2];
        let data = prometheus
            .api(&format!("/api/v1/series?match[]={}", url_encode(&selector)))
            .expect("series");
        let values: Vec<&str> = data
            .as_array()
            .expect("a list of series")
            .iter()
            .filter_map(|s| s[wanted].as_str())
            .collect();
        assert!(
            !values.is_empty(),
            "variable {}: {definition} gives no values",
            variable["name"]
        );
        if wanted == "instance" {
            assert!(values.contains(&HOST), "{values:?}");
        }
    }
}

#[test]
fn grafana_dashboard_is_well_formed() {
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    assert_eq!(variable("DS_PROMETHEUS")["type"], "datasource");
    assert_eq!(variable("DS_PROMETHEUS")["query"], "prometheus");
    // The per-host selector.
    assert!(variable("instance")["definition"]
        .as_str()
        .is_some_and(|d| d.ends_with(", instance)")));
    let mut ids = Vec::new();
    for panel in panels(&dashboard) {
        ids.push(panel["id"].as_u64().expect("a numeric id"));
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64(), grid["w"].as_u64());
        assert!(
            matches!((x, w), (Some(x), Some(w)) if x + w <= 24),
            "panel {} does not fit the 24 columns: {grid}",
            panel["title"]
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {}",
            panel["title"]
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("an expr");
            let found = selectors(expr);
            assert!(!found.is_empty(), "panel {}: {expr}", panel["title"]);
            for selector in found {
                assert!(
                    selector.contains("instance=~\"$instance\""),
                    "panel {}: {selector} in {expr} ignores the host selector",
                    panel["title"]
                );
            }
            assert_eq!(target["datasource"]["uid"], "${DS_PROMETHEUS}");
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "panel ids are not unique");
    // What the dashboard is for.
    let titles: Vec<String> = panels(&dashboard)
        .iter()
        .filter_map(|p| p["title"].as_str().map(str::to_lowercase))
        .collect();
    for topic in [
        "cpu",
        "memory",
        "descriptors",
        "disk",
        "network",
        "unattributed",
        "drops",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no panel about {topic}: {titles:?}"
        );
    }
}

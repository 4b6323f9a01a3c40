//! Many hosts (docs/many-hosts.md): an edge collectd with the capture plugin sends its values
//! with collectd's network plugin to a central collectd (no capture plugin), which serves them
//! with write_prometheus; the edge's host name survives the way, as the label `instance`.
//!
//! Both collectd configurations are the shipped `contrib/collectd/edge.conf` and `central.conf`
//! (encrypted, with the shipped `network-auth.example` as AuthFile), with only the addresses,
//! ports and the AuthFile's path replaced: the files an operator copies are the ones tested.

mod common;

use common::prometheus::{free_port, http_get};
use common::*;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const EDGE_HOST: &str = "edge-test-1";
/// An edge whose password the central does not know.
const INTRUDER_HOST: &str = "edge-test-bad";

fn contrib(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/collectd")
        .join(name)
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    socket.local_addr().expect("local address").port()
}

/// Replaces the one occurrence of `from` in `text`, or panics: the shipped file changed shape,
/// and the test must be told rather than test something else.
fn replace_once(text: &str, from: &str, to: &str, file: &str) -> String {
    let count = text.matches(from).count();
    assert_eq!(
        count, 1,
        "contrib/collectd/{file} should contain {from:?} exactly once (found {count})"
    );
    text.replacen(from, to, 1)
}

/// A shipped snippet as the harness runs it: its `LoadPlugin` lines left out (the harness loads
/// the plugins it is given) and `replacements` made.
fn shipped(file: &str, replacements: &[(&str, &str)]) -> String {
    let text = fs::read_to_string(contrib(file))
        .unwrap_or_else(|e| panic!("reading contrib/collectd/{file}: {e}"));
    let mut text: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("LoadPlugin"))
        .map(|line| format!("{line}\n"))
        .collect();
    for (from, to) in replacements {
        text = replace_once(&text, from, to, file);
    }
    text
}

/// One sample of a `/metrics` page: `name{labels} value [timestamp]`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    /// write_prometheus stamps each sample with the value's time, in ms.
    timestamp_ms: Option<i64>,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the text exposition format as write_prometheus writes it (label values without
/// escaped quotes or commas: instance names are sanitized, host names are plain).
fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (name, rest) = match line.find('{') {
                Some(brace) => (&line[..brace], &line[brace + 1..]),
                None => line.split_once(' ')?,
            };
            let (labels, values) = match rest.find('}') {
                Some(close) if line.contains('{') => (&rest[..close], rest[close + 1..].trim()),
                _ => ("", rest.trim()),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.to_string(), value.trim_matches('"').to_string()))
                })
                .collect();
            let mut values = values.split_whitespace();
            let value = values.next()?.parse().ok()?;
            let timestamp_ms = values.next().and_then(|t| t.parse().ok());
            Some(Sample {
                name: name.to_string(),
                labels,
                value,
                timestamp_ms,
            })
        })
        .collect()
}

/// Scrapes `addr` until `probe` accepts the samples, or panics after `timeout` with the last
/// page's samples of the edge hosts.
fn wait_scrape<T>(
    addr: SocketAddr,
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut(&[Sample]) -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let page = match http_get(addr, "/metrics") {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("GET /metrics: HTTP {status}: {body}"),
            Err(e) => panic!("GET http://{addr}/metrics: {e}"),
        };
        let samples = parse_metrics(&page);
        if let Some(found) = probe(&samples) {
            return found;
        }
        if Instant::now() >= deadline {
            let edges: Vec<String> = page
                .lines()
                .filter(|l| l.contains("instance=\"edge-"))
                .take(40)
                .map(str::to_owned)
                .collect();
            panic!(
                "timed out after {timeout:?} waiting for {what}; {} samples, of edge hosts: \
                 {edges:#?}",
                samples.len()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The sample `name{capture="<instance>", instance="<host>"}`, if served.
fn sample<'a>(samples: &'a [Sample], name: &str, instance: &str, host: &str) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name && s.label("capture") == Some(instance) && s.label("instance") == Some(host)
    })
}

/// The values of the row stamped `epoch_ms` in the csv file `dir/<name>-YYYY-MM-DD` (epoch
/// left out), once it is written.
fn csv_row_at(dir: &Path, name: &str, epoch_ms: i64) -> Option<Vec<f64>> {
    let prefix = format!("{name}-2");
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|f| fs::read_to_string(f.path()).ok())
        .flat_map(|text| text.lines().map(str::to_owned).collect::<Vec<_>>())
        .find_map(|line| {
            let mut fields = line.split(',');
            let epoch: f64 = fields.next()?.parse().ok()?;
            ((epoch * 1000.0).round() as i64 == epoch_ms)
                .then(|| fields.filter_map(|f| f.parse().ok()).collect())
        })
}

#[test]
fn edge_values_reach_prometheus_through_a_central_collectd_with_their_host_name() {
    let network_port = free_udp_port().to_string();
    let prometheus_port = free_port();
    let auth = tempfile::tempdir().expect("a temporary directory");
    let auth_file = auth.path().join("network-auth");
    fs::copy(contrib("network-auth.example"), &auth_file).expect("copying the AuthFile");
    let auth_file = auth_file.display().to_string();

    let central_config = shipped(
        "central.conf",
        &[
            (
                r#"<Listen "0.0.0.0" "25826">"#,
                &format!(r#"<Listen "127.0.0.1" "{network_port}">"#),
            ),
            (
                r#"AuthFile "/etc/collectd/network-auth""#,
                &format!(r#"AuthFile "{auth_file}""#),
            ),
            (
                r#"Port "9103""#,
                &format!("Host \"127.0.0.1\"\n  Port \"{prometheus_port}\""),
            ),
        ],
    );
    let Some(central) = Collectd::start_extended(
        None,
        &Extra {
            plugins: &["network", "write_prometheus"],
            config: &central_config,
            hostname: Some("central-test"),
            without_capture: true,
        },
    ) else {
        return;
    };

    let server = (
        r#"<Server "collectd-central.example.net" "25826">"#,
        format!(r#"<Server "127.0.0.1" "{network_port}">"#),
    );
    let edge_config = shipped("edge.conf", &[(server.0, &server.1)]);
    let Some(edge) = Collectd::start_extended(
        None,
        &Extra {
            plugins: &["network"],
            config: &edge_config,
            hostname: Some(EDGE_HOST),
            without_capture: false,
        },
    ) else {
        return;
    };

    // An edge with a wrong password: the central must drop everything it sends. It reports
    // one fixed instance, present even with no process.
    let intruder_config = shipped(
        "edge.conf",
        &[
            (server.0, &server.1),
            ("\"CHANGE-ME\"", "\"not-the-password\""),
        ],
    );
    let intruder_comm = unique_comm("so_intr_");
    let Some(_intruder) = Collectd::start_extended(
        Some(&format!("GroupBy \"\"\nProcess \"{intruder_comm}\"")),
        &Extra {
            plugins: &["network"],
            config: &intruder_config,
            hostname: Some(INTRUDER_HOST),
            without_capture: false,
        },
    ) else {
        return;
    };

    let started = Instant::now();
    let comm = unique_comm("so_burn_");
    let mut burner = edge.spawn(&comm, &["burn", "30"]);
    burner.expect_line("ready");
    let addr: SocketAddr = format!("127.0.0.1:{prometheus_port}")
        .parse()
        .expect("an address");

    // The workload on the edge, under its command name and the edge's host name: one process.
    let processes = wait_scrape(addr, "the burner's ps_count", TIMEOUT, |samples| {
        sample(
            samples,
            "collectd_capture_ps_count_processes",
            &comm,
            EDGE_HOST,
        )
        .map(|s| s.value)
    });
    assert_eq!(
        processes, 1.0,
        "ps_count processes of {comm} on {EDGE_HOST}"
    );
    let first_seen = started.elapsed();

    // Its CPU counter keeps rising, and each value the central serves is the one the edge
    // itself wrote (its csv file) for the same time: nothing is lost or rounded on the way.
    let cputime = |samples: &[Sample]| {
        let user = sample(
            samples,
            "collectd_capture_ps_cputime_user_total",
            &comm,
            EDGE_HOST,
        )?;
        let syst = sample(
            samples,
            "collectd_capture_ps_cputime_syst_total",
            &comm,
            EDGE_HOST,
        )?;
        Some((user.value + syst.value, user.timestamp_ms?))
    };
    let (before, _) = wait_scrape(addr, "the burner's ps_cputime", TIMEOUT, cputime);
    let (after, at_ms) = wait_scrape(addr, "a higher ps_cputime", TIMEOUT, |samples| {
        cputime(samples).filter(|(v, _)| *v >= before + 1e6)
    });
    let edge_file = edge.dir().join(format!("csv/{EDGE_HOST}/capture-{comm}"));
    let written = wait_for("the edge's own row of that time", TIMEOUT, || {
        csv_row_at(&edge_file, "ps_cputime", at_ms)
    });
    assert_eq!(
        after,
        written.iter().sum::<f64>(),
        "ps_cputime (user + syst, µs) of {comm} at {at_ms} ms: served by the central vs \
         written by the edge {written:?}"
    );

    // Every capture series of the edge carries its host name; none of the central's own
    // values is mistaken for capture, and the intruder's never arrive.
    let samples = wait_scrape(addr, "the edge's series", TIMEOUT, |samples| {
        Some(
            samples
                .iter()
                .filter(|s| s.name.starts_with("collectd_capture_"))
                .map(|s| s.label("instance").unwrap_or("").to_string())
                .collect::<Vec<_>>(),
        )
    });
    assert!(
        samples.iter().all(|host| host == EDGE_HOST),
        "capture series of other hosts than {EDGE_HOST}: {:?}",
        samples
            .iter()
            .filter(|h| *h != EDGE_HOST)
            .collect::<std::collections::BTreeSet<_>>()
    );
    // ... because the central refused them (the same user name, the wrong password), not
    // because they were lost.
    let central_log = central.log();
    assert!(
        central_log.contains("network plugin: Checksum mismatch. Username: edge"),
        "the central did not refuse the intruder's packets: {central_log}"
    );
    assert!(
        !central_log.contains(INTRUDER_HOST),
        "the intruder's host name reached the central: {central_log}"
    );
    eprintln!(
        "first value through the central after {:.1} s; {} capture series of {EDGE_HOST}; \
         ps_cputime {before} -> {after} µs",
        first_seen.as_secs_f64(),
        samples.len()
    );
}

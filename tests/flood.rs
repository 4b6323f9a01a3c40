//! Bounded and right under floods (issue 14): a real collectd capturing `lo` under a flood of
//! new UDP flows that no socket owns — examples/flow_flood.rs: each datagram from a random
//! 127.a.b.c source address and port, to a loopback port nothing listens on, as a port scan or a
//! SYN flood looks — the shorter version of bench/flow_flood.sh (100,000 flows/s for 60 s).
//!
//! Asserted, from collectd's `/proc/PID/status` and what its csv writer stored:
//! - collectd's VmRSS, read every second from just before the flood to [`AFTER`] past its end,
//!   stays within [`RSS_EXCESS_MIB`] of its value before the flood, and the last reading is
//!   within [`RSS_AFTER_MIB`] of it;
//! - the process metrics keep arriving: rows of `capture-self/duration-sampler` and of a
//!   sleeping workload's `ps_rss` (each sampler snapshot is dispatched once, so a row is a new
//!   cycle) with no gap over [`MAX_GAP`] during the flood;
//! - `capture-self/derive-pcap_dropped-lo` is written through the flood;
//! - the shed counters (`derive-flows_shed`, `if_octets-shed`, `if_packets-shed`) are written
//!   during the flood, none negative: see [`SHED_COUNTERS_EXIST`];
//! - [`SENDERS_AFTER`] after the flood ends, a new TCP upload and a new UDP sender are each
//!   credited at least [`CREDITED`] of what they sent (`if_octets` tx of their own instance),
//!   waited for with a generous bound ([`ATTRIBUTION_WAIT`]), not slept for.
//!
//! Why 20 s ([`FLOOD_SECS`]) where the issue says 60: what is bounded is memory, and both sides
//! of the bound show within seconds. A bounded plugin reaches its tables' and queue's caps in a
//! second or two at this rate, and from then on holds its size; an unbounded one passes the
//! bound early: before the bounds, collectd grew 300 to 400 bytes a flow (+157 MiB for 530,000
//! flows in 10 s on the 2-core VM), so +48 MiB after some 170,000 flows. The rate is the
//! issue's; what the machine achieves is checked against [`MIN_FLOWS`], the count below which
//! an unbounded table would not show. On the 2-core VM the generator achieved about 60,000
//! flows/s beside collectd, and about 20,000 with two CPU hogs running as well (310,000 flows in
//! 15 s): 20 s gives that case twice [`MIN_FLOWS`], keeps the plugin shedding for 20 sampler
//! cycles, and costs a third of the benchmark's minute.
//!
//! Every failure is collected and reported together with the figures, so a failing run shows
//! the whole picture (the figures go to stderr: `-- --nocapture` shows them on a pass too).

mod common;

use common::*;
use std::fs;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the plugin writes the shed counters: `capture-self/derive-flows_shed` (new flows not
/// handed to the resolver), `capture-self/if_octets-shed` and `if_packets-shed` (rx, tx:
/// traffic credited to `unattributed` without a lookup because a table or queue was full).
/// While false the test checks only that none of them is written yet, and fails once one is,
/// asking for this to be set to true: then they must be written during the flood, and never
/// negative.
const SHED_COUNTERS_EXIST: bool = true;

/// New flows a second (the issue's rate).
const FLOOD_RATE: u64 = 100_000;
/// Seconds of flood (see the module comment).
const FLOOD_SECS: u64 = 20;
/// Flows the generator must at least have sent for the run to test anything: an unbounded
/// table (about 300 bytes a flow before the bounds) passes +48 MiB after some 170,000.
const MIN_FLOWS: u64 = 200_000;
/// The largest excess of collectd's RSS over its value before the flood, at any second.
const RSS_EXCESS_MIB: f64 = 48.0;
/// The largest excess [`AFTER`] the flood.
const RSS_AFTER_MIB: f64 = 24.0;
/// When RSS must be back near its value before the flood.
const AFTER: Duration = Duration::from_secs(10);
/// When the new senders start after the flood.
const SENDERS_AFTER: Duration = Duration::from_secs(1);
/// The longest gap between rows of the process metrics during the flood, in seconds: three
/// intervals (a loaded machine may delay a cycle or two; a stalled sampler is more), and half
/// an interval of jitter in the rows' stamps.
const MAX_GAP: f64 = 3.0 * INTERVAL + 0.5;
/// The share of what each new sender sent that must be credited to its own instance.
const CREDITED: f64 = 0.99;
/// How long, from the senders' start, the test waits for that share.
const ATTRIBUTION_WAIT: Duration = Duration::from_secs(60);
/// The TCP upload (payload bytes) and the UDP sender (datagrams of UDP_SIZE payload bytes, 28
/// of IPv4 and UDP headers each).
const UPLOAD: f64 = 20e6;
const UDP_COUNT: f64 = 2000.0;
const UDP_SIZE: f64 = 1000.0;

/// VmRSS of a process in KiB; `None` once it is gone.
fn rss_kib(pid: u32) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// The flood generator, killed and reaped when dropped.
struct Flood(Child);

impl Drop for Flood {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Flood {
    /// `Some((exited successfully, stdout, stderr))` once the generator has exited.
    fn finished(&mut self) -> Option<(bool, String, String)> {
        let status = self.0.try_wait().expect("polling the flood generator")?;
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut stdout) = self.0.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        if let Some(mut stderr) = self.0.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        Some((status.success(), out, err))
    }
}

/// The programs started after the flood: a TCP upload and a UDP sender, each with its peer.
struct Senders {
    tcp_server: Workload,
    tcp_client: Workload,
    udp_receiver: Workload,
    udp_sender: Workload,
    started: Instant,
}

fn start_senders(collectd: &Collectd) -> Senders {
    let started = Instant::now();
    let mut tcp_server =
        collectd.spawn(&unique_comm("cwf_srv_"), &["tcp-serve", "127.0.0.1", "300"]);
    let mut udp_receiver =
        collectd.spawn(&unique_comm("cwf_urx_"), &["udp-recv", "127.0.0.1", "300"]);
    let tcp_port = tcp_server.expect_line_starting("port ");
    let udp_port = udp_receiver.expect_line_starting("port ");
    let tcp_client = collectd.spawn(
        &unique_comm("cwf_up_"),
        &[
            "tcp-send",
            &format!("127.0.0.1:{tcp_port}"),
            &format!("{UPLOAD}"),
            "1",
            "300",
        ],
    );
    let udp_sender = collectd.spawn(
        &unique_comm("cwf_utx_"),
        &[
            "udp-send",
            &format!("127.0.0.1:{udp_port}"),
            &format!("{UDP_COUNT}"),
            &format!("{UDP_SIZE}"),
            "300",
        ],
    );
    Senders {
        tcp_server,
        tcp_client,
        udp_receiver,
        udp_sender,
        started,
    }
}

/// `(rows in [from, to], the longest gap in seconds between from, the rows and to)`.
fn gaps(rows: &[Row], from: f64, to: f64) -> (usize, f64) {
    let mut edges = vec![from];
    edges.extend(
        rows.iter()
            .map(|r| r.epoch)
            .filter(|e| (from..=to).contains(e)),
    );
    edges.push(to);
    let longest = edges.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    (edges.len() - 2, longest)
}

/// The value of data source `ds` in the last row of `name` of `instance`, 0 before any.
fn last_value(collectd: &Collectd, instance: &str, name: &str, ds: &str) -> f64 {
    collectd
        .rows(instance, name)
        .last()
        .map_or(0.0, |row| row.get(ds))
}

#[test]
fn a_flood_of_ownerless_flows_stays_bounded_and_new_traffic_is_still_attributed() {
    let Some(mut collectd) = Collectd::start_alone(Some(r#"Interface "lo""#)) else {
        return;
    };
    let generator = collectd.example_copy("flow_flood", &unique_comm("cwf_gen_"));
    let mut idle = collectd.spawn(&unique_comm("cwf_idle_"), &["sleep", "600"]);
    idle.expect_line("ready");
    let pid = collectd.pid();
    let warm = now() + SETTLE;
    collectd.wait_row_after("self", "derive-pcap_received-lo", warm);
    collectd.wait_row_after(&idle.comm, "ps_rss", warm);
    let rss = |collectd: &Collectd| {
        rss_kib(pid).unwrap_or_else(|| panic!("collectd (pid {pid}) is gone:\n{}", collectd.log()))
    };
    let mut before = Vec::new();
    for _ in 0..3 {
        before.push(rss(&collectd));
        std::thread::sleep(Duration::from_secs(1));
    }
    before.push(rss(&collectd));
    let base = *before.last().expect("samples");

    // A loopback port nothing listens on.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free loopback UDP port")
        .port();
    let mut flood = Flood(
        Command::new(&generator)
            .args([
                format!("127.0.0.1:{port}"),
                FLOOD_RATE.to_string(),
                FLOOD_SECS.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", generator.display())),
    );
    let t0 = now();
    let flood_started = Instant::now();

    // RSS every second until AFTER past the flood's end; the senders SENDERS_AFTER past it.
    let mut samples: Vec<(f64, f64)> = Vec::new(); // (s since the flood's start, KiB)
    let mut ended: Option<(Instant, f64, bool, String, String)> = None;
    let mut senders: Option<Senders> = None;
    let mut tick = flood_started;
    loop {
        if ended.is_none() {
            if let Some((ok, out, err)) = flood.finished() {
                ended = Some((Instant::now(), now(), ok, out, err));
                tick = Instant::now(); // the next readings at whole seconds after the end
            } else {
                assert!(
                    flood_started.elapsed() < Duration::from_secs(FLOOD_SECS + 60),
                    "the flood generator did not stop by itself"
                );
            }
        }
        let end = ended.as_ref().map(|e| e.0);
        if senders.is_none() && end.is_some_and(|e| e.elapsed() >= SENDERS_AFTER) {
            senders = Some(start_senders(&collectd));
        }
        let done = end.is_some_and(|e| e.elapsed() >= AFTER);
        samples.push((flood_started.elapsed().as_secs_f64(), rss(&collectd)));
        if done {
            break;
        }
        tick += Duration::from_secs(1);
        let now = Instant::now();
        if tick > now {
            std::thread::sleep(tick - now);
        } else {
            tick = now;
        }
    }
    let (_, t1, flood_ok, flood_out, flood_err) = ended.expect("the flood ended");
    let after = samples.last().expect("samples").1;
    let mut senders = senders.expect("the senders started");

    // Attribution of the new senders, waited for.
    senders.tcp_client.expect_line("sent");
    senders.udp_sender.expect_line("sent");
    let udp_bytes = UDP_COUNT * (UDP_SIZE + 28.0);
    let credited = |collectd: &Collectd| {
        (
            last_value(collectd, &senders.tcp_client.comm, "if_octets", "tx"),
            last_value(collectd, &senders.udp_sender.comm, "if_octets", "tx"),
        )
    };
    let (mut tcp_tx, mut udp_tx) = credited(&collectd);
    while (tcp_tx < CREDITED * UPLOAD || udp_tx < CREDITED * udp_bytes)
        && senders.started.elapsed() < ATTRIBUTION_WAIT
    {
        std::thread::sleep(Duration::from_millis(250));
        (tcp_tx, udp_tx) = credited(&collectd);
    }
    let attributed_after = senders.started.elapsed();
    // One more interval, so that a share that went on growing past 100% shows.
    std::thread::sleep(Duration::from_secs_f64(SETTLE));
    (tcp_tx, udp_tx) = credited(&collectd);
    let tcp_rx = last_value(&collectd, &senders.tcp_server.comm, "if_octets", "rx");
    let udp_rx = last_value(&collectd, &senders.udp_receiver.comm, "if_octets", "rx");

    // What was written during the flood.
    let sampler = gaps(&collectd.rows("self", "duration-sampler"), t0, t1);
    let process = gaps(&collectd.rows(&idle.comm, "ps_rss"), t0, t1);
    let dropped_rows = collectd.rows("self", "derive-pcap_dropped-lo");
    let dropped_at = |t: f64| {
        dropped_rows
            .iter()
            .rev()
            .find(|r| r.epoch <= t)
            .map_or(0.0, Row::value)
    };
    let pcap_dropped = dropped_at(t1 + SETTLE) - dropped_at(t0);
    let shed: Vec<(&str, Vec<Row>)> = ["derive-flows_shed", "if_octets-shed", "if_packets-shed"]
        .into_iter()
        .map(|name| (name, collectd.rows("self", name)))
        .collect();
    let sent: Option<u64> = flood_out
        .lines()
        .find_map(|l| l.strip_prefix("sent "))
        .and_then(|n| n.trim().parse().ok());

    let excess = samples.iter().map(|s| s.1 - base).fold(f64::MIN, f64::max);
    let mib = |kib: f64| kib / 1024.0;
    eprintln!(
        "flood: {FLOOD_RATE} flows/s for {FLOOD_SECS} s asked, generator said:\n{flood_out}{flood_err}"
    );
    eprintln!(
        "collectd VmRSS before {:.1} MiB (readings {:?} KiB), peak excess {:+.1} MiB, {} s after \
         the flood {:+.1} MiB",
        mib(base),
        before,
        mib(excess),
        AFTER.as_secs(),
        mib(after - base)
    );
    eprintln!(
        "  every second (s: MiB over before): {}",
        samples
            .iter()
            .map(|(t, k)| format!("{t:.0}: {:+.0}", mib(k - base)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!(
        "during the flood ({:.0} s): duration-sampler {} rows, longest gap {:.1} s; {} ps_rss {} \
         rows, longest gap {:.1} s; pcap_dropped-lo +{pcap_dropped}",
        t1 - t0,
        sampler.0,
        sampler.1,
        idle.comm,
        process.0,
        process.1
    );
    eprintln!(
        "after the flood, within {:.1} s of the senders' start: TCP upload tx {tcp_tx} of {UPLOAD} \
         ({:.2}%, server rx {:.2}%), UDP sender tx {udp_tx} of {udp_bytes} ({:.2}%, receiver rx \
         {:.2}%)",
        attributed_after.as_secs_f64(),
        100.0 * tcp_tx / UPLOAD,
        100.0 * tcp_rx / UPLOAD,
        100.0 * udp_tx / udp_bytes,
        100.0 * udp_rx / udp_bytes
    );
    for (name, rows) in &shed {
        eprintln!(
            "capture-self/{name}: {} rows, last {:?}",
            rows.len(),
            rows.last().map(|r| &r.values)
        );
    }

    let mut failures: Vec<String> = Vec::new();
    let mut check = |ok: bool, failure: String| {
        if !ok {
            failures.push(failure);
        }
    };
    check(
        flood_ok && sent.is_some(),
        format!("the flood generator failed: {flood_out}{flood_err}"),
    );
    let sent = sent.unwrap_or(0);
    check(
        sent >= MIN_FLOWS,
        format!(
            "the machine generated only {sent} flows ({:.0}/s): fewer than {MIN_FLOWS}, too few \
             for the test to show an unbounded table",
            sent as f64 / FLOOD_SECS as f64
        ),
    );
    let over: Vec<&(f64, f64)> = samples
        .iter()
        .filter(|(_, kib)| kib - base > RSS_EXCESS_MIB * 1024.0)
        .collect();
    check(
        over.is_empty(),
        format!(
            "RSS over its {:.1} MiB before by more than {RSS_EXCESS_MIB} MiB at {} of {} readings \
             (every second from the flood's start), first at {:.0} s, by as much as {:+.1} MiB",
            mib(base),
            over.len(),
            samples.len(),
            over.first().map_or(0.0, |s| s.0),
            mib(excess)
        ),
    );
    check(
        after - base <= RSS_AFTER_MIB * 1024.0,
        format!(
            "RSS {:.1} MiB {} s after the flood: {:+.1} MiB over before (at most {RSS_AFTER_MIB})",
            mib(after),
            AFTER.as_secs(),
            mib(after - base)
        ),
    );
    for (what, (rows, longest)) in [
        ("capture-self/duration-sampler".to_string(), sampler),
        (format!("capture-{}/ps_rss", idle.comm), process),
    ] {
        check(
            longest <= MAX_GAP,
            format!(
                "{what}: {rows} rows during the flood, a gap of {longest:.1} s (at most {MAX_GAP})"
            ),
        );
    }
    check(
        dropped_rows.iter().any(|r| r.epoch >= t1) && dropped_rows.iter().all(|r| r.value() >= 0.0),
        format!(
            "capture-self/derive-pcap_dropped-lo not written through the flood: {}",
            format_rows(&dropped_rows)
        ),
    );
    let written: Vec<&(&str, Vec<Row>)> =
        shed.iter().filter(|(_, rows)| !rows.is_empty()).collect();
    if SHED_COUNTERS_EXIST {
        let during = |rows: &[Row]| rows.iter().any(|r| (t0..=t1 + SETTLE).contains(&r.epoch));
        check(
            written.iter().any(|(_, rows)| during(rows)),
            "none of capture-self/derive-flows_shed, if_octets-shed, if_packets-shed written \
             during the flood"
                .to_string(),
        );
        for (name, rows) in &written {
            check(
                rows.iter().all(|r| r.values.values().all(|v| *v >= 0.0)),
                format!("capture-self/{name} negative: {}", format_rows(rows)),
            );
        }
    } else {
        check(
            written.is_empty(),
            format!(
                "the plugin writes {:?} now: set SHED_COUNTERS_EXIST to true in tests/flood.rs",
                written.iter().map(|(name, _)| *name).collect::<Vec<_>>()
            ),
        );
        eprintln!("shed counters not checked: SHED_COUNTERS_EXIST is false");
    }
    // TCP: IP bytes, so the headers (well under 1% on loopback) come on top of the payload.
    for (what, credited, sent, most) in [
        ("a TCP upload", tcp_tx, UPLOAD, 1.05 * UPLOAD),
        ("a UDP sender", udp_tx, udp_bytes, udp_bytes),
    ] {
        check(
            (CREDITED * sent..=most).contains(&credited),
            format!(
                "{what} started {} s after the flood: {credited} bytes credited to its instance \
                 of {sent} sent ({:.2}%; {:.0}% to {:.0}%), within {:.0} s",
                SENDERS_AFTER.as_secs(),
                100.0 * credited / sent,
                100.0 * CREDITED,
                100.0 * most / sent,
                attributed_after.as_secs_f64()
            ),
        );
    }
    if let Some(status) = collectd.exit_status() {
        failures.push(format!("collectd exited ({status}):\n{}", collectd.log()));
    }
    assert!(
        failures.is_empty(),
        "{} failure(s) under the flood:\n- {}",
        failures.len(),
        failures.join("\n- ")
    );
}

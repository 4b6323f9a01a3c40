//! A panic in each of the plugin's threads, injected in a real collectd (issue 14, panics): the
//! plugin built with the test-only feature `fault-injection` panics where
//! `CAPTURE_INJECT_FAULTS` says (src/faults.rs), once. Each thread has its own test, so each can
//! be run alone:
//!
//! - the panic is logged once, naming the thread and the injected point;
//! - every thread stays alive (`capture-self/gauge-alive-*` is 1 in every row) and the
//!   thread's `derive-panics-<thread>` becomes 1;
//! - the counters of a steady workload — a CPU burner's `ps_cputime` and a paced loopback TCP
//!   sender's `if_octets` — never go backwards, and no interval in the few seconds from the
//!   panic runs faster than 1.5 times the workload's fastest steady interval (before the panic
//!   and after those seconds), plus a small tolerance (below);
//! - attribution goes on: the sender's new connections after the panic are still credited to
//!   it, and a new connection after it is credited at least 99% to its instance.
//!
//! The capture runs on `lo` (thread `capture_lo`). Every test runs alone (`start_injecting`
//! holds the harness's CPU lock): the rates are compared with the same workload's own before
//! the panic, which other tests' collectd would disturb.
//!
//! What a spike would look like: a cycle cut short that left its sums behind counts its
//! members twice, i.e. adds an instance's whole total (seconds of CPU, megabytes) in one
//! interval, many times the bound.

mod common;

use common::*;
use std::time::Duration;

const CONFIG: &str = r#"GroupBy "{comm}"
Interface "lo""#;

/// The paced sender: connections of `CONNECTION_BYTES`, each held `HOLD_MS` after sending, one
/// after another: at most 100 KB per 20 ms, ~5 MB/s, and ~45 new flows a second for the
/// resolver.
const CONNECTION_BYTES: &str = "100000";
const CONNECTIONS: &str = "3000";
const HOLD_MS: &str = "20";

/// Steady intervals needed (before the panic and after [`WINDOW`]) to know the workload's rate.
const STEADY_INTERVALS: usize = 3;

/// Seconds from the panic in which every interval is checked against the steady rate: what a
/// panic could disturb (a cut cycle, lookups to ask again, a publication) is over by then.
const WINDOW: f64 = 3.0;

/// After [`WINDOW`], how long the steady rate is watched again.
const WATCHED_AFTER: f64 = 4.0;

/// CPU: the tolerance above 1.5 × the burner's fastest steady interval, in µs of CPU per
/// second. A row's epoch is when its cycle began, while the burner's /proc entry is read later
/// in the cycle (tens of ms on a busy box) and the kernel's ticks are 10 ms: 0.1 core covers
/// both with room. A double count would add the burner's whole total (seconds).
const CPU_TOLERANCE: f64 = 0.1e6;

/// Network: the tolerance above 1.5 × the sender's fastest steady interval, in bytes per
/// second: capture threads publish every 50 ms, so an interval can hold a publication more or
/// less than the wall time says: at ~5 MB/s, 250 KB. A double count would add the sender's
/// whole total (tens of MB).
const NET_TOLERANCE: f64 = 256e3;

#[test]
fn the_sampler_survives_a_panic_in_a_cycle() {
    // The 12th cycle (one a second from the plugin's start): the workload starts with the
    // first cycles and is steady from about the 4th, which leaves several steady intervals.
    survives("sampler-cycle@12", "sampler");
}

#[test]
fn the_resolver_survives_a_panic_in_a_round() {
    // Rounds: one per wake-up and per batch of lookups; with the sender's ~45 new flows a
    // second, about 270 a second here (the 400th came 2 s after start): about 5 s in. Earlier
    // or later is fine too, the steady rate is also taken after the panic.
    survives("resolver-round@1500", "resolver");
}

#[test]
fn a_capture_thread_survives_a_panic_in_its_housekeeping() {
    // Housekeeping runs after every packet and every 50 ms read timeout: about 2000 times a
    // second with the sender (the 3000th came 2 s after start): about 5 s in.
    survives("capture-housekeeping@10000", "capture_lo");
}

#[test]
fn a_capture_thread_survives_a_panic_in_a_packet() {
    // Nearly as many packets as housekeeping calls: about 5 s in.
    survives("capture-packet@8000", "capture_lo");
}

#[test]
fn the_exit_thread_survives_a_panic_in_a_round() {
    // A round at least every 100 ms, more while processes exit: about 5 s in at the latest.
    survives("exits-round@50", "exits");
}

/// The threads a collectd capturing on `lo` runs (`exits` where the exit program loads).
fn threads(collectd: &Collectd) -> Vec<&'static str> {
    let mut threads = vec!["sampler", "resolver", "capture_lo"];
    if collectd.has_exit_records() {
        threads.push("exits");
    }
    threads
}

fn survives(inject: &str, thread: &str) {
    let (point, _) = inject.split_once('@').expect("point@N");
    let Some(collectd) = Collectd::start_injecting(Some(CONFIG), inject) else {
        return;
    };
    if !threads(&collectd).contains(&thread) {
        let reason = format!("no thread `{thread}` here:\n{}", collectd.log());
        assert!(std::env::var_os("CI").is_none(), "{reason}");
        eprintln!("SKIP: {reason}");
        return;
    }
    let mut burner = collectd.spawn(&unique_comm("cw_fburn_"), &["burn", "60"]);
    burner.expect_line("ready");
    let mut server = collectd.spawn(&unique_comm("cw_fsrv_"), &["tcp-serve", "127.0.0.1", "90"]);
    let port = server.expect_line_starting("port ");
    let addr = format!("127.0.0.1:{port}");
    let sender = collectd.spawn(
        &unique_comm("cw_fcli_"),
        &[
            "tcp-send",
            &addr,
            CONNECTION_BYTES,
            CONNECTIONS,
            "30",
            HOLD_MS,
        ],
    );
    let steady_from = now() + SETTLE;

    // The panic, as the log says it. The logfile plugin writes each line as it comes, and it is
    // polled every 100 ms: the panic happened within a second before it was seen.
    let said = |collectd: &Collectd| -> Vec<String> {
        collectd
            .plugin_log_lines("error")
            .into_iter()
            .filter(|line| line.contains("panicked"))
            .collect()
    };
    let seen = wait_for(
        &format!("the injected panic `{inject}` in the log"),
        Duration::from_secs(90),
        || (!said(&collectd).is_empty()).then(now),
    );
    let panicked_after = seen - 1.0;
    let window_end = seen + WINDOW;
    let watched_until = window_end + WATCHED_AFTER;
    collectd.wait_row_after(&burner.comm, "ps_cputime", watched_until + INTERVAL);
    collectd.wait_row_after(&sender.comm, "if_octets", watched_until + INTERVAL);

    // Said once, naming the thread and what panicked.
    let lines = said(&collectd);
    assert_eq!(lines.len(), 1, "one panic, said once: {lines:#?}");
    assert!(
        lines[0].contains(&format!("thread `{thread}`")) && lines[0].contains(point),
        "the log line names the thread `{thread}` and the point `{point}`: {}",
        lines[0]
    );

    // Counters: monotonic, and no spike around the panic.
    let cpu: Vec<(f64, f64)> = collectd
        .rows(&burner.comm, "ps_cputime")
        .iter()
        .map(|r| (r.epoch, r.get("user") + r.get("syst")))
        .collect();
    let octets: Vec<(f64, f64)> = collectd
        .rows(&sender.comm, "if_octets")
        .iter()
        .map(|r| (r.epoch, r.get("tx")))
        .collect();
    for (what, series, tolerance) in [
        ("ps_cputime (µs) of the burner", &cpu, CPU_TOLERANCE),
        ("if_octets tx (bytes) of the sender", &octets, NET_TOLERANCE),
    ] {
        no_spike(
            what,
            series,
            steady_from,
            (panicked_after, window_end),
            watched_until,
            tolerance,
        );
    }

    // Every thread alive in every row; the panic counted on its thread only.
    for name in threads(&collectd) {
        let alive = collectd.wait_row_after("self", &format!("gauge-alive-{name}"), watched_until);
        assert!(
            alive.iter().all(|row| row.value() == 1.0),
            "thread {name} alive in every row: {}",
            format_rows(&alive)
        );
        let panics = collectd.last_after("self", &format!("derive-panics-{name}"), "value", seen);
        let expected = if name == thread { 1.0 } else { 0.0 };
        assert_eq!(panics, expected, "panics caught in thread {name}");
    }

    // Attribution goes on: a new connection after the panic, to a new server, is credited to
    // both ends.
    attributed_after_the_panic(&collectd);
    drop(sender);
}

/// Checks that `series` ((epoch, cumulative value) rows) never decreases, and that every
/// interval that ends after the panic and begins before the window's end runs at most 1.5
/// times the fastest steady interval (from `steady_from` to the panic, and from the window's
/// end to `watched_until`) plus `tolerance` per second; and that the workload is still counted
/// after the window.
fn no_spike(
    what: &str,
    series: &[(f64, f64)],
    steady_from: f64,
    (panicked_after, window_end): (f64, f64),
    watched_until: f64,
    tolerance: f64,
) {
    let shown = || {
        series
            .iter()
            .map(|(e, v)| format!("{e:.3} {v}"))
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    let mut steady = Vec::new();
    let mut after = Vec::new();
    let mut later = Vec::new();
    for pair in series.windows(2) {
        let ((e0, v0), (e1, v1)) = (pair[0], pair[1]);
        assert!(v1 >= v0, "{what} went backwards at {e1:.3}:\n  {}", shown());
        let rate = (v1 - v0) / (e1 - e0);
        if e0 < steady_from || e1 > watched_until {
            continue;
        }
        if e1 >= panicked_after && e0 < window_end {
            after.push((e1, rate));
        } else {
            steady.push(rate);
            if e0 >= window_end {
                later.push(rate);
            }
        }
    }
    assert!(
        steady.len() >= STEADY_INTERVALS,
        "{what}: only {} steady interval(s) around the panic (at about {panicked_after:.3}):\n  {}",
        steady.len(),
        shown()
    );
    let fastest = steady.iter().cloned().fold(0.0, f64::max);
    let bound = 1.5 * fastest + tolerance;
    eprintln!("{what}: steady rates {steady:.0?}, from the panic {after:.0?}, bound {bound:.0}");
    assert!(!after.is_empty(), "{what}: no interval after the panic");
    for &(epoch, rate) in &after {
        assert!(
            rate <= bound,
            "{what}: {rate:.0}/s in the interval ending at {epoch:.3}, above 1.5 × the fastest \
             steady {fastest:.0}/s + {tolerance:.0}:\n  {}",
            shown()
        );
    }
    assert!(
        !later.is_empty() && later.iter().all(|&rate| rate > 0.0),
        "{what}: not counted in every interval after the panic's window:\n  {}",
        shown()
    );
}

/// A 2 MB transfer on a new connection (held open 200 ms, as in tests/network.rs) is credited
/// at least 99% to the client's instance (tx) and the server's (rx), and not above the
/// payload plus headers (5%).
fn attributed_after_the_panic(collectd: &Collectd) {
    const PAYLOAD: f64 = 2e6;
    let mut server = collectd.spawn(&unique_comm("cw_fsrv2_"), &["tcp-serve", "127.0.0.1", "30"]);
    let port = server.expect_line_starting("port ");
    let mut client = collectd.spawn(
        &unique_comm("cw_fcli2_"),
        &[
            "tcp-send",
            &format!("127.0.0.1:{port}"),
            "2000000",
            "1",
            "30",
            "200",
        ],
    );
    client.expect_line("sent");
    server.expect_line("received 2000000");
    let settled = now() + SETTLE + INTERVAL;
    let sent = collectd.last_after(&client.comm, "if_octets", "tx", settled);
    let received = collectd.last_after(&server.comm, "if_octets", "rx", settled);
    for (what, value) in [("client tx", sent), ("server rx", received)] {
        assert!(
            (0.99 * PAYLOAD..=1.05 * PAYLOAD).contains(&value),
            "after the panic, {what} is {value} bytes for a {PAYLOAD}-byte transfer \
             (expected 99% of the payload .. +5%)"
        );
    }
}

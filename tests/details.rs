//! Integration tests (owned by the integration tests): the values of the costly options, which
//! the processes plugin also reports — `CollectMemoryDetails` (ps_code, ps_data,
//! ps_stacksize), `CollectMemoryMaps` (file_handles-mapped), `CollectContextSwitch`
//! (contextswitch) and `CollectDelayAccounting` (delay_rate) — checked against what the kernel
//! says of the same process.

mod common;

use common::*;
use std::fs;

/// A collectd reporting only the process `comm`, with the options `options` on.
fn start(comm: &str, options: &str) -> Option<Collectd> {
    Collectd::start(Some(&format!(
        "GroupBy \"\"\nProcess \"{comm}\"\n{options}"
    )))
}

/// The value of the `key:` line of /proc/`pid`/status, in bytes (its lines are in kB).
fn status_bytes(pid: u32, key: &str) -> f64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status}"));
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a number");
    kib * 1024.0
}

/// An idle process holding 64 MiB: its instance's code, data and stack sizes are its status
/// file's VmExe + VmLib, VmData and VmStk, to the byte.
#[test]
fn memory_details_are_the_process_s_own() {
    let comm = unique_comm("cw_mem_");
    let Some(collectd) = start(&comm, "CollectMemoryDetails true") else {
        return;
    };
    let mut holder = collectd.spawn(&comm, &["touch", "64", "60"]);
    holder.expect_line("ready");
    let pid = holder.pid;
    let code = status_bytes(pid, "VmExe") + status_bytes(pid, "VmLib");
    let data = status_bytes(pid, "VmData");
    let stack = status_bytes(pid, "VmStk");
    eprintln!("status: code {code} data {data} stack {stack}");
    assert!(
        data >= 64.0 * 1024.0 * 1024.0,
        "VmData {data} below what it holds"
    );
    for (name, want) in [
        ("ps_code", code),
        ("ps_data", data),
        ("ps_stacksize", stack),
    ] {
        collectd.wait_rows(&comm, name, &format!("{name} = {want}"), |rows| {
            rows.last().is_some_and(|row| row.value() == want)
        });
    }
    // Off by default: an instance without the option has none of them.
    assert!(collectd.rows(&comm, "file_handles-mapped").is_empty());
    assert!(collectd.rows(&comm, "contextswitch-voluntary").is_empty());
}

/// A process with 2,000 extra mappings: file_handles-mapped is the line count of its maps.
#[test]
fn memory_maps_are_counted() {
    let comm = unique_comm("cw_maps_");
    let Some(collectd) = start(&comm, "CollectMemoryMaps true") else {
        return;
    };
    let mut mapper = collectd.spawn(&comm, &["maps", "2000", "60"]);
    mapper.expect_line("ready");
    let maps = fs::read_to_string(format!("/proc/{}/maps", mapper.pid))
        .expect("maps")
        .lines()
        .count() as f64;
    eprintln!("/proc/{}/maps: {maps} lines", mapper.pid);
    assert!(maps >= 2000.0, "the workload's mappings merged: {maps}");
    collectd.wait_rows(&comm, "file_handles-mapped", &format!("{maps}"), |rows| {
        rows.last().is_some_and(|row| row.value() == maps)
    });
    assert!(collectd.rows(&comm, "ps_code").is_empty());
}

/// Four threads that each sleep 1 ms 300 times and end, in a process that then ends: its
/// instance's voluntary context switches are what getrusage told the process (ended threads
/// included), within 1% — the live threads' are read from their status files, the ended
/// ones' come with the exit record.
#[test]
fn context_switches_include_ended_threads() {
    let comm = unique_comm("cw_csw_");
    let Some(collectd) =
        start(&comm, "CollectContextSwitch true").and_then(Collectd::with_exit_records)
    else {
        return;
    };
    let mut sleeper = collectd.spawn(&comm, &["switches", "4", "300", "2"]);
    sleeper.expect_line("ready");
    let usage = sleeper.expect_line_starting("switches ");
    let numbers: Vec<f64> = usage
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [voluntary, _involuntary] = numbers[..] else {
        panic!("unexpected {usage:?}");
    };
    assert!(voluntary >= 1200.0, "4 × 300 sleeps: {usage}");
    sleeper.wait();
    let done = now();
    // The process ends 2 s after it printed: its last sleep, its exit, one or two switches
    // more than it said.
    let rows = collectd.wait_rows(
        &comm,
        "contextswitch-voluntary",
        &format!("at least 99% of {voluntary}"),
        |rows| {
            rows.last()
                .is_some_and(|row| row.epoch >= done && row.value() >= voluntary * 0.99)
        },
    );
    let reported = rows.last().expect("a row").value();
    eprintln!(
        "voluntary switches: getrusage {voluntary}, reported {reported} ({:.1}%)",
        reported * 100.0 / voluntary
    );
    assert!(
        reported <= voluntary * 1.01 + 10.0,
        "reported {reported}, the process had {voluntary}"
    );
    assert!(!collectd.rows(&comm, "contextswitch-involuntary").is_empty());
}

/// Twice as many busy threads as CPUs: half of them wait for a CPU at any moment, so the
/// instance's delay-cpu rate is about the number of CPUs (seconds of waiting per second); at
/// least half that, never more than the threads.
#[test]
fn cpu_delay_is_waiting_for_a_cpu() {
    let comm = unique_comm("cw_dly_");
    let Some(collectd) = start(&comm, "CollectDelayAccounting true") else {
        return;
    };
    let cpus = cpu_count();
    let threads = 2 * cpus;
    let mut competing = collectd.spawn(&comm, &["compete", &threads.to_string(), "8"]);
    competing.expect_line("ready");
    let start = now();
    competing.expect_line("done");
    let end = now();
    let rows = collectd.wait_row_after(&comm, "delay_rate-delay-cpu", end);
    let during: Vec<f64> = rows
        .iter()
        .filter(|row| row.epoch > start + INTERVAL && row.epoch <= end)
        .map(Row::value)
        .collect();
    eprintln!("{threads} threads on {cpus} CPUs: delay-cpu {during:.2?}");
    let highest = during.iter().copied().fold(0.0, f64::max);
    assert!(
        highest >= 0.5 * cpus as f64,
        "delay-cpu {during:?} with {threads} busy threads on {cpus} CPUs"
    );
    assert!(
        during.iter().all(|&rate| rate <= threads as f64 * 1.1),
        "more waiting than {threads} threads can do: {during:?}"
    );
    for other in ["delay-blkio", "delay-swapin", "delay-freepages"] {
        assert!(!collectd
            .rows(&comm, &format!("delay_rate-{other}"))
            .is_empty());
    }
    let delayacct_off =
        fs::read_to_string("/proc/sys/kernel/task_delayacct").is_ok_and(|v| v.trim() == "0");
    let said = collectd.log().matches("task_delayacct = 0").count();
    assert_eq!(said, usize::from(delayacct_off), "{}", collectd.log());
}

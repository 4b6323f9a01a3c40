//! Integration tests (owned by the integration tests): exit records. Processes that live
//! between two samples, and what every process uses after its last sample, are counted from
//! what the kernel says when they end — checked against what the kernel told their parent.

mod common;

use common::*;

const MIB: f64 = 1024.0 * 1024.0;

/// A collectd reporting only `names` (one instance each); `None` (after saying why) where the
/// exit program does not load outside CI (on CI that fails).
fn start_with_exit_records(names: &[&str]) -> Option<Collectd> {
    let mut block = String::from("GroupBy \"\"\n");
    for name in names {
        block.push_str(&format!("Process \"{name}\"\n"));
    }
    start_with(&block)
}

fn start_with(block: &str) -> Option<Collectd> {
    Collectd::start(Some(block))?.with_exit_records()
}

/// What a `children` workload printed when its children were done, and when.
struct Children {
    started: f64,
    /// CPU time the kernel gave the reaped children, and the parent's own, in clock ticks.
    children_ticks: f64,
    own_ticks: f64,
    /// The children's minor page faults (the parent's `cminflt`).
    children_faults: f64,
    done: f64,
}

/// Runs `capture_workload children RATE SECS CHILD BURN_MS MIB` as `parent`, its children
/// named `child`, with `[RATE, SECS, BURN_MS, MIB]`; returns it (still running: it sleeps a
/// moment before it exits) and its summary.
fn run_children(
    collectd: &Collectd,
    parent: &str,
    child: &str,
    [rate, secs, burn_ms, mib]: [&str; 4],
) -> (Workload, Children) {
    let child_path = collectd.workload_copy(child);
    let child_path = child_path.to_str().expect("a UTF-8 path");
    let args = ["children", rate, secs, child_path, burn_ms, mib];
    let mut workload = collectd.spawn(parent, &args);
    workload.expect_line("ready");
    // "N ticks T own O minflt F"
    let summary = workload.expect_line_starting("children ");
    let done = now();
    let fields: Vec<f64> = summary
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [started, children_ticks, own_ticks, children_faults] = fields[..] else {
        panic!("unexpected summary {summary:?}");
    };
    let children = Children {
        started,
        children_ticks,
        own_ticks,
        children_faults,
        done,
    };
    (workload, children)
}

/// User + system CPU time of `instance` once a row at or after `epoch` is written, µs.
fn instance_cpu(collectd: &Collectd, instance: &str, epoch: f64) -> f64 {
    collectd.last_after(instance, "ps_cputime", "user", epoch)
        + collectd.last_after(instance, "ps_cputime", "syst", epoch)
}

fn cputime(row: &Row) -> f64 {
    row.get("user") + row.get("syst")
}

/// A parent starts 50 children a second, each burning 10 ms of CPU and writing 1 MiB, most of
/// them gone before any sample: their instance gets the CPU time the kernel gave their parent
/// at reap (within 1%) and every byte they wrote, and the parent's instance is credited
/// neither (the kernel adds a reaped child's I/O to its parent's).
#[test]
fn children_shorter_than_an_interval_are_counted_whole() {
    let parent = unique_comm("cw_par_");
    let child = unique_comm("cw_kid_");
    let Some(collectd) = start_with_exit_records(&[&parent, &child]) else {
        return;
    };
    let (mut workload, run) = run_children(&collectd, &parent, &child, ["50", "8", "10", "1"]);
    let Children {
        started,
        children_ticks,
        own_ticks,
        children_faults,
        done,
    } = run;
    let tick_us = 1e6 / clock_ticks_per_second();
    let kernel_us = children_ticks * tick_us;
    let written = started * MIB;
    eprintln!("{started} children: the kernel gave them {kernel_us:.0} µs and {written} bytes");
    assert!(started >= 100.0, "too few children started: {started}");

    // Settled within a few intervals of the last exit.
    let after = done + SETTLE + INTERVAL;
    let cpu = instance_cpu(&collectd, &child, after);
    let io = collectd.last_after(&child, "io_octets", "tx", after);
    let faults = collectd.last_after(&child, "ps_pagefaults", "minflt", after);
    let report = |what: &str, got: f64, want: f64| {
        eprintln!("{what}: {got:.0} of {want:.0} ({:.1}%)", got * 100.0 / want)
    };
    report("children's CPU time (µs)", cpu, kernel_us);
    report("children's bytes written", io, written);
    report("children's minor page faults", faults, children_faults);
    // The kernel's total is rounded to a tick once; the records' sum is exact.
    assert!(
        (cpu - kernel_us).abs() <= kernel_us / 100.0 + tick_us,
        "the children's instance has {cpu:.0} µs of CPU, the kernel gave them {kernel_us:.0}"
    );
    assert!(
        io >= written * 0.99 && io <= written * 1.01 + 64.0 * 1024.0,
        "the children's instance wrote {io:.0} bytes, they wrote {written}"
    );
    assert!(
        (faults - children_faults).abs() <= children_faults / 100.0,
        "the children's instance has {faults:.0} minor faults, the kernel counted \
         {children_faults:.0}"
    );

    // The parent: its own CPU time (not its children's) and a few bytes of its own.
    workload.wait();
    let parent_rows = collectd.wait_row_after(&parent, "ps_cputime", now() + SETTLE);
    let parent_cpu = parent_rows.last().map(cputime).unwrap_or_default();
    let own_us = own_ticks * tick_us;
    let parent_io = collectd.last_after(&parent, "io_octets", "tx", now());
    eprintln!("parent: {parent_cpu:.0} µs (its own {own_us:.0}), {parent_io:.0} bytes written");
    assert!(
        parent_cpu <= own_us * 1.1 + 3.0 * tick_us,
        "the parent's instance has {parent_cpu:.0} µs, it used {own_us:.0} itself"
    );
    assert!(
        parent_io < MIB,
        "the parent's instance was credited {parent_io:.0} bytes: its children's again"
    );
}

/// A shell-heavy load (100 short processes a second, each burning 5 ms) beside whatever else
/// runs: with every process reported, the instances account for at least 97% of the CPU time
/// the kernel charged to tasks in each interval (`capture-self/percent-cpu_accounted`).
#[test]
fn the_instances_account_for_the_cpu_time_of_short_processes() {
    // Other tests running beside this one make hundreds of names, which must not crowd any
    // out (MaxInstances).
    let Some(collectd) = start_with("GroupBy \"{comm}\"\nMaxInstances 1000000") else {
        return;
    };
    let parent = unique_comm("cw_shp_");
    let child = collectd.workload_copy(&unique_comm("cw_sh_"));
    let child = child.to_str().expect("a UTF-8 path");
    let mut workload = collectd.spawn(&parent, &["children", "100", "8", child, "5", "0"]);
    workload.expect_line("ready");
    let start = now();
    workload.expect_line_starting("children ");
    let done = now();
    let rows = collectd.wait_row_after("self", "percent-cpu_accounted", done + SETTLE);
    // Intervals wholly inside the load.
    let during: Vec<f64> = rows
        .iter()
        .filter(|row| row.epoch >= start + 2.0 * INTERVAL && row.epoch <= done)
        .map(Row::value)
        .collect();
    eprintln!("percent-cpu_accounted while the load ran: {during:.1?}");
    assert!(
        during.len() >= 3,
        "too few intervals: {}",
        format_rows(&rows)
    );
    let mean = during.iter().sum::<f64>() / during.len() as f64;
    assert!(
        mean >= 97.0,
        "the instances accounted for {mean:.1}% of the tasks' CPU time: {during:.1?}"
    );
}

/// Children that live longer than an interval (sampled while they burn) get, from their exit
/// records, what they used after their last sample: their instance ends with the CPU time the
/// kernel gave them, not with what the last samples saw (up to an interval short of it each).
#[test]
fn processes_seen_alive_are_counted_to_their_end() {
    let parent = unique_comm("cw_lpar_");
    let child = unique_comm("cw_lkid_");
    let Some(collectd) = start_with_exit_records(&[&parent, &child]) else {
        return;
    };
    // 4 children a second for 5 s, each burning 1.7 s (several alive at once, each sampled).
    let (_workload, run) = run_children(&collectd, &parent, &child, ["4", "5", "1700", "0"]);
    let (started, done) = (run.started, run.done);
    let tick_us = 1e6 / clock_ticks_per_second();
    let kernel_us = run.children_ticks * tick_us;
    let after = done + SETTLE + INTERVAL;
    let cpu = instance_cpu(&collectd, &child, after);
    let settled = collectd.last_after("self", "derive-exited_settled", "value", after);
    eprintln!(
        "{started} children: {cpu:.0} µs of {kernel_us:.0} ({:.1}%), {settled} ended processes \
         settled",
        cpu * 100.0 / kernel_us
    );
    assert!(
        settled >= started,
        "the children were seen alive and settled"
    );
    assert!(
        (cpu - kernel_us).abs() <= kernel_us / 100.0 + tick_us,
        "the children's instance has {cpu:.0} µs of CPU, the kernel gave them {kernel_us:.0}"
    );
}

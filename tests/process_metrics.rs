//! Integration tests (owned by the integration tests): the per-process values collectd-capture
//! reports through a real collectd (csv writer) for workloads whose resource use is known —
//! CPU, memory, file handles, I/O, process counts, counters of exited members, naming.
//!
//! Every test starts its own collectd and runs `capture_workload` under a unique command name,
//! so tests run in parallel; those whose numbers need a whole core run alone
//! (`Collectd::start_alone`).

mod common;

use common::*;

const GROUP_BY_COMM: &str = r#"GroupBy "{comm}""#;

const MIB: f64 = 1024.0 * 1024.0;

/// Rows whose epoch lies in `[from, to]`.
fn between(rows: &[Row], from: f64, to: f64) -> Vec<Row> {
    rows.iter()
        .filter(|row| row.epoch >= from && row.epoch <= to)
        .cloned()
        .collect()
}

fn cputime(row: &Row) -> f64 {
    row.get("user") + row.get("syst")
}

#[test]
fn cpu_burner_reports_cputime_and_percent_cpu() {
    // Only the burner is reported: collectd writing the csv files of every process of the box
    // would take CPU from it for nothing.
    let comm = unique_comm("cw_cpu_");
    let block = format!("GroupBy \"\"\nProcess \"{comm}\"");
    let Some(collectd) = Collectd::start_alone(Some(&block)) else {
        return;
    };
    const BURN: f64 = 6.0;
    let mut burner = collectd.spawn(&comm, &["burn", "6"]);
    burner.expect_line("ready");
    // The burner starts its clock after printing `ready`, so it burns at least from `start`
    // (the line reached us a little later) until about start + BURN (100 ms margin for the
    // pipe's latency).
    let start = now();
    let end = start + BURN - 0.1;
    burner.expect_line("done");
    // The burner is a zombie until the harness reaps it: the kernel's total of its CPU time
    // stays readable, and the plugin samples it too.
    let total_us = burner.zombie_cputime_us();
    let done = now();

    // Rows sampled while the burner burned: each shows more CPU time than the row before
    // (the first row is left out: its interval may have begun before the burn). Read from the
    // rows themselves, not from when this thread read "ready" and "done": on a loaded machine
    // this thread reads them late (a run with two CPU hogs and a benchmark beside it put
    // `start` so late that only two rows fell between it and `end`).
    let cpu_rows = collectd.wait_row_after(&comm, "ps_cputime", done + SETTLE);
    let burning: Vec<Row> = cpu_rows
        .windows(2)
        .filter(|pair| cputime(&pair[1]) > cputime(&pair[0]))
        .map(|pair| pair[1].clone())
        .collect();
    assert!(
        burning.len() >= 3,
        "expected rows spanning at least 2 intervals while burning: {}",
        format_rows(&cpu_rows)
    );
    // ps_cputime is the kernel's count, whatever share of a core the burner got (all of one
    // on a quiet machine, less beside other work): once the burner has stopped, exactly the
    // kernel's total, but for the rounding of two fields of clock ticks.
    let reported = cpu_rows.last().map(cputime).unwrap_or_default();
    let tick_us = 1e6 / clock_ticks_per_second();
    eprintln!(
        "ps_cputime after the burn: {reported:.0} µs, the kernel counted {total_us:.0} µs ({:.2} \
         of a core)",
        total_us / ((done - start) * 1e6)
    );
    assert!(
        (reported - total_us).abs() <= 2.0 * tick_us,
        "ps_cputime user+syst is {reported:.0} µs after the burn, the kernel counted \
         {total_us:.0} µs: {}",
        format_rows(&cpu_rows)
    );
    // While burning it grew at most as fast as one thread can run (+25% for the jitter of
    // dispatch times at both ends of a window of at least 2 intervals).
    let (first, last) = (&burning[0], &burning[burning.len() - 1]);
    let rate = (cputime(last) - cputime(first)) / (last.epoch - first.epoch);
    eprintln!("ps_cputime grew by {rate:.0} µs/s while burning");
    assert!(
        rate > 0.0 && rate <= 1.25e6,
        "ps_cputime grew by {rate:.0} µs/s while one thread burned: {}",
        format_rows(&cpu_rows)
    );

    // percent-cpu is the share of the whole machine over the last interval: the same interval's
    // growth of ps_cputime, as a share of N cores. Compared row by row with the plugin's own
    // ps_cputime, so the check holds whatever share of a core the burner got. Tolerance ±30%
    // on at least one row: the interval the machine's CPU total covers and the rows' dispatch
    // stamps differ by a fraction of an interval.
    let percent_rows = collectd.wait_row_after(&comm, "percent-cpu", end);
    let percent_at = |epoch: f64| {
        percent_rows
            .iter()
            .find(|row| (row.epoch - epoch).abs() < 1e-3)
            .map(Row::value)
    };
    let pairs: Vec<(f64, f64)> = burning
        .windows(2)
        .filter_map(|pair| {
            let grown = (cputime(&pair[1]) - cputime(&pair[0])) / (pair[1].epoch - pair[0].epoch);
            let expected = grown / 1e6 * 100.0 / cpu_count() as f64;
            Some((percent_at(pair[1].epoch)?, expected))
        })
        .collect();
    eprintln!("percent-cpu while burning (reported, from ps_cputime): {pairs:.1?}");
    assert!(
        pairs
            .iter()
            .any(|(percent, expected)| *expected > 0.0
                && (percent - expected).abs() <= 0.3 * expected),
        "no percent-cpu row within 30% of its interval's ps_cputime growth over {} cores: \
         {pairs:.1?}\n{}",
        cpu_count(),
        format_rows(&percent_rows)
    );
}

#[test]
fn open_files_are_counted_exactly() {
    let Some(collectd) = Collectd::start(Some(GROUP_BY_COMM)) else {
        return;
    };
    // The same program, started the same way, with and without 1000 extra descriptors: the
    // difference is exactly the 1000 files, whatever std or the harness leave open.
    let mut many = collectd.spawn(&unique_comm("cw_fd_"), &["fds", "1000", "30"]);
    let mut none = collectd.spawn(&unique_comm("cw_fd0_"), &["fds", "0", "30"]);
    many.expect_line("ready");
    none.expect_line("ready");
    let settled = now() + SETTLE;
    let many_rows = collectd.wait_row_after(&many.comm, "file_handles", settled + INTERVAL);
    let none_rows = collectd.wait_row_after(&none.comm, "file_handles", settled + INTERVAL);
    let many_settled = between(&many_rows, settled, f64::MAX);
    let none_settled = between(&none_rows, settled, f64::MAX);
    let baseline = none_settled[0].value();
    eprintln!(
        "file_handles: baseline {baseline}, with 1000 files {}",
        many_settled[0].value()
    );
    assert!(
        none_settled.iter().all(|row| row.value() == baseline),
        "file_handles of an idle process changed: {}",
        format_rows(&none_rows)
    );
    assert!(
        many_settled
            .iter()
            .all(|row| row.value() == baseline + 1000.0),
        "expected file_handles = {} (the baseline {baseline} + 1000 open files) on every row: {}",
        baseline + 1000.0,
        format_rows(&many_rows)
    );
}

/// A process that lowered its own soft RLIMIT_NOFILE to 256 and holds 100 extra files: the
/// limit is reported as it is, and the share used is exactly the descriptors counted over it.
#[test]
fn descriptor_limit_and_share_used_are_reported() {
    let Some(collectd) = Collectd::start(Some(GROUP_BY_COMM)) else {
        return;
    };
    const LIMIT: f64 = 256.0;
    let mut limited = collectd.spawn(&unique_comm("cw_lim_"), &["nofile", "256", "100", "30"]);
    limited.expect_line("ready");
    let settled = now() + SETTLE;
    let limit_rows = collectd.wait_row_after(&limited.comm, "file_handles-limit", settled);
    let percent_rows = collectd.wait_row_after(&limited.comm, "percent-file_handles", settled);
    let fd_rows = collectd.wait_row_after(&limited.comm, "file_handles", settled);
    let limits = between(&limit_rows, settled, f64::MAX);
    assert!(
        !limits.is_empty() && limits.iter().all(|row| row.value() == LIMIT),
        "expected file_handles-limit 256 on every row after the workload set it: {}",
        format_rows(&limit_rows)
    );
    // Same sample, same epoch: the share is the count over the limit. csv prints gauges with
    // 6 decimals, so 1e-5 covers the rounding and nothing else.
    let mut compared = 0;
    for percent in between(&percent_rows, settled, f64::MAX) {
        let Some(fds) = fd_rows.iter().find(|row| row.epoch == percent.epoch) else {
            continue;
        };
        let expected = fds.value() / LIMIT * 100.0;
        assert!(
            (percent.value() - expected).abs() < 1e-5,
            "percent-file_handles {} at {:.3}, expected file_handles {} / 256 × 100 = {expected}",
            percent.value(),
            percent.epoch,
            fds.value()
        );
        // 100 files plus stdin/stdout/stderr at least, and not the thousands of a leak.
        assert!(
            (103.0..=120.0).contains(&fds.value()),
            "file_handles {} for a process holding 100 files",
            fds.value()
        );
        compared += 1;
    }
    assert!(
        compared > 0,
        "no percent-file_handles row with a file_handles row of the same epoch: {} / {}",
        format_rows(&percent_rows),
        format_rows(&fd_rows)
    );
}

#[test]
fn written_bytes_show_in_io_octets_and_disk_octets() {
    let Some(collectd) = Collectd::start(Some(GROUP_BY_COMM)) else {
        return;
    };
    const BYTES: f64 = 50e6;
    let path = collectd.dir().join("written.bin");
    let path_arg = path.to_str().expect("temporary path is UTF-8");
    let mut writer = collectd.spawn_gated(
        &unique_comm("cw_io_"),
        &["write", "50", path_arg, "30", "sync"],
    );
    let comm = writer.comm.clone();

    // The workload waits for `go`: rows seen now describe it before it wrote anything, so the
    // deltas below hold whether the plugin counts from process start or from first sight.
    let io_before = collectd
        .wait_rows(&comm, "io_octets", "a first row", |rows| !rows.is_empty())
        .pop()
        .expect("a row");
    let disk_before = collectd
        .wait_rows(&comm, "disk_octets", "a first row", |rows| !rows.is_empty())
        .pop()
        .expect("a row");
    writer.go();
    writer.expect_line("ready"); // written and fsynced
    let settled = now() + SETTLE;

    // wchar counts the bytes passed to write(2): the 50e6 bytes plus the few bytes of `ready\n`
    // on stdout. +5% is far more than those; what it catches is double counting.
    let io_rows = collectd.wait_row_after(&comm, "io_octets", settled);
    let io_after = io_rows.last().expect("a row");
    let tx = io_after.get("tx") - io_before.get("tx");
    assert!(
        (BYTES..=BYTES * 1.05).contains(&tx),
        "io_octets tx grew by {tx}, expected 50e6 bytes written (+5% at most): {}",
        format_rows(&io_rows)
    );

    // write_bytes counts the bytes this process sent towards the block layer: the kernel charges
    // them when the page-cache pages are dirtied, whole pages at a time, so on a disk-backed file
    // system it is at least the 50e6 bytes (rounded up to pages). 64 KiB of slack for a file
    // system that charges by block rather than by page. tmpfs has no block layer: nothing is
    // charged there.
    let disk_rows = collectd.wait_row_after(&comm, "disk_octets", settled);
    let written = disk_rows.last().expect("a row").get("write") - disk_before.get("write");
    let fs = fs_type(collectd.dir());
    eprintln!("io_octets tx grew by {tx}, disk_octets write by {written} ({fs})");
    if fs == "tmpfs" || fs == "ramfs" {
        eprintln!(
            "note: {} is on {fs}, which has no block layer",
            path.display()
        );
        assert!(
            written < 1e6,
            "disk_octets write grew by {written} for a file on {fs}, which has no block layer: {}",
            format_rows(&disk_rows)
        );
    } else {
        assert!(
            written >= BYTES - 65536.0,
            "disk_octets write grew by {written} after writing and fsyncing 50e6 bytes on {fs}, \
             expected at least 50e6: {}",
            format_rows(&disk_rows)
        );
    }
}

/// The kernel adds a reaped child's I/O counters to its parent's /proc/PID/io. A child that was
/// reported on its own must not be counted a second time in its parent's instance.
#[test]
fn reaped_child_io_is_not_counted_again_in_the_parent() {
    let Some(collectd) = Collectd::start(Some(GROUP_BY_COMM)) else {
        return;
    };
    const BYTES: f64 = 20e6;
    let path = collectd.dir().join("child.bin");
    let child_comm = unique_comm("cw_kid_");
    let child = collectd.workload_copy(&child_comm);
    let child_arg = child.to_str().expect("temporary path is UTF-8");
    let path_arg = path.to_str().expect("temporary path is UTF-8");
    // The child writes, then lives 3 intervals so the plugin sees its bytes, then exits and is
    // reaped; the parent stays 6 more seconds.
    let mut parent = collectd.spawn(
        &unique_comm("cw_par_"),
        &["parent", "6", "--", child_arg, "write", "20", path_arg, "3"],
    );
    parent.expect_line("ready"); // from the child, after writing
    parent.expect_line("reaped");
    let settled = now() + SETTLE;

    let child_rows = collectd.wait_rows(&child_comm, "io_octets", "a row", |r| !r.is_empty());
    let child_tx = child_rows.last().expect("a row").get("tx");
    assert!(
        child_tx >= BYTES,
        "the child's io_octets tx is {child_tx}, expected at least 20e6: {}",
        format_rows(&child_rows)
    );
    // The parent itself wrote a line or two to stdout: a few bytes, nowhere near 20e6.
    let parent_rows = collectd.wait_row_after(&parent.comm, "io_octets", settled + INTERVAL);
    let parent_tx = parent_rows.last().expect("a row").get("tx");
    eprintln!("child tx {child_tx}, parent tx after reaping {parent_tx}");
    assert!(
        parent_tx < 1e6,
        "the parent's io_octets tx is {parent_tx} after reaping a child that wrote 20e6 bytes: \
         the child's bytes were counted twice: {}",
        format_rows(&parent_rows)
    );
}

/// Starts collectd and a workload that touched 200 MiB; returns them and the epoch from which
/// rows describe the workload after the touch. `None` when skipped.
fn touched_200_mib(prefix: &str) -> Option<(Collectd, Workload, f64)> {
    let collectd = Collectd::start(Some(GROUP_BY_COMM))?;
    let mut toucher = collectd.spawn(&unique_comm(prefix), &["touch", "200", "30"]);
    toucher.expect_line("ready");
    let settled = now() + SETTLE;
    Some((collectd, toucher, settled))
}

#[test]
fn touched_memory_shows_in_rss() {
    let Some((collectd, toucher, settled)) = touched_200_mib("cw_rss_") else {
        return;
    };
    let rows = collectd.wait_row_after(&toucher.comm, "ps_rss", settled);
    let rss = rows.last().expect("a row").value();
    eprintln!("ps_rss {rss} ({:.1} MiB)", rss / MIB);
    // Every one of the 200 MiB pages was written, and stays resident: nothing swaps here. The
    // lower bound keeps 5% for a CI box under memory pressure; the upper one allows 50 MiB for
    // the program itself (its binary, libc and stacks take a few MiB).
    assert!(
        (200.0 * MIB * 0.95..=250.0 * MIB).contains(&rss),
        "ps_rss is {rss} bytes ({:.1} MiB) for a process holding 200 MiB it wrote, expected \
         200 MiB (-5%, +50 MiB): {}",
        rss / MIB,
        format_rows(&rows)
    );
    let vm_rows = collectd.wait_row_after(&toucher.comm, "ps_vm", settled);
    let vm = vm_rows.last().expect("a row").value();
    assert!(
        vm >= rss,
        "ps_vm {vm} is below ps_rss {rss}: {}",
        format_rows(&vm_rows)
    );
}

#[test]
fn percent_memory_is_rss_over_mem_total() {
    let Some((collectd, toucher, settled)) = touched_200_mib("cw_pmem_") else {
        return;
    };
    let percent_rows = collectd.wait_row_after(&toucher.comm, "percent-memory", settled);
    let rss_rows = collectd.wait_row_after(&toucher.comm, "ps_rss", settled);
    let percent = percent_rows.last().expect("a row");
    // Compare with the ps_rss row of the same dispatch (the same sample), or the closest one.
    let rss = rss_rows
        .iter()
        .min_by(|a, b| {
            (a.epoch - percent.epoch)
                .abs()
                .total_cmp(&(b.epoch - percent.epoch).abs())
        })
        .expect("a row");
    let expected = rss.value() / mem_total() * 100.0;
    eprintln!(
        "percent-memory {} (expected {expected:.4})",
        percent.value()
    );
    // Same numbers, so only rounding differs (csv prints 6 decimals; MemTotal may be read in
    // kB): 1% relative, or 0.001 points for a tiny share.
    assert!(
        (percent.value() - expected).abs() <= (0.01 * expected).max(0.001),
        "percent-memory {} at {:.3}, expected ps_rss {} / MemTotal {} × 100 = {expected:.4}: \
         percent rows {}",
        percent.value(),
        percent.epoch,
        rss.value(),
        mem_total(),
        format_rows(&percent_rows)
    );
    assert!(
        percent.value() >= 200.0 * MIB * 0.95 / mem_total() * 100.0,
        "percent-memory {} is below 200 MiB of MemTotal",
        percent.value()
    );
}

#[test]
fn ps_count_counts_processes_and_threads() {
    let Some(collectd) = Collectd::start(Some(GROUP_BY_COMM)) else {
        return;
    };
    let sleepers_comm = unique_comm("cw_cnt_");
    let mut sleepers: Vec<Workload> = (0..3)
        .map(|_| collectd.spawn(&sleepers_comm, &["sleep", "30"]))
        .collect();
    let mut threaded = collectd.spawn(&unique_comm("cw_thr_"), &["threads", "4", "30"]);
    for sleeper in &mut sleepers {
        sleeper.expect_line("ready");
    }
    threaded.expect_line("ready");
    let settled = now() + SETTLE;

    let rows = collectd.wait_row_after(&sleepers_comm, "ps_count", settled);
    let last = rows.last().expect("a row");
    assert_eq!(
        (last.get("processes"), last.get("threads")),
        (3.0, 3.0),
        "3 single-threaded copies: expected processes=3 threads=3: {}",
        format_rows(&rows)
    );
    let rows = collectd.wait_row_after(&threaded.comm, "ps_count", settled);
    let last = rows.last().expect("a row");
    assert_eq!(
        (last.get("processes"), last.get("threads")),
        (1.0, 4.0),
        "one process with 4 threads: expected processes=1 threads=4: {}",
        format_rows(&rows)
    );
}

#[test]
fn counters_of_exited_members_never_go_backwards() {
    let comm = unique_comm("cw_grp_");
    let block = format!("GroupBy \"\"\nProcessMatch \"grp\" \"{comm}\"");
    // Alone, as its burner would take the core of the CPU test.
    let Some(collectd) = Collectd::start_alone(Some(&block)) else {
        return;
    };
    let mut burner = collectd.spawn(&comm, &["burn", "3"]);
    let mut stayer = collectd.spawn(&comm, &["sleep", "30"]);
    burner.expect_line("ready");
    stayer.expect_line("ready");
    collectd.wait_rows("grp", "ps_count", "both members", |rows| {
        rows.last().is_some_and(|row| row.get("processes") == 2.0)
    });

    // Keep the burner a zombie for a while, as a slow parent would: its final CPU time stays
    // readable, for the plugin and for us. Then reap it, as any parent eventually does.
    let exited_us = burner.zombie_cputime_us();
    collectd.wait_row_after("grp", "ps_cputime", now() + SETTLE);
    burner.wait();
    let reaped = now();
    let rows = collectd.wait_row_after("grp", "ps_cputime", reaped + SETTLE + INTERVAL);

    for pair in rows.windows(2) {
        assert!(
            pair[1].get("user") >= pair[0].get("user")
                && pair[1].get("syst") >= pair[0].get("syst"),
            "ps_cputime of grp went backwards between {:.3} and {:.3}: {}",
            pair[0].epoch,
            pair[1].epoch,
            format_rows(&rows)
        );
    }
    // The instance keeps what its exited member used (plus the sleeper's few µs). Two clock
    // ticks of slack in case the plugin reads the CPU times from another source than the ticks
    // of /proc/PID/stat (schedstat, taskstats) and rounds differently.
    let last = rows.last().expect("a row");
    eprintln!(
        "grp ps_cputime {} µs, exited member used {exited_us} µs",
        cputime(last)
    );
    let slack = 2.0 * 1e6 / clock_ticks_per_second();
    assert!(
        cputime(last) >= exited_us - slack,
        "ps_cputime of grp is {} µs after its member that used {exited_us} µs exited: {}",
        cputime(last),
        format_rows(&rows)
    );
    let counts = collectd.wait_row_after("grp", "ps_count", reaped + SETTLE);
    assert_eq!(
        counts.last().expect("a row").get("processes"),
        1.0,
        "one member left after the other was reaped: {}",
        format_rows(&counts)
    );
}

#[test]
fn default_config_groups_every_process_by_comm() {
    // `LoadPlugin capture` and no <Plugin capture> block at all.
    let Some(collectd) = Collectd::start(None) else {
        return;
    };
    let mut sleeper = collectd.spawn(&unique_comm("cw_def_"), &["sleep", "30"]);
    sleeper.expect_line("ready");
    collectd.wait_rows(&sleeper.comm, "ps_count", "processes=1", |rows| {
        rows.last().is_some_and(|row| row.get("processes") == 1.0)
    });
    // Every process is reported, collectd itself included.
    assert!(
        collectd.instances().iter().any(|name| name == "collectd"),
        "no capture-collectd instance among {:?}",
        collectd.instances()
    );
    assert_eq!(collectd.plugin_log_lines("error"), Vec::<String>::new());
}

#[test]
fn odd_command_names_are_reported_sanitized() {
    let Some(collectd) = Collectd::start(Some(GROUP_BY_COMM)) else {
        return;
    };
    // Spaces, a `)` followed by ` (` that trips naive /proc/PID/stat parsers, a tab and a
    // newline (the kernel keeps control characters in a comm; the name must not).
    let comm = unique_comm("a) (b\tc\n");
    let instance = sanitized(&comm);
    assert_eq!(&instance[..8], "a) (b_c_");
    let mut odd = collectd.spawn(&comm, &["threads", "2", "30"]);
    odd.expect_line("ready");
    let rows = collectd.wait_rows(&instance, "ps_count", "processes=1 threads=2", |rows| {
        rows.last()
            .is_some_and(|row| row.get("processes") == 1.0 && row.get("threads") == 2.0)
    });
    let settled = rows.last().expect("a row").epoch;
    let cpu = collectd.wait_row_after(&instance, "ps_cputime", settled);
    assert!(
        cpu.last().is_some_and(|row| cputime(row) >= 0.0),
        "ps_cputime of {instance:?}: {}",
        format_rows(&cpu)
    );
    let rss = collectd.wait_row_after(&instance, "ps_rss", settled);
    assert!(
        rss.last().is_some_and(|row| row.value() > 0.0),
        "ps_rss of {instance:?}: {}",
        format_rows(&rss)
    );
    // Nothing else broke: other processes are still reported, the plugin complained of nothing.
    collectd.wait_row_after("collectd", "ps_count", settled);
    let bad: Vec<String> = collectd
        .instances()
        .into_iter()
        .filter(|name| name.chars().any(char::is_control) || name.len() > 63)
        .collect();
    assert!(bad.is_empty(), "unsanitized instance names: {bad:?}");
    assert_eq!(collectd.plugin_log_lines("error"), Vec::<String>::new());
}

#[test]
fn long_instance_names_are_cut_to_63_bytes() {
    let comm = unique_comm("cw_long_");
    // 6 × 12 bytes + 5 dashes = 77 bytes once expanded.
    let block = format!("GroupBy \"\"\nProcessMatch \"{{comm}}-{{comm}}-{{comm}}-{{comm}}-{{comm}}-{{comm}}\" \"{comm}\"");
    let Some(collectd) = Collectd::start(Some(&block)) else {
        return;
    };
    let mut sleeper = collectd.spawn(&comm, &["sleep", "30"]);
    sleeper.expect_line("ready");
    let instance = wait_for("the long instance", TIMEOUT, || {
        collectd
            .instances()
            .into_iter()
            .find(|name| name.starts_with(&comm))
    });
    // The expansion cut to its first 63 bytes.
    let expected = sanitized(&format!("{comm}-{comm}-{comm}-{comm}-{comm}-{comm}"));
    assert_eq!(expected.len(), 63);
    assert_eq!(
        instance, expected,
        "the 77-byte name is not cut to 63 bytes"
    );
    collectd.wait_rows(&instance, "ps_count", "processes=1", |rows| {
        rows.last().is_some_and(|row| row.get("processes") == 1.0)
    });
}

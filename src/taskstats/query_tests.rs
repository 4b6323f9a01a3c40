//! Unit tests of [`super`] (the live taskstats query): the request's bytes, answers synthesized
//! and cut, and, where the kernel lets this process ask, live processes.

use super::*;
use crate::net::netlink::socket::{begin_nested, end_nested};
use std::time::{Duration, Instant};

const FAMILY: u16 = 0x1a;

/// A record as a tgid query fills it: delays and CPU, no identity.
fn record() -> Vec<u8> {
    let mut r = vec![0u8; 560];
    r[..2].copy_from_slice(&16u16.to_ne_bytes());
    r[24..32].copy_from_slice(&7_000u64.to_ne_bytes()); // cpu_delay_total
    r[40..48].copy_from_slice(&9_000u64.to_ne_bytes()); // blkio_delay_total
    r[72..80].copy_from_slice(&52_000_000u64.to_ne_bytes()); // cpu_run_virtual_total
    r[320..328].copy_from_slice(&11_000u64.to_ne_bytes()); // freepages_delay_total
    r
}

/// One netlink message of `kind` with `seq` and `body`, as the kernel sends it.
fn kernel_message(kind: u16, seq: u32, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    message(&mut out, kind, 0, seq, body);
    out
}

/// `TASKSTATS_CMD_NEW` for `id` (put as attribute `id_kind`) holding `stats`, as `mk_reply`
/// builds it: padding, then the `TASKSTATS_TYPE_AGGR_TGID` nest.
fn reply(seq: u32, cmd: u8, id_kind: u16, id: u32, stats: &[u8]) -> Vec<u8> {
    kernel_message(FAMILY, seq, |out| {
        genl_header(out, cmd);
        let aggr = begin_nested(out, 5);
        put_attribute(out, id_kind, &id.to_ne_bytes());
        put_attribute(out, 6, &[]); // TASKSTATS_TYPE_NULL, the 64-bit alignment pad
        put_attribute(out, 3, stats);
        end_nested(out, aggr);
    })
}

/// `NLMSG_ERROR` with `-errno` for the request `seq`.
fn error(seq: u32, errno: i32) -> Vec<u8> {
    kernel_message(2, seq, |out| {
        out.extend_from_slice(&(-errno).to_ne_bytes());
        let mut echoed = Vec::new();
        request(&mut echoed, FAMILY, seq, 4242);
        out.extend_from_slice(&echoed[..16]);
    })
}

#[test]
fn the_request_for_a_tgid() {
    let mut out = vec![0xee; 3];
    request(&mut out, FAMILY, 77, 0x0102_0304);
    let mut expected = Vec::new();
    expected.extend_from_slice(&28u32.to_ne_bytes()); // nlmsg_len: 16 + 4 + 8
    expected.extend_from_slice(&FAMILY.to_ne_bytes()); // nlmsg_type: the family
    expected.extend_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST, no ACK, no DUMP
    expected.extend_from_slice(&77u32.to_ne_bytes()); // nlmsg_seq
    expected.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it
    expected.extend_from_slice(&[1, 1, 0, 0]); // TASKSTATS_CMD_GET, version 1, reserved
    expected.extend_from_slice(&8u16.to_ne_bytes()); // nla_len
    expected.extend_from_slice(&2u16.to_ne_bytes()); // TASKSTATS_CMD_ATTR_TGID
    expected.extend_from_slice(&0x0102_0304u32.to_ne_bytes());
    assert_eq!(out, expected);
}

#[test]
fn an_answer_gives_the_process_record() {
    let stats = answer(&reply(9, 2, 2, 4242, &record()), FAMILY, 9, 4242)
        .unwrap()
        .unwrap();
    assert_eq!(stats.version, 16);
    assert_eq!(stats.cpu_delay_ns, 7_000);
    assert_eq!(stats.blkio_delay_ns, 9_000);
    assert_eq!(stats.reclaim_delay_ns, Some(11_000));
    assert_eq!(stats.runtime_ns, 52_000_000);
    // The identity fields are not filled for a tgid query.
    assert_eq!(stats.pid, 0);
    // TASKSTATS_TYPE_PID in the nest is taken as well.
    assert!(answer(&reply(9, 2, 1, 4242, &record()), FAMILY, 9, 4242).is_ok());
}

#[test]
fn an_earlier_requests_answer_is_skipped() {
    assert!(answer(&reply(8, 2, 2, 4242, &record()), FAMILY, 9, 4242)
        .unwrap()
        .is_none());
    assert!(answer(&error(8, libc::ESRCH), FAMILY, 9, 4242)
        .unwrap()
        .is_none());
}

#[test]
fn a_gone_process_is_esrch_and_a_refusal_is_permission_denied() {
    let e = answer(&error(9, libc::ESRCH), FAMILY, 9, 4242).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    let e = answer(&error(9, libc::EPERM), FAMILY, 9, 4242).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
}

#[test]
fn wrong_answers_are_errors() {
    let invalid = |datagram: &[u8]| {
        let e = answer(datagram, FAMILY, 9, 4242).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    };
    // Another process's record, another command, a short record, an empty nest.
    invalid(&reply(9, 2, 2, 4243, &record()));
    invalid(&reply(9, 1, 2, 4242, &record()));
    invalid(&reply(9, 2, 2, 4242, &record()[..200]));
    invalid(&kernel_message(FAMILY, 9, |out| {
        genl_header(out, 2);
        let aggr = begin_nested(out, 5);
        end_nested(out, aggr);
    }));
    // A payload shorter than the generic-netlink header; an acknowledgement and no record.
    invalid(&kernel_message(FAMILY, 9, |out| out.push(2)));
    invalid(&error(9, 0));
}

#[test]
fn a_cut_answer_is_an_error_not_a_panic() {
    let datagram = reply(9, 2, 2, 4242, &record());
    for len in 0..datagram.len() {
        let mut cut = datagram[..len].to_vec();
        // The header still claims the whole message, or claims the cut length.
        let _ = answer(&cut, FAMILY, 9, 4242);
        if len >= 4 {
            cut[..4].copy_from_slice(&(len as u32).to_ne_bytes());
            assert!(answer(&cut, FAMILY, 9, 4242).is_err() || len < 16);
        }
    }
}

#[test]
fn the_delay_accounting_switch() {
    assert_eq!(parse_switch("0\n"), Some(false));
    assert_eq!(parse_switch("1\n"), Some(true));
    assert_eq!(parse_switch(""), None);
    assert_eq!(parse_switch("on"), None);
    // The machine's own, whatever it is (read, never written).
    let _ = delay_accounting_enabled();
}

proptest::proptest! {
    #[test]
    fn arbitrary_answers_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..700)) {
        let seq = bytes.get(8..12).map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        let _ = answer(&bytes, FAMILY, seq, 4242);
    }
}

/// A query where this process may ask; `None` (with the reason printed) where it may not:
/// without `CAP_NET_ADMIN`, or without the family.
fn live_query() -> Option<TaskstatsQuery> {
    let mut query = match TaskstatsQuery::open() {
        Ok(query) => query,
        Err(e) => {
            eprintln!("SKIP: no taskstats family here: {e}");
            return None;
        }
    };
    match query.process(std::process::id()) {
        Ok(_) => Some(query),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            eprintln!("SKIP: taskstats refuses this process (CAP_NET_ADMIN): {e}");
            None
        }
        Err(e) => panic!("taskstats query of this process: {e}"),
    }
}

/// The CPU time of the live threads of this process, ns (`sum_exec_runtime`, which the
/// record's `cpu_run_virtual_total` sums).
fn live_threads_runtime_ns() -> u64 {
    let mut sum = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            sum += text
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    sum
}

/// Burns `cpu` of this thread's CPU time.
fn burn(cpu: Duration) {
    let start = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let target = cpu.as_nanos() as i64;
    let mut x = 0u64;
    loop {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        let spent = (now.tv_sec - start.tv_sec) * 1_000_000_000 + (now.tv_nsec - start.tv_nsec);
        if spent >= target {
            break;
        }
    }
}

/// The record of this process counts what a thread that has exited used: 50 ms burnt in a
/// second thread, joined, then asked for.
#[test]
fn a_process_record_includes_its_exited_threads() {
    let Some(mut query) = live_query() else {
        return;
    };
    std::thread::spawn(|| burn(Duration::from_millis(50)))
        .join()
        .unwrap();
    let stats = query.process(std::process::id()).unwrap().unwrap();
    let live_after = live_threads_runtime_ns();
    let (user, system) = stats.cpu_us();
    eprintln!(
        "this process: cpu {user} + {system} us (runtime {} ns; ac_utime + ac_stime {} + {} us), \
         live threads now {live_after} ns; delays: cpu {} ns ({} waits), blkio {} ns, \
         swapin {} ns, reclaim {:?} ns; switches {:?}/{:?}; task_delayacct {:?}",
        stats.runtime_ns,
        stats.user_us,
        stats.system_us,
        stats.cpu_delay_ns,
        stats.cpu_delay_count,
        stats.blkio_delay_ns,
        stats.swapin_delay_ns,
        stats.reclaim_delay_ns,
        stats.voluntary_switches,
        stats.involuntary_switches,
        delay_accounting_enabled(),
    );
    assert!(
        user + system >= 40_000,
        "{user} + {system} us for a process that burnt 50 ms"
    );
    // What the live threads used (read after the query, so at least what they had then)
    // leaves at least 40 ms to the exited ones.
    assert!(
        stats.runtime_ns.saturating_sub(live_after) >= 40_000_000,
        "runtime {} ns, live threads {live_after} ns",
        stats.runtime_ns
    );
}

#[test]
fn a_process_that_does_not_exist_is_none() {
    let Some(mut query) = live_query() else {
        return;
    };
    // pid_max is never given to a process: pids are below it.
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .unwrap_or(4_194_304);
    assert!(query.process(pid_max).unwrap().is_none());
    assert!(query.process(0).unwrap().is_none());
    // The socket goes on answering after a refusal.
    assert!(query.process(std::process::id()).unwrap().is_some());
}

/// Measurement (not a test): what one query costs, over the processes in /proc.
/// `cargo test --release --lib taskstats::query::tests::cost -- --ignored --nocapture`
#[test]
#[ignore]
fn cost_of_one_query() {
    let Some(mut query) = live_query() else {
        return;
    };
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    const CALLS: usize = 2_000;
    let (mut found, mut gone) = (0, 0);
    let start = Instant::now();
    for i in 0..CALLS {
        match query.process(pids[i % pids.len()]).unwrap() {
            Some(_) => found += 1,
            None => gone += 1,
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "taskstats query: {} ns a call over {CALLS} calls on {} pids ({found} answered, \
         {gone} gone)",
        elapsed.as_nanos() / CALLS as u128,
        pids.len()
    );
}

//! Unit tests of [`super`] (accounting).

use super::*;

fn key(pid: u32, starttime: u64) -> ProcessKey {
    ProcessKey { pid, starttime }
}

fn obs(pid: u32, starttime: u64, user: u64, sys: u64, wchar: u64) -> Observation {
    let mut counters = [0; COUNTERS];
    counters[USER_US] = user;
    counters[SYSTEM_US] = sys;
    counters[WCHAR] = wchar;
    Observation {
        key: key(pid, starttime),
        comm: Comm::default(),
        ppid: 1,
        children_minflt: 0,
        counters,
        io_known: true,
        gauges: Gauges {
            rss_bytes: 100,
            vm_bytes: 1000,
            threads: 2,
            file_handles: Some(5),
            fd_limit: None,
            memory: Some(MemoryDetails {
                code_bytes: 1,
                data_bytes: 20,
                stack_bytes: 300,
            }),
            maps: Some(40),
        },
        meta: None,
    }
}

fn find<'a>(report: &'a [InstanceTotals], name: &str) -> &'a InstanceTotals {
    report.iter().find(|t| t.name == name).expect(name)
}

#[test]
fn sums_members_and_gauges() {
    let mut acc = Accounting::new(10);
    acc.observe("web", obs(1, 10, 100, 50, 7));
    acc.observe("web", obs(2, 11, 10, 5, 3));
    let (report, _) = acc.end_cycle();
    let web = find(&report, "web");
    assert_eq!(web.counters[USER_US], 110);
    assert_eq!(web.counters[SYSTEM_US], 55);
    assert_eq!(web.counters[WCHAR], 10);
    assert_eq!((web.processes, web.threads), (2, 4));
    assert_eq!((web.rss_bytes, web.vm_bytes), (200, 2000));
    assert_eq!(web.file_handles, Some(10));
    let memory = web.memory.unwrap();
    assert_eq!(
        (memory.code_bytes, memory.data_bytes, memory.stack_bytes),
        (2, 40, 600)
    );
    assert_eq!(web.maps, Some(80));
    assert_eq!(web.cpu_delta_us, None, "first cycle has no interval");
}

fn with_fds(pid: u32, open: Option<u64>, limit: Option<u64>) -> Observation {
    let mut o = obs(pid, 1, 0, 0, 0);
    o.gauges.file_handles = open;
    o.gauges.fd_limit = limit;
    o
}

#[test]
fn fd_limit_is_the_smallest_and_percent_the_highest_share() {
    let mut acc = Accounting::new(10);
    // 100 of 1024 (9.77 %), 200 of 4096 (4.88 %), 10 of 256 (3.91 %): the smallest limit
    // and the highest share belong to different members.
    acc.observe("web", with_fds(1, Some(100), Some(1024)));
    acc.observe("web", with_fds(2, Some(200), Some(4096)));
    acc.observe("web", with_fds(3, Some(10), Some(256)));
    // Unknown count or limit, or no limit: never lower the limit nor raise the share.
    acc.observe("web", with_fds(4, None, Some(128)));
    acc.observe("web", with_fds(5, Some(900), None));
    acc.observe("web", with_fds(6, Some(900), Some(UNLIMITED)));
    acc.observe("free", with_fds(7, Some(50), Some(UNLIMITED)));
    acc.observe("blind", with_fds(8, Some(50), None));
    let (report, _) = acc.end_cycle();
    let web = find(&report, "web");
    assert_eq!(
        web.fd_limit,
        Some(128),
        "pid 4's limit is known, its count is not"
    );
    let percent = web.fd_percent.unwrap();
    assert!((percent - 100.0 * 100.0 / 1024.0).abs() < 1e-9, "{percent}");
    let free = find(&report, "free");
    assert_eq!((free.fd_limit, free.fd_percent), (None, Some(0.0)));
    let blind = find(&report, "blind");
    assert_eq!((blind.fd_limit, blind.fd_percent), (None, None));
    // Gauges: the next cycle starts from nothing.
    acc.observe("web", with_fds(1, Some(512), Some(1024)));
    let (report, _) = acc.end_cycle();
    let web = find(&report, "web");
    assert_eq!((web.fd_limit, web.fd_percent), (Some(1024), Some(50.0)));
}

#[test]
fn meta_data_of_a_single_member_or_what_several_share() {
    let meta = |pid: u32, uid: u32, exe: &str| {
        Some(Arc::new(MetaData {
            pid: Some(pid),
            uid: Some(uid),
            comm: Some("w".into()),
            exe: Some(exe.into()),
            cmdline: Some(format!("w {pid}").into()),
            ..MetaData::default()
        }))
    };
    let mut acc = Accounting::new(10);
    for (instance, pid, exe) in [
        ("one", 1, "/a"),
        ("two", 2, "/a"),
        ("two", 3, "/b"),
        ("blind", 4, "/a"),
    ] {
        let o = Observation {
            meta: meta(pid, 0, exe),
            ..obs(pid, 1, 0, 0, 0)
        };
        acc.observe(instance, o);
    }
    acc.observe("blind", obs(5, 1, 0, 0, 0));
    let (report, _) = acc.end_cycle();
    let one = find(&report, "one");
    assert_eq!(one.single, Some(key(1, 1)));
    assert_eq!(one.meta, meta(1, 0, "/a"));
    let two = find(&report, "two");
    assert_eq!(two.single, None);
    let shared = two.meta.as_deref().expect("uid and comm are shared");
    assert_eq!((shared.pid, shared.uid), (None, Some(0)));
    assert_eq!(shared.comm.as_deref(), Some("w"));
    assert_eq!(
        (shared.exe.as_deref(), shared.cmdline.as_deref()),
        (None, None)
    );
    let blind = find(&report, "blind");
    assert_eq!(
        (blind.meta.as_deref(), blind.single),
        (None, None),
        "one member unknown"
    );
    // Per cycle: an instance with no live member has none.
    let (report, _) = acc.end_cycle();
    assert!(report.iter().all(|t| t.meta.is_none()));
}

#[test]
fn fd_percent_edges() {
    assert_eq!(fd_percent(256, 256), 100.0);
    assert_eq!(fd_percent(300, 256), 300.0 * 100.0 / 256.0);
    assert_eq!(fd_percent(0, 0), 0.0);
    assert_eq!(fd_percent(3, 0), 100.0);
    assert_eq!(fd_percent(u64::MAX - 1, UNLIMITED), 0.0);
}

#[test]
fn exited_members_keep_their_share() {
    let mut acc = Accounting::new(10);
    acc.observe("web", obs(1, 10, 100, 0, 0));
    acc.observe("web", obs(2, 11, 30, 0, 0));
    acc.end_cycle();
    acc.observe("web", obs(1, 10, 120, 0, 0)); // pid 2 exited
    let (report, _) = acc.end_cycle();
    let web = find(&report, "web");
    assert_eq!(web.counters[USER_US], 150);
    assert_eq!(web.processes, 1);
    assert_eq!(web.cpu_delta_us, Some(20));
    assert_eq!(acc.tracked_processes(), 1);
}

#[test]
fn newcomer_contributes_everything_since_it_started() {
    let mut acc = Accounting::new(10);
    acc.observe("web", obs(1, 10, 100, 0, 0));
    acc.end_cycle();
    acc.observe("web", obs(1, 10, 100, 0, 0));
    acc.observe("web", obs(3, 500, 40, 2, 0));
    let (report, _) = acc.end_cycle();
    let web = find(&report, "web");
    assert_eq!(web.counters[USER_US], 140);
    assert_eq!(web.cpu_delta_us, Some(42));
}

#[test]
fn pid_reuse_is_a_new_process() {
    let mut acc = Accounting::new(10);
    acc.observe("sh", obs(7, 10, 500, 0, 0));
    acc.end_cycle();
    // Same pid, later start: the first exited after 500 ticks, the new one used 3.
    acc.observe("sh", obs(7, 900, 3, 0, 0));
    let (report, _) = acc.end_cycle();
    let sh = find(&report, "sh");
    assert_eq!(sh.counters[USER_US], 503);
    assert_eq!(sh.cpu_delta_us, Some(3));
}

#[test]
fn moving_between_instances_splits_history() {
    let mut acc = Accounting::new(10);
    acc.observe("bash", obs(5, 10, 100, 0, 0));
    acc.end_cycle();
    // exec: same process, new comm, now in "make".
    acc.observe("make", obs(5, 10, 130, 0, 0));
    let (report, _) = acc.end_cycle();
    assert!(
        report.iter().all(|t| t.name != "bash"),
        "bash has no live member"
    );
    let make = find(&report, "make");
    assert_eq!(make.counters[USER_US], 30);
    assert_eq!(make.cpu_delta_us, Some(30));
    // bash comes back with a new process: its old 100 ticks are still there.
    acc.observe("make", obs(5, 10, 140, 0, 0));
    acc.observe("bash", obs(6, 20, 1, 0, 0));
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "bash").counters[USER_US], 101);
    assert_eq!(find(&report, "make").counters[USER_US], 40);
}

#[test]
fn counters_never_go_backwards() {
    let mut acc = Accounting::new(10);
    acc.observe("x", obs(1, 1, 100, 100, 1000));
    acc.end_cycle();
    // /proc glitch: lower values than before.
    acc.observe("x", obs(1, 1, 90, 100, 10));
    let (report, _) = acc.end_cycle();
    let x = find(&report, "x");
    assert_eq!(x.counters[USER_US], 100);
    assert_eq!(x.counters[WCHAR], 1000);
    assert_eq!(x.cpu_delta_us, Some(0));
}

#[test]
fn fixed_instances_are_reported_without_processes() {
    let mut acc = Accounting::new(10);
    acc.declare_fixed("sshd");
    let (report, _) = acc.end_cycle();
    let sshd = find(&report, "sshd");
    assert_eq!((sshd.processes, sshd.counters[USER_US]), (0, 0));
    assert_eq!(sshd.file_handles, None);
    assert_eq!((sshd.memory, sshd.maps), (None, None));
}

#[test]
fn max_instances_admits_stably() {
    let mut acc = Accounting::new(2);
    acc.observe("a", obs(1, 1, 0, 0, 0));
    acc.observe("b", obs(2, 1, 0, 0, 0));
    acc.observe("c", obs(3, 1, 0, 0, 0));
    let (report, outcome) = acc.end_cycle();
    let names: Vec<_> = report.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        outcome,
        CycleOutcome {
            dropped: 1,
            first_drop: true
        }
    );
    // a exits: c gets its place; the drop is not announced again.
    acc.observe("b", obs(2, 1, 0, 0, 0));
    acc.observe("c", obs(3, 1, 0, 0, 0));
    acc.observe("d", obs(4, 1, 0, 0, 0));
    let (report, outcome) = acc.end_cycle();
    let names: Vec<_> = report.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["b", "c"]);
    assert_eq!(
        outcome,
        CycleOutcome {
            dropped: 1,
            first_drop: false
        }
    );
}

#[test]
fn idle_instances_are_forgotten_beyond_the_bound() {
    let mut acc = Accounting::new(1);
    acc.max_idle = 2;
    for pid in 0..10 {
        acc.observe(&format!("p{pid}"), obs(pid, 1, 1, 0, 0));
        acc.end_cycle();
    }
    assert!(acc.by_name.len() <= 3, "{} names kept", acc.by_name.len());
    assert!(acc.instances.len() <= 4, "slots are reused");
    // The newest idle names are still remembered.
    assert!(acc.by_name.contains_key("p8"));
}

/// A parent that writes 10 bytes itself, and a child (reported on its own) that writes
/// 1000 and is reaped by the parent.
fn parent_and_child(parent_instance: &str, reaps: bool) -> Accounting {
    let mut acc = Accounting::new(10);
    acc.declare_fixed("child");
    let parent = |wchar, minflt| Observation {
        children_minflt: minflt,
        ..obs(100, 1, 0, 0, wchar)
    };
    let child = |wchar| Observation {
        ppid: 100,
        ..obs(200, 2, 0, 0, wchar)
    };
    acc.observe(parent_instance, parent(10, 0));
    acc.observe("child", child(1000));
    acc.end_cycle();
    // The child exits; the parent reaps it (or the kernel does, for a parent ignoring
    // SIGCHLD), and from then on /proc shows the child's bytes in the parent's counters.
    let (folded, minflt) = if reaps { (10 + 1000, 50) } else { (10, 0) };
    acc.observe(parent_instance, parent(folded, minflt));
    acc
}

#[test]
fn reaped_children_io_is_not_counted_twice() {
    let mut acc = parent_and_child("shell", true);
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "shell").counters[WCHAR], 10);
    assert_eq!(find(&report, "child").counters[WCHAR], 1000);
    // Later readings keep the child's bytes out of the parent.
    acc.observe(
        "shell",
        Observation {
            children_minflt: 50,
            ..obs(100, 1, 0, 0, 1010 + 5)
        },
    );
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "shell").counters[WCHAR], 15);
}

#[test]
fn parent_and_child_in_one_instance_count_the_bytes_once() {
    let mut acc = Accounting::new(10);
    acc.observe(
        "sh",
        Observation {
            children_minflt: 0,
            ..obs(100, 1, 0, 0, 10)
        },
    );
    acc.observe(
        "sh",
        Observation {
            ppid: 100,
            ..obs(200, 2, 0, 0, 1000)
        },
    );
    acc.end_cycle();
    acc.observe(
        "sh",
        Observation {
            children_minflt: 9,
            ..obs(100, 1, 0, 0, 1010)
        },
    );
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "sh").counters[WCHAR], 1010);
}

#[test]
fn a_parent_that_did_not_reap_keeps_its_bytes() {
    let mut acc = parent_and_child("shell", false);
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "shell").counters[WCHAR], 10);
}

#[test]
fn a_reap_seen_one_cycle_late_is_still_taken_out() {
    let mut acc = parent_and_child("shell", false);
    acc.end_cycle();
    // The parent reaped right after it was read: the next cycle shows it.
    acc.observe(
        "shell",
        Observation {
            children_minflt: 50,
            ..obs(100, 1, 0, 0, 1010)
        },
    );
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "shell").counters[WCHAR], 10);
}

#[test]
fn late_credits_reach_the_instance_of_an_exited_process() {
    let mut acc = Accounting::new(10);
    acc.declare_fixed("curl");
    let mut o = obs(5, 9, 1, 0, 0);
    o.counters[NET_TX_BYTES] = 100;
    acc.observe("curl", o);
    acc.end_cycle();
    acc.end_cycle(); // curl exited
    let mut late = [0; COUNTERS];
    late[NET_TX_BYTES] = 900;
    assert!(acc.credit_departed(&key(5, 9), None, &late));
    assert!(!acc.credit_departed(&key(6, 9), None, &late), "never seen");
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "curl").counters[NET_TX_BYTES], 1000);
}

/// A child sampled between fork and exec carries its parent's comm (and instance); when the
/// kernel recorded it using the bytes under another comm, it exec'd after that sample, and the
/// bytes are not its old instance's: the caller places them by the record instead.
#[test]
fn late_credits_are_refused_when_the_process_exec_d_after_its_last_sample() {
    let mut acc = Accounting::new(10);
    let forked = Observation {
        comm: Comm::of(b"test_runner_thread"),
        ..obs(5, 9, 0, 0, 0)
    };
    acc.observe("test_runner_thr", forked);
    acc.end_cycle();
    acc.end_cycle(); // it exec'd curl, sent and exited before the next sample
    let mut late = [0; COUNTERS];
    late[NET_TX_BYTES] = 900;
    assert!(!acc.credit_departed(&key(5, 9), Some(Comm::of(b"curl")), &late));
    assert!(
        acc.credit_departed(&key(5, 9), Some(Comm::of(b"test_runner_thread_2")), &late),
        "the kernel keeps 15 bytes of a comm: the same first 15 are the same comm"
    );
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "test_runner_thr").counters[NET_TX_BYTES], 900);
}

/// An instance whose last process exited is reported a few cycles more when bytes resolved
/// after the exit were credited to it — with no process, as it has none — and not after.
#[test]
fn late_credits_are_reported_once_after_the_last_member_left() {
    let mut acc = Accounting::new(10);
    let mut o = obs(5, 9, 0, 0, 1);
    o.counters[NET_TX_BYTES] = 100;
    acc.observe("curl", o);
    acc.end_cycle();
    let (report, _) = acc.end_cycle(); // curl exited
    assert!(
        report.iter().all(|t| t.name != "curl"),
        "no live member, nothing new"
    );
    let mut late = [0; COUNTERS];
    late[NET_TX_BYTES] = 900;
    assert!(acc.credit_departed(&key(5, 9), None, &late));
    for _ in 0..LATE_CYCLES {
        let (report, _) = acc.end_cycle();
        let curl = find(&report, "curl");
        assert_eq!(curl.counters[NET_TX_BYTES], 1000);
        assert_eq!((curl.processes, curl.threads), (0, 0));
    }
    let (report, _) = acc.end_cycle();
    assert!(
        report.iter().all(|t| t.name != "curl"),
        "reported for LATE_CYCLES cycles only"
    );
}

/// A cycle that never reached `end_cycle` (a panic caught by the sampler thread, a stop) must
/// not leave its sums behind for the next one: no doubled totals, no spike, no flat line after.
#[test]
fn a_cycle_cut_short_leaves_nothing_behind() {
    let mut acc = Accounting::new(10);
    acc.begin_cycle();
    acc.observe("web", obs(1, 10, 100, 50, 7));
    acc.observe("web", obs(2, 11, 10, 5, 3));
    acc.end_cycle();
    // The next cycle observes both, then dies before end_cycle.
    acc.begin_cycle();
    acc.observe("web", obs(1, 10, 110, 50, 7));
    acc.observe("web", obs(2, 11, 10, 5, 3));
    // The cycle after it starts over.
    acc.begin_cycle();
    acc.observe("web", obs(1, 10, 120, 50, 7));
    acc.observe("web", obs(2, 11, 10, 5, 3));
    let (report, _) = acc.end_cycle();
    let web = find(&report, "web");
    assert_eq!(web.counters[USER_US], 130, "{:?}", web.counters);
    assert_eq!(web.counters[WCHAR], 10);
    assert_eq!((web.processes, web.threads), (2, 4));
    assert_eq!((web.rss_bytes, web.vm_bytes), (200, 2000));
    assert_eq!(web.file_handles, Some(10));
    // What the cut cycle saw (10 ticks) and this one (10) both land in this delta.
    assert_eq!(web.cpu_delta_us, Some(20));
    // And the cycle after is ordinary.
    acc.begin_cycle();
    acc.observe("web", obs(1, 10, 125, 50, 7));
    acc.observe("web", obs(2, 11, 10, 5, 3));
    let (report, _) = acc.end_cycle();
    let web = find(&report, "web");
    assert_eq!(web.counters[USER_US], 135);
    assert_eq!(web.cpu_delta_us, Some(5));
}

/// A process no cycle saw alive (its traffic recorded by the kernel) makes its instance
/// appear with that traffic and no process; its counters stay after.
#[test]
fn an_unseen_process_makes_its_instance_appear_with_its_traffic_only() {
    let mut acc = Accounting::new(10);
    acc.end_cycle();
    let mut traffic = [0; COUNTERS];
    traffic[NET_TX_BYTES] = 500;
    acc.credit_unseen("cron-job", &traffic);
    acc.credit_unseen("cron-job", &traffic);
    for _ in 0..LATE_CYCLES {
        let (report, _) = acc.end_cycle();
        let job = find(&report, "cron-job");
        assert_eq!(job.counters[NET_TX_BYTES], 1000);
        assert_eq!((job.processes, job.threads), (0, 0));
    }
    let (report, _) = acc.end_cycle();
    assert!(report.iter().all(|t| t.name != "cron-job"));
    acc.credit_unseen("cron-job", &traffic);
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "cron-job").counters[NET_TX_BYTES], 1500);
}

fn end(user: u64, sys: u64, wchar: u64) -> Counters {
    let mut c = [0; COUNTERS];
    c[USER_US] = user;
    c[SYSTEM_US] = sys;
    c[WCHAR] = wchar;
    c
}

/// A process's last moments (after its last sample) come from its exit record, whether the
/// record is counted in the cycle that read it last or after it left /proc; once only.
#[test]
fn an_exit_record_adds_what_a_process_used_after_its_last_sample() {
    let mut acc = Accounting::new(10);
    acc.use_exit_records();
    acc.observe("make", obs(5, 9, 1_000, 500, 10));
    acc.observe("make", obs(6, 9, 1_000, 500, 10));
    acc.end_cycle();
    // 5 is read again, then ends before the cycle closes; 6 is gone from /proc.
    acc.observe("make", obs(5, 9, 2_000, 500, 20));
    assert_eq!(
        acc.settle(&key(5, 9), &end(2_300, 600, 25), true),
        Settled::Seen
    );
    let (report, _) = acc.end_cycle();
    let make = find(&report, "make");
    assert_eq!(make.counters[USER_US], 2_300 + 1_000);
    assert_eq!(make.counters[WCHAR], 25 + 10);
    assert_eq!(make.cpu_delta_us, Some(1_300 + 100));
    // 6's record comes a cycle after it left.
    assert_eq!(
        acc.settle(&key(6, 9), &end(1_200, 500, 40), true),
        Settled::Seen
    );
    assert_eq!(
        acc.settle(&key(6, 9), &end(1_200, 500, 40), true),
        Settled::Seen,
        "counted once"
    );
    let (report, _) = acc.end_cycle();
    let make = find(&report, "make");
    assert_eq!(make.counters[USER_US], 2_300 + 1_200);
    assert_eq!(make.counters[WCHAR], 25 + 40);
    assert_eq!(make.cpu_delta_us, Some(200));
    assert_eq!(
        acc.settle(&key(5, 9), &end(9_000, 600, 25), true),
        Settled::Seen,
        "5 departed settled: not again"
    );
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "make").counters[USER_US], 2_300 + 1_200);
}

/// Context switches and delays end like CPU time: the threads that ended before the last
/// sample took their counts with them (the live sum fell), the record brings every thread's.
#[test]
fn an_exit_record_brings_the_switches_and_delays_of_ended_threads() {
    let mut acc = Accounting::new(10);
    acc.declare_fixed("pool");
    acc.use_exit_records();
    let mut sample = obs(5, 9, 1_000, 0, 0);
    sample.counters[VOLUNTARY_SWITCHES] = 900;
    sample.counters[CPU_DELAY_NS] = 7_000;
    acc.observe("pool", sample.clone());
    acc.end_cycle();
    // Three of its four threads ended: the live sum falls, the instance's does not.
    sample.counters[VOLUNTARY_SWITCHES] = 300;
    acc.observe("pool", sample);
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "pool").counters[VOLUNTARY_SWITCHES], 900);
    let mut record = end(1_000, 0, 0);
    record[VOLUNTARY_SWITCHES] = 1_210;
    record[INVOLUNTARY_SWITCHES] = 4;
    record[CPU_DELAY_NS] = 9_000;
    acc.settle(&key(5, 9), &record, true);
    let (report, _) = acc.end_cycle();
    let pool = find(&report, "pool");
    assert_eq!(pool.counters[VOLUNTARY_SWITCHES], 1_210);
    assert_eq!(pool.counters[INVOLUNTARY_SWITCHES], 4);
    assert_eq!(pool.counters[CPU_DELAY_NS], 9_000);
}

/// The record splits the process's CPU time between user and system otherwise than /proc did:
/// its total is what counts, never a share counted in both slots.
#[test]
fn an_exit_record_adds_only_the_cpu_time_the_total_grew_by() {
    let mut acc = Accounting::new(10);
    acc.declare_fixed("parent");
    acc.use_exit_records();
    acc.observe("parent", obs(5, 9, 100_000, 50_000, 0));
    acc.end_cycle();
    // 158.3 ms in all, of which the ticks at the end say 40 ms user.
    acc.settle(&key(5, 9), &end(40_000, 118_311, 0), true);
    let (report, _) = acc.end_cycle();
    let parent = find(&report, "parent");
    assert_eq!(parent.counters[USER_US], 100_000, "never lowered");
    assert_eq!(parent.counters[SYSTEM_US], 58_311);
    assert_eq!(parent.cpu_delta_us, Some(8_311));
    // Both grew: the growth is split by how much each did.
    let mut acc = Accounting::new(10);
    acc.observe("a", obs(6, 9, 1_000, 1_000, 0));
    acc.settle(&key(6, 9), &end(4_000, 2_000, 0), true);
    let (report, _) = acc.end_cycle();
    let a = find(&report, "a");
    assert_eq!((a.counters[USER_US], a.counters[SYSTEM_US]), (4_000, 2_000));
}

/// An exit record older than the last sample (the sample rounded up) takes nothing back.
#[test]
fn an_exit_record_never_lowers_a_counter() {
    let mut acc = Accounting::new(10);
    acc.observe("a", obs(5, 9, 1_000, 500, 10));
    acc.settle(&key(5, 9), &end(990, 400, 5), true);
    let (report, _) = acc.end_cycle();
    let a = find(&report, "a");
    assert_eq!((a.counters[USER_US], a.counters[WCHAR]), (1_000, 10));
}

#[test]
fn a_process_nobody_saw_is_credited_without_a_process_count() {
    let mut acc = Accounting::new(10);
    acc.observe("sh", obs(5, 9, 1_000, 0, 0));
    acc.end_cycle();
    acc.observe("sh", obs(5, 9, 1_000, 0, 0));
    assert_eq!(
        acc.settle(&key(7, 10), &end(10_000, 300, 1 << 20), true),
        Settled::Unseen
    );
    acc.credit_exited("head", &end(10_000, 300, 1 << 20), true);
    let (report, _) = acc.end_cycle();
    let head = find(&report, "head");
    assert_eq!(head.counters[USER_US] + head.counters[SYSTEM_US], 10_300);
    assert_eq!(head.counters[WCHAR], 1 << 20);
    assert!(head.io_known);
    assert_eq!((head.processes, head.threads), (0, 0));
    assert_eq!(head.cpu_delta_us, Some(10_300));
}

/// The kernel adds a reaped child's I/O to its parent's: with exit records saying so, the
/// parent's instance is not credited it a second time, whichever of the record and the
/// parent's read comes first.
#[test]
fn a_parent_is_not_credited_its_reaped_children_s_io() {
    let mut acc = Accounting::new(10);
    acc.use_exit_records();
    acc.observe("sh", obs(5, 9, 0, 0, 100));
    acc.end_cycle();
    let mut child_io = [0; COUNTERS];
    child_io[WCHAR] = 1_000;
    // Reaped before the parent's read: the read holds it; taken out of it.
    acc.observe("sh", obs(5, 9, 0, 0, 100 + 1_000 + 7));
    acc.reaped_into_parents(&[(5, child_io)]);
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "sh").counters[WCHAR], 107);
    // Reaped after the read: taken out of the next read instead (held still meanwhile).
    acc.observe("sh", obs(5, 9, 0, 0, 1_107 + 3));
    acc.reaped_into_parents(&[(5, child_io)]);
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "sh").counters[WCHAR], 107, "held");
    acc.observe("sh", obs(5, 9, 0, 0, 2_110 + 5));
    let (report, _) = acc.end_cycle();
    assert_eq!(find(&report, "sh").counters[WCHAR], 115);
}

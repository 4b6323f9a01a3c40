//! Integration tests of the plugin without some of its privileges: collectd runs as `nobody`
//! with the capabilities of the shipped systemd drop-in (contrib/systemd/
//! collectd-unprivileged.conf) but one, while root's workloads make what each capability is
//! for happen: loopback traffic, traffic into a network namespace the test made, a datagram to
//! a closed port (what the conntrack question is asked for), and I/O. For each capability left
//! out, collectd keeps writing what it can read, and the plugin says once, per cause, which
//! capability would restore the rest — and nothing else.

mod common;

use common::netns::{ip, Netns};
use common::*;
use std::time::{Duration, Instant};

/// The drop-in's capabilities, as setpriv names them.
const CAPABILITIES: [&str; 7] = [
    "net_raw",
    "net_admin",
    "sys_ptrace",
    "dac_read_search",
    "sys_admin",
    "bpf",
    "perfmon",
];

/// How long the plugin is watched for warnings at least: several sampler cycles, resolver
/// rounds and topology reads after the traffic.
const WATCH: Duration = Duration::from_secs(10);

/// What a run saw: the plugin's warnings, and the last rows of the workloads.
struct Run {
    warnings: Vec<String>,
    log: String,
    /// The loopback sender's `io_octets` rows (absent when its /proc/PID/io is unreadable).
    sender_io: Vec<Row>,
    /// The loopback sender's and the namespace receiver's last `if_packets` (0 when none).
    sender_tx: f64,
    inside_rx: f64,
    /// Whether the loopback sender has any `if_octets` row at all.
    sender_has_network: bool,
    /// The last values of `self` and `unattributed`, for a failure to say where bytes went.
    where_bytes_went: String,
    /// The eBPF owner source was in use (said at start): owners are known without /proc.
    ebpf: bool,
}

/// Who collectd runs as.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// `nobody` with the drop-in's capabilities.
    Nobody,
    /// root, with every capability.
    Root,
}

/// Runs collectd as `who` with every capability of the drop-in but `dropped`, makes traffic
/// and I/O, watches for [`WATCH`], and checks what every run must show: the workload's values
/// written, `load` written, no error. `None` when skipped here.
fn run_without(who: Who, dropped: &[&str]) -> Option<Run> {
    let lab = Netns::create("priv")?;
    let name = format!("cpv{}", lab.id);
    let _veth = lab.veth(&name);
    ip(&["addr", "add", &format!("{}/24", lab.v4(1)), "dev", &name]);
    // With the options whose reads need a capability: taskstats (CAP_NET_ADMIN) and other
    // users' maps (CAP_SYS_PTRACE).
    let block = Some("GroupBy \"{comm}\"\nCollectDelayAccounting true\nCollectMemoryMaps true");
    let collectd = match (who, dropped) {
        (Who::Nobody, _) => {
            let caps: Vec<&str> = CAPABILITIES
                .iter()
                .copied()
                .filter(|c| !dropped.contains(c))
                .collect();
            Collectd::start_as_nobody(block, &caps)?
        }
        (Who::Root, []) => Collectd::start(block)?,
        (Who::Root, dropped) => Collectd::start_without(block, dropped)?,
    };
    let started = Instant::now();
    let since = now();
    // The plugin runs: a sampler cycle was dispatched and, when it can capture, the resolver
    // has indexed the sockets of every process it can read. (Traffic sent while the resolver
    // still reads every process's descriptors on a loaded machine is the subject of other
    // tests.)
    collectd.wait_rows("self", "duration-sampler", "a sampler row", |rows| {
        !rows.is_empty()
    });
    if !dropped.contains(&"net_raw") {
        collectd.wait_rows("self", "count-index_sockets", "indexed sockets", |rows| {
            rows.last().is_some_and(|row| row.value() > 0.0)
        });
    }

    // Loopback datagrams between two root processes.
    let mut receiver = collectd.spawn(&unique_comm("cw_prx_"), &["udp-recv", "127.0.0.1", "25"]);
    let port = receiver.expect_line_starting("port ");
    let mut sender = collectd.spawn(
        &unique_comm("cw_ptx_"),
        &["udp-send", &format!("127.0.0.1:{port}"), "50", "100", "25"],
    );
    sender.expect_line("sent");
    // Datagrams from the host into the namespace: their receiver is found only by entering it.
    let mut inside = lab.spawn(
        &collectd,
        &unique_comm("cw_pnr_"),
        &["udp-recv", &lab.v4(2), "25"],
    );
    let inside_port = inside.expect_line_starting("port ");
    let mut into = collectd.spawn(
        &unique_comm("cw_pns_"),
        &[
            "udp-send",
            &format!("{}:{inside_port}", lab.v4(2)),
            "20",
            "100",
            "25",
        ],
    );
    into.expect_line("sent");
    // Datagrams no socket receives: the resolver asks conntrack whether they are NATed.
    let closed = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("binding a UDP socket");
        socket.local_addr().expect("its address").port()
    };
    let mut nowhere = collectd.spawn(
        &unique_comm("cw_pcl_"),
        &["udp-send", &format!("127.0.0.1:{closed}"), "5", "100", "25"],
    );
    nowhere.expect_line("sent");

    // What the plugin can read is still written: the sender's process count and CPU time,
    // and collectd's other plugins.
    let settled = now() + SETTLE + INTERVAL;
    let count = collectd.wait_row_after(&sender.comm, "ps_count", settled);
    assert_eq!(
        count.last().expect("a row").get("processes"),
        1.0,
        "without {dropped:?}: {}",
        format_rows(&count)
    );
    collectd.wait_row_after(&sender.comm, "ps_cputime", settled);
    let last = |comm: &str, ds: &str| {
        collectd
            .rows(comm, "if_packets")
            .last()
            .map_or(0.0, |row| row.get(ds))
    };
    // On a quiet machine everything sent is credited and written within a few seconds; on a
    // loaded one the capture, the resolver and collectd's writer lag behind. So the watch lasts
    // until it all is (and at least WATCH), or up to twice WATCH where a missing capability
    // keeps it from ever being.
    let credited = || last(&sender.comm, "tx") >= 50.0 && last(&inside.comm, "rx") >= 20.0;
    while started.elapsed() < WATCH || (!credited() && started.elapsed() < 2 * WATCH) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let load = collectd.rows_of_plugin("load", "load");
    assert!(
        load.iter().filter(|row| row.epoch >= since).count() >= 5,
        "without {dropped:?}: load rows since the start: {}",
        format_rows(&load)
    );
    assert!(
        collectd.plugin_log_lines("error").is_empty(),
        "without {dropped:?}: {}",
        collectd.log()
    );
    Some(Run {
        warnings: collectd.plugin_log_lines("warning"),
        log: collectd.log(),
        sender_io: collectd.rows(&sender.comm, "io_octets"),
        sender_tx: last(&sender.comm, "tx"),
        inside_rx: last(&inside.comm, "rx"),
        sender_has_network: !collectd.rows(&sender.comm, "if_octets").is_empty(),
        ebpf: collectd.log().contains("owner source: eBPF"),
        where_bytes_went: format!(
            "capture-self:\n{}capture-unattributed:\n{}",
            collectd.last_values("self"),
            collectd.last_values("unattributed")
        ),
    })
}

/// A warning's cause — what happened, before its first "; " — without its time stamp and with
/// numbers (pids, uids) left out: what two runs that said the same thing have in common.
fn cause(line: &str) -> String {
    let text = line
        .split_once("] capture: ")
        .map_or(line, |(_, text)| text);
    // What happened, not what it costs: that depends on what else loaded (with the eBPF owner
    // source, a process whose descriptors cannot be read still gets its recorded traffic).
    let text = text.split_once("; ").map_or(text, |(happened, _)| happened);
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One capability left out: the causes it must be said for, each once (every needle of a
/// cause in one warning line), and what its absence does to the data.
struct Case {
    /// The capabilities left out.
    dropped: &'static [&'static str],
    causes: &'static [&'static [&'static str]],
    check: fn(&Run) -> Result<(), String>,
}

const NOBODY_CASES: [Case; 7] = [
    Case {
        dropped: &["net_raw"],
        causes: &[&["capture packets", "CAP_NET_RAW"]],
        check: |run| match run.sender_has_network {
            true => Err("if_octets without CAP_NET_RAW".into()),
            false => Ok(()),
        },
    },
    Case {
        dropped: &["net_admin"],
        causes: &[
            &["conntrack", "CAP_NET_ADMIN"],
            &["cannot ask taskstats", "CAP_NET_ADMIN"],
        ],
        check: |_| Ok(()),
    },
    Case {
        dropped: &["sys_ptrace"],
        causes: &[
            &["/io: permission denied", "CAP_SYS_PTRACE"],
            &["cannot read the descriptors", "CAP_SYS_PTRACE"],
            &["/maps: permission denied", "CAP_SYS_PTRACE"],
        ],
        check: others_unreadable,
    },
    Case {
        dropped: &["dac_read_search"],
        causes: &[
            &["/io: permission denied", "CAP_DAC_READ_SEARCH"],
            &["cannot read the descriptors", "CAP_DAC_READ_SEARCH"],
        ],
        check: others_unreadable,
    },
    Case {
        dropped: &["sys_admin"],
        causes: &[&["cannot enter other network namespaces", "CAP_SYS_ADMIN"]],
        check: namespace_unenterable,
    },
    // CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON (the kernel's `bpf_capable`,
    // `perfmon_capable`): without it, each of them is needed.
    Case {
        dropped: &["bpf", "sys_admin"],
        causes: &[
            &["eBPF programs did not load", "CAP_BPF is missing"],
            &["exit program did not load", "CAP_BPF is missing"],
            &["cannot enter other network namespaces", "CAP_SYS_ADMIN"],
        ],
        check: proc_source_only_no_namespace,
    },
    Case {
        dropped: &["perfmon", "sys_admin"],
        causes: &[
            &["eBPF programs did not load", "CAP_PERFMON is missing"],
            &["exit program did not load", "CAP_PERFMON is missing"],
            &["cannot enter other network namespaces", "CAP_SYS_ADMIN"],
        ],
        check: proc_source_only_no_namespace,
    },
];

/// Root without one capability: CAP_SYS_ADMIN, which root keeps, stands in for CAP_BPF and
/// CAP_PERFMON (the kernel's `bpf_capable`, `perfmon_capable`) as CAP_DAC_OVERRIDE does for
/// CAP_DAC_READ_SEARCH.
const ROOT_CASES: [Case; 7] = [
    Case {
        dropped: &["net_raw"],
        causes: &[&["capture packets", "CAP_NET_RAW"]],
        check: |run| match run.sender_has_network {
            true => Err("if_octets without CAP_NET_RAW".into()),
            false => Ok(()),
        },
    },
    Case {
        dropped: &["net_admin"],
        causes: &[
            &["conntrack", "CAP_NET_ADMIN"],
            &["cannot ask taskstats", "CAP_NET_ADMIN"],
        ],
        check: |_| Ok(()),
    },
    Case {
        dropped: &["sys_ptrace"],
        causes: &[
            &["/io: permission denied", "CAP_SYS_PTRACE"],
            &["cannot read the descriptors", "CAP_SYS_PTRACE"],
            &["/maps: permission denied", "CAP_SYS_PTRACE"],
        ],
        check: others_unreadable,
    },
    Case {
        dropped: &["dac_read_search"],
        causes: &[],
        check: all_readable,
    },
    Case {
        dropped: &["sys_admin"],
        causes: &[&["cannot enter other network namespaces", "CAP_SYS_ADMIN"]],
        check: namespace_unenterable,
    },
    Case {
        dropped: &["bpf"],
        causes: &[],
        check: all_readable,
    },
    Case {
        dropped: &["perfmon"],
        causes: &[],
        check: all_readable,
    },
];

/// Without CAP_SYS_ADMIN the namespace cannot be entered to find the receiver's socket: its
/// datagrams are unattributed, unless the eBPF owner source recorded the receiver (it runs in
/// the kernel, in every namespace): then they are its own.
fn namespace_unenterable(run: &Run) -> Result<(), String> {
    let expected = if run.ebpf { 20.0 } else { 0.0 };
    if run.inside_rx != expected {
        return Err(format!(
            "the receiver inside the namespace was credited {} packets without CAP_SYS_ADMIN \
             ({expected} expected, eBPF owner source {})",
            run.inside_rx,
            if run.ebpf { "in use" } else { "not in use" }
        ));
    }
    Ok(())
}

/// Without CAP_BPF or CAP_PERFMON (and CAP_SYS_ADMIN, which stands in for both) the programs
/// do not load and /proc is the owner source: root's loopback datagrams are still its own,
/// the namespace's receiver cannot be found.
fn proc_source_only_no_namespace(run: &Run) -> Result<(), String> {
    if run.ebpf {
        return Err("the eBPF owner source loaded without its capability".into());
    }
    if run.sender_io.is_empty() {
        return Err("no io_octets for root's process".into());
    }
    if run.sender_tx != 50.0 {
        return Err(format!("loopback tx {} (50 sent)", run.sender_tx));
    }
    namespace_unenterable(run)
}

/// Root's processes read as root reads them: I/O counters, loopback datagrams (50 sent) and
/// datagrams into the namespace (20 received there).
fn all_readable(run: &Run) -> Result<(), String> {
    if run.sender_io.is_empty() {
        return Err("no io_octets for root's process".into());
    }
    if run.sender_tx != 50.0 || run.inside_rx != 20.0 {
        return Err(format!(
            "loopback tx {} (50 sent), namespace rx {} (20 sent)",
            run.sender_tx, run.inside_rx
        ));
    }
    Ok(())
}

/// Without CAP_SYS_PTRACE or CAP_DAC_READ_SEARCH, root's processes cannot be read (nobody's
/// are other users', and root's hold capabilities a reader without CAP_SYS_PTRACE lacks):
/// their I/O counters are left out and their traffic is not theirs.
fn others_unreadable(run: &Run) -> Result<(), String> {
    if !run.sender_io.is_empty() {
        return Err(format!(
            "root's io_octets read: {}",
            format_rows(&run.sender_io)
        ));
    }
    // /proc cannot tie root's socket to root's process; the eBPF owner source, recorded in
    // the kernel, does.
    let expected = if run.ebpf { 50.0 } else { 0.0 };
    if run.sender_tx != expected {
        return Err(format!(
            "root's datagrams credited: tx {} ({expected} expected, eBPF owner source {})",
            run.sender_tx,
            if run.ebpf { "in use" } else { "not in use" }
        ));
    }
    Ok(())
}

/// collectd as nobody with the drop-in's capabilities, and with each left out in turn (all
/// six at once): with all of them, root's processes are read as root reads them; without one,
/// values are still written, and the plugin says once per cause which capability restores what
/// is missing — and nothing else than what the complete set says too (on a sandboxed host even
/// root cannot read a few processes, e.g. the sandbox's init).
#[test]
fn as_nobody_each_missing_capability_is_said_once_and_the_rest_is_reported() {
    check_each_missing(Who::Nobody, &NOBODY_CASES);
}

/// The same for a collectd that stays root and loses one capability (`setpriv
/// --bounding-set`): all but CAP_DAC_READ_SEARCH matter as they do to nobody — without
/// CAP_SYS_PTRACE even root's own processes are refused, since they hold capabilities the
/// reader lacks (the kernel's ptrace check) — while CAP_DAC_OVERRIDE, which root keeps, stands
/// in for CAP_DAC_READ_SEARCH: nothing is missing and nothing is said.
#[test]
fn as_root_each_missing_capability_is_said_once_and_the_rest_is_reported() {
    check_each_missing(Who::Root, &ROOT_CASES);
}

/// One set at a time, five collectds at most: twelve on a small machine lag their csv writer enough for
/// two write threads to race on a new file (collectd's csv plugin then loses the header).
static ONE_SET_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// Cases run at once (with the complete set beside the first ones): five collectds at most.
const CASES_AT_ONCE: usize = 4;

/// Runs the complete set and each case at once, and checks them (see the tests).
fn check_each_missing(who: Who, cases: &[Case]) {
    let _one_set = ONE_SET_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // With /proc forced as the owner source (CAPTURE_TEST_OWNER_SOURCE=proc) the programs are
    // never loaded, so their capabilities change nothing to check.
    let proc_only = common::forced_owner_source().is_some_and(|source| source == "proc");
    let cases: Vec<&Case> = cases
        .iter()
        .filter(|case| !proc_only || !case.dropped.iter().any(|c| *c == "bpf" || *c == "perfmon"))
        .collect();
    let started = Instant::now();
    // The complete set and the cases, at most CASES_AT_ONCE + 1 collectds at a time.
    let mut control = None;
    let mut runs: Vec<Option<Run>> = Vec::new();
    for (n, chunk) in cases.chunks(CASES_AT_ONCE).enumerate() {
        std::thread::scope(|scope| {
            let first = (n == 0).then(|| scope.spawn(move || run_without(who, &[])));
            let these: Vec<_> = chunk
                .iter()
                .map(|case| scope.spawn(move || run_without(who, case.dropped)))
                .collect();
            for run in these {
                runs.push(run.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            }
            if let Some(first) = first {
                control = first
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
        });
    }
    let Some(control) = control else {
        return;
    };

    // The complete set restores everything: root's I/O, loopback and namespace traffic.
    if let Err(problem) = all_readable(&control) {
        panic!(
            "{who:?} with every capability: {problem}\n{}{}",
            control.where_bytes_went, control.log
        );
    }
    let baseline: Vec<String> = control.warnings.iter().map(|w| cause(w)).collect();
    for said in &baseline {
        let times = baseline.iter().filter(|b| *b == said).count();
        assert_eq!(times, 1, "said {times} times with every capability: {said}");
    }
    eprintln!("{who:?} with every capability: {baseline:#?}");

    let mut failures = Vec::new();
    for (case, run) in cases.iter().zip(runs) {
        let Some(run) = run else { return };
        let capability = case
            .dropped
            .iter()
            .map(|c| format!("CAP_{}", c.to_ascii_uppercase()))
            .collect::<Vec<_>>()
            .join(" and ");
        let mut problems = Vec::new();
        for needles in case.causes {
            let times = run
                .warnings
                .iter()
                .filter(|w| needles.iter().all(|n| w.contains(n)))
                .count();
            if times != 1 {
                problems.push(format!("{needles:?} said {times} times, not once"));
            }
        }
        for warning in &run.warnings {
            let expected = case
                .causes
                .iter()
                .any(|needles| needles.iter().all(|n| warning.contains(n)));
            if !expected && !baseline.contains(&cause(warning)) {
                problems.push(format!("unexpected warning: {warning}"));
            }
        }
        if let Err(problem) = (case.check)(&run) {
            problems.push(problem);
        }
        eprintln!("{who:?} without {capability}:");
        for warning in &run.warnings {
            eprintln!("  {}", cause(warning));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{who:?} without {capability}:\n  {}\n{}--- log ---\n{}",
                problems.join("\n  "),
                run.where_bytes_went,
                run.log
            ));
        }
    }
    eprintln!(
        "{who:?}: {} collectds, {:.1} s watched each, {:.1} s in all",
        cases.len() + 1,
        WATCH.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

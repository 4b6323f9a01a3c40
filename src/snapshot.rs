//! What one sampler cycle produced, ready to dispatch: the only thing the collectd read
//! callback looks at. Plain data, so the network capture of a later stage adds its counters
//! here without the adapter learning anything new about /proc or pcap.

pub use crate::net::types::Traffic;
pub use crate::supervise::ThreadHealth;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Counters and gauges of one reported instance. Counters (cumulative, never decreasing) are
/// `u64`; gauges that could not be measured are `None` and not dispatched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceReport {
    pub name: String,
    /// CPU time, microseconds (`ps_cputime` user, syst).
    pub cpu_user_us: u64,
    pub cpu_system_us: u64,
    /// Page faults without and with I/O (`ps_pagefaults` minflt, majflt).
    pub minor_faults: u64,
    pub major_faults: u64,
    /// Share of the whole machine's CPU over the last interval (`percent-cpu`).
    pub cpu_percent: Option<f64>,
    pub rss_bytes: u64,
    pub vm_bytes: u64,
    /// RSS over MemTotal (`percent-memory`).
    pub memory_percent: Option<f64>,
    pub processes: u64,
    pub threads: u64,
    /// Open descriptors (`file_handles`), when collected.
    pub file_handles: Option<u64>,
    /// The smallest soft `RLIMIT_NOFILE` among live members (`file_handles-limit`); `None`
    /// when none is known or every member's is unlimited.
    pub file_handles_limit: Option<u64>,
    /// The highest share of its own soft limit any live member uses, in % (`percent-file_handles`).
    pub file_handles_percent: Option<f64>,
    /// `io_octets`, `io_ops`, `disk_octets`, when collected.
    pub io: Option<IoReport>,
    /// `ps_code`, `ps_data`, `ps_stacksize`, with `CollectMemoryDetails`.
    pub memory: Option<MemoryDetails>,
    /// Memory mappings (`file_handles-mapped`), with `CollectMemoryMaps`.
    pub memory_maps: Option<u64>,
    /// `contextswitch-voluntary` and `-involuntary`, with `CollectContextSwitch`.
    pub context_switches: Option<ContextSwitches>,
    /// `delay_rate-delay-*`, with `CollectDelayAccounting`, from the second cycle on.
    pub delays: Option<DelayRates>,
    /// `if_octets`, `if_packets`, when the network is captured.
    pub network: Option<Traffic>,
    /// A fixed-name instance whose emptiness raises notifications (see `notifications`).
    pub watched: bool,
    /// Who the live members are, carried as collectd meta data; `None` when not collected or
    /// the instance has no live member.
    pub meta: Option<Arc<MetaData>>,
}

/// Sizes of a process's code, data and stack mappings (`CollectMemoryDetails`), summed over
/// an instance's members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryDetails {
    pub code_bytes: u64,
    pub data_bytes: u64,
    pub stack_bytes: u64,
}

impl MemoryDetails {
    pub(crate) fn add(&mut self, other: &MemoryDetails) {
        self.code_bytes = self.code_bytes.saturating_add(other.code_bytes);
        self.data_bytes = self.data_bytes.saturating_add(other.data_bytes);
        self.stack_bytes = self.stack_bytes.saturating_add(other.stack_bytes);
    }
}
/// Context switches of an instance's processes since they started, ended ones included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextSwitches {
    pub voluntary: u64,
    pub involuntary: u64,
}

/// Seconds an instance's processes spent waiting, per second of the last interval (summed over
/// processes and threads, so above 1 when several wait at once): for a CPU while runnable, for
/// synchronous block I/O, for swap-in, for memory reclaim (`delay_rate` `delay-cpu`,
/// `delay-blkio`, `delay-swapin`, `delay-freepages`, the processes plugin's names).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DelayRates {
    pub cpu: f64,
    pub blkio: f64,
    pub swapin: f64,
    pub reclaim: f64,
}

/// The identity of an instance's processes, for writers that carry collectd meta data
/// (write_http and write_log in JSON, write_kafka, write_riemann). For a single process every
/// field it has; for several, what they all share (uid, user, comm, exe): never a pid nor a
/// command line. Strings are bounded and free of control characters
/// (`names::sanitize_meta`); shared as `Arc<str>` so that a cycle copies pointers, not text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaData {
    pub pid: Option<u32>,
    /// Real uid.
    pub uid: Option<u32>,
    pub user: Option<Arc<str>>,
    pub comm: Option<Arc<str>>,
    /// Full path of the executable.
    pub exe: Option<Arc<str>>,
    /// Arguments joined by spaces.
    pub cmdline: Option<Arc<str>>,
}

impl MetaData {
    /// What this and `other` (another process) share: fields that differ are dropped, and the
    /// pid and command line, which describe one process, always are.
    pub fn shared_with(&self, other: &MetaData) -> MetaData {
        fn same<T: PartialEq + Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            if a == b {
                a.clone()
            } else {
                None
            }
        }
        MetaData {
            pid: None,
            uid: same(&self.uid, &other.uid),
            user: same(&self.user, &other.user),
            comm: same(&self.comm, &other.comm),
            exe: same(&self.exe, &other.exe),
            cmdline: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == MetaData::default()
    }
}

/// The six I/O counters of `/proc/<pid>/io`, summed over an instance.
pub use crate::proc::pid_io::PidIo as IoReport;

/// How the plugin itself is doing, reported under the instance `self`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Telemetry {
    /// Wall time of the sampler cycle that built this snapshot.
    pub sampler_seconds: f64,
    /// Processes seen in /proc this cycle.
    pub processes: u64,
    /// Instances reported.
    pub instances: u64,
    /// Instances left out because of MaxInstances.
    pub instances_dropped: u64,
    /// Each of the plugin's threads: alive or not, panics caught (empty when the sampler runs
    /// without a thread board, as in unit tests).
    pub threads: Vec<ThreadHealth>,
    /// `None` without exit records.
    pub exits: Option<ExitReport>,
    /// The reported instances' CPU time over the last interval, as a share of the CPU time the
    /// kernel charged to tasks in it (/proc/stat's user, nice and system), in %: how complete
    /// the accounting is. `None` on the first cycle.
    pub cpu_accounted_percent: Option<f64>,
}

/// What the exit records told, since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExitReport {
    /// Records read (one per thread that ended).
    pub records: u64,
    /// Records the kernel could not write, or that found no room: ends not counted.
    pub lost: u64,
    /// Ended processes the sampler had seen, settled with what they used after the last sample.
    pub settled: u64,
    /// Processes no sample saw, placed by the rules.
    pub placed: u64,
    /// Processes no sample saw whose instance needed a fact the record lacks, and their CPU
    /// time (µs).
    pub undecidable: u64,
    pub undecidable_cpu_us: u64,
}

/// One capture interface's health, from libpcap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceReport {
    pub name: String,
    /// Packets libpcap handed to the plugin (what attribution saw; on `lo`, libpcap's own
    /// `received` also counts the outgoing copy of each looped-back packet, which it drops).
    pub captured: u64,
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
    /// False once its capture has stopped (interface gone).
    pub running: bool,
}

/// Plugin-wide network numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkReport {
    /// Traffic of local endpoints whose socket could not be tied to a process (`unattributed`).
    pub unattributed: Traffic,
    /// Copies that belong to no local socket of any namespace: routed or bridged through the
    /// host, or seen promiscuously (`forwarded`).
    pub forwarded: Traffic,
    /// The part of `unattributed` credited there because a bound was reached: flows not
    /// handed to the resolver (its queue, or the waiting flows, were full) or not kept.
    pub shed: Traffic,
    /// Flows shed so far.
    pub flows_shed: u64,
    /// Lookups answered from what the resolver remembers of endpoints with no socket.
    pub lookups_from_memory: u64,
    /// New lookups the resolver answered without asking, its budget being spent (a flood).
    pub lookups_over_budget: u64,
    /// Lookups answered at once because no process was found holding their socket a moment
    /// ago (kernel sockets).
    pub lookups_unowned: u64,
    /// The eBPF owner source: records read, lost (ring buffer full), kept now, and lookups
    /// they answered (by live socket, by endpoint of a closed one). All 0 without it.
    pub records_received: u64,
    pub records_lost: u64,
    pub records_kept: u64,
    pub lookups_by_record: u64,
    pub lookups_by_closed_record: u64,
    /// Processes no cycle saw alive whose traffic went to an instance from their kernel
    /// record, and those whose traffic went to `unattributed` because a rule needed a fact
    /// nobody could read.
    pub processes_placed_from_records: u64,
    pub processes_undecidable: u64,
    /// Flows asked again because their owner was not found in time, and those found so.
    pub second_chances: u64,
    pub second_chances_found: u64,
    pub interfaces: Vec<InterfaceReport>,
    /// Flows in the capture threads' tables now.
    pub flows: u64,
    /// New flows handed to the resolver since start, and those it could not resolve.
    pub lookups: u64,
    pub unresolved: u64,
    /// Bytes waiting for their owner to be resolved.
    pub pending_bytes: u64,
    /// Network namespaces other than the plugin's own reachable through a veth.
    pub namespaces: u64,
    /// The resolver's socket -> process index: passes over every process, listings of /proc
    /// for new processes only, fd links read (all since start), and sockets indexed now.
    pub index_passes: u64,
    pub index_listings: u64,
    pub index_fd_reads: u64,
    pub index_sockets: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Increases by one per cycle; the reader dispatches each snapshot once.
    pub seq: u64,
    /// When the cycle read /proc: the timestamp of every value.
    pub time: SystemTime,
    pub instances: Vec<InstanceReport>,
    pub telemetry: Telemetry,
    /// `None` when the network is not captured.
    pub network: Option<NetworkReport>,
}

impl Snapshot {
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.time)
            .unwrap_or_default()
    }
}

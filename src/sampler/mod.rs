//! One sampler cycle: walk /proc, read what the configuration asks for, group processes into
//! instances and turn the accounting into a [`Snapshot`]. Runs on the plugin's own thread
//! (see `runtime`), never in collectd's read callback.
//!
//! Network traffic comes from the capture threads ([`NetMonitor`]) as per-process deltas
//! since the previous cycle, keyed by (pid, start time) like everything else here. Processes
//! that ended come from the exit thread ([`ExitWatch`]) with their final numbers, and are
//! settled after the walk ([`settle`]): what a process used after its last sample, and the
//! whole of one that lived between two samples, are counted.
//!
//! A cycle may be cut short — a stop, or a panic the sampler thread catches — anywhere: what
//! it took from the capture threads stays in [`NetworkState::incoming`] for the next one, and
//! the accounting starts each cycle's sums from zero, so the next cycle counts every byte and
//! tick once (no spike, nothing lost).
//!
//! Files read per process per cycle: `stat` always; `io` and `fd` when collected, and only
//! for processes that are reported. `cmdline`, `exe`, `status` and `cgroup` only when a rule or
//! template needs them, and only when a process is first seen or changes its comm. The costly
//! options' `status`, `schedstat`, `maps` and taskstats requests only for reported processes,
//! and only when their values can have changed ([`details`]).

pub mod accounting;
mod delays;
mod details;
mod facts;
pub mod grouping;
mod recorded;
mod settle;

use crate::config::Config;
use crate::exits::watch::ExitWatch;
use crate::names;
use crate::net::monitor::{InterfaceTotals, NetMonitor};
use crate::net::types::{Owner, Traffic};
use crate::proc::fd::FdCountMethod;
use crate::proc::kept::{KeptFiles, Kind};
use crate::proc::{cmdline, meminfo, pid_io, pid_limits, pid_stat, stat, system, ProcRoot};
use crate::snapshot::{
    ContextSwitches, ExitReport, InstanceReport, InterfaceReport, IoReport, MetaData,
    NetworkReport, Snapshot, Telemetry,
};
use crate::supervise::ThreadBoard;
use crate::users::UserNames;
use accounting::{Accounting, Comm, Gauges, Observation, ProcessKey, COUNTERS};
use details::{Details, Remembered, Sampled, Sources};
use facts::ProcFacts;
use grouping::Assignment;
use recorded::Placement;
use settle::SettleCounts;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What a process was grouped into, and the comm it had then: grouping runs again only when
/// the comm changes (exec), not every cycle.
struct Grouped {
    comm: Box<[u8]>,
    instance: Option<String>,
    /// Network traffic credited to the process since it was first seen.
    network: Traffic,
    /// Cycle in which the process was last seen; entries of vanished processes are dropped.
    seen: u64,
    /// Soft `RLIMIT_NOFILE` as last read, and when: limits are set at start (systemd's
    /// `LimitNOFILE=`, a shell's `ulimit -n`) and rarely changed afterwards (`prlimit` by hand,
    /// a server raising its own at startup), so it is read again at most every
    /// [`FD_LIMIT_MAX_AGE`], not every cycle.
    fd_limit: Option<u64>,
    fd_limit_read: Option<Instant>,
    /// Who the process is, read when it is grouped (with `MetaData true`), except for the
    /// command line: only a process alone in its instance carries one, so it is read the first
    /// time the process is (`cmdline_read`). Both are kept for the life of the process (or
    /// until its comm changes): a process rarely changes its user after start, and its command
    /// line is taken as it was first seen — programs that rewrite their title later
    /// (`postgres: checkpointer`, `sshd: user@pts/0`) keep the first one.
    meta: Option<Arc<MetaData>>,
    cmdline_read: bool,
    /// What the costly options' reads keep from one cycle to the next (`details`).
    remembered: Remembered,
}

/// How long a process's descriptor limit is trusted before it is read again: a limit changed
/// while the process runs shows within a minute.
const FD_LIMIT_MAX_AGE: Duration = Duration::from_secs(60);

/// Causes of unreadable files, each logged once for the plugin's lifetime.
#[derive(Default)]
struct Warned {
    io_denied: bool,
    fd_denied: bool,
    proc_stat: bool,
}

pub struct Sampler {
    config: Config,
    proc: ProcRoot,
    /// Per-process files kept open across cycles (live /proc only).
    kept: KeptFiles,
    fd_method: FdCountMethod,
    ticks_per_second: u64,
    page_size: u64,
    accounting: Accounting,
    grouped: HashMap<ProcessKey, Grouped>,
    users: UserNames,
    previous_cpu: Option<stat::CpuTicks>,
    seq: u64,
    warned: Warned,
    pids: Vec<u32>,
    network: Option<NetworkState>,
    /// When the current cycle started (the age of cached per-process facts is measured by it).
    cycle_started: Instant,
    /// The plugin's threads, whose health each snapshot reports.
    threads: Option<Arc<ThreadBoard>>,
    /// The exit thread, whose ended processes each cycle settles; `None` without exit records.
    exits: Option<(ExitWatch, SettleCounts)>,
    /// What the costly options read (`CollectMemoryDetails` ...).
    details: Details,
}

/// Where network deltas go between the capture threads and the accounting.
struct NetworkState {
    monitor: NetMonitor,
    /// Per-process traffic taken from the capture threads and not credited yet: this cycle's
    /// deltas, what earlier cycles held for processes not seen yet, and what a cycle cut short
    /// left. Each byte is here until it is credited, once: sample_process consumes what
    /// belongs to a live process, place_leftover_traffic the rest, or leaves it for later.
    incoming: HashMap<Owner, Traffic>,
    /// Owners in `incoming` that no cycle has found in /proc, and the cycle since which: held
    /// a few cycles in case the process shows up, then counted as unattributed.
    unseen: HashMap<Owner, u64>,
    /// Traffic of processes never seen, given up on: reported with `unattributed`.
    unattributed: Traffic,
    /// Processes never seen alive whose traffic was placed from their kernel record, and
    /// those that could not be (a rule needed a fact nobody could read), since the start.
    placed_from_records: u64,
    undecidable: u64,
}

/// Whether the process `owner` is still there (a zombie too: a cycle samples it).
fn is_alive(proc: &mut ProcRoot, owner: &Owner) -> bool {
    proc.read(Some(owner.pid), "stat", 4096)
        .ok()
        .and_then(crate::proc::pid_stat::parse)
        .is_some_and(|stat| stat.starttime == owner.starttime)
}

/// Cycles the traffic of a process nobody has seen is held before it counts as unattributed.
const UNSEEN_CYCLES: u64 = 3;

impl Sampler {
    /// A sampler of the live system.
    pub fn new(config: Config) -> Self {
        let fd_method = FdCountMethod::for_running_kernel();
        let mut sampler = Self::with_proc(config, ProcRoot::system(), fd_method);
        sampler.kept = KeptFiles::with_room_above_the_limit();
        sampler
    }

    /// A sampler of any directory laid out like /proc (fixtures in tests).
    pub fn with_proc(config: Config, proc: ProcRoot, fd_method: FdCountMethod) -> Self {
        let mut accounting = Accounting::new(config.max_instances);
        for rule in &config.rules {
            if let Some(fixed) = rule.name.fixed() {
                accounting.declare_fixed(&fixed);
            }
        }
        Sampler {
            config,
            proc,
            kept: KeptFiles::none(),
            fd_method,
            ticks_per_second: system::clock_ticks_per_second(),
            page_size: system::page_size(),
            accounting,
            grouped: HashMap::new(),
            users: UserNames::default(),
            previous_cpu: None,
            seq: 0,
            warned: Warned::default(),
            pids: Vec::new(),
            network: None,
            cycle_started: Instant::now(),
            threads: None,
            exits: None,
            details: Details::default(),
        }
    }

    /// Reports the health of `board`'s threads in every snapshot from now on.
    pub fn set_threads(&mut self, board: Arc<ThreadBoard>) {
        self.threads = Some(board);
    }

    /// Settles the processes `watch` tells ended in every cycle from now on.
    pub fn set_exits(&mut self, watch: ExitWatch) {
        self.accounting.use_exit_records();
        self.exits = Some((watch, SettleCounts::default()));
    }

    /// Merges the traffic of `monitor`'s capture threads into every cycle from now on.
    pub fn set_network(&mut self, monitor: NetMonitor) {
        self.network = Some(NetworkState {
            monitor,
            incoming: HashMap::new(),
            unseen: HashMap::new(),
            unattributed: Traffic::default(),
            placed_from_records: 0,
            undecidable: 0,
        });
    }

    /// Overrides the clock tick and page size read from sysconf (fixtures in tests).
    pub fn set_units(&mut self, ticks_per_second: u64, page_size: u64) {
        self.ticks_per_second = ticks_per_second.max(1);
        self.page_size = page_size;
    }

    /// Runs one cycle. `stop` is polled between processes so shutdown never waits for a full
    /// walk of a huge /proc; a cycle cut short returns `None` and leaves its accounting half
    /// done, so stopping is final: the sampler is dropped afterwards.
    pub fn cycle(&mut self, stop: &dyn Fn() -> bool) -> Option<Snapshot> {
        let started = Instant::now();
        self.cycle_started = started;
        let time = SystemTime::now();
        let cpu_now = self.read_cpu_ticks();
        let mem_total = self
            .proc
            .read(None, "meminfo", 64 * 1024)
            .ok()
            .and_then(meminfo::parse_mem_total);

        let interfaces = self.take_network_deltas();
        self.accounting.begin_cycle();
        self.list_pids();
        let pids = std::mem::take(&mut self.pids);
        let mut seen = 0u64;
        for (i, &pid) in pids.iter().enumerate() {
            if i % 256 == 0 && stop() {
                self.pids = pids;
                return None;
            }
            if i == pids.len() / 2 {
                // Half-way through the walk: a panic here leaves the most half done (half the
                // members observed, the network deltas taken), the case the tests must cover.
                crate::faults::inject("sampler-cycle");
            }
            if self.sample_process(pid) {
                seen += 1;
            }
        }
        self.kept.retain_sorted(&pids);
        self.pids = pids;
        let this_cycle = self.seq + 1;
        self.grouped.retain(|_, g| g.seen == this_cycle);
        // After a burst of processes, give the memory back (a busy host's churn would
        // otherwise keep every per-process map at its high-water mark).
        crate::maps::shrink_mostly_empty(&mut self.grouped);
        let exits = self.settle_exits();

        let (mut totals, outcome) = self.accounting.end_cycle();
        for t in &mut totals {
            if let Some(key) = t.single {
                t.meta = self.single_process_meta(key).or(t.meta.take());
            }
        }
        let network = self.place_leftover_traffic(interfaces);
        if outcome.first_drop {
            log::warn!(
                "MaxInstances {} reached: {} instance(s) are not reported this interval; raise \
                 MaxInstances or group more coarsely with GroupBy (said once; the count is in \
                 capture-self/count-instances_dropped)",
                self.config.max_instances,
                outcome.dropped
            );
        }
        let (cpu_delta_total, tasks_delta) = match (self.previous_cpu, cpu_now) {
            (Some(before), Some(now)) if now.total > before.total => (
                Some(now.total - before.total),
                now.tasks.checked_sub(before.tasks),
            ),
            _ => (None, None),
        };
        self.previous_cpu = cpu_now;

        let all_us = cpu_delta_total.map(|ticks| ticks_to_us(ticks, self.ticks_per_second));
        // The share of the CPU time charged to tasks that the reported instances account for.
        let accounted_us: Option<u64> = totals.iter().map(|t| t.cpu_delta_us).sum();
        let cpu_accounted_percent = match (accounted_us, tasks_delta) {
            (Some(used), Some(ticks)) if ticks > 0 => {
                Some(used as f64 * 100.0 / ticks_to_us(ticks, self.ticks_per_second) as f64)
            }
            _ => None,
        };
        let delay_rates = if self.config.collect_delay_accounting {
            self.details.delays.rates(&totals, started)
        } else {
            Vec::new()
        };
        let instances: Vec<InstanceReport> = totals
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let c = &t.counters;
                InstanceReport {
                    cpu_user_us: c[accounting::USER_US],
                    cpu_system_us: c[accounting::SYSTEM_US],
                    minor_faults: c[accounting::MINOR_FAULTS],
                    major_faults: c[accounting::MAJOR_FAULTS],
                    cpu_percent: match (t.cpu_delta_us, all_us) {
                        (Some(used), Some(all)) if all > 0 => {
                            Some((used as f64 * 100.0 / all as f64).clamp(0.0, 100.0))
                        }
                        _ => None,
                    },
                    rss_bytes: t.rss_bytes,
                    vm_bytes: t.vm_bytes,
                    memory_percent: mem_total
                        .filter(|&m| m > 0)
                        .map(|m| (t.rss_bytes as f64 * 100.0 / m as f64).clamp(0.0, 100.0)),
                    processes: t.processes,
                    threads: t.threads,
                    file_handles: if self.config.collect_file_handles {
                        t.file_handles
                    } else {
                        None
                    },
                    file_handles_limit: t.fd_limit.filter(|_| self.config.collect_file_handles),
                    file_handles_percent: t.fd_percent.filter(|_| self.config.collect_file_handles),
                    network: network.is_some().then(|| Traffic {
                        rx_bytes: c[accounting::NET_RX_BYTES],
                        tx_bytes: c[accounting::NET_TX_BYTES],
                        rx_packets: c[accounting::NET_RX_PACKETS],
                        tx_packets: c[accounting::NET_TX_PACKETS],
                    }),
                    io: (self.config.collect_io && t.io_known).then(|| IoReport {
                        rchar: c[accounting::RCHAR],
                        wchar: c[accounting::WCHAR],
                        syscr: c[accounting::SYSCR],
                        syscw: c[accounting::SYSCW],
                        read_bytes: c[accounting::READ_BYTES],
                        write_bytes: c[accounting::WRITE_BYTES],
                    }),
                    memory: t.memory.filter(|_| self.config.collect_memory_details),
                    memory_maps: t.maps.filter(|_| self.config.collect_memory_maps),
                    context_switches: self.config.collect_context_switches.then(|| {
                        ContextSwitches {
                            voluntary: c[accounting::VOLUNTARY_SWITCHES],
                            involuntary: c[accounting::INVOLUNTARY_SWITCHES],
                        }
                    }),
                    delays: delay_rates.get(i).copied().flatten(),
                    watched: t.fixed && self.config.notifications,
                    meta: t.meta,
                    name: t.name,
                }
            })
            .collect();

        self.seq += 1;
        Some(Snapshot {
            seq: self.seq,
            time,
            telemetry: Telemetry {
                sampler_seconds: started.elapsed().as_secs_f64(),
                processes: seen,
                instances: instances.len() as u64,
                instances_dropped: outcome.dropped,
                threads: self
                    .threads
                    .as_ref()
                    .map(|b| b.health())
                    .unwrap_or_default(),
                exits,
                cpu_accounted_percent,
            },
            instances,
            network,
        })
    }

    /// Counts the processes that ended since the last cycle from their exit records.
    fn settle_exits(&mut self) -> Option<ExitReport> {
        let (watch, counts) = self.exits.as_mut()?;
        let ended = watch.take_ended();
        settle::settle(
            ended,
            &mut self.accounting,
            &self.config,
            &mut self.users,
            counts,
        );
        let stats = watch.stats();
        Some(ExitReport {
            records: stats.records,
            lost: stats.lost,
            settled: counts.seen,
            placed: counts.placed,
            undecidable: counts.undecidable,
            undecidable_cpu_us: counts.undecidable_cpu_us,
        })
    }

    /// Adds the capture threads' per-process traffic of the last interval to what is held
    /// (for processes not seen yet, or by a cycle cut short), for sample_process to consume.
    fn take_network_deltas(&mut self) -> Vec<InterfaceTotals> {
        let Some(net) = self.network.as_mut() else {
            return Vec::new();
        };
        let (traffic, interfaces) = net.monitor.take_traffic();
        for (owner, t) in traffic {
            net.incoming.entry(owner).or_default().merge(&t);
        }
        interfaces
    }

    /// Traffic of processes not seen this cycle: to the instance of a process that just exited,
    /// held for one not seen yet, or — after a few cycles — unattributed.
    fn place_leftover_traffic(
        &mut self,
        interfaces: Vec<InterfaceTotals>,
    ) -> Option<NetworkReport> {
        let net = self.network.as_mut()?;
        let cycle = self.seq + 1;
        let mut still_unseen = HashMap::new();
        let accounting = &mut self.accounting;
        let (config, users, proc) = (&self.config, &mut self.users, &mut self.proc);
        net.incoming.retain(|owner, traffic| {
            let key = ProcessKey {
                pid: owner.pid,
                starttime: owner.starttime,
            };
            let recorded = net.monitor.recorded_process(owner);
            let used_as = recorded.as_ref().map(|p| Comm::of(p.comm.as_bytes()));
            if accounting.credit_departed(&key, used_as, &network_counters(traffic)) {
                return false;
            }
            // A process the kernel recorded, gone before any cycle saw it as what used the
            // sockets (never seen, or seen only before it exec'd): placed by the rules from
            // what the record kept.
            if let Some(process) = recorded {
                if !is_alive(proc, owner) {
                    match recorded::place(config, &process, users) {
                        Placement::Instance(name) => {
                            accounting.credit_unseen(&name, &network_counters(traffic));
                            net.placed_from_records += 1;
                        }
                        Placement::Dropped => {}
                        Placement::Undecidable => {
                            net.unattributed.merge(traffic);
                            net.undecidable += 1;
                        }
                    }
                    return false;
                }
            }
            let since = net.unseen.get(owner).copied().unwrap_or(cycle);
            if cycle - since >= UNSEEN_CYCLES {
                net.unattributed.merge(traffic);
                return false;
            }
            still_unseen.insert(*owner, since);
            true
        });
        crate::maps::shrink_mostly_empty(&mut net.incoming);
        net.unseen = still_unseen;

        let resolver = net.monitor.resolver_stats();
        let index = resolver.index;
        let mut report = NetworkReport {
            unattributed: net.unattributed,
            namespaces: net.monitor.namespaces() as u64,
            index_passes: index.sweeps,
            index_listings: index.listings,
            index_fd_reads: index.fds_read,
            index_sockets: index.sockets as u64,
            lookups_from_memory: resolver.answered_from_memory,
            lookups_over_budget: resolver.over_budget,
            lookups_unowned: resolver.answered_unowned,
            records_received: resolver.records.received,
            records_lost: resolver.records.lost,
            records_kept: resolver.records.kept,
            lookups_by_record: resolver.records.answered_by_socket,
            lookups_by_closed_record: resolver.records.answered_by_endpoint,
            processes_placed_from_records: net.placed_from_records,
            processes_undecidable: net.undecidable,
            ..NetworkReport::default()
        };
        for iface in interfaces {
            report.unattributed.merge(&iface.unattributed);
            report.forwarded.merge(&iface.forwarded);
            report.shed.merge(&iface.shed);
            report.flows_shed += iface.flows.flows_shed;
            report.second_chances += iface.flows.second_chances;
            report.second_chances_found += iface.flows.second_chances_found;
            report.flows += iface.tracked_flows;
            report.lookups += iface.flows.lookups_requested;
            report.unresolved += iface.flows.unresolved;
            report.pending_bytes += iface.pending.bytes();
            report.interfaces.push(InterfaceReport {
                captured: iface.ip_packets + iface.skipped,
                name: iface.interface,
                received: iface.pcap_received,
                dropped: iface.pcap_dropped,
                if_dropped: iface.pcap_if_dropped,
                running: iface.running,
            });
        }
        Some(report)
    }

    fn read_cpu_ticks(&mut self) -> Option<stat::CpuTicks> {
        let total = self
            .proc
            .read(None, "stat", 4096)
            .ok()
            .and_then(stat::parse_cpu_ticks);
        if total.is_none() && !self.warned.proc_stat {
            self.warned.proc_stat = true;
            log::warn!("cannot read the cpu line of /proc/stat: percent-cpu will not be reported");
        }
        total
    }

    fn list_pids(&mut self) {
        self.pids.clear();
        let Ok(entries) = std::fs::read_dir(self.proc.root()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) {
                self.pids.push(pid);
            }
        }
        self.pids.sort_unstable();
    }

    /// Reads one process and records it. False when it vanished or is unreadable — normal
    /// churn, never an error.
    fn sample_process(&mut self, pid: u32) -> bool {
        let Ok(content) = self.proc.read_kept(&mut self.kept, pid, Kind::Stat, 4096) else {
            return false;
        };
        let Some(st) = pid_stat::parse(content) else {
            return false;
        };
        let key = ProcessKey {
            pid,
            starttime: st.starttime,
        };
        let mut counters = [0u64; COUNTERS];
        counters[accounting::USER_US] = ticks_to_us(st.utime, self.ticks_per_second);
        counters[accounting::SYSTEM_US] = ticks_to_us(st.stime, self.ticks_per_second);
        counters[accounting::MINOR_FAULTS] = st.minor_faults;
        counters[accounting::MAJOR_FAULTS] = st.major_faults;
        let mut gauges = Gauges {
            rss_bytes: st.rss_pages.saturating_mul(self.page_size),
            vm_bytes: st.vsize,
            threads: st.num_threads,
            file_handles: None,
            fd_limit: None,
            memory: None,
            maps: None,
        };
        let kernel_thread = st.kernel_thread;
        let (ppid, children_minflt) = (st.ppid, st.children_minflt);
        let sampled_as = Comm::of(st.comm);

        let comm = grouping_comm(st.comm, kernel_thread);
        let this_cycle = self.seq + 1;
        let known = self.grouped.get(&key).is_some_and(|g| *g.comm == *comm);
        if !known {
            let comm: Box<[u8]> = comm.into();
            let (instance, meta) = self.group(pid, &comm, kernel_thread);
            let cmdline_read = meta.as_ref().is_none_or(|(_, read)| *read);
            self.grouped.insert(
                key,
                Grouped {
                    comm,
                    instance,
                    network: Traffic::default(),
                    seen: this_cycle,
                    fd_limit: None,
                    fd_limit_read: None,
                    meta: meta.map(|(m, _)| Arc::new(m)),
                    cmdline_read,
                    remembered: Remembered::default(),
                },
            );
        }
        // Borrowed from here on, beside the other fields: no copy of the name per process.
        let Some(grouped) = self.grouped.get_mut(&key) else {
            return false;
        };
        grouped.seen = this_cycle;
        if grouped.instance.is_some() && self.config.collects_details() {
            let sources = Sources {
                config: &self.config,
                proc: &mut self.proc,
                kept: &mut self.kept,
                now: self.cycle_started,
            };
            let process = Sampled {
                pid,
                threads: gauges.threads,
                vsize: gauges.vm_bytes,
            };
            grouped.remembered = self.details.read(
                sources,
                process,
                grouped.remembered,
                &mut counters,
                &mut gauges,
            );
        }
        if let Some(net) = self.network.as_mut() {
            let owner = Owner {
                pid,
                starttime: key.starttime,
            };
            if let Some(traffic) = net.incoming.remove(&owner) {
                grouped.network.merge(&traffic);
            }
            net.unseen.remove(&owner);
            let t = network_counters(&grouped.network);
            let net = accounting::NET_RX_BYTES..accounting::NET_TX_PACKETS + 1;
            counters[net.clone()].copy_from_slice(&t[net]);
        }
        let Some(instance) = grouped.instance.as_deref() else {
            // Dropped by `GroupBy ""`: nothing more is read for it, its traffic is not reported.
            return true;
        };

        let mut io_known = false;
        if self.config.collect_io {
            match self.proc.read_kept(&mut self.kept, pid, Kind::Io, 1024) {
                Ok(content) => {
                    if let Some(io) = pid_io::parse(content) {
                        counters[accounting::RCHAR] = io.rchar;
                        counters[accounting::WCHAR] = io.wchar;
                        counters[accounting::SYSCR] = io.syscr;
                        counters[accounting::SYSCW] = io.syscw;
                        counters[accounting::READ_BYTES] = io.read_bytes;
                        counters[accounting::WRITE_BYTES] = io.write_bytes;
                        io_known = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !self.warned.io_denied => {
                    self.warned.io_denied = true;
                    log::warn!(
                        "cannot read /proc/{pid}/io: permission denied; processes whose I/O \
                         counters cannot be read are reported without them. Reading other \
                         users' needs CAP_DAC_READ_SEARCH (the file is theirs, mode 0400) and \
                         CAP_SYS_PTRACE (the kernel's ptrace check), and no LSM, Yama policy or \
                         user namespace refusing it (said once)"
                    );
                }
                Err(_) => {}
            }
        }
        if self.config.collect_file_handles {
            let counted = match self.fd_method {
                // The kept handle's fstat is the count: one call, no path walk.
                FdCountMethod::StatSize => {
                    let dir = self.proc.path(Some(pid), "fd");
                    self.kept.fd_count(pid, dir)
                }
                FdCountMethod::ReadDir => self.fd_method.count(self.proc.path(Some(pid), "fd")),
            };
            match counted {
                Ok(n) => gauges.file_handles = Some(n),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !self.warned.fd_denied => {
                    self.warned.fd_denied = true;
                    log::warn!(
                        "cannot read /proc/{pid}/fd: permission denied; processes whose file \
                         descriptors cannot be counted are reported without them. Counting other \
                         users' descriptors needs CAP_DAC_READ_SEARCH (said once)"
                    );
                }
                Err(_) => {}
            }
            let due = grouped
                .fd_limit_read
                .is_none_or(|at| self.cycle_started.duration_since(at) >= FD_LIMIT_MAX_AGE);
            if due {
                grouped.fd_limit = pid_limits::soft_nofile(&mut self.proc, pid);
                grouped.fd_limit_read = Some(self.cycle_started);
            }
            gauges.fd_limit = grouped.fd_limit;
        }
        self.accounting.observe(
            instance,
            Observation {
                key,
                comm: sampled_as,
                ppid,
                children_minflt,
                counters,
                io_known,
                gauges,
                meta: grouped.meta.clone(),
            },
        );
        true
    }

    /// The instance of a process and, with `MetaData true` for a reported process, its meta
    /// data and whether the command line is in it. What grouping already read is reused.
    fn group(
        &mut self,
        pid: u32,
        comm: &[u8],
        kernel_thread: bool,
    ) -> (Option<String>, Option<(MetaData, bool)>) {
        let comm = String::from_utf8_lossy(comm);
        let mut facts = ProcFacts::new(&mut self.proc, &mut self.users, pid, &comm, kernel_thread);
        let instance = grouping::assign(&self.config, &mut facts).map(|a: Assignment| a.name);
        let meta = (self.config.meta_data && instance.is_some()).then(|| facts.meta_data());
        (instance, meta)
    }

    /// The meta data of a process alone in its instance: with its command line, read now if
    /// it has not been.
    fn single_process_meta(&mut self, key: ProcessKey) -> Option<Arc<MetaData>> {
        let grouped = self.grouped.get_mut(&key)?;
        let meta = grouped.meta.as_mut()?;
        if !grouped.cmdline_read {
            grouped.cmdline_read = true;
            // The first bytes are all a bounded meta string keeps.
            let limit = names::MAX_META_BYTES * 4;
            if let Ok(content) = self.proc.read(Some(key.pid), "cmdline", limit) {
                let joined = cmdline::join(content);
                if !joined.is_empty() {
                    Arc::make_mut(meta).cmdline = Some(names::sanitize_meta(&joined).into());
                }
            }
        }
        Some(Arc::clone(meta))
    }
}

/// Traffic as accounting counters.
fn network_counters(t: &Traffic) -> accounting::Counters {
    let mut c = [0; COUNTERS];
    c[accounting::NET_RX_BYTES] = t.rx_bytes;
    c[accounting::NET_TX_BYTES] = t.tx_bytes;
    c[accounting::NET_RX_PACKETS] = t.rx_packets;
    c[accounting::NET_TX_PACKETS] = t.tx_packets;
    c
}

/// Clock ticks (of /proc/PID/stat and /proc/stat) in µs.
fn ticks_to_us(ticks: u64, ticks_per_second: u64) -> u64 {
    let us = u128::from(ticks) * 1_000_000 / u128::from(ticks_per_second.max(1));
    u64::try_from(us).unwrap_or(u64::MAX)
}

/// The comm used for grouping. Workqueue workers show the work item they are running after a
/// dash (`kworker/0:1-events`, changing from one moment to the next); grouping on that would
/// make instances flicker, so for them the suffix is cut back to the thread's own name.
fn grouping_comm(comm: &[u8], kernel_thread: bool) -> &[u8] {
    if kernel_thread && comm.starts_with(b"kworker/") {
        if let Some(dash) = comm.iter().position(|&b| b == b'-') {
            return &comm[..dash];
        }
    }
    comm
}

#[cfg(test)]
mod tests;

//! The arithmetic that makes instance numbers trustworthy, with no /proc in sight:
//!
//! - processes are tracked by (pid, start time), so a reused pid is a new process;
//! - an instance's counters are the sum over its members *including members that exited*:
//!   what an exiting process had used moves into the instance's base and stays there;
//! - a process that appears contributes everything it used since it started;
//! - a process's exit record (when there are exit records) adds what it used after its last
//!   sample, in the instance it was last sampled in; one never sampled is credited whole to the
//!   instance the rules give it, with no process count ([`Accounting::settle`]);
//! - a process that moves to another instance (exec changed its comm) leaves what it used so far
//!   with the old instance and brings only what it uses from then on to the new one;
//! - a parent's I/O counters are its own: the kernel folds a reaped child's I/O into its
//!   parent's `/proc/<pid>/io`, so the I/O of a child that was reported on its own is taken
//!   back out of the parent once the parent reaps it: exactly what the child's exit record
//!   says went into the parent ([`Accounting::reaped_into_parents`]), or without exit records
//!   the child's last sample once the parent's `cminflt` shows a reap
//!   ([`Accounting::end_cycle`]);
//! - reported counters never decrease, whatever /proc does;
//! - `MaxInstances` bounds what is reported, with stable admission: an instance keeps its place
//!   while it has live processes, newcomers wait for room.

use crate::proc::pid_limits::UNLIMITED;
use crate::snapshot::{MemoryDetails, MetaData};
use std::collections::HashMap;
use std::sync::Arc;

/// Index of each cumulative counter in [`Counters`]. CPU time is kept in µs, not in the clock
/// ticks /proc counts: exit records give it to the µs, and a thousand processes of 10.3 ms each
/// are 10.3 s, not the 10 s their rounded ticks would sum to.
pub const USER_US: usize = 0;
pub const SYSTEM_US: usize = 1;
pub const RCHAR: usize = 2;
pub const WCHAR: usize = 3;
pub const SYSCR: usize = 4;
pub const SYSCW: usize = 5;
pub const READ_BYTES: usize = 6;
pub const WRITE_BYTES: usize = 7;
pub const NET_RX_BYTES: usize = 8;
pub const NET_TX_BYTES: usize = 9;
pub const NET_RX_PACKETS: usize = 10;
pub const NET_TX_PACKETS: usize = 11;
pub const MINOR_FAULTS: usize = 12;
pub const MAJOR_FAULTS: usize = 13;
/// Context switches (`CollectContextSwitch`).
pub const VOLUNTARY_SWITCHES: usize = 14;
pub const INVOLUNTARY_SWITCHES: usize = 15;
/// Delay accounting, in ns (`CollectDelayAccounting`): waiting for a CPU while runnable, for
/// synchronous block I/O, for swap-in, for memory reclaim.
pub const CPU_DELAY_NS: usize = 16;
pub const BLKIO_DELAY_NS: usize = 17;
pub const SWAPIN_DELAY_NS: usize = 18;
pub const RECLAIM_DELAY_NS: usize = 19;
pub const COUNTERS: usize = 20;
/// The counters an exit record settles besides the I/O ones (which it settles only where the
/// sampler could read them).
const SETTLED: [usize; 10] = [
    USER_US,
    SYSTEM_US,
    MINOR_FAULTS,
    MAJOR_FAULTS,
    VOLUNTARY_SWITCHES,
    INVOLUNTARY_SWITCHES,
    CPU_DELAY_NS,
    BLKIO_DELAY_NS,
    SWAPIN_DELAY_NS,
    RECLAIM_DELAY_NS,
];
/// The I/O counters, which a parent inherits from the children it reaps.
const IO: std::ops::Range<usize> = RCHAR..WRITE_BYTES + 1;

/// Cumulative counters of one process or instance, indexed by the constants above.
pub type Counters = [u64; COUNTERS];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessKey {
    pub pid: u32,
    pub starttime: u64,
}

/// Point-in-time values of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    pub rss_bytes: u64,
    pub vm_bytes: u64,
    pub threads: u64,
    /// `None` when not collected or not readable.
    pub file_handles: Option<u64>,
    /// Soft `RLIMIT_NOFILE` ([`UNLIMITED`](crate::proc::pid_limits::UNLIMITED) for none);
    /// `None` when not collected or not readable.
    pub fd_limit: Option<u64>,
    /// Code, data and stack sizes; `None` when not collected or not readable.
    pub memory: Option<MemoryDetails>,
    /// Memory mappings; `None` when not collected or not readable.
    pub maps: Option<u64>,
}

/// A process's comm as the kernel keeps it (`TASK_COMM_LEN`: 15 bytes and a NUL), compared
/// to tell whether a process exec'd after it was last sampled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Comm([u8; 16]);

impl Comm {
    /// The first 15 bytes of `name`, as the kernel would keep them.
    pub fn of(name: &[u8]) -> Self {
        let mut comm = [0; 16];
        let len = name.len().min(15);
        comm[..len].copy_from_slice(&name[..len]);
        Comm(comm)
    }
}

/// One process as seen in this cycle.
#[derive(Debug, Clone)]
pub struct Observation {
    pub key: ProcessKey,
    pub comm: Comm,
    pub ppid: u32,
    /// `cminflt` of /proc/<pid>/stat: grows when the process reaps a child.
    pub children_minflt: u64,
    /// As read: the I/O counters include what reaped children did.
    pub counters: Counters,
    /// Whether the I/O counters were read (this cycle or before).
    pub io_known: bool,
    pub gauges: Gauges,
    /// Who the process is, when meta data is collected.
    pub meta: Option<Arc<MetaData>>,
}

/// An instance's numbers at the end of a cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceTotals {
    pub name: String,
    /// A rule's fixed name: reported even with no process.
    pub fixed: bool,
    pub counters: Counters,
    /// CPU time (µs) used by its members during the cycle's interval; `None` on the first cycle,
    /// which has nothing to compare with.
    pub cpu_delta_us: Option<u64>,
    pub processes: u64,
    pub threads: u64,
    pub rss_bytes: u64,
    pub vm_bytes: u64,
    pub file_handles: Option<u64>,
    pub memory: Option<MemoryDetails>,
    pub maps: Option<u64>,
    /// The smallest finite soft `RLIMIT_NOFILE` among live members.
    pub fd_limit: Option<u64>,
    /// The highest share of its own soft limit that a live member uses, in %.
    pub fd_percent: Option<f64>,
    pub io_known: bool,
    /// The meta data of the live members: a single member's own, or what several share.
    pub meta: Option<Arc<MetaData>>,
    /// The one live member, when there is exactly one.
    pub single: Option<ProcessKey>,
}

/// The meta data of an instance's live members, folded one member at a time.
#[derive(Debug, Default)]
enum SharedMeta {
    #[default]
    Nobody,
    One(ProcessKey, Option<Arc<MetaData>>),
    /// Several members; `None` once one of them had no meta data (nothing is known shared).
    Many(Option<MetaData>),
}

impl SharedMeta {
    fn add(&mut self, key: ProcessKey, meta: Option<Arc<MetaData>>) {
        *self = match std::mem::take(self) {
            SharedMeta::Nobody => SharedMeta::One(key, meta),
            SharedMeta::One(_, first) => SharedMeta::Many(match (first, meta) {
                (Some(a), Some(b)) => Some(a.shared_with(&b)),
                _ => None,
            }),
            SharedMeta::Many(shared) => SharedMeta::Many(match (shared, meta) {
                (Some(a), Some(b)) => Some(a.shared_with(&b)),
                _ => None,
            }),
        };
    }

    fn finish(self) -> (Option<Arc<MetaData>>, Option<ProcessKey>) {
        match self {
            SharedMeta::Nobody => (None, None),
            SharedMeta::One(key, meta) => (meta, Some(key)),
            SharedMeta::Many(shared) => (shared.filter(|m| !m.is_empty()).map(Arc::new), None),
        }
    }
}

struct Member {
    instance: usize,
    comm: Comm,
    /// Own counters: CPU as read, I/O as read minus `children_io`.
    last: Counters,
    io_known: bool,
    seen_cycle: u64,
    ppid: u32,
    children_minflt: u64,
    /// The process reaped at least one child since the previous cycle.
    reaped: bool,
    /// I/O counters as last read, children included: what its parent inherits when it is reaped.
    raw: Counters,
    /// I/O of reported children that this process reaped, to take out of what is read.
    children_io: Counters,
    /// Its exit record was counted (it ended just after this cycle read it).
    settled: bool,
}

/// A process that exited (or left the sampler's view), as it was last sampled.
struct Departed {
    instance: String,
    comm: Comm,
    exit_cycle: u64,
    /// Its counters as counted: its exit record, when it comes, adds what it used since.
    last: Counters,
    io_known: bool,
    /// Its exit record was counted.
    settled: bool,
}

/// Where an exit record's numbers went ([`Accounting::settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// To the instance of a process the sampler saw: what it used since its last sample.
    Seen,
    /// Nowhere: the sampler never saw the process; the caller places it.
    Unseen,
}

/// A reported process that exited: once its parent has reaped it, the parent's I/O counters
/// include `raw`, which was already counted for the child.
struct ExitedChild {
    ppid: u32,
    raw: Counters,
    /// Cycles left to see the parent reap it: the reap may land just after the parent was read.
    cycles_left: u8,
}

#[derive(Default)]
struct Instance {
    name: String,
    fixed: bool,
    /// What exited (or departed) members used, minus what arriving members had used before
    /// they arrived. Signed: an arrival subtracts before its later use adds back.
    base: [i128; COUNTERS],
    /// The last counters reported, so nothing ever goes backwards.
    reported: Counters,
    admitted: bool,
    last_live_cycle: u64,
    /// Counters were credited to it after its members exited (network bytes resolved late,
    /// a process no cycle saw alive): it is reported as if live up to this cycle, so they are
    /// seen — for a few cycles, since collectd reads only the latest of the sampler's cycles.
    late_until_cycle: u64,
    // Per-cycle sums, cleared when a cycle begins and when it ends.
    live: Counters,
    cpu_delta: u64,
    processes: u64,
    threads: u64,
    rss_bytes: u64,
    vm_bytes: u64,
    file_handles: Option<u64>,
    memory: Option<MemoryDetails>,
    maps: Option<u64>,
    fd_limit: Option<u64>,
    fd_percent: Option<f64>,
    io_known: bool,
    meta: SharedMeta,
}

impl Instance {
    fn clear_cycle_sums(&mut self) {
        self.live = [0; COUNTERS];
        self.cpu_delta = 0;
        self.processes = 0;
        self.threads = 0;
        self.rss_bytes = 0;
        self.vm_bytes = 0;
        self.file_handles = None;
        self.memory = None;
        self.maps = None;
        self.fd_limit = None;
        self.fd_percent = None;
        self.meta = SharedMeta::default();
    }
}

/// What end_cycle reports besides the totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CycleOutcome {
    pub dropped: u64,
    /// True the first time MaxInstances cut something: the caller logs it, once.
    pub first_drop: bool,
}

pub struct Accounting {
    max_instances: usize,
    /// Instances with no live process are remembered (so their counters continue if the name
    /// comes back) up to this many; the longest idle are forgotten first.
    max_idle: usize,
    members: HashMap<ProcessKey, Member>,
    instances: Vec<Instance>,
    by_name: HashMap<String, usize>,
    free_slots: Vec<usize>,
    exited_children: Vec<ExitedChild>,
    /// Exit records tell which parent reaped what: the guess from `cminflt` is not needed.
    exit_records: bool,
    /// Processes that exited recently: network bytes resolved after a process is gone (a
    /// connection shorter than the interval) still go to the instance it was in.
    departed: HashMap<ProcessKey, Departed>,
    cycle: u64,
    dropped_before: bool,
}

/// What an exit record `end` adds to a process's `last` counters in `slots`, never negative.
/// CPU time is settled as one total, then split between user and system by how much each grew:
/// the record splits the scheduler's runtime by the ticks' ratio at the end, /proc by a ratio it
/// keeps from going backwards, and the two splits differ — taken slot by slot, a share that
/// moved from user to system would be counted twice (seen: a parent's exit record added 68 ms of
/// system time to the 150 ms /proc had shown, while its runtime had not grown).
fn settlement(last: &Counters, end: &Counters, slots: impl Iterator<Item = usize>) -> Counters {
    let mut extra = [0; COUNTERS];
    for i in slots.filter(|&i| i != USER_US && i != SYSTEM_US) {
        extra[i] = end[i].saturating_sub(last[i]);
    }
    let cpu = |c: &Counters| c[USER_US].saturating_add(c[SYSTEM_US]);
    let more = cpu(end).saturating_sub(cpu(last));
    let user_grew = end[USER_US].saturating_sub(last[USER_US]);
    let system_grew = end[SYSTEM_US].saturating_sub(last[SYSTEM_US]);
    // Either grew when the total did, and together at least by as much.
    let grew = u128::from(user_grew) + u128::from(system_grew);
    if more > 0 && grew > 0 {
        let to_user = u128::from(more) * u128::from(user_grew) / grew;
        extra[USER_US] = u64::try_from(to_user).unwrap_or(more).min(more);
        extra[SYSTEM_US] = more - extra[USER_US];
    }
    extra
}

/// Share of a soft descriptor limit in use, in %. No limit is 0 %; a process above its limit
/// (the limit was lowered after it opened them) is reported as it is, above 100 %.
fn fd_percent(open: u64, soft_limit: u64) -> f64 {
    if soft_limit == UNLIMITED {
        return 0.0;
    }
    if soft_limit == 0 {
        // Nothing may be opened: any open descriptor is over it.
        return if open == 0 { 0.0 } else { 100.0 };
    }
    open as f64 * 100.0 / soft_limit as f64
}

/// Cycles an instance with no live process is reported after late counters were credited to
/// it: the sampler runs two cycles per collectd interval and collectd dispatches the latest, so
/// four make sure at least one is read.
const LATE_CYCLES: u64 = 4;

/// How many cycles late credits for an exited process are accepted.
const DEPARTED_CYCLES: u64 = 60;

impl Accounting {
    pub fn new(max_instances: usize) -> Self {
        Accounting {
            max_instances,
            max_idle: max_instances.max(1000),
            members: HashMap::new(),
            instances: Vec::new(),
            by_name: HashMap::new(),
            free_slots: Vec::new(),
            exited_children: Vec::new(),
            exit_records: false,
            departed: HashMap::new(),
            cycle: 1,
            dropped_before: false,
        }
    }

    /// Registers an instance that is reported even without processes (a rule's fixed name).
    pub fn declare_fixed(&mut self, name: &str) {
        let id = self.instance_id(name);
        self.instances[id].fixed = true;
    }

    /// Opens a cycle: the per-cycle sums start from zero. [`end_cycle`](Self::end_cycle)
    /// clears them too, but a cycle that never got there (a panic caught by the sampler thread,
    /// a stop) left what it had added: without this the next cycle would count every member
    /// it had already seen twice, and the monotonic clamp would keep that inflated total.
    ///
    /// Except the CPU delta: the cut cycle measured its members' CPU against their previous
    /// counters and moved those on, and the machine-wide CPU total it is divided by is only
    /// read again at the end of a finished cycle. Kept, the next `percent-cpu` covers both
    /// intervals on both sides of the division.
    pub fn begin_cycle(&mut self) {
        for inst in &mut self.instances {
            let carried = inst.cpu_delta;
            inst.clear_cycle_sums();
            inst.cpu_delta = carried;
        }
    }

    /// Records one process of this cycle under the instance `name`.
    pub fn observe(&mut self, name: &str, obs: Observation) {
        let instance = self.instance_id(name);
        let first_cycle = self.cycle == 1;
        let cycle = self.cycle;
        let (last, cpu_delta, io_known) = match self.members.get_mut(&obs.key) {
            Some(member) => {
                let previous = member.last;
                if member.instance != instance {
                    // Leave what it used so far with the old instance.
                    let old = member.instance;
                    for (i, &v) in previous.iter().enumerate() {
                        self.instances[old].base[i] += i128::from(v);
                        self.instances[instance].base[i] -= i128::from(v);
                    }
                    member.instance = instance;
                }
                let mut own = obs.counters;
                if obs.io_known {
                    for i in IO {
                        member.raw[i] = obs.counters[i];
                        own[i] = obs.counters[i].saturating_sub(member.children_io[i]);
                    }
                }
                for (slot, &now) in member.last.iter_mut().zip(own.iter()) {
                    *slot = (*slot).max(now);
                }
                member.io_known |= obs.io_known;
                member.seen_cycle = cycle;
                member.comm = obs.comm;
                member.ppid = obs.ppid;
                member.reaped = obs.children_minflt > member.children_minflt;
                member.children_minflt = member.children_minflt.max(obs.children_minflt);
                let cpu = |c: &Counters| c[USER_US] + c[SYSTEM_US];
                (
                    member.last,
                    cpu(&member.last) - cpu(&previous),
                    member.io_known,
                )
            }
            None => {
                self.members.insert(
                    obs.key,
                    Member {
                        instance,
                        comm: obs.comm,
                        last: obs.counters,
                        io_known: obs.io_known,
                        seen_cycle: cycle,
                        ppid: obs.ppid,
                        children_minflt: obs.children_minflt,
                        reaped: false,
                        raw: obs.counters,
                        children_io: [0; COUNTERS],
                        settled: false,
                    },
                );
                // A newcomer's whole CPU time was spent since the previous cycle (it did not
                // exist then), except on the very first cycle, which has no "previous".
                let delta = if first_cycle {
                    0
                } else {
                    obs.counters[USER_US] + obs.counters[SYSTEM_US]
                };
                (obs.counters, delta, obs.io_known)
            }
        };
        let inst = &mut self.instances[instance];
        for (sum, v) in inst.live.iter_mut().zip(last.iter()) {
            *sum += v;
        }
        inst.cpu_delta += cpu_delta;
        inst.processes += 1;
        inst.threads += obs.gauges.threads;
        inst.rss_bytes += obs.gauges.rss_bytes;
        inst.vm_bytes += obs.gauges.vm_bytes;
        if let Some(fds) = obs.gauges.file_handles {
            *inst.file_handles.get_or_insert(0) += fds;
        }
        if let Some(memory) = &obs.gauges.memory {
            inst.memory.get_or_insert_default().add(memory);
        }
        if let Some(maps) = obs.gauges.maps {
            *inst.maps.get_or_insert(0) += maps;
        }
        if let Some(limit) = obs.gauges.fd_limit {
            if limit != UNLIMITED {
                inst.fd_limit = Some(inst.fd_limit.map_or(limit, |l| l.min(limit)));
            }
            if let Some(fds) = obs.gauges.file_handles {
                let used = fd_percent(fds, limit);
                inst.fd_percent = Some(inst.fd_percent.map_or(used, |p| p.max(used)));
            }
        }
        inst.io_known |= io_known;
        inst.meta.add(obs.key, obs.meta);
        inst.last_live_cycle = cycle;
    }

    /// Closes the cycle: members not observed have exited; returns the instances to report.
    pub fn end_cycle(&mut self) -> (Vec<InstanceTotals>, CycleOutcome) {
        let cycle = self.cycle;
        let instances = &mut self.instances;
        let exited_children = &mut self.exited_children;
        let exit_records = self.exit_records;
        let departed = &mut self.departed;
        departed.retain(|_, gone| cycle - gone.exit_cycle < DEPARTED_CYCLES);
        self.members.retain(|key, member| {
            if member.seen_cycle == cycle {
                return true;
            }
            let inst = &mut instances[member.instance];
            departed.insert(
                *key,
                Departed {
                    instance: inst.name.clone(),
                    comm: member.comm,
                    exit_cycle: cycle,
                    last: member.last,
                    io_known: member.io_known,
                    settled: member.settled,
                },
            );
            for (base, &v) in inst.base.iter_mut().zip(member.last.iter()) {
                *base += i128::from(v);
            }
            inst.io_known |= member.io_known;
            if member.io_known && !exit_records {
                exited_children.push(ExitedChild {
                    ppid: member.ppid,
                    raw: member.raw,
                    cycles_left: 2,
                });
            }
            false
        });
        crate::maps::shrink_mostly_empty(&mut self.members);
        crate::maps::shrink_mostly_empty(&mut self.departed);
        self.take_reaped_io_from_parents();

        // Admission: fixed names first, then instances already admitted, then newcomers in
        // the order they were first seen.
        let mut admitted = 0;
        for inst in self.instances.iter_mut() {
            let live = inst.last_live_cycle == cycle || cycle <= inst.late_until_cycle;
            inst.admitted = inst.fixed || (inst.admitted && live);
            if inst.admitted {
                admitted += 1;
            }
        }
        let mut outcome = CycleOutcome::default();
        for inst in self.instances.iter_mut() {
            let live = inst.last_live_cycle == cycle || cycle <= inst.late_until_cycle;
            if inst.admitted || !live || inst.name.is_empty() {
                continue;
            }
            if admitted < self.max_instances {
                inst.admitted = true;
                admitted += 1;
            } else {
                outcome.dropped += 1;
            }
        }
        if outcome.dropped > 0 && !self.dropped_before {
            self.dropped_before = true;
            outcome.first_drop = true;
        }

        let mut report = Vec::with_capacity(admitted);
        for inst in self.instances.iter_mut() {
            for ((reported, &base), &live) in
                inst.reported.iter_mut().zip(&inst.base).zip(&inst.live)
            {
                let sum = u64::try_from((base + i128::from(live)).max(0)).unwrap_or(u64::MAX);
                *reported = (*reported).max(sum);
            }
            let totals = inst.reported;
            let (meta, single) = std::mem::take(&mut inst.meta).finish();
            if inst.admitted {
                report.push(InstanceTotals {
                    name: inst.name.clone(),
                    fixed: inst.fixed,
                    counters: totals,
                    cpu_delta_us: (cycle > 1).then_some(inst.cpu_delta),
                    processes: inst.processes,
                    threads: inst.threads,
                    rss_bytes: inst.rss_bytes,
                    vm_bytes: inst.vm_bytes,
                    file_handles: inst.file_handles,
                    memory: inst.memory,
                    maps: inst.maps,
                    fd_limit: inst.fd_limit,
                    fd_percent: inst.fd_percent,
                    io_known: inst.io_known,
                    meta,
                    single,
                });
            }
            inst.clear_cycle_sums();
        }
        self.forget_long_idle();
        self.cycle += 1;
        (report, outcome)
    }

    /// Gone from /proc means reaped. If the parent reaped it (its `cminflt` grew; a parent
    /// that ignores SIGCHLD lets the kernel reap without folding anything), the parent's I/O
    /// counters now hold the child's, which its own instance already counts: take them out of
    /// the parent, for this cycle's totals and for every later reading.
    ///
    /// What the child did after its last sample stays with the parent: counted once, and the
    /// closest owner we can know.
    fn take_reaped_io_from_parents(&mut self) {
        if self.exited_children.is_empty() {
            return;
        }
        let live: HashMap<u32, ProcessKey> = self.members.keys().map(|k| (k.pid, *k)).collect();
        let members = &mut self.members;
        let instances = &mut self.instances;
        self.exited_children.retain_mut(|child| {
            let parent = live.get(&child.ppid).and_then(|key| members.get_mut(key));
            match parent {
                Some(parent) if parent.reaped => {
                    let live_sum = &mut instances[parent.instance].live;
                    for i in IO {
                        let taken = child.raw[i].min(parent.last[i]);
                        parent.last[i] -= taken;
                        live_sum[i] -= taken;
                        parent.children_io[i] = parent.children_io[i].saturating_add(child.raw[i]);
                    }
                    false
                }
                Some(_) if child.cycles_left > 1 => {
                    child.cycles_left -= 1;
                    true
                }
                _ => false,
            }
        });
    }

    /// Adds counters that arrived after a process exited (network bytes resolved late) to the
    /// instance it was in. False when the process is not known to have exited recently, or
    /// when it was last sampled under another comm than `used_as` (the comm the kernel
    /// recorded it using them with): it exec'd after that sample — a child sampled between
    /// fork and exec — and the instance of what it was then is not the one that sent them.
    pub fn credit_departed(
        &mut self,
        key: &ProcessKey,
        used_as: Option<Comm>,
        extra: &Counters,
    ) -> bool {
        let Some(gone) = self.departed.get(key) else {
            return false;
        };
        if used_as.is_some_and(|comm| comm != gone.comm) {
            return false;
        }
        let Some(&id) = self.by_name.get(&gone.instance) else {
            return false;
        };
        let until = self.cycle + LATE_CYCLES - 1;
        let instance = &mut self.instances[id];
        for (base, &v) in instance.base.iter_mut().zip(extra.iter()) {
            *base += i128::from(v);
        }
        if extra.iter().any(|&v| v > 0) {
            instance.late_until_cycle = until;
        }
        true
    }

    /// Adds the counters of a process no cycle saw alive (its traffic, which the kernel
    /// recorded) to instance `name`, creating it if needed: reported with no process for it.
    pub fn credit_unseen(&mut self, name: &str, extra: &Counters) {
        let id = self.instance_id(name);
        self.credit(id, extra, false);
    }

    /// Adds `extra` to instance `id`'s base, reporting it a few cycles if it has no live
    /// member; its CPU counts in this cycle's `percent-cpu`.
    fn credit(&mut self, id: usize, extra: &Counters, io_known: bool) {
        let until = self.cycle + LATE_CYCLES - 1;
        let instance = &mut self.instances[id];
        for (base, &v) in instance.base.iter_mut().zip(extra.iter()) {
            *base += i128::from(v);
        }
        instance.cpu_delta = instance
            .cpu_delta
            .saturating_add(extra[USER_US].saturating_add(extra[SYSTEM_US]));
        instance.io_known |= io_known;
        if extra.iter().any(|&v| v > 0) {
            instance.late_until_cycle = until;
        }
    }

    /// From now on each process's exit record says which parent reaped it
    /// ([`reaped_into_parents`](Self::reaped_into_parents)).
    pub fn use_exit_records(&mut self) {
        self.exit_records = true;
        self.exited_children.clear();
    }

    /// Counts the exit record of process `key`: its final CPU time and, when `io` is true, its
    /// final own I/O (without its reaped children's), in `end`'s CPU and I/O slots. A process
    /// the sampler saw gets what it used since its last sample (nothing if the sample was
    /// later: counters never go back); its instance is the one it was last sampled in.
    /// [`Settled::Unseen`] when the sampler never saw it (nothing is counted: the caller
    /// places it by the rules, [`credit_exited`](Self::credit_exited)).
    pub fn settle(&mut self, key: &ProcessKey, end: &Counters, io: bool) -> Settled {
        let cycle = self.cycle;
        let slots = |io_known: bool| {
            SETTLED
                .into_iter()
                .chain(IO.filter(move |_| io && io_known))
        };
        if let Some(member) = self.members.get_mut(key) {
            if member.settled {
                return Settled::Seen;
            }
            member.settled = true;
            let inst = &mut self.instances[member.instance];
            let extra = settlement(&member.last, end, slots(member.io_known));
            for (i, &more) in extra.iter().enumerate() {
                member.last[i] += more;
                if member.seen_cycle == cycle {
                    // Its earlier value is in this cycle's sums already.
                    inst.live[i] += more;
                }
            }
            inst.cpu_delta = inst
                .cpu_delta
                .saturating_add(extra[USER_US] + extra[SYSTEM_US]);
            return Settled::Seen;
        }
        let Some(gone) = self.departed.get_mut(key) else {
            return Settled::Unseen;
        };
        if gone.settled {
            return Settled::Seen;
        }
        gone.settled = true;
        let extra = settlement(&gone.last, end, slots(gone.io_known));
        for (last, more) in gone.last.iter_mut().zip(extra) {
            *last += more;
        }
        if let Some(&id) = self.by_name.get(&gone.instance) {
            self.credit(id, &extra, false);
        }
        Settled::Seen
    }

    /// Counts a process the sampler never saw, placed by the rules in instance `name`: its
    /// CPU time and I/O (`end`), with no process count, as it had none in any sample.
    pub fn credit_exited(&mut self, name: &str, end: &Counters, io: bool) {
        let id = self.instance_id(name);
        let mut extra = [0; COUNTERS];
        for i in SETTLED {
            extra[i] = end[i];
        }
        if io {
            for i in IO {
                extra[i] = end[i];
            }
        }
        self.credit(id, &extra, io);
    }

    /// Takes out of each parent's I/O what the kernel added to it when it reaped a child
    /// (`(parent pid, the child's I/O and its own reaped children's)`, from exit records):
    /// each child's I/O is counted for the child, never a second time for its parent. Parents
    /// read this cycle only: a reap seen in the record before the parent is read again is
    /// taken out of that read (`children_io`); one already in this cycle's read is taken out
    /// of it now. (A reap that landed just after the parent was read is taken out once too
    /// many this cycle; the instance's counters hold still, and the next read makes up for it.)
    pub fn reaped_into_parents(&mut self, reaps: &[(u32, Counters)]) {
        if reaps.is_empty() {
            return;
        }
        let cycle = self.cycle;
        let by_pid: HashMap<u32, ProcessKey> = self
            .members
            .iter()
            .filter(|(_, m)| m.seen_cycle == cycle && m.io_known)
            .map(|(k, _)| (k.pid, *k))
            .collect();
        for (ppid, io) in reaps {
            let Some(parent) = by_pid.get(ppid).and_then(|k| self.members.get_mut(k)) else {
                continue;
            };
            let live_sum = &mut self.instances[parent.instance].live;
            for i in IO {
                let taken = io[i].min(parent.last[i]);
                parent.last[i] -= taken;
                live_sum[i] = live_sum[i].saturating_sub(taken);
                parent.children_io[i] = parent.children_io[i].saturating_add(io[i]);
            }
        }
    }

    /// Number of processes tracked.
    pub fn tracked_processes(&self) -> usize {
        self.members.len()
    }

    fn instance_id(&mut self, name: &str) -> usize {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let inst = Instance {
            name: name.to_string(),
            ..Instance::default()
        };
        let id = match self.free_slots.pop() {
            Some(id) => {
                self.instances[id] = inst;
                id
            }
            None => {
                self.instances.push(inst);
                self.instances.len() - 1
            }
        };
        self.by_name.insert(name.to_string(), id);
        id
    }

    /// Keeps memory bounded when names come and go (`GroupBy "{pid}"`): idle instances beyond
    /// `max_idle` are forgotten, oldest first. A forgotten name that comes back starts its
    /// counters again, which Prometheus' rate() reads as a counter reset.
    fn forget_long_idle(&mut self) {
        let cycle = self.cycle;
        let members = &self.members;
        let mut idle: Vec<(u64, usize)> = self
            .instances
            .iter()
            .enumerate()
            .filter(|(_, inst)| {
                !inst.fixed && !inst.name.is_empty() && inst.last_live_cycle != cycle
            })
            .map(|(id, inst)| (inst.last_live_cycle, id))
            .collect();
        if idle.len() <= self.max_idle {
            return;
        }
        idle.sort_unstable();
        let excess = idle.len() - self.max_idle;
        for &(_, id) in idle.iter().take(excess) {
            if members.values().any(|m| m.instance == id) {
                continue;
            }
            let name = std::mem::take(&mut self.instances[id].name);
            self.by_name.remove(&name);
            self.instances[id] = Instance::default();
            self.free_slots.push(id);
        }
    }
}

#[cfg(test)]
mod tests;

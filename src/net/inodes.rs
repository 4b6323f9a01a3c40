//! Socket inode -> owning process, maintained incrementally.
//!
//! The kernel tells which socket a flow belongs to ([`super::sockdiag`]) but not which process
//! holds it; only `/proc/PID/fd/N -> socket:[inode]` does. Reading every fd link on the host
//! costs about 2.5 µs a link — 75 ms for 30,000 sockets — so tools that rescan /proc per unknown
//! flow (nethogs, bandwhich) either fall behind or miss short connections. This index keeps what
//! it has read (every process's fd table, and inode -> holders) and, on a miss, reads only what
//! can have changed, cheapest evidence first:
//!
//! 1. **Hot processes** — the few where new sockets showed up lately. One `stat` of
//!    `/proc/PID/fd` gives the fd count (`st_size`, Linux >= 6.2): if it grew, the new fds sit in
//!    the slots that were free (the kernel hands out the lowest free number), so reading those
//!    few links finds them. Slots where new sockets appeared before are read too: a server that
//!    closes and accepts keeps reusing the same handful of numbers, with an unchanged count.
//!    When that finds nothing and the table is small (a client holding a few connections,
//!    reusing their slots in turn), the whole table is read again: a handful of links.
//! 2. **A pass** over /proc, resumable across lookups: processes not seen before are read in
//!    full; known ones are read only when their count differs from what the index holds for
//!    them, or when their last full read is older than [`IndexConfig::rescan_after`] (a close
//!    followed by an open keeps the count; kernels before 6.2 give no count at all). A full read
//!    of one large process is spread over several lookups and repeated at most every ten times
//!    its own duration, so a process with 30,000 sockets costs a few percent of a core at most.
//!    A pass costs a `stat` per process, so one starts at most once per ten times the last
//!    one's cost ([`IndexConfig::sweep_duty`]); between passes a miss lists /proc and reads only
//!    the processes never read before — a new client is found at once, a long-known process
//!    that is neither hot nor changed by the last pass waits for the next one.
//!
//! Every lookup is bounded ([`IndexConfig::processes_per_lookup`],
//! [`IndexConfig::reads_per_lookup`]): one that runs out returns `None`, and the next lookup
//! resumes where it stopped. The caller holds the flow's bytes and asks again.
//!
//! **Shared sockets** (fork, `SCM_RIGHTS`): a socket belongs to its *oldest* holder — smallest
//! start time, then smallest pid — among the holders the index knows when a lookup first returns
//! it. Sweeps visit processes the index has never read first (a socket it does not know is most
//! likely in a process started a moment ago: a client), then the others, oldest first within
//! each group, so the process that created a socket and forked is found before its children
//! (unless the parent was read before the socket existed and the child is new: then the child
//! is found first). Once returned, the owner stays while it lives and holds the
//! socket, even if an older holder turns up later (an `SCM_RIGHTS` receiver); when it exits or
//! closes the socket, the oldest remaining holder takes over. The one way around the rule: a
//! large process whose reread is deferred by its pacing is not looked at in that sweep, so a
//! younger holder found meanwhile gets the socket. For fork inheritance that needs a parent
//! whose table takes over 1 ms to read; smaller tables are reread whenever they may have changed.
//!
//! Vanished processes are normal: any read failing with "not found" drops the process, and
//! sweeps prune the processes that are gone from /proc.

use super::fd_table::{FdTable, Slot};
use crate::proc::fd::FdCountMethod;
use crate::proc::{pid_stat, ProcRoot};
use rustix::fd::AsRawFd;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::time::{Duration, Instant};
use thin_vec::ThinVec;

/// A process for life: pids are reused, (pid, start time) is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat, clock ticks after boot.
    pub starttime: u64,
}

/// Counters for telemetry; `processes` and `sockets` are the current sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub lookups: u64,
    /// Answered from the index.
    pub hits: u64,
    /// Not in the index (or no longer valid there): a search ran.
    pub misses: u64,
    /// Misses the search answered.
    pub resolved: u64,
    /// fd tables read in full.
    pub processes_scanned: u64,
    /// fd tables read at a few slots (hot processes, changed fd counts).
    pub processes_probed: u64,
    /// fd links read (one `readlink` each).
    pub fds_read: u64,
    /// Passes over every known process started.
    pub sweeps: u64,
    /// Listings of /proc that visited only processes never read (between passes).
    pub listings: u64,
    pub processes: usize,
    pub sockets: usize,
}

/// The bounds and pacing of the search. The defaults keep a lookup under a few milliseconds in
/// the worst case and the common one (a new flow of a busy process) in tens of microseconds.
#[derive(Debug, Clone, Copy)]
pub struct IndexConfig {
    /// fd tables read (in full or at a few slots) per lookup at most.
    pub processes_per_lookup: usize,
    /// `readlink`s and `stat`s per lookup at most (about 2.5 µs each).
    pub reads_per_lookup: usize,
    /// A new pass over /proc starts at most this often: it bounds the work spent on sockets no
    /// process can be found for (kernel sockets, other pid namespaces). A pass costs a listing
    /// of /proc and one `stat` per process (about 150 µs for 70 processes); the rereads of
    /// large fd tables it triggers are paced per process.
    pub min_sweep_interval: Duration,
    /// A pass over every known process starts at most once per this many times the last
    /// pass's own cost (0: whenever `min_sweep_interval` allows). In between, a miss lists /proc
    /// for processes never read (a new client) and visits only those: a pass costs a `stat`
    /// per process (3.5 ms at 1,000 processes), a listing a tenth of that, and under a burst of
    /// new connections passes on every miss took a whole core.
    pub sweep_duty: u32,
    /// A process whose fd count looks unchanged is read again after this long.
    pub rescan_after: Duration,
    /// An index entry older than this is checked (one `readlink`) before it is returned.
    pub verify_after: Duration,
    /// How fd counts are read; `ReadDir` means "no cheap count", and only age triggers rereads.
    pub fd_count: FdCountMethod,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            processes_per_lookup: 16,
            reads_per_lookup: 1024,
            min_sweep_interval: Duration::from_millis(2),
            sweep_duty: 10,
            rescan_after: Duration::from_secs(5),
            verify_after: Duration::from_secs(1),
            fd_count: FdCountMethod::for_running_kernel(),
        }
    }
}

/// Whether a number can be a socket's inode: sock_diag says 0 for "no file refers to it".
fn is_inode(inode: u64) -> bool {
    inode != 0 && inode != u64::MAX
}

/// Hot processes kept, and new-socket slots remembered per process.
const HOT: usize = 4;
const RECENT_SLOTS: usize = 4;
/// Free slots read beyond the ones the fd count accounts for...
const PROBE_SLACK: usize = 2;
/// ...and at most this many: past it, a full read is the cheaper way to catch up.
const PROBE_MAX: usize = 64;
/// A large process's full rereads take at most 1/10 of the time since the previous one...
const FULL_SCAN_DUTY: u32 = 10;
/// ...while a small one is reread whenever its table may have changed: that keeps the
/// oldest-holder rule exact for the processes that fork and pass sockets around.
const SMALL_SCAN: Duration = Duration::from_millis(1);

struct Process {
    starttime: u64,
    uid: u32,
    /// d_ino of /proc/PID when last listed: a new one means the pid may be another process.
    dir_ino: u64,
    /// When the pid was last seen to still be this process (listing, start time).
    confirmed: Instant,
    kernel_thread: bool,
    /// fd tables of other users' processes without CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH.
    inaccessible: bool,
    /// The table as last read.
    fds: FdTable,
    /// None until the table has been read in full once.
    last_full_scan: Option<Instant>,
    /// CPU time (of the resolver thread) the last full read took.
    full_scan_cost: Duration,
    /// Slots where a new socket appeared lately, most recent first.
    recent: Vec<u32>,
}

impl Process {
    fn owner(&self, pid: u32) -> Owner {
        Owner {
            pid,
            starttime: self.starttime,
        }
    }
}

/// One per socket on the host, so kept to 24 bytes (32 with its key): at 30,000 sockets the
/// index is about 2 MiB; `Vec` and `Option<Instant>` fields made it twice that.
struct Entry {
    owner: u32,
    /// A slot of the owner's fd table holding the socket, for the cheap re-check.
    owner_fd: u32,
    /// When the owner was last seen holding it; never: check before returning it.
    verified: Stamp,
    /// A lookup returned the owner: it no longer moves to an older holder found later.
    returned: bool,
    /// Other holders and one of their slots (a pointer; most sockets have one holder).
    others: ThinVec<(u32, u32)>,
}

/// A moment in 4 bytes: milliseconds since the index's epoch, plus one; 0 is "never". The
/// epoch moves before the count can overflow ([`InodeIndex::stamp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(u32);

impl Stamp {
    const NEVER: Stamp = Stamp(0);

    /// How long ago `self` was, as of `now`; None for never.
    fn age(self, now: Stamp) -> Option<Duration> {
        (self != Stamp::NEVER)
            .then(|| Duration::from_millis(u64::from(now.0.saturating_sub(self.0))))
    }
}

/// The epoch moves after this long, well before milliseconds overflow a u32 (49.7 days).
const EPOCH_SPAN: Duration = Duration::from_secs(40 * 24 * 3600);

/// A full read of one fd table, spread over as many lookups as its size needs.
struct FullScan {
    pid: u32,
    dir: rustix::fs::Dir,
    fds: FdTable,
    elapsed: Duration,
}

struct Budget {
    processes: usize,
    reads: usize,
}

impl Budget {
    fn exhausted(&self) -> bool {
        self.processes == 0 || self.reads == 0
    }
}

enum Read {
    Slot(Slot),
    Gone,
    Denied,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PassKind {
    /// Every known process: a `stat` of each fd directory, rereads where counts changed.
    Full,
    /// Only the processes never read: new since the last listing.
    NewOnly,
}

/// Between passes, new processes are listed at least this often, whatever a listing costs: a
/// new client's socket must be found within the resolver's two seconds of retries.
const LISTING_AT_LEAST_EVERY: Duration = Duration::from_millis(100);

/// This thread's CPU time. Passes are paced by what they cost the thread, not by the wall time
/// they took: on a loaded machine a pass is preempted, its wall time balloons, and pacing by it
/// kept new processes unread for seconds — their flows went unattributed.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The pass over /proc in progress and what it has cost so far (it is spread over lookups).
struct Pass {
    kind: PassKind,
    /// CPU time of this thread.
    spent: Duration,
}

pub struct InodeIndex {
    proc: ProcRoot,
    config: IndexConfig,
    procs: HashMap<u32, Process>,
    /// A B-tree, not a hash table: it grows a node at a time. A hash table of 30,000 sockets
    /// sits at 65,536 buckets (2 MiB), and the tombstones that sockets coming and going leave
    /// make it double to 4 MiB once more than half its capacity is live — measured at 30,000
    /// sockets. Lookups are a few hundred nanoseconds either way, next to the microseconds of
    /// sock_diag and readlink around them.
    sockets: BTreeMap<u64, Entry>,
    hot: Vec<u32>,
    /// Pids still to visit in the current sweep, the next one last.
    queue: Vec<u32>,
    scan: Option<FullScan>,
    pass: Option<Pass>,
    last_sweep: Option<Instant>,
    last_sweep_cost: Duration,
    last_listing: Option<Instant>,
    last_listing_cost: Duration,
    stats: IndexStats,
    self_pid: u32,
    name: String,
    /// What [`Stamp`]s count from.
    epoch: Instant,
    /// A process's fd table was refused: said once.
    denied_said: bool,
}

impl InodeIndex {
    pub fn new(proc: ProcRoot) -> InodeIndex {
        InodeIndex::with_config(proc, IndexConfig::default())
    }

    pub fn with_config(proc: ProcRoot, config: IndexConfig) -> InodeIndex {
        InodeIndex {
            proc,
            config,
            procs: HashMap::new(),
            sockets: BTreeMap::new(),
            hot: Vec::with_capacity(HOT),
            queue: Vec::new(),
            scan: None,
            pass: None,
            last_sweep: None,
            last_sweep_cost: Duration::ZERO,
            last_listing: None,
            last_listing_cost: Duration::ZERO,
            stats: IndexStats::default(),
            self_pid: std::process::id(),
            name: String::with_capacity(16),
            epoch: Instant::now(),
            denied_said: false,
        }
    }

    /// Reads every process's fd table now, without a budget: the resolver calls it once at
    /// start so that lookups begin from a warm index.
    pub fn warm_up(&mut self) {
        self.start_pass(PassKind::Full, None);
        let mut budget = Budget {
            processes: usize::MAX,
            reads: usize::MAX,
        };
        self.search(None, &mut budget);
        // Reading every table in full is no measure of what a later pass costs.
        self.pass = None;
    }

    /// Drops the processes that have exited (and their sockets). Lookups prune as they sweep;
    /// this is for a caller that wants the memory back on a quiet host.
    pub fn prune(&mut self) {
        let _ = self.list_processes(None, PassKind::Full);
    }

    /// The process holding socket `inode`, if one can be found within this call's budget.
    /// `uid_hint` (the socket's uid from sock_diag) orders the search — that user's processes
    /// first — and filters nothing: sockets are passed between users.
    pub fn lookup(&mut self, inode: u64, uid_hint: Option<u32>) -> Option<Owner> {
        self.stats.lookups += 1;
        if !is_inode(inode) {
            // sock_diag's inode 0: no file refers to the socket any more.
            self.stats.misses += 1;
            return None;
        }
        if let Some(owner) = self.hit(inode) {
            self.stats.hits += 1;
            return Some(owner);
        }
        self.stats.misses += 1;
        // The hot processes get at most half of the reads, so that the sweep always advances.
        let hot_reads = (self.config.reads_per_lookup / 2).max(1);
        let mut hot = Budget {
            processes: HOT,
            reads: hot_reads,
        };
        self.search_hot(inode, &mut hot);
        let mut budget = Budget {
            processes: self.config.processes_per_lookup,
            reads: self.config.reads_per_lookup - (hot_reads - hot.reads),
        };
        if !self.sockets.contains_key(&inode) {
            if self.queue.is_empty() && self.scan.is_none() {
                let kind = self.pass_due()?;
                self.start_pass(kind, uid_hint);
            }
            let started = thread_cpu_time();
            self.search(Some(inode), &mut budget);
            self.end_of_search(thread_cpu_time().saturating_sub(started));
        }
        let owner = self.owner_of(inode)?;
        self.stats.resolved += 1;
        Some(owner)
    }

    pub fn stats(&self) -> IndexStats {
        IndexStats {
            processes: self.procs.len(),
            sockets: self.sockets.len(),
            ..self.stats
        }
    }

    /// The owner from the index, re-checked with one `readlink` when the entry is old.
    fn hit(&mut self, inode: u64) -> Option<Owner> {
        // Each round changes the index (a slot re-read, a holder dropped); the bound only
        // guards against an index that disagrees with itself.
        for _ in 0..16 {
            let now = self.stamp();
            let entry = self.sockets.get(&inode)?;
            let (pid, slot) = (entry.owner, entry.owner_fd);
            if entry
                .verified
                .age(now)
                .is_some_and(|age| age < self.config.verify_after)
            {
                return self.owner_of(inode);
            }
            match self.read_slot(pid, slot) {
                Read::Slot(Slot::Socket(found)) if found == inode => {
                    if let Some(entry) = self.sockets.get_mut(&inode) {
                        entry.verified = now;
                    }
                    return self.owner_of(inode);
                }
                // The slot changed: record it, which hands the socket to its next holder if
                // there is one, and look again.
                Read::Slot(found) => self.note_slot(pid, slot, found),
                Read::Gone | Read::Denied => self.remove_process(pid),
            }
        }
        self.sockets.remove(&inode);
        None
    }

    /// Now, as a [`Stamp`]. Every 40 days the epoch moves on and every entry is marked
    /// unverified (re-checked at its next hit) rather than let the count overflow.
    fn stamp(&mut self) -> Stamp {
        let mut elapsed = self.epoch.elapsed();
        if elapsed >= EPOCH_SPAN {
            self.epoch = Instant::now();
            elapsed = Duration::ZERO;
            for entry in self.sockets.values_mut() {
                entry.verified = Stamp::NEVER;
            }
        }
        Stamp(u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX - 1) + 1)
    }

    fn owner_of(&mut self, inode: u64) -> Option<Owner> {
        let entry = self.sockets.get_mut(&inode)?;
        entry.returned = true;
        let pid = entry.owner;
        self.procs.get(&pid).map(|p| p.owner(pid))
    }

    /// Reads the slots of hot processes where new sockets are likely to be.
    fn search_hot(&mut self, inode: u64, budget: &mut Budget) {
        for i in 0..self.hot.len() {
            let Some(&pid) = self.hot.get(i) else { break };
            if budget.exhausted() || self.sockets.contains_key(&inode) {
                return;
            }
            if !self.still_the_same(pid) {
                continue;
            }
            self.probe(pid, Some(inode), true, budget);
            if !self.sockets.contains_key(&inode) && self.scan.is_none() {
                self.reread_if_cheap(pid, budget);
            }
        }
    }

    /// Whether a hot pid is still the process the index knows, checked (start time) once its
    /// last confirmation is `verify_after` old: hot processes are read between passes, and a
    /// pid reused meanwhile must not lend the old process's identity to the new one's sockets.
    fn still_the_same(&mut self, pid: u32) -> bool {
        let Some(p) = self.procs.get(&pid) else {
            return false;
        };
        if p.confirmed.elapsed() < self.config.verify_after {
            return true;
        }
        let known = p.starttime;
        match self.read_identity(pid) {
            Some((starttime, _, _)) if starttime == known => {
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.confirmed = Instant::now();
                }
                true
            }
            _ => {
                // Gone or reused: the next listing registers whoever has the pid now.
                self.remove_process(pid);
                false
            }
        }
    }

    /// Reads a hot process's table again in full when that is cheap. A client that keeps a few
    /// connections open reuses their slots in turn with an unchanged fd count, so neither the
    /// count nor the recent slots need show the new socket — but its whole table is a handful
    /// of links, far cheaper than a pass over every process.
    fn reread_if_cheap(&mut self, pid: u32, budget: &mut Budget) {
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        let cheap = p.full_scan_cost < SMALL_SCAN;
        let rested = p
            .last_full_scan
            .is_none_or(|t| t.elapsed() >= p.full_scan_cost * FULL_SCAN_DUTY);
        if cheap && rested {
            self.start_scan(pid, budget);
            self.continue_scan(budget);
        }
    }

    /// Reads the few slots of `pid` that can explain a changed fd count (the free ones, lowest
    /// first) and, with `recent`, the slots where new sockets appeared before. Returns whether
    /// the table now agrees with the fd count.
    fn probe(&mut self, pid: u32, target: Option<u64>, recent: bool, budget: &mut Budget) -> bool {
        let count = match self.fd_count(pid, budget) {
            Ok(count) => count,
            Err(_) => {
                self.remove_process(pid);
                return false;
            }
        };
        let Some(p) = self.procs.get(&pid) else {
            return false;
        };
        let mut slots: Vec<u32> = Vec::new();
        if recent {
            slots.extend_from_slice(&p.recent);
        }
        if let Some(count) = count.filter(|&c| c > p.fds.count()) {
            let wanted = ((count - p.fds.count()) as usize + PROBE_SLACK).min(PROBE_MAX);
            slots.extend(p.fds.free_slots().take(wanted));
        }
        if slots.is_empty() {
            return count.is_none_or(|c| c == p.fds.count());
        }
        budget.processes = budget.processes.saturating_sub(1);
        self.stats.processes_probed += 1;
        for slot in slots {
            if budget.reads == 0 {
                break;
            }
            match self.read_slot(pid, slot) {
                Read::Slot(found) => self.note_slot(pid, slot, found),
                Read::Gone => {
                    self.remove_process(pid);
                    return false;
                }
                Read::Denied => {
                    self.mark_inaccessible(pid);
                    return false;
                }
            }
            budget.reads -= 1;
            let explained = self
                .procs
                .get(&pid)
                .is_some_and(|p| count == Some(p.fds.count()));
            let found = target.is_none_or(|t| self.sockets.contains_key(&t));
            if explained && found {
                break;
            }
        }
        self.procs
            .get(&pid)
            .is_some_and(|p| count == Some(p.fds.count()))
    }

    /// Works through the current sweep until `target` is indexed, the sweep ends or the budget
    /// does.
    fn search(&mut self, target: Option<u64>, budget: &mut Budget) {
        loop {
            if target.is_some_and(|t| self.sockets.contains_key(&t)) || budget.exhausted() {
                break;
            }
            if self.scan.is_some() {
                self.continue_scan(budget);
                continue;
            }
            let Some(pid) = self.queue.pop() else {
                break;
            };
            self.visit(pid, target, budget);
        }
    }

    fn visit(&mut self, pid: u32, target: Option<u64>, budget: &mut Budget) {
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        if p.kernel_thread || p.inaccessible {
            return;
        }
        let Some(last) = p.last_full_scan else {
            self.start_scan(pid, budget);
            return;
        };
        let stale = last.elapsed() >= self.config.rescan_after;
        let explained = self.probe(pid, target, false, budget);
        if target.is_some_and(|t| self.sockets.contains_key(&t)) {
            return;
        }
        let Some(p) = self.procs.get(&pid) else {
            return;
        };
        let allowed =
            p.full_scan_cost < SMALL_SCAN || last.elapsed() >= p.full_scan_cost * FULL_SCAN_DUTY;
        if (stale || !explained) && allowed {
            self.start_scan(pid, budget);
        }
    }

    fn start_scan(&mut self, pid: u32, budget: &mut Budget) {
        let dir = self.proc.path(Some(pid), "fd");
        let opened = rustix::fs::openat(
            rustix::fs::CWD,
            dir,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .and_then(rustix::fs::Dir::new);
        match opened {
            Ok(dir) => {
                budget.processes = budget.processes.saturating_sub(1);
                self.scan = Some(FullScan {
                    pid,
                    dir,
                    fds: FdTable::default(),
                    elapsed: Duration::ZERO,
                });
            }
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => self.mark_inaccessible(pid),
            Err(_) => self.remove_process(pid),
        }
    }

    /// A process whose fd table cannot be read: its sockets cannot be tied to it, and it is
    /// not read again. Said once, naming what would let the plugin read it.
    fn mark_inaccessible(&mut self, pid: u32) {
        // The kernel also refuses (EACCES) the links of a process reaped a moment ago: that one
        // is gone, not hidden.
        if !self.proc.path(Some(pid), "").exists() {
            self.remove_process(pid);
            return;
        }
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        p.inaccessible = true;
        if !self.denied_said {
            self.denied_said = true;
            log::warn!(
                "cannot read the descriptors of process {pid} (uid {}): permission denied; \
                 traffic of sockets that only such processes hold counts as unattributed. \
                 Tying other users' sockets to their processes needs CAP_SYS_PTRACE and \
                 CAP_DAC_READ_SEARCH (said once)",
                p.uid
            );
        }
    }

    fn continue_scan(&mut self, budget: &mut Budget) {
        let Some(mut scan) = self.scan.take() else {
            return;
        };
        let started = thread_cpu_time();
        let own_dir =
            (scan.pid == self.self_pid).then(|| scan.dir.fd().ok().map(|fd| fd.as_raw_fd()));
        let mut link = [0u8; 64];
        loop {
            if budget.reads == 0 {
                scan.elapsed += thread_cpu_time().saturating_sub(started);
                self.scan = Some(scan);
                return;
            }
            let entry = match scan.dir.read() {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(_)) => {
                    // ENOENT mid-listing: the process exited; anything else leaves a table
                    // we cannot trust either.
                    self.remove_process(scan.pid);
                    return;
                }
            };
            let Some(slot) = std::str::from_utf8(entry.file_name().to_bytes())
                .ok()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue; // "." and ".."
            };
            if own_dir.flatten() == Some(slot as i32) {
                continue;
            }
            budget.reads -= 1;
            self.stats.fds_read += 1;
            let Ok(dirfd) = scan.dir.fd() else { break };
            let value = match rustix::fs::readlinkat_raw(dirfd, entry.file_name(), &mut link[..]) {
                Ok(n) => classify(link.get(..n).unwrap_or(&[])),
                // Closed between listing and reading.
                Err(rustix::io::Errno::NOENT) => continue,
                // Listed (CAP_DAC_READ_SEARCH) but not readable (the ptrace check): a table
                // of nothing but unknown slots would look like a process without sockets.
                Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => {
                    self.mark_inaccessible(scan.pid);
                    return;
                }
                Err(_) => Slot::Other,
            };
            scan.fds.set(slot, value);
        }
        scan.elapsed += thread_cpu_time().saturating_sub(started);
        self.finish_scan(scan);
    }

    /// Replaces a process's table with a complete read, updating the holders of every socket
    /// that appeared or went away.
    fn finish_scan(&mut self, scan: FullScan) {
        let pid = scan.pid;
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        self.stats.processes_scanned += 1;
        let reread = p.last_full_scan.is_some();
        let old = std::mem::replace(&mut p.fds, scan.fds);
        p.last_full_scan = Some(Instant::now());
        p.full_scan_cost = scan.elapsed;
        let mut gone: Vec<u64> = old.sockets().map(|(_, inode)| inode).collect();
        let mut now: Vec<(u64, u32)> = p.fds.sockets().map(|(slot, inode)| (inode, slot)).collect();
        gone.sort_unstable();
        gone.dedup();
        now.sort_unstable();
        let mut new_slots: Vec<u32> = Vec::new();
        for &(inode, slot) in &now {
            if self.add_holder(inode, pid, slot) {
                new_slots.push(slot);
            }
        }
        // Sockets that appeared since the last read are the short-lived ones whose slots the
        // next connections will reuse (the kernel hands out the lowest free number). On a
        // process's first read every socket is "new": its highest slots are the ones opened
        // last — a client that connects, closes and connects again keeps reusing one of them.
        new_slots.sort_unstable();
        if let Some(p) = self.procs.get_mut(&pid) {
            p.recent = if reread {
                new_slots.iter().copied().take(RECENT_SLOTS).collect()
            } else {
                new_slots.iter().rev().copied().take(RECENT_SLOTS).collect()
            };
        }
        let new_sockets = !new_slots.is_empty();
        for inode in gone {
            if now.binary_search_by(|&(i, _)| i.cmp(&inode)).is_err() {
                self.remove_holder(inode, pid);
            }
        }
        if new_sockets {
            self.make_hot(pid);
        }
    }

    /// Records what one slot holds now.
    fn note_slot(&mut self, pid: u32, slot: u32, value: Slot) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        let before = p.fds.set(slot, value);
        if before == value {
            return;
        }
        if let Slot::Socket(_) = value {
            p.recent.retain(|&s| s != slot);
            p.recent.insert(0, slot);
            p.recent.truncate(RECENT_SLOTS);
        }
        if let Slot::Socket(before) = before {
            match p.fds.slot_of(before) {
                // dup()ed: the process still holds it in another slot.
                Some(other) => {
                    self.add_holder(before, pid, other);
                }
                None => self.remove_holder(before, pid),
            }
        }
        if let Slot::Socket(inode) = value {
            if self.add_holder(inode, pid, slot) {
                self.make_hot(pid);
            }
        }
    }

    /// Adds `pid` as a holder; true if the socket was new to the index.
    fn add_holder(&mut self, inode: u64, pid: u32, slot: u32) -> bool {
        let now = self.stamp();
        let Some(entry) = self.sockets.get_mut(&inode) else {
            self.sockets.insert(
                inode,
                Entry {
                    owner: pid,
                    owner_fd: slot,
                    others: ThinVec::new(),
                    verified: now,
                    returned: false,
                },
            );
            return true;
        };
        if entry.owner == pid {
            entry.owner_fd = slot;
            return false;
        }
        if let Some(other) = entry.others.iter_mut().find(|(p, _)| *p == pid) {
            other.1 = slot;
            return false;
        }
        let older = |a: u32, b: u32| match (self.procs.get(&a), self.procs.get(&b)) {
            (Some(pa), Some(pb)) => (pa.starttime, a) < (pb.starttime, b),
            (Some(_), None) => true,
            _ => false,
        };
        if !entry.returned && older(pid, entry.owner) {
            entry.others.push((entry.owner, entry.owner_fd));
            entry.owner = pid;
            entry.owner_fd = slot;
            entry.verified = now;
        } else {
            entry.others.push((pid, slot));
        }
        false
    }

    fn remove_holder(&mut self, inode: u64, pid: u32) {
        let Some(entry) = self.sockets.get_mut(&inode) else {
            return;
        };
        if entry.owner != pid {
            entry.others.retain(|&(p, _)| p != pid);
            return;
        }
        let age = |p: u32| {
            self.procs
                .get(&p)
                .map_or((u64::MAX, p), |x| (x.starttime, p))
        };
        let next = entry
            .others
            .iter()
            .enumerate()
            .min_by_key(|(_, &(p, _))| age(p))
            .map(|(i, _)| i);
        match next {
            Some(i) => {
                let (p, slot) = entry.others.swap_remove(i);
                entry.owner = p;
                entry.owner_fd = slot;
                // The next hit reads the new owner's slot first.
                entry.verified = Stamp::NEVER;
            }
            None => {
                self.sockets.remove(&inode);
            }
        }
    }

    fn remove_process(&mut self, pid: u32) {
        let Some(p) = self.procs.remove(&pid) else {
            return;
        };
        for (_, inode) in p.fds.sockets() {
            self.remove_holder(inode, pid);
        }
        self.hot.retain(|&h| h != pid);
        if self.scan.as_ref().is_some_and(|s| s.pid == pid) {
            self.scan = None;
        }
    }

    fn make_hot(&mut self, pid: u32) {
        self.hot.retain(|&h| h != pid);
        self.hot.insert(0, pid);
        self.hot.truncate(HOT);
    }

    /// Which pass a miss may start now, if any: a full one when its pacing allows, else a
    /// listing for new processes when that is due. Each waits at least `min_sweep_interval`
    /// and `sweep_duty` times its last cost, so passes take a bounded share of the thread
    /// however many misses there are.
    fn pass_due(&self) -> Option<PassKind> {
        let floor = self.config.min_sweep_interval;
        let duty = self.config.sweep_duty;
        let due =
            |last: Option<Instant>, pause: Duration| last.is_none_or(|t| t.elapsed() >= pause);
        if due(self.last_sweep, floor.max(self.last_sweep_cost * duty)) {
            Some(PassKind::Full)
        } else if due(
            self.last_listing,
            floor
                .max(self.last_listing_cost * duty)
                .min(LISTING_AT_LEAST_EVERY),
        ) {
            Some(PassKind::NewOnly)
        } else {
            None
        }
    }

    /// Starts a pass: lists /proc, prunes, and queues the processes to visit (see
    /// [`list_processes`](Self::list_processes)).
    fn start_pass(&mut self, kind: PassKind, uid_hint: Option<u32>) {
        let started = Instant::now();
        let cpu_started = thread_cpu_time();
        match kind {
            PassKind::Full => {
                self.stats.sweeps += 1;
                self.last_sweep = Some(started);
            }
            PassKind::NewOnly => self.stats.listings += 1,
        }
        // A full pass lists /proc too.
        self.last_listing = Some(started);
        self.queue = self.list_processes(uid_hint, kind).unwrap_or_default();
        self.pass = Some(Pass {
            kind,
            spent: thread_cpu_time().saturating_sub(cpu_started),
        });
        self.end_of_search(Duration::ZERO);
    }

    /// Adds the time a search took to the pass in progress, and records the pass's cost once
    /// it is over: that is what paces the next one.
    fn end_of_search(&mut self, took: Duration) {
        let Some(pass) = self.pass.as_mut() else {
            return;
        };
        pass.spent += took;
        if !self.queue.is_empty() || self.scan.is_some() {
            return;
        }
        match pass.kind {
            PassKind::Full => self.last_sweep_cost = pass.spent,
            PassKind::NewOnly => self.last_listing_cost = pass.spent,
        }
        self.pass = None;
    }

    /// Lists /proc, drops exited processes, registers new ones, and returns the pids to visit
    /// in reverse visiting order: every process for a full pass, the ones never read for a
    /// listing.
    fn list_processes(&mut self, uid_hint: Option<u32>, kind: PassKind) -> io::Result<Vec<u32>> {
        let mut listed: Vec<(u32, u64)> = Vec::with_capacity(self.procs.len() + 16);
        for entry in std::fs::read_dir(self.proc.root())? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            listed.push((pid, entry.ino()));
        }
        listed.sort_unstable();
        let gone: Vec<u32> = self
            .procs
            .keys()
            .copied()
            .filter(|pid| listed.binary_search_by(|&(p, _)| p.cmp(pid)).is_err())
            .collect();
        for pid in gone {
            self.remove_process(pid);
        }
        for &(pid, ino) in &listed {
            if let Some(p) = self.procs.get_mut(&pid) {
                if p.dir_ino == ino {
                    p.confirmed = Instant::now();
                    continue;
                }
                // Maybe another process under a reused pid: the start time decides.
                let known = p.starttime;
                match self.read_identity(pid) {
                    Some((starttime, _, _)) if starttime == known => {
                        if let Some(p) = self.procs.get_mut(&pid) {
                            p.dir_ino = ino;
                            p.confirmed = Instant::now();
                        }
                        continue;
                    }
                    _ => self.remove_process(pid),
                }
            }
            if let Some((starttime, kernel_thread, uid)) = self.read_identity(pid) {
                self.procs.insert(
                    pid,
                    Process {
                        starttime,
                        uid,
                        dir_ino: ino,
                        confirmed: Instant::now(),
                        kernel_thread,
                        inaccessible: false,
                        fds: FdTable::default(),
                        last_full_scan: None,
                        full_scan_cost: Duration::ZERO,
                        recent: Vec::new(),
                    },
                );
            }
        }
        // Processes never read come first: a socket the index does not know is most likely in
        // a process it has not read (a client started a moment ago), and under a burst of new
        // connections a pass that reaches them last costs a stat of every process per lookup.
        // Oldest first within each group, for the shared-socket rule.
        let mut order: Vec<(bool, bool, u64, u32)> = self
            .procs
            .iter()
            .filter(|(_, p)| !p.kernel_thread && !p.inaccessible)
            .filter(|(_, p)| kind == PassKind::Full || p.last_full_scan.is_none())
            .map(|(&pid, p)| {
                (
                    p.last_full_scan.is_some(),
                    uid_hint.is_some_and(|u| u != p.uid),
                    p.starttime,
                    pid,
                )
            })
            .collect();
        order.sort_unstable();
        Ok(order.into_iter().rev().map(|(_, _, _, pid)| pid).collect())
    }

    /// Start time, kernel-thread flag and owner uid of a process, None once it is gone.
    fn read_identity(&mut self, pid: u32) -> Option<(u64, bool, u32)> {
        let stat = self.proc.read(Some(pid), "stat", 1024).ok()?;
        let parsed = pid_stat::parse(stat)?;
        let (starttime, kernel_thread) = (parsed.starttime, parsed.kernel_thread);
        let uid = std::fs::metadata(self.proc.path(Some(pid), "")).ok()?.uid();
        Some((starttime, kernel_thread, uid))
    }

    /// The fd count, None when the method gives none cheaply; Err once the process is gone.
    fn fd_count(&mut self, pid: u32, budget: &mut Budget) -> io::Result<Option<u64>> {
        match self.config.fd_count {
            FdCountMethod::StatSize => {
                budget.reads = budget.reads.saturating_sub(1);
                let dir = self.proc.path(Some(pid), "fd");
                FdCountMethod::StatSize.count(dir).map(Some)
            }
            FdCountMethod::ReadDir => {
                // Counting the entries costs as much as reading them: say nothing, and let
                // age decide.
                Ok(None)
            }
        }
    }

    fn read_slot(&mut self, pid: u32, slot: u32) -> Read {
        self.stats.fds_read += 1;
        self.name.clear();
        let _ = write!(self.name, "fd/{slot}");
        let path = self.proc.path(Some(pid), &self.name);
        let mut link = [0u8; 64];
        match rustix::fs::readlinkat_raw(rustix::fs::CWD, path, &mut link[..]) {
            Ok(n) => Read::Slot(classify(link.get(..n).unwrap_or(&[]))),
            Err(rustix::io::Errno::NOENT) => {
                // The slot is free, or the whole process is gone: tell them apart.
                if self.proc.path(Some(pid), "fd").exists() {
                    Read::Slot(Slot::Free)
                } else {
                    Read::Gone
                }
            }
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => Read::Denied,
            Err(_) => Read::Slot(Slot::Other),
        }
    }
}

/// What a link target says a slot holds: a socket, or something else.
fn classify(target: &[u8]) -> Slot {
    target
        .strip_prefix(b"socket:[")
        .and_then(|rest| rest.strip_suffix(b"]"))
        .and_then(crate::proc::parse_u64)
        .filter(|&inode| is_inode(inode))
        .map_or(Slot::Other, Slot::Socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::sockdiag::tests::{euid, inode_of};
    use std::net::{TcpListener, UdpSocket};
    use std::os::fd::OwnedFd;
    use std::process::{Child, Command, Stdio};

    fn starttime_of(pid: u32) -> u64 {
        let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
        pid_stat::parse(&stat).unwrap().starttime
    }

    fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            starttime: starttime_of(pid),
        }
    }

    /// Between `fork` and `exec` a child spawned by another test thread holds a copy of every
    /// fd of this process — a real, if brief, holder of our sockets. The tests that read this
    /// process's sockets take turns, so that no other test of theirs spawns meanwhile.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
        TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sweeps as often as asked, so that a test never waits on pacing.
    fn live_index() -> InodeIndex {
        let config = IndexConfig {
            min_sweep_interval: Duration::ZERO,
            sweep_duty: 0,
            ..IndexConfig::default()
        };
        let mut index = InodeIndex::with_config(ProcRoot::system(), config);
        index.warm_up();
        index
    }

    /// Asks again as the resolver does when a lookup ran out of budget.
    fn resolve(index: &mut InodeIndex, inode: u64) -> Option<Owner> {
        (0..200).find_map(|_| index.lookup(inode, Some(euid())))
    }

    /// `sleep` holding `socket` as its stdin — only that child gets it, whatever other tests
    /// spawn meanwhile.
    fn child_holding(socket: OwnedFd) -> Child {
        Command::new("sleep")
            .arg("60")
            .stdin(Stdio::from(socket))
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn owner_of(child: &Child) -> Owner {
        Owner {
            pid: child.id(),
            starttime: starttime_of(child.id()),
        }
    }

    fn end(mut child: Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_new_socket_of_this_process_then_a_hit_without_rescan() {
        let _turn = serial();
        let mut index = live_index();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = inode_of(&socket);
        assert_eq!(resolve(&mut index, inode), Some(me()));

        let before = index.stats();
        assert_eq!(index.lookup(inode, None), Some(me()));
        let after = index.stats();
        assert_eq!(after.lookups, before.lookups + 1);
        assert_eq!(after.hits, before.hits + 1);
        assert_eq!(after.misses, before.misses);
        assert_eq!(after.processes_scanned, before.processes_scanned);
        assert_eq!(after.processes_probed, before.processes_probed);
        assert_eq!(after.fds_read, before.fds_read);
        assert_eq!(after.sweeps, before.sweeps);
    }

    #[test]
    fn sockets_open_before_the_warm_up_are_hits() {
        let _turn = serial();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut index = live_index();
        let before = index.stats();
        assert_eq!(index.lookup(inode_of(&listener), None), Some(me()));
        assert_eq!(index.stats().hits, before.hits + 1);
        assert!(index.stats().sockets > 0 && index.stats().processes > 0);
    }

    #[test]
    fn unknown_inode_is_a_miss() {
        let _turn = serial();
        let mut index = live_index();
        let (reader, _writer) = std::io::pipe().unwrap();
        // A pipe has an inode but is no socket; 0 is sock_diag's "no owner".
        for inode in [inode_of(&reader), 0, u64::from(u32::MAX) - 7] {
            let before = index.stats();
            assert_eq!(index.lookup(inode, None), None);
            let after = index.stats();
            assert_eq!(after.misses, before.misses + 1);
            assert_eq!(after.resolved, before.resolved);
        }
    }

    #[test]
    fn socket_held_by_a_child_started_after_the_warm_up() {
        let _turn = serial();
        let mut index = live_index();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = inode_of(&socket);
        let child = child_holding(OwnedFd::from(socket));
        let expected = owner_of(&child);
        assert_eq!(resolve(&mut index, inode), Some(expected));
        end(child);
    }

    #[test]
    fn shared_socket_belongs_to_the_oldest_holder_while_it_holds_it() {
        let _turn = serial();
        let config = IndexConfig {
            min_sweep_interval: Duration::ZERO,
            sweep_duty: 0,
            verify_after: Duration::ZERO,
            ..IndexConfig::default()
        };
        let mut index = InodeIndex::with_config(ProcRoot::system(), config);
        index.warm_up();
        let socket = OwnedFd::from(UdpSocket::bind("127.0.0.1:0").unwrap());
        let inode = inode_of(&socket);
        assert_eq!(resolve(&mut index, inode), Some(me()));

        // Children inherit it: it stays with this process, the oldest holder.
        let first = child_holding(socket.try_clone().unwrap());
        let second = child_holding(socket.try_clone().unwrap());
        let (first_owner, second_owner) = (owner_of(&first), owner_of(&second));
        assert!(first_owner.starttime <= second_owner.starttime);
        assert_eq!(resolve(&mut index, inode), Some(me()));

        // Closed here: the older child takes over, found by re-checking the entry.
        drop(socket);
        assert_eq!(resolve(&mut index, inode), Some(first_owner));
        assert_eq!(index.lookup(inode, None), Some(first_owner));

        end(first);
        assert_eq!(resolve(&mut index, inode), Some(second_owner));
        end(second);
        assert_eq!(resolve(&mut index, inode), None);
    }

    #[test]
    fn lookups_are_bounded_and_resume() {
        let _turn = serial();
        let config = IndexConfig {
            min_sweep_interval: Duration::ZERO,
            sweep_duty: 0,
            processes_per_lookup: 1,
            reads_per_lookup: 4,
            ..IndexConfig::default()
        };
        let mut index = InodeIndex::with_config(ProcRoot::system(), config);
        index.warm_up();
        let sockets: Vec<UdpSocket> = (0..20)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let fds: Vec<OwnedFd> = sockets
            .iter()
            .map(|s| OwnedFd::from(s.try_clone().unwrap()))
            .collect();
        let inode = inode_of(&sockets[19]);
        drop(sockets);
        // One child holding 20 sockets (as stdin and through a second fd table entry would be
        // nicer; stdin carries one): spawn it with the last as stdin and read its table slowly.
        let mut fds = fds;
        let last = fds.pop().unwrap();
        drop(fds);
        let child = child_holding(last);
        let mut calls = 0;
        let found = loop {
            let before = index.stats().fds_read;
            let found = index.lookup(inode, None);
            assert!(index.stats().fds_read - before <= 4 + 1);
            calls += 1;
            if found.is_some() || calls > 500 {
                break found;
            }
        };
        assert_eq!(found, Some(owner_of(&child)));
        end(child);
    }

    /// A fake /proc: `pid -> (starttime, [(fd, link target)])`.
    /// A pid directory that replaces another is built beside it first, so that it never gets
    /// the old directory's inode number back (/proc does the same for a reused pid).
    fn fixture(dir: &std::path::Path, pid: u32, starttime: u64, fds: &[(u32, &str)]) {
        let root = dir.join(format!(".new{pid}"));
        std::fs::create_dir_all(root.join("fd")).unwrap();
        let stat = format!(
            "{pid} (fake) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 1 1 0 0 20 0 1 0 {starttime} 1000 10 0\n"
        );
        std::fs::write(root.join("stat"), stat).unwrap();
        for (fd, target) in fds {
            std::os::unix::fs::symlink(target, root.join("fd").join(fd.to_string())).unwrap();
        }
        let _ = std::fs::remove_dir_all(dir.join(pid.to_string()));
        std::fs::rename(root, dir.join(pid.to_string())).unwrap();
    }

    fn fixture_index(dir: &std::path::Path) -> InodeIndex {
        let config = IndexConfig {
            min_sweep_interval: Duration::ZERO,
            sweep_duty: 0,
            rescan_after: Duration::ZERO,
            verify_after: Duration::ZERO,
            fd_count: FdCountMethod::ReadDir,
            ..IndexConfig::default()
        };
        InodeIndex::with_config(ProcRoot::new(dir), config)
    }

    #[test]
    fn fixture_oldest_holder_wins_over_lowest_pid() {
        let dir = tempfile::tempdir().unwrap();
        fixture(
            dir.path(),
            100,
            900,
            &[(0, "/dev/null"), (3, "socket:[1000]")],
        );
        fixture(
            dir.path(),
            200,
            400,
            &[(7, "socket:[1000]"), (8, "socket:[2000]")],
        );
        fixture(
            dir.path(),
            300,
            100,
            &[(1, "pipe:[55]"), (2, "socket:[abc]")],
        );
        let mut index = fixture_index(dir.path());
        let owner = |pid, starttime| Some(Owner { pid, starttime });
        assert_eq!(index.lookup(1000, Some(0)), owner(200, 400));
        assert_eq!(index.lookup(2000, None), owner(200, 400));
        assert_eq!(index.lookup(55, None), None);
        assert_eq!(index.lookup(3000, None), None);

        // 200 closes it: the socket passes to 100.
        std::fs::remove_file(dir.path().join("200/fd/7")).unwrap();
        assert_eq!(index.lookup(1000, None), owner(100, 900));

        // An older holder appearing later does not take a socket already returned.
        fixture(dir.path(), 50, 10, &[(4, "socket:[1000]")]);
        assert_eq!(index.lookup(2000, None), owner(200, 400));
        assert_eq!(index.lookup(1000, None), owner(100, 900));
    }

    #[test]
    fn fixture_exited_processes_are_pruned_and_pids_reused() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path(), 100, 900, &[(3, "socket:[1000]")]);
        fixture(dir.path(), 101, 901, &[(3, "socket:[1001]")]);
        let mut index = fixture_index(dir.path());
        index.warm_up();
        assert_eq!(index.stats().processes, 2);
        assert_eq!(index.stats().sockets, 2);

        std::fs::remove_dir_all(dir.path().join("101")).unwrap();
        index.prune();
        assert_eq!(index.stats().processes, 1);
        assert_eq!(index.lookup(1001, None), None);

        // Pid 100 is another process now, holding another socket.
        fixture(dir.path(), 100, 5000, &[(3, "socket:[7000]")]);
        assert_eq!(
            index.lookup(7000, None),
            Some(Owner {
                pid: 100,
                starttime: 5000
            })
        );
        assert_eq!(index.lookup(1000, None), None);
    }

    #[test]
    fn fixture_a_hot_client_reusing_its_slots_is_found_without_a_pass() {
        let dir = tempfile::tempdir().unwrap();
        let sockets: Vec<(u32, String)> = (3..=10)
            .map(|fd| (fd, format!("socket:[{}]", 1000 + fd)))
            .collect();
        let links: Vec<(u32, &str)> = sockets.iter().map(|(fd, t)| (*fd, t.as_str())).collect();
        fixture(dir.path(), 100, 900, &links);
        let config = IndexConfig {
            // No pass is due for an hour: only the hot path can find anything.
            min_sweep_interval: Duration::from_secs(3600),
            ..fixture_index(dir.path()).config
        };
        let mut index = InodeIndex::with_config(ProcRoot::new(dir.path()), config);
        index.warm_up();
        // Slot 3 closed and reused by a new connection: the fd count is the same, and the
        // slots remembered as recent (the highest, 7 to 10) still hold their old sockets.
        let slot = dir.path().join("100/fd/3");
        std::fs::remove_file(&slot).unwrap();
        std::os::unix::fs::symlink("socket:[5000]", &slot).unwrap();
        let before = index.stats();
        let deadline = Instant::now() + Duration::from_secs(5);
        let found = loop {
            let found = index.lookup(5000, None);
            if found.is_some() || Instant::now() > deadline {
                break found;
            }
            // A table is reread at most every ten times its reading cost.
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(
            found,
            Some(Owner {
                pid: 100,
                starttime: 900
            })
        );
        let after = index.stats();
        assert_eq!(
            (after.sweeps, after.listings),
            (before.sweeps, before.listings)
        );
        assert!(after.processes_scanned > before.processes_scanned);
    }

    #[test]
    fn fixture_between_passes_only_new_processes_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        // Pid 200 is the oldest, read first: the five younger ones push it out of the hot set.
        fixture(dir.path(), 200, 1, &[(3, "socket:[2000]")]);
        for pid in 101..=105 {
            let link = format!("socket:[{}]", pid * 10);
            fixture(dir.path(), pid, u64::from(pid), &[(3, link.as_str())]);
        }
        let config = IndexConfig {
            sweep_duty: 10,
            ..fixture_index(dir.path()).config
        };
        let mut index = InodeIndex::with_config(ProcRoot::new(dir.path()), config);
        index.warm_up();
        // As if the last pass had taken a second: the next is ten seconds away.
        index.last_sweep_cost = Duration::from_secs(1);
        let before = index.stats();

        // A process started since: found by a listing, no pass over the known ones.
        fixture(dir.path(), 300, 5000, &[(4, "socket:[3000]")]);
        let new = Some(Owner {
            pid: 300,
            starttime: 5000,
        });
        assert_eq!(index.lookup(3000, None), new);
        let after = index.stats();
        assert_eq!(after.sweeps, before.sweeps);
        assert_eq!(after.listings, before.listings + 1);

        // A new socket in a known process that is not hot waits for the next pass.
        std::os::unix::fs::symlink("socket:[2001]", dir.path().join("200/fd/9")).unwrap();
        assert_eq!(index.lookup(2001, None), None);
        assert_eq!(index.stats().sweeps, before.sweeps);
        index.last_sweep_cost = Duration::ZERO;
        assert_eq!(
            index.lookup(2001, None),
            Some(Owner {
                pid: 200,
                starttime: 1
            })
        );
        assert_eq!(index.stats().sweeps, before.sweeps + 1);
    }

    #[test]
    fn fixture_garbage_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        fixture(
            dir.path(),
            100,
            900,
            &[
                (3, "socket:["),
                (4, "socket:[]"),
                (5, "socket:[99999999999999999999]"),
            ],
        );
        std::fs::create_dir_all(dir.path().join("200/fd")).unwrap();
        std::fs::write(dir.path().join("200/stat"), b"200 (broken").unwrap();
        std::fs::create_dir_all(dir.path().join("300")).unwrap();
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        let mut index = fixture_index(dir.path());
        index.warm_up();
        assert_eq!(index.lookup(1, None), None);
        assert_eq!(index.stats().sockets, 0);
        let missing = fixture_index(&dir.path().join("nonexistent"));
        let mut missing = missing;
        missing.warm_up();
        assert_eq!(missing.lookup(1, None), None);
    }

    #[test]
    fn an_index_entry_stays_small() {
        // One per socket on the host: the memory budget (issue 5) counts on 32 bytes a pair.
        assert!(std::mem::size_of::<(u64, Entry)>() <= 32);
    }

    #[test]
    fn stamps_age_and_never() {
        let earlier = Stamp(1_001);
        assert_eq!(earlier.age(Stamp(1_501)), Some(Duration::from_millis(500)));
        assert_eq!(earlier.age(Stamp(1_001)), Some(Duration::ZERO));
        assert_eq!(Stamp::NEVER.age(Stamp(5)), None);
        let dir = tempfile::tempdir().unwrap();
        let mut index = fixture_index(dir.path());
        let now = index.stamp();
        assert_ne!(now, Stamp::NEVER);
        // Forty days on, the epoch moves: entries are re-checked, stamps stay small.
        index.sockets.insert(
            7,
            Entry {
                owner: 1,
                owner_fd: 3,
                verified: now,
                returned: false,
                others: ThinVec::new(),
            },
        );
        index.epoch = Instant::now() - EPOCH_SPAN;
        let later = index.stamp();
        assert!(later.0 < 1_000, "{later:?}");
        assert_eq!(index.sockets[&7].verified, Stamp::NEVER);
    }

    #[test]
    fn classify_links() {
        assert_eq!(classify(b"socket:[12345]"), Slot::Socket(12345));
        assert_eq!(classify(b"socket:[]"), Slot::Other);
        assert_eq!(classify(b"socket:[12"), Slot::Other);
        assert_eq!(classify(b"pipe:[12]"), Slot::Other);
        assert_eq!(classify(b"/tmp/socket:[1]"), Slot::Other);
        assert_eq!(classify(b"socket:[18446744073709551615]"), Slot::Other);
    }
}

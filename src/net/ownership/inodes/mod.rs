//! Socket inode -> owning process, maintained incrementally. Owned and run by the resolver
//! thread.
//!
//! The kernel tells which socket a flow belongs to ([`crate::net::netlink::sock_diag`]) but not which process
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
//!    followed by an open keeps the count; kernels before 6.2 give no count at all) — or, once
//!    a socket has been missing for [`IndexConfig::reread_missing_after`], older than the moment
//!    it was first looked for (a new process's runtime opens a file at fd 3, closes it and makes
//!    its socket there: the count never showed it). A full read
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
pub use crate::net::types::Owner;
use crate::proc::fd::FdCountMethod;
use crate::proc::{pid_stat, ProcRoot};
use rustix::fd::AsRawFd;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::time::{Duration, Instant};
use thin_vec::ThinVec;

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
    /// Between passes, new processes are listed at least this often, whatever a listing costs:
    /// a new client's socket must be found within the resolver's two seconds of retries.
    pub listing_at_least_every: Duration,
    /// A socket still not found this long after it was first looked for
    /// ([`InodeIndex::lookup_missing_since`]) makes the next pass read again every process last
    /// read before that moment, whatever its fd count says: a slot closed and reused keeps
    /// the count (a new process's runtime opens a file at fd 3, closes it and makes its socket
    /// there), and `rescan_after` comes later than the resolver gives up.
    pub reread_missing_after: Duration,
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
            listing_at_least_every: Duration::from_millis(100),
            reread_missing_after: Duration::from_millis(50),
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
    /// Processes last read in full before this are read again (a socket that existed then is
    /// still missing: see [`IndexConfig::reread_missing_after`]).
    reread_before: Option<Instant>,
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
    /// See [`InodeIndex::set_owner_records`].
    owner_records: bool,
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
            owner_records: false,
        }
    }

    /// The eBPF owner source is loaded: sockets of processes the index cannot read are still
    /// tied to them where the kernel recorded their use (what the warning says).
    pub fn set_owner_records(&mut self, loaded: bool) {
        self.owner_records = loaded;
    }

    /// Reads every process's fd table now, without a budget: the resolver calls it once at
    /// start so that lookups begin from a warm index.
    pub fn warm_up(&mut self) {
        self.start_pass(PassKind::Full, None, None);
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
        self.find(inode, uid_hint, None)
    }

    /// The same for a socket that existed at `first_asked` (the caller has looked for it
    /// since): once it has been missing for [`IndexConfig::reread_missing_after`], the next pass
    /// also reads again every process whose table was last read before that moment.
    pub fn lookup_missing_since(
        &mut self,
        inode: u64,
        uid_hint: Option<u32>,
        first_asked: Instant,
    ) -> Option<Owner> {
        self.find(inode, uid_hint, Some(first_asked))
    }

    fn find(
        &mut self,
        inode: u64,
        uid_hint: Option<u32>,
        first_asked: Option<Instant>,
    ) -> Option<Owner> {
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
                let reread_before =
                    first_asked.filter(|asked| asked.elapsed() >= self.config.reread_missing_after);
                self.start_pass(kind, uid_hint, reread_before);
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
        let stale = last.elapsed() >= self.config.rescan_after
            || self
                .pass
                .as_ref()
                .and_then(|pass| pass.reread_before)
                .is_some_and(|before| last < before);
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
            let consequence = if self.owner_records {
                "traffic of sockets that only such processes hold is attributed only where the \
                 eBPF owner source recorded their use (sockets used since the plugin started), \
                 the rest is unattributed"
            } else {
                "traffic of sockets that only such processes hold counts as unattributed"
            };
            log::warn!(
                "cannot read the descriptors of process {pid} (uid {}): permission denied; \
                 {consequence}. Tying other users' sockets to their processes needs \
                 CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (said once)",
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
                .min(self.config.listing_at_least_every),
        ) {
            Some(PassKind::NewOnly)
        } else {
            None
        }
    }

    /// Starts a pass: lists /proc, prunes, and queues the processes to visit (see
    /// [`list_processes`](Self::list_processes)).
    fn start_pass(
        &mut self,
        kind: PassKind,
        uid_hint: Option<u32>,
        reread_before: Option<Instant>,
    ) {
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
            // A listing visits only processes never read.
            reread_before: reread_before.filter(|_| kind == PassKind::Full),
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
mod tests;

//! The resolver thread: which process owns the socket of a new flow, in whichever network
//! namespace that socket lives, and the host's network topology the capture threads credit by.
//!
//! A lookup asks the kernel for the one socket (sock_diag, in the flow's namespace) and the
//! inode index for its holder. The answer goes back to the capture thread that asked. A socket
//! with no holder yet (accept queue) or that the index has not found yet is asked again, quickly
//! at first, for a bounded time; a socket that does not exist is answered at once.
//!
//! Namespaces: a netlink socket answers for the namespace it was created in, so a lookup in
//! another namespace enters it (on this thread, for the moment it takes to make a sock_diag
//! socket: 10 µs) and closes the socket after the lookup. A kept socket would keep its
//! namespace alive, and with it a stopped container's veth.
//!
//! The topology (veth peers, bridge ports, namespaces' addresses) is read again every second,
//! and at once when a capture thread meets an interface it does not know.
//!
//! The loop's policy (`run`: rounds, batching, back-pressure, shutdown; `Retries`: which retries
//! are due, the pace, the give-up) knows the world only through the `OwnerLookup` trait, so the
//! unit tests (`tests.rs`) drive it with a scripted world and, for `Retries`, a clock of their
//! own; `Kernel` is the real world (sock_diag, the inode index, conntrack, the namespaces).

mod negative;
mod unowned;

use super::ebpf::processes::{self, RecordedProcesses};
use super::ebpf::table::RecordTable;
use super::ebpf::OwnerRecords;
use super::inodes::{IndexStats, InodeIndex};
use super::namespaces::{NamespaceError, Namespaces};
use crate::faults;
use crate::net::closed_sockets::{ClosedEndpoint, ClosedSockets};
use crate::net::netlink::conntrack::Conntrack;
use crate::net::netlink::sock_destroy::{ClosedSocket, SockDestroy, Transports};
use crate::net::netlink::sock_diag::{SockDiag, SocketInfo};
use crate::net::topology::SharedTopology;
use crate::net::types::{FlowKey, NetnsId, Owner, Request, Resolution, Transport};
use crate::proc::ProcRoot;
use crate::supervise::{guard, ThreadToken};
use negative::NegativeAnswers;
use parking_lot::Mutex;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};
use unowned::UnownedSockets;

/// A flow whose owner is not found at once is asked again: quickly at first — the index
/// finds a brand-new process's socket within a few bounded lookups, and a short connection's
/// socket does not wait — then less often, for this long (TCP still in the accept queue has
/// no inode yet).
const RETRY_FOR: Duration = Duration::from_secs(2);
const RETRY_FAST: Duration = Duration::from_micros(500);
const RETRY_FAST_FOR: Duration = Duration::from_millis(50);
const RETRY_SLOW: Duration = Duration::from_millis(20);
const MAX_RETRIES_PER_ROUND: usize = 256;
/// New lookups taken from the queue in one round at most: a round under a flood ends, so the
/// topology and the stop flag are still looked at, and the rest wait in the (bounded) queue.
const MAX_LOOKUPS_PER_ROUND: usize = 4096;
/// New lookups asked of the kernel per second at most (and at once, after a quiet second): a
/// flood of flows nobody owns from forged sources would otherwise cost a sock_diag request per
/// flow, a whole core at 100,000 a second. Beyond, a new flow is answered [`Resolution::Lost`]
/// at once, and the flow table asks again a second later if it still carries traffic. A busy
/// host's real new flows (a few thousand a second) never come near it.
const LOOKUPS_PER_SECOND: f64 = 20_000.0;
/// Flows waiting to be asked again at most; beyond, a flow not found at once is answered
/// [`Resolution::Lost`] (the flow table gives it a second chance later). Each costs ~100 bytes.
const MAX_WAITING_RETRIES: usize = 16_384;
/// Owner records read from the ring buffer in one round at most: the rest wait there (the
/// programs count what does not fit as lost).
const MAX_RECORDS_PER_ROUND: usize = 65_536;
/// The topology is read again this often, and when a capture thread asks.
const TOPOLOGY_REFRESH: Duration = Duration::from_secs(1);
/// With nothing to retry a round waits this long for a request: the stop flag and the topology
/// are looked at no less often.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// What asking the world once about a flow gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Final(Resolution),
    /// No socket at all for the flow's local endpoint: unattributed, and remembered briefly
    /// for other flows to that endpoint ([`negative`]).
    NoSocket,
    /// Not known yet; asking again may find it.
    Retry,
}

/// A lookup not answered yet, and when it was first asked (the retries are timed from then).
struct Pending {
    key: FlowKey,
    received: bool,
    opens: bool,
    reply: Sender<(FlowKey, Resolution)>,
    first_asked: Asked,
}

/// When a flow was first asked about, on both clocks the lookup uses.
#[derive(Debug, Clone, Copy)]
struct Asked {
    at: Instant,
    /// The same, CLOCK_MONOTONIC ns: the clock of the kernel's owner records.
    ns: u64,
}

impl Asked {
    fn now() -> Asked {
        Asked {
            at: Instant::now(),
            ns: monotonic_ns(),
        }
    }
}

/// CLOCK_MONOTONIC now, in ns: what `bpf_ktime_get_ns` gives the owner records.
fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

/// A connection's opening packet is credited by a record of its 4-tuple made at most this long
/// before it was first asked about: its own connect()'s record comes after its SYN, and a
/// previous connection on the same 4-tuple was recorded at least a second before (the kernel
/// reuses a 4-tuple in TIME_WAIT only a second after its last packet, `tcp_tw_reuse`).
const OPENING_RECORD_WINDOW_NS: u64 = 500_000_000;

/// A SYN whose 4-tuple is found in TIME_WAIT is asked again for this long (about ten times at
/// the fast pace): long enough for the kernel to replace an earlier connection's TIME_WAIT with
/// the new one, short enough that a burst of connections closed before they were looked up
/// (their own TIME_WAIT) costs ten sock_diag requests each, not a hundred.
const OPENING_REPLACED_WITHIN_NS: u64 = 5_000_000;

/// What the loop does to the world besides answering requests. The loop only decides when;
/// [`OwnerLookup`]'s implementation decides how (the kernel's, or a test's script).
trait OwnerLookup {
    /// A round begins: publish what other threads read of the lookup (the index's counters;
    /// lookups answered from memory, and over the budget, so far).
    fn round_begins(&mut self, negative_hits: u64, over_budget: u64);
    /// The owner of one flow's socket, or [`Answer::Retry`] if asking again may find one.
    /// `opens`: the packet that asked opened a TCP connection; `asked`: when the flow was
    /// first asked about.
    fn owner(&mut self, key: &FlowKey, opens: bool, asked: Asked) -> Answer;
    /// Read the topology again and publish it to the capture threads.
    fn refresh_topology(&mut self);
}

/// Flows answered "retry", in turn order: the longest waiting first.
#[derive(Default)]
struct Retries {
    waiting: Vec<Pending>,
}

impl Retries {
    /// How long a round may wait for requests before it asks the retries again: briefly while
    /// any of them is in its first [`RETRY_FAST_FOR`], longer after, [`IDLE_WAIT`] if none.
    fn wait(&self, now: Instant) -> Duration {
        if self.waiting.is_empty() {
            IDLE_WAIT
        } else if self
            .waiting
            .iter()
            .any(|p| now.saturating_duration_since(p.first_asked.at) < RETRY_FAST_FOR)
        {
            RETRY_FAST
        } else {
            RETRY_SLOW
        }
    }

    /// This round's retries: the longest waiting, at most [`MAX_RETRIES_PER_ROUND`]. The
    /// others wait their turn, so a burst of flows nobody holds cannot make the resolver spin.
    fn due(&mut self) -> Vec<Pending> {
        let due = self.waiting.len().min(MAX_RETRIES_PER_ROUND);
        self.waiting.drain(..due).collect()
    }

    /// A flow's answer: a final one goes to the capture thread that asked; "retry" waits for a
    /// later round, at the back of the turn, unless the flow has been asked for [`RETRY_FOR`]
    /// already, or [`MAX_WAITING_RETRIES`] wait: then it is answered [`Resolution::Lost`] (the
    /// flow table asks again later while the flow carries traffic).
    fn settle(&mut self, pending: Pending, answer: Answer, now: Instant) {
        let resolution = match answer {
            Answer::Final(resolution) => resolution,
            Answer::NoSocket => Resolution::Unattributed,
            Answer::Retry
                if now.saturating_duration_since(pending.first_asked.at) < RETRY_FOR
                    && self.waiting.len() < MAX_WAITING_RETRIES =>
            {
                self.waiting.push(pending);
                return;
            }
            Answer::Retry => Resolution::Lost,
        };
        // A capture thread that has ended needs no answer.
        let _ = pending.reply.send((pending.key, resolution));
    }
}

/// sock_diag in every namespace: the host's socket is kept; another namespace's is made for
/// the lookup and closed after it (10 µs), since keeping it would keep the namespace alive.
/// And conntrack, for the host's flows that no socket has.
struct Diags {
    host: Option<SockDiag>,
    conntrack: Option<Conntrack>,
    namespaces: Namespaces,
    /// Entering a namespace failed once: said once.
    enter_failure_said: bool,
    /// The eBPF owner source is loaded (what a failure to enter costs is less).
    owner_records: bool,
}

enum Found {
    Socket(io::Result<Option<SocketInfo>>),
    /// The namespace cannot be asked (gone, or no privilege to enter it).
    CannotAsk,
}

impl Diags {
    /// A flow with no socket: a connection the host NATs (on the uplink it carries the host's
    /// address and a port no socket has) is forwarded traffic; anything else is unattributed.
    fn no_socket(&mut self, key: &FlowKey) -> Resolution {
        if key.netns != NetnsId::HOST {
            return Resolution::Unattributed;
        }
        let Some(conntrack) = self.conntrack.as_mut() else {
            return Resolution::Unattributed;
        };
        match conntrack.nat(key.transport, key.local, key.remote) {
            Ok(Some(_)) => Resolution::Forwarded,
            Ok(None) => Resolution::Unattributed,
            Err(e) => {
                if e.kind() == io::ErrorKind::PermissionDenied {
                    // Every later request would fail the same way.
                    self.conntrack = None;
                    log::warn!(
                        "cannot ask conntrack about NATed connections ({e}): NATed traffic \
                         counts as unattributed; asking needs CAP_NET_ADMIN"
                    );
                }
                Resolution::Unattributed
            }
        }
    }

    fn find(&mut self, key: &FlowKey) -> Found {
        let ask = |diag: &mut SockDiag| diag.find(key.transport, key.local, key.remote);
        if key.netns == NetnsId::HOST {
            return match self.host.as_mut() {
                Some(diag) => Found::Socket(ask(diag)),
                None => Found::CannotAsk,
            };
        }
        match self
            .namespaces
            .in_namespace(key.netns, SockDiag::new)
            .and_then(|made| made)
        {
            Ok(mut diag) => Found::Socket(ask(&mut diag)),
            Err(e) => {
                if e.kind() == io::ErrorKind::PermissionDenied && !self.enter_failure_said {
                    self.enter_failure_said = true;
                    let cause = NamespaceError::of(&e).map_or_else(|| e.to_string(), cause);
                    warn_cannot_enter(&cause, self.owner_records);
                }
                Found::CannotAsk
            }
        }
    }
}

/// What the kernel said, without the namespace module's own sentence around it.
fn cause(problem: &NamespaceError) -> String {
    match problem {
        NamespaceError::NoPrivilege(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// Said once: traffic inside other namespaces cannot be tied to its processes.
fn warn_cannot_enter(cause: &str, owner_records: bool) {
    if owner_records {
        log::warn!(
            "cannot enter other network namespaces ({cause}): traffic of processes in them is \
             attributed only where the eBPF owner source recorded the socket's use (sockets \
             used since the plugin started), the rest is unattributed; entering a namespace \
             needs CAP_SYS_ADMIN"
        );
    } else {
        log::warn!(
            "cannot enter other network namespaces ({cause}): traffic of processes in them is \
             unattributed; entering a namespace needs CAP_SYS_ADMIN"
        );
    }
}

/// What the resolver publishes after every round.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResolverStats {
    /// The inode index's counters.
    pub index: IndexStats,
    /// Lookups answered from what it remembers of endpoints with no socket, since the start.
    pub answered_from_memory: u64,
    /// New lookups answered `Lost` without asking, the budget being spent, since the start.
    pub over_budget: u64,
    /// Lookups answered `Lost` at once, their socket being one no process was found to hold
    /// a moment ago ([`unowned`]), since the start.
    pub answered_unowned: u64,
    /// The eBPF owner source's counters (all 0 when it is not loaded).
    pub records: RecordStats,
}

/// What the eBPF owner source did, since the start.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordStats {
    /// Records read from the kernel.
    pub received: u64,
    /// Records the kernel could not deliver (ring buffer full) or that did not parse.
    pub lost: u64,
    /// Records kept now.
    pub kept: u64,
    /// Lookups answered from a record: by the socket's inode, or by its endpoint once the
    /// socket was gone.
    pub answered_by_socket: u64,
    pub answered_by_endpoint: u64,
}

/// [`LOOKUPS_PER_SECOND`] as a token bucket: a second's worth at most, refilled as time goes.
struct Budget {
    tokens: f64,
    refilled: Instant,
}

impl Budget {
    fn full(now: Instant) -> Budget {
        Budget {
            tokens: LOOKUPS_PER_SECOND,
            refilled: now,
        }
    }

    /// Takes one lookup's worth; false when none is left.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * LOOKUPS_PER_SECOND).min(LOOKUPS_PER_SECOND);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Runs until `stop` is set or every capture thread is gone. Its counters are published to
/// `stats` after every round.
#[allow(clippy::too_many_arguments)]
pub fn resolver_loop(
    queue: Receiver<Request>,
    namespaces: Namespaces,
    records: Option<OwnerRecords>,
    recorded_processes: &RecordedProcesses,
    topology: &SharedTopology,
    stats: &Mutex<ResolverStats>,
    closed: &ClosedSockets,
    stop: &AtomicBool,
    token: &ThreadToken,
) {
    let host = match SockDiag::new() {
        Ok(diag) => Some(diag),
        Err(e) => {
            log::warn!("cannot open a sock_diag netlink socket ({e}): traffic stays unattributed");
            None
        }
    };
    let mut diags = Diags {
        host,
        // Without conntrack (not built, no privilege) NATed copies stay unattributed.
        conntrack: Conntrack::new().ok(),
        namespaces,
        enter_failure_said: false,
        owner_records: records.is_some(),
    };
    // Without the udp_diag module the kernel answers UDP lookups with "not found": every UDP
    // byte would be unattributed for a reason the operator can fix, so say it once.
    if let Some(Err(e)) = diags.host.as_mut().map(|d| d.dump(Transport::Udp, false)) {
        log::warn!(
            "the kernel does not answer sock_diag for UDP ({e}): UDP traffic will be \
             unattributed; loading the udp_diag module (modprobe udp_diag) fixes it"
        );
    }
    // The monitor read the topology just before starting this thread: the next reading is
    // due a TOPOLOGY_REFRESH from here, the index's warm-up (long on a busy host) included.
    let topology_read = Instant::now();
    let mut index = InodeIndex::new(ProcRoot::system());
    index.set_owner_records(records.is_some());
    index.warm_up();
    // UDP only: a reused TCP 4-tuple opens with a SYN, which the capture asks about anyway.
    let destroyed = match SockDestroy::new(Transports::UDP) {
        Ok(destroyed) => Some(destroyed),
        Err(e) => {
            log::warn!(
                "cannot follow closed sockets ({e}): a UDP port another process reuses within \
                 30 s may be credited to its previous owner for that time; following them \
                 needs Linux 4.10 or later"
            );
            None
        }
    };
    let mut kernel = Kernel {
        diags,
        index,
        topology,
        stats,
        topology_said: false,
        destroyed,
        closed,
        destroyed_buffer: Vec::new(),
        records,
        table: RecordTable::default(),
        record_stats: RecordStats::default(),
        recorded_processes,
        proc: ProcRoot::system(),
        unowned: UnownedSockets::default(),
    };
    run(&queue, &mut kernel, stop, topology_read, token);
}

/// The real world: sock_diag in the flow's namespace, then the inode index for the socket's
/// holder; conntrack for the host's flows that no socket has; the topology read from the
/// namespaces and published to the capture threads.
struct Kernel<'a> {
    diags: Diags,
    index: InodeIndex,
    topology: &'a SharedTopology,
    stats: &'a Mutex<ResolverStats>,
    /// Reading the topology failed once: said once.
    topology_said: bool,
    /// The kernel's announcements of destroyed UDP sockets (host namespace), passed on to
    /// the capture threads through `closed`; `None` without CAP_NET_ADMIN.
    destroyed: Option<SockDestroy>,
    closed: &'a ClosedSockets,
    destroyed_buffer: Vec<ClosedSocket>,
    /// The eBPF owner source, when loaded, and the records it gave.
    records: Option<OwnerRecords>,
    table: RecordTable,
    record_stats: RecordStats,
    /// What is known of each recorded process, for the sampler.
    recorded_processes: &'a RecordedProcesses,
    proc: ProcRoot,
    /// Sockets no process was found to hold (kernel sockets).
    unowned: UnownedSockets,
}

impl Kernel<'_> {
    /// The records written since the last round, kept; and the counters.
    fn read_records(&mut self) {
        let Some(records) = self.records.as_mut() else {
            return;
        };
        let now = Instant::now();
        for record in records.drain(MAX_RECORDS_PER_ROUND) {
            self.table.insert(&record, now);
            self.record_stats.received += 1;
            let process = &record.process;
            if !self.recorded_processes.knows(&process.owner, &process.comm) {
                let facts = processes::with_proc_facts(process, &mut self.proc);
                self.recorded_processes.keep(facts);
            }
        }
        self.record_stats.lost = records.lost();
        self.record_stats.kept = self.table.kept() as u64;
    }

    /// The recorded owner of the flow's socket: by its inode while the kernel has it, else by
    /// the flow's endpoint (a record made at `recorded_since` or later). Records written since
    /// the round began are read first when none is kept yet: on loopback a connect()'s record
    /// is written before the capture has even seen its SYN.
    fn recorded_owner(
        &mut self,
        key: &FlowKey,
        socket_inode: Option<u64>,
        recorded_since: u64,
    ) -> Option<Owner> {
        self.records.as_ref()?;
        // Only an endpoint is namespaced: a socket's inode is the socket, in any namespace.
        let netns = match socket_inode {
            Some(_) => None,
            None => Some(self.diags.namespaces.inode_of(key.netns)?),
        };
        let find = |table: &RecordTable| {
            let now = Instant::now();
            match socket_inode {
                Some(inode) => table.by_socket(inode, now),
                None => table.by_endpoint(
                    netns?,
                    key.transport,
                    (key.local, key.remote),
                    recorded_since,
                    now,
                ),
            }
        };
        let owner = find(&self.table).or_else(|| {
            self.read_records();
            find(&self.table)
        })?;
        match socket_inode {
            Some(_) => self.record_stats.answered_by_socket += 1,
            None => self.record_stats.answered_by_endpoint += 1,
        }
        Some(owner)
    }
}

/// Destroyed sockets read in one round at most; what is left is read next round (a round is at
/// most 100 ms apart, and the kernel keeps ~6,500 announcements).
const MAX_DESTROYED_PER_ROUND: usize = 65_536;

impl OwnerLookup for Kernel<'_> {
    fn round_begins(&mut self, negative_hits: u64, over_budget: u64) {
        if let Some(destroyed) = self.destroyed.as_mut() {
            let buffer = &mut self.destroyed_buffer;
            let drained = destroyed.drain(buffer, MAX_DESTROYED_PER_ROUND);
            if !buffer.is_empty() || drained.overrun {
                let endpoints = buffer
                    .drain(..)
                    // A socket that never had a port carried no traffic.
                    .filter(|socket| socket.local.port() != 0)
                    .map(|socket| ClosedEndpoint {
                        netns: NetnsId::HOST,
                        transport: socket.transport,
                        ip: socket.local.ip(),
                        port: socket.local.port(),
                    });
                let host = self.diags.namespaces.inode_of(NetnsId::HOST);
                let table = &mut self.table;
                let now = Instant::now();
                let endpoints = endpoints.inspect(|closed| {
                    if let Some(host) = host {
                        let local = std::net::SocketAddr::new(closed.ip, closed.port);
                        table.close_endpoint(host, closed.transport, local, now);
                    }
                });
                self.closed.publish(endpoints, drained.overrun);
            }
        }
        // After the destroyed sockets: a record of a port's new socket is kept, not closed.
        self.read_records();
        *self.stats.lock() = ResolverStats {
            index: self.index.stats(),
            answered_from_memory: negative_hits,
            over_budget,
            answered_unowned: self.unowned.hits,
            records: self.record_stats,
        };
    }

    fn owner(&mut self, key: &FlowKey, opens: bool, asked: Asked) -> Answer {
        // A closed socket's record, for a packet that opened a connection: one made for this
        // connection, not for an earlier one on the same 4-tuple.
        let recorded_since = if opens {
            asked.ns.saturating_sub(OPENING_RECORD_WINDOW_NS)
        } else {
            0
        };
        // Test-only (`fault-injection`): an owner "not found yet", as under a slow index.
        if faults::lookup_fails() {
            return Answer::Retry;
        }
        let found = match self.diags.find(key) {
            Found::Socket(found) => found,
            // A namespace that cannot be entered: what the kernel recorded for the endpoint. A
            // receiver's record comes when it reads, a moment after its first packet arrived:
            // with the owner source loaded, it is asked for again for the bounded retry time.
            Found::CannotAsk => {
                return match self.recorded_owner(key, None, recorded_since) {
                    Some(owner) => Answer::Final(Resolution::Process(owner)),
                    None if self.records.is_some() => Answer::Retry,
                    None => Answer::Final(Resolution::Unattributed),
                };
            }
        };
        let info = match found {
            Ok(Some(info)) => info,
            // No socket any more: the process the kernel recorded for the flow's endpoint;
            // without one, asking again will not make a socket.
            Ok(None) => {
                if let Some(owner) = self.recorded_owner(key, None, recorded_since) {
                    return Answer::Final(Resolution::Process(owner));
                }
                return match self.diags.no_socket(key) {
                    Resolution::Unattributed => Answer::NoSocket,
                    other => Answer::Final(other),
                };
            }
            Err(_) => return Answer::Retry,
        };
        if info.inode == 0 {
            return if info.may_get_an_owner() {
                // Found, but no process holds it yet (accept queue): it may get one.
                Answer::Retry
            } else if opens {
                // A connection that opened and is closed already (its record), or a SYN on the
                // 4-tuple of an earlier connection in TIME_WAIT (a client port reused at once):
                // the kernel replaces that with the new connection within microseconds of the
                // SYN, so asking again briefly finds it; a TIME_WAIT still there after that is
                // the connection's own, closed already.
                match self.recorded_owner(key, None, recorded_since) {
                    Some(owner) => Answer::Final(Resolution::Process(owner)),
                    None if monotonic_ns().saturating_sub(asked.ns)
                        < OPENING_REPLACED_WITHIN_NS =>
                    {
                        Answer::Retry
                    }
                    None => Answer::Final(Resolution::Unattributed),
                }
            } else {
                // No process holds it any more (TIME_WAIT, an orphan after close): the one the
                // kernel recorded for its 4-tuple; else nobody will, and retrying for two
                // seconds would cost a core under churn.
                Answer::Final(self.recorded_owner(key, None, 0).into())
            };
        }
        // A live socket the kernel recorded a user of: that process, for certain.
        if let Some(owner) = self.recorded_owner(key, Some(info.inode), 0) {
            return Answer::Final(Resolution::Process(owner));
        }
        // A kernel socket: no process held it when last searched for.
        let now = Instant::now();
        if self.unowned.knows(info.inode, now) {
            return Answer::Final(Resolution::Lost);
        }
        match self
            .index
            .lookup_missing_since(info.inode, Some(info.uid), asked.at)
        {
            Some(owner) => Answer::Final(Resolution::Process(owner)),
            // Searched for as long as a flow is retried, every process read again since: no
            // process holds it. Other flows to it are answered at once for a while.
            None if now.saturating_duration_since(asked.at) >= RETRY_FOR => {
                self.unowned.remember(info.inode, now);
                Answer::Retry
            }
            // The index works in bounded steps (and a record may arrive): the next one may
            // find it.
            None => Answer::Retry,
        }
    }

    fn refresh_topology(&mut self) {
        let diags = &mut self.diags;
        match diags.namespaces.refresh() {
            Ok(fresh) => self.topology.publish(fresh),
            Err(e) if !self.topology_said => {
                self.topology_said = true;
                log::warn!(
                    "cannot read the network topology ({e}): traffic of other network \
                     namespaces is credited to the host side only"
                );
            }
            Err(_) => {}
        }
        if let Some(problem) = diags.namespaces.take_warning() {
            if !diags.enter_failure_said {
                diags.enter_failure_said = true;
                warn_cannot_enter(&cause(&problem), diags.owner_records);
            }
        }
    }
}

/// The loop, in rounds: publish the counters; wait for a request (less long while retries are
/// waiting); take the requests queued (at most [`MAX_LOOKUPS_PER_ROUND`] lookups); read the
/// topology if asked or due (before the lookups, so they see the interfaces that made a
/// capture thread ask); ask this round's retries, then every new lookup — a received flow to
/// an endpoint found with no socket a moment ago is answered [`Resolution::Lost`] without
/// asking ([`negative`]); settle each answer. `topology_read`: when the topology was last read.
///
/// Returns when `stop` is set (looked at between rounds: a round under way is finished) or
/// when every sender is gone and no retry is waiting.
fn run(
    queue: &Receiver<Request>,
    world: &mut impl OwnerLookup,
    stop: &AtomicBool,
    topology_read: Instant,
    token: &ThreadToken,
) {
    let mut state = Loop {
        retries: Retries::default(),
        negative: NegativeAnswers::default(),
        budget: Budget::full(Instant::now()),
        over_budget: 0,
        topology_read,
    };
    while !stop.load(Ordering::Relaxed) {
        // A bug in one round loses that round's lookups (their flows are asked again by the
        // flow table, see `flows`' second chances), never the thread.
        let round = guard(token, "a resolver round", || {
            faults::inject("resolver-round");
            state.round(queue, world)
        });
        if round == Some(Round::AllSendersGone) {
            return;
        }
    }
}

/// What the loop keeps from one round to the next.
struct Loop {
    retries: Retries,
    negative: NegativeAnswers,
    budget: Budget,
    /// New lookups answered `Lost` because the budget was spent, since the start.
    over_budget: u64,
    /// When the topology was last read.
    topology_read: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    Done,
    /// Every capture thread is gone and no retry waits: the loop ends.
    AllSendersGone,
}

impl Loop {
    fn round(&mut self, queue: &Receiver<Request>, world: &mut impl OwnerLookup) -> Round {
        let (retries, negative) = (&mut self.retries, &mut self.negative);
        world.round_begins(negative.hits, self.over_budget);
        let wait = retries.wait(Instant::now());
        // Retries are bounded per round; new lookups are never held back behind them.
        let mut batch = retries.due();
        let retried = batch.len();
        let mut topology_wanted = false;
        let most = batch.len() + MAX_LOOKUPS_PER_ROUND;
        let mut take = |request: Request, batch: &mut Vec<Pending>| match request {
            Request::Lookup {
                key,
                received,
                opens,
                reply,
            } => batch.push(Pending {
                key,
                received,
                opens,
                reply,
                first_asked: Asked::now(),
            }),
            Request::Topology => topology_wanted = true,
        };
        match queue.recv_timeout(wait) {
            Ok(request) => take(request, &mut batch),
            Err(RecvTimeoutError::Timeout) => {}
            // Every capture thread is gone: end once no retry waits. Until then the queue
            // makes no round wait, and the retries are asked without pause until settled.
            Err(RecvTimeoutError::Disconnected) if batch.is_empty() => {
                return Round::AllSendersGone
            }
            Err(RecvTimeoutError::Disconnected) => {}
        }
        while batch.len() < most {
            let Ok(request) = queue.try_recv() else { break };
            take(request, &mut batch);
        }
        if topology_wanted || self.topology_read.elapsed() >= TOPOLOGY_REFRESH {
            world.refresh_topology();
            self.topology_read = Instant::now();
        }
        for (n, pending) in batch.into_iter().enumerate() {
            let now = Instant::now();
            if pending.received && negative.knows_empty(&pending.key, now) {
                retries.settle(pending, Answer::Final(Resolution::Lost), now);
                continue;
            }
            // Retries were paid for when they were new.
            if n >= retried && !self.budget.take(now) {
                self.over_budget += 1;
                retries.settle(pending, Answer::Final(Resolution::Lost), now);
                continue;
            }
            let answer = world.owner(&pending.key, pending.opens, pending.first_asked);
            let now = Instant::now();
            if answer == Answer::NoSocket && pending.received {
                negative.remember(&pending.key, now);
            }
            retries.settle(pending, answer, now);
        }
        Round::Done
    }
}

#[cfg(test)]
mod tests;

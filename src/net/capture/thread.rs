//! A capture thread: reads its interface's packets from libpcap, parses them and credits them
//! in its flow table; sends new flows to the resolver and applies its answers between
//! packets; publishes its totals every 50 ms. Runs on one `capture-<interface>` thread per
//! interface, which never blocks on anything but libpcap.
//!
//! Each packet is credited as seen from its interface ([`Vantage`]): the topology the resolver
//! publishes says whether the interface is a veth into another namespace or a bridge port. A
//! packet on an interface the topology does not know yet (a container's veth created a moment
//! ago) is held, and the resolver asked to read the topology again; held packets are credited
//! when it has, or after `HOLD_UNKNOWN_INTERFACE` (200 ms) as the host's.
//!
//! [`capture_loop`] only reads libpcap and the clock; what it does with a packet and between
//! packets is `CaptureState`'s, which is given the time, so its unit tests (`thread/tests.rs`)
//! drive the clock and the resolver's answers without libpcap or a thread.

use super::flows::{FlowLimits, FlowStats, FlowTable, LocalAddresses, Vantage};
use super::host_addresses::LiveHostAddresses;
use super::packet::{Direction, FlowPacket, Parsed, Parser};
use super::pcap_source::{CaptureOptions, Next, PacketSource};
use crate::faults;
use crate::net::closed_sockets::{ClosedEndpoint, ClosedSockets};
use crate::net::topology::{SharedTopology, Topology};
use crate::net::types::{FlowKey, Owner, Request, Resolution, Traffic};
use crate::supervise::{guard, ThreadToken};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a new flow may wait for its owner before its bytes count as unattributed.
const PENDING_TIMEOUT_MS: u64 = 5_000;
/// Flows with an owner (a process, or forwarded) quiet this long are forgotten; a later packet
/// asks the resolver again (~40 µs, off the packet path). Longer only keeps flows that ended
/// without a FIN seen, UDP above all: at 1,000 new ones a second, 120 s kept 120,000 of them.
/// (Flows nobody was found for, and ended TCP flows, go after 5 s: see `flows`.)
const IDLE_TIMEOUT_MS: u64 = 30_000;
const HOUSEKEEPING: Duration = Duration::from_millis(50);
/// libpcap's read timeout: how long a capture thread waits for a packet before housekeeping.
pub const READ_TIMEOUT_MS: i32 = 50;
/// Packets of an interface the topology does not know wait this long for it at most.
const HOLD_UNKNOWN_INTERFACE: Duration = Duration::from_millis(200);
/// At most this many are held; beyond, they are credited as the host's at once.
const HOLD_UNKNOWN_MAX: usize = 4096;
/// A capture thread asks for a topology read at most this often.
const TOPOLOGY_ASK_EVERY: Duration = Duration::from_millis(20);

/// What one capture thread has counted since it started.
#[derive(Debug, Clone, Default)]
pub struct InterfaceTotals {
    pub interface: String,
    /// Traffic per process not yet taken by the monitor
    /// ([`crate::net::monitor::NetMonitor::take_traffic`]).
    pub by_owner: HashMap<Owner, Traffic>,
    pub unattributed: Traffic,
    /// The part of `unattributed` there because a bound was reached (see `flows`).
    pub shed: Traffic,
    pub forwarded: Traffic,
    pub pending: Traffic,
    pub flows: FlowStats,
    pub tracked_flows: u64,
    /// libpcap's counters (wrapping u32 in libpcap, widened here).
    pub pcap_received: u64,
    pub pcap_dropped: u64,
    pub pcap_if_dropped: u64,
    /// Frames that were not IP or were malformed: not counted anywhere else.
    pub skipped: u64,
    /// IP packets seen: what attributed + unattributed + pending add up to.
    pub ip_packets: u64,
    pub running: bool,
}

/// What the capture threads share with the monitor: their totals (one slot per thread), the
/// topology the resolver publishes, and the stop flag.
#[derive(Default)]
pub struct CaptureBoard {
    pub interfaces: Mutex<Vec<InterfaceTotals>>,
    pub topology: SharedTopology,
    /// Local endpoints whose socket was destroyed, published by the resolver.
    pub closed: ClosedSockets,
    pub stop: AtomicBool,
}

/// What a capture thread credits packets with: its flow table, the host's addresses, the
/// topology, and packets held for an interface the topology does not know yet.
struct Crediting {
    table: FlowTable,
    host: LiveHostAddresses,
    topology: Arc<Topology>,
    topology_generation: u64,
    /// The interface a capture of one named interface reads (its frames carry no index).
    own_ifindex: u32,
    held: Vec<FlowPacket>,
    held_since: Option<Instant>,
    /// Interfaces still unknown after the topology was read: not held for again until the
    /// next reading.
    unknown: HashSet<u32>,
    topology_asked: Option<Instant>,
    requests: SyncSender<Request>,
    reply: Sender<(FlowKey, Resolution)>,
}

impl Crediting {
    /// The interface a packet was seen on: its own index (SLL2 on `any`) or the captured one.
    fn ifindex_of(&self, packet: &FlowPacket) -> u32 {
        if packet.ifindex != 0 {
            packet.ifindex
        } else {
            self.own_ifindex
        }
    }

    /// `clock` is read only when the packet is held: a packet of a known interface costs no
    /// clock reading.
    fn packet(&mut self, packet: FlowPacket, now_ms: u64, clock: impl FnOnce() -> Instant) {
        let ifindex = self.ifindex_of(&packet);
        if ifindex != 0
            && self.topology.interface(ifindex).is_none()
            && !self.unknown.contains(&ifindex)
            && self.held.len() < HOLD_UNKNOWN_MAX
        {
            let now = clock();
            self.held.push(packet);
            self.held_since.get_or_insert(now);
            self.ask_topology(now);
            return;
        }
        self.credit(&packet, ifindex, now_ms);
    }

    fn credit(&mut self, packet: &FlowPacket, ifindex: u32, now_ms: u64) {
        // A frame with no direction whose ends are both foreign may be the first of an
        // address added a moment ago.
        if packet.direction == Direction::Unknown
            && !self.host.addresses().is_local(&packet.src.ip())
            && !self.host.addresses().is_local(&packet.dst.ip())
        {
            self.host.missed();
        }
        let role = self.topology.interface(ifindex);
        if role.is_none() && ifindex != 0 {
            self.unknown.insert(ifindex);
        }
        let vantage = Vantage {
            host: self.host.addresses(),
            host_side: !role.is_some_and(|r| r.bridge_port),
            peer: role.and_then(|r| r.peer).map(|netns| {
                let addresses = self
                    .topology
                    .addresses(netns)
                    .map(|a| a as &dyn LocalAddresses);
                (netns, addresses)
            }),
        };
        self.table.account_seen(packet, &vantage, now_ms);
        // New flows go to the resolver at once: short connections close in milliseconds, and
        // their socket must still be there when asked.
        if self.table.has_lookups() {
            self.send_lookups();
        }
    }

    /// Never waits: a lookup the resolver's queue has no room for is shed (the flow table
    /// credits it to `unattributed` and asks again later). A resolver that is gone makes the
    /// sends fail: the capture goes on, and the flows' bytes go to `unattributed` when the
    /// flow table gives up on them.
    fn send_lookups(&mut self) {
        for lookup in self.table.take_lookups() {
            let request = Request::Lookup {
                key: lookup.key,
                received: lookup.received,
                opens: lookup.opens,
                reply: self.reply.clone(),
            };
            if let Err(TrySendError::Full(_)) = self.requests.try_send(request) {
                self.table.not_asked(&lookup.key);
            }
        }
    }

    fn ask_topology(&mut self, now: Instant) {
        if self
            .topology_asked
            .is_none_or(|at| now.saturating_duration_since(at) >= TOPOLOGY_ASK_EVERY)
        {
            self.topology_asked = Some(now);
            // A full queue will be read soon; the next packet of the interface asks again.
            let _ = self.requests.try_send(Request::Topology);
        }
    }

    /// Takes a newer topology if there is one, and credits held packets once it came or they
    /// waited long enough. Cheap (one atomic load) when there is nothing new.
    fn take_topology(&mut self, topology: &SharedTopology, now: Instant, now_ms: u64) {
        let fresh = topology.newer_than(&mut self.topology_generation);
        if let Some(fresh) = fresh.as_ref() {
            self.topology = Arc::clone(fresh);
            self.unknown.clear();
        }
        let waited = self
            .held_since
            .is_some_and(|since| now.saturating_duration_since(since) >= HOLD_UNKNOWN_INTERFACE);
        if fresh.is_some() || waited {
            self.held_since = None;
            for packet in std::mem::take(&mut self.held) {
                let ifindex = self.ifindex_of(&packet);
                self.credit(&packet, ifindex, now_ms);
            }
        }
    }

    fn housekeeping(&mut self, topology: &SharedTopology, now: Instant, now_ms: u64) {
        self.take_topology(topology, now, now_ms);
        self.host.tick();
        self.send_lookups();
    }
}

/// What a capture thread keeps from one packet to the next, besides its libpcap handle and
/// parser: the crediting, the resolver's answers, the clock of its housekeeping rounds and its
/// counters. The loop's policy is in its methods, which are given the time rather than read the
/// clock, so tests drive it packet by packet.
struct CaptureState {
    crediting: Crediting,
    /// The resolver's answers to this thread's lookups.
    answers: Receiver<(FlowKey, Resolution)>,
    /// What `now_ms` counts from.
    started: Instant,
    last_housekeeping: Instant,
    /// The flow table's clock: milliseconds from `started` to the last housekeeping round.
    now_ms: u64,
    skipped: u64,
    ip_packets: u64,
    pcap: Widened,
    /// How far this thread has read `CaptureBoard::closed`.
    closed_seen: u64,
    closed: Vec<ClosedEndpoint>,
}

impl CaptureState {
    /// A capture of the interface `own_ifindex` (0 for `any`) starting at `now` with the
    /// topology published so far, asking the resolver through `requests`.
    fn new(
        own_ifindex: u32,
        limits: FlowLimits,
        topology: &SharedTopology,
        requests: SyncSender<Request>,
        now: Instant,
    ) -> CaptureState {
        let (reply, answers) = mpsc::channel();
        let mut topology_generation = 0;
        let topology = topology
            .newer_than(&mut topology_generation)
            .unwrap_or_default();
        CaptureState {
            crediting: Crediting {
                table: FlowTable::with_limits(PENDING_TIMEOUT_MS, IDLE_TIMEOUT_MS, limits),
                host: LiveHostAddresses::new(),
                topology,
                topology_generation,
                own_ifindex,
                held: Vec::new(),
                held_since: None,
                unknown: Default::default(),
                topology_asked: None,
                requests,
                reply,
            },
            answers,
            started: now,
            last_housekeeping: now,
            now_ms: 0,
            skipped: 0,
            ip_packets: 0,
            pcap: Widened::default(),
            closed_seen: 0,
            closed: Vec::new(),
        }
    }

    /// One parsed frame. `clock` is read only if the packet is held for its interface.
    fn parsed(&mut self, parsed: Parsed, clock: impl FnOnce() -> Instant) {
        match parsed {
            Parsed::Flow(packet) => {
                self.ip_packets += 1;
                self.crediting.packet(packet, self.now_ms, clock);
            }
            Parsed::Unattributable { direction, ip_len } => {
                self.ip_packets += 1;
                self.crediting
                    .table
                    .account_unattributable(direction, ip_len);
            }
            Parsed::NotIp | Parsed::Malformed => self.skipped += 1,
        }
    }

    /// After every read, a packet or not: held packets are credited as soon as the topology
    /// they wait for is there; every [`HOUSEKEEPING`], the resolver's answers are applied,
    /// flows expired, libpcap's counters read (`stats`, called only then) and the totals
    /// published in slot `index` of `shared.interfaces`.
    fn between_packets(
        &mut self,
        shared: &CaptureBoard,
        index: usize,
        now: Instant,
        stats: impl FnOnce() -> Option<pcap::Stat>,
    ) {
        if !self.crediting.held.is_empty() {
            self.crediting
                .take_topology(&shared.topology, now, self.now_ms);
        }
        if now.saturating_duration_since(self.last_housekeeping) < HOUSEKEEPING {
            return;
        }
        self.last_housekeeping = now;
        self.now_ms = now.saturating_duration_since(self.started).as_millis() as u64;
        self.crediting
            .housekeeping(&shared.topology, now, self.now_ms);
        // Sockets destroyed since the last round first: an answer below may be about the
        // endpoint's new socket, and must not be forgotten with the old one's flows.
        if shared.closed.newer_than(self.closed_seen) {
            let missed = shared
                .closed
                .read_since(&mut self.closed_seen, &mut self.closed);
            self.crediting.table.forget_closed(&self.closed, missed);
            self.closed.clear();
        }
        while let Ok((key, owner)) = self.answers.try_recv() {
            self.crediting.table.resolved(&key, owner);
        }
        self.crediting.table.expire(self.now_ms);
        if let Some(stats) = stats() {
            self.pcap.update(stats);
        }
        self.publish(shared, index, true);
    }

    /// The handle was opened again: a new interface index, libpcap's counters from zero, and a
    /// housekeeping round at once.
    fn reopened(&mut self, own_ifindex: u32, now: Instant) {
        self.crediting.own_ifindex = own_ifindex;
        self.pcap.restart();
        self.last_housekeeping = now - HOUSEKEEPING;
    }

    /// A capture that stops (for good, or until its interface is back): whatever is still held
    /// is the host's, and the counters so far are published with the capture marked not
    /// running.
    fn wind_down(&mut self, shared: &CaptureBoard, index: usize, now: Instant) {
        self.crediting.held_since = Some(now - HOLD_UNKNOWN_INTERFACE);
        self.crediting
            .housekeeping(&shared.topology, now, self.now_ms);
        self.publish(shared, index, false);
    }

    /// Hands the traffic credited to processes since the last call to slot `index`, and sets
    /// the rest of it to the counts so far.
    fn publish(&mut self, shared: &CaptureBoard, index: usize, running: bool) {
        let table = &mut self.crediting.table;
        let mut interfaces = shared.interfaces.lock();
        if let Some(slot) = interfaces.get_mut(index) {
            for (owner, t) in table.take_by_owner() {
                slot.by_owner.entry(owner).or_default().merge(&t);
            }
            slot.unattributed = table.unattributed();
            slot.shed = table.shed();
            slot.forwarded = table.forwarded();
            slot.pending = table.pending();
            slot.flows = table.stats();
            slot.tracked_flows = table.tracked_flows() as u64;
            slot.pcap_received = self.pcap.received;
            slot.pcap_dropped = self.pcap.dropped;
            slot.pcap_if_dropped = self.pcap.if_dropped;
            slot.skipped = self.skipped;
            slot.ip_packets = self.ip_packets;
            slot.running = running;
        }
    }
}

/// A capture whose handle failed (its interface was deleted, or went down) tries to open it
/// again this often, so an interface re-created with the same name is captured again.
const REOPEN_EVERY: Duration = Duration::from_secs(1);
/// A capture's stop (and the resume after it) is logged at most this often.
const SAY_STOP_EVERY: Duration = Duration::from_secs(60);

/// The capture thread's body: runs until `shared.stop` is set, publishing into slot `index` of
/// `shared.interfaces`; a failed handle is opened again every `REOPEN_EVERY`.
pub fn capture_loop(
    mut source: PacketSource,
    options: &CaptureOptions,
    limits: FlowLimits,
    index: usize,
    shared: &CaptureBoard,
    requests: SyncSender<Request>,
    token: &ThreadToken,
) {
    let link = source.link_type();
    let mut parser = Parser::new();
    let mut state = CaptureState::new(
        source.ifindex(),
        limits,
        &shared.topology,
        requests,
        Instant::now(),
    );
    let mut stop_said: Option<Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        // A packet that hits a bug is lost (it counts in no total), never the thread.
        let step = guard(token, "a packet", || match source.next_packet() {
            Next::Packet(frame, wire_len) => {
                faults::inject("capture-packet");
                let parsed = parser.parse_wire(link, frame, wire_len, state.now_ms);
                state.parsed(parsed, Instant::now);
                None
            }
            Next::Idle => None,
            Next::Failed(e) => Some(e),
        });
        if let Some(Some(e)) = step {
            state.wind_down(shared, index, Instant::now());
            // An interface that flaps is said once a minute at most, not at every flap.
            let say = stop_said.is_none_or(|at| at.elapsed() >= SAY_STOP_EVERY);
            if say {
                stop_said = Some(Instant::now());
                log::warn!(
                    "capture on `{}` stopped: {e}; the other interfaces and all process \
                     metrics go on, and it resumes when the interface is back (tried every \
                     {} s)",
                    options.interface,
                    REOPEN_EVERY.as_secs()
                );
            }
            let Some(reopened) = reopen(options, &shared.stop) else {
                return;
            };
            source = reopened;
            if say {
                log::warn!("capture on `{}` resumed", options.interface);
            }
            state.reopened(source.ifindex(), Instant::now());
        }
        guard(token, "capture housekeeping", || {
            faults::inject("capture-housekeeping");
            state.between_packets(shared, index, Instant::now(), || source.stats());
        });
    }
    state.wind_down(shared, index, Instant::now());
}

/// Opens `options`' interface again every [`REOPEN_EVERY`] until it opens (`Some`) or the
/// plugin stops (`None`), checking for the stop every [`HOUSEKEEPING`].
fn reopen(options: &CaptureOptions, stop: &AtomicBool) -> Option<PacketSource> {
    let mut last_try = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        if last_try.elapsed() >= REOPEN_EVERY {
            last_try = Instant::now();
            if let Ok(source) = PacketSource::open(options, READ_TIMEOUT_MS) {
                return Some(source);
            }
        }
        std::thread::sleep(HOUSEKEEPING);
    }
}

/// libpcap's u32 counters, widened to u64 across wraps.
#[derive(Default)]
struct Widened {
    last: (u32, u32, u32),
    received: u64,
    dropped: u64,
    if_dropped: u64,
}

impl Widened {
    fn update(&mut self, stat: pcap::Stat) {
        let delta = |now: u32, before: u32| u64::from(now.wrapping_sub(before));
        self.received += delta(stat.received, self.last.0);
        self.dropped += delta(stat.dropped, self.last.1);
        self.if_dropped += delta(stat.if_dropped, self.last.2);
        self.last = (stat.received, stat.dropped, stat.if_dropped);
    }

    /// A new handle counts from zero: the totals so far stay, the next reading adds to them.
    fn restart(&mut self) {
        self.last = (0, 0, 0);
    }
}

#[cfg(test)]
mod tests;

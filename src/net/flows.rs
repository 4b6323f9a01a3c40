//! The flow table: what the capture thread does with each parsed packet, and nothing slower.
//!
//! A packet is credited once per *local endpoint*: the side of the flow that is a socket on this
//! host, in the host's network namespace or in another one. Outgoing packets credit `tx` to the
//! sender's socket, incoming packets credit `rx` to the receiver's. Loopback traffic between two
//! local processes has two local endpoints: it is credited from its incoming copy, `tx` to the
//! sender and `rx` to the receiver. (libpcap shows a loopback packet on `any` only once,
//! arriving; should an outgoing copy show up too, it is skipped, so nothing is counted twice.)
//!
//! Namespaces: the capture runs in the host's namespace, so a container's traffic is seen on the
//! host end of its veth. Each copy of a packet is looked at from two sides ([`Vantage`]):
//! - the host's own sockets, credited on every interface but bridge ports (a packet to or from
//!   the host that crosses a bridge shows on the port *and* on the bridge device; the bridge
//!   device is where the host's stack sees it);
//! - the namespace at the other end of a veth: a copy going into the veth is received by a
//!   socket in that namespace, a copy coming out of it was sent by one. Each namespace sees its
//!   traffic on its own veth only, so a packet crossing veth, bridge and uplink is credited once
//!   per endpoint, and equal addresses in two namespaces never meet: flows are keyed by
//!   namespace.
//!
//! A copy whose host side is no socket of the host — routed, bridged up to the host's stack
//! for forwarding, or seen promiscuously — goes to `forwarded`: `unattributed` keeps meaning "a
//! local socket we could not tie to a process".
//!
//! A flow whose owner is not known yet holds its bytes ("pending") and is handed to the resolver
//! thread; the packet path never asks the kernel or /proc anything. When the answer comes, the
//! held bytes go to the owner — so a connection that opens and closes between two collectd reads
//! is still attributed — or, if the socket is gone or unknowable, to `unattributed` (or, for a
//! flow conntrack says the host NATs, to `forwarded`). Nothing is dropped: every copy of a packet
//! delivered lands once per local endpoint in a process, `unattributed` or `pending`, and a copy
//! with no local endpoint in `forwarded`.
//!
//! Storage: memory grows with the flows seen in the last half minute, which on a busy host is
//! 100,000 and more, so the per-flow cost is what counts. A flow is stored under a compact key
//! (44 bytes, against the 72 of a [`FlowKey`], which the resolver still gets) with only what
//! the packet path needs: the owner, when it was last seen (u32 milliseconds, wrapping) and
//! whether TCP said it ended. 64 bytes a flow, ~140 with the map's spare room, where it was
//! ~320. The few flows still waiting for the resolver, with their held bytes, live in a map of
//! their own.
//!
//! Expiry: a flow is forgotten once quiet for a while and a later packet asks the resolver
//! again, which also catches a 4-tuple reused by another process. How long depends on what
//! forgetting risks: a flow with an owner, 30 s (asking again is ~40 µs on the resolver's
//! thread; keeping it longer only keeps dead connections); a flow nobody was found for, or an
//! ended TCP connection, 5 s (the answer may differ next time; the connection is over). Waiting
//! flows are never forgotten, only given up on after the pending timeout. Their small map is
//! checked at every housekeeping round; the big one is scanned once a second (a scan of 200,000
//! flows costs a fraction of a millisecond: every 50 ms that was a few percent of a core), and
//! shrunk when mostly empty, so a burst of flows does not keep its memory for good.

use super::inodes::Owner;
use super::namespaces::NetnsId;
use super::packet::{Direction, FlowPacket, TcpSignal, Transport};
use crate::maps::{rebuild_when_crowded, shrink_mostly_empty};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Bytes (IP datagram lengths) and packets, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

impl Traffic {
    fn add(&mut self, side: Side, bytes: u32) {
        match side {
            Side::Rx => {
                self.rx_bytes += u64::from(bytes);
                self.rx_packets += 1;
            }
            Side::Tx => {
                self.tx_bytes += u64::from(bytes);
                self.tx_packets += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &Traffic) {
        self.rx_bytes += other.rx_bytes;
        self.tx_bytes += other.tx_bytes;
        self.rx_packets += other.rx_packets;
        self.tx_packets += other.tx_packets;
    }

    pub fn bytes(&self) -> u64 {
        self.rx_bytes + self.tx_bytes
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Rx,
    Tx,
}

/// A flow as seen from one local socket, in the namespace that socket lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub netns: NetnsId,
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// A [`FlowKey`] as the table stores it. `FlowKey` takes 72 bytes, most of them the padding of
/// two `SocketAddr` enums sized for IPv6 with flow label and scope id; this takes 44 and is
/// 4-aligned, so a stored flow (key and [`Entry`]) fits in 64 bytes. Addresses are kept as 16
/// bytes with a family bit each, so an IPv4 flow and an IPv6 one with the v4-mapped address
/// stay two flows. The flow label and scope id are dropped: packets never carry them
/// (the parser sets both to 0), so no two flows differ by them alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoredKey {
    local_ip: [u8; 16],
    remote_ip: [u8; 16],
    netns: u32,
    local_port: u16,
    remote_port: u16,
    /// [`UDP`](Self::UDP), [`LOCAL_V6`](Self::LOCAL_V6), [`REMOTE_V6`](Self::REMOTE_V6).
    kind: u8,
}

impl StoredKey {
    const UDP: u8 = 1;
    const LOCAL_V6: u8 = 2;
    const REMOTE_V6: u8 = 4;

    fn new(netns: NetnsId, transport: Transport, local: SocketAddr, remote: SocketAddr) -> Self {
        let (local_ip, local_v6) = Self::ip_bytes(local.ip());
        let (remote_ip, remote_v6) = Self::ip_bytes(remote.ip());
        let mut kind = 0;
        if transport == Transport::Udp {
            kind |= Self::UDP;
        }
        if local_v6 {
            kind |= Self::LOCAL_V6;
        }
        if remote_v6 {
            kind |= Self::REMOTE_V6;
        }
        StoredKey {
            local_ip,
            remote_ip,
            netns: netns.0,
            local_port: local.port(),
            remote_port: remote.port(),
            kind,
        }
    }

    fn ip_bytes(ip: IpAddr) -> ([u8; 16], bool) {
        match ip {
            IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), false),
            IpAddr::V6(v6) => (v6.octets(), true),
        }
    }

    fn ip(bytes: [u8; 16], v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(bytes))
        } else {
            IpAddr::V4(Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]))
        }
    }

    fn flow_key(&self) -> FlowKey {
        FlowKey {
            netns: NetnsId(self.netns),
            transport: if self.kind & Self::UDP != 0 {
                Transport::Udp
            } else {
                Transport::Tcp
            },
            local: SocketAddr::new(
                Self::ip(self.local_ip, self.kind & Self::LOCAL_V6 != 0),
                self.local_port,
            ),
            remote: SocketAddr::new(
                Self::ip(self.remote_ip, self.kind & Self::REMOTE_V6 != 0),
                self.remote_port,
            ),
        }
    }
}

impl From<&FlowKey> for StoredKey {
    fn from(key: &FlowKey) -> Self {
        StoredKey::new(key.netns, key.transport, key.local, key.remote)
    }
}

// Written by hand to feed the hasher a few wide words rather than every field with its length
// prefix: the key is hashed once per packet. Covers every field, so it agrees with `Eq`.
impl Hash for StoredKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.local_ip);
        state.write(&self.remote_ip);
        state.write_u64(
            u64::from(self.netns) << 32
                | u64::from(self.local_port) << 16
                | u64::from(self.remote_port),
        );
        state.write_u8(self.kind);
    }
}

/// Who a flow's packets are credited to, once the resolver has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attribution {
    /// `Entry::pid` and `Entry::starttime` say which.
    Process,
    Unattributed,
    /// No local socket: a connection the host NATs, seen with the host's address.
    Forwarded,
}

/// The low 32 bits of a millisecond clock. Ages are wrapping differences, right as long as an
/// entry is younger than 2^31 ms (24.8 days): every timeout is capped below that, and the idle
/// scan forgets an entry within a second of its timeout, long before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tick(u32);

impl Tick {
    fn at(now_ms: u64) -> Tick {
        // Truncation is the point: see the type.
        Tick(now_ms as u32)
    }

    /// Milliseconds from `self` to `now`; a `self` after `now` (the caller's clock stepped
    /// back) counts as just seen.
    fn quiet_until(self, now: Tick) -> u32 {
        let age = now.0.wrapping_sub(self.0);
        if age > MAX_TIMEOUT_MS {
            0
        } else {
            age
        }
    }
}

/// The longest timeout a [`Tick`] measures.
const MAX_TIMEOUT_MS: u32 = i32::MAX as u32;

/// A flow whose owner is known (or known to be nobody's): 20 bytes, 4-aligned.
#[derive(Debug, Clone, Copy)]
struct Entry {
    pid: u32,
    /// `Owner::starttime` in two halves: a u64 would make the entry 8-aligned and the stored
    /// flow 72 bytes instead of 64.
    starttime: [u32; 2],
    last_seen: Tick,
    attribution: Attribution,
    /// A FIN or RST went by: once quiet for `ended_timeout_ms` the connection is over, and
    /// keeping it until the idle timeout would only cost memory.
    ended: bool,
}

impl Entry {
    fn new(resolution: Resolution, last_seen: Tick, ended: bool) -> Entry {
        let (attribution, owner) = match resolution {
            Resolution::Process(owner) => (Attribution::Process, owner),
            Resolution::Unattributed => (Attribution::Unattributed, NOBODY),
            Resolution::Forwarded => (Attribution::Forwarded, NOBODY),
        };
        Entry {
            pid: owner.pid,
            starttime: [owner.starttime as u32, (owner.starttime >> 32) as u32],
            last_seen,
            attribution,
            ended,
        }
    }

    fn owner(&self) -> Owner {
        Owner {
            pid: self.pid,
            starttime: u64::from(self.starttime[0]) | u64::from(self.starttime[1]) << 32,
        }
    }
}

/// The owner fields of an entry that has none.
const NOBODY: Owner = Owner {
    pid: 0,
    starttime: 0,
};

/// A flow waiting for the resolver: its bytes are held until the answer (or the timeout).
/// Kept apart from the resolved flows because few flows wait at any time, and the held
/// counters and asked time would add 40 bytes to every entry.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    held: Traffic,
    asked_ms: u64,
    last_seen_ms: u64,
    ended: bool,
}

impl Waiting {
    fn asked_at(now_ms: u64) -> Waiting {
        Waiting {
            held: Traffic::default(),
            asked_ms: now_ms,
            last_seen_ms: now_ms,
            ended: false,
        }
    }
}

/// What the resolver found for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Process(Owner),
    /// A local socket nobody could be found for, or none at all.
    Unattributed,
    /// No local socket, but a connection the host translates (NAT): someone else's traffic.
    Forwarded,
}

impl From<Option<Owner>> for Resolution {
    fn from(owner: Option<Owner>) -> Resolution {
        owner.map_or(Resolution::Unattributed, Resolution::Process)
    }
}

/// The addresses of one namespace: which end of a copy is one of its sockets.
pub trait LocalAddresses {
    fn is_local(&self, ip: &IpAddr) -> bool;
}

impl LocalAddresses for HashSet<IpAddr> {
    fn is_local(&self, ip: &IpAddr) -> bool {
        self.contains(ip)
    }
}

/// Where a copy of a packet was seen, as far as crediting goes.
#[derive(Clone, Copy)]
pub struct Vantage<'a> {
    /// The host's own addresses (loopback included).
    pub host: &'a dyn LocalAddresses,
    /// Whether the host's own sockets are credited from this interface: not on a bridge port.
    pub host_side: bool,
    /// The namespace at the other end of a veth, with its addresses when known (needed only for
    /// frames without direction).
    pub peer: Option<(NetnsId, Option<&'a dyn LocalAddresses>)>,
}

impl<'a> Vantage<'a> {
    /// An interface of the host's own: loopback, an uplink, a bridge, a tunnel.
    pub fn host(host: &'a dyn LocalAddresses) -> Vantage<'a> {
        Vantage {
            host,
            host_side: true,
            peer: None,
        }
    }
}

/// Counts kept for telemetry and reconciliation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub flows: u64,
    /// Outgoing copies of looped-back packets, credited from their incoming copy instead.
    pub loopback_copies_skipped: u64,
    pub lookups_requested: u64,
    pub resolved: u64,
    pub unresolved: u64,
    /// Credits to sockets in other namespaces (each also counted in `flows` when new).
    pub namespace_credits: u64,
}

pub struct FlowTable {
    /// Flows whose owner is known, or known to be nobody's.
    flows: HashMap<StoredKey, Entry>,
    /// Flows waiting for the resolver.
    pending: HashMap<StoredKey, Waiting>,
    to_resolve: Vec<StoredKey>,
    by_owner: HashMap<Owner, Traffic>,
    unattributed: Traffic,
    forwarded: Traffic,
    stats: FlowStats,
    /// How long a flow may wait for its owner before its bytes go to `unattributed`.
    pending_timeout_ms: u64,
    /// Flows with an owner (a process, or `forwarded`) quiet this long are forgotten.
    idle_timeout_ms: u32,
    /// Flows the resolver found nobody for, quiet this long, are forgotten.
    unattributed_timeout_ms: u32,
    /// Ended TCP flows quiet this long are forgotten.
    ended_timeout_ms: u32,
    /// When [`expire`](Self::expire) next scans `flows` for idle ones.
    next_idle_scan_ms: u64,
}

/// How long an ended TCP flow is kept once quiet: long enough for the last ACK and the odd
/// retransmitted FIN, which would otherwise be looked up again (and, the socket being in
/// TIME_WAIT with no owner, end up unattributed).
const ENDED_TIMEOUT_MS: u64 = 5_000;

/// How long a flow nobody was found for is kept once quiet. Asking again costs the resolver
/// one lookup, and the answer may have changed: a socket the resolver met before its process
/// had it in its file table, a namespace it could not enter yet.
const UNATTRIBUTED_TIMEOUT_MS: u64 = 5_000;

/// How often `expire` scans the whole table for idle flows. Idle timeouts are seconds long, so
/// a flow outliving its timeout by up to this much changes nothing but a little memory, and
/// scanning at every housekeeping round (50 ms) cost a few percent of a core at 60,000-200,000
/// flows.
const IDLE_SCAN_EVERY_MS: u64 = 1_000;

impl FlowTable {
    /// Timeouts are capped at 2^31 ms (24.8 days), the longest a `Tick` measures.
    pub fn new(pending_timeout_ms: u64, idle_timeout_ms: u64) -> Self {
        let capped =
            |ms: u64| u32::try_from(ms).map_or(MAX_TIMEOUT_MS, |ms| ms.min(MAX_TIMEOUT_MS));
        let idle_timeout_ms = capped(idle_timeout_ms);
        FlowTable {
            flows: HashMap::new(),
            pending: HashMap::new(),
            to_resolve: Vec::new(),
            by_owner: HashMap::new(),
            unattributed: Traffic::default(),
            forwarded: Traffic::default(),
            stats: FlowStats::default(),
            pending_timeout_ms,
            idle_timeout_ms,
            unattributed_timeout_ms: capped(UNATTRIBUTED_TIMEOUT_MS).min(idle_timeout_ms),
            ended_timeout_ms: capped(ENDED_TIMEOUT_MS).min(idle_timeout_ms),
            next_idle_scan_ms: 0,
        }
    }

    /// Credits one TCP/UDP packet seen on an interface of the host's own.
    pub fn account(&mut self, packet: &FlowPacket, host: &dyn LocalAddresses, now_ms: u64) {
        self.account_seen(packet, &Vantage::host(host), now_ms);
    }

    /// Credits one copy of a TCP/UDP packet to its local endpoint(s), as seen from `vantage`.
    pub fn account_seen(&mut self, packet: &FlowPacket, vantage: &Vantage<'_>, now_ms: u64) {
        if vantage.host_side {
            self.account_host_side(packet, vantage.host, now_ms);
        }
        if let Some((netns, addresses)) = vantage.peer {
            self.account_peer_side(packet, netns, addresses, now_ms);
        }
    }

    fn account_host_side(&mut self, packet: &FlowPacket, local: &dyn LocalAddresses, now_ms: u64) {
        let host = NetnsId::HOST;
        let outgoing = (packet.src, packet.dst);
        let incoming = (packet.dst, packet.src);
        let src_local = || local.is_local(&packet.src.ip());
        let dst_local = || local.is_local(&packet.dst.ip());
        match packet.direction {
            Direction::Outgoing => {
                if dst_local() {
                    // Looped back: its incoming copy credits both sides.
                    self.stats.loopback_copies_skipped += 1;
                } else if src_local() {
                    self.credit(packet, host, outgoing, Side::Tx, now_ms);
                } else {
                    // Leaving with someone else's source: forwarded (or a namespace's packet
                    // on its way in, credited from the peer side).
                    self.forwarded.add(Side::Tx, packet.ip_len);
                }
            }
            Direction::Incoming => {
                // Multicast and the limited broadcast reach local sockets though no interface
                // has their address (subnet broadcasts are among the host's addresses).
                let group = match packet.dst.ip() {
                    IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
                    IpAddr::V6(v6) => v6.is_multicast(),
                };
                if dst_local() || group {
                    self.credit(packet, host, incoming, Side::Rx, now_ms);
                    if src_local() {
                        self.credit(packet, host, outgoing, Side::Tx, now_ms);
                    }
                } else {
                    // Arrived for someone else: the host forwards it (or drops it).
                    self.forwarded.add(Side::Rx, packet.ip_len);
                }
            }
            // Promiscuous copies of other hosts' traffic: no local socket.
            Direction::OtherHost => self.forwarded.add(Side::Rx, packet.ip_len),
            Direction::Unknown => {
                let src_local = src_local();
                let dst_local = dst_local();
                if src_local {
                    self.credit(packet, host, outgoing, Side::Tx, now_ms);
                }
                if dst_local {
                    self.credit(packet, host, incoming, Side::Rx, now_ms);
                }
                if !src_local && !dst_local {
                    self.forwarded.add(Side::Rx, packet.ip_len);
                }
            }
        }
    }

    /// The namespace behind a veth: what goes into the veth arrives at one of its sockets, what
    /// comes out of it left one.
    fn account_peer_side(
        &mut self,
        packet: &FlowPacket,
        netns: NetnsId,
        addresses: Option<&dyn LocalAddresses>,
        now_ms: u64,
    ) {
        let outgoing = (packet.src, packet.dst);
        let incoming = (packet.dst, packet.src);
        match packet.direction {
            // Sent by the host into the veth: received inside.
            Direction::Outgoing => self.credit(packet, netns, incoming, Side::Rx, now_ms),
            // Came out of the veth: sent from inside. On a bridge port a frame for another
            // port's MAC address is "for another host" to the port, but it came out all the same.
            Direction::Incoming | Direction::OtherHost => {
                self.credit(packet, netns, outgoing, Side::Tx, now_ms)
            }
            Direction::Unknown => {
                let Some(addresses) = addresses else { return };
                if addresses.is_local(&packet.src.ip()) {
                    self.credit(packet, netns, outgoing, Side::Tx, now_ms);
                }
                if addresses.is_local(&packet.dst.ip()) {
                    self.credit(packet, netns, incoming, Side::Rx, now_ms);
                }
            }
        }
    }

    /// An IP packet that belongs to no TCP/UDP flow (ICMP, an orphan fragment, ...).
    pub fn account_unattributable(&mut self, direction: Direction, ip_len: u32) {
        let side = if direction == Direction::Outgoing {
            Side::Tx
        } else {
            Side::Rx
        };
        self.unattributed.add(side, ip_len);
    }

    fn credit(
        &mut self,
        packet: &FlowPacket,
        netns: NetnsId,
        (local, remote): (SocketAddr, SocketAddr),
        side: Side,
        now_ms: u64,
    ) {
        let key = StoredKey::new(netns, packet.transport, local, remote);
        if netns != NetnsId::HOST {
            self.stats.namespace_credits += 1;
        }
        // Most packets belong to a flow whose owner is known: one lookup, no other work.
        if let Some(entry) = self.flows.get_mut(&key) {
            // A client opening a connection on a 4-tuple this table still holds: ports come
            // round again within a second under churn, and the new connection may be another
            // process's. Ask again rather than credit the old owner.
            if !matches!(packet.tcp, TcpSignal::Opens) {
                entry.last_seen = Tick::at(now_ms);
                if matches!(packet.tcp, TcpSignal::Ends) {
                    entry.ended = true;
                }
                let to = match entry.attribution {
                    Attribution::Process => self.by_owner.entry(entry.owner()).or_default(),
                    Attribution::Unattributed => &mut self.unattributed,
                    Attribution::Forwarded => &mut self.forwarded,
                };
                to.add(side, packet.ip_len);
                return;
            }
            self.flows.remove(&key);
            self.ask(key, now_ms);
        }
        let waiting = self.pending.entry(key).or_insert_with(|| {
            self.stats.flows += 1;
            self.stats.lookups_requested += 1;
            self.to_resolve.push(key);
            Waiting::asked_at(now_ms)
        });
        waiting.last_seen_ms = now_ms;
        // A SYN (retransmitted) while the answer is pending asks nothing more: the answer
        // will be about this connection.
        if matches!(packet.tcp, TcpSignal::Ends) {
            waiting.ended = true;
        }
        waiting.held.add(side, packet.ip_len);
    }

    /// Hands a flow known before (to this table) to the resolver again.
    fn ask(&mut self, key: StoredKey, now_ms: u64) {
        self.stats.lookups_requested += 1;
        self.to_resolve.push(key);
        self.pending.insert(key, Waiting::asked_at(now_ms));
    }

    pub fn has_lookups(&self) -> bool {
        !self.to_resolve.is_empty()
    }

    /// Flows the resolver should look up; each is handed out once.
    pub fn take_lookups(&mut self) -> Vec<FlowKey> {
        // Taken, not drained: a burst of new flows would otherwise keep its capacity for good.
        std::mem::take(&mut self.to_resolve)
            .into_iter()
            .map(|k| k.flow_key())
            .collect()
    }

    /// The resolver's answer for a flow: its held bytes go to the owner, to `unattributed`, or
    /// to `forwarded`.
    pub fn resolved(&mut self, key: &FlowKey, resolution: impl Into<Resolution>) {
        let key = StoredKey::from(key);
        let Some(waiting) = self.pending.remove(&key) else {
            // Answered already, or timed out: a late answer changes nothing.
            return;
        };
        let resolution = resolution.into();
        match resolution {
            Resolution::Process(owner) => {
                self.by_owner.entry(owner).or_default().merge(&waiting.held);
                self.stats.resolved += 1;
            }
            Resolution::Unattributed => {
                self.unattributed.merge(&waiting.held);
                self.stats.unresolved += 1;
            }
            Resolution::Forwarded => {
                self.forwarded.merge(&waiting.held);
                self.stats.resolved += 1;
            }
        }
        let entry = Entry::new(resolution, Tick::at(waiting.last_seen_ms), waiting.ended);
        self.flows.insert(key, entry);
    }

    /// Gives up on flows the resolver did not answer in time, at every call; forgets idle
    /// flows and gives memory back at most every `IDLE_SCAN_EVERY_MS`.
    pub fn expire(&mut self, now_ms: u64) {
        self.expire_pending(now_ms);
        if now_ms >= self.next_idle_scan_ms {
            self.next_idle_scan_ms = now_ms.saturating_add(IDLE_SCAN_EVERY_MS);
            self.forget_idle(now_ms);
            shrink_mostly_empty(&mut self.flows);
            shrink_mostly_empty(&mut self.pending);
            rebuild_when_crowded(&mut self.flows);
            rebuild_when_crowded(&mut self.pending);
        }
    }

    /// Flows waiting longer than the pending timeout become unattributed. Pending flows are
    /// never forgotten for being idle: their bytes must land somewhere.
    fn expire_pending(&mut self, now_ms: u64) {
        let timeout = self.pending_timeout_ms;
        let flows = &mut self.flows;
        let unattributed = &mut self.unattributed;
        let stats = &mut self.stats;
        self.pending.retain(|key, waiting| {
            if now_ms.saturating_sub(waiting.asked_ms) < timeout {
                return true;
            }
            unattributed.merge(&waiting.held);
            stats.unresolved += 1;
            let entry = Entry::new(
                Resolution::Unattributed,
                Tick::at(waiting.last_seen_ms),
                waiting.ended,
            );
            flows.insert(*key, entry);
            false
        });
    }

    fn forget_idle(&mut self, now_ms: u64) {
        let now = Tick::at(now_ms);
        let (idle, unattributed, ended) = (
            self.idle_timeout_ms,
            self.unattributed_timeout_ms,
            self.ended_timeout_ms,
        );
        self.flows.retain(|_, entry| {
            let mut timeout = match entry.attribution {
                Attribution::Unattributed => unattributed,
                Attribution::Process | Attribution::Forwarded => idle,
            };
            if entry.ended {
                timeout = timeout.min(ended);
            }
            entry.last_seen.quiet_until(now) < timeout
        });
    }

    /// Traffic per process since the last [`take_by_owner`](Self::take_by_owner).
    pub fn by_owner(&self) -> &HashMap<Owner, Traffic> {
        &self.by_owner
    }

    /// Hands over the traffic credited to processes since the last call. Handing over deltas
    /// keeps the table's memory bounded by the processes active in one interval, however many
    /// come and go.
    pub fn take_by_owner(&mut self) -> HashMap<Owner, Traffic> {
        std::mem::take(&mut self.by_owner)
    }

    pub fn unattributed(&self) -> Traffic {
        self.unattributed
    }

    /// Copies that belong to no local socket of any namespace.
    pub fn forwarded(&self) -> Traffic {
        self.forwarded
    }

    /// Bytes waiting for the resolver.
    pub fn pending(&self) -> Traffic {
        let mut sum = Traffic::default();
        for waiting in self.pending.values() {
            sum.merge(&waiting.held);
        }
        sum
    }

    pub fn stats(&self) -> FlowStats {
        self.stats
    }

    pub fn tracked_flows(&self) -> usize {
        self.flows.len() + self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Loopback;
    impl LocalAddresses for Loopback {
        fn is_local(&self, ip: &IpAddr) -> bool {
            ip.is_loopback()
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn packet(direction: Direction, src: &str, dst: &str, ip_len: u32) -> FlowPacket {
        FlowPacket {
            direction,
            transport: Transport::Tcp,
            src: addr(src),
            dst: addr(dst),
            ip_len,
            ifindex: 1,
            tcp: TcpSignal::Data,
        }
    }

    const A: Owner = Owner {
        pid: 10,
        starttime: 1,
    };
    const B: Owner = Owner {
        pid: 20,
        starttime: 2,
    };

    fn key(local: &str, remote: &str) -> FlowKey {
        FlowKey {
            netns: NetnsId::HOST,
            transport: Transport::Tcp,
            local: addr(local),
            remote: addr(remote),
        }
    }

    #[test]
    fn loopback_credits_each_side_once() {
        let mut t = FlowTable::new(5000, 60_000);
        // On `any`, libpcap shows a loopback packet once, arriving; an outgoing copy, if any,
        // is skipped.
        let out = packet(Direction::Outgoing, "127.0.0.1:5000", "127.0.0.1:80", 1500);
        let inc = packet(Direction::Incoming, "127.0.0.1:5000", "127.0.0.1:80", 1500);
        t.account(&out, &Loopback, 0);
        t.account(&inc, &Loopback, 0);
        assert_eq!(t.stats().loopback_copies_skipped, 1);
        let lookups = t.take_lookups();
        assert_eq!(
            lookups,
            [
                key("127.0.0.1:80", "127.0.0.1:5000"),
                key("127.0.0.1:5000", "127.0.0.1:80")
            ]
        );
        assert_eq!(t.pending().bytes(), 3000, "held until resolved");
        t.resolved(&lookups[1], Some(A));
        t.resolved(&lookups[0], Some(B));
        assert_eq!(t.by_owner()[&A].tx_bytes, 1500);
        assert_eq!(t.by_owner()[&A].rx_bytes, 0);
        assert_eq!(t.by_owner()[&B].rx_bytes, 1500);
        assert_eq!(t.by_owner()[&B].rx_packets, 1);
        // Later packets go straight to the owners.
        t.account(&inc, &Loopback, 1);
        assert_eq!(t.by_owner()[&A].tx_packets, 2);
        assert_eq!(t.by_owner()[&B].rx_packets, 2);
        assert!(t.take_lookups().is_empty(), "each flow is looked up once");
    }

    #[test]
    fn unknown_direction_uses_local_addresses() {
        let mut t = FlowTable::new(5000, 60_000);
        // Captured on `lo` itself (Ethernet framing, no direction): both ends are local.
        t.account(
            &packet(Direction::Unknown, "127.0.0.1:1", "127.0.0.1:2", 100),
            &Loopback,
            0,
        );
        assert_eq!(t.take_lookups().len(), 2);
        // Neither end local: nobody's socket, passing through.
        t.account(
            &packet(Direction::Unknown, "10.0.0.1:1", "10.0.0.2:2", 100),
            &Loopback,
            0,
        );
        assert_eq!(t.forwarded().rx_bytes, 100);
        assert_eq!(t.unattributed(), Traffic::default());
        assert!(t.take_lookups().is_empty());
    }

    /// The host: 10.9.0.1 on a veth to namespace 1 (10.9.0.2) and on a bridge whose ports lead
    /// to namespaces 2 and 3; loopback.
    struct Host;
    impl LocalAddresses for Host {
        fn is_local(&self, ip: &IpAddr) -> bool {
            ip.is_loopback() || *ip == "10.9.0.1".parse::<IpAddr>().unwrap()
        }
    }

    const N1: NetnsId = NetnsId(1);
    const N2: NetnsId = NetnsId(2);

    fn veth(peer: NetnsId) -> Vantage<'static> {
        Vantage {
            host: &Host,
            host_side: true,
            peer: Some((peer, None)),
        }
    }

    fn bridge_port(peer: NetnsId) -> Vantage<'static> {
        Vantage {
            host_side: false,
            ..veth(peer)
        }
    }

    fn resolve_all(t: &mut FlowTable) -> Vec<FlowKey> {
        let keys = t.take_lookups();
        for k in &keys {
            let owner = Owner {
                pid: k.netns.0 * 100 + u32::from(k.local.port() % 100),
                starttime: 1,
            };
            t.resolved(k, Some(owner));
        }
        keys
    }

    fn owner(netns: NetnsId, port: u16) -> Owner {
        Owner {
            pid: netns.0 * 100 + u32::from(port % 100),
            starttime: 1,
        }
    }

    #[test]
    fn a_veth_credits_the_host_and_the_namespace_once_each() {
        let mut t = FlowTable::new(5000, 60_000);
        // Host client 10.9.0.1:41 -> server 10.9.0.2:80 in namespace 1, and the answer.
        let to_ns = packet(Direction::Outgoing, "10.9.0.1:41", "10.9.0.2:80", 1000);
        let from_ns = packet(Direction::Incoming, "10.9.0.2:80", "10.9.0.1:41", 60);
        t.account_seen(&to_ns, &veth(N1), 0);
        t.account_seen(&from_ns, &veth(N1), 0);
        let keys = resolve_all(&mut t);
        assert_eq!(keys.len(), 2, "one flow per endpoint: {keys:?}");
        assert!(keys.contains(&FlowKey {
            netns: N1,
            ..key("10.9.0.2:80", "10.9.0.1:41")
        }));
        assert!(keys.contains(&key("10.9.0.1:41", "10.9.0.2:80")));
        let client = t.by_owner()[&owner(NetnsId::HOST, 41)];
        let server = t.by_owner()[&owner(N1, 80)];
        assert_eq!((client.tx_bytes, client.rx_bytes), (1000, 60));
        assert_eq!((server.rx_bytes, server.tx_bytes), (1000, 60));
        assert_eq!(t.forwarded(), Traffic::default());
        assert_eq!(t.stats().namespace_credits, 2);
    }

    #[test]
    fn a_bridge_and_its_port_count_each_endpoint_once() {
        let mut t = FlowTable::new(5000, 60_000);
        // Host 10.9.0.1 on the bridge -> 10.9.0.3:80 in namespace 2 behind a bridge port: the
        // packet shows on the bridge and on the port.
        let p = packet(Direction::Outgoing, "10.9.0.1:42", "10.9.0.3:80", 1000);
        t.account_seen(&p, &Vantage::host(&Host), 0);
        t.account_seen(&p, &bridge_port(N2), 0);
        // Namespace 3 -> namespace 2 across the bridge: in at one port (where a frame for
        // another port's MAC address is "for another host"), out at the other.
        let q = packet(Direction::OtherHost, "10.9.0.4:43", "10.9.0.3:81", 500);
        let q_out = FlowPacket {
            direction: Direction::Outgoing,
            ..q
        };
        t.account_seen(&q, &bridge_port(NetnsId(3)), 0);
        t.account_seen(&q_out, &bridge_port(N2), 0);
        resolve_all(&mut t);
        assert_eq!(t.by_owner()[&owner(NetnsId::HOST, 42)].tx_bytes, 1000);
        assert_eq!(t.by_owner()[&owner(N2, 80)].rx_bytes, 1000);
        assert_eq!(t.by_owner()[&owner(NetnsId(3), 43)].tx_bytes, 500);
        assert_eq!(t.by_owner()[&owner(N2, 81)].rx_bytes, 500);
        let all: u64 = t.by_owner().values().map(Traffic::bytes).sum();
        assert_eq!(all, 3000, "each endpoint once");
        assert_eq!(t.forwarded(), Traffic::default());
    }

    #[test]
    fn routed_between_namespaces_is_forwarded_by_the_host() {
        let mut t = FlowTable::new(5000, 60_000);
        // Namespace 1 (10.9.0.2) -> namespace 2 (10.8.0.2), routed by the host: in on veth 1,
        // out on veth 2.
        let p = packet(Direction::Incoming, "10.9.0.2:44", "10.8.0.2:80", 1000);
        t.account_seen(&p, &veth(N1), 0);
        let out = FlowPacket {
            direction: Direction::Outgoing,
            ..p
        };
        t.account_seen(&out, &veth(N2), 0);
        resolve_all(&mut t);
        assert_eq!(t.by_owner()[&owner(N1, 44)].tx_bytes, 1000);
        assert_eq!(t.by_owner()[&owner(N2, 80)].rx_bytes, 1000);
        assert!(!t.by_owner().contains_key(&owner(NetnsId::HOST, 44)));
        let forwarded = t.forwarded();
        assert_eq!((forwarded.rx_bytes, forwarded.tx_bytes), (1000, 1000));
        assert_eq!(t.unattributed(), Traffic::default());
        // Promiscuous copies of other hosts' traffic are nobody's here either.
        t.account(
            &packet(Direction::OtherHost, "10.7.0.1:1", "10.7.0.2:2", 70),
            &Host,
            0,
        );
        assert_eq!(t.forwarded().rx_bytes, 1070);
    }

    #[test]
    fn a_natted_flow_is_forwarded() {
        let mut t = FlowTable::new(5000, 60_000);
        // Masqueraded on the way out: the host's address, a port no socket has.
        let out = packet(Direction::Outgoing, "10.9.0.1:61000", "10.7.0.9:80", 1000);
        let back = packet(Direction::Incoming, "10.7.0.9:80", "10.9.0.1:61000", 60);
        t.account(&out, &Host, 0);
        t.account(&back, &Host, 0);
        let keys = t.take_lookups();
        assert_eq!(keys.len(), 1);
        t.resolved(&keys[0], Resolution::Forwarded);
        t.account(&out, &Host, 1);
        let forwarded = t.forwarded();
        assert_eq!((forwarded.tx_bytes, forwarded.rx_bytes), (2000, 60));
        assert_eq!(t.unattributed(), Traffic::default());
        assert!(t.by_owner().is_empty());
    }

    #[test]
    fn equal_addresses_in_two_namespaces_are_two_flows() {
        let mut t = FlowTable::new(5000, 60_000);
        let p = packet(Direction::Outgoing, "10.9.0.1:45", "10.9.0.2:80", 100);
        t.account_seen(&p, &bridge_port(N1), 0);
        t.account_seen(&p, &bridge_port(N2), 0);
        let keys = t.take_lookups();
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0].netns, keys[1].netns);
        assert_eq!(keys[0].local, keys[1].local);
    }

    #[test]
    fn without_direction_a_namespace_is_told_by_its_addresses() {
        let mut t = FlowTable::new(5000, 60_000);
        let inside: HashSet<IpAddr> = ["10.9.0.2".parse().unwrap()].into();
        let vantage = Vantage {
            host: &Host,
            host_side: true,
            peer: Some((N1, Some(&inside))),
        };
        t.account_seen(
            &packet(Direction::Unknown, "10.9.0.2:80", "10.9.0.1:46", 100),
            &vantage,
            0,
        );
        resolve_all(&mut t);
        assert_eq!(t.by_owner()[&owner(N1, 80)].tx_bytes, 100);
        assert_eq!(t.by_owner()[&owner(NetnsId::HOST, 46)].rx_bytes, 100);
    }

    #[test]
    fn unresolvable_and_late_flows_go_to_unattributed() {
        let mut t = FlowTable::new(5000, 60_000);
        let p = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
        t.account(&p, &Loopback, 0);
        t.account(&p, &Loopback, 10);
        let lookups = t.take_lookups();
        t.resolved(&lookups[0], None);
        assert_eq!(t.unattributed().tx_bytes, 120);
        t.account(&p, &Loopback, 20);
        assert_eq!(t.unattributed().tx_packets, 3);

        let q = packet(Direction::Incoming, "192.0.2.7:7", "127.0.0.1:8", 40);
        t.account(&q, &Loopback, 100);
        t.expire(4000);
        assert_eq!(t.pending().bytes(), 40, "not timed out yet");
        t.expire(5100);
        assert_eq!(t.pending().bytes(), 0);
        assert_eq!(t.unattributed().rx_bytes, 40);
        assert_eq!(t.stats().unresolved, 2);
        // A late answer changes nothing.
        t.resolved(&key("127.0.0.1:8", "192.0.2.7:7"), Some(A));
        assert!(t.by_owner().is_empty());
    }

    #[test]
    fn every_byte_is_somewhere() {
        let mut t = FlowTable::new(5000, 1000);
        let mut sent = 0u64;
        for i in 0..200u32 {
            // To a remote host: one local endpoint per packet.
            let p = packet(
                if i % 2 == 0 {
                    Direction::Outgoing
                } else {
                    Direction::Incoming
                },
                &format!("127.0.0.1:{}", 1000 + i % 7),
                "192.0.2.1:80",
                100 + i,
            );
            let p = if p.direction == Direction::Incoming {
                FlowPacket {
                    src: p.dst,
                    dst: p.src,
                    ..p
                }
            } else {
                p
            };
            t.account(&p, &Loopback, u64::from(i) * 10);
            sent += u64::from(100 + i);
            if i % 13 == 0 {
                for (n, k) in t.take_lookups().into_iter().enumerate() {
                    t.resolved(&k, (n % 3 != 0).then_some(A));
                }
            }
            t.expire(u64::from(i) * 10);
        }
        t.account_unattributable(Direction::Incoming, 84);
        sent += 84;
        let owned: u64 = t.by_owner().values().map(Traffic::bytes).sum();
        assert_eq!(owned + t.unattributed().bytes() + t.pending().bytes(), sent);
    }

    #[test]
    fn ended_tcp_flows_are_forgotten_sooner() {
        let mut t = FlowTable::new(5000, 120_000);
        let data = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
        let fin = FlowPacket {
            tcp: TcpSignal::Ends,
            ..data
        };
        let other = packet(Direction::Outgoing, "127.0.0.1:3", "192.0.2.1:2", 60);
        t.account(&data, &Loopback, 0);
        t.account(&other, &Loopback, 0);
        for k in t.take_lookups() {
            t.resolved(&k, Some(A));
        }
        t.account(&fin, &Loopback, 1000);
        // A half-closed connection may go on sending: quiet time counts, not the FIN's age.
        t.account(&data, &Loopback, 5000);
        t.expire(9999);
        assert_eq!(t.tracked_flows(), 2, "quiet for 4.999 s");
        // Idle flows are looked for once a second: 5 s quiet at 10_000, forgotten at 10_999.
        t.expire(10_000);
        assert_eq!(t.tracked_flows(), 2, "no scan within a second of the last");
        t.expire(10_999);
        assert_eq!(
            t.tracked_flows(),
            1,
            "the ended flow is gone, the open one stays"
        );
        t.expire(119_999);
        assert_eq!(t.tracked_flows(), 1);
        assert_eq!(t.by_owner()[&A].tx_bytes, 240);
    }

    #[test]
    fn a_new_connection_on_a_reused_port_is_asked_again() {
        let mut t = FlowTable::new(5000, 120_000);
        let data = packet(Direction::Outgoing, "127.0.0.1:50000", "192.0.2.1:80", 100);
        let syn = FlowPacket {
            tcp: TcpSignal::Opens,
            ..data
        };
        t.account(&syn, &Loopback, 0);
        t.account(&data, &Loopback, 0);
        let k = t.take_lookups();
        assert_eq!(k.len(), 1);
        t.resolved(&k[0], Some(A));
        // The same 4-tuple opened again (by whichever process got the port now).
        t.account(&syn, &Loopback, 600);
        let again = t.take_lookups();
        assert_eq!(again, k, "looked up again");
        assert_eq!(t.pending().bytes(), 100, "held until answered");
        t.resolved(&again[0], Some(B));
        t.account(&data, &Loopback, 601);
        assert_eq!(
            t.by_owner()[&A].tx_bytes,
            200,
            "the old connection's bytes stay"
        );
        assert_eq!(t.by_owner()[&B].tx_bytes, 200);
        // A retransmitted SYN while the answer is pending asks nothing more.
        t.account(&syn, &Loopback, 700);
        t.account(&syn, &Loopback, 701);
        assert_eq!(t.take_lookups().len(), 1);
    }

    #[test]
    fn idle_flows_are_forgotten_and_asked_again() {
        let mut t = FlowTable::new(5000, 1000);
        let p = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
        t.account(&p, &Loopback, 0);
        let k = t.take_lookups();
        t.resolved(&k[0], Some(A));
        t.expire(2000);
        assert_eq!(t.tracked_flows(), 0);
        t.account(&p, &Loopback, 2001);
        assert_eq!(
            t.take_lookups().len(),
            1,
            "a reused 4-tuple may have a new owner"
        );
        assert_eq!(t.by_owner()[&A].tx_bytes, 60, "what it had stays");
    }

    fn resolve_as(t: &mut FlowTable, resolution: Resolution) {
        for k in t.take_lookups() {
            t.resolved(&k, resolution);
        }
    }

    /// The stored flow is what memory scales with: 100,000 flows take 131,072 buckets, so each
    /// byte of it is 128 KiB, and the plugin's whole budget is 16 MiB. 44 + 20 bytes, 4-aligned:
    /// no padding between key and entry.
    #[test]
    fn a_stored_flow_stays_small() {
        use std::mem::{align_of, size_of};
        assert!(size_of::<StoredKey>() <= 44, "{}", size_of::<StoredKey>());
        assert!(size_of::<Entry>() <= 20, "{}", size_of::<Entry>());
        assert!(align_of::<(StoredKey, Entry)>() <= 4);
        assert!(size_of::<(StoredKey, Entry)>() <= 64);
    }

    #[test]
    fn a_stored_key_gives_back_the_flow_key() {
        let keys = [
            key("127.0.0.1:1", "192.0.2.1:65535"),
            FlowKey {
                netns: NetnsId(u32::MAX),
                transport: Transport::Udp,
                ..key("[2001:db8::1]:53", "[fe80::1]:5353")
            },
            // Not seen on the wire, but two flows all the same.
            key("[::ffff:127.0.0.1]:1", "192.0.2.1:65535"),
            key("127.0.0.1:1", "[::ffff:192.0.2.1]:65535"),
        ];
        for k in &keys {
            assert_eq!(StoredKey::from(k).flow_key(), *k);
        }
        let stored: HashSet<StoredKey> = keys.iter().map(StoredKey::from).collect();
        assert_eq!(stored.len(), keys.len());
        let owner = Owner {
            pid: u32::MAX,
            starttime: u64::MAX - 1,
        };
        let entry = Entry::new(Resolution::Process(owner), Tick(0), false);
        assert_eq!(entry.owner(), owner);
    }

    #[test]
    fn nobodys_flows_are_asked_again_sooner_than_owned_ones() {
        let mut t = FlowTable::new(5000, 30_000);
        let mine = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
        let natted = packet(Direction::Outgoing, "127.0.0.1:3", "192.0.2.1:2", 60);
        let nobodys = packet(Direction::Outgoing, "127.0.0.1:4", "192.0.2.1:2", 60);
        t.account(&mine, &Loopback, 0);
        resolve_as(&mut t, Resolution::Process(A));
        t.account(&natted, &Loopback, 0);
        resolve_as(&mut t, Resolution::Forwarded);
        t.account(&nobodys, &Loopback, 0);
        resolve_as(&mut t, Resolution::Unattributed);
        t.expire(4999);
        assert_eq!(t.tracked_flows(), 3);
        t.expire(5999);
        assert_eq!(t.tracked_flows(), 2, "nobody's flow is forgotten after 5 s");
        t.account(&nobodys, &Loopback, 6000);
        let again = t.take_lookups();
        assert_eq!(again.len(), 1, "and asked again");
        // The socket's process is known by now.
        t.resolved(&again[0], Some(B));
        assert_eq!(t.by_owner()[&B].tx_bytes, 60);
        t.expire(29_999);
        assert_eq!(t.tracked_flows(), 3);
        t.expire(30_999);
        assert_eq!(t.tracked_flows(), 1, "owned flows go after 30 s quiet");
        t.account(&nobodys, &Loopback, 31_000);
        assert_eq!(t.by_owner()[&B].tx_bytes, 120);
    }

    #[test]
    fn pending_flows_time_out_between_idle_scans() {
        let mut t = FlowTable::new(5000, 30_000);
        t.expire(4_990);
        let p = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
        t.account(&p, &Loopback, 5);
        t.expire(5_004);
        assert_eq!(t.pending().bytes(), 60);
        t.expire(5_005);
        assert_eq!(t.pending().bytes(), 0, "checked at every call");
        assert_eq!(t.unattributed().tx_bytes, 60);
    }

    #[test]
    fn the_clock_may_pass_2_to_the_32_ms() {
        let start = (1u64 << 32) - 500;
        let mut t = FlowTable::new(5000, 30_000);
        let p = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
        t.account(&p, &Loopback, start);
        resolve_as(&mut t, Resolution::Process(A));
        t.expire(start + 29_999);
        assert_eq!(t.tracked_flows(), 1);
        t.expire(start + 30_999);
        assert_eq!(t.tracked_flows(), 0);
    }

    /// Flows keyed by a counter: 127.0.0.1:port to 192.0.2.x:80.
    fn many_flows(t: &mut FlowTable, n: u32, now_ms: u64) {
        for i in 0..n {
            let p = FlowPacket {
                src: SocketAddr::from(([127, 0, 0, 1], (i % 60_000) as u16 + 1)),
                dst: SocketAddr::from(([192, 0, 2, (i / 60_000) as u8], 80)),
                ..packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60)
            };
            t.account(&p, &Loopback, now_ms);
        }
    }

    #[test]
    fn memory_is_given_back_after_a_burst() {
        let mut t = FlowTable::new(5000, 30_000);
        many_flows(&mut t, 20_000, 0);
        let pending_capacity = t.pending.capacity();
        assert!(pending_capacity >= 20_000);
        resolve_as(&mut t, Resolution::Process(A));
        t.expire(1);
        assert!(t.pending.capacity() <= 2048, "answered");
        let capacity = t.flows.capacity();
        assert!(capacity >= 20_000);
        // A few flows stay busy.
        many_flows(&mut t, 100, 29_000);
        t.expire(30_000);
        assert_eq!(t.tracked_flows(), 100);
        assert!(
            t.flows.capacity() <= 2048,
            "{} of {capacity}",
            t.flows.capacity()
        );
        // A table in steady use is left alone.
        many_flows(&mut t, 600, 30_500);
        resolve_as(&mut t, Resolution::Process(A));
        let steady = t.flows.capacity();
        t.expire(31_000);
        assert_eq!(t.flows.capacity(), steady);
    }

    /// Memory per flow and what an idle scan costs, printed:
    /// `cargo test --release --lib net::flows::tests::footprint -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn footprint() {
        use std::time::Instant;
        let n = 60_000;
        let mut t = FlowTable::new(5000, 30_000);
        many_flows(&mut t, n, 0);
        resolve_as(&mut t, Resolution::Process(A));
        let size = std::mem::size_of::<(StoredKey, Entry)>();
        let capacity = t.flows.capacity();
        // hashbrown: a power of two of buckets, 7/8 of them usable; one control byte each.
        let buckets = (capacity * 8 / 7).next_power_of_two();
        let bytes = buckets * (size + 1);
        println!(
            "{n} flows: {size} B stored, capacity {capacity}, {buckets} buckets, {bytes} B: \
             {:.0} B per flow",
            bytes as f64 / f64::from(n)
        );
        for n in [60_000, 200_000] {
            let mut t = FlowTable::new(5000, 30_000);
            many_flows(&mut t, n, 0);
            resolve_as(&mut t, Resolution::Process(A));
            t.expire(0);
            let started = Instant::now();
            t.expire(1);
            let between = started.elapsed();
            let started = Instant::now();
            t.expire(1000);
            let scan = started.elapsed();
            println!("{n} flows: expire {between:?} between scans, {scan:?} with an idle scan");
        }
    }
}

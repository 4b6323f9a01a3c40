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
//! Storage: a busy host has 100,000 flows and more in the last half minute, so the per-flow
//! cost is what counts. A flow is stored under a compact key (44 bytes, against the 72 of a
//! [`FlowKey`], which the resolver still gets) with only what the packet path needs. Three
//! maps, each with its bound ([`FlowLimits`], from the `MaxFlows` option):
//! - flows with an owner (a process, or forwarded): 64 bytes a flow, ~140 with the map's
//!   spare room;
//! - flows credited to `unattributed` ("ownerless"): a flood of flows nobody owns (a scan,
//!   spoofed sources, a SYN flood to a closed port) lands here and never crowds out the owned
//!   ones. When full, the flows quiet for a second are forgotten, then, if that was not
//!   enough, every other one: a forgotten flow's next packet only asks again;
//! - flows waiting for the resolver, with their held bytes. When full, a new flow is not
//!   asked: it is *shed*, its bytes go to `unattributed` and are counted in [`FlowTable::shed`]
//!   too, so the totals still add up. So is a flow the resolver's queue had no room for
//!   ([`FlowTable::not_asked`]), and a resolved one the owned map has no room for.
//!
//! Second chances: a flow whose owner was not found in time (the resolver gave up, no answer
//! within the pending timeout, or shed) may have one: while it carries traffic it is asked
//! again after 1 s, then 2, 4, 8 and every 16 s, and once an answer names its owner its later
//! bytes go to it. A flow with no socket at all is not asked again.
//!
//! Reuse: a socket's 4-tuple or port can be another process's a moment later. A TCP
//! connection opens with a SYN, which asks again. For UDP the resolver hears of every
//! destroyed socket ([`crate::net::closed_sockets`]) and the table forgets the flows of its
//! endpoint ([`FlowTable::forget_closed`]); and a packet *sent* from an endpoint found with no
//! socket asks again, since it proves a socket exists now.
//!
//! Expiry: a flow is forgotten once quiet for a while and a later packet asks the resolver
//! again, which also catches a 4-tuple reused by another process. How long depends on what
//! forgetting risks: a flow with an owner, 30 s (asking again is ~40 µs on the resolver's
//! thread; keeping it longer only keeps dead connections); an ownerless flow, or an ended TCP
//! connection, 5 s (the answer may differ next time; the connection is over). Waiting flows
//! are never forgotten, only given up on after the pending timeout. Their small map is checked
//! at every housekeeping round; the others are scanned once a second (a scan of 200,000 flows
//! costs a fraction of a millisecond: every 50 ms that was a few percent of a core), and
//! shrunk when mostly empty, so a burst of flows does not keep its memory for good.

use super::packet::{Direction, FlowPacket, TcpSignal};
use crate::maps::{rebuild_when_crowded, shrink_mostly_empty};
use crate::net::closed_sockets::ClosedEndpoint;
pub use crate::net::types::{FlowKey, Resolution, Traffic};
use crate::net::types::{NetnsId, Owner, Side, Transport};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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

/// Who a known flow's packets are credited to, once the resolver has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attribution {
    /// `Entry::pid` and `Entry::starttime` say which.
    Process,
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

    /// `self` plus `ms`.
    fn after(self, ms: u32) -> Tick {
        Tick(self.0.wrapping_add(ms))
    }

    /// Whether `now` is at or past `self`, for a `self` less than 2^31 ms away.
    fn reached(self, now: Tick) -> bool {
        now.0.wrapping_sub(self.0) <= MAX_TIMEOUT_MS
    }
}

/// The longest timeout a [`Tick`] measures.
const MAX_TIMEOUT_MS: u32 = i32::MAX as u32;

/// A flow whose owner is known: a process, or nobody's but forwarded. 20 bytes, 4-aligned.
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
    fn new(attribution: Attribution, owner: Owner, last_seen: Tick, ended: bool) -> Entry {
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

/// Why a flow's packets go to `unattributed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unowned {
    /// The resolver found no socket, or one nobody holds: asking again would not help.
    Nobody,
    /// Its owner was not found in time ([`Resolution::Lost`], or no answer within the pending
    /// timeout): asked again while it carries traffic.
    NotFoundInTime,
    /// Not asked at all: the waiting flows or the resolver's queue were full, or the table of
    /// known flows was. Counted in `shed` too, and asked again like `NotFoundInTime`.
    Shed,
}

/// A flow credited to `unattributed`: 12 bytes.
#[derive(Debug, Clone, Copy)]
struct OwnerlessEntry {
    last_seen: Tick,
    /// When a flow that may have an owner is asked again, if it still carries traffic.
    ask_again: Tick,
    why: Unowned,
    /// Times asked again so far: each wait is twice the last, up to `SECOND_CHANCE_MAX_MS`.
    asked_again: u8,
    ended: bool,
}

impl OwnerlessEntry {
    fn new(why: Unowned, last_seen: Tick, ended: bool) -> OwnerlessEntry {
        OwnerlessEntry {
            last_seen,
            ask_again: last_seen.after(SECOND_CHANCE_FIRST_MS),
            why,
            asked_again: 0,
            ended,
        }
    }

    fn may_have_an_owner(&self) -> bool {
        self.why != Unowned::Nobody
    }
}

/// A flow nobody was found for in time is asked again this long after (once it carries
/// traffic), then after twice as long each time, up to [`SECOND_CHANCE_MAX_MS`]: a long-lived
/// flow is found within seconds once the index catches up, and a flow that never will costs
/// one lookup every 16 s while it lasts.
const SECOND_CHANCE_FIRST_MS: u32 = 1_000;
const SECOND_CHANCE_MAX_MS: u32 = 16_000;

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
    /// Flows not handed to the resolver, or not kept once answered, because a bound was
    /// reached: their traffic is in `unattributed` and in [`FlowTable::shed`].
    pub flows_shed: u64,
    /// Lookups of flows asked again because their owner was not found in time, and those
    /// that found it.
    pub second_chances: u64,
    pub second_chances_found: u64,
    /// Flows with an owner forgotten because their socket was destroyed.
    pub forgotten_closed: u64,
}

/// How many flows a table keeps, of each kind. A stored flow costs ~140 bytes with the map's
/// spare room, a waiting one ~200: see [`FlowLimits::from_max_flows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLimits {
    /// Flows with an owner: a process, or forwarded.
    pub owned: usize,
    /// Flows credited to `unattributed`. A flood of flows nobody owns (a scan, spoofed
    /// sources) fills this table, never the one of owned flows: the oldest are forgotten.
    pub ownerless: usize,
    /// Flows waiting for the resolver.
    pub waiting: usize,
}

/// `MaxFlows`' default: at most ~18 MiB of owned flows, ~5 MiB of ownerless ones and ~2 MiB
/// of waiting ones per capture thread.
pub const DEFAULT_MAX_FLOWS: usize = 131_072;

impl FlowLimits {
    /// `max_flows` owned flows, a quarter as many ownerless and a sixteenth as many waiting
    /// (with floors that keep a tiny setting usable).
    pub fn from_max_flows(max_flows: usize) -> FlowLimits {
        FlowLimits {
            owned: max_flows,
            ownerless: (max_flows / 4).max(1024),
            waiting: (max_flows / 16).max(256),
        }
    }
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits::from_max_flows(DEFAULT_MAX_FLOWS)
    }
}

/// A flow for the resolver: who owns its local endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    pub key: FlowKey,
    /// Its packet that asked was received by the local endpoint, not sent from it (see
    /// [`crate::net::types::Request::Lookup`]).
    pub received: bool,
    /// Its packet opened a TCP connection (a SYN): see
    /// [`crate::net::types::Request::Lookup`].
    pub opens: bool,
}

pub struct FlowTable {
    /// Flows whose owner is known: a process, or forwarded.
    flows: HashMap<StoredKey, Entry>,
    /// Flows credited to `unattributed`, some of them to be asked again.
    ownerless: HashMap<StoredKey, OwnerlessEntry>,
    /// Flows waiting for the resolver.
    pending: HashMap<StoredKey, Waiting>,
    /// Flows to look up, with whether their packet was received and opened a connection.
    to_resolve: Vec<(StoredKey, bool, bool)>,
    by_owner: HashMap<Owner, Traffic>,
    unattributed: Traffic,
    forwarded: Traffic,
    /// The part of `unattributed` that is there because a bound was reached.
    shed: Traffic,
    stats: FlowStats,
    limits: FlowLimits,
    /// How long a flow may wait for its owner before its bytes go to `unattributed`.
    pending_timeout_ms: u64,
    /// Flows with an owner (a process, or `forwarded`) quiet this long are forgotten.
    idle_timeout_ms: u32,
    /// Ownerless flows quiet this long are forgotten.
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

/// A full ownerless table first forgets the flows quiet this long.
const OWNERLESS_QUIET_MS: u32 = 1_000;

impl FlowTable {
    /// A table with the default [`FlowLimits`]. Timeouts are capped at 2^31 ms (24.8 days),
    /// the longest a `Tick` measures.
    pub fn new(pending_timeout_ms: u64, idle_timeout_ms: u64) -> Self {
        Self::with_limits(pending_timeout_ms, idle_timeout_ms, FlowLimits::default())
    }

    pub fn with_limits(pending_timeout_ms: u64, idle_timeout_ms: u64, limits: FlowLimits) -> Self {
        let capped =
            |ms: u64| u32::try_from(ms).map_or(MAX_TIMEOUT_MS, |ms| ms.min(MAX_TIMEOUT_MS));
        let idle_timeout_ms = capped(idle_timeout_ms);
        FlowTable {
            flows: HashMap::new(),
            ownerless: HashMap::new(),
            pending: HashMap::new(),
            to_resolve: Vec::new(),
            by_owner: HashMap::new(),
            unattributed: Traffic::default(),
            forwarded: Traffic::default(),
            shed: Traffic::default(),
            stats: FlowStats::default(),
            limits,
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
        // A client opening a connection on a 4-tuple this table still holds: ports come round
        // again within a second under churn, and the new connection may be another process's.
        // Ask again rather than credit the old owner (or nobody).
        let opens = matches!(packet.tcp, TcpSignal::Opens);
        let ends = matches!(packet.tcp, TcpSignal::Ends);
        let now = Tick::at(now_ms);
        // Most packets belong to a flow whose owner is known: one lookup, no other work.
        if let Some(entry) = self.flows.get_mut(&key) {
            if !opens {
                entry.last_seen = now;
                entry.ended |= ends;
                let to = match entry.attribution {
                    Attribution::Process => self.by_owner.entry(entry.owner()).or_default(),
                    Attribution::Forwarded => &mut self.forwarded,
                };
                to.add(side, packet.ip_len);
                return;
            }
            self.flows.remove(&key);
        } else if let Some(entry) = self.ownerless.get_mut(&key) {
            // A packet sent from an endpoint found with no socket proves it has one now (its
            // port reused since, by this or another process): asked again, its bytes held,
            // at most once a second for a flow (a raw socket's forged packets prove nothing).
            let sent_from_nobody =
                entry.why == Unowned::Nobody && side == Side::Tx && entry.ask_again.reached(now);
            if !opens && !sent_from_nobody {
                entry.last_seen = now;
                entry.ended |= ends;
                self.unattributed.add(side, packet.ip_len);
                if entry.why == Unowned::Shed {
                    self.shed.add(side, packet.ip_len);
                }
                // A second chance: its bytes stay unattributed until an answer names an
                // owner, and from then on go to it.
                if entry.may_have_an_owner() && entry.ask_again.reached(now) {
                    entry.asked_again = entry.asked_again.saturating_add(1);
                    let doubled = u64::from(SECOND_CHANCE_FIRST_MS) << entry.asked_again.min(16);
                    let wait = doubled.min(u64::from(SECOND_CHANCE_MAX_MS)) as u32;
                    entry.ask_again = now.after(wait);
                    self.stats.second_chances += 1;
                    self.stats.lookups_requested += 1;
                    self.to_resolve.push((key, side == Side::Rx, false));
                }
                return;
            }
            self.ownerless.remove(&key);
        } else if let Some(waiting) = self.pending.get_mut(&key) {
            // A SYN (retransmitted) while the answer is pending asks nothing more: the answer
            // will be about this connection.
            waiting.last_seen_ms = now_ms;
            waiting.ended |= ends;
            waiting.held.add(side, packet.ip_len);
            return;
        } else {
            self.stats.flows += 1;
        }
        if self.pending.len() >= self.limits.waiting {
            // Shed: too many flows wait for the resolver already (a flood of new flows).
            self.stats.flows_shed += 1;
            self.unattributed.add(side, packet.ip_len);
            self.shed.add(side, packet.ip_len);
            self.store_ownerless(key, OwnerlessEntry::new(Unowned::Shed, now, ends));
            return;
        }
        self.stats.lookups_requested += 1;
        self.to_resolve.push((key, side == Side::Rx, opens));
        let mut waiting = Waiting::asked_at(now_ms);
        waiting.ended = ends;
        waiting.held.add(side, packet.ip_len);
        self.pending.insert(key, waiting);
    }

    pub fn has_lookups(&self) -> bool {
        !self.to_resolve.is_empty()
    }

    /// Flows the resolver should look up; each is handed out once (and once more for each
    /// second chance).
    pub fn take_lookups(&mut self) -> Vec<Lookup> {
        // Taken, not drained: a burst of new flows would otherwise keep its capacity for good.
        std::mem::take(&mut self.to_resolve)
            .into_iter()
            .map(|(key, received, opens)| Lookup {
                key: key.flow_key(),
                received,
                opens,
            })
            .collect()
    }

    /// A lookup taken from [`take_lookups`](Self::take_lookups) could not be handed to the
    /// resolver (its queue is full): a waiting flow's held bytes go to `unattributed` as shed,
    /// and the flow is asked again later like one not found in time. A second chance that
    /// could not be sent waits for its next turn.
    pub fn not_asked(&mut self, key: &FlowKey) {
        let key = StoredKey::from(key);
        let Some(waiting) = self.pending.remove(&key) else {
            return;
        };
        self.stats.flows_shed += 1;
        self.stats.unresolved += 1;
        self.unattributed.merge(&waiting.held);
        self.shed.merge(&waiting.held);
        let entry =
            OwnerlessEntry::new(Unowned::Shed, Tick::at(waiting.last_seen_ms), waiting.ended);
        self.store_ownerless(key, entry);
    }

    /// The resolver's answer for a flow: its held bytes go to the owner, to `unattributed`, or
    /// to `forwarded`. An answer to a second chance that names an owner credits the flow's
    /// later packets to it.
    pub fn resolved(&mut self, key: &FlowKey, resolution: impl Into<Resolution>) {
        let key = StoredKey::from(key);
        let resolution = resolution.into();
        let Some(waiting) = self.pending.remove(&key) else {
            self.second_answer(key, resolution);
            return;
        };
        let last_seen = Tick::at(waiting.last_seen_ms);
        let (attribution, owner) = match resolution {
            Resolution::Process(owner) => {
                self.by_owner.entry(owner).or_default().merge(&waiting.held);
                self.stats.resolved += 1;
                (Attribution::Process, owner)
            }
            Resolution::Forwarded => {
                self.forwarded.merge(&waiting.held);
                self.stats.resolved += 1;
                (Attribution::Forwarded, NOBODY)
            }
            Resolution::Unattributed | Resolution::Lost => {
                self.unattributed.merge(&waiting.held);
                self.stats.unresolved += 1;
                let why = if resolution == Resolution::Lost {
                    Unowned::NotFoundInTime
                } else {
                    Unowned::Nobody
                };
                let entry = OwnerlessEntry::new(why, last_seen, waiting.ended);
                self.store_ownerless(key, entry);
                return;
            }
        };
        self.store_owned(
            key,
            Entry::new(attribution, owner, last_seen, waiting.ended),
        );
    }

    /// An answer for a flow that was not waiting: a second chance's, or a late one (answered
    /// already, or timed out).
    fn second_answer(&mut self, key: StoredKey, resolution: Resolution) {
        let Some(entry) = self.ownerless.get_mut(&key) else {
            return;
        };
        if !entry.may_have_an_owner() {
            return;
        }
        let (attribution, owner) = match resolution {
            Resolution::Process(owner) => (Attribution::Process, owner),
            Resolution::Forwarded => (Attribution::Forwarded, NOBODY),
            // Nobody will be found: not asked again.
            Resolution::Unattributed => {
                entry.why = Unowned::Nobody;
                return;
            }
            Resolution::Lost => return,
        };
        let (last_seen, ended) = (entry.last_seen, entry.ended);
        if self.flows.len() >= self.limits.owned {
            return;
        }
        self.ownerless.remove(&key);
        self.stats.second_chances_found += 1;
        self.store_owned(key, Entry::new(attribution, owner, last_seen, ended));
    }

    /// Keeps a flow whose owner is known, if there is room; if not, its later packets are
    /// shed to `unattributed` (and it is asked again, in case room was made).
    fn store_owned(&mut self, key: StoredKey, entry: Entry) {
        if self.flows.len() < self.limits.owned || self.flows.contains_key(&key) {
            self.flows.insert(key, entry);
        } else {
            self.stats.flows_shed += 1;
            let ownerless = OwnerlessEntry::new(Unowned::Shed, entry.last_seen, entry.ended);
            self.store_ownerless(key, ownerless);
        }
    }

    /// Keeps an ownerless flow. A full table first forgets the flows quiet for a second, then,
    /// if that freed less than a quarter of it, every other flow: a flood of new flows costs a
    /// scan per quarter of the table at most, and a forgotten flow's next packet only asks
    /// again.
    fn store_ownerless(&mut self, key: StoredKey, entry: OwnerlessEntry) {
        let limit = self.limits.ownerless;
        if self.ownerless.len() >= limit && !self.ownerless.contains_key(&key) {
            let now = entry.last_seen;
            self.ownerless
                .retain(|_, e| e.last_seen.quiet_until(now) < OWNERLESS_QUIET_MS);
            if self.ownerless.len() > limit - limit / 4 {
                let mut keep = false;
                self.ownerless.retain(|_, _| {
                    keep = !keep;
                    keep
                });
            }
        }
        self.ownerless.insert(key, entry);
    }

    /// Forgets the flows with an owner whose local endpoint is one of `closed` (its socket was
    /// destroyed), or, when notifications were `missed`, every flow of a transport they
    /// cover: their next packet asks again, so a port reused by another process is credited
    /// to it rather than to the old owner. Returns how many were forgotten.
    pub fn forget_closed(&mut self, closed: &[ClosedEndpoint], missed: bool) -> usize {
        if closed.is_empty() && !missed {
            return 0;
        }
        let before = self.flows.len();
        if missed {
            // Only UDP is followed: a reused TCP 4-tuple opens with a SYN, asked again anyway.
            self.flows.retain(|key, _| key.kind & StoredKey::UDP == 0);
        } else {
            let mut by_port: HashMap<u16, Vec<&ClosedEndpoint>> = HashMap::new();
            for endpoint in closed {
                by_port.entry(endpoint.port).or_default().push(endpoint);
            }
            self.flows.retain(|key, _| {
                let Some(endpoints) = by_port.get(&key.local_port) else {
                    return true;
                };
                let flow = key.flow_key();
                !endpoints.iter().any(|e| {
                    e.covers(
                        flow.netns,
                        flow.transport,
                        flow.local.ip(),
                        flow.local.port(),
                    )
                })
            });
        }
        let forgotten = before - self.flows.len();
        self.stats.forgotten_closed += forgotten as u64;
        forgotten
    }

    /// Gives up on flows the resolver did not answer in time, at every call; forgets idle
    /// flows and gives memory back at most every `IDLE_SCAN_EVERY_MS`.
    pub fn expire(&mut self, now_ms: u64) {
        self.expire_pending(now_ms);
        if now_ms >= self.next_idle_scan_ms {
            self.next_idle_scan_ms = now_ms.saturating_add(IDLE_SCAN_EVERY_MS);
            self.forget_idle(now_ms);
            shrink_mostly_empty(&mut self.flows);
            shrink_mostly_empty(&mut self.ownerless);
            shrink_mostly_empty(&mut self.pending);
            rebuild_when_crowded(&mut self.flows);
            rebuild_when_crowded(&mut self.ownerless);
            rebuild_when_crowded(&mut self.pending);
        }
    }

    /// Flows waiting longer than the pending timeout become unattributed, to be asked again
    /// while they carry traffic. Pending flows are never forgotten for being idle: their
    /// bytes must land somewhere.
    fn expire_pending(&mut self, now_ms: u64) {
        let timeout = self.pending_timeout_ms;
        let mut expired = Vec::new();
        self.pending.retain(|key, waiting| {
            if now_ms.saturating_sub(waiting.asked_ms) < timeout {
                return true;
            }
            expired.push((*key, *waiting));
            false
        });
        for (key, waiting) in expired {
            self.unattributed.merge(&waiting.held);
            self.stats.unresolved += 1;
            let mut entry = OwnerlessEntry::new(
                Unowned::NotFoundInTime,
                Tick::at(waiting.last_seen_ms),
                waiting.ended,
            );
            // Its second chance is timed from now: it has just been given up on.
            entry.ask_again = Tick::at(now_ms).after(SECOND_CHANCE_FIRST_MS);
            self.store_ownerless(key, entry);
        }
    }

    fn forget_idle(&mut self, now_ms: u64) {
        let now = Tick::at(now_ms);
        let (idle, unattributed, ended) = (
            self.idle_timeout_ms,
            self.unattributed_timeout_ms,
            self.ended_timeout_ms,
        );
        let timeout = |base: u32, ended_flow: bool| {
            if ended_flow {
                base.min(ended)
            } else {
                base
            }
        };
        self.flows
            .retain(|_, entry| entry.last_seen.quiet_until(now) < timeout(idle, entry.ended));
        self.ownerless.retain(|_, entry| {
            entry.last_seen.quiet_until(now) < timeout(unattributed, entry.ended)
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

    /// The part of [`unattributed`](Self::unattributed) credited there because a bound was
    /// reached (flows not asked, or not kept).
    pub fn shed(&self) -> Traffic {
        self.shed
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
        self.flows.len() + self.ownerless.len() + self.pending.len()
    }

    pub fn waiting_flows(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests;

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

use super::inodes::Owner;
use super::namespaces::NetnsId;
use super::packet::{Direction, FlowPacket, TcpSignal, Transport};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowOwner {
    /// Asked the resolver, no answer yet.
    Pending {
        asked_ms: u64,
    },
    Process(Owner),
    Unattributed,
    /// No local socket: a connection the host NATs, seen with the host's address.
    Forwarded,
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

#[derive(Debug, Clone, Copy)]
struct Flow {
    owner: FlowOwner,
    held: Traffic,
    last_seen_ms: u64,
    /// A FIN or RST went by: once quiet for `ended_timeout_ms` the connection is over, and
    /// keeping it until the idle timeout would only cost memory (at 1,000 connections/s,
    /// 120 s of idle timeout is 240,000 dead flows).
    ended: bool,
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
    flows: HashMap<FlowKey, Flow>,
    to_resolve: Vec<FlowKey>,
    by_owner: HashMap<Owner, Traffic>,
    unattributed: Traffic,
    forwarded: Traffic,
    stats: FlowStats,
    /// How long a flow may wait for its owner before its bytes go to `unattributed`.
    pending_timeout_ms: u64,
    /// Flows idle this long are forgotten (a later packet asks the resolver again).
    idle_timeout_ms: u64,
    /// Ended TCP flows quiet this long are forgotten.
    ended_timeout_ms: u64,
}

/// How long an ended TCP flow is kept once quiet: long enough for the last ACK and the odd
/// retransmitted FIN, which would otherwise be looked up again (and, the socket being in
/// TIME_WAIT with no owner, end up unattributed).
const ENDED_TIMEOUT_MS: u64 = 5_000;

impl FlowTable {
    pub fn new(pending_timeout_ms: u64, idle_timeout_ms: u64) -> Self {
        FlowTable {
            flows: HashMap::new(),
            to_resolve: Vec::new(),
            by_owner: HashMap::new(),
            unattributed: Traffic::default(),
            forwarded: Traffic::default(),
            stats: FlowStats::default(),
            pending_timeout_ms,
            idle_timeout_ms,
            ended_timeout_ms: ENDED_TIMEOUT_MS.min(idle_timeout_ms),
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
        let key = FlowKey {
            netns,
            transport: packet.transport,
            local,
            remote,
        };
        if netns != NetnsId::HOST {
            self.stats.namespace_credits += 1;
        }
        let flow = self.flows.entry(key).or_insert_with(|| {
            self.stats.flows += 1;
            self.stats.lookups_requested += 1;
            self.to_resolve.push(key);
            Flow {
                owner: FlowOwner::Pending { asked_ms: now_ms },
                held: Traffic::default(),
                last_seen_ms: now_ms,
                ended: false,
            }
        });
        flow.last_seen_ms = now_ms;
        match packet.tcp {
            TcpSignal::Ends => flow.ended = true,
            // A client opening a connection on a 4-tuple this table still holds: ports come
            // round again within a second under churn, and the new connection may be another
            // process's. Ask again rather than credit the old owner.
            TcpSignal::Opens if !matches!(flow.owner, FlowOwner::Pending { .. }) => {
                flow.owner = FlowOwner::Pending { asked_ms: now_ms };
                flow.ended = false;
                self.stats.lookups_requested += 1;
                self.to_resolve.push(key);
            }
            TcpSignal::Opens | TcpSignal::Data => {}
        }
        match flow.owner {
            FlowOwner::Process(owner) => self
                .by_owner
                .entry(owner)
                .or_default()
                .add(side, packet.ip_len),
            FlowOwner::Unattributed => self.unattributed.add(side, packet.ip_len),
            FlowOwner::Forwarded => self.forwarded.add(side, packet.ip_len),
            FlowOwner::Pending { .. } => flow.held.add(side, packet.ip_len),
        }
    }

    pub fn has_lookups(&self) -> bool {
        !self.to_resolve.is_empty()
    }

    /// Flows the resolver should look up; each is handed out once.
    pub fn take_lookups(&mut self) -> Vec<FlowKey> {
        std::mem::take(&mut self.to_resolve)
    }

    /// The resolver's answer for a flow: its held bytes go to the owner, to `unattributed`, or
    /// to `forwarded`.
    pub fn resolved(&mut self, key: &FlowKey, resolution: impl Into<Resolution>) {
        let Some(flow) = self.flows.get_mut(key) else {
            return;
        };
        if !matches!(flow.owner, FlowOwner::Pending { .. }) {
            return;
        }
        let held = std::mem::take(&mut flow.held);
        match resolution.into() {
            Resolution::Process(owner) => {
                flow.owner = FlowOwner::Process(owner);
                self.by_owner.entry(owner).or_default().merge(&held);
                self.stats.resolved += 1;
            }
            Resolution::Unattributed => {
                flow.owner = FlowOwner::Unattributed;
                self.unattributed.merge(&held);
                self.stats.unresolved += 1;
            }
            Resolution::Forwarded => {
                flow.owner = FlowOwner::Forwarded;
                self.forwarded.merge(&held);
                self.stats.resolved += 1;
            }
        }
    }

    /// Gives up on flows the resolver did not answer in time and forgets idle flows.
    pub fn expire(&mut self, now_ms: u64) {
        let pending_timeout = self.pending_timeout_ms;
        let idle_timeout = self.idle_timeout_ms;
        let ended_timeout = self.ended_timeout_ms;
        let unattributed = &mut self.unattributed;
        let stats = &mut self.stats;
        self.flows.retain(|_, flow| {
            if let FlowOwner::Pending { asked_ms } = flow.owner {
                if now_ms.saturating_sub(asked_ms) >= pending_timeout {
                    unattributed.merge(&std::mem::take(&mut flow.held));
                    flow.owner = FlowOwner::Unattributed;
                    stats.unresolved += 1;
                }
            }
            let quiet = now_ms.saturating_sub(flow.last_seen_ms);
            let idle = quiet >= idle_timeout || (flow.ended && quiet >= ended_timeout);
            // Pending flows stay until answered or timed out, however idle.
            !idle || matches!(flow.owner, FlowOwner::Pending { .. })
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
        for flow in self.flows.values() {
            sum.merge(&flow.held);
        }
        sum
    }

    pub fn stats(&self) -> FlowStats {
        self.stats
    }

    pub fn tracked_flows(&self) -> usize {
        self.flows.len()
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
        assert_eq!(t.tracked_flows(), 2);
        t.expire(10_000);
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
}

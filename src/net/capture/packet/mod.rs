//! One captured frame -> what attribution needs: direction, transport, both socket addresses and
//! the IP datagram length.
//!
//! Owns the link layers the plugin captures on (Ethernet with 802.1Q/QinQ tags, Linux cooked SLL
//! and SLL2, BSD NULL/LOOP, raw IP), IPv4 (options, fragments) and IPv6 (extension headers,
//! fragments), and the TCP/UDP ports. Its rules:
//! - it runs on the capture thread for every packet, so it is pure, allocates nothing per packet
//!   and reads a handful of header fields (about 12 ns a packet on `benches/packet.rs`' mix);
//! - it trusts nothing: every read is a bounds-checked `get` on the captured bytes, so a truncated
//!   or hostile frame yields [`Parsed::Malformed`] or [`Parsed::Unattributable`], never a panic;
//! - bytes are the IP datagram length from the IP header, not the captured length, so a small
//!   snaplen (128 bytes) counts the same as a full capture and link headers never count;
//! - fragments: only the first one carries the ports, so the [`Parser`] remembers them in a small
//!   bounded table ([`super::fragments`]) and credits the later fragments to the same flow.

use super::fragments::{FragmentFlow, FragmentKey, FragmentTable};
pub use crate::net::types::Transport;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// pcap link types the plugin understands (DLT numbers: EN10MB 1, NULL 0, LOOP 108, RAW 12 and
/// 14, LINUX_SLL 113, LINUX_SLL2 276, IPV4 228, IPV6 229).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    Ethernet,
    Null,
    Loop,
    Raw,
    LinuxSll,
    LinuxSll2,
    Ipv4,
    Ipv6,
}

impl LinkType {
    /// For tests and the fuzz targets: every link type, in declaration order (the `packet` fuzz
    /// target picks one by index, so its corpus depends on this order).
    #[cfg(any(test, fuzzing))]
    pub const ALL: [LinkType; 8] = [
        LinkType::Ethernet,
        LinkType::Null,
        LinkType::Loop,
        LinkType::Raw,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::Ipv4,
        LinkType::Ipv6,
    ];

    /// The link type of a `pcap_datalink()` value, `None` for one the parser does not know.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            1 => LinkType::Ethernet,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            // 12 everywhere but OpenBSD, where it is 14.
            12 | 14 => LinkType::Raw,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            _ => return None,
        })
    }
}

/// Which way the frame went, when the link layer says so (Linux cooked capture's packet type:
/// 0 HOST / 1 BROADCAST / 2 MULTICAST = Incoming, 4 OUTGOING = Outgoing, 3 OTHERHOST =
/// OtherHost); Unknown otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Incoming,
    Outgoing,
    OtherHost,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowPacket {
    pub direction: Direction,
    pub transport: Transport,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// IP datagram length from the IP header (IPv4 total length; IPv6 40 + payload length, i.e.
    /// header + extension headers + payload), NOT the captured length and no link header. For a
    /// fragment, this fragment's datagram length.
    pub ip_len: u32,
    /// Interface index from SLL2 (0 when unknown) — later used for namespaces.
    pub ifindex: u32,
    /// What a TCP segment says of its connection: a SYN opens one (and a 4-tuple seen before
    /// may now belong to another process), a FIN or RST ends it (the flow table may forget it
    /// soon instead of after the idle timeout).
    pub tcp: TcpSignal,
}

/// See [`FlowPacket::tcp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpSignal {
    /// Data or acknowledgements, or not TCP at all.
    #[default]
    Data,
    /// SYN without ACK: a client opening a connection.
    Opens,
    /// FIN or RST.
    Ends,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// TCP or UDP with both ports known (including non-first fragments matched to their first
    /// fragment).
    Flow(FlowPacket),
    /// An IP packet that is not attributable to a TCP/UDP flow (ICMP, other protocols, a fragment
    /// whose first fragment was never seen, a truncated transport header): its bytes and
    /// direction, so they can be counted as unattributed.
    Unattributable { direction: Direction, ip_len: u32 },
    /// Not IP at all (ARP, ...): not counted.
    NotIp,
    /// Malformed or truncated below what is needed to know the IP length.
    Malformed,
}

/// Fragmented datagrams remembered at once; beyond that the oldest go first.
const FRAGMENT_CAPACITY: usize = 1024;
/// How long a first fragment's ports are kept: the kernel's own reassembly timeout.
const FRAGMENT_TTL_MS: u64 = 30_000;
/// More VLAN tags than this is no real network: stop walking (bounds the work per frame).
const MAX_VLAN_TAGS: usize = 8;
/// More IPv6 extension headers than this is not worth walking: the packet is unattributable.
const MAX_IPV6_EXTENSIONS: usize = 8;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// SLL's hardware type for netlink monitors, whose protocol field is a netlink family.
const ARPHRD_NETLINK: u16 = 824;

const PROTO_HOP_BY_HOP: u8 = 0;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ROUTING: u8 = 43;
const PROTO_FRAGMENT: u8 = 44;
const PROTO_AH: u8 = 51;
const PROTO_NO_NEXT: u8 = 59;
const PROTO_DEST_OPTS: u8 = 60;

/// A datagram length the 16-bit IPv4 total length cannot express: Linux BIG TCP then writes 0.
const MAX_IPV4_LEN: u32 = 65_535;
/// Likewise for IPv6's 16-bit payload length.
const MAX_IPV6_LEN: u32 = 40 + 65_535;

/// Turns frames into [`Parsed`], remembering first fragments across calls.
#[derive(Debug)]
pub struct Parser {
    fragments: FragmentTable,
}

impl Default for Parser {
    fn default() -> Parser {
        Parser::new()
    }
}

/// The network layer a link header announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network {
    V4,
    V6,
    /// Raw IP: the version nibble decides.
    Either,
}

/// What the link layer told, and where the IP packet starts.
struct Link<'a> {
    direction: Direction,
    ifindex: u32,
    network: Network,
    packet: &'a [u8],
}

impl Parser {
    /// A parser with an empty fragment table (the only allocation it makes).
    pub fn new() -> Parser {
        Parser {
            fragments: FragmentTable::new(FRAGMENT_CAPACITY, FRAGMENT_TTL_MS),
        }
    }

    /// `now_ms`: a monotonic clock in milliseconds supplied by the caller (for expiring fragment
    /// state without calling the clock per packet).
    pub fn parse(&mut self, link: LinkType, frame: &[u8], now_ms: u64) -> Parsed {
        let wire_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        self.parse_wire(link, frame, wire_len, now_ms)
    }

    /// [`Parser::parse`] given also the frame's length on the wire (pcap header's `len`, before
    /// snaplen truncation). It only matters for Linux BIG TCP / GSO packets over 64 KiB, whose IP
    /// header says length 0: their `ip_len` is then the wire length less the link header.
    pub fn parse_wire(
        &mut self,
        link: LinkType,
        frame: &[u8],
        wire_len: u32,
        now_ms: u64,
    ) -> Parsed {
        let link = match parse_link(link, frame) {
            Ok(link) => link,
            Err(stop) => return stop,
        };
        // Saturating: a caller passing a wire length below the captured one gets no fallback.
        let link_header =
            u32::try_from(frame.len().saturating_sub(link.packet.len())).unwrap_or(u32::MAX);
        let wire_ip_len = wire_len.saturating_sub(link_header);
        let version = link.packet.first().map(|b| b >> 4);
        match (link.network, version) {
            (Network::V4 | Network::Either, Some(4)) => self.ipv4(&link, wire_ip_len, now_ms),
            (Network::V6 | Network::Either, Some(6)) => self.ipv6(&link, wire_ip_len, now_ms),
            _ => Parsed::Malformed,
        }
    }

    fn ipv4(&mut self, link: &Link<'_>, wire_ip_len: u32, now_ms: u64) -> Parsed {
        let packet = link.packet;
        let (Some(&version_ihl), Some(total_len)) = (packet.first(), be16(packet, 2)) else {
            return Parsed::Malformed;
        };
        let header_len = usize::from(version_ihl & 0x0f) * 4;
        if header_len < 20 {
            return Parsed::Malformed;
        }
        let ip_len = if total_len == 0 && wire_ip_len > MAX_IPV4_LEN {
            wire_ip_len
        } else if usize::from(total_len) < header_len {
            return Parsed::Malformed;
        } else {
            u32::from(total_len)
        };
        let unattributable = Parsed::Unattributable {
            direction: link.direction,
            ip_len,
        };
        let Some(header) = array::<20>(packet, 0) else {
            return unattributable;
        };
        let transport = match header[9] {
            PROTO_TCP => Transport::Tcp,
            PROTO_UDP => Transport::Udp,
            _ => return unattributable,
        };
        let src = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
        let dst = Ipv4Addr::new(header[16], header[17], header[18], header[19]);
        let flags_offset = u16::from_be_bytes([header[6], header[7]]);
        let more_fragments = flags_offset & 0x2000 != 0;
        let fragment_offset = flags_offset & 0x1fff;
        let fragment = (more_fragments || fragment_offset != 0).then(|| FragmentKey {
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
            protocol: header[9],
            id: u32::from(u16::from_be_bytes([header[4], header[5]])),
        });

        let mut tcp = TcpSignal::Data;
        let ports = if fragment_offset != 0 {
            // Non-first fragment: the ports are only known from its first fragment.
            match fragment.and_then(|key| self.fragments.get(&key, now_ms)) {
                Some(f) => (f.src_port, f.dst_port),
                None => return unattributable,
            }
        } else {
            // The ports must lie inside the datagram: bytes past it are link padding.
            let datagram = packet.get(..ip_len as usize).unwrap_or(packet);
            let Some(ports) = ports(datagram, header_len) else {
                return unattributable;
            };
            if let Some(key) = fragment {
                self.remember(key, transport, ports, now_ms);
            }
            if transport == Transport::Tcp {
                tcp = tcp_signal(datagram, header_len);
            }
            ports
        };
        Parsed::Flow(FlowPacket {
            direction: link.direction,
            transport,
            src: SocketAddr::V4(SocketAddrV4::new(src, ports.0)),
            dst: SocketAddr::V4(SocketAddrV4::new(dst, ports.1)),
            ip_len,
            ifindex: link.ifindex,
            tcp,
        })
    }

    fn ipv6(&mut self, link: &Link<'_>, wire_ip_len: u32, now_ms: u64) -> Parsed {
        let packet = link.packet;
        let Some(payload_len) = be16(packet, 4) else {
            return Parsed::Malformed;
        };
        let ip_len = if payload_len != 0 {
            40 + u32::from(payload_len)
        } else {
            match zero_payload_ip_len(packet, wire_ip_len) {
                Some(len) => len,
                None => return Parsed::Malformed,
            }
        };
        let Some(header) = array::<40>(packet, 0) else {
            return Parsed::Unattributable {
                direction: link.direction,
                ip_len,
            };
        };
        let mut next = header[6];
        let unattributable = Parsed::Unattributable {
            direction: link.direction,
            ip_len,
        };
        let src = Ipv6Addr::from(array::<16>(&header[..], 8).unwrap_or_default());
        let dst = Ipv6Addr::from(array::<16>(&header[..], 24).unwrap_or_default());
        // Bytes past the datagram are link padding, not headers.
        let datagram = packet.get(..ip_len as usize).unwrap_or(packet);

        let mut offset = 40;
        let mut first_fragment = None;
        // One round per extension header, plus the one that finds the transport.
        for _ in 0..=MAX_IPV6_EXTENSIONS {
            let transport = match next {
                PROTO_TCP => Transport::Tcp,
                PROTO_UDP => Transport::Udp,
                PROTO_HOP_BY_HOP | PROTO_ROUTING | PROTO_DEST_OPTS => {
                    // Length in 8-octet units, not counting the first 8.
                    let Some([nh, len]) = array::<2>(datagram, offset) else {
                        return unattributable;
                    };
                    next = nh;
                    offset += (usize::from(len) + 1) * 8;
                    continue;
                }
                PROTO_AH => {
                    // Length in 4-octet units, not counting the first 2 (RFC 4302).
                    let Some([nh, len]) = array::<2>(datagram, offset) else {
                        return unattributable;
                    };
                    next = nh;
                    offset += (usize::from(len) + 2) * 4;
                    continue;
                }
                PROTO_FRAGMENT => {
                    let Some(fragment) = array::<8>(datagram, offset) else {
                        return unattributable;
                    };
                    let offset_flags = u16::from_be_bytes([fragment[2], fragment[3]]);
                    let key = FragmentKey {
                        src: IpAddr::V6(src),
                        dst: IpAddr::V6(dst),
                        protocol: fragment[0],
                        id: u32::from_be_bytes([
                            fragment[4],
                            fragment[5],
                            fragment[6],
                            fragment[7],
                        ]),
                    };
                    if offset_flags >> 3 != 0 {
                        // Non-first fragment: the ports are only known from its first fragment.
                        return match self.fragments.get(&key, now_ms) {
                            Some(f) => flow6(
                                link,
                                f.transport,
                                (src, f.src_port),
                                (dst, f.dst_port),
                                ip_len,
                                TcpSignal::Data,
                            ),
                            None => unattributable,
                        };
                    }
                    // Offset 0 with M clear is an atomic fragment (RFC 6946): nothing follows.
                    if offset_flags & 1 != 0 {
                        first_fragment = Some(key);
                    }
                    next = fragment[0];
                    offset += 8;
                    continue;
                }
                // ESP, no next header, ICMPv6 and everything else: no ports to see.
                _ => return unattributable,
            };
            let Some(ports) = ports(datagram, offset) else {
                return unattributable;
            };
            if let Some(key) = first_fragment {
                self.remember(key, transport, ports, now_ms);
            }
            let tcp = if transport == Transport::Tcp {
                tcp_signal(datagram, offset)
            } else {
                TcpSignal::Data
            };
            return flow6(link, transport, (src, ports.0), (dst, ports.1), ip_len, tcp);
        }
        unattributable
    }

    fn remember(&mut self, key: FragmentKey, transport: Transport, ports: (u16, u16), now: u64) {
        let flow = FragmentFlow {
            transport,
            src_port: ports.0,
            dst_port: ports.1,
        };
        self.fragments.insert(key, flow, now);
    }
}

fn flow6(
    link: &Link<'_>,
    transport: Transport,
    (src, src_port): (Ipv6Addr, u16),
    (dst, dst_port): (Ipv6Addr, u16),
    ip_len: u32,
    tcp: TcpSignal,
) -> Parsed {
    Parsed::Flow(FlowPacket {
        direction: link.direction,
        transport,
        src: SocketAddr::V6(SocketAddrV6::new(src, src_port, 0, 0)),
        dst: SocketAddr::V6(SocketAddrV6::new(dst, dst_port, 0, 0)),
        ip_len,
        ifindex: link.ifindex,
        tcp,
    })
}

/// The link header: direction, interface and where the IP packet starts; `Err` with the answer
/// when there is no IP packet to look at.
fn parse_link(link: LinkType, frame: &[u8]) -> Result<Link<'_>, Parsed> {
    let unknown = |network, packet| Link {
        direction: Direction::Unknown,
        ifindex: 0,
        network,
        packet,
    };
    match link {
        LinkType::Ethernet => {
            // Destination and source MAC, then the ethertype (or the first VLAN tag's TPID).
            let (Some(ethertype), Some(rest)) = (be16(frame, 12), frame.get(14..)) else {
                return Err(Parsed::Malformed);
            };
            let (network, packet) = ethertype_payload(ethertype, rest)?;
            Ok(unknown(network, packet))
        }
        LinkType::Null | LinkType::Loop => {
            let Some(af) = array::<4>(frame, 0) else {
                return Err(Parsed::Malformed);
            };
            let af = if link == LinkType::Loop {
                u32::from_be_bytes(af)
            } else {
                // Host byte order of the capturing machine; a value with high bits set was
                // written by a machine of the other byte order (as libpcap and Wireshark guess).
                let af = u32::from_ne_bytes(af);
                if af & 0xffff_0000 != 0 {
                    af.swap_bytes()
                } else {
                    af
                }
            };
            let network = match af {
                2 => Network::V4,
                // AF_INET6: Linux, then NetBSD/OpenBSD, FreeBSD/DragonFly, macOS.
                10 | 24 | 28 | 30 => Network::V6,
                _ => return Err(Parsed::NotIp),
            };
            Ok(unknown(network, frame.get(4..).unwrap_or_default()))
        }
        LinkType::Raw => Ok(unknown(Network::Either, frame)),
        LinkType::Ipv4 => Ok(unknown(Network::V4, frame)),
        LinkType::Ipv6 => Ok(unknown(Network::V6, frame)),
        LinkType::LinuxSll => {
            // pkttype u16, ARPHRD u16, address length u16, address 8 bytes, protocol u16.
            let Some(header) = array::<16>(frame, 0) else {
                return Err(Parsed::Malformed);
            };
            let pkttype = u16::from_be_bytes([header[0], header[1]]);
            let arphrd = u16::from_be_bytes([header[2], header[3]]);
            let protocol = u16::from_be_bytes([header[14], header[15]]);
            cooked(
                pkttype,
                arphrd,
                protocol,
                0,
                frame.get(16..).unwrap_or_default(),
            )
        }
        LinkType::LinuxSll2 => {
            // protocol u16, reserved u16, ifindex u32, ARPHRD u16, pkttype u8, address length
            // u8, address 8 bytes.
            let Some(header) = array::<20>(frame, 0) else {
                return Err(Parsed::Malformed);
            };
            let protocol = u16::from_be_bytes([header[0], header[1]]);
            let ifindex = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            let arphrd = u16::from_be_bytes([header[8], header[9]]);
            let pkttype = u16::from(header[10]);
            cooked(
                pkttype,
                arphrd,
                protocol,
                ifindex,
                frame.get(20..).unwrap_or_default(),
            )
        }
    }
}

/// Linux cooked capture (SLL and SLL2) after its header: the protocol field is the ethertype
/// (also for loopback and tunnel devices on the `any` device); values below 0x0600 are Linux's
/// own non-IP protocol numbers (802.2, CAN, ...).
fn cooked(
    pkttype: u16,
    arphrd: u16,
    protocol: u16,
    ifindex: u32,
    payload: &[u8],
) -> Result<Link<'_>, Parsed> {
    if arphrd == ARPHRD_NETLINK {
        return Err(Parsed::NotIp);
    }
    let direction = match pkttype {
        0..=2 => Direction::Incoming,
        3 => Direction::OtherHost,
        4 => Direction::Outgoing,
        _ => Direction::Unknown,
    };
    let (network, packet) = ethertype_payload(protocol, payload)?;
    Ok(Link {
        direction,
        ifindex,
        network,
        packet,
    })
}

/// Skips VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8, pre-standard QinQ 0x9100): each is TCI u16 +
/// the next ethertype u16. Then IPv4 or IPv6, else not IP.
fn ethertype_payload(mut ethertype: u16, mut rest: &[u8]) -> Result<(Network, &[u8]), Parsed> {
    for _ in 0..=MAX_VLAN_TAGS {
        match ethertype {
            ETHERTYPE_IPV4 => return Ok((Network::V4, rest)),
            ETHERTYPE_IPV6 => return Ok((Network::V6, rest)),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                let (Some(inner), Some(after)) = (be16(rest, 2), rest.get(4..)) else {
                    return Err(Parsed::Malformed);
                };
                ethertype = inner;
                rest = after;
            }
            _ => return Err(Parsed::NotIp),
        }
    }
    Err(Parsed::Malformed)
}

/// The datagram length of an IPv6 packet whose payload length is 0, `None` when what tells it
/// was not captured. Either the packet is just a header (no next header), or a jumbogram whose
/// hop-by-hop header carries the length (RFC 2675), or a Linux BIG TCP packet over 64 KiB
/// without that option, whose length is only on the wire. Anything else is taken at its word.
fn zero_payload_ip_len(packet: &[u8], wire_ip_len: u32) -> Option<u32> {
    let next = *packet.get(6)?;
    if next == PROTO_HOP_BY_HOP {
        if let Some(jumbo) = jumbo_option(packet)? {
            return Some(40u32.saturating_add(jumbo));
        }
    }
    if next != PROTO_NO_NEXT && wire_ip_len > MAX_IPV6_LEN {
        return Some(wire_ip_len);
    }
    Some(40)
}

/// The jumbo payload option (type 0xc2, length 4) of the hop-by-hop header that follows the
/// IPv6 header: the datagram length less the 40-byte IPv6 header. `Some(None)` when the header
/// has no such option, `None` when the header was not captured in full.
fn jumbo_option(packet: &[u8]) -> Option<Option<u32>> {
    let len = *packet.get(41)?;
    let options = packet.get(42..40 + (usize::from(len) + 1) * 8)?;
    let mut at = 0;
    while let Some(&kind) = options.get(at) {
        if kind == 0 {
            // Pad1 is a lone byte.
            at += 1;
            continue;
        }
        let Some(&len) = options.get(at + 1) else {
            break;
        };
        if kind == 0xc2 && len == 4 {
            return Some(array::<4>(options, at + 2).map(u32::from_be_bytes));
        }
        at += 2 + usize::from(len);
    }
    Some(None)
}

/// Source and destination port: the first four bytes of the TCP or UDP header, which must be
/// inside the datagram.
#[inline]
/// What the flags of the TCP header at `offset` say; a flags byte that was not captured says
/// nothing.
fn tcp_signal(datagram: &[u8], offset: usize) -> TcpSignal {
    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;
    match datagram.get(offset + 13) {
        Some(flags) if flags & (FIN | RST) != 0 => TcpSignal::Ends,
        Some(flags) if flags & (SYN | ACK) == SYN => TcpSignal::Opens,
        _ => TcpSignal::Data,
    }
}

fn ports(datagram: &[u8], offset: usize) -> Option<(u16, u16)> {
    let [a, b, c, d] = array::<4>(datagram, offset)?;
    Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])))
}

#[inline]
fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    array::<2>(bytes, at).map(u16::from_be_bytes)
}

/// `N` bytes at `at`, or `None` when they were not captured.
#[inline]
fn array<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// For tests and the fuzz targets: panics unless `prefix`, what a shorter capture of a frame
/// (a smaller snaplen) parsed to, agrees with `whole`, what the whole frame parsed to. A prefix
/// may know less, never more nor anything else: malformed goes with anything; not IP only with
/// not IP; a flow is the whole frame's flow, but for the TCP signal when the prefix says
/// [`TcpSignal::Data`] (the flags byte may be past the cut); unattributable has the length and
/// direction of the whole frame, flow or unattributable. `context` (link, cut) starts the
/// message.
#[cfg(any(test, fuzzing))]
pub fn assert_prefix_agrees(prefix: Parsed, whole: Parsed, context: &str) {
    let context = format!("{context}: {prefix:?} vs {whole:?}");
    match (prefix, whole) {
        (Parsed::Malformed, _) | (Parsed::NotIp, Parsed::NotIp) => {}
        (Parsed::Flow(p), Parsed::Flow(f)) if p.tcp == TcpSignal::Data => {
            assert_eq!(FlowPacket { tcp: f.tcp, ..p }, f, "{context}")
        }
        (Parsed::Flow(p), Parsed::Flow(f)) => assert_eq!(p, f, "{context}"),
        (
            Parsed::Unattributable { direction, ip_len },
            Parsed::Flow(FlowPacket {
                direction: d,
                ip_len: l,
                ..
            })
            | Parsed::Unattributable {
                direction: d,
                ip_len: l,
            },
        ) => assert_eq!((direction, ip_len), (d, l), "{context}"),
        _ => panic!("a prefix knew more or else: {context}"),
    }
}

#[cfg(test)]
mod tests;

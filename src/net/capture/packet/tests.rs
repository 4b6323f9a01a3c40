//! Unit tests of [`super`] (packet).

use super::*;

/// Any clock value: fragment tests move it explicitly.
const NOW: u64 = 1_000_000;
const SRC4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xbeef, 2);
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const ESP: u8 = 50;

// ---- frame builders: each writes its header in front of what it is given ----

/// A 20-byte TCP header (data offset 5, ACK) and `payload` bytes.
fn tcp(src_port: u16, dst_port: u16, payload: usize) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&src_port.to_be_bytes());
    t[2..4].copy_from_slice(&dst_port.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x10;
    t.resize(20 + payload, b'x');
    t
}

/// A UDP header and `payload` bytes.
fn udp(src_port: u16, dst_port: u16, payload: usize) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&src_port.to_be_bytes());
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(8 + payload, b'u');
    u
}

/// IPv4 header fields the tests vary.
#[derive(Clone, Copy)]
struct V4 {
    protocol: u8,
    /// Option bytes (a multiple of 4): IHL = 5 + options / 4.
    options: usize,
    id: u16,
    /// Flags and fragment offset field as on the wire (MF = 0x2000, offset in 8-byte units).
    flags_offset: u16,
    /// Total length; `None` = header + payload.
    total_len: Option<u16>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

impl V4 {
    fn new(protocol: u8) -> V4 {
        V4 {
            protocol,
            options: 0,
            id: 0x1234,
            flags_offset: 0x4000, // DF, as Linux sends
            total_len: None,
            src: SRC4,
            dst: DST4,
        }
    }

    fn packet(self, payload: &[u8]) -> Vec<u8> {
        let header = 20 + self.options;
        let total = self.total_len.unwrap_or((header + payload.len()) as u16);
        let mut p = vec![0u8; header];
        p[0] = 0x40 | (header / 4) as u8;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[4..6].copy_from_slice(&self.id.to_be_bytes());
        p[6..8].copy_from_slice(&self.flags_offset.to_be_bytes());
        p[8] = 64;
        p[9] = self.protocol;
        p[12..16].copy_from_slice(&self.src.octets());
        p[16..20].copy_from_slice(&self.dst.octets());
        // Options: NOPs, then end of list.
        for b in p.iter_mut().skip(20) {
            *b = 1;
        }
        if let Some(last) = p.get_mut(20..).and_then(|o| o.last_mut()) {
            *last = 0;
        }
        p.extend_from_slice(payload);
        p
    }
}

fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    V4::new(protocol).packet(payload)
}

/// An IPv6 header whose payload (extension headers included) is `payload`.
fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    ipv6_from(SRC6, next, payload)
}

fn ipv6_from(src: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    ipv6_between(src, DST6, next, payload)
}

fn ipv6_between(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    p[6] = next;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// Hop-by-hop, routing or destination options header of `len` bytes (a multiple of 8, at
/// least 8) in front of `rest`: length field in 8-octet units less one.
fn ext(next: u8, len: usize, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; len];
    h[0] = next;
    h[1] = (len / 8 - 1) as u8;
    // PadN over the option area, so the header is well formed.
    h[2] = 1;
    h[3] = (len - 4) as u8;
    h.extend_from_slice(rest);
    h
}

/// Authentication header of `len` bytes (a multiple of 4, at least 12): length field in
/// 4-octet units less two.
fn ah(next: u8, len: usize, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; len];
    h[0] = next;
    h[1] = (len / 4 - 2) as u8;
    h.extend_from_slice(rest);
    h
}

/// IPv6 fragment header: offset in 8-byte units, M flag, identification.
fn frag6(next: u8, offset: u16, more: bool, id: u32, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![next, 0];
    h.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(rest);
    h
}

fn ethernet(ethertype: u16, packet: &[u8]) -> Vec<u8> {
    tagged(&[], ethertype, packet)
}

/// Ethernet II with a VLAN tag per TPID in `tags` (outermost first).
fn tagged(tags: &[u16], ethertype: u16, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb];
    for (i, tpid) in tags.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes()); // TCI: VLAN id
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(packet);
    f
}

/// Ethernet pads frames to 60 bytes (without FCS): padding is not part of the datagram.
fn padded(mut frame: Vec<u8>, fill: u8) -> Vec<u8> {
    if frame.len() < 60 {
        frame.resize(60, fill);
    }
    frame
}

const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

fn sll(pkttype: u16, arphrd: u16, protocol: u16, packet: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&pkttype.to_be_bytes());
    f.extend_from_slice(&arphrd.to_be_bytes());
    f.extend_from_slice(&6u16.to_be_bytes());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xaa, 0, 0]);
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(packet);
    f
}

fn sll2(protocol: u16, ifindex: u32, pkttype: u8, packet: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&ifindex.to_be_bytes());
    f.extend_from_slice(&ARPHRD_ETHER.to_be_bytes());
    f.push(pkttype);
    f.push(6);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xaa, 0, 0]);
    f.extend_from_slice(packet);
    f
}

/// BSD loopback header with the address family in the given byte order.
fn af_header(af: [u8; 4], packet: &[u8]) -> Vec<u8> {
    let mut f = af.to_vec();
    f.extend_from_slice(packet);
    f
}

// ---- expectations ----

fn parse(link: LinkType, frame: &[u8]) -> Parsed {
    Parser::new().parse(link, frame, NOW)
}

fn flow(parsed: Parsed) -> FlowPacket {
    match parsed {
        Parsed::Flow(f) => f,
        other => panic!("expected a flow, got {other:?}"),
    }
}

fn flow4(transport: Transport, sport: u16, dport: u16, ip_len: u32) -> FlowPacket {
    FlowPacket {
        direction: Direction::Unknown,
        transport,
        src: SocketAddr::from((SRC4, sport)),
        dst: SocketAddr::from((DST4, dport)),
        ip_len,
        ifindex: 0,
        tcp: TcpSignal::Data,
    }
}

fn flow6_of(transport: Transport, sport: u16, dport: u16, ip_len: u32) -> FlowPacket {
    FlowPacket {
        direction: Direction::Unknown,
        transport,
        src: SocketAddr::from((SRC6, sport)),
        dst: SocketAddr::from((DST6, dport)),
        ip_len,
        ifindex: 0,
        tcp: TcpSignal::Data,
    }
}

fn unattributable(ip_len: u32) -> Parsed {
    Parsed::Unattributable {
        direction: Direction::Unknown,
        ip_len,
    }
}

// ---- link types ----

#[test]
fn from_dlt_maps_every_supported_link_type() {
    let expected = [
        (1, LinkType::Ethernet),
        (0, LinkType::Null),
        (108, LinkType::Loop),
        (12, LinkType::Raw),
        (14, LinkType::Raw),
        (113, LinkType::LinuxSll),
        (276, LinkType::LinuxSll2),
        (228, LinkType::Ipv4),
        (229, LinkType::Ipv6),
    ];
    for (dlt, link) in expected {
        assert_eq!(LinkType::from_dlt(dlt), Some(link), "DLT {dlt}");
    }
    for unknown in [-1, 2, 9, 101, 105, 127, 147, 277, i32::MAX] {
        assert_eq!(LinkType::from_dlt(unknown), None, "DLT {unknown}");
    }
}

#[test]
fn ethernet_ipv4_tcp() {
    let frame = ethernet(0x0800, &ipv4(6, &tcp(40000, 443, 100)));
    assert_eq!(
        parse(LinkType::Ethernet, &frame),
        Parsed::Flow(flow4(Transport::Tcp, 40000, 443, 140))
    );
}

#[test]
fn syn_opens_and_fin_or_rst_end_a_connection() {
    use TcpSignal::{Data, Ends, Opens};
    for (flags, signal) in [
        (0x10, Data),  // ACK
        (0x18, Data),  // PSH ACK
        (0x02, Opens), // SYN
        (0x12, Data),  // SYN ACK: the server's answer, not a new client
        (0x11, Ends),  // FIN ACK
        (0x14, Ends),  // RST ACK
        (0x04, Ends),  // RST
    ] {
        let mut segment = tcp(40000, 443, 0);
        segment[13] = flags;
        let v4 = ethernet(0x0800, &ipv4(6, &segment));
        assert_eq!(
            flow(parse(LinkType::Ethernet, &v4)).tcp,
            signal,
            "v4 {flags:#x}"
        );
        let v6 = ethernet(0x86dd, &ipv6(60, &ext(6, 8, &segment)));
        assert_eq!(
            flow(parse(LinkType::Ethernet, &v6)).tcp,
            signal,
            "v6 {flags:#x}"
        );
    }
    // UDP has no flags; a TCP header cut before its flags byte says nothing.
    let mut datagram = udp(1, 2, 20);
    datagram[13] = 0x02;
    let udp = flow(parse(
        LinkType::Ethernet,
        &ethernet(0x0800, &ipv4(17, &datagram)),
    ));
    assert_eq!(udp.tcp, Data);
    let mut cut = tcp(40000, 443, 0);
    cut[13] = 0x01;
    cut.truncate(13);
    let cut = flow(parse(LinkType::Ethernet, &ethernet(0x0800, &ipv4(6, &cut))));
    assert_eq!(cut.tcp, Data);
}

#[test]
fn ethernet_ipv6_udp() {
    let frame = ethernet(0x86dd, &ipv6(17, &udp(5353, 53, 30)));
    assert_eq!(
        parse(LinkType::Ethernet, &frame),
        Parsed::Flow(flow6_of(Transport::Udp, 5353, 53, 78))
    );
}

#[test]
fn ethernet_padding_is_neither_counted_nor_read_as_ports() {
    // 28-byte datagram padded to a 60-byte frame: ip_len stays 28.
    let frame = padded(ethernet(0x0800, &ipv4(17, &udp(1, 2, 0))), 0);
    assert_eq!(
        flow(parse(LinkType::Ethernet, &frame)).ip_len,
        28,
        "padding counted"
    );
    // A datagram too short for ports, padded: the padding must not become ports.
    let mut short = V4::new(17);
    short.total_len = Some(22);
    let frame = padded(ethernet(0x0800, &short.packet(&[0, 1])), 0xee);
    assert_eq!(parse(LinkType::Ethernet, &frame), unattributable(22));
    let frame = padded(ethernet(0x86dd, &ipv6(6, &[0, 1])), 0xee);
    assert_eq!(parse(LinkType::Ethernet, &frame), unattributable(42));
}

#[test]
fn vlan_and_qinq_tags_are_skipped() {
    let packet = ipv4(6, &tcp(40000, 443, 10));
    let expected = Parsed::Flow(flow4(Transport::Tcp, 40000, 443, 50));
    for tags in [
        &[0x8100][..],
        &[0x88a8, 0x8100],
        &[0x9100, 0x8100],
        &[0x88a8, 0x88a8, 0x8100],
    ] {
        let frame = tagged(tags, 0x0800, &packet);
        assert_eq!(
            parse(LinkType::Ethernet, &frame),
            expected,
            "tags {tags:x?}"
        );
    }
    let frame = tagged(&[0x8100], 0x86dd, &ipv6(17, &udp(1, 2, 3)));
    assert_eq!(flow(parse(LinkType::Ethernet, &frame)).ip_len, 51);
    // A tag announced but cut off: we cannot know what it carries.
    let frame = tagged(&[0x8100], 0x0800, &[]);
    assert_eq!(
        parse(LinkType::Ethernet, &frame[..frame.len() - 3]),
        Parsed::Malformed
    );
}

#[test]
fn endless_vlan_tags_are_malformed() {
    let frame = tagged(&[0x8100; 9], 0x0800, &ipv4(6, &tcp(1, 2, 0)));
    assert_eq!(parse(LinkType::Ethernet, &frame), Parsed::Malformed);
    let frame = tagged(&[0x8100; 8], 0x0800, &ipv4(6, &tcp(1, 2, 0)));
    assert!(matches!(parse(LinkType::Ethernet, &frame), Parsed::Flow(_)));
}

#[test]
fn non_ip_ethertypes_are_not_ip() {
    // ARP, an 802.3 length field (LLC follows), PPPoE session, LLDP, and ARP inside a VLAN.
    for ethertype in [0x0806, 0x0050, 0x8864, 0x88cc] {
        let frame = padded(ethernet(ethertype, &[0x45; 28]), 0);
        assert_eq!(
            parse(LinkType::Ethernet, &frame),
            Parsed::NotIp,
            "{ethertype:#x}"
        );
    }
    let frame = padded(tagged(&[0x8100], 0x0806, &[0; 28]), 0);
    assert_eq!(parse(LinkType::Ethernet, &frame), Parsed::NotIp);
}

#[test]
fn ethertype_and_version_must_agree() {
    let frame = ethernet(0x0800, &ipv6(6, &tcp(1, 2, 0)));
    assert_eq!(parse(LinkType::Ethernet, &frame), Parsed::Malformed);
    let frame = ethernet(0x86dd, &ipv4(6, &tcp(1, 2, 0)));
    assert_eq!(parse(LinkType::Ethernet, &frame), Parsed::Malformed);
    // Ethertype IPv4 with nothing after it.
    assert_eq!(
        parse(LinkType::Ethernet, &ethernet(0x0800, &[])),
        Parsed::Malformed
    );
}

#[test]
fn sll_packet_type_gives_the_direction() {
    let packet = ipv4(6, &tcp(40000, 443, 0));
    for (pkttype, direction) in [
        (0, Direction::Incoming),
        (1, Direction::Incoming),
        (2, Direction::Incoming),
        (3, Direction::OtherHost),
        (4, Direction::Outgoing),
        (5, Direction::Unknown),
        (7, Direction::Unknown),
        (0xffff, Direction::Unknown),
    ] {
        let frame = sll(pkttype, ARPHRD_ETHER, 0x0800, &packet);
        let f = flow(parse(LinkType::LinuxSll, &frame));
        assert_eq!(f.direction, direction, "pkttype {pkttype}");
        assert_eq!(f.ifindex, 0);
        assert_eq!(f.src, SocketAddr::from((SRC4, 40000)));
        assert_eq!(f.ip_len, 40);
    }
}

#[test]
fn sll_on_loopback_carries_the_ethertype() {
    // On the `any` device, lo's frames have ARPHRD_LOOPBACK and the ethertype as protocol.
    let frame = sll(0, ARPHRD_LOOPBACK, 0x86dd, &ipv6(6, &tcp(40000, 8080, 5)));
    assert_eq!(
        parse(LinkType::LinuxSll, &frame),
        Parsed::Flow(FlowPacket {
            direction: Direction::Incoming,
            ..flow6_of(Transport::Tcp, 40000, 8080, 65)
        })
    );
    // A VLAN-tagged frame captured on the parent device: protocol 0x8100, then the tag.
    let mut tag = vec![0x00, 0x64, 0x08, 0x00];
    tag.extend_from_slice(&ipv4(17, &udp(1, 2, 0)));
    let frame = sll(4, ARPHRD_ETHER, 0x8100, &tag);
    assert_eq!(flow(parse(LinkType::LinuxSll, &frame)).ip_len, 28);
}

#[test]
fn sll_non_ip_protocols_are_not_ip() {
    let packet = ipv4(6, &tcp(1, 2, 0));
    // Linux's own protocol numbers: 802.3, 802.2, CAN; then ARP.
    for protocol in [0x0001, 0x0004, 0x000c, 0x0806] {
        let frame = sll(0, ARPHRD_ETHER, protocol, &packet);
        assert_eq!(parse(LinkType::LinuxSll, &frame), Parsed::NotIp);
    }
    // Netlink monitors: the protocol is a netlink family, whatever its value.
    let frame = sll(0, ARPHRD_NETLINK, 0x0800, &packet);
    assert_eq!(parse(LinkType::LinuxSll, &frame), Parsed::NotIp);
    assert_eq!(
        parse(LinkType::LinuxSll, &frame[..15]),
        Parsed::Malformed,
        "header cut"
    );
}

#[test]
fn sll2_gives_interface_and_direction() {
    let frame = sll2(0x86dd, 7, 4, &ipv6(17, &udp(40000, 53, 12)));
    assert_eq!(
        parse(LinkType::LinuxSll2, &frame),
        Parsed::Flow(FlowPacket {
            direction: Direction::Outgoing,
            ifindex: 7,
            tcp: TcpSignal::Data,
            ..flow6_of(Transport::Udp, 40000, 53, 60)
        })
    );
    let frame = sll2(0x0800, 0x0102_0304, 0, &ipv4(6, &tcp(1, 2, 0)));
    let f = flow(parse(LinkType::LinuxSll2, &frame));
    assert_eq!((f.direction, f.ifindex), (Direction::Incoming, 0x0102_0304));
    // Not IP; header cut.
    let frame = sll2(0x0806, 2, 1, &[0; 28]);
    assert_eq!(parse(LinkType::LinuxSll2, &frame), Parsed::NotIp);
    assert_eq!(parse(LinkType::LinuxSll2, &frame[..19]), Parsed::Malformed);
}

#[test]
fn null_reads_the_family_in_either_byte_order() {
    let v4 = ipv4(6, &tcp(40000, 443, 0));
    let v6 = ipv6(6, &tcp(40000, 443, 0));
    for af in [2u32.to_ne_bytes(), 2u32.to_be_bytes(), 2u32.to_le_bytes()] {
        let f = flow(parse(LinkType::Null, &af_header(af, &v4)));
        assert_eq!(f.src, SocketAddr::from((SRC4, 40000)));
    }
    // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, macOS; written by either byte order.
    for af in [10u32, 24, 28, 30] {
        for bytes in [af.to_le_bytes(), af.to_be_bytes()] {
            let f = flow(parse(LinkType::Null, &af_header(bytes, &v6)));
            assert_eq!(f.src, SocketAddr::from((SRC6, 40000)), "AF {af}");
        }
    }
    // AF_UNSPEC, AF_APPLETALK-ish, IPX: not IP.
    for af in [0u32, 5, 23] {
        let frame = af_header(af.to_ne_bytes(), &v4);
        assert_eq!(parse(LinkType::Null, &frame), Parsed::NotIp, "AF {af}");
    }
    assert_eq!(parse(LinkType::Null, &[2, 0, 0]), Parsed::Malformed);
    // The family and the version nibble disagree.
    let frame = af_header(2u32.to_ne_bytes(), &v6);
    assert_eq!(parse(LinkType::Null, &frame), Parsed::Malformed);
}

#[test]
fn loop_is_network_byte_order() {
    let v4 = ipv4(17, &udp(40000, 53, 0));
    let frame = af_header(2u32.to_be_bytes(), &v4);
    assert_eq!(flow(parse(LinkType::Loop, &frame)).ip_len, 28);
    let frame = af_header(24u32.to_be_bytes(), &ipv6(17, &udp(1, 2, 0)));
    assert_eq!(flow(parse(LinkType::Loop, &frame)).ip_len, 48);
    // Little-endian 2 read in network order is 0x02000000: no family we know.
    let frame = af_header(2u32.to_le_bytes(), &v4);
    assert_eq!(parse(LinkType::Loop, &frame), Parsed::NotIp);
}

#[test]
fn raw_ip_version_nibble_decides() {
    let v4 = ipv4(6, &tcp(40000, 443, 0));
    let v6 = ipv6(6, &tcp(40000, 443, 0));
    assert_eq!(flow(parse(LinkType::Raw, &v4)).ip_len, 40);
    assert_eq!(flow(parse(LinkType::Raw, &v6)).ip_len, 60);
    assert_eq!(flow(parse(LinkType::Ipv4, &v4)).ip_len, 40);
    assert_eq!(flow(parse(LinkType::Ipv6, &v6)).ip_len, 60);
    // The dedicated link types take only their own version.
    assert_eq!(parse(LinkType::Ipv4, &v6), Parsed::Malformed);
    assert_eq!(parse(LinkType::Ipv6, &v4), Parsed::Malformed);
    let mut v5 = v4.clone();
    v5[0] = 0x55;
    assert_eq!(parse(LinkType::Raw, &v5), Parsed::Malformed);
    assert_eq!(parse(LinkType::Raw, &[]), Parsed::Malformed);
}

// ---- IPv4 ----

#[test]
fn ipv4_options_are_skipped() {
    for options in [4, 20, 40] {
        let mut header = V4::new(6);
        header.options = options;
        let frame = ethernet(0x0800, &header.packet(&tcp(40000, 443, 7)));
        assert_eq!(
            parse(LinkType::Ethernet, &frame),
            Parsed::Flow(flow4(
                Transport::Tcp,
                40000,
                443,
                (20 + options + 27) as u32
            )),
            "{options} option bytes"
        );
    }
}

#[test]
fn ipv4_impossible_lengths_are_malformed() {
    let good = ipv4(6, &tcp(1, 2, 0));
    for ihl in 0..5u8 {
        let mut p = good.clone();
        p[0] = 0x40 | ihl;
        assert_eq!(parse(LinkType::Raw, &p), Parsed::Malformed, "IHL {ihl}");
    }
    // Total length shorter than the header it announces: with and without options.
    for (options, total) in [(0, 19), (0, 1), (8, 27), (40, 59)] {
        let mut header = V4::new(6);
        header.options = options;
        header.total_len = Some(total);
        let p = header.packet(&tcp(1, 2, 0));
        assert_eq!(parse(LinkType::Raw, &p), Parsed::Malformed, "{total}");
    }
}

#[test]
fn ipv4_truncation_malformed_until_length_known_then_unattributable() {
    let p = ipv4(6, &tcp(40000, 443, 100));
    for cut in 0..4 {
        assert_eq!(parse(LinkType::Raw, &p[..cut]), Parsed::Malformed, "{cut}");
    }
    // Length known, addresses or ports not: bytes counted, owner unknown.
    for cut in 4..24 {
        assert_eq!(
            parse(LinkType::Raw, &p[..cut]),
            unattributable(140),
            "{cut}"
        );
    }
    assert_eq!(flow(parse(LinkType::Raw, &p[..24])).ip_len, 140);
}

#[test]
fn ipv4_total_length_zero_takes_the_wire_length_only_beyond_64k() {
    // Linux BIG TCP: a GSO packet over 64 KiB has total length 0.
    let mut header = V4::new(6);
    header.total_len = Some(0);
    let frame = sll2(0x0800, 1, 4, &header.packet(&tcp(40000, 443, 100)));
    let snapped = &frame[..128.min(frame.len())];
    let f = flow(Parser::new().parse_wire(LinkType::LinuxSll2, snapped, 150_020, NOW));
    assert_eq!(
        f.ip_len, 150_000,
        "wire length less the 20-byte SLL2 header"
    );
    // Without a wire length beyond 64 KiB, length 0 is just wrong.
    assert_eq!(parse(LinkType::LinuxSll2, &frame), Parsed::Malformed);
    let wire = 65_535 + 20;
    let parsed = Parser::new().parse_wire(LinkType::LinuxSll2, snapped, wire, NOW);
    assert_eq!(parsed, Parsed::Malformed);
}

// ---- protocols without ports ----

#[test]
fn protocols_without_ports_are_unattributable() {
    // ICMP, IGMP, GRE, ESP, SCTP over IPv4.
    for protocol in [ICMP, 2, 47, ESP, 132] {
        let frame = ethernet(0x0800, &ipv4(protocol, &[0; 36]));
        assert_eq!(
            parse(LinkType::Ethernet, &frame),
            unattributable(56),
            "proto {protocol}"
        );
    }
    // ICMPv6, ESP, no next header, and an unknown one over IPv6.
    for next in [ICMPV6, ESP, 59, 253] {
        let frame = ethernet(0x86dd, &ipv6(next, &[0; 16]));
        assert_eq!(
            parse(LinkType::Ethernet, &frame),
            unattributable(56),
            "next {next}"
        );
    }
}

#[test]
fn transport_header_shorter_than_the_ports_is_unattributable() {
    for len in 0..4 {
        let frame = ethernet(0x0800, &ipv4(6, &tcp(1, 2, 0)[..len]));
        assert_eq!(
            parse(LinkType::Ethernet, &frame),
            unattributable(20 + len as u32)
        );
        let frame = ethernet(0x86dd, &ipv6(17, &udp(1, 2, 0)[..len]));
        assert_eq!(
            parse(LinkType::Ethernet, &frame),
            unattributable(40 + len as u32)
        );
    }
    // Four bytes are enough: the rest of the TCP header does not matter to attribution.
    let frame = ethernet(0x0800, &ipv4(6, &tcp(1, 2, 0)[..4]));
    assert_eq!(
        parse(LinkType::Ethernet, &frame),
        Parsed::Flow(flow4(Transport::Tcp, 1, 2, 24))
    );
}

// ---- IPv6 extension headers ----

#[test]
fn ipv6_extension_headers_are_walked() {
    // Hop-by-hop, routing, destination options (16 bytes), then TCP.
    let payload = ext(43, 8, &ext(60, 24, &ext(6, 16, &tcp(40000, 443, 10))));
    let frame = ethernet(0x86dd, &ipv6(0, &payload));
    assert_eq!(
        parse(LinkType::Ethernet, &frame),
        Parsed::Flow(flow6_of(Transport::Tcp, 40000, 443, 40 + 48 + 30))
    );
}

#[test]
fn ipv6_ah_length_is_in_4_byte_units() {
    // A 12-byte AH (length field 1): read in 8-byte units it would be 16 bytes and land
    // inside the UDP header.
    let payload = ah(17, 12, &udp(40000, 53, 4));
    let frame = ethernet(0x86dd, &ipv6(51, &payload));
    assert_eq!(
        parse(LinkType::Ethernet, &frame),
        Parsed::Flow(flow6_of(Transport::Udp, 40000, 53, 40 + 12 + 12))
    );
    // AH with a 24-byte ICV (28 bytes), after destination options.
    let payload = ext(51, 8, &ah(6, 28, &tcp(1, 2, 0)));
    assert_eq!(
        flow(parse(LinkType::Raw, &ipv6(60, &payload))).src,
        SocketAddr::from((SRC6, 1))
    );
    // ESP behind AH: encrypted, no ports.
    let payload = ah(ESP, 12, &[0; 16]);
    assert_eq!(
        parse(LinkType::Raw, &ipv6(51, &payload)),
        unattributable(68)
    );
}

#[test]
fn ipv6_truncated_or_endless_extension_chain_is_unattributable() {
    let payload = ext(60, 8, &ext(6, 16, &tcp(1, 2, 0)));
    let packet = ipv6(0, &payload);
    // Cut inside the second extension header: length known (84), ports not.
    assert_eq!(parse(LinkType::Raw, &packet[..50]), unattributable(84));
    // The payload length ends the chain early: what follows is padding.
    let mut short = packet.clone();
    short[4..6].copy_from_slice(&20u16.to_be_bytes());
    assert_eq!(parse(LinkType::Raw, &short), unattributable(60));
    // Eight destination options headers before TCP are walked; nine are more than we walk.
    let chain = |headers: usize| {
        let mut chain = ext(6, 8, &tcp(1, 2, 0));
        for _ in 1..headers {
            chain = ext(60, 8, &chain);
        }
        ipv6(60, &chain)
    };
    assert!(matches!(parse(LinkType::Raw, &chain(8)), Parsed::Flow(_)));
    assert_eq!(
        parse(LinkType::Raw, &chain(9)),
        unattributable(40 + 72 + 20)
    );
}

#[test]
fn ipv6_truncated_header_is_malformed_until_length_known() {
    let packet = ipv6(6, &tcp(1, 2, 0));
    for cut in 0..6 {
        assert_eq!(parse(LinkType::Raw, &packet[..cut]), Parsed::Malformed);
    }
    for cut in 6..44 {
        assert_eq!(parse(LinkType::Raw, &packet[..cut]), unattributable(60));
    }
}

#[test]
fn ipv6_jumbogram_length_comes_from_the_jumbo_option() {
    // Hop-by-hop with the jumbo payload option (type 0xc2, length 4) after a Pad1.
    let jumbo_len: u32 = 100_000;
    // Next header, length 1 (16 bytes), Pad1, jumbo option, PadN over the last 7 bytes.
    let mut hbh = vec![6, 1, 0, 0xc2, 4];
    hbh.extend_from_slice(&jumbo_len.to_be_bytes());
    hbh.extend_from_slice(&[1, 5, 0, 0, 0, 0, 0]);
    hbh.extend_from_slice(&tcp(40000, 443, 60));
    let mut packet = ipv6(0, &hbh);
    packet[4..6].copy_from_slice(&[0, 0]);
    assert_eq!(
        parse(LinkType::Raw, &packet),
        Parsed::Flow(flow6_of(Transport::Tcp, 40000, 443, 40 + jumbo_len))
    );
    // Until the whole hop-by-hop header is captured, the length is not known.
    for cut in 0..56 {
        assert_eq!(parse(LinkType::Raw, &packet[..cut]), Parsed::Malformed);
    }
    assert_eq!(
        parse(LinkType::Raw, &packet[..56]),
        unattributable(40 + jumbo_len)
    );
    // Hop-by-hop without the option (here a router alert): the header's 0 stands.
    let mut no_jumbo = ipv6(0, &[6, 0, 5, 2, 0, 0, 1, 0]);
    no_jumbo.extend_from_slice(&tcp(1, 2, 0));
    no_jumbo[4..6].copy_from_slice(&[0, 0]);
    assert_eq!(parse(LinkType::Raw, &no_jumbo), unattributable(40));
}

#[test]
fn ipv6_payload_length_zero_takes_the_wire_length_only_beyond_64k() {
    // Linux BIG TCP without a jumbo option: payload length 0, real size only on the wire.
    let mut packet = ipv6(6, &tcp(40000, 443, 100));
    packet[4..6].copy_from_slice(&[0, 0]);
    let frame = ethernet(0x86dd, &packet);
    let f = flow(Parser::new().parse_wire(LinkType::Ethernet, &frame[..128], 200_014, NOW));
    assert_eq!(f.ip_len, 200_000);
    // Otherwise the header is taken at its word: 40 bytes, no room for ports.
    assert_eq!(parse(LinkType::Ethernet, &frame), unattributable(40));
    // No next header and payload 0 is simply a 40-byte packet.
    let empty = ethernet(0x86dd, &ipv6(59, &[]));
    let parsed = Parser::new().parse_wire(LinkType::Ethernet, &empty, 200_014, NOW);
    assert_eq!(parsed, unattributable(40));
}

// ---- fragments ----

/// The three fragments of one UDP datagram: 8 + 3000 bytes of UDP, 1480 bytes a fragment.
fn udp_v4_fragments(id: u16) -> [Vec<u8>; 3] {
    let datagram = udp(40000, 53, 3000);
    let mut header = V4::new(17);
    header.id = id;
    [(0, 0x2000), (1480, 0x2000), (2960, 0)].map(|(start, mf)| {
        header.flags_offset = mf | (start / 8) as u16;
        let end = (start + 1480).min(datagram.len());
        ethernet(0x0800, &header.packet(&datagram[start..end]))
    })
}

#[test]
fn ipv4_fragments_are_credited_to_the_first_fragments_flow() {
    let mut parser = Parser::new();
    let [first, second, last] = udp_v4_fragments(7);
    let lens: Vec<u32> = [&first, &second, &last]
        .iter()
        .map(|frame| {
            let f = flow(parser.parse(LinkType::Ethernet, frame, NOW));
            assert_eq!((f.src.port(), f.dst.port()), (40000, 53));
            assert_eq!(f.transport, Transport::Udp);
            f.ip_len
        })
        .collect();
    // Each fragment counts its own datagram length; together the whole datagram once plus
    // two extra IP headers.
    assert_eq!(lens, [1500, 1500, 68]);
    // Fragments arriving again (or late, within the timeout) still match.
    assert!(matches!(
        parser.parse(LinkType::Ethernet, &last, NOW + 29_000),
        Parsed::Flow(_)
    ));
}

#[test]
fn ipv4_fragment_without_its_first_is_unattributable() {
    let mut parser = Parser::new();
    let [first, second, _] = udp_v4_fragments(7);
    assert_eq!(
        parser.parse(LinkType::Ethernet, &second, NOW),
        unattributable(1500)
    );
    parser.parse(LinkType::Ethernet, &first, NOW);
    // Another datagram id, or another source, between the same hosts.
    let [_, other_id, _] = udp_v4_fragments(8);
    assert_eq!(
        parser.parse(LinkType::Ethernet, &other_id, NOW),
        unattributable(1500)
    );
    let mut other_source = second.clone();
    other_source[14 + 15] ^= 1;
    assert_eq!(
        parser.parse(LinkType::Ethernet, &other_source, NOW),
        unattributable(1500)
    );
}

#[test]
fn ipv4_fragment_state_expires() {
    let mut parser = Parser::new();
    let [first, second, _] = udp_v4_fragments(7);
    parser.parse(LinkType::Ethernet, &first, NOW);
    assert_eq!(
        parser.parse(LinkType::Ethernet, &second, NOW + FRAGMENT_TTL_MS),
        unattributable(1500)
    );
}

#[test]
fn ipv4_first_fragment_too_short_for_ports_remembers_nothing() {
    let mut parser = Parser::new();
    let mut header = V4::new(6);
    header.flags_offset = 0x2000;
    let first = ethernet(0x0800, &header.packet(&[0x9c, 0x40])); // half a port pair
    assert_eq!(
        parser.parse(LinkType::Ethernet, &first, NOW),
        unattributable(22)
    );
    header.flags_offset = 1; // offset 8 bytes, last fragment
    let rest = ethernet(0x0800, &header.packet(&tcp(1, 2, 0)));
    assert_eq!(
        parser.parse(LinkType::Ethernet, &rest, NOW),
        unattributable(40)
    );
}

#[test]
fn ipv4_fragments_of_other_protocols_stay_unattributable() {
    let mut parser = Parser::new();
    let mut header = V4::new(ICMP);
    header.flags_offset = 0x2000;
    let first = ethernet(0x0800, &header.packet(&[8, 0, 0, 0, 0, 1, 0, 1]));
    header.flags_offset = 1;
    let second = ethernet(0x0800, &header.packet(&[0; 8]));
    assert_eq!(
        parser.parse(LinkType::Ethernet, &first, NOW),
        unattributable(28)
    );
    assert_eq!(
        parser.parse(LinkType::Ethernet, &second, NOW),
        unattributable(28)
    );
}

#[test]
fn unfragmented_packets_leave_no_fragment_state() {
    let mut parser = Parser::new();
    // DF set, or no flags at all: not fragments.
    for flags in [0x4000, 0] {
        let mut header = V4::new(17);
        header.flags_offset = flags;
        parser.parse(LinkType::Raw, &header.packet(&udp(1, 2, 0)), NOW);
    }
    // IPv6 atomic fragment: a fragment header with offset 0 and M clear (RFC 6946).
    let atomic = ipv6(44, &frag6(17, 0, false, 9, &udp(40000, 53, 0)));
    assert_eq!(
        parser.parse(LinkType::Raw, &atomic, NOW),
        Parsed::Flow(flow6_of(Transport::Udp, 40000, 53, 56))
    );
    assert_eq!(parser.fragments.live(NOW), 0);
}

#[test]
fn ipv6_fragments_are_credited_to_the_first_fragments_flow() {
    let mut parser = Parser::new();
    let datagram = udp(40000, 53, 3000);
    // First fragment: destination options inside the fragmentable part, then UDP.
    let first = ipv6(
        44,
        &frag6(60, 0, true, 0xdead, &ext(17, 8, &datagram[..1224])),
    );
    let middle = ipv6(44, &frag6(60, 154, true, 0xdead, &datagram[1224..2456]));
    let last = ipv6(44, &frag6(60, 308, false, 0xdead, &datagram[2456..]));
    let lens: Vec<u32> = [&first, &middle, &last]
        .iter()
        .map(|p| {
            let f = flow(parser.parse(LinkType::Raw, p, NOW));
            assert_eq!(f, flow6_of(Transport::Udp, 40000, 53, f.ip_len));
            f.ip_len
        })
        .collect();
    assert_eq!(lens, [40 + 8 + 8 + 1224, 40 + 8 + 1232, 40 + 8 + 552]);
    // Same id from another source: unknown.
    let stranger = ipv6_from(
        Ipv6Addr::LOCALHOST,
        44,
        &frag6(60, 154, true, 0xdead, &[0; 8]),
    );
    assert_eq!(
        parser.parse(LinkType::Raw, &stranger, NOW),
        unattributable(56)
    );
    // And once the table entry expired, unknown too.
    assert_eq!(
        parser.parse(LinkType::Raw, &middle, NOW + FRAGMENT_TTL_MS),
        unattributable(1280)
    );
}

#[test]
fn ipv6_fragment_header_cut_short_is_unattributable() {
    let packet = ipv6(44, &frag6(17, 0, true, 1, &udp(1, 2, 0)));
    for cut in 40..52 {
        assert_eq!(parse(LinkType::Raw, &packet[..cut]), unattributable(56));
    }
}

#[test]
fn fragment_flood_keeps_the_table_bounded() {
    let mut parser = Parser::new();
    let capacity = parser.fragments.capacity();
    let mut header = V4::new(17);
    header.flags_offset = 0x2000;
    for id in 0..=u16::MAX {
        header.id = id;
        let first = header.packet(&udp(id, 53, 8));
        assert!(matches!(
            parser.parse(LinkType::Raw, &first, NOW),
            Parsed::Flow(_)
        ));
    }
    assert!(parser.fragments.live(NOW) <= capacity);
    // The newest datagram's later fragments are still credited.
    header.flags_offset = 2;
    let later = header.packet(&[0; 8]);
    let f = flow(parser.parse(LinkType::Raw, &later, NOW));
    assert_eq!(f.src.port(), u16::MAX);
}

// ---- snaplen ----

#[test]
fn a_128_byte_snaplen_is_enough() {
    // The deepest realistic headers: SLL2 + IPv6 with hop-by-hop and destination options.
    let payload = ext(60, 8, &ext(6, 24, &tcp(40000, 443, 1400)));
    let frame = sll2(0x86dd, 3, 0, &ipv6(0, &payload));
    let f = flow(parse(LinkType::LinuxSll2, &frame[..128]));
    assert_eq!(f.ip_len, 40 + 32 + 1420);
    assert_eq!(f.dst, SocketAddr::from((DST6, 443)));
    // QinQ Ethernet + IPv4 with 40 bytes of options.
    let mut header = V4::new(17);
    header.options = 40;
    let frame = tagged(&[0x88a8, 0x8100], 0x0800, &header.packet(&udp(1, 2, 1400)));
    assert_eq!(
        flow(parse(LinkType::Ethernet, &frame[..128])).ip_len,
        60 + 1408
    );
}

// ---- real captures ----

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// Frames captured with tcpdump 4.99 (libpcap 1.10, Linux 6), snaplen 128, inside a network
/// namespace: lo with MTU 1400 so UDP datagrams of 3000 bytes fragment, and a tun device for
/// outgoing traffic. The expectations are what tcpdump printed for each frame.
#[test]
fn real_captures() {
    let lo4 = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let lo6 = |port| SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let tun4 = |last, port| SocketAddr::from((Ipv4Addr::new(10, 9, 0, last), port));
    let tun6 = |last, port| SocketAddr::from((Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last), port));
    let any_lo = |transport, src, dst, ip_len| FlowPacket {
        direction: Direction::Incoming,
        transport,
        src,
        dst,
        ip_len,
        ifindex: 1,
        tcp: TcpSignal::Data,
    };
    let tun_out = |link, transport, src, dst, ip_len| FlowPacket {
        direction: if link == LinkType::Raw {
            Direction::Unknown
        } else {
            Direction::Outgoing
        },
        transport,
        src,
        dst,
        ip_len,
        ifindex: if link == LinkType::LinuxSll2 { 2 } else { 0 },
        tcp: TcpSignal::Data,
    };
    use LinkType::{Ethernet, LinuxSll, LinuxSll2, Raw};
    use Transport::{Tcp, Udp};
    let cases: Vec<(LinkType, &str, FlowPacket)> = vec![
            // `any`, SLL2: TCP with 100 bytes of data over 127.0.0.1 (captured 128 of 172).
            (
                LinuxSll2,
                "0800000000000001030400060000000000000000450000986b7740004006d0e67f0000017f00000190cc9c41\
                1b35c7fe448fbcec80180040fe8c00000101080a56d46a389c619a1e78787878787878787878787878787878\
                78787878787878787878787878787878787878787878787878787878787878787878787878787878",
                any_lo(Tcp, lo4(37068), lo4(40001), 152),
            ),
            // A 3000-byte UDP datagram in three fragments (ids 21620, offsets 0, 1376, 2752).
            (
                LinuxSll2,
                "08000000000000010304000600000000000000004500057454742000401103037f0000017f000001bf159c42\
                0bc0cb4f79797979797979797979797979797979797979797979797979797979797979797979797979797979\
                79797979797979797979797979797979797979797979797979797979797979797979797979797979",
                any_lo(Udp, lo4(48917), lo4(40002), 1396),
            ),
            (
                LinuxSll2,
                "080000000000000103040006000000000000000045000574547420ac401102577f0000017f00000179797979\
                7979797979797979797979797979797979797979797979797979797979797979797979797979797979797979\
                79797979797979797979797979797979797979797979797979797979797979797979797979797979",
                any_lo(Udp, lo4(48917), lo4(40002), 1396),
            ),
            (
                LinuxSll2,
                "080000000000000103040006000000000000000045000114547401584011260b7f0000017f00000179797979\
                7979797979797979797979797979797979797979797979797979797979797979797979797979797979797979\
                79797979797979797979797979797979797979797979797979797979797979797979797979797979",
                any_lo(Udp, lo4(48917), lo4(40002), 276),
            ),
            // TCP over ::1.
            (
                LinuxSll2,
                "86dd0000000000010304000600000000000000006000f17e0084064000000000000000000000000000000001\
                00000000000000000000000000000001dec49c41116f0e56f2c835de8018003f008c00000101080a739a0ea1\
                c53d5c39787878787878787878787878787878787878787878787878787878787878787878787878",
                any_lo(Tcp, lo6(57028), lo6(40001), 172),
            ),
            // A 3000-byte UDP datagram over ::1 in three fragments (id 0xe3bb861b).
            (
                LinuxSll2,
                "86dd0000000000010304000600000000000000006005a5a205502c4000000000000000000000000000000001\
                0000000000000000000000000000000111000001e3bb861b948f9c420bc0f3d6797979797979797979797979\
                79797979797979797979797979797979797979797979797979797979797979797979797979797979",
                any_lo(Udp, lo6(38031), lo6(40002), 1400),
            ),
            (
                LinuxSll2,
                "86dd0000000000010304000600000000000000006005a5a205502c4000000000000000000000000000000001\
                0000000000000000000000000000000111000549e3bb861b7979797979797979797979797979797979797979\
                79797979797979797979797979797979797979797979797979797979797979797979797979797979",
                any_lo(Udp, lo6(38031), lo6(40002), 1400),
            ),
            (
                LinuxSll2,
                "86dd0000000000010304000600000000000000006005a5a201382c4000000000000000000000000000000001\
                0000000000000000000000000000000111000a90e3bb861b7979797979797979797979797979797979797979\
                79797979797979797979797979797979797979797979797979797979797979797979797979797979",
                any_lo(Udp, lo6(38031), lo6(40002), 352),
            ),
            // lo itself: Ethernet with zero MACs, the same TCP segments.
            (
                Ethernet,
                "0000000000000000000000000800450000986b7740004006d0e67f0000017f00000190cc9c411b35c7fe448f\
                bcec80180040fe8c00000101080a56d46a389c619a1e78787878787878787878787878787878787878787878\
                78787878787878787878787878787878787878787878787878787878787878787878787878787878",
                FlowPacket {
                    direction: Direction::Unknown,
                    ifindex: 0,
                    tcp: TcpSignal::Data,
                    ..any_lo(Tcp, lo4(37068), lo4(40001), 152)
                },
            ),
            (
                Ethernet,
                "00000000000000000000000086dd6000f17e0084064000000000000000000000000000000001000000000000\
                00000000000000000001dec49c41116f0e56f2c835de8018003f008c00000101080a739a0ea1c53d5c397878\
                78787878787878787878787878787878787878787878787878787878787878787878787878787878",
                FlowPacket {
                    direction: Direction::Unknown,
                    ifindex: 0,
                    tcp: TcpSignal::Data,
                    ..any_lo(Tcp, lo6(57028), lo6(40001), 172)
                },
            ),
            // Outgoing UDP through a tun device (ARPHRD_NONE 0xfffe, ifindex 2): SLL2, SLL, raw.
            (
                LinuxSll2,
                "0800000000000002fffe0400000000000000000045000026dd8a4000401149280a0900010a090002bb1c9c43\
                00122ff17a7a7a7a7a7a7a7a7a7a",
                tun_out(LinuxSll2, Udp, tun4(1, 47900), tun4(2, 40003), 38),
            ),
            (
                LinuxSll2,
                "86dd000000000002fffe040000000000000000006009d3f400121140fd000000000000000000000000000001\
                fd000000000000000000000000000002ed209c44001217fc7a7a7a7a7a7a7a7a7a7a",
                tun_out(LinuxSll2, Udp, tun6(1, 60704), tun6(2, 40004), 58),
            ),
            (
                LinuxSll,
                "0004fffe00000000000000000000080045000026dd8a4000401149280a0900010a090002bb1c9c4300122ff1\
                7a7a7a7a7a7a7a7a7a7a",
                tun_out(LinuxSll, Udp, tun4(1, 47900), tun4(2, 40003), 38),
            ),
            (
                LinuxSll,
                "0004fffe0000000000000000000086dd6009d3f400121140fd000000000000000000000000000001fd000000\
                000000000000000000000002ed209c44001217fc7a7a7a7a7a7a7a7a7a7a",
                tun_out(LinuxSll, Udp, tun6(1, 60704), tun6(2, 40004), 58),
            ),
            (
                Raw,
                "45000026dd8a4000401149280a0900010a090002bb1c9c4300122ff17a7a7a7a7a7a7a7a7a7a",
                tun_out(Raw, Udp, tun4(1, 47900), tun4(2, 40003), 38),
            ),
            (
                Raw,
                "6009d3f400121140fd000000000000000000000000000001fd000000000000000000000000000002ed209c44\
                001217fc7a7a7a7a7a7a7a7a7a7a",
                tun_out(Raw, Udp, tun6(1, 60704), tun6(2, 40004), 58),
            ),
        ];
    // One parser in capture order, so the later fragments find their first.
    let mut parser = Parser::new();
    for (i, (link, hex, expected)) in cases.into_iter().enumerate() {
        let frame = unhex(hex);
        assert_eq!(
            parser.parse(link, &frame, NOW),
            Parsed::Flow(expected),
            "capture {i}"
        );
    }
}

// ---- robustness ----

/// One frame of every kind the tests build, with its link type.
fn corpus() -> Vec<(LinkType, Vec<u8>)> {
    let v4_tcp = ipv4(6, &tcp(40000, 443, 60));
    let mut v4_options = V4::new(17);
    v4_options.options = 12;
    let v4_options = v4_options.packet(&udp(1, 2, 3));
    let v6_udp = ipv6(17, &udp(40000, 53, 60));
    let v6_chain = ipv6(
        0,
        &ext(43, 8, &ext(51, 16, &ah(60, 12, &ext(6, 8, &tcp(1, 2, 9))))),
    );
    let v6_first_fragment = ipv6(44, &frag6(17, 0, true, 5, &udp(1, 2, 40)));
    let v6_later_fragment = ipv6(44, &frag6(17, 6, true, 5, &[7; 40]));
    let [v4_first_fragment, v4_later_fragment, _] = udp_v4_fragments(3);
    let icmp = ipv4(ICMP, &[8, 0, 0, 0, 0, 1, 0, 1]);
    let mut jumbo = ipv6(0, &{
        let mut h = vec![17, 0, 0xc2, 4, 0, 1, 0, 0];
        h.extend_from_slice(&udp(1, 2, 20));
        h
    });
    jumbo[4..6].copy_from_slice(&[0, 0]);
    let mut corpus = vec![
        (LinkType::Ethernet, ethernet(0x0800, &v4_tcp)),
        (LinkType::Ethernet, padded(ethernet(0x0800, &icmp), 0)),
        (
            LinkType::Ethernet,
            tagged(&[0x88a8, 0x8100], 0x86dd, &v6_chain),
        ),
        (LinkType::Ethernet, tagged(&[0x9100], 0x0800, &v4_options)),
        (LinkType::Ethernet, padded(ethernet(0x0806, &[0; 28]), 0)),
        (LinkType::Ethernet, v4_first_fragment),
        (LinkType::Ethernet, v4_later_fragment),
        (LinkType::LinuxSll, sll(4, ARPHRD_LOOPBACK, 0x0800, &v4_tcp)),
        (LinkType::LinuxSll, sll(0, ARPHRD_ETHER, 0x86dd, &v6_udp)),
        (LinkType::LinuxSll2, sll2(0x86dd, 9, 0, &v6_first_fragment)),
        (LinkType::LinuxSll2, sll2(0x86dd, 9, 0, &v6_later_fragment)),
        (LinkType::LinuxSll2, sll2(0x0800, 9, 4, &v4_options)),
        (LinkType::Null, af_header(2u32.to_ne_bytes(), &v4_tcp)),
        (LinkType::Null, af_header(30u32.to_ne_bytes(), &v6_udp)),
        (LinkType::Loop, af_header(24u32.to_be_bytes(), &v6_chain)),
        (LinkType::Raw, v4_tcp.clone()),
        (LinkType::Raw, jumbo),
        (LinkType::Ipv4, icmp),
        (LinkType::Ipv6, v6_udp),
    ];
    corpus.push((LinkType::Raw, ipv6(ESP, &[0; 24])));
    corpus
}

/// Orders outcomes by how much of the frame they needed.
fn depth(parsed: &Parsed) -> u8 {
    match parsed {
        Parsed::Malformed => 0,
        Parsed::NotIp | Parsed::Unattributable { .. } => 1,
        Parsed::Flow(_) => 2,
    }
}

/// Every prefix of every frame, as a smaller snaplen would capture it: never a panic, and
/// truncation only ever loses knowledge, never changes it — a prefix's length and flow are
/// the whole frame's, and a longer prefix never knows less.
#[test]
fn every_prefix_is_safe_and_consistent() {
    for (link, frame) in corpus() {
        let wire = frame.len() as u32;
        let full = Parser::new().parse_wire(link, &frame, wire, NOW);
        let mut deepest = 0;
        for cut in 0..=frame.len() {
            let parsed = Parser::new().parse_wire(link, &frame[..cut], wire, NOW);
            let ctx = format!("{link:?} cut {cut} of {}", frame.len());
            assert!(
                depth(&parsed) >= deepest,
                "knew less with more bytes: {ctx}: {parsed:?} vs {full:?}"
            );
            deepest = depth(&parsed);
            assert_prefix_agrees(parsed, full, &ctx);
        }
        assert_eq!(deepest, depth(&full));
    }
}

/// xorshift64: deterministic pseudo-random bytes without a crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What must hold of any answer: an IP length is at least a bare IPv4 header.
fn check_invariants(parsed: &Parsed) {
    match parsed {
        Parsed::Flow(FlowPacket { ip_len, .. }) | Parsed::Unattributable { ip_len, .. } => {
            assert!(*ip_len >= 20, "{parsed:?}")
        }
        Parsed::NotIp | Parsed::Malformed => {}
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut parser = Parser::new();
    let mut buf = [0u8; 200];
    for link in LinkType::ALL {
        for i in 0..20_000u64 {
            let len = rng.below(buf.len() + 1);
            for b in buf.iter_mut().take(len) {
                *b = rng.next() as u8;
            }
            let frame = &buf[..len];
            check_invariants(&parser.parse(link, frame, NOW + i));
            // Any byte can be read as any link type.
            let other = LinkType::ALL[rng.below(LinkType::ALL.len())];
            check_invariants(&parser.parse(other, frame, NOW + i));
        }
    }
}

/// Random bytes rarely get past a link header; corrupting valid frames reaches every
/// branch below it (and the fragment table, with one parser throughout).
#[test]
fn corrupted_frames_never_panic() {
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    let mut parser = Parser::new();
    let corpus = corpus();
    for i in 0..200_000u64 {
        let (link, frame) = &corpus[rng.below(corpus.len())];
        let mut frame = frame.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(frame.len());
            frame[at] = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                2 => frame[at] ^ (1 << rng.below(8)),
                _ => rng.next() as u8,
            };
        }
        let cut = rng.below(frame.len() + 1);
        let wire = rng.next() as u32;
        check_invariants(&parser.parse_wire(*link, &frame[..cut], wire, NOW + i));
        check_invariants(&parser.parse(*link, &frame, NOW + i));
    }
}

/// Property tests: frames built from random fields through a small builder of their own
/// (any addresses, ports, flags, IPv4 options, IPv6 extension headers, VLAN tags, link
/// headers and trailing link padding) give those fields back; arbitrary bytes never panic.
mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Datagram {
        src: IpAddr,
        dst: IpAddr,
        transport: Transport,
        ports: (u16, u16),
        tcp_flags: u8,
        payload: usize,
        /// IPv4 option bytes (a multiple of 4, at most 40).
        v4_options: usize,
        /// IPv6 extension headers: (next-header kind, length in bytes).
        v6_extensions: Vec<(u8, usize)>,
    }

    #[derive(Debug, Clone)]
    enum Frame {
        Ethernet { tags: Vec<u16> },
        Null { af: u32 },
        Loop { af: u32 },
        Raw,
        Bare,
        Sll { pkttype: u16 },
        Sll2 { pkttype: u8, ifindex: u32 },
    }

    fn transport() -> impl Strategy<Value = Transport> {
        prop_oneof![Just(Transport::Tcp), Just(Transport::Udp)]
    }

    fn extension() -> impl Strategy<Value = (u8, usize)> {
        prop_oneof![
            (prop_oneof![Just(0u8), Just(43), Just(60)], 1usize..=4).prop_map(|(k, n)| (k, n * 8)),
            (3usize..=8).prop_map(|n| (51u8, n * 4)),
        ]
    }

    fn datagram() -> impl Strategy<Value = Datagram> {
        let v4 = (any::<[u8; 4]>(), any::<[u8; 4]>(), 0usize..=10)
            .prop_map(|(s, d, o)| (IpAddr::from(s), IpAddr::from(d), o * 4, Vec::new()));
        let v6 = (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            prop::collection::vec(extension(), 0..=4),
        )
            .prop_map(|(s, d, e)| (IpAddr::from(s), IpAddr::from(d), 0, e));
        (
            prop_oneof![v4, v6],
            transport(),
            any::<(u16, u16)>(),
            any::<u8>(),
            0usize..200,
        )
            .prop_map(
                |((src, dst, v4_options, v6_extensions), transport, ports, tcp_flags, payload)| {
                    Datagram {
                        src,
                        dst,
                        transport,
                        ports,
                        tcp_flags,
                        payload,
                        v4_options,
                        v6_extensions,
                    }
                },
            )
    }

    fn frame_kind(v6: bool) -> impl Strategy<Value = Frame> {
        let af6 = prop_oneof![Just(10u32), Just(24), Just(28), Just(30)];
        let af = if v6 { af6.boxed() } else { Just(2u32).boxed() };
        prop_oneof![
            prop::collection::vec(
                prop_oneof![Just(0x8100u16), Just(0x88a8), Just(0x9100)],
                0..=3
            )
            .prop_map(|tags| Frame::Ethernet { tags }),
            af.clone().prop_map(|af| Frame::Null { af }),
            af.prop_map(|af| Frame::Loop { af }),
            Just(Frame::Raw),
            Just(Frame::Bare),
            (0u16..8).prop_map(|pkttype| Frame::Sll { pkttype }),
            (0u8..8, any::<u32>()).prop_map(|(pkttype, ifindex)| Frame::Sll2 { pkttype, ifindex }),
        ]
    }

    impl Datagram {
        fn v6(&self) -> bool {
            self.src.is_ipv6()
        }

        /// The transport header and payload.
        fn segment(&self) -> Vec<u8> {
            let (s, d) = self.ports;
            match self.transport {
                Transport::Tcp => {
                    let mut t = tcp(s, d, self.payload);
                    t[13] = self.tcp_flags;
                    t
                }
                Transport::Udp => udp(s, d, self.payload),
            }
        }

        fn protocol(&self) -> u8 {
            match self.transport {
                Transport::Tcp => PROTO_TCP,
                Transport::Udp => PROTO_UDP,
            }
        }

        /// The IP datagram and the offset of its transport header.
        fn packet(&self) -> (Vec<u8>, usize) {
            let segment = self.segment();
            match (self.src, self.dst) {
                (IpAddr::V4(src), IpAddr::V4(dst)) => {
                    let v4 = V4 {
                        options: self.v4_options,
                        src,
                        dst,
                        ..V4::new(self.protocol())
                    };
                    (v4.packet(&segment), 20 + self.v4_options)
                }
                (IpAddr::V6(src), IpAddr::V6(dst)) => {
                    // Extension headers from the innermost out, each naming the next.
                    let mut rest = segment;
                    let mut next = self.protocol();
                    for &(kind, len) in self.v6_extensions.iter().rev() {
                        rest = if kind == PROTO_AH {
                            ah(next, len, &rest)
                        } else {
                            ext(next, len, &rest)
                        };
                        next = kind;
                    }
                    let offset = 40 + self.v6_extensions.iter().map(|e| e.1).sum::<usize>();
                    (ipv6_between(src, dst, next, &rest), offset)
                }
                _ => unreachable!("one family per datagram"),
            }
        }

        fn expected_tcp(&self) -> TcpSignal {
            match self.transport {
                Transport::Udp => TcpSignal::Data,
                Transport::Tcp if self.tcp_flags & 0x05 != 0 => TcpSignal::Ends,
                Transport::Tcp if self.tcp_flags & 0x12 == 0x02 => TcpSignal::Opens,
                Transport::Tcp => TcpSignal::Data,
            }
        }
    }

    /// The frame, its link type, its link header length, and what the link tells.
    fn build(
        d: &Datagram,
        kind: &Frame,
        padding: &[u8],
    ) -> (LinkType, Vec<u8>, usize, Direction, u32) {
        let (packet, _) = d.packet();
        let ethertype = if d.v6() { 0x86dd } else { 0x0800 };
        let direction = |pkttype: u16| match pkttype {
            0..=2 => Direction::Incoming,
            3 => Direction::OtherHost,
            4 => Direction::Outgoing,
            _ => Direction::Unknown,
        };
        let (link, mut frame, dir, ifindex) = match kind {
            Frame::Ethernet { tags } => (
                LinkType::Ethernet,
                tagged(tags, ethertype, &packet),
                Direction::Unknown,
                0,
            ),
            Frame::Null { af } => (
                LinkType::Null,
                af_header(af.to_ne_bytes(), &packet),
                Direction::Unknown,
                0,
            ),
            Frame::Loop { af } => (
                LinkType::Loop,
                af_header(af.to_be_bytes(), &packet),
                Direction::Unknown,
                0,
            ),
            Frame::Raw => (LinkType::Raw, packet.clone(), Direction::Unknown, 0),
            Frame::Bare if d.v6() => (LinkType::Ipv6, packet.clone(), Direction::Unknown, 0),
            Frame::Bare => (LinkType::Ipv4, packet.clone(), Direction::Unknown, 0),
            Frame::Sll { pkttype } => (
                LinkType::LinuxSll,
                sll(*pkttype, ARPHRD_ETHER, ethertype, &packet),
                direction(*pkttype),
                0,
            ),
            Frame::Sll2 { pkttype, ifindex } => (
                LinkType::LinuxSll2,
                sll2(ethertype, *ifindex, *pkttype, &packet),
                direction(u16::from(*pkttype)),
                *ifindex,
            ),
        };
        let link_header = frame.len() - packet.len();
        frame.extend_from_slice(padding);
        (link, frame, link_header, dir, ifindex)
    }

    proptest! {
        /// A valid TCP or UDP datagram over any link gives its fields back, whatever link
        /// padding follows it; a capture cut anywhere after the ports gives the same flow
        /// (the TCP flags only when they were captured), and never panics before.
        #[test]
        fn built_frames_round_trip(
            (d, kind) in datagram().prop_flat_map(|d| {
                let v6 = d.v6();
                (Just(d), frame_kind(v6))
            }),
            padding in prop::collection::vec(any::<u8>(), 0..16),
            cut in any::<prop::sample::Index>(),
        ) {
            let (link, frame, link_header, direction, ifindex) = build(&d, &kind, &padding);
            let (packet, transport_at) = d.packet();
            let expected = FlowPacket {
                direction,
                transport: d.transport,
                src: SocketAddr::new(d.src, d.ports.0),
                dst: SocketAddr::new(d.dst, d.ports.1),
                ip_len: packet.len() as u32,
                ifindex,
                tcp: d.expected_tcp(),
            };
            prop_assert_eq!(Parser::new().parse(link, &frame, NOW), Parsed::Flow(expected));

            let ports_end = link_header + transport_at + 4;
            let cut = cut.index(frame.len() + 1);
            let wire = frame.len() as u32;
            let parsed = Parser::new().parse_wire(link, &frame[..cut], wire, NOW);
            if cut >= ports_end + 10 {
                prop_assert_eq!(parsed, Parsed::Flow(expected));
            } else if cut >= ports_end {
                prop_assert!(
                    matches!(parsed, Parsed::Flow(f) if f == FlowPacket { tcp: f.tcp, ..expected }),
                    "{:?}", parsed
                );
            } else {
                prop_assert!(!matches!(parsed, Parsed::Flow(_)), "{:?}", parsed);
            }
        }

        /// A datagram cut in fragments (IPv4 or IPv6, any id, any fragment size): every
        /// fragment is credited to the first fragment's flow with its own length, in one
        /// parser; alone, a later fragment is unattributable.
        #[test]
        fn fragments_follow_their_first(
            v6 in any::<bool>(),
            transport in transport(),
            ports in any::<(u16, u16)>(),
            id in any::<u32>(),
            payload in 16usize..600,
            unit in 1usize..8,
            ifindex in any::<u32>(),
        ) {
            let protocol = if transport == Transport::Tcp { PROTO_TCP } else { PROTO_UDP };
            let segment = match transport {
                Transport::Tcp => tcp(ports.0, ports.1, payload),
                Transport::Udp => udp(ports.0, ports.1, payload),
            };
            let piece = unit * 8;
            let mut parser = Parser::new();
            let mut at = 0;
            while at < segment.len() {
                let end = (at + piece).min(segment.len());
                let more = end < segment.len();
                let body = &segment[at..end];
                let (packet, ethertype) = if v6 {
                    (ipv6(PROTO_FRAGMENT, &frag6(protocol, (at / 8) as u16, more, id, body)), 0x86dd)
                } else {
                    let mut v4 = V4::new(protocol);
                    v4.id = id as u16;
                    v4.flags_offset = (at / 8) as u16 | if more { 0x2000 } else { 0 };
                    (v4.packet(body), 0x0800)
                };
                let frame = sll2(ethertype, ifindex, 0, &packet);
                let (src, dst) = if v6 {
                    (IpAddr::V6(SRC6), IpAddr::V6(DST6))
                } else {
                    (IpAddr::V4(SRC4), IpAddr::V4(DST4))
                };
                let parsed = parser.parse(LinkType::LinuxSll2, &frame, NOW);
                let Parsed::Flow(f) = parsed else {
                    return Err(TestCaseError::fail(format!("fragment at {at}: {parsed:?}")));
                };
                prop_assert_eq!(f.transport, transport);
                prop_assert_eq!((f.src, f.dst), (SocketAddr::new(src, ports.0), SocketAddr::new(dst, ports.1)));
                prop_assert_eq!(f.ip_len, packet.len() as u32);
                prop_assert_eq!(f.ifindex, ifindex);
                if at > 0 {
                    prop_assert_eq!(
                        Parser::new().parse(LinkType::LinuxSll2, &frame, NOW),
                        Parsed::Unattributable { direction: Direction::Incoming, ip_len: packet.len() as u32 }
                    );
                }
                at = end;
            }
        }

        /// Arbitrary bytes as any link type, with any wire length: no panic, and an IP
        /// length of at least a bare header.
        #[test]
        fn arbitrary_bytes_never_panic(
            link in prop::sample::select(LinkType::ALL.to_vec()),
            frame in prop::collection::vec(any::<u8>(), 0..256),
            wire in any::<u32>(),
        ) {
            let mut parser = Parser::new();
            check_invariants(&parser.parse(link, &frame, NOW));
            check_invariants(&parser.parse_wire(link, &frame, wire, NOW));
        }
    }
}

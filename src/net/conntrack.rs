//! Which flows the kernel's connection tracker knows as NATed, read through netlink
//! `NETLINK_NETFILTER` (ctnetlink, the interface of the `conntrack` tool). It owns the wire
//! format of the one request it needs — an exact get by tuple — hand-written like
//! [`super::sockdiag`], on [`super::netlink`]'s plumbing: a 4-byte `nfgenmsg` and a dozen
//! attributes do not justify a netlink crate, and owning the parser lets it refuse malformed
//! kernel data with an error instead of a panic.
//!
//! Why: on the host's uplink, NATed traffic (Docker or Kubernetes masquerade, port forwards)
//! carries the host's own address and a port no local socket has, so sock_diag finds no
//! socket for it. Such bytes are not "a local socket we failed to resolve"; conntrack says what
//! they are. An exact get runs the hash lookup the kernel runs for every packet and answers in
//! microseconds whatever the size of the table, where `/proc/net/nf_conntrack` or a dump prints
//! every entry.
//!
//! Kernel behaviour this module relies on (net/netfilter/nf_conntrack_netlink.c
//! `ctnetlink_get_conntrack`, net/netfilter/nfnetlink.c, net/netfilter/nf_nat_core.c):
//! - The get hashes the tuple it is given and looks it up with `nf_conntrack_find_get`, which
//!   matches an entry by its original *or* its reply tuple: both directions of every entry are
//!   in the one hash table. So the tuple of the packets that travel towards the host,
//!   remote -> local, finds a port forward (DNAT: that is the original direction, client ->
//!   host:8080, before translation) and a masqueraded connection (SNAT: that is the reply
//!   direction, peer -> host:natport) alike, in one request. Whether the tuple is sent as
//!   `CTA_TUPLE_ORIG` or `CTA_TUPLE_REPLY` makes no difference to the lookup.
//! - Only the default zone is searched (no `CTA_ZONE`): entries that a ruleset put in another
//!   conntrack zone are not found.
//! - No entry: `NLMSG_ERROR` with `-ENOENT`. An entry: one `IPCTNL_MSG_CT_NEW` message, and no
//!   acknowledgement after it (the request does not ask for one).
//! - Every nfnetlink request needs `CAP_NET_ADMIN` over the namespace's user namespace, in the
//!   task that sends it (`netlink_net_capable`; the opener's capabilities are not looked at
//!   because each request is sent to an explicit address): without it the socket opens but
//!   every request is refused with `EPERM`.
//! - `IPS_SRC_NAT` / `IPS_DST_NAT` are set by `nf_nat_setup_info` only when the translation
//!   changed the tuple; a NAT rule that leaves a connection as it was (a null binding) sets
//!   neither. Masquerade that keeps the source port still changes the address.
//! - Entries exist only while something in the namespace needs connection tracking (a NAT
//!   table, a rule matching `ct state`, ...): the hooks are registered per namespace and per
//!   family on demand (an `ip` table tracks IPv4 only, an `inet` one both). While they are,
//!   loopback traffic is tracked like any other, without NAT.
//! - Addresses, ports and `CTA_STATUS` are in network byte order; attribute headers in host
//!   order. Nested attributes are sent with `NLA_F_NESTED` (the kernel accepts either).
//! - A [`Conntrack`] speaks for the network namespace its socket was created in, whichever
//!   thread uses it later: each namespace has its own table.

pub use super::packet::Transport;

use super::netlink::{
    attributes, begin_nested, end_nested, exact_answer, message, put_attribute, RecvBuffer, Socket,
    NLM_F_REQUEST,
};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// How the connection tracker translated a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Nat {
    /// Source NAT (SNAT, masquerade): the initiator's address or port was replaced, so the
    /// host's side of the flow is a translation, not a socket.
    pub source: bool,
    /// Destination NAT (DNAT: port forwards, REDIRECT): the connection was sent on to another
    /// address or port than the one it was addressed to.
    pub destination: bool,
}

// linux/netfilter/nfnetlink.h, linux/netfilter/nfnetlink_conntrack.h,
// linux/netfilter/nf_conntrack_common.h.
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
/// nfnetlink message types carry the subsystem in the high byte.
const CT_GET: u16 = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
const CT_NEW: u16 = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
/// `struct nfgenmsg`: family, version, resource id (big-endian).
const NFGENMSG_LEN: usize = 4;
const NFNETLINK_V0: u8 = 0;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const IPS_SRC_NAT: u32 = 0x10;
const IPS_DST_NAT: u32 = 0x20;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// An entry is a few hundred bytes (tuples, status, counters, timestamps, protocol state); an
/// error echoes the request. A reply that does not fit is reported as an error rather than
/// read in part.
const RECV_BUFFER: usize = 16 * 1024;

/// A NETLINK_NETFILTER socket in the namespace of the thread that created it, and its
/// request and receive buffers, reused for every request.
pub struct Conntrack {
    socket: Socket,
}

/// One direction of a tracked connection, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tuple {
    protocol: u8,
    /// Port 0 for protocols without ports.
    src: SocketAddr,
    dst: SocketAddr,
}

/// The parts of a conntrack entry this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    original: Option<Tuple>,
    reply: Option<Tuple>,
    /// `CTA_STATUS`: the `IPS_*` bits.
    status: Option<u32>,
}

impl Entry {
    /// The entry's NAT, `None` when it has none. The status bits say it directly; without
    /// them (never seen, but the attribute is not promised) the tuples are compared: each
    /// direction's source is the other's destination unless a translation changed it.
    fn nat(&self) -> io::Result<Option<Nat>> {
        let nat = match (self.status, self.original, self.reply) {
            (Some(status), _, _) => Nat {
                source: status & IPS_SRC_NAT != 0,
                destination: status & IPS_DST_NAT != 0,
            },
            (None, Some(original), Some(reply)) => Nat {
                source: original.src != reply.dst,
                destination: original.dst != reply.src,
            },
            _ => return Err(malformed("an entry with neither status nor both tuples")),
        };
        Ok((nat.source || nat.destination).then_some(nat))
    }
}

impl Conntrack {
    /// A socket in the calling thread's current network namespace. Opening needs no
    /// privilege; requests need `CAP_NET_ADMIN` (see the module comment).
    pub fn new() -> io::Result<Conntrack> {
        let socket = Socket::open(
            Some(rustix::net::netlink::NETFILTER),
            RecvBuffer::Fixed(RECV_BUFFER),
        )?;
        Ok(Conntrack { socket })
    }

    /// Whether the flow between `local` (the host's address and port) and `remote` (the peer)
    /// belongs to a NATed connection: a port forward's packets before translation, or a
    /// masqueraded connection's packets on the outside. `None` when conntrack has no entry
    /// for the flow, or one without NAT (the host's own connections while tracking is on).
    ///
    /// NAT does not always mean "no local socket": a REDIRECT (or DNAT to one of the host's
    /// addresses) hands the connection to a local socket at the translated port, and the
    /// host's own connections may be source-NATed on the way out. Only for flows sock_diag
    /// found no socket for does NAT say "not ours".
    ///
    /// `local` and `remote` must be of one family; IPv4-mapped IPv6 addresses count as IPv4,
    /// which is how the kernel tracks such traffic. `EPERM` means the calling thread lacks
    /// `CAP_NET_ADMIN`; its later requests will fail the same way.
    pub fn nat(
        &mut self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> io::Result<Option<Nat>> {
        let (local, remote) = same_family(local, remote)?;
        // The direction towards the host; the lookup finds the entry whichever of its two
        // tuples this is (see the module comment).
        match self.get(CTA_TUPLE_ORIG, transport, remote, local)? {
            Some(entry) => entry.nat(),
            None => Ok(None),
        }
    }

    /// The entry one of whose tuples is `src -> dst`, the tuple sent as `attribute`
    /// (`CTA_TUPLE_ORIG` or `CTA_TUPLE_REPLY`).
    fn get(
        &mut self,
        attribute: u16,
        transport: Transport,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> io::Result<Option<Entry>> {
        let seq = self
            .socket
            .send(|out, seq| build_get(out, seq, attribute, transport, src, dst))?;
        self.socket.receive_until(|datagram| answer(datagram, seq))
    }
}

/// Both ends in one family: IPv4, with IPv4-mapped IPv6 addresses turned back into IPv4, or
/// IPv6.
fn same_family(local: SocketAddr, remote: SocketAddr) -> io::Result<(SocketAddr, SocketAddr)> {
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(ip) => ip.to_ipv4_mapped(),
    };
    match (v4(local.ip()), v4(remote.ip())) {
        (Some(l), Some(r)) => Ok((
            SocketAddr::new(l.into(), local.port()),
            SocketAddr::new(r.into(), remote.port()),
        )),
        (None, None) => Ok((local, remote)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("local {local} and remote {remote} are of different address families"),
        )),
    }
}

/// An `IPCTNL_MSG_CT_GET` request for the tuple `src -> dst` into `out`: nlmsghdr, nfgenmsg,
/// then the tuple nested as `attribute` { CTA_TUPLE_IP { src, dst }, CTA_TUPLE_PROTO { number,
/// ports } }. `src` and `dst` must be of one family (see [`same_family`]).
fn build_get(
    out: &mut Vec<u8>,
    seq: u32,
    attribute: u16,
    transport: Transport,
    src: SocketAddr,
    dst: SocketAddr,
) {
    let protocol = match transport {
        Transport::Tcp => IPPROTO_TCP,
        Transport::Udp => IPPROTO_UDP,
    };
    let family = match (src, dst) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => AF_INET,
        _ => AF_INET6,
    };
    // An exact get: no NLM_F_DUMP, and no NLM_F_ACK, so a found entry is one message.
    message(out, CT_GET, NLM_F_REQUEST, seq, |out| {
        // struct nfgenmsg: the family decides how CTA_TUPLE_IP is read; res_id 0.
        out.extend_from_slice(&[family, NFNETLINK_V0, 0, 0]);
        let tuple = begin_nested(out, attribute);
        let ip = begin_nested(out, CTA_TUPLE_IP);
        match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                put_attribute(out, CTA_IP_V4_SRC, &s.octets());
                put_attribute(out, CTA_IP_V4_DST, &d.octets());
            }
            (s, d) => {
                put_attribute(out, CTA_IP_V6_SRC, &v6_octets(s));
                put_attribute(out, CTA_IP_V6_DST, &v6_octets(d));
            }
        }
        end_nested(out, ip);
        let proto = begin_nested(out, CTA_TUPLE_PROTO);
        put_attribute(out, CTA_PROTO_NUM, &[protocol]);
        put_attribute(out, CTA_PROTO_SRC_PORT, &src.port().to_be_bytes());
        put_attribute(out, CTA_PROTO_DST_PORT, &dst.port().to_be_bytes());
        end_nested(out, proto);
        end_nested(out, tuple);
    });
}

fn v6_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V6(ip) => ip.octets(),
        IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
    }
}

/// What one datagram says about request `seq` (see [`exact_answer`]): `None` when it holds
/// nothing for it (a late answer to an earlier request that gave up waiting), else the entry or
/// its absence, which the kernel says with `ENOENT`.
fn answer(datagram: &[u8], seq: u32) -> io::Result<Option<Option<Entry>>> {
    match exact_answer(datagram, seq, CT_NEW, parse_entry) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Some(None)),
        answer => answer,
    }
}

/// An `IPCTNL_MSG_CT_NEW` message: nfgenmsg, then the entry's attributes (those not read
/// here are skipped).
fn parse_entry(payload: &[u8]) -> io::Result<Entry> {
    let Some(attrs) = payload.get(NFGENMSG_LEN..) else {
        return Err(malformed("truncated nfgenmsg"));
    };
    let mut entry = Entry {
        original: None,
        reply: None,
        status: None,
    };
    for attribute in attributes(attrs) {
        let (kind, value) = attribute?;
        match kind {
            CTA_TUPLE_ORIG => entry.original = Some(parse_tuple(value)?),
            CTA_TUPLE_REPLY => entry.reply = Some(parse_tuple(value)?),
            CTA_STATUS => {
                let b = value
                    .get(..4)
                    .ok_or_else(|| malformed("short CTA_STATUS"))?;
                entry.status = Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            }
            _ => {}
        }
    }
    Ok(entry)
}

/// A `CTA_TUPLE_ORIG` or `CTA_TUPLE_REPLY` nest.
fn parse_tuple(data: &[u8]) -> io::Result<Tuple> {
    let (mut src, mut dst, mut protocol) = (None, None, None);
    let (mut sport, mut dport) = (0, 0);
    for attribute in attributes(data) {
        let (kind, value) = attribute?;
        match kind {
            CTA_TUPLE_IP => {
                for nested in attributes(value) {
                    let (kind, value) = nested?;
                    let slot = match kind {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => &mut src,
                        CTA_IP_V4_DST | CTA_IP_V6_DST => &mut dst,
                        _ => continue,
                    };
                    let ip = match kind {
                        CTA_IP_V4_SRC | CTA_IP_V4_DST => value
                            .get(..4)
                            .map(|b| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
                        _ => value
                            .get(..16)
                            .and_then(|b| <[u8; 16]>::try_from(b).ok())
                            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
                    };
                    *slot = Some(ip.ok_or_else(|| malformed("short address attribute"))?);
                }
            }
            CTA_TUPLE_PROTO => {
                for nested in attributes(value) {
                    let (kind, value) = nested?;
                    let port = || match value.get(..2) {
                        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
                        None => Err(malformed("short port attribute")),
                    };
                    match kind {
                        CTA_PROTO_NUM => {
                            let number =
                                value.first().ok_or_else(|| malformed("empty protocol"))?;
                            protocol = Some(*number);
                        }
                        CTA_PROTO_SRC_PORT => sport = port()?,
                        CTA_PROTO_DST_PORT => dport = port()?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    match (src, dst, protocol) {
        (Some(src), Some(dst), Some(protocol)) => Ok(Tuple {
            protocol,
            src: SocketAddr::new(src, sport),
            dst: SocketAddr::new(dst, dport),
        }),
        _ => Err(malformed("a tuple without its addresses or protocol")),
    }
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("ctnetlink: {what}"))
}

/// Entry point of the `netlink` fuzz target (`fuzz/`, built with `--cfg fuzzing` only): one
/// arbitrary datagram read as the answer to a conntrack lookup, and as a bare entry.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz_datagram(datagram: &[u8]) {
    if let Ok(Some(Some(entry))) = answer(datagram, super::netlink::fuzz_seq(datagram)) {
        let _ = entry.nat();
    }
    if let Ok(entry) = parse_entry(datagram) {
        if let Ok(Some(nat)) = entry.nat() {
            assert!(nat.source || nat.destination);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::netlink::{NLMSG_DONE, NLMSG_HDRLEN};
    use std::fs::File;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    // Whole reply datagrams captured from a 6.18 kernel by the live test's setup (an inet
    // table with masquerade and a port forward), each the answer to the request whose
    // sequence number it carries.

    /// seq 3: a TCP connection over loopback, 127.0.0.1:42316 -> 127.0.0.1:40903; status
    /// 0x18e (SEEN_REPLY, ASSURED, CONFIRMED, SRC_NAT_DONE, DST_NAT_DONE), no NAT.
    const LOOPBACK4: &str = concat!(
        "d40000000001020003000000b76e0000020000003400018014000180080001007f000001080002007f00",
        "00011c000280050001000600000006000200a54c0000060003009fc700003400028014000180080001",
        "007f000001080002007f0000011c0002800500010006000000060002009fc7000006000300a54c0000",
        "080003000000018e080008000000000008000c00e0b1b2c008000b000000000208000700000697803000",
        "04802c0001800500010003000000050002000a000000050003000a000000060004002300000006000500",
        "23000000",
    );
    /// seq 4: masquerade. Original 10.203.251.2:49506 -> 10.203.252.2:38857, reply
    /// 10.203.252.2:38857 -> 10.203.252.1:49506; status 0x19e (SRC_NAT among them).
    const MASQUERADE: &str = concat!(
        "d40000000001020004000000b76e0000020000003400018014000180080001000acbfb02080002000acb",
        "fc021c000280050001000600000006000200c16200000600030097c900003400028014000180080001",
        "000acbfc02080002000acbfc011c00028005000100060000000600020097c9000006000300c1620000",
        "080003000000019e080008000000000008000c001999017e08000b000000000208000700000697803000",
        "04802c0001800500010003000000050002000a000000050003000a000000060004002300000006000500",
        "23000000",
    );
    /// seq 5: no entry for 10.203.252.2:1 -> 10.203.252.1:2 — NLMSG_ERROR -ENOENT, followed by
    /// the kernel's copy of the request.
    const NO_ENTRY: &str = concat!(
        "5c0000000200000005000000b76e0000feffffff48000000010101000500000000000000020000003400",
        "018014000180080001000acbfc02080002000acbfc011c00028005000100060000000600020000010000",
        "0600030000020000",
    );
    /// seq 6: a port forward. Original 10.203.252.2:44296 -> 10.203.252.1:18080, reply
    /// 10.203.251.2:8080 -> 10.203.252.2:44296; status 0x1ae (DST_NAT among them).
    const PORT_FORWARD: &str = concat!(
        "d40000000001020006000000b76e0000020000003400018014000180080001000acbfc02080002000acb",
        "fc011c000280050001000600000006000200ad0800000600030046a0000034000280140001800800010",
        "00acbfb02080002000acbfc021c0002800500010006000000060002001f90000006000300ad08000008",
        "000300000001ae080008000000000008000c00af632a8408000b0000000002080007000006978030000",
        "4802c0001800500010003000000050002000a000000050003000a0000000600040023000000060005002",
        "3000000",
    );
    /// seq 7: a TCP connection over IPv6 loopback, [::1]:35564 -> [::1]:43469; no NAT.
    const LOOPBACK6: &str = concat!(
        "040100000001020007000000b76e00000a0000004c0001802c00018014000300000000000000000000",
        "0000000000000114000400000000000000000000000000000000011c0002800500010006000000060002",
        "008aec000006000300a9cd00004c0002802c0001801400030000000000000000000000000000000001",
        "14000400000000000000000000000000000000011c000280050001000600000006000200a9cd000006",
        "0003008aec0000080003000000018e080008000000000008000c00874848f108000b0000000002080007",
        "0000069780300004802c0001800500010003000000050002000a000000050003000a00000006000400",
        "230000000600050023000000",
    );

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len() / 2)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn tcp(src: &str, dst: &str) -> Tuple {
        Tuple {
            protocol: IPPROTO_TCP,
            src: addr(src),
            dst: addr(dst),
        }
    }

    /// The entry a fixture answers with.
    fn entry_of(fixture: &str, seq: u32) -> Entry {
        answer(&hex(fixture), seq).unwrap().unwrap().unwrap()
    }

    fn request(seq: u32, attribute: u16, transport: Transport, src: &str, dst: &str) -> Vec<u8> {
        let mut out = Vec::new();
        build_get(&mut out, seq, attribute, transport, addr(src), addr(dst));
        out
    }

    #[test]
    fn ipv4_request_layout() {
        let expected = [
            // nlmsghdr: length 72, type 0x0101 (ctnetlink, IPCTNL_MSG_CT_GET), NLM_F_REQUEST,
            // seq 5, port id 0.
            "48000000", "0101", "0100", "05000000", "00000000",
            // nfgenmsg: AF_INET, version 0, res_id 0.
            "02000000", // CTA_TUPLE_ORIG | NLA_F_NESTED, 52 bytes.
            "3400", "0180",
            // CTA_TUPLE_IP | NLA_F_NESTED, 20 bytes: CTA_IP_V4_SRC, CTA_IP_V4_DST.
            "1400", "0180", "0800", "0100", "0acbfc02", "0800", "0200", "0acbfc01",
            // CTA_TUPLE_PROTO | NLA_F_NESTED, 28 bytes: CTA_PROTO_NUM 6 (padded),
            // CTA_PROTO_SRC_PORT 1 and CTA_PROTO_DST_PORT 2, big-endian (padded).
            "1c00", "0280", "0500", "0100", "06000000", "0600", "0200", "00010000", "0600", "0300",
            "00020000",
        ]
        .concat();
        let built = request(
            5,
            CTA_TUPLE_ORIG,
            Transport::Tcp,
            "10.203.252.2:1",
            "10.203.252.1:2",
        );
        assert_eq!(built, hex(&expected));
        // The kernel echoes a refused request after the error code: it is byte for byte ours.
        let echo = hex(NO_ENTRY);
        assert_eq!(&echo[NLMSG_HDRLEN + 4..], &built[..]);
    }

    #[test]
    fn ipv6_request_layout() {
        let expected = [
            // nlmsghdr: length 96; nfgenmsg AF_INET6.
            "60000000",
            "0101",
            "0100",
            "07000000",
            "00000000",
            "0a000000",
            // CTA_TUPLE_REPLY | NLA_F_NESTED, 76 bytes, around CTA_TUPLE_IP (44 bytes:
            // CTA_IP_V6_SRC, CTA_IP_V6_DST) and CTA_TUPLE_PROTO (UDP 17, ports 53 and 40000).
            "4c00",
            "0280",
            "2c00",
            "0180",
            "1400",
            "0300",
            "fd000203000000000000000000000001",
            "1400",
            "0400",
            "fd000203000000000000000000000002",
            "1c00",
            "0280",
            "0500",
            "0100",
            "11000000",
            "0600",
            "0200",
            "00350000",
            "0600",
            "0300",
            "9c400000",
        ]
        .concat();
        let built = request(
            7,
            CTA_TUPLE_REPLY,
            Transport::Udp,
            "[fd00:203::1]:53",
            "[fd00:203::2]:40000",
        );
        assert_eq!(built, hex(&expected));
    }

    #[test]
    fn mapped_addresses_are_asked_as_ipv4() {
        let (local, remote) =
            same_family(addr("[::ffff:10.0.0.1]:80"), addr("10.0.0.2:9")).unwrap();
        assert_eq!((local, remote), (addr("10.0.0.1:80"), addr("10.0.0.2:9")));
        let (local, remote) = same_family(addr("[fd00::1]:80"), addr("[fd00::2]:9")).unwrap();
        assert_eq!((local, remote), (addr("[fd00::1]:80"), addr("[fd00::2]:9")));
        let mixed = same_family(addr("10.0.0.1:80"), addr("[fd00::2]:9")).unwrap_err();
        assert_eq!(mixed.kind(), io::ErrorKind::InvalidInput);
        // The request buffer is reused: a shorter request after a longer one is whole.
        let mut out = Vec::new();
        build_get(
            &mut out,
            1,
            1,
            Transport::Tcp,
            addr("[fd00::1]:1"),
            addr("[fd00::2]:2"),
        );
        build_get(
            &mut out,
            5,
            1,
            Transport::Tcp,
            addr("10.203.252.2:1"),
            addr("10.203.252.1:2"),
        );
        assert_eq!(
            out,
            request(5, 1, Transport::Tcp, "10.203.252.2:1", "10.203.252.1:2")
        );
    }

    #[test]
    fn masquerade_entry_is_source_nat() {
        let entry = entry_of(MASQUERADE, 4);
        assert_eq!(
            entry.original,
            Some(tcp("10.203.251.2:49506", "10.203.252.2:38857"))
        );
        assert_eq!(
            entry.reply,
            Some(tcp("10.203.252.2:38857", "10.203.252.1:49506"))
        );
        assert_eq!(entry.status, Some(0x19e));
        let nat = Nat {
            source: true,
            destination: false,
        };
        assert_eq!(entry.nat().unwrap(), Some(nat));
    }

    #[test]
    fn port_forward_entry_is_destination_nat() {
        let entry = entry_of(PORT_FORWARD, 6);
        assert_eq!(
            entry.original,
            Some(tcp("10.203.252.2:44296", "10.203.252.1:18080"))
        );
        assert_eq!(
            entry.reply,
            Some(tcp("10.203.251.2:8080", "10.203.252.2:44296"))
        );
        let nat = Nat {
            source: false,
            destination: true,
        };
        assert_eq!(entry.nat().unwrap(), Some(nat));
    }

    #[test]
    fn loopback_entries_have_no_nat() {
        let v4 = entry_of(LOOPBACK4, 3);
        assert_eq!(v4.original, Some(tcp("127.0.0.1:42316", "127.0.0.1:40903")));
        assert_eq!(v4.reply, Some(tcp("127.0.0.1:40903", "127.0.0.1:42316")));
        assert_eq!(v4.nat().unwrap(), None);
        let v6 = entry_of(LOOPBACK6, 7);
        assert_eq!(v6.original, Some(tcp("[::1]:35564", "[::1]:43469")));
        assert_eq!(v6.reply, Some(tcp("[::1]:43469", "[::1]:35564")));
        assert_eq!(v6.nat().unwrap(), None);
    }

    #[test]
    fn without_status_the_tuples_tell() {
        for (fixture, seq) in [(MASQUERADE, 4), (PORT_FORWARD, 6), (LOOPBACK4, 3)] {
            let entry = entry_of(fixture, seq);
            let bare = Entry {
                status: None,
                ..entry
            };
            assert_eq!(bare.nat().unwrap(), entry.nat().unwrap(), "{entry:?}");
        }
        let nothing = Entry {
            original: None,
            reply: None,
            status: None,
        };
        assert!(nothing.nat().is_err());
    }

    #[test]
    fn kernel_errors() {
        let no_entry = hex(NO_ENTRY);
        assert_eq!(answer(&no_entry, 5).unwrap(), Some(None));
        // Another request's answer: keep waiting.
        assert_eq!(answer(&no_entry, 4).unwrap(), None);
        assert_eq!(answer(&hex(MASQUERADE), 5).unwrap(), None);
        let with_code = |code: i32| {
            let mut m = no_entry.clone();
            m[NLMSG_HDRLEN..NLMSG_HDRLEN + 4].copy_from_slice(&code.to_ne_bytes());
            answer(&m, 5)
        };
        let denied = with_code(-libc::EPERM).unwrap_err();
        assert_eq!(denied.raw_os_error(), Some(libc::EPERM));
        assert_eq!(
            with_code(-libc::EINVAL).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
        // An acknowledgement: no entry came.
        assert_eq!(with_code(0).unwrap(), Some(None));
        // Codes that are no errno.
        for code in [1, i32::MIN] {
            assert_eq!(
                with_code(code).unwrap_err().kind(),
                io::ErrorKind::InvalidData
            );
        }
        // An entry followed by an acknowledgement in one datagram: the entry.
        let mut both = hex(MASQUERADE);
        let mut ack = no_entry.clone();
        ack[NLMSG_HDRLEN..NLMSG_HDRLEN + 4].copy_from_slice(&0i32.to_ne_bytes());
        ack[8..12].copy_from_slice(&4u32.to_ne_bytes());
        both.extend_from_slice(&ack);
        assert_eq!(
            answer(&both, 4).unwrap(),
            Some(Some(entry_of(MASQUERADE, 4)))
        );
        // NLMSG_DONE, never sent for a get, ends the wait rather than waiting out the timeout.
        let mut done = no_entry[..NLMSG_HDRLEN + 4].to_vec();
        done[0..4].copy_from_slice(&((NLMSG_HDRLEN + 4) as u32).to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        assert_eq!(answer(&done, 5).unwrap(), Some(None));
    }

    /// Every prefix and every single-byte corruption of every fixture: an error or an answer,
    /// never a panic.
    #[test]
    fn truncated_and_garbled_replies_do_not_panic() {
        let fixtures = [
            (LOOPBACK4, 3),
            (MASQUERADE, 4),
            (NO_ENTRY, 5),
            (PORT_FORWARD, 6),
            (LOOPBACK6, 7),
        ];
        let exercise = |bytes: &[u8], seq: u32| {
            if let Ok(Some(Some(entry))) = answer(bytes, seq) {
                let _ = entry.nat();
            }
            if let Some(payload) = bytes.get(NLMSG_HDRLEN..) {
                let _ = parse_entry(payload);
            }
            let _ = parse_tuple(bytes);
        };
        for (fixture, seq) in fixtures {
            let datagram = hex(fixture);
            for cut in 0..datagram.len() {
                exercise(&datagram[..cut], seq);
            }
            for at in 0..datagram.len() {
                for value in [0x00, 0x01, 0x03, 0x80, 0xff] {
                    let mut garbled = datagram.clone();
                    garbled[at] = value;
                    exercise(&garbled, seq);
                }
            }
        }
        // A cut inside the message is an error, not a shorter entry.
        let masquerade = hex(MASQUERADE);
        assert!(answer(&masquerade[..100], 4).is_err());
        assert!(answer(&masquerade[..10], 4).is_err());
        // A payload cut inside an attribute, with a header that agrees: an error too.
        let mut cut = masquerade[..100].to_vec();
        cut[0..4].copy_from_slice(&100u32.to_ne_bytes());
        assert!(answer(&cut, 4).is_err());
        // A tuple without its addresses.
        let payload = &masquerade[NLMSG_HDRLEN + NFGENMSG_LEN..];
        let (_, original) = attributes(payload).next().unwrap().unwrap();
        let (_, ip) = attributes(original).next().unwrap().unwrap();
        assert!(parse_tuple(&original[4 + ip.len()..]).is_err());
    }

    // Live tests: need root (CAP_NET_ADMIN); the NAT test also `nft` and `ip netns`.

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// Undo actions, run in reverse order on drop, even when the test fails.
    #[derive(Default)]
    struct Undo(Vec<Box<dyn FnOnce()>>);

    impl Undo {
        fn later(&mut self, f: impl FnOnce() + 'static) {
            self.0.push(Box::new(f));
        }

        fn command_later(&mut self, program: &'static str, args: &[&str]) {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            self.later(move || {
                run(
                    program,
                    &args.iter().map(String::as_str).collect::<Vec<_>>(),
                );
            });
        }

        /// Writes a sysctl and puts the old value back later (if the interface it belongs to
        /// still exists then).
        fn sysctl(&mut self, path: String, value: &str) {
            let old = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, value).unwrap();
            self.later(move || {
                let _ = std::fs::write(&path, old.trim());
            });
        }
    }

    impl Drop for Undo {
        fn drop(&mut self) {
            while let Some(f) = self.0.pop() {
                f();
            }
        }
    }

    fn run(program: &str, args: &[&str]) -> bool {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn must(program: &str, args: &[&str]) {
        let out = Command::new(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `f` on a new thread inside the namespace `name` (an `ip netns` bind mount) and
    /// returns its result: sockets made there stay in that namespace whichever thread uses
    /// them.
    fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{name}");
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            // SAFETY: setns takes an fd and a flag and touches no memory of ours; the fd is
            // open for the call. Only this thread changes namespace, and it ends after `f`.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }

    fn connect(to: SocketAddr) -> TcpStream {
        TcpStream::connect_timeout(&to, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {to}: {e}"))
    }

    /// Average time of `f` over `n` runs.
    fn time(n: u32, mut f: impl FnMut()) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed() / n
    }

    /// Two namespaces routed through the host: a (10.203.251.0/24) is masqueraded towards b
    /// (10.203.252.0/24), and the host forwards its port 18080 on b's side to a's
    /// 10.203.251.2:8080. The host's side of each is asked about as the resolver would.
    #[test]
    fn live_masquerade_port_forward_and_plain_connections() {
        if !is_root() {
            return eprintln!("SKIP: not root");
        }
        if !run("nft", &["--version"]) {
            return eprintln!("SKIP: nft is missing");
        }
        let pid = std::process::id();
        let (ns_a, ns_b) = (format!("cap-ct-a-{pid}"), format!("cap-ct-b-{pid}"));
        let (host_a, host_b) = (format!("ctha{pid}"), format!("cthb{pid}"));
        let table = format!("capct{pid}");
        let mut undo = Undo::default();
        for (ns, host, subnet) in [(&ns_a, &host_a, 251), (&ns_b, &host_b, 252)] {
            if !run("ip", &["netns", "add", ns]) {
                return eprintln!("SKIP: `ip netns add` failed");
            }
            undo.command_later("ip", &["netns", "del", ns]);
            let inside = format!("ctn{}{pid}", &host[3..4]);
            must(
                "ip",
                &[
                    "link", "add", host, "type", "veth", "peer", "name", &inside, "netns", ns,
                ],
            );
            undo.command_later("ip", &["link", "del", host]);
            // No IPv6 link-local address on the host's ends: nothing for other tests watching
            // the host's addresses to see but the one address each needs.
            let ipv6 = format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6");
            if std::path::Path::new(&ipv6).exists() {
                undo.sysctl(ipv6, "1");
            }
            undo.sysctl(format!("/proc/sys/net/ipv4/conf/{host}/forwarding"), "1");
            must(
                "ip",
                &["addr", "add", &format!("10.203.{subnet}.1/24"), "dev", host],
            );
            must("ip", &["link", "set", host, "up"]);
            let gateway = format!("10.203.{subnet}.1");
            let inside_address = format!("10.203.{subnet}.2/24");
            must(
                "ip",
                &["-n", ns, "addr", "add", &inside_address, "dev", &inside],
            );
            must("ip", &["-n", ns, "link", "set", &inside, "up"]);
            must("ip", &["-n", ns, "link", "set", "lo", "up"]);
            must(
                "ip",
                &["-n", ns, "route", "add", "default", "via", &gateway],
            );
        }
        let mut ct = Conntrack::new().unwrap();

        // Before any NAT rule: the host may track nothing at all.
        let lo = TcpListener::bind("127.0.0.1:0").unwrap();
        let lo_client = TcpStream::connect(lo.local_addr().unwrap()).unwrap();
        let (lc, ls) = (lo_client.local_addr().unwrap(), lo.local_addr().unwrap());
        let before = ct.get(CTA_TUPLE_ORIG, Transport::Tcp, lc, ls).unwrap();
        eprintln!(
            "loopback connection before the NAT table has an entry: {}",
            before.is_some()
        );

        // An inet table: its NAT chains turn tracking on for IPv4 and IPv6.
        let script = format!(
            "table inet {table} {{
                chain post {{
                    type nat hook postrouting priority 100;
                    oifname \"{host_b}\" ip saddr 10.203.251.0/24 masquerade
                }}
                chain pre {{
                    type nat hook prerouting priority -100;
                    iifname \"{host_b}\" tcp dport 18080 dnat ip to 10.203.251.2:8080
                }}
            }}"
        );
        let mut nft = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        nft.stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let loaded = nft.wait().unwrap().success();
        undo.command_later("nft", &["delete", "table", "inet", &table]);
        assert!(loaded, "nft -f: {script}");

        // Masquerade, a -> b: on b's side the host is 10.203.252.1:<natport>.
        let server = in_netns(&ns_b, || TcpListener::bind("10.203.252.2:0").unwrap());
        let server_addr = server.local_addr().unwrap();
        let client = in_netns(&ns_a, move || connect(server_addr));
        let (_accepted, natted) = server.accept().unwrap();
        assert_eq!(natted.ip(), "10.203.252.1".parse::<IpAddr>().unwrap());
        let source_nat = Some(Nat {
            source: true,
            destination: false,
        });
        assert_eq!(
            ct.nat(Transport::Tcp, natted, server_addr).unwrap(),
            source_nat
        );
        // The same entry whichever attribute carries the tuple, and by its original tuple.
        let entry = ct
            .get(CTA_TUPLE_ORIG, Transport::Tcp, server_addr, natted)
            .unwrap();
        let original = Tuple {
            protocol: IPPROTO_TCP,
            src: client.local_addr().unwrap(),
            dst: server_addr,
        };
        assert_eq!(entry.unwrap().original, Some(original));
        let as_reply = ct
            .get(CTA_TUPLE_REPLY, Transport::Tcp, server_addr, natted)
            .unwrap();
        assert_eq!(as_reply, entry);
        let by_original = ct.get(CTA_TUPLE_ORIG, Transport::Tcp, original.src, server_addr);
        assert_eq!(by_original.unwrap(), entry);
        // Asked with the ends swapped it is another flow, which nothing tracks.
        assert_eq!(ct.nat(Transport::Tcp, server_addr, natted).unwrap(), None);
        // IPv4-mapped addresses are the same question.
        let mapped = |a: SocketAddr| match a {
            SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
            v6 => v6,
        };
        let asked_mapped = ct.nat(Transport::Tcp, mapped(natted), mapped(server_addr));
        assert_eq!(asked_mapped.unwrap(), source_nat);

        // Masquerade over UDP.
        let udp_server = in_netns(&ns_b, || UdpSocket::bind("10.203.252.2:0").unwrap());
        let udp_server_addr = udp_server.local_addr().unwrap();
        let _udp_client = in_netns(&ns_a, move || {
            let socket = UdpSocket::bind("10.203.251.2:0").unwrap();
            socket.send_to(b"x", udp_server_addr).unwrap();
            socket
        });
        udp_server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (_, udp_natted) = udp_server.recv_from(&mut [0; 8]).unwrap();
        let udp_nat = ct.nat(Transport::Udp, udp_natted, udp_server_addr).unwrap();
        assert_eq!(udp_nat, source_nat);
        // The same ports over TCP are another connection.
        assert_eq!(
            ct.nat(Transport::Tcp, udp_natted, udp_server_addr).unwrap(),
            None
        );

        // Port forward, b -> host:18080 -> a:8080: on b's side the host is 10.203.252.1:18080.
        let forwarded = in_netns(&ns_a, || TcpListener::bind("10.203.251.2:8080").unwrap());
        let outside = in_netns(&ns_b, || connect(addr("10.203.252.1:18080")));
        let (_forwarded_accepted, seen) = forwarded.accept().unwrap();
        let outside_addr = outside.local_addr().unwrap();
        assert_eq!(
            seen, outside_addr,
            "a port forward keeps the client's address"
        );
        let destination_nat = Some(Nat {
            source: false,
            destination: true,
        });
        let host_end = addr("10.203.252.1:18080");
        assert_eq!(
            ct.nat(Transport::Tcp, host_end, outside_addr).unwrap(),
            destination_nat
        );

        // Routed without NAT, b -> a: tracked, not NATed.
        let direct = in_netns(&ns_b, || connect(addr("10.203.251.2:8080")));
        let (_direct_accepted, direct_peer) = forwarded.accept().unwrap();
        assert_eq!(direct_peer, direct.local_addr().unwrap());
        let direct_end = addr("10.203.251.2:8080");
        assert!(ct
            .get(CTA_TUPLE_ORIG, Transport::Tcp, direct_peer, direct_end)
            .unwrap()
            .is_some());
        assert_eq!(
            ct.nat(Transport::Tcp, direct_end, direct_peer).unwrap(),
            None
        );

        // A host socket's connection with a: tracked, not NATed.
        let host_listener = TcpListener::bind("10.203.251.1:0").unwrap();
        let host_addr = host_listener.local_addr().unwrap();
        let to_host = in_netns(&ns_a, move || connect(host_addr));
        let (_host_accepted, to_host_peer) = host_listener.accept().unwrap();
        assert_eq!(to_host_peer, to_host.local_addr().unwrap());
        assert!(ct
            .get(CTA_TUPLE_ORIG, Transport::Tcp, to_host_peer, host_addr)
            .unwrap()
            .is_some());
        assert_eq!(
            ct.nat(Transport::Tcp, host_addr, to_host_peer).unwrap(),
            None
        );

        // Loopback, IPv4 and IPv6, while tracking is on: entries without NAT.
        let lo_client = TcpStream::connect(ls).unwrap();
        let lc = lo_client.local_addr().unwrap();
        let entry = ct.get(CTA_TUPLE_ORIG, Transport::Tcp, lc, ls).unwrap();
        eprintln!(
            "loopback connection with the NAT table has an entry: {}",
            entry.is_some()
        );
        assert_eq!(ct.nat(Transport::Tcp, ls, lc).unwrap(), None);
        assert_eq!(ct.nat(Transport::Tcp, lc, ls).unwrap(), None);
        if let Ok(lo6) = TcpListener::bind("[::1]:0") {
            let ls6 = lo6.local_addr().unwrap();
            let lo6_client = TcpStream::connect(ls6).unwrap();
            let lc6 = lo6_client.local_addr().unwrap();
            let entry = ct.get(CTA_TUPLE_ORIG, Transport::Tcp, lc6, ls6).unwrap();
            eprintln!("IPv6 loopback connection has an entry: {}", entry.is_some());
            assert_eq!(ct.nat(Transport::Tcp, ls6, lc6).unwrap(), None);
        }

        // No entry at all.
        let (nowhere, no_one) = (addr("10.203.252.1:1"), addr("10.203.252.2:2"));
        assert_eq!(ct.nat(Transport::Tcp, nowhere, no_one).unwrap(), None);
        assert_eq!(ct.nat(Transport::Udp, nowhere, no_one).unwrap(), None);
        let v6 = ct.nat(
            Transport::Tcp,
            addr("[fd00:203:252::1]:1"),
            addr("[fd00:203:252::2]:2"),
        );
        assert_eq!(v6.unwrap(), None);
        let mixed = ct.nat(Transport::Tcp, nowhere, addr("[fd00:203:252::2]:2"));
        assert_eq!(mixed.unwrap_err().kind(), io::ErrorKind::InvalidInput);

        // What it costs.
        let n = 10_000;
        let found = time(n, || {
            assert!(ct
                .nat(Transport::Tcp, natted, server_addr)
                .unwrap()
                .is_some())
        });
        let not_found = time(n, || {
            assert!(ct.nat(Transport::Tcp, nowhere, no_one).unwrap().is_none())
        });
        let open = time(1000, || drop(Conntrack::new().unwrap()));
        eprintln!(
            "COST Conntrack::nat: found (NATed) {found:?}, no entry {not_found:?}; \
             Conntrack::new + close {open:?}"
        );
        // The connections stay open until here.
        drop((client, outside, direct, to_host));
    }

    /// `struct __user_cap_header_struct` and `struct __user_cap_data_struct` (version 3: two
    /// data structs, capabilities 0-31 and 32-63).
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }

    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;

    /// Takes CAP_NET_ADMIN out of the calling thread's effective set (capabilities are per
    /// thread on Linux: the rest of the process keeps it).
    fn drop_net_admin_in_this_thread() {
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        // SAFETY: capget writes one header and two data structs, which is what is passed.
        let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
        assert_eq!(rc, 0, "capget: {}", io::Error::last_os_error());
        data[0].effective &= !(1 << CAP_NET_ADMIN);
        // SAFETY: capset reads one header and two data structs, which is what is passed; pid 0
        // is the calling thread.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
        assert_eq!(rc, 0, "capset: {}", io::Error::last_os_error());
    }

    /// Requests need CAP_NET_ADMIN in the task that sends them; opening the socket does not.
    #[test]
    fn live_requests_need_cap_net_admin() {
        if !is_root() {
            return eprintln!("SKIP: not root");
        }
        let (local, remote) = (addr("10.203.252.1:1"), addr("10.203.252.2:2"));
        let mut privileged = Conntrack::new().unwrap();
        if let Err(e) = privileged.nat(Transport::Tcp, local, remote) {
            return eprintln!("SKIP: root without CAP_NET_ADMIN here: {e}");
        }
        let (opened_without, asked_without) = std::thread::spawn(move || {
            drop_net_admin_in_this_thread();
            let mut unprivileged = Conntrack::new().unwrap();
            let opened = unprivileged.nat(Transport::Tcp, local, remote);
            let asked = privileged.nat(Transport::Tcp, local, remote);
            (unprivileged, (opened, asked))
        })
        .join()
        .map(|(mut unprivileged, (opened, asked))| {
            // Back in a thread with the capability, the socket opened without it works: the
            // opener's capabilities are not looked at when the request names its destination
            // (sendto with the kernel's address), as every request here does.
            let reused = unprivileged.nat(Transport::Tcp, local, remote);
            assert_eq!(reused.unwrap(), None);
            (opened, asked)
        })
        .unwrap();
        assert_eq!(
            opened_without.unwrap_err().raw_os_error(),
            Some(libc::EPERM)
        );
        assert_eq!(asked_without.unwrap_err().raw_os_error(), Some(libc::EPERM));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn tuple() -> impl Strategy<Value = (Transport, SocketAddr, SocketAddr)> {
            let transport = prop_oneof![Just(Transport::Tcp), Just(Transport::Udp)];
            let ends = prop_oneof![
                any::<([u8; 4], u16, [u8; 4], u16)>().prop_map(|(s, sp, d, dp)| {
                    (SocketAddr::from((s, sp)), SocketAddr::from((d, dp)))
                }),
                any::<([u8; 16], u16, [u8; 16], u16)>().prop_map(|(s, sp, d, dp)| {
                    (SocketAddr::from((s, sp)), SocketAddr::from((d, dp)))
                }),
            ];
            (transport, ends).prop_map(|(t, (s, d))| (t, s, d))
        }

        /// The nested tuple attribute a request for it carries, which is also how a reply
        /// writes it: everything after the nlmsghdr and nfgenmsg.
        fn tuple_attribute(
            attribute: u16,
            (transport, src, dst): (Transport, SocketAddr, SocketAddr),
        ) -> Vec<u8> {
            let mut out = Vec::new();
            build_get(&mut out, 0, attribute, transport, src, dst);
            out.split_off(NLMSG_HDRLEN + NFGENMSG_LEN)
        }

        fn expected((transport, src, dst): (Transport, SocketAddr, SocketAddr)) -> Tuple {
            let protocol = match transport {
                Transport::Tcp => IPPROTO_TCP,
                Transport::Udp => IPPROTO_UDP,
            };
            Tuple { protocol, src, dst }
        }

        proptest! {
            /// An entry written with random tuples and status, answering request `seq`, gives
            /// them back; its NAT is the status bits, or without status the tuples' mismatch.
            #[test]
            fn entries_come_back(
                original in tuple(),
                reply in prop::option::of(tuple()),
                status in prop::option::of(any::<u32>()),
                seq in any::<u32>(),
            ) {
                let mut payload = vec![AF_INET, NFNETLINK_V0, 0, 0];
                payload.extend(tuple_attribute(CTA_TUPLE_ORIG, original));
                if let Some(reply) = reply {
                    payload.extend(tuple_attribute(CTA_TUPLE_REPLY, reply));
                }
                if let Some(status) = status {
                    put_attribute(&mut payload, CTA_STATUS, &status.to_be_bytes());
                }
                let mut datagram = Vec::new();
                message(&mut datagram, CT_NEW, 0, seq, |out| out.extend_from_slice(&payload));
                let entry = Entry {
                    original: Some(expected(original)),
                    reply: reply.map(expected),
                    status,
                };
                prop_assert_eq!(answer(&datagram, seq).unwrap(), Some(Some(entry)));
                match (status, reply) {
                    (Some(bits), _) => {
                        let nat = entry.nat().unwrap();
                        prop_assert_eq!(nat.as_ref().map(|n| n.source), (bits & 0x30 != 0).then_some(bits & IPS_SRC_NAT != 0));
                        prop_assert_eq!(nat.map(|n| n.destination), (bits & 0x30 != 0).then_some(bits & IPS_DST_NAT != 0));
                    }
                    (None, Some(reply)) => {
                        let (_, o_src, o_dst) = original;
                        let (_, r_src, r_dst) = reply;
                        let nat = entry.nat().unwrap();
                        prop_assert_eq!(nat.is_some(), o_src != r_dst || o_dst != r_src);
                    }
                    (None, None) => prop_assert!(entry.nat().is_err()),
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300), seq in 0u32..3) {
                if let Ok(Some(Some(entry))) = answer(&data, seq) {
                    let _ = entry.nat();
                }
                let _ = parse_entry(&data);
                let _ = parse_tuple(&data);
            }
        }
    }
}

//! Which flows the kernel's connection tracker knows as NATed, read through netlink
//! `NETLINK_NETFILTER` (ctnetlink, the interface of the `conntrack` tool). It owns the wire
//! format of the one request it needs — an exact get by tuple — hand-written like
//! [`super::sock_diag`], on [`super::socket`]'s plumbing: a 4-byte `nfgenmsg` and a dozen
//! attributes do not justify a netlink crate, and owning the parser lets it refuse malformed
//! kernel data with an error instead of a panic. Used by the resolver thread, for flows no
//! socket owns.
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

pub use crate::net::types::Transport;

use super::socket::{
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
    if let Ok(Some(Some(entry))) = answer(datagram, super::socket::fuzz_seq(datagram)) {
        let _ = entry.nat();
    }
    if let Ok(entry) = parse_entry(datagram) {
        if let Ok(Some(nat)) = entry.nat() {
            assert!(nat.source || nat.destination);
        }
    }
}

#[cfg(test)]
mod tests;

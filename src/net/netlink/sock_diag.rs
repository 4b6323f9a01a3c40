//! The kernel's table of TCP and UDP sockets, read through netlink `NETLINK_SOCK_DIAG` (the
//! inet_diag interface `ss` uses). It owns the wire format of the three fixed inet_diag structs
//! it needs — hand-written, because they are 72 and 56 bytes of plain fields and a crate would
//! bring more code than it saves; the netlink plumbing is [`super::socket`]'s — and the
//! kernel's quirks, so callers only ever speak of "local" and "remote". Used by the resolver
//! thread, one exact request per new flow.
//!
//! Why netlink and not /proc/net/tcp: an exact request (no `NLM_F_DUMP`) runs the same hash
//! lookup the kernel runs for an arriving packet and answers in microseconds whatever the number
//! of sockets on the host, where /proc/net/{tcp,udp}{,6} prints every socket.
//!
//! Kernel behaviour this module relies on (net/ipv4/inet_diag.c `inet_diag_find_one_icsk`,
//! net/ipv4/udp_diag.c `udp_dump_one`):
//! - TCP: `id.idiag_src` is the local end, `id.idiag_dst` the remote one; the lookup is
//!   `inet_lookup`, which tries established (and TIME_WAIT, SYN_RECV) sockets and then falls
//!   back to listeners, so a flow to a listening port with no connection yet finds the listener.
//! - UDP: the two ends are swapped ("for historical reasons", says the kernel): `idiag_src` is
//!   the remote end, `idiag_dst` the local one. The lookup is the receive path's
//!   `__udp4_lib_lookup`, so connected sockets match their 4-tuple and unconnected ones match
//!   by local address with wildcard fallback (127.0.0.1:53 finds a socket bound to 0.0.0.0:53).
//! - Ports are in network byte order; `idiag_if` and the cookie words in host order. The cookie
//!   must be `INET_DIAG_NOCOOKIE` in both words or the kernel insists on an exact socket match.
//! - IPv4 flows are asked as `AF_INET`: the IPv4 lookups also find dual-stack IPv6 sockets (bound
//!   to `::` without `IPV6_V6ONLY`), which the kernel then reports as `AF_INET6` with IPv4-mapped
//!   addresses; those are turned back into IPv4 here, because that is what the packets carry.
//! - The inode in a reply is 32 bits wide (`idiag_inode`), which is all socket inodes use.
//! - Inode 0: the kernel still has the connection but no file refers to it — TIME_WAIT, a
//!   request socket in SYN_RECV, an orphan draining after `close()` (FIN_WAIT*, LAST_ACK,
//!   CLOSING), or an established connection that is not `accept()`ed yet. [`SockDiag::find`]
//!   reports such a socket as found with inode 0 (and uid 0, which is what the kernel fills in
//!   for TIME_WAIT and request sockets) rather than as `None`, so a caller can tell "no such
//!   socket" (nothing to wait for) from "a socket without an owner right now" (the not-accepted
//!   case gains one within moments; the others never will).
//! - Sockets bound to a device (`SO_BINDTODEVICE`, IPv6 link-local) only match a request naming
//!   that interface; the scope id of an IPv6 local address is passed as `idiag_if`.

pub use crate::net::types::Transport;

use super::socket::{exact_answer, RecvBuffer, Socket, NLM_F_REQUEST};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// One socket as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketInfo {
    /// Inode of the socket file, as in `/proc/PID/fd/N -> socket:[inode]`; 0 when no process
    /// holds it (see the module comment).
    pub inode: u64,
    /// The socket's owner: the effective uid of the process that created it.
    pub uid: u32,
    /// The socket's bound address: unspecified (`0.0.0.0`, `::`) for a wildcard bind.
    pub local: SocketAddr,
    /// The peer: unspecified with port 0 for a listener or an unconnected UDP socket.
    pub remote: SocketAddr,
    /// The kernel's TCP state (`idiag_state`: 1 established ... 12 new SYN_RECV); UDP reports
    /// 1 for a connected socket and 7 (close) for an unconnected one.
    pub state: u8,
}

impl SocketInfo {
    /// A socket no process holds (inode 0) that one still may: a connection waiting in a
    /// listener's accept queue — established, a request still in SYN_RECV, or one whose client
    /// already sent everything and closed (CLOSE_WAIT: a short request often arrives whole
    /// before the server accepts it). Any other ownerless socket — TIME_WAIT, an orphan
    /// draining after close, a kernel socket — never will, and asking again only costs.
    pub fn may_get_an_owner(&self) -> bool {
        const ESTABLISHED: u8 = 1;
        const SYN_RECV: u8 = 3;
        const CLOSE_WAIT: u8 = 8;
        const NEW_SYN_RECV: u8 = 12;
        self.inode != 0
            || matches!(
                self.state,
                ESTABLISHED | SYN_RECV | CLOSE_WAIT | NEW_SYN_RECV
            )
    }
}

// linux/sock_diag.h, linux/inet_diag.h.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const INET_DIAG_NOCOOKIE: u32 = !0;
/// `struct inet_diag_req_v2`.
const REQ_LEN: usize = 56;
/// `struct inet_diag_msg`, the fixed part of every reply.
const MSG_LEN: usize = 72;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Large enough for any single message the kernel sends on this socket: netlink caps a dump's
/// skb at 32 KiB, and an exact reply is one small message. A reply that does not fit is
/// reported as an error rather than read in part.
const RECV_BUFFER: usize = 64 * 1024;

/// A NETLINK_SOCK_DIAG socket and its buffers, reused for every request.
pub struct SockDiag {
    socket: Socket,
}

/// One end of a request, in inet_diag's layout.
struct End {
    addr: [u8; 16],
    port: u16,
}

impl SockDiag {
    pub fn new() -> io::Result<SockDiag> {
        let socket = Socket::open(
            Some(rustix::net::netlink::SOCK_DIAG),
            RecvBuffer::Fixed(RECV_BUFFER),
        )?;
        Ok(SockDiag { socket })
    }

    /// The socket the kernel would deliver a packet from `remote` to `local` to, found by an
    /// exact (non-dump) request with the 4-tuple: connected TCP/UDP sockets, TCP listeners when
    /// no connection matches, and unconnected/bound UDP sockets with the kernel's wildcard
    /// matching. `None` if no socket would take the packet; a socket that no process holds any
    /// more (TIME_WAIT, ...) is returned with inode 0.
    ///
    /// `local` and `remote` must be of one family; IPv4-mapped IPv6 addresses count as IPv4.
    pub fn find(
        &mut self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> io::Result<Option<SocketInfo>> {
        let (family, local_end, remote_end, ifindex) = request_ends(local, remote)?;
        let (src, dst) = match transport {
            Transport::Tcp => (local_end, remote_end),
            // udp_dump_one passes idiag_src as the packet's source, i.e. the remote end.
            Transport::Udp => (remote_end, local_end),
        };
        let request = inet_diag_req(family, transport, 0, &src, &dst, ifindex);
        let seq = self
            .socket
            .request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, |out| {
                out.extend_from_slice(&request)
            })?;
        self.socket.receive_until(|datagram| answer(datagram, seq))
    }

    /// Every socket of a transport and family, in all states (a dump request): listeners,
    /// wildcard-bound and connected sockets, TIME_WAIT and SYN_RECV entries (inode 0). The IPv6
    /// dump also holds the dual-stack sockets that carry IPv4 traffic (reported with IPv4
    /// addresses); the IPv4 dump holds only `AF_INET` sockets.
    pub fn dump(&mut self, transport: Transport, ipv6: bool) -> io::Result<Vec<SocketInfo>> {
        let family = if ipv6 { AF_INET6 } else { AF_INET };
        let any = End {
            addr: [0; 16],
            port: 0,
        };
        let request = inet_diag_req(family, transport, !0, &any, &any, 0);
        let dump = self.socket.dump(
            SOCK_DIAG_BY_FAMILY,
            |out| out.extend_from_slice(&request),
            SOCK_DIAG_BY_FAMILY,
            |payload| parse_socket(payload).map(Some),
        )?;
        Ok(dump.items)
    }
}

/// A `struct inet_diag_req_v2`.
fn inet_diag_req(
    family: u8,
    transport: Transport,
    states: u32,
    src: &End,
    dst: &End,
    ifindex: u32,
) -> [u8; REQ_LEN] {
    let protocol = match transport {
        Transport::Tcp => IPPROTO_TCP,
        Transport::Udp => IPPROTO_UDP,
    };
    let mut r = [0u8; REQ_LEN];
    r[0] = family;
    r[1] = protocol;
    // r[2] idiag_ext 0: no optional attributes; r[3] pad.
    r[4..8].copy_from_slice(&states.to_ne_bytes());
    // struct inet_diag_sockid
    let id = &mut r[8..];
    id[0..2].copy_from_slice(&src.port.to_be_bytes());
    id[2..4].copy_from_slice(&dst.port.to_be_bytes());
    id[4..20].copy_from_slice(&src.addr);
    id[20..36].copy_from_slice(&dst.addr);
    id[36..40].copy_from_slice(&ifindex.to_ne_bytes());
    id[40..44].copy_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    id[44..48].copy_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    r
}

/// What one datagram says about the exact request `seq` (see [`exact_answer`]): `ENOENT` is
/// the kernel's "no socket would take that packet".
fn answer(datagram: &[u8], seq: u32) -> io::Result<Option<Option<SocketInfo>>> {
    match exact_answer(datagram, seq, SOCK_DIAG_BY_FAMILY, parse_socket) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Some(None)),
        answer => answer,
    }
}

/// The request family and both ends in inet_diag layout; IPv4 and IPv4-mapped addresses are
/// asked as AF_INET (see the module comment).
fn request_ends(local: SocketAddr, remote: SocketAddr) -> io::Result<(u8, End, End, u32)> {
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(ip) => ip.to_ipv4_mapped(),
    };
    let end4 = |ip: Ipv4Addr, port: u16| {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&ip.octets());
        End { addr, port }
    };
    match (v4(local.ip()), v4(remote.ip()), local, remote) {
        (Some(l), Some(r), _, _) => Ok((AF_INET, end4(l, local.port()), end4(r, remote.port()), 0)),
        (None, None, SocketAddr::V6(l), SocketAddr::V6(r)) => Ok((
            AF_INET6,
            End {
                addr: l.ip().octets(),
                port: l.port(),
            },
            End {
                addr: r.ip().octets(),
                port: r.port(),
            },
            l.scope_id(),
        )),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("local {local} and remote {remote} are of different address families"),
        )),
    }
}

/// A `struct inet_diag_msg` (attributes after it are ignored).
fn parse_socket(payload: &[u8]) -> io::Result<SocketInfo> {
    let Some(m) = payload.get(..MSG_LEN) else {
        return Err(malformed("truncated inet_diag_msg"));
    };
    let family = m[0];
    let id = &m[4..52];
    let sport = u16::from_be_bytes([id[0], id[1]]);
    let dport = u16::from_be_bytes([id[2], id[3]]);
    let ifindex = u32::from_ne_bytes([id[36], id[37], id[38], id[39]]);
    let uid = u32::from_ne_bytes([m[64], m[65], m[66], m[67]]);
    let inode = u32::from_ne_bytes([m[68], m[69], m[70], m[71]]);
    let addr = |bytes: &[u8], port: u16| -> io::Result<SocketAddr> {
        match family {
            AF_INET => {
                let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
                Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
            }
            AF_INET6 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&bytes[..16]);
                let ip = Ipv6Addr::from(octets);
                Ok(match ip.to_ipv4_mapped() {
                    Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                    None => {
                        let scope = if ip.is_unicast_link_local() {
                            ifindex
                        } else {
                            0
                        };
                        SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))
                    }
                })
            }
            other => Err(malformed(&format!(
                "address family {other} in inet_diag_msg"
            ))),
        }
    };
    Ok(SocketInfo {
        inode: u64::from(inode),
        uid,
        local: addr(&id[4..20], sport)?,
        remote: addr(&id[20..36], dport)?,
        state: m[1],
    })
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sock_diag: {what}"))
}

/// Entry point of the `netlink` fuzz target (`fuzz/`, built with `--cfg fuzzing` only): one
/// arbitrary datagram read as the answer to a socket lookup, and as a bare `inet_diag_msg`.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz_datagram(datagram: &[u8]) {
    let _ = answer(datagram, super::socket::fuzz_seq(datagram));
    if let Ok(socket) = parse_socket(datagram) {
        if datagram[0] == AF_INET {
            assert!(
                socket.local.is_ipv4() && socket.remote.is_ipv4(),
                "{socket:?}"
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

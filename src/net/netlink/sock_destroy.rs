//! The kernel's announcements of destroyed TCP and UDP sockets: a `NETLINK_SOCK_DIAG` socket
//! subscribed to sock_diag's destroy multicast groups, and the parser of what it receives. It
//! owns that socket, its receive buffer and the wire format of an announcement; the netlink
//! plumbing (the socket, message and attribute walking) is [`super::socket`]'s. Run by the
//! resolver thread, which drains it every round without blocking.
//!
//! Why: reuse. A flow's owner is remembered for a while with no other check that the socket is
//! still the one that was resolved; when a process closes its UDP socket on port P and another
//! binds P and talks to the same peer, the second one's traffic would be credited to the first.
//! Hearing that the first socket was destroyed lets the resolver forget the flows of its local
//! endpoint before the port can be reused.
//!
//! Kernel behaviour this module relies on (net/core/sock.c `__sk_free`, net/core/sock_diag.c
//! `sock_diag_broadcast_destroy`, net/ipv4/inet_diag.c `inet_diag_handler_get_info`), Linux 4.10
//! or later:
//! - The groups are `SKNLGRP_INET_TCP_DESTROY` 1, `SKNLGRP_INET_UDP_DESTROY` 2,
//!   `SKNLGRP_INET6_TCP_DESTROY` 3 and `SKNLGRP_INET6_UDP_DESTROY` 4 (uapi linux/sock_diag.h),
//!   joined here by binding with `nl_groups` bits 0..3. No privilege is needed: sock_diag's
//!   kernel socket is made with `NL_CFG_F_NONROOT_RECV` (checked: collectd as `nobody` with
//!   no capability subscribes, `tests/privileges.rs`); only the kernel sends to the groups.
//! - A socket is announced when the kernel frees it, from a workqueue: for UDP that is right
//!   after the last `close()` (measured tens of microseconds on 6.18); for TCP, once the
//!   connection is torn down (the TIME_WAIT entry that may follow is not a socket, and is not
//!   announced). Only sockets of the subscriber's network namespace are announced (the one
//!   current when [`SockDestroy::new`] ran), and only `AF_INET`/`AF_INET6` TCP and UDP ones:
//!   not raw or UDP-Lite sockets, nor the kernel's own.
//! - Each announcement is one datagram holding one `SOCK_DIAG_BY_FAMILY` message: a
//!   `struct inet_diag_msg` (as in a sock_diag reply: local end in `idiag_src`, remote end in
//!   `idiag_dst`, for UDP too — there is no swap here) followed by attributes, of which
//!   `INET_DIAG_PROTOCOL` (a u8) tells TCP from UDP (the message does not say which group it
//!   came from). TCP's also carry `INET_DIAG_INFO`, ignored here.
//! - The local address is the bound one: `0.0.0.0`/`::` for a wildcard bind, and port 0 for a
//!   socket that never had a port. A dual-stack IPv6 socket comes in the IPv6 groups with
//!   IPv4-mapped addresses, turned back into IPv4 here as [`super::sock_diag`] does; one bound
//!   to `[::]` is reported so, and may have served IPv4 on its port too (whether it was
//!   `IPV6_V6ONLY` is not said).
//! - `idiag_inode` and `idiag_uid` are 0: the file is gone by then. `idiag_cookie` is the
//!   socket's cookie (`SO_COOKIE`), never given to another socket while the system runs.
//!
//! Overrun: announcements wait in the socket's receive buffer, asked at [`RECEIVE_BUFFER`]
//! (`SO_RCVBUFFORCE`, or `SO_RCVBUF` capped by `net.core.rmem_max` without `CAP_NET_ADMIN` in
//! the initial namespace). When one does not fit, the kernel drops it, reports `ENOBUFS` once
//! on the next read, and drops every further announcement until the buffer has been read empty.
//! [`SockDestroy::drain`] says so (`overrun`): any endpoint may then have been closed unheard,
//! and the caller should drain to the end and act as if all had been.

pub use crate::net::types::Transport;

use super::socket::{attributes, messages, RecvBuffer, Socket};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::net::netlink::SocketAddrNetlink;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Which destroyed sockets to hear about: every combination of the transports and the families
/// chosen. Dual-stack IPv6 sockets carrying IPv4 are announced in the IPv6 groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    pub tcp: bool,
    pub udp: bool,
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Transports {
    /// UDP sockets, IPv4 and IPv6.
    pub const UDP: Transports = Transports {
        tcp: false,
        udp: true,
        ipv4: true,
        ipv6: true,
    };
    /// TCP and UDP sockets, IPv4 and IPv6.
    pub const ALL: Transports = Transports {
        tcp: true,
        udp: true,
        ipv4: true,
        ipv6: true,
    };

    /// The `nl_groups` bits: group N is bit N - 1.
    fn groups(self) -> u32 {
        let mut groups = 0;
        for (wanted, group) in [
            (self.tcp && self.ipv4, SKNLGRP_INET_TCP_DESTROY),
            (self.udp && self.ipv4, SKNLGRP_INET_UDP_DESTROY),
            (self.tcp && self.ipv6, SKNLGRP_INET6_TCP_DESTROY),
            (self.udp && self.ipv6, SKNLGRP_INET6_UDP_DESTROY),
        ] {
            if wanted {
                groups |= 1 << (group - 1);
            }
        }
        groups
    }
}

/// One destroyed socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClosedSocket {
    pub transport: Transport,
    /// The bound address: unspecified (`0.0.0.0`, `::`) for a wildcard bind, port 0 for a
    /// socket that never had a port.
    pub local: SocketAddr,
    /// The peer of a connected socket; `None` when unspecified (an unconnected UDP socket, a
    /// listener).
    pub remote: Option<SocketAddr>,
    /// `idiag_inode` as sent: 0 on every kernel seen (the file is released before the socket
    /// is freed), kept in case one fills it in.
    pub inode: u32,
    /// The socket's cookie, as `SO_COOKIE` and sock_diag's `idiag_cookie` give it.
    pub cookie: u64,
}

/// What one [`SockDestroy::drain`] did.
#[derive(Debug, Default)]
pub struct Drained {
    /// Sockets appended to the output.
    pub read: usize,
    /// The kernel dropped announcements (`ENOBUFS`), or the socket failed (`error`): a socket
    /// may have been destroyed without being heard of.
    pub overrun: bool,
    /// Messages that were not a well-formed announcement of a TCP or UDP socket, skipped.
    pub skipped: usize,
    /// The read error that ended the drain, other than "nothing more" and `ENOBUFS` (never
    /// seen; `overrun` is then set too).
    pub error: Option<io::Error>,
}

// linux/sock_diag.h, linux/inet_diag.h.
const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
const SKNLGRP_INET_UDP_DESTROY: u32 = 2;
const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;
const SKNLGRP_INET6_UDP_DESTROY: u32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `struct inet_diag_msg`; a multiple of 4, so the attributes follow at once.
const MSG_LEN: usize = 72;
const INET_DIAG_PROTOCOL: u16 = 10;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// The receive buffer asked for: 4 MiB, which the kernel doubles for its bookkeeping. An
/// announcement costs 1,280 bytes of the 8 MiB (measured on 6.18: the skb's true size, not the
/// 96-byte UDP message, is what counts), so 6,553 sockets may close between two drains before
/// one is lost (a process closing sockets in a loop closes some 50,000 a second).
pub const RECEIVE_BUFFER: usize = 4 << 20;

/// Each announcement is one datagram of 96 bytes (UDP) or about 400 (TCP, with `tcp_info`); a
/// larger datagram is skipped.
const DATAGRAM_BUFFER: usize = 8 * 1024;

/// A non-blocking `NETLINK_SOCK_DIAG` socket subscribed to the destroy groups.
pub struct SockDestroy {
    socket: Socket,
}

impl SockDestroy {
    /// Subscribes, in the calling thread's network namespace, to the destruction of the sockets
    /// `transports` names. `InvalidInput` when `transports`
    /// names none.
    pub fn new(transports: Transports) -> io::Result<SockDestroy> {
        SockDestroy::open(transports, RECEIVE_BUFFER)
    }

    /// [`SockDestroy::new`] with a receive buffer of `receive_buffer` bytes (tests make it
    /// small to overrun it).
    fn open(transports: Transports, receive_buffer: usize) -> io::Result<SockDestroy> {
        let groups = transports.groups();
        if groups == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no transport or no family to watch",
            ));
        }
        let socket = Socket::open(
            Some(rustix::net::netlink::SOCK_DIAG),
            RecvBuffer::Fixed(DATAGRAM_BUFFER),
        )?;
        // Non-blocking: every read is MSG_DONTWAIT (the receive timeout Socket::open sets
        // never comes into play).
        rustix::io::ioctl_fionbio(&socket.fd, true)?;
        socket.set_receive_buffer(receive_buffer)?;
        rustix::net::bind(&socket.fd, &SocketAddrNetlink::new(0, groups))?;
        Ok(SockDestroy { socket })
    }

    /// Appends to `out` the sockets destroyed since the last call, reading what is pending
    /// without blocking, at most `max` datagrams (one socket each). `read == max` may leave
    /// more pending: after an overrun, nothing more is heard until all of it has been read.
    pub fn drain(&mut self, out: &mut Vec<ClosedSocket>, max: usize) -> Drained {
        let mut drained = Drained::default();
        let mut datagrams = 0;
        while datagrams < max {
            let received = self.socket.receive_until(|datagram| {
                let before = out.len();
                let skipped = parse_datagram(datagram, out);
                Ok(Some((out.len() - before, skipped)))
            });
            match received {
                Ok((read, skipped)) => {
                    datagrams += 1;
                    drained.read += read;
                    drained.skipped += skipped;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Reported once, before what is still queued: read on.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => drained.overrun = true,
                // A datagram larger than the buffer, read and dropped.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    datagrams += 1;
                    drained.skipped += 1;
                }
                Err(e) => {
                    drained.overrun = true;
                    drained.error = Some(e);
                    break;
                }
            }
        }
        drained
    }
}

impl AsFd for SockDestroy {
    /// The socket, to poll for readability.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.fd.as_fd()
    }
}

/// Appends the sockets `datagram` announces; how many messages it skipped. A malformed message
/// header ends the datagram (what follows cannot be found).
fn parse_datagram(datagram: &[u8], out: &mut Vec<ClosedSocket>) -> usize {
    let mut skipped = 0;
    for message in messages(datagram) {
        let closed = match message {
            Ok(message) if message.kind == SOCK_DIAG_BY_FAMILY => parse_closed(message.payload),
            _ => None,
        };
        match closed {
            Some(closed) => out.push(closed),
            None => skipped += 1,
        }
    }
    skipped
}

/// One announcement: a `struct inet_diag_msg` and its attributes. `None` if it is not a
/// well-formed one of a TCP or UDP socket.
fn parse_closed(payload: &[u8]) -> Option<ClosedSocket> {
    let m = payload.get(..MSG_LEN)?;
    let mut protocol = None;
    for attribute in attributes(&payload[MSG_LEN..]) {
        let (kind, value) = attribute.ok()?;
        if kind == INET_DIAG_PROTOCOL {
            protocol = value.first().copied();
        }
    }
    let transport = match protocol? {
        IPPROTO_TCP => Transport::Tcp,
        IPPROTO_UDP => Transport::Udp,
        _ => return None,
    };
    let word = |at: usize| u32::from_ne_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]]);
    // struct inet_diag_sockid at 4: ports (network order), addresses, interface, cookie.
    let sport = u16::from_be_bytes([m[4], m[5]]);
    let dport = u16::from_be_bytes([m[6], m[7]]);
    let ifindex = word(40);
    let cookie = u64::from(word(44)) | (u64::from(word(48)) << 32);
    let local = address(m[0], &m[8..24], sport, ifindex)?;
    let remote = address(m[0], &m[24..40], dport, ifindex)?;
    let remote = (!remote.ip().is_unspecified() || remote.port() != 0).then_some(remote);
    Some(ClosedSocket {
        transport,
        local,
        remote,
        inode: word(68),
        cookie,
    })
}

/// An inet_diag address of `family`: IPv4-mapped IPv6 as IPv4, the interface as the scope of
/// an IPv6 link-local address.
fn address(family: u8, bytes: &[u8], port: u16, ifindex: u32) -> Option<SocketAddr> {
    match family {
        AF_INET => {
            let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        AF_INET6 => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            let ip = Ipv6Addr::from(octets);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
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
        _ => None,
    }
}

/// Entry point of the `netlink` fuzz target (`fuzz/`, built with `--cfg fuzzing` only): one
/// arbitrary datagram read as announcements. Never panics; every message is either a socket or
/// skipped.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz_datagram(datagram: &[u8]) {
    let mut out = Vec::new();
    let skipped = parse_datagram(datagram, &mut out);
    // Every message moves on by at least a header.
    assert!(out.len() + skipped <= datagram.len() / super::socket::NLMSG_HDRLEN + 1);
}

#[cfg(test)]
mod tests;

//! A minimal NETLINK_ROUTE client: the host's links, its addresses, and the ids it gives other
//! network namespaces — what [`crate::net::ownership::namespaces`] needs to tell which interface
//! leads to which namespace (on the resolver thread, and once at start). Hand-written like
//! [`super::sock_diag`], on [`super::socket`]'s plumbing: three
//! small requests and a handful of attributes do not justify a netlink crate, and owning the
//! parser lets it refuse malformed kernel data with an error instead of a panic.
//!
//! An [`Rtnl`] speaks for the network namespace of the thread that created it: a netlink
//! socket is bound to the netns current at `socket()` time, whichever thread uses it later.
//!
//! Kernel behaviour this module relies on (net/core/rtnetlink.c, net/core/net_namespace.c):
//! - A link dump reports `IFLA_LINK_NETNSID` for a device whose other end lives in another
//!   namespace (a veth's peer), as the id *this* namespace gives that namespace; producing the
//!   dump assigns the id if there was none yet (`rtnl_fill_link_netnsid` calls
//!   `peernet2id_alloc`), so after one dump every veth peer's namespace has an id here.
//! - `RTM_GETNSID` with `NETNSA_FD` only looks an id up (`peernet2id`), it never assigns one:
//!   the answer is `NETNSA_NSID_NOT_ASSIGNED` (-1) for a namespace nothing here refers to.
//! - A dump spans several datagrams and ends with `NLMSG_DONE`; if the table changed while
//!   it was produced, its messages carry `NLM_F_DUMP_INTR` and may miss or repeat entries. A
//!   dump so flagged is retried once (see [`Rtnl::inconsistent`]).

use super::socket::{attributes, exact_answer, put_attribute, RecvBuffer, Socket, NLM_F_REQUEST};
use rustix::fd::{AsRawFd, BorrowedFd};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One network interface of the socket's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The driver kind (`IFLA_INFO_KIND`): "veth", "bridge", "bond", ...; `None` for devices
    /// without rtnl link ops (physical NICs, lo).
    pub kind: Option<String>,
    /// The device this one is enslaved to (`IFLA_MASTER`): a bridge, bond, VRF ...
    pub master: Option<u32>,
    /// The device this one is tied to (`IFLA_LINK`): a veth's peer, a VLAN's lower device. The
    /// index is in the namespace [`Link::link_netnsid`] names, or in this one when that is
    /// `None`. 0 (no such device) is reported as `None`.
    pub link: Option<u32>,
    /// The id this namespace gives the namespace of [`Link::link`], when that is another one.
    pub link_netnsid: Option<i32>,
    pub loopback: bool,
    /// Administratively up (`IFF_UP`), whatever the carrier.
    pub up: bool,
}

// linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h, linux/net_namespace.h.
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWNSID: u16 = 88;
const RTM_GETNSID: u16 = 90;
/// `struct ifinfomsg`.
const IFINFOMSG_LEN: usize = 16;
/// `struct ifaddrmsg`.
const IFADDRMSG_LEN: usize = 8;
/// `struct rtgenmsg` is one byte, padded to NLMSG_ALIGN before the attributes.
const RTGENMSG_LEN: usize = 4;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_LINK_NETNSID: u16 = 37;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;
const NETNSA_NSID_NOT_ASSIGNED: i32 = -1;
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// The first receive buffer: the kernel fills dump datagrams up to 32 KiB. A larger datagram
/// (a link with many SR-IOV VFs) grows the buffer instead of being cut.
const RECV_BUFFER: usize = 32 * 1024;

/// A dump the kernel flagged as interrupted is asked again this many times more.
const DUMP_RETRIES: usize = 1;

/// A NETLINK_ROUTE socket in the namespace of the thread that created it, and its buffers,
/// reused for every request.
pub struct Rtnl {
    socket: Socket,
    inconsistent: bool,
}

impl Rtnl {
    /// A socket in the calling thread's current network namespace.
    pub fn new() -> io::Result<Rtnl> {
        // Protocol 0: NETLINK_ROUTE.
        let socket = Socket::open(None, RecvBuffer::Growing(RECV_BUFFER))?;
        Ok(Rtnl {
            socket,
            inconsistent: false,
        })
    }

    /// Every link of the namespace (`RTM_GETLINK` dump).
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        // ifinfomsg all zero: every family, every device.
        self.dump(RTM_GETLINK, &[0; IFINFOMSG_LEN], RTM_NEWLINK, parse_link)
    }

    /// Every IPv4 and IPv6 address of the namespace, with the index of its interface
    /// (`RTM_GETADDR` dump).
    pub fn addresses(&mut self) -> io::Result<Vec<(u32, IpAddr)>> {
        self.dump(RTM_GETADDR, &[0; IFADDRMSG_LEN], RTM_NEWADDR, parse_address)
    }

    /// The id this socket's namespace gives the namespace `netns` (an fd of
    /// `/proc/PID/ns/net` or of a `/run/netns` file); `None` when it has given it none. Asking
    /// never assigns one (see the module comment).
    pub fn nsid_of(&mut self, netns: BorrowedFd<'_>) -> io::Result<Option<i32>> {
        let fd = u32::try_from(netns.as_raw_fd())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "negative fd"))?;
        let seq = self.socket.request(RTM_GETNSID, NLM_F_REQUEST, |out| {
            // rtgenmsg family AF_UNSPEC, padding; then the NETNSA_FD attribute.
            out.extend_from_slice(&[0; RTGENMSG_LEN]);
            put_attribute(out, NETNSA_FD, &fd.to_ne_bytes());
        })?;
        let answer = self
            .socket
            .receive_until(|datagram| exact_answer(datagram, seq, RTM_NEWNSID, parse_nsid))?;
        answer.ok_or_else(|| malformed("RTM_GETNSID acknowledged without an answer"))
    }

    /// Whether the last dump was still flagged as interrupted after its retry: its result is
    /// what the kernel sent, but an entry may be missing or repeated. The next dump will
    /// likely be whole; callers that refresh periodically need not do anything.
    pub fn inconsistent(&self) -> bool {
        self.inconsistent
    }

    fn dump<T>(
        &mut self,
        request: u16,
        header: &[u8],
        reply: u16,
        parse: fn(&[u8]) -> io::Result<Option<T>>,
    ) -> io::Result<Vec<T>> {
        let mut attempt = 0;
        loop {
            let dump =
                self.socket
                    .dump(request, |out| out.extend_from_slice(header), reply, parse)?;
            if !dump.interrupted || attempt == DUMP_RETRIES {
                self.inconsistent = dump.interrupted;
                return Ok(dump.items);
            }
            attempt += 1;
        }
    }
}

fn read_u32(value: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(value.get(..4)?.try_into().ok()?))
}

fn read_i32(value: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(value.get(..4)?.try_into().ok()?))
}

/// A NUL-terminated attribute string; names are ASCII in practice, anything else is kept
/// readable rather than refused.
fn read_string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

/// A `RTM_NEWLINK` message.
fn parse_link(payload: &[u8]) -> io::Result<Option<Link>> {
    let Some(info) = payload.get(..IFINFOMSG_LEN) else {
        return Err(malformed("truncated ifinfomsg"));
    };
    let index = u32::from_ne_bytes([info[4], info[5], info[6], info[7]]);
    let flags = u32::from_ne_bytes([info[8], info[9], info[10], info[11]]);
    let mut link = Link {
        index,
        name: String::new(),
        kind: None,
        master: None,
        link: None,
        link_netnsid: None,
        loopback: flags & IFF_LOOPBACK != 0,
        up: flags & IFF_UP != 0,
    };
    let mut named = false;
    let u32_value = |value: &[u8], what: &str| {
        read_u32(value).ok_or_else(|| malformed(&format!("short {what} attribute")))
    };
    for attribute in attributes(&payload[IFINFOMSG_LEN..]) {
        let (kind, value) = attribute?;
        match kind {
            IFLA_IFNAME => {
                link.name = read_string(value);
                named = true;
            }
            IFLA_LINK => link.link = Some(u32_value(value, "IFLA_LINK")?).filter(|&i| i != 0),
            IFLA_MASTER => link.master = Some(u32_value(value, "IFLA_MASTER")?).filter(|&i| i != 0),
            IFLA_LINK_NETNSID => {
                let nsid = read_i32(value).ok_or_else(|| malformed("short IFLA_LINK_NETNSID"))?;
                // Never sent unassigned, but -1 would mean "none" if it were.
                link.link_netnsid = Some(nsid).filter(|&n| n >= 0);
            }
            IFLA_LINKINFO => {
                for nested in attributes(value) {
                    let (nested_kind, nested_value) = nested?;
                    if nested_kind == IFLA_INFO_KIND {
                        link.kind = Some(read_string(nested_value));
                    }
                }
            }
            _ => {}
        }
    }
    if !named {
        return Err(malformed(&format!("link {index} without a name")));
    }
    Ok(Some(link))
}

/// A `RTM_NEWADDR` message: the interface index and the address; `None` for families other
/// than IPv4 and IPv6. `IFA_LOCAL` is the interface's own address where both are given (the
/// other end of a point-to-point link is then in `IFA_ADDRESS`, for IPv4 and IPv6 alike).
fn parse_address(payload: &[u8]) -> io::Result<Option<(u32, IpAddr)>> {
    let Some(header) = payload.get(..IFADDRMSG_LEN) else {
        return Err(malformed("truncated ifaddrmsg"));
    };
    let family = header[0];
    let index = u32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
    let mut address = None;
    let mut local = None;
    for attribute in attributes(&payload[IFADDRMSG_LEN..]) {
        let (kind, value) = attribute?;
        let slot = match kind {
            IFA_ADDRESS => &mut address,
            IFA_LOCAL => &mut local,
            _ => continue,
        };
        let ip = match family {
            AF_INET => value
                .get(..4)
                .map(|b| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
            AF_INET6 => value
                .get(..16)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
            _ => return Ok(None),
        };
        *slot = Some(ip.ok_or_else(|| malformed("short address attribute"))?);
    }
    Ok(local.or(address).map(|ip| (index, ip)))
}

/// A `RTM_NEWNSID` answer.
fn parse_nsid(payload: &[u8]) -> io::Result<Option<i32>> {
    let Some(attrs) = payload.get(RTGENMSG_LEN..) else {
        return Err(malformed("truncated rtgenmsg"));
    };
    for attribute in attributes(attrs) {
        let (kind, value) = attribute?;
        if kind == NETNSA_NSID {
            let nsid = read_i32(value).ok_or_else(|| malformed("short NETNSA_NSID"))?;
            return Ok((nsid != NETNSA_NSID_NOT_ASSIGNED && nsid >= 0).then_some(nsid));
        }
    }
    Err(malformed("RTM_NEWNSID without NETNSA_NSID"))
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("rtnetlink: {what}"))
}

/// Entry point of the `netlink` fuzz target (`fuzz/`, built with `--cfg fuzzing` only): one
/// arbitrary datagram read as a dump of links and of addresses and as a namespace id answer,
/// and its bytes as each message payload.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz_datagram(datagram: &[u8]) {
    let seq = super::socket::fuzz_seq(datagram);
    let _ = exact_answer(datagram, seq, RTM_NEWNSID, parse_nsid);
    for message in super::socket::messages(datagram).flatten() {
        let _ = parse_link(message.payload);
        let _ = parse_address(message.payload);
        let _ = parse_nsid(message.payload);
    }
    if let Ok(Some(link)) = parse_link(datagram) {
        // Read lossily: not UTF-8 is kept readable, but a NUL ends the name.
        assert!(!link.name.contains('\0'), "{link:?}");
        assert_ne!(link.master, Some(0));
        assert_ne!(link.link, Some(0));
    }
    let _ = parse_address(datagram);
    if let Ok(Some(nsid)) = parse_nsid(datagram) {
        assert!(nsid >= 0);
    }
}

#[cfg(test)]
mod tests;

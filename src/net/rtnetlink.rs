//! A minimal NETLINK_ROUTE client: the host's links, its addresses, and the ids it gives other
//! network namespaces — what [`super::namespaces`] needs to tell which interface leads to which
//! namespace. Hand-written like [`super::sockdiag`], on [`super::netlink`]'s plumbing: three
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

use super::netlink::{attributes, exact_answer, put_attribute, RecvBuffer, Socket, NLM_F_REQUEST};
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
    let seq = super::netlink::fuzz_seq(datagram);
    let _ = exact_answer(datagram, seq, RTM_NEWNSID, parse_nsid);
    for message in super::netlink::messages(datagram).flatten() {
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
mod tests {
    use super::*;
    use crate::net::netlink::messages;
    use std::os::fd::AsFd;

    // Payloads captured from a 6.18 kernel (the bytes after the 16-byte nlmsghdr), with a
    // namespace, veths and a bridge made for the purpose.

    /// RTM_NEWLINK payload of `cpv0`, index 102, the host end of a veth whose peer (index
    /// 101) was moved into the namespace with nsid 0; down.
    const VETH_TO_NETNS: &str = concat!(
        "0000010066000000021000000000000009000300637076300000000008000d00e8030000050010000200000005001100",
        "00000000050043000000000008000400dc050000080032004400000008003300ffff000008001b000000000008001e00",
        "0000000008003d000000000008001f000200000008002800ffff0000080029000000010008003a000000010008003f00",
        "00000100080040000000010008003b00f8ff070008003c00ffff00000800420000000000080020000200000005002100",
        "00000000080023000100000008002f000000000008003000010000000600440000000000060045000000000005002700",
        "000000000a0001002e8871e622fd00000a000200ffffffffffff0000cc00170000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000006400070000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000c002b00",
        "05000200000000001000120009000100766574680000000008002500000000000800050065000000090006006e6f6f70",
        "0000000030031a008c000200880001000000000000000000000000000100000001000000010000000100000000000000",
        "010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000010270000e803000000000000000000000000000000000000",
        "01000000a0020a00080001000000000014000500ffff00000e8a0f0060570000e8030000f40002000000000040000000",
        "dc05000001000000010000000100000001000000ffffffffa00f0000e803000000000000803a09008051010003000000",
        "58020000100000000000000001000000010000000100000060ea00000000000000000000000000000000000000000000",
        "0000000001000000000000000000000010270000e8030000010000000000000000000000010000000000000000000000",
        "010000000000000000000000000000000000000080ee3600000000000000000001000000000000000000000000000000",
        "00000000000000000004000000000000ffff0000ffffffff010000000000000000000000000000003401030026000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000003c0006000700000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000140007000000000000000000000000000000000005000800",
        "0000000024000e00000000000000000000000000000000000000000000000000000000000000000004003e8004004180",
    );

    /// RTM_NEWLINK payload of `cpv2`, index 105, a veth with its peer (104) in the host,
    /// enslaved to the bridge 103.
    const BRIDGE_PORT: &str = concat!(
        "0000010069000000021000000000000009000300637076320000000008000d00e8030000050010000200000005001100",
        "00000000050043000000000008000400dc050000080032004400000008003300ffff000008001b000000000008001e00",
        "0100000008003d000100000008001f000200000008002800ffff0000080029000000010008003a000000010008003f00",
        "00000100080040000000010008003b00f8ff070008003c00ffff00000800420000000000080020000200000008000a00",
        "670000000500210000000000080023000100000008002f00000000000800300001000000060044000000000006004500",
        "0000000005002700000000000a0001000287044f7dac00000a000200ffffffffffff0000cc0017000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "640007000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000c002b0005000200000000006c0112000900010076657468000000000b000400627269646765000050010500",
        "050001000000000006000200200000000800030002000000050004000000000005000500000000000500060000000000",
        "050007000000000005001c00000000000500080001000000050009000100000005001b000100000005001e0001000000",
        "05000a000000000005000c00000000000c000d0080000287044f7dac0c000e0080000287044f7dac06000f0001800000",
        "0600100000000000060011000180000006001200010000000500130000000000050014000000000005001d0000000000",
        "06001f000000000005002000000000000500230000000000050024000000000005002100000000000500270000000000",
        "050028000000000005002b00000000000c00150000000000000000000c00160000000000000000000c00170000000000",
        "00000000050019000100000008002500000200000800260000000000080029000000000008002a000000000008000500",
        "68000000090006006e6f6f700000000030031a008c000200880001000000000000000000000000000100000001000000",
        "010000000100000000000000010000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000010270000e803000000000000",
        "00000000000000000000000001000000a0020a00080001000000000014000500ffff0000118a0f00a8840000e8030000",
        "f40002000000000040000000dc05000001000000010000000100000001000000ffffffffa00f0000e803000000000000",
        "803a0900805101000300000058020000100000000000000001000000010000000100000060ea00000000000000000000",
        "0000000000000000000000000000000001000000000000000000000010270000e8030000010000000000000000000000",
        "010000000000000000000000010000000000000000000000000000000000000080ee3600000000000000000001000000",
        "00000000000000000000000000000000000000000004000000000000ffff0000ffffffff010000000000000000000000",
        "000000003401030026000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000003c0006000700000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000140007000000000000000000",
        "0000000000000000050008000000000024000e0000000000000000000000000000000000000000000000000000000000",
        "0000000004003e8004004180",
    );

    /// RTM_NEWADDR payloads: 127.0.0.1 on lo; 192.0.2.2/24 on eth0 (IFA_ADDRESS, IFA_LOCAL,
    /// IFA_BROADCAST, IFA_LABEL ...); ::1 on lo; fe80::fc:ff:fe00:1 on eth0.
    const ADDR_LO4: &str = "020880fe01000000080001007f000001080002007f000001070003006c6f0000080008008000000014000600ffffffffffffffff1400000014000000";
    const ADDR_ETH4: &str = "021880000400000008000100c000020208000200c000020208000400c00002ff090003006574683000000000080008008000000014000600ffffffffffffffff1400000014000000";
    const ADDR_LO6: &str = "0a8080fe01000000140001000000000000000000000000000000000114000600ffffffffffffffff1400000014000000080008008000000005000b0001000000";
    const ADDR_LINK_LOCAL6: &str = "0a4080fd0400000014000100fe8000000000000000fc00fffe00000114000600ffffffffffffffff1400000014000000080008008000000005000b0003000000";
    /// A whole RTM_NEWNSID datagram: nsid 0.
    const NSID_ZERO: &str = "1c0000005800000003000000d8270000000000000800010000000000";

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len() / 2)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn veth_whose_peer_is_in_another_namespace() {
        let link = parse_link(&hex(VETH_TO_NETNS)).unwrap().unwrap();
        assert_eq!(
            link,
            Link {
                index: 102,
                name: "cpv0".into(),
                kind: Some("veth".into()),
                master: None,
                link: Some(101),
                link_netnsid: Some(0),
                loopback: false,
                up: false,
            }
        );
    }

    #[test]
    fn bridge_port() {
        let link = parse_link(&hex(BRIDGE_PORT)).unwrap().unwrap();
        assert_eq!(link.index, 105);
        assert_eq!(link.name, "cpv2");
        assert_eq!(link.kind.as_deref(), Some("veth"));
        assert_eq!(
            (link.master, link.link, link.link_netnsid),
            (Some(103), Some(104), None)
        );
    }

    #[test]
    fn addresses_of_both_families() {
        let parse = |h: &str| parse_address(&hex(h)).unwrap().unwrap();
        assert_eq!(parse(ADDR_LO4), (1, "127.0.0.1".parse().unwrap()));
        assert_eq!(parse(ADDR_ETH4), (4, "192.0.2.2".parse().unwrap()));
        assert_eq!(parse(ADDR_LO6), (1, "::1".parse().unwrap()));
        assert_eq!(
            parse(ADDR_LINK_LOCAL6),
            (4, "fe80::fc:ff:fe00:1".parse().unwrap())
        );
    }

    #[test]
    fn point_to_point_prefers_the_local_address() {
        // eth0's message with IFA_ADDRESS turned into a peer's address: IFA_LOCAL wins,
        // whichever comes first.
        let mut bytes = hex(ADDR_ETH4);
        bytes[IFADDRMSG_LEN + 4..IFADDRMSG_LEN + 8].copy_from_slice(&[10, 203, 0, 9]);
        assert_eq!(
            parse_address(&bytes).unwrap(),
            Some((4, "192.0.2.2".parse().unwrap()))
        );
        // Without IFA_LOCAL (as IPv6 sends it), IFA_ADDRESS is the address.
        let only_address = &bytes[..IFADDRMSG_LEN + 8];
        assert_eq!(
            parse_address(only_address).unwrap(),
            Some((4, "10.203.0.9".parse().unwrap()))
        );
        // Another family: skipped, not an error.
        let mut other = hex(ADDR_ETH4);
        other[0] = 17;
        assert_eq!(parse_address(&other).unwrap(), None);
    }

    #[test]
    fn nsid_answers() {
        let datagram = hex(NSID_ZERO);
        let message = messages(&datagram).next().unwrap().unwrap();
        assert_eq!((message.kind, message.seq), (RTM_NEWNSID, 3));
        assert_eq!(parse_nsid(message.payload).unwrap(), Some(0));
        let mut unassigned = message.payload.to_vec();
        unassigned[8..12].copy_from_slice(&NETNSA_NSID_NOT_ASSIGNED.to_ne_bytes());
        assert_eq!(parse_nsid(&unassigned).unwrap(), None);
        assert!(parse_nsid(&message.payload[..RTGENMSG_LEN]).is_err());
    }

    /// Every prefix and every single-byte corruption of every fixture: an error or a value,
    /// never a panic.
    #[test]
    fn truncated_and_garbled_messages_do_not_panic() {
        let payloads = [
            VETH_TO_NETNS,
            BRIDGE_PORT,
            ADDR_LO4,
            ADDR_ETH4,
            ADDR_LO6,
            ADDR_LINK_LOCAL6,
        ];
        let exercise = |bytes: &[u8]| {
            let _ = parse_link(bytes);
            let _ = parse_address(bytes);
            let _ = parse_nsid(bytes);
            for message in messages(bytes).flatten() {
                let _ = parse_link(message.payload);
            }
        };
        for payload in payloads.iter().map(|p| hex(p)).chain([hex(NSID_ZERO)]) {
            for cut in 0..payload.len() {
                exercise(&payload[..cut]);
            }
            for at in 0..payload.len() {
                for value in [0x00, 0x03, 0xff] {
                    let mut garbled = payload.clone();
                    garbled[at] = value;
                    exercise(&garbled);
                }
            }
        }
        // A cut inside an attribute is an error, not a silently shorter link.
        let veth = hex(VETH_TO_NETNS);
        assert!(parse_link(&veth[..veth.len() - 2]).is_err());
        assert!(parse_link(&veth[..IFINFOMSG_LEN - 1]).is_err());
        // An attribute claiming less than its own header.
        let mut bad = veth.clone();
        bad[IFINFOMSG_LEN..IFINFOMSG_LEN + 2].copy_from_slice(&2u16.to_ne_bytes());
        assert!(parse_link(&bad).is_err());
        // No name: refused.
        assert!(parse_link(&veth[..IFINFOMSG_LEN]).is_err());
    }

    #[test]
    fn live_links_and_addresses() {
        let mut rtnl = Rtnl::new().unwrap();
        let links = rtnl.links().unwrap();
        let lo = links.iter().find(|l| l.name == "lo").unwrap();
        assert!(lo.loopback && lo.up);
        assert_eq!(lo.index, 1, "lo is the first device of a namespace");
        assert_eq!(links.iter().filter(|l| l.loopback).count(), 1);
        // The socket stays usable for a dump of another table.
        let addresses = rtnl.addresses().unwrap();
        assert!(addresses.contains(&(lo.index, "127.0.0.1".parse().unwrap())));
        // And for a second dump of the same.
        assert_eq!(rtnl.links().unwrap().len(), links.len());
    }

    #[test]
    fn live_nsid_of_the_own_namespace() {
        // A namespace has no id for itself unless something assigned one: ask about our own.
        let own = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        let mut rtnl = Rtnl::new().unwrap();
        let nsid = rtnl.nsid_of(own.as_fd()).unwrap();
        assert!(nsid.is_none() || nsid >= Some(0));
        // Not a namespace fd: the kernel refuses, the socket stays usable.
        let not_ns = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(rtnl.nsid_of(not_ns.as_fd()).is_err());
        assert!(!rtnl.links().unwrap().is_empty());
    }

    mod properties {
        use super::*;
        use crate::net::netlink::{begin_nested, end_nested};
        use proptest::prelude::*;

        proptest! {
            /// An `RTM_NEWLINK` payload written with random fields gives the link back; index
            /// 0 in `IFLA_LINK` or `IFLA_MASTER` and a negative namespace id mean none.
            #[test]
            fn links_come_back(
                index in any::<u32>(),
                flags in any::<u32>(),
                name in "[a-zA-Z0-9@._-]{1,15}",
                kind in prop::option::of("[a-z]{1,10}"),
                master in prop::option::of(any::<u32>()),
                link in prop::option::of(any::<u32>()),
                netnsid in prop::option::of(any::<i32>()),
            ) {
                let mut payload = vec![0u8; IFINFOMSG_LEN];
                payload[4..8].copy_from_slice(&index.to_ne_bytes());
                payload[8..12].copy_from_slice(&flags.to_ne_bytes());
                put_attribute(&mut payload, IFLA_IFNAME, format!("{name}\0").as_bytes());
                if let Some(m) = master {
                    put_attribute(&mut payload, IFLA_MASTER, &m.to_ne_bytes());
                }
                if let Some(l) = link {
                    put_attribute(&mut payload, IFLA_LINK, &l.to_ne_bytes());
                }
                if let Some(n) = netnsid {
                    put_attribute(&mut payload, IFLA_LINK_NETNSID, &n.to_ne_bytes());
                }
                if let Some(k) = &kind {
                    let nest = begin_nested(&mut payload, IFLA_LINKINFO);
                    put_attribute(&mut payload, IFLA_INFO_KIND, format!("{k}\0").as_bytes());
                    end_nested(&mut payload, nest);
                }
                let expected = Link {
                    index,
                    name,
                    kind,
                    master: master.filter(|&m| m != 0),
                    link: link.filter(|&l| l != 0),
                    link_netnsid: netnsid.filter(|&n| n >= 0),
                    loopback: flags & IFF_LOOPBACK != 0,
                    up: flags & IFF_UP != 0,
                };
                prop_assert_eq!(parse_link(&payload).unwrap(), Some(expected));
            }

            /// An `RTM_NEWADDR` payload gives its interface and address back, `IFA_LOCAL`
            /// before `IFA_ADDRESS`.
            #[test]
            fn addresses_come_back(
                index in any::<u32>(),
                v6 in any::<bool>(),
                address in prop::option::of(any::<[u8; 16]>()),
                local in prop::option::of(any::<[u8; 16]>()),
            ) {
                let mut payload = vec![0u8; IFADDRMSG_LEN];
                payload[0] = if v6 { AF_INET6 } else { AF_INET };
                payload[4..8].copy_from_slice(&index.to_ne_bytes());
                let ip = |o: [u8; 16]| -> IpAddr {
                    if v6 { Ipv6Addr::from(o).into() } else { Ipv4Addr::new(o[0], o[1], o[2], o[3]).into() }
                };
                let bytes = |o: &[u8; 16]| if v6 { o.to_vec() } else { o[..4].to_vec() };
                if let Some(a) = &address {
                    put_attribute(&mut payload, IFA_ADDRESS, &bytes(a));
                }
                if let Some(l) = &local {
                    put_attribute(&mut payload, IFA_LOCAL, &bytes(l));
                }
                let expected = local.or(address).map(|o| (index, ip(o)));
                prop_assert_eq!(parse_address(&payload).unwrap(), expected);
            }

            #[test]
            fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..200)) {
                if let Ok(Some(link)) = parse_link(&data) {
                    prop_assert!(link.master != Some(0) && link.link != Some(0));
                }
                let _ = parse_address(&data);
                if let Ok(Some(nsid)) = parse_nsid(&data) {
                    prop_assert!(nsid >= 0);
                }
            }
        }
    }
}

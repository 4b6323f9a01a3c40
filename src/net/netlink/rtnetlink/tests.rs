//! Unit tests of [`super`] (rtnetlink).

use super::*;
use crate::net::netlink::socket::messages;
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
    use crate::net::netlink::socket::{begin_nested, end_nested};
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

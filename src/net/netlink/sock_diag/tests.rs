//! Unit tests of [`super`] (sock_diag).

use super::*;
use crate::net::netlink::socket::{messages, NLMSG_HDRLEN};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;

/// The inode of a socket, as /proc/PID/fd shows it (shared with the inode index's tests).
pub(crate) fn inode_of(socket: impl AsFd) -> u64 {
    rustix::fs::fstat(socket).unwrap().st_ino
}

pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Loopback clients connect from 127.0.0.1 to whatever 127/8 address the server has: the
/// two ends then differ in address as well as port, so a swap of local and remote shows.
#[test]
fn tcp_ends_with_distinct_addresses() {
    let listener = TcpListener::bind("127.0.0.9:0").unwrap();
    let server = listener.local_addr().unwrap();
    let client = TcpStream::connect(server).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let client_local = client.local_addr().unwrap();
    let mut diag = SockDiag::new().unwrap();
    let c = diag
        .find(Transport::Tcp, client_local, server)
        .unwrap()
        .unwrap();
    let s = diag
        .find(Transport::Tcp, server, client_local)
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.inode, c.local, c.remote),
        (inode_of(&client), client_local, server)
    );
    assert_eq!(
        (s.inode, s.local, s.remote),
        (inode_of(&accepted), server, client_local)
    );
}

/// A connected pair over `ip` (accepted, so both ends have an owner); `None` when the
/// address cannot be bound here (no IPv6 on loopback).
fn tcp_pair(ip: &str) -> Option<(TcpListener, TcpStream, TcpStream)> {
    let listener = match TcpListener::bind((ip, 0)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipped: cannot bind {ip}: {e}");
            return None;
        }
    };
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    Some((listener, client, server))
}

fn check_both_ends(ip: &str) {
    let Some((listener, client, server)) = tcp_pair(ip) else {
        return;
    };
    let mut diag = SockDiag::new().unwrap();
    let (c, s) = (client.local_addr().unwrap(), server.local_addr().unwrap());

    let found = diag.find(Transport::Tcp, c, s).unwrap().unwrap();
    assert_eq!(found.inode, inode_of(&client));
    assert_eq!((found.local, found.remote, found.uid), (c, s, euid()));

    let found = diag.find(Transport::Tcp, s, c).unwrap().unwrap();
    assert_eq!(found.inode, inode_of(&server));
    assert_eq!((found.local, found.remote, found.uid), (s, c, euid()));
    assert_ne!(inode_of(&server), inode_of(&listener));
}

#[test]
fn tcp_connection_both_ends_ipv4() {
    check_both_ends("127.0.0.1");
}

#[test]
fn tcp_connection_both_ends_ipv6() {
    check_both_ends("::1");
}

#[test]
fn inode_matches_the_proc_fd_link() {
    use std::os::fd::AsRawFd;
    let (_listener, client, server) = tcp_pair("127.0.0.1").unwrap();
    let mut diag = SockDiag::new().unwrap();
    let found = diag
        .find(
            Transport::Tcp,
            client.local_addr().unwrap(),
            server.local_addr().unwrap(),
        )
        .unwrap()
        .unwrap();
    let link = std::fs::read_link(format!("/proc/self/fd/{}", client.as_raw_fd())).unwrap();
    assert_eq!(link.to_str().unwrap(), format!("socket:[{}]", found.inode));
}

#[test]
fn tcp_flow_to_a_listening_port_without_connection_finds_the_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut diag = SockDiag::new().unwrap();
    let remote: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let found = diag
        .find(Transport::Tcp, listener.local_addr().unwrap(), remote)
        .unwrap()
        .unwrap();
    assert_eq!(found.inode, inode_of(&listener));
    assert_eq!(found.remote, "0.0.0.0:0".parse().unwrap());
}

#[test]
fn nothing_on_a_closed_port() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut diag = SockDiag::new().unwrap();
    let remote: SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert_eq!(diag.find(Transport::Tcp, port, remote).unwrap(), None);
    assert_eq!(diag.find(Transport::Udp, port, remote).unwrap(), None);
    // The socket is still usable after a negative answer.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let found = diag.find(Transport::Udp, udp.local_addr().unwrap(), remote);
    assert_eq!(found.unwrap().unwrap().inode, inode_of(&udp));
}

#[test]
fn unconnected_udp_is_found_for_any_remote() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = udp.local_addr().unwrap();
    let mut diag = SockDiag::new().unwrap();
    for remote in ["127.0.0.1:9", "127.0.0.2:40000", "127.0.0.1:1"] {
        let found = diag
            .find(Transport::Udp, local, remote.parse().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(found.inode, inode_of(&udp));
        assert_eq!((found.local, found.uid), (local, euid()));
        assert_eq!(found.remote, "0.0.0.0:0".parse().unwrap());
    }
}

#[test]
fn wildcard_bound_udp_is_found_for_a_specific_local_address() {
    let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    let mut diag = SockDiag::new().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    let found = diag
        .find(Transport::Udp, local, "127.0.0.1:9".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(found.inode, inode_of(&udp));
    assert_eq!(found.local, SocketAddr::from(([0, 0, 0, 0], port)));
}

#[test]
fn connected_udp_matches_its_peer_only() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.connect(b.local_addr().unwrap()).unwrap();
    let mut diag = SockDiag::new().unwrap();
    let (la, lb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let found = diag.find(Transport::Udp, la, lb).unwrap().unwrap();
    assert_eq!((found.inode, found.remote), (inode_of(&a), lb));
    // Another peer: the kernel would drop that packet, nothing to credit.
    let other = diag
        .find(Transport::Udp, la, "127.0.0.1:9".parse().unwrap())
        .unwrap();
    assert_eq!(other, None);
}

#[test]
fn udp_ipv6() {
    let udp = match UdpSocket::bind("[::1]:0") {
        Ok(s) => s,
        Err(e) => return eprintln!("skipped: no IPv6 loopback: {e}"),
    };
    let mut diag = SockDiag::new().unwrap();
    let found = diag
        .find(
            Transport::Udp,
            udp.local_addr().unwrap(),
            "[::1]:9".parse().unwrap(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(found.inode, inode_of(&udp));
    assert_eq!(found.remote, "[::]:0".parse().unwrap());
}

#[test]
fn dual_stack_socket_is_reported_with_ipv4_addresses() {
    let listener = match TcpListener::bind("[::]:0") {
        Ok(l) => l,
        Err(e) => return eprintln!("skipped: no IPv6: {e}"),
    };
    let port = listener.local_addr().unwrap().port();
    let client = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(c) => c,
        Err(e) => return eprintln!("skipped: [::] is IPv6-only here: {e}"),
    };
    let (server, _) = listener.accept().unwrap();
    let mut diag = SockDiag::new().unwrap();
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    let remote = client.local_addr().unwrap();
    let found = diag.find(Transport::Tcp, local, remote).unwrap().unwrap();
    assert_eq!(found.inode, inode_of(&server));
    assert_eq!((found.local, found.remote), (local, remote));
    // The same request with mapped addresses is the same question.
    let mapped = |a: SocketAddr| match a {
        SocketAddr::V4(a) => SocketAddr::new(a.ip().to_ipv6_mapped().into(), a.port()),
        v6 => v6,
    };
    let again = diag.find(Transport::Tcp, mapped(local), mapped(remote));
    assert_eq!(again.unwrap(), Some(found));
}

#[test]
fn closed_connection_still_in_the_table_has_inode_zero() {
    let (listener, mut client, mut server) = tcp_pair("127.0.0.1").unwrap();
    let (c, s) = (client.local_addr().unwrap(), server.local_addr().unwrap());
    // The client closes first, so its end goes through FIN_WAIT to TIME_WAIT.
    client.write_all(b"x").unwrap();
    drop(client);
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).unwrap();
    drop(server);
    drop(listener);
    let mut diag = SockDiag::new().unwrap();
    let found = diag.find(Transport::Tcp, c, s).unwrap().unwrap();
    assert_eq!((found.inode, found.uid), (0, 0));
    assert_eq!((found.local, found.remote), (c, s));
    assert_eq!(found.state, 6, "TIME_WAIT");
    assert!(!found.may_get_an_owner(), "nobody will ever hold it");
}

#[test]
fn a_connection_waiting_to_be_accepted_may_get_an_owner() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (c, s) = (client.local_addr().unwrap(), listener.local_addr().unwrap());
    let mut diag = SockDiag::new().unwrap();
    // The server's end, established in the accept queue, held by nobody yet.
    let queued = diag.find(Transport::Tcp, s, c).unwrap().unwrap();
    assert_eq!((queued.inode, queued.state), (0, 1));
    assert!(queued.may_get_an_owner());
    let (_accepted, _) = listener.accept().unwrap();
    let held = diag.find(Transport::Tcp, s, c).unwrap().unwrap();
    assert_ne!(held.inode, 0);
    assert!(held.may_get_an_owner());
}

#[test]
fn mixed_families_are_refused() {
    let mut diag = SockDiag::new().unwrap();
    let err = diag
        .find(
            Transport::Tcp,
            "127.0.0.1:1".parse().unwrap(),
            "[::1]:2".parse().unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn dumps_contain_listeners_and_bound_sockets() {
    let mut diag = SockDiag::new().unwrap();
    let (listener, client, _server) = tcp_pair("127.0.0.1").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = diag.dump(Transport::Tcp, false).unwrap();
    let l = tcp.iter().find(|s| s.inode == inode_of(&listener)).unwrap();
    assert_eq!(l.local, listener.local_addr().unwrap());
    assert!(tcp.iter().any(|s| s.inode == inode_of(&client)));
    let udp_dump = diag.dump(Transport::Udp, false).unwrap();
    assert!(udp_dump.iter().any(|s| s.inode == inode_of(&udp)));
    if let Some((listener6, _, _)) = tcp_pair("::1") {
        let tcp6 = diag.dump(Transport::Tcp, true).unwrap();
        assert!(tcp6.iter().any(|s| s.inode == inode_of(&listener6)));
        assert!(!tcp6.iter().any(|s| s.inode == inode_of(&listener)));
    }
}

#[test]
fn large_dump_spans_many_datagrams() {
    let sockets: Vec<UdpSocket> = (0..600)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut diag = SockDiag::new().unwrap();
    let dump = diag.dump(Transport::Udp, false).unwrap();
    let inodes: std::collections::HashSet<u64> = dump.iter().map(|s| s.inode).collect();
    assert!(sockets.iter().all(|s| inodes.contains(&inode_of(s))));
    // And exact requests work right after a dump.
    let found = diag
        .find(
            Transport::Udp,
            sockets[0].local_addr().unwrap(),
            "127.0.0.1:9".parse().unwrap(),
        )
        .unwrap();
    assert_eq!(found.unwrap().inode, inode_of(&sockets[0]));
}

#[test]
fn malformed_replies_are_errors_not_panics() {
    let reply = {
        let mut m = vec![0u8; NLMSG_HDRLEN + MSG_LEN];
        m[0..4].copy_from_slice(&((NLMSG_HDRLEN + MSG_LEN) as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m[NLMSG_HDRLEN] = AF_INET;
        m
    };
    for cut in 0..reply.len() {
        for message in messages(&reply[..cut]).flatten() {
            let _ = parse_socket(message.payload);
        }
    }
    let whole: Vec<_> = messages(&reply).collect();
    assert_eq!(whole.len(), 1);
    let parsed = parse_socket(whole[0].as_ref().unwrap().payload).unwrap();
    assert_eq!(parsed.local, "0.0.0.0:0".parse().unwrap());
    let mut bad_family = reply.clone();
    bad_family[NLMSG_HDRLEN] = 99;
    let m = messages(&bad_family).next().unwrap().unwrap();
    assert!(parse_socket(m.payload).is_err());
    let mut bad_len = reply;
    bad_len[0..4].copy_from_slice(&4u32.to_ne_bytes());
    assert!(messages(&bad_len).next().unwrap().is_err());
}

mod properties {
    use super::*;
    use crate::net::netlink::socket::message;
    use proptest::prelude::*;

    fn address() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
            any::<[u8; 4]>().prop_map(|b| IpAddr::V6(Ipv4Addr::from(b).to_ipv6_mapped())),
            any::<[u8; 8]>().prop_map(|b| {
                let mut o = [0u8; 16];
                o[0..2].copy_from_slice(&[0xfe, 0x80]);
                o[8..].copy_from_slice(&b);
                IpAddr::from(o)
            }),
        ]
    }

    /// What the kernel's address means: IPv4-mapped addresses are IPv4, a link-local
    /// IPv6 address carries the interface.
    fn meant(ip: IpAddr, port: u16, ifindex: u32) -> SocketAddr {
        match ip {
            IpAddr::V4(v4) => SocketAddr::from((v4, port)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SocketAddr::from((v4, port)),
                None => {
                    let scope = if v6.is_unicast_link_local() {
                        ifindex
                    } else {
                        0
                    };
                    SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope))
                }
            },
        }
    }

    proptest! {
        /// An `inet_diag_msg` written with random fields, answering request `seq`, gives
        /// them back; the kernel's ENOENT is "no socket".
        #[test]
        fn sockets_come_back(
            v6 in any::<bool>(),
            (local, remote) in (address(), address()),
            ports in any::<(u16, u16)>(),
            (uid, inode, ifindex) in any::<(u32, u32, u32)>(),
            state in any::<u8>(),
            seq in any::<u32>(),
        ) {
            let octets = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => {
                    let mut o = [0u8; 16];
                    o[..4].copy_from_slice(&v4.octets());
                    o
                }
                IpAddr::V6(v6) => v6.octets(),
            };
            // An AF_INET message holds IPv4 addresses in the first four bytes.
            let (local, remote) = if v6 {
                (IpAddr::V6(match local { IpAddr::V4(a) => a.to_ipv6_mapped(), IpAddr::V6(a) => a }),
                 IpAddr::V6(match remote { IpAddr::V4(a) => a.to_ipv6_mapped(), IpAddr::V6(a) => a }))
            } else {
                let v4 = |ip: IpAddr| match ip {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(a) => Ipv4Addr::from(<[u8; 4]>::try_from(&a.octets()[12..]).unwrap()),
                };
                (IpAddr::V4(v4(local)), IpAddr::V4(v4(remote)))
            };
            let mut m = vec![0u8; MSG_LEN];
            m[0] = if v6 { AF_INET6 } else { AF_INET };
            m[1] = state;
            m[4..6].copy_from_slice(&ports.0.to_be_bytes());
            m[6..8].copy_from_slice(&ports.1.to_be_bytes());
            m[8..24].copy_from_slice(&octets(local));
            m[24..40].copy_from_slice(&octets(remote));
            m[40..44].copy_from_slice(&ifindex.to_ne_bytes());
            m[64..68].copy_from_slice(&uid.to_ne_bytes());
            m[68..72].copy_from_slice(&inode.to_ne_bytes());
            let mut datagram = Vec::new();
            message(&mut datagram, SOCK_DIAG_BY_FAMILY, 0, seq, |out| out.extend_from_slice(&m));
            let expected = SocketInfo {
                inode: u64::from(inode),
                uid,
                local: meant(local, ports.0, ifindex),
                remote: meant(remote, ports.1, ifindex),
                state,
            };
            prop_assert_eq!(answer(&datagram, seq).unwrap(), Some(Some(expected)));
            prop_assert_eq!(answer(&datagram, seq.wrapping_add(1)).unwrap(), None);
            let mut enoent = Vec::new();
            message(&mut enoent, 2, 0, seq, |out| out.extend_from_slice(&(-libc::ENOENT).to_ne_bytes()));
            prop_assert_eq!(answer(&enoent, seq).unwrap(), Some(None));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..200), seq in 0u32..3) {
            let _ = answer(&data, seq);
            let _ = parse_socket(&data);
        }
    }
}

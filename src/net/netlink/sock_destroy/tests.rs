//! Unit tests of [`super`] (sock_destroy): the parser on datagrams captured from Linux 6.18,
//! then live subscriptions (root; skipped with a message without `CAP_NET_ADMIN`).

use super::*;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------------
// Captured announcements (x86_64: the host-order fields are little-endian)

/// A UDP socket bound to 127.0.0.1:44890, closed unconnected.
const UDP4: &str = "\
    6000000014000000000000000000000002070000af5a00007f00000100000000000000000000000000000000\
    0000000000000000000000000000000086ef2100000000000000000000000000ffffffff0000000000000000\
    05000a0011000000";
/// 127.0.0.1:46858 connected to 127.0.0.2:5353.
const UDP4_CONNECTED: &str = "\
    6000000014000000000000000000000002010000b70a14e97f0000010000000000000000000000007f000002\
    0000000000000000000000000000000087ef2100000000000000000000000000ffffffff0000000000000000\
    05000a0011000000";
/// Bound to 0.0.0.0:51492.
const UDP4_WILDCARD: &str = "\
    6000000014000000000000000000000002070000c92400000000000000000000000000000000000000000000\
    0000000000000000000000000000000088ef2100000000000000000000000000ffffffff0000000000000000\
    05000a0011000000";
/// Bound to [::1]:45590.
const UDP6: &str = "\
    600000001400000000000000000000000a070000b21600000000000000000000000000000000000100000000\
    000000000000000000000000000000008aef2100000000000000000000000000ffffffff0000000000000000\
    05000a0011000000";
/// [::1]:46030 connected to [::1]:5353.
const UDP6_CONNECTED: &str = "\
    600000001400000000000000000000000a010000b3ce14e90000000000000000000000000000000100000000\
    000000000000000000000001000000008bef2100000000000000000000000000ffffffff0000000000000000\
    05000a0011000000";
/// A dual-stack socket bound to [::]:0 and connected to 127.0.0.1:5353: IPv4-mapped.
const UDP6_MAPPED: &str = "\
    600000001400000000000000000000000a0100008d2e14e900000000000000000000ffff7f00000100000000\
    000000000000ffff7f000001000000008def2100000000000000000000000000ffffffff0000000000000000\
    05000a0011000000";
/// An accepted TCP connection 127.0.0.1:55361 <- 127.0.0.1:36992, with its `tcp_info`.
const TCP4: &str = "\
    7c01000014000000000000000000000002070000d84190807f0000010000000000000000000000007f000001\
    0000000000000000000000000000000090ef2100000000000000000000000000000000000000000000000000\
    05000a00060000001c010200070000000007aa01e01c03000000000000800000180200000000000000000000\
    00000000000000000000000004000000000000000400000000000000ffff0000cbff0000d00000006c010000\
    ffffff7f0b000000cbff00000300000000000000cbff000000000000804e4bd006000000ffffffffffffffff\
    0100000000000000000000000000000001000000030000000000000020000000000000000000000034fb5a01\
    00000000a00f0000000000000000000000000000000000000000000002000000000000000000000000000000\
    0000000000000000000000000000000000000000000001000000010000000000000000000000000000000000\
    00000000000000000000000000000000000000000000000000000000";

fn bytes(hex: &str) -> Vec<u8> {
    let hex: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
    hex.chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn parse(datagram: &[u8]) -> (Vec<ClosedSocket>, usize) {
    let mut out = Vec::new();
    let skipped = parse_datagram(datagram, &mut out);
    (out, skipped)
}

fn one(datagram: &[u8]) -> ClosedSocket {
    match parse(datagram) {
        (out, 0) if out.len() == 1 => out[0],
        other => panic!("not one socket: {other:?}"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn captured_udp_and_tcp_announcements() {
    let udp = |local: &str, remote: Option<&str>, cookie: u64| ClosedSocket {
        transport: Transport::Udp,
        local: addr(local),
        remote: remote.map(addr),
        inode: 0,
        cookie,
    };
    assert_eq!(one(&bytes(UDP4)), udp("127.0.0.1:44890", None, 0x21ef86));
    assert_eq!(
        one(&bytes(UDP4_CONNECTED)),
        udp("127.0.0.1:46858", Some("127.0.0.2:5353"), 0x21ef87)
    );
    assert_eq!(
        one(&bytes(UDP4_WILDCARD)),
        udp("0.0.0.0:51492", None, 0x21ef88)
    );
    assert_eq!(one(&bytes(UDP6)), udp("[::1]:45590", None, 0x21ef8a));
    assert_eq!(
        one(&bytes(UDP6_CONNECTED)),
        udp("[::1]:46030", Some("[::1]:5353"), 0x21ef8b)
    );
    assert_eq!(
        one(&bytes(UDP6_MAPPED)),
        udp("127.0.0.1:36142", Some("127.0.0.1:5353"), 0x21ef8d)
    );
    assert_eq!(
        one(&bytes(TCP4)),
        ClosedSocket {
            transport: Transport::Tcp,
            local: addr("127.0.0.1:55361"),
            remote: Some(addr("127.0.0.1:36992")),
            inode: 0,
            cookie: 0x21ef90,
        }
    );
}

#[test]
fn a_link_local_address_keeps_its_interface() {
    let mut d = bytes(UDP6);
    d[24..40].copy_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
    d[56..60].copy_from_slice(&3u32.to_ne_bytes());
    let local = one(&d).local;
    assert_eq!(
        local,
        SocketAddr::V6(SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            local.port(),
            0,
            3
        ))
    );
}

#[test]
fn two_messages_in_one_datagram_are_both_read() {
    let mut d = bytes(UDP4);
    d.extend_from_slice(&bytes(TCP4));
    let (out, skipped) = parse(&d);
    assert_eq!(skipped, 0);
    let transports: Vec<_> = out.iter().map(|c| c.transport).collect();
    assert_eq!(transports, [Transport::Udp, Transport::Tcp]);
}

#[test]
fn every_truncation_is_skipped_without_panic() {
    for fixture in [bytes(UDP4), bytes(UDP6_MAPPED), bytes(TCP4)] {
        assert_eq!(parse(&[]), (vec![], 0));
        for len in 1..fixture.len() {
            assert_eq!(parse(&fixture[..len]), (vec![], 1), "cut at {len}");
        }
    }
}

#[test]
fn a_message_short_of_its_parts_is_skipped() {
    let d = bytes(UDP4);
    // The message's own length cuts it inside the inet_diag_msg, then before the attributes
    // (no protocol), then inside the protocol attribute.
    for len in [16u32, 16 + 40, 16 + 71, 16 + 72, 16 + 76] {
        let mut cut = d.clone();
        cut[0..4].copy_from_slice(&len.to_ne_bytes());
        cut.truncate(len as usize);
        assert_eq!(parse(&cut), (vec![], 1), "length {len}");
    }
    // An attribute whose length runs past the message.
    let mut long = d.clone();
    long[88..90].copy_from_slice(&40u16.to_ne_bytes());
    assert_eq!(parse(&long), (vec![], 1));
}

#[test]
fn other_types_families_and_protocols_are_skipped() {
    let d = bytes(UDP4);
    let with = |at: usize, value: &[u8]| {
        let mut m = d.clone();
        m[at..at + value.len()].copy_from_slice(value);
        m
    };
    // NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, SOCK_DESTROY.
    for kind in [1u16, 2, 3, 21] {
        assert_eq!(
            parse(&with(4, &kind.to_ne_bytes())),
            (vec![], 1),
            "type {kind}"
        );
    }
    // AF_UNIX, AF_PACKET.
    for family in [1u8, 17] {
        assert_eq!(parse(&with(16, &[family])), (vec![], 1), "family {family}");
    }
    // UDP-Lite, raw, an empty protocol attribute.
    assert_eq!(parse(&with(92, &[136])), (vec![], 1));
    assert_eq!(parse(&with(92, &[255])), (vec![], 1));
    assert_eq!(parse(&with(88, &4u16.to_ne_bytes())), (vec![], 1));
    // A skipped message does not hide the next one.
    let mut two = with(4, &1u16.to_ne_bytes());
    two.extend_from_slice(&d);
    let (out, skipped) = parse(&two);
    assert_eq!((out.len(), skipped), (1, 1));
}

#[test]
fn noise_and_mutations_never_panic() {
    let mut x = 0x9e37_79b9u32;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let fixtures = [bytes(UDP4), bytes(UDP6_MAPPED), bytes(TCP4)];
    for round in 0..20_000 {
        let mut d = fixtures[round % fixtures.len()].clone();
        for _ in 0..(next() % 4 + 1) {
            let at = next() as usize % d.len();
            d[at] = next() as u8;
        }
        let (out, skipped) = parse(&d);
        assert!(out.len() + skipped >= 1);
        let noise: Vec<u8> = (0..next() % 200).map(|_| next() as u8).collect();
        parse(&noise);
    }
}

#[test]
fn groups_of_transports() {
    assert_eq!(Transports::UDP.groups(), 0b1010);
    assert_eq!(Transports::ALL.groups(), 0b1111);
    let tcp6 = Transports {
        tcp: true,
        udp: false,
        ipv4: false,
        ipv6: true,
    };
    assert_eq!(tcp6.groups(), 0b0100);
    let none = Transports {
        ipv4: false,
        ipv6: false,
        ..Transports::ALL
    };
    let refused = SockDestroy::new(none).err().map(|e| e.kind());
    assert_eq!(refused, Some(io::ErrorKind::InvalidInput));
}

// ------------------------------------------------------------------------------------------------
// Live

/// The live tests take turns: every subscription hears every other test's sockets close, and
/// the overrun test's flood would overrun the others.
fn live_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A subscription, or `None` (said) without the privilege.
fn subscribe(transports: Transports, receive_buffer: usize) -> Option<SockDestroy> {
    match SockDestroy::open(transports, receive_buffer) {
        Ok(s) => Some(s),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            eprintln!("skipped: subscribing to destroyed sockets needs CAP_NET_ADMIN: {e}");
            None
        }
        Err(e) => panic!("subscribing: {e}"),
    }
}

/// Waits until `fd` is readable, at most `timeout`.
fn readable(fd: BorrowedFd<'_>, timeout: Duration) {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd, and its count.
    unsafe { libc::poll(&mut pollfd, 1, ms) };
}

/// What [`wait_for`] heard.
struct Heard {
    /// The sockets waited for, in their order.
    found: Vec<ClosedSocket>,
    /// Every socket heard of.
    all: Vec<ClosedSocket>,
    drains: Vec<Drained>,
}

/// Drains `sd` (at most `max` a call) until every cookie of `wanted` has been heard of, within
/// 10 s.
fn wait_for(sd: &mut SockDestroy, wanted: &[u64], max: usize) -> Heard {
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut found, mut drains, mut all): (Vec<ClosedSocket>, _, _) =
        (Vec::new(), Vec::new(), Vec::new());
    while found.len() < wanted.len() {
        let now = Instant::now();
        assert!(now < deadline, "heard {found:?} of {wanted:x?} in 10 s");
        readable(sd.as_fd(), deadline - now);
        let before = all.len();
        let drained = sd.drain(&mut all, max);
        assert!(
            drained.read <= max && drained.error.is_none(),
            "{drained:?}"
        );
        drains.push(drained);
        found.extend(all[before..].iter().filter(|c| wanted.contains(&c.cookie)));
    }
    found.sort_by_key(|c| wanted.iter().position(|&w| w == c.cookie));
    Heard { found, all, drains }
}

fn cookie(socket: &UdpSocket) -> u64 {
    rustix::net::sockopt::socket_cookie(socket).unwrap()
}

/// An IPv6 loopback socket, or `None` (said) where there is no IPv6.
fn udp6(addr: &str) -> Option<UdpSocket> {
    UdpSocket::bind(addr)
        .map_err(|e| eprintln!("IPv6 part skipped: cannot bind {addr}: {e}"))
        .ok()
}

#[test]
fn closed_udp_sockets_are_heard_with_their_addresses() {
    let _turn = live_turn();
    let Some(mut sd) = subscribe(Transports::UDP, RECEIVE_BUFFER) else {
        return;
    };
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sockets = vec![
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("0.0.0.0:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    ];
    sockets[2].connect(peer.local_addr().unwrap()).unwrap();
    let v6_peer = udp6("[::1]:0");
    if let Some(v6_peer) = &v6_peer {
        sockets.push(udp6("[::1]:0").unwrap());
        let connected = udp6("[::1]:0").unwrap();
        connected.connect(v6_peer.local_addr().unwrap()).unwrap();
        sockets.push(connected);
    }
    let expected: Vec<_> = sockets
        .iter()
        .map(|s| ClosedSocket {
            transport: Transport::Udp,
            local: s.local_addr().unwrap(),
            remote: s.peer_addr().ok(),
            inode: 0,
            cookie: cookie(s),
        })
        .collect();
    let cookies: Vec<u64> = expected.iter().map(|c| c.cookie).collect();
    let closed = Instant::now();
    drop(sockets);
    let found = wait_for(&mut sd, &cookies, 64).found;
    eprintln!(
        "{} closed sockets heard {:?} after the close",
        found.len(),
        closed.elapsed()
    );
    assert_eq!(found, expected);
}

#[test]
fn latency_from_close_to_readable() {
    let _turn = live_turn();
    let Some(mut sd) = subscribe(Transports::UDP, RECEIVE_BUFFER) else {
        return;
    };
    let mut latencies = Vec::new();
    for _ in 0..50 {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let wanted = [cookie(&socket)];
        let closed = Instant::now();
        drop(socket);
        wait_for(&mut sd, &wanted, 64);
        latencies.push(closed.elapsed());
    }
    latencies.sort();
    eprintln!(
        "close to heard: median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

#[test]
fn a_drain_reads_at_most_max() {
    let _turn = live_turn();
    let Some(mut sd) = subscribe(Transports::UDP, RECEIVE_BUFFER) else {
        return;
    };
    let sockets: Vec<_> = (0..10)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let cookies: Vec<u64> = sockets.iter().map(cookie).collect();
    drop(sockets);
    let heard = wait_for(&mut sd, &cookies, 3);
    assert_eq!(heard.found.len(), 10);
    assert!(heard.drains.iter().all(|d| d.read <= 3 && !d.overrun));
}

/// 20,000 sockets closed into a 16 KiB buffer nobody reads: the kernel drops announcements,
/// says so once, and the subscription goes on once read empty.
#[test]
fn an_overrun_is_reported_and_the_subscription_goes_on() {
    let _turn = live_turn();
    let Some(mut sd) = subscribe(Transports::UDP, 16 * 1024) else {
        return;
    };
    let started = Instant::now();
    for _ in 0..20_000 {
        drop(UdpSocket::bind("127.0.0.1:0").unwrap());
    }
    let flooded = started.elapsed();
    // What the workqueue still has to announce arrives while this reads.
    let (mut out, mut overrun, mut read) = (Vec::new(), false, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let drained = sd.drain(&mut out, usize::MAX);
        assert!(drained.error.is_none(), "{drained:?}");
        overrun |= drained.overrun;
        read += drained.read;
        out.clear();
        if drained.read == 0 && overrun {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no overrun in 10 s ({read} read)"
        );
        readable(sd.as_fd(), Duration::from_millis(100));
    }
    eprintln!("20,000 closed in {flooded:?}: {read} heard, then the overrun");
    assert!(read < 20_000);
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let wanted = [cookie(&probe)];
    let local = probe.local_addr().unwrap();
    drop(probe);
    assert_eq!(wait_for(&mut sd, &wanted, usize::MAX).found[0].local, local);
}

/// A subscription hears its own namespace only: the one current when it was made.
#[test]
fn a_subscription_hears_its_namespace_only() {
    let _turn = live_turn();
    let _namespaces = crate::net::namespace_test_turn();
    let Some(mut host) = subscribe(Transports::UDP, RECEIVE_BUFFER) else {
        return;
    };
    let (to_thread, from_main) = std::sync::mpsc::channel::<u64>();
    let (to_main, from_thread) = std::sync::mpsc::channel::<Option<u64>>();
    let thread = std::thread::spawn(move || {
        let flags = rustix::thread::UnshareFlags::NEWNET;
        // SAFETY: only this thread's network namespace is unshared, not its file table.
        let unshared = unsafe { rustix::thread::unshare_unsafe(flags) };
        if let Err(e) = unshared {
            eprintln!("skipped: cannot make a network namespace: {e}");
            return to_main.send(None).unwrap();
        }
        let mut inside = SockDestroy::new(Transports::UDP).unwrap();
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let (wanted, local) = (cookie(&socket), socket.local_addr().unwrap());
        to_main.send(Some(wanted)).unwrap();
        // The host's socket is closed and heard of on the host first.
        let host_cookie = from_main.recv().unwrap();
        drop(socket);
        let mut heard = wait_for(&mut inside, &[wanted], 64);
        assert_eq!(heard.found[0].local, local);
        inside.drain(&mut heard.all, usize::MAX);
        assert!(
            heard.all.iter().all(|c| c.cookie != host_cookie),
            "{:?}",
            heard.all
        );
    });
    let Some(inside_cookie) = from_thread.recv().unwrap() else {
        return thread.join().unwrap();
    };
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let host_cookie = cookie(&socket);
    drop(socket);
    wait_for(&mut host, &[host_cookie], 64);
    to_thread.send(host_cookie).unwrap();
    thread.join().unwrap();
    let mut rest = Vec::new();
    host.drain(&mut rest, usize::MAX);
    assert!(rest.iter().all(|c| c.cookie != inside_cookie), "{rest:?}");
}

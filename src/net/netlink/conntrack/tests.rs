//! Unit tests of [`super`] (conntrack).

use super::*;
use crate::net::netlink::socket::{NLMSG_DONE, NLMSG_HDRLEN};
use rustix::fd::AsFd;
use rustix::thread::{
    capabilities, move_into_link_name_space, set_capabilities, CapabilitySet, LinkNameSpaceType,
};
use std::fs::File;
use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
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
    let (local, remote) = same_family(addr("[::ffff:10.0.0.1]:80"), addr("10.0.0.2:9")).unwrap();
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
        // Only this thread changes namespace, and it ends after `f`.
        move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
            .unwrap_or_else(|e| panic!("setns {path}: {e}"));
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
    let _turn = crate::net::namespace_test_turn();
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

/// Takes CAP_NET_ADMIN out of the calling thread's effective set (capabilities are per
/// thread on Linux: the rest of the process keeps it).
fn drop_net_admin_in_this_thread() {
    // `None`: the calling thread.
    let mut sets = capabilities(None).unwrap_or_else(|e| panic!("capget: {e}"));
    sets.effective.remove(CapabilitySet::NET_ADMIN);
    set_capabilities(None, sets).unwrap_or_else(|e| panic!("capset: {e}"));
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

//! Unit tests of [`super`] (flows).

use super::*;

struct Loopback;
impl LocalAddresses for Loopback {
    fn is_local(&self, ip: &IpAddr) -> bool {
        ip.is_loopback()
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn packet(direction: Direction, src: &str, dst: &str, ip_len: u32) -> FlowPacket {
    FlowPacket {
        direction,
        transport: Transport::Tcp,
        src: addr(src),
        dst: addr(dst),
        ip_len,
        ifindex: 1,
        tcp: TcpSignal::Data,
    }
}

const A: Owner = Owner {
    pid: 10,
    starttime: 1,
};
const B: Owner = Owner {
    pid: 20,
    starttime: 2,
};

fn key(local: &str, remote: &str) -> FlowKey {
    FlowKey {
        netns: NetnsId::HOST,
        transport: Transport::Tcp,
        local: addr(local),
        remote: addr(remote),
    }
}

/// The flows to look up, without whether they were received.
fn lookup_keys(t: &mut FlowTable) -> Vec<FlowKey> {
    t.take_lookups().into_iter().map(|l| l.key).collect()
}

#[test]
fn loopback_credits_each_side_once() {
    let mut t = FlowTable::new(5000, 60_000);
    // On `any`, libpcap shows a loopback packet once, arriving; an outgoing copy, if any,
    // is skipped.
    let out = packet(Direction::Outgoing, "127.0.0.1:5000", "127.0.0.1:80", 1500);
    let inc = packet(Direction::Incoming, "127.0.0.1:5000", "127.0.0.1:80", 1500);
    t.account(&out, &Loopback, 0);
    t.account(&inc, &Loopback, 0);
    assert_eq!(t.stats().loopback_copies_skipped, 1);
    let lookups = lookup_keys(&mut t);
    assert_eq!(
        lookups,
        [
            key("127.0.0.1:80", "127.0.0.1:5000"),
            key("127.0.0.1:5000", "127.0.0.1:80")
        ]
    );
    assert_eq!(t.pending().bytes(), 3000, "held until resolved");
    t.resolved(&lookups[1], Some(A));
    t.resolved(&lookups[0], Some(B));
    assert_eq!(t.by_owner()[&A].tx_bytes, 1500);
    assert_eq!(t.by_owner()[&A].rx_bytes, 0);
    assert_eq!(t.by_owner()[&B].rx_bytes, 1500);
    assert_eq!(t.by_owner()[&B].rx_packets, 1);
    // Later packets go straight to the owners.
    t.account(&inc, &Loopback, 1);
    assert_eq!(t.by_owner()[&A].tx_packets, 2);
    assert_eq!(t.by_owner()[&B].rx_packets, 2);
    assert!(
        lookup_keys(&mut t).is_empty(),
        "each flow is looked up once"
    );
}

#[test]
fn unknown_direction_uses_local_addresses() {
    let mut t = FlowTable::new(5000, 60_000);
    // Captured on `lo` itself (Ethernet framing, no direction): both ends are local.
    t.account(
        &packet(Direction::Unknown, "127.0.0.1:1", "127.0.0.1:2", 100),
        &Loopback,
        0,
    );
    assert_eq!(lookup_keys(&mut t).len(), 2);
    // Neither end local: nobody's socket, passing through.
    t.account(
        &packet(Direction::Unknown, "10.0.0.1:1", "10.0.0.2:2", 100),
        &Loopback,
        0,
    );
    assert_eq!(t.forwarded().rx_bytes, 100);
    assert_eq!(t.unattributed(), Traffic::default());
    assert!(lookup_keys(&mut t).is_empty());
}

/// The host: 10.9.0.1 on a veth to namespace 1 (10.9.0.2) and on a bridge whose ports lead
/// to namespaces 2 and 3; loopback.
struct Host;
impl LocalAddresses for Host {
    fn is_local(&self, ip: &IpAddr) -> bool {
        ip.is_loopback() || *ip == "10.9.0.1".parse::<IpAddr>().unwrap()
    }
}

const N1: NetnsId = NetnsId(1);
const N2: NetnsId = NetnsId(2);

fn veth(peer: NetnsId) -> Vantage<'static> {
    Vantage {
        host: &Host,
        host_side: true,
        peer: Some((peer, None)),
    }
}

fn bridge_port(peer: NetnsId) -> Vantage<'static> {
    Vantage {
        host_side: false,
        ..veth(peer)
    }
}

fn resolve_all(t: &mut FlowTable) -> Vec<FlowKey> {
    let keys = lookup_keys(t);
    for k in &keys {
        let owner = Owner {
            pid: k.netns.0 * 100 + u32::from(k.local.port() % 100),
            starttime: 1,
        };
        t.resolved(k, Some(owner));
    }
    keys
}

fn owner(netns: NetnsId, port: u16) -> Owner {
    Owner {
        pid: netns.0 * 100 + u32::from(port % 100),
        starttime: 1,
    }
}

#[test]
fn a_veth_credits_the_host_and_the_namespace_once_each() {
    let mut t = FlowTable::new(5000, 60_000);
    // Host client 10.9.0.1:41 -> server 10.9.0.2:80 in namespace 1, and the answer.
    let to_ns = packet(Direction::Outgoing, "10.9.0.1:41", "10.9.0.2:80", 1000);
    let from_ns = packet(Direction::Incoming, "10.9.0.2:80", "10.9.0.1:41", 60);
    t.account_seen(&to_ns, &veth(N1), 0);
    t.account_seen(&from_ns, &veth(N1), 0);
    let keys = resolve_all(&mut t);
    assert_eq!(keys.len(), 2, "one flow per endpoint: {keys:?}");
    assert!(keys.contains(&FlowKey {
        netns: N1,
        ..key("10.9.0.2:80", "10.9.0.1:41")
    }));
    assert!(keys.contains(&key("10.9.0.1:41", "10.9.0.2:80")));
    let client = t.by_owner()[&owner(NetnsId::HOST, 41)];
    let server = t.by_owner()[&owner(N1, 80)];
    assert_eq!((client.tx_bytes, client.rx_bytes), (1000, 60));
    assert_eq!((server.rx_bytes, server.tx_bytes), (1000, 60));
    assert_eq!(t.forwarded(), Traffic::default());
    assert_eq!(t.stats().namespace_credits, 2);
}

#[test]
fn a_bridge_and_its_port_count_each_endpoint_once() {
    let mut t = FlowTable::new(5000, 60_000);
    // Host 10.9.0.1 on the bridge -> 10.9.0.3:80 in namespace 2 behind a bridge port: the
    // packet shows on the bridge and on the port.
    let p = packet(Direction::Outgoing, "10.9.0.1:42", "10.9.0.3:80", 1000);
    t.account_seen(&p, &Vantage::host(&Host), 0);
    t.account_seen(&p, &bridge_port(N2), 0);
    // Namespace 3 -> namespace 2 across the bridge: in at one port (where a frame for
    // another port's MAC address is "for another host"), out at the other.
    let q = packet(Direction::OtherHost, "10.9.0.4:43", "10.9.0.3:81", 500);
    let q_out = FlowPacket {
        direction: Direction::Outgoing,
        ..q
    };
    t.account_seen(&q, &bridge_port(NetnsId(3)), 0);
    t.account_seen(&q_out, &bridge_port(N2), 0);
    resolve_all(&mut t);
    assert_eq!(t.by_owner()[&owner(NetnsId::HOST, 42)].tx_bytes, 1000);
    assert_eq!(t.by_owner()[&owner(N2, 80)].rx_bytes, 1000);
    assert_eq!(t.by_owner()[&owner(NetnsId(3), 43)].tx_bytes, 500);
    assert_eq!(t.by_owner()[&owner(N2, 81)].rx_bytes, 500);
    let all: u64 = t.by_owner().values().map(Traffic::bytes).sum();
    assert_eq!(all, 3000, "each endpoint once");
    assert_eq!(t.forwarded(), Traffic::default());
}

#[test]
fn routed_between_namespaces_is_forwarded_by_the_host() {
    let mut t = FlowTable::new(5000, 60_000);
    // Namespace 1 (10.9.0.2) -> namespace 2 (10.8.0.2), routed by the host: in on veth 1,
    // out on veth 2.
    let p = packet(Direction::Incoming, "10.9.0.2:44", "10.8.0.2:80", 1000);
    t.account_seen(&p, &veth(N1), 0);
    let out = FlowPacket {
        direction: Direction::Outgoing,
        ..p
    };
    t.account_seen(&out, &veth(N2), 0);
    resolve_all(&mut t);
    assert_eq!(t.by_owner()[&owner(N1, 44)].tx_bytes, 1000);
    assert_eq!(t.by_owner()[&owner(N2, 80)].rx_bytes, 1000);
    assert!(!t.by_owner().contains_key(&owner(NetnsId::HOST, 44)));
    let forwarded = t.forwarded();
    assert_eq!((forwarded.rx_bytes, forwarded.tx_bytes), (1000, 1000));
    assert_eq!(t.unattributed(), Traffic::default());
    // Promiscuous copies of other hosts' traffic are nobody's here either.
    t.account(
        &packet(Direction::OtherHost, "10.7.0.1:1", "10.7.0.2:2", 70),
        &Host,
        0,
    );
    assert_eq!(t.forwarded().rx_bytes, 1070);
}

#[test]
fn a_natted_flow_is_forwarded() {
    let mut t = FlowTable::new(5000, 60_000);
    // Masqueraded on the way out: the host's address, a port no socket has.
    let out = packet(Direction::Outgoing, "10.9.0.1:61000", "10.7.0.9:80", 1000);
    let back = packet(Direction::Incoming, "10.7.0.9:80", "10.9.0.1:61000", 60);
    t.account(&out, &Host, 0);
    t.account(&back, &Host, 0);
    let keys = lookup_keys(&mut t);
    assert_eq!(keys.len(), 1);
    t.resolved(&keys[0], Resolution::Forwarded);
    t.account(&out, &Host, 1);
    let forwarded = t.forwarded();
    assert_eq!((forwarded.tx_bytes, forwarded.rx_bytes), (2000, 60));
    assert_eq!(t.unattributed(), Traffic::default());
    assert!(t.by_owner().is_empty());
}

#[test]
fn equal_addresses_in_two_namespaces_are_two_flows() {
    let mut t = FlowTable::new(5000, 60_000);
    let p = packet(Direction::Outgoing, "10.9.0.1:45", "10.9.0.2:80", 100);
    t.account_seen(&p, &bridge_port(N1), 0);
    t.account_seen(&p, &bridge_port(N2), 0);
    let keys = lookup_keys(&mut t);
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0].netns, keys[1].netns);
    assert_eq!(keys[0].local, keys[1].local);
}

#[test]
fn without_direction_a_namespace_is_told_by_its_addresses() {
    let mut t = FlowTable::new(5000, 60_000);
    let inside: HashSet<IpAddr> = ["10.9.0.2".parse().unwrap()].into();
    let vantage = Vantage {
        host: &Host,
        host_side: true,
        peer: Some((N1, Some(&inside))),
    };
    t.account_seen(
        &packet(Direction::Unknown, "10.9.0.2:80", "10.9.0.1:46", 100),
        &vantage,
        0,
    );
    resolve_all(&mut t);
    assert_eq!(t.by_owner()[&owner(N1, 80)].tx_bytes, 100);
    assert_eq!(t.by_owner()[&owner(NetnsId::HOST, 46)].rx_bytes, 100);
}

#[test]
fn unresolvable_and_late_flows_go_to_unattributed() {
    let mut t = FlowTable::new(5000, 60_000);
    let p = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
    t.account(&p, &Loopback, 0);
    t.account(&p, &Loopback, 10);
    let lookups = lookup_keys(&mut t);
    t.resolved(&lookups[0], None);
    assert_eq!(t.unattributed().tx_bytes, 120);
    t.account(&p, &Loopback, 20);
    assert_eq!(t.unattributed().tx_packets, 3);

    let q = packet(Direction::Incoming, "192.0.2.7:7", "127.0.0.1:8", 40);
    t.account(&q, &Loopback, 100);
    t.expire(4000);
    assert_eq!(t.pending().bytes(), 40, "not timed out yet");
    t.expire(5100);
    assert_eq!(t.pending().bytes(), 0);
    assert_eq!(t.unattributed().rx_bytes, 40);
    assert_eq!(t.stats().unresolved, 2);
    // A late answer changes nothing.
    t.resolved(&key("127.0.0.1:8", "192.0.2.7:7"), Some(A));
    assert!(t.by_owner().is_empty());
}

#[test]
fn every_byte_is_somewhere() {
    let mut t = FlowTable::new(5000, 1000);
    let mut sent = 0u64;
    for i in 0..200u32 {
        // To a remote host: one local endpoint per packet.
        let p = packet(
            if i % 2 == 0 {
                Direction::Outgoing
            } else {
                Direction::Incoming
            },
            &format!("127.0.0.1:{}", 1000 + i % 7),
            "192.0.2.1:80",
            100 + i,
        );
        let p = if p.direction == Direction::Incoming {
            FlowPacket {
                src: p.dst,
                dst: p.src,
                ..p
            }
        } else {
            p
        };
        t.account(&p, &Loopback, u64::from(i) * 10);
        sent += u64::from(100 + i);
        if i % 13 == 0 {
            for (n, k) in lookup_keys(&mut t).into_iter().enumerate() {
                t.resolved(&k, (n % 3 != 0).then_some(A));
            }
        }
        t.expire(u64::from(i) * 10);
    }
    t.account_unattributable(Direction::Incoming, 84);
    sent += 84;
    let owned: u64 = t.by_owner().values().map(Traffic::bytes).sum();
    assert_eq!(owned + t.unattributed().bytes() + t.pending().bytes(), sent);
}

#[test]
fn ended_tcp_flows_are_forgotten_sooner() {
    let mut t = FlowTable::new(5000, 120_000);
    let data = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
    let fin = FlowPacket {
        tcp: TcpSignal::Ends,
        ..data
    };
    let other = packet(Direction::Outgoing, "127.0.0.1:3", "192.0.2.1:2", 60);
    t.account(&data, &Loopback, 0);
    t.account(&other, &Loopback, 0);
    for k in lookup_keys(&mut t) {
        t.resolved(&k, Some(A));
    }
    t.account(&fin, &Loopback, 1000);
    // A half-closed connection may go on sending: quiet time counts, not the FIN's age.
    t.account(&data, &Loopback, 5000);
    t.expire(9999);
    assert_eq!(t.tracked_flows(), 2, "quiet for 4.999 s");
    // Idle flows are looked for once a second: 5 s quiet at 10_000, forgotten at 10_999.
    t.expire(10_000);
    assert_eq!(t.tracked_flows(), 2, "no scan within a second of the last");
    t.expire(10_999);
    assert_eq!(
        t.tracked_flows(),
        1,
        "the ended flow is gone, the open one stays"
    );
    t.expire(119_999);
    assert_eq!(t.tracked_flows(), 1);
    assert_eq!(t.by_owner()[&A].tx_bytes, 240);
}

#[test]
fn a_new_connection_on_a_reused_port_is_asked_again() {
    let mut t = FlowTable::new(5000, 120_000);
    let data = packet(Direction::Outgoing, "127.0.0.1:50000", "192.0.2.1:80", 100);
    let syn = FlowPacket {
        tcp: TcpSignal::Opens,
        ..data
    };
    t.account(&syn, &Loopback, 0);
    t.account(&data, &Loopback, 0);
    let k = lookup_keys(&mut t);
    assert_eq!(k.len(), 1);
    t.resolved(&k[0], Some(A));
    // The same 4-tuple opened again (by whichever process got the port now): the lookup says
    // it was a SYN, so the resolver does not take the old connection's TIME_WAIT for an answer.
    t.account(&syn, &Loopback, 600);
    let lookups = t.take_lookups();
    assert!(lookups.iter().all(|l| l.opens));
    let again: Vec<FlowKey> = lookups.iter().map(|l| l.key).collect();
    assert_eq!(again, k, "looked up again");
    assert_eq!(t.pending().bytes(), 100, "held until answered");
    t.resolved(&again[0], Some(B));
    t.account(&data, &Loopback, 601);
    assert_eq!(
        t.by_owner()[&A].tx_bytes,
        200,
        "the old connection's bytes stay"
    );
    assert_eq!(t.by_owner()[&B].tx_bytes, 200);
    // A retransmitted SYN while the answer is pending asks nothing more.
    t.account(&syn, &Loopback, 700);
    t.account(&syn, &Loopback, 701);
    assert_eq!(lookup_keys(&mut t).len(), 1);
}

#[test]
fn idle_flows_are_forgotten_and_asked_again() {
    let mut t = FlowTable::new(5000, 1000);
    let p = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
    t.account(&p, &Loopback, 0);
    let k = lookup_keys(&mut t);
    t.resolved(&k[0], Some(A));
    t.expire(2000);
    assert_eq!(t.tracked_flows(), 0);
    t.account(&p, &Loopback, 2001);
    assert_eq!(
        lookup_keys(&mut t).len(),
        1,
        "a reused 4-tuple may have a new owner"
    );
    assert_eq!(t.by_owner()[&A].tx_bytes, 60, "what it had stays");
}

fn resolve_as(t: &mut FlowTable, resolution: Resolution) {
    for k in lookup_keys(t) {
        t.resolved(&k, resolution);
    }
}

/// The stored flow is what memory scales with: 100,000 flows take 131,072 buckets, so each
/// byte of it is 128 KiB, and the plugin's whole budget is 16 MiB. 44 + 20 bytes, 4-aligned:
/// no padding between key and entry.
#[test]
fn a_stored_flow_stays_small() {
    use std::mem::{align_of, size_of};
    assert!(size_of::<StoredKey>() <= 44, "{}", size_of::<StoredKey>());
    assert!(size_of::<Entry>() <= 20, "{}", size_of::<Entry>());
    assert!(align_of::<(StoredKey, Entry)>() <= 4);
    assert!(size_of::<(StoredKey, Entry)>() <= 64);
    assert!(size_of::<(StoredKey, OwnerlessEntry)>() <= 56);
}

#[test]
fn a_stored_key_gives_back_the_flow_key() {
    let keys = [
        key("127.0.0.1:1", "192.0.2.1:65535"),
        FlowKey {
            netns: NetnsId(u32::MAX),
            transport: Transport::Udp,
            ..key("[2001:db8::1]:53", "[fe80::1]:5353")
        },
        // Not seen on the wire, but two flows all the same.
        key("[::ffff:127.0.0.1]:1", "192.0.2.1:65535"),
        key("127.0.0.1:1", "[::ffff:192.0.2.1]:65535"),
    ];
    for k in &keys {
        assert_eq!(StoredKey::from(k).flow_key(), *k);
    }
    let stored: HashSet<StoredKey> = keys.iter().map(StoredKey::from).collect();
    assert_eq!(stored.len(), keys.len());
    let owner = Owner {
        pid: u32::MAX,
        starttime: u64::MAX - 1,
    };
    let entry = Entry::new(Attribution::Process, owner, Tick(0), false);
    assert_eq!(entry.owner(), owner);
}

#[test]
fn nobodys_flows_are_asked_again_sooner_than_owned_ones() {
    let mut t = FlowTable::new(5000, 30_000);
    let mine = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
    let natted = packet(Direction::Outgoing, "127.0.0.1:3", "192.0.2.1:2", 60);
    let nobodys = packet(Direction::Outgoing, "127.0.0.1:4", "192.0.2.1:2", 60);
    t.account(&mine, &Loopback, 0);
    resolve_as(&mut t, Resolution::Process(A));
    t.account(&natted, &Loopback, 0);
    resolve_as(&mut t, Resolution::Forwarded);
    t.account(&nobodys, &Loopback, 0);
    resolve_as(&mut t, Resolution::Unattributed);
    t.expire(4999);
    assert_eq!(t.tracked_flows(), 3);
    t.expire(5999);
    assert_eq!(t.tracked_flows(), 2, "nobody's flow is forgotten after 5 s");
    t.account(&nobodys, &Loopback, 6000);
    let again = lookup_keys(&mut t);
    assert_eq!(again.len(), 1, "and asked again");
    // The socket's process is known by now.
    t.resolved(&again[0], Some(B));
    assert_eq!(t.by_owner()[&B].tx_bytes, 60);
    t.expire(29_999);
    assert_eq!(t.tracked_flows(), 3);
    t.expire(30_999);
    assert_eq!(t.tracked_flows(), 1, "owned flows go after 30 s quiet");
    t.account(&nobodys, &Loopback, 31_000);
    assert_eq!(t.by_owner()[&B].tx_bytes, 120);
}

#[test]
fn pending_flows_time_out_between_idle_scans() {
    let mut t = FlowTable::new(5000, 30_000);
    t.expire(4_990);
    let p = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
    t.account(&p, &Loopback, 5);
    t.expire(5_004);
    assert_eq!(t.pending().bytes(), 60);
    t.expire(5_005);
    assert_eq!(t.pending().bytes(), 0, "checked at every call");
    assert_eq!(t.unattributed().tx_bytes, 60);
}

#[test]
fn the_clock_may_pass_2_to_the_32_ms() {
    let start = (1u64 << 32) - 500;
    let mut t = FlowTable::new(5000, 30_000);
    let p = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
    t.account(&p, &Loopback, start);
    resolve_as(&mut t, Resolution::Process(A));
    t.expire(start + 29_999);
    assert_eq!(t.tracked_flows(), 1);
    t.expire(start + 30_999);
    assert_eq!(t.tracked_flows(), 0);
}

/// Flows keyed by a counter: 127.0.0.1:port to 192.0.2.x:80.
/// A table whose bounds no test of memory reaches: 1 M owned flows, 64 Ki waiting.
fn roomy() -> FlowTable {
    FlowTable::with_limits(5000, 30_000, FlowLimits::from_max_flows(1 << 20))
}

fn many_flows(t: &mut FlowTable, n: u32, now_ms: u64) {
    for i in 0..n {
        let p = FlowPacket {
            src: SocketAddr::from(([127, 0, 0, 1], (i % 60_000) as u16 + 1)),
            dst: SocketAddr::from(([192, 0, 2, (i / 60_000) as u8], 80)),
            ..packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60)
        };
        t.account(&p, &Loopback, now_ms);
    }
}

#[test]
fn memory_is_given_back_after_a_burst() {
    let mut t = roomy();
    many_flows(&mut t, 20_000, 0);
    let pending_capacity = t.pending.capacity();
    assert!(pending_capacity >= 20_000);
    resolve_as(&mut t, Resolution::Process(A));
    t.expire(1);
    assert!(t.pending.capacity() <= 2048, "answered");
    let capacity = t.flows.capacity();
    assert!(capacity >= 20_000);
    // A few flows stay busy.
    many_flows(&mut t, 100, 29_000);
    t.expire(30_000);
    assert_eq!(t.tracked_flows(), 100);
    assert!(
        t.flows.capacity() <= 2048,
        "{} of {capacity}",
        t.flows.capacity()
    );
    // A table in steady use is left alone.
    many_flows(&mut t, 600, 30_500);
    resolve_as(&mut t, Resolution::Process(A));
    let steady = t.flows.capacity();
    t.expire(31_000);
    assert_eq!(t.flows.capacity(), steady);
}

/// Memory per flow and what an idle scan costs, printed:
/// `cargo test --release --lib net::flows::tests::footprint -- --ignored --nocapture`
#[test]
#[ignore]
fn footprint() {
    use std::time::Instant;
    let n = 60_000;
    let mut t = roomy();
    many_flows(&mut t, n, 0);
    resolve_as(&mut t, Resolution::Process(A));
    let size = std::mem::size_of::<(StoredKey, Entry)>();
    let capacity = t.flows.capacity();
    // hashbrown: a power of two of buckets, 7/8 of them usable; one control byte each.
    let buckets = (capacity * 8 / 7).next_power_of_two();
    let bytes = buckets * (size + 1);
    println!(
        "{n} flows: {size} B stored, capacity {capacity}, {buckets} buckets, {bytes} B: \
             {:.0} B per flow",
        bytes as f64 / f64::from(n)
    );
    for n in [60_000, 200_000] {
        let mut t = roomy();
        many_flows(&mut t, n, 0);
        resolve_as(&mut t, Resolution::Process(A));
        t.expire(0);
        let started = Instant::now();
        t.expire(1);
        let between = started.elapsed();
        let started = Instant::now();
        t.expire(1000);
        let scan = started.elapsed();
        println!("{n} flows: expire {between:?} between scans, {scan:?} with an idle scan");
    }
}

// ------------------------------------------------------------------------------------------------
// Bounds and second chances

const SMALL: FlowLimits = FlowLimits {
    owned: 100,
    ownerless: 64,
    waiting: 16,
};

/// A datagram from 10.0.0.1:`port` to the local 127.0.0.1:53: a flow of its own, received.
fn datagram_from(port: u16, ip_len: u32) -> FlowPacket {
    FlowPacket {
        transport: Transport::Udp,
        src: SocketAddr::from(([10, 0, 0, 1], port)),
        dst: SocketAddr::from(([127, 0, 0, 1], 53)),
        ..packet(Direction::Incoming, "10.0.0.1:1", "127.0.0.1:53", ip_len)
    }
}

/// Every byte accounted once: in a process, unattributed, forwarded or still held.
fn total_bytes(t: &FlowTable, handed_over: u64) -> u64 {
    handed_over
        + t.by_owner().values().map(Traffic::bytes).sum::<u64>()
        + t.unattributed().bytes()
        + t.forwarded().bytes()
        + t.pending().bytes()
}

#[test]
fn waiting_flows_beyond_the_bound_are_shed_to_unattributed_and_counted() {
    let mut t = FlowTable::with_limits(5000, 30_000, SMALL);
    for port in 1..=40 {
        t.account(&datagram_from(port, 100), &Loopback, 0);
    }
    assert_eq!(t.take_lookups().len(), 16, "only as many asked as may wait");
    assert_eq!(t.pending().bytes(), 1600);
    assert_eq!(t.unattributed().bytes(), 2400);
    assert_eq!(t.shed(), t.unattributed(), "all of it shed");
    assert_eq!(t.stats().flows_shed, 24);
    assert_eq!(t.stats().flows, 40);
    // A shed flow's later packets are shed too, and ask nothing before their second chance.
    t.account(&datagram_from(40, 100), &Loopback, 500);
    assert!(t.take_lookups().is_empty());
    assert_eq!(t.shed().bytes(), 2500);
    // Its second chance, once a second has passed: received, so the resolver may answer it
    // from memory.
    t.account(&datagram_from(40, 100), &Loopback, 1000);
    let again = t.take_lookups();
    assert_eq!(again.len(), 1);
    assert!(again[0].received);
    t.resolved(&again[0].key, Some(A));
    t.account(&datagram_from(40, 100), &Loopback, 1100);
    assert_eq!(t.by_owner()[&A].rx_bytes, 100, "from then on to its owner");
    assert_eq!(t.shed().bytes(), 2600, "shed stays what was shed");
    assert_eq!(t.stats().second_chances_found, 1);
}

#[test]
fn a_lookup_the_queue_had_no_room_for_is_shed() {
    let mut t = FlowTable::with_limits(5000, 30_000, SMALL);
    let p = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
    t.account(&p, &Loopback, 0);
    t.account(&p, &Loopback, 10);
    let lookups = t.take_lookups();
    assert!(!lookups[0].received, "sent from the local endpoint");
    t.not_asked(&lookups[0].key);
    assert_eq!(t.pending().bytes(), 0);
    assert_eq!(t.unattributed().tx_bytes, 120);
    assert_eq!(t.shed().tx_bytes, 120);
    assert_eq!(t.stats().flows_shed, 1);
    // A late answer to a lookup that never left changes nothing; a second chance does.
    t.account(&p, &Loopback, 1010);
    let again = lookup_keys(&mut t);
    assert_eq!(again.len(), 1);
    t.resolved(&again[0], Some(B));
    t.account(&p, &Loopback, 1020);
    assert_eq!(t.by_owner()[&B].tx_bytes, 60);
    assert_eq!(total_bytes(&t, 0), 240);
}

#[test]
fn a_flow_not_found_in_time_is_asked_again_less_and_less_often_until_found() {
    let mut t = FlowTable::new(5000, 30_000);
    let p = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
    t.account(&p, &Loopback, 0);
    resolve_as(&mut t, Resolution::Lost);
    assert_eq!(t.unattributed().tx_bytes, 60);
    let mut asked_at = Vec::new();
    // A packet every 100 ms for 20 s; the resolver says "lost" until 12 s, then finds it.
    for ms in (100..20_000).step_by(100) {
        t.account(&p, &Loopback, ms);
        for k in lookup_keys(&mut t) {
            asked_at.push(ms);
            let answer = if ms < 12_000 {
                Resolution::Lost
            } else {
                Resolution::Process(A)
            };
            t.resolved(&k, answer);
        }
        t.expire(ms);
    }
    // 1 s after the answer, then 2, 4, 8 s after each ask.
    assert_eq!(asked_at, [1_000, 3_000, 7_000, 15_000]);
    assert_eq!(t.stats().second_chances, 4);
    assert_eq!(t.stats().second_chances_found, 1);
    let owned = t.by_owner()[&A].tx_bytes;
    assert_eq!(owned, 60 * (199 - 150), "every packet after 15 s");
    assert_eq!(t.unattributed().tx_bytes + owned, 60 * 200);
    assert_eq!(t.shed().bytes(), 0, "answered, not shed");
}

#[test]
fn the_wait_between_second_chances_stops_growing_at_16_s() {
    let mut t = FlowTable::new(60_000, 120_000);
    let p = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
    t.account(&p, &Loopback, 0);
    resolve_as(&mut t, Resolution::Lost);
    let mut asked_at = Vec::new();
    for ms in (500..100_000).step_by(500) {
        t.account(&p, &Loopback, ms);
        for k in lookup_keys(&mut t) {
            asked_at.push(ms);
            t.resolved(&k, Resolution::Lost);
        }
    }
    let waits: Vec<u64> = asked_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        waits,
        [2_000, 4_000, 8_000, 16_000, 16_000, 16_000, 16_000, 16_000]
    );
}

#[test]
fn flows_with_no_socket_or_no_more_traffic_are_not_asked_again() {
    let mut t = FlowTable::new(5000, 30_000);
    // Received by an endpoint with no socket (a sent packet would prove one: see below).
    let nobodys = packet(Direction::Incoming, "192.0.2.1:2", "127.0.0.1:1", 60);
    let lost = packet(Direction::Incoming, "192.0.2.1:2", "127.0.0.1:3", 60);
    t.account(&nobodys, &Loopback, 0);
    resolve_as(&mut t, Resolution::Unattributed);
    t.account(&lost, &Loopback, 0);
    resolve_as(&mut t, Resolution::Lost);
    for ms in (100..4_000).step_by(100) {
        t.account(&nobodys, &Loopback, ms);
    }
    assert!(t.take_lookups().is_empty(), "no socket: nothing to find");
    // The lost flow carried no traffic after its answer: nothing asked for it either.
    t.expire(4_000);
    assert!(t.take_lookups().is_empty());
    // A second chance whose answer is "no socket" ends the second chances.
    t.account(&lost, &Loopback, 4_100);
    let k = lookup_keys(&mut t);
    assert_eq!(k.len(), 1);
    t.resolved(&k[0], Resolution::Unattributed);
    for ms in (4_200..9_000).step_by(100) {
        t.account(&lost, &Loopback, ms);
    }
    assert!(t.take_lookups().is_empty());
}

#[test]
fn a_flow_that_waited_too_long_gets_a_second_chance() {
    let mut t = FlowTable::new(5000, 30_000);
    let p = packet(Direction::Outgoing, "127.0.0.1:1", "192.0.2.1:2", 60);
    for ms in [0, 2_000, 4_000] {
        t.account(&p, &Loopback, ms);
    }
    let first = lookup_keys(&mut t);
    t.expire(5_000);
    assert_eq!(t.unattributed().tx_bytes, 180, "given up on");
    t.account(&p, &Loopback, 5_500);
    assert!(t.take_lookups().is_empty());
    t.account(&p, &Loopback, 6_000);
    assert_eq!(lookup_keys(&mut t), first, "asked again a second later");
    t.resolved(&first[0], Some(A));
    t.account(&p, &Loopback, 6_100);
    assert_eq!(t.by_owner()[&A].tx_bytes, 60);
}

#[test]
fn a_flood_of_ownerless_flows_stays_within_the_bounds_and_spares_owned_flows() {
    let mut t = FlowTable::with_limits(5000, 30_000, SMALL);
    // 10 owned flows (fewer than may wait), busy throughout.
    let busy = |n: u16| {
        packet(
            Direction::Outgoing,
            &format!("127.0.0.1:{n}"),
            "192.0.2.1:80",
            60,
        )
    };
    for n in 1..=10 {
        t.account(&busy(n), &Loopback, 0);
    }
    resolve_as(&mut t, Resolution::Process(A));
    let mut handed_over = 0;
    let mut sent = 10 * 60;
    // 20,000 new flows nobody owns, 200 a millisecond; the resolver answers what was asked
    // every millisecond, and housekeeping runs every 50.
    for ms in 1..=100u64 {
        for i in 0..200u64 {
            let port = (ms * 200 + i) as u16;
            t.account(&datagram_from(port, 100), &Loopback, ms);
            sent += 100;
        }
        for n in 1..=10 {
            t.account(&busy(n), &Loopback, ms);
            sent += 60;
        }
        for l in t.take_lookups() {
            t.resolved(&l.key, Resolution::Unattributed);
        }
        if ms % 50 == 0 {
            t.expire(ms);
            handed_over += t.take_by_owner().values().map(Traffic::bytes).sum::<u64>();
        }
        assert!(
            t.tracked_flows() <= SMALL.owned + SMALL.ownerless + SMALL.waiting,
            "{} flows at {ms} ms",
            t.tracked_flows()
        );
        assert_eq!(total_bytes(&t, handed_over), sent, "every byte once");
    }
    handed_over += t.take_by_owner().values().map(Traffic::bytes).sum::<u64>();
    assert_eq!(
        handed_over,
        10 * 60 * 101,
        "the owned flows kept their owner throughout"
    );
    let shed = t.shed().bytes();
    assert!(shed > 0 && shed <= t.unattributed().bytes(), "{shed}");
    assert_eq!(
        t.stats().flows_shed + t.stats().lookups_requested,
        t.stats().flows,
        "each flow asked or shed"
    );
}

#[test]
fn a_full_table_of_owned_flows_sheds_new_ones() {
    let limits = FlowLimits { owned: 2, ..SMALL };
    let mut t = FlowTable::with_limits(5000, 30_000, limits);
    let p = |n: u16| {
        packet(
            Direction::Outgoing,
            &format!("127.0.0.1:{n}"),
            "192.0.2.1:80",
            60,
        )
    };
    for n in 1..=3 {
        t.account(&p(n), &Loopback, 0);
    }
    resolve_as(&mut t, Resolution::Process(A));
    assert_eq!(
        t.by_owner()[&A].tx_bytes,
        180,
        "the answer's held bytes go to the owner"
    );
    for n in 1..=3 {
        t.account(&p(n), &Loopback, 10);
    }
    assert_eq!(t.by_owner()[&A].tx_bytes, 300);
    assert_eq!(
        t.shed().tx_bytes,
        60,
        "the third flow's later bytes are shed"
    );
    assert_eq!(t.stats().flows_shed, 1);
}

// ------------------------------------------------------------------------------------------------
// Reuse

/// A UDP datagram sent from the local 127.0.0.1:`port` to the local server 127.0.0.1:9000,
/// seen arriving (loopback): it credits the sender's and the server's flows.
fn udp_from(port: u16, ip_len: u32) -> FlowPacket {
    FlowPacket {
        transport: Transport::Udp,
        src: SocketAddr::from(([127, 0, 0, 1], port)),
        dst: SocketAddr::from(([127, 0, 0, 1], 9000)),
        ..packet(Direction::Incoming, "127.0.0.1:1", "127.0.0.1:9000", ip_len)
    }
}

fn closed_udp(ip: &str, port: u16) -> ClosedEndpoint {
    ClosedEndpoint {
        netns: NetnsId::HOST,
        transport: Transport::Udp,
        ip: ip.parse().unwrap(),
        port,
    }
}

/// Answers each lookup: the sender's port is `sender`'s, the server's port the server's.
fn resolve_udp(t: &mut FlowTable, sender: Owner, server: Owner) {
    for k in lookup_keys(t) {
        let owner = if k.local.port() == 9000 {
            server
        } else {
            sender
        };
        t.resolved(&k, Some(owner));
    }
}

#[test]
fn a_destroyed_sockets_flows_are_forgotten_and_the_reused_port_asked_again() {
    let server = Owner {
        pid: 90,
        starttime: 9,
    };
    let mut t = FlowTable::new(5000, 30_000);
    t.account(&udp_from(4000, 100), &Loopback, 0);
    resolve_udp(&mut t, A, server);
    t.account(&udp_from(4000, 100), &Loopback, 10);
    assert_eq!(t.by_owner()[&A].tx_bytes, 200);
    // A closes its socket (bound to every address); B binds the port and sends.
    let forgotten = t.forget_closed(&[closed_udp("0.0.0.0", 4000)], false);
    assert_eq!(forgotten, 1, "the sender's flow, not the server's");
    t.account(&udp_from(4000, 100), &Loopback, 1_500);
    resolve_udp(&mut t, B, server);
    assert_eq!(t.by_owner()[&B].tx_bytes, 100, "from B's first datagram on");
    assert_eq!(t.by_owner()[&A].tx_bytes, 200, "A keeps only its own");
    assert_eq!(t.by_owner()[&server].rx_bytes, 300);
    assert_eq!(t.stats().forgotten_closed, 1);
    // Another address, another port, TCP: not that endpoint.
    t.account(
        &packet(Direction::Outgoing, "127.0.0.1:4000", "192.0.2.1:80", 60),
        &Loopback,
        1_600,
    );
    resolve_as(&mut t, Resolution::Process(A));
    let others = [closed_udp("127.0.0.2", 4000), closed_udp("127.0.0.1", 4001)];
    assert_eq!(t.forget_closed(&others, false), 0);
    // Notifications lost: every UDP flow goes, the TCP one stays.
    assert_eq!(t.forget_closed(&[], true), 2);
    assert_eq!(t.tracked_flows(), 1);
}

#[test]
fn a_packet_sent_from_an_endpoint_found_with_no_socket_asks_again_and_is_held() {
    let mut t = FlowTable::new(5000, 30_000);
    // A datagram to the closed port 4000 (a late reply to A, which is gone): no socket.
    let reply = FlowPacket {
        transport: Transport::Udp,
        ..packet(Direction::Incoming, "192.0.2.1:53", "127.0.0.1:4000", 100)
    };
    t.account(&reply, &Loopback, 0);
    resolve_as(&mut t, Resolution::Unattributed);
    t.account(&reply, &Loopback, 500);
    assert!(t.take_lookups().is_empty(), "received: believed");
    // B binds the port and sends to that peer 1.5 s later: the flow is asked again, and B's
    // first datagram is held for the answer.
    let sent = FlowPacket {
        transport: Transport::Udp,
        ..packet(Direction::Outgoing, "127.0.0.1:4000", "192.0.2.1:53", 80)
    };
    t.account(&sent, &Loopback, 1_500);
    let again = t.take_lookups();
    assert_eq!(again.len(), 1);
    assert!(!again[0].received);
    assert_eq!(t.pending().tx_bytes, 80);
    t.resolved(&again[0].key, Some(B));
    assert_eq!(t.by_owner()[&B].tx_bytes, 80);
    assert_eq!(t.unattributed().rx_bytes, 200);
    // A forger keeps sending from a port with no socket: asked at most once a second.
    let forged = FlowPacket {
        transport: Transport::Udp,
        ..packet(Direction::Outgoing, "127.0.0.1:5000", "192.0.2.1:53", 80)
    };
    let mut asked = 0;
    for ms in (2_000..12_000).step_by(10) {
        t.account(&forged, &Loopback, ms);
        for l in t.take_lookups() {
            asked += 1;
            t.resolved(&l.key, Resolution::Unattributed);
        }
    }
    assert!((9..=11).contains(&asked), "{asked} lookups in 10 s");
}

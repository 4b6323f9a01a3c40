//! Unit tests of [`super`] (the capture thread's loop). They run on the test thread: packets are
//! built by hand and handed to a `CaptureState` with the time they arrive at, the resolver is the
//! test reading the request channel and answering on the reply senders it finds there, and time
//! passes only as the tests say, so nothing depends on how fast this machine is. Only
//! `reopening_stops_with_the_plugin` waits on the real clock, with a wide margin.

use super::*;
use crate::net::capture::packet::TcpSignal;
use crate::net::topology::InterfaceRole;
use crate::net::types::{NetnsId, Transport};
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;

/// An interface of the host's own, known to the topology from the start.
/// The resolver's queue in these tests: more than any test sends.
const QUEUE: usize = 100_000;
const ETH0: u32 = 1;
/// The host end of a veth into namespace `CONTAINER`, created after the capture started.
const VETH: u32 = 7;
const CONTAINER: NetnsId = NetnsId(1);

const A: Owner = Owner {
    pid: 10,
    starttime: 1,
};
const B: Owner = Owner {
    pid: 20,
    starttime: 2,
};

/// One capture thread's state with its board (slot 0) and the resolver's end of its request
/// channel. Time is milliseconds from `t0`.
struct Rig {
    board: CaptureBoard,
    state: CaptureState,
    requests: Receiver<Request>,
    t0: Instant,
}

impl Rig {
    /// A capture of `any` (frames carry their interface) whose topology knows `ETH0` only.
    fn new() -> Rig {
        Rig::with_queue(QUEUE)
    }

    /// [`Rig::new`] with a resolver queue of `queue` requests.
    fn with_queue(queue: usize) -> Rig {
        let board = CaptureBoard::default();
        board.interfaces.lock().push(InterfaceTotals {
            interface: "any".into(),
            ..InterfaceTotals::default()
        });
        board.topology.publish(Arc::new(topology(1, false)));
        let (to_resolver, requests) = mpsc::sync_channel(queue);
        let t0 = Instant::now();
        let state = CaptureState::new(0, FlowLimits::default(), &board.topology, to_resolver, t0);
        Rig {
            board,
            state,
            requests,
            t0,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// A packet read at `ms`.
    fn packet(&mut self, packet: FlowPacket, ms: u64) {
        let at = self.at(ms);
        self.state.parsed(Parsed::Flow(packet), || at);
    }

    /// What the loop does after a read returned at `ms`.
    fn after_read(&mut self, ms: u64) {
        let at = self.at(ms);
        self.state.between_packets(&self.board, 0, at, || None);
    }

    /// Everything sent to the resolver so far.
    fn requests(&self) -> Vec<Request> {
        self.requests.try_iter().collect()
    }

    /// The lookups sent to the resolver so far, with where to answer them; panics on any other
    /// request.
    fn lookups(&self) -> Vec<(FlowKey, Sender<(FlowKey, Resolution)>)> {
        self.requests()
            .into_iter()
            .map(|request| match request {
                Request::Lookup { key, reply, .. } => (key, reply),
                Request::Topology => panic!("a topology request where only lookups were due"),
            })
            .collect()
    }

    fn topology_requests(&self) -> usize {
        self.requests()
            .iter()
            .map(|request| match request {
                Request::Topology => 1,
                Request::Lookup { key, .. } => panic!("a lookup ({key:?}) where none was due"),
            })
            .sum()
    }

    /// What the monitor would read in the thread's slot.
    fn totals(&self) -> InterfaceTotals {
        self.board.interfaces.lock()[0].clone()
    }
}

/// The topology of `generation`: `ETH0`, and `VETH` too once the resolver has seen it.
fn topology(generation: u64, with_veth: bool) -> Topology {
    let mut interfaces = HashMap::new();
    interfaces.insert(
        ETH0,
        InterfaceRole {
            name: "eth0".into(),
            peer: None,
            bridge_port: false,
            loopback: false,
        },
    );
    if with_veth {
        interfaces.insert(
            VETH,
            InterfaceRole {
                name: "veth7".into(),
                peer: Some(CONTAINER),
                bridge_port: false,
                loopback: false,
            },
        );
    }
    let addresses = HashMap::from([(
        CONTAINER,
        HashSet::from(["198.51.100.2".parse().expect("an address")]),
    )]);
    Topology::from_parts(generation, interfaces, addresses)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

/// A TCP segment from 192.0.2.1:80 (TEST-NET-1, nobody's here) to local port `port` on
/// 127.0.0.1, arriving on `ETH0`. The host's side is loopback because the host's addresses are
/// read from this machine, and loopback is the only address every machine has; one such
/// packet is one flow, `incoming_key(port)`.
fn incoming(port: u16, ip_len: u32) -> FlowPacket {
    FlowPacket {
        direction: Direction::Incoming,
        transport: Transport::Tcp,
        src: addr("192.0.2.1:80"),
        dst: SocketAddr::new("127.0.0.1".parse().expect("an address"), port),
        ip_len,
        ifindex: ETH0,
        tcp: TcpSignal::Data,
    }
}

fn incoming_key(port: u16) -> FlowKey {
    FlowKey {
        netns: NetnsId::HOST,
        transport: Transport::Tcp,
        local: SocketAddr::new("127.0.0.1".parse().expect("an address"), port),
        remote: addr("192.0.2.1:80"),
    }
}

/// A segment routed from the outside into the container, leaving the host on `VETH`: the
/// host has no socket in it (forwarded), the container's socket receives it (a flow of
/// `CONTAINER`, `container_key()`) — once the topology says what `VETH` is. The container's
/// address is TEST-NET-2, so no interface of this machine has it either.
fn into_container(ip_len: u32) -> FlowPacket {
    FlowPacket {
        direction: Direction::Outgoing,
        transport: Transport::Tcp,
        src: addr("192.0.2.1:80"),
        dst: addr("198.51.100.2:40000"),
        ip_len,
        ifindex: VETH,
        tcp: TcpSignal::Data,
    }
}

fn container_key() -> FlowKey {
    FlowKey {
        netns: CONTAINER,
        transport: Transport::Tcp,
        local: addr("198.51.100.2:40000"),
        remote: addr("192.0.2.1:80"),
    }
}

fn rx(bytes: u64, packets: u64) -> Traffic {
    Traffic {
        rx_bytes: bytes,
        rx_packets: packets,
        ..Traffic::default()
    }
}

fn tx(bytes: u64, packets: u64) -> Traffic {
    Traffic {
        tx_bytes: bytes,
        tx_packets: packets,
        ..Traffic::default()
    }
}

/// A short connection's socket may be gone a millisecond after its first packet: the lookup
/// must leave with that packet, not at the next housekeeping round, and only once a flow.
#[test]
fn a_new_flows_lookup_goes_to_the_resolver_with_its_first_packet() {
    let mut rig = Rig::new();
    rig.packet(incoming(5000, 100), 0);
    let lookups = rig.lookups();
    assert_eq!(
        lookups.iter().map(|(key, _)| *key).collect::<Vec<_>>(),
        [incoming_key(5000)],
        "asked with the packet, before any housekeeping"
    );
    // More of the same flow, housekeeping rounds: nothing more is asked.
    rig.packet(incoming(5000, 100), 1);
    rig.after_read(1);
    rig.packet(incoming(5000, 100), 60);
    rig.after_read(60);
    rig.after_read(120);
    assert!(rig.requests().is_empty(), "a flow is asked once");
    // Another flow: asked at once too.
    rig.packet(incoming(5001, 100), 121);
    let keys: Vec<_> = rig.lookups().into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys, [incoming_key(5001)]);
    assert_eq!(rig.state.crediting.table.stats().lookups_requested, 2);
}

/// The resolver's answers, delivered on the reply channel, are applied at the next
/// housekeeping round: held bytes go to the owner (and into the published `by_owner`), or to
/// `unattributed`.
#[test]
fn answers_credit_the_held_bytes_to_their_owner_or_to_unattributed() {
    let mut rig = Rig::new();
    rig.packet(incoming(5000, 100), 0);
    rig.packet(incoming(5000, 200), 1);
    rig.packet(incoming(6000, 300), 2);
    let lookups = rig.lookups();
    assert_eq!(lookups.len(), 2);
    rig.after_read(50);
    assert_eq!(rig.totals().pending, rx(600, 3), "held until answered");
    assert!(rig.totals().by_owner.is_empty());
    for (key, reply) in lookups {
        let resolution = if key == incoming_key(5000) {
            Resolution::Process(A)
        } else {
            Resolution::Unattributed
        };
        reply.send((key, resolution)).expect("the capture listens");
    }
    rig.after_read(100);
    let totals = rig.totals();
    assert_eq!(totals.by_owner.get(&A), Some(&rx(300, 2)));
    assert_eq!(totals.by_owner.len(), 1);
    assert_eq!(totals.unattributed, rx(300, 1));
    assert_eq!(totals.pending, Traffic::default());
    assert_eq!((totals.flows.resolved, totals.flows.unresolved), (1, 1));
    // The flow's next packets go straight to its owner, added to what was published.
    rig.packet(incoming(5000, 50), 110);
    rig.after_read(150);
    assert_eq!(rig.totals().by_owner.get(&A), Some(&rx(350, 3)));
    assert!(rig.requests().is_empty());
}

/// A flow with an owner is forgotten once quiet for `IDLE_TIMEOUT_MS` (30 s; the flow table
/// looks for idle flows once a second), and its next packet asks the resolver again.
#[test]
fn an_owned_flow_quiet_for_the_idle_timeout_is_asked_again() {
    let mut rig = Rig::new();
    rig.packet(incoming(5000, 100), 0);
    for (key, reply) in rig.lookups() {
        reply
            .send((key, Resolution::Process(A)))
            .expect("the capture listens");
    }
    rig.after_read(50);
    assert_eq!(rig.totals().by_owner.get(&A), Some(&rx(100, 1)));
    rig.after_read(29_999);
    assert_eq!(rig.totals().tracked_flows, 1, "quiet 29.999 s: kept");
    rig.after_read(31_000);
    assert_eq!(rig.totals().tracked_flows, 0, "quiet 31 s: forgotten");
    rig.packet(incoming(5000, 100), 31_001);
    let keys: Vec<_> = rig.lookups().into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys, [incoming_key(5000)]);
}

/// Totals reach the board at housekeeping rounds, every `HOUSEKEEPING`, not at every packet.
#[test]
fn totals_are_published_every_housekeeping_round() {
    let mut rig = Rig::new();
    rig.packet(incoming(5000, 100), 0);
    rig.after_read(49);
    assert_eq!(rig.totals().ip_packets, 0, "no round 49 ms after the start");
    rig.after_read(50);
    let totals = rig.totals();
    assert_eq!(totals.ip_packets, 1);
    assert_eq!(totals.pending, rx(100, 1));
    assert!(totals.running);
    rig.packet(incoming(5000, 100), 60);
    rig.after_read(99);
    assert_eq!(
        rig.totals().ip_packets,
        1,
        "the next round is 50 ms after the last"
    );
    rig.after_read(100);
    assert_eq!(rig.totals().ip_packets, 2);
}

/// Lookups faster than answers: many new flows before the first answer. Each is asked once,
/// their bytes wait in `pending`, and answers in any order — some twice, some late — leave
/// every byte counted once.
#[test]
fn many_flows_before_any_answer_are_each_asked_once_and_counted_once() {
    const FLOWS: u16 = 500;
    let mut rig = Rig::new();
    let mut replies = HashMap::new();
    let mut total = 0u64;
    let mut ms = 0;
    for round in 0..2 {
        for i in 0..FLOWS {
            let len = 100 + u32::from(i);
            rig.packet(incoming(10_000 + i, len), ms);
            total += u64::from(len);
            if i % 50 == 0 {
                ms += 5;
                rig.after_read(ms);
            }
        }
        for (key, reply) in rig.lookups() {
            assert!(round == 0, "{key:?} asked again");
            assert!(replies.insert(key, reply).is_none(), "{key:?} asked twice");
        }
    }
    ms += 50;
    rig.after_read(ms);
    assert!(rig.requests().is_empty());
    assert_eq!(replies.len(), usize::from(FLOWS), "every flow asked");
    assert!(ms >= 150, "several housekeeping rounds passed unanswered");
    let totals = rig.totals();
    assert_eq!(totals.pending.rx_bytes, total);
    assert_eq!(totals.pending.rx_packets, 2 * u64::from(FLOWS));
    assert!(totals.by_owner.is_empty());

    // Each flow's two packets: 2 * (100 + i) bytes. Every third flow nobody's, the rest A's
    // or B's. Answered in a scrambled order (7 is prime to 500), in two halves with rounds
    // between, and the first half answered twice.
    let owner = |i: u16| match i % 3 {
        0 => Resolution::Unattributed,
        1 => Resolution::Process(A),
        _ => Resolution::Process(B),
    };
    let order: Vec<u16> = (0..FLOWS).map(|n| n * 7 % FLOWS).collect();
    let (first, second) = order.split_at(usize::from(FLOWS / 2));
    let answer = |ports: &[u16]| {
        for &i in ports {
            let key = incoming_key(10_000 + i);
            replies[&key]
                .send((key, owner(i)))
                .expect("the capture listens");
        }
    };
    answer(first);
    rig.after_read(ms + 50);
    let half = rig.totals();
    let credited: u64 =
        half.by_owner.values().map(|t| t.rx_bytes).sum::<u64>() + half.unattributed.rx_bytes;
    assert_eq!(
        credited + half.pending.rx_bytes,
        total,
        "none lost, none twice"
    );
    assert!(half.pending.rx_bytes > 0 && credited > 0);
    answer(first);
    answer(second);
    rig.after_read(ms + 100);
    rig.after_read(ms + 150);

    let (mut to_a, mut to_b, mut to_nobody) = (0, 0, 0);
    for i in 0..FLOWS {
        let bytes = 2 * (100 + u64::from(i));
        match owner(i) {
            Resolution::Process(A) => to_a += bytes,
            Resolution::Process(_) => to_b += bytes,
            _ => to_nobody += bytes,
        }
    }
    let totals = rig.totals();
    assert_eq!(totals.pending, Traffic::default());
    assert_eq!(totals.by_owner.get(&A).map(|t| t.rx_bytes), Some(to_a));
    assert_eq!(totals.by_owner.get(&B).map(|t| t.rx_bytes), Some(to_b));
    assert_eq!(totals.unattributed.rx_bytes, to_nobody);
    let packets: u64 = totals.by_owner.values().map(|t| t.rx_packets).sum::<u64>()
        + totals.unattributed.rx_packets;
    assert_eq!(packets, 2 * u64::from(FLOWS));
    assert_eq!(
        totals.flows.resolved + totals.flows.unresolved,
        u64::from(FLOWS)
    );
}

/// A packet on an interface the topology does not know is held, and the resolver asked to
/// read the topology: once, and again no sooner than `TOPOLOGY_ASK_EVERY`.
#[test]
fn a_packet_on_an_unknown_interface_is_held_and_the_topology_asked_for() {
    let mut rig = Rig::new();
    rig.packet(into_container(100), 0);
    assert_eq!(rig.state.crediting.held.len(), 1);
    assert_eq!(rig.topology_requests(), 1);
    rig.packet(into_container(100), 10);
    rig.packet(into_container(100), 19);
    assert_eq!(rig.topology_requests(), 0, "asked 19 ms ago");
    rig.packet(into_container(100), 20);
    assert_eq!(rig.topology_requests(), 1, "asked 20 ms ago");
    rig.packet(into_container(100), 39);
    assert_eq!(rig.topology_requests(), 0);
    assert_eq!(rig.state.crediting.held.len(), 5);
    // Held is credited nowhere yet, not even pending.
    rig.after_read(50);
    let totals = rig.totals();
    assert_eq!(totals.pending, Traffic::default());
    assert_eq!(totals.forwarded, Traffic::default());
    assert_eq!(totals.ip_packets, 5);
}

/// Held packets are credited as soon as a newer topology is published — between two packets,
/// not at the next housekeeping round — and as it says: `VETH` leads into `CONTAINER`.
#[test]
fn held_packets_are_credited_as_soon_as_a_newer_topology_is_there() {
    let mut rig = Rig::new();
    rig.packet(into_container(100), 0);
    rig.packet(into_container(200), 1);
    assert_eq!(rig.topology_requests(), 1);
    rig.after_read(2);
    assert_eq!(rig.state.crediting.held.len(), 2, "no newer topology yet");
    rig.board.topology.publish(Arc::new(topology(2, true)));
    rig.after_read(3);
    assert!(rig.state.crediting.held.is_empty());
    let keys: Vec<_> = rig.lookups().into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys, [container_key()], "asked at once, as the container's");
    // Later packets on it are credited at once.
    rig.packet(into_container(300), 4);
    assert!(rig.state.crediting.held.is_empty());
    rig.after_read(50);
    let totals = rig.totals();
    assert_eq!(
        totals.pending,
        rx(600, 3),
        "the container's socket received them"
    );
    assert_eq!(totals.forwarded, tx(600, 3), "the host passed them on");
}

/// Without a newer topology, held packets wait `HOLD_UNKNOWN_INTERFACE` at most, then are
/// credited as the host's (here: forwarded, for the host has no socket in them). The
/// interface is then not held for again until the next topology.
#[test]
fn held_packets_wait_at_most_hold_unknown_interface_then_are_the_hosts() {
    let mut rig = Rig::new();
    rig.packet(into_container(100), 0);
    rig.packet(into_container(100), 150);
    rig.after_read(150);
    rig.after_read(199);
    assert_eq!(rig.state.crediting.held.len(), 2, "held 199 ms");
    assert_eq!(rig.totals().forwarded, Traffic::default());
    rig.after_read(200);
    assert!(
        rig.state.crediting.held.is_empty(),
        "held 200 ms since the first"
    );
    assert_eq!(rig.totals().forwarded, tx(200, 2));
    assert_eq!(rig.topology_requests(), 2, "asked at 0 and 150 ms");
    assert!(
        rig.lookups().is_empty(),
        "no container without the topology"
    );
    // Still unknown after all that: credited at once, nothing asked.
    rig.packet(into_container(100), 210);
    assert!(rig.state.crediting.held.is_empty());
    assert!(rig.requests().is_empty());
    // A newer topology (that still does not know it): held and asked for again.
    rig.board.topology.publish(Arc::new(topology(2, false)));
    rig.after_read(250);
    rig.packet(into_container(100), 251);
    assert_eq!(rig.state.crediting.held.len(), 1);
    assert_eq!(rig.topology_requests(), 1);
}

/// At most `HOLD_UNKNOWN_MAX` (4096) packets are held; beyond, they are credited at once as the
/// host's.
#[test]
fn beyond_hold_unknown_max_packets_are_credited_at_once() {
    let mut rig = Rig::new();
    for _ in 0..4096 {
        rig.packet(into_container(100), 0);
    }
    assert_eq!(rig.state.crediting.held.len(), 4096);
    assert_eq!(rig.state.crediting.table.forwarded(), Traffic::default());
    rig.packet(into_container(100), 1);
    rig.packet(into_container(100), 2);
    assert_eq!(rig.state.crediting.held.len(), 4096);
    assert_eq!(rig.state.crediting.table.forwarded(), tx(200, 2));
    assert_eq!(rig.topology_requests(), 1);
    // The held ones still wait for the topology, and are credited as it says.
    rig.board.topology.publish(Arc::new(topology(2, true)));
    rig.after_read(3);
    assert!(rig.state.crediting.held.is_empty());
    assert_eq!(rig.lookups().len(), 1);
    let held = 4096;
    assert_eq!(
        rig.state.crediting.table.pending(),
        rx(100 * held, held),
        "only the held went to the container: the others were credited before it was known"
    );
}

/// The resolver gone (its end of the channel dropped): the capture goes on, its requests are
/// lost without a word, and the flows' bytes wait `PENDING_TIMEOUT_MS` (5 s), then are
/// unattributed.
#[test]
fn without_a_resolver_the_capture_goes_on_and_pending_bytes_time_out() {
    let Rig {
        board,
        mut state,
        requests,
        t0,
    } = Rig::new();
    drop(requests);
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let round =
        |state: &mut CaptureState, ms: u64| state.between_packets(&board, 0, at(ms), || None);
    state.parsed(Parsed::Flow(incoming(5000, 100)), || at(0));
    state.parsed(Parsed::Flow(into_container(100)), || at(0));
    // The flow table's clock moves at housekeeping rounds: the first flow was asked at 0 ms,
    // the second at 99 ms.
    round(&mut state, 99);
    state.parsed(Parsed::Flow(incoming(5001, 200)), || at(100));
    for ms in (149..=4_999).step_by(50) {
        round(&mut state, ms);
    }
    let totals = board.interfaces.lock()[0].clone();
    assert_eq!(totals.pending, rx(300, 2), "4999 ms: still waiting");
    assert_eq!(totals.unattributed, Traffic::default());
    assert_eq!(
        totals.forwarded,
        tx(100, 1),
        "the held packet, after 200 ms"
    );
    round(&mut state, 5_049);
    let totals = board.interfaces.lock()[0].clone();
    assert_eq!(totals.pending, rx(200, 1), "the second flow waits on");
    assert_eq!(totals.unattributed, rx(100, 1));
    round(&mut state, 5_099);
    let totals = board.interfaces.lock()[0].clone();
    assert_eq!(totals.pending, Traffic::default());
    assert_eq!(totals.unattributed, rx(300, 2));
    assert!(totals.by_owner.is_empty());
    assert_eq!(totals.ip_packets, 3);
    assert!(totals.running);
}

/// libpcap's counters are u32 and wrap; a reopened handle counts from zero again. Neither
/// takes anything from the totals.
#[test]
fn pcap_counters_are_widened_across_a_wrap_and_a_restart() {
    let stat = |received, dropped, if_dropped| pcap::Stat {
        received,
        dropped,
        if_dropped,
    };
    let mut widened = Widened::default();
    widened.update(stat(u32::MAX - 5, 7, 0));
    widened.update(stat(10, 7, 3));
    let wrapped = u64::from(u32::MAX) + 11;
    assert_eq!(
        (widened.received, widened.dropped, widened.if_dropped),
        (wrapped, 7, 3)
    );
    widened.restart();
    widened.update(stat(4, 1, 0));
    assert_eq!(
        (widened.received, widened.dropped, widened.if_dropped),
        (wrapped + 4, 8, 3)
    );

    // Through the loop: read at housekeeping rounds; a reopened handle restarts them and
    // brings a round at once.
    let mut rig = Rig::new();
    rig.state
        .between_packets(&rig.board, 0, rig.at(50), || Some(stat(1000, 10, 1)));
    assert_eq!(rig.totals().pcap_received, 1000);
    rig.state.reopened(9, rig.at(60));
    assert_eq!(rig.state.crediting.own_ifindex, 9);
    rig.state
        .between_packets(&rig.board, 0, rig.at(60), || Some(stat(5, 0, 0)));
    let totals = rig.totals();
    assert_eq!(
        (
            totals.pcap_received,
            totals.pcap_dropped,
            totals.pcap_if_dropped
        ),
        (1005, 10, 1)
    );
}

/// A capture that stops: what is held is credited as the host's, new flows are asked for, and
/// the totals are published marked not running.
#[test]
fn wind_down_credits_what_is_held_as_the_hosts_and_says_not_running() {
    let mut rig = Rig::new();
    rig.after_read(50);
    assert!(rig.totals().running);
    rig.packet(incoming(5000, 100), 51);
    assert_eq!(rig.lookups().len(), 1);
    rig.packet(into_container(300), 52);
    assert_eq!(rig.topology_requests(), 1);
    let at = rig.at(60);
    rig.state.wind_down(&rig.board, 0, at);
    assert!(rig.state.crediting.held.is_empty());
    let totals = rig.totals();
    assert!(!totals.running);
    assert_eq!(
        totals.forwarded,
        tx(300, 1),
        "held 8 ms, credited as the host's"
    );
    assert_eq!(totals.pending, rx(100, 1));
    assert_eq!(totals.ip_packets, 2);
    assert!(rig.requests().is_empty());
}

/// A capture waiting for its interface to come back gives up as soon as the plugin stops.
#[test]
fn reopening_stops_with_the_plugin() {
    let options = CaptureOptions {
        interface: "cap-gone0".into(),
        bpf_filter: None,
        snaplen: 128,
        buffer_size: 1 << 20,
        promiscuous: false,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            stop.store(true, Ordering::SeqCst);
        })
    };
    let started = Instant::now();
    assert!(reopen(&options, &stop).is_none());
    let waited = started.elapsed();
    stopper.join().unwrap();
    // Stopped at 1.5 s, checked every 50 ms: well under a second later.
    assert!(waited < Duration::from_millis(2500), "{waited:?}");
}

/// The resolver's queue is full: the capture never waits for room. The flows that did not fit
/// are shed (their bytes in `unattributed` and in `shed`, every byte still counted once) and
/// asked again a second later while they carry traffic.
#[test]
fn lookups_the_full_queue_has_no_room_for_are_shed_not_waited_for() {
    let mut rig = Rig::with_queue(3);
    for port in 1..=10 {
        rig.packet(incoming(port, 100), 1);
    }
    rig.after_read(50);
    let lookups = rig.lookups();
    assert_eq!(lookups.len(), 3, "as many as the queue holds");
    for (key, reply) in &lookups {
        reply
            .send((*key, Resolution::Process(A)))
            .expect("the capture listens");
    }
    rig.after_read(100);
    let totals = rig.totals();
    assert_eq!(totals.by_owner[&A], rx(300, 3));
    assert_eq!(totals.shed, rx(700, 7));
    assert_eq!(totals.unattributed, totals.shed);
    assert_eq!(totals.flows.flows_shed, 7);
    // A second later (by the housekeeping clock the flow table keeps) the shed flows'
    // packets ask again, the queue having room now.
    rig.after_read(1_100);
    for port in 1..=10 {
        rig.packet(incoming(port, 100), 1_100);
    }
    rig.after_read(1_150);
    let again: Vec<u16> = rig.lookups().iter().map(|(k, _)| k.local.port()).collect();
    assert_eq!(again, [4, 5, 6], "the first three that fit");
    assert_eq!(
        rig.totals().by_owner[&A],
        rx(600, 6),
        "the owned three, twice"
    );
}

/// A socket the resolver says was destroyed: at the next housekeeping round its endpoint's
/// flows are forgotten, before the answers of that round are applied, so the next packet asks
/// who has the port now.
#[test]
fn flows_of_a_destroyed_socket_are_asked_again() {
    use crate::net::closed_sockets::ClosedEndpoint;
    let mut rig = Rig::new();
    let udp = |port| FlowPacket {
        transport: Transport::Udp,
        ..incoming(port, 100)
    };
    rig.packet(udp(5353), 1);
    rig.after_read(50);
    for (key, reply) in rig.lookups() {
        reply
            .send((key, Resolution::Process(A)))
            .expect("listening");
    }
    rig.after_read(100);
    rig.packet(udp(5353), 110);
    assert!(rig.lookups().is_empty(), "known");
    rig.board.closed.publish(
        [ClosedEndpoint {
            netns: NetnsId::HOST,
            transport: Transport::Udp,
            ip: "0.0.0.0".parse().expect("an address"),
            port: 5353,
        }],
        false,
    );
    rig.after_read(150);
    rig.packet(udp(5353), 160);
    let again = rig.lookups();
    assert_eq!(again.len(), 1, "asked again");
    again[0]
        .1
        .send((again[0].0, Resolution::Process(B)))
        .expect("listening");
    rig.after_read(200);
    let totals = rig.totals();
    assert_eq!(totals.by_owner[&A], rx(200, 2));
    assert_eq!(totals.by_owner[&B], rx(100, 1));
    assert_eq!(totals.flows.forgotten_closed, 1);
}

//! Cost of the packet parser on a realistic mix of captured frames: what the capture thread pays
//! per packet before attribution (the target for parse + attribution is 2 million packets per
//! second on one core, so the parser must stay well under 200 ns).
//!
//! The mix, shuffled so the branch predictor cannot learn its order: TCP over IPv4 and IPv6 as
//! the `any` device delivers it (Linux cooked v2, snaplen 128), UDP over IPv4 on Ethernet, TCP
//! over IPv4 behind an 802.1Q tag, and a few ICMP and IPv4 fragment pairs.
//!
//! A second benchmark runs the whole per-packet work of the capture thread on the same mix:
//! parse, then credit the flow in the flow table (every flow already resolved, the steady
//! state).
//!
//! A third replays a recorded capture (`benches/fixtures/loopback-mix.pcap`, real loopback
//! traffic recorded by `bench/record_capture.sh`: short TCP connections, unconnected UDP and
//! bulk TCP over IPv4 and IPv6, as the `any` device delivers it) through the same work. Its
//! flows are resolved as the first pass meets them, so the replay measures the steady state
//! of a capture thread on real frames.
//!
//! `cargo bench --bench packet`; the ns per packet and packets per second are printed after the run.

use capture::net::capture::flows::FlowTable;
use capture::net::capture::host_addresses::HostAddresses;
use capture::net::capture::packet::{LinkType, Parsed, Parser};
use capture::net::types::Owner;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;

const SNAPLEN: usize = 128;
const BATCH: usize = 4096;

fn tcp(src_port: u16, dst_port: u16, payload: usize) -> Vec<u8> {
    let mut t = vec![0u8; 32]; // 20 bytes + timestamps, as Linux sends
    t[0..2].copy_from_slice(&src_port.to_be_bytes());
    t[2..4].copy_from_slice(&dst_port.to_be_bytes());
    t[12] = 8 << 4;
    t[13] = 0x18;
    t.resize(32 + payload, 0x78);
    t
}

fn udp(src_port: u16, dst_port: u16, payload: usize) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&src_port.to_be_bytes());
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(8 + payload, 0x75);
    u
}

fn ipv4(protocol: u8, flags_offset: u16, host: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]);
    p.extend_from_slice(&flags_offset.to_be_bytes());
    p.extend_from_slice(&[64, protocol, 0, 0]);
    p.extend_from_slice(&[10, 0, 0, host, 10, 0, 1, 1]);
    p.extend_from_slice(payload);
    p
}

fn ipv6(next: u8, host: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, host,
    ]);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    p.extend_from_slice(payload);
    p
}

fn sll2(protocol: u16, pkttype: u8, packet: &[u8]) -> Vec<u8> {
    let mut f = protocol.to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, pkttype, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(packet);
    f
}

fn ethernet(tags: &[u16], ethertype: u16, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for tpid in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&[0, 100]);
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(packet);
    f
}

/// Frames as the capture hands them over: at most `SNAPLEN` bytes, with weights.
fn mix() -> Vec<(u32, LinkType, Vec<u8>)> {
    let mut frames = Vec::new();
    for i in 0..8u16 {
        let host = i as u8 + 2;
        let port = 40000 + i;
        // Bulk TCP: full-size segments one way, ACKs the other.
        let data = ipv4(6, 0x4000, host, &tcp(port, 443, 1448));
        let ack = ipv4(6, 0x4000, host, &tcp(443, port, 0));
        frames.push((6, LinkType::LinuxSll2, sll2(0x0800, 0, &data)));
        frames.push((4, LinkType::LinuxSll2, sll2(0x0800, 4, &ack)));
        let data6 = ipv6(6, host, &tcp(port, 443, 1428));
        let ack6 = ipv6(6, host, &tcp(443, port, 0));
        frames.push((4, LinkType::LinuxSll2, sll2(0x86dd, 4, &data6)));
        frames.push((3, LinkType::LinuxSll2, sll2(0x86dd, 0, &ack6)));
        // DNS-sized UDP on Ethernet, and TCP behind a VLAN tag.
        let dns = ipv4(17, 0, host, &udp(port, 53, 40));
        frames.push((2, LinkType::Ethernet, ethernet(&[], 0x0800, &dns)));
        let vlan = ipv4(6, 0x4000, host, &tcp(port, 8080, 600));
        frames.push((2, LinkType::Ethernet, ethernet(&[0x8100], 0x0800, &vlan)));
    }
    // Rarer: ICMP, and a fragmented UDP datagram (first fragment, then the rest).
    let icmp = ipv4(1, 0, 9, &[8, 0, 0, 0, 0, 1, 0, 1]);
    frames.push((1, LinkType::LinuxSll2, sll2(0x0800, 0, &icmp)));
    let first = ipv4(17, 0x2000, 9, &udp(5000, 6000, 1472));
    let rest = ipv4(17, 185, 9, &[0; 1000]);
    frames.push((1, LinkType::LinuxSll2, sll2(0x0800, 0, &first)));
    frames.push((1, LinkType::LinuxSll2, sll2(0x0800, 0, &rest)));
    for (_, _, frame) in &mut frames {
        frame.truncate(SNAPLEN);
    }
    frames
}

/// `BATCH` frames drawn from the mix by weight, in a pseudo-random order.
fn batch() -> Vec<(LinkType, Vec<u8>, u32)> {
    let mix = mix();
    let total: u32 = mix.iter().map(|(w, _, _)| w).sum();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..BATCH)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut pick = (state % u64::from(total)) as u32;
            let (_, link, frame) = mix
                .iter()
                .find(|(w, _, _)| {
                    let hit = pick < *w;
                    pick = pick.saturating_sub(*w);
                    hit
                })
                .unwrap_or(&mix[0]);
            (*link, frame.clone(), frame.len() as u32)
        })
        .collect()
}

fn parse_all(parser: &mut Parser, frames: &[(LinkType, Vec<u8>, u32)], now_ms: u64) -> u64 {
    let mut bytes = 0u64;
    for (link, frame, _) in frames {
        match parser.parse(*link, black_box(frame), now_ms) {
            Parsed::Flow(f) => bytes += u64::from(f.ip_len) + u64::from(f.src.port()),
            Parsed::Unattributable { ip_len, .. } => bytes += u64::from(ip_len),
            Parsed::NotIp | Parsed::Malformed => {}
        }
    }
    bytes
}

fn parse_mix(c: &mut Criterion) {
    let frames = batch();
    let mut parser = Parser::new();
    let mut group = c.benchmark_group("packet_parse");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("realistic_mix", |b| {
        b.iter(|| black_box(parse_all(&mut parser, &frames, 1_000)))
    });
    group.finish();

    // One more timed run for the figure the docs quote.
    let rounds = 2_000;
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(parse_all(&mut parser, &frames, 1_000));
    }
    let seconds = started.elapsed().as_secs_f64();
    let packets = (rounds * BATCH) as f64;
    println!(
        "packet parser: {:.1} ns per packet, {:.1} million packets per second on one core",
        seconds * 1e9 / packets,
        packets / seconds / 1e6
    );
}

/// Parse + attribution, as the capture thread does it for each packet.
fn attribute_all(
    parser: &mut Parser,
    table: &mut FlowTable,
    host: &HostAddresses,
    frames: &[(LinkType, Vec<u8>, u32)],
) {
    for (link, frame, _) in frames {
        match parser.parse(*link, black_box(frame), 1_000) {
            Parsed::Flow(packet) => table.account(&packet, host, 1_000),
            Parsed::Unattributable { direction, ip_len } => {
                table.account_unattributable(direction, ip_len)
            }
            Parsed::NotIp | Parsed::Malformed => {}
        }
    }
}

fn parse_and_attribute(c: &mut Criterion) {
    let frames = batch();
    let mut parser = Parser::new();
    let mut table = FlowTable::new(5_000, 120_000);
    // The mix's hosts are 10.0.1.1 (IPv4) and 2001:db8::101 (IPv6), as the frames say.
    let host = HostAddresses::from_addresses([
        "10.0.1.1".parse().expect("address"),
        "2001:db8::101".parse().expect("address"),
    ]);
    attribute_all(&mut parser, &mut table, &host, &frames);
    let owner = Owner {
        pid: 1,
        starttime: 1,
    };
    for key in table.take_lookups() {
        table.resolved(&key.key, Some(owner));
    }
    let mut group = c.benchmark_group("packet_parse_and_attribute");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("realistic_mix", |b| {
        b.iter(|| attribute_all(&mut parser, &mut table, &host, &frames))
    });
    group.finish();

    let rounds = 2_000;
    let started = Instant::now();
    for _ in 0..rounds {
        attribute_all(&mut parser, &mut table, &host, &frames);
    }
    let seconds = started.elapsed().as_secs_f64();
    let packets = (rounds * BATCH) as f64;
    println!(
        "parse + attribution: {:.1} ns per packet, {:.1} million packets per second on one core \
         ({} flows)",
        seconds * 1e9 / packets,
        packets / seconds / 1e6,
        table.tracked_flows()
    );
}

/// The frames of the recorded capture, with the link type it was recorded on.
fn recorded() -> Vec<(LinkType, Vec<u8>, u32)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/fixtures/loopback-mix.pcap"
    );
    let mut capture = pcap::Capture::from_file(path).expect("the recorded capture opens");
    let link = LinkType::from_dlt(capture.get_datalink().0).expect("a link type we parse");
    let mut frames = Vec::new();
    while let Ok(packet) = capture.next_packet() {
        frames.push((link, packet.data.to_vec(), packet.header.len));
    }
    frames
}

fn replay_recorded_capture(c: &mut Criterion) {
    let frames = recorded();
    let mut parser = Parser::new();
    let mut table = FlowTable::new(5_000, 120_000);
    let host = HostAddresses::from_addresses([]);
    let owner = Owner {
        pid: 1,
        starttime: 1,
    };
    // First pass: every flow is met and resolved, as the resolver would.
    for (link, frame, wire_len) in &frames {
        if let Parsed::Flow(packet) = parser.parse_wire(*link, frame, *wire_len, 1_000) {
            table.account(&packet, &host, 1_000);
            for key in table.take_lookups() {
                table.resolved(&key.key, Some(owner));
            }
        }
    }
    let replay = |parser: &mut Parser, table: &mut FlowTable| {
        for (link, frame, wire_len) in &frames {
            match parser.parse_wire(*link, black_box(frame), *wire_len, 1_000) {
                Parsed::Flow(packet) => table.account(&packet, &host, 1_000),
                Parsed::Unattributable { direction, ip_len } => {
                    table.account_unattributable(direction, ip_len)
                }
                Parsed::NotIp | Parsed::Malformed => {}
            }
        }
    };
    let mut group = c.benchmark_group("packet_parse_and_attribute");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("recorded_loopback_capture", |b| {
        b.iter(|| replay(&mut parser, &mut table))
    });
    group.finish();

    let rounds = 500;
    let started = Instant::now();
    for _ in 0..rounds {
        replay(&mut parser, &mut table);
    }
    let seconds = started.elapsed().as_secs_f64();
    let packets = (rounds * frames.len()) as f64;
    println!(
        "recorded capture ({} frames, {} flows): parse + attribution {:.1} ns per packet, \
         {:.1} million packets per second on one core",
        frames.len(),
        table.tracked_flows(),
        seconds * 1e9 / packets,
        packets / seconds / 1e6,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = parse_mix, parse_and_attribute, replay_recorded_capture
}
criterion_main!(benches);

use super::*;

/// A record laid out as `bpf/record.h` says, with the tail padding the compiler adds.
fn bytes(family: u16, local: [u8; 16], remote: [u8; 16], remote_port: u16) -> Vec<u8> {
    let mut b = vec![0u8; 104];
    b[0..8].copy_from_slice(&(1_234_567_890_123u64).to_ne_bytes()); // start_boottime_ns
    b[8..16].copy_from_slice(&77u64.to_ne_bytes()); // cgroup_id
    b[16..24].copy_from_slice(&4242u64.to_ne_bytes()); // socket_inode
    b[24..32].copy_from_slice(&9_000_000_000u64.to_ne_bytes()); // recorded_ns
    b[32..36].copy_from_slice(&4026531840u32.to_ne_bytes()); // netns_inode
    b[36..40].copy_from_slice(&31337u32.to_ne_bytes()); // tgid
    b[40..44].copy_from_slice(&1000u32.to_ne_bytes()); // uid
    b[44..46].copy_from_slice(&family.to_ne_bytes());
    b[46] = 17; // UDP
    b[47] = 2; // sent
    b[48..50].copy_from_slice(&5353u16.to_ne_bytes());
    b[50..52].copy_from_slice(&remote_port.to_ne_bytes());
    b[52..68].copy_from_slice(&local);
    b[68..84].copy_from_slice(&remote);
    b[84..88].copy_from_slice(b"curl");
    b
}

fn v4_bytes(a: [u8; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a);
    out
}

#[test]
fn an_ipv4_record_keys_its_process_as_the_sampler_does() {
    let record = parse(&bytes(2, v4_bytes([127, 0, 0, 1]), v4_bytes([0; 4]), 0)).expect("parses");
    assert_eq!(
        record.process.owner,
        Owner {
            pid: 31337,
            // 1,234,567,890,123 ns after boot is 123,456 ticks of 10 ms (USER_HZ 100).
            starttime: 123_456,
        }
    );
    assert_eq!(record.process.comm, "curl");
    assert_eq!((record.process.uid, record.process.cgroup_id), (1000, 77));
    assert_eq!(record.socket_inode, 4242);
    assert_eq!(record.recorded_ns, 9_000_000_000);
    assert_eq!(record.netns_inode, 4026531840);
    assert_eq!(record.transport, Transport::Udp);
    assert_eq!(record.event, Event::Sent);
    assert_eq!(record.local, "127.0.0.1:5353".parse().unwrap());
    assert_eq!(record.remote, None, "no peer port: an unconnected socket");
}

#[test]
fn a_connected_ipv6_record_has_its_peer_and_mapped_addresses_read_as_ipv4() {
    let local: std::net::Ipv6Addr = "fd00::1".parse().unwrap();
    let mapped: std::net::Ipv6Addr = "::ffff:10.1.2.3".parse().unwrap();
    let record = parse(&bytes(10, local.octets(), mapped.octets(), 443)).expect("parses");
    assert_eq!(record.local, "[fd00::1]:5353".parse().unwrap());
    assert_eq!(record.remote, Some("10.1.2.3:443".parse().unwrap()));
}

#[test]
fn short_or_foreign_records_are_refused() {
    let good = bytes(2, v4_bytes([127, 0, 0, 1]), v4_bytes([0; 4]), 0);
    assert!(
        parse(&good[..RECORD_LEN]).is_some(),
        "the padding is not needed"
    );
    assert!(parse(&good[..RECORD_LEN - 1]).is_none());
    assert!(parse(&[]).is_none());
    let mut family = good.clone();
    family[44..46].copy_from_slice(&1u16.to_ne_bytes()); // AF_UNIX
    assert!(parse(&family).is_none());
    let mut protocol = good.clone();
    protocol[46] = 1; // ICMP
    assert!(parse(&protocol).is_none());
    let mut event = good;
    event[47] = 9;
    assert!(parse(&event).is_none());
}

#[test]
fn a_comm_of_sixteen_bytes_without_a_terminator_is_read_whole() {
    let mut b = bytes(2, v4_bytes([127, 0, 0, 1]), v4_bytes([0; 4]), 0);
    b[84..100].copy_from_slice(b"abcdefghijklmnop");
    assert_eq!(parse(&b).expect("parses").process.comm, "abcdefghijklmnop");
}

proptest::proptest! {
    #[test]
    fn any_bytes_parse_or_are_refused_without_panicking(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let _ = parse(&data);
    }
}

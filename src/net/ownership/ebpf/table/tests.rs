use super::*;
use crate::net::ownership::ebpf::record::{Event, KernelProcess};

const HOST: u32 = 4026531840;

fn record(
    pid: u32,
    inode: u64,
    local: &str,
    remote: Option<&str>,
    recorded_ns: u64,
) -> OwnerRecord {
    OwnerRecord {
        process: KernelProcess {
            owner: Owner { pid, starttime: 7 },
            comm: "p".into(),
            uid: 0,
            cgroup_id: 0,
        },
        socket_inode: inode,
        recorded_ns,
        netns_inode: HOST,
        transport: Transport::Udp,
        local: local.parse().unwrap(),
        remote: remote.map(|r| r.parse().unwrap()),
        event: Event::Sent,
    }
}

fn owner(pid: u32) -> Option<Owner> {
    Some(Owner { pid, starttime: 7 })
}

fn flow(local: &str, remote: &str) -> (SocketAddr, SocketAddr) {
    (local.parse().unwrap(), remote.parse().unwrap())
}

#[test]
fn a_live_socket_is_known_by_its_inode() {
    let mut table = RecordTable::default();
    let now = Instant::now();
    table.insert(&record(10, 500, "0.0.0.0:53", None, 1), now);
    assert_eq!(table.by_socket(500, now), owner(10));
    assert_eq!(table.by_socket(501, now), None);
}

#[test]
fn a_closed_socket_is_known_by_its_four_tuple_then_its_address_then_its_wildcard() {
    let mut table = RecordTable::default();
    let now = Instant::now();
    table.insert(&record(1, 1, "10.0.0.1:1000", Some("10.0.0.9:53"), 1), now);
    table.insert(&record(2, 2, "10.0.0.1:2000", None, 1), now);
    table.insert(&record(3, 3, "0.0.0.0:3000", None, 1), now);
    table.insert(&record(4, 4, "[::]:4000", None, 1), now);
    let find = |local, remote| table.by_endpoint(HOST, Transport::Udp, flow(local, remote), 0, now);
    assert_eq!(find("10.0.0.1:1000", "10.0.0.9:53"), owner(1));
    assert_eq!(
        find("10.0.0.1:1000", "10.0.0.8:53"),
        None,
        "another peer of a connected socket"
    );
    assert_eq!(find("10.0.0.1:2000", "10.0.0.8:53"), owner(2));
    assert_eq!(find("127.0.0.1:3000", "10.0.0.8:53"), owner(3));
    assert_eq!(
        find("127.0.0.1:4000", "10.0.0.8:53"),
        owner(4),
        "a dual-stack wildcard"
    );
    assert_eq!(find("[fd00::1]:4000", "[fd00::2]:53"), owner(4));
    assert_eq!(
        find("[fd00::1]:3000", "[fd00::2]:53"),
        None,
        "an IPv4 socket has no IPv6 flows"
    );
    assert_eq!(
        table.by_endpoint(
            HOST + 1,
            Transport::Udp,
            flow("10.0.0.1:2000", "10.0.0.8:53"),
            0,
            now
        ),
        None,
        "another namespace"
    );
    assert_eq!(
        table.by_endpoint(
            HOST,
            Transport::Tcp,
            flow("10.0.0.1:2000", "10.0.0.8:53"),
            0,
            now
        ),
        None,
        "another transport"
    );
}

#[test]
fn the_newest_record_of_an_endpoint_wins_and_a_destroyed_one_answers_briefly() {
    let mut table = RecordTable::default();
    let now = Instant::now();
    table.insert(&record(1, 1, "0.0.0.0:5000", None, 1), now);
    table.insert(&record(2, 2, "0.0.0.0:5000", None, 2), now);
    let find = |table: &RecordTable, at: Instant| {
        table.by_endpoint(
            HOST,
            Transport::Udp,
            flow("127.0.0.1:5000", "127.0.0.1:9"),
            0,
            at,
        )
    };
    assert_eq!(find(&table, now), owner(2));
    table.close_endpoint(HOST, Transport::Udp, "127.0.0.1:5000".parse().unwrap(), now);
    let later = now + CLOSED_GRACE / 2;
    assert_eq!(
        find(&table, later),
        owner(2),
        "the closed socket's last packets, looked up after its close was heard"
    );
    // Heard again later: the first close counts.
    table.close_endpoint(
        HOST,
        Transport::Udp,
        "127.0.0.1:5000".parse().unwrap(),
        later,
    );
    assert_eq!(
        find(&table, now + CLOSED_GRACE),
        None,
        "the wildcard record goes with a destroyed socket, after the grace"
    );
    assert_eq!(
        table.by_socket(2, now + CLOSED_GRACE),
        owner(2),
        "the inode still names the socket"
    );
    // A new socket on the port records itself: it answers, whatever was closed before.
    table.insert(&record(3, 3, "0.0.0.0:5000", None, 3), now + CLOSED_GRACE);
    assert_eq!(find(&table, now + CLOSED_GRACE), owner(3));
}

#[test]
fn records_older_than_asked_for_do_not_answer() {
    let mut table = RecordTable::default();
    let now = Instant::now();
    table.insert(
        &record(1, 1, "10.0.0.1:1000", Some("10.0.0.9:80"), 1_000),
        now,
    );
    let find = |since| {
        table.by_endpoint(
            HOST,
            Transport::Udp,
            flow("10.0.0.1:1000", "10.0.0.9:80"),
            since,
            now,
        )
    };
    assert_eq!(find(1_000), owner(1));
    assert_eq!(find(1_001), None);
}

#[test]
fn records_are_forgotten_after_keep_for() {
    let mut table = RecordTable::default();
    let then = Instant::now();
    table.insert(&record(1, 1, "0.0.0.0:5000", None, 1), then);
    let later = then + KEEP_FOR;
    assert_eq!(table.by_socket(1, later), None);
    assert_eq!(
        table.by_endpoint(
            HOST,
            Transport::Udp,
            flow("127.0.0.1:5000", "127.0.0.1:9"),
            0,
            later
        ),
        None
    );
}

#[test]
fn a_full_table_forgets_the_out_of_date_then_the_older_half() {
    let mut table = RecordTable::default();
    let start = Instant::now();
    let port = |i: usize| format!("10.0.{}.{}:{}", i / 65536, (i / 256) % 256, 1 + i % 256);
    for i in 0..MAX_RECORDS {
        let at = start + Duration::from_micros(i as u64);
        table.insert(&record(1, i as u64 + 1, &port(i), None, 1), at);
    }
    assert_eq!(table.kept(), MAX_RECORDS);
    let at = start + Duration::from_secs(1);
    table.insert(&record(2, u64::MAX, "10.9.9.9:9", None, 1), at);
    assert!(table.kept() <= MAX_RECORDS / 2 + 1, "{} kept", table.kept());
    assert_eq!(
        table.by_socket(u64::MAX, at),
        owner(2),
        "the new one is kept"
    );
    assert_eq!(
        table.by_socket(MAX_RECORDS as u64, at),
        owner(1),
        "the newest old one too"
    );
    assert_eq!(table.by_socket(1, at), None, "the oldest is gone");
}

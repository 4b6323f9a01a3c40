//! Unit tests of [`super`] (fragments).

use super::*;
use std::net::Ipv4Addr;

fn key(id: u32) -> FragmentKey {
    FragmentKey {
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        protocol: 17,
        id,
    }
}

fn flow(port: u16) -> FragmentFlow {
    FragmentFlow {
        transport: Transport::Udp,
        src_port: port,
        dst_port: 53,
    }
}

#[test]
fn remembers_by_full_key() {
    let mut table = FragmentTable::new(64, 30_000);
    table.insert(key(7), flow(1000), 0);
    assert_eq!(table.get(&key(7), 10), Some(flow(1000)));
    assert_eq!(table.get(&key(8), 10), None);
    let other_protocol = FragmentKey {
        protocol: 6,
        ..key(7)
    };
    assert_eq!(table.get(&other_protocol, 10), None);
    let swapped = FragmentKey {
        src: key(7).dst,
        dst: key(7).src,
        ..key(7)
    };
    assert_eq!(table.get(&swapped, 10), None);
}

#[test]
fn same_key_replaces_instead_of_duplicating() {
    let mut table = FragmentTable::new(64, 30_000);
    table.insert(key(7), flow(1000), 0);
    table.insert(key(7), flow(2000), 5);
    assert_eq!(table.get(&key(7), 10), Some(flow(2000)));
    assert_eq!(table.live(10), 1);
}

#[test]
fn entries_expire_after_ttl() {
    let mut table = FragmentTable::new(64, 30_000);
    table.insert(key(1), flow(1000), 1_000);
    assert!(table.get(&key(1), 30_999).is_some());
    assert_eq!(table.get(&key(1), 31_000), None);
    assert_eq!(table.live(31_000), 0);
    // A clock that steps back (a caller's bug) must not expire everything.
    assert!(table.get(&key(1), 0).is_some());
}

#[test]
fn bounded_and_keeps_the_newest() {
    let mut table = FragmentTable::new(100, 30_000);
    assert_eq!(table.capacity(), 128);
    let inserted = 10 * table.capacity() as u32;
    for id in 0..inserted {
        table.insert(key(id), flow(id as u16), u64::from(id));
    }
    let now = u64::from(inserted);
    assert!(table.live(now) <= table.capacity());
    // The newest entry is always there; the first ones went long ago: every set received
    // about 40 newer entries after them.
    assert!(table.get(&key(inserted - 1), now).is_some());
    let oldest_kept = (0..WAYS as u32).filter(|&id| table.get(&key(id), now).is_some());
    assert_eq!(oldest_kept.count(), 0);
    // And most of the last `capacity` entries are kept (hashing is not perfectly even).
    let recent = (inserted - table.capacity() as u32..inserted)
        .filter(|&id| table.get(&key(id), now).is_some())
        .count();
    assert!(recent > table.capacity() / 2, "only {recent} recent kept");
}

#[test]
fn expired_slots_are_reused_before_live_ones() {
    // One set only: capacity WAYS.
    let mut table = FragmentTable::new(WAYS, 1_000);
    for id in 0..WAYS as u32 {
        table.insert(key(id), flow(1), 0);
    }
    table.insert(key(100), flow(2), 500);
    // The set was full of equally old live entries: one of them went.
    assert_eq!(table.live(500), WAYS);
    // At 1200 the first four expired, key(100) did not: a new one must not evict it.
    table.insert(key(200), flow(3), 1_200);
    assert_eq!(table.get(&key(100), 1_200), Some(flow(2)));
    assert_eq!(table.get(&key(200), 1_200), Some(flow(3)));
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const TTL: u64 = 30_000;

    proptest! {
        /// Whatever the hashing: a lookup finds the latest ports of its key or nothing,
        /// never another key's or older ones; an entry with fewer than WAYS newer keys after
        /// it is found until its time-to-live ends, and never after; the table never holds
        /// more than its capacity.
        #[test]
        fn lookups_match_a_model(
            capacity in 1usize..32,
            inserts in prop::collection::vec((0u8..48, any::<u16>(), 1u64..5_000), 1..200),
            later in 0u64..2 * TTL,
        ) {
            let mut table = FragmentTable::new(capacity, TTL);
            // key -> (ports, time inserted, inserts of other keys since)
            let mut model: HashMap<u8, (u16, u64, usize)> = HashMap::new();
            let mut now = 1_000_000;
            for (k, port, step) in inserts {
                now += step;
                table.insert(key(u32::from(k)), flow(port), now);
                for (other, entry) in model.iter_mut() {
                    if *other != k {
                        entry.2 += 1;
                    }
                }
                model.insert(k, (port, now, 0));
                prop_assert!(table.live(now) <= table.capacity());
            }
            let at = now + later;
            for (k, (port, seen, newer)) in &model {
                let found = table.get(&key(u32::from(*k)), at);
                if at - seen >= TTL {
                    prop_assert_eq!(found, None);
                } else if *newer < WAYS {
                    prop_assert_eq!(found, Some(flow(*port)));
                } else {
                    prop_assert!(found.is_none() || found == Some(flow(*port)), "{:?}", found);
                }
            }
            prop_assert_eq!(table.get(&key(200), at), None);
            prop_assert!(table.live(at) <= model.values().filter(|e| at - e.1 < TTL).count());
        }
    }
}

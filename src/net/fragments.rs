//! The ports of fragmented datagrams: only the first fragment of an IP datagram carries the TCP or
//! UDP header, so the packet parser remembers (source, destination, protocol, fragment id) -> ports
//! when it sees a first fragment, and credits the later fragments to the same flow.
//!
//! Bounded on purpose: fragments are rare and can be forged, so the table is a fixed-capacity,
//! set-associative cache allocated once. A key hashes (with a per-table random seed, so nobody can
//! aim collisions at one set) to a set of [`WAYS`] slots; a full set replaces its oldest entry, and
//! an entry older than the time-to-live (the kernel's own reassembly timeout is 30 s) counts as
//! absent. Nothing allocates after [`FragmentTable::new`].

use super::packet::Transport;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

/// Slots per set: a first fragment can only be forgotten for the sake of a newer one hashing to
/// the same set, and a lookup compares at most this many keys.
pub const WAYS: usize = 4;

/// What identifies the fragments of one datagram (RFC 791 and RFC 8200). `protocol` is the IPv4
/// protocol, or for IPv6 the fragment header's next header, which is the same in every fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub id: u32,
}

/// What the first fragment told: the transport and both ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentFlow {
    pub transport: Transport,
    pub src_port: u16,
    pub dst_port: u16,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: FragmentKey,
    flow: FragmentFlow,
    /// When the first fragment was seen, on the caller's millisecond clock.
    seen_ms: u64,
}

/// Fixed-capacity map from [`FragmentKey`] to [`FragmentFlow`] with expiry; see the module doc.
#[derive(Debug)]
pub struct FragmentTable {
    slots: Box<[Option<Slot>]>,
    /// Number of sets minus one (the number of sets is a power of two).
    set_mask: usize,
    ttl_ms: u64,
    seed: RandomState,
}

impl FragmentTable {
    /// A table of at least `capacity` entries (rounded up to a power of two, at least [`WAYS`]),
    /// whose entries expire `ttl_ms` milliseconds after their first fragment.
    pub fn new(capacity: usize, ttl_ms: u64) -> FragmentTable {
        let sets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        FragmentTable {
            slots: vec![None; sets * WAYS].into_boxed_slice(),
            set_mask: sets - 1,
            ttl_ms,
            seed: RandomState::new(),
        }
    }

    /// How many entries the table holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Remembers the ports of a first fragment, replacing an entry with the same key, else a free
    /// or expired slot of its set, else the set's oldest entry.
    pub fn insert(&mut self, key: FragmentKey, flow: FragmentFlow, now_ms: u64) {
        let ttl_ms = self.ttl_ms;
        let set = self.set_mut(&key);
        let mut victim = 0;
        let mut victim_age = 0;
        for (i, slot) in set.iter().enumerate() {
            let age = match slot {
                Some(s) if s.key == key => {
                    victim = i;
                    break;
                }
                Some(s) if now_ms.saturating_sub(s.seen_ms) < ttl_ms => {
                    now_ms.saturating_sub(s.seen_ms)
                }
                // Free or expired: as good as it gets.
                _ => u64::MAX,
            };
            if age > victim_age || i == 0 {
                victim = i;
                victim_age = age;
            }
        }
        if let Some(slot) = set.get_mut(victim) {
            *slot = Some(Slot {
                key,
                flow,
                seen_ms: now_ms,
            });
        }
    }

    /// The ports of the datagram `key` belongs to, if its first fragment was seen less than the
    /// time-to-live ago and not pushed out since.
    pub fn get(&self, key: &FragmentKey, now_ms: u64) -> Option<FragmentFlow> {
        let start = self.set_start(key);
        self.slots
            .get(start..start + WAYS)?
            .iter()
            .flatten()
            .find(|s| s.key == *key && now_ms.saturating_sub(s.seen_ms) < self.ttl_ms)
            .map(|s| s.flow)
    }

    /// Entries not expired at `now_ms` (telemetry and tests; walks the whole table).
    pub fn live(&self, now_ms: u64) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|s| now_ms.saturating_sub(s.seen_ms) < self.ttl_ms)
            .count()
    }

    fn set_start(&self, key: &FragmentKey) -> usize {
        // Truncating the hash is the point: its low bits pick the set.
        (self.seed.hash_one(key) as usize & self.set_mask) * WAYS
    }

    fn set_mut(&mut self, key: &FragmentKey) -> &mut [Option<Slot>] {
        let start = self.set_start(key);
        self.slots.get_mut(start..start + WAYS).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
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
}

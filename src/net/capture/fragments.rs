//! The ports of fragmented datagrams: only the first fragment of an IP datagram carries the TCP or
//! UDP header, so the packet parser remembers (source, destination, protocol, fragment id) -> ports
//! when it sees a first fragment, and credits the later fragments to the same flow.
//!
//! Bounded on purpose: fragments are rare and can be forged, so the table is a fixed-capacity,
//! set-associative cache allocated once. A key hashes (with a per-table random seed, so nobody can
//! aim collisions at one set) to a set of [`WAYS`] slots; a full set replaces its oldest entry, and
//! an entry older than the time-to-live (the kernel's own reassembly timeout is 30 s) counts as
//! absent. Nothing allocates after [`FragmentTable::new`]. Used by the packet parser, on the
//! capture threads; it knows nothing of the parser (one-way: `packet` imports this).

use crate::net::types::Transport;
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
mod tests;

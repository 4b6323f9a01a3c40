//! The owner records the resolver keeps (resolver thread): by socket inode, for a socket the
//! kernel still has, and by endpoint, for one that is gone by the time its packets are looked
//! up. Pure: the clock is passed in, so `tests.rs` drives it.
//!
//! Why both: while a socket lives, sock_diag names its inode, and the inode is the socket — a
//! record by inode is its owner for certain, whatever ports were reused. Once the socket is
//! closed, only its addresses are left: the newest record for the flow's 4-tuple, then for its
//! local endpoint (an unconnected UDP socket, a wildcard bind), is the owner. Records of a local
//! endpoint the kernel announces destroyed ([`RecordTable::close_endpoint`]) answer only for
//! [`CLOSED_GRACE`] more, so a port reused after a close is not lent the previous owner for
//! long — but the closed socket's own packets, still being looked up when the close is heard (a
//! sender that exits at once, on a loaded host), keep their owner. A new socket on the port
//! makes its own record, which replaces the closed one.
//!
//! Bounded: at most [`MAX_RECORDS`] of each kind (~100 bytes each with the maps' room: ~13 MiB
//! at the worst), each forgotten [`KEEP_FOR`] after it was recorded. The programs record a live
//! socket again every 10 s while it is used, so a socket in use always has a fresh record; a
//! full table first forgets what is out of date, then the older half.

use super::record::OwnerRecord;
use crate::net::types::{Owner, Transport};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// How long a record answers lookups.
pub const KEEP_FOR: Duration = Duration::from_secs(30);
/// Records kept at most, by inode and by endpoint each.
pub const MAX_RECORDS: usize = 65_536;
/// How long an unconnected record answers after its socket was destroyed: the lookups of the
/// socket's last packets, queued behind the close (measured: under two CPU hogs, 4 of 50 UDP
/// senders that exit at once lost their bytes when the record went at the close).
pub const CLOSED_GRACE: Duration = Duration::from_secs(2);

/// A local endpoint as the kernel records it: address (unspecified for a wildcard bind),
/// port, and the peer of a connected socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Endpoint {
    netns_inode: u32,
    transport: Transport,
    local: SocketAddr,
    remote: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    owner: Owner,
    /// When it was kept (what [`KEEP_FOR`] counts from).
    recorded: Instant,
    /// When the kernel recorded it (CLOCK_MONOTONIC ns).
    recorded_ns: u64,
    /// When its socket was heard destroyed.
    closed: Option<Instant>,
}

#[derive(Default)]
pub struct RecordTable {
    by_inode: HashMap<u64, Entry>,
    by_endpoint: HashMap<Endpoint, Entry>,
}

impl RecordTable {
    /// Keeps `record`, received at `now`, replacing what was kept for its socket and endpoint.
    pub fn insert(&mut self, record: &OwnerRecord, now: Instant) {
        let entry = Entry {
            owner: record.process.owner,
            recorded: now,
            recorded_ns: record.recorded_ns,
            closed: None,
        };
        if record.socket_inode != 0 {
            make_room(&mut self.by_inode, now);
            self.by_inode.insert(record.socket_inode, entry);
        }
        make_room(&mut self.by_endpoint, now);
        self.by_endpoint.insert(
            Endpoint {
                netns_inode: record.netns_inode,
                transport: record.transport,
                local: record.local,
                remote: record.remote,
            },
            entry,
        );
    }

    /// The process recorded for the socket with this inode.
    pub fn by_socket(&self, inode: u64, now: Instant) -> Option<Owner> {
        fresh(self.by_inode.get(&inode)?, now)
    }

    /// The process recorded last for a closed socket of this flow: its 4-tuple's, else its
    /// local address's (unconnected), else its port's on a wildcard bind (IPv4 flows also on
    /// a dual-stack IPv6 wildcard). Only a record the kernel made at `recorded_since` or later
    /// (CLOCK_MONOTONIC ns; 0 for any).
    pub fn by_endpoint(
        &self,
        netns_inode: u32,
        transport: Transport,
        (local, remote): (SocketAddr, SocketAddr),
        recorded_since: u64,
        now: Instant,
    ) -> Option<Owner> {
        let port = local.port();
        let mut candidates = vec![(local, Some(remote)), (local, None)];
        candidates.push((SocketAddr::new(unspecified(local.ip()), port), None));
        if local.is_ipv4() {
            candidates.push((
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
                None,
            ));
        }
        candidates.into_iter().find_map(|(local, remote)| {
            let key = Endpoint {
                netns_inode,
                transport,
                local,
                remote,
            };
            let entry = self.by_endpoint.get(&key)?;
            let closed_long_ago = entry
                .closed
                .is_some_and(|closed| now.saturating_duration_since(closed) >= CLOSED_GRACE);
            if entry.recorded_ns < recorded_since || closed_long_ago {
                return None;
            }
            fresh(entry, now)
        })
    }

    /// Marks closed, at `now`, every unconnected record of a local endpoint whose socket the
    /// kernel destroyed (bound to `ip`, or to the wildcard of its family): it answers for
    /// [`CLOSED_GRACE`] more, then a later socket on the port is someone else's. Connected
    /// records keep their 4-tuple, which a new socket would have to reuse whole.
    pub fn close_endpoint(
        &mut self,
        netns_inode: u32,
        transport: Transport,
        local: SocketAddr,
        now: Instant,
    ) {
        for ip in [local.ip(), unspecified(local.ip())] {
            let key = Endpoint {
                netns_inode,
                transport,
                local: SocketAddr::new(ip, local.port()),
                remote: None,
            };
            if let Some(entry) = self.by_endpoint.get_mut(&key) {
                entry.closed.get_or_insert(now);
            }
        }
    }

    /// Records kept (by endpoint: every record has one).
    pub fn kept(&self) -> usize {
        self.by_endpoint.len()
    }
}

fn fresh(entry: &Entry, now: Instant) -> Option<Owner> {
    (now.saturating_duration_since(entry.recorded) < KEEP_FOR).then_some(entry.owner)
}

fn unspecified(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Room for one more: what is out of date goes first; if that is not enough, the older half.
fn make_room<K: Eq + std::hash::Hash>(map: &mut HashMap<K, Entry>, now: Instant) {
    if map.len() < MAX_RECORDS {
        return;
    }
    map.retain(|_, e| now.saturating_duration_since(e.recorded) < KEEP_FOR);
    if map.len() >= MAX_RECORDS {
        let mut ages: Vec<Instant> = map.values().map(|e| e.recorded).collect();
        let middle = ages.len() / 2;
        let (_, median, _) = ages.select_nth_unstable(middle);
        let median = *median;
        map.retain(|_, e| e.recorded > median);
    }
    crate::maps::shrink_mostly_empty(map);
}

#[cfg(test)]
mod tests;

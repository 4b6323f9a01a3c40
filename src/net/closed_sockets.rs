//! Local endpoints whose socket the kernel has destroyed, passed from the resolver thread
//! (which hears of them: `netlink::sock_destroy`) to the capture threads (which forget the
//! flows of those endpoints, so a port reused by another process is asked about again rather
//! than credited to the old owner). Data only, shared by both sides like the topology: the
//! resolver [`publish`](ClosedSockets::publish)es, each capture thread reads what is new
//! between packets ([`read_since`](ClosedSockets::read_since)).
//!
//! Bounded: the last [`KEPT`] endpoints. A capture thread that fell further behind, or a
//! resolver that missed notifications (the kernel's buffer overran), makes the reader told it
//! missed some: it then forgets every flow the notifications could have been about.

use super::types::{NetnsId, Transport};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Endpoints kept for readers: at 50 ms between readings, 16,384 is 320,000 closes a second.
pub const KEPT: usize = 16_384;

/// A local endpoint whose socket was destroyed. `ip` is unspecified (0.0.0.0, ::) for a socket
/// bound to every address: it stood for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClosedEndpoint {
    pub netns: NetnsId,
    pub transport: Transport,
    pub ip: IpAddr,
    pub port: u16,
}

impl ClosedEndpoint {
    /// Whether a flow whose local end is `ip`:`port` (in `netns`, over `transport`) was this
    /// endpoint's.
    pub fn covers(&self, netns: NetnsId, transport: Transport, ip: IpAddr, port: u16) -> bool {
        self.port == port
            && self.transport == transport
            && self.netns == netns
            && (self.ip == ip || self.ip.is_unspecified())
    }
}

#[derive(Default)]
struct Log {
    /// The sequence number of `endpoints[0]`.
    first: u64,
    endpoints: VecDeque<ClosedEndpoint>,
    /// Sequence numbers before which notifications may have been lost.
    missed_before: u64,
}

/// What the resolver publishes and capture threads read.
#[derive(Default)]
pub struct ClosedSockets {
    log: Mutex<Log>,
    /// The sequence number the next endpoint gets: readers compare it with theirs, one atomic
    /// load, and lock only when something is new.
    next: AtomicU64,
}

impl ClosedSockets {
    /// Adds closed endpoints; `missed`: the kernel said some notifications were lost.
    pub fn publish(&self, closed: impl IntoIterator<Item = ClosedEndpoint>, missed: bool) {
        let mut log = self.log.lock();
        let mut next = log.first + log.endpoints.len() as u64;
        for endpoint in closed {
            if log.endpoints.len() == KEPT {
                log.endpoints.pop_front();
                log.first += 1;
            }
            log.endpoints.push_back(endpoint);
            next += 1;
        }
        if missed {
            // A reader at or before `next` has not seen what was lost: tell it. An empty
            // publication still moves `next`, so readers look.
            next += 1;
            log.first = next;
            log.endpoints.clear();
            log.missed_before = next;
        }
        self.next.store(next, Ordering::Release);
    }

    /// Whether anything was published after `seen`.
    pub fn newer_than(&self, seen: u64) -> bool {
        self.next.load(Ordering::Acquire) != seen
    }

    /// Appends to `out` what was published since `*seen`, moves `*seen` past it, and returns
    /// whether the reader missed some (fell behind [`KEPT`], or notifications were lost).
    pub fn read_since(&self, seen: &mut u64, out: &mut Vec<ClosedEndpoint>) -> bool {
        if !self.newer_than(*seen) {
            return false;
        }
        let log = self.log.lock();
        let missed = *seen < log.first || *seen < log.missed_before;
        let from = seen.saturating_sub(log.first) as usize;
        out.extend(log.endpoints.iter().skip(from).copied());
        *seen = log.first + log.endpoints.len() as u64;
        missed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(port: u16) -> ClosedEndpoint {
        ClosedEndpoint {
            netns: NetnsId::HOST,
            transport: Transport::Udp,
            ip: "127.0.0.1".parse().unwrap(),
            port,
        }
    }

    #[test]
    fn each_reader_gets_each_endpoint_once() {
        let board = ClosedSockets::default();
        let (mut first, mut second) = (0, 0);
        let mut got = Vec::new();
        assert!(!board.read_since(&mut first, &mut got));
        assert!(got.is_empty());
        board.publish([udp(1), udp(2)], false);
        assert!(!board.read_since(&mut first, &mut got));
        assert_eq!(got, [udp(1), udp(2)]);
        board.publish([udp(3)], false);
        got.clear();
        assert!(!board.read_since(&mut first, &mut got));
        assert_eq!(got, [udp(3)]);
        got.clear();
        assert!(!board.read_since(&mut second, &mut got));
        assert_eq!(got, [udp(1), udp(2), udp(3)]);
        got.clear();
        assert!(!board.read_since(&mut first, &mut got));
        assert!(got.is_empty());
    }

    #[test]
    fn a_reader_that_fell_behind_or_a_lost_notification_is_told() {
        let board = ClosedSockets::default();
        let mut behind = 0;
        board.publish((0..KEPT as u16 + 10).map(udp), false);
        let mut got = Vec::new();
        assert!(board.read_since(&mut behind, &mut got), "fell behind");
        assert_eq!(got.len(), KEPT);
        assert_eq!(got[0], udp(10));
        let mut up_to_date = behind;
        board.publish([], true);
        got.clear();
        assert!(
            board.read_since(&mut up_to_date, &mut got),
            "lost notifications"
        );
        assert!(got.is_empty());
        board.publish([udp(7)], false);
        got.clear();
        assert!(!board.read_since(&mut up_to_date, &mut got));
        assert_eq!(got, [udp(7)]);
    }

    #[test]
    fn a_wildcard_endpoint_covers_every_address_of_its_port() {
        let any = ClosedEndpoint {
            ip: "0.0.0.0".parse().unwrap(),
            ..udp(53)
        };
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(any.covers(NetnsId::HOST, Transport::Udp, lo, 53));
        assert!(udp(53).covers(NetnsId::HOST, Transport::Udp, lo, 53));
        assert!(!udp(53).covers(
            NetnsId::HOST,
            Transport::Udp,
            "127.0.0.2".parse().unwrap(),
            53
        ));
        assert!(!udp(53).covers(NetnsId::HOST, Transport::Tcp, lo, 53));
        assert!(!udp(53).covers(NetnsId(1), Transport::Udp, lo, 53));
        assert!(!udp(53).covers(NetnsId::HOST, Transport::Udp, lo, 54));
    }
}

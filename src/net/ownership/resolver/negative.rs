//! What the resolver remembers of local endpoints with no socket: a flood of packets to a
//! closed port (a scan, a UDP flood, spoofed sources) would otherwise cost one sock_diag
//! request per new flow, however many the endpoint gets. Runs on the resolver thread.
//!
//! An endpoint is (namespace, transport, address, port): "no socket" for one flow to it means
//! no listener, no bound UDP socket and no connection with that peer, so another flow to the
//! same endpoint a moment later most likely finds none either. Most likely is not surely — a
//! server may bind the port that instant — so what is remembered is used only briefly
//! ([`REMEMBER_FOR`]), only for flows whose first packet was *received* (a packet sent from an
//! endpoint proves its socket existed), and the answer it gives is [`Resolution::Lost`], not
//! "nobody": the flow table asks such a flow again after a second if it carries traffic.
//!
//! Bounded: at most [`MAX_ENDPOINTS`] endpoints (~64 bytes each with the map's room); a full
//! memory first forgets what is out of date, then everything.

use crate::net::types::{FlowKey, NetnsId, Transport};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a "no socket" answer is believed for other flows to the same endpoint.
pub const REMEMBER_FOR: Duration = Duration::from_secs(1);
/// Endpoints remembered at most.
pub const MAX_ENDPOINTS: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Endpoint {
    netns: NetnsId,
    transport: Transport,
    ip: IpAddr,
    port: u16,
}

impl Endpoint {
    fn local(key: &FlowKey) -> Endpoint {
        Endpoint {
            netns: key.netns,
            transport: key.transport,
            ip: key.local.ip(),
            port: key.local.port(),
        }
    }
}

#[derive(Default)]
pub struct NegativeAnswers {
    /// When each endpoint was found to have no socket.
    found_empty: HashMap<Endpoint, Instant>,
    /// Lookups answered from here, since the start.
    pub hits: u64,
}

impl NegativeAnswers {
    /// `key`'s local endpoint was found with no socket at `now`.
    pub fn remember(&mut self, key: &FlowKey, now: Instant) {
        if self.found_empty.len() >= MAX_ENDPOINTS {
            self.found_empty
                .retain(|_, at| now.saturating_duration_since(*at) < REMEMBER_FOR);
            if self.found_empty.len() >= MAX_ENDPOINTS {
                self.found_empty.clear();
            }
            crate::maps::shrink_mostly_empty(&mut self.found_empty);
        }
        self.found_empty.insert(Endpoint::local(key), now);
    }

    /// Whether `key`'s local endpoint was found with no socket less than [`REMEMBER_FOR`]
    /// ago; counts a hit when it was.
    pub fn knows_empty(&mut self, key: &FlowKey, now: Instant) -> bool {
        let endpoint = Endpoint::local(key);
        let Some(at) = self.found_empty.get(&endpoint) else {
            return false;
        };
        if now.saturating_duration_since(*at) < REMEMBER_FOR {
            self.hits += 1;
            true
        } else {
            self.found_empty.remove(&endpoint);
            false
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.found_empty.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn key(netns: u32, transport: Transport, local: &str, remote_port: u16) -> FlowKey {
        FlowKey {
            netns: NetnsId(netns),
            transport,
            local: local.parse().unwrap(),
            remote: SocketAddr::from(([192, 0, 2, 1], remote_port)),
        }
    }

    #[test]
    fn an_endpoint_is_remembered_for_a_second_whatever_the_peer() {
        let t0 = Instant::now();
        let mut memory = NegativeAnswers::default();
        memory.remember(&key(0, Transport::Udp, "127.0.0.1:53", 1), t0);
        let later = |ms| t0 + Duration::from_millis(ms);
        assert!(memory.knows_empty(&key(0, Transport::Udp, "127.0.0.1:53", 2), later(999)));
        for other in [
            key(1, Transport::Udp, "127.0.0.1:53", 2),
            key(0, Transport::Tcp, "127.0.0.1:53", 2),
            key(0, Transport::Udp, "127.0.0.2:53", 2),
            key(0, Transport::Udp, "127.0.0.1:54", 2),
        ] {
            assert!(!memory.knows_empty(&other, later(1)), "{other:?}");
        }
        assert!(!memory.knows_empty(&key(0, Transport::Udp, "127.0.0.1:53", 2), later(1000)));
        assert_eq!(memory.hits, 1);
        assert_eq!(memory.len(), 0, "out of date: forgotten");
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut memory = NegativeAnswers::default();
        let endpoint = |i: usize| {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i as u32);
            key(0, Transport::Udp, &format!("{ip}:9"), 1)
        };
        for i in 0..MAX_ENDPOINTS {
            memory.remember(&endpoint(i), t0);
        }
        assert_eq!(memory.len(), MAX_ENDPOINTS);
        // Full of current answers: the next one clears them.
        memory.remember(&endpoint(MAX_ENDPOINTS), t0);
        assert_eq!(memory.len(), 1);
        for i in 0..MAX_ENDPOINTS * 3 {
            memory.remember(&endpoint(i), t0 + Duration::from_millis(i as u64 / 16));
            assert!(memory.len() <= MAX_ENDPOINTS);
        }
    }
}

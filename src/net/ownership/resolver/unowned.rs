//! What the resolver remembers of sockets no process holds. Runs on the resolver thread.
//!
//! sock_diag reports a kernel socket (a vxlan or WireGuard device's UDP port, an NFS or iSCSI
//! connection) with an inode, but no fd table refers to it: the inode index cannot find an
//! owner, and every new flow to it was searched for as long as the resolver retries (two
//! seconds, a hundred lookups). Measured with 1,000 new flows a second to a vxlan port
//! (`bench/unowned_sockets.sh`), that kept the resolver thread at 85% of a core. A socket
//! searched for that long without an owner is remembered here by its inode, and flows to it
//! are answered at once while it is remembered ([`REMEMBER_FOR`]).
//!
//! The answer given is [`Resolution::Lost`](crate::net::types::Resolution::Lost), not
//! "nobody": a user's socket can be held by no process for a moment (passed in an `SCM_RIGHTS`
//! message in flight) and the flow table asks a lost flow again while it carries traffic.
//!
//! Bounded: at most [`MAX_SOCKETS`] inodes (~32 bytes each with the map's room); a full memory
//! first forgets what is out of date, then everything.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a socket found with no holder is believed to have none.
pub const REMEMBER_FOR: Duration = Duration::from_secs(30);
/// Sockets remembered at most.
pub const MAX_SOCKETS: usize = 4_096;

/// Socket inodes no process was found to hold, and when that was found.
#[derive(Default)]
pub struct UnownedSockets {
    found: HashMap<u64, Instant>,
    /// Lookups answered from here, since the start.
    pub hits: u64,
}

impl UnownedSockets {
    /// Remembers that no process was found holding `inode`.
    pub fn remember(&mut self, inode: u64, now: Instant) {
        if self.found.len() >= MAX_SOCKETS && !self.found.contains_key(&inode) {
            self.found
                .retain(|_, at| now.saturating_duration_since(*at) < REMEMBER_FOR);
            if self.found.len() >= MAX_SOCKETS {
                self.found.clear();
            }
        }
        self.found.insert(inode, now);
    }

    /// Whether `inode` was found with no holder less than [`REMEMBER_FOR`] ago (counted as a
    /// hit); an older memory is forgotten.
    pub fn knows(&mut self, inode: u64, now: Instant) -> bool {
        match self.found.get(&inode) {
            Some(at) if now.saturating_duration_since(*at) < REMEMBER_FOR => {
                self.hits += 1;
                true
            }
            Some(_) => {
                self.found.remove(&inode);
                false
            }
            None => false,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.found.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_for_a_while_then_forgotten() {
        let mut unowned = UnownedSockets::default();
        let start = Instant::now();
        assert!(!unowned.knows(7, start));
        unowned.remember(7, start);
        assert!(unowned.knows(7, start + REMEMBER_FOR / 2));
        assert!(!unowned.knows(8, start));
        assert_eq!(unowned.hits, 1);
        assert!(!unowned.knows(7, start + REMEMBER_FOR));
        assert_eq!(
            unowned.len(),
            0,
            "an out-of-date memory is dropped when asked"
        );
    }

    #[test]
    fn bounded_out_of_date_first_then_everything() {
        let mut unowned = UnownedSockets::default();
        let start = Instant::now();
        for inode in 0..MAX_SOCKETS as u64 / 2 {
            unowned.remember(inode, start);
        }
        let later = start + REMEMBER_FOR;
        for inode in MAX_SOCKETS as u64 / 2..MAX_SOCKETS as u64 {
            unowned.remember(inode, later);
        }
        assert_eq!(unowned.len(), MAX_SOCKETS);
        // Full: the old half goes, the new one stays.
        unowned.remember(u64::MAX, later);
        assert_eq!(unowned.len(), MAX_SOCKETS / 2 + 1);
        assert!(unowned.knows(MAX_SOCKETS as u64 - 1, later));
        // Full of fresh memories: everything goes, and the newest is kept.
        let newest = (1 << 40) + MAX_SOCKETS as u64;
        for inode in (1 << 40)..=newest {
            unowned.remember(inode, later);
        }
        assert!(unowned.len() <= MAX_SOCKETS);
        assert!(unowned.knows(newest, later));
    }
}

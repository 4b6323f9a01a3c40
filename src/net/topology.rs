//! The host's network topology as the capture credits by: which host interface leads into which
//! other network namespace (the host end of a veth), which is a bridge port, which is lo, and
//! each namespace's addresses. The resolver thread reads it
//! ([`super::ownership::namespaces::Namespaces::refresh`]) and publishes it in a
//! [`SharedTopology`]; capture threads take each new one between packets. Data only, shared by
//! both sides, so the packet path never imports the code that reads it.

use super::types::NetnsId;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a host interface is to the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceRole {
    pub name: String,
    /// The host end of a veth whose peer lives in another namespace: the far end of a packet
    /// seen here is a socket in that namespace.
    pub peer: Option<NetnsId>,
    /// Enslaved to a bridge: the same packet also shows on the bridge device, so the host's
    /// own sockets are not credited here.
    pub bridge_port: bool,
    pub loopback: bool,
}

/// The host's interfaces and the namespaces behind them at one moment. Immutable: a refresh
/// makes a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    generation: u64,
    interfaces: HashMap<u32, InterfaceRole>,
    namespaces: BTreeMap<NetnsId, NamespaceState>,
}

/// One namespace's part of a [`Topology`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceState {
    /// `None` when the namespace could not be entered to read them.
    pub addresses: Option<HashSet<IpAddr>>,
    pub enterable: bool,
}

impl Topology {
    /// A topology from its parts, for tests of code that reads one.
    pub fn from_parts(
        generation: u64,
        interfaces: HashMap<u32, InterfaceRole>,
        addresses: HashMap<NetnsId, HashSet<IpAddr>>,
    ) -> Topology {
        let namespaces = addresses
            .into_iter()
            .map(|(id, addresses)| {
                let state = NamespaceState {
                    addresses: Some(addresses),
                    enterable: true,
                };
                (id, state)
            })
            .collect();
        Topology {
            generation,
            interfaces,
            namespaces,
        }
    }

    /// The topology that follows this one when a refresh read `interfaces` and `namespaces`:
    /// `None` when nothing changed, so equal generations mean equal topologies.
    pub fn followed_by(
        &self,
        interfaces: HashMap<u32, InterfaceRole>,
        namespaces: BTreeMap<NetnsId, NamespaceState>,
    ) -> Option<Topology> {
        (self.interfaces != interfaces || self.namespaces != namespaces).then(|| Topology {
            generation: self.generation + 1,
            interfaces,
            namespaces,
        })
    }

    /// The role of the host interface with this index; `None` for an interface that did not
    /// exist at the last refresh.
    pub fn interface(&self, ifindex: u32) -> Option<&InterfaceRole> {
        self.interfaces.get(&ifindex)
    }

    /// The addresses configured in a namespace (lo's included); `None` for a namespace not in
    /// the topology or one that could not be entered to read them.
    pub fn addresses(&self, id: NetnsId) -> Option<&HashSet<IpAddr>> {
        self.namespaces.get(&id)?.addresses.as_ref()
    }

    /// Every namespace in the topology, [`NetnsId::HOST`] first.
    pub fn namespaces(&self) -> impl Iterator<Item = NetnsId> + '_ {
        self.namespaces.keys().copied()
    }

    /// Whether the resolver could enter it at the last refresh (always true for the host).
    pub fn enterable(&self, id: NetnsId) -> bool {
        self.namespaces.get(&id).is_some_and(|n| n.enterable)
    }

    /// Grows by one each time a refresh finds the topology changed; equal generations from
    /// one reader mean equal topologies.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// The topology as last read, published by the resolver thread, taken by the capture threads.
#[derive(Default)]
pub struct SharedTopology {
    current: Mutex<Arc<Topology>>,
    generation: AtomicU64,
}

impl SharedTopology {
    /// The current topology, if it is newer than `generation` (updated to it).
    pub fn newer_than(&self, generation: &mut u64) -> Option<Arc<Topology>> {
        let now = self.generation.load(Ordering::Acquire);
        if now == *generation {
            return None;
        }
        *generation = now;
        Some(Arc::clone(&self.current.lock()))
    }

    pub fn namespaces(&self) -> usize {
        self.current
            .lock()
            .namespaces()
            .filter(|id| *id != NetnsId::HOST)
            .count()
    }

    pub fn publish(&self, topology: Arc<Topology>) {
        *self.current.lock() = topology;
        self.generation.fetch_add(1, Ordering::Release);
    }
}

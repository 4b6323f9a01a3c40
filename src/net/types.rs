//! The words every part of the network side speaks: a process for life ([`Owner`]), a network
//! namespace ([`NetnsId`]), a transport, a flow ([`FlowKey`]), what the resolver found for one
//! ([`Resolution`]), traffic counts ([`Traffic`]) and what capture threads ask the resolver
//! ([`Request`]). Plain data with no behaviour beyond arithmetic: the packet path, the resolver
//! and the sampler may all import it, and it imports none of them.

use std::net::SocketAddr;
use std::sync::mpsc::Sender;

/// A process for life: pids are reused, (pid, start time) is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat, clock ticks after boot.
    pub starttime: u64,
}

/// What is known of a process the kernel recorded using a socket (the eBPF owner source), for
/// placing it in an instance when the sampler never saw it alive. `comm` and `uid` come with
/// every record; the others were read from /proc when the record arrived, if the process still
/// lived (`None`: it did not, or they could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedProcess {
    pub owner: Owner,
    pub comm: String,
    /// The real uid.
    pub uid: u32,
    /// Arguments joined by spaces.
    pub cmdline: Option<String>,
    /// Full path of the executable.
    pub exe: Option<String>,
    /// The cgroup path that represents it (`proc::pid_cgroup::parse`).
    pub cgroup: Option<String>,
}

/// A network namespace, as the plugin numbers them: [`NetnsId::HOST`] is the one the plugin
/// runs in, the others get 1, 2, ... as they are found, never reused while the plugin runs
/// (flows keyed by one never meet another namespace's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetnsId(pub u32);

impl NetnsId {
    /// The namespace the plugin runs in.
    pub const HOST: NetnsId = NetnsId(0);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

/// A flow as seen from one local socket, in the namespace that socket lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub netns: NetnsId,
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// What the resolver found for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Process(Owner),
    /// No local socket at all, or one nobody holds (TIME_WAIT, an orphan), or one in a
    /// namespace the resolver cannot enter: asking again would not find an owner.
    Unattributed,
    /// Its owner was not found in time (a slow index, a kernel error, a lookup not made or
    /// answered from memory): credited as unattributed for now, and asked again while the
    /// flow carries traffic, since asking again may find it.
    Lost,
    /// No local socket, but a connection the host translates (NAT): someone else's traffic.
    Forwarded,
}

impl From<Option<Owner>> for Resolution {
    fn from(owner: Option<Owner>) -> Resolution {
        owner.map_or(Resolution::Unattributed, Resolution::Process)
    }
}

/// Which way traffic went, seen from a local socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Rx,
    Tx,
}

/// Bytes (IP datagram lengths) and packets, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

impl Traffic {
    /// One packet of `bytes` on `side`.
    pub fn add(&mut self, side: Side, bytes: u32) {
        match side {
            Side::Rx => {
                self.rx_bytes += u64::from(bytes);
                self.rx_packets += 1;
            }
            Side::Tx => {
                self.tx_bytes += u64::from(bytes);
                self.tx_packets += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &Traffic) {
        self.rx_bytes += other.rx_bytes;
        self.tx_bytes += other.tx_bytes;
        self.rx_packets += other.rx_packets;
        self.tx_packets += other.tx_packets;
    }

    pub fn bytes(&self) -> u64 {
        self.rx_bytes + self.tx_bytes
    }
}

/// What capture threads send the resolver.
pub enum Request {
    /// Who owns this flow's socket; the answer goes to `reply`.
    Lookup {
        key: FlowKey,
        /// The flow's first packet was received by its local endpoint (not sent from it): a
        /// sender proves its socket existed, a receiver does not, so only such lookups may be
        /// answered from what the resolver remembers of endpoints with no socket.
        received: bool,
        /// The packet that asked opened a TCP connection (a SYN): a socket in TIME_WAIT on its
        /// 4-tuple is the previous connection's, which the SYN is about to replace, not an
        /// answer.
        opens: bool,
        reply: Sender<(FlowKey, Resolution)>,
    },
    /// A packet came through an interface the topology does not know: read it again.
    Topology,
}

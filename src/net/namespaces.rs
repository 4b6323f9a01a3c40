//! The host's network topology as the capture sees it: which host interface leads into which
//! other network namespace (the host end of a veth), which is a bridge port, which is lo; what
//! addresses each of those namespaces has; and a way into each of them for the resolver.
//!
//! Why: the capture runs in the host's namespace on the `any` device, so a container's traffic
//! is seen on the host end of its veth, where the socket that sent or receives it lives in the
//! container's namespace — and the kernel only answers sock_diag for the namespace a netlink
//! socket was created in. The same packet also shows on the bridge the veth is enslaved to,
//! where the host's own sockets must not be credited twice.
//!
//! How namespaces are found: a link dump of the host names, for each veth whose peer is
//! elsewhere, the *nsid* the host gives the peer's namespace (and assigns it if there was none;
//! see [`super::rtnetlink`]). An nsid is only a number in the host's table, so to enter that
//! namespace a reachable handle on it is looked for: the bind mounts of `ip netns` and Docker
//! (`/run/netns/*`, `/run/docker/netns/*`) and then every process's `/proc/PID/ns/net`, each
//! opened only long enough to ask the host which nsid it has. Such a scan runs only when an
//! nsid has no handle, at most once a second (every [`STALE_SCAN_INTERVAL`] for an nsid the
//! last scan did not find either).
//!
//! Nothing pins a namespace between calls: an open nsfs fd, or any socket created inside, keeps
//! a namespace — and its veth — alive after its container stopped. A namespace is remembered
//! by how to reach it (a pid with its start time, or a bind-mount path) and its identity
//! (`st_dev`/`st_ino` of the nsfs inode), checked every time it is opened. The one fd kept open
//! is the thread's own (host) namespace, to come back to.
//!
//! A namespace stays in the topology while a host link refers to its nsid, reachable or not:
//! when it cannot be entered (no process visible from here, no CAP_SYS_ADMIN) the capture still
//! knows the traffic is not the host's. When no host link refers to it any more it is dropped,
//! and its [`NetnsId`] is never given to another namespace while the plugin runs.

use super::rtnetlink::{Link, Rtnl};
use crate::proc::{pid_stat, ProcRoot};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A network namespace, as the plugin numbers them: [`NetnsId::HOST`] is the one the plugin
/// runs in, the others get 1, 2, ... as they are found, never reused while the plugin runs
/// (flows keyed by one never meet another namespace's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetnsId(pub u32);

impl NetnsId {
    /// The namespace the plugin runs in.
    pub const HOST: NetnsId = NetnsId(0);
}

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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NamespaceState {
    /// `None` when the namespace could not be entered to read them.
    addresses: Option<HashSet<IpAddr>>,
    enterable: bool,
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

    /// Whether [`Namespaces::in_namespace`] could enter it at the last refresh (always true
    /// for the host).
    pub fn enterable(&self, id: NetnsId) -> bool {
        self.namespaces.get(&id).is_some_and(|n| n.enterable)
    }

    /// Grows by one each time a refresh finds the topology changed; equal generations from
    /// one [`Namespaces`] mean equal topologies.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Why a namespace could not be entered. Carried inside the `io::Error`s of
/// [`Namespaces::in_namespace`]; [`NamespaceError::of`] gets it back.
#[derive(Debug)]
pub enum NamespaceError {
    /// Entering a namespace needs CAP_SYS_ADMIN (or opening its handle, ptrace access to its
    /// process). The namespaces are still listed, from the host's links, but none can be
    /// entered: say it once. (`io::ErrorKind::PermissionDenied`.)
    NoPrivilege(io::Error),
    /// Not in the topology, no process or path reaches it any more, or it vanished while being
    /// opened. (`io::ErrorKind::NotFound`.)
    Unreachable(NetnsId),
    /// The thread could not return to its own namespace after running in another: it is left
    /// where it is, and every later call tries to bring it back first. Logged once as an
    /// error. (`io::ErrorKind::Other`.)
    Stranded(io::Error),
}

impl NamespaceError {
    /// The `NamespaceError` inside an error of this module, if it holds one.
    pub fn of(error: &io::Error) -> Option<&NamespaceError> {
        error.get_ref()?.downcast_ref()
    }

    fn into_io(self) -> io::Error {
        let kind = match self {
            NamespaceError::NoPrivilege(_) => io::ErrorKind::PermissionDenied,
            NamespaceError::Unreachable(_) => io::ErrorKind::NotFound,
            NamespaceError::Stranded(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }
}

impl fmt::Display for NamespaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamespaceError::NoPrivilege(e) => write!(
                f,
                "cannot enter other network namespaces ({e}): it needs CAP_SYS_ADMIN"
            ),
            NamespaceError::Unreachable(id) => {
                write!(f, "network namespace {} is gone or unreachable", id.0)
            }
            NamespaceError::Stranded(e) => write!(
                f,
                "a thread could not return to the plugin's own network namespace ({e})"
            ),
        }
    }
}

impl std::error::Error for NamespaceError {}

/// Directories where tools keep bind mounts of namespaces (`ip netns`, CNI, Docker): a
/// namespace without any process in it (yet) is reached through these.
const BIND_MOUNT_DIRS: [&str; 2] = ["/run/netns", "/run/docker/netns"];

/// /proc is scanned at most this often.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// ... and this often when every namespace without a handle was already missed by the last
/// scan (a namespace held only by an fd, or whose processes this pid namespace cannot see):
/// scanning again every second would find nothing new.
pub const STALE_SCAN_INTERVAL: Duration = Duration::from_secs(10);

/// A namespace's nsfs inode: equal identities are the same namespace (while it lives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    // st_dev and st_ino are narrower than u64 on some targets.
    #[allow(clippy::unnecessary_cast)]
    fn of(stat: &rustix::fs::Stat) -> Identity {
        Identity {
            dev: stat.st_dev as u64,
            ino: stat.st_ino as u64,
        }
    }
}

/// How to reach a namespace without holding it open.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Handle {
    /// `/proc/PID/ns/net` of the process started at `starttime` (a reused pid is another
    /// process).
    Process { pid: u32, starttime: u64 },
    /// A bind mount of the namespace.
    Path(PathBuf),
}

impl Handle {
    fn path(&self) -> PathBuf {
        match self {
            Handle::Process { pid, .. } => PathBuf::from(format!("/proc/{pid}/ns/net")),
            Handle::Path(path) => path.clone(),
        }
    }
}

/// A namespace some host link refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    id: NetnsId,
    /// `None` until a scan finds the namespace that has this nsid.
    identity: Option<Identity>,
    /// `None` when nothing reachable leads there (right now).
    handle: Option<Handle>,
}

/// The nsid -> namespace bookkeeping, free of system calls so its rules are unit-tested: ids
/// are never reused, an nsid no link refers to is forgotten, an nsid found to name a different
/// namespace than before gets a new id.
#[derive(Debug)]
struct Registry {
    by_nsid: HashMap<i32, Known>,
    /// The id the next namespace gets.
    next: u32,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            by_nsid: HashMap::new(),
            next: 1,
        }
    }
}

impl Registry {
    fn allocate(&mut self) -> NetnsId {
        let id = NetnsId(self.next);
        // 4 billion namespaces in one plugin's life is not a case to design for; saturating
        // keeps it from panicking there.
        self.next = self.next.saturating_add(1);
        id
    }

    /// Keeps exactly the nsids host links refer to now: entries for new ones (not identified
    /// yet), none for the ones no link refers to any more (that namespace is gone or no
    /// longer connected to the host; if it comes back it is a new id).
    fn sync(&mut self, referenced: &HashSet<i32>) {
        self.by_nsid.retain(|nsid, _| referenced.contains(nsid));
        for &nsid in referenced {
            if !self.by_nsid.contains_key(&nsid) {
                let id = self.allocate();
                self.by_nsid.insert(
                    nsid,
                    Known {
                        id,
                        identity: None,
                        handle: None,
                    },
                );
            }
        }
    }

    fn id_of(&self, nsid: i32) -> Option<NetnsId> {
        self.by_nsid.get(&nsid).map(|k| k.id)
    }

    /// The nsids without a handle: what a scan looks for.
    fn wanted(&self) -> HashSet<i32> {
        self.by_nsid
            .iter()
            .filter(|(_, k)| k.handle.is_none())
            .map(|(&nsid, _)| nsid)
            .collect()
    }

    /// The wanted nsid whose namespace has this identity (already identified).
    fn wanted_with(&self, identity: Identity) -> Option<i32> {
        self.by_nsid
            .iter()
            .find(|(_, k)| k.handle.is_none() && k.identity == Some(identity))
            .map(|(&nsid, _)| nsid)
    }

    /// Whether some entry with a handle already has this identity.
    fn reachable(&self, identity: Identity) -> bool {
        self.by_nsid
            .values()
            .any(|k| k.handle.is_some() && k.identity == Some(identity))
    }

    /// A scan found a handle on the namespace the host calls `nsid`. The first identification
    /// keeps the id given when the nsid appeared; a different identity than before means the
    /// old namespace died and its nsid went to a new one between two refreshes: new id.
    fn found(&mut self, nsid: i32, identity: Identity, handle: Handle) {
        let fresh = match self.by_nsid.get(&nsid) {
            None => return,
            Some(known) => known.identity.is_some_and(|i| i != identity),
        };
        let id = if fresh { Some(self.allocate()) } else { None };
        if let Some(known) = self.by_nsid.get_mut(&nsid) {
            if let Some(id) = id {
                known.id = id;
            }
            known.identity = Some(identity);
            known.handle = Some(handle);
        }
    }

    fn by_id(&self, id: NetnsId) -> Option<&Known> {
        self.by_nsid.values().find(|k| k.id == id)
    }

    fn by_id_mut(&mut self, id: NetnsId) -> Option<&mut Known> {
        self.by_nsid.values_mut().find(|k| k.id == id)
    }
}

/// When to scan: at most every [`SCAN_INTERVAL`], and only every [`STALE_SCAN_INTERVAL`]
/// when the last scan already missed everything wanted now.
#[derive(Debug, Default)]
struct ScanClock {
    last: Option<Instant>,
    missed: HashSet<i32>,
}

impl ScanClock {
    fn due(&self, wanted: &HashSet<i32>, now: Instant) -> bool {
        if wanted.is_empty() {
            return false;
        }
        let Some(last) = self.last else {
            return true;
        };
        let since = now.saturating_duration_since(last);
        let interval = if wanted.is_subset(&self.missed) {
            STALE_SCAN_INTERVAL
        } else {
            SCAN_INTERVAL
        };
        since >= interval
    }

    fn scanned(&mut self, now: Instant, missed: HashSet<i32>) {
        self.last = Some(now);
        self.missed = missed;
    }
}

/// Discovery state, owned by one thread (the resolver's): see the module comment.
pub struct Namespaces {
    /// The namespace of the thread that created this: the host's, the one to come back to.
    home: Option<(OwnedFd, Identity)>,
    /// Created on first use, in the host namespace.
    rtnl: Option<Rtnl>,
    registry: Registry,
    clock: ScanClock,
    proc: ProcRoot,
    topology: Arc<Topology>,
    /// setns refused for lack of privilege: entering is not tried again by refreshes.
    no_privilege: bool,
    /// The no-privilege problem, until [`Namespaces::take_warning`] takes it.
    warning: Option<NamespaceError>,
    /// The thread is not back home (see [`NamespaceError::Stranded`]).
    stranded: bool,
    stranded_said: bool,
    /// See [`Namespaces::read_addresses`].
    read_addresses: bool,
}

impl Default for Namespaces {
    fn default() -> Self {
        Self::new()
    }
}

impl Namespaces {
    /// Remembers the calling thread's network namespace as the host's. Never fails: what is
    /// missing (no /proc, no netlink) shows as errors of [`Namespaces::refresh`] and
    /// [`Namespaces::in_namespace`].
    pub fn new() -> Namespaces {
        let home = ["/proc/thread-self/ns/net", "/proc/self/ns/net"]
            .iter()
            .find_map(|path| {
                let fd = open_namespace(Path::new(path)).ok()?;
                let identity = Identity::of(&rustix::fs::fstat(&fd).ok()?);
                Some((fd, identity))
            });
        Namespaces {
            home,
            rtnl: None,
            registry: Registry::default(),
            clock: ScanClock::default(),
            proc: ProcRoot::system(),
            topology: Arc::new(Topology::default()),
            no_privilege: false,
            warning: None,
            stranded: false,
            stranded_said: false,
            read_addresses: true,
        }
    }

    /// Whether [`refresh`](Self::refresh) reads every namespace's addresses (by entering it:
    /// about 25 µs a namespace). Only frames without direction need them; a capture on `any`
    /// does not.
    pub fn read_addresses(&mut self, read: bool) {
        self.read_addresses = read;
    }

    /// Reads the topology again: the host's links and addresses, the namespaces behind its
    /// veths (scanning for the new ones), and each of those namespaces' addresses (entering
    /// it). Returns the previous `Arc` when nothing changed. Fails only when the host's own
    /// links or addresses cannot be read, or the thread is stranded in another namespace; a
    /// namespace that cannot be entered is listed without addresses (see
    /// [`Namespaces::take_warning`]).
    pub fn refresh(&mut self) -> io::Result<Arc<Topology>> {
        self.go_home_if_stranded()
            .map_err(NamespaceError::into_io)?;
        let rtnl = match &mut self.rtnl {
            Some(rtnl) => rtnl,
            None => self.rtnl.insert(Rtnl::new()?),
        };
        // The dump also makes the kernel give every veth peer's namespace an nsid.
        let links = rtnl.links()?;
        let host_addresses: HashSet<IpAddr> =
            rtnl.addresses()?.into_iter().map(|(_, ip)| ip).collect();

        let referenced: HashSet<i32> = links
            .iter()
            .filter(|l| is_pair(l))
            .filter_map(|l| l.link_netnsid)
            .collect();
        self.registry.sync(&referenced);
        self.check_handles();
        let wanted = self.registry.wanted();
        let now = Instant::now();
        if self.clock.due(&wanted, now) {
            self.scan(&wanted);
            self.clock.scanned(now, self.registry.wanted());
        }

        let mut namespaces = BTreeMap::new();
        namespaces.insert(
            NetnsId::HOST,
            NamespaceState {
                addresses: Some(host_addresses),
                enterable: true,
            },
        );
        let ids: Vec<NetnsId> = self.registry.by_nsid.values().map(|k| k.id).collect();
        for id in ids {
            namespaces.insert(id, self.read_namespace(id));
        }
        let interfaces = roles(&links, &self.registry);

        let previous = &self.topology;
        if previous.interfaces != interfaces || previous.namespaces != namespaces {
            self.topology = Arc::new(Topology {
                generation: previous.generation + 1,
                interfaces,
                namespaces,
            });
        }
        Ok(self.topology.clone())
    }

    /// The topology of the last refresh.
    pub fn topology(&self) -> Arc<Topology> {
        self.topology.clone()
    }

    /// [`NamespaceError::NoPrivilege`] the first time a refresh met it, once in the life of
    /// this `Namespaces`: for the caller to warn once.
    pub fn take_warning(&mut self) -> Option<NamespaceError> {
        self.warning.take()
    }

    /// Runs `f` on the current thread inside the namespace `id` (the thread only: `setns`
    /// moves the calling thread), then brings the thread back to its own namespace — also
    /// when `f` panics. For [`NetnsId::HOST`] `f` just runs.
    ///
    /// A socket `f` creates belongs to `id` for its whole life, and keeps that namespace (and
    /// its veth) alive while open: close it soon. The namespace is opened for the call only.
    ///
    /// Errors carry a [`NamespaceError`]: `PermissionDenied` without CAP_SYS_ADMIN, `NotFound`
    /// for a namespace that is gone or unreachable, and `Other` if the thread could not come
    /// back — then `f`'s result is lost, the thread stays in `id` (logged once as an error),
    /// and every later call first tries to bring it back. That failure is not expected
    /// (setns to a namespace the thread came from, through an fd held open): it would take
    /// losing CAP_SYS_ADMIN in between.
    pub fn in_namespace<T>(&mut self, id: NetnsId, f: impl FnOnce() -> T) -> io::Result<T> {
        self.visit(id, f).map_err(NamespaceError::into_io)
    }

    /// [`Namespaces::in_namespace`] with the error unwrapped.
    fn visit<T>(&mut self, id: NetnsId, f: impl FnOnce() -> T) -> Result<T, NamespaceError> {
        self.go_home_if_stranded()?;
        if id == NetnsId::HOST {
            return Ok(f());
        }
        let known = self.registry.by_id(id);
        let Some((Some(handle), Some(identity))) = known.map(|k| (k.handle.clone(), k.identity))
        else {
            return Err(NamespaceError::Unreachable(id));
        };
        self.enter(&handle, identity, f).map_err(|e| match e {
            NamespaceError::Unreachable(_) => {
                // A stale handle: the next refresh looks for another.
                if let Some(known) = self.registry.by_id_mut(id) {
                    known.handle = None;
                }
                NamespaceError::Unreachable(id)
            }
            other => other,
        })
    }

    /// Opens the handle, checks it still leads to `identity`, enters, runs `f`, comes back.
    fn enter<T>(
        &mut self,
        handle: &Handle,
        identity: Identity,
        f: impl FnOnce() -> T,
    ) -> Result<T, NamespaceError> {
        let Some((home, _)) = &self.home else {
            // No way back, so the thread does not leave.
            let e = io::Error::new(
                io::ErrorKind::NotFound,
                "/proc/thread-self/ns/net could not be opened",
            );
            return Err(NamespaceError::Stranded(e));
        };
        let unreachable = NamespaceError::Unreachable(NetnsId::HOST);
        if let Handle::Process { pid, starttime } = handle {
            if process_starttime(&mut self.proc, *pid) != Some(*starttime) {
                return Err(unreachable);
            }
        }
        let fd = match open_namespace(&handle.path()) {
            Ok(fd) => fd,
            Err(e) if is_privilege(&e) => return Err(NamespaceError::NoPrivilege(e)),
            Err(_) => return Err(unreachable),
        };
        match rustix::fs::fstat(&fd) {
            Ok(stat) if Identity::of(&stat) == identity => {}
            _ => return Err(unreachable),
        }
        if let Err(e) = setns(fd.as_fd()) {
            return Err(if is_privilege(&e) {
                NamespaceError::NoPrivilege(e)
            } else {
                NamespaceError::Unreachable(NetnsId::HOST)
            });
        }
        // The thread itself holds the namespace now; the fd is not needed.
        drop(fd);
        let guard = ComeBack {
            home: home.as_fd(),
            armed: true,
        };
        let value = f();
        match guard.now() {
            Ok(()) => Ok(value),
            Err(e) => {
                self.stranded = true;
                if !self.stranded_said {
                    self.stranded_said = true;
                    log::error!(
                        "a thread could not return to the plugin's own network namespace \
                         ({e}); it will keep trying"
                    );
                }
                Err(NamespaceError::Stranded(e))
            }
        }
    }

    fn go_home_if_stranded(&mut self) -> Result<(), NamespaceError> {
        if !self.stranded {
            return Ok(());
        }
        let result = match &self.home {
            Some((home, _)) => setns(home.as_fd()),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no home namespace")),
        };
        match result {
            Ok(()) => {
                self.stranded = false;
                Ok(())
            }
            Err(e) => Err(NamespaceError::Stranded(e)),
        }
    }

    /// Forgets handles that no longer lead to their namespace (the process exited, the pid
    /// was reused, the bind mount was removed), with a `stat` each — nothing is opened.
    fn check_handles(&mut self) {
        let proc = &mut self.proc;
        for known in self.registry.by_nsid.values_mut() {
            let valid = match (&known.handle, known.identity) {
                (Some(handle), Some(identity)) => {
                    let alive = match handle {
                        Handle::Process { pid, starttime } => {
                            process_starttime(proc, *pid) == Some(*starttime)
                        }
                        Handle::Path(_) => true,
                    };
                    alive && stat_identity(&handle.path()) == Some(identity)
                }
                _ => false,
            };
            if !valid {
                known.handle = None;
            }
        }
    }

    /// Looks for handles on the `wanted` nsids: bind mounts first (they outlive processes),
    /// then every process. Stops as soon as nothing is wanted any more.
    fn scan(&mut self, wanted: &HashSet<i32>) {
        let mut left = wanted.clone();
        let mut seen: HashSet<Identity> = self.home.iter().map(|(_, i)| *i).collect();
        for dir in BIND_MOUNT_DIRS {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if left.is_empty() {
                    return;
                }
                self.consider(Handle::Path(entry.path()), &mut left, &mut seen);
            }
        }
        // Entries vanish while this runs: a missing one is skipped like any other.
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            if left.is_empty() {
                return;
            }
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let handle = Handle::Process { pid, starttime: 0 };
            self.consider(handle, &mut left, &mut seen);
        }
    }

    /// One candidate of a scan. Its namespace's identity is looked at without opening it; only
    /// an identity not seen before is opened, for the moment of asking the host its nsid.
    fn consider(&mut self, handle: Handle, left: &mut HashSet<i32>, seen: &mut HashSet<Identity>) {
        let path = handle.path();
        let Some(identity) = stat_identity(&path) else {
            return;
        };
        if !seen.insert(identity) || self.registry.reachable(identity) {
            return;
        }
        let handle = match handle {
            // The start time is read after the identity: if the pid was reused in between,
            // the check on use sees the identity differ.
            Handle::Process { pid, .. } => match process_starttime(&mut self.proc, pid) {
                Some(starttime) => Handle::Process { pid, starttime },
                None => return,
            },
            path => path,
        };
        if let Some(nsid) = self.registry.wanted_with(identity) {
            self.registry.found(nsid, identity, handle);
            left.remove(&nsid);
            return;
        }
        let Some(rtnl) = self.rtnl.as_mut() else {
            return;
        };
        let Ok(fd) = open_namespace(&path) else {
            return;
        };
        if rustix::fs::fstat(&fd).map(|s| Identity::of(&s)).ok() != Some(identity) {
            return;
        }
        if let Ok(Some(nsid)) = rtnl.nsid_of(fd.as_fd()) {
            if left.remove(&nsid) {
                self.registry.found(nsid, identity, handle);
            }
        }
    }

    /// One namespace's part of the topology: its addresses, read from inside.
    fn read_namespace(&mut self, id: NetnsId) -> NamespaceState {
        let unread = NamespaceState {
            addresses: None,
            enterable: false,
        };
        if self.no_privilege {
            return unread;
        }
        if !self.read_addresses {
            return NamespaceState {
                addresses: None,
                enterable: true,
            };
        }
        let addresses = self.visit(id, || -> io::Result<HashSet<IpAddr>> {
            // Created and closed inside: the socket must not outlive the visit.
            let mut rtnl = Rtnl::new()?;
            Ok(rtnl.addresses()?.into_iter().map(|(_, ip)| ip).collect())
        });
        match addresses {
            Ok(Ok(addresses)) => NamespaceState {
                addresses: Some(addresses),
                enterable: true,
            },
            // Entered, but the dump failed (e.g. out of memory): try again next time.
            Ok(Err(_)) => NamespaceState {
                addresses: None,
                enterable: true,
            },
            Err(NamespaceError::NoPrivilege(e)) => {
                self.no_privilege = true;
                self.warning = Some(NamespaceError::NoPrivilege(e));
                unread
            }
            Err(_) => unread,
        }
    }
}

/// Returns the thread to its namespace when dropped, so a panic in the visited namespace does
/// not leave the thread there; [`ComeBack::now`] does it and says how it went.
struct ComeBack<'a> {
    home: BorrowedFd<'a>,
    armed: bool,
}

impl ComeBack<'_> {
    fn now(mut self) -> io::Result<()> {
        self.armed = false;
        setns(self.home)
    }
}

impl Drop for ComeBack<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = setns(self.home) {
                log::error!(
                    "a thread could not return to the plugin's own network namespace after a \
                     panic ({e})"
                );
            }
        }
    }
}

/// Pair devices: the far end of a packet on the host end is a socket in the peer's namespace.
/// netkit is the BPF-programmable veth of Cilium and others.
fn is_pair(link: &Link) -> bool {
    matches!(link.kind.as_deref(), Some("veth" | "netkit"))
}

/// Each host link's role.
fn roles(links: &[Link], registry: &Registry) -> HashMap<u32, InterfaceRole> {
    let bridges: HashSet<u32> = links
        .iter()
        .filter(|l| l.kind.as_deref() == Some("bridge"))
        .map(|l| l.index)
        .collect();
    links
        .iter()
        .map(|link| {
            let peer = if is_pair(link) {
                link.link_netnsid.and_then(|nsid| registry.id_of(nsid))
            } else {
                None
            };
            let role = InterfaceRole {
                name: link.name.clone(),
                peer,
                bridge_port: link.master.is_some_and(|m| bridges.contains(&m)),
                loopback: link.loopback,
            };
            (link.index, role)
        })
        .collect()
}

fn open_namespace(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The identity of the namespace a path leads to: `stat` follows `/proc/PID/ns/net` to the
/// nsfs inode without opening (so without pinning) it.
fn stat_identity(path: &Path) -> Option<Identity> {
    rustix::fs::stat(path).ok().map(|s| Identity::of(&s))
}

fn process_starttime(proc: &mut ProcRoot, pid: u32) -> Option<u64> {
    let content = proc.read(Some(pid), "stat", 4096).ok()?;
    pid_stat::parse(content).map(|s| s.starttime)
}

fn is_privilege(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == libc::EPERM || code == libc::EACCES
    )
}

/// Moves the calling thread into the network namespace of `fd`.
fn setns(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns takes an fd and a flag and touches no memory of ours; the fd is open for
    // the call (borrowed).
    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::sockdiag::SockDiag;
    use std::process::{Child, Command, Stdio};

    fn link(index: u32, name: &str, kind: Option<&str>) -> Link {
        Link {
            index,
            name: name.into(),
            kind: kind.map(Into::into),
            master: None,
            link: None,
            link_netnsid: None,
            loopback: false,
            up: true,
        }
    }

    fn identity(ino: u64) -> Identity {
        Identity { dev: 4, ino }
    }

    fn nsids(list: &[i32]) -> HashSet<i32> {
        list.iter().copied().collect()
    }

    #[test]
    fn ids_are_allocated_per_nsid_and_never_reused() {
        let mut registry = Registry::default();
        registry.sync(&nsids(&[0, 1]));
        let (a, b) = (registry.id_of(0).unwrap(), registry.id_of(1).unwrap());
        assert_ne!(a, b);
        assert!(a != NetnsId::HOST && b != NetnsId::HOST);
        // Still referenced: same ids.
        registry.sync(&nsids(&[0, 1]));
        assert_eq!((registry.id_of(0), registry.id_of(1)), (Some(a), Some(b)));
        // nsid 0 goes away and comes back: that is another namespace for all we know.
        registry.sync(&nsids(&[1]));
        assert_eq!(registry.id_of(0), None);
        registry.sync(&nsids(&[0, 1]));
        let again = registry.id_of(0).unwrap();
        assert!(again != a && again != b);
        assert_eq!(registry.id_of(1), Some(b));
    }

    #[test]
    fn identification_keeps_the_id_unless_the_nsid_changed_hands() {
        let mut registry = Registry::default();
        registry.sync(&nsids(&[7]));
        let id = registry.id_of(7).unwrap();
        assert_eq!(registry.wanted(), nsids(&[7]));
        let handle = Handle::Path("/run/netns/x".into());
        registry.found(7, identity(100), handle.clone());
        assert_eq!(
            registry.id_of(7),
            Some(id),
            "first identification keeps the id"
        );
        assert!(registry.wanted().is_empty());
        assert!(registry.reachable(identity(100)));
        // The handle goes stale; a scan finds the same namespace elsewhere: same id.
        registry.by_nsid.get_mut(&7).unwrap().handle = None;
        assert_eq!(registry.wanted_with(identity(100)), Some(7));
        assert!(!registry.reachable(identity(100)));
        let process = Handle::Process {
            pid: 42,
            starttime: 9,
        };
        registry.found(7, identity(100), process.clone());
        assert_eq!(registry.id_of(7), Some(id));
        assert_eq!(registry.by_id(id).unwrap().handle, Some(process));
        // Stale again, and nsid 7 now names another namespace: a new id.
        registry.by_nsid.get_mut(&7).unwrap().handle = None;
        registry.found(7, identity(200), handle);
        let new = registry.id_of(7).unwrap();
        assert_ne!(new, id);
        assert!(registry.by_id(id).is_none());
        // An nsid nobody refers to is not recorded by a stray find.
        registry.found(8, identity(300), Handle::Path("/x".into()));
        assert_eq!(registry.id_of(8), None);
    }

    #[test]
    fn scans_are_rate_limited() {
        let mut clock = ScanClock::default();
        let t0 = Instant::now();
        assert!(!clock.due(&HashSet::new(), t0), "nothing wanted: no scan");
        assert!(clock.due(&nsids(&[1]), t0), "first scan at once");
        clock.scanned(t0, nsids(&[1]));
        assert!(!clock.due(&nsids(&[1, 2]), t0 + Duration::from_millis(500)));
        assert!(clock.due(&nsids(&[1, 2]), t0 + SCAN_INTERVAL), "2 is new");
        // Only what the last scan missed: wait longer.
        assert!(!clock.due(&nsids(&[1]), t0 + SCAN_INTERVAL));
        assert!(clock.due(&nsids(&[1]), t0 + STALE_SCAN_INTERVAL));
    }

    #[test]
    fn roles_of_links() {
        let mut registry = Registry::default();
        registry.sync(&nsids(&[3]));
        let peer_id = registry.id_of(3).unwrap();
        let mut lo = link(1, "lo", None);
        lo.loopback = true;
        let bridge = link(2, "br0", Some("bridge"));
        let mut container = link(3, "veth1", Some("veth"));
        container.link_netnsid = Some(3);
        container.master = Some(2);
        let mut local_pair = link(4, "vethh", Some("veth"));
        local_pair.link = Some(5);
        let mut bonded = link(6, "eth1", None);
        bonded.master = Some(7);
        let bond = link(7, "bond0", Some("bond"));
        let mut tunnel = link(8, "vx0", Some("vxlan"));
        tunnel.link_netnsid = Some(3);
        let mut unknown = link(9, "veth9", Some("veth"));
        unknown.link_netnsid = Some(99);
        let links = [
            lo, bridge, container, local_pair, bonded, bond, tunnel, unknown,
        ];
        let roles = roles(&links, &registry);
        assert_eq!(roles.len(), links.len());
        let role = |i: u32| roles[&i].clone();
        assert!(role(1).loopback && role(1).peer.is_none() && !role(1).bridge_port);
        assert_eq!(role(3).peer, Some(peer_id));
        assert!(role(3).bridge_port, "veth enslaved to a bridge");
        assert_eq!(role(3).name, "veth1");
        assert_eq!((role(4).peer, role(4).bridge_port), (None, false));
        assert!(!role(6).bridge_port, "a bond is not a bridge");
        assert_eq!(role(8).peer, None, "only pair devices lead to a peer");
        assert_eq!(role(9).peer, None, "an nsid the registry was not told of");
    }

    #[test]
    fn start_time_of_a_live_process() {
        let mut proc = ProcRoot::system();
        let pid = std::process::id();
        let content = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
        let expected = pid_stat::parse(&content).unwrap().starttime;
        assert_eq!(process_starttime(&mut proc, pid), Some(expected));
        assert_eq!(process_starttime(&mut proc, u32::MAX), None);
    }

    #[test]
    fn topology_from_parts() {
        let role = InterfaceRole {
            name: "veth0".into(),
            peer: Some(NetnsId(2)),
            bridge_port: false,
            loopback: false,
        };
        let ip: IpAddr = "10.203.1.1".parse().unwrap();
        let topology = Topology::from_parts(
            5,
            HashMap::from([(12, role.clone())]),
            HashMap::from([
                (NetnsId(2), HashSet::from([ip])),
                (NetnsId::HOST, HashSet::new()),
            ]),
        );
        assert_eq!(topology.interface(12), Some(&role));
        assert_eq!(topology.interface(13), None);
        assert!(topology.addresses(NetnsId(2)).unwrap().contains(&ip));
        assert_eq!(topology.addresses(NetnsId(3)), None);
        let ids: Vec<NetnsId> = topology.namespaces().collect();
        assert_eq!(ids, [NetnsId::HOST, NetnsId(2)]);
        assert_eq!(topology.generation(), 5);
        assert!(topology.enterable(NetnsId(2)) && !topology.enterable(NetnsId(3)));
    }

    #[test]
    fn errors_carry_their_cause() {
        let e = NamespaceError::Unreachable(NetnsId(4)).into_io();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(matches!(
            NamespaceError::of(&e),
            Some(NamespaceError::Unreachable(NetnsId(4)))
        ));
        let e = NamespaceError::NoPrivilege(io::Error::from_raw_os_error(libc::EPERM)).into_io();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("CAP_SYS_ADMIN"));
        assert!(NamespaceError::of(&io::Error::other("x")).is_none());
    }

    #[test]
    fn host_and_unknown_namespaces() {
        let mut namespaces = Namespaces::new();
        assert_eq!(namespaces.in_namespace(NetnsId::HOST, || 7).unwrap(), 7);
        let e = namespaces.in_namespace(NetnsId(12345), || 7).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let topology = namespaces.refresh().unwrap();
        let lo = topology.interface(1).unwrap();
        assert!(lo.loopback && lo.peer.is_none());
        let host = topology.addresses(NetnsId::HOST).unwrap();
        assert!(host.contains(&"127.0.0.1".parse().unwrap()));
        assert_eq!(topology.namespaces().next(), Some(NetnsId::HOST));
        assert!(topology.enterable(NetnsId::HOST));
        // Nothing changed: the same snapshot.
        let again = namespaces.refresh().unwrap();
        assert!(Arc::ptr_eq(&topology, &again) || again.generation() > topology.generation());
    }

    // --- Root tests: namespaces, veths and a bridge of their own. ---

    fn run(program: &str, args: &[&str]) -> bool {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|out| out.status.success())
    }

    fn ip(args: &[&str]) -> bool {
        run("ip", args)
    }

    fn must(args: &[&str]) {
        assert!(ip(args), "ip {}", args.join(" "));
    }

    /// Deletes what a test created, in reverse order, even when the test fails.
    #[derive(Default)]
    struct Cleanup {
        commands: Vec<Vec<String>>,
        children: Vec<Child>,
    }

    impl Cleanup {
        fn ip_later(&mut self, args: &[&str]) {
            self.commands
                .push(args.iter().map(|a| a.to_string()).collect());
        }
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            for child in &mut self.children {
                let _ = child.kill();
                let _ = child.wait();
            }
            for command in self.commands.iter().rev() {
                let args: Vec<&str> = command.iter().map(String::as_str).collect();
                ip(&args);
            }
        }
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    fn thread_netns() -> u64 {
        rustix::fs::stat("/proc/thread-self/ns/net").unwrap().st_ino
    }

    fn index_of(name: &str) -> u32 {
        let links = Rtnl::new().unwrap().links().unwrap();
        links.iter().find(|l| l.name == name).unwrap().index
    }

    fn nsid_of_path(path: &str) -> Option<i32> {
        let fd = open_namespace(Path::new(path)).unwrap();
        Rtnl::new().unwrap().nsid_of(fd.as_fd()).unwrap()
    }

    /// Average time of `f` over `n` runs.
    fn time(n: u32, mut f: impl FnMut()) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed() / n
    }

    #[test]
    fn veths_bridges_and_namespaces() {
        if !is_root() {
            return eprintln!("SKIP: not root");
        }
        let pid = std::process::id();
        let netns = format!("cap-topo-{pid}");
        let (a, b) = (format!("cta{pid}"), format!("ctb{pid}"));
        let (c, d) = (format!("ctc{pid}"), format!("ctd{pid}"));
        let bridge = format!("ctbr{pid}");
        let mut cleanup = Cleanup::default();
        if !ip(&["netns", "add", &netns]) {
            return eprintln!("SKIP: `ip netns add` failed");
        }
        cleanup.ip_later(&["netns", "del", &netns]);
        let netns_path = format!("/run/netns/{netns}");
        eprintln!(
            "nsid of a new namespace nothing refers to: {:?}",
            nsid_of_path(&netns_path)
        );
        // Host-side links stay down: no IPv6 link-local addresses, no host address
        // announcements for other tests to see.
        must(&[
            "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &netns,
        ]);
        cleanup.ip_later(&["link", "del", &a]);
        eprintln!(
            "nsid after creating a veth into it: {:?}",
            nsid_of_path(&netns_path)
        );
        must(&["-n", &netns, "addr", "add", "10.203.250.2/24", "dev", &b]);
        must(&["link", "add", &bridge, "type", "bridge"]);
        cleanup.ip_later(&["link", "del", &bridge]);
        must(&["link", "add", &c, "type", "veth", "peer", "name", &d]);
        cleanup.ip_later(&["link", "del", &c]);
        must(&["link", "set", &c, "master", &bridge]);

        let mut namespaces = Namespaces::new();
        let start = Instant::now();
        let topology = namespaces.refresh().unwrap();
        eprintln!("first refresh (with a scan): {:?}", start.elapsed());
        let nsid = nsid_of_path(&netns_path);
        eprintln!("nsid after a link dump: {nsid:?}");
        let link_a = Rtnl::new()
            .unwrap()
            .links()
            .unwrap()
            .into_iter()
            .find(|l| l.name == a)
            .unwrap();
        eprintln!("host end of the veth: {link_a:?}");
        assert_eq!(link_a.link_netnsid, nsid);
        assert!(nsid.is_some());

        let role = topology.interface(link_a.index).unwrap();
        let id = role.peer.unwrap();
        assert_ne!(id, NetnsId::HOST);
        assert_eq!(role.name, a);
        assert!(!role.bridge_port && !role.loopback);
        assert!(topology.namespaces().any(|n| n == id));
        assert!(topology.enterable(id));
        let inside = topology.addresses(id).unwrap();
        assert!(
            inside.contains(&"10.203.250.2".parse().unwrap()),
            "{inside:?}"
        );
        let host = topology.addresses(NetnsId::HOST).unwrap();
        assert!(!host.contains(&"10.203.250.2".parse().unwrap()));
        let port = topology.interface(index_of(&c)).unwrap();
        assert!(port.bridge_port && port.peer.is_none());
        let other_end = topology.interface(index_of(&d)).unwrap();
        assert!(!other_end.bridge_port && other_end.peer.is_none());
        assert!(!topology.interface(index_of(&bridge)).unwrap().bridge_port);
        assert!(topology.interface(1).unwrap().loopback);

        // Inside and back.
        let home = thread_netns();
        let identity = stat_identity(Path::new(&netns_path)).unwrap();
        let (diag, inside_ino) = namespaces
            .in_namespace(id, || (SockDiag::new(), thread_netns()))
            .unwrap();
        assert!(diag.is_ok());
        drop(diag);
        assert_eq!(inside_ino, identity.ino);
        assert_eq!(thread_netns(), home);
        // A panic inside still comes back.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            namespaces.in_namespace(id, || panic!("inside"))
        }));
        assert!(caught.is_err());
        assert_eq!(thread_netns(), home);

        // What it costs.
        let n = 1000;
        let bare = time(n, || namespaces.in_namespace(id, || ()).unwrap());
        let socket = time(n, || {
            let diag = namespaces.in_namespace(id, SockDiag::new).unwrap();
            drop(diag.unwrap());
        });
        let host_socket = time(n, || drop(SockDiag::new().unwrap()));
        let refresh = time(100, || drop(namespaces.refresh().unwrap()));
        eprintln!(
            "COST in_namespace (open, check, setns, setns back): {bare:?}; \
             + SockDiag::new + close: {socket:?}; SockDiag::new + close in the host: \
             {host_socket:?}; refresh with 1 namespace: {refresh:?}"
        );
        assert_eq!(thread_netns(), home);

        // Unchanged: same snapshot.
        let same = namespaces.refresh().unwrap();
        assert_eq!(
            same.generation(),
            namespaces.refresh().unwrap().generation()
        );

        // Gone: the namespace and its veth are deleted.
        must(&["netns", "del", &netns]);
        ip(&["link", "del", &a]);
        let after = namespaces.refresh().unwrap();
        assert!(after.generation() > same.generation());
        assert!(!after.namespaces().any(|n| n == id));
        assert!(after.interface(link_a.index).is_none());
        let e = namespaces.in_namespace(id, || ()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(after.interface(index_of(&c)).unwrap().bridge_port);
    }

    /// A namespace only a process holds is reached through /proc, and not kept alive by the
    /// plugin: when the process exits, the namespace and its veth go away.
    #[test]
    fn namespace_of_a_process_is_reached_but_not_pinned() {
        if !is_root() {
            return eprintln!("SKIP: not root");
        }
        let pid = std::process::id();
        let (a, b) = (format!("cpa{pid}"), format!("cpb{pid}"));
        let mut cleanup = Cleanup::default();
        let child = match Command::new("unshare")
            .args(["--net", "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => return eprintln!("SKIP: no unshare: {e}"),
        };
        let child_pid = child.id().to_string();
        cleanup.children.push(child);
        // unshare execs sleep once the namespace is made: wait for that.
        let own = thread_netns();
        let deadline = Instant::now() + Duration::from_secs(5);
        while rustix::fs::stat(format!("/proc/{child_pid}/ns/net").as_str())
            .map_or(true, |s| s.st_ino == own)
        {
            assert!(
                Instant::now() < deadline,
                "unshare did not make a namespace"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let args = [
            "link", "add", &a, "type", "veth", "peer", "name", &b, "netns",
        ];
        if !ip(&[&args[..], &[child_pid.as_str()]].concat()) {
            return eprintln!("SKIP: cannot create a veth into the namespace");
        }
        cleanup.ip_later(&["link", "del", &a]);
        assert!(run(
            "nsenter",
            &[
                "-t",
                &child_pid,
                "-n",
                "ip",
                "addr",
                "add",
                "10.203.249.2/24",
                "dev",
                &b
            ]
        ));

        let mut namespaces = Namespaces::new();
        let start = Instant::now();
        let topology = namespaces.refresh().unwrap();
        eprintln!(
            "first refresh, namespace found by a /proc scan: {:?}",
            start.elapsed()
        );
        let index = index_of(&a);
        let id = topology.interface(index).unwrap().peer.unwrap();
        let inside = topology.addresses(id).unwrap();
        assert!(inside.contains(&"10.203.249.2".parse().unwrap()));
        match &namespaces.registry.by_id(id).unwrap().handle {
            Some(Handle::Process { pid, .. }) => assert_eq!(pid.to_string(), child_pid),
            other => panic!("reached through {other:?}"),
        }

        // The process exits: nothing of ours holds the namespace, so the kernel tears it
        // down with its veth (asynchronously: poll).
        for mut child in cleanup.children.drain(..) {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let killed = Instant::now();
        let deadline = killed + Duration::from_secs(20);
        loop {
            let topology = namespaces.refresh().unwrap();
            if topology.interface(index).is_none() {
                assert!(!topology.namespaces().any(|n| n == id));
                eprintln!("veth gone {:?} after its process", killed.elapsed());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the veth outlived its namespace's last process"
            );
            // Meanwhile the namespace is listed but cannot be entered.
            assert!(!topology.enterable(id));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Without CAP_SYS_ADMIN (dropped here from this thread's effective set only: capabilities
    /// are per thread) namespaces are listed from the host but not entered, and said once.
    #[test]
    fn without_cap_sys_admin_namespaces_are_listed_not_entered() {
        if !is_root() {
            return eprintln!("SKIP: not root");
        }
        let pid = std::process::id();
        let netns = format!("cap-nopriv-{pid}");
        let (a, b) = (format!("cna{pid}"), format!("cnb{pid}"));
        let mut cleanup = Cleanup::default();
        if !ip(&["netns", "add", &netns]) {
            return eprintln!("SKIP: `ip netns add` failed");
        }
        cleanup.ip_later(&["netns", "del", &netns]);
        must(&[
            "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &netns,
        ]);
        cleanup.ip_later(&["link", "del", &a]);
        let index = index_of(&a);
        let outcome = std::thread::spawn(move || {
            drop_cap_sys_admin();
            let mut namespaces = Namespaces::new();
            let topology = namespaces.refresh().unwrap();
            let id = topology.interface(index).unwrap().peer.unwrap();
            let warning = namespaces.take_warning();
            let second = namespaces.take_warning();
            let entered = namespaces.in_namespace(id, || ()).map_err(|e| e.kind());
            (
                topology.enterable(id),
                topology.addresses(id).is_none(),
                matches!(warning, Some(NamespaceError::NoPrivilege(_))),
                second.is_none(),
                entered,
            )
        })
        .join()
        .unwrap();
        assert_eq!(
            outcome,
            (
                false,
                true,
                true,
                true,
                Err(io::ErrorKind::PermissionDenied)
            )
        );
    }

    /// Clears CAP_SYS_ADMIN from the calling thread's effective capabilities.
    fn drop_cap_sys_admin() {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        const CAP_SYS_ADMIN: u32 = 21;
        let mut header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [Data::default(); 2];
        // SAFETY: capget/capset read and write one header and two data structs, laid out as
        // the kernel's __user_cap_header_struct and __user_cap_data_struct (version 3).
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
                0
            );
            data[0].effective &= !(1 << CAP_SYS_ADMIN);
            assert_eq!(
                libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
                0
            );
        }
    }

    /// What a refresh costs with many namespaces. Run by hand:
    /// `cargo test --lib refresh_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn refresh_cost_with_many_namespaces() {
        if !is_root() {
            return eprintln!("SKIP: not root");
        }
        let pid = std::process::id();
        let count = 50;
        let mut cleanup = Cleanup::default();
        let mut batch = String::new();
        for i in 0..count {
            let netns = format!("cap-cost-{pid}-{i}");
            batch += &format!("netns add {netns}\n");
            batch += &format!("link add cq{pid}x{i} type veth peer name cr netns {netns}\n");
            cleanup.ip_later(&["netns", "del", &netns]);
            cleanup.ip_later(&["link", "del", &format!("cq{pid}x{i}")]);
        }
        let mut child = Command::new("ip")
            .args(["-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(batch.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        for i in 0..count {
            let address = format!("10.203.{}.2/24", 100 + i);
            must(&[
                "-n",
                &format!("cap-cost-{pid}-{i}"),
                "addr",
                "add",
                &address,
                "dev",
                "cr",
            ]);
        }
        let mut namespaces = Namespaces::new();
        let start = Instant::now();
        let topology = namespaces.refresh().unwrap();
        let first = start.elapsed();
        let found = topology.namespaces().count() - 1;
        assert!(found >= count, "{found} namespaces");
        let steady = time(20, || drop(namespaces.refresh().unwrap()));
        eprintln!("COST refresh with {found} namespaces: first (scan) {first:?}, then {steady:?}");
        // A scan that finds nothing reads every process: what an unreachable nsid costs, at
        // most every STALE_SCAN_INTERVAL.
        let processes = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count();
        let full_scan = time(20, || namespaces.scan(&HashSet::from([i32::MAX])));
        eprintln!("COST full scan of {processes} processes: {full_scan:?}");
    }
}

//! Reads the host's network topology as the capture sees it ([`Topology`]: which host interface
//! leads into which other network namespace, the host end of a veth; which is a bridge port,
//! which is lo; what addresses each of those namespaces has) and keeps a way into each
//! namespace for the resolver. Runs on the resolver thread (and once at start, before the
//! capture threads).
//!
//! Why: the capture runs in the host's namespace on the `any` device, so a container's traffic
//! is seen on the host end of its veth, where the socket that sent or receives it lives in the
//! container's namespace — and the kernel only answers sock_diag for the namespace a netlink
//! socket was created in. The same packet also shows on the bridge the veth is enslaved to,
//! where the host's own sockets must not be credited twice.
//!
//! How namespaces are found: a link dump of the host names, for each veth whose peer is
//! elsewhere, the *nsid* the host gives the peer's namespace (and assigns it if there was none;
//! see [`crate::net::netlink::rtnetlink`]). An nsid is only a number in the host's table, so to enter that
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

use crate::net::netlink::rtnetlink::{Link, Rtnl};
use crate::net::topology::{InterfaceRole, NamespaceState, Topology};
use crate::net::types::NetnsId;
use crate::proc::{pid_stat, ProcRoot};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

        if let Some(next) = self.topology.followed_by(interfaces, namespaces) {
            self.topology = Arc::new(next);
        }
        Ok(self.topology.clone())
    }

    /// The nsfs inode of namespace `id` (the kernel's `ns.inum`, an `unsigned int`, which eBPF
    /// records carry), once a scan has identified it.
    pub fn inode_of(&self, id: NetnsId) -> Option<u32> {
        let identity = if id == NetnsId::HOST {
            self.home.as_ref().map(|(_, identity)| *identity)
        } else {
            self.registry
                .by_nsid
                .values()
                .find(|known| known.id == id)
                .and_then(|known| known.identity)
        };
        u32::try_from(identity?.ino).ok()
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
    // The errno is kept: `is_privilege` looks at it.
    move_into_link_name_space(fd, Some(LinkNameSpaceType::Network)).map_err(io::Error::from)
}

#[cfg(test)]
mod tests;

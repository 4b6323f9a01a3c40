//! Unit tests of [`super`] (namespaces).

use super::*;
use crate::net::netlink::sock_diag::SockDiag;
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
    let _turn = crate::net::namespace_test_turn();
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
    let _turn = crate::net::namespace_test_turn();
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
    let _turn = crate::net::namespace_test_turn();
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
    use rustix::thread::{capabilities, set_capabilities, CapabilitySet};
    // `None`: the calling thread.
    let mut sets = capabilities(None).unwrap();
    sets.effective.remove(CapabilitySet::SYS_ADMIN);
    set_capabilities(None, sets).unwrap();
}

/// What a refresh costs with many namespaces. Run by hand:
/// `cargo test --lib refresh_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn refresh_cost_with_many_namespaces() {
    let _turn = crate::net::namespace_test_turn();
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

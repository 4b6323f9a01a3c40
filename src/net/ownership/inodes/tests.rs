//! Unit tests of [`super`] (inodes).

use super::*;
use crate::net::netlink::sock_diag::tests::{euid, inode_of};
use std::net::{TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};

fn starttime_of(pid: u32) -> u64 {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
    pid_stat::parse(&stat).unwrap().starttime
}

fn me() -> Owner {
    let pid = std::process::id();
    Owner {
        pid,
        starttime: starttime_of(pid),
    }
}

/// Between `fork` and `exec` a child spawned by another test thread holds a copy of every
/// fd of this process — a real, if brief, holder of our sockets. The tests that read this
/// process's sockets take turns, so that no other test of theirs spawns meanwhile.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sweeps as often as asked, so that a test never waits on pacing.
fn live_index() -> InodeIndex {
    let config = IndexConfig {
        min_sweep_interval: Duration::ZERO,
        sweep_duty: 0,
        ..IndexConfig::default()
    };
    let mut index = InodeIndex::with_config(ProcRoot::system(), config);
    index.warm_up();
    index
}

/// Asks again as the resolver does when a lookup ran out of budget.
fn resolve(index: &mut InodeIndex, inode: u64) -> Option<Owner> {
    (0..200).find_map(|_| index.lookup(inode, Some(euid())))
}

/// `sleep` holding `socket` as its stdin — only that child gets it, whatever other tests
/// spawn meanwhile.
fn child_holding(socket: OwnedFd) -> Child {
    Command::new("sleep")
        .arg("60")
        .stdin(Stdio::from(socket))
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn owner_of(child: &Child) -> Owner {
    Owner {
        pid: child.id(),
        starttime: starttime_of(child.id()),
    }
}

fn end(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_new_socket_of_this_process_then_a_hit_without_rescan() {
    let _turn = serial();
    let mut index = live_index();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let inode = inode_of(&socket);
    assert_eq!(resolve(&mut index, inode), Some(me()));

    let before = index.stats();
    assert_eq!(index.lookup(inode, None), Some(me()));
    let after = index.stats();
    assert_eq!(after.lookups, before.lookups + 1);
    assert_eq!(after.hits, before.hits + 1);
    assert_eq!(after.misses, before.misses);
    assert_eq!(after.processes_scanned, before.processes_scanned);
    assert_eq!(after.processes_probed, before.processes_probed);
    assert_eq!(after.fds_read, before.fds_read);
    assert_eq!(after.sweeps, before.sweeps);
}

#[test]
fn sockets_open_before_the_warm_up_are_hits() {
    let _turn = serial();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut index = live_index();
    let before = index.stats();
    assert_eq!(index.lookup(inode_of(&listener), None), Some(me()));
    assert_eq!(index.stats().hits, before.hits + 1);
    assert!(index.stats().sockets > 0 && index.stats().processes > 0);
}

#[test]
fn unknown_inode_is_a_miss() {
    let _turn = serial();
    let mut index = live_index();
    let (reader, _writer) = std::io::pipe().unwrap();
    // A pipe has an inode but is no socket; 0 is sock_diag's "no owner".
    for inode in [inode_of(&reader), 0, u64::from(u32::MAX) - 7] {
        let before = index.stats();
        assert_eq!(index.lookup(inode, None), None);
        let after = index.stats();
        assert_eq!(after.misses, before.misses + 1);
        assert_eq!(after.resolved, before.resolved);
    }
}

#[test]
fn socket_held_by_a_child_started_after_the_warm_up() {
    let _turn = serial();
    let mut index = live_index();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let inode = inode_of(&socket);
    let child = child_holding(OwnedFd::from(socket));
    let expected = owner_of(&child);
    assert_eq!(resolve(&mut index, inode), Some(expected));
    end(child);
}

/// A process that closes a file and makes a socket in the same slot keeps its fd count, so a
/// pass that trusts the count does not read it again until `rescan_after`. A socket missing
/// for `reread_missing_after` has every process read before it was first looked for read
/// again (a new process's runtime does this at startup: the resolver lost such clients).
#[test]
fn a_socket_in_a_reused_slot_is_found_once_it_has_been_missing_a_while() {
    use std::io::{BufRead, BufReader, Write};
    if FdCountMethod::for_running_kernel() != FdCountMethod::StatSize {
        eprintln!("SKIP: no fd count from stat on this kernel (before 6.2): age rereads");
        return;
    }
    // bash's /dev/udp connects a UDP socket (to the discard port; nothing is sent).
    let script = "exec 3</dev/null; echo opened; read _; exec 3<&-; \
                  exec 3<>/dev/udp/127.0.0.1/9; echo swapped; read _";
    let mut child = Command::new("bash")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "opened");
    let config = IndexConfig {
        rescan_after: Duration::from_secs(3600),
        ..IndexConfig::default()
    };
    let mut index = InodeIndex::with_config(ProcRoot::system(), config);
    index.warm_up();
    let asked = Instant::now();
    writeln!(child.stdin.as_mut().unwrap()).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "swapped");
    let link = std::fs::read_link(format!("/proc/{}/fd/3", child.id())).unwrap();
    let inode: u64 = link
        .to_str()
        .and_then(|l| l.strip_prefix("socket:["))
        .and_then(|l| l.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("fd 3 is not a socket: {link:?}"));

    // Trusting the count: not found, however often asked.
    for _ in 0..50 {
        assert_eq!(index.lookup(inode, Some(euid())), None);
        std::thread::sleep(Duration::from_millis(2));
    }
    // Missing since before the swap, for longer than `reread_missing_after`: read again.
    std::thread::sleep(
        index
            .config
            .reread_missing_after
            .saturating_sub(asked.elapsed()),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let found = index.lookup_missing_since(inode, Some(euid()), asked);
        if found.is_some() || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert_eq!(found, Some(owner_of(&child)));
    end(child);
}

#[test]
fn shared_socket_belongs_to_the_oldest_holder_while_it_holds_it() {
    let _turn = serial();
    let config = IndexConfig {
        min_sweep_interval: Duration::ZERO,
        sweep_duty: 0,
        verify_after: Duration::ZERO,
        ..IndexConfig::default()
    };
    let mut index = InodeIndex::with_config(ProcRoot::system(), config);
    index.warm_up();
    let socket = OwnedFd::from(UdpSocket::bind("127.0.0.1:0").unwrap());
    let inode = inode_of(&socket);
    assert_eq!(resolve(&mut index, inode), Some(me()));

    // Children inherit it: it stays with this process, the oldest holder.
    let first = child_holding(socket.try_clone().unwrap());
    let second = child_holding(socket.try_clone().unwrap());
    let (first_owner, second_owner) = (owner_of(&first), owner_of(&second));
    assert!(first_owner.starttime <= second_owner.starttime);
    assert_eq!(resolve(&mut index, inode), Some(me()));

    // Closed here: the older child takes over, found by re-checking the entry.
    drop(socket);
    assert_eq!(resolve(&mut index, inode), Some(first_owner));
    assert_eq!(index.lookup(inode, None), Some(first_owner));

    end(first);
    assert_eq!(resolve(&mut index, inode), Some(second_owner));
    end(second);
    assert_eq!(resolve(&mut index, inode), None);
}

#[test]
fn lookups_are_bounded_and_resume() {
    let _turn = serial();
    let config = IndexConfig {
        min_sweep_interval: Duration::ZERO,
        sweep_duty: 0,
        processes_per_lookup: 1,
        reads_per_lookup: 4,
        ..IndexConfig::default()
    };
    let mut index = InodeIndex::with_config(ProcRoot::system(), config);
    index.warm_up();
    let sockets: Vec<UdpSocket> = (0..20)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let fds: Vec<OwnedFd> = sockets
        .iter()
        .map(|s| OwnedFd::from(s.try_clone().unwrap()))
        .collect();
    let inode = inode_of(&sockets[19]);
    drop(sockets);
    // One child holding 20 sockets (as stdin and through a second fd table entry would be
    // nicer; stdin carries one): spawn it with the last as stdin and read its table slowly.
    let mut fds = fds;
    let last = fds.pop().unwrap();
    drop(fds);
    let child = child_holding(last);
    // Every lookup stays within its budget, and the search resumes where the last one stopped
    // until it finds the child. How many lookups that takes depends on how many processes the
    // host has (and starts meanwhile: other work on a loaded machine), so it is bounded by a
    // generous time, not a count.
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        let before = index.stats().fds_read;
        let found = index.lookup(inode, None);
        assert!(index.stats().fds_read - before <= 4 + 1);
        if found.is_some() || Instant::now() > deadline {
            break found;
        }
    };
    assert_eq!(found, Some(owner_of(&child)));
    end(child);
}

/// A fake /proc: `pid -> (starttime, [(fd, link target)])`.
/// A pid directory that replaces another is built beside it first, so that it never gets
/// the old directory's inode number back (/proc does the same for a reused pid).
fn fixture(dir: &std::path::Path, pid: u32, starttime: u64, fds: &[(u32, &str)]) {
    let root = dir.join(format!(".new{pid}"));
    std::fs::create_dir_all(root.join("fd")).unwrap();
    let stat = format!(
            "{pid} (fake) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 1 1 0 0 20 0 1 0 {starttime} 1000 10 0\n"
        );
    std::fs::write(root.join("stat"), stat).unwrap();
    for (fd, target) in fds {
        std::os::unix::fs::symlink(target, root.join("fd").join(fd.to_string())).unwrap();
    }
    let _ = std::fs::remove_dir_all(dir.join(pid.to_string()));
    std::fs::rename(root, dir.join(pid.to_string())).unwrap();
}

fn fixture_index(dir: &std::path::Path) -> InodeIndex {
    let config = IndexConfig {
        min_sweep_interval: Duration::ZERO,
        sweep_duty: 0,
        rescan_after: Duration::ZERO,
        verify_after: Duration::ZERO,
        fd_count: FdCountMethod::ReadDir,
        ..IndexConfig::default()
    };
    InodeIndex::with_config(ProcRoot::new(dir), config)
}

#[test]
fn fixture_oldest_holder_wins_over_lowest_pid() {
    let dir = tempfile::tempdir().unwrap();
    fixture(
        dir.path(),
        100,
        900,
        &[(0, "/dev/null"), (3, "socket:[1000]")],
    );
    fixture(
        dir.path(),
        200,
        400,
        &[(7, "socket:[1000]"), (8, "socket:[2000]")],
    );
    fixture(
        dir.path(),
        300,
        100,
        &[(1, "pipe:[55]"), (2, "socket:[abc]")],
    );
    let mut index = fixture_index(dir.path());
    let owner = |pid, starttime| Some(Owner { pid, starttime });
    assert_eq!(index.lookup(1000, Some(0)), owner(200, 400));
    assert_eq!(index.lookup(2000, None), owner(200, 400));
    assert_eq!(index.lookup(55, None), None);
    assert_eq!(index.lookup(3000, None), None);

    // 200 closes it: the socket passes to 100.
    std::fs::remove_file(dir.path().join("200/fd/7")).unwrap();
    assert_eq!(index.lookup(1000, None), owner(100, 900));

    // An older holder appearing later does not take a socket already returned.
    fixture(dir.path(), 50, 10, &[(4, "socket:[1000]")]);
    assert_eq!(index.lookup(2000, None), owner(200, 400));
    assert_eq!(index.lookup(1000, None), owner(100, 900));
}

#[test]
fn fixture_exited_processes_are_pruned_and_pids_reused() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), 100, 900, &[(3, "socket:[1000]")]);
    fixture(dir.path(), 101, 901, &[(3, "socket:[1001]")]);
    let mut index = fixture_index(dir.path());
    index.warm_up();
    assert_eq!(index.stats().processes, 2);
    assert_eq!(index.stats().sockets, 2);

    std::fs::remove_dir_all(dir.path().join("101")).unwrap();
    index.prune();
    assert_eq!(index.stats().processes, 1);
    assert_eq!(index.lookup(1001, None), None);

    // Pid 100 is another process now, holding another socket.
    fixture(dir.path(), 100, 5000, &[(3, "socket:[7000]")]);
    assert_eq!(
        index.lookup(7000, None),
        Some(Owner {
            pid: 100,
            starttime: 5000
        })
    );
    assert_eq!(index.lookup(1000, None), None);
}

#[test]
fn fixture_a_hot_client_reusing_its_slots_is_found_without_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let sockets: Vec<(u32, String)> = (3..=10)
        .map(|fd| (fd, format!("socket:[{}]", 1000 + fd)))
        .collect();
    let links: Vec<(u32, &str)> = sockets.iter().map(|(fd, t)| (*fd, t.as_str())).collect();
    fixture(dir.path(), 100, 900, &links);
    let config = IndexConfig {
        // No pass and no listing is due for an hour, however slowly the loop below runs on a
        // loaded machine: only the hot path can find anything.
        min_sweep_interval: Duration::from_secs(3600),
        listing_at_least_every: Duration::from_secs(3600),
        ..fixture_index(dir.path()).config
    };
    let mut index = InodeIndex::with_config(ProcRoot::new(dir.path()), config);
    index.warm_up();
    // Slot 3 closed and reused by a new connection: the fd count is the same, and the
    // slots remembered as recent (the highest, 7 to 10) still hold their old sockets.
    let slot = dir.path().join("100/fd/3");
    std::fs::remove_file(&slot).unwrap();
    std::os::unix::fs::symlink("socket:[5000]", &slot).unwrap();
    let before = index.stats();
    let deadline = Instant::now() + Duration::from_secs(5);
    let found = loop {
        let found = index.lookup(5000, None);
        if found.is_some() || Instant::now() > deadline {
            break found;
        }
        // A table is reread at most every ten times its reading cost.
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(
        found,
        Some(Owner {
            pid: 100,
            starttime: 900
        })
    );
    let after = index.stats();
    assert_eq!(
        (after.sweeps, after.listings),
        (before.sweeps, before.listings)
    );
    assert!(after.processes_scanned > before.processes_scanned);
}

#[test]
fn fixture_between_passes_only_new_processes_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    // Pid 200 is the oldest, read first: the five younger ones push it out of the hot set.
    fixture(dir.path(), 200, 1, &[(3, "socket:[2000]")]);
    for pid in 101..=105 {
        let link = format!("socket:[{}]", pid * 10);
        fixture(dir.path(), pid, u64::from(pid), &[(3, link.as_str())]);
    }
    let config = IndexConfig {
        sweep_duty: 10,
        ..fixture_index(dir.path()).config
    };
    let mut index = InodeIndex::with_config(ProcRoot::new(dir.path()), config);
    index.warm_up();
    // As if the last pass had taken a second: the next is ten seconds away.
    index.last_sweep_cost = Duration::from_secs(1);
    let before = index.stats();

    // A process started since: found by a listing, no pass over the known ones.
    fixture(dir.path(), 300, 5000, &[(4, "socket:[3000]")]);
    let new = Some(Owner {
        pid: 300,
        starttime: 5000,
    });
    assert_eq!(index.lookup(3000, None), new);
    let after = index.stats();
    assert_eq!(after.sweeps, before.sweeps);
    assert_eq!(after.listings, before.listings + 1);

    // A new socket in a known process that is not hot waits for the next pass.
    std::os::unix::fs::symlink("socket:[2001]", dir.path().join("200/fd/9")).unwrap();
    assert_eq!(index.lookup(2001, None), None);
    assert_eq!(index.stats().sweeps, before.sweeps);
    index.last_sweep_cost = Duration::ZERO;
    assert_eq!(
        index.lookup(2001, None),
        Some(Owner {
            pid: 200,
            starttime: 1
        })
    );
    assert_eq!(index.stats().sweeps, before.sweeps + 1);
}

#[test]
fn fixture_garbage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    fixture(
        dir.path(),
        100,
        900,
        &[
            (3, "socket:["),
            (4, "socket:[]"),
            (5, "socket:[99999999999999999999]"),
        ],
    );
    std::fs::create_dir_all(dir.path().join("200/fd")).unwrap();
    std::fs::write(dir.path().join("200/stat"), b"200 (broken").unwrap();
    std::fs::create_dir_all(dir.path().join("300")).unwrap();
    std::fs::create_dir_all(dir.path().join("self")).unwrap();
    let mut index = fixture_index(dir.path());
    index.warm_up();
    assert_eq!(index.lookup(1, None), None);
    assert_eq!(index.stats().sockets, 0);
    let missing = fixture_index(&dir.path().join("nonexistent"));
    let mut missing = missing;
    missing.warm_up();
    assert_eq!(missing.lookup(1, None), None);
}

#[test]
fn an_index_entry_stays_small() {
    // One per socket on the host: the memory budget (issue 5) counts on 32 bytes a pair.
    assert!(std::mem::size_of::<(u64, Entry)>() <= 32);
}

#[test]
fn stamps_age_and_never() {
    let earlier = Stamp(1_001);
    assert_eq!(earlier.age(Stamp(1_501)), Some(Duration::from_millis(500)));
    assert_eq!(earlier.age(Stamp(1_001)), Some(Duration::ZERO));
    assert_eq!(Stamp::NEVER.age(Stamp(5)), None);
    let dir = tempfile::tempdir().unwrap();
    let mut index = fixture_index(dir.path());
    let now = index.stamp();
    assert_ne!(now, Stamp::NEVER);
    // Forty days on, the epoch moves: entries are re-checked, stamps stay small.
    index.sockets.insert(
        7,
        Entry {
            owner: 1,
            owner_fd: 3,
            verified: now,
            returned: false,
            others: ThinVec::new(),
        },
    );
    index.epoch = Instant::now() - EPOCH_SPAN;
    let later = index.stamp();
    assert!(later.0 < 1_000, "{later:?}");
    assert_eq!(index.sockets[&7].verified, Stamp::NEVER);
}

#[test]
fn classify_links() {
    assert_eq!(classify(b"socket:[12345]"), Slot::Socket(12345));
    assert_eq!(classify(b"socket:[]"), Slot::Other);
    assert_eq!(classify(b"socket:[12"), Slot::Other);
    assert_eq!(classify(b"pipe:[12]"), Slot::Other);
    assert_eq!(classify(b"/tmp/socket:[1]"), Slot::Other);
    assert_eq!(classify(b"socket:[18446744073709551615]"), Slot::Other);
}

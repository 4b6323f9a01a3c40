//! Hostile input end to end, in a real collectd with the csv writer: what processes and the
//! network can throw at the plugin.
//!
//! - Process names: command names set with prctl(PR_SET_NAME) to spaces, parentheses, newlines,
//!   control characters, `/`, invalid UTF-8 and nothing at all, and executables whose *file
//!   names* are hostile (so `{exe}` and the command line are too), grouped by
//!   `GroupBy "{exe}|{comm}"` with `MetaData true`.
//! - Zombies (a parent that never reaps), kernel threads (grouped by kind, README "kernel
//!   threads"), processes named like the plugin's own instances (`self`, `unattributed`), and
//!   processes started and killed by the hundred per second while collectd reads /proc.
//! - A `/proc` mounted with `hidepid` in a private mount namespace, read by a collectd that lacks
//!   CAP_SYS_PTRACE: other users' entries are listed but unreadable, or not listed at all.
//! - Frames written raw (AF_PACKET) onto a veth the plugin captures: truncated, oversized and
//!   nonsense headers of every layer.
//!
//! Every test asserts: no panic (the plugin's "failed unexpectedly" / "could not be handled"
//! lines, Rust's "panicked" on collectd's stderr), every thread still works afterwards (a new
//! workload gets its CPU time, `capture-self/duration-sampler` keeps being written, a real UDP
//! exchange is attributed), every instance directory the csv writer made is a sanitized name
//! (README "Names": no control characters, at most 63 bytes, valid UTF-8), and the log stays
//! quiet: no error line, and only the documented once-only warnings, each once.

mod common;

use common::netns::{ip, Netns};
use common::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------------
// Helpers

/// A process started by these tests outside the harness's `Workload` (its executable's name is
/// not a `&str`, or it runs as another user). Killed and reaped on drop.
struct Proc {
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` with `args`, stdout and stderr discarded, and waits until it has exec'd
/// (its `/proc/PID/exe` is `binary`) and, when `comm` is given, set that command name.
fn start(binary: &Path, args: &[&str], comm: Option<&[u8]>) -> Proc {
    let mut command = Command::new(binary);
    // The workload reads its arguments as UTF-8, argv[0] included: a file name that is not
    // UTF-8 is still the executable and the command name, argv[0] its lossy text.
    command
        .arg0(
            binary
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .as_ref(),
        )
        .args(args);
    start_command(command, binary, comm)
}

/// Starts `command`, which runs (or execs) `binary`; see [`start`].
fn start_command(mut command: Command, binary: &Path, comm: Option<&[u8]>) -> Proc {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = spawn_retrying(&mut command, binary);
    let proc = Proc { child };
    let pid = proc.pid();
    wait_for(&format!("{} to start", binary.display()), TIMEOUT, || {
        let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        let comm_ok = comm.is_none_or(|want| stat_comm(pid).as_deref() == Some(want));
        (exe == binary && comm_ok).then_some(())
    });
    proc
}

/// The command name of `pid` as the kernel writes it in /proc/PID/stat: the bytes between the
/// first `(` and the last `)`.
fn stat_comm(pid: u32) -> Option<Vec<u8>> {
    let stat = fs::read(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    Some(stat.get(open + 1..close)?.to_vec())
}

/// The workload binary copied into collectd's `bin/` directory under any file name (bytes).
fn copy_as(collectd: &Collectd, name: &[u8]) -> PathBuf {
    let source = collectd.workload_copy(&unique_comm("cw_src_"));
    let target = collectd.dir().join("bin").join(OsStr::from_bytes(name));
    install_executable(&source, &target);
    target
}

/// The file name of `path` as text (lossy): the command name of a workload copied there.
fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every instance directory the csv writer made: `capture-<name>` as raw bytes.
fn instance_dirs(collectd: &Collectd) -> Vec<Vec<u8>> {
    let Ok(entries) = fs::read_dir(collectd.host_dir()) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .as_bytes()
                .strip_prefix(b"capture-")
                .map(<[u8]>::to_vec)
        })
        .collect()
}

/// Every instance name written is what README "Names" promises: valid UTF-8, no control
/// characters (so no newline), at most 63 bytes, not empty.
fn assert_instance_names_sanitized(collectd: &Collectd) {
    let dirs = instance_dirs(collectd);
    assert!(!dirs.is_empty(), "no instance written at all");
    for name in dirs {
        let text = std::str::from_utf8(&name)
            .unwrap_or_else(|_| panic!("instance name {name:?} is not UTF-8"));
        assert!(
            !text.is_empty() && text.len() <= 63,
            "instance name {text:?} is {} bytes",
            text.len()
        );
        assert!(
            !text.chars().any(char::is_control),
            "instance name {text:?} has a control character"
        );
    }
}

/// No caught panic in the log, no Rust panic message on collectd's stderr, no error line, and
/// only warnings that contain one of `allowed` (documented once-only warnings), each once.
fn assert_quiet(collectd: &Collectd, allowed: &[&str]) {
    let log = collectd.log();
    for sign in [
        "panic",
        "could not be handled",
        "failed unexpectedly",
        "ended with",
    ] {
        assert!(!log.contains(sign), "the log says {sign:?}:\n{log}");
    }
    let output = collectd.output();
    assert!(
        !output.contains("panicked"),
        "collectd's stderr has a panic:\n{output}"
    );
    let errors = collectd.plugin_log_lines("error");
    assert!(errors.is_empty(), "plugin errors: {errors:#?}");
    let warnings = collectd.plugin_log_lines("warning");
    for line in &warnings {
        assert!(
            allowed.iter().any(|a| line.contains(a)),
            "unexpected warning {line:?}; all warnings: {warnings:#?}"
        );
    }
    for a in allowed {
        let count = warnings.iter().filter(|l| l.contains(a)).count();
        assert!(count <= 1, "{a:?} said {count} times: {warnings:#?}");
    }
}

/// The sampler still samples and dispatches: a burner started now gets its CPU time, and
/// `capture-self/duration-sampler` gets rows after it. The burner runs under `launcher` (a
/// command and its arguments before the program) when one is given; `instance` names its
/// instance from its command name.
fn assert_sampler_alive(collectd: &Collectd, launcher: &[&str], instance: fn(&str) -> String) {
    let binary = collectd.workload_copy(&unique_comm("cw_alive_"));
    let name = binary
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();
    let _burner = match launcher {
        [] => start(&binary, &["burn", "5"], None),
        [program, args @ ..] => {
            let mut command = Command::new(program);
            command.args(args).arg(&binary).args(["burn", "5"]);
            start_command(command, &binary, None)
        }
    };
    let after = now() + SETTLE;
    // 0.2 s of CPU out of up to 5 s of burning: plenty even when other tests share the cores.
    collectd.wait_rows(
        &instance(&name),
        "ps_cputime",
        "CPU time of a new burner",
        |rows| {
            rows.last()
                .is_some_and(|r| r.epoch >= after && r.get("user") + r.get("syst") > 200_000.0)
        },
    );
    collectd.wait_row_after("self", "duration-sampler", after);
}

/// 50 datagrams from a new sender to `receiver` (a `udp-recv` workload listening on `ip`) are
/// credited to both: `tx` of the sender's instance, `rx` of the receiver's (named by
/// `instance` from their command names).
fn assert_udp_attributed(
    collectd: &Collectd,
    mut receiver: Workload,
    ip: &str,
    instance: fn(&str) -> String,
) {
    let port = receiver.expect_line_starting("port ");
    let mut sender = collectd.spawn(
        &unique_comm("cw_utx_"),
        &["udp-send", &format!("{ip}:{port}"), "50", "100", "15"],
    );
    sender.expect_line("sent");
    let settled = now() + SETTLE + INTERVAL;
    let last =
        |comm: &str, ds: &str| collectd.last_after(&instance(comm), "if_packets", ds, settled);
    let (rx, tx) = (last(&receiver.comm, "rx"), last(&sender.comm, "tx"));
    assert_eq!(
        (rx, tx),
        (50.0, 50.0),
        "datagrams credited to receiver and sender"
    );
}

/// This VM is a sandbox whose init (pid 1) even root cannot ptrace: its io and fd directory
/// are refused, each said once.
const ROOT_WARNINGS: &[&str] = &[
    "udp_diag",
    "/io: permission denied",
    "cannot read the descriptors of process",
];

// ------------------------------------------------------------------------------------------------
// Names, zombies, kernel threads, processes exiting mid-read

/// Executable file names that are hostile, as bytes: each is also the process's command name
/// (its first 15 bytes, possibly cutting a UTF-8 character) and its command line's argv[0].
fn hostile_file_names() -> Vec<Vec<u8>> {
    let mut long = "é".repeat(100).into_bytes();
    long.extend_from_slice(b"-long");
    vec![
        b"a b c".to_vec(),
        b"a) (b".to_vec(),
        b"x)\n1 2 (y".to_vec(),
        b"\xff\xfe\xc3(bad)".to_vec(),
        b"\x1b[31mred\x07".to_vec(),
        b") R 1 1 1 (".to_vec(),
        b"tab\there\r".to_vec(),
        long,
    ]
}

/// Command names set with prctl: every byte but NUL is allowed, `/` and the empty name too.
fn hostile_comms() -> Vec<Vec<u8>> {
    vec![
        b"a) (b".to_vec(),
        b"\n\n".to_vec(),
        b"".to_vec(),
        b"/x/y".to_vec(),
        b"\xc3".to_vec(),
        b") S 1 2 3 (".to_vec(),
        b"\x7f\x80\x9f\xff".to_vec(),
        b"0123456789abcde".to_vec(),
    ]
}

/// What the plugin must name a process grouped by `{exe}|{comm}`: the executable's base name
/// and the command name, each as lossy UTF-8, sanitized together.
fn expected_instance(pid: u32) -> String {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).expect("reading the exe link");
    let base = exe.file_name().expect("a file name").as_bytes();
    let comm = stat_comm(pid).expect("reading the comm");
    sanitized(&format!(
        "{}|{}",
        String::from_utf8_lossy(base),
        String::from_utf8_lossy(&comm)
    ))
}

#[test]
fn hostile_names_zombies_and_processes_exiting_mid_read() {
    let Some(collectd) = Collectd::start(Some("GroupBy \"{exe}|{comm}\"\nMetaData true")) else {
        return;
    };
    // Hundreds of processes a second start, burn a few ms and are killed while the sampler
    // reads /proc for the whole test.
    let mut churn = collectd.spawn(&unique_comm("cw_churn_"), &["churn", "200", "25", "5"]);
    churn.expect_line("ready");
    let churn_started = Instant::now();

    let mut procs = Vec::new();
    for name in hostile_file_names() {
        let binary = copy_as(&collectd, &name);
        procs.push(start(&binary, &["sleep", "60"], None));
    }
    for comm in hostile_comms() {
        let binary = collectd.workload_copy(&unique_comm("cw_prc_"));
        procs.push(start(
            &binary,
            &["comm", &hex(&comm), "sleep", "60"],
            Some(&comm),
        ));
    }
    let mut zombies = collectd.spawn(&unique_comm("cw_zmb_"), &["zombies", "20", "60"]);
    zombies.expect_line("ready");

    for proc in &procs {
        let pid = proc.pid();
        let instance = expected_instance(pid);
        let rows = collectd.wait_rows(
            &instance,
            "ps_count",
            &format!("pid {pid} ({:?})", stat_comm(pid)),
            |rows| rows.last().is_some_and(|r| r.get("processes") >= 1.0),
        );
        assert!(!rows.is_empty());
    }
    let zombie_instance = expected_instance(zombies.pid);
    collectd.wait_rows(
        &zombie_instance,
        "ps_count",
        "the zombies' parent",
        |rows| rows.last().is_some_and(|r| r.get("processes") >= 1.0),
    );

    // Let the churn run its course, then check everything still works.
    let rest = Duration::from_secs(26).saturating_sub(churn_started.elapsed());
    std::thread::sleep(rest);
    let summary = churn.expect_line_starting("spawned ");
    eprintln!("churn: spawned {summary}");
    assert_sampler_alive(&collectd, &[], |comm| format!("{comm}|{comm}"));
    let receiver = collectd.spawn(&unique_comm("cw_lrx_"), &["udp-recv", "127.0.0.1", "15"]);
    assert_udp_attributed(&collectd, receiver, "127.0.0.1", |comm| {
        format!("{comm}|{comm}")
    });
    assert_instance_names_sanitized(&collectd);
    assert_quiet(&collectd, ROOT_WARNINGS);
}

/// Kernel threads (children of kthreadd, always there) are grouped by their kind: an instance
/// named after the part of the comm before the first `/`, never one per CPU. Processes named
/// like the plugin's own instances get a `_` appended and never mix with them; command names
/// with braces are not expanded as placeholders.
#[test]
fn kernel_threads_by_kind_and_reserved_names_moved_aside() {
    let Some(collectd) = Collectd::start(Some(r#"GroupBy "{comm}""#)) else {
        return;
    };
    let mut impostors = Vec::new();
    for name in ["self", "unattributed", "forwarded"] {
        let binary = collectd.workload_copy(name);
        impostors.push(start(&binary, &["sleep", "60"], None));
    }
    // Command names that look like placeholders are text, never expanded again.
    for comm in ["{pid}", "}{{comm}"] {
        let binary = collectd.workload_copy(&unique_comm("cw_brc_"));
        let args = ["comm", &hex(comm.as_bytes()), "sleep", "60"];
        impostors.push(start(&binary, &args, Some(comm.as_bytes())));
    }
    for name in ["self_", "unattributed_", "forwarded_", "{pid}", "}{{comm}"] {
        collectd.wait_rows(name, "ps_count", "the impostor", |rows| {
            rows.last().is_some_and(|r| r.get("processes") >= 1.0)
        });
    }
    // The plugin's own instances carry no process metrics.
    for name in ["self", "unattributed", "forwarded"] {
        assert!(
            collectd.rows(name, "ps_count").is_empty(),
            "capture-{name} got a process's ps_count"
        );
    }

    // Kernel threads now: pid 2 and its children.
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    let mut full_names = Vec::new();
    for entry in fs::read_dir("/proc").expect("listing /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.iter().rposition(|&b| b == b')') else {
            continue;
        };
        let fields: Vec<&[u8]> = stat[close + 2..].split(|&b| b == b' ').collect();
        let ppid = fields.get(1).and_then(|f| std::str::from_utf8(f).ok());
        if pid != 2 && ppid != Some("2") {
            continue;
        }
        let comm = String::from_utf8_lossy(&stat_comm(pid).unwrap_or_default()).into_owned();
        let kind = comm.split('/').next().unwrap_or("").to_string();
        *kinds.entry(sanitized(&kind)).or_default() += 1;
        if comm.contains('/') {
            full_names.push(sanitized(&comm));
        }
    }
    assert!(kinds.contains_key("kthreadd"), "no kthreadd in /proc");
    // Per-CPU kinds on this host: ksoftirqd/N, cpuhp/N, migration/N ...
    let per_cpu: Vec<&String> = kinds
        .iter()
        .filter(|(kind, n)| **n >= 2 && kind.as_str() != "kworker")
        .map(|(kind, _)| kind)
        .collect();
    assert!(
        !per_cpu.is_empty(),
        "no per-CPU kernel thread kind: {kinds:?}"
    );
    collectd.wait_rows("kthreadd", "ps_count", "kthreadd", |rows| !rows.is_empty());
    for kind in &per_cpu {
        // Threads come and go (kworkers), but per-CPU ones of a 2-core box stay: the count of
        // the instance is at least 2, one per CPU.
        collectd.wait_rows(kind, "ps_count", "a per-CPU kernel thread kind", |rows| {
            rows.last().is_some_and(|r| r.get("processes") >= 2.0)
        });
    }
    let written: Vec<String> = collectd.instances();
    for full in &full_names {
        assert!(
            !written.contains(full),
            "kernel thread {full:?} got an instance of its own: {written:?}"
        );
    }
    assert_instance_names_sanitized(&collectd);
    assert_quiet(&collectd, ROOT_WARNINGS);
}

// ------------------------------------------------------------------------------------------------
// hidepid

/// Makes the calling thread's mount namespace private and mounts a new /proc instance with
/// `options` over /proc in it (since Linux 5.8 each proc mount has its own options, so the
/// host's /proc is untouched). Processes the thread starts from now on see that /proc; the rest
/// of the test binary does not. `Err` when the kernel refuses.
fn private_proc(options: &str) -> Result<(), String> {
    use std::ffi::CString;
    let os_error = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: unshare takes flags only; CLONE_NEWNS (with its implied CLONE_FS) is allowed in a
    // multithreaded process and affects only the calling thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(os_error("unshare(CLONE_NEWNS)"));
    }
    let root = CString::new("/").expect("no NUL");
    // SAFETY: NUL-terminated strings that outlive the call; null source, type and data are
    // allowed for a propagation change. Private first: nothing mounted below leaks to the host.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(os_error("making / private"));
    }
    let proc = CString::new("proc").expect("no NUL");
    let target = CString::new("/proc").expect("no NUL");
    let data = CString::new(options).expect("no NUL");
    // SAFETY: NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            proc.as_ptr(),
            target.as_ptr(),
            proc.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(os_error(&format!("mounting proc with {options}")));
    }
    Ok(())
}

/// Once-only warnings of a collectd without CAP_SYS_PTRACE (README "Privileges").
const NO_PTRACE_WARNINGS: &[&str] = &[
    "udp_diag",
    "/io: permission denied",
    "/fd: permission denied",
];

fn hidepid(option: &'static str) {
    // The mount namespace is the thread's: run on a thread of our own, which ends with it.
    let body = move || {
        if let Err(e) = private_proc(option) {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("SKIP: cannot mount a private /proc: {e}\n").as_bytes(),
            );
            return;
        }
        // Root without CAP_SYS_PTRACE: hidepid hides every process of another user.
        let Some(collectd) = Collectd::start_without(
            Some("GroupBy \"{comm}\"\nCollectNetwork false"),
            &["sys_ptrace"],
        ) else {
            return;
        };
        let hidden_binary = collectd.workload_copy(&unique_comm("cw_hid_"));
        let hidden = start(
            &hidden_binary,
            &["as-user", "65534:65534", "burn", "60"],
            None,
        );
        let hidden_comm = file_name(&hidden_binary);
        // Visible: root, with no capability collectd lacks (the kernel's ptrace check also
        // wants the target's capabilities to be a subset of the reader's).
        let visible_binary = collectd.workload_copy(&unique_comm("cw_vis_"));
        let mut command = Command::new("setpriv");
        command
            .args(["--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", "--"])
            .arg(&visible_binary)
            .args(["burn", "60"]);
        let _visible = start_command(command, &visible_binary, None);
        let visible_comm = file_name(&visible_binary);
        // Hidden processes churn too: they vanish between listing and reading.
        let churn_binary = collectd.workload_copy(&unique_comm("cw_hch_"));
        let _churn = start(
            &churn_binary,
            &["as-user", "65534:65534", "churn", "100", "15", "5"],
            None,
        );

        let started = now();
        collectd.wait_rows(&visible_comm, "ps_cputime", "the visible burner", |rows| {
            rows.iter().any(|r| r.epoch >= started + SETTLE)
                && rows.last().is_some_and(|r| r.get("user") > 0.0)
        });
        std::thread::sleep(Duration::from_secs(10));
        assert!(
            collectd.rows(&hidden_comm, "ps_count").is_empty(),
            "a process the plugin cannot see ({}, uid 65534, pid {}) was reported",
            hidden_comm,
            hidden.pid()
        );
        let processes = collectd
            .rows("self", "count-processes")
            .last()
            .expect("capture-self/count-processes")
            .value();
        eprintln!("hidepid {option}: the plugin saw {processes} processes");
        assert_sampler_alive(
            &collectd,
            &[
                "setpriv",
                "--bounding-set=-sys_ptrace",
                "--inh-caps=-sys_ptrace",
                "--",
            ],
            str::to_owned,
        );
        assert_instance_names_sanitized(&collectd);
        assert_quiet(&collectd, NO_PTRACE_WARNINGS);
    };
    std::thread::spawn(body)
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

/// `gid=` names a group nobody is in: the default, 0, would exempt root.
///
/// hidepid=1 (`noaccess`): other users' /proc/PID directories are listed but cannot be read.
#[test]
fn proc_with_hidepid_noaccess() {
    hidepid("hidepid=1,gid=59999");
}

/// hidepid=2 (`invisible`): other users' /proc/PID directories are not even listed.
#[test]
fn proc_with_hidepid_invisible() {
    hidepid("hidepid=2,gid=59999");
}

// ------------------------------------------------------------------------------------------------
// Packets

/// An AF_PACKET socket bound to one interface: writes whole Ethernet frames as given.
struct RawSocket {
    fd: std::os::fd::OwnedFd,
    ifindex: i32,
}

impl RawSocket {
    fn open(interface: &str) -> RawSocket {
        use std::os::fd::FromRawFd;
        let name = std::ffi::CString::new(interface).expect("no NUL");
        // SAFETY: if_nametoindex reads a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        assert!(ifindex > 0, "no interface {interface}");
        // SAFETY: socket takes plain arguments; a non-negative result is a descriptor we own.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                0, // send only: receive nothing
            )
        };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        RawSocket {
            // SAFETY: `fd` is a fresh descriptor nothing else owns.
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
            ifindex,
        }
    }

    /// Sends one frame; whether the kernel took it (it refuses some, e.g. above the MTU).
    fn send(&self, frame: &[u8]) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_ifindex = self.ifindex;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&DST_MAC);
        // SAFETY: `frame` and `to` are valid for the lengths given and outlive the call.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        sent >= 0
    }
}

const DST_MAC: [u8; 6] = [0x02, 0xca, 0xfe, 0x00, 0x00, 0x01];
const SRC_MAC: [u8; 6] = [0x02, 0xca, 0xfe, 0x00, 0x00, 0x02];

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend_from_slice(&DST_MAC);
    frame.extend_from_slice(&SRC_MAC);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An IPv4 header: version/IHL byte, total length, flags+fragment offset, protocol, addresses
/// 10.203.X.1 -> 10.203.X.2 (X = `net`); options and payload appended by the caller.
fn ipv4(net: u8, ihl_byte: u8, total: u16, frag: u16, proto: u8) -> Vec<u8> {
    let mut h = vec![ihl_byte, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&0x1234u16.to_be_bytes()); // id
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&[10, 203, net, 1, 10, 203, net, 2]);
    h
}

fn ipv6(payload_len: u16, next: u8) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&payload_len.to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&[0xfd, 0, 2, 3, 0, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend_from_slice(&[0xfd, 0, 2, 3, 0, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    h
}

fn udp(len: u16) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&4000u16.to_be_bytes());
    u.extend_from_slice(&9u16.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u
}

fn tcp(data_offset_words: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&4000u16.to_be_bytes());
    t.extend_from_slice(&9u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    t.push(data_offset_words << 4);
    t.extend_from_slice(&[0x02, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Deterministic noise (xorshift).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Truncated, oversized and nonsense frames of every layer the parser reads.
fn hostile_frames(net: u8) -> Vec<(&'static str, Vec<u8>)> {
    let v4 = |ihl_byte, total, frag, proto, rest: &[u8]| {
        ethernet(
            0x0800,
            &cat(&[&ipv4(net, ihl_byte, total, frag, proto), rest]),
        )
    };
    let mut frames: Vec<(&'static str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one byte", vec![0xff]),
        ("ethernet header only", ethernet(0x0800, &[])),
        ("not IP", ethernet(0x1234, &noise(1, 60))),
        ("ARP", ethernet(0x0806, &noise(2, 28))),
        ("IPv4 ethertype, version 6", ethernet(0x0800, &ipv6(8, 17))),
        (
            "IPv6 ethertype, version 4",
            ethernet(0x86dd, &ipv4(net, 0x45, 28, 0, 17)),
        ),
        ("IPv4 IHL 3", v4(0x43, 28, 0, 17, &udp(8))),
        ("IPv4 IHL 0", v4(0x40, 28, 0, 17, &udp(8))),
        ("IPv4 IHL 15, no options", v4(0x4f, 60, 0, 17, &udp(8))),
        ("IPv4 total length 0", v4(0x45, 0, 0, 17, &udp(8))),
        (
            "IPv4 total length below header",
            v4(0x45, 10, 0, 17, &udp(8)),
        ),
        ("IPv4 total length 65535", v4(0x45, 65535, 0, 17, &udp(8))),
        (
            "IPv4 option length past the header",
            v4(0x46, 32, 0, 17, &cat(&[&[0x07, 0xff, 4, 0], &udp(8)])),
        ),
        (
            "IPv4 option length 0",
            v4(0x46, 32, 0, 17, &cat(&[&[0x44, 0, 0, 0], &udp(8)])),
        ),
        ("UDP truncated", v4(0x45, 28, 0, 17, &[0x0f, 0xa0, 0])),
        ("UDP length 0", v4(0x45, 28, 0, 17, &udp(0))),
        ("UDP length 65535", v4(0x45, 28, 0, 17, &udp(65535))),
        (
            "TCP data offset 15 past the packet",
            v4(0x45, 40, 0, 6, &tcp(15)),
        ),
        ("TCP data offset 0", v4(0x45, 40, 0, 6, &tcp(0))),
        ("TCP truncated", v4(0x45, 40, 0, 6, &tcp(5)[..7])),
        ("unknown protocol", v4(0x45, 28, 0, 253, &noise(3, 8))),
        // Fragments: a first fragment, one overlapping it, one past the end, one that never
        // has a first, offsets at the limit.
        (
            "first fragment",
            v4(0x45, 36, 0x2000, 17, &cat(&[&udp(100), &[0; 8]])),
        ),
        (
            "overlapping fragment",
            v4(0x45, 36, 0x2000, 17, &cat(&[&udp(50), &[0; 8]])),
        ),
        ("fragment at offset 8", v4(0x45, 36, 0x2001, 17, &[0; 16])),
        ("orphan last fragment", v4(0x45, 36, 0x0100, 17, &[0; 16])),
        (
            "fragment at the largest offset",
            v4(0x45, 36, 0x3fff, 17, &[0; 16]),
        ),
        (
            "first fragment with no room for ports",
            v4(0x45, 22, 0x2000, 17, &[0; 2]),
        ),
        ("IPv6 truncated", ethernet(0x86dd, &ipv6(8, 17)[..20])),
        (
            "IPv6 payload length 65535",
            ethernet(0x86dd, &cat(&[&ipv6(65535, 17), &udp(8)])),
        ),
        ("IPv6 jumbogram", {
            // Hop-by-hop with a jumbo payload option (0xc2) claiming 100,000 bytes.
            let hbh = [17, 0, 0xc2, 4, 0, 1, 0x86, 0xa0];
            ethernet(0x86dd, &cat(&[&ipv6(0, 0), &hbh, &udp(8)]))
        }),
        ("IPv6 extension header length past the packet", {
            ethernet(0x86dd, &cat(&[&ipv6(16, 0), &[17, 0xff, 0, 0, 0, 0, 0, 0]]))
        }),
        ("IPv6 fragment, first, never completed", {
            let frag = [17, 0, 0, 1, 0, 0, 0, 7];
            ethernet(0x86dd, &cat(&[&ipv6(24, 44), &frag, &udp(100), &[0; 8]]))
        }),
        ("IPv6 fragment, orphan", {
            let frag = [17, 0, 0x01, 0x00, 0, 0, 0, 9];
            ethernet(0x86dd, &cat(&[&ipv6(24, 44), &frag, &[0; 16]]))
        }),
        ("IPv6 no next header", ethernet(0x86dd, &ipv6(0, 59))),
    ];
    // A loop of extension headers: hop-by-hop pointing at destination options pointing at
    // routing ... hundreds deep, each 8 bytes, most past any snaplen.
    let mut chain = Vec::new();
    for i in 0..200 {
        let next = [60u8, 43, 0][i % 3];
        chain.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 0]);
    }
    let chain_len = chain.len() as u16;
    frames.push((
        "IPv6 extension header chain of 200",
        ethernet(0x86dd, &cat(&[&ipv6(chain_len, 0), &chain[..1400]])),
    ));
    // VLAN stacks: 802.1Q and 802.1ad tags, deep, truncated, and a stack ending in IPv4.
    let mut deep = Vec::new();
    for _ in 0..50 {
        deep.extend_from_slice(&[0, 1, 0x81, 0x00]);
    }
    deep.extend_from_slice(&[0, 1, 0x08, 0x00]);
    deep.extend_from_slice(&ipv4(net, 0x45, 28, 0, 17));
    deep.extend_from_slice(&udp(8));
    frames.push(("50 VLAN tags, then IPv4", ethernet(0x8100, &deep)));
    frames.push(("QinQ, truncated", ethernet(0x88a8, &[0, 1, 0x81])));
    frames.push((
        "QinQ, then IPv6 truncated",
        ethernet(
            0x88a8,
            &cat(&[&[0, 1, 0x81, 0x00, 0, 2, 0x86, 0xdd], &[0x60, 0]]),
        ),
    ));
    // Oversized: a frame above the veth's MTU (the kernel refuses it: not counted as sent).
    frames.push((
        "64 KiB jumbo",
        v4(0x45, 65535, 0, 17, &cat(&[&udp(65507), &vec![0; 65000]])),
    ));
    frames.push((
        "1500-byte frame claiming more",
        v4(0x45, 9000, 0, 17, &cat(&[&udp(8972), &vec![0; 1450]])),
    ));
    // Nonsense with IP ethertypes.
    for seed in 0..20 {
        let ethertype = if seed % 2 == 0 { 0x0800 } else { 0x86dd };
        let len = (seed as usize * 37) % 200;
        let mut payload = noise(100 + seed, len);
        if let Some(first) = payload.first_mut() {
            *first = if seed % 2 == 0 {
                0x40 | (*first & 0x0f)
            } else {
                0x60
            };
        }
        frames.push(("noise", ethernet(ethertype, &payload)));
    }
    frames
}

/// The last value of a `capture-self` counter (one data source, `value`), 0 before any row.
fn self_counter(collectd: &Collectd, name: &str) -> f64 {
    collectd
        .rows("self", name)
        .last()
        .map_or(0.0, |r| r.value())
}

/// Sum of `if_packets` rx + tx over every process instance (not the plugin's own).
fn process_packets(collectd: &Collectd) -> f64 {
    collectd
        .instances()
        .iter()
        .filter(|i| !["self", "unattributed", "forwarded"].contains(&i.as_str()))
        .filter_map(|i| collectd.rows(i, "if_packets").last().cloned())
        .map(|r| r.get("rx") + r.get("tx"))
        .sum()
}

/// Captured on the veth itself: Ethernet frames as written.
#[test]
fn hostile_frames_on_a_captured_veth() {
    hostile_frames_through(false);
}

/// Captured on `any` (Linux cooked frames, SLL2), narrowed to the veth by a BPF filter on its
/// interface index so that other tests' traffic stays out.
#[test]
fn hostile_frames_on_any() {
    hostile_frames_through(true);
}

fn hostile_frames_through(any: bool) {
    let Some(lab) = Netns::create(if any { "hsa" } else { "hst" }) else {
        return;
    };
    let veth = lab.veth(&format!("{}{}", if any { "chsa" } else { "chst" }, lab.id));
    ip(&[
        "addr",
        "add",
        &format!("{}/24", lab.v4(1)),
        "dev",
        &veth.host,
    ]);
    let (block, captured_on) = if any {
        let name = std::ffi::CString::new(veth.host.as_str()).expect("no NUL");
        // SAFETY: if_nametoindex reads a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        let filter =
            format!("GroupBy \"{{comm}}\"\nInterface \"any\"\nBPFFilter \"ifindex {index}\"");
        (filter, "any".to_string())
    } else {
        let block = format!("GroupBy \"{{comm}}\"\nInterface \"{}\"", veth.host);
        (block, veth.host.clone())
    };
    let Some(collectd) = Collectd::start(Some(&block)) else {
        return;
    };
    let captured = format!("derive-packets_captured-{captured_on}");
    let dropped = format!("derive-pcap_dropped-{captured_on}");
    collectd.wait_rows("self", &captured, "a row", |rows| !rows.is_empty());

    let socket = RawSocket::open(&veth.host);
    let net = lab.id as u8;
    let frames = hostile_frames(net);
    // Baseline after a quiet moment: what the capture and the processes had before.
    let before_epoch = now() + SETTLE;
    collectd.wait_row_after("self", &captured, before_epoch);
    let captured_before = self_counter(&collectd, &captured);
    let process_before = process_packets(&collectd);

    let mut sent = 0u64;
    let mut refused = Vec::new();
    const ROUNDS: usize = 50;
    for round in 0..ROUNDS {
        for (what, frame) in &frames {
            if socket.send(frame) {
                sent += 1;
            } else if round == 0 {
                refused.push(*what);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "{} kinds of frame x {ROUNDS} rounds: {sent} sent, refused by the kernel: {refused:?}",
        frames.len()
    );
    assert!(sent >= (frames.len() as u64 - 5) * ROUNDS as u64);

    let settled = now() + SETTLE + INTERVAL;
    collectd.wait_rows("self", &captured, "every frame captured", |rows| {
        rows.last()
            .is_some_and(|r| r.epoch >= settled && r.value() - captured_before >= sent as f64)
    });
    let captured_delta = self_counter(&collectd, &captured) - captured_before;
    let process_delta = process_packets(&collectd) - process_before;
    eprintln!(
        "captured {captured_delta} (sent {sent}); process if_packets grew by {process_delta}; \
         pcap dropped {}",
        self_counter(&collectd, &dropped)
    );
    assert_eq!(
        process_delta, 0.0,
        "hostile frames were credited to processes"
    );

    // The capture still attributes a real exchange across the veth, both sides.
    let receiver = lab.spawn(
        &collectd,
        &unique_comm("cw_hrx_"),
        &["udp-recv", &lab.v4(2), "15"],
    );
    assert_udp_attributed(&collectd, receiver, &lab.v4(2), str::to_owned);
    assert_sampler_alive(&collectd, &[], str::to_owned);
    assert_instance_names_sanitized(&collectd);
    assert_quiet(&collectd, ROOT_WARNINGS);
    drop(veth);
}

//! A whole sampler cycle over a fixture /proc: what is read, grouped, summed and converted.

use super::*;
use crate::config::{ConfigNode, ConfigValue};
use std::fs;
use std::path::Path;

struct FakeProc {
    dir: tempfile::TempDir,
}

struct Proc<'a> {
    pid: u32,
    comm: &'a str,
    utime: u64,
    stime: u64,
    starttime: u64,
    threads: u64,
    rss_pages: u64,
    fds: usize,
    wchar: u64,
    /// Soft limit of open files in /proc/PID/limits.
    nofile: &'a str,
}

impl FakeProc {
    fn new() -> Self {
        let fake = FakeProc {
            dir: tempfile::tempdir().unwrap(),
        };
        fake.set_cpu_total(1000);
        fs::write(
            fake.path().join("meminfo"),
            "MemTotal: 1000 kB\nMemFree: 1 kB\n",
        )
        .unwrap();
        fake
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Total CPU ticks of the machine, all in `idle` for simplicity.
    fn set_cpu_total(&self, ticks: u64) {
        let line = format!("cpu  0 0 0 {ticks} 0 0 0 0 0 0\ncpu0 0 0 0 {ticks} 0 0 0 0 0 0\n");
        fs::write(self.path().join("stat"), line).unwrap();
    }

    fn put(&self, p: Proc<'_>) {
        let dir = self.path().join(p.pid.to_string());
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("fd")).unwrap();
        let stat = format!(
            "{} ({}) S 1 1 1 0 -1 4194304 0 0 0 0 {} {} 0 0 20 0 {} 0 {} 5000000 {} 0\n",
            p.pid, p.comm, p.utime, p.stime, p.threads, p.starttime, p.rss_pages
        );
        fs::write(dir.join("stat"), stat).unwrap();
        let io = format!(
            "rchar: 7\nwchar: {}\nsyscr: 1\nsyscw: 2\nread_bytes: 0\nwrite_bytes: 4096\n\
             cancelled_write_bytes: 0\n",
            p.wchar
        );
        fs::write(dir.join("io"), io).unwrap();
        for fd in 0..p.fds {
            fs::write(dir.join("fd").join(fd.to_string()), "").unwrap();
        }
        fs::write(
            dir.join("cmdline"),
            format!("/usr/bin/{}\0--serve\0", p.comm),
        )
        .unwrap();
        fs::write(dir.join("status"), "Name:\tx\nUid:\t0\t0\t0\t0\n").unwrap();
        self.set_nofile(p.pid, p.nofile);
        std::os::unix::fs::symlink(format!("/usr/bin/{}", p.comm), dir.join("exe")).unwrap();
    }

    fn set_nofile(&self, pid: u32, soft: &str) {
        let limits = format!(
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max open files            {soft:<20} 524288               files     \n"
        );
        fs::write(self.path().join(pid.to_string()).join("limits"), limits).unwrap();
    }

    fn remove(&self, pid: u32) {
        fs::remove_dir_all(self.path().join(pid.to_string())).unwrap();
    }

    fn sampler(&self, config: Config) -> Sampler {
        let mut s = Sampler::with_proc(config, ProcRoot::new(self.path()), FdCountMethod::ReadDir);
        s.set_units(100, 4096);
        s
    }
}

fn proc(pid: u32, comm: &str, utime: u64, starttime: u64) -> Proc<'_> {
    Proc {
        pid,
        comm,
        utime,
        stime: 0,
        starttime,
        threads: 1,
        rss_pages: 10,
        fds: 3,
        wchar: 100,
        nofile: "1024",
    }
}

fn cycle(s: &mut Sampler) -> Snapshot {
    s.cycle(&|| false).expect("a cycle that was not stopped")
}

fn instance<'a>(snap: &'a Snapshot, name: &str) -> &'a InstanceReport {
    snap.instances
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("{name} not in {:?}", names(snap)))
}

fn names(snap: &Snapshot) -> Vec<&str> {
    snap.instances.iter().map(|i| i.name.as_str()).collect()
}

#[test]
fn converts_units_and_sums_members() {
    let fake = FakeProc::new();
    fake.put(Proc {
        stime: 20,
        threads: 4,
        fds: 5,
        ..proc(10, "nginx", 150, 1)
    });
    fake.put(proc(11, "nginx", 50, 2));
    let mut s = fake.sampler(Config::default());
    let snap = cycle(&mut s);
    let nginx = instance(&snap, "nginx");
    assert_eq!(nginx.cpu_user_us, 2_000_000, "200 ticks at 100 Hz");
    assert_eq!(nginx.cpu_system_us, 200_000);
    assert_eq!(nginx.cpu_percent, None, "no interval yet");
    assert_eq!(nginx.rss_bytes, 2 * 10 * 4096);
    assert_eq!(nginx.vm_bytes, 2 * 5_000_000);
    assert_eq!(nginx.memory_percent, Some(100.0 * 81920.0 / 1_024_000.0));
    assert_eq!((nginx.processes, nginx.threads), (2, 5));
    assert_eq!(nginx.file_handles, Some(8));
    let io = nginx.io.unwrap();
    assert_eq!((io.rchar, io.wchar, io.syscr, io.syscw), (14, 200, 2, 4));
    assert_eq!((io.read_bytes, io.write_bytes), (0, 8192));
    assert_eq!(snap.telemetry.processes, 2);
    assert_eq!(snap.telemetry.instances, 1);
}

#[test]
fn percent_is_a_share_of_the_machine_over_the_interval() {
    let fake = FakeProc::new();
    fake.put(proc(10, "burn", 1000, 1));
    let mut s = fake.sampler(Config::default());
    cycle(&mut s);
    // 200 machine ticks pass (2 CPUs for 1 s at 100 Hz); the burner used 100 of them.
    fake.set_cpu_total(1200);
    fake.put(proc(10, "burn", 1100, 1));
    let snap = cycle(&mut s);
    assert_eq!(instance(&snap, "burn").cpu_percent, Some(50.0));
}

/// `capture-self/percent-cpu_accounted`: the instances' CPU time over the CPU time the kernel
/// charged to tasks (user, nice, system of /proc/stat) in the same interval.
#[test]
fn the_share_of_task_cpu_time_the_instances_account_for() {
    let fake = FakeProc::new();
    fake.put(proc(10, "burn", 1000, 1));
    let write_stat = |user: u64, system: u64, idle: u64| {
        let line = format!("cpu  {user} 0 {system} {idle} 0 3 4 0 0 0\n");
        fs::write(fake.path().join("stat"), line).unwrap();
    };
    write_stat(5000, 1000, 100);
    let mut s = fake.sampler(Config::default());
    let first = cycle(&mut s);
    assert_eq!(
        first.telemetry.cpu_accounted_percent, None,
        "no interval yet"
    );
    // Tasks were charged 160 ticks (120 user, 40 system); the burner used 120 of them.
    write_stat(5120, 1040, 300);
    fake.put(proc(10, "burn", 1120, 1));
    let snap = cycle(&mut s);
    assert_eq!(snap.telemetry.cpu_accounted_percent, Some(75.0));
}

#[test]
fn exits_reuse_and_newcomers() {
    let fake = FakeProc::new();
    fake.put(proc(10, "sh", 100, 1));
    fake.put(proc(11, "sh", 100, 2));
    let mut s = fake.sampler(Config::default());
    let first = cycle(&mut s);
    assert_eq!(instance(&first, "sh").cpu_user_us, 2_000_000);

    // 11 exits; pid 10 is reused by a new process that used 5 ticks; 12 is new with 7.
    fake.remove(11);
    fake.put(proc(10, "sh", 5, 900));
    fake.put(proc(12, "sh", 7, 901));
    fake.set_cpu_total(1100);
    let snap = cycle(&mut s);
    let sh = instance(&snap, "sh");
    assert_eq!(sh.cpu_user_us, (100 + 100 + 5 + 7) * 10_000);
    assert_eq!(sh.processes, 2);
    assert_eq!(sh.cpu_percent, Some(12.0));
    assert_eq!(sh.io.unwrap().wchar, 400, "exited members' bytes stay");
}

#[test]
fn rules_fixed_names_and_dropping() {
    let fake = FakeProc::new();
    fake.put(proc(10, "nginx", 1, 1));
    fake.put(proc(11, "cron", 1, 1));
    let config = Config::from_nodes(&[
        ConfigNode::new(
            "ProcessMatch",
            vec![
                ConfigValue::String("web".into()),
                ConfigValue::String("nginx --serve".into()),
            ],
        ),
        ConfigNode::new("Process", vec![ConfigValue::String("sshd".into())]),
        ConfigNode::new("GroupBy", vec![ConfigValue::String("".into())]),
    ])
    .unwrap();
    let mut s = fake.sampler(config);
    let snap = cycle(&mut s);
    assert_eq!(names(&snap), ["web", "sshd"]);
    assert_eq!(instance(&snap, "sshd").processes, 0);
}

#[test]
fn cgroup_placeholders_and_criterion_read_proc_pid_cgroup() {
    let fake = FakeProc::new();
    let id = "0123456789abcdef".repeat(4);
    for (pid, cgroup) in [
        (
            10,
            format!("1:name=systemd:/\n0::/system.slice/docker-{id}.scope\n"),
        ),
        (
            11,
            "1:name=systemd:/system.slice/cron.service\n0::/\n".to_string(),
        ),
        (12, "0::/\n".to_string()),
        (13, "not a cgroup file".to_string()),
    ] {
        fake.put(proc(pid, "app", 1, 1));
        fs::write(fake.path().join(format!("{pid}/cgroup")), cgroup).unwrap();
    }
    // A process without a cgroup file at all.
    fake.put(proc(14, "app", 1, 1));
    let config = Config::from_nodes(&[
        ConfigNode {
            key: "Match".into(),
            values: vec![ConfigValue::String("cron".into())],
            children: vec![ConfigNode::new(
                "Cgroup",
                vec![ConfigValue::String(r"/cron\.service$".into())],
            )],
        },
        ConfigNode::new(
            "GroupBy",
            vec![ConfigValue::String("{container}:{cgroup}:{comm}".into())],
        ),
    ])
    .unwrap();
    let mut s = fake.sampler(config);
    let snap = cycle(&mut s);
    let mut got = names(&snap);
    got.sort();
    // The docker scope's name is long: the 63-byte cut takes the end, comm included.
    let docker = format!("0123456789ab:docker-{}", &id[..43]);
    assert_eq!(got, [docker.as_str(), ":-:app", ":?:app", "cron"]);
    assert_eq!(
        instance(&snap, ":?:app").processes,
        2,
        "garbage and missing files"
    );
}

#[test]
fn odd_names_and_vanished_files_are_harmless() {
    let fake = FakeProc::new();
    fake.put(proc(10, "a (b) c", 1, 1));
    fake.put(proc(11, "x/y\nz", 1, 1));
    // A process that vanished between listing and reading leaves an empty dir behind.
    fs::create_dir_all(fake.path().join("12")).unwrap();
    // Garbage stat.
    fs::create_dir_all(fake.path().join("13")).unwrap();
    fs::write(fake.path().join("13/stat"), "13 (x").unwrap();
    let mut s = fake.sampler(Config::default());
    let snap = cycle(&mut s);
    let mut got = names(&snap);
    got.sort();
    assert_eq!(got, ["a (b) c", "x_y_z"]);
    assert_eq!(snap.telemetry.processes, 2);
}

#[test]
fn collections_can_be_turned_off() {
    let fake = FakeProc::new();
    fake.put(proc(10, "db", 1, 1));
    let config = Config::from_nodes(&[
        ConfigNode::new("CollectIO", vec![ConfigValue::Boolean(false)]),
        ConfigNode::new("CollectFileHandles", vec![ConfigValue::Boolean(false)]),
    ])
    .unwrap();
    let mut s = fake.sampler(config);
    let snap = cycle(&mut s);
    let db = instance(&snap, "db");
    assert_eq!((db.io, db.file_handles), (None, None));
    assert_eq!(
        (db.file_handles_limit, db.file_handles_percent),
        (None, None)
    );
}

#[test]
fn meta_data_of_one_process_and_of_several() {
    let fake = FakeProc::new();
    fake.put(proc(10, "db", 1, 1));
    fake.put(proc(11, "web", 1, 2));
    fake.put(proc(12, "web", 1, 3));
    let on = Config::from_nodes(&[ConfigNode::new(
        "MetaData",
        vec![ConfigValue::Boolean(true)],
    )])
    .unwrap();
    let mut s = fake.sampler(on);
    let snap = cycle(&mut s);
    let text = |t: &str| Some(Arc::<str>::from(t));
    let db = instance(&snap, "db").meta.as_deref().cloned();
    assert_eq!(
        db,
        Some(MetaData {
            pid: Some(10),
            uid: Some(0),
            user: text("root"),
            comm: text("db"),
            exe: text("/usr/bin/db"),
            cmdline: text("/usr/bin/db --serve"),
        })
    );
    let web = instance(&snap, "web").meta.as_deref().cloned();
    assert_eq!(
        web,
        Some(MetaData {
            uid: Some(0),
            user: text("root"),
            comm: text("web"),
            exe: text("/usr/bin/web"),
            ..MetaData::default()
        }),
        "several processes: what they share, no pid, no command line"
    );

    // The command line is read once: a rewritten one is not followed.
    fs::write(fake.path().join("10/cmdline"), "db: idle\0").unwrap();
    let snap = cycle(&mut s);
    let db = instance(&snap, "db").meta.clone().unwrap();
    assert_eq!(db.cmdline.as_deref(), Some("/usr/bin/db --serve"));
    // One web process left: it now carries its own pid and command line.
    fake.remove(12);
    let snap = cycle(&mut s);
    let web = instance(&snap, "web").meta.clone().unwrap();
    assert_eq!(web.pid, Some(11));
    assert_eq!(web.cmdline.as_deref(), Some("/usr/bin/web --serve"));

    // Off by default.
    let snap = cycle(&mut fake.sampler(Config::default()));
    assert!(snap.instances.iter().all(|i| i.meta.is_none()));
}

#[test]
fn descriptor_limits_are_read_and_kept_a_minute() {
    let fake = FakeProc::new();
    fake.put(Proc {
        fds: 64,
        nofile: "256",
        ..proc(10, "web", 1, 1)
    });
    fake.put(Proc {
        fds: 100,
        ..proc(11, "web", 1, 2)
    });
    fake.put(Proc {
        nofile: "unlimited",
        ..proc(12, "free", 1, 3)
    });
    let mut s = fake.sampler(Config::default());
    let snap = cycle(&mut s);
    let web = instance(&snap, "web");
    // 64 of 256 is 25 %, more than 100 of 1024.
    assert_eq!(web.file_handles_limit, Some(256));
    assert_eq!(web.file_handles_percent, Some(25.0));
    let free = instance(&snap, "free");
    assert_eq!(free.file_handles_limit, None, "no finite limit to report");
    assert_eq!(free.file_handles_percent, Some(0.0));

    // A limit raised while the process runs is read again after a minute, not every cycle.
    fake.set_nofile(10, "4096");
    let snap = cycle(&mut s);
    assert_eq!(instance(&snap, "web").file_handles_limit, Some(256));
    for g in s.grouped.values_mut() {
        g.fd_limit_read = g.fd_limit_read.map(|at| at - FD_LIMIT_MAX_AGE);
    }
    let snap = cycle(&mut s);
    let web = instance(&snap, "web");
    assert_eq!(web.file_handles_limit, Some(1024));
    assert_eq!(web.file_handles_percent, Some(100.0 * 100.0 / 1024.0));
}

#[test]
fn a_stop_request_cuts_the_cycle_short() {
    let fake = FakeProc::new();
    fake.put(proc(10, "a", 1, 1));
    let mut s = fake.sampler(Config::default());
    assert!(s.cycle(&|| true).is_none());
    assert!(s.cycle(&|| false).is_some());
}

/// A cycle cut by a panic half-way through the walk (as the sampler thread's guard catches
/// it) leaves nothing behind: the next cycle's counters go on from the last reported ones, with
/// no spike from the members the cut cycle had already added.
#[test]
fn a_cycle_cut_by_a_panic_leaves_no_spike() {
    let fake = FakeProc::new();
    // More than 256 processes: the stop callback, the panic's stand-in, is asked every 256.
    let pids = 1000..1300u32;
    for pid in pids.clone() {
        fake.put(proc(pid, "w", 1, u64::from(pid)));
    }
    let mut s = fake.sampler(Config::default());
    let first = cycle(&mut s);
    assert_eq!(instance(&first, "w").cpu_user_us, 300 * 10_000);
    for pid in pids.clone() {
        fake.put(proc(pid, "w", 2, u64::from(pid)));
    }
    fake.set_cpu_total(2000);
    let asked = std::cell::Cell::new(0);
    let panicking = || {
        asked.set(asked.get() + 1);
        assert!(asked.get() < 2, "injected: a bug half-way through the walk");
        false
    };
    let cut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.cycle(&panicking)));
    assert!(cut.is_err(), "the cycle panicked after 256 processes");
    for pid in pids.clone() {
        fake.put(proc(pid, "w", 3, u64::from(pid)));
    }
    fake.set_cpu_total(3000);
    let after = cycle(&mut s);
    let w = instance(&after, "w");
    assert_eq!(after.seq, first.seq + 1, "the cut cycle published nothing");
    assert_eq!(w.cpu_user_us, 300 * 3 * 10_000, "no member counted twice");
    assert_eq!(w.processes, 300);
    // 600 ticks in 2000 of the machine's, over both intervals.
    assert_eq!(w.cpu_percent, Some(30.0));
}

#[test]
fn kworker_descriptions_do_not_split_instances() {
    assert_eq!(grouping_comm(b"kworker/0:1-events", true), b"kworker/0:1");
    assert_eq!(
        grouping_comm(b"kworker/0:1-events", false),
        b"kworker/0:1-events"
    );
    assert_eq!(grouping_comm(b"irq/24-ACPI:Ged", true), b"irq/24-ACPI:Ged");
}

/// The live /proc, parsed by this crate and by procfs-core, must agree field by field.
#[test]
fn pid_stat_parser_agrees_with_procfs_on_live_processes() {
    use procfs_core::FromRead;
    let mut compared = 0;
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(content) = fs::read(entry.path().join("stat")) else {
            continue;
        };
        let (Some(ours), Ok(theirs)) = (
            pid_stat::parse(&content),
            procfs_core::process::Stat::from_read(&content[..]),
        ) else {
            continue;
        };
        assert_eq!(String::from_utf8_lossy(ours.comm), theirs.comm);
        assert_eq!(ours.state as char, theirs.state);
        assert_eq!(ours.ppid as i32, theirs.ppid);
        assert_eq!(ours.children_minflt, theirs.cminflt);
        assert_eq!((ours.utime, ours.stime), (theirs.utime, theirs.stime));
        assert_eq!(ours.num_threads, theirs.num_threads as u64);
        assert_eq!(ours.starttime, theirs.starttime);
        assert_eq!((ours.vsize, ours.rss_pages), (theirs.vsize, theirs.rss));
        assert_eq!(ours.kernel_thread, theirs.flags & 0x0020_0000 != 0);
        compared += 1;
    }
    assert!(compared > 0);
}

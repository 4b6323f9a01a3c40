//! Integration tests (owned by the integration tests): grouping by control group through a real
//! collectd — the `{cgroup}` and `{container}` placeholders and the `Cgroup` criterion — for
//! workloads moved into cgroup v2 directories the test makes itself, one of them named the way
//! Docker's systemd driver names a container's (`docker-<64 hex>.scope`).
//!
//! Needs root and a writable cgroup2 mount (found in /proc/self/mountinfo: `/sys/fs/cgroup` on
//! a pure v2 host, `/sys/fs/cgroup/unified` on a hybrid one); says `SKIP: ...` otherwise. On a
//! hybrid host the workloads stay at their v1 places and only their v2 path changes, which is
//! also what the plugin must prefer.

mod common;

use capture::proc::pid_cgroup;
use common::*;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Straight to the stderr handle: libtest captures `eprintln!`, and a skip must show.
fn skip(reason: &str) {
    let _ = writeln!(io::stderr(), "SKIP: {reason}");
}

/// Cgroup directories made by the test. Dropped after the workloads in them (declare it
/// first): removes them, children first, once they are empty.
struct TestCgroups {
    mount: PathBuf,
    dirs: Vec<PathBuf>,
}

impl TestCgroups {
    fn new(mount: &Path) -> TestCgroups {
        TestCgroups {
            mount: mount.to_path_buf(),
            dirs: Vec::new(),
        }
    }

    /// Makes `<mount>/<relative>`; its parent must have been made before.
    fn make(&mut self, relative: &str) -> io::Result<PathBuf> {
        let dir = self.mount.join(relative);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            // Left by an earlier run of a process with the same pid: reused, and removed.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        self.dirs.push(dir.clone());
        Ok(dir)
    }
}

impl Drop for TestCgroups {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            // A cgroup with processes cannot be removed: anything still inside (the workloads
            // are killed and reaped before this runs) goes back to the root cgroup.
            if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in procs.lines() {
                    let _ = fs::write(self.mount.join("cgroup.procs"), pid);
                }
            }
            // The kernel detaches an exited process asynchronously: EBUSY for a moment.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e)
                        if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) =>
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => {
                        eprintln!("could not remove cgroup {}: {e}", dir.display());
                        break;
                    }
                }
            }
        }
    }
}

/// The cgroup path the plugin chooses for `pid`, read the way it reads it.
fn chosen_cgroup(pid: u32) -> String {
    let content = fs::read(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/cgroup: {e}"));
    let path = pid_cgroup::parse(&content).unwrap_or_else(|| {
        panic!(
            "unparsable /proc/{pid}/cgroup: {:?}",
            String::from_utf8_lossy(&content)
        )
    });
    String::from_utf8_lossy(path).into_owned()
}

/// Waits until `instance` reports exactly one live process.
fn wait_for_one_process(collectd: &Collectd, instance: &str) {
    collectd.wait_rows(instance, "ps_count", "processes = 1", |rows| {
        rows.last().is_some_and(|row| row.get("processes") == 1.0)
    });
}

#[test]
fn cgroup_and_container_placeholders_and_the_cgroup_criterion() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        skip("not root: making cgroups and moving processes into them needs root");
        return;
    }
    let Some(mount) = cgroup2_mount() else {
        skip("no cgroup2 file system is mounted (none in /proc/self/mountinfo)");
        return;
    };
    let pid = std::process::id();
    // Declared before collectd and the workloads, so dropped after them: empty by then.
    let mut cgroups = TestCgroups::new(&mount);
    let plain_name = format!("capture-test-{pid}-0");
    let rule_name = format!("capture-test-{pid}-1");
    let plain_dir = match cgroups.make(&plain_name) {
        Ok(dir) => dir,
        Err(e) => {
            skip(&format!(
                "cannot make a cgroup under the cgroup2 mount {}: {e}",
                mount.display()
            ));
            return;
        }
    };
    let make = |cgroups: &mut TestCgroups, relative: &str| {
        cgroups.make(relative).unwrap_or_else(|e| {
            panic!(
                "making cgroup {} (its sibling {plain_name} could be made): {e}",
                mount.join(relative).display()
            )
        })
    };
    let rule_dir = make(&mut cgroups, &rule_name);
    make(&mut cgroups, &format!("capture-test-{pid}"));
    // A full container id as Docker writes it: 64 lowercase hex digits.
    let id = format!("{pid:08x}").repeat(8);
    let docker_dir = make(
        &mut cgroups,
        &format!("capture-test-{pid}/docker-{id}.scope"),
    );

    let c_plain = unique_comm("cw_cgp_");
    let c_rule = unique_comm("cw_cgr_");
    let c_docker = unique_comm("cw_cgd_");
    let c_host = unique_comm("cw_cgh_");
    let rule_instance = format!("cgroup-rule-{pid}");
    // Rules first: the Cgroup criterion, then the {container} template for two workloads; all
    // the rest of the host goes to GroupBy, the plain cgroup's workload among them.
    let block = format!(
        r#"<Match "{rule_instance}">
  Cgroup "/{rule_name}$"
</Match>
<Match "{{container}}:{{comm}}">
  Comm "^({c_docker}|{c_host})$"
</Match>
GroupBy "{{cgroup}}:{{comm}}""#
    );
    let Some(collectd) = Collectd::start(Some(&block)) else {
        return;
    };
    let mut workloads = [
        collectd.spawn_in_cgroup(&c_plain, &["sleep", "60"], &plain_dir),
        collectd.spawn_in_cgroup(&c_rule, &["sleep", "60"], &rule_dir),
        collectd.spawn_in_cgroup(&c_docker, &["sleep", "60"], &docker_dir),
        collectd.spawn(&c_host, &["sleep", "60"]),
    ];
    for workload in &mut workloads {
        workload.expect_line("ready");
    }
    let [plain, ruled, docker, host] = &workloads;

    // The moves took, and the v2 path is the one chosen, on a hybrid host too.
    for (workload, dir) in [
        (plain, &plain_dir),
        (ruled, &rule_dir),
        (docker, &docker_dir),
    ] {
        let chosen = chosen_cgroup(workload.pid);
        let relative = dir.strip_prefix(&mount).expect("under the mount");
        assert!(
            chosen.ends_with(&format!("/{}", relative.display())),
            "workload {:?} should be in {}, its /proc/PID/cgroup gives {chosen:?}",
            workload.comm,
            dir.display()
        );
    }
    // The host workload stays where the test runs: usually no container (`:comm`), but a CI
    // job inside a container sees its own container's id.
    let host_cgroup = chosen_cgroup(host.pid);
    let host_container = pid_cgroup::container_id(&host_cgroup).unwrap_or("");
    eprintln!("the test runs in cgroup {host_cgroup:?}, container id {host_container:?}");

    let expected = [
        (plain, format!("{plain_name}:{c_plain}")),
        (ruled, rule_instance.clone()),
        (docker, format!("{}:{c_docker}", &id[..12])),
        (host, format!("{host_container}:{c_host}")),
    ];
    for (workload, instance) in &expected {
        eprintln!("workload {:?} -> instance {instance:?}", workload.comm);
        wait_for_one_process(&collectd, instance);
    }
    // And nowhere else: each workload's comm names exactly the instance expected (the rule's
    // instance, a fixed name, names none).
    let instances = collectd.instances();
    for (workload, instance) in &expected {
        let with_comm: Vec<&String> = instances
            .iter()
            .filter(|name| name.contains(&workload.comm))
            .collect();
        let want: Vec<&String> = if instance.contains(&workload.comm) {
            vec![instance]
        } else {
            vec![]
        };
        assert_eq!(
            with_comm, want,
            "instances naming workload {:?} (expected it under {instance:?})",
            workload.comm
        );
    }
}

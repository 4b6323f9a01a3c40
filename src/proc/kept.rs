//! Files of /proc/PID kept open from one sampler cycle to the next.
//!
//! Opening `/proc/PID/stat` walks the path and builds a file for every read; reading it again
//! through a file kept open (`pread` at offset 0 regenerates it) costs a third of that. For a
//! process that lives several cycles — nearly all of them — the sampler keeps `stat`, `io`,
//! `status` and `schedstat` (when they are read) and the `fd` directory (an `O_PATH` handle
//! whose `fstat` counts descriptors on Linux >= 6.2) open and needs one system call per file
//! instead of three (measured: stat + io + fd count went from 13.5–18 µs to 4.5–5.5 µs a
//! process).
//!
//! A kept file belongs to the process it was opened for, not to its pid: once that process is
//! gone, reads fail (`ESRCH`), the files are dropped, and whatever has the pid now is opened
//! afresh. So pid reuse never mixes two processes.
//!
//! Descriptors are a shared resource of the whole collectd process. Kept files live high in the
//! descriptor table — from 1024, or half the soft `RLIMIT_NOFILE` collectd started with if that
//! is more, each moved up with `F_DUPFD_CLOEXEC` — and the soft limit is raised towards the hard
//! one to make room for them. The low descriptors stay as free as before: another plugin gets
//! the same numbers it would have got, and one that uses `select()` never meets a descriptor of
//! 1024 or more it did not ask for. Without room (soft = hard = 1024), nothing is kept and every
//! read opens its file, as before.

use super::pid_limits::UNLIMITED;
use rustix::io::fcntl_dupfd_cloexec;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// At most this many processes' files are kept, whatever the limits allow.
const MAX_PROCESSES: usize = 32_768;
/// Files kept per process: stat, io, fd directory, and with the costly options status and
/// schedstat.
const FILES_PER_PROCESS: u64 = 5;

/// One of the files kept per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stat,
    Io,
    Status,
    Schedstat,
}

#[derive(Default)]
struct Kept {
    stat: Option<File>,
    io: Option<File>,
    status: Option<File>,
    schedstat: Option<File>,
    fd_dir: Option<File>,
}

impl Kept {
    fn slot(&mut self, kind: Kind) -> &mut Option<File> {
        match kind {
            Kind::Stat => &mut self.stat,
            Kind::Io => &mut self.io,
            Kind::Status => &mut self.status,
            Kind::Schedstat => &mut self.schedstat,
        }
    }
}

pub struct KeptFiles {
    kept: HashMap<u32, Kept>,
    /// Descriptors may be placed from here up (the soft limit collectd started with).
    floor: i32,
    /// Descriptors this may hold at most.
    budget: u64,
    held: u64,
}

impl KeptFiles {
    /// Keeps nothing: every read opens its file.
    pub fn none() -> KeptFiles {
        KeptFiles {
            kept: HashMap::new(),
            floor: 0,
            budget: 0,
            held: 0,
        }
    }

    /// Makes room high in the descriptor table: raises the soft `RLIMIT_NOFILE` towards the
    /// hard one, and keeps files from `max(1024, the old soft limit / 2)` up, using at most half
    /// of what lies between there and the new soft limit. With the usual limits (soft 1024,
    /// hard 524288) that is room for every process of a large host, all of it above what
    /// collectd could use before; with soft = hard = 1024, nothing is kept.
    pub fn with_room_above_the_limit() -> KeptFiles {
        // `None` is RLIM_INFINITY, the largest value.
        let limit = getrlimit(Resource::Nofile);
        let soft = limit.current.unwrap_or(UNLIMITED);
        let hard = limit.maximum.unwrap_or(UNLIMITED);
        let wanted = MAX_PROCESSES as u64 * FILES_PER_PROCESS;
        let mut raised = soft.saturating_add(wanted).min(hard).max(soft);
        if raised > soft {
            let new = Rlimit {
                current: Some(raised),
                maximum: limit.maximum,
            };
            // Raising the soft limit up to the hard one needs no privilege.
            if setrlimit(Resource::Nofile, new).is_err() {
                raised = soft;
            }
        }
        let floor = (soft / 2).max(1024);
        let Ok(floor_fd) = i32::try_from(floor) else {
            return KeptFiles::none();
        };
        KeptFiles {
            kept: HashMap::new(),
            floor: floor_fd,
            budget: (raised.saturating_sub(floor) / 2).min(wanted),
            held: 0,
        }
    }

    /// Descriptors kept now.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Reads `path` (the process's `stat` or `io`) into `buf`, through the kept file if there
    /// is one, keeping it otherwise if there is room.
    pub fn read(
        &mut self,
        pid: u32,
        kind: Kind,
        path: &Path,
        buf: &mut Vec<u8>,
        limit: usize,
    ) -> io::Result<()> {
        if let Some(file) = self.kept.get_mut(&pid).and_then(|k| k.slot(kind).as_ref()) {
            match super::read_limited_at(file, buf, limit) {
                Ok(()) => return Ok(()),
                // The process it was opened for is gone; what has the pid now is opened below.
                Err(_) => self.forget(pid),
            }
        }
        let mut file = File::open(path)?;
        buf.clear();
        super::read_limited(&mut file, buf, limit)?;
        if let Some(file) = self.lift(file) {
            *self.kept.entry(pid).or_default().slot(kind) = Some(file);
        }
        Ok(())
    }

    /// Open descriptors of the process, from `fstat` of its kept `fd` directory (Linux >= 6.2
    /// counts them in `st_size`), keeping one if there is none yet.
    pub fn fd_count(&mut self, pid: u32, dir: &Path) -> io::Result<u64> {
        if let Some(handle) = self.kept.get(&pid).and_then(|k| k.fd_dir.as_ref()) {
            match handle.metadata() {
                Ok(meta) => return Ok(meta.len()),
                Err(_) => self.forget(pid),
            }
        }
        let handle = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(dir)?;
        let count = handle.metadata()?.len();
        if let Some(handle) = self.lift(handle) {
            self.kept.entry(pid).or_default().fd_dir = Some(handle);
        }
        Ok(count)
    }

    /// Drops the files of processes not in `alive` (sorted), after a cycle.
    pub fn retain_sorted(&mut self, alive: &[u32]) {
        let mut gone = Vec::new();
        for &pid in self.kept.keys() {
            if alive.binary_search(&pid).is_err() {
                gone.push(pid);
            }
        }
        for pid in gone {
            self.forget(pid);
        }
    }

    fn forget(&mut self, pid: u32) {
        if let Some(kept) = self.kept.remove(&pid) {
            let n = [
                kept.stat.is_some(),
                kept.io.is_some(),
                kept.fd_dir.is_some(),
            ]
            .iter()
            .filter(|&&k| k)
            .count() as u64;
            self.held = self.held.saturating_sub(n);
        }
    }

    /// The file moved above the floor, if there is room to keep it.
    fn lift(&mut self, file: File) -> Option<File> {
        if self.held >= self.budget {
            return None;
        }
        // `file` is closed when dropped.
        let Ok(lifted) = fcntl_dupfd_cloexec(&file, self.floor) else {
            // Out of room after all (another thread of collectd took it): stop keeping.
            self.budget = self.held;
            return None;
        };
        self.held += 1;
        Some(File::from(lifted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::{fcntl_getfd, FdFlags};
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};

    fn stat_path(pid: u32) -> std::path::PathBuf {
        Path::new("/proc").join(pid.to_string()).join("stat")
    }

    #[test]
    fn kept_reads_match_fresh_ones_and_live_above_the_old_limit() {
        let mut kept = KeptFiles::with_room_above_the_limit();
        if kept.budget == 0 {
            eprintln!("SKIP: the descriptor limit cannot be raised here");
            return;
        }
        let me = std::process::id();
        let mut buf = Vec::new();
        kept.read(me, Kind::Stat, &stat_path(me), &mut buf, 4096)
            .expect("own stat");
        assert_eq!(kept.held(), 1);
        let file = kept.kept[&me].stat.as_ref().expect("kept");
        assert!(
            file.as_raw_fd() >= kept.floor,
            "kept above the old soft limit"
        );
        assert!(fcntl_getfd(file).unwrap().contains(FdFlags::CLOEXEC));
        // Through the kept file: the same fields a fresh read gives (pid, comm, state).
        kept.read(me, Kind::Stat, &stat_path(me), &mut buf, 4096)
            .expect("again");
        let fresh = std::fs::read(stat_path(me)).expect("fresh");
        let head = |b: &[u8]| {
            b.splitn(4, |&c| c == b' ')
                .take(2)
                .collect::<Vec<_>>()
                .concat()
        };
        assert_eq!(head(&buf), head(&fresh));
        assert_eq!(kept.held(), 1, "no second file for the same process");
        let count = kept
            .fd_count(me, &Path::new("/proc").join(me.to_string()).join("fd"))
            .expect("fd count");
        assert!(count >= 3, "{count}");
    }

    #[test]
    fn a_gone_process_is_forgotten_and_its_pid_opened_afresh() {
        let mut kept = KeptFiles::with_room_above_the_limit();
        if kept.budget == 0 {
            eprintln!("SKIP: the descriptor limit cannot be raised here");
            return;
        }
        let mut child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::null())
            .spawn()
            .expect("sleep");
        let pid = child.id();
        let mut buf = Vec::new();
        kept.read(pid, Kind::Stat, &stat_path(pid), &mut buf, 4096)
            .expect("child stat");
        assert_eq!(kept.held(), 1);
        child.kill().expect("kill");
        child.wait().expect("reaped");
        // The kept file fails; the path is gone too: an error, and nothing kept.
        assert!(kept
            .read(pid, Kind::Stat, &stat_path(pid), &mut buf, 4096)
            .is_err());
        assert_eq!(kept.held(), 0);
        assert!(!kept.kept.contains_key(&pid));
    }

    #[test]
    fn nothing_is_kept_beyond_the_budget_or_without_room() {
        let me = std::process::id();
        let mut none = KeptFiles::none();
        let mut buf = Vec::new();
        none.read(me, Kind::Stat, &stat_path(me), &mut buf, 4096)
            .expect("read without keeping");
        assert!(!buf.is_empty());
        assert_eq!(none.held(), 0);

        let mut kept = KeptFiles::with_room_above_the_limit();
        kept.budget = kept.budget.min(1);
        kept.read(me, Kind::Stat, &stat_path(me), &mut buf, 4096)
            .expect("stat");
        kept.read(me, Kind::Io, Path::new("/proc/self/io"), &mut buf, 1024)
            .expect("io");
        assert!(kept.held() <= 1);
        kept.retain_sorted(&[]);
        assert_eq!(kept.held(), 0);
    }
}

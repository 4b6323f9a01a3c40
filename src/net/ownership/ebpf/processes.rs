//! The processes the kernel recorded using sockets, with what is known of them, for the sampler
//! to place the traffic of one it never saw alive (a process that connected, sent and exited
//! between two samples). Written by the resolver thread as records arrive, read by the sampler.
//!
//! A record carries the comm and uid. What rules may also ask — command line, executable,
//! cgroup — is read from /proc when the first record of a process arrives, if it still lives
//! (the start time is checked, so a reused pid is never read for it): records come within
//! milliseconds of the socket's use, while most short-lived processes are still there.
//!
//! Bounded: at most [`MAX_PROCESSES`], the oldest forgotten first (~300 bytes each with a
//! command line: ~5 MiB at the worst).

use crate::net::types::{Owner, RecordedProcess};
use crate::proc::{cmdline, pid_cgroup, pid_stat, ProcRoot};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};

use super::record::KernelProcess;

/// Processes kept at most.
pub const MAX_PROCESSES: usize = 16_384;

#[derive(Default)]
pub struct RecordedProcesses {
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    by_owner: HashMap<Owner, RecordedProcess>,
    /// Insertion order, for forgetting the oldest.
    order: VecDeque<Owner>,
}

impl RecordedProcesses {
    /// Whether `owner` is kept already as `comm` (its /proc facts need not be read again). A
    /// process kept under another comm exec'd since: what it is now is read and kept again.
    pub fn knows(&self, owner: &Owner, comm: &str) -> bool {
        self.inner
            .lock()
            .by_owner
            .get(owner)
            .is_some_and(|kept| kept.comm == comm)
    }

    /// Keeps `process` (in place of what was kept of it before it exec'd), the oldest kept
    /// making room.
    pub fn keep(&self, process: RecordedProcess) {
        let mut kept = self.inner.lock();
        if let Some(before) = kept.by_owner.get_mut(&process.owner) {
            *before = process;
            return;
        }
        while kept.by_owner.len() >= MAX_PROCESSES {
            let Some(oldest) = kept.order.pop_front() else {
                break;
            };
            kept.by_owner.remove(&oldest);
        }
        kept.order.push_back(process.owner);
        kept.by_owner.insert(process.owner, process);
        if kept.order.len() < kept.order.capacity() / 4 {
            kept.order.shrink_to_fit();
        }
    }

    /// What is known of `owner`, if the kernel recorded it.
    pub fn get(&self, owner: &Owner) -> Option<RecordedProcess> {
        self.inner.lock().by_owner.get(owner).cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().by_owner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The recorded process, with what /proc still says of it (nothing if it is gone, or if its
/// pid is another process's now).
pub fn with_proc_facts(process: &KernelProcess, proc: &mut ProcRoot) -> RecordedProcess {
    let pid = process.owner.pid;
    // A zombie has no command line or executable left to read.
    let alive = |proc: &mut ProcRoot| {
        proc.read(Some(pid), "stat", 4096)
            .ok()
            .and_then(pid_stat::parse)
            .is_some_and(|stat| stat.starttime == process.owner.starttime && stat.state != b'Z')
    };
    let mut recorded = RecordedProcess {
        owner: process.owner,
        comm: process.comm.clone(),
        uid: process.uid,
        cmdline: None,
        exe: None,
        cgroup: None,
    };
    if !alive(proc) {
        return recorded;
    }
    recorded.cmdline = proc
        .read(Some(pid), "cmdline", cmdline::READ_LIMIT)
        .ok()
        .map(cmdline::join);
    recorded.cgroup = proc
        .read(Some(pid), "cgroup", pid_cgroup::READ_LIMIT)
        .ok()
        .and_then(pid_cgroup::parse)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    recorded.exe = std::fs::read_link(proc.path(Some(pid), "exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    // Read after the facts: a pid reused meanwhile shows as another start time, and then the
    // facts may be the newcomer's.
    if !alive(proc) {
        recorded.cmdline = None;
        recorded.exe = None;
        recorded.cgroup = None;
    }
    recorded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, comm: &str) -> RecordedProcess {
        RecordedProcess {
            owner: Owner { pid, starttime: 7 },
            comm: comm.to_string(),
            uid: 0,
            cmdline: None,
            exe: None,
            cgroup: None,
        }
    }

    #[test]
    fn a_process_that_exec_d_is_kept_as_what_it_became() {
        let kept = RecordedProcesses::default();
        let forked = process(10, "sh");
        kept.keep(forked.clone());
        assert!(kept.knows(&forked.owner, "sh"));
        assert!(!kept.knows(&forked.owner, "curl"), "it exec'd: read again");
        kept.keep(process(10, "curl"));
        assert_eq!(kept.len(), 1);
        assert_eq!(kept.get(&forked.owner).map(|p| p.comm), Some("curl".into()));
    }

    #[test]
    fn the_oldest_make_room() {
        let kept = RecordedProcesses::default();
        for pid in 0..MAX_PROCESSES as u32 + 10 {
            kept.keep(process(pid, "x"));
        }
        assert_eq!(kept.len(), MAX_PROCESSES);
        assert!(!kept.knows(&process(0, "x").owner, "x"));
        assert!(kept.knows(&process(MAX_PROCESSES as u32 + 9, "x").owner, "x"));
    }
}

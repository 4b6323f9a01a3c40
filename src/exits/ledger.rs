//! Exit records summed into processes: the exit thread adds every thread's record as it comes,
//! and hands over each process once it has ended. Pure: no kernel, no clock.
//!
//! A process's numbers are the sum of its threads' final records. Threads other than the leader
//! are freed as they exit; the group leader is freed last, once every thread is gone and its
//! parent reaped it (a leader that exits early waits as a zombie for the others): so the
//! leader's record closes the process. The key is the sampler's: the leader's pid and its start
//! time (boot-based, in the clock ticks /proc/PID/stat counts: `USER_HZ`, 100 a second).
//!
//! Bounded: at most [`MAX_OPEN`] processes with threads gone and leader still alive (their
//! threads' sums), and [`MAX_ENDED`] ended processes waiting for the sampler; beyond, a record is
//! counted in `dropped` and left out, never queued.

use super::ebpf::record::ExitRecord;
use super::Io;
use std::collections::HashMap;

/// Processes whose threads exited while the leader lives, kept at most.
pub const MAX_OPEN: usize = 16_384;
/// Ended processes waiting for the sampler at most: 10 s of 6,500 exits a second.
pub const MAX_ENDED: usize = 65_536;
/// `USER_HZ`: the ticks of /proc/PID/stat's start time.
const TICKS_PER_SECOND: u64 = 100;

/// The sampler's key of a process: its pid and start time in ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessId {
    pub pid: u32,
    pub starttime: u64,
}

/// One ended process: its threads' records summed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ended {
    pub pid: u32,
    pub starttime: u64,
    pub ppid: u32,
    pub uid: u32,
    /// The leader's comm.
    pub comm: Vec<u8>,
    pub threads: u32,
    pub user_us: u64,
    pub system_us: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// Its threads' own I/O: what /proc/PID/io said at the end without its reaped children.
    pub io: Io,
    pub cancelled_write_bytes: u64,
    /// What the kernel added to the parent's I/O when the parent reaped it (its own and its
    /// reaped children's); `None` when no parent reaped it.
    pub into_parent: Option<Io>,
    pub cpu_delay_ns: u64,
    pub blkio_delay_ns: u64,
    pub swapin_delay_ns: u64,
    pub reclaim_delay_ns: u64,
}

impl Ended {
    pub fn id(&self) -> ProcessId {
        ProcessId {
            pid: self.pid,
            starttime: self.starttime,
        }
    }

    fn add(&mut self, record: &ExitRecord) {
        let (user, system) = record.cpu_us();
        let sum = |total: &mut u64, v: u64| *total = total.saturating_add(v);
        self.threads = self.threads.saturating_add(1);
        sum(&mut self.user_us, user);
        sum(&mut self.system_us, system);
        sum(&mut self.minor_faults, record.minor_faults);
        sum(&mut self.major_faults, record.major_faults);
        sum(&mut self.voluntary_switches, record.voluntary_switches);
        sum(&mut self.involuntary_switches, record.involuntary_switches);
        self.io = self.io.plus(&record.io);
        sum(
            &mut self.cancelled_write_bytes,
            record.cancelled_write_bytes,
        );
        sum(&mut self.cpu_delay_ns, record.cpu_delay_ns);
        sum(&mut self.blkio_delay_ns, record.blkio_delay_ns);
        sum(&mut self.swapin_delay_ns, record.swapin_delay_ns);
        sum(&mut self.reclaim_delay_ns, record.reclaim_delay_ns);
    }
}

/// The processes being summed, and those ended.
#[derive(Default)]
pub struct Ledger {
    open: HashMap<ProcessId, Ended>,
    ended: Vec<Ended>,
    /// Records left out: no room.
    pub dropped: u64,
}

impl Ledger {
    /// Adds one thread's final record.
    pub fn add(&mut self, record: &ExitRecord) {
        let id = ProcessId {
            pid: record.tgid,
            starttime: record.start_boottime_ns / (1_000_000_000 / TICKS_PER_SECOND),
        };
        let leader = record.ends_process();
        let mut process = match self.open.remove(&id) {
            Some(process) => process,
            None if !leader && self.open.len() >= MAX_OPEN => {
                self.dropped += 1;
                return;
            }
            None => Ended {
                pid: id.pid,
                starttime: id.starttime,
                ..Ended::default()
            },
        };
        process.add(record);
        if !leader {
            self.open.insert(id, process);
            return;
        }
        process.ppid = record.ppid;
        process.uid = record.uid;
        process.into_parent = (!record.autoreaped).then(|| record.io.plus(&record.signal_io));
        process.comm.clone_from(&record.comm);
        if self.ended.len() >= MAX_ENDED {
            self.dropped += 1;
            return;
        }
        self.ended.push(process);
    }

    /// The processes ended since the last call, in the order they ended.
    pub fn take_ended(&mut self) -> Vec<Ended> {
        std::mem::take(&mut self.ended)
    }

    /// Processes with threads summed whose leader has not ended.
    pub fn open(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pid: u32, tgid: u32, runtime_ms: u64, wchar: u64) -> ExitRecord {
        ExitRecord {
            pid,
            tgid,
            ppid: 1,
            uid: 1000,
            start_boottime_ns: 12_345_678_901,
            runtime_ns: runtime_ms * 1_000_000,
            utime_ns: 3,
            stime_ns: 1,
            io: Io {
                write_chars: wchar,
                ..Io::default()
            },
            comm: if pid == tgid {
                b"leader".to_vec()
            } else {
                b"worker".to_vec()
            },
            ..ExitRecord::default()
        }
    }

    #[test]
    fn a_single_threaded_process_ends_with_its_record() {
        let mut ledger = Ledger::default();
        ledger.add(&record(10, 10, 8, 100));
        let ended = ledger.take_ended();
        assert_eq!(ended.len(), 1);
        let p = &ended[0];
        assert_eq!(
            p.id(),
            ProcessId {
                pid: 10,
                starttime: 1234
            }
        );
        assert_eq!((p.user_us, p.system_us), (6_000, 2_000));
        assert_eq!(p.io.write_chars, 100);
        assert_eq!(p.comm, b"leader");
        assert_eq!(p.threads, 1);
        assert!(ledger.take_ended().is_empty(), "handed over once");
    }

    #[test]
    fn threads_are_summed_once_and_the_leader_closes_the_process() {
        let mut ledger = Ledger::default();
        ledger.add(&record(11, 10, 4, 1));
        ledger.add(&record(12, 10, 4, 2));
        assert!(ledger.take_ended().is_empty(), "the leader still runs");
        assert_eq!(ledger.open(), 1);
        ledger.add(&record(10, 10, 4, 4));
        let ended = ledger.take_ended();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].threads, 3);
        assert_eq!(ended[0].user_us + ended[0].system_us, 12_000);
        assert_eq!(ended[0].io.write_chars, 7);
        assert_eq!(
            ended[0].comm, b"leader",
            "the process is named by its leader"
        );
        assert_eq!(ledger.open(), 0);
    }

    /// The kernel adds to the reaping parent's I/O the leader's own and its process's shared
    /// I/O (exited threads and reaped children): what the parent must not be credited twice.
    #[test]
    fn what_went_into_the_parent_is_the_leader_s_and_its_process_s_shared_io() {
        let mut ledger = Ledger::default();
        ledger.add(&record(11, 10, 1, 2));
        let mut leader = record(10, 10, 1, 4);
        leader.signal_io.write_chars = 2 + 1000;
        ledger.add(&leader);
        let mut orphan = record(20, 20, 1, 8);
        orphan.autoreaped = true;
        ledger.add(&orphan);
        let ended = ledger.take_ended();
        assert_eq!(ended[0].io.write_chars, 6, "its threads' own");
        assert_eq!(ended[0].into_parent.map(|io| io.write_chars), Some(1006));
        assert_eq!(ended[1].into_parent, None, "nobody waited for it");
    }

    /// A thread that exec's takes the leader's place; the old leader is freed with the
    /// process's pid while the process goes on: summed as a thread, not ending it.
    #[test]
    fn a_leader_replaced_by_an_exec_ing_thread_does_not_end_the_process() {
        let mut ledger = Ledger::default();
        let mut old_leader = record(10, 10, 4, 1);
        old_leader.replaced_leader = true;
        ledger.add(&old_leader);
        assert!(ledger.take_ended().is_empty());
        ledger.add(&record(10, 10, 4, 2));
        let ended = ledger.take_ended();
        assert_eq!((ended.len(), ended[0].threads), (1, 2));
        assert_eq!(ended[0].io.write_chars, 3);
    }

    #[test]
    fn a_reused_pid_is_another_process() {
        let mut ledger = Ledger::default();
        ledger.add(&record(11, 10, 4, 1));
        let mut later = record(10, 10, 4, 4);
        later.start_boottime_ns += 5_000_000_000;
        ledger.add(&later);
        let ended = ledger.take_ended();
        assert_eq!(
            ended[0].threads, 1,
            "not summed with another start time's thread"
        );
        assert_eq!(ledger.open(), 1);
    }

    #[test]
    fn bounded() {
        let mut ledger = Ledger::default();
        for tgid in 0..MAX_OPEN as u32 + 10 {
            ledger.add(&record(tgid + 1_000_000, tgid, 1, 0));
        }
        assert_eq!(ledger.open(), MAX_OPEN);
        assert_eq!(ledger.dropped, 10);
        for pid in 0..MAX_ENDED as u32 + 5 {
            ledger.add(&record(pid + 2_000_000, pid + 2_000_000, 1, 0));
        }
        assert_eq!(ledger.take_ended().len(), MAX_ENDED);
        assert_eq!(ledger.dropped, 15);
    }
}

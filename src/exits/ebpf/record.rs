//! One record of the exit program (`bpf/exit_record.h`): a freed task's final accounting.
//! Parsed by offset from the bytes the ring buffer hands over; a record of another size (a
//! program built from another header) is refused, never read in part.

use crate::exits::Io;

/// `EXIT_RECORD_SIZE`.
pub const SIZE: usize = 240;
/// `EXIT_AUTOREAPED`, `EXIT_REPLACED_LEADER`.
const AUTOREAPED: u32 = 1;
const REPLACED_LEADER: u32 = 2;

/// A task's (thread's) final numbers, as the kernel kept them. Times in ns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExitRecord {
    /// The process's (group leader's) start, ns since boot: with `tgid`, the sampler's key.
    pub start_boottime_ns: u64,
    /// CPU time the scheduler measured, final (teardown included).
    pub runtime_ns: u64,
    /// User and system time as ticks sampled them: only their ratio is used.
    pub utime_ns: u64,
    pub stime_ns: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// The thread's own I/O.
    pub io: Io,
    pub cancelled_write_bytes: u64,
    /// Waits for a CPU (always kept), for block I/O, swap-in and memory reclaim (0 unless the
    /// kernel's delay accounting is on).
    pub cpu_delay_ns: u64,
    pub blkio_delay_ns: u64,
    pub swapin_delay_ns: u64,
    pub reclaim_delay_ns: u64,
    /// A group leader's only (zeros for other threads): its process's shared I/O — exited
    /// threads' and reaped children's — which the kernel adds, with the leader's own, to the
    /// parent that reaps it.
    pub signal_io: Io,
    /// The thread, its process, the process's parent when it was freed (who reaped it), the
    /// real uid.
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// No parent waited for it (the parent ignores SIGCHLD): its I/O went to no parent.
    pub autoreaped: bool,
    /// A group leader another thread replaced by exec'ing (it has the process's pid, but the
    /// process goes on): a thread like any other.
    pub replaced_leader: bool,
    /// The thread's comm, up to its first NUL.
    pub comm: Vec<u8>,
}

impl ExitRecord {
    /// Parses one record; `None` unless `bytes` is exactly one.
    pub fn parse(bytes: &[u8]) -> Option<ExitRecord> {
        if bytes.len() != SIZE {
            return None;
        }
        let u64_at = |offset: usize| -> Option<u64> {
            Some(u64::from_ne_bytes(
                bytes.get(offset..offset + 8)?.try_into().ok()?,
            ))
        };
        let u32_at = |offset: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(
                bytes.get(offset..offset + 4)?.try_into().ok()?,
            ))
        };
        let io_at = |offset: usize| -> Option<Io> {
            Some(Io {
                read_chars: u64_at(offset)?,
                write_chars: u64_at(offset + 8)?,
                read_syscalls: u64_at(offset + 16)?,
                write_syscalls: u64_at(offset + 24)?,
                read_bytes: u64_at(offset + 32)?,
                write_bytes: u64_at(offset + 40)?,
            })
        };
        let comm = bytes.get(224..240)?;
        Some(ExitRecord {
            start_boottime_ns: u64_at(0)?,
            runtime_ns: u64_at(8)?,
            utime_ns: u64_at(16)?,
            stime_ns: u64_at(24)?,
            minor_faults: u64_at(32)?,
            major_faults: u64_at(40)?,
            voluntary_switches: u64_at(48)?,
            involuntary_switches: u64_at(56)?,
            io: io_at(64)?,
            cancelled_write_bytes: u64_at(112)?,
            cpu_delay_ns: u64_at(120)?,
            blkio_delay_ns: u64_at(128)?,
            swapin_delay_ns: u64_at(136)?,
            reclaim_delay_ns: u64_at(144)?,
            signal_io: io_at(152)?,
            pid: u32_at(200)?,
            tgid: u32_at(204)?,
            ppid: u32_at(208)?,
            uid: u32_at(212)?,
            autoreaped: u32_at(216)? & AUTOREAPED != 0,
            replaced_leader: u32_at(216)? & REPLACED_LEADER != 0,
            comm: comm.split(|&b| b == 0).next().unwrap_or(&[]).to_vec(),
        })
    }

    /// Whether this record ends its process: its group leader's, freed last.
    pub fn ends_process(&self) -> bool {
        self.pid == self.tgid && !self.replaced_leader
    }

    /// User and system CPU time, µs, as getrusage and /proc report them: the scheduler's total
    /// split by the ticks' ratio (all user when no tick landed).
    pub fn cpu_us(&self) -> (u64, u64) {
        crate::exits::split_cpu(self.runtime_ns / 1_000, self.utime_ns, self.stime_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_at_its_offset() {
        let mut bytes = vec![0u8; SIZE];
        for (i, chunk) in bytes[..200].chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(i as u64 + 1).to_ne_bytes());
        }
        for (i, chunk) in bytes[200..216].chunks_mut(4).enumerate() {
            chunk.copy_from_slice(&(i as u32 + 100).to_ne_bytes());
        }
        bytes[216..220].copy_from_slice(&(AUTOREAPED | REPLACED_LEADER).to_ne_bytes());
        bytes[224..228].copy_from_slice(b"make");
        let r = ExitRecord::parse(&bytes).unwrap();
        assert_eq!(r.start_boottime_ns, 1);
        assert_eq!(r.runtime_ns, 2);
        assert_eq!((r.utime_ns, r.stime_ns), (3, 4));
        assert_eq!((r.minor_faults, r.major_faults), (5, 6));
        assert_eq!((r.voluntary_switches, r.involuntary_switches), (7, 8));
        let io = |first: u64| Io {
            read_chars: first,
            write_chars: first + 1,
            read_syscalls: first + 2,
            write_syscalls: first + 3,
            read_bytes: first + 4,
            write_bytes: first + 5,
        };
        assert_eq!(r.io, io(9));
        assert_eq!(r.cancelled_write_bytes, 15);
        assert_eq!(r.cpu_delay_ns, 16);
        assert_eq!(
            (r.blkio_delay_ns, r.swapin_delay_ns, r.reclaim_delay_ns),
            (17, 18, 19)
        );
        assert_eq!(r.signal_io, io(20));
        assert_eq!((r.pid, r.tgid, r.ppid, r.uid), (100, 101, 102, 103));
        assert!(r.autoreaped && r.replaced_leader);
        assert!(!r.ends_process());
        assert_eq!(r.comm, b"make");
    }

    #[test]
    fn another_size_is_refused() {
        assert!(ExitRecord::parse(&[0; SIZE - 1]).is_none());
        assert!(ExitRecord::parse(&[0; SIZE + 8]).is_none());
        assert!(ExitRecord::parse(&[]).is_none());
    }

    #[test]
    fn cpu_time_is_split_by_the_ticks() {
        let r = ExitRecord {
            runtime_ns: 10_000_000,
            utime_ns: 12_000_000,
            stime_ns: 4_000_000,
            ..ExitRecord::default()
        };
        assert_eq!(r.cpu_us(), (7_500, 2_500));
        let idle = ExitRecord {
            runtime_ns: 900_000,
            ..ExitRecord::default()
        };
        assert_eq!(idle.cpu_us(), (900, 0));
    }
}

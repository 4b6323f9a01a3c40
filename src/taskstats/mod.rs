//! The kernel's per-task accounting, `struct taskstats` (include/uapi/linux/taskstats.h), and
//! the `TASKSTATS` generic-netlink family that carries it. This module owns the record's parsing
//! and the family's commands and attributes; its parts:
//! - here: `struct taskstats` and an exit notification's attributes, parsed by length and
//!   version (pure: no socket, no thread);
//! - [`family`]: the family's id, asked of the generic-netlink controller by name, and the
//!   generic-netlink header: the one place both users below resolve and frame with;
//! - [`query`]: [`TaskstatsQuery`], one live process's record on request (`TASKSTATS_CMD_GET`
//!   with a tgid), for delay accounting; and whether the kernel's delay accounting is on.
//!
//! The exit listener, which registers for every CPU's exits and reads their records, is
//! [`crate::exits::source`]'s; the netlink plumbing is [`crate::net::netlink::socket`]'s.
//!
//! The struct grows at its end with every version (version 13 is 416 bytes, this machine's
//! 6.18 kernel sends 560), and its fields never move: so each field is read at its fixed offset
//! when the record is long enough to hold it, and a field newer than the kernel is `None`.
//! Nothing is read by one fixed size (collectd 5.12's processes plugin wants exactly 416 bytes
//! and fails on newer kernels with "Protocol error"). A record shorter than the fields every
//! version has had (through the I/O counters, 272 bytes) is refused.
//!
//! Offsets, in bytes, with the struct's natural alignment (u64 fields on 8):
//! version u16 @0, ac_exitcode u32 @4, ac_flag u8 @8, ac_nice u8 @9, cpu_count @16,
//! cpu_delay_total @24, blkio_count @32, blkio_delay_total @40, swapin_count @48,
//! swapin_delay_total @56, cpu_run_real_total @64, cpu_run_virtual_total @72, `ac_comm[32]` @80,
//! ac_sched u8 @112, ac_uid u32 @120, ac_gid @124, ac_pid @128, ac_ppid @132, ac_btime u32 @136,
//! ac_etime @144, ac_utime @152, ac_stime @160, ac_minflt @168, ac_majflt @176, coremem @184,
//! virtmem @192, hiwater_rss @200, hiwater_vm @208, read_char @216, write_char @224,
//! read_syscalls @232, write_syscalls @240, read_bytes @248, write_bytes @256,
//! cancelled_write_bytes @264, nvcsw @272, nivcsw @280, ac_utimescaled @288,
//! ac_stimescaled @296, cpu_scaled_run_real_total @304, freepages_count @312,
//! freepages_delay_total @320, thrashing_count @328, thrashing_delay_total @336,
//! ac_btime64 @344, compact_count @352, compact_delay_total @360, ac_tgid u32 @368,
//! ac_tgetime @376, ac_exe_dev @384, ac_exe_inode @392 (version 12 ends at 400).
//!
//! Exit notifications (kernel/taskstats.c, `taskstats_exit`): every exiting *thread* sends one
//! message holding `TASKSTATS_TYPE_AGGR_PID` (its pid, and its own record); when the last thread
//! of a multi-threaded process exits, the same message also holds `TASKSTATS_TYPE_AGGR_TGID`,
//! whose record carries only the group's delay accounting. So a process's CPU time and I/O at
//! its end is the sum of its threads' records.

pub mod family;
pub mod query;

pub use query::{delay_accounting_enabled, TaskstatsQuery};

use crate::net::netlink::socket;
use std::io;

/// The family's name, by which the generic-netlink controller gives its id.
pub const FAMILY_NAME: &str = "TASKSTATS";

/// Taskstats commands and attributes (include/uapi/linux/taskstats.h).
pub const TASKSTATS_CMD_GET: u8 = 1;
pub const TASKSTATS_CMD_NEW: u8 = 2;
pub const TASKSTATS_CMD_ATTR_PID: u16 = 1;
pub const TASKSTATS_CMD_ATTR_TGID: u16 = 2;
pub const TASKSTATS_CMD_ATTR_REGISTER_CPUMASK: u16 = 3;
pub const TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK: u16 = 4;
const TASKSTATS_TYPE_PID: u16 = 1;
const TASKSTATS_TYPE_TGID: u16 = 2;
const TASKSTATS_TYPE_STATS: u16 = 3;
const TASKSTATS_TYPE_AGGR_PID: u16 = 4;
const TASKSTATS_TYPE_AGGR_TGID: u16 = 5;

/// The shortest record accepted: every field through `cancelled_write_bytes`.
pub const MIN_LEN: usize = 272;
/// `TS_COMM_LEN`.
const COMM_LEN: usize = 32;
/// `ac_flag` bits (include/uapi/linux/acct.h): the task forked but never called exec.
pub const AFORK: u8 = 0x01;

/// One task's record, as the kernel filled it. Times are in µs, delays in ns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Taskstats {
    pub version: u16,
    pub exit_code: u32,
    pub flags: u8,
    /// `ac_comm`, up to its first NUL.
    pub comm: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    /// The task (thread) id, in the initial pid namespace for exit notifications.
    pub pid: u32,
    pub ppid: u32,
    /// Start, seconds since the epoch (`ac_btime`).
    pub start_secs: u32,
    /// Elapsed time since the start, µs (`ac_etime`).
    pub elapsed_us: u64,
    /// User and system time as the tick sampled them (`ac_utime`, `ac_stime`): a process of
    /// 10 ms gets 8 or 12 at 250 Hz. Their ratio splits [`Taskstats::runtime_ns`].
    pub user_us: u64,
    pub system_us: u64,
    /// CPU time the scheduler measured (`cpu_run_virtual_total`, the task's
    /// `sum_exec_runtime`), ns: filled whether delay accounting is on or not. What getrusage
    /// and /proc report is this, split between user and system by the ticks' ratio.
    pub runtime_ns: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub read_chars: u64,
    pub write_chars: u64,
    pub read_syscalls: u64,
    pub write_syscalls: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub cancelled_write_bytes: u64,
    /// Delay accounting (zeros unless the kernel's `task_delayacct` is on): waits for a CPU,
    /// for block I/O, for swap-in, ns; and their counts.
    pub cpu_delay_count: u64,
    pub cpu_delay_ns: u64,
    pub blkio_delay_count: u64,
    pub blkio_delay_ns: u64,
    pub swapin_delay_count: u64,
    pub swapin_delay_ns: u64,
    /// Fields newer than the first versions: `None` when the kernel's record is too short.
    pub voluntary_switches: Option<u64>,
    pub involuntary_switches: Option<u64>,
    /// Memory reclaim waits (`freepages_*`), ns.
    pub reclaim_delay_count: Option<u64>,
    pub reclaim_delay_ns: Option<u64>,
    /// The thread group (process) id (`ac_tgid`, version 12).
    pub tgid: Option<u32>,
}

fn u64_at(record: &[u8], offset: usize) -> Option<u64> {
    let bytes = record.get(offset..offset + 8)?;
    Some(u64::from_ne_bytes(bytes.try_into().ok()?))
}

fn u32_at(record: &[u8], offset: usize) -> Option<u32> {
    let bytes = record.get(offset..offset + 4)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

impl Taskstats {
    /// Parses one record of any version: the fields its length holds.
    pub fn parse(record: &[u8]) -> io::Result<Taskstats> {
        if record.len() < MIN_LEN {
            return Err(malformed(&format!(
                "a taskstats record of {} bytes (at least {MIN_LEN} expected)",
                record.len()
            )));
        }
        let version = record
            .get(..2)
            .map_or(0, |v| u16::from_ne_bytes([v[0], v[1]]));
        if version == 0 {
            return Err(malformed("a taskstats record of version 0"));
        }
        let comm = record.get(80..80 + COMM_LEN).unwrap_or(&[]);
        let comm = comm.split(|&b| b == 0).next().unwrap_or(&[]).to_vec();
        // Every field below is within MIN_LEN: present in every record accepted.
        let at = |offset| u64_at(record, offset).unwrap_or(0);
        let at32 = |offset| u32_at(record, offset).unwrap_or(0);
        Ok(Taskstats {
            version,
            exit_code: at32(4),
            flags: record.get(8).copied().unwrap_or(0),
            comm,
            uid: at32(120),
            gid: at32(124),
            pid: at32(128),
            ppid: at32(132),
            start_secs: at32(136),
            elapsed_us: at(144),
            user_us: at(152),
            system_us: at(160),
            runtime_ns: at(72),
            minor_faults: at(168),
            major_faults: at(176),
            read_chars: at(216),
            write_chars: at(224),
            read_syscalls: at(232),
            write_syscalls: at(240),
            read_bytes: at(248),
            write_bytes: at(256),
            cancelled_write_bytes: at(264),
            cpu_delay_count: at(16),
            cpu_delay_ns: at(24),
            blkio_delay_count: at(32),
            blkio_delay_ns: at(40),
            swapin_delay_count: at(48),
            swapin_delay_ns: at(56),
            voluntary_switches: u64_at(record, 272),
            involuntary_switches: u64_at(record, 280),
            reclaim_delay_count: u64_at(record, 312),
            reclaim_delay_ns: u64_at(record, 320),
            tgid: u32_at(record, 368),
        })
    }

    /// User and system CPU time, µs, as the kernel reports them to getrusage and /proc
    /// (`cputime_adjust`): the scheduler's precise total split by the ticks' ratio (all user
    /// when no tick landed).
    pub fn cpu_us(&self) -> (u64, u64) {
        crate::exits::split_cpu(self.runtime_ns / 1_000, self.user_us, self.system_us)
    }

    /// The task forked and never called exec: a copy of its parent (a shell's subshell).
    pub fn never_exec(&self) -> bool {
        self.flags & AFORK != 0
    }
}

/// What one exit notification says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exit {
    /// The exiting thread's own record (`TASKSTATS_TYPE_AGGR_PID`).
    pub thread: Option<Taskstats>,
    /// The last thread of a multi-threaded process: the process's id (delay accounting only
    /// in its record, which is not kept).
    pub process_ended: Option<u32>,
}

/// Parses the attributes of one `TASKSTATS_CMD_NEW` message (what follows its generic-netlink
/// header): the thread's record, and whether the process ended with it. Unknown attributes
/// (padding, newer kernels' additions) are skipped.
pub fn parse_exit(attributes: &[u8]) -> io::Result<Exit> {
    let mut exit = Exit::default();
    for attribute in socket::attributes(attributes) {
        let (kind, value) = attribute?;
        match kind {
            TASKSTATS_TYPE_AGGR_PID => {
                for inner in socket::attributes(value) {
                    let (inner, data) = inner?;
                    if inner == TASKSTATS_TYPE_STATS {
                        exit.thread = Some(Taskstats::parse(data)?);
                    }
                }
            }
            TASKSTATS_TYPE_AGGR_TGID => {
                for inner in socket::attributes(value) {
                    let (inner, data) = inner?;
                    if inner == TASKSTATS_TYPE_TGID {
                        exit.process_ended = u32_at(data, 0);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(exit)
}

/// Parses the attributes of the `TASKSTATS_CMD_NEW` answering a `TASKSTATS_CMD_GET` for
/// `tgid` (what follows its generic-netlink header): the `TASKSTATS_TYPE_AGGR_TGID` nest, whose
/// id (`TASKSTATS_TYPE_TGID`, or `TASKSTATS_TYPE_PID`) must be `tgid` and whose
/// `TASKSTATS_TYPE_STATS` is the process's record. Unknown attributes (padding, newer kernels'
/// additions) are skipped; an answer without a record, or for another id, is malformed.
pub fn parse_process(attributes: &[u8], tgid: u32) -> io::Result<Taskstats> {
    let mut id = None;
    let mut stats = None;
    for attribute in socket::attributes(attributes) {
        let (kind, value) = attribute?;
        if kind != TASKSTATS_TYPE_AGGR_TGID {
            continue;
        }
        for inner in socket::attributes(value) {
            let (inner, data) = inner?;
            match inner {
                TASKSTATS_TYPE_TGID | TASKSTATS_TYPE_PID => id = u32_at(data, 0),
                TASKSTATS_TYPE_STATS => stats = Some(Taskstats::parse(data)?),
                _ => {}
            }
        }
    }
    match (id, stats) {
        (Some(id), Some(stats)) if id == tgid => Ok(stats),
        (Some(id), Some(_)) => Err(malformed(&format!(
            "taskstats answer for {id}, {tgid} asked"
        ))),
        _ => Err(malformed(
            "taskstats answer without a process id and record",
        )),
    }
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed {what}"))
}

#[cfg(test)]
mod tests;

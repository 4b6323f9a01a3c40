//! Exit records: what each process used, told by the kernel when it ends (a kernel event
//! source, see DESIGN.md). Polling /proc loses whatever a process used after its last sample,
//! and every process that lives between two samples.
//!
//! - [`source`]: the generic-netlink listener registered for every CPU's exits (the records
//!   it reads are parsed by [`crate::taskstats`]);
//! - [`ebpf`]: the program on `sched:sched_process_free`, and its records;
//! - [`ledger`]: threads' records summed into processes, handed over once each has ended;
//! - [`watch`]: the exit thread that reads the records into the ledger for the sampler.
//!
//! Two kernel sources exist, and they differ in what they see. taskstats needs only
//! CAP_NET_ADMIN and no BPF, but writes its record in `do_exit` before the process tears down
//! its memory and files and switches out for the last time: measured, 100 short shells (a loop,
//! then `head -c 1M`) had 81.7% of the CPU time their parent's rusage gave them in their
//! records. An eBPF program on `sched:sched_process_free` runs once the task is reaped and
//! gone, when its counters are final: 100.01% in the same test. So such a program is to be the
//! source where eBPF loads, and taskstats the fallback where it does not.

pub mod ebpf;
pub mod ledger;
pub mod source;
pub mod watch;

/// Loads the exit program, saying once in the log which source of exit records is in use, or
/// why there is none (one warning: the plugin then counts what /proc shows, as before).
pub fn load() -> Option<ebpf::ExitRecords> {
    match ebpf::ExitRecords::load() {
        Ok(records) => {
            log::info!("exit records: eBPF (sched_process_free)");
            Some(records)
        }
        Err(e) => {
            log::warn!(
                "exit records: the eBPF exit program did not load: {e}; processes that live \
                 between two samples, and what each process uses after its last sample, are \
                 not counted"
            );
            None
        }
    }
}

/// CPU time as getrusage and /proc give it (`cputime_adjust`): the scheduler's precise total,
/// µs, split between user and system by the ratio of the tick-sampled times (all user when no
/// tick landed).
pub fn split_cpu(total_us: u64, user_ticks: u64, system_ticks: u64) -> (u64, u64) {
    let ticks = u128::from(user_ticks) + u128::from(system_ticks);
    if ticks == 0 {
        return (total_us, 0);
    }
    let user =
        u64::try_from(u128::from(total_us) * u128::from(user_ticks) / ticks).unwrap_or(total_us);
    (user, total_us - user.min(total_us))
}

/// The I/O counters of /proc/PID/io, as the kernel keeps them per task (`task_io_accounting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Io {
    pub read_chars: u64,
    pub write_chars: u64,
    pub read_syscalls: u64,
    pub write_syscalls: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

impl Io {
    /// `self + other`, saturating.
    pub fn plus(&self, other: &Io) -> Io {
        Io {
            read_chars: self.read_chars.saturating_add(other.read_chars),
            write_chars: self.write_chars.saturating_add(other.write_chars),
            read_syscalls: self.read_syscalls.saturating_add(other.read_syscalls),
            write_syscalls: self.write_syscalls.saturating_add(other.write_syscalls),
            read_bytes: self.read_bytes.saturating_add(other.read_bytes),
            write_bytes: self.write_bytes.saturating_add(other.write_bytes),
        }
    }
}

//! Settling ended processes from their exit records (`crate::exits`), once a cycle, between
//! the walk of /proc and the end of the cycle's accounting.
//!
//! - A process the sampler saw gets what it used after its last sample, in the instance it was
//!   last sampled in ([`Accounting::settle`]).
//! - A process it never saw (it lived between two samples) is placed by the rules from what
//!   its record carries — comm, real uid (and the user name), pid — and credited there without
//!   a process count. A rule or template that needs its command line, executable or cgroup
//!   cannot be decided: the record has none, and the process is gone. Such a process is
//!   counted (`exited_undecidable`, its CPU time in `exited_undecidable_cpu`), never guessed
//!   into an instance.
//! - What the kernel added to the reaping parent's I/O is taken back out of the parent
//!   ([`Accounting::reaped_into_parents`]): each child's I/O is counted once, for the child.

use super::accounting::{self, Accounting, Counters, ProcessKey, Settled};
use super::recorded::{self, Placement};
use crate::config::Config;
use crate::exits::ledger::Ended;
use crate::exits::Io;
use crate::net::types::{Owner, RecordedProcess};
use crate::users::UserNames;

/// What settling counted since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettleCounts {
    /// Ended processes the sampler had seen.
    pub seen: u64,
    /// Processes it never saw, placed in an instance by the rules.
    pub placed: u64,
    /// Processes it never saw whose instance needed a fact the record lacks, and their CPU
    /// time (µs).
    pub undecidable: u64,
    pub undecidable_cpu_us: u64,
}

/// Counts `ended` into `accounting`.
pub fn settle(
    ended: Vec<Ended>,
    accounting: &mut Accounting,
    config: &Config,
    users: &mut UserNames,
    counts: &mut SettleCounts,
) {
    let io = config.collect_io;
    if io {
        let reaps: Vec<(u32, Counters)> = ended
            .iter()
            .filter_map(|p| Some((p.ppid, io_counters(&p.into_parent?))))
            .collect();
        accounting.reaped_into_parents(&reaps);
    }
    for process in ended {
        let end = final_counters(&process);
        let key = ProcessKey {
            pid: process.pid,
            starttime: process.starttime,
        };
        if accounting.settle(&key, &end, io) == Settled::Seen {
            counts.seen += 1;
            continue;
        }
        let recorded = RecordedProcess {
            owner: Owner {
                pid: process.pid,
                starttime: process.starttime,
            },
            comm: String::from_utf8_lossy(&process.comm).into_owned(),
            uid: process.uid,
            cmdline: None,
            exe: None,
            cgroup: None,
        };
        match recorded::place(config, &recorded, users) {
            Placement::Instance(name) => {
                accounting.credit_exited(&name, &end, io);
                counts.placed += 1;
            }
            Placement::Dropped => {}
            Placement::Undecidable => {
                counts.undecidable += 1;
                counts.undecidable_cpu_us = counts
                    .undecidable_cpu_us
                    .saturating_add(process.user_us.saturating_add(process.system_us));
            }
        }
    }
}

/// An ended process's CPU time and own I/O, in the accounting's slots.
fn final_counters(process: &Ended) -> Counters {
    let mut end = io_counters(&process.io);
    end[accounting::USER_US] = process.user_us;
    end[accounting::SYSTEM_US] = process.system_us;
    end[accounting::MINOR_FAULTS] = process.minor_faults;
    end[accounting::MAJOR_FAULTS] = process.major_faults;
    end
}

fn io_counters(io: &Io) -> Counters {
    let mut c = [0; accounting::COUNTERS];
    c[accounting::RCHAR] = io.read_chars;
    c[accounting::WCHAR] = io.write_chars;
    c[accounting::SYSCR] = io.read_syscalls;
    c[accounting::SYSCW] = io.write_syscalls;
    c[accounting::READ_BYTES] = io.read_bytes;
    c[accounting::WRITE_BYTES] = io.write_bytes;
    c
}

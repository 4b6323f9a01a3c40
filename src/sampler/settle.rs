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
    end[accounting::VOLUNTARY_SWITCHES] = process.voluntary_switches;
    end[accounting::INVOLUNTARY_SWITCHES] = process.involuntary_switches;
    end[accounting::CPU_DELAY_NS] = process.cpu_delay_ns;
    end[accounting::BLKIO_DELAY_NS] = process.blkio_delay_ns;
    end[accounting::SWAPIN_DELAY_NS] = process.swapin_delay_ns;
    end[accounting::RECLAIM_DELAY_NS] = process.reclaim_delay_ns;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::accounting::{InstanceTotals, Observation, WCHAR};
    use crate::sampler::grouping::tests::config as with_blocks;

    fn config(lines: &[(&str, &[&str])]) -> Config {
        with_blocks(lines, Vec::new())
    }

    /// A `head` that lived between two samples: 10 ms of CPU, 1 MiB written, reaped by pid 5.
    fn head(pid: u32) -> Ended {
        Ended {
            pid,
            starttime: 77,
            ppid: 5,
            uid: 0,
            comm: b"head".to_vec(),
            threads: 1,
            user_us: 2_000,
            system_us: 8_000,
            minor_faults: 90,
            io: Io {
                write_chars: 1 << 20,
                ..Io::default()
            },
            into_parent: Some(Io {
                write_chars: 1 << 20,
                ..Io::default()
            }),
            ..Ended::default()
        }
    }

    fn shell(wchar: u64) -> Observation {
        let mut counters = [0; accounting::COUNTERS];
        counters[WCHAR] = wchar;
        Observation {
            key: ProcessKey {
                pid: 5,
                starttime: 1,
            },
            comm: accounting::Comm::of(b"sh"),
            ppid: 1,
            children_minflt: 0,
            counters,
            io_known: true,
            gauges: accounting::Gauges::default(),
            meta: None,
        }
    }

    /// Settles `head(9)` under `config`; what was counted.
    fn settle_head(config: &Config, accounting: &mut Accounting) -> SettleCounts {
        let mut counts = SettleCounts::default();
        let mut users = UserNames::default();
        settle(vec![head(9)], accounting, config, &mut users, &mut counts);
        counts
    }

    fn find<'a>(totals: &'a [InstanceTotals], name: &str) -> Option<&'a InstanceTotals> {
        totals.iter().find(|t| t.name == name)
    }

    /// Placed by its comm, credited its CPU, faults and bytes with no process count; the shell
    /// that reaped it, whose /proc/PID/io now holds them, is not credited them again.
    #[test]
    fn a_process_nobody_saw_goes_to_its_instance_and_not_to_its_parent() {
        let config = Config::default();
        let mut accounting = Accounting::new(100);
        accounting.use_exit_records();
        accounting.observe("sh", shell(100));
        accounting.end_cycle();
        accounting.observe("sh", shell(100 + (1 << 20)));
        let counts = settle_head(&config, &mut accounting);
        let (totals, _) = accounting.end_cycle();
        let head = find(&totals, "head").expect("head's instance");
        assert_eq!(head.counters[accounting::USER_US], 2_000);
        assert_eq!(head.counters[accounting::SYSTEM_US], 8_000);
        assert_eq!(head.counters[accounting::MINOR_FAULTS], 90);
        assert_eq!(head.counters[WCHAR], 1 << 20);
        assert_eq!(head.processes, 0);
        let sh = find(&totals, "sh").expect("the shell's instance");
        assert_eq!(sh.counters[WCHAR], 100, "the shell's own bytes only");
        assert_eq!(
            counts,
            SettleCounts {
                placed: 1,
                ..SettleCounts::default()
            }
        );
    }

    /// A rule on the command line, executable or cgroup cannot be decided for a process
    /// nobody saw: it is counted, with its CPU time, and put in no instance.
    #[test]
    fn a_rule_needing_what_the_record_lacks_is_counted_undecidable() {
        for config in [
            config(&[("ProcessMatch", &["uploads", "upload"])]),
            config(&[("GroupBy", &["{exe}"])]),
            config(&[("GroupBy", &["{cgroup}"])]),
        ] {
            let mut accounting = Accounting::new(100);
            let counts = settle_head(&config, &mut accounting);
            let (totals, _) = accounting.end_cycle();
            assert!(totals.is_empty(), "no instance: {totals:?}");
            assert_eq!(
                counts,
                SettleCounts {
                    undecidable: 1,
                    undecidable_cpu_us: 10_000,
                    ..SettleCounts::default()
                }
            );
        }
    }

    #[test]
    fn group_by_nothing_drops_it_as_it_would_the_live_process() {
        let config = config(&[("GroupBy", &[""])]);
        let mut accounting = Accounting::new(100);
        let counts = settle_head(&config, &mut accounting);
        assert!(accounting.end_cycle().0.is_empty());
        assert_eq!(counts, SettleCounts::default());
    }
}

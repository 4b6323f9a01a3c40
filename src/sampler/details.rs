//! The costly per-process values, each behind its option: code, data and stack sizes
//! (`CollectMemoryDetails`, from `status`), context switches (`CollectContextSwitch`, from the
//! `status` of every thread), memory mappings (`CollectMemoryMaps`, the line count of `maps`)
//! and delays (`CollectDelayAccounting`, from taskstats, see [`super::delays`]).
//!
//! Sizes and mappings are read again only when they can have changed: every one of them is a
//! part of the process's virtual size (`VmExe`, `VmLib`, `VmData` and `VmStk` are shares of
//! `VmSize`, and a mapping is added or removed by `mmap`, `munmap`, `mremap` or `brk`, which
//! change it), which `stat` gives every cycle anyway. So they are read again when the virtual
//! size changed, and at least every [`SLOW_MAX_AGE`] for what leaves it alone (an `mprotect`
//! that splits a mapping, or moves one from code to data). Measured with 1,000 sleeping
//! processes, `maps` costs 27 µs a process to produce — six times `stat` — and `status` 7 µs,
//! so a host whose processes mostly wait pays for them about once a minute, not every interval.
//!
//! Context switches and delays are counters, read every cycle the process ran: a
//! single-threaded process whose `schedstat` says it was not put on a CPU since the last read
//! cannot have switched nor waited (a wait ends with the task put back on a CPU), so its
//! `status` and its taskstats are not asked (its counters read 0 for the accounting, which
//! keeps them where they were). `schedstat` costs a third of `status`; most processes of a
//! host sleep through most intervals. A multi-threaded process is read every cycle: its
//! `schedstat` is its main thread's alone.

use super::accounting::{
    Counters, Gauges, BLKIO_DELAY_NS, CPU_DELAY_NS, INVOLUNTARY_SWITCHES, RECLAIM_DELAY_NS,
    SWAPIN_DELAY_NS, VOLUNTARY_SWITCHES,
};
use super::delays::Delays;
use crate::config::Config;
use crate::proc::kept::{KeptFiles, Kind};
use crate::proc::{pid_maps, pid_schedstat, pid_status, ProcRoot};
use crate::snapshot::MemoryDetails;
use std::io;
use std::time::{Duration, Instant};

/// How long sizes and mappings read for a process whose virtual size stayed the same are
/// trusted.
pub const SLOW_MAX_AGE: Duration = Duration::from_secs(60);

/// What is kept of a process from one cycle to the next.
#[derive(Debug, Clone, Copy, Default)]
pub struct Remembered {
    slow: Option<SlowValues>,
    /// Times its main thread was put on a CPU, when its counters were last read.
    timeslices: Option<u64>,
}

/// Sizes and mapping count of a process as last read, and the virtual size they go with.
#[derive(Debug, Clone, Copy)]
struct SlowValues {
    vsize: u64,
    read_at: Instant,
    memory: Option<MemoryDetails>,
    maps: Option<u64>,
}

/// What the reads need of the sampler.
pub struct Sources<'a> {
    pub config: &'a Config,
    pub proc: &'a mut ProcRoot,
    pub kept: &'a mut KeptFiles,
    /// When the cycle started: the age of [`SlowValues`] is measured by it.
    pub now: Instant,
}

/// What this cycle's `stat` said of the process.
#[derive(Debug, Clone, Copy)]
pub struct Sampled {
    pub pid: u32,
    pub threads: u64,
    pub vsize: u64,
}

#[derive(Default)]
pub struct Details {
    pub delays: Delays,
    maps_denied: bool,
}

impl Details {
    /// Reads what the options ask of `process` into `counters` and `gauges`, reusing what
    /// was `remembered` while it holds; returns what to remember for the next cycle. What
    /// cannot be read is left out (`None`, or a counter at 0, which the accounting keeps where
    /// it was).
    pub fn read(
        &mut self,
        src: Sources<'_>,
        process: Sampled,
        remembered: Remembered,
        counters: &mut Counters,
        gauges: &mut Gauges,
    ) -> Remembered {
        let config = src.config;
        let pid = process.pid;
        let holding = remembered.slow.filter(|s| {
            s.vsize == process.vsize && src.now.saturating_duration_since(s.read_at) < SLOW_MAX_AGE
        });
        let memory_due = config.collect_memory_details && holding.is_none();
        let mut memory = holding.and_then(|s| s.memory);
        // Whether the process can have switched or waited since its counters were read.
        let mut timeslices = None;
        let mut ran = true;
        if (config.collect_context_switches || config.collect_delay_accounting)
            && process.threads == 1
        {
            timeslices = src
                .proc
                .read_kept(src.kept, pid, Kind::Schedstat, 256)
                .ok()
                .and_then(pid_schedstat::parse_timeslices);
            ran = timeslices.is_none() || timeslices != remembered.timeslices;
        }
        let switches_due = config.collect_context_switches && ran;
        if memory_due || switches_due {
            let status = src
                .proc
                .read_kept(src.kept, pid, Kind::Status, 8192)
                .ok()
                .and_then(pid_status::parse_details);
            if let Some(d) = status {
                if memory_due {
                    memory = Some(MemoryDetails {
                        code_bytes: d.code_bytes,
                        data_bytes: d.data_bytes,
                        stack_bytes: d.stack_bytes,
                    });
                }
                if switches_due {
                    let (mut voluntary, mut involuntary) =
                        (d.voluntary_switches, d.involuntary_switches);
                    if process.threads > 1 {
                        if let Ok((v, i)) = pid_status::other_threads_switches(src.proc, pid) {
                            voluntary = voluntary.saturating_add(v);
                            involuntary = involuntary.saturating_add(i);
                        }
                    }
                    counters[VOLUNTARY_SWITCHES] = voluntary;
                    counters[INVOLUNTARY_SWITCHES] = involuntary;
                }
            }
        }
        let mut maps = holding.and_then(|s| s.maps);
        if config.collect_memory_maps && holding.is_none() {
            maps = self.count_maps(src.proc, pid);
        }
        if config.collect_delay_accounting && ran {
            if let Some(stats) = self.delays.process(pid) {
                counters[CPU_DELAY_NS] = stats.cpu_delay_ns;
                counters[BLKIO_DELAY_NS] = stats.blkio_delay_ns;
                counters[SWAPIN_DELAY_NS] = stats.swapin_delay_ns;
                counters[RECLAIM_DELAY_NS] = stats.reclaim_delay_ns.unwrap_or(0);
            }
        }
        gauges.memory = memory.filter(|_| config.collect_memory_details);
        gauges.maps = maps.filter(|_| config.collect_memory_maps);
        Remembered {
            slow: Some(holding.unwrap_or(SlowValues {
                vsize: process.vsize,
                read_at: src.now,
                memory,
                maps,
            })),
            timeslices,
        }
    }

    fn count_maps(&mut self, proc: &mut ProcRoot, pid: u32) -> Option<u64> {
        match pid_maps::count(proc, pid) {
            Ok(maps) => Some(maps),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !self.maps_denied => {
                self.maps_denied = true;
                log::warn!(
                    "cannot read /proc/{pid}/maps: permission denied; processes whose mappings \
                     cannot be counted are reported without file_handles-mapped. Reading other \
                     users' needs CAP_SYS_PTRACE (the kernel's ptrace check) (said once)"
                );
                None
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources<'a>(
        config: &'a Config,
        proc: &'a mut ProcRoot,
        kept: &'a mut KeptFiles,
        now: Instant,
    ) -> Sources<'a> {
        Sources {
            config,
            proc,
            kept,
            now,
        }
    }

    /// Sizes and mappings are read again when the virtual size changes or a minute has
    /// passed, and kept otherwise; a fixture /proc lets the test change the files between.
    #[test]
    fn sizes_and_mappings_are_read_again_only_when_they_can_have_changed() {
        let dir = tempfile::tempdir().unwrap();
        let pid_dir = dir.path().join("42");
        std::fs::create_dir(&pid_dir).unwrap();
        let write = |data_kib: u64, maps: usize| {
            std::fs::write(
                pid_dir.join("status"),
                format!("VmData:\t{data_kib} kB\nvoluntary_ctxt_switches:\t{maps}\n"),
            )
            .unwrap();
            std::fs::write(pid_dir.join("maps"), "m\n".repeat(maps)).unwrap();
        };
        let config = Config {
            collect_memory_details: true,
            collect_memory_maps: true,
            collect_context_switches: true,
            ..Config::default()
        };
        let mut proc = ProcRoot::new(dir.path());
        let mut kept = KeptFiles::none();
        let mut details = Details::default();
        let t0 = Instant::now();
        let mut read = |remembered, vsize: u64, at: Instant| {
            let mut counters = [0; crate::sampler::accounting::COUNTERS];
            let mut gauges = Gauges::default();
            let process = Sampled {
                pid: 42,
                threads: 1,
                vsize,
            };
            let src = sources(&config, &mut proc, &mut kept, at);
            let kept = details.read(src, process, remembered, &mut counters, &mut gauges);
            let data = gauges.memory.map(|m| m.data_bytes / 1024);
            (kept, data, gauges.maps, counters[VOLUNTARY_SWITCHES])
        };
        write(100, 10);
        let (slow, data, maps, switches) = read(Remembered::default(), 1 << 20, t0);
        assert_eq!((data, maps, switches), (Some(100), Some(10), 10));
        write(200, 20);
        // The same virtual size a second later: sizes and mappings kept, switches read.
        let (slow, data, maps, switches) = read(slow, 1 << 20, t0 + Duration::from_secs(1));
        assert_eq!((data, maps, switches), (Some(100), Some(10), 20));
        // The virtual size changed: read again.
        let (slow, data, maps, _) = read(slow, 2 << 20, t0 + Duration::from_secs(2));
        assert_eq!((data, maps), (Some(200), Some(20)));
        write(300, 30);
        // Unchanged, but older than SLOW_MAX_AGE: read again.
        let later = t0 + Duration::from_secs(2) + SLOW_MAX_AGE;
        let (_, data, maps, _) = read(slow, 2 << 20, later);
        assert_eq!((data, maps), (Some(300), Some(30)));
    }

    /// A process not put on a CPU since its counters were read is not asked again: its
    /// counters read 0 (the accounting keeps them); once it ran, they are read.
    #[test]
    fn counters_are_read_again_only_when_the_process_ran() {
        let dir = tempfile::tempdir().unwrap();
        let pid_dir = dir.path().join("7");
        std::fs::create_dir(&pid_dir).unwrap();
        let write = |switches: u64, timeslices: u64| {
            let status = format!("voluntary_ctxt_switches:\t{switches}\n");
            std::fs::write(pid_dir.join("status"), status).unwrap();
            let schedstat = format!("1000 20 {timeslices}\n");
            std::fs::write(pid_dir.join("schedstat"), schedstat).unwrap();
        };
        let config = Config {
            collect_context_switches: true,
            ..Config::default()
        };
        let mut proc = ProcRoot::new(dir.path());
        let mut kept = KeptFiles::none();
        let mut details = Details::default();
        let mut read = |remembered, threads: u64| {
            let mut counters = [0; crate::sampler::accounting::COUNTERS];
            let mut gauges = Gauges::default();
            let process = Sampled {
                pid: 7,
                threads,
                vsize: 1,
            };
            let src = sources(&config, &mut proc, &mut kept, Instant::now());
            let kept = details.read(src, process, remembered, &mut counters, &mut gauges);
            (kept, counters[VOLUNTARY_SWITCHES])
        };
        write(10, 5);
        let (remembered, switches) = read(Remembered::default(), 1);
        assert_eq!(switches, 10);
        write(99, 5);
        let (remembered, switches) = read(remembered, 1);
        assert_eq!(switches, 0, "not put on a CPU since: not read");
        // The main thread's timeslices say nothing of the others': read.
        let (remembered, switches) = read(remembered, 2);
        assert_eq!(switches, 99);
        write(120, 6);
        let (_, switches) = read(remembered, 1);
        assert_eq!(switches, 120);
    }
}

//! Delay accounting (`CollectDelayAccounting`): each reported process's delays asked of
//! taskstats, one generic-netlink request a process ([`TaskstatsQuery`]), and each instance's
//! rates (`delay_rate`: seconds of waiting per second) from one cycle's counters to the next.
//!
//! The kernel counts a task's wait for a CPU while runnable (`sched_info.run_delay`) always,
//! but its waits for block I/O, swap-in and memory reclaim only while `kernel.task_delayacct`
//! is 1 — off by default since Linux 5.14, as it reads a clock at every such wait. The plugin
//! never switches it on behind the operator's back: it says once that those three read 0.
//! Asking taskstats needs `CAP_NET_ADMIN`; without it, one warning and no more asking.

use super::accounting::{
    InstanceTotals, BLKIO_DELAY_NS, CPU_DELAY_NS, RECLAIM_DELAY_NS, SWAPIN_DELAY_NS,
};
use crate::snapshot::DelayRates;
use crate::taskstats::query::{delay_accounting_enabled, TaskstatsQuery};
use crate::taskstats::Taskstats;
use std::collections::HashMap;
use std::io;
use std::time::Instant;

/// The delay counters' slots, in the order of [`DelayRates`]' fields.
const SLOTS: [usize; 4] = [
    CPU_DELAY_NS,
    BLKIO_DELAY_NS,
    SWAPIN_DELAY_NS,
    RECLAIM_DELAY_NS,
];

#[derive(Default)]
pub struct Delays {
    query: Option<TaskstatsQuery>,
    /// Taskstats cannot be asked (said once): no more tries.
    unavailable: bool,
    /// Each instance's delay counters (ns) at the previous cycle, and when that was.
    previous: HashMap<String, [u64; 4]>,
    previous_at: Option<Instant>,
}

impl Delays {
    /// Process `pid`'s delays since it started, its ended threads' included; `None` when it
    /// is gone or taskstats cannot be asked.
    pub fn process(&mut self, pid: u32) -> Option<Taskstats> {
        if self.unavailable {
            return None;
        }
        if self.query.is_none() {
            match TaskstatsQuery::open() {
                Ok(query) => self.query = Some(query),
                Err(e) => return self.give_up(&e),
            }
            if delay_accounting_enabled() == Some(false) {
                log::warn!(
                    "CollectDelayAccounting: the kernel's delay accounting is off \
                     (kernel.task_delayacct = 0), so delay-blkio, delay-swapin and \
                     delay-freepages read 0; delay-cpu is counted regardless. Turn it on with \
                     `sysctl kernel.task_delayacct=1` (or `delayacct` on the kernel command \
                     line) if you want them (said once)"
                );
            }
        }
        match self.query.as_mut()?.process(pid) {
            Ok(stats) => stats,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => self.give_up(&e),
            Err(_) => None,
        }
    }

    fn give_up(&mut self, e: &io::Error) -> Option<Taskstats> {
        self.unavailable = true;
        self.query = None;
        let needs = if e.kind() == io::ErrorKind::PermissionDenied {
            ": asking taskstats needs CAP_NET_ADMIN"
        } else {
            ""
        };
        log::warn!(
            "CollectDelayAccounting: cannot ask taskstats ({e}){needs}; delay_rate is not \
             reported (said once)"
        );
        None
    }

    /// Each instance's delay rates over the time since the previous call, in the order of
    /// `totals`; `None` for an instance that was not reported then (and on the first call).
    pub fn rates(&mut self, totals: &[InstanceTotals], now: Instant) -> Vec<Option<DelayRates>> {
        let elapsed = self
            .previous_at
            .map(|at| now.saturating_duration_since(at).as_secs_f64())
            .filter(|&s| s > 0.0);
        let mut current = HashMap::with_capacity(totals.len());
        let rates = totals
            .iter()
            .map(|t| {
                let counters = SLOTS.map(|slot| t.counters[slot]);
                let before = self.previous.get(&t.name);
                current.insert(t.name.clone(), counters);
                let (before, seconds) = (before?, elapsed?);
                let rate = |i: usize| counters[i].saturating_sub(before[i]) as f64 / 1e9 / seconds;
                Some(DelayRates {
                    cpu: rate(0),
                    blkio: rate(1),
                    swapin: rate(2),
                    reclaim: rate(3),
                })
            })
            .collect();
        self.previous = current;
        self.previous_at = Some(now);
        rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::accounting::COUNTERS;
    use std::time::Duration;

    fn totals(name: &str, cpu_ns: u64, blkio_ns: u64) -> InstanceTotals {
        let mut counters = [0; COUNTERS];
        counters[CPU_DELAY_NS] = cpu_ns;
        counters[BLKIO_DELAY_NS] = blkio_ns;
        InstanceTotals {
            name: name.into(),
            fixed: false,
            counters,
            cpu_delta_us: None,
            processes: 1,
            threads: 1,
            rss_bytes: 0,
            vm_bytes: 0,
            file_handles: None,
            memory: None,
            maps: None,
            fd_limit: None,
            fd_percent: None,
            io_known: false,
            meta: None,
            single: None,
        }
    }

    #[test]
    fn rates_are_seconds_of_waiting_per_second() {
        let mut delays = Delays::default();
        let start = Instant::now();
        let first = delays.rates(&[totals("web", 1_000_000_000, 0)], start);
        assert_eq!(first, vec![None], "nothing to compare with");
        // 2 s later: 3 s more waiting for a CPU (several threads at once), 0.5 s for I/O.
        let later = start + Duration::from_secs(2);
        let second = delays.rates(
            &[
                totals("web", 4_000_000_000, 500_000_000),
                totals("new", 7, 7),
            ],
            later,
        );
        let web = second[0].unwrap();
        assert!((web.cpu - 1.5).abs() < 1e-9 && (web.blkio - 0.25).abs() < 1e-9);
        assert_eq!((web.swapin, web.reclaim), (0.0, 0.0));
        assert_eq!(
            second[1], None,
            "an instance new this cycle has no rate yet"
        );
        // An instance missing from a cycle starts again from nothing when it comes back.
        delays.rates(&[], later + Duration::from_secs(1));
        let back = delays.rates(&[totals("web", 9, 9)], later + Duration::from_secs(2));
        assert_eq!(back, vec![None]);
    }
}

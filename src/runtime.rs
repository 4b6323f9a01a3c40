//! The plugin's threads and what they share. The sampler thread owns the [`Sampler`]; the only
//! thing collectd's read callback touches is the latest [`Snapshot`] behind a mutex held for a
//! pointer copy. Every thread (sampler, resolver, capture threads) is registered on one
//! [`ThreadBoard`], whose health each snapshot carries; a panic in a sampler cycle is caught
//! ([`guard`]), logged once, and sampling goes on with the next cycle.
//!
//! Pacing: each read asks for the next cycle, so the sampler runs exactly once per collectd
//! interval, in phase with the reads (every read finds one fresh snapshot; no drift, no
//! doubled or skipped intervals). Cycles are kept at least half an interval apart so that
//! `percent-cpu` is never computed over a sliver of time, e.g. when the first read races the
//! first cycle.

use crate::config::Config;
use crate::exits::ebpf::ExitRecords;
use crate::exits::watch::ExitWatch;
use crate::net::ownership::ebpf::OwnerRecords;
use crate::sampler::Sampler;
use crate::snapshot::Snapshot;
use crate::supervise::{self, guard, ThreadBoard, ThreadToken};
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    latest: Option<Arc<Snapshot>>,
    cycle_requested: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    stop: AtomicBool,
}

pub struct Runtime {
    shared: Arc<Shared>,
    sampler: Option<JoinHandle<()>>,
}

impl Runtime {
    /// Starts the sampler thread — and the capture threads when the network is collected;
    /// its first cycle begins at once.
    /// `owner_records`: the eBPF owner source, loaded (`net::load_owner_source`);
    /// `exit_records`: the exit program, loaded (`exits::load`), read by the exit thread.
    pub fn start(
        config: Config,
        interval: Duration,
        owner_records: Option<OwnerRecords>,
        exit_records: Option<ExitRecords>,
    ) -> std::io::Result<Runtime> {
        let board = ThreadBoard::new();
        let network = config.network.clone();
        let mut sampler = Sampler::new(config);
        if let Some(records) = exit_records {
            sampler.set_exits(ExitWatch::start(records, &board)?);
        }
        if let Some(monitor) = network
            .as_ref()
            .and_then(|n| crate::net::start(n, owner_records, &board))
        {
            sampler.set_network(monitor);
        }
        Self::start_with(sampler, board, interval)
    }

    /// Starts the sampler thread, registered on `board` as `sampler`; the sampler reports the
    /// health of every thread on `board`.
    pub fn start_with(
        mut sampler: Sampler,
        board: Arc<ThreadBoard>,
        interval: Duration,
    ) -> std::io::Result<Runtime> {
        sampler.set_threads(Arc::clone(&board));
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let handle = supervise::spawn(&board, "sampler", move |token| {
            sampler_loop(sampler, &thread_shared, interval / 2, token)
        })?;
        Ok(Runtime {
            shared,
            sampler: Some(handle),
        })
    }

    /// The most recent snapshot, if a cycle has completed.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.shared.state.lock().latest.clone()
    }

    /// Asks the sampler for its next cycle.
    pub fn request_cycle(&self) {
        self.shared.state.lock().cycle_requested = true;
        self.shared.wake.notify_one();
    }

    /// Stops and joins the threads. A cycle in progress gives up between two processes.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _state = self.shared.state.lock();
            self.shared.wake.notify_all();
        }
        if let Some(handle) = self.sampler.take() {
            // Its body cannot end with a panic: supervise::spawn caught and logged any.
            let _ = handle.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sampler_loop(mut sampler: Sampler, shared: &Shared, min_spacing: Duration, token: &ThreadToken) {
    let stopping = || shared.stop.load(Ordering::SeqCst);
    loop {
        let started = Instant::now();
        // A bug in one cycle must not end sampling for good, nor flood the log: the guard
        // says it once, and a cycle cut short publishes nothing (the next one reports every
        // counter from where it was, see Accounting::begin_cycle).
        if let Some(Some(snapshot)) = guard(token, "a sampler cycle", || sampler.cycle(&stopping)) {
            shared.state.lock().latest = Some(Arc::new(snapshot));
        }

        let mut state = shared.state.lock();
        while !state.cycle_requested && !stopping() {
            shared.wake.wait(&mut state);
        }
        state.cycle_requested = false;
        let earliest = started + min_spacing;
        while !stopping() && Instant::now() < earliest {
            shared.wake.wait_until(&mut state, earliest);
        }
        drop(state);
        if stopping() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_on_request_and_stops_promptly() {
        let mut runtime =
            Runtime::start(Config::default(), Duration::from_millis(100), None, None).unwrap();
        let first = wait_for_snapshot(&runtime, 0);
        runtime.request_cycle();
        let second = wait_for_snapshot(&runtime, first.seq);
        assert_eq!(second.seq, first.seq + 1);
        assert!(
            second.time.duration_since(first.time).unwrap() >= Duration::from_millis(45),
            "cycles are spaced by at least half an interval"
        );
        assert!(second.instances.iter().any(|i| i.processes > 0));
        let stopping = Instant::now();
        runtime.stop();
        assert!(stopping.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn snapshots_report_the_sampler_thread_alive_until_it_stops() {
        let board = ThreadBoard::new();
        let sampler = Sampler::new(Config::default());
        let mut runtime =
            Runtime::start_with(sampler, Arc::clone(&board), Duration::from_millis(100)).unwrap();
        let first = wait_for_snapshot(&runtime, 0);
        let sampler_health = |threads: &[supervise::ThreadHealth]| {
            threads.iter().find(|t| t.name == "sampler").cloned()
        };
        let reported = sampler_health(&first.telemetry.threads).expect("the sampler is reported");
        assert!(reported.alive);
        assert_eq!(reported.panics, 0);
        runtime.stop();
        let after = sampler_health(&board.health()).expect("still registered");
        assert!(!after.alive, "a stopped sampler is not alive");
    }

    fn wait_for_snapshot(runtime: &Runtime, after: u64) -> Arc<Snapshot> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = runtime.latest().filter(|s| s.seq > after) {
                return s;
            }
            assert!(Instant::now() < deadline, "no snapshot after seq {after}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

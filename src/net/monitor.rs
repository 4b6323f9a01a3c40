//! The network side of the plugin at run time: starts one capture thread per interface
//! ([`super::capture::thread`]) and one resolver thread ([`super::ownership::resolver`]),
//! stops and joins them, and hands the sampler the totals they publish. Runs on the plugin's
//! init and shutdown and, for [`NetMonitor::take_traffic`], on the sampler thread.
//!
//! Capture threads own their parser and flow table and never block on anything but libpcap.
//! New flows go to the resolver over a channel; its answers come back the same way and are
//! applied between packets. Every 50 ms each capture thread publishes its counters and hands
//! over the per-process traffic since its last publication.

use super::capture::flows::FlowLimits;
use super::capture::pcap_source::{CaptureOptions, OpenError, PacketSource};
pub use super::capture::thread::InterfaceTotals;
use super::capture::thread::{capture_loop, CaptureBoard, READ_TIMEOUT_MS};
use super::ownership::ebpf::processes::RecordedProcesses;
use super::ownership::ebpf::OwnerRecords;
use super::ownership::inodes::IndexStats;
use super::ownership::namespaces::Namespaces;
use super::ownership::resolver::{resolver_loop, ResolverStats};
use super::types::{Owner, RecordedProcess, Request, Traffic};
use crate::supervise::{self, ThreadBoard};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Lookups queued for the resolver at most: ~500 KiB, and 10 to 40 ms of its work.
const LOOKUP_QUEUE: usize = 4096;

#[derive(Default)]
struct Shared {
    capture: CaptureBoard,
    /// The resolver's counters, as of its last round.
    resolver: Mutex<ResolverStats>,
    /// Processes the kernel recorded using sockets (eBPF owner source), for the sampler.
    recorded_processes: RecordedProcesses,
}

pub struct NetMonitor {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl NetMonitor {
    /// Opens every interface and starts the threads, registered on `board` as
    /// `capture_<interface>` and `resolver`. Interfaces that cannot be opened are reported in
    /// the error list (the caller logs them once); the others run.
    pub fn start(
        options: &[CaptureOptions],
        limits: FlowLimits,
        owner_records: Option<OwnerRecords>,
        board: &Arc<ThreadBoard>,
    ) -> (NetMonitor, Vec<(String, OpenError)>) {
        let shared = Arc::new(Shared::default());
        let mut threads = Vec::new();
        let mut errors = Vec::new();
        // Bounded: a capture thread that finds it full sheds the flow (see `flows`) rather
        // than queue lookups the resolver cannot keep up with, so its backlog after a flood
        // is at most this, a few tens of milliseconds of work.
        let (lookups, lookup_queue) = mpsc::sync_channel::<Request>(LOOKUP_QUEUE);
        // The topology is read before any packet is: a capture that started without it would
        // hold its first packets for it, and a short connection's socket can be gone by then.
        let mut namespaces = Namespaces::new();
        // Only frames without direction (a capture of one named interface) need to know the
        // namespaces' addresses; reading them costs an entry into each namespace every second.
        namespaces.read_addresses(options.iter().any(|o| o.interface != "any"));
        if let Ok(topology) = namespaces.refresh() {
            shared.capture.topology.publish(topology);
        }
        for opts in options {
            let source = match PacketSource::open(opts, READ_TIMEOUT_MS) {
                Ok(source) => source,
                Err(e) => {
                    errors.push((opts.interface.clone(), e));
                    continue;
                }
            };
            shared.capture.interfaces.lock().push(InterfaceTotals {
                interface: opts.interface.clone(),
                running: true,
                ..InterfaceTotals::default()
            });
            let index = shared.capture.interfaces.lock().len() - 1;
            let thread_shared = Arc::clone(&shared);
            let lookups = lookups.clone();
            let name = format!("capture_{}", opts.interface);
            let reopen = opts.clone();
            match supervise::spawn(board, &name, move |token| {
                capture_loop(
                    source,
                    &reopen,
                    limits,
                    index,
                    &thread_shared.capture,
                    lookups,
                    token,
                )
            }) {
                Ok(handle) => threads.push(handle),
                Err(e) => errors.push((opts.interface.clone(), OpenError::Other(e.to_string()))),
            }
        }
        drop(lookups);
        if !threads.is_empty() {
            let thread_shared = Arc::clone(&shared);
            if let Ok(handle) = supervise::spawn(board, "resolver", move |token| {
                resolver_loop(
                    lookup_queue,
                    namespaces,
                    owner_records,
                    &thread_shared.recorded_processes,
                    &thread_shared.capture.topology,
                    &thread_shared.resolver,
                    &thread_shared.capture.closed,
                    &thread_shared.capture.stop,
                    token,
                )
            }) {
                threads.push(handle);
            }
        }
        (NetMonitor { shared, threads }, errors)
    }

    /// Network namespaces besides the host's that the topology knows.
    pub fn namespaces(&self) -> usize {
        self.shared.capture.topology.namespaces()
    }

    /// The resolver's inode index counters.
    pub fn index_stats(&self) -> IndexStats {
        self.shared.resolver.lock().index
    }

    /// The resolver's counters as of its last round.
    pub fn resolver_stats(&self) -> ResolverStats {
        *self.shared.resolver.lock()
    }

    /// What the kernel recorded of a process that used a socket (eBPF owner source).
    pub fn recorded_process(&self, owner: &Owner) -> Option<RecordedProcess> {
        self.shared.recorded_processes.get(owner)
    }

    /// Whether at least one interface is being captured.
    pub fn is_capturing(&self) -> bool {
        !self.threads.is_empty()
    }

    /// Per-process traffic of every interface since the last call, summed, and the cumulative
    /// totals of each interface (with their `by_owner` emptied).
    pub fn take_traffic(&self) -> (HashMap<Owner, Traffic>, Vec<InterfaceTotals>) {
        let mut interfaces = self.shared.capture.interfaces.lock();
        let mut traffic: HashMap<Owner, Traffic> = HashMap::new();
        for slot in interfaces.iter_mut() {
            for (owner, t) in slot.by_owner.drain() {
                traffic.entry(owner).or_default().merge(&t);
            }
        }
        (traffic, interfaces.clone())
    }

    pub fn stop(&mut self) {
        self.shared.capture.stop.store(true, Ordering::SeqCst);
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for NetMonitor {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn stops_promptly() {
        let options = [CaptureOptions {
            interface: "any".into(),
            bpf_filter: None,
            snaplen: 128,
            buffer_size: 1 << 20,
            promiscuous: false,
        }];
        let (mut monitor, errors) =
            NetMonitor::start(&options, FlowLimits::default(), None, &ThreadBoard::new());
        if !errors.is_empty() {
            eprintln!("SKIP: {errors:?}");
            return;
        }
        // Once running: the resolver's first round comes after its index's warm-up, a read of
        // every process's fd table that shutdown waits for (a few ms; longer on a loaded
        // machine). From then on every thread looks at the stop flag at least every 100 ms.
        let deadline = Instant::now() + Duration::from_secs(60);
        while monitor.index_stats().processes == 0 {
            assert!(Instant::now() < deadline, "the resolver never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        let started = Instant::now();
        monitor.stop();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}

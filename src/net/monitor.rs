//! The network side of the plugin at run time: one capture thread per interface and one
//! resolver thread, and the totals they publish for the sampler.
//!
//! Capture threads own their parser and flow table and never block on anything but libpcap.
//! New flows go to the resolver over a channel; its answers come back the same way and are
//! applied between packets. Every 50 ms each capture thread publishes its counters and hands
//! over the per-process traffic since its last publication.

use super::capture::{CaptureOptions, Next, OpenError, PacketSource};
use super::flows::{FlowKey, FlowStats, FlowTable, LocalAddresses, Traffic};
use super::host_addresses::LiveHostAddresses;
use super::inodes::{InodeIndex, Owner};
use super::packet::{Direction, Parsed, Parser, Transport};
use super::sockdiag::SockDiag;
use crate::proc::ProcRoot;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a new flow may wait for its owner before its bytes count as unattributed.
const PENDING_TIMEOUT_MS: u64 = 5_000;
/// Resolved flows idle this long are forgotten.
const IDLE_TIMEOUT_MS: u64 = 120_000;
const HOUSEKEEPING: Duration = Duration::from_millis(50);
const READ_TIMEOUT_MS: i32 = 50;
/// A flow whose owner is not found at once is asked again: quickly at first — the index
/// finds a brand-new process's socket within a few bounded lookups, and a short connection's
/// socket does not wait — then less often, for this long (TCP still in the accept queue has
/// no inode yet).
const RETRY_FOR: Duration = Duration::from_secs(2);
const RETRY_FAST: Duration = Duration::from_micros(500);
const RETRY_FAST_FOR: Duration = Duration::from_millis(50);
const RETRY_SLOW: Duration = Duration::from_millis(20);
const MAX_RETRIES_PER_ROUND: usize = 256;

/// What one capture thread has counted since it started.
#[derive(Debug, Clone, Default)]
pub struct InterfaceTotals {
    pub interface: String,
    /// Traffic per process not yet taken by [`NetMonitor::take_traffic`].
    pub by_owner: HashMap<Owner, Traffic>,
    pub unattributed: Traffic,
    pub pending: Traffic,
    pub flows: FlowStats,
    pub tracked_flows: u64,
    /// libpcap's counters (wrapping u32 in libpcap, widened here).
    pub pcap_received: u64,
    pub pcap_dropped: u64,
    pub pcap_if_dropped: u64,
    /// Frames that were not IP or were malformed: not counted anywhere else.
    pub skipped: u64,
    /// IP packets seen: what attributed + unattributed + pending add up to.
    pub ip_packets: u64,
    pub running: bool,
}

#[derive(Default)]
struct Shared {
    interfaces: Mutex<Vec<InterfaceTotals>>,
    stop: AtomicBool,
}

pub struct NetMonitor {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// A flow to resolve, and where the answer goes.
struct Lookup {
    key: FlowKey,
    reply: Sender<(FlowKey, Option<Owner>)>,
}

impl NetMonitor {
    /// Opens every interface and starts the threads. Interfaces that cannot be opened are
    /// reported in the error list (the caller logs them once); the others run.
    pub fn start(options: &[CaptureOptions]) -> (NetMonitor, Vec<(String, OpenError)>) {
        let shared = Arc::new(Shared::default());
        let mut threads = Vec::new();
        let mut errors = Vec::new();
        let (lookups, lookup_queue) = mpsc::channel::<Lookup>();
        for opts in options {
            let source = match PacketSource::open(opts, READ_TIMEOUT_MS) {
                Ok(source) => source,
                Err(e) => {
                    errors.push((opts.interface.clone(), e));
                    continue;
                }
            };
            shared.interfaces.lock().push(InterfaceTotals {
                interface: opts.interface.clone(),
                running: true,
                ..InterfaceTotals::default()
            });
            let index = shared.interfaces.lock().len() - 1;
            let thread_shared = Arc::clone(&shared);
            let lookups = lookups.clone();
            let name = format!("capture-{}", opts.interface);
            match std::thread::Builder::new()
                .name(name.chars().take(15).collect())
                .spawn(move || capture_loop(source, index, &thread_shared, lookups))
            {
                Ok(handle) => threads.push(handle),
                Err(e) => errors.push((opts.interface.clone(), OpenError::Other(e.to_string()))),
            }
        }
        drop(lookups);
        if !threads.is_empty() {
            let thread_shared = Arc::clone(&shared);
            if let Ok(handle) = std::thread::Builder::new()
                .name("capture-resolve".into())
                .spawn(move || resolver_loop(lookup_queue, &thread_shared))
            {
                threads.push(handle);
            }
        }
        (NetMonitor { shared, threads }, errors)
    }

    /// Whether at least one interface is being captured.
    pub fn is_capturing(&self) -> bool {
        !self.threads.is_empty()
    }

    /// Per-process traffic of every interface since the last call, summed, and the cumulative
    /// totals of each interface (with their `by_owner` emptied).
    pub fn take_traffic(&self) -> (HashMap<Owner, Traffic>, Vec<InterfaceTotals>) {
        let mut interfaces = self.shared.interfaces.lock();
        let mut traffic: HashMap<Owner, Traffic> = HashMap::new();
        for slot in interfaces.iter_mut() {
            for (owner, t) in slot.by_owner.drain() {
                traffic.entry(owner).or_default().merge(&t);
            }
        }
        (traffic, interfaces.clone())
    }

    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
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

fn capture_loop(mut source: PacketSource, index: usize, shared: &Shared, lookups: Sender<Lookup>) {
    let link = source.link_type();
    let mut parser = Parser::new();
    let mut table = FlowTable::new(PENDING_TIMEOUT_MS, IDLE_TIMEOUT_MS);
    let (reply, answers) = mpsc::channel();
    let started = Instant::now();
    let mut host = LiveHostAddresses::new();
    let mut last_housekeeping = Instant::now();
    let mut now_ms = 0u64;
    let mut skipped = 0u64;
    let mut ip_packets = 0u64;
    let mut pcap = Widened::default();
    let mut failure = None;
    let mut panics = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        let step = catch_unwind(AssertUnwindSafe(|| match source.next_packet() {
            Next::Packet(frame, wire_len) => {
                match parser.parse_wire(link, frame, wire_len, now_ms) {
                    Parsed::Flow(packet) => {
                        ip_packets += 1;
                        // A frame with no direction whose ends are both foreign may be the
                        // first of an address added a moment ago.
                        if packet.direction == Direction::Unknown
                            && !host.addresses().is_local(&packet.src.ip())
                            && !host.addresses().is_local(&packet.dst.ip())
                        {
                            host.missed();
                        }
                        table.account(&packet, host.addresses(), now_ms);
                        // New flows go to the resolver at once: short connections close in
                        // milliseconds, and their socket must still be there when asked.
                        if table.has_lookups() {
                            for key in table.take_lookups() {
                                let _ = lookups.send(Lookup {
                                    key,
                                    reply: reply.clone(),
                                });
                            }
                        }
                    }
                    Parsed::Unattributable { direction, ip_len } => {
                        ip_packets += 1;
                        table.account_unattributable(direction, ip_len);
                    }
                    Parsed::NotIp | Parsed::Malformed => skipped += 1,
                }
                None
            }
            Next::Idle => None,
            Next::Failed(e) => Some(e),
        }));
        match step {
            Ok(Some(e)) => {
                failure = Some(e);
                break;
            }
            Ok(None) => {}
            Err(_) => {
                panics += 1;
                if panics <= 3 {
                    log::error!("a packet could not be handled; capture goes on");
                }
            }
        }
        if last_housekeeping.elapsed() < HOUSEKEEPING {
            continue;
        }
        last_housekeeping = Instant::now();
        now_ms = started.elapsed().as_millis() as u64;
        host.tick();
        for key in table.take_lookups() {
            let _ = lookups.send(Lookup {
                key,
                reply: reply.clone(),
            });
        }
        while let Ok((key, owner)) = answers.try_recv() {
            table.resolved(&key, owner);
        }
        table.expire(now_ms);
        if let Some(stats) = source.stats() {
            pcap.update(stats);
        }
        publish(shared, index, &mut table, &pcap, skipped, ip_packets, true);
    }
    if let Some(e) = &failure {
        log::warn!(
            "capture on `{}` stopped: {e}; the other interfaces and all process metrics go on",
            shared
                .interfaces
                .lock()
                .get(index)
                .map_or("?", |t| t.interface.as_str())
        );
    }
    publish(shared, index, &mut table, &pcap, skipped, ip_packets, false);
}

fn publish(
    shared: &Shared,
    index: usize,
    table: &mut FlowTable,
    pcap: &Widened,
    skipped: u64,
    ip_packets: u64,
    running: bool,
) {
    let mut interfaces = shared.interfaces.lock();
    if let Some(slot) = interfaces.get_mut(index) {
        for (owner, t) in table.take_by_owner() {
            slot.by_owner.entry(owner).or_default().merge(&t);
        }
        slot.unattributed = table.unattributed();
        slot.pending = table.pending();
        slot.flows = table.stats();
        slot.tracked_flows = table.tracked_flows() as u64;
        slot.pcap_received = pcap.received;
        slot.pcap_dropped = pcap.dropped;
        slot.pcap_if_dropped = pcap.if_dropped;
        slot.skipped = skipped;
        slot.ip_packets = ip_packets;
        slot.running = running;
    }
}

/// libpcap's u32 counters, widened to u64 across wraps.
#[derive(Default)]
struct Widened {
    last: (u32, u32, u32),
    received: u64,
    dropped: u64,
    if_dropped: u64,
}

impl Widened {
    fn update(&mut self, stat: pcap::Stat) {
        let delta = |now: u32, before: u32| u64::from(now.wrapping_sub(before));
        self.received += delta(stat.received, self.last.0);
        self.dropped += delta(stat.dropped, self.last.1);
        self.if_dropped += delta(stat.if_dropped, self.last.2);
        self.last = (stat.received, stat.dropped, stat.if_dropped);
    }
}

enum Answer {
    Final(Option<Owner>),
    Retry,
}

/// Answers lookups in arrival order. A flow with no socket at all in this namespace is
/// answered at once (unattributed); one whose socket has no holder yet, or whose holder the
/// index has not found yet, is asked again until [`RETRY_FOR`] has passed.
fn resolver_loop(queue: Receiver<Lookup>, shared: &Shared) {
    let mut diag = match SockDiag::new() {
        Ok(diag) => Some(diag),
        Err(e) => {
            log::warn!("cannot open a sock_diag netlink socket ({e}): traffic stays unattributed");
            None
        }
    };
    // Without the udp_diag module the kernel answers UDP lookups with "not found": every UDP
    // byte would be unattributed for a reason the operator can fix, so say it once.
    if let Some(Err(e)) = diag.as_mut().map(|d| d.dump(Transport::Udp, false)) {
        log::warn!(
            "the kernel does not answer sock_diag for UDP ({e}): UDP traffic will be \
             unattributed; loading the udp_diag module (modprobe udp_diag) fixes it"
        );
    }
    let mut index = InodeIndex::new(ProcRoot::system());
    index.warm_up();
    let mut retry: Vec<(Lookup, Instant)> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let wait = if retry.is_empty() {
            Duration::from_millis(100)
        } else if retry
            .iter()
            .any(|(_, asked)| asked.elapsed() < RETRY_FAST_FOR)
        {
            RETRY_FAST
        } else {
            RETRY_SLOW
        };
        // Retries wait their turn behind a bounded number per round, so a burst of flows
        // nobody holds cannot make the resolver spin; new lookups are never held back.
        let keep = retry.len().saturating_sub(MAX_RETRIES_PER_ROUND);
        let mut batch: Vec<(Lookup, Instant)> = retry.drain(..retry.len() - keep).collect();
        match queue.recv_timeout(wait) {
            Ok(lookup) => batch.push((lookup, Instant::now())),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) if batch.is_empty() => return,
            Err(RecvTimeoutError::Disconnected) => {}
        }
        while let Ok(lookup) = queue.try_recv() {
            batch.push((lookup, Instant::now()));
        }
        for (lookup, first_asked) in batch {
            let key = lookup.key;
            let answer = match diag.as_mut() {
                Some(diag) => match diag.find(key.transport, key.local, key.remote) {
                    // No socket at all in this namespace: asking again will not make one.
                    Ok(None) => Answer::Final(None),
                    // Found, but no process holds it yet (accept queue) or any more
                    // (closing): only the first may change.
                    Ok(Some(info)) if info.inode == 0 => Answer::Retry,
                    Ok(Some(info)) => match index.lookup(info.inode, Some(info.uid)) {
                        Some(owner) => Answer::Final(Some(owner)),
                        // The index works in bounded steps: the next one may find it.
                        None => Answer::Retry,
                    },
                    Err(_) => Answer::Retry,
                },
                None => Answer::Final(None),
            };
            match answer {
                Answer::Final(owner) => {
                    let _ = lookup.reply.send((key, owner));
                }
                Answer::Retry if first_asked.elapsed() < RETRY_FOR => {
                    retry.push((lookup, first_asked));
                }
                Answer::Retry => {
                    let _ = lookup.reply.send((key, None));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_promptly() {
        let options = [CaptureOptions {
            interface: "any".into(),
            bpf_filter: None,
            snaplen: 128,
            buffer_size: 1 << 20,
            promiscuous: false,
        }];
        let (mut monitor, errors) = NetMonitor::start(&options);
        if !errors.is_empty() {
            eprintln!("SKIP: {errors:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        monitor.stop();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}

//! The exit thread (`capture-exits`): reads the exit program's records as the kernel writes
//! them, sums threads into processes ([`Ledger`]) and keeps the ended processes for the
//! sampler, which settles them once a cycle ([`ExitWatch::take_ended`]).
//!
//! A thread of its own rather than a read per sampler cycle: the ring buffer holds ~4,300
//! records (1 MiB), a few seconds of a busy build host, and a cycle comes every interval. The
//! thread sleeps in the ring buffer's epoll until records come (woken at once), or 100 ms to
//! look at the stop flag. Bounded: the ledger's caps (what does not fit is counted in
//! `dropped`), at most `MAX_PER_ROUND` records read per round.

use super::ebpf::ExitRecords;
use super::ledger::{Ended, Ledger};
use crate::supervise::{self, guard, ThreadBoard, ThreadToken};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Records read from the ring buffer per round at most, so the ledger's lock is short.
const MAX_PER_ROUND: usize = 4096;
/// How long a round waits for records: the stop flag is looked at this often.
const WAIT: Duration = Duration::from_millis(100);

/// What the exit thread has counted since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExitStats {
    /// Records read (one per thread that ended).
    pub records: u64,
    /// Records the kernel could not write (ring buffer full), that did not parse, or that the
    /// ledger had no room for: processes whose end is not counted.
    pub lost: u64,
}

#[derive(Default)]
struct Shared {
    ledger: Mutex<Ledger>,
    records: AtomicU64,
    kernel_lost: AtomicU64,
    stop: AtomicBool,
}

/// The running exit thread, and the ended processes it keeps for the sampler.
pub struct ExitWatch {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ExitWatch {
    /// Starts the exit thread on `records`, registered on `board` as `exits`.
    pub fn start(records: ExitRecords, board: &Arc<ThreadBoard>) -> std::io::Result<ExitWatch> {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread = supervise::spawn(board, "exits", move |token| {
            exit_loop(records, &thread_shared, token)
        })?;
        Ok(ExitWatch {
            shared,
            thread: Some(thread),
        })
    }

    /// The processes that ended since the last call, in the order they ended.
    pub fn take_ended(&self) -> Vec<Ended> {
        self.shared.ledger.lock().take_ended()
    }

    pub fn stats(&self) -> ExitStats {
        let dropped = self.shared.ledger.lock().dropped;
        ExitStats {
            records: self.shared.records.load(Ordering::Relaxed),
            lost: self.shared.kernel_lost.load(Ordering::Relaxed) + dropped,
        }
    }

    /// Stops and joins the thread; the program is detached when its records are dropped.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // Its body cannot end with a panic: supervise::spawn caught and logged any.
            let _ = thread.join();
        }
    }
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

fn exit_loop(mut records: ExitRecords, shared: &Shared, token: &ThreadToken) {
    while !shared.stop.load(Ordering::SeqCst) {
        guard(token, "reading exit records", || {
            // Before the read: a round cut here has taken no record out of the ring.
            crate::faults::inject("exits-round");
            let batch = records.poll(WAIT, MAX_PER_ROUND);
            if !batch.is_empty() {
                let mut ledger = shared.ledger.lock();
                for record in &batch {
                    ledger.add(record);
                }
            }
            shared
                .records
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            shared.kernel_lost.store(records.lost(), Ordering::Relaxed);
        });
    }
}

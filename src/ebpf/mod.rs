//! eBPF loading, shared by the programs the plugin loads (the owner source,
//! `net::ownership::ebpf`; the exit records, `exits::ebpf`): why a load failed, in one line
//! (the capability missing, or the verifier's last word), libbpf's messages kept out of
//! collectd's stderr, the ring buffers records come through, and the per-CPU counters the
//! programs keep of what they could not write.

use libbpf_rs::{MapCore, MapFlags, MapHandle, Object, RingBuffer};
use parking_lot::Mutex;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why the programs could not be loaded, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError(pub String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The map `name` of a loaded object.
pub fn map_handle(object: &Object, name: &str) -> Result<MapHandle, LoadError> {
    object
        .maps()
        .find(|m| m.name() == name)
        .ok_or_else(|| LoadError(format!("the object has no map {name}")))
        .and_then(|m| {
            MapHandle::try_from(&m).map_err(|e| LoadError(format!("cannot open map {name}: {e}")))
        })
}

/// Records read from a program's ring buffer, parsed as they are read; the ones that do not
/// parse are counted, never kept.
pub struct RingReader<T> {
    ring: RingBuffer<'static>,
    received: Arc<Mutex<Vec<T>>>,
    malformed: Arc<AtomicU64>,
}

impl<T: Send + 'static> RingReader<T> {
    pub fn new(map: &MapHandle, parse: fn(&[u8]) -> Option<T>) -> Result<Self, LoadError> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let malformed = Arc::new(AtomicU64::new(0));
        let mut builder = libbpf_rs::RingBufferBuilder::new();
        let (into, bad) = (received.clone(), malformed.clone());
        builder
            .add(map, move |bytes: &[u8]| {
                match parse(bytes) {
                    Some(record) => into.lock().push(record),
                    None => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
                0
            })
            .map_err(|e| LoadError(format!("cannot read the ring buffer: {e}")))?;
        let ring = builder
            .build()
            .map_err(|e| LoadError(format!("cannot read the ring buffer: {e}")))?;
        Ok(RingReader {
            ring,
            received,
            malformed,
        })
    }

    /// The records written so far, at most `max` read from the ring (the rest wait there).
    pub fn drain(&mut self, max: usize) -> Vec<T> {
        let _ = self.ring.consume_raw_n(max);
        std::mem::take(&mut *self.received.lock())
    }

    /// Waits up to `timeout` for a record, then [`drain`](Self::drain)s.
    pub fn poll(&mut self, timeout: Duration, max: usize) -> Vec<T> {
        if self.ring.poll(timeout).is_ok() {
            let _ = self.ring.consume_raw_n(max);
        }
        std::mem::take(&mut *self.received.lock())
    }

    /// Records that did not parse, since the start.
    pub fn malformed(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }
}

/// The sum over CPUs of a one-entry per-CPU array of u64 (a program's count of records its ring
/// buffer had no room for); 0 when unreadable.
pub fn per_cpu_count(map: &MapHandle) -> u64 {
    let key = 0u32.to_ne_bytes();
    match map.lookup_percpu(&key, MapFlags::ANY) {
        Ok(Some(per_cpu)) => per_cpu
            .iter()
            .filter_map(|bytes| Some(u64::from_ne_bytes(bytes.get(..8)?.try_into().ok()?)))
            .sum(),
        _ => 0,
    }
}

/// A failed load, in one line: the privilege it lacks, or libbpf's last word (the verifier's
/// message).
pub fn load_failure(error: &libbpf_rs::Error) -> LoadError {
    if error.kind() == libbpf_rs::ErrorKind::PermissionDenied {
        return LoadError(format!(
            "loading them was refused ({}): {}",
            reason(error),
            privilege::needed(privilege::effective())
        ));
    }
    match libbpf_messages::last() {
        Some(said) => LoadError(format!("the kernel refused them: {said}")),
        None => LoadError(format!("the kernel refused them: {}", reason(error))),
    }
}

/// Which capabilities loading needs, and which of them this thread lacks.
mod privilege {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;

    /// This thread's effective capabilities (`CapEff` of /proc/thread-self/status); `None`
    /// when unreadable.
    pub fn effective() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
        let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
        u64::from_str_radix(hex.trim(), 16).ok()
    }

    /// What to say about the capabilities `effective` has: the ones missing, by name.
    pub fn needed(effective: Option<u64>) -> String {
        let has = |cap: u32| effective.is_some_and(|caps| caps & (1u64 << cap) != 0);
        let mut missing = Vec::new();
        if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
            missing.push("CAP_BPF");
        }
        if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
            missing.push("CAP_PERFMON");
        }
        match (effective, missing.as_slice()) {
            (None, _) | (_, []) => "it needs CAP_BPF and CAP_PERFMON (Linux 5.8 or later; \
                                    CAP_SYS_ADMIN before), or an LSM refused it"
                .to_string(),
            (_, missing) => format!(
                "it needs CAP_BPF and CAP_PERFMON (Linux 5.8 or later), and {} missing",
                match missing {
                    [one] => format!("{one} is"),
                    _ => format!("{} are", missing.join(" and ")),
                }
            ),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_missing_capability_is_named() {
            let bpf = 1u64 << CAP_BPF;
            let perfmon = 1u64 << CAP_PERFMON;
            let admin = 1u64 << CAP_SYS_ADMIN;
            assert!(needed(Some(perfmon)).ends_with("CAP_BPF is missing"));
            assert!(needed(Some(bpf)).ends_with("CAP_PERFMON is missing"));
            assert!(needed(Some(0)).ends_with("CAP_BPF and CAP_PERFMON are missing"));
            assert!(needed(Some(admin)).contains("or an LSM refused it"));
            assert!(needed(Some(bpf | perfmon)).contains("or an LSM refused it"));
            assert!(needed(None).contains("CAP_BPF and CAP_PERFMON"));
        }
    }
}

pub fn reason(error: &libbpf_rs::Error) -> String {
    error.to_string().replace('\n', " ")
}

/// libbpf's own messages: kept (the last few warnings) while loading, to name the cause of a
/// failure in one line, and never printed to collectd's stderr.
pub mod libbpf_messages {
    use libbpf_rs::PrintLevel;
    use parking_lot::Mutex;

    static LAST: Mutex<Vec<String>> = Mutex::new(Vec::new());

    fn keep(level: PrintLevel, message: String) {
        if level != PrintLevel::Warn {
            return;
        }
        let message = message.trim().to_string();
        // The verifier's log comes between these two lines; its last line says why.
        if message.is_empty() || message.contains("PROG LOAD LOG --") {
            return;
        }
        let mut last = LAST.lock();
        if last.len() >= 16 {
            last.remove(0);
        }
        last.push(message);
    }

    fn silent(_: PrintLevel, _: String) {}

    pub fn collect() {
        LAST.lock().clear();
        libbpf_rs::set_print(Some((PrintLevel::Warn, keep)));
    }

    pub fn stop() {
        libbpf_rs::set_print(Some((PrintLevel::Warn, silent)));
    }

    /// The most telling of the last messages: the verifier's last line before libbpf's
    /// summary, else the last one.
    pub fn last() -> Option<String> {
        let last = LAST.lock();
        let telling = last
            .iter()
            .rev()
            .find(|m| !m.starts_with("libbpf:"))
            .or_else(|| last.last())?;
        Some(telling.replace('\n', " "))
    }
}

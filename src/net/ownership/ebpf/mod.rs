//! The eBPF owner source: small programs in the kernel record which process uses which socket,
//! at the moment it uses it (`bpf/owners.bpf.c`); the resolver reads their records and asks
//! them before sock_diag's socket is looked for in /proc. Loaded at init (so an explicit
//! `OwnerSource "ebpf"` that cannot load refuses there), read on the resolver thread.
//!
//! Why: an owner found from user space after the fact is a race against the socket's and the
//! process's lifetime — a client that connects, sends and closes, a process that sends and
//! exits, are gone before /proc is read. A record made in the kernel, in the process's own
//! context, is not.
//!
//! - [`record`]: the record's layout, parsed;
//! - [`table`]: the records kept, by socket inode and by endpoint, bounded;
//! - this file: loading (which hooks the running kernel has; why not, in one line), attaching,
//!   reading the ring buffer, counting what was lost. Nothing is pinned: the programs and maps
//!   live as long as this value's descriptors, so they are gone when collectd stops.
//!
//! Loader: libbpf through `libbpf-rs` (the object compiled by clang in `build.rs` with
//! `libbpf-cargo`, embedded in the plugin, relocated to the running kernel's BTF at load).

pub mod processes;
pub mod record;
pub mod table;

use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, Object, ObjectBuilder, RingBuffer};
use parking_lot::Mutex;
use record::OwnerRecord;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The programs, compiled by build.rs.
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/owners.bpf.o"));

/// The ring buffer's size: ~10,900 records of 96 bytes. The resolver reads it every round
/// (at most 100 ms apart): room for 100,000 sockets first used per second.
const RING_BYTES: u32 = 1 << 20;

/// Each program, the tracepoint it attaches to, and from which Linux version it exists.
const HOOKS: [Hook; 3] = [
    Hook {
        program: "on_tcp_state",
        tracepoint: "inet_sock_set_state",
        since: "5.5",
        covers: "TCP connects",
    },
    Hook {
        program: "on_send",
        tracepoint: "sock_send_length",
        since: "6.3",
        covers: "sends",
    },
    Hook {
        program: "on_receive",
        tracepoint: "sock_recv_length",
        since: "6.3",
        covers: "receives",
    },
];

struct Hook {
    program: &'static str,
    tracepoint: &'static str,
    /// The first Linux version with the tracepoint as a BTF-enabled one.
    since: &'static str,
    covers: &'static str,
}

/// Why the programs could not be loaded, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError(pub String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The loaded programs and what they recorded. Dropping it detaches and unloads them.
pub struct OwnerRecords {
    // Field order is drop order: the ring buffer and the links go before the object.
    ring: RingBuffer<'static>,
    received: Arc<Mutex<Vec<OwnerRecord>>>,
    malformed: Arc<AtomicU64>,
    lost: MapHandle,
    _links: Vec<Link>,
    _object: Object,
    /// What the attached hooks cover, and what is missing, for the start-up message.
    pub coverage: String,
}

impl fmt::Debug for OwnerRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerRecords")
            .field("coverage", &self.coverage)
            .finish_non_exhaustive()
    }
}

impl OwnerRecords {
    /// Loads and attaches every program whose tracepoint the running kernel has.
    pub fn load() -> Result<OwnerRecords, LoadError> {
        libbpf_messages::collect();
        let result = Self::load_inner();
        libbpf_messages::stop();
        result
    }

    fn load_inner() -> Result<OwnerRecords, LoadError> {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            return Err(LoadError(
                "the kernel has no BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF, Linux \
                 5.5 or later)"
                    .into(),
            ));
        }
        let btf = libbpf_rs::btf::Btf::from_vmlinux()
            .map_err(|e| LoadError(format!("cannot read the kernel's BTF: {e}")))?;
        let present: Vec<bool> = HOOKS
            .iter()
            .map(|hook| {
                let name = format!("btf_trace_{}", hook.tracepoint);
                btf.type_by_name::<libbpf_rs::btf::BtfType<'_>>(&name)
                    .is_some()
            })
            .collect();
        drop(btf);
        if !present.iter().any(|p| *p) {
            return Err(LoadError(format!(
                "the kernel has none of the tracepoints ({})",
                missing(&present)
            )));
        }

        let mut open = ObjectBuilder::default()
            .open_memory(OBJECT)
            .map_err(|e| LoadError(format!("cannot open the programs: {e}")))?;
        for mut program in open.progs_mut() {
            let name = program.name().to_string_lossy().into_owned();
            let wanted = HOOKS
                .iter()
                .zip(&present)
                .any(|(hook, present)| hook.program == name && *present);
            program.set_autoload(wanted);
        }
        for mut map in open.maps_mut() {
            if map.name() == "records" {
                map.set_max_entries(RING_BYTES)
                    .map_err(|e| LoadError(format!("cannot size the ring buffer: {e}")))?;
            }
        }
        let object = open.load().map_err(|e| load_failure(&e))?;

        let mut links = Vec::new();
        for program in object.progs_mut() {
            if !program.autoload() {
                continue;
            }
            let name = program.name().to_string_lossy().into_owned();
            let link = program
                .attach()
                .map_err(|e| LoadError(format!("cannot attach {name}: {}", reason(&e))))?;
            links.push(link);
        }
        let map = |name: &str| {
            object
                .maps()
                .find(|m| m.name() == name)
                .ok_or_else(|| LoadError(format!("the programs have no map {name}")))
                .and_then(|m| {
                    MapHandle::try_from(&m)
                        .map_err(|e| LoadError(format!("cannot open map {name}: {e}")))
                })
        };
        let records_map = map("records")?;
        let lost = map("lost")?;

        let received = Arc::new(Mutex::new(Vec::new()));
        let malformed = Arc::new(AtomicU64::new(0));
        let mut builder = libbpf_rs::RingBufferBuilder::new();
        {
            let received = received.clone();
            let malformed = malformed.clone();
            builder
                .add(&records_map, move |bytes: &[u8]| {
                    match record::parse(bytes) {
                        Some(record) => received.lock().push(record),
                        None => {
                            malformed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    0
                })
                .map_err(|e| LoadError(format!("cannot read the ring buffer: {e}")))?;
        }
        let ring = builder
            .build()
            .map_err(|e| LoadError(format!("cannot read the ring buffer: {e}")))?;

        let attached: Vec<&str> = HOOKS
            .iter()
            .zip(&present)
            .filter(|(_, p)| **p)
            .map(|(h, _)| h.covers)
            .collect();
        let mut coverage = attached.join(", ");
        if present.iter().any(|p| !*p) {
            coverage.push_str(&format!("; not {}", missing(&present)));
        }
        Ok(OwnerRecords {
            ring,
            received,
            malformed,
            lost,
            _links: links,
            _object: object,
            coverage,
        })
    }

    /// The records written since the last call, at most `max` (the rest wait in the ring).
    pub fn drain(&mut self, max: usize) -> Vec<OwnerRecord> {
        let _ = self.ring.consume_raw_n(max);
        std::mem::take(&mut *self.received.lock())
    }

    /// Records the programs could not write (ring buffer full) or that did not parse, since
    /// the start.
    pub fn lost(&self) -> u64 {
        let key = 0u32.to_ne_bytes();
        let in_kernel = match self.lost.lookup_percpu(&key, MapFlags::ANY) {
            Ok(Some(per_cpu)) => per_cpu
                .iter()
                .filter_map(|bytes| Some(u64::from_ne_bytes(bytes.get(..8)?.try_into().ok()?)))
                .sum(),
            _ => 0,
        };
        in_kernel + self.malformed.load(Ordering::Relaxed)
    }
}

/// The hooks the kernel lacks, and from which version they exist.
fn missing(present: &[bool]) -> String {
    HOOKS
        .iter()
        .zip(present)
        .filter(|(_, p)| !**p)
        .map(|(h, _)| {
            format!(
                "{} (tracepoint sock:{}, Linux {})",
                h.covers, h.tracepoint, h.since
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A failed load, in one line: the privilege it lacks, or libbpf's last word (the verifier's
/// message).
fn load_failure(error: &libbpf_rs::Error) -> LoadError {
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

fn reason(error: &libbpf_rs::Error) -> String {
    error.to_string().replace('\n', " ")
}

/// libbpf's own messages: kept (the last few warnings) while loading, to name the cause of a
/// failure in one line, and never printed to collectd's stderr.
mod libbpf_messages {
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

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

use crate::ebpf::{self, libbpf_messages, load_failure, reason, LoadError, RingReader};
use libbpf_rs::{Link, MapHandle, Object, ObjectBuilder};
use record::OwnerRecord;
use std::fmt;

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

/// The loaded programs and what they recorded. Dropping it detaches and unloads them.
pub struct OwnerRecords {
    // Field order is drop order: the ring buffer and the links go before the object.
    ring: RingReader<OwnerRecord>,
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
        let records_map = ebpf::map_handle(&object, "records")?;
        let lost = ebpf::map_handle(&object, "lost")?;
        let ring = RingReader::new(&records_map, record::parse)?;

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
            lost,
            _links: links,
            _object: object,
            coverage,
        })
    }

    /// The records written since the last call, at most `max` (the rest wait in the ring).
    pub fn drain(&mut self, max: usize) -> Vec<OwnerRecord> {
        self.ring.drain(max)
    }

    /// Records the programs could not write (ring buffer full) or that did not parse, since
    /// the start.
    pub fn lost(&self) -> u64 {
        ebpf::per_cpu_count(&self.lost) + self.ring.malformed()
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

//! The exit program (`bpf/exits.bpf.c`): each task's final accounting, written when the kernel
//! frees it, read here from its ring buffer. Loaded at init with the owner programs' plumbing
//! ([`crate::ebpf`]); read by the exit thread.
//!
//! - [`record`]: the record's layout, parsed;
//! - this file: loading (whether the kernel has the tracepoint; why not, in one line),
//!   attaching, reading, counting what was lost. Nothing is pinned: the program and its maps
//!   live as long as this value's descriptors.

pub mod record;

use crate::ebpf::{self, libbpf_messages, load_failure, reason, LoadError, RingReader};
use libbpf_rs::{Link, MapHandle, Object, ObjectBuilder};
use record::ExitRecord;
use std::time::Duration;

/// The program, compiled by build.rs.
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/exits.bpf.o"));

/// The ring buffer's size: ~5,600 records of 184 bytes (and their 8-byte headers). Read at
/// least every 100 ms: room for 50,000 exits a second.
const RING_BYTES: u32 = 1 << 20;

/// The tracepoint, and from which Linux version a BTF program attaches to it.
const TRACEPOINT: &str = "sched_process_free";
const SINCE: &str = "5.5";

/// The loaded program and what it recorded. Dropping it detaches and unloads it.
pub struct ExitRecords {
    ring: RingReader<ExitRecord>,
    lost: MapHandle,
    _link: Link,
    _object: Object,
}

impl ExitRecords {
    /// Loads and attaches the program, or says in one line why it cannot.
    pub fn load() -> Result<ExitRecords, LoadError> {
        libbpf_messages::collect();
        let result = Self::load_inner();
        libbpf_messages::stop();
        result
    }

    fn load_inner() -> Result<ExitRecords, LoadError> {
        let btf = libbpf_rs::btf::Btf::from_vmlinux().map_err(|e| {
            LoadError(format!(
                "the kernel has no BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF, Linux \
                 {SINCE} or later): {e}"
            ))
        })?;
        let name = format!("btf_trace_{TRACEPOINT}");
        if btf
            .type_by_name::<libbpf_rs::btf::BtfType<'_>>(&name)
            .is_none()
        {
            return Err(LoadError(format!(
                "the kernel has no tracepoint sched:{TRACEPOINT} for BTF programs (Linux {SINCE})"
            )));
        }
        drop(btf);
        let mut open = ObjectBuilder::default()
            .open_memory(OBJECT)
            .map_err(|e| LoadError(format!("cannot open the program: {e}")))?;
        for mut map in open.maps_mut() {
            if map.name() == "exits" {
                map.set_max_entries(RING_BYTES)
                    .map_err(|e| LoadError(format!("cannot size the ring buffer: {e}")))?;
            }
        }
        let object = open.load().map_err(|e| load_failure(&e))?;
        let program = object
            .progs_mut()
            .next()
            .ok_or_else(|| LoadError("the object has no program".into()))?;
        let link = program
            .attach()
            .map_err(|e| LoadError(format!("cannot attach on_free: {}", reason(&e))))?;
        let exits = ebpf::map_handle(&object, "exits")?;
        let lost = ebpf::map_handle(&object, "lost")?;
        let ring = RingReader::new(&exits, ExitRecord::parse)?;
        Ok(ExitRecords {
            ring,
            lost,
            _link: link,
            _object: object,
        })
    }

    /// Waits up to `timeout` for records, then takes every one written so far (at most `max`
    /// read from the ring buffer: the rest wait there).
    pub fn poll(&mut self, timeout: Duration, max: usize) -> Vec<ExitRecord> {
        self.ring.poll(timeout, max)
    }

    /// Records the program could not write (ring buffer full) or that did not parse, since
    /// the start.
    pub fn lost(&self) -> u64 {
        ebpf::per_cpu_count(&self.lost) + self.ring.malformed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::process::Command;
    use std::time::Instant;

    /// The program loaded, or `None` after saying why it does not load here (on CI that
    /// fails the test).
    fn load_or_skip() -> Option<ExitRecords> {
        match ExitRecords::load() {
            Ok(records) => Some(records),
            Err(e) => {
                assert!(std::env::var_os("CI").is_none(), "not loaded on CI: {e}");
                eprintln!("SKIP: the exit program does not load here: {e}");
                None
            }
        }
    }

    /// Twenty shells that loop, then run `head -c 1M` into /dev/null: their records (each
    /// shell's and each head's) hold exactly the CPU time their parent's rusage gives the
    /// shells (which counts the heads they reaped), and every byte head wrote. (taskstats'
    /// records, written before the exit's teardown, held 81.7% in the same test.)
    #[test]
    fn records_hold_what_the_parent_is_told_at_reap() {
        let Some(mut records) = load_or_skip() else {
            return;
        };
        const SHELLS: u64 = 20;
        let mut shells = HashSet::new();
        let mut starts = Vec::new();
        let mut reaped_us = 0u64;
        for _ in 0..SHELLS {
            let child = Command::new("sh")
                .args([
                    "-c",
                    "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; \
                     head -c 1048576 /dev/zero > /dev/null",
                ])
                .spawn()
                .unwrap();
            let pid = child.id();
            shells.insert(pid);
            // Its start time as the sampler reads it (a zombie's stat is still there).
            let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
            let starttime = crate::proc::pid_stat::parse(&stat).unwrap().starttime;
            starts.push(crate::exits::ledger::ProcessId { pid, starttime });
            let mut status = 0;
            // SAFETY: an all-zero rusage is a valid value; wait4 fills it.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: `pid` is our child, not reaped yet; the pointers are valid for the call.
            let reaped = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
            assert_eq!(reaped, pid as i32);
            // Reaped above: the Child must not be waited for again.
            std::mem::forget(child);
            let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
            reaped_us += us(usage.ru_utime) + us(usage.ru_stime);
        }
        let mut mine = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while mine.len() < 2 * SHELLS as usize && Instant::now() < deadline {
            mine.extend(
                records
                    .poll(Duration::from_millis(100), 4096)
                    .into_iter()
                    .filter(|r| {
                        shells.contains(&r.tgid) || (shells.contains(&r.ppid) && r.comm == b"head")
                    }),
            );
        }
        assert_eq!(
            mine.len(),
            2 * SHELLS as usize,
            "a record for each shell and head"
        );
        let recorded_us: u64 = mine.iter().map(|r| r.cpu_us().0 + r.cpu_us().1).sum();
        assert!(
            recorded_us.abs_diff(reaped_us) <= reaped_us / 100,
            "records {recorded_us} µs, rusage {reaped_us} µs"
        );
        let written: u64 = mine
            .iter()
            .filter(|r| r.comm == b"head")
            .map(|r| r.io.write_chars)
            .sum();
        assert_eq!(written, SHELLS << 20);
        // Each shell reaped its head: the kernel added head's I/O to the shell's shared I/O,
        // and gives both to us when we reap the shell.
        for shell in mine.iter().filter(|r| shells.contains(&r.tgid)) {
            assert!(!shell.autoreaped, "we waited for it");
            assert!(
                shell.signal_io.write_chars >= 1 << 20,
                "head's writes in the shell's shared I/O: {:?}",
                shell.signal_io
            );
        }
        assert_eq!(records.lost(), 0);
        // Summed into processes, keyed as the sampler keys them.
        let mut ledger = crate::exits::ledger::Ledger::default();
        for record in &mine {
            ledger.add(record);
        }
        let ended: HashSet<_> = ledger.take_ended().iter().map(|p| p.id()).collect();
        for start in &starts {
            assert!(ended.contains(start), "{start:?} not among {ended:?}");
        }
    }

    /// A child whose parent ignores SIGCHLD is reaped by the kernel, its I/O added to no
    /// parent: its record says so; one its parent waits for does not.
    #[test]
    fn a_child_nobody_waits_for_is_told_apart() {
        let Some(mut records) = load_or_skip() else {
            return;
        };
        // SAFETY: the child calls only async-signal-safe functions (signal, fork, usleep,
        // _exit) before it ends, as a child of a multithreaded process must.
        let parent = unsafe { libc::fork() };
        assert!(parent >= 0, "fork failed");
        if parent == 0 {
            // SAFETY: as above; the child never returns into the test harness.
            unsafe {
                libc::signal(libc::SIGCHLD, libc::SIG_IGN);
                if libc::fork() == 0 {
                    libc::_exit(0);
                }
                libc::usleep(100_000);
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: `parent` is our child; the pointer is valid for the call.
        assert_eq!(unsafe { libc::waitpid(parent, &mut status, 0) }, parent);
        let (mut waited, mut orphan) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(10);
        while (waited.is_none() || orphan.is_none()) && Instant::now() < deadline {
            for r in records.poll(Duration::from_millis(100), 4096) {
                if r.tgid == parent as u32 {
                    waited = Some(r.autoreaped);
                } else if r.ppid == parent as u32 {
                    orphan = Some(r.autoreaped);
                }
            }
        }
        assert_eq!(waited, Some(false), "we waited for our child");
        assert_eq!(orphan, Some(true), "its parent ignored SIGCHLD");
    }
}

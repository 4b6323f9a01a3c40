//! Exit records: what each process used, told by the kernel when it ends (a kernel event
//! source, see DESIGN.md). Polling /proc loses whatever a process used after its last sample,
//! and every process that lives between two samples; the kernel's taskstats exit notifications
//! carry each exiting thread's final CPU time, I/O counters, page faults, context switches and
//! delays.
//!
//! - [`taskstats`]: `struct taskstats` and the notification's attributes, parsed by length and
//!   version (pure);
//! - [`source`]: the generic-netlink listener registered for every CPU's exits.
//!
//! Why taskstats rather than an eBPF program on `sched_process_exit`: it needs only
//! CAP_NET_ADMIN (already in the drop-in for conntrack) and no BPF privileges or BTF, it exists
//! on every kernel the plugin supports, and the kernel fills the record with exactly the
//! accounting /proc shows (the same utime, stime and I/O counters), so an exit record and a
//! sample never disagree on what a number means.

pub mod source;
pub mod taskstats;

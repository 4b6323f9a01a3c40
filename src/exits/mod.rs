//! Exit records: what each process used, told by the kernel when it ends (a kernel event
//! source, see DESIGN.md). Polling /proc loses whatever a process used after its last sample,
//! and every process that lives between two samples.
//!
//! - [`taskstats`]: `struct taskstats` and the notification's attributes, parsed by length and
//!   version (pure);
//! - [`source`]: the generic-netlink listener registered for every CPU's exits.
//!
//! Two kernel sources exist, and they differ in what they see. taskstats needs only
//! CAP_NET_ADMIN and no BPF, but writes its record in `do_exit` before the process tears down
//! its memory and files and switches out for the last time: measured, 100 short shells (a loop,
//! then `head -c 1M`) had 81.7% of the CPU time their parent's rusage gave them in their
//! records. An eBPF program on `sched:sched_process_free` runs once the task is reaped and
//! gone, when its counters are final: 100.01% in the same test. So such a program is to be the
//! source where eBPF loads, and taskstats the fallback where it does not.

pub mod source;
pub mod taskstats;

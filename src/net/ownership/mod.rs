//! Who owns a flow: the resolver thread and what it keeps. Nothing here runs on the packet
//! path; capture threads reach it only through the request channel.
//!
//! - [`resolver`]: the resolver thread: flow -> socket (sock_diag, in the flow's namespace) ->
//!   process, retried for a bounded time; and the topology, read and published;
//! - [`inodes`] (with `fd_table`): socket inode -> owning process, maintained incrementally
//!   from /proc;
//! - [`namespaces`]: the host's network namespaces, veths and bridges, and a way into each;
//! - [`ebpf`]: the eBPF owner source: which process used which socket, as the kernel recorded
//!   it, asked first.

pub mod ebpf;
mod fd_table;
pub mod inodes;
pub mod namespaces;
pub mod resolver;

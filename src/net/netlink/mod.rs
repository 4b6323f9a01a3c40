//! The kernel's netlink clients, hand-written on one shared plumbing. Most block (with a
//! receive timeout) and so are used from the resolver thread and at start, never from the
//! packet path.
//!
//! - [`socket`]: the netlink socket, messages and attributes that the clients share;
//! - [`sock_diag`]: the kernel's socket table: one socket by its addresses, in microseconds;
//! - [`sock_destroy`]: sock_diag's announcements of destroyed sockets, read without blocking;
//! - [`rtnetlink`]: the host's links, addresses and the ids of other namespaces;
//! - [`conntrack`]: whether a flow no socket owns is a connection the host NATs.

pub mod conntrack;
pub mod rtnetlink;
pub mod sock_destroy;
pub mod sock_diag;
pub mod socket;

//! The netlink readers over one arbitrary datagram each: the message and attribute walkers and
//! the exact-answer and dump logic they share (`net::netlink::socket`), then the replies of sock_diag
//! (socket lookups) and its announcements of destroyed sockets, rtnetlink (links, addresses, namespace ids) and ctnetlink (conntrack
//! entries). The entry points exist only under `--cfg fuzzing`, which cargo-fuzz sets; each
//! checks its own invariants (see them in the modules).
//!
//! Every input goes to every reader: a kernel reply is the same netlink framing whichever
//! family sent it, and a message found interesting for one reader is a good start for the
//! others.

#![no_main]

use capture::net::netlink::{conntrack, rtnetlink, sock_destroy, sock_diag, socket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    socket::fuzz_datagram(data);
    sock_diag::fuzz_datagram(data);
    sock_destroy::fuzz_datagram(data);
    rtnetlink::fuzz_datagram(data);
    conntrack::fuzz_datagram(data);
});

//! The netlink plumbing of the three hand-written clients — [`super::sock_diag`]
//! (`NETLINK_SOCK_DIAG`), [`super::rtnetlink`] (`NETLINK_ROUTE`) and [`super::conntrack`]
//! (`NETLINK_NETFILTER`) — which is the same for every netlink protocol: the socket (opened
//! close-on-exec, with a receive timeout; the receive buffer of one the kernel sends to
//! unasked), its sequence numbers and reusable buffers, the
//! `nlmsghdr` and aligned `nlattr` writing of a request, the message and attribute iteration
//! over a received datagram, and what `NLMSG_ERROR` and `NLMSG_DONE` mean to an exact request
//! and to a dump. Each client keeps its protocol: its request bodies, its reply parsing, and
//! what an errno means to it (`ENOENT` is "no such socket" to sock_diag, "no such entry" to
//! ctnetlink, and a plain error to rtnetlink).
//!
//! Hand-written because all of it is a few hundred lines, where a netlink crate would bring a
//! large dependency tree and generic message types the clients would still map to theirs; and
//! owning the parser lets malformed kernel data be refused with an error instead of a panic:
//! nothing here reads a byte it has not checked the datagram holds.
//!
//! The kernel ABI it relies on (include/uapi/linux/netlink.h, net/netlink/af_netlink.c):
//! - `struct nlmsghdr` is 16 bytes: length (u32, the header included), type (u16), flags (u16),
//!   sequence number (u32) and port id (u32), in host byte order. The messages of a datagram
//!   start on 4-byte boundaries (`NLMSG_ALIGN`); a message's length does not count the padding
//!   after it, and the last one of a datagram may have none.
//! - `struct nlattr` is 4 bytes: length (u16, the header included, the padding not) and type
//!   (u16, whose top two bits are the flags `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER`), in host
//!   byte order; attributes start on 4-byte boundaries (`NLA_ALIGN`). A nested attribute's
//!   value is more attributes, and its length counts the padding of the last of them (that is
//!   how `nla_nest_end` measures it).
//! - A request is sent to port id 0, the kernel, with `nlmsg_pid` 0: the kernel fills in the
//!   socket's own. Every message of the answer carries the request's sequence number, which is
//!   how an answer still queued for an earlier request that gave up waiting (the receive
//!   timeout) is told from the current one.
//! - `NLMSG_ERROR` carries `struct nlmsgerr`: an int error first — 0 for an acknowledgement, a
//!   negative errno for a refusal — then the request echoed.
//! - A dump (`NLM_F_DUMP`) is answered over as many datagrams as it takes and ends with
//!   `NLMSG_DONE`, whose payload is an int status (negative: an errno). Its messages carry
//!   `NLM_F_DUMP_INTR` when the table changed while the dump was produced.
//! - `recv` with `MSG_TRUNC` returns a datagram's full length even when the buffer was shorter
//!   (and the rest is lost), so a cut datagram is seen, and with `MSG_PEEK` its size is learnt
//!   before it is read.
//! - A netlink socket speaks for the network namespace current at `socket()` time, whichever
//!   thread uses it later.

use rustix::fd::OwnedFd;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, Protocol, RecvFlags, SendFlags, SocketFlags, SocketType};
use std::io;
use std::time::Duration;

// linux/netlink.h.
pub(crate) const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP_INTR: u16 = 0x10;
/// `NLM_F_ROOT | NLM_F_MATCH`.
const NLM_F_DUMP: u16 = 0x300;
const NLA_HDRLEN: usize = 4;
const NLA_F_NESTED: u16 = 0x8000;
/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER` are flags, not part of an attribute's type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The kernel always answers; the timeout only keeps a broken answer from wedging the caller.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);

/// Requests are a few dozen bytes (the largest, an IPv6 conntrack get, is 96).
const REQUEST_CAPACITY: usize = 128;

/// How large the receive buffer is, and what becomes of a datagram larger than it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RecvBuffer {
    /// This many bytes; a larger datagram is an error rather than read in part. One `recv`
    /// per datagram: for protocols whose replies have a known bound.
    Fixed(usize),
    /// This many bytes first, grown to fit a larger datagram: each datagram's size is peeked
    /// at before it is read, one more `recv` per datagram, for dumps whose datagrams have no
    /// useful bound (a link with many SR-IOV VFs) and cannot be resumed if one is cut.
    Growing(usize),
}

/// A netlink socket with its sequence numbers and its request and receive buffers, reused for
/// every request.
pub(crate) struct Socket {
    pub(crate) fd: OwnedFd,
    seq: u32,
    request: Vec<u8>,
    buf: Vec<u8>,
    growing: bool,
    /// Reads return at once when nothing is queued ([`Socket::receive_queued`]).
    dontwait: bool,
}

impl Socket {
    /// A socket of `protocol` in the calling thread's network namespace. `None` is protocol 0,
    /// `NETLINK_ROUTE`, which rustix's non-zero `Protocol` cannot name.
    pub(crate) fn open(protocol: Option<Protocol>, buffer: RecvBuffer) -> io::Result<Socket> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            protocol,
        )?;
        rustix::net::sockopt::set_socket_timeout(
            &fd,
            rustix::net::sockopt::Timeout::Recv,
            Some(RECV_TIMEOUT),
        )?;
        Ok(Socket::with_fd(fd, buffer))
    }

    /// Asks for a receive buffer of `bytes` (the kernel doubles it for its bookkeeping), for
    /// a socket the kernel sends to unasked: `SO_RCVBUFFORCE`, which passes
    /// `net.core.rmem_max` with `CAP_NET_ADMIN` in the initial namespace; without it
    /// (`EPERM`), `SO_RCVBUF`, which the kernel caps at `rmem_max`.
    pub(crate) fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        use rustix::net::sockopt;
        match sockopt::set_socket_recv_buffer_size_force(&self.fd, bytes) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::PERM) => {
                Ok(sockopt::set_socket_recv_buffer_size(&self.fd, bytes)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn with_fd(fd: OwnedFd, buffer: RecvBuffer) -> Socket {
        let (size, growing) = match buffer {
            RecvBuffer::Fixed(size) => (size, false),
            RecvBuffer::Growing(size) => (size, true),
        };
        Socket {
            fd,
            seq: 0,
            request: Vec::with_capacity(REQUEST_CAPACITY),
            buf: vec![0; size],
            growing,
            dontwait: false,
        }
    }

    /// Sends one request, which `build` writes whole (see [`message`]) into the reusable
    /// request buffer, given the request's sequence number: a new one for every request.
    /// Returns that number, which every message of the answer carries.
    pub(crate) fn send(&mut self, build: impl FnOnce(&mut Vec<u8>, u32)) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        build(&mut self.request, self.seq);
        let kernel = SocketAddrNetlink::new(0, 0);
        let sent = rustix::net::sendto(&self.fd, &self.request, SendFlags::empty(), &kernel)?;
        if sent != self.request.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short netlink send",
            ));
        }
        Ok(self.seq)
    }

    /// Sends the message of type `kind` with `flags` whose body `body` appends after the
    /// header; its sequence number.
    pub(crate) fn request(
        &mut self,
        kind: u16,
        flags: u16,
        body: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<u32> {
        self.send(|out, seq| message(out, kind, flags, seq, body))
    }

    /// Receives datagrams until `take` finds in one what it waits for (the answer to an exact
    /// request, the end of a dump) and returns that; `take` returns `None` to wait for the
    /// next datagram.
    pub(crate) fn receive_until<T>(
        &mut self,
        mut take: impl FnMut(&[u8]) -> io::Result<Option<T>>,
    ) -> io::Result<T> {
        loop {
            let len = self.receive()?;
            if let Some(taken) = take(&self.buf[..len])? {
                return Ok(taken);
            }
        }
    }

    /// [`Socket::receive_until`] without waiting: `WouldBlock` when nothing is queued. For a
    /// listener that has read one datagram and takes what else has come.
    pub(crate) fn receive_queued<T>(
        &mut self,
        take: impl FnMut(&[u8]) -> io::Result<Option<T>>,
    ) -> io::Result<T> {
        self.dontwait = true;
        let received = self.receive_until(take);
        self.dontwait = false;
        received
    }

    /// Sends a dump request of type `kind` (its body appended by `body`) and receives the whole
    /// dump: the messages of type `reply`, each parsed by `parse` (`None`: skipped).
    pub(crate) fn dump<T>(
        &mut self,
        kind: u16,
        body: impl FnOnce(&mut Vec<u8>),
        reply: u16,
        parse: fn(&[u8]) -> io::Result<Option<T>>,
    ) -> io::Result<Dump<T>> {
        let seq = self.request(kind, NLM_F_REQUEST | NLM_F_DUMP, body)?;
        let mut dump = Dump::new(seq, reply, parse);
        self.receive_until(|datagram| Ok(dump.absorb(datagram)?.then_some(())))?;
        Ok(dump)
    }

    /// One whole datagram into the buffer; its length.
    fn receive(&mut self) -> io::Result<usize> {
        let wait = if self.dontwait {
            RecvFlags::DONTWAIT
        } else {
            RecvFlags::empty()
        };
        loop {
            if self.growing {
                // Peek at the size first (MSG_TRUNC reports the full length): a datagram read
                // into a short buffer is cut and lost, and a dump cannot be resumed.
                let full = match rustix::net::recv(
                    &self.fd,
                    &mut [0u8; 0][..],
                    RecvFlags::PEEK | RecvFlags::TRUNC | wait,
                ) {
                    Ok((_, full)) => full,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                };
                if full > self.buf.len() {
                    self.buf.resize(full, 0);
                }
            }
            match rustix::net::recv(&self.fd, &mut self.buf[..], RecvFlags::TRUNC | wait) {
                // A fixed buffer too small, or a datagram that grew between peek and read.
                Ok((len, full)) if full > len => {
                    return Err(malformed(&format!(
                        "a datagram of {full} bytes does not fit the {len}-byte buffer"
                    )))
                }
                Ok((len, _)) => return Ok(len),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Writes one whole message into `out`, replacing what it held: the `nlmsghdr`, then what
/// `body` appends; the length is filled in last.
pub(crate) fn message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    out.clear();
    // nlmsg_len, set below.
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel fills in our port id.
    out.extend_from_slice(&0u32.to_ne_bytes());
    body(out);
    // A request is a few dozen bytes, far from u32::MAX.
    let len = out.len() as u32;
    out[0..4].copy_from_slice(&len.to_ne_bytes());
}

/// Appends an attribute, padded to 4 bytes (the padding is not part of its length).
pub(crate) fn put_attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    // Attribute values here are addresses, ports and fds, far from u16::MAX.
    let len = (NLA_HDRLEN + value.len()) as u16;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(align4(out.len()), 0);
}

/// Starts a nested attribute (flagged `NLA_F_NESTED`); its offset, for [`end_nested`].
pub(crate) fn begin_nested(out: &mut Vec<u8>, kind: u16) -> usize {
    let start = out.len();
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    start
}

/// Sets a nested attribute's length: everything appended since it began, padding included,
/// as the kernel's `nla_nest_end` counts it.
pub(crate) fn end_nested(out: &mut [u8], start: usize) {
    let len = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}

/// `NLMSG_ALIGN` and `NLA_ALIGN`: messages and attributes start on 4-byte boundaries.
fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// One message of a received datagram.
#[derive(Debug)]
pub(crate) struct Message<'a> {
    pub(crate) kind: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    /// What follows the header, up to the message's length (without the padding).
    pub(crate) payload: &'a [u8],
}

/// The netlink messages of one datagram, each checked against the datagram's length. A
/// malformed one ends the iteration with an error.
pub(crate) fn messages(mut data: &[u8]) -> impl Iterator<Item = io::Result<Message<'_>>> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let Some(header) = data.get(..NLMSG_HDRLEN) else {
            data = &[];
            return Some(Err(malformed("truncated netlink header")));
        };
        let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = u16::from_ne_bytes([header[4], header[5]]);
        let flags = u16::from_ne_bytes([header[6], header[7]]);
        let seq = u32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
        // A length short of the header is refused here too (the range is then empty or
        // reversed), so every message moves on by at least a header.
        let Some(payload) = data.get(NLMSG_HDRLEN..len) else {
            data = &[];
            return Some(Err(malformed("netlink message length out of bounds")));
        };
        data = data.get(align4(len)..).unwrap_or(&[]);
        Some(Ok(Message {
            kind,
            flags,
            seq,
            payload,
        }))
    })
}

/// The attributes (`struct nlattr` + value) packed in `data`: their types (without the flag
/// bits) and values, each checked against its length. A malformed one ends the iteration with
/// an error.
pub(crate) fn attributes(mut data: &[u8]) -> impl Iterator<Item = io::Result<(u16, &[u8])>> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let header = data.get(..NLA_HDRLEN);
        let len = header.map_or(0, |h| u16::from_ne_bytes([h[0], h[1]]) as usize);
        // A length short of the header is refused, so every attribute moves on by at least one.
        let value = data.get(NLA_HDRLEN..len.max(NLA_HDRLEN));
        let (Some(header), Some(value)) = (header, value.filter(|_| len >= NLA_HDRLEN)) else {
            data = &[];
            return Some(Err(malformed("attribute length out of bounds")));
        };
        let kind = u16::from_ne_bytes([header[2], header[3]]) & NLA_TYPE_MASK;
        data = data.get(align4(len)..).unwrap_or(&[]);
        Some(Ok((kind, value)))
    })
}

/// `struct nlmsgerr.error`, or the status int of `NLMSG_DONE`: 0 or a negative errno.
fn error_code(payload: &[u8]) -> io::Result<i32> {
    match payload.get(..4) {
        Some(b) => Ok(i32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(malformed("truncated netlink error")),
    }
}

/// The error a non-zero error code from the kernel stands for: a negative errno. Anything else
/// in its place is malformed data, not an errno (and `i32::MIN` cannot even be negated).
fn kernel_error(code: i32) -> io::Error {
    match code.checked_neg().filter(|&errno| errno > 0) {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => malformed(&format!("netlink error code {code}")),
    }
}

/// What one datagram says about `seq`, an exact request (no `NLM_F_DUMP`) whose answer is one
/// message of type `reply`, which `parse` reads:
/// - `None`: nothing (messages of an earlier request that gave up waiting are skipped): wait
///   for the next datagram;
/// - `Some(Some(answer))`: the answer. A request without `NLM_F_ACK` gets no acknowledgement
///   after it, so the end of the datagram ends the wait;
/// - `Some(None)`: an acknowledgement, or an `NLMSG_DONE` (never sent for an exact request),
///   with no answer before it.
///
/// An `NLMSG_ERROR` with an errno is that error: whether `ENOENT` means "there is none" is the
/// caller's to say.
pub(crate) fn exact_answer<T>(
    datagram: &[u8],
    seq: u32,
    reply: u16,
    mut parse: impl FnMut(&[u8]) -> io::Result<T>,
) -> io::Result<Option<Option<T>>> {
    let mut found = None;
    for message in messages(datagram) {
        let message = message?;
        if message.seq != seq {
            continue;
        }
        match message.kind {
            kind if kind == reply => found = Some(parse(message.payload)?),
            NLMSG_ERROR => {
                return match error_code(message.payload)? {
                    0 => Ok(Some(found)),
                    code => Err(kernel_error(code)),
                }
            }
            NLMSG_DONE => return Ok(Some(found)),
            _ => {}
        }
    }
    Ok(found.map(Some))
}

/// One dump being received.
pub(crate) struct Dump<T> {
    seq: u32,
    /// The message type of an entry.
    reply: u16,
    parse: fn(&[u8]) -> io::Result<Option<T>>,
    /// The entries so far, in the kernel's order.
    pub(crate) items: Vec<T>,
    /// Whether a message carried `NLM_F_DUMP_INTR`: the table changed while it was dumped, an
    /// entry may be missing or repeated. What to do about it is the caller's choice.
    pub(crate) interrupted: bool,
}

impl<T> Dump<T> {
    fn new(seq: u32, reply: u16, parse: fn(&[u8]) -> io::Result<Option<T>>) -> Self {
        Dump {
            seq,
            reply,
            parse,
            items: Vec::new(),
            interrupted: false,
        }
    }

    /// Takes one datagram's messages; true once the dump is complete.
    fn absorb(&mut self, datagram: &[u8]) -> io::Result<bool> {
        for message in messages(datagram) {
            let message = message?;
            if message.seq != self.seq {
                // The rest of an earlier request that failed half-way.
                continue;
            }
            self.interrupted |= message.flags & NLM_F_DUMP_INTR != 0;
            match message.kind {
                kind if kind == self.reply => self.items.extend((self.parse)(message.payload)?),
                NLMSG_DONE => {
                    // The payload is the dump's final status; negative is an errno.
                    let status = error_code(message.payload).unwrap_or(0);
                    if status < 0 {
                        return Err(kernel_error(status));
                    }
                    return Ok(true);
                }
                NLMSG_ERROR => match error_code(message.payload)? {
                    0 => {}
                    code => return Err(kernel_error(code)),
                },
                _ => {}
            }
        }
        Ok(false)
    }
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {what}"))
}

/// The sequence number of the first message of `datagram` (0 when it has none), so that a
/// fuzzer's datagram is read as the answer to the request it claims to answer.
#[cfg(fuzzing)]
pub(crate) fn fuzz_seq(datagram: &[u8]) -> u32 {
    datagram
        .get(8..12)
        .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// Entry point of the `netlink` fuzz target (`fuzz/`, built with `--cfg fuzzing` only): every
/// reader of this module over one arbitrary datagram. Never panics; every message and
/// attribute lies inside what it was cut from.
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz_datagram(datagram: &[u8]) {
    let within = |inner: &[u8], outer: &[u8]| {
        let (start, end) = (
            inner.as_ptr() as usize,
            inner.as_ptr() as usize + inner.len(),
        );
        let (o_start, o_end) = (
            outer.as_ptr() as usize,
            outer.as_ptr() as usize + outer.len(),
        );
        assert!(inner.is_empty() || (o_start <= start && end <= o_end));
    };
    for message in messages(datagram).flatten() {
        within(message.payload, datagram);
        for (_, value) in attributes(message.payload).flatten() {
            within(value, message.payload);
        }
    }
    let seq = fuzz_seq(datagram);
    let reply = datagram
        .get(4..6)
        .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]));
    let _ = exact_answer(datagram, seq, reply, |payload| Ok(payload.len()));
    let mut dump = Dump::new(seq, reply, |payload| Ok(Some(payload.len())));
    if dump.absorb(datagram).is_ok() {
        assert!(dump.items.iter().all(|&len| len <= datagram.len()));
    }
}

#[cfg(test)]
mod tests;

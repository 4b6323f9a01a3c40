//! The netlink plumbing of the three hand-written clients — [`super::sockdiag`]
//! (`NETLINK_SOCK_DIAG`), [`super::rtnetlink`] (`NETLINK_ROUTE`) and [`super::conntrack`]
//! (`NETLINK_NETFILTER`) — which is the same for every netlink protocol: the socket (opened
//! close-on-exec, with a receive timeout), its sequence numbers and reusable buffers, the
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
    fd: OwnedFd,
    seq: u32,
    request: Vec<u8>,
    buf: Vec<u8>,
    growing: bool,
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
        loop {
            if self.growing {
                // Peek at the size first (MSG_TRUNC reports the full length): a datagram read
                // into a short buffer is cut and lost, and a dump cannot be resumed.
                let full = match rustix::net::recv(
                    &self.fd,
                    &mut [0u8; 0][..],
                    RecvFlags::PEEK | RecvFlags::TRUNC,
                ) {
                    Ok((_, full)) => full,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                };
                if full > self.buf.len() {
                    self.buf.resize(full, 0);
                }
            }
            match rustix::net::recv(&self.fd, &mut self.buf[..], RecvFlags::TRUNC) {
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
mod tests {
    use super::*;

    /// A netlink message around `payload`, padded as in a datagram.
    fn datagram_message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        message(&mut m, kind, flags, seq, |out| {
            out.extend_from_slice(payload)
        });
        m.resize(align4(m.len()), 0);
        m
    }

    /// A test entry: a u32 payload; 0 is skipped, as a parser skips what it does not report.
    fn parse_u32(payload: &[u8]) -> io::Result<Option<u32>> {
        match payload.get(..4) {
            Some(b) => Ok(Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]])).filter(|&v| v != 0)),
            None => Err(malformed("short test entry")),
        }
    }

    /// Deterministic noise for the fuzz loops (xorshift32).
    fn noise(seed: u32, len: usize) -> Vec<u8> {
        let mut x = seed.max(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn alignment() {
        let aligned: Vec<usize> = (0..10).map(align4).collect();
        assert_eq!(aligned, [0, 4, 4, 4, 4, 8, 8, 8, 8, 12]);
    }

    #[test]
    fn request_header_layout() {
        let mut out = vec![0xaa; 300];
        message(&mut out, 0x0101, NLM_F_REQUEST | NLM_F_DUMP, 7, |out| {
            out.extend_from_slice(&[1, 2, 3, 4])
        });
        let mut expected = Vec::new();
        expected.extend_from_slice(&20u32.to_ne_bytes());
        expected.extend_from_slice(&0x0101u16.to_ne_bytes());
        expected.extend_from_slice(&0x0301u16.to_ne_bytes());
        expected.extend_from_slice(&7u32.to_ne_bytes());
        expected.extend_from_slice(&0u32.to_ne_bytes());
        expected.extend_from_slice(&[1, 2, 3, 4]);
        // What the buffer held before is gone.
        assert_eq!(out, expected);
        let parsed: Vec<_> = messages(&out).collect::<io::Result<_>>().unwrap();
        assert_eq!(parsed.len(), 1);
        let m = &parsed[0];
        assert_eq!(
            (m.kind, m.flags, m.seq, m.payload),
            (0x0101, 0x0301, 7, &[1, 2, 3, 4][..])
        );
    }

    /// An attribute header and what follows it, as raw bytes in host order.
    fn nla(len: u16, kind: u16, rest: &[u8]) -> Vec<u8> {
        [&len.to_ne_bytes()[..], &kind.to_ne_bytes(), rest].concat()
    }

    #[test]
    fn attributes_are_padded_and_nests_count_the_padding() {
        let mut out = Vec::new();
        put_attribute(&mut out, 1, &[6]);
        let nest = begin_nested(&mut out, 2);
        put_attribute(&mut out, 3, &[0xab, 0xcd]);
        put_attribute(&mut out, 4, &[]);
        end_nested(&mut out, nest);
        put_attribute(&mut out, 5, &[1, 2, 3, 4]);
        let expected = [
            // Length 5, padded to 8.
            nla(5, 1, &[6, 0, 0, 0]),
            // Nested, 16 bytes: its contents with their padding.
            nla(16, 2 | NLA_F_NESTED, &[]),
            nla(6, 3, &[0xab, 0xcd, 0, 0]),
            nla(4, 4, &[]),
            nla(8, 5, &[1, 2, 3, 4]),
        ]
        .concat();
        assert_eq!(out, expected);
        let top: Vec<_> = attributes(&out).collect::<io::Result<_>>().unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(top[0], (1, &[6][..]));
        // The flag bit is not part of the type.
        assert_eq!(top[1].0, 2);
        assert_eq!(top[2], (5, &[1, 2, 3, 4][..]));
        let inner: Vec<_> = attributes(top[1].1).collect::<io::Result<_>>().unwrap();
        assert_eq!(inner, [(3, &[0xab, 0xcd][..]), (4, &[][..])]);
    }

    #[test]
    fn messages_are_aligned_and_the_last_needs_no_padding() {
        let mut datagram = datagram_message(20, 0x2, 1, &[1, 2, 3, 4, 5]);
        assert_eq!(datagram.len(), 24);
        // The last message unpadded: 16 + 1 bytes.
        let mut last = Vec::new();
        message(&mut last, NLMSG_DONE, 0x2, 1, |out| out.push(9));
        datagram.extend_from_slice(&last);
        let parsed: Vec<_> = messages(&datagram).collect::<io::Result<_>>().unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].payload, &[1, 2, 3, 4, 5]);
        assert_eq!((parsed[1].kind, parsed[1].payload), (NLMSG_DONE, &[9][..]));
        assert_eq!(messages(&[]).count(), 0);
    }

    #[test]
    fn malformed_messages_end_the_iteration_with_one_error() {
        let good = datagram_message(20, 0, 1, &[0; 8]);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        // A header cut short.
        cases.push(good[..10].to_vec());
        // Lengths short of the header, and past the datagram.
        for len in [0u32, 4, 15, 25, u32::MAX] {
            let mut m = good.clone();
            m[0..4].copy_from_slice(&len.to_ne_bytes());
            cases.push(m);
        }
        for case in cases {
            let all: Vec<_> = messages(&case).collect();
            assert_eq!(all.len(), 1, "{case:?}");
            let e = all.into_iter().next().unwrap().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        }
        // A good message, then garbage: the good one, then the error.
        let mut then_garbage = good.clone();
        then_garbage.extend_from_slice(&[1, 2, 3]);
        let all: Vec<_> = messages(&then_garbage).collect();
        assert!(all[0].is_ok() && all[1].is_err() && all.len() == 2);
    }

    #[test]
    fn malformed_attributes_end_the_iteration_with_one_error() {
        for bad in [
            // A header cut short.
            vec![5, 0],
            // Shorter than its header, and 0.
            nla(3, 1, &[0; 4]),
            nla(0, 1, &[]),
            // Past the data.
            nla(9, 1, &[1, 2, 3, 4]),
        ] {
            let all: Vec<_> = attributes(&bad).collect();
            assert_eq!(all.len(), 1, "{bad:?}");
            assert!(all[0].is_err(), "{bad:?}");
        }
        // The last attribute may go without its padding.
        let mut unpadded = Vec::new();
        put_attribute(&mut unpadded, 1, &[7]);
        unpadded.truncate(5);
        assert_eq!(
            attributes(&unpadded).next().unwrap().unwrap(),
            (1, &[7][..])
        );
    }

    /// Every prefix of well-formed data, and noise: errors or items, never a panic, and
    /// iterations that end (every item moves on by at least a header).
    #[test]
    fn truncated_and_garbage_input_never_panics() {
        let mut attrs = Vec::new();
        put_attribute(&mut attrs, 1, &[1, 2, 3]);
        let nest = begin_nested(&mut attrs, 2);
        put_attribute(&mut attrs, 3, &[4; 16]);
        end_nested(&mut attrs, nest);
        let mut datagram = datagram_message(20, 0x2, 3, &attrs);
        datagram.extend(datagram_message(NLMSG_ERROR, 0, 3, &(-2i32).to_ne_bytes()));
        datagram.extend(datagram_message(NLMSG_DONE, 0x2, 3, &[]));
        let walk = |bytes: &[u8]| {
            let mut count = 0;
            for message in messages(bytes) {
                count += 1;
                let Ok(message) = message else { continue };
                let _ = error_code(message.payload);
                for attribute in attributes(message.payload).flatten() {
                    count += attributes(attribute.1).count();
                }
            }
            count += attributes(bytes).count();
            assert!(
                count <= bytes.len() + 2,
                "{count} items from {} bytes",
                bytes.len()
            );
            let _ = exact_answer(bytes, 3, 20, |p| Ok(p.len()));
            let _ = Dump::new(3, 20, parse_u32).absorb(bytes);
        };
        for cut in 0..=datagram.len() {
            walk(&datagram[..cut]);
        }
        for at in 0..datagram.len() {
            for value in [0x00, 0x01, 0x03, 0x0f, 0x10, 0x80, 0xff] {
                let mut garbled = datagram.clone();
                garbled[at] = value;
                walk(&garbled);
            }
        }
        for seed in 1..2000 {
            walk(&noise(seed, (seed as usize * 7) % 200));
        }
    }

    #[test]
    fn kernel_error_codes() {
        assert_eq!(kernel_error(-libc::EPERM).raw_os_error(), Some(libc::EPERM));
        for code in [1, i32::MAX, i32::MIN] {
            assert_eq!(kernel_error(code).kind(), io::ErrorKind::InvalidData);
        }
        assert!(error_code(&[1, 2, 3]).is_err());
    }

    #[test]
    fn exact_answers() {
        let entry = datagram_message(20, 0, 5, &7u32.to_ne_bytes());
        let ack = datagram_message(NLMSG_ERROR, 0, 5, &0i32.to_ne_bytes());
        let enoent = datagram_message(NLMSG_ERROR, 0, 5, &(-libc::ENOENT).to_ne_bytes());
        let done = datagram_message(NLMSG_DONE, 0, 5, &0i32.to_ne_bytes());
        let answer = |datagram: &[u8]| exact_answer(datagram, 5, 20, parse_u32);
        assert_eq!(answer(&entry).unwrap(), Some(Some(Some(7))));
        // Another request's answer: keep waiting.
        assert_eq!(exact_answer(&entry, 4, 20, parse_u32).unwrap(), None);
        // An errno, ENOENT included, is the kernel's error.
        let e = answer(&enoent).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        // An acknowledgement or a DONE without an answer: there is none.
        assert_eq!(answer(&ack).unwrap(), Some(None));
        assert_eq!(answer(&done).unwrap(), Some(None));
        // An answer then an acknowledgement in one datagram: the answer.
        let both = [entry.clone(), ack].concat();
        assert_eq!(answer(&both).unwrap(), Some(Some(Some(7))));
        // An unparsable answer is an error, whatever follows it.
        let short = datagram_message(20, 0, 5, &[1]);
        assert!(answer(&[short, done].concat()).is_err());
        // Codes that are no errno.
        let odd = datagram_message(NLMSG_ERROR, 0, 5, &i32::MIN.to_ne_bytes());
        assert_eq!(answer(&odd).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn dump_datagrams() {
        let entry = |seq, flags, value: u32| datagram_message(20, flags, seq, &value.to_ne_bytes());
        let mut dump = Dump::new(7, 20, parse_u32);
        // A late answer to request 6 is skipped; three entries (one of them skipped by the
        // parser) over two datagrams, then DONE.
        let first = [entry(6, 0x2, 1), entry(7, 0x2, 2), entry(7, 0x2, 0)].concat();
        assert!(!dump.absorb(&first).unwrap());
        let done = datagram_message(NLMSG_DONE, 0x2, 7, &0i32.to_ne_bytes());
        let second = [entry(7, 0x2, 3), done].concat();
        assert!(dump.absorb(&second).unwrap());
        assert_eq!(dump.items, [2, 3]);
        assert!(!dump.interrupted);

        // NLM_F_DUMP_INTR on any message marks the dump.
        let mut dump = Dump::new(8, 20, parse_u32);
        assert!(!dump.absorb(&entry(8, 0x2 | NLM_F_DUMP_INTR, 1)).unwrap());
        assert!(dump.interrupted);

        // An acknowledgement goes by; an error, or a negative DONE status, fails the dump.
        let mut dump = Dump::new(9, 20, parse_u32);
        let ack = datagram_message(NLMSG_ERROR, 0, 9, &0i32.to_ne_bytes());
        assert!(!dump.absorb(&ack).unwrap());
        let error = datagram_message(NLMSG_ERROR, 0, 9, &(-libc::EBUSY).to_ne_bytes());
        let e = dump.absorb(&error).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBUSY));
        let done = datagram_message(NLMSG_DONE, 0x2, 9, &(-libc::EINTR).to_ne_bytes());
        let e = Dump::new(9, 20, parse_u32).absorb(&done).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINTR));
        // A DONE without its status ends the dump.
        let bare_done = datagram_message(NLMSG_DONE, 0x2, 9, &[]);
        assert!(Dump::new(9, 20, parse_u32).absorb(&bare_done).unwrap());
        // A malformed message in the datagram: an error, not a panic.
        let mut cut = entry(9, 0x2, 1);
        cut.truncate(18);
        assert!(Dump::new(9, 20, parse_u32).absorb(&cut).is_err());
    }

    /// A socket whose datagrams come from the other end of a local pair (AF_UNIX datagrams
    /// report their full length under MSG_TRUNC as netlink ones do).
    fn pair(buffer: RecvBuffer) -> (Socket, OwnedFd) {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        (Socket::with_fd(ours, buffer), theirs)
    }

    fn put(fd: &OwnedFd, datagram: &[u8]) {
        let sent = rustix::net::send(fd, datagram, SendFlags::empty()).unwrap();
        assert_eq!(sent, datagram.len());
    }

    #[test]
    fn a_fixed_buffer_refuses_a_larger_datagram_and_goes_on() {
        let (mut socket, peer) = pair(RecvBuffer::Fixed(64));
        put(&peer, &[1; 100]);
        put(&peer, &[2; 64]);
        let e = socket.receive().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(socket.receive().unwrap(), 64);
        assert_eq!(socket.buf.len(), 64);
    }

    #[test]
    fn a_growing_buffer_takes_a_larger_datagram_whole() {
        let (mut socket, peer) = pair(RecvBuffer::Growing(64));
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        put(&peer, &[3; 10]);
        put(&peer, &big);
        assert_eq!(socket.receive().unwrap(), 10);
        assert_eq!(socket.receive().unwrap(), big.len());
        assert_eq!(&socket.buf[..big.len()], &big[..]);
        // Waiting for a datagram that holds something: earlier ones are passed over.
        put(&peer, &[0; 4]);
        put(&peer, &[5; 4]);
        let first = socket.receive_until(|d| Ok(d.iter().find(|&&b| b != 0).copied()));
        assert_eq!(first.unwrap(), 5);
    }

    /// The kernel's side: an unknown rtnetlink message type is refused with EOPNOTSUPP in an
    /// NLMSG_ERROR that carries the request's sequence number, and a dump is whole.
    #[test]
    fn live_route_socket() {
        let mut socket = Socket::open(None, RecvBuffer::Growing(4096)).unwrap();
        let seq = socket
            .request(0x7fff, NLM_F_REQUEST, |out| out.extend_from_slice(&[0; 4]))
            .unwrap();
        let answer = socket.receive_until(|d| exact_answer(d, seq, 0x7fff, |_| Ok(())));
        assert_eq!(answer.unwrap_err().raw_os_error(), Some(libc::EOPNOTSUPP));
        // RTM_GETLINK (18) dump, RTM_NEWLINK (16) entries: the interface indexes; lo is one.
        let dump = socket
            .dump(
                18,
                |out| out.extend_from_slice(&[0; 16]),
                16,
                |p| {
                    Ok(p.get(4..8)
                        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]])))
                },
            )
            .unwrap();
        assert!(dump.items.contains(&1), "{:?}", dump.items);
        assert_ne!(seq, dump.seq);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Message types the tests use for entries: anything but the control types.
        const ENTRY: u16 = 20;

        fn payload() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(any::<u8>(), 0..40)
        }

        proptest! {
            /// Messages written into one datagram come back, each whole, in order.
            #[test]
            fn messages_come_back(
                written in prop::collection::vec((any::<u16>(), any::<u16>(), any::<u32>(), payload()), 0..8),
            ) {
                let datagram: Vec<u8> = written
                    .iter()
                    .flat_map(|(kind, flags, seq, payload)| datagram_message(*kind, *flags, *seq, payload))
                    .collect();
                let read: Vec<_> = messages(&datagram).collect::<io::Result<_>>().unwrap();
                prop_assert_eq!(read.len(), written.len());
                for (m, (kind, flags, seq, payload)) in read.iter().zip(&written) {
                    prop_assert_eq!((m.kind, m.flags, m.seq, m.payload), (*kind, *flags, *seq, &payload[..]));
                }
            }

            /// Attributes, nested ones among them, come back with their types (flag bits
            /// cleared) and values.
            #[test]
            fn attributes_come_back(
                written in prop::collection::vec(
                    (0u16..=NLA_TYPE_MASK, payload(), prop::collection::vec((0u16..=NLA_TYPE_MASK, payload()), 0..4)),
                    0..8,
                ),
            ) {
                let mut out = Vec::new();
                for (kind, value, nested) in &written {
                    if nested.is_empty() {
                        put_attribute(&mut out, *kind, value);
                    } else {
                        let start = begin_nested(&mut out, *kind);
                        for (k, v) in nested {
                            put_attribute(&mut out, *k, v);
                        }
                        end_nested(&mut out, start);
                    }
                }
                let read: Vec<_> = attributes(&out).collect::<io::Result<_>>().unwrap();
                prop_assert_eq!(read.len(), written.len());
                for ((kind, value), (w_kind, w_value, nested)) in read.iter().zip(&written) {
                    prop_assert_eq!(kind, w_kind);
                    if nested.is_empty() {
                        prop_assert_eq!(value, &&w_value[..]);
                    } else {
                        let inner: Vec<_> = attributes(value).collect::<io::Result<_>>().unwrap();
                        let expected: Vec<(u16, &[u8])> = nested.iter().map(|(k, v)| (*k, &v[..])).collect();
                        prop_assert_eq!(inner, expected);
                    }
                }
            }

            /// A dump over several datagrams, with late answers to an earlier request mixed
            /// in: the entries of this request in order (those the parser skips left out),
            /// complete at DONE, interrupted when any of its messages said so.
            #[test]
            fn dumps_collect_their_entries(
                seq in 1u32..1000,
                datagrams in prop::collection::vec(
                    prop::collection::vec((any::<bool>(), any::<bool>(), 0u32..4), 0..6),
                    1..4,
                ),
            ) {
                let mut dump = Dump::new(seq, ENTRY, parse_u32);
                let mut expected = Vec::new();
                let mut interrupted = false;
                let last = datagrams.len() - 1;
                for (i, entries) in datagrams.iter().enumerate() {
                    let mut datagram = Vec::new();
                    for &(late, intr, value) in entries {
                        let flags = if intr { NLM_F_DUMP_INTR } else { 0 };
                        let s = if late { seq - 1 } else { seq };
                        datagram.extend(datagram_message(ENTRY, flags, s, &value.to_ne_bytes()));
                        if !late {
                            interrupted |= intr;
                            if value != 0 {
                                expected.push(value);
                            }
                        }
                    }
                    if i == last {
                        datagram.extend(datagram_message(NLMSG_DONE, 0, seq, &0i32.to_ne_bytes()));
                    }
                    prop_assert_eq!(dump.absorb(&datagram).unwrap(), i == last);
                }
                prop_assert_eq!(&dump.items, &expected);
                prop_assert_eq!(dump.interrupted, interrupted);
            }

            /// Any bytes: no panic; the walkers end, every message and attribute lies inside
            /// what it was cut from.
            #[test]
            fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..300), seq in 0u32..4) {
                let mut count = 0;
                for message in messages(&data).flatten() {
                    count += 1;
                    prop_assert!(message.payload.len() + NLMSG_HDRLEN <= data.len());
                    for (_, value) in attributes(message.payload).flatten() {
                        count += 1;
                        prop_assert!(value.len() + NLA_HDRLEN <= message.payload.len());
                    }
                }
                prop_assert!(count <= data.len());
                let _ = exact_answer(&data, seq, ENTRY, |p| Ok(p.len()));
                let _ = Dump::new(seq, ENTRY, parse_u32).absorb(&data);
            }
        }
    }
}

//! Unit tests of [`super`] (socket).

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

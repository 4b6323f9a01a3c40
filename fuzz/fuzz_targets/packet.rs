//! The packet parser over every link type it knows, one `Parser` per input so that first
//! fragments remembered by one frame are found by the later ones (the reassembly path).
//!
//! Input: records of `link (1 byte) | step (1 byte) | length (u16 LE) | frame`; the link byte
//! picks one of the link types (mod 8), the step advances the clock by `step * 500 ms` (past
//! the fragment timeout after a few records) and its low bit passes a wire length larger than
//! the captured one (what a small snaplen gives). A length past the end takes what is left.
//!
//! Checks, for every frame: no panic; an IP length of at least a bare header, and above both
//! the 16-bit limits and the wire length only for an IPv6 jumbogram; both addresses of one
//! family, that of the link when it says; direction and interface only from the cooked links;
//! the same answer from a fresh parser twice; and a shorter capture of the frame never knowing
//! more than the whole frame, nor anything else (only the TCP flags may be past the cut).

#![no_main]

use capture::net::capture::packet::{
    assert_prefix_agrees, Direction, FlowPacket, LinkType, Parsed, Parser,
};
use libfuzzer_sys::fuzz_target;

/// The largest IP datagram a 16-bit length field can describe (IPv6: header + payload).
const MAX_16BIT_IP_LEN: u32 = 40 + 65_535;

fn check(link: LinkType, frame: &[u8], wire: u32, parsed: &Parsed) {
    let (direction, ip_len) = match parsed {
        Parsed::Flow(FlowPacket {
            direction, ip_len, ..
        })
        | Parsed::Unattributable { direction, ip_len } => (*direction, *ip_len),
        Parsed::NotIp | Parsed::Malformed => return,
    };
    assert!(ip_len >= 20, "{link:?} {parsed:?}");
    if ip_len > MAX_16BIT_IP_LEN && ip_len > wire {
        // Only a jumbo payload option (type 0xc2, length 4) can claim more.
        assert!(
            frame.windows(2).any(|w| w == [0xc2, 4]),
            "{link:?} {parsed:?} from {} bytes",
            frame.len()
        );
    }
    let cooked = matches!(link, LinkType::LinuxSll | LinkType::LinuxSll2);
    if !cooked {
        assert_eq!(direction, Direction::Unknown, "{link:?} {parsed:?}");
    }
    if let Parsed::Flow(flow) = parsed {
        assert_eq!(flow.src.is_ipv4(), flow.dst.is_ipv4(), "{flow:?}");
        match link {
            LinkType::Ipv4 => assert!(flow.src.is_ipv4(), "{flow:?}"),
            LinkType::Ipv6 => assert!(flow.src.is_ipv6(), "{flow:?}"),
            _ => {}
        }
        if link != LinkType::LinuxSll2 {
            assert_eq!(flow.ifindex, 0, "{link:?} {flow:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parser = Parser::new();
    let mut now_ms = 1_000_000u64;
    let mut rest = data;
    while let [link, step, lo, hi, tail @ ..] = rest {
        let link = LinkType::ALL[usize::from(*link) % LinkType::ALL.len()];
        now_ms += u64::from(*step) * 500;
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        let captured = u32::try_from(frame.len()).unwrap();
        let wire = if step & 1 == 1 {
            captured.saturating_mul(3).max(70_000)
        } else {
            captured
        };

        let parsed = parser.parse_wire(link, frame, wire, now_ms);
        check(link, frame, wire, &parsed);

        // Alone (no fragment state), twice: the same answer.
        let alone = Parser::new().parse_wire(link, frame, wire, now_ms);
        assert_eq!(alone, Parser::new().parse_wire(link, frame, wire, now_ms));
        check(link, frame, wire, &alone);
        // Knowledge only grows with the fragment table: a flow alone is the same flow in
        // sequence.
        if let Parsed::Flow(_) = alone {
            assert_eq!(parsed, alone, "{link:?}: in sequence vs alone");
        }

        // A shorter capture of the same frame (snaplen): it may know less, never more or else.
        let cut = usize::from(*lo ^ *hi) % (frame.len() + 1);
        let prefix = Parser::new().parse_wire(link, &frame[..cut], wire, now_ms);
        check(link, &frame[..cut], wire, &prefix);
        assert_prefix_agrees(prefix, alone, &format!("{link:?} cut {cut} of {}", frame.len()));
    }
});

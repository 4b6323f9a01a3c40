//! Flood of new, ownerless flows for `bench/flow_flood.sh` and `tests/flood.rs` (issue 14): UDP
//! datagrams, each from a random source address in 127.0.0.0/8 and a random source port, so that
//! every one is a flow no local socket owns (as a port scan or a SYN flood looks to the capture).
//!
//! ```text
//! flow_flood ADDR RATE SECS [SIZE] [SEED]
//!     send RATE datagrams a second (each a new flow) of SIZE bytes of UDP payload (default 18:
//!     46-byte IP datagrams) to ADDR (an IPv4 loopback address and a port; nothing needs to
//!     listen there) for SECS seconds, from random sources 127.a.b.c:p (c never 0 nor 255,
//!     p 1024 to 65535) drawn from a xorshift generator seeded with SEED (default 1: the same
//!     sequence every run); print `ready` when the socket is open, then at the end `sent N`,
//!     `behind N` (given up after stalls), `errors N` (refused by the kernel: no buffer),
//!     `seconds S`, `rate R (target RATE)` and `ip_bytes B` (bytes of one IP datagram)
//! ```
//!
//! The datagrams are written whole, IPv4 header included, on a raw socket (IPPROTO_RAW, which
//! implies IP_HDRINCL): no UDP socket exists on the sending side, and the destination is meant
//! to be a port nothing listens on, so no socket owns the flow on either side. Needs
//! CAP_NET_RAW (root). The UDP checksum is left 0 ("none", allowed for IPv4); the kernel fills
//! in the IP checksum.
//!
//! Pacing, as `udp_flood`'s: every 1 ms tick the sender computes how many datagrams it should
//! have sent since it started (RATE × elapsed) and sends the difference in batches of up to 64
//! with `sendmmsg`, each datagram of a batch with a source of its own. After a stall it catches
//! up at most 20 ms of traffic at once; what it could not send is reported (`behind N`) and the
//! achieved rate tells the truth either way. The flood is bounded in count (RATE × SECS) and in
//! time (SECS), and stops by itself.
//!
//! Only destinations in 127.0.0.0/8 are accepted (the guard and the argument parsing are
//! `common`'s, shared with the other examples); the sources are loopback addresses too, so
//! nothing leaves the host.

mod common;

use common::{number, say, seconds, Allowed};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: flow_flood ADDR RATE SECS [SIZE] [SEED]   \
                     (ADDR: 127.x.y.z:PORT; RATE datagrams = new flows a second)";
/// Datagrams per sendmmsg call.
const BATCH: usize = 64;
const TICK: Duration = Duration::from_millis(1);
/// Largest catch-up after a stall, in milliseconds of traffic.
const MAX_CATCH_UP_MS: u64 = 20;
const IP_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
/// Largest payload: the datagram stays well under loopback's MTU.
const MAX_SIZE: usize = 1400;
const DEFAULT_SIZE: usize = 18;

fn main() -> ExitCode {
    common::main("flow_flood", USAGE, |args| {
        if !(3..=5).contains(&args.len()) {
            return Err("bad arguments".into());
        }
        flood(&Options::parse(args)?)
    })
}

struct Options {
    target: SocketAddrV4,
    rate: u64,
    secs: Duration,
    size: usize,
    seed: u64,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let addr = common::addr(&args[0], Allowed::Loopback)?;
        let target = match addr {
            std::net::SocketAddr::V4(v4) => v4,
            std::net::SocketAddr::V6(_) => {
                return Err(format!(
                    "ADDR: {addr} is IPv6; the flood is IPv4 (127.0.0.0/8)"
                ))
            }
        };
        if target.port() == 0 {
            return Err("ADDR: the port must not be 0".into());
        }
        let rate: u64 = number(&args[1], "RATE")?;
        if !(1..=10_000_000).contains(&rate) {
            return Err(format!(
                "RATE: expected 1 to 10000000 datagrams a second, got {rate}"
            ));
        }
        let secs = seconds(&args[2], "SECS")?;
        let size = match args.get(3) {
            Some(s) => number(s, "SIZE")?,
            None => DEFAULT_SIZE,
        };
        if size > MAX_SIZE {
            return Err(format!(
                "SIZE: expected at most {MAX_SIZE} bytes, got {size}"
            ));
        }
        let seed = match args.get(4) {
            Some(s) => number(s, "SEED")?,
            None => 1,
        };
        Ok(Options {
            target,
            rate,
            secs,
            size,
            seed,
        })
    }
}

/// xorshift64* (Vigna): deterministic for a seed, plenty for spreading sources.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Random {
        // A zero state would stay zero; mix the seed so that 0, 1, 2 ... differ at once.
        Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A source in 127.0.0.0/8 whose last byte is neither 0 nor 255, and a port of 1024..=65535.
    fn source(&mut self) -> (Ipv4Addr, u16) {
        let r = self.next();
        let host = 1 + (r % 254) as u8;
        let [_, _, _, _, a, b, p0, p1] = r.to_be_bytes();
        let port = 1024 + (u16::from_be_bytes([p0, p1]) % (65536 - 1024) as u16);
        (Ipv4Addr::new(127, a, b, host), port)
    }
}

/// Writes one IPv4 + UDP datagram from `source` to `target` over the first bytes of `packet`
/// (whose length is the datagram's); the payload after the headers is left as it is.
fn write_headers(packet: &mut [u8], source: (Ipv4Addr, u16), target: SocketAddrV4) {
    let total = packet.len() as u16;
    let udp_len = (packet.len() - IP_HEADER) as u16;
    let ip = &mut packet[..IP_HEADER];
    ip[0] = 0x45; // version 4, 5 words of header
    ip[1] = 0; // DSCP/ECN
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&[0, 0]); // identification: the kernel picks one
    ip[6..8].copy_from_slice(&[0x40, 0]); // don't fragment
    ip[8] = 64; // TTL
    ip[9] = libc::IPPROTO_UDP as u8;
    ip[10..12].copy_from_slice(&[0, 0]); // checksum: the kernel fills it in
    ip[12..16].copy_from_slice(&source.0.octets());
    ip[16..20].copy_from_slice(&target.ip().octets());
    let udp = &mut packet[IP_HEADER..IP_HEADER + UDP_HEADER];
    udp[0..2].copy_from_slice(&source.1.to_be_bytes());
    udp[2..4].copy_from_slice(&target.port().to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]); // no checksum
}

/// The raw socket the datagrams are written on, headers included.
fn raw_socket() -> Result<OwnedFd, String> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        let hint = if e.raw_os_error() == Some(libc::EPERM) {
            " (a raw socket needs CAP_NET_RAW: run as root)"
        } else {
            ""
        };
        return Err(format!("socket(AF_INET, SOCK_RAW, IPPROTO_RAW): {e}{hint}"));
    }
    // SAFETY: fd was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What a flood did.
#[derive(Default)]
struct Counts {
    sent: u64,
    behind: u64,
    errors: u64,
}

fn flood(options: &Options) -> Result<(), String> {
    let socket = raw_socket()?;
    let datagram = IP_HEADER + UDP_HEADER + options.size;
    let mut packets = vec![vec![0u8; datagram]; BATCH];
    for packet in &mut packets {
        for (i, b) in packet[IP_HEADER + UDP_HEADER..].iter_mut().enumerate() {
            *b = i as u8;
        }
    }
    // SAFETY: sockaddr_in is plain data; zeroed is "no address" until filled in.
    let mut destination: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    destination.sin_family = libc::AF_INET as libc::sa_family_t;
    destination.sin_addr.s_addr = u32::from(*options.target.ip()).to_be();
    let mut iovecs: Vec<libc::iovec> = packets
        .iter_mut()
        .map(|p| libc::iovec {
            iov_base: p.as_mut_ptr().cast(),
            iov_len: p.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain data; each header points at its packet and the destination.
    let mut headers: Vec<libc::mmsghdr> =
        (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (h, iov) in headers.iter_mut().zip(iovecs.iter_mut()) {
        h.msg_hdr.msg_name = (&mut destination as *mut libc::sockaddr_in).cast();
        h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }

    let mut random = Random::new(options.seed);
    let rate = options.rate;
    let max_catch_up = (rate * MAX_CATCH_UP_MS / 1000).max(BATCH as u64);
    let mut counts = Counts::default();
    say("ready");
    let start = Instant::now();
    let mut tick = start;
    loop {
        let elapsed = start.elapsed().min(options.secs);
        // Datagrams due by now, counting those given up after stalls as done.
        let due = (u128::from(rate) * elapsed.as_nanos() / 1_000_000_000) as u64;
        let mut owed = due - counts.sent - counts.behind - counts.errors;
        if owed > max_catch_up {
            counts.behind += owed - max_catch_up;
            owed = max_catch_up;
        }
        while owed > 0 {
            let batch = owed.min(BATCH as u64) as usize;
            for packet in &mut packets[..batch] {
                write_headers(packet, random.source(), options.target);
            }
            // SAFETY: the headers point at packets, iovecs and destination, which outlive the
            // call; batch is at most their number.
            let n = unsafe {
                libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), batch as u32, 0)
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    // Buffers full: counted and skipped, the sources of that batch are lost.
                    Some(libc::ENOBUFS | libc::EAGAIN) => {
                        counts.errors += 1;
                        owed -= 1;
                        continue;
                    }
                    Some(libc::EINTR) => continue,
                    _ => return Err(format!("sendmmsg to {}: {e}", options.target.ip())),
                }
            }
            counts.sent += n as u64;
            owed -= n as u64;
        }
        if elapsed >= options.secs {
            break;
        }
        tick += TICK;
        let now = Instant::now();
        if tick > now {
            std::thread::sleep(tick - now);
        } else {
            tick = now; // late: no burst of ticks to make up, the count above does that
        }
    }
    let wall = start.elapsed().as_secs_f64();
    say(&format!("sent {}", counts.sent));
    say(&format!("behind {}", counts.behind));
    say(&format!("errors {}", counts.errors));
    say(&format!("seconds {wall:.3}"));
    say(&format!(
        "rate {:.0} (target {rate})",
        counts.sent as f64 / options.secs.as_secs_f64().max(1e-9)
    ));
    say(&format!("ip_bytes {datagram}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn sources_are_loopback_and_spread() {
        let mut random = Random::new(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            let (ip, port) = random.source();
            assert!(IpAddr::V4(ip).is_loopback());
            let last = ip.octets()[3];
            assert!(last != 0 && last != 255, "{ip}");
            assert!(port >= 1024, "{port}");
            seen.insert((ip, port));
        }
        // 2^40 possible (address, port) pairs: collisions among 100,000 are rare.
        assert!(seen.len() > 99_900, "{} distinct", seen.len());
    }

    #[test]
    fn the_same_seed_gives_the_same_sources() {
        let (mut a, mut b) = (Random::new(3), Random::new(3));
        assert!((0..1000).all(|_| a.source() == b.source()));
        assert_ne!(Random::new(3).source(), Random::new(4).source());
    }

    #[test]
    fn headers_are_a_well_formed_udp_datagram() {
        let mut packet = vec![0u8; IP_HEADER + UDP_HEADER + 18];
        let target = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 9);
        write_headers(&mut packet, (Ipv4Addr::new(127, 1, 2, 3), 4000), target);
        assert_eq!(packet[0], 0x45);
        assert_eq!(u16::from_be_bytes([packet[2], packet[3]]), 46);
        assert_eq!(packet[9], 17);
        assert_eq!(&packet[12..16], &[127, 1, 2, 3]);
        assert_eq!(&packet[16..20], &[127, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([packet[20], packet[21]]), 4000);
        assert_eq!(u16::from_be_bytes([packet[22], packet[23]]), 9);
        assert_eq!(u16::from_be_bytes([packet[24], packet[25]]), 26);
    }

    #[test]
    fn only_ipv4_loopback_destinations_are_accepted() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Options::parse(&args(&["127.0.0.1:9", "1000", "1"])).is_ok());
        for bad in [
            "10.0.0.1:9",
            "8.8.8.8:53",
            "[::1]:9",
            "127.0.0.1:0",
            "localhost:9",
        ] {
            assert!(Options::parse(&args(&[bad, "1000", "1"])).is_err(), "{bad}");
        }
        assert!(Options::parse(&args(&["127.0.0.1:9", "0", "1"])).is_err());
        assert!(Options::parse(&args(&["127.0.0.1:9", "1000", "-1"])).is_err());
        assert!(Options::parse(&args(&["127.0.0.1:9", "1000", "1", "5000"])).is_err());
        assert!(Options::parse(&args(&["127.0.0.1:9", "1000", "1", "18", "x"])).is_err());
    }
}

//! UDP traffic generator for `bench/live_packets.sh`: a paced sender and a receiver, run as two
//! processes so that a per-process capture can be checked on both ends (the benchmark copies
//! the binary under two names, so each side has its own kernel command name).
//!
//! ```text
//! udp_flood recv ADDR SECS [LINGER]
//!     bind an unconnected UDP socket to ADDR (port 0: any; prints `port N`), count datagrams
//!     until SECS have passed or, once traffic has come, for 1 s none has; print
//!     `received N BYTES` and its CPU time, then stay alive LINGER seconds (default 0)
//! udp_flood send ADDR RATE SIZE SECS [LINGER] [unconnected]
//!     send RATE datagrams a second of SIZE bytes of UDP payload to ADDR for SECS seconds from
//!     a connected socket (`unconnected`: sendto from an unconnected one); print `sent N`, the
//!     achieved rate and the CPU time the sender used, then stay alive LINGER seconds
//! ```
//!
//! Pacing: every 1 ms tick the sender computes how many datagrams it should have sent since it
//! started (RATE × elapsed) and sends the difference in batches of up to 64 with `sendmmsg`, so
//! the rate over the run is exact as long as the machine keeps up. After a stall it catches up
//! at most 20 ms of traffic at once; what it could not send is reported (`behind N`) and the
//! achieved rate tells the truth either way. The receiver reads with `recvmmsg`, also 64 at a
//! time, with a socket buffer of 16 MiB (SO_RCVBUFFORCE as root) so that a moment descheduled
//! does not drop datagrams in its socket.
//!
//! Lingering matters for the benchmark: collectd-capture reports an instance named after `{comm}`
//! only while it has live processes, so both sides stay alive a few seconds after their traffic
//! for the last interval's counters to be written.
//!
//! Only loopback addresses (127.0.0.0/8, ::1) are accepted (the guard and the argument parsing
//! are `common`'s, shared with the other examples).

mod common;

use common::{number, seconds, Allowed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: udp_flood recv ADDR SECS [LINGER] \
                     | udp_flood send ADDR RATE SIZE SECS [LINGER] [unconnected]";
/// Datagrams per sendmmsg/recvmmsg call.
const BATCH: usize = 64;
const TICK: Duration = Duration::from_millis(1);
/// Largest catch-up after a stall, in milliseconds of traffic.
const MAX_CATCH_UP_MS: u64 = 20;

fn main() -> ExitCode {
    common::main("udp_flood", USAGE, |args| {
        match args.first().map(String::as_str) {
            Some("recv") if (3..=4).contains(&args.len()) => recv(&args[1..]),
            Some("send") if (5..=7).contains(&args.len()) => send(&args[1..]),
            _ => Err("bad arguments".to_string()),
        }
    })
}

fn linger(arg: Option<&String>) -> Result<(), String> {
    if let Some(s) = arg {
        std::thread::sleep(seconds(s, "LINGER")?);
    }
    Ok(())
}

fn recv(args: &[String]) -> Result<(), String> {
    let addr = common::addr(&args[0], Allowed::Loopback)?;
    let secs = seconds(&args[1], "SECS")?;
    let socket = UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let port = socket.local_addr().map_err(|e| e.to_string())?.port();
    grow_receive_buffer(&socket, 16 << 20);
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    println!("port {port}");

    let mut buffers = vec![[0u8; 2048]; BATCH];
    let mut iovecs: Vec<libc::iovec> = buffers
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain data; the zeroed fields are "no name, no control data".
    let mut headers: Vec<libc::mmsghdr> =
        (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (h, iov) in headers.iter_mut().zip(iovecs.iter_mut()) {
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }

    let cpu_start = cpu_time();
    let start = Instant::now();
    let mut last_data: Option<Instant> = None;
    let (mut datagrams, mut bytes) = (0u64, 0u64);
    while start.elapsed() < secs {
        if last_data.is_some_and(|t| t.elapsed() >= Duration::from_secs(1)) {
            break;
        }
        // SAFETY: headers point into iovecs and buffers, which outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted => continue,
                _ => return Err(format!("recvmmsg: {e}")),
            }
        }
        for h in &headers[..n as usize] {
            datagrams += 1;
            bytes += u64::from(h.msg_len);
        }
        if n > 0 {
            last_data = Some(Instant::now());
        }
    }
    println!("received {datagrams} {bytes}");
    let cpu = cpu_time() - cpu_start;
    println!("cpu_ms {:.1}", cpu.as_secs_f64() * 1e3);
    linger(args.get(2))
}

/// Asks for a socket receive buffer of `size` bytes, above net.core.rmem_max when privileged.
fn grow_receive_buffer(socket: &UdpSocket, size: libc::c_int) {
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a c_int option value of the right size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// The sockaddr of `addr`, for sendmmsg on an unconnected socket.
enum RawAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl RawAddr {
    fn new(addr: SocketAddr) -> RawAddr {
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_in is plain data.
                let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                s.sin_family = libc::AF_INET as libc::sa_family_t;
                s.sin_port = a.port().to_be();
                s.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                RawAddr::V4(s)
            }
            SocketAddr::V6(a) => {
                // SAFETY: sockaddr_in6 is plain data.
                let mut s: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                s.sin6_port = a.port().to_be();
                s.sin6_addr.s6_addr = a.ip().octets();
                RawAddr::V6(s)
            }
        }
    }

    fn pointer_and_len(&mut self) -> (*mut libc::c_void, libc::socklen_t) {
        match self {
            RawAddr::V4(s) => (
                (s as *mut libc::sockaddr_in).cast(),
                std::mem::size_of_val(s) as _,
            ),
            RawAddr::V6(s) => (
                (s as *mut libc::sockaddr_in6).cast(),
                std::mem::size_of_val(s) as _,
            ),
        }
    }
}

fn send(args: &[String]) -> Result<(), String> {
    let addr = common::addr(&args[0], Allowed::Loopback)?;
    if addr.port() == 0 {
        return Err("ADDR: the port must not be 0".into());
    }
    let rate: u64 = number(&args[1], "RATE")?;
    let size: usize = number(&args[2], "SIZE")?;
    let secs = seconds(&args[3], "SECS")?;
    let unconnected = match args.get(5).map(String::as_str) {
        None => false,
        Some("unconnected") => true,
        Some(other) => return Err(format!("expected `unconnected`, got {other:?}")),
    };
    if !(1..=10_000_000).contains(&rate) {
        return Err(format!(
            "RATE: expected 1 to 10000000 datagrams a second, got {rate}"
        ));
    }
    if size > 65_000 {
        return Err(format!("SIZE: expected at most 65000 bytes, got {size}"));
    }
    let local = match addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    let socket = UdpSocket::bind((local, 0)).map_err(|e| format!("bind: {e}"))?;
    if !unconnected {
        socket
            .connect(addr)
            .map_err(|e| format!("connect {addr}: {e}"))?;
    }
    let mut payload = vec![0u8; size];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut target = RawAddr::new(addr);
    let (name, name_len) = if unconnected {
        target.pointer_and_len()
    } else {
        (std::ptr::null_mut(), 0)
    };
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: size,
    };
    // SAFETY: mmsghdr is plain data; every header points at the one payload (and address).
    let mut headers: Vec<libc::mmsghdr> =
        (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for h in headers.iter_mut() {
        h.msg_hdr.msg_name = name;
        h.msg_hdr.msg_namelen = name_len;
        h.msg_hdr.msg_iov = &mut iov;
        h.msg_hdr.msg_iovlen = 1;
    }

    let max_catch_up = (rate * MAX_CATCH_UP_MS / 1000).max(BATCH as u64);
    let (mut sent, mut behind, mut errors) = (0u64, 0u64, 0u64);
    let cpu_start = cpu_time();
    let start = Instant::now();
    let mut tick = start;
    loop {
        let elapsed = start.elapsed().min(secs);
        // Datagrams due by now, counting those given up after stalls as done.
        let due = (rate as u128 * elapsed.as_nanos() / 1_000_000_000) as u64;
        let mut owed = due - sent - behind;
        if owed > max_catch_up {
            behind += owed - max_catch_up;
            owed = max_catch_up;
        }
        while owed > 0 {
            let batch = owed.min(BATCH as u64) as usize;
            // SAFETY: the headers point at payload, iov and target, which outlive the call.
            let n = unsafe {
                libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), batch as u32, 0)
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    // Nobody listening yet (connected socket), buffers full: counted, skipped.
                    Some(libc::ECONNREFUSED | libc::ENOBUFS | libc::EAGAIN) => {
                        errors += 1;
                        behind += 1;
                        owed -= 1;
                        continue;
                    }
                    Some(libc::EINTR) => continue,
                    _ => return Err(format!("sendmmsg to {addr}: {e}")),
                }
            }
            sent += n as u64;
            owed -= n as u64;
        }
        if elapsed >= secs {
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
    let cpu = cpu_time() - cpu_start;
    let header = if addr.is_ipv4() { 28 } else { 48 };
    println!("sent {sent}");
    println!("behind {behind}");
    println!("errors {errors}");
    println!("seconds {wall:.3}");
    println!(
        "rate {:.0} (target {rate})",
        sent as f64 / secs.as_secs_f64().max(1e-9)
    );
    println!("ip_bytes {}", size + header);
    println!("cpu_ms {:.1}", cpu.as_secs_f64() * 1e3);
    linger(args.get(4))
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

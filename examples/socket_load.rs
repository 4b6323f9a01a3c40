//! Load generator for the network benchmarks in `bench/` (`memory.sh`, `connection_burst.sh`).
//!
//! std + libc only. Every address it sends to or listens on is a loopback address (127.0.0.0/8
//! or ::1); anything else is refused (the guard and the argument parsing are `common`'s, shared
//! with the other examples).
//!
//! ```text
//! socket_load hold SOCKETS [SECS]
//!     hold SOCKETS TCP sockets over 127.0.0.1: SOCKETS/2 connections to a listener of this
//!     process, both ends kept here if RLIMIT_NOFILE can be raised that far (its hard limit
//!     needs CAP_SYS_RESOURCE), else the connecting ends in a helper process (`hold-connect`,
//!     which exits with this one); prints `ready N (...)`, then sleeps SECS (default: until
//!     killed)
//! socket_load udp-spray RATE SECS [DISTINCT] [BYTES]
//!     one unconnected UDP socket bound to 127.0.0.1 sends RATE datagrams a second of BYTES
//!     bytes (default 32) for SECS seconds, each to the next destination of a sequence
//!     127.1.0.0:9, 127.1.0.1:9, ... up to 127.254.255.255:9; with DISTINCT > 0 the sequence
//!     starts over after DISTINCT destinations, with 0 (the default) every datagram goes to a
//!     new one, so each is a new flow. Nothing listens there: the kernel answers with ICMP
//!     port unreachable, which an unconnected socket ignores. Prints `ready`, then
//!     `sent N datagrams to D destinations (F failed)` at the end
//! socket_load tcp-server IP SECS
//!     listen on IP:0 (prints `port N`), accept every connection and read it to the end (one
//!     thread, poll), for SECS seconds; then prints `received BYTES in N connections`
//! socket_load tcp-burst ADDR RATE SECS BYTES [HOLD_MS]
//!     open RATE connections a second to ADDR for SECS seconds; each sends BYTES, stays open
//!     HOLD_MS more (default 0) and closes. Prints `ready`, then
//!     `sent BYTES in N connections (F failed, max lag L ms)`
//! ```
//!
//! Rates are kept by pacing against the clock (every millisecond, what is due is sent), so a
//! stall is caught up rather than lost; the largest lag behind the schedule is reported.

mod common;

use common::{number, say, seconds, Allowed};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: socket_load hold SOCKETS [SECS] \
                     | udp-spray RATE SECS [DISTINCT] [BYTES] \
                     | tcp-server IP SECS \
                     | tcp-burst ADDR RATE SECS BYTES [HOLD_MS]";

/// First destination of `udp-spray` (127.1.0.0) and how many there are (up to 127.254.255.255).
const SPRAY_BASE: u32 = 0x7f01_0000;
const SPRAY_SPAN: u64 = 254 * 65_536;
const SPRAY_PORT: u16 = 9;

fn main() -> ExitCode {
    common::main("socket_load", USAGE, run)
}

fn run(args: &[String]) -> Result<(), String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["hold", sockets] => hold(number(sockets, "SOCKETS")?, None),
        ["hold", sockets, secs] => hold(number(sockets, "SOCKETS")?, Some(seconds(secs, "SECS")?)),
        ["hold-connect", addr, count] => hold_connect(
            common::addr(addr, Allowed::Loopback)?,
            number(count, "COUNT")?,
        ),
        ["udp-spray", rate, secs, rest @ ..] if rest.len() <= 2 => {
            let distinct = rest.first().map_or(Ok(0), |d| number(d, "DISTINCT"))?;
            let bytes = rest.get(1).map_or(Ok(32), |b| number(b, "BYTES"))?;
            udp_spray(
                number(rate, "RATE")?,
                seconds(secs, "SECS")?,
                distinct,
                bytes,
            )
        }
        ["tcp-server", ip, secs] => {
            tcp_server(common::ip(ip, Allowed::Loopback)?, seconds(secs, "SECS")?)
        }
        ["tcp-burst", addr, rate, secs, bytes, rest @ ..] if rest.len() <= 1 => {
            let hold_ms = rest.first().map_or(Ok(0), |h| number(h, "HOLD_MS"))?;
            tcp_burst(
                common::addr(addr, Allowed::Loopback)?,
                number(rate, "RATE")?,
                seconds(secs, "SECS")?,
                number(bytes, "BYTES")?,
                Duration::from_millis(hold_ms),
            )
        }
        _ => Err("unknown command or wrong number of arguments".into()),
    }
}

/// `hold`: SOCKETS/2 loopback connections to a listener of this process. Both ends stay here
/// when RLIMIT_NOFILE allows; otherwise (its hard limit cannot be raised without
/// CAP_SYS_RESOURCE) the connecting ends go to a helper process, this program again, which
/// holds them until this process exits.
fn hold(sockets: usize, secs: Option<Duration>) -> Result<(), String> {
    let pairs = sockets / 2;
    let limit = raise_fd_limit(pairs as u64 * 2 + 64) as usize;
    let split = limit < pairs * 2 + 16;
    if split && limit < pairs + 16 {
        return Err(format!(
            "RLIMIT_NOFILE is {limit}, too low for {pairs} sockets in each of two processes"
        ));
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut held = Vec::with_capacity(pairs * 2);
    let mut helper = None;
    if split {
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        let child = std::process::Command::new(exe)
            .args(["hold-connect", &addr.to_string(), &pairs.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("helper: {e}"))?;
        for i in 0..pairs {
            let (server, _) = listener.accept().map_err(|e| format!("accept #{i}: {e}"))?;
            held.push(server);
        }
        helper = Some(child);
    } else {
        for i in 0..pairs {
            let client = TcpStream::connect(addr).map_err(|e| format!("connect #{i}: {e}"))?;
            let (server, _) = listener.accept().map_err(|e| format!("accept #{i}: {e}"))?;
            held.push(client);
            held.push(server);
        }
    }
    match helper.as_mut() {
        Some(child) => {
            let mut line = String::new();
            let out = child.stdout.as_mut().ok_or("helper has no stdout")?;
            std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)
                .map_err(|e| format!("helper: {e}"))?;
            if !line.starts_with("ready") {
                return Err(format!("helper failed: {line}"));
            }
            say(&format!(
                "ready {} ({} here in pid {}, {pairs} in helper pid {})",
                held.len() + pairs,
                held.len(),
                std::process::id(),
                child.id()
            ));
        }
        None => say(&format!(
            "ready {} (all in pid {})",
            held.len(),
            std::process::id()
        )),
    }
    match secs {
        Some(secs) => std::thread::sleep(secs),
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
    drop(held);
    if let Some(mut child) = helper {
        drop(child.stdin.take());
        let _ = child.wait();
    }
    Ok(())
}

/// The helper of `hold`: COUNT connections to ADDR, held until stdin closes (its parent exits).
fn hold_connect(addr: SocketAddr, count: usize) -> Result<(), String> {
    raise_fd_limit(count as u64 + 64);
    let streams = (0..count)
        .map(|i| TcpStream::connect(addr).map_err(|e| format!("connect #{i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    say(&format!("ready {}", streams.len()));
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(streams);
    Ok(())
}

/// `udp-spray`: one datagram per new destination, paced.
fn udp_spray(rate: u64, secs: Duration, distinct: u64, bytes: usize) -> Result<(), String> {
    if rate == 0 {
        return Err("RATE must be at least 1".into());
    }
    let span = if distinct == 0 {
        SPRAY_SPAN
    } else {
        distinct.min(SPRAY_SPAN)
    };
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
    let payload = vec![0x5a_u8; bytes];
    say("ready");
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut next = 0u64;
    let lag = pace(rate, secs, |_| {
        let j = next % span;
        next += 1;
        let ip = Ipv4Addr::from(SPRAY_BASE + j as u32);
        // Checked like any user-given address, although the sequence cannot leave 127/8.
        debug_assert!(ip.is_loopback());
        match socket.send_to(&payload, (ip, SPRAY_PORT)) {
            Ok(_) => sent += 1,
            Err(_) => failed += 1,
        }
    });
    say(&format!(
        "sent {sent} datagrams to {} destinations ({failed} failed, max lag {} ms)",
        next.min(span),
        lag.as_millis()
    ));
    Ok(())
}

/// `tcp-server`: accept and drain every connection, single-threaded with poll(2).
fn tcp_server(ip: IpAddr, secs: Duration) -> Result<(), String> {
    let listener = TcpListener::bind((ip, 0)).map_err(|e| format!("bind: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("nonblocking: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    say(&format!("port {port}"));
    let deadline = Instant::now() + secs;
    let mut open: Vec<TcpStream> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut received, mut connections) = (0u64, 0u64);
    while Instant::now() < deadline {
        let mut fds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
            .chain(open.iter().map(AsRawFd::as_raw_fd))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the whole call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if ready <= 0 {
            continue;
        }
        // Existing connections first (their indexes shift once new ones are pushed).
        let mut closed = Vec::new();
        for (i, pfd) in fds.iter().enumerate().skip(1) {
            if pfd.revents == 0 {
                continue;
            }
            let stream = &mut open[i - 1];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        closed.push(i - 1);
                        break;
                    }
                    Ok(n) => received += n as u64,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        closed.push(i - 1);
                        break;
                    }
                }
            }
        }
        for i in closed.into_iter().rev() {
            open.swap_remove(i);
            connections += 1;
        }
        if fds[0].revents != 0 {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if stream.set_nonblocking(true).is_ok() {
                            open.push(stream);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
    }
    say(&format!(
        "received {received} in {connections} connections ({} still open)",
        open.len()
    ));
    Ok(())
}

/// `tcp-burst`: paced short connections.
fn tcp_burst(
    addr: SocketAddr,
    rate: u64,
    secs: Duration,
    bytes: usize,
    hold: Duration,
) -> Result<(), String> {
    if rate == 0 {
        return Err("RATE must be at least 1".into());
    }
    raise_fd_limit(rate * (hold.as_millis() as u64 + 1000) / 1000 + 1024);
    let payload = vec![0x5a_u8; bytes];
    let mut holding: VecDeque<(TcpStream, Instant)> = VecDeque::new();
    let (mut sent, mut connections, mut failed) = (0u64, 0u64, 0u64);
    say("ready");
    let lag = pace(rate, secs, |now| {
        while holding.front().is_some_and(|(_, until)| *until <= now) {
            holding.pop_front();
        }
        match TcpStream::connect(addr).and_then(|mut s| s.write_all(&payload).map(|()| s)) {
            Ok(stream) => {
                sent += payload.len() as u64;
                connections += 1;
                if !hold.is_zero() {
                    holding.push_back((stream, now + hold));
                }
            }
            Err(_) => failed += 1,
        }
    });
    while let Some((stream, until)) = holding.pop_front() {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        drop(stream);
    }
    say(&format!(
        "sent {sent} in {connections} connections ({failed} failed, max lag {} ms)",
        lag.as_millis()
    ));
    Ok(())
}

/// Calls `step` `rate` times a second for `secs`, catching up after stalls; returns the
/// largest lag behind the schedule.
fn pace(rate: u64, secs: Duration, mut step: impl FnMut(Instant)) -> Duration {
    let start = Instant::now();
    let total = (rate as u128 * secs.as_millis() / 1000) as u64;
    let mut done = 0u64;
    let mut max_lag = Duration::ZERO;
    while done < total {
        let now = Instant::now();
        let due = ((now - start).as_micros() * rate as u128 / 1_000_000) as u64;
        let due = due.min(total);
        if done >= due {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        // How late the oldest step due is (step k is due at (k + 1) / rate).
        let scheduled = start + Duration::from_micros((done + 1) * 1_000_000 / rate);
        max_lag = max_lag.max(now.saturating_duration_since(scheduled));
        while done < due {
            step(Instant::now());
            done += 1;
        }
    }
    max_lag
}

/// Raises RLIMIT_NOFILE to at least `wanted` if it can (the hard limit too, which needs
/// CAP_SYS_RESOURCE), else to the hard limit; returns the soft limit in force.
fn raise_fd_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur >= wanted {
            return limit.rlim_cur;
        }
        if limit.rlim_max < wanted {
            let raised = libc::rlimit {
                rlim_cur: wanted,
                rlim_max: wanted,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return wanted;
            }
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    limit.rlim_cur
}

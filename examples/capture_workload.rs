//! Workload program for the integration tests in `tests/` (owned by the integration tests).
//!
//! A tiny std-only program whose resource use is known exactly, so the tests can check the
//! numbers collectd-capture reports for it. The tests copy the built binary under a unique short
//! name, so its kernel command name (comm) identifies the processes of one test.
//!
//! ```text
//! capture_workload burn SECS                  burn one core for SECS seconds, then exit
//! capture_workload fds N SECS                 open /dev/null N times, hold the files SECS seconds
//! capture_workload nofile LIMIT N SECS        set its own soft RLIMIT_NOFILE to LIMIT, then as
//!                                             `fds N SECS`
//! capture_workload write MB PATH SECS [sync]  write MB×10^6 bytes to PATH with write(2) in 1 MiB
//!                                             chunks, fsync when `sync` is given, sleep SECS
//! capture_workload touch MIB SECS             allocate MIB MiB, write every page, hold SECS
//! capture_workload threads N SECS             run N threads (this one included), sleep SECS
//! capture_workload sleep SECS                 sleep SECS seconds
//! capture_workload parent SECS -- CMD ARGS... run CMD as a child, wait for it (print `reaped`),
//!                                             then sleep SECS: a parent that reaps a child
//! capture_workload tcp-serve IP SECS [PORT]   listen on IP:PORT (default 0: any; prints
//!                                             `port N`), accept connections and read them to
//!                                             the end, printing `received BYTES` for each;
//!                                             stop after SECS
//! capture_workload tcp-send ADDR BYTES N SECS [HOLD_MS]
//!                                             open N connections to ADDR one after another,
//!                                             send BYTES on each, keep it open HOLD_MS more (a
//!                                             request waiting for its answer; default 0) and
//!                                             close; print `sent`, then sleep SECS
//! capture_workload udp-recv IP SECS [PORT]    bind an unconnected UDP socket to IP:PORT
//!                                             (default 0: any; prints `port N`), count
//!                                             datagrams for SECS
//! capture_workload udp-send ADDR COUNT SIZE SECS
//!                                             sendto COUNT datagrams of SIZE bytes to ADDR from
//!                                             an unconnected socket; print `sent`, sleep SECS
//!
//! Long-lived flows, for second chances (`tests/second_chances.rs`):
//!
//! capture_workload tcp-stream ADDR CHUNK GAP_MS PAUSE RESUME BYTES SECS
//!                                             one connection to ADDR, held throughout: send
//!                                             CHUNK bytes every GAP_MS until the file PAUSE
//!                                             exists, print `paused SENT` (payload bytes so
//!                                             far), wait for the file RESUME, send BYTES more
//!                                             at the same pace, print `sent SENT` (the total),
//!                                             keep the connection SECS more and close it
//! capture_workload udp-stream ADDR SIZE GAP_MS PAUSE RESUME COUNT SECS
//!                                             the same with one unconnected UDP socket sending
//!                                             datagrams of SIZE bytes; SENT counts datagrams
//!
//! A local endpoint used again, for reuse (`tests/reuse.rs`):
//!
//! capture_workload udp-send-from LOCAL ADDR COUNT SIZE SECS [GAP_MS]
//!                                             bind an unconnected UDP socket to LOCAL (IP:PORT,
//!                                             SO_REUSEADDR), sendto COUNT datagrams of SIZE
//!                                             bytes to ADDR 2 ms apart, close it and print
//!                                             `sent COUNT`; with GAP_MS, wait GAP_MS, bind
//!                                             LOCAL again and do it once more (a process
//!                                             reopening its port); then sleep SECS (alive, the
//!                                             socket closed)
//! capture_workload tcp-send-from LOCAL ADDR BYTES SECS [GAP_MS]
//!                                             the same with a TCP connection from LOCAL
//!                                             (SO_REUSEADDR) to ADDR: send BYTES, wait for the
//!                                             server to close first (see `tcp-take`), close,
//!                                             print `sent BYTES`
//! capture_workload tcp-take IP SECS BYTES [HOLD_MS]
//!                                             listen on IP:0 (prints `port N`), read BYTES from
//!                                             each connection, keep it open HOLD_MS more
//!                                             (default 0) and close it first, printing
//!                                             `received BYTES`; stop after SECS. The server
//!                                             keeps the TIME_WAIT, as a server closing first
//!                                             does, so a client may connect again from the same
//!                                             local port at once
//!
//! Modes for hostile-input and churn tests (`tests/hostile.rs`, `tests/churn.rs`):
//!
//! capture_workload comm HEX MODE ARGS...      set its own command name to the bytes HEX (hex
//!                                             digits, at most 15 bytes: any byte but NUL,
//!                                             newlines and invalid UTF-8 included) with
//!                                             prctl(PR_SET_NAME), then run MODE ARGS...
//! capture_workload as-user UID:GID MODE ARGS...
//!                                             drop supplementary groups, become UID:GID, then
//!                                             run MODE ARGS...
//! capture_workload zombies N SECS             start N children that exit at once and never
//!                                             reap them (N zombies), print `ready`, sleep SECS
//! capture_workload churn RATE SECS LIFE_MS [PID]
//!                                             for SECS seconds start RATE children a second
//!                                             (this program, `sleep`ing for LIFE_MS ms); kill
//!                                             each with SIGKILL after LIFE_MS ms if it is still
//!                                             there and reap it. With PID, write PID-1 to
//!                                             /proc/sys/kernel/ns_last_pid before every spawn
//!                                             (root only) so the kernel hands out PID again as
//!                                             soon as it is free: pid reuse. Prints `ready`,
//!                                             at the end `spawned N reused R` (R: children that
//!                                             got a pid an earlier child had)
//!
//! Short-lived processes, for exit records (`tests/exits.rs`):
//!
//! capture_workload work BURN_MS MIB           burn BURN_MS ms of CPU, write MIB MiB to /dev/null
//!                                             (1 MiB a write), exit
//! capture_workload children RATE SECS CHILD BURN_MS MIB
//!                                             for SECS seconds start RATE children a second,
//!                                             each the program CHILD (this one under another
//!                                             name) running `work BURN_MS MIB`; reap each.
//!                                             Prints `ready`, at the end `children N ticks T
//!                                             own O minflt F`: N started, T the CPU time the
//!                                             kernel gave the reaped children (cutime +
//!                                             cstime), O its own (utime + stime), in clock
//!                                             ticks, F their minor page faults (cminflt)
//!
//! The values of the costly options (`tests/details.rs`):
//!
//! capture_workload maps N SECS                add N separate memory mappings (read-only pages
//!                                             between inaccessible ones, so none merge), print
//!                                             `ready`, hold them SECS
//! capture_workload switches THREADS SLEEPS SECS
//!                                             start THREADS threads that each sleep 1 ms SLEEPS
//!                                             times, print `ready`, wait for them and print
//!                                             `switches V I` (its getrusage: voluntary and
//!                                             involuntary context switches, ended threads
//!                                             included), then sleep SECS
//! capture_workload compete THREADS SECS       run THREADS threads that each burn a core for
//!                                             SECS seconds (more threads than cores wait for a
//!                                             CPU), print `ready`, then `done`
//! ```
//!
//! Network workloads talk only to loopback addresses (127.0.0.0/8, ::1) or to the network
//! namespaces the tests create themselves, whose addresses they take from 10.203.0.0/16 and
//! fd00:203::/32; any other ADDR or IP is refused (the guard and the argument parsing are
//! `common`'s, shared with the other examples).
//!
//! Protocol: after its setup (files opened, data written, memory touched, threads started; right
//! away for `burn` and `sleep`) the program prints `ready` on stdout. `burn` prints
//! `done` when it stops burning. With the environment variable `CW_WAIT_STDIN` set, the program
//! first prints `waiting` and reads one line from stdin before its setup, so a test can let the
//! plugin see the process before it does anything.

mod common;

use common::{number, say, seconds, Allowed};
use std::fs::File;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: capture_workload burn SECS | fds N SECS | nofile LIMIT N SECS | write MB PATH SECS [sync] \
                     | touch MIB SECS | threads N SECS | sleep SECS | parent SECS -- CMD ARGS... \
                     | tcp-serve IP SECS | tcp-send ADDR BYTES N SECS [HOLD_MS] \
                     | udp-recv IP SECS [PORT] | udp-send ADDR COUNT SIZE SECS \
                     | tcp-stream ADDR CHUNK GAP_MS PAUSE RESUME BYTES SECS \
                     | udp-stream ADDR SIZE GAP_MS PAUSE RESUME COUNT SECS \
                     | udp-send-from LOCAL ADDR COUNT SIZE SECS [GAP_MS] \
                     | tcp-send-from LOCAL ADDR BYTES SECS [GAP_MS] | tcp-take IP SECS BYTES [HOLD_MS] \
                     | comm HEX MODE ARGS... \
                     | as-user UID:GID MODE ARGS... | zombies N SECS | churn RATE SECS LIFE_MS [PID] \
                     | work BURN_MS MIB | children RATE SECS CHILD BURN_MS MIB \
                     | maps N SECS | switches THREADS SLEEPS SECS | compete THREADS SECS";

fn main() -> ExitCode {
    common::main("capture_workload", USAGE, run)
}

/// Where the network workloads may send: loopback, or the tests' own namespaces.
const ALLOWED: Allowed = Allowed::LoopbackOrTestNamespaces;

fn run(args: &[String]) -> Result<(), String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["burn", secs] => {
            let secs = seconds(secs, "SECS")?;
            wait_for_go()?;
            say("ready");
            burn(secs);
            say("done");
        }
        ["fds", n, secs] => {
            let n: usize = number(n, "N")?;
            let secs = seconds(secs, "SECS")?;
            wait_for_go()?;
            let files = (0..n)
                .map(|_| File::open("/dev/null"))
                .collect::<Result<Vec<File>, _>>()
                .map_err(|e| format!("opening /dev/null {n} times: {e}"))?;
            say("ready");
            std::thread::sleep(secs);
            drop(files);
        }
        ["nofile", limit, n, secs] => {
            let limit: u64 = number(limit, "LIMIT")?;
            let n: usize = number(n, "N")?;
            let secs = seconds(secs, "SECS")?;
            wait_for_go()?;
            set_soft_nofile(limit)?;
            let files = (0..n)
                .map(|_| File::open("/dev/null"))
                .collect::<Result<Vec<File>, _>>()
                .map_err(|e| {
                    format!("opening /dev/null {n} times under a limit of {limit}: {e}")
                })?;
            say("ready");
            std::thread::sleep(secs);
            drop(files);
        }
        ["write", mb, path, secs, rest @ ..] => {
            let bytes = number::<u64>(mb, "MB")? * 1_000_000;
            let secs = seconds(secs, "SECS")?;
            let sync = match rest {
                [] => false,
                ["sync"] => true,
                _ => return Err(format!("unexpected arguments after SECS: {rest:?}")),
            };
            wait_for_go()?;
            write_file(path, bytes, sync)?;
            say("ready");
            std::thread::sleep(secs);
        }
        ["parent", secs, "--", command, child_args @ ..] => {
            let secs = seconds(secs, "SECS")?;
            wait_for_go()?;
            // The child inherits stdout, so its own `ready` reaches the test too.
            let status = std::process::Command::new(command)
                .args(child_args)
                .status()
                .map_err(|e| format!("running {command}: {e}"))?;
            if !status.success() {
                return Err(format!("{command} failed: {status}"));
            }
            say("reaped");
            std::thread::sleep(secs);
        }
        ["touch", mib, secs] => {
            let len = number::<usize>(mib, "MIB")? << 20;
            let secs = seconds(secs, "SECS")?;
            wait_for_go()?;
            let mut memory = vec![0u8; len];
            // vec![0; n] maps zero pages lazily: writing one byte per page makes each resident.
            for page in memory.chunks_mut(4096) {
                page[0] = 1;
            }
            std::hint::black_box(&mut memory);
            say("ready");
            std::thread::sleep(secs);
            std::hint::black_box(&memory);
        }
        ["threads", n, secs] => {
            let n: usize = number(n, "N")?;
            let secs = seconds(secs, "SECS")?;
            if n == 0 {
                return Err("N must be at least 1 (the main thread)".into());
            }
            wait_for_go()?;
            let deadline = Instant::now() + secs;
            let others: Vec<_> = (1..n)
                .map(|_| {
                    std::thread::spawn(move || {
                        std::thread::sleep(deadline.saturating_duration_since(Instant::now()))
                    })
                })
                .collect();
            say("ready");
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            for thread in others {
                thread.join().map_err(|_| "a sleeping thread panicked")?;
            }
        }
        ["sleep", secs] => {
            let secs = seconds(secs, "SECS")?;
            wait_for_go()?;
            say("ready");
            std::thread::sleep(secs);
        }
        ["tcp-serve", ip, secs, rest @ ..] => {
            let ip = common::ip(ip, ALLOWED)?;
            let secs = seconds(secs, "SECS")?;
            let port: u16 = match rest {
                [] => 0,
                [port] => number(port, "PORT")?,
                _ => return Err(format!("unexpected arguments after SECS: {rest:?}")),
            };
            serve(ip, port, secs, |mut stream| {
                std::io::copy(&mut stream, &mut std::io::sink()).map_err(|e| e.to_string())
            })?;
        }
        ["tcp-send", addr, bytes, n, secs, rest @ ..] => {
            let addr = common::addr(addr, ALLOWED)?;
            let bytes: usize = number(bytes, "BYTES")?;
            let n: usize = number(n, "N")?;
            let secs = seconds(secs, "SECS")?;
            let hold = optional_ms(rest, "HOLD_MS")?.unwrap_or_default();
            wait_for_go()?;
            for _ in 0..n {
                let mut stream =
                    std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
                write_bytes(&mut stream, bytes)?;
                std::thread::sleep(hold);
                // Wait for the peer to read everything: its read of 0 closes our side cleanly.
                stream
                    .shutdown(std::net::Shutdown::Write)
                    .map_err(|e| e.to_string())?;
                let _ = std::io::copy(&mut stream, &mut std::io::sink());
            }
            say("sent");
            std::thread::sleep(secs);
        }
        ["udp-recv", ip, secs, rest @ ..] => {
            let ip = common::ip(ip, ALLOWED)?;
            let secs = seconds(secs, "SECS")?;
            let port: u16 = match rest {
                [] => 0,
                [port] => number(port, "PORT")?,
                _ => return Err(format!("unexpected arguments after SECS: {rest:?}")),
            };
            let socket = std::net::UdpSocket::bind((ip, port)).map_err(|e| e.to_string())?;
            let port = socket.local_addr().map_err(|e| e.to_string())?.port();
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .map_err(|e| e.to_string())?;
            say(&format!("port {port}"));
            let deadline = Instant::now() + secs;
            let mut buf = vec![0u8; 65536];
            let mut count = 0u64;
            while Instant::now() < deadline {
                if socket.recv_from(&mut buf).is_ok() {
                    count += 1;
                }
            }
            say(&format!("received {count}"));
        }
        ["udp-send", addr, count, size, secs] => {
            let addr = common::addr(addr, ALLOWED)?;
            let count: usize = number(count, "COUNT")?;
            let size: usize = number(size, "SIZE")?;
            let secs = seconds(secs, "SECS")?;
            wait_for_go()?;
            let socket =
                std::net::UdpSocket::bind((loopback_like(addr), 0)).map_err(|e| e.to_string())?;
            let payload = vec![0xa5u8; size];
            for _ in 0..count {
                socket.send_to(&payload, addr).map_err(|e| e.to_string())?;
                // Paced so the receiver's socket buffer never overflows.
                std::thread::sleep(Duration::from_micros(200));
            }
            say("sent");
            std::thread::sleep(secs);
        }
        ["tcp-stream", addr, chunk, gap_ms, pause, resume, bytes, secs] => {
            let addr = common::addr(addr, ALLOWED)?;
            let chunk = vec![0x5au8; number(chunk, "CHUNK")?];
            let pace = Pace::new(gap_ms, pause, resume, bytes, "BYTES", secs)?;
            wait_for_go()?;
            let mut stream =
                std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
            pace.run(chunk.len() as u64, || {
                stream.write_all(&chunk).map_err(|e| e.to_string())
            })?;
            drop(stream);
        }
        ["udp-stream", addr, size, gap_ms, pause, resume, count, secs] => {
            let addr = common::addr(addr, ALLOWED)?;
            let payload = vec![0xa5u8; number(size, "SIZE")?];
            let pace = Pace::new(gap_ms, pause, resume, count, "COUNT", secs)?;
            wait_for_go()?;
            let socket =
                std::net::UdpSocket::bind((loopback_like(addr), 0)).map_err(|e| e.to_string())?;
            pace.run(1, || {
                socket
                    .send_to(&payload, addr)
                    .map(drop)
                    .map_err(|e| e.to_string())
            })?;
            drop(socket);
        }
        ["udp-send-from", local, addr, count, size, secs, rest @ ..] => {
            let local = common::addr(local, ALLOWED)?;
            let addr = common::addr(addr, ALLOWED)?;
            let count: usize = number(count, "COUNT")?;
            let payload = vec![0xa5u8; number(size, "SIZE")?];
            let secs = seconds(secs, "SECS")?;
            let again = optional_ms(rest, "GAP_MS")?;
            wait_for_go()?;
            // Once, and once more after GAP_MS if given.
            for wait in std::iter::once(Duration::ZERO).chain(again) {
                std::thread::sleep(wait);
                let socket: std::net::UdpSocket =
                    bound(local, rustix::net::SocketType::DGRAM)?.into();
                for _ in 0..count {
                    socket.send_to(&payload, addr).map_err(|e| e.to_string())?;
                    // Paced so the receiver's socket buffer never overflows, and the socket
                    // lives long enough (100 datagrams: 200 ms) to be asked who holds it.
                    std::thread::sleep(Duration::from_millis(2));
                }
                drop(socket);
                say(&format!("sent {count}"));
            }
            std::thread::sleep(secs);
        }
        ["tcp-send-from", local, addr, bytes, secs, rest @ ..] => {
            let local = common::addr(local, ALLOWED)?;
            let addr = common::addr(addr, ALLOWED)?;
            let bytes: usize = number(bytes, "BYTES")?;
            let secs = seconds(secs, "SECS")?;
            let again = optional_ms(rest, "GAP_MS")?;
            wait_for_go()?;
            // Once, and once more after GAP_MS if given.
            for wait in std::iter::once(Duration::ZERO).chain(again) {
                std::thread::sleep(wait);
                let socket = bound(local, rustix::net::SocketType::STREAM)?;
                rustix::net::connect(&socket, &addr).map_err(|e| format!("{addr}: {e}"))?;
                let mut stream = std::net::TcpStream::from(socket);
                write_bytes(&mut stream, bytes)?;
                // The server closes first once it has read BYTES: its end keeps the TIME_WAIT,
                // and this port is free again at once.
                let _ = std::io::copy(&mut stream, &mut std::io::sink());
                drop(stream);
                say(&format!("sent {bytes}"));
            }
            std::thread::sleep(secs);
        }
        ["tcp-take", ip, secs, bytes, rest @ ..] => {
            let ip = common::ip(ip, ALLOWED)?;
            let secs = seconds(secs, "SECS")?;
            let bytes: u64 = number(bytes, "BYTES")?;
            let hold = optional_ms(rest, "HOLD_MS")?.unwrap_or_default();
            serve(ip, 0, secs, |stream| {
                let received = std::io::copy(
                    &mut std::io::Read::take(&stream, bytes),
                    &mut std::io::sink(),
                )
                .map_err(|e| e.to_string())?;
                std::thread::sleep(hold);
                // Closed here, before the client's end: this side sends the first FIN.
                drop(stream);
                Ok(received)
            })?;
        }
        ["comm", hex, rest @ ..] if !rest.is_empty() => {
            set_comm(&hex_bytes(hex)?)?;
            return run(&args[2..]);
        }
        ["as-user", ids, rest @ ..] if !rest.is_empty() => {
            become_user(ids)?;
            return run(&args[2..]);
        }
        ["zombies", n, secs] => {
            let n: usize = number(n, "N")?;
            let secs = seconds(secs, "SECS")?;
            wait_for_go()?;
            let me = std::env::current_exe().map_err(|e| e.to_string())?;
            for _ in 0..n {
                let child = std::process::Command::new(&me)
                    .args(["sleep", "0"])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .map_err(|e| format!("starting a child: {e}"))?;
                // Never waited for: once it exits it stays a zombie until this process ends.
                std::mem::forget(child);
            }
            say("ready");
            std::thread::sleep(secs);
        }
        ["churn", rate, secs, life_ms, rest @ ..] => {
            let rate: f64 = number(rate, "RATE")?;
            let secs = seconds(secs, "SECS")?;
            let life = Duration::from_millis(number(life_ms, "LIFE_MS")?);
            let pin: Option<u32> = match rest {
                [] => None,
                [pid] => Some(number(pid, "PID")?),
                _ => return Err(format!("unexpected arguments after LIFE_MS: {rest:?}")),
            };
            if !(rate > 0.0 && rate <= 10_000.0) {
                return Err(format!("RATE {rate} is out of range (0 to 10000)"));
            }
            wait_for_go()?;
            say("ready");
            let (spawned, reused) = churn(rate, secs, life, pin)?;
            say(&format!("spawned {spawned} reused {reused}"));
        }
        ["work", burn_ms, mib] => {
            let burn_for = Duration::from_millis(number(burn_ms, "BURN_MS")?);
            let mib: u64 = number(mib, "MIB")?;
            burn(burn_for);
            let chunk = vec![0x5au8; 1 << 20];
            let mut null = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map_err(|e| format!("opening /dev/null: {e}"))?;
            for _ in 0..mib {
                null.write_all(&chunk)
                    .map_err(|e| format!("writing /dev/null: {e}"))?;
            }
        }
        ["children", rate, secs, child, burn_ms, mib] => {
            let rate: f64 = number(rate, "RATE")?;
            let secs = seconds(secs, "SECS")?;
            if !(rate > 0.0 && rate <= 10_000.0) {
                return Err(format!("RATE {rate} is out of range (0 to 10000)"));
            }
            wait_for_go()?;
            say("ready");
            let started = children(rate, secs, child, &["work", burn_ms, mib])?;
            let (own, reaped, faults) = own_and_children_ticks()?;
            say(&format!(
                "children {started} ticks {reaped} own {own} minflt {faults}"
            ));
        }
        ["maps", n, secs] => {
            let n: usize = number(n, "N")?;
            let secs = seconds(secs, "SECS")?;
            wait_for_go()?;
            let mappings = separate_mappings(n)?;
            say("ready");
            std::thread::sleep(secs);
            drop(mappings);
        }
        ["switches", threads, sleeps, secs] => {
            let threads: usize = number(threads, "THREADS")?;
            let sleeps: u32 = number(sleeps, "SLEEPS")?;
            let secs = seconds(secs, "SECS")?;
            wait_for_go()?;
            let sleepers: Vec<_> = (0..threads)
                .map(|_| {
                    std::thread::spawn(move || {
                        for _ in 0..sleeps {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    })
                })
                .collect();
            say("ready");
            for sleeper in sleepers {
                sleeper
                    .join()
                    .map_err(|_| "a sleeper panicked".to_string())?;
            }
            // SAFETY: getrusage fills the zeroed struct it is given.
            let usage = unsafe {
                let mut usage: libc::rusage = std::mem::zeroed();
                libc::getrusage(libc::RUSAGE_SELF, &mut usage);
                usage
            };
            say(&format!("switches {} {}", usage.ru_nvcsw, usage.ru_nivcsw));
            std::thread::sleep(secs);
        }
        ["compete", threads, secs] => {
            let threads: usize = number(threads, "THREADS")?;
            let secs = seconds(secs, "SECS")?;
            wait_for_go()?;
            let burners: Vec<_> = (0..threads)
                .map(|_| std::thread::spawn(move || burn(secs)))
                .collect();
            say("ready");
            for burner in burners {
                burner.join().map_err(|_| "a burner panicked".to_string())?;
            }
            say("done");
        }
        _ => return Err(format!("bad arguments {args:?}")),
    }
    Ok(())
}

/// `maps`: 2N pages mapped inaccessible, every other one then made readable: N readable
/// mappings and as many inaccessible ones between them (the kernel merges only neighbours
/// with the same protection), N of them added to /proc/PID/maps at least.
fn separate_mappings(n: usize) -> Result<Mappings, String> {
    let page = rustix::param::page_size();
    let len = 2 * n.max(1) * page;
    // SAFETY: a fresh anonymous mapping no Rust object refers to; only its protection is
    // changed below, within its bounds, and it is unmapped once (Mappings' drop).
    unsafe {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let base = libc::mmap(std::ptr::null_mut(), len, libc::PROT_NONE, flags, -1, 0);
        if base == libc::MAP_FAILED {
            return Err(format!(
                "mmap of {len} bytes: {}",
                std::io::Error::last_os_error()
            ));
        }
        let mappings = Mappings { base, len };
        for i in 0..n {
            let at = base.cast::<u8>().add(2 * i * page).cast();
            if libc::mprotect(at, page, libc::PROT_READ) != 0 {
                return Err(format!("mprotect: {}", std::io::Error::last_os_error()));
            }
        }
        Ok(mappings)
    }
}

struct Mappings {
    base: *mut std::ffi::c_void,
    len: usize,
}

impl Drop for Mappings {
    fn drop(&mut self) {
        // SAFETY: the mapping separate_mappings made, unmapped once.
        unsafe {
            libc::munmap(self.base, self.len);
        }
    }
}

/// `children`: starts `rate` children a second for `secs` (`child` with `args`), reaping each
/// as it ends; returns how many were started.
fn children(rate: f64, secs: Duration, child: &str, args: &[&str]) -> Result<u64, String> {
    let started = Instant::now();
    let mut running: std::collections::VecDeque<std::process::Child> = Default::default();
    let mut spawned = 0u64;
    while started.elapsed() < secs {
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        while spawned < due && started.elapsed() < secs {
            let process = std::process::Command::new(child)
                .args(args)
                .stdout(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("starting {child}: {e}"))?;
            running.push_back(process);
            spawned += 1;
        }
        // Reap those done, oldest first, so that few wait as zombies.
        while let Some(first) = running.front_mut() {
            match first.try_wait() {
                Ok(Some(_)) => {
                    running.pop_front();
                }
                Ok(None) => break,
                Err(e) => return Err(format!("reaping a child: {e}")),
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for mut process in running {
        let status = process
            .wait()
            .map_err(|e| format!("reaping a child: {e}"))?;
        if !status.success() {
            return Err(format!("a child failed: {status}"));
        }
    }
    Ok(spawned)
}

/// This process's own CPU time and its reaped children's, in clock ticks (/proc/self/stat's
/// utime + stime, cutime + cstime), and its reaped children's minor faults (cminflt).
fn own_and_children_ticks() -> Result<(u64, u64, u64), String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    // Fields 3 (state) on: cminflt is field 11, utime..cstime 14..17.
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    match fields.get(8..15) {
        Some([cminflt, _, _, utime, stime, cutime, cstime]) => {
            Ok((utime + stime, cutime + cstime, *cminflt))
        }
        _ => Err(format!("unexpected /proc/self/stat: {stat:?}")),
    }
}

/// The local address an unconnected socket sending to `addr` binds: loopback of the same family
/// for a loopback destination, else the family's wildcard.
fn loopback_like(addr: std::net::SocketAddr) -> std::net::IpAddr {
    match (addr.is_ipv4(), addr.ip().is_loopback()) {
        (true, true) => std::net::Ipv4Addr::LOCALHOST.into(),
        (false, true) => std::net::Ipv6Addr::LOCALHOST.into(),
        (true, false) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        (false, false) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// An optional last argument in milliseconds (`[HOLD_MS]`, `[GAP_MS]`), named `what`.
fn optional_ms(rest: &[&str], what: &str) -> Result<Option<Duration>, String> {
    match rest {
        [] => Ok(None),
        [ms] => Ok(Some(Duration::from_millis(number(ms, what)?))),
        _ => Err(format!("unexpected arguments before {what}: {rest:?}")),
    }
}

/// Listens on `ip:port` (0: any; prints `port N`) and, for `secs`, hands each connection to
/// `read`, which reads it and says how many bytes (printed as `received BYTES`).
fn serve(
    ip: std::net::IpAddr,
    port: u16,
    secs: Duration,
    mut read: impl FnMut(std::net::TcpStream) -> Result<u64, String>,
) -> Result<(), String> {
    let listener = std::net::TcpListener::bind((ip, port)).map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    say(&format!("port {port}"));
    let deadline = Instant::now() + secs;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).map_err(|e| e.to_string())?;
                let received = read(stream)?;
                say(&format!("received {received}"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Writes `bytes` bytes to `stream`, 64 KiB at a time.
fn write_bytes(stream: &mut std::net::TcpStream, bytes: usize) -> Result<(), String> {
    let chunk = vec![0x5au8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let part = left.min(chunk.len());
        stream
            .write_all(&chunk[..part])
            .map_err(|e| e.to_string())?;
        left -= part;
    }
    Ok(())
}

/// A socket of `kind` with SO_REUSEADDR, bound to `local`: a port another socket held a moment
/// ago (a TIME_WAIT included) is bound again.
fn bound(
    local: std::net::SocketAddr,
    kind: rustix::net::SocketType,
) -> Result<std::os::fd::OwnedFd, String> {
    use rustix::net::AddressFamily;
    let family = if local.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let socket = rustix::net::socket(family, kind, None).map_err(|e| e.to_string())?;
    rustix::net::sockopt::set_socket_reuseaddr(&socket, true).map_err(|e| e.to_string())?;
    rustix::net::bind(&socket, &local).map_err(|e| format!("binding {local}: {e}"))?;
    Ok(socket)
}

/// The pace of `tcp-stream` and `udp-stream`: one send every `gap` until the file `pause`
/// exists, then, once the file `resume` exists, `more` sends (in units of the send), then
/// `hold` before the caller closes.
struct Pace {
    gap: Duration,
    pause: std::path::PathBuf,
    resume: std::path::PathBuf,
    more: u64,
    hold: Duration,
}

impl Pace {
    fn new(
        gap_ms: &str,
        pause: &str,
        resume: &str,
        more: &str,
        what: &str,
        hold: &str,
    ) -> Result<Pace, String> {
        Ok(Pace {
            gap: Duration::from_millis(number(gap_ms, "GAP_MS")?),
            pause: pause.into(),
            resume: resume.into(),
            more: number(more, what)?,
            hold: seconds(hold, "SECS")?,
        })
    }

    /// Calls `send` (which sends `unit` of what is counted) at the pace, printing `paused SENT`
    /// and `sent SENT`, then holds.
    fn run(&self, unit: u64, mut send: impl FnMut() -> Result<(), String>) -> Result<(), String> {
        let mut sent = 0u64;
        while !self.pause.exists() {
            send()?;
            sent += unit;
            std::thread::sleep(self.gap);
        }
        say(&format!("paused {sent}"));
        while !self.resume.exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let target = sent + self.more;
        while sent < target {
            send()?;
            sent += unit;
            std::thread::sleep(self.gap);
        }
        say(&format!("sent {sent}"));
        std::thread::sleep(self.hold);
        Ok(())
    }
}

/// Spins on the CPU, in user space, for `duration` of wall time.
fn burn(duration: Duration) {
    let start = Instant::now();
    let mut x: u64 = 1;
    while start.elapsed() < duration {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    std::hint::black_box(x);
}

/// Writes `bytes` bytes to a new file at `path` with one write(2) per MiB (std's `write_all`
/// on a `File` calls write(2) directly, without buffering).
fn write_file(path: &str, bytes: u64, sync: bool) -> Result<(), String> {
    let chunk = vec![0x5au8; 1 << 20];
    let mut file = File::create(path).map_err(|e| format!("creating {path}: {e}"))?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])
            .map_err(|e| format!("writing {path}: {e}"))?;
        left -= n as u64;
    }
    if sync {
        file.sync_all()
            .map_err(|e| format!("fsync of {path}: {e}"))?;
    }
    Ok(())
}

/// Sets the soft `RLIMIT_NOFILE` of this process, keeping the hard one.
fn set_soft_nofile(soft: u64) -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    limit.rlim_cur = soft;
    // SAFETY: setrlimit reads one rlimit we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(format!(
            "setrlimit({soft}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// With `CW_WAIT_STDIN` set: prints `waiting`, then blocks until stdin gives a line (or ends).
fn wait_for_go() -> Result<(), String> {
    if std::env::var_os("CW_WAIT_STDIN").is_some() {
        say("waiting");
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading stdin: {e}"))?;
    }
    Ok(())
}

/// Parses hex digits into bytes (`61290a` is `a)` and a newline).
fn hex_bytes(hex: &str) -> Result<Vec<u8>, String> {
    if hex.len() % 2 != 0 {
        return Err(format!("HEX `{hex}` has an odd number of digits"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| format!("HEX `{hex}` is not hex"))
        })
        .collect()
}

/// Sets this process's command name (`/proc/PID/comm`); the kernel keeps 15 bytes.
fn set_comm(name: &[u8]) -> Result<(), String> {
    if name.len() > 15 || name.contains(&0) {
        return Err(format!(
            "{name:?}: a comm is at most 15 bytes, none of them NUL"
        ));
    }
    let mut buf = [0u8; 16];
    buf[..name.len()].copy_from_slice(name);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes: `buf` is 16 bytes
    // and ends in NUL.
    if unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr()) } != 0 {
        return Err(format!(
            "prctl(PR_SET_NAME): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Becomes `UID:GID`, without supplementary groups.
fn become_user(ids: &str) -> Result<(), String> {
    let (uid, gid) = ids
        .split_once(':')
        .ok_or_else(|| format!("expected UID:GID, not `{ids}`"))?;
    let uid: libc::uid_t = number(uid, "UID")?;
    let gid: libc::gid_t = number(gid, "GID")?;
    // SAFETY: setgroups reads no memory with a count of 0; setgid and setuid take plain ids.
    let failed = unsafe {
        libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(gid) != 0
            || libc::setuid(uid) != 0
    };
    if failed {
        return Err(format!(
            "becoming {uid}:{gid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// `churn`: starts `rate` children a second for `secs`, each killed after `life` if still
/// there, every one reaped. Returns how many were started and how many got a pid an earlier
/// child had.
fn churn(
    rate: f64,
    secs: Duration,
    life: Duration,
    pin: Option<u32>,
) -> Result<(u64, u64), String> {
    use std::collections::{HashSet, VecDeque};
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let life_secs = format!("{}", life.as_secs_f64());
    let started = Instant::now();
    let mut alive: VecDeque<(Instant, std::process::Child)> = VecDeque::new();
    let mut pids = HashSet::new();
    let (mut spawned, mut reused) = (0u64, 0u64);
    while started.elapsed() < secs {
        // Children due by now, from the schedule: a stall is caught up, not lost.
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        // A machine too busy to keep the rate catches up, a few at a time between reaps (so
        // exited children do not pile up as zombies), and never past SECS.
        let batch_end = due.min(spawned + 10);
        while spawned < batch_end && started.elapsed() < secs {
            if let Some(pid) = pin {
                // Best effort: another process may take the pid first, then ours gets the next.
                let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1));
            }
            let child = std::process::Command::new(&me)
                .args(["sleep", &life_secs])
                .stdout(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("starting a child: {e}"))?;
            if !pids.insert(child.id()) {
                reused += 1;
            }
            spawned += 1;
            alive.push_back((Instant::now() + life, child));
        }
        while alive
            .front()
            .is_some_and(|(deadline, _)| *deadline <= Instant::now())
        {
            if let Some((_, mut child)) = alive.pop_front() {
                let _ = child.kill();
                child.wait().map_err(|e| format!("reaping a child: {e}"))?;
            }
        }
        if spawned >= due {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for (_, mut child) in alive {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok((spawned, reused))
}

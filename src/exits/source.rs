//! The kernel's exit records: a generic-netlink socket registered with the `TASKSTATS` family
//! as a listener for every CPU, which the kernel sends one message to whenever a thread exits
//! (see [`crate::taskstats`] for what a message holds). It owns that socket and the
//! registration; the family's id and header are [`crate::taskstats::family`]'s, the netlink
//! plumbing [`crate::net::netlink::socket`]'s. Read by the exit thread ([`super`]), blocking
//! with a timeout.
//!
//! Kernel behaviour relied on (kernel/taskstats.c), Linux 2.6.19 or later with
//! `CONFIG_TASKSTATS`:
//! - The family's id is asked of the generic-netlink controller by name (`TASKSTATS`).
//! - `TASKSTATS_CMD_GET` with `TASKSTATS_CMD_ATTR_REGISTER_CPUMASK` (a cpulist string such as
//!   "0-63") registers the sending socket's port for the exits on those CPUs. The command needs
//!   `CAP_NET_ADMIN` (`GENL_ADMIN_PERM`: EPERM without it), and the registration is refused
//!   (EINVAL) from outside the initial user and pid namespaces (a container).
//! - An exit is sent to each listener of the CPU the thread exits on; the kernel drops it when
//!   the listener's receive buffer is full, and the next read reports `ENOBUFS` once. Closing
//!   the socket ends the registration (the kernel drops a listener it cannot reach); it is also
//!   withdrawn explicitly on drop.
//! - Pids and uids in exit records are the initial namespaces' (what /proc shows the plugin).

use crate::net::netlink::socket::{
    exact_answer, messages, put_attribute, RecvBuffer, Socket, NLM_F_REQUEST,
};
use crate::taskstats::family::{family_id, genl_header, genl_payload};
use crate::taskstats::{
    self, Exit, TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK, TASKSTATS_CMD_ATTR_REGISTER_CPUMASK,
    TASKSTATS_CMD_GET, TASKSTATS_CMD_NEW,
};
use std::io;
use std::time::Duration;

/// `NLM_F_ACK`: the registration is acknowledged, so a refusal is heard.
const NLM_F_ACK: u16 = 0x4;

/// The receive buffer asked for (the kernel doubles it for its bookkeeping). An exit record
/// takes about 1.3 KiB of it (a 600-byte message in a larger skb; twice that for the last
/// thread of a multi-threaded process), so some 12,000 exits fit between two reads.
pub const RECEIVE_BUFFER: usize = 8 << 20;
/// One message per datagram: a thread's record and perhaps its process's, about 1.2 KiB on
/// 6.18 (560-byte records); larger datagrams (far newer kernels) are read whole.
const DATAGRAM_BUFFER: usize = 4096;

/// A registered listener for every CPU's exits.
pub struct ExitSource {
    socket: Socket,
    family: u16,
    cpus: String,
    /// The receive timeout the socket has, set again only when a read asks for another.
    timeout: Option<Duration>,
}

/// What one [`ExitSource::receive`] gave.
#[derive(Debug, Default)]
pub struct Received {
    pub exits: Vec<Exit>,
    /// The kernel dropped records (`ENOBUFS`): its buffer was full.
    pub overrun: bool,
    /// Messages that did not parse, skipped.
    pub malformed: usize,
}

impl ExitSource {
    /// Registers for the exits of every possible CPU. The error says why not: EPERM without
    /// `CAP_NET_ADMIN`, ENOENT without taskstats in the kernel, EINVAL inside a container.
    pub fn open() -> io::Result<ExitSource> {
        let cpus = possible_cpus()?;
        let mut socket = Socket::open(
            Some(rustix::net::netlink::GENERIC),
            RecvBuffer::Growing(DATAGRAM_BUFFER),
        )?;
        socket.set_receive_buffer(RECEIVE_BUFFER)?;
        let family = family_id(&mut socket)?;
        let mut source = ExitSource {
            socket,
            family,
            cpus,
            timeout: None,
        };
        source.registration(TASKSTATS_CMD_ATTR_REGISTER_CPUMASK)?;
        Ok(source)
    }

    /// Registers (or withdraws) this socket for the exits on every CPU, and waits for the
    /// kernel's acknowledgement.
    fn registration(&mut self, attribute: u16) -> io::Result<()> {
        let mut mask = self.cpus.clone().into_bytes();
        mask.push(0);
        let seq = self
            .socket
            .request(self.family, NLM_F_REQUEST | NLM_F_ACK, |out| {
                genl_header(out, TASKSTATS_CMD_GET);
                put_attribute(out, attribute, &mask);
            })?;
        // Only the acknowledgement is waited for (no message type is u16::MAX): exits queued
        // before it are skipped (a few at start, or while the registration is withdrawn).
        self.socket
            .receive_until(|datagram| exact_answer(datagram, seq, u16::MAX, |_| Ok(())))?;
        Ok(())
    }

    /// Waits up to `timeout` for exits, then reads every one already queued, at most `max`
    /// datagrams.
    pub fn receive(&mut self, timeout: Duration, max: usize) -> io::Result<Received> {
        let mut received = Received::default();
        if self.timeout != Some(timeout) {
            rustix::net::sockopt::set_socket_timeout(
                &self.socket.fd,
                rustix::net::sockopt::Timeout::Recv,
                Some(timeout),
            )?;
            self.timeout = Some(timeout);
        }
        let mut blocking = true;
        for _ in 0..max {
            let family = self.family;
            let mut take = |datagram: &[u8]| -> io::Result<Option<()>> {
                parse_datagram(datagram, family, &mut received);
                Ok(Some(()))
            };
            // The first datagram is waited for; then only what is queued is taken.
            let read = if blocking {
                self.socket.receive_until(&mut take)
            } else {
                self.socket.receive_queued(&mut take)
            };
            match read {
                Ok(()) => blocking = false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    received.overrun = true;
                    blocking = false;
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData => received.malformed += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(received)
    }
}

impl Drop for ExitSource {
    fn drop(&mut self) {
        let _ = self.registration(TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK);
    }
}

/// Appends the exits one datagram holds.
fn parse_datagram(datagram: &[u8], family: u16, received: &mut Received) {
    for message in messages(datagram) {
        let Ok(message) = message else {
            received.malformed += 1;
            return;
        };
        if message.kind != family {
            continue;
        }
        let Some((cmd, attrs)) = genl_payload(message.payload) else {
            received.malformed += 1;
            continue;
        };
        if cmd != TASKSTATS_CMD_NEW {
            continue;
        }
        match taskstats::parse_exit(attrs) {
            Ok(exit) => received.exits.push(exit),
            Err(_) => received.malformed += 1,
        }
    }
}

/// The CPUs that may ever run tasks, as the kernel lists them ("0-63").
fn possible_cpus() -> io::Result<String> {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    let list = list.trim();
    if list.is_empty()
        || !list
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b',')
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/sys/devices/system/cpu/possible says {list:?}"),
        ));
    }
    Ok(list.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Instant;

    /// A child that burns some CPU and exits is heard of, with the CPU time its parent's
    /// rusage gives it.
    #[test]
    fn a_child_exit_is_heard_with_its_cpu_time() {
        let mut source = match ExitSource::open() {
            Ok(source) => source,
            Err(e) => {
                eprintln!("SKIP: cannot register for exit records here: {e}");
                return;
            }
        };
        let child = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let pid = child.id();
        // The child's own rusage, as its parent is told when it reaps it.
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our child, not yet reaped; both pointers are valid for the call.
        let reaped = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
        assert_eq!(reaped, pid as i32);
        std::mem::forget(child);
        let rusage_us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        let (user_us, system_us) = (rusage_us(usage.ru_utime), rusage_us(usage.ru_stime));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found = None;
        while found.is_none() && Instant::now() < deadline {
            let received = source.receive(Duration::from_millis(200), 1024).unwrap();
            found = received
                .exits
                .into_iter()
                .filter_map(|exit| exit.thread)
                .find(|t| t.pid == pid);
        }
        let record = found.expect("the child's exit record");
        assert_eq!(record.comm, b"sh");
        assert_eq!(record.tgid.unwrap_or(pid), pid);
        assert_eq!(record.ppid, std::process::id());
        // The record is written in do_exit before the process tears down its memory, files and
        // itself, which the parent's rusage counts too: a little less, never more (measured:
        // 79,767 against 80,380 µs for this loop on a loaded machine, 0.8% short).
        let (user, system) = record.cpu_us();
        let (recorded, reaped) = (user + system, user_us + system_us);
        assert!(
            recorded <= reaped + 1 && recorded * 10 >= reaped * 8,
            "exit record {user} + {system} µs, rusage {user_us} + {system_us} µs: {record:?}"
        );
    }
}

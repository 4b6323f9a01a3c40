//! One owner record as the kernel programs write it (`bpf/record.h`), parsed by its offsets:
//! the ring buffer hands over raw bytes, and nothing read from the kernel is trusted to be the
//! right length. Pure: no kernel, unit-tested in `tests.rs`.

use crate::net::types::{Owner, Transport};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `sizeof(struct owner_record)` without the tail padding: the last field ends here.
pub const RECORD_LEN: usize = 100;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Nanoseconds per clock tick of /proc/PID/stat's start time (`USER_HZ` is 100 on every
/// architecture Linux has: the kernel converts with `nsec_to_clock_t`, an integer division).
const NS_PER_TICK: u64 = 10_000_000;

/// What the process did with the socket when it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Its TCP connect() completed.
    Connected,
    Sent,
    Received,
}

/// A process, as the kernel saw it when it used a socket: enough to key it as the sampler does
/// and to place it in an instance if the sampler never sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelProcess {
    pub owner: Owner,
    /// The thread group leader's comm (what /proc/PID/stat and /proc/PID/comm say).
    pub comm: String,
    /// The real uid of the thread that used the socket.
    pub uid: u32,
    /// Its cgroup v2 id (the inode number of its cgroup directory); 0 on cgroup v1 only hosts.
    pub cgroup_id: u64,
}

/// One record: which process used which socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRecord {
    pub process: KernelProcess,
    /// The socket's inode, as sock_diag and /proc/PID/fd name it; 0 for a socket no file
    /// refers to (never the case for one a process used, but not trusted).
    pub socket_inode: u64,
    /// When, in CLOCK_MONOTONIC nanoseconds.
    pub recorded_ns: u64,
    /// The socket's network namespace, as the inode number of its nsfs file.
    pub netns_inode: u32,
    pub transport: Transport,
    /// The bound address and port: unspecified for a wildcard bind. IPv4-mapped IPv6 addresses
    /// (a dual-stack socket talking IPv4) are given as IPv4, as the packets carry them.
    pub local: SocketAddr,
    /// The peer, for a connected socket.
    pub remote: Option<SocketAddr>,
    pub event: Event,
}

/// The record in `bytes`, or `None` when they are too short or say something no program
/// writes (another family, protocol or event).
pub fn parse(bytes: &[u8]) -> Option<OwnerRecord> {
    if bytes.len() < RECORD_LEN {
        return None;
    }
    let u64_at = |at: usize| Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u16_at = |at: usize| Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let addr_at = |at: usize| -> Option<[u8; 16]> { bytes.get(at..at + 16)?.try_into().ok() };

    let start_boottime_ns = u64_at(0)?;
    let cgroup_id = u64_at(8)?;
    let socket_inode = u64_at(16)?;
    let recorded_ns = u64_at(24)?;
    let netns_inode = u32_at(32)?;
    let tgid = u32_at(36)?;
    let uid = u32_at(40)?;
    let family = u16_at(44)?;
    let transport = match *bytes.get(46)? {
        IPPROTO_TCP => Transport::Tcp,
        IPPROTO_UDP => Transport::Udp,
        _ => return None,
    };
    let event = match *bytes.get(47)? {
        1 => Event::Connected,
        2 => Event::Sent,
        3 => Event::Received,
        _ => return None,
    };
    let local_port = u16_at(48)?;
    let remote_port = u16_at(50)?;
    let (local_ip, remote_ip) = match family {
        AF_INET => (v4(&addr_at(52)?), v4(&addr_at(68)?)),
        AF_INET6 => (v6(addr_at(52)?), v6(addr_at(68)?)),
        _ => return None,
    };
    let comm = bytes.get(84..100)?;
    let comm = &comm[..comm.iter().position(|&b| b == 0).unwrap_or(comm.len())];
    // A peer is set when the socket is connected: a port (a connected socket always has one).
    let remote = (remote_port != 0).then_some(SocketAddr::new(remote_ip, remote_port));
    Some(OwnerRecord {
        process: KernelProcess {
            owner: Owner {
                pid: tgid,
                starttime: start_boottime_ns / NS_PER_TICK,
            },
            comm: String::from_utf8_lossy(comm).into_owned(),
            uid,
            cgroup_id,
        },
        socket_inode,
        recorded_ns,
        netns_inode,
        transport,
        local: SocketAddr::new(local_ip, local_port),
        remote,
        event,
    })
}

fn v4(bytes: &[u8; 16]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
}

/// An IPv6 address, or the IPv4 one it maps (`::ffff:a.b.c.d`).
fn v6(bytes: [u8; 16]) -> IpAddr {
    let ip = Ipv6Addr::from(bytes);
    match ip.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(ip),
    }
}

#[cfg(test)]
mod tests;

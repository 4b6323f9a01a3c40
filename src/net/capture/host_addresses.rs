//! The host's own IP addresses, for captures whose link layer does not say which way a packet
//! went (Ethernet and raw-IP devices; the `any` device says), kept current while addresses
//! come and go at runtime (DHCP, failover, a container starting).
//!
//! [`LiveHostAddresses`] re-reads them when the kernel announces an address change (netlink
//! `RTMGRP_*_IFADDR` notifications) and every second in case a notification was lost. The
//! announcement is checked at once — at most every millisecond — when a frame matches none of
//! the known addresses, so the first packet of a new address is not credited wrongly.
//!
//! Runs on the capture threads. The announcements arrive on a non-blocking netlink socket of
//! its own that is only ever drained, never asked: nothing here waits, so it does not use the
//! blocking clients of [`crate::net::netlink`].

use super::flows::LocalAddresses;
use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Re-read this often even without an announcement.
const REFRESH: Duration = Duration::from_secs(1);
/// A frame matching no address checks for an announcement at most this often.
const CHECK_ON_MISS: Duration = Duration::from_millis(1);
/// Without announcements (no netlink), a miss re-reads the addresses at most this often.
const REFRESH_ON_MISS_UNANNOUNCED: Duration = Duration::from_millis(100);

#[derive(Debug, Default, Clone)]
pub struct HostAddresses {
    addresses: HashSet<IpAddr>,
}

impl HostAddresses {
    /// The addresses configured on this host's interfaces now (getifaddrs).
    pub fn current() -> HostAddresses {
        let mut addresses = HashSet::new();
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills `list` with a linked list we free below with freeifaddrs.
        if unsafe { libc::getifaddrs(&mut list) } != 0 {
            return HostAddresses { addresses };
        }
        let mut cursor = list;
        while !cursor.is_null() {
            // SAFETY: `cursor` is a node of the list getifaddrs returned, not yet freed.
            let entry = unsafe { &*cursor };
            if let Some(ip) = to_ip(entry.ifa_addr) {
                addresses.insert(ip);
            }
            // A subnet's broadcast address reaches the host's sockets like its own addresses.
            if entry.ifa_flags & libc::IFF_BROADCAST as u32 != 0 {
                if let Some(ip) = to_ip(entry.ifa_ifu) {
                    addresses.insert(ip);
                }
            }
            cursor = entry.ifa_next;
        }
        // SAFETY: `list` came from getifaddrs and is freed once.
        unsafe { libc::freeifaddrs(list) };
        HostAddresses { addresses }
    }

    pub fn from_addresses(addresses: impl IntoIterator<Item = IpAddr>) -> HostAddresses {
        HostAddresses {
            addresses: addresses.into_iter().collect(),
        }
    }
}

impl LocalAddresses for HostAddresses {
    fn is_local(&self, ip: &IpAddr) -> bool {
        // All of 127.0.0.0/8 is local, not just the configured 127.0.0.1.
        ip.is_loopback() || self.addresses.contains(ip)
    }
}

/// The host's addresses, kept current; see the module comment.
pub struct LiveHostAddresses {
    addresses: HostAddresses,
    announcements: Option<AddressAnnouncements>,
    refreshed: Instant,
    checked: Instant,
}

impl LiveHostAddresses {
    pub fn new() -> LiveHostAddresses {
        // Subscribe before the first read, so no change falls between the two.
        let announcements = AddressAnnouncements::subscribe().ok();
        LiveHostAddresses {
            addresses: HostAddresses::current(),
            announcements,
            refreshed: Instant::now(),
            checked: Instant::now(),
        }
    }

    pub fn addresses(&self) -> &HostAddresses {
        &self.addresses
    }

    /// Housekeeping: re-reads the addresses if the kernel announced a change or a second
    /// passed.
    pub fn tick(&mut self) {
        let announced = self.announcements.as_mut().is_some_and(|a| a.pending());
        if announced || self.refreshed.elapsed() >= REFRESH {
            self.reread();
        }
    }

    /// Called for a frame neither of whose ends is a known address: it may be the first of an
    /// address added a moment ago.
    pub fn missed(&mut self) {
        let stale = match self.announcements.as_mut() {
            Some(announcements) => {
                self.checked.elapsed() >= CHECK_ON_MISS && {
                    self.checked = Instant::now();
                    announcements.pending()
                }
            }
            None => self.refreshed.elapsed() >= REFRESH_ON_MISS_UNANNOUNCED,
        };
        if stale {
            self.reread();
        }
    }

    fn reread(&mut self) {
        self.addresses = HostAddresses::current();
        self.refreshed = Instant::now();
    }
}

impl Default for LiveHostAddresses {
    fn default() -> Self {
        Self::new()
    }
}

/// A NETLINK_ROUTE socket subscribed to the kernel's address notifications, read without
/// blocking: only whether something was announced matters, not what.
struct AddressAnnouncements {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl AddressAnnouncements {
    // linux/rtnetlink.h
    const RTMGRP_IPV4_IFADDR: u32 = 0x10;
    const RTMGRP_IPV6_IFADDR: u32 = 0x100;

    fn subscribe() -> rustix::io::Result<AddressAnnouncements> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None, // NETLINK_ROUTE
        )?;
        let groups = Self::RTMGRP_IPV4_IFADDR | Self::RTMGRP_IPV6_IFADDR;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, groups))?;
        Ok(AddressAnnouncements {
            fd,
            buf: vec![0; 8192],
        })
    }

    /// Whether anything was announced since the last call; drains what was.
    fn pending(&mut self) -> bool {
        let mut announced = false;
        loop {
            match rustix::net::recv(&self.fd, &mut self.buf[..], RecvFlags::DONTWAIT) {
                Ok(_) => announced = true,
                Err(Errno::AGAIN) => return announced,
                Err(Errno::INTR) => {}
                // Notifications were lost (ENOBUFS) or the socket broke: assume a change.
                Err(_) => return true,
            }
        }
    }
}

fn to_ip(addr: *const libc::sockaddr) -> Option<IpAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY: a non-null ifa_addr points to a sockaddr whose family says its real type.
    unsafe {
        match i32::from((*addr).sa_family) {
            libc::AF_INET => {
                let v4 = &*(addr as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
            }
            libc::AF_INET6 => {
                let v6 = &*(addr as *const libc::sockaddr_in6);
                Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_local() {
        let host = HostAddresses::current();
        assert!(host.is_local(&"127.0.0.1".parse().unwrap()));
        assert!(host.is_local(&"127.0.0.53".parse().unwrap()));
        assert!(host.is_local(&"::1".parse().unwrap()));
        assert!(
            !host.is_local(&"192.0.2.1".parse().unwrap()),
            "TEST-NET-1 is nobody's"
        );
    }

    #[test]
    fn address_changes_are_announced() {
        let Ok(mut announcements) = AddressAnnouncements::subscribe() else {
            eprintln!("SKIP: no NETLINK_ROUTE socket here");
            return;
        };
        // Other tests of this binary may change addresses too: start from a drained socket.
        announcements.pending();
        // Adding an address needs root and a link of our own: a dummy one, removed at once.
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .output()
                .is_ok_and(|out| out.status.success())
        };
        let link = format!("capa{}", std::process::id() % 100_000);
        if !ip(&["link", "add", &link, "type", "dummy"]) {
            eprintln!("SKIP: cannot create a dummy link (not root?)");
            return;
        }
        let added = ip(&["addr", "add", "10.203.255.1/32", "dev", &link]);
        let announced = announcements.pending();
        ip(&["link", "del", &link]);
        assert!(added);
        assert!(announced, "the new address was announced");
    }
}

//! The host's own IP addresses, for captures whose link layer does not say which way a packet
//! went (Ethernet and raw-IP devices; the `any` device says). Refreshed by the capture thread
//! every second, so direction stays right when addresses change at runtime.

use super::flows::LocalAddresses;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
}

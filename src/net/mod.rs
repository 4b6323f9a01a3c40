//! Per-process network traffic: packets captured with libpcap, parsed to their flow, attributed
//! to the process that owns the local socket.
//!
//! - [`capture`]: one libpcap handle, the only libpcap code;
//! - [`packet`] (with [`fragments`]): link, network and transport headers -> one flow-tagged
//!   packet, never reading past the captured length;
//! - [`flows`]: the flow table: per-packet crediting, bytes held until the owner is known;
//! - [`host_addresses`]: the host's own addresses, for captures without a direction;
//! - [`sockdiag`]: the kernel's socket table through netlink sock_diag: one socket by its
//!   addresses, in microseconds;
//! - [`inodes`] (with [`fd_table`]): socket inode -> owning process, maintained incrementally;
//! - [`namespaces`] (with [`rtnetlink`]): the host's network namespaces, veths and bridges, as
//!   the capture sees them;
//! - [`netlink`]: the netlink socket, messages and attributes that [`sockdiag`], [`rtnetlink`]
//!   and [`conntrack`] share;
//! - [`resolver`]: the resolver thread: flow -> socket -> process in any namespace, and the
//!   topology;
//! - [`monitor`]: the capture threads and the totals they publish.

pub mod capture;
pub mod conntrack;
mod fd_table;
pub mod flows;
pub mod fragments;
pub mod host_addresses;
pub mod inodes;
pub mod monitor;
pub mod namespaces;
pub mod netlink;
pub mod packet;
pub mod resolver;
pub mod rtnetlink;
pub mod sockdiag;

use crate::config::{ConfigError, NetworkConfig};
use capture::{CaptureOptions, OpenError};
use monitor::NetMonitor;

/// Checks what the configuration alone cannot: that the interfaces exist and the BPF filter
/// compiles. Needs no privilege.
pub fn validate(config: &NetworkConfig) -> Result<(), ConfigError> {
    let known = capture::interface_names();
    for name in &config.interfaces {
        // libpcap may not list an interface it cannot open without privilege: only refuse a
        // name the kernel does not know either.
        let exists = known.contains(name)
            || name == "any"
            || std::path::Path::new("/sys/class/net").join(name).exists();
        if !exists {
            return Err(ConfigError {
                option: "Interface".into(),
                value: format!("\"{name}\""),
                problem: format!(
                    "no such network interface; known: any, {}",
                    known
                        .iter()
                        .filter(|n| *n != "any")
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    if let Some(filter) = &config.bpf_filter {
        capture::check_filter(filter).map_err(|detail| ConfigError {
            option: "BPFFilter".into(),
            value: format!("\"{filter}\""),
            problem: format!("the filter does not compile: {detail}"),
        })?;
    }
    Ok(())
}

/// Opens the captures and starts their threads. What cannot be opened is logged once per
/// cause; without the privilege to capture, one warning, and every process metric goes on.
/// `None` when no interface could be opened: then no network numbers are reported at all,
/// rather than zeros that would look like a quiet network.
pub fn start(config: &NetworkConfig) -> Option<NetMonitor> {
    let options: Vec<CaptureOptions> = config
        .interfaces
        .iter()
        .map(|interface| CaptureOptions {
            interface: interface.clone(),
            bpf_filter: config.bpf_filter.clone(),
            snaplen: i32::try_from(config.snaplen).unwrap_or(i32::MAX),
            buffer_size: i32::try_from(config.buffer_size).unwrap_or(i32::MAX),
            promiscuous: config.promiscuous,
        })
        .collect();
    let (monitor, errors) = NetMonitor::start(&options);
    let mut privilege_warned = false;
    for (interface, error) in errors {
        match error {
            OpenError::NoPrivilege(_) if privilege_warned => {}
            OpenError::NoPrivilege(_) => {
                privilege_warned = true;
                log::warn!("{error}");
            }
            _ => log::warn!("cannot capture on `{interface}`: {error}"),
        }
    }
    monitor.is_capturing().then_some(monitor)
}

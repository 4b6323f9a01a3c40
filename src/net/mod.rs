//! Per-process network traffic: packets captured with libpcap, parsed to their flow, attributed
//! to the process that owns the local socket.
//!
//! Laid out by role and by the thread that runs it; dependencies point one way, down this list:
//!
//! - [`monitor`]: starts the capture threads and the resolver thread, joins them, and holds the
//!   totals they publish for the sampler;
//! - [`capture`]: the packet path, run by one capture thread per interface: libpcap, parsing,
//!   the flow table. Never blocks, never imports [`ownership`] or [`netlink`];
//! - [`ownership`]: the resolver thread: which process owns a flow's socket (sock_diag, the
//!   inode index, namespaces), off the packet path;
//! - [`netlink`]: the kernel clients the resolver uses (sock_diag, rtnetlink, conntrack) and
//!   their shared socket plumbing;
//! - [`types`], [`topology`] and [`closed_sockets`]: the data the sides exchange (flows, owners,
//!   requests; the topology and the destroyed sockets the resolver publishes and the capture
//!   reads), importing none of them.

pub mod capture;
pub mod closed_sockets;
pub mod monitor;
pub mod netlink;
pub mod ownership;
pub mod topology;
pub mod types;

use crate::config::{ConfigError, NetworkConfig, OwnerSource};
use capture::pcap_source::{self, CaptureOptions, OpenError};
use monitor::NetMonitor;
use ownership::ebpf::OwnerRecords;

/// Checks what the configuration alone cannot: that the interfaces exist and the BPF filter
/// compiles. Needs no privilege.
pub fn validate(config: &NetworkConfig) -> Result<(), ConfigError> {
    let known = pcap_source::interface_names();
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
        pcap_source::check_filter(filter).map_err(|detail| ConfigError {
            option: "BPFFilter".into(),
            value: format!("\"{filter}\""),
            problem: format!("the filter does not compile: {detail}"),
        })?;
    }
    Ok(())
}

/// The eBPF owner source as `OwnerSource` says: loaded for "auto" when it can be (and why not,
/// said once, when it cannot), always for "ebpf" (its failure is a refusal, as a bad option's),
/// never for "proc". Says once which source is in use.
pub fn load_owner_source(config: &NetworkConfig) -> Result<Option<OwnerRecords>, ConfigError> {
    match config.owner_source {
        OwnerSource::Proc => {
            log::info!("owner source: /proc and sock_diag (OwnerSource \"proc\")");
            Ok(None)
        }
        OwnerSource::Auto | OwnerSource::Ebpf => match OwnerRecords::load() {
            Ok(records) => {
                log::info!("owner source: eBPF ({}), then /proc", records.coverage);
                Ok(Some(records))
            }
            Err(e) if config.owner_source == OwnerSource::Auto => {
                log::warn!(
                    "owner source: /proc and sock_diag; the eBPF programs did not load: {e}. \
                     Short connections and processes that exit before their packets are \
                     looked at count as unattributed"
                );
                Ok(None)
            }
            Err(e) => Err(ConfigError {
                option: "OwnerSource".into(),
                value: "\"ebpf\"".into(),
                problem: format!(
                    "the eBPF programs did not load: {e}; \"auto\" falls back to /proc"
                ),
            }),
        },
    }
}

/// Opens the captures and starts their threads, registered on `board`. What cannot be opened
/// is logged once per cause; without the privilege to capture, one warning, and every process
/// metric goes on.
/// `None` when no interface could be opened: then no network numbers are reported at all,
/// rather than zeros that would look like a quiet network.
pub fn start(
    config: &NetworkConfig,
    owner_records: Option<OwnerRecords>,
    board: &std::sync::Arc<crate::supervise::ThreadBoard>,
) -> Option<NetMonitor> {
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
    let limits = capture::flows::FlowLimits::from_max_flows(config.max_flows);
    let (monitor, errors) = NetMonitor::start(&options, limits, owner_records, board);
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

/// Unit tests that create network namespaces or veths take turns (the tests of one binary run
/// in parallel): the kernel gives a new namespace the nsid of one that just died, so a test
/// watching its namespace go would see another test's namespace take its number.
#[cfg(test)]
pub(crate) fn namespace_test_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod layering_tests {
    //! The one-way rule of the layout, checked on the source: the packet path never imports
    //! owner resolution or the netlink clients, the shared data imports none of the sides, and
    //! the netlink clients know nothing of the threads that use them.

    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("reading src/net").flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every line of the files under `src/net/<part>` (or the file `src/net/<part>.rs`) that
    /// names one of `forbidden` in a path (`crate::net::X`, `super::X`), comments left out.
    fn offending_lines(part: &str, forbidden: &[&str]) -> Vec<String> {
        let net = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/net");
        let mut files = Vec::new();
        let dir = net.join(part);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        } else {
            files.push(net.join(format!("{part}.rs")));
        }
        assert!(!files.is_empty(), "no source under src/net/{part}");
        let mut found = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("reading a source file");
            for (number, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for name in forbidden {
                    let paths = [format!("crate::net::{name}"), format!("super::{name}")];
                    if paths.iter().any(|p| code.contains(p.as_str())) {
                        found.push(format!("{}:{}: {line}", file.display(), number + 1));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn the_packet_path_imports_neither_resolution_nor_netlink_clients() {
        let found = offending_lines("capture", &["ownership", "netlink", "monitor"]);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn shared_data_imports_no_side() {
        for part in ["types", "topology", "closed_sockets"] {
            let found = offending_lines(part, &["capture", "ownership", "netlink", "monitor"]);
            assert!(found.is_empty(), "{found:#?}");
        }
    }

    #[test]
    fn netlink_clients_know_no_thread() {
        let found = offending_lines("netlink", &["capture", "ownership", "monitor"]);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn packet_parsing_and_fragments_import_one_way() {
        let fragments = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/net/capture/fragments.rs");
        let text = std::fs::read_to_string(fragments).expect("reading fragments.rs");
        assert!(
            !text.contains("super::packet"),
            "fragments.rs imports the packet parser, which imports it"
        );
    }
}

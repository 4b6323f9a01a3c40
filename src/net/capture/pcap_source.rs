//! One libpcap capture handle: opened with the configured options, read in a loop by a capture
//! thread (the only thing that thread blocks on, for at most its read timeout). The only module
//! that talks to libpcap.
//!
//! On Linux the `any` device is opened with the SLL2 link type when libpcap offers it: its
//! header carries the packet direction (so loopback traffic, seen leaving and arriving, credits
//! each side once) and the interface index (for network namespaces later).

use super::packet::LinkType;
use pcap::{Active, Capture, Device, Linktype};
use rustix::io::FdFlags;
use rustix::net::netdevice::name_to_index;
use std::fmt;
use std::os::unix::io::AsRawFd;

/// What a capture is opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOptions {
    pub interface: String,
    pub bpf_filter: Option<String>,
    pub snaplen: i32,
    pub buffer_size: i32,
    pub promiscuous: bool,
}

/// Why a capture could not be opened, worded for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// No CAP_NET_RAW (or not root): the plugin warns once and reports everything else.
    NoPrivilege(String),
    UnknownInterface(String),
    BadFilter(String),
    UnsupportedLinkType(i32),
    Other(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NoPrivilege(detail) => write!(
                f,
                "no permission to capture packets ({detail}); per-process network traffic needs \
                 CAP_NET_RAW (root has it). Every other metric is still reported"
            ),
            OpenError::UnknownInterface(name) => write!(f, "no network interface named `{name}`"),
            OpenError::BadFilter(detail) => write!(f, "the BPF filter does not compile: {detail}"),
            OpenError::UnsupportedLinkType(dlt) => write!(f, "unsupported link type {dlt}"),
            OpenError::Other(detail) => f.write_str(detail),
        }
    }
}

pub struct PacketSource {
    capture: Capture<Active>,
    link: LinkType,
    read_timeout_ms: i32,
    ifindex: u32,
    /// The last read delivered a packet.
    busy: bool,
}

/// How long a capture thread lets packets gather after draining the ring while busy.
const GATHER: std::time::Duration = std::time::Duration::from_micros(250);

/// One packet read from a source.
pub enum Next<'a> {
    /// The captured bytes and the length the packet had on the wire.
    Packet(&'a [u8], u32),
    /// The read timeout expired with nothing to read: time to do housekeeping.
    Idle,
    /// The handle failed (e.g. the interface went away).
    Failed(String),
}

/// Interface names libpcap can open.
pub fn interface_names() -> Vec<String> {
    Device::list()
        .map(|devices| devices.into_iter().map(|d| d.name).collect())
        .unwrap_or_default()
}

impl PacketSource {
    /// Opens a live capture; `read_timeout_ms` bounds how long a read waits for packets.
    pub fn open(options: &CaptureOptions, read_timeout_ms: i32) -> Result<PacketSource, OpenError> {
        let inactive = Capture::from_device(options.interface.as_str())
            .map_err(|e| OpenError::Other(e.to_string()))?
            .snaplen(options.snaplen)
            .buffer_size(options.buffer_size)
            .promisc(options.promiscuous)
            // Packets are handed over as they come (libpcap then uses TPACKET_V2), not when a
            // TPACKET_V3 block fills or times out: a new flow must be resolved while its socket
            // still exists, often a millisecond. Tried: V3 with a 1 ms block timeout lost the
            // client side of short loopback connections. What immediate mode costs in wake-ups
            // is paid back in `next_packet` (see GATHER).
            .immediate_mode(true)
            .timeout(read_timeout_ms);
        // Non-blocking, with our own poll(): the capture thread must notice a stop request
        // within its read timeout, whether or not packets come.
        let mut capture = inactive
            .open()
            .map_err(|e| classify(&options.interface, e))?
            .setnonblock()
            .map_err(|e| OpenError::Other(e.to_string()))?;
        // libpcap opens its packet socket without close-on-exec: every program collectd's exec
        // plugin (or anything else in the process) starts would inherit a raw packet socket.
        // FD_CLOEXEC is the only descriptor flag, so setting it alone loses nothing. A failure
        // is not worth refusing the capture for.
        let _ = rustix::io::fcntl_setfd(&capture, FdFlags::CLOEXEC);
        if options.interface == "any" {
            // SLL2 (libpcap >= 1.10) adds the interface index; SLL is the fallback.
            let _ = capture.set_datalink(Linktype(276));
        }
        if let Some(filter) = &options.bpf_filter {
            capture
                .filter(filter, true)
                .map_err(|e| OpenError::BadFilter(e.to_string()))?;
        }
        let dlt = capture.get_datalink().0;
        let link = LinkType::from_dlt(dlt).ok_or(OpenError::UnsupportedLinkType(dlt))?;
        // What if_nametoindex(3) answers: SIOCGIFINDEX, which works on any socket's descriptor
        // (glibc opens one for it), here the capture's own, made by this thread in its network
        // namespace a moment ago. 0 when there is no such interface (`any`, a name too long or
        // holding a NUL, a device that is not a network interface such as usbmon).
        let ifindex = name_to_index(&capture, &options.interface).unwrap_or(0);
        Ok(PacketSource {
            capture,
            link,
            read_timeout_ms,
            ifindex,
            busy: false,
        })
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// The captured interface's index; 0 for `any`, whose frames carry their own.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The next packet, or `Idle` after waiting up to the read timeout for one.
    pub fn next_packet(&mut self) -> Next<'_> {
        // Taken as a raw number before reading: a packet returned borrows the capture for the
        // rest of the function, so the timeout arm below cannot borrow it again (as a safe
        // `poll` on `AsFd` would need).
        let fd = self.capture.as_raw_fd();
        let timeout = self.read_timeout_ms;
        match self.capture.next_packet() {
            Ok(packet) => {
                self.busy = true;
                Next::Packet(packet.data, packet.header.len)
            }
            Err(pcap::Error::TimeoutExpired) if self.busy => {
                // The ring was just drained while packets were flowing. In immediate mode the
                // kernel wakes a poller for every packet (at 200,000 packets/s: 45,000 wake-ups
                // a second, and senders slowed by the wake-ups they pay for); letting packets
                // gather this long first hands over dozens a wake-up, still well within the
                // millisecond a new flow's lookup can wait.
                self.busy = false;
                std::thread::sleep(GATHER);
                Next::Idle
            }
            Err(pcap::Error::TimeoutExpired) => {
                let mut pollfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the capture's own descriptor.
                unsafe { libc::poll(&mut pollfd, 1, timeout) };
                Next::Idle
            }
            Err(e) => Next::Failed(e.to_string()),
        }
    }

    /// libpcap's counters: packets received, dropped for lack of buffer, dropped by the
    /// interface. They wrap at 2^32 (u32 in libpcap).
    pub fn stats(&mut self) -> Option<pcap::Stat> {
        self.capture.stats().ok()
    }
}

/// Checks a BPF filter by compiling it against a dead handle of the link type `any` uses, so a
/// configuration mistake is reported at startup, with no privilege needed.
pub fn check_filter(filter: &str) -> Result<(), String> {
    let dead = Capture::dead(Linktype(113)).map_err(|e| e.to_string())?;
    dead.compile(filter, true)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn classify(interface: &str, error: pcap::Error) -> OpenError {
    let text = error.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        OpenError::NoPrivilege(text)
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        OpenError::UnknownInterface(interface.to_string())
    } else {
        OpenError::Other(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_without_privilege() {
        assert!(check_filter("tcp port 80").is_ok());
        assert!(check_filter("").is_ok());
        let e = check_filter("tcp prot 80").unwrap_err();
        assert!(!e.is_empty());
    }

    #[test]
    fn loopback_is_listed() {
        let names = interface_names();
        assert!(names.iter().any(|n| n == "lo"), "{names:?}");
    }

    #[test]
    fn unknown_interface_is_named() {
        let options = CaptureOptions {
            interface: "nonexistent0".into(),
            bpf_filter: None,
            snaplen: 128,
            buffer_size: 1 << 20,
            promiscuous: false,
        };
        match PacketSource::open(&options, 100) {
            Err(OpenError::UnknownInterface(name)) => assert_eq!(name, "nonexistent0"),
            Err(OpenError::NoPrivilege(_)) => eprintln!("SKIP: not allowed to capture here"),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("opened an interface that does not exist"),
        }
    }

    /// A capture's descriptor is close-on-exec, and its interface index is the kernel's (0 for
    /// `any`, which is no interface).
    #[test]
    fn capture_is_close_on_exec_and_knows_its_index() {
        let lo: u32 = std::fs::read_to_string("/sys/class/net/lo/ifindex")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        for (interface, index) in [("lo", lo), ("any", 0)] {
            let options = CaptureOptions {
                interface: interface.into(),
                bpf_filter: None,
                snaplen: 128,
                buffer_size: 1 << 20,
                promiscuous: false,
            };
            let source = match PacketSource::open(&options, 100) {
                Ok(source) => source,
                Err(OpenError::NoPrivilege(_)) => return eprintln!("SKIP: not allowed to capture"),
                Err(other) => panic!("{interface}: {other}"),
            };
            assert_eq!(source.ifindex(), index, "{interface}");
            let flags = rustix::io::fcntl_getfd(&source.capture).unwrap();
            assert!(flags.contains(FdFlags::CLOEXEC), "{interface}");
        }
    }
}

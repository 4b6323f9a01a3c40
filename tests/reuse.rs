//! A local endpoint used again (issue 14): a UDP or TCP local address and port that one
//! socket used and closed, then another socket binds, is credited to the new socket's owner
//! from its first packet on, and the old owner keeps only its own bytes. IPv4 (127.0.0.1) and
//! IPv6 (::1), over loopback.
//!
//! What is tested, each with a port of its own (free when the test starts), the capture on
//! `lo` filtered to that port, so every packet the capture sees is this test's and
//! `unattributed` holds only this test's traffic:
//!
//! - UDP, another process: A binds port P, sends 100 datagrams of 200 bytes to a server (2 ms
//!   apart: a socket gone before the plugin asks who holds it is unattributed, which is
//!   tests/network.rs's matter, not this one's), closes the socket and stays alive; after a
//!   gap (1.5 s, and 0.3 s for other timings) B, another command name, binds P and sends 100
//!   datagrams to the same server: the same 4-tuple. A's `if_octets` tx must be A's datagrams, B's B's, the server's rx all 200.
//!   (A and B are alive throughout: B waits for its go from the start.)
//! - UDP, the same process reopening the port: one process sends 100 from P, closes, waits
//!   0.5 s, binds P again and sends 100 more: all 200 are its own, none unattributed.
//! - TCP, the same shapes with connections: a client binds P (SO_REUSEADDR), connects to a
//!   server and sends 1 MB; the server reads it, holds the connection 200 ms (a connection
//!   that closes within a millisecond is another matter: tests/network.rs) and closes first,
//!   as many servers do, so the server's side keeps the TIME_WAIT and the client's port is
//!   free at once; then another client process (or the same one) binds P and connects to the
//!   same server: the same 4-tuple again, accepted over the server's TIME_WAIT as Linux does
//!   for a new SYN. (A client closing first would keep the TIME_WAIT on P itself, and the
//!   kernel refuses to connect the same 4-tuple from it within a second.)
//!
//! Bounds: a UDP datagram of S payload bytes is S + 8 + 20 (IPv4) or 40 (IPv6) bytes in
//! `if_octets`, so each side's bytes are known exactly: exact packet counts are required unless
//! libpcap reports drops (then 99%), and bytes within 99% to 101% of the exact figure. A TCP
//! client is credited at least 99% of its payload, and the clients' tx adds up exactly to the
//! server's rx (each packet is credited once to its sender and once to the server), so no
//! client holds another's bytes. A TCP client's own bytes have no exact upper bound: a busy
//! box makes the kernel send a segment again now and then (seen: +48 KB on 1 MB, a tail loss
//! probe), and those are bytes it sent. `unattributed`: at most 1% of the traffic (nothing is
//! expected there). All values are read in one settled cycle: at least
//! [`SETTLE`] after the last packet, nothing held for a lookup, and the server's counter
//! (its socket is never reused) complete.
//!
//! Before commit 31ccfd2 (the capture forgets the flows of a UDP endpoint the kernel announces
//! destroyed) the four "another process" UDP tests failed: A credited 200 datagrams, twice its
//! own, and B none. The TCP ones fail now and then on a busy box (about 1 run in 7 of them):
//! B's connection's server side goes to `unattributed` (`derive-flow_unresolved` 1), as if its
//! lookup had met the TIME_WAIT left by A's connection on the same 4-tuple and settled
//! "nobody holds it" for good.

mod common;

use common::*;
use std::time::Duration;

/// Datagrams per phase, and their payload.
const COUNT: f64 = 100.0;
const SIZE: f64 = 200.0;

/// Payload of each TCP connection.
const TCP_BYTES: f64 = 1e6;

/// How long the TCP server keeps a connection open after reading it, before it closes: as in
/// tests/network.rs, a connection that opens, sends and closes within a millisecond is gone
/// before the kernel can be asked who held it (tests/network.rs shows what is asserted then);
/// this test is about the port used again, not about short connections.
const HOLD_MS: &str = "200";

/// How long to wait for the cycle in which everything is counted.
const WAIT: Duration = Duration::from_secs(60);

/// An address family on loopback: the address, as written in `IP:PORT`, the IP header's size.
struct Family {
    ip: &'static str,
    host: &'static str,
    ip_header: f64,
}

const V4: Family = Family {
    ip: "127.0.0.1",
    host: "127.0.0.1",
    ip_header: 20.0,
};

const V6: Family = Family {
    ip: "::1",
    host: "[::1]",
    ip_header: 40.0,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// One test's collectd, capturing only its port P, with a server for the clients. (Fields
/// drop in order: the server is stopped before collectd.)
struct Lab {
    server: Workload,
    server_addr: String,
    family: &'static Family,
    transport: Transport,
    /// P, as `IP:PORT`.
    local: String,
    collectd: Collectd,
}

impl Lab {
    fn start(family: &'static Family, transport: Transport) -> Option<Lab> {
        let udp = transport == Transport::Udp;
        let port = free_port_on(family.ip, udp);
        // The filter names the family and the transport too: the tests run side by side, and
        // another test's TCP connection on the same port number, or its IPv6 one on the same
        // port of ::1, would otherwise show up here (a short connection of theirs, seen only
        // in part, made this test's `unattributed` grow).
        let filter = format!(
            "{} and {} port {port}",
            if family.ip.contains(':') { "ip6" } else { "ip" },
            if udp { "udp" } else { "tcp" },
        );
        let config = format!("GroupBy \"{{comm}}\"\nInterface \"lo\"\nBPFFilter \"{filter}\"");
        let collectd = Collectd::start(Some(&config))?;
        let tcp_bytes = format!("{TCP_BYTES}");
        let serve: &[&str] = if udp {
            &["udp-recv", family.ip, "120"]
        } else {
            &["tcp-take", family.ip, "120", &tcp_bytes, HOLD_MS]
        };
        let mut server = collectd.spawn(&unique_comm("cw_rsrv_"), serve);
        let server_port = server.expect_line_starting("port ");
        Some(Lab {
            family,
            transport,
            local: format!("{}:{port}", family.host),
            server_addr: format!("{}:{server_port}", family.host),
            server,
            collectd,
        })
    }

    /// The arguments of a client sending one phase from P (two, `gap_ms` apart, with it).
    fn client_args(&self, gap_ms: Option<u64>) -> Vec<String> {
        let mut args: Vec<String> = match self.transport {
            Transport::Udp => vec![
                "udp-send-from".into(),
                self.local.clone(),
                self.server_addr.clone(),
                format!("{COUNT}"),
                format!("{SIZE}"),
                "120".into(),
            ],
            Transport::Tcp => vec![
                "tcp-send-from".into(),
                self.local.clone(),
                self.server_addr.clone(),
                format!("{TCP_BYTES}"),
                "120".into(),
            ],
        };
        args.extend(gap_ms.map(|ms| ms.to_string()));
        args
    }

    /// What a client prints after each phase.
    fn phase_done(&self) -> String {
        match self.transport {
            Transport::Udp => format!("sent {COUNT}"),
            Transport::Tcp => format!("sent {TCP_BYTES}"),
        }
    }

    /// Waits for the server to have read a phase (TCP: it closes first, see the module).
    fn server_read(&mut self) {
        if self.transport == Transport::Tcp {
            self.server.expect_line(&format!("received {TCP_BYTES}"));
        }
    }

    /// What one phase is, as the tested counter counts it: UDP packets, TCP bytes.
    fn phase(&self) -> f64 {
        match self.transport {
            Transport::Udp => COUNT,
            Transport::Tcp => TCP_BYTES,
        }
    }

    /// The counter that measures a phase: `if_packets` for UDP, `if_octets` for TCP.
    fn measure(&self) -> &'static str {
        match self.transport {
            Transport::Udp => "if_packets",
            Transport::Tcp => "if_octets",
        }
    }

    /// The first cycle at least [`SETTLE`] from now in which nothing is held for a lookup and
    /// the server's rx counts `phases` phases: every packet of them has been through the
    /// capture, and each was credited to its sender in the same step.
    fn settled(&self, phases: f64) -> f64 {
        let want = phases * self.phase();
        let (collectd, server) = (&self.collectd, &self.server.comm);
        collectd.settled_cycle(
            &format!("the server's {} rx at {want}", self.measure()),
            now() + SETTLE,
            WAIT,
            |epoch| {
                collectd
                    .row_at(server, self.measure(), epoch)
                    .is_some_and(|row| row.get("rx") >= want)
            },
        )
    }

    /// `ds` of `name` of `instance` in the cycle at `epoch`.
    fn value(&self, instance: &str, name: &str, ds: &str, epoch: f64) -> f64 {
        self.collectd.wait_counter_at(instance, name, ds, epoch)
    }

    /// What `instance` was credited as sent in the cycle at `epoch`: bytes and packets.
    fn sent(&self, instance: &str, epoch: f64) -> (f64, f64) {
        (
            self.value(instance, "if_octets", "tx", epoch),
            self.value(instance, "if_packets", "tx", epoch),
        )
    }

    /// Checks that `who` was credited `phases` phases, its own and no more, given what it was
    /// credited (see [`sent`](Self::sent)) and what libpcap dropped.
    fn assert_own(&self, who: &str, (octets, packets): (f64, f64), phases: f64, dropped: f64) {
        let ip = self.family.ip;
        let want = phases * self.phase();
        match self.transport {
            Transport::Udp => {
                let datagram = SIZE + 8.0 + self.family.ip_header;
                let least = if dropped == 0.0 { want } else { 0.99 * want };
                assert!(
                    (least..=want).contains(&packets),
                    "{ip}: {who} credited {packets} datagrams, {} times its own {want} \
                     (pcap dropped {dropped})",
                    packets / want
                );
                assert!(
                    (0.99 * want * datagram..=1.01 * want * datagram).contains(&octets),
                    "{ip}: {who} credited {octets} B for its own {} B of datagrams",
                    want * datagram
                );
            }
            // At least its payload; what is more is checked by the sum (see `assert_sum`).
            Transport::Tcp => assert!(
                octets >= 0.99 * want,
                "{ip}: {who} credited {octets} B, {} times its own payload {want} B",
                octets / want
            ),
        }
    }

    /// Checks that what the clients were credited as sent, `clients` (bytes, packets), adds up
    /// to what the server was credited as received: every packet from P is credited once to
    /// the client that sent it and once to the server. With each client credited at least its
    /// own (`assert_own`), no client holds another's bytes; TCP may send a segment twice (a
    /// retransmission on a busy box), and it is credited as sent twice, to its sender.
    fn assert_sum(&self, clients: &[(f64, f64)], epoch: f64) {
        let server = self.value(&self.server.comm, self.measure(), "rx", epoch);
        let sum: f64 = clients
            .iter()
            .map(|&(octets, packets)| match self.transport {
                Transport::Udp => packets,
                Transport::Tcp => octets,
            })
            .sum();
        eprintln!(
            "{}: the server rx {server} ({})",
            self.family.ip,
            self.measure()
        );
        assert_eq!(
            sum,
            server,
            "{}: the clients' tx ({}) adds up to the server's rx",
            self.family.ip,
            self.measure()
        );
    }

    /// Packets libpcap dropped on `lo` by the cycle at `epoch`.
    fn dropped(&self, epoch: f64) -> f64 {
        self.value("self", "derive-pcap_dropped-lo", "value", epoch)
    }

    /// Checks that `unattributed` holds at most 1% of `phases` phases, on each side.
    fn assert_nothing_unattributed(&self, phases: f64, epoch: f64) {
        let bytes = match self.transport {
            Transport::Udp => phases * COUNT * (SIZE + 8.0 + self.family.ip_header),
            Transport::Tcp => phases * TCP_BYTES,
        };
        for ds in ["tx", "rx"] {
            let lost = self.value("unattributed", "if_octets", ds, epoch);
            assert!(
                lost <= 0.01 * bytes,
                "{}: unattributed {ds} is {lost} B of {bytes} B",
                self.family.ip
            );
        }
    }
}

/// A sends one phase from P and closes (staying alive); `gap` later B, another process, binds
/// P and sends one phase to the same server.
fn another_process(family: &'static Family, transport: Transport, gap: Duration) {
    let Some(mut lab) = Lab::start(family, transport) else {
        return;
    };
    let args = lab.client_args(None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // B exists before A starts, waiting for its go: only its socket is new when it sends.
    let mut b = lab.collectd.spawn_gated(&unique_comm("cw_rb_"), &args);
    let mut a = lab.collectd.spawn(&unique_comm("cw_ra_"), &args);
    a.expect_line(&lab.phase_done());
    lab.server_read();
    std::thread::sleep(gap);
    b.go();
    b.expect_line(&lab.phase_done());
    lab.server_read();
    let epoch = lab.settled(2.0);
    let (first, second, dropped) = (
        lab.sent(&a.comm, epoch),
        lab.sent(&b.comm, epoch),
        lab.dropped(epoch),
    );
    eprintln!(
        "{} {gap:?}: A tx {first:?} (bytes, packets), B tx {second:?}, pcap dropped {dropped}",
        family.ip,
    );
    lab.assert_own("A (first, closed, alive)", first, 1.0, dropped);
    lab.assert_own("B (bound the port after A)", second, 1.0, dropped);
    lab.assert_sum(&[first, second], epoch);
    lab.assert_nothing_unattributed(2.0, epoch);
}

/// One process sends a phase from P, closes, waits, binds P again and sends another.
fn same_process(family: &'static Family, transport: Transport) {
    let Some(mut lab) = Lab::start(family, transport) else {
        return;
    };
    let args = lab.client_args(Some(500));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut client = lab.collectd.spawn(&unique_comm("cw_rself_"), &args);
    for _ in 0..2 {
        client.expect_line(&lab.phase_done());
        lab.server_read();
    }
    let epoch = lab.settled(2.0);
    let (sent, dropped) = (lab.sent(&client.comm, epoch), lab.dropped(epoch));
    eprintln!(
        "{}: the client tx {sent:?} (bytes, packets) in two phases, pcap dropped {dropped}",
        family.ip
    );
    lab.assert_own("the client (both phases)", sent, 2.0, dropped);
    lab.assert_sum(&[sent], epoch);
    lab.assert_nothing_unattributed(2.0, epoch);
}

const LONG_GAP: Duration = Duration::from_millis(1500);
const SHORT_GAP: Duration = Duration::from_millis(300);

#[test]
fn udp_port_reused_by_another_process_after_1500_ms_ipv4() {
    another_process(&V4, Transport::Udp, LONG_GAP);
}

#[test]
fn udp_port_reused_by_another_process_after_300_ms_ipv4() {
    another_process(&V4, Transport::Udp, SHORT_GAP);
}

#[test]
fn udp_port_reused_by_another_process_after_1500_ms_ipv6() {
    another_process(&V6, Transport::Udp, LONG_GAP);
}

#[test]
fn udp_port_reused_by_another_process_after_300_ms_ipv6() {
    another_process(&V6, Transport::Udp, SHORT_GAP);
}

#[test]
fn udp_port_reopened_by_the_same_process_ipv4() {
    same_process(&V4, Transport::Udp);
}

#[test]
fn udp_port_reopened_by_the_same_process_ipv6() {
    same_process(&V6, Transport::Udp);
}

#[test]
fn tcp_port_reused_by_another_process_after_1500_ms_ipv4() {
    another_process(&V4, Transport::Tcp, LONG_GAP);
}

#[test]
fn tcp_port_reused_by_another_process_after_300_ms_ipv4() {
    another_process(&V4, Transport::Tcp, SHORT_GAP);
}

#[test]
fn tcp_port_reused_by_another_process_after_1500_ms_ipv6() {
    another_process(&V6, Transport::Tcp, LONG_GAP);
}

#[test]
fn tcp_port_reused_by_another_process_after_300_ms_ipv6() {
    another_process(&V6, Transport::Tcp, SHORT_GAP);
}

#[test]
fn tcp_port_reopened_by_the_same_process_ipv4() {
    same_process(&V4, Transport::Tcp);
}

#[test]
fn tcp_port_reopened_by_the_same_process_ipv6() {
    same_process(&V6, Transport::Tcp);
}

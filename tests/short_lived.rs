//! Processes and connections shorter than a poll keep their traffic (issue 15): with the eBPF
//! owner source, the process that used a socket is recorded in the kernel when it uses it, so
//! a client that connects, sends, closes and exits, or a process that sends a few datagrams and
//! exits, is credited every byte — to its own instance, which appears with its traffic even
//! though no sampler cycle ever saw the process alive.
//!
//! The measure is the receiver: a long-lived server on loopback, whose own bytes /proc finds
//! anyway. On loopback every packet is seen once, credited `tx` to its sender and `rx` to its
//! receiver, so the clients' `tx` must equal the server's `rx` (and the clients' `rx` its `tx`).
//! The bounds: at least 99% (what the issue asks), and never more than the server saw.

mod common;

use common::netns::{ip, routed_by_the_host, Bridge, Netns, NftTable};
use common::{format_rows, unique_comm, Collectd, Workload};
use std::time::{Duration, Instant};

/// Short-lived processes of each kind, per address family.
const PROCESSES: usize = 50;
/// What each TCP client sends before it closes and exits.
const TCP_BYTES: &str = "200000";
/// Datagrams of each UDP sender, and their payload size.
const DATAGRAMS: &str = "10";
const DATAGRAM_SIZE: &str = "1000";

/// How long the counters are waited for: the last bytes are credited a cycle or two after the
/// last process exits; on a loaded machine, later.
const SETTLE_FOR: Duration = Duration::from_secs(60);

/// The sum of `ds` over the last `if_octets` row of each instance.
fn octets(collectd: &Collectd, instances: &[&str], ds: &str) -> f64 {
    instances
        .iter()
        .map(|instance| {
            collectd
                .rows(instance, "if_octets")
                .last()
                .map_or(0.0, |row| row.get(ds))
        })
        .sum()
}

/// Starts `PROCESSES` workloads at once, each `args` under `comm` (inside `netns` if given),
/// and waits for them to exit.
fn run_many(collectd: &Collectd, netns: Option<&Netns>, comm: &str, args: &[&str]) {
    let workloads: Vec<Workload> = (0..PROCESSES)
        .map(|_| match netns {
            Some(netns) => netns.spawn(collectd, comm, args),
            None => collectd.spawn(comm, args),
        })
        .collect();
    for mut workload in workloads {
        let status = workload.wait();
        assert!(status.success(), "{comm} {args:?}: {status}");
    }
}

/// Waits until the clients' `tx` reaches `share` of the server's `rx` (both read at once), or
/// SETTLE_FOR; returns (clients tx, clients rx, server rx, server tx).
fn settle(collectd: &Collectd, clients: &str, server: &str, share: f64) -> (f64, f64, f64, f64) {
    settle_with(collectd, clients, server, share, |read| read)
}

/// [`settle`], with the four numbers passed through `adjust` (to count from a starting point).
fn settle_with(
    collectd: &Collectd,
    clients: &str,
    server: &str,
    share: f64,
    adjust: impl Fn((f64, f64, f64, f64)) -> (f64, f64, f64, f64),
) -> (f64, f64, f64, f64) {
    let read = || {
        adjust((
            octets(collectd, &[clients], "tx"),
            octets(collectd, &[clients], "rx"),
            octets(collectd, &[server], "rx"),
            octets(collectd, &[server], "tx"),
        ))
    };
    let deadline = Instant::now() + SETTLE_FOR;
    loop {
        let now = read();
        if (now.2 > 0.0 && now.0 >= share * now.2) || Instant::now() > deadline {
            // One more interval: what is still held for the last flows is credited.
            std::thread::sleep(Duration::from_secs(2));
            return read();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until the server has received (since `before`) and `client` has been credited at least
/// 99% of it, or SETTLE_FOR; returns (client tx, client rx, server rx, server tx) since then.
fn settle_since(
    collectd: &Collectd,
    client: &str,
    server: &str,
    (rx_before, tx_before): (f64, f64),
) -> (f64, f64, f64, f64) {
    let (tx, rx, server_rx, server_tx) = settle_with(collectd, client, server, 0.99, |read| {
        (read.0, read.1, read.2 - rx_before, read.3 - tx_before)
    });
    (tx, rx, server_rx, server_tx)
}

fn check_share(what: &str, credited: f64, truth: f64, collectd: &Collectd, instance: &str) {
    assert!(
        truth > 0.0 && credited >= 0.99 * truth && credited <= truth * 1.0001,
        "{what}: {credited} credited of {truth} ({:.1}%)\nrows of {instance}: {}\nunattributed: {}\n\
         instances: {:?}\nself:\n{}\nlog:\n{}",
        100.0 * credited / truth.max(1.0),
        format_rows(&collectd.rows(instance, "if_octets")),
        format_rows(&collectd.rows("unattributed", "if_octets")),
        collectd
            .instances()
            .iter()
            .map(|i| (i.clone(), octets(collectd, &[i], "tx")))
            .filter(|(_, tx)| *tx > 0.0)
            .collect::<Vec<_>>(),
        collectd.last_values("self"),
        collectd.log()
    );
}

/// TCP clients that each connect, send 200 KB, close and exit; processes that each send ten
/// datagrams and exit: every byte to their own instance, IPv4 and IPv6.
#[test]
fn processes_that_send_and_exit_keep_their_bytes() {
    let Some(collectd) = start_with_ebpf() else {
        return;
    };
    for (family, ip) in [("4", "127.0.0.1"), ("6", "::1")] {
        // What goes to `unattributed` meanwhile (both directions, every interface).
        let unattributed_before =
            octets(&collectd, &["unattributed"], "tx") + octets(&collectd, &["unattributed"], "rx");
        let ends = across(&collectd, None, None, ip, &format!("IPv{family}"));
        let (server_comm, receiver_comm) = (&ends.server, &ends.receiver);
        // A 20 MB upload by one process that closes and exits at once: both sides.
        let uploader = unique_comm(&format!("cw_slb{family}_"));
        let server_rx_before = octets(&collectd, &[server_comm], "rx");
        let server_tx_before = octets(&collectd, &[server_comm], "tx");
        let mut upload = collectd.spawn(
            &uploader,
            &["tcp-send", &ends.to_server, "20000000", "1", "0"],
        );
        assert!(upload.wait().success(), "the upload failed");
        let (tx, rx, server_rx, server_tx) = settle_since(
            &collectd,
            &uploader,
            server_comm,
            (server_rx_before, server_tx_before),
        );
        eprintln!(
            "IPv{family} upload: client tx {tx} rx {rx}, server rx {server_rx} tx {server_tx}"
        );
        assert!(
            server_rx >= 20e6,
            "the server saw {server_rx} bytes of a 20 MB upload"
        );
        check_share(
            &format!("IPv{family} uploader's tx"),
            tx,
            server_rx,
            &collectd,
            &uploader,
        );
        check_share(
            &format!("IPv{family} uploader's rx"),
            rx,
            server_tx,
            &collectd,
            &uploader,
        );

        // Everything local processes sent here is someone's: at most 1% unattributed.
        let unattributed = octets(&collectd, &["unattributed"], "tx")
            + octets(&collectd, &["unattributed"], "rx")
            - unattributed_before;
        let local = octets(&collectd, &[server_comm, receiver_comm], "rx")
            + octets(&collectd, &[server_comm], "tx");
        eprintln!("IPv{family}: {unattributed} bytes unattributed meanwhile, {local} local");
        assert!(
            unattributed <= 0.01 * local,
            "IPv{family}: {unattributed} bytes went to unattributed while local processes \
             exchanged {local}: {}",
            format_rows(&collectd.rows("unattributed", "if_octets"))
        );

        // They are instances with traffic, never with processes they did not have.
        for instance in [&ends.clients, &ends.senders] {
            let counts = collectd.rows(instance, "ps_count");
            assert!(
                counts
                    .iter()
                    .all(|row| row.get("processes") <= PROCESSES as f64),
                "{instance}: {}",
                format_rows(&counts)
            );
        }
    }
}

/// The same inside a container's network namespace (a veth into it, as `tests/namespaces.rs`
/// sets up): short-lived clients and senders inside, their server on the host's end of the
/// veth. The records carry the socket's namespace; the flows are keyed by it.
#[test]
fn processes_that_send_and_exit_inside_a_namespace_keep_their_bytes() {
    let Some(lab) = Netns::create("short") else {
        return;
    };
    let host_end = format!("csl{}", lab.id);
    let _veth = lab.veth(&host_end);
    ip(&[
        "addr",
        "add",
        &format!("{}/24", lab.v4(1)),
        "dev",
        &host_end,
    ]);
    let Some(collectd) = start_with_ebpf() else {
        return;
    };
    across(&collectd, None, Some(&lab), &lab.v4(1), "namespace");
}

/// The instances of one [`across`] run.
struct Ends {
    /// The long-lived TCP server and UDP receiver.
    server: String,
    receiver: String,
    /// The short-lived TCP clients and UDP senders.
    clients: String,
    senders: String,
    /// The server's address.
    to_server: String,
    /// The server and receiver, which live as long as this.
    _running: [Workload; 2],
}

/// Short-lived TCP clients and UDP senders in `clients_in`, their server and receiver (long
/// lived: /proc finds them whatever the owner source) at `server_ip` in `server_in` (the host's
/// namespace for `None`): every byte to the short-lived processes' own instances.
fn across(
    collectd: &Collectd,
    server_in: Option<&Netns>,
    clients_in: Option<&Netns>,
    server_ip: &str,
    what: &str,
) -> Ends {
    let spawn = |comm: &str, args: &[&str]| match server_in {
        Some(netns) => netns.spawn(collectd, comm, args),
        None => collectd.spawn(comm, args),
    };
    let server_comm = unique_comm("cw_slns_");
    let mut server = spawn(&server_comm, &["tcp-serve", server_ip, "120"]);
    let port = server.expect_line_starting("port ");
    let receiver_comm = unique_comm("cw_slnr_");
    let mut receiver = spawn(&receiver_comm, &["udp-recv", server_ip, "120"]);
    let udp_port = receiver.expect_line_starting("port ");
    let ip: std::net::IpAddr = server_ip.parse().expect("an IP address");
    let at = |port: &str| std::net::SocketAddr::new(ip, port.parse().expect("a port")).to_string();

    let clients = unique_comm("cw_slnc_");
    let to_server = at(&port);
    run_many(
        collectd,
        clients_in,
        &clients,
        &["tcp-send", &to_server, TCP_BYTES, "1", "0"],
    );
    let senders = unique_comm("cw_slnu_");
    let to_receiver = at(&udp_port);
    run_many(
        collectd,
        clients_in,
        &senders,
        &["udp-send", &to_receiver, DATAGRAMS, DATAGRAM_SIZE, "0"],
    );
    let (tx, rx, server_rx, server_tx) = settle(collectd, &clients, &server_comm, 0.99);
    eprintln!("{what} TCP: clients tx {tx} rx {rx}, server rx {server_rx} tx {server_tx}");
    check_share(
        &format!("{what} TCP clients' tx"),
        tx,
        server_rx,
        collectd,
        &clients,
    );
    check_share(
        &format!("{what} TCP clients' rx"),
        rx,
        server_tx,
        collectd,
        &clients,
    );
    let (sent, _, received, _) = settle(collectd, &senders, &receiver_comm, 0.99);
    eprintln!("{what} UDP: senders tx {sent}, receiver rx {received}");
    check_share(
        &format!("{what} UDP senders' tx"),
        sent,
        received,
        collectd,
        &senders,
    );
    Ends {
        server: server_comm,
        receiver: receiver_comm,
        clients,
        senders,
        to_server,
        _running: [server, receiver],
    }
}

/// A collectd reporting every process by its comm, with the eBPF owner source; `None` (after
/// saying why) where these tests do not apply: /proc forced as the owner source, or the
/// programs not loaded outside CI (on CI that fails).
fn start_with_ebpf() -> Option<Collectd> {
    // Other tests running beside these make hundreds of names, which must not crowd these
    // out (MaxInstances).
    let collectd = Collectd::start(Some("GroupBy \"{comm}\"\nMaxInstances 1000000"))?;
    if common::forced_owner_source().is_some_and(|source| source == "proc") {
        eprintln!(
            "SKIP: the owner source is /proc (CAPTURE_TEST_OWNER_SOURCE): this is eBPF's test"
        );
        return None;
    }
    if !collectd.log().contains("owner source: eBPF") {
        let reason = format!("the eBPF owner source did not load:\n{}", collectd.log());
        assert!(std::env::var_os("CI").is_none(), "{reason}");
        eprintln!("SKIP: {reason}");
        return None;
    }
    Some(collectd)
}

/// The same across a bridge: clients in one namespace, their server in another, both behind
/// veths enslaved to a bridge of the host's (every packet shows on two bridge ports and on the
/// bridge device: each end is credited once).
#[test]
fn processes_that_send_and_exit_across_a_bridge_keep_their_bytes() {
    let (Some(a), Some(b)) = (Netns::create("slba"), Netns::create("slbb")) else {
        return;
    };
    let subnet = |host: u8| format!("10.203.{}.{host}", a.id);
    let bridge = Bridge::create(&format!("csb{}", a.id), &format!("{}/24", subnet(1)));
    let veth_a = a.veth_with(&format!("csa{}", a.id), &format!("{}/24", subnet(2)), None);
    let veth_b = b.veth_with(&format!("csc{}", b.id), &format!("{}/24", subnet(3)), None);
    bridge.enslave(&veth_a);
    bridge.enslave(&veth_b);
    let Some(collectd) = start_with_ebpf() else {
        return;
    };
    across(&collectd, Some(&a), Some(&b), &subnet(2), "bridge");
}

/// The same behind NAT, as Docker does for a container's traffic to the world: clients in one
/// namespace, their server in another, the host routing between them and masquerading what the
/// clients send. On the server's veth the packets carry the host's address and a port no local
/// socket has (`forwarded`); on the clients' veth they are the clients' own, and the records
/// made in the clients' namespace credit them, however short the processes lived.
#[test]
fn processes_that_send_and_exit_behind_nat_keep_their_bytes() {
    let (Some(clients), Some(server)) = (Netns::create("slna"), Netns::create("slnb")) else {
        return;
    };
    let Some((_to_clients, to_server)) = routed_by_the_host(&clients, &server, "csn") else {
        return;
    };
    let Some(_nat) = NftTable::masquerade(
        &format!("capslnat{}", clients.id),
        &to_server.host,
        &format!("{}/24", clients.v4(0)),
    ) else {
        return;
    };
    let Some(collectd) = start_with_ebpf() else {
        return;
    };
    let ends = across(
        &collectd,
        Some(&server),
        Some(&clients),
        &server.v4(2),
        "NAT",
    );
    // The host's own part, in for someone else and out again: forwarded, not anyone's.
    let forwarded = collectd
        .rows("forwarded", "if_octets")
        .last()
        .map_or(0.0, |row| row.get("rx"));
    let server_rx = octets(&collectd, &[&ends.server, &ends.receiver], "rx");
    eprintln!("NAT: forwarded rx {forwarded}, server and receiver rx {server_rx}");
    assert!(
        forwarded >= server_rx * 0.99,
        "the host forwarded what the server received: forwarded rx {forwarded}, server rx \
         {server_rx}"
    );
}

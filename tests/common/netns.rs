//! Network namespaces and veth pairs the tests create for themselves (owned by the integration
//! tests), so traffic leaves loopback only towards addresses the test made: IPv4 from
//! 10.203.0.0/16, IPv6 from fd00:203::/32. Everything is removed on drop, and a namespace or
//! link left by a killed run is removed before its name is reused.

use super::{start_workload, Collectd, Workload};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Runs `ip ARGS`, panicking with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ip ARGS`, ignoring failure (cleanup of what may not exist).
fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

/// A distinct small number per namespace of this run, for names and subnets: the pid keeps
/// two runs (or a leftover of a killed one) apart.
fn next_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (std::process::id() * 7 + n) % 250 + 1
}

/// A network namespace made by `ip netns add`, deleted on drop.
pub struct Netns {
    pub name: String,
    /// This namespace's number: its subnets are 10.203.<id>.0/24 and fd00:203:<id>::/64.
    pub id: u32,
}

impl Netns {
    /// Creates a namespace with its loopback up. `None`, after printing why, when namespaces
    /// cannot be made here (not root, no `ip`).
    pub fn create(purpose: &str) -> Option<Netns> {
        let id = next_id();
        let name = format!("cap-{purpose}-{id}");
        ip_quiet(&["netns", "del", &name]);
        match Command::new("ip").args(["netns", "add", &name]).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                skip(&format!(
                    "cannot create a network namespace: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
                return None;
            }
            Err(e) => {
                skip(&format!(
                    "cannot run `ip` to create a network namespace: {e}"
                ));
                return None;
            }
        }
        let netns = Netns { name, id };
        netns.ip(&["link", "set", "lo", "up"]);
        Some(netns)
    }

    /// `ip -n <name> ARGS`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `10.203.<id>.<host>`.
    pub fn v4(&self, host: u8) -> String {
        format!("10.203.{}.{host}", self.id)
    }

    /// `fd00:203:<id>::<host>`.
    pub fn v6(&self, host: u8) -> String {
        format!("fd00:203:{:x}::{host:x}", self.id)
    }

    /// A veth pair: `<host>` stays in the host's namespace, `<host>n` moves into this one with
    /// address .2 of its subnets (v4 and v6); both ends up. The host end gets no address: the
    /// test decides. Interface names stay under the kernel's 15 characters.
    pub fn veth(&self, host: &str) -> Veth {
        self.veth_with(
            host,
            &format!("{}/24", self.v4(2)),
            Some(&format!("{}/64", self.v6(2))),
        )
    }

    /// A veth pair whose inside end has the addresses given (CIDR notation).
    pub fn veth_with(&self, host: &str, inside_v4: &str, inside_v6: Option<&str>) -> Veth {
        let peer = format!("{host}n");
        assert!(peer.len() <= 15, "interface name {peer:?} too long");
        ip_quiet(&["link", "del", host]);
        ip(&["link", "add", host, "type", "veth", "peer", "name", &peer]);
        let veth = Veth {
            host: host.to_string(),
        };
        ip(&["link", "set", &peer, "netns", &self.name]);
        self.ip(&["addr", "add", inside_v4, "dev", &peer]);
        if let Some(v6) = inside_v6 {
            self.ip(&["addr", "add", v6, "dev", &peer, "nodad"]);
        }
        self.ip(&["link", "set", &peer, "up"]);
        ip(&["link", "set", host, "up"]);
        veth
    }

    /// Starts the workload inside this namespace, like [`Collectd::spawn`] does outside.
    pub fn spawn(&self, collectd: &Collectd, comm: &str, args: &[&str]) -> Workload {
        let binary = collectd.workload_copy(comm);
        let path = format!("/run/netns/{}", self.name);
        let netns = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
        let mut command = Command::new(&binary);
        // SAFETY: between fork and exec the child only calls setns(2), which is
        // async-signal-safe, on a descriptor the parent opened and keeps open.
        unsafe {
            let fd = netns.as_raw_fd();
            command.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let workload = start_workload(command, &binary, comm, args, false);
        drop(netns);
        workload
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip_quiet(&["netns", "del", &self.name]);
    }
}

/// The host end of a veth pair; deleting it deletes both ends.
pub struct Veth {
    pub host: String,
}

impl Drop for Veth {
    fn drop(&mut self) {
        ip_quiet(&["link", "del", &self.host]);
    }
}

/// A bridge in the host's namespace, deleted on drop.
pub struct Bridge {
    pub name: String,
}

impl Bridge {
    /// An up bridge named `name` with `address` (CIDR) on it.
    pub fn create(name: &str, address: &str) -> Bridge {
        ip_quiet(&["link", "del", name]);
        ip(&["link", "add", name, "type", "bridge"]);
        let bridge = Bridge {
            name: name.to_string(),
        };
        ip(&["addr", "add", address, "dev", name]);
        ip(&["link", "set", name, "up"]);
        bridge
    }

    /// Makes `veth`'s host end a port of this bridge.
    pub fn enslave(&self, veth: &Veth) {
        ip(&["link", "set", &veth.host, "master", &self.name]);
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        ip_quiet(&["link", "del", &self.name]);
    }
}

/// Sets a sysctl under /proc/sys (`net/ipv4/conf/X/forwarding`), returning whether it took.
pub fn sysctl(path: &str, value: &str) -> bool {
    std::fs::write(format!("/proc/sys/{path}"), value).is_ok()
}

fn skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}

/// Veths into `a` and `b` (named `<prefix>a<id>`, `<prefix>b<id>`), the host end of each with
/// address .1 of its namespace's subnet and forwarding switched on for these two interfaces
/// only, each namespace routing everything through it. `None`, after saying why, when
/// forwarding cannot be switched on here.
pub fn routed_by_the_host(a: &Netns, b: &Netns, prefix: &str) -> Option<(Veth, Veth)> {
    let veth_a = a.veth(&format!("{prefix}a{}", a.id));
    let veth_b = b.veth(&format!("{prefix}b{}", b.id));
    for (ns, veth) in [(a, &veth_a), (b, &veth_b)] {
        ip(&[
            "addr",
            "add",
            &format!("{}/24", ns.v4(1)),
            "dev",
            &veth.host,
        ]);
        ns.ip(&["route", "add", "default", "via", &ns.v4(1)]);
        if !sysctl(&format!("net/ipv4/conf/{}/forwarding", veth.host), "1") {
            eprintln!("SKIP: cannot switch on forwarding for {}", veth.host);
            return None;
        }
    }
    Some((veth_a, veth_b))
}

/// An nftables table of the test's own, deleted on drop.
pub struct NftTable {
    name: String,
}

impl NftTable {
    /// A table with a postrouting NAT chain that masquerades what `from` sends out of
    /// `interface`. `None`, after saying why, when nftables is not usable here.
    pub fn masquerade(name: &str, interface: &str, from: &str) -> Option<NftTable> {
        let nft = |args: &[&str]| {
            std::process::Command::new("nft")
                .args(args)
                .output()
                .map_err(|e| e.to_string())
                .and_then(|out| {
                    if out.status.success() {
                        Ok(())
                    } else {
                        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
                    }
                })
        };
        let _ = nft(&["delete", "table", "ip", name]);
        if let Err(e) = nft(&["add", "table", "ip", name]) {
            eprintln!("SKIP: nftables is not usable here: {e}");
            return None;
        }
        let table = NftTable {
            name: name.to_string(),
        };
        let chain = "{ type nat hook postrouting priority 100 ; }";
        nft(&["add", "chain", "ip", name, "post", chain]).expect("a NAT chain");
        nft(&[
            "add",
            "rule",
            "ip",
            name,
            "post",
            "oifname",
            interface,
            "ip",
            "saddr",
            from,
            "masquerade",
        ])
        .expect("a masquerade rule");
        Some(table)
    }
}

impl Drop for NftTable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", &self.name])
            .output();
    }
}

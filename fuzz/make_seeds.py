#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets: fuzz/corpus/<target>/seed-*, a handful of real
samples each. Run from anywhere, as root (for the netlink dumps and other processes' /proc):

    python3 fuzz/make_seeds.py

- packet: frames of benches/fixtures/loopback-mix.pcap (the `any` device, Linux cooked v2) in
  the target's record format, also re-framed as Ethernet, SLL, raw IP and NULL, and one input
  holding an IPv4 and an IPv6 fragmented datagram, every fragment in order;
- proc: this machine's /proc files the parsers read (stat of a process and of a kernel thread,
  io, status, cgroup, limits, cmdline, meminfo, stat), and a container's cgroup file;
- netlink: live kernel replies (an RTM_GETLINK and an RTM_GETADDR dump, a sock_diag TCP dump)
  and the conntrack reply of src/net/netlink/conntrack/tests.rs's tests;
- template: templates of README and collectd.conf.example with facts of real processes;
- config: not written here: its input is `arbitrary`'s encoding of a tree of options, which no
  configuration file maps to, so its seeds (seed-found-*) are six inputs of the first 5-minute
  run's corpus after `-merge=1` (426 inputs), picked across its sizes.
"""
import os
import socket
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- packet ----
LINKS = ["Ethernet", "Null", "Loop", "Raw", "LinuxSll", "LinuxSll2", "Ipv4", "Ipv6"]


def record(link, frame, step=0):
    return bytes([LINKS.index(link), step]) + struct.pack("<H", len(frame)) + frame


def pcap_frames(path):
    data = open(path, "rb").read()
    magic, _, _, _, _, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4 and linktype == 276, (hex(magic), linktype)
    at = 24
    while at + 16 <= len(data):
        _, _, incl, orig = struct.unpack("<IIII", data[at : at + 16])
        yield data[at + 16 : at + 16 + incl], orig
        at += 16 + incl


frames = list(pcap_frames(os.path.join(ROOT, "benches/fixtures/loopback-mix.pcap")))


def ip_of(sll2):
    return sll2[20:]


def kind(frame):
    proto = struct.unpack(">H", frame[0:2])[0]
    ip = ip_of(frame)
    if proto == 0x0800 and len(ip) >= 20:
        frag = struct.unpack(">H", ip[6:8])[0]
        return ("v4", ip[9], frag & 0x3FFF != 0)
    if proto == 0x86DD and len(ip) >= 40:
        return ("v6", ip[6], ip[6] == 44)
    return ("other", None, False)


picked = {}
for frame, orig in frames:
    k = kind(frame)
    picked.setdefault(k, (frame, orig))
for i, (k, (frame, _)) in enumerate(sorted(picked.items(), key=lambda kv: str(kv[0]))):
    write("packet", f"sll2-{k[0]}-{k[1]}{'-frag' if k[2] else ''}", record("LinuxSll2", frame))
    ip = ip_of(frame)
    ethertype = frame[0:2]
    if i < 2:
        write("packet", f"ethernet-{k[0]}-{k[1]}", record("Ethernet", b"\0" * 12 + ethertype + ip))
        write("packet", f"raw-{k[0]}-{k[1]}", record("Raw", ip))
        sll = struct.pack(">HHH", 0, 772, 6) + b"\0" * 8 + ethertype
        write("packet", f"sll-{k[0]}-{k[1]}", record("LinuxSll", sll + ip))
        af = 2 if ethertype == b"\x08\x00" else 10
        write("packet", f"null-{k[0]}-{k[1]}", record("Null", struct.pack("=I", af) + ip))
# Fragmented datagrams (the recording has none): a 3000-byte UDP datagram over 127.0.0.1 and
# one over ::1, each in three fragments captured on the `any` device with snaplen 128, every
# fragment in order (the frames of src/net/capture/packet/tests.rs's real-capture test).
FRAGMENTS = {
    "v4": [
        "08000000000000010304000600000000000000004500057454742000401103037f0000017f000001bf159c42"
        "0bc0cb4f" + "79" * 84,
        "080000000000000103040006000000000000000045000574547420ac401102577f0000017f000001" + "79" * 88,
        "080000000000000103040006000000000000000045000114547401584011260b7f0000017f000001" + "79" * 88,
    ],
    "v6": [
        "86dd0000000000010304000600000000000000006005a5a205502c4000000000000000000000000000000001"
        "0000000000000000000000000000000111000001e3bb861b948f9c420bc0f3d6" + "79" * 44,
        "86dd0000000000010304000600000000000000006005a5a205502c4000000000000000000000000000000001"
        "0000000000000000000000000000000111000549e3bb861b" + "79" * 52,
        "86dd0000000000010304000600000000000000006005a5a201382c4000000000000000000000000000000001"
        "0000000000000000000000000000000111000a90e3bb861b" + "79" * 52,
    ],
}
for version, hexes in FRAGMENTS.items():
    write(
        "packet",
        f"fragments-{version}",
        b"".join(record("LinuxSll2", bytes.fromhex(h), 2) for h in hexes),
    )


# ---- proc ----
def read(path, limit=8192):
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


for name, path in [
    ("self-stat", "/proc/self/stat"),
    ("init-stat", "/proc/1/stat"),
    ("kthreadd-stat", "/proc/2/stat"),
    ("self-io", "/proc/self/io"),
    ("self-status", "/proc/self/status"),
    ("self-cgroup", "/proc/self/cgroup"),
    ("self-limits", "/proc/self/limits"),
    ("init-cmdline", "/proc/1/cmdline"),
    ("meminfo", "/proc/meminfo"),
    ("stat", "/proc/stat"),
]:
    data = read(path)
    if data:
        write("proc", name, data)
write(
    "proc",
    "docker-cgroup",
    b"0::/system.slice/docker-3f4e2b1c9a8d" + b"0123456789abcdef" * 3 + b"0123.scope\n",
)
write("proc", "odd-comm-stat", b"42 (a) b\n(c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 1234 10485760 256 18446744073709551615\n")


# ---- netlink ----
def netlink_dump(protocol, kind, payload):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    s.bind((0, 0))
    msg = struct.pack("=IHHII", 16 + len(payload), kind, 0x301, 7, 0) + payload
    s.send(msg)
    data = s.recv(65536)
    s.close()
    return data


NETLINK_ROUTE, NETLINK_SOCK_DIAG = 0, 4
write("netlink", "rtm-newlink-dump", netlink_dump(NETLINK_ROUTE, 18, b"\0" * 16)[:4096])
write("netlink", "rtm-newaddr-dump", netlink_dump(NETLINK_ROUTE, 22, b"\0" * 8)[:4096])
# inet_diag_req_v2: family AF_INET, protocol TCP, ext 0, pad, states all, then a zero id.
req = struct.pack("=BBBBI", 2, 6, 0, 0, 0xFFFFFFFF) + b"\0" * 48
# A conntrack reply with masquerade (src/net/netlink/conntrack/tests.rs's MASQUERADE fixture, seq 4).
write("netlink", "conntrack-masquerade", bytes.fromhex(
    "d40000000001020004000000b76e0000020000003400018014000180080001000acbfb02080002000acb"
    "fc021c000280050001000600000006000200c16200000600030097c900003400028014000180080001"
    "000acbfc02080002000acbfc011c00028005000100060000000600020097c9000006000300c1620000"
    "080003000000019e080008000000000008000c001999017e08000b000000000208000700000697803000"
    "04802c0001800500010003000000050002000a000000050003000a000000060004002300000006000500"
    "23000000"
))
write("netlink", "sock-diag-tcp-dump", netlink_dump(NETLINK_SOCK_DIAG, 20, req)[:4096])


# ---- template ----
def facts(comm, exe, user, uid, pid, cgroup, container):
    return b"\0".join(x.encode() for x in (comm, exe, user, uid, pid, cgroup, container))


for name, template in [
    ("comm", "{comm}"),
    ("user-comm-pid", "{user}:{comm}:{pid}"),
    ("container-comm", "{container}:{comm}"),
    ("exe-uid", "{exe}-{uid}"),
    ("cgroup", "{cgroup}/{{literal}}"),
]:
    write(
        "template",
        name,
        template.encode()
        + b"\0"
        + facts("kworker/0:1H", "sshd", "root", "0", "4242", "nginx.service", "3f4e2b1c9a8d"),
    )
write("template", "fixed-self", b"self\0x")

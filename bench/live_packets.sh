#!/usr/bin/env bash
# Benchmark (not a test): live capture of small UDP packets on loopback, collectd-capture against
# `nethogs -t` on the same traffic (issue 5: 200,000 packets/s with no kernel drops at the default
# BufferSize; at most half nethogs's CPU time while attributing more of the bytes).
#
# examples/udp_flood.rs, copied under two names (flood_send, flood_recv: their kernel command
# names, so the default GroupBy "{comm}" gives each side its own instance), sends RATE UDP
# datagrams a second of SIZE bytes of payload over 127.0.0.1 for SECS seconds, paced every 1 ms.
# The same traffic is run three times:
#   none      nothing capturing: what the traffic itself costs the sender and the receiver
#   capture   collectd (Interval 1, csv writer) with a bare `LoadPlugin capture`: capture on
#             `any`, default BufferSize (2 MiB) and SnapLen, GroupBy "{comm}"
#   nethogs   `nethogs -t -a -C -v 2 -d 1 lo` (-C: UDP too; without it nethogs sees only TCP)
# and reports, from collectd's CSV files, libpcap's counters (received, dropped for lack of
# buffer, dropped by the interface), the packets the plugin captured, the traffic credited to
# flood_send (tx) and flood_recv (rx) and to `unattributed`; from /proc/PID/task/*/schedstat the
# CPU time of collectd's threads (capture-any, capture-resolve, capture-sampler, the rest) and of
# nethogs over the traffic; from nethogs's last refresh the bytes it gave each program.
#
#   sudo bench/live_packets.sh                 # 200000 packets/s for 20 s
#   sudo bench/live_packets.sh 100000 30       # RATE SECS
#   sudo SIZE=512 BASELINE=0 bench/live_packets.sh
#
# Environment:
#   SIZE=64         UDP payload bytes of each datagram (the IP datagram is SIZE + 28)
#   LINGER=3        seconds both programs stay alive after their traffic, so collectd writes the
#                   last counters of their instances (reported only while a member lives)
#   BASELINE=1      run the traffic once with nothing capturing (0: skip)
#   NETHOGS=1       run the traffic under nethogs (0: skip)
#   NETHOGS_ARGS    default "-t -a -C -v 2 -d 1 lo"
#   CAPTURE_SO=...  use this capture.so instead of building target/release/libcapture.so
#   KEEP=1          keep the temporary directory (configs, CSV files, logs, outputs)
#
# Only loopback traffic (127.0.0.1). Run as root: capturing needs CAP_NET_RAW.
# A measurement, not a test: it never fails on the numbers. Its last summary line,
# `RESULT live_packets ...`, gives the key figures to bench/run_all.sh: rate achieved, kernel
# drops, shares attributed by each, CPU capture / nethogs. The config, the daemon and the
# schedstat reading are bench/lib.sh's.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RATE="${1:-${RATE:-200000}}"
SECS="${2:-${SECS:-20}}"
SIZE="${SIZE:-64}"
LINGER="${LINGER:-3}"
BASELINE="${BASELINE:-1}"
NETHOGS="${NETHOGS:-1}"
NETHOGS_ARGS="${NETHOGS_ARGS:--t -a -C -v 2 -d 1 lo}"
KEEP="${KEEP:-0}"
require_whole_numbers RATE SECS SIZE LINGER
[[ $RATE -ge 1 && $RATE -le 10000000 ]] || die "RATE must be 1 to 10000000 packets/s"
[[ $SECS -ge 1 ]] || die "SECS must be at least 1"
[[ $SIZE -le 1400 ]] || die "SIZE must be at most 1400 bytes"
[[ $LINGER -ge 2 ]] || die "LINGER must be at least 2 s (collectd must see both programs after the traffic)"
[[ $EUID -eq 0 ]] || die "run as root: capturing packets needs CAP_NET_RAW"

extra_packages=()
[[ $NETHOGS == 1 ]] && extra_packages+=(nethogs)
bench_prepare "${extra_packages[@]}"
if [[ $NETHOGS == 1 ]] && ! command -v nethogs >/dev/null 2>&1; then
  die "nethogs not found (apt-get install nethogs), or NETHOGS=0"
fi
flood="$(build_example udp_flood "the traffic generator")"

bench_start capture-live
install -m 0755 "$flood" "$tmp/flood_send"
install -m 0755 "$flood" "$tmp/flood_recv"
make_plugin_dir "$tmp/plugins" "$so" logfile csv
collectd_conf "$tmp" csv "LoadPlugin capture"

# Other packet sockets (another capture, e.g. a test's collectd) tax every packet too.
other_captures=$(($(wc -l </proc/net/packet) - 1))
[[ $other_captures -eq 0 ]] || log "warning: $other_captures packet socket(s) already open on this host (another capture is running): every packet costs more"

# observer_cpu PID: CPU ns (schedstat field 1) and times scheduled in (field 3: a sleeping
# thread woken by a packet counts one) of the process's threads, by name: capture threads
# (capture-<iface>), capture-resolve, capture-sampler, all others -- 8 numbers, ns and runs of
# each in that order; zeros for PID 0.
observer_cpu() {
  thread_cpu "$1" 'capture-*' capture-resolve capture-sampler '*'
}

# run_traffic PHASE OBSERVER_PID: the receiver, then the sender at RATE for SECS. Leaves their
# outputs in $tmp/PHASE.recv and .send, and in $tmp/PHASE.times the wall clock at the sender's
# start, at its last packet and one second later (the observer's backlog), with the observer's
# CPU (observer_cpu) at the first and the last, and the packet sockets open on the host.
run_traffic() {
  local phase=$1 observer=$2 port recv_pid send_pid t0 t1 t2 cpu0 cpu1 sockets
  "$tmp/flood_recv" recv 127.0.0.1:0 $((SECS + 60)) "$LINGER" >"$tmp/$phase.recv" 2>&1 &
  recv_pid=$!
  bench_track "$recv_pid"
  wait_for "$tmp/$phase.recv" '^port ' 10 || die "the receiver did not start: $(cat "$tmp/$phase.recv")"
  port=$(sed -n 's/^port //p' "$tmp/$phase.recv")
  log "$phase: $RATE packets/s of $SIZE bytes to 127.0.0.1:$port for $SECS s"
  sockets=$(($(wc -l </proc/net/packet) - 1))
  cpu0=$(observer_cpu "$observer")
  t0=$(date +%s.%N)
  "$tmp/flood_send" send "127.0.0.1:$port" "$RATE" "$SIZE" "$SECS" "$LINGER" >"$tmp/$phase.send" 2>&1 &
  send_pid=$!
  bench_track "$send_pid"
  wait_for "$tmp/$phase.send" '^cpu_ms |^udp_flood:' $((SECS + 60)) || die "the sender did not finish"
  grep -q '^cpu_ms ' "$tmp/$phase.send" || die "the sender failed: $(cat "$tmp/$phase.send")"
  t1=$(date +%s.%N)
  sleep 1
  cpu1=$(observer_cpu "$observer")
  t2=$(date +%s.%N)
  [[ $observer == 0 ]] || kill -0 "$observer" 2>/dev/null || die "$phase: the observer died during the run"
  wait "$send_pid" "$recv_pid" || true
  echo "$t0 $t1 $t2 $cpu0 $cpu1 $sockets" >"$tmp/$phase.times"
}

phases=()
if [[ $BASELINE == 1 ]]; then
  run_traffic none 0
  phases+=(none)
fi

log "capture: starting collectd (Interval 1, LoadPlugin capture, csv writer)"
start_collectd "$tmp"
collectd_pid=$bench_pid
wait_for_csv "$tmp" capture-self/derive-pcap_received-any 15 "$collectd_pid" || {
  tail -n 20 "$tmp/collectd.log" >&2
  die "collectd-capture wrote no pcap counters for 'any' within 15 s (see the log above)"
}
sleep 1
run_traffic capture "$collectd_pid"
sleep 1.5 # the programs have exited; the last interval is written
kill -TERM "$collectd_pid"
wait "$collectd_pid" 2>/dev/null || true
phases+=(capture)

if [[ $NETHOGS == 1 ]]; then
  log "nethogs: nethogs $NETHOGS_ARGS"
  # shellcheck disable=SC2086 # NETHOGS_ARGS is a list of arguments
  nethogs $NETHOGS_ARGS >"$tmp/nethogs.out" 2>"$tmp/nethogs.err" &
  nethogs_pid=$!
  bench_track "$nethogs_pid"
  sleep 2
  kill -0 "$nethogs_pid" 2>/dev/null || die "nethogs exited: $(cat "$tmp/nethogs.err")"
  run_traffic nethogs "$nethogs_pid"
  sleep 1 # one more refresh
  kill -TERM "$nethogs_pid" 2>/dev/null || true
  wait "$nethogs_pid" 2>/dev/null || true
  phases+=(nethogs)
fi

errors=$(log_warning_count "$tmp/collectd.log")
"$python" - "$tmp" "$RATE" "$SECS" "$SIZE" "$other_captures" "$errors" "${phases[@]}" <<'EOF'
import glob, os, sys

tmp, rate, secs, size, other_captures, log_errors = sys.argv[1:7]
phases = sys.argv[7:]
rate, secs, size = int(rate), int(secs), int(size)
csv = os.path.join(tmp, "csv", "bench")

def kv(path):
    """`key value...` lines of a flood program's output."""
    out = {}
    for line in open(path):
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = parts[1:]
    return out

def series(instance, typ):
    """(epoch, [values]) rows of collectd's CSV files for capture-<instance>/<typ>, in time order."""
    rows = []
    pattern = "%s/capture-%s/%s-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]" % (csv, instance, typ)
    for path in glob.glob(pattern):
        with open(path) as f:
            for line in f:
                parts = line.strip().split(",")
                try:
                    rows.append((float(parts[0]), [float(x) for x in parts[1:]]))
                except ValueError:
                    pass  # the header
    return sorted(rows)

def delta(instance, typ, t0, column=0):
    """Increase of a counter from the last value written before t0 (0 if none) to the last one."""
    rows = series(instance, typ)
    if not rows:
        return None
    before = [v for t, v in rows if t <= t0]
    return rows[-1][1][column] - (before[-1][column] if before else 0.0)

R = {}
for phase in phases:
    send, recv = kv(os.path.join(tmp, phase + ".send")), kv(os.path.join(tmp, phase + ".recv"))
    times = open(os.path.join(tmp, phase + ".times")).read().split()
    t0, t1, t2 = (float(x) for x in times[:3])
    c0 = [int(x) for x in times[3:11]]
    c1 = [int(x) for x in times[11:19]]
    d = [b - a for a, b in zip(c0, c1)]
    cpu = [x / 1e6 for x in d[0::2]]  # ms: capture threads, resolve, sampler, other
    runs = d[1::2]  # times scheduled in, same order
    sockets = int(times[19])
    R[phase] = dict(
        sent=int(send["sent"][0]), behind=int(send["behind"][0]), send_secs=float(send["seconds"][0]),
        ip_bytes=int(send["ip_bytes"][0]), send_cpu=float(send["cpu_ms"][0]),
        received=int(recv["received"][0]), recv_cpu=float(recv["cpu_ms"][0]),
        t0=t0, window=t2 - t0, cpu=cpu, runs=runs, sockets=sockets)

def fmt(x, spec="{:,.0f}"):
    return "-" if x is None else spec.format(x)

def pct(a, b):
    return None if a is None or not b else 100.0 * a / b

ip_bytes = next(iter(R.values()))["ip_bytes"]
frame_bytes = ip_bytes + 14  # what nethogs counts: libpcap's frame length, with lo's Ethernet header
rows = []  # (label, {phase: text})
def row(label, f):
    rows.append((label, {p: f(p, R[p]) for p in phases}))

row("packet sockets open (all captures)", lambda p, r: fmt(r["sockets"]))
row("datagrams sent", lambda p, r: fmt(r["sent"]))
row("rate achieved, packets/s", lambda p, r: fmt(r["sent"] / secs))
row("  given up after stalls", lambda p, r: fmt(r["behind"]))
row("datagrams the receiver read", lambda p, r: fmt(r["received"]))
row("sender CPU ms/s", lambda p, r: fmt(r["send_cpu"] / secs, "{:,.1f}"))
row("receiver CPU ms/s", lambda p, r: fmt(r["recv_cpu"] / secs, "{:,.1f}"))
row("sender CPU ns per packet", lambda p, r: fmt(r["send_cpu"] * 1e6 / r["sent"] if r["sent"] else None))

cap = None
if "capture" in R:
    r = R["capture"]
    t0 = r["t0"]
    cap = dict(
        pcap_received=delta("self", "derive-pcap_received-any", t0),
        pcap_dropped=delta("self", "derive-pcap_dropped-any", t0),
        pcap_if_dropped=delta("self", "derive-pcap_if_dropped-any", t0),
        captured=delta("self", "derive-packets_captured-any", t0),
        tx_packets=delta("flood_send", "if_packets", t0, 1),
        tx_octets=delta("flood_send", "if_octets", t0, 1),
        rx_packets=delta("flood_recv", "if_packets", t0, 0),
        rx_octets=delta("flood_recv", "if_octets", t0, 0),
        send_rx=delta("flood_send", "if_packets", t0, 0),
        recv_tx=delta("flood_recv", "if_packets", t0, 1),
        un_packets=sum(x or 0 for x in (delta("unattributed", "if_packets", t0, 0),
                                        delta("unattributed", "if_packets", t0, 1))),
        un_octets=sum(x or 0 for x in (delta("unattributed", "if_octets", t0, 0),
                                       delta("unattributed", "if_octets", t0, 1))),
    )
    r.update(cap)

def only(phase, f):
    return lambda p, r: f(r) if p == phase else ""

row("capture: pcap_received (both copies)", only("capture", lambda r: fmt(r["pcap_received"])))
row("capture: pcap_dropped (kernel drops)", only("capture", lambda r: fmt(r["pcap_dropped"])))
row("capture: pcap_if_dropped", only("capture", lambda r: fmt(r["pcap_if_dropped"])))
row("capture: packets_captured", only("capture", lambda r: fmt(r["captured"])))
row("capture: flood_send tx packets, % sent", only("capture", lambda r: "%s (%s%%)" % (
    fmt(r["tx_packets"]), fmt(pct(r["tx_packets"], r["sent"]), "{:.2f}"))))
row("capture: flood_recv rx packets, % sent", only("capture", lambda r: "%s (%s%%)" % (
    fmt(r["rx_packets"]), fmt(pct(r["rx_packets"], r["sent"]), "{:.2f}"))))
row("capture: flood_send tx bytes, % sent", only("capture", lambda r: "%s (%s%%)" % (
    fmt(r["tx_octets"]), fmt(pct(r["tx_octets"], r["sent"] * ip_bytes), "{:.2f}"))))
row("capture: flood_recv rx bytes, % sent", only("capture", lambda r: "%s (%s%%)" % (
    fmt(r["rx_octets"]), fmt(pct(r["rx_octets"], r["sent"] * ip_bytes), "{:.2f}"))))
row("capture: unattributed packets (rx+tx)", only("capture", lambda r: fmt(r["un_packets"])))

def ms_per_s(r, *idx):
    return sum(r["cpu"][i] for i in idx) / secs

row("collectd: capture-any CPU ms/s", only("capture", lambda r: fmt(ms_per_s(r, 0), "{:,.1f}")))
row("collectd: capture-resolve CPU ms/s", only("capture", lambda r: fmt(ms_per_s(r, 1), "{:,.1f}")))
row("collectd: capture-sampler CPU ms/s", only("capture", lambda r: fmt(ms_per_s(r, 2), "{:,.1f}")))
row("collectd: other threads CPU ms/s", only("capture", lambda r: fmt(ms_per_s(r, 3), "{:,.1f}")))
row("collectd: network threads CPU ms/s", only("capture", lambda r: fmt(ms_per_s(r, 0, 1), "{:,.1f}")))
row("collectd: whole daemon CPU ms/s", only("capture", lambda r: fmt(ms_per_s(r, 0, 1, 2, 3), "{:,.1f}")))
row("capture-any ns per captured packet", only("capture", lambda r: fmt(
    r["cpu"][0] * 1e6 / r["captured"] if r["captured"] else None)))
row("capture-any ns per pcap_received frame", only("capture", lambda r: fmt(
    r["cpu"][0] * 1e6 / r["pcap_received"] if r["pcap_received"] else None)))
row("capture-any wakeups/s", only("capture", lambda r: fmt(r["runs"][0] / secs)))
row("capture-any packets per wakeup", only("capture", lambda r: fmt(
    r["captured"] / r["runs"][0] if r["captured"] and r["runs"][0] else None, "{:,.1f}")))

nh = None
if "nethogs" in R:
    r = R["nethogs"]
    last = {}
    for line in open(os.path.join(tmp, "nethogs.out"), errors="replace"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 3:
            try:
                last[parts[0]] = (float(parts[1]), float(parts[2]))
            except ValueError:
                pass
    def program(name):
        """Bytes sent and received of the lines `<program path>/<pid>/<uid>` of that program."""
        got = [v for k, v in last.items() if os.path.basename(k.rsplit("/", 2)[0]) == name]
        return (sum(v[0] for v in got), sum(v[1] for v in got))
    nh = dict(send=program("flood_send"), recv=program("flood_recv"),
              unknown=sum(v[0] + v[1] for k, v in last.items() if k.startswith("unknown")),
              programs=last)
    r.update(nh)
row("nethogs: flood_send sent bytes, % sent", only("nethogs", lambda r: "%s (%s%%)" % (
    fmt(r["send"][0]), fmt(pct(r["send"][0], r["sent"] * frame_bytes), "{:.2f}"))))
row("nethogs: flood_recv received bytes, % sent", only("nethogs", lambda r: "%s (%s%%)" % (
    fmt(r["recv"][1]), fmt(pct(r["recv"][1], r["sent"] * frame_bytes), "{:.2f}"))))
row("nethogs: bytes under unknown", only("nethogs", lambda r: fmt(r["unknown"])))
row("nethogs: CPU ms/s", only("nethogs", lambda r: fmt(ms_per_s(r, 0, 1, 2, 3), "{:,.1f}")))
row("nethogs: wakeups/s", only("nethogs", lambda r: fmt(sum(r["runs"]) / secs)))

def ns_per_packet(r, *idx):
    return sum(r["cpu"][i] for i in idx) * 1e6 / r["sent"] if r["sent"] else None

row("observer CPU ns per packet sent", lambda p, r: "" if p == "none" else fmt(
    ns_per_packet(r, *((0, 1) if p == "capture" else (0, 1, 2, 3)))))

print()
print("live loopback capture: %s UDP datagrams/s of %d payload bytes (%d-byte IP datagrams), %d s"
      % (format(rate, ","), size, ip_bytes, secs))
if int(other_captures):
    print("WARNING: %s other packet socket(s) were open on the host (another capture): every packet"
          " cost more than it would alone" % other_captures)
print()
names = {"none": "no capture", "capture": "collectd-capture", "nethogs": "nethogs -t"}
w0 = max(len(label) for label, _ in rows) + 2
w = [max(len(names[p]), *(len(v[p]) for _, v in rows)) + 2 for p in phases]
print("%-*s" % (w0, "") + "".join("%*s" % (wi, names[p]) for p, wi in zip(phases, w)))
print("-" * (w0 + sum(w)))
for label, values in rows:
    print("%-*s" % (w0, label) + "".join("%*s" % (wi, values[p]) for p, wi in zip(phases, w)))

# Summary against issue 5's targets.
print()
result = dict(rate=rate, secs=secs, size=size, other_captures=other_captures)
def keep(**values):
    """Figures for the RESULT line, "-" for those not measured."""
    def text(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return "%.0f" % v if abs(v) >= 1000 else "%.4g" % v
        return v
    result.update({k: text(v) for k, v in values.items()})
keep(sent=None, rate_achieved=None, dropped=None, if_dropped=None, capture_pct=None, nethogs_pct=None,
     capture_net_ms_s=None, capture_all_ms_s=None, nethogs_ms_s=None, cpu_net_ratio_s=None,
     cpu_all_ratio_s=None, cpu_net_ratio_packet=None, cpu_all_ratio_packet=None)
if cap is not None:
    r = R["capture"]
    both = (r["tx_octets"] or 0) + (r["rx_octets"] or 0)
    cap_share = pct(both, 2 * r["sent"] * ip_bytes)
    print("collectd-capture: %s kernel drops; %s%% of the endpoint bytes attributed (tx to the sender"
          " + rx to the receiver, of 2 x sent)" % (fmt(r["pcap_dropped"]), fmt(cap_share, "{:.2f}")))
    keep(sent=r["sent"], rate_achieved=r["sent"] / secs, dropped=r["pcap_dropped"],
         if_dropped=r["pcap_if_dropped"], capture_pct=cap_share, capture_net_ms_s=ms_per_s(r, 0, 1),
         capture_all_ms_s=ms_per_s(r, 0, 1, 2, 3))
    if nh is not None:
        n = R["nethogs"]
        nh_share = pct(n["send"][0] + n["recv"][1], 2 * n["sent"] * frame_bytes)
        print("nethogs -t:       %s%% of the endpoint bytes attributed" % fmt(nh_share, "{:.2f}"))
        nh_cpu = ms_per_s(n, 0, 1, 2, 3)
        keep(nethogs_pct=nh_share, nethogs_ms_s=nh_cpu)
        if nh_cpu > 0:
            keep(cpu_net_ratio_s=ms_per_s(r, 0, 1) / nh_cpu, cpu_all_ratio_s=ms_per_s(r, 0, 1, 2, 3) / nh_cpu,
                 cpu_net_ratio_packet=ns_per_packet(r, 0, 1) / ns_per_packet(n, 0, 1, 2, 3),
                 cpu_all_ratio_packet=ns_per_packet(r, 0, 1, 2, 3) / ns_per_packet(n, 0, 1, 2, 3))
            print("CPU capture / nethogs per second: network threads %.2fx, whole collectd %.2fx"
                  " (target: <= 0.5x)" % (ms_per_s(r, 0, 1) / nh_cpu, ms_per_s(r, 0, 1, 2, 3) / nh_cpu))
            print("CPU capture / nethogs per packet sent: network threads %.2fx, whole collectd %.2fx"
                  " (the fair one when the two runs did not reach the same rate)"
                  % (ns_per_packet(r, 0, 1) / ns_per_packet(n, 0, 1, 2, 3),
                     ns_per_packet(r, 0, 1, 2, 3) / ns_per_packet(n, 0, 1, 2, 3)))
print("""
What the numbers mean:
- packet sockets open: captures running on the host during the run, this one's included
  (collectd-capture and nethogs each hold one). Every one of them taxes every packet, in the
  sender's system calls.
- rate achieved: datagrams the sender sent / SECS; it paces every 1 ms and gives up what it could
  not catch up after a stall (given up), so a rate below the target means the machine (sender,
  receiver and observer sharing the cores) could not carry it.
- CPU ms/s: CPU time (schedstat, all of a process's threads) from the sender's start to 1 s after
  its last packet, per second of traffic. On loopback the kernel's work for a packet, including
  copying it to every packet socket, runs in the sender's system call: it is in the sender's CPU,
  not the observer's (compare the sender's CPU across the columns).
- wakeups: times the thread was scheduled in (schedstat field 3); a capture thread that keeps up
  sleeps in poll() and is woken again for the next packet, so packets per wakeup near 1 means
  the per-packet cost is mostly the sleep and wake-up, not the parsing.
- pcap_received: frames libpcap's ring got from the kernel on `any`. On loopback each packet is
  there twice (outgoing and incoming copy); libpcap hands the plugin one, so it is about
  2 x packets_captured. pcap_dropped: frames the kernel dropped because the ring (BufferSize,
  2 MiB by default) was full -- the "kernel drops" of the target. pcap_if_dropped: drops by the
  interface. packets_captured: packets the plugin got from libpcap (every one is credited once
  per local endpoint or counted unattributed, or was not IP).
- flood_send tx / flood_recv rx: what collectd-capture credited to each program's instance
  (if_packets, if_octets: IP datagram bytes, %d a packet here) against what the sender sent; the
  receiver's rx is what reached its socket, whether or not the program read it in time.
- nethogs counts libpcap's frame length (the IP datagram + lo's 14-byte Ethernet header, %d here)
  and credits a looped-back packet once, to the side whose address is local first: the sender.
  Its receiver side is therefore empty on loopback.
- all counters are deltas over the run (from the last CSV row before the sender's start to the
  last row written), so background loopback traffic of the host is in them too.""" % (ip_bytes, frame_bytes))
if int(log_errors):
    print("\ncollectd logged %s warning/error line(s): see collectd.log (KEEP=1)" % log_errors)
print("RESULT live_packets " + " ".join("%s=%s" % kv for kv in result.items()))
EOF
show_log_warnings "$tmp/collectd.log"

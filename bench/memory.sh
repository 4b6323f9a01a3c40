#!/usr/bin/env bash
# Benchmark (not a test): how much resident memory collectd-capture adds to collectd with 1,000
# processes, 30,000 sockets and 100,000+ flows, and whether it grows at a steady workload
# (issue 5: "adds under 16 MiB ... and does not grow with time at a steady workload").
#
# Runs three collectd daemons side by side (Interval 1, csv writer into the temporary
# directory, nothing else):
#   baseline    no read plugin at all (collectd's own memory)
#   capture     `LoadPlugin capture`, default options (BufferSize 2 MiB)
#   capture_1m  the same with `BufferSize $SMALL_BUFFER` (1 MiB), to tell libpcap's capture ring
#               (mmap'd, counted in RssFile) from the plugin's own data (RssAnon)
# with this workload (examples/socket_load.rs):
#   - N sleeping processes (`sleep`);
#   - SOCKETS TCP sockets over 127.0.0.1: SOCKETS/2 connections, both ends in one process when
#     RLIMIT_NOFILE can be raised that far (needs CAP_SYS_RESOURCE), else the accepted ends in
#     one and the connecting ends in a helper (15,000 each, as benches/resolve.rs does);
#   - a UDP sender sending RATE datagrams a second from one socket, each to a new loopback
#     destination (127.1.0.0:9, 127.1.0.1:9, ...: a new flow each, and one more on the receiving
#     side, which nothing listens on) — with DISTINCT > 0 it cycles over that many instead.
# Phases: WARMUP s of traffic (the capture's tables reach their steady size: flows are
# forgotten after 120 s idle), STEADY s more at the same rate (the RSS slope is fitted over this
# phase), then COOLDOWN s without traffic (flows expire: is the memory given back?). By default
# RATE x (WARMUP + STEADY) = 105,000 distinct flows are seen over the run, about 30,000 of them
# alive at a time (RATE x 120 s); `RATE=1000 DISTINCT=100000` keeps 100,000 alive at once
# (each destination comes back every 100 s, before it expires), the harder case.
# Every SAMPLE s it prints VmRSS / RssAnon / RssFile of each daemon (/proc/PID/status), the
# capture ring's resident size (smaps of the packet socket mapping) and the plugin's own
# capture-self values (count-flows, derive-flow_lookups, bytes-pending, count-processes); at
# the end the difference capture - baseline and the slopes in KiB/min.
#
#   sudo bench/memory.sh                         # N=1000, SOCKETS=30000, RATE=250; ~10 min
#   sudo RATE=1000 DISTINCT=100000 bench/memory.sh   # 100,000 flows alive at once
#   sudo WARMUP=30 STEADY=60 COOLDOWN=0 N=100 SOCKETS=2000 RATE=200 bench/memory.sh   # a quick look
#
# Environment:
#   N=1000            sleeping processes to add
#   SOCKETS=30000     TCP sockets held open (0: none)
#   RATE=250          datagrams a second, each to the next destination (a new flow unless
#                     DISTINCT makes the sequence start over)
#   DISTINCT=0        0: every datagram goes to a new destination; K: cycle over K of them
#   WARMUP=120        seconds of traffic before the steady phase
#   STEADY=300        seconds of traffic the growth slope is measured over
#   COOLDOWN=150      seconds without traffic at the end (0: none)
#   SAMPLE=10         seconds between samples
#   SMALL_BUFFER=1048576  BufferSize of the capture_1m daemon (0: do not run it)
#   NETNS=1           run the daemons and the workload in a private network namespace of their
#                     own (only `lo`): the capture sees this workload and nothing else. NETNS=0
#                     uses the host's (the capture then also counts the host's other traffic)
#   PIDNS=1           run the whole benchmark in a private pid namespace with its own /proc
#                     (unshare --pid --mount-proc): the plugin sees this workload's processes and
#                     no others, so builds or test suites running on the host meanwhile do not
#                     show up as memory growth (their new processes, sockets and instances fill
#                     the plugin's tables). PIDNS=0 uses the host's /proc
#   CAPTURE_SO=...    use this capture.so instead of building target/release/libcapture.so
#   KEEP=1            keep the temporary directory (configs, logs, CSV files, samples)
# Run as root (capturing needs CAP_NET_RAW).
# Traffic goes to loopback addresses only.
#
# A measurement, not a test: it prints figures and never fails on them. Its summary ends with
# `RESULT memory ...`, the key figures for bench/run_all.sh: VmRSS capture - baseline at the end
# of the steady phase (with and without the capture ring) and its slope in KiB/min. The configs,
# sleepers, socket holder, namespace, daemons, CSV and schedstat reading are bench/lib.sh's.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N="${N:-1000}"
SOCKETS="${SOCKETS:-30000}"
RATE="${RATE:-250}"
DISTINCT="${DISTINCT:-0}"
WARMUP="${WARMUP:-120}"
STEADY="${STEADY:-300}"
COOLDOWN="${COOLDOWN:-150}"
SAMPLE="${SAMPLE:-10}"
SMALL_BUFFER="${SMALL_BUFFER:-1048576}"
NETNS="${NETNS:-1}"
PIDNS="${PIDNS:-1}"
KEEP="${KEEP:-0}"
require_whole_numbers N SOCKETS RATE DISTINCT WARMUP STEADY COOLDOWN SAMPLE SMALL_BUFFER NETNS PIDNS
[[ $RATE -ge 1 ]] || die "RATE must be at least 1"
[[ $SAMPLE -ge 1 ]] || die "SAMPLE must be at least 1"
[[ $STEADY -ge $((2 * SAMPLE)) ]] || die "STEADY must cover at least two samples (2 x SAMPLE)"
[[ $EUID -eq 0 ]] || die "run as root: capturing packets needs CAP_NET_RAW"
if [[ $PIDNS -eq 1 && -z ${CAPTURE_MEMORY_IN_PIDNS:-} ]]; then
  log "re-running in a private pid namespace (PIDNS=1)"
  exec env CAPTURE_MEMORY_IN_PIDNS=1 unshare --pid --fork --mount-proc -- "$0" "$@"
fi

bench_prepare
socket_load="$(build_example socket_load "the load generator")"

bench_start capture-memory
[[ $NETNS == 1 ]] && bench_netns "capture-memory-$$"
cp "$socket_load" "$tmp/socket_load"
make_plugin_dir "$tmp/plugins" "$so" logfile csv

names=(baseline capture)
collectd_conf "$tmp/baseline" csv "# no read plugin"
collectd_conf "$tmp/capture" csv "LoadPlugin capture"
if [[ $SMALL_BUFFER -gt 0 ]]; then
  names+=(capture_1m)
  collectd_conf "$tmp/capture_1m" csv "LoadPlugin capture
<Plugin capture>
  BufferSize $SMALL_BUFFER
</Plugin>"
fi

# last_value NAME IDENT: the newest value (fields after the time) daemon NAME wrote for IDENT
# (e.g. capture-self/count-flows), or "-".
last_value() {
  csv_last "$tmp/$1" "$2" -
}

spawn_sleepers "$N" 100000
[[ $SOCKETS -gt 0 ]] && hold_sockets "$tmp/socket_load" "$SOCKETS"

log "starting ${#names[@]} collectd daemons (Interval 1): ${names[*]}"
declare -A pid_of
for name in "${names[@]}"; do
  start_collectd "$tmp/$name"
  pid_of[$name]=$bench_pid
done
wait_for_csv "$tmp/capture" capture-self/count-processes 20 || true
for name in "${names[@]}"; do
  require_alive "${pid_of[$name]}" "$tmp/$name/collectd.log" "collectd ($name) exited at start"
done
sleep 3
nproc_total=$(last_value capture capture-self/count-processes)
nproc_total=${nproc_total%%.*}
nsockets=$("${in_ns[@]}" ss -Htan 2>/dev/null | wc -l)

# sample PID: VmRSS RssAnon RssFile (KiB) and the resident KiB of mappings of packet sockets
# (libpcap's ring: maps name them "socket:[...]" or, on some kernels, "[packet]"-less anon).
sample() {
  local pid=$1
  awk '
    FILENAME ~ /status$/ && /^(VmRSS|RssAnon|RssFile):/ { v[$1] = $2; next }
    FILENAME ~ /smaps$/ && /^[0-9a-f]+-[0-9a-f]+ / { ring = ($6 ~ /^socket:/); next }
    FILENAME ~ /smaps$/ && ring && /^Rss:/ { r += $2 }
    END { printf "%d %d %d %d\n", v["VmRSS:"], v["RssAnon:"], v["RssFile:"], r }
  ' "/proc/$pid/status" "/proc/$pid/smaps" 2>/dev/null || echo "0 0 0 0"
}

samples="$tmp/samples.tsv"
# capture_ns PID: CPU time in ns (schedstat) of the daemon's packet-capture threads (capture-<iface>,
# not the resolver or the sampler).
capture_ns() {
  local ns
  read -r ns _ < <(thread_cpu "$1" 'capture-*' capture-resolve capture-sampler)
  echo "$ns"
}

printf 't\tphase\tdaemon\tvmrss\tanon\tfile\tring\tflows\tlookups\tunresolved\tpending\tdropped\tcapture_ns\twall\n' >"$samples"
record() {
  local t=$1 phase=$2 name flows lookups unresolved pending dropped cpu
  for name in "${names[@]}"; do
    read -r rss anon file ring < <(sample "${pid_of[$name]}")
    flows="-" lookups="-" unresolved="-" pending="-" dropped="-" cpu=0
    if [[ $name != baseline ]]; then
      flows=$(last_value "$name" capture-self/count-flows)
      lookups=$(last_value "$name" capture-self/derive-flow_lookups)
      unresolved=$(last_value "$name" capture-self/derive-flow_unresolved)
      pending=$(last_value "$name" capture-self/bytes-pending)
      dropped=$(last_value "$name" capture-self/derive-pcap_dropped-any)
      cpu=$(capture_ns "${pid_of[$name]}")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$phase" "$name" "$rss" "$anon" \
      "$file" "$ring" "$flows" "$lookups" "$unresolved" "$pending" "$dropped" "$cpu" "$(date +%s.%N)" >>"$samples"
  done
}

# show_last: one line of the live table from the latest samples.
show_header() {
  printf '%6s %-8s %9s | %9s %9s %9s %7s | %9s %9s %7s | %8s %9s %8s %6s %7s\n' \
    "t s" phase "base MiB" "cap MiB" "anon" "file" "ring" "cap1m MiB" "anon" "ring" flows lookups pending "cpu%" dropped
}
show_last() {
  "$python" - "$samples" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
t = rows[-1][0]
last = {r[2]: r for r in rows if r[0] == t}
mib = lambda k: "%.1f" % (int(k) / 1024.0)
b, c, s = last.get("baseline"), last.get("capture"), last.get("capture_1m")
def num(x):
    try:
        return "%.0f" % float(x)
    except ValueError:
        return x
# CPU of capture's packet thread over the last sample interval, % of one core.
prev = [r for r in rows if r[2] == "capture" and r[0] != t]
cpu = "-"
if prev:
    p = prev[-1]
    cpu = "%.1f" % ((int(c[12]) - int(p[12])) / 1e9 / (float(c[13]) - float(p[13])) * 100)
print("%6s %-8s %9s | %9s %9s %9s %7s | %9s %9s %7s | %8s %9s %8s %6s %7s" % (
    t, c[1], mib(b[3]), mib(c[3]), mib(c[4]), mib(c[5]), mib(c[6]),
    mib(s[3]) if s else "-", mib(s[4]) if s else "-", mib(s[6]) if s else "-",
    num(c[7]), num(c[8]), num(c[10]), cpu,
    "%s/%s" % (num(c[11]), num(s[11])) if s else num(c[11])))
EOF
}

start=$(date +%s)
phase_of() {
  local t=$1
  if ((t < 0)); then echo idle
  elif ((t < WARMUP)); then echo warmup
  elif ((t < WARMUP + STEADY)); then echo steady
  else echo cooldown
  fi
}
echo
echo "collectd-capture memory: $nproc_total processes in /proc, $nsockets TCP sockets in the capture's namespace,"
echo "datagrams: $RATE/s for $((WARMUP + STEADY)) s ($((RATE * (WARMUP + STEADY))) datagrams, $([[ $DISTINCT -gt 0 ]] && echo "cycling over $DISTINCT destinations" || echo "each to a new destination")),"
echo "warmup $WARMUP s, steady $STEADY s, cooldown $COOLDOWN s, a sample every $SAMPLE s; RSS in MiB"
echo
show_header
record -"$SAMPLE" idle
show_last

"${in_ns[@]}" "$tmp/socket_load" udp-spray "$RATE" "$((WARMUP + STEADY))" "$DISTINCT" >"$tmp/spray.out" 2>&1 &
spray_pid=$!
bench_track "$spray_pid"
t0=$(date +%s.%N)
total=$((WARMUP + STEADY + COOLDOWN))
for ((k = 1; k * SAMPLE <= total; k++)); do
  t=$((k * SAMPLE))
  # Sleep to the next sample time, against the clock.
  delay=$("$python" -c "import time; print(max(0.0, $t0 + $t - time.time()))")
  sleep "$delay"
  for name in "${names[@]}"; do
    kill -0 "${pid_of[$name]}" 2>/dev/null || die "collectd ($name) died, see $tmp/$name/collectd.log (KEEP=1)"
  done
  record "$t" "$(phase_of $((t - 1)))"
  show_last
done
wait "$spray_pid" 2>/dev/null || true
spray_said=$(grep -v "^ready" "$tmp/spray.out" || true)
end=$(date +%s)

echo
echo "load generator: $spray_said"
"$python" - "$samples" "$WARMUP" "$STEADY" "$COOLDOWN" "$SMALL_BUFFER" "$nproc_total" "$nsockets" "$RATE" <<'EOF'
import sys
path, warmup, steady, cooldown, small = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
nproc_total, nsockets, rate = sys.argv[6:9]
rows = [l.rstrip("\n").split("\t") for l in open(path)][1:]
by = {}
for r in rows:
    by.setdefault(r[2], []).append(r)
def col(name, i, phase=None):
    return [(int(r[0]), float(r[i])) for r in by.get(name, []) if phase is None or r[1] == phase]
def at(name, i, t):
    for r in by.get(name, []):
        if int(r[0]) == t:
            try:
                return float(r[i])
            except ValueError:
                return None
    return None
def slope(points):
    # least squares, KiB per minute
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    return sxy / sxx * 60 if sxx else float("nan")
names = [n for n in ("baseline", "capture", "capture_1m") if n in by]
end_steady = max(int(r[0]) for r in rows if r[1] == "steady")
first_t = min(int(r[0]) for r in rows)
last_t = max(int(r[0]) for r in rows)
def mib(k):
    return "%.1f" % (k / 1024.0) if k is not None else "-"
print()
print("at the end of the steady phase (t = %d s), MiB:" % end_steady)
hdr = "%-12s %8s %8s %8s %8s %10s %10s" % ("daemon", "VmRSS", "RssAnon", "RssFile", "ring", "peak RSS", "flows")
print(hdr)
print("-" * len(hdr))
for n in names:
    peak = max(v for _, v in col(n, 3))
    flows = at(n, 7, end_steady)
    print("%-12s %8s %8s %8s %8s %10s %10s" % (n, mib(at(n, 3, end_steady)), mib(at(n, 4, end_steady)),
          mib(at(n, 5, end_steady)), mib(at(n, 6, end_steady)), mib(peak),
          "-" if flows is None else "%.0f" % flows))
print()
for n in names[1:]:
    d = [at(n, i, end_steady) - at("baseline", i, end_steady) for i in (3, 4, 5)]
    ring = at(n, 6, end_steady)
    print("%-11s - baseline: VmRSS %+.1f MiB (RssAnon %+.1f, RssFile %+.1f, of which capture ring %.1f);"
          " without the ring %+.1f MiB" % (n, d[0] / 1024, d[1] / 1024, d[2] / 1024, ring / 1024,
                                           (d[0] - ring) / 1024))
    peak_diff = max(c - b for (tc, c), (tb, b) in zip(col(n, 3), col("baseline", 3)))
    print("%-11s   largest VmRSS difference over the run: %+.1f MiB" % ("", peak_diff / 1024))
print()
print("before any traffic (t = %d s: processes and sockets indexed, no flows yet):" % first_t)
for n in names[1:]:
    d = [at(n, i, first_t) - at("baseline", i, first_t) for i in (3, 4, 5)]
    print("  %-11s - baseline: VmRSS %+.1f MiB (RssAnon %+.1f, RssFile %+.1f, of which capture ring %.1f)"
          % (n, d[0] / 1024, d[1] / 1024, d[2] / 1024, at(n, 6, first_t) / 1024))
def cpu_share(name, phase):
    pts = [r for r in by.get(name, []) if r[1] == phase]
    if len(pts) < 2:
        return float("nan")
    return (int(pts[-1][12]) - int(pts[0][12])) / 1e9 / (float(pts[-1][13]) - float(pts[0][13])) * 100
print("  packet-capture thread CPU over the steady phase: " + ", ".join(
    "%s %.1f%% of a core" % (n, cpu_share(n, "steady")) for n in names[1:]))
print()
print("growth over the steady phase (%d s, least squares over %d samples), KiB/min:" % (
    steady, len(col("capture", 3, "steady"))))
for n in names:
    print("  %-12s VmRSS %+8.1f   RssAnon %+8.1f   RssFile %+8.1f" % (
        n, slope(col(n, 3, "steady")), slope(col(n, 4, "steady")), slope(col(n, 5, "steady"))))
for n in names[1:]:
    diff = [(t, c - b) for (t, c), (_, b) in zip(col(n, 3, "steady"), col("baseline", 3, "steady"))]
    print("  %-12s VmRSS - baseline %+8.1f KiB/min" % (n, slope(diff)))
if cooldown > 0:
    print()
    print("after %d s without traffic (t = %d s):" % (cooldown, last_t))
    for n in names[1:]:
        f0, f1 = at(n, 7, end_steady), at(n, 7, last_t)
        r0, r1 = at(n, 3, end_steady), at(n, 3, last_t)
        a0, a1 = at(n, 4, end_steady), at(n, 4, last_t)
        print("  %-11s flows %s -> %s, VmRSS %s -> %s MiB, RssAnon %s -> %s MiB" % (
            n, "-" if f0 is None else "%.0f" % f0, "-" if f1 is None else "%.0f" % f1,
            mib(r0), mib(r1), mib(a0), mib(a1)))
for n in names[1:]:
    drops = at(n, 11, last_t)
    if drops:
        print("NOTE: %s's capture dropped %.0f packets (pcap_dropped-any: its ring was full)" % (n, drops))
d = [at("capture", i, end_steady) - at("baseline", i, end_steady) for i in (3, 4)]
ring = at("capture", 6, end_steady)
growth = [(t, c - b) for (t, c), (_, b) in zip(col("capture", 3, "steady"), col("baseline", 3, "steady"))]
flows = at("capture", 7, end_steady)
print("RESULT memory processes=%s sockets=%s rate=%s steady=%d flows=%s added_mib=%.1f added_anon_mib=%.1f "
      "ring_mib=%.1f added_without_ring_mib=%.1f slope_kib_min=%.1f"
      % (nproc_total, nsockets, rate, steady, "-" if flows is None else "%.0f" % flows, d[0] / 1024,
         d[1] / 1024, ring / 1024, (d[0] - ring) / 1024, slope(growth)))
EOF
echo
echo "(ring: resident KiB of the packet-socket mapping in /proc/PID/smaps, libpcap's capture buffer;"
echo " flows: capture-self/count-flows; the plugin's tables hold a flow per local endpoint, so a"
echo " datagram to a new destination makes two: the sender's and the (unowned) receiving side's)"
for name in capture capture_1m; do
  show_log_warnings "$tmp/$name/collectd.log" "$name log warnings/errors:"
done
log "done in $((end - start)) s"

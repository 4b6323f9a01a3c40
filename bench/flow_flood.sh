#!/usr/bin/env bash
# Benchmark (not a test): collectd-capture under a flood of new flows that no socket owns
# (issue 14, "Bounded and right under floods"): "Under 100,000 new ownerless flows/s for 60 s on
# loopback: collectd's RSS stays within 48 MiB of its value before the flood at every second
# and is back within 24 MiB of it 10 s after; the process metrics keep arriving every interval;
# libpcap drops are reported; and 1 s after the flood ends, a new TCP upload and a new UDP
# sender are each credited >= 99% to their own process."
#
# collectd (Interval 1, csv writer) with `<Plugin capture> Interface "lo" </Plugin>` and nothing
# else; one sleeping process (flood_idle) as a process instance whose rows must keep coming.
# examples/flow_flood.rs (as flood_gen) writes RATE UDP datagrams a second for SECS seconds on a
# raw socket, each from a random 127.a.b.c source address and port (a new flow each, as a port
# scan or a SYN flood looks) to a loopback port nothing listens on: no socket owns either end.
# The kernel answers each with an ICMP port unreachable (it does not rate-limit ICMP on
# loopback), so the capture sees about two packets per flow: the datagram and the ICMP error;
# both cost the sender's CPU, which on a small machine is what bounds the rate it achieves (the
# report gives it).
# Measured:
#   - collectd's VmRSS (/proc/PID/status) before the flood, every second during it and for
#     COOLDOWN seconds after it: the peak, the largest excess over the value before, the value
#     COOLDOWN s after the flood;
#   - the intervals during the flood with a fresh row of capture-self/duration-sampler and of
#     flood_idle's ps_rss (the plugin dispatches each sampler snapshot once, so a row is a new
#     cycle), and the longest gap;
#   - libpcap's counters on lo (capture-self/derive-pcap_received-lo, derive-pcap_dropped-lo)
#     and the plugin's own (packets_captured, count-flows, flow_lookups, bytes-pending, and the
#     shed counters flows_shed, if_octets-shed, if_packets-shed where the plugin writes them);
#   - 1 s after the flood ends: a new TCP upload (examples/capture_workload.rs tcp-send of
#     UPLOAD bytes as flood_tcp_up, to tcp-serve as flood_tcp_srv) and a new UDP sender
#     (udp-send of 2,000 datagrams of 1,000 bytes as flood_udp_tx, to udp-recv as flood_udp_rx),
#     each its own instance under the default GroupBy "{comm}": the share of the bytes each
#     sender reports it sent that is credited to its instance (if_octets tx), at COOLDOWN s after
#     the flood and at the end of a wait of up to WAIT seconds for it to reach 99%.
#
#   sudo bench/flow_flood.sh                  # 100,000 new flows/s for 60 s
#   sudo bench/flow_flood.sh 50000 20         # RATE SECS
#   sudo KEEP=1 bench/flow_flood.sh           # keep the CSV files, the log and the samples
#
# Environment:
#   RATE=100000      new flows (datagrams) a second
#   SECS=60          seconds of flood
#   SIZE=18          UDP payload bytes of each flood datagram (46-byte IP datagrams)
#   COOLDOWN=10      seconds after the flood at which RSS must be back near its value before
#   WARMUP=5         seconds collectd runs before the RSS before the flood is read
#   WAIT=60          longest wait, from the senders' start, for each to be credited 99%
#   UPLOAD=20000000  bytes of the TCP upload
#   MAX_RSS_MIB=4096 the flood is stopped early (and the report says so) when collectd's RSS
#                    passes this: the host has other work to do
#   CAPTURE_SO=...   use this capture.so instead of building target/release/libcapture.so
#   KEEP=1           keep the temporary directory (config, log, CSV files, samples, outputs)
#
# Only loopback traffic: the flood's sources and its destination are in 127.0.0.0/8 (the
# generator refuses anything else); it is bounded by RATE x SECS datagrams and SECS seconds and
# stops by itself. Run as root: the raw socket and the capture need CAP_NET_RAW. The capture is
# on the host's lo, so other loopback traffic of the host is counted too (the report warns when
# another capture is running).
#
# A measurement, not a test: it prints figures and never fails on them (tests/flood.rs is the
# test, a shorter flood). Its summary ends with `RESULT flow_flood ...` for bench/run_all.sh.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RATE="${1:-${RATE:-100000}}"
SECS="${2:-${SECS:-60}}"
SIZE="${SIZE:-18}"
COOLDOWN="${COOLDOWN:-10}"
WARMUP="${WARMUP:-5}"
WAIT="${WAIT:-60}"
UPLOAD="${UPLOAD:-20000000}"
MAX_RSS_MIB="${MAX_RSS_MIB:-4096}"
KEEP="${KEEP:-0}"
require_whole_numbers RATE SECS SIZE COOLDOWN WARMUP WAIT UPLOAD MAX_RSS_MIB
[[ $RATE -ge 1 && $RATE -le 10000000 ]] || die "RATE must be 1 to 10000000 flows/s"
[[ $SECS -ge 1 ]] || die "SECS must be at least 1"
[[ $SIZE -le 1400 ]] || die "SIZE must be at most 1400 bytes"
[[ $COOLDOWN -ge 2 ]] || die "COOLDOWN must be at least 2 s (the senders start 1 s after the flood)"
[[ $UPLOAD -ge 1000000 ]] || die "UPLOAD must be at least 1000000 bytes"
[[ $EUID -eq 0 ]] || die "run as root: the raw socket and the capture need CAP_NET_RAW"

# The UDP sender: datagrams and their payload bytes (28 bytes of IPv4 and UDP headers each).
readonly UDP_COUNT=2000 UDP_SIZE=1000
# Programs linger this long after their traffic, so collectd keeps writing their instances.
readonly LINGER=$((COOLDOWN + WAIT + 30))

bench_prepare
flood="$(build_example flow_flood "the flood generator")"
workload="$(build_example capture_workload "the TCP and UDP workload")"

bench_start capture-flood
install -m 0755 "$flood" "$tmp/flood_gen"
for name in flood_idle flood_tcp_srv flood_tcp_up flood_udp_rx flood_udp_tx; do
  install -m 0755 "$workload" "$tmp/$name"
done
make_plugin_dir "$tmp/plugins" "$so" logfile csv
collectd_conf "$tmp" csv $'LoadPlugin capture\n<Plugin capture>\n  Interface "lo"\n</Plugin>'

other_captures=$(($(wc -l </proc/net/packet) - 1))
[[ $other_captures -eq 0 ]] || log "warning: $other_captures packet socket(s) already open on this host (another capture is running)"

# A loopback UDP port nothing listens on: the flood's destination.
port=$("$python" -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dest="127.0.0.1:$port"

# now_ms: milliseconds since the epoch.
now_ms() {
  local ns
  ns=$(date +%s%N)
  echo $((ns / 1000000))
}

# rss_kib PID: VmRSS of PID in KiB, 0 when it is gone.
rss_kib() {
  local kib
  kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || true
  echo "${kib:-0}"
}

# start_program OUT PROGRAM ARGS...: PROGRAM in the background, its output in $tmp/OUT; sets
# $program_pid. Stopped at exit.
start_program() {
  local out=$1
  shift
  "$@" >"$tmp/$out" 2>&1 &
  program_pid=$!
  bench_track "$program_pid"
}

# port_of OUT: the port a server printed in $tmp/OUT (`port N`), waiting up to 10 s.
port_of() {
  wait_for "$tmp/$1" '^port ' 10 || die "$1: no port: $(cat "$tmp/$1")"
  sed -n 's/^port //p' "$tmp/$1"
}

# start_senders: the TCP upload and the UDP sender, each with its receiver; writes the time they
# were started (ms) to $tmp/senders.start.
start_senders() {
  local tcp_port udp_port
  now_ms >"$tmp/senders.start"
  start_program tcp_srv.out "$tmp/flood_tcp_srv" tcp-serve 127.0.0.1 "$LINGER"
  start_program udp_rx.out "$tmp/flood_udp_rx" udp-recv 127.0.0.1 "$LINGER"
  tcp_port=$(port_of tcp_srv.out)
  udp_port=$(port_of udp_rx.out)
  start_program tcp_up.out "$tmp/flood_tcp_up" tcp-send "127.0.0.1:$tcp_port" "$UPLOAD" 1 "$LINGER"
  start_program udp_tx.out "$tmp/flood_udp_tx" udp-send "127.0.0.1:$udp_port" "$UDP_COUNT" "$UDP_SIZE" "$LINGER"
}

# credited INSTANCE: bytes credited to capture-INSTANCE as sent (if_octets tx), 0 before a row.
credited() {
  local row
  row=$(csv_last "$tmp" "capture-$1/if_octets" "0,0")
  row=${row#*,}
  printf '%.0f\n' "$row"
}

udp_bytes=$((UDP_COUNT * (UDP_SIZE + 28)))
# Milliseconds from the senders' start to when each was first seen credited 99% ("-": not yet).
tcp_ms="-" udp_ms="-"
# check_senders: sets tcp_ms and udp_ms once a sender has finished and is credited 99%.
check_senders() {
  local now started
  now=$(now_ms)
  started=$(cat "$tmp/senders.start")
  if [[ $tcp_ms == - ]] && grep -q '^sent' "$tmp/tcp_up.out" &&
    [[ $(credited flood_tcp_up) -ge $((UPLOAD * 99 / 100)) ]]; then
    tcp_ms=$((now - started))
  fi
  if [[ $udp_ms == - ]] && grep -q '^sent' "$tmp/udp_tx.out" &&
    [[ $(credited flood_udp_tx) -ge $((udp_bytes * 99 / 100)) ]]; then
    udp_ms=$((now - started))
  fi
}

log "starting collectd (Interval 1, csv writer, <Plugin capture> Interface \"lo\")"
start_program idle.out "$tmp/flood_idle" sleep $((WARMUP + SECS + LINGER + 60))
start_collectd "$tmp"
collectd_pid=$bench_pid
wait_for_csv "$tmp" capture-self/derive-pcap_received-lo 15 "$collectd_pid" || {
  tail -n 20 "$tmp/collectd.log" >&2
  die "collectd-capture wrote no pcap counters for 'lo' within 15 s (see the log above)"
}
wait_for_csv "$tmp" capture-flood_idle/ps_rss 15 "$collectd_pid" || die "no rows of flood_idle within 15 s"

samples="$tmp/rss.tsv"
: >"$samples"
# sample PHASE: one line "ms phase kib" of collectd's RSS.
sample() {
  echo "$(now_ms) $1 $(rss_kib "$collectd_pid")" >>"$samples"
}
for ((i = 0; i < WARMUP; i++)); do
  sample before
  sleep 1
done
sample before

log "flood: $RATE new flows/s of $SIZE payload bytes to $dest for $SECS s"
start_program flood.out "$tmp/flood_gen" "$dest" "$RATE" "$SECS" "$SIZE"
flood_pid=$program_pid
wait_for "$tmp/flood.out" '^ready|^flow_flood:' 10 || die "the generator did not start"
grep -q '^ready' "$tmp/flood.out" || die "the generator failed: $(cat "$tmp/flood.out")"
flood_start=$(now_ms)
flood_end=""
stopped_early=0
senders_started=0
next=$flood_start
while :; do
  now=$(now_ms)
  if [[ -z $flood_end ]] && grep -qE '^ip_bytes |^flow_flood:' "$tmp/flood.out"; then
    flood_end=$now
    log "flood over; RSS for $COOLDOWN s more, the new senders 1 s after the flood"
  fi
  if [[ -z $flood_end ]] && ! kill -0 "$flood_pid" 2>/dev/null; then
    die "the generator exited without its summary: $(cat "$tmp/flood.out")"
  fi
  if [[ -n $flood_end && $senders_started == 0 && $now -ge $((flood_end + 1000)) ]]; then
    start_senders
    senders_started=1
  fi
  [[ $senders_started == 0 ]] || check_senders
  sample "$([[ -z $flood_end ]] && echo flood || echo after)"
  require_alive "$collectd_pid" "$tmp/collectd.log" "collectd died during the flood"
  if [[ -z $flood_end && $(rss_kib "$collectd_pid") -gt $((MAX_RSS_MIB * 1024)) ]]; then
    log "collectd's RSS is over MAX_RSS_MIB=$MAX_RSS_MIB: stopping the flood early"
    kill -TERM "$flood_pid" 2>/dev/null || true
    wait "$flood_pid" 2>/dev/null || true
    flood_end=$(now_ms)
    stopped_early=1
  fi
  [[ -n $flood_end && $now -ge $((flood_end + COOLDOWN * 1000)) ]] && break
  next=$((next + 1000))
  now=$(now_ms)
  if [[ $next -gt $now ]]; then
    sleep "$(printf '%d.%03d' $(((next - now) / 1000)) $(((next - now) % 1000)))"
  else
    next=$now
  fi
done
rss_after=$(rss_kib "$collectd_pid")
after_ms=$(now_ms)

tcp_at_cooldown=$(credited flood_tcp_up)
udp_at_cooldown=$(credited flood_udp_tx)
log "waiting up to $WAIT s (from the senders' start) for each sender to be credited 99%"
senders_start=$(cat "$tmp/senders.start")
while :; do
  check_senders
  [[ $tcp_ms != - && $udp_ms != - ]] && break
  [[ $(now_ms) -lt $((senders_start + WAIT * 1000)) ]] || break
  sleep 0.5
done
sleep 1.5 # one more interval for the last rows
grep -q '^sent' "$tmp/tcp_up.out" || log "warning: the TCP upload did not finish: $(cat "$tmp/tcp_up.out")"
grep -q '^sent' "$tmp/udp_tx.out" || log "warning: the UDP sender did not finish: $(cat "$tmp/udp_tx.out")"
printf '%s\n' "$flood_start" "$flood_end" "$after_ms" "$rss_after" "$senders_start" "$tcp_ms" "$udp_ms" \
  "$tcp_at_cooldown" "$udp_at_cooldown" "$stopped_early" >"$tmp/times"
kill -TERM "$collectd_pid"
wait "$collectd_pid" 2>/dev/null || true

errors=$(log_warning_count "$tmp/collectd.log")
"$python" - "$tmp" "$RATE" "$SECS" "$COOLDOWN" "$UPLOAD" "$udp_bytes" "$WAIT" "$other_captures" "$errors" <<'EOF'
import glob, os, sys

tmp = sys.argv[1]
rate, secs, cooldown, upload, udp_bytes, wait, other_captures, log_errors = (int(x) for x in sys.argv[2:])
csv = os.path.join(tmp, "csv", "bench")
MIB = 1024.0  # KiB

(flood_start, flood_end, after_ms, rss_after, senders_start, tcp_ms, udp_ms, tcp_cool, udp_cool,
 stopped_early) = open(os.path.join(tmp, "times")).read().split()
t0, t1, t_after = int(flood_start) / 1e3, int(flood_end) / 1e3, int(after_ms) / 1e3
rss_after = int(rss_after)

def kv(path):
    """`key value...` lines of a program's output."""
    out = {}
    for line in open(path, errors="replace"):
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = parts[1:]
    return out

def series(instance, typ):
    """(epoch, [values]) rows of collectd's CSV files for capture-<instance>/<typ>, in time order."""
    rows = []
    pattern = "%s/capture-%s/%s-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]" % (csv, instance, typ)
    for path in glob.glob(pattern):
        for line in open(path):
            parts = line.strip().split(",")
            try:
                rows.append((float(parts[0]), [float(x) for x in parts[1:]]))
            except ValueError:
                pass  # the header
    return sorted(rows)

def at(rows, t, column=0):
    """The value of the last row at or before t (0 when none)."""
    before = [v[column] for e, v in rows if e <= t]
    return before[-1] if before else 0.0

def over(instance, typ, a, b, column=0):
    """Increase of a counter between the last rows at or before a and b; None without rows."""
    rows = series(instance, typ)
    return None if not rows else at(rows, b, column) - at(rows, a, column)

def peak(instance, typ, a, b, column=0):
    values = [v[column] for e, v in series(instance, typ) if a <= e <= b]
    return max(values) if values else None

def gaps(instance, typ, a, b):
    """(rows in [a, b], longest gap in s between a, the rows and b, intervals without a row)."""
    epochs = [e for e, _ in series(instance, typ) if a <= e <= b]
    edges = [a] + epochs + [b]
    spans = [y - x for x, y in zip(edges, edges[1:])]
    missing = sum(max(0, round(s) - 1) for s in spans)
    return len(epochs), max(spans), missing

samples = []
for line in open(os.path.join(tmp, "rss.tsv")):
    ms, phase, kib = line.split()
    samples.append((int(ms) / 1e3, phase, int(kib)))
before = [k for _, p, k in samples if p == "before"]
base = before[-1]
during = [k for _, p, k in samples if p == "flood"]
after = [k for _, p, k in samples if p == "after"]
rss_peak = max(during + after + [rss_after])
excess = max(k - base for k in during + after + [rss_after])
seconds_over = sum(1 for k in during + after if k - base > 48 * MIB)
after_excess = rss_after - base

gen = kv(os.path.join(tmp, "flood.out"))
sent = int(gen["sent"][0]) if "sent" in gen else None
achieved = float(gen["rate"][0]) if "rate" in gen else None

sampler = gaps("self", "duration-sampler", t0, t1)
idle = gaps("flood_idle", "ps_rss", t0, t1)
end = t_after + 60
pcap_received = over("self", "derive-pcap_received-lo", t0 - 2, end)
pcap_dropped = over("self", "derive-pcap_dropped-lo", t0 - 2, end)
pcap_if_dropped = over("self", "derive-pcap_if_dropped-lo", t0 - 2, end)
captured = over("self", "derive-packets_captured-lo", t0 - 2, end)
lookups = over("self", "derive-flow_lookups", t0 - 2, end)
unresolved = over("self", "derive-flow_unresolved", t0 - 2, end)
flows_peak = peak("self", "count-flows", t0, end)
pending_peak = peak("self", "bytes-pending", t0, end)
unattributed = over("unattributed", "if_packets", t0 - 2, end, 0)
flows_shed = over("self", "derive-flows_shed", t0 - 2, end)
shed_packets = [over("self", "if_packets-shed", t0 - 2, end, c) for c in (0, 1)]
shed_written = bool(series("self", "derive-flows_shed") or series("self", "if_packets-shed"))

def credited(instance, column):
    rows = series(instance, "if_octets")
    return rows[-1][1][column] if rows else 0.0
tcp_tx, tcp_rx = credited("flood_tcp_up", 1), credited("flood_tcp_srv", 0)
udp_tx, udp_rx = credited("flood_udp_tx", 1), credited("flood_udp_rx", 0)
pct = lambda a, b: 100.0 * a / b if b else None
tcp_pct, udp_pct = pct(tcp_tx, upload), pct(udp_tx, udp_bytes)

def fmt(x, spec="{:,.0f}"):
    return "-" if x is None else spec.format(x)

def mib(kib):
    return "%.1f MiB" % (kib / MIB)

print()
print("flood of ownerless flows: %s new flows/s for %d s on lo (collectd: Interface \"lo\", Interval 1)"
      % (format(rate, ","), secs))
if int(other_captures):
    print("WARNING: %s other packet socket(s) were open on the host (another capture)" % other_captures)
if stopped_early == "1":
    print("WARNING: the flood was stopped early: collectd's RSS passed MAX_RSS_MIB")
print()
print("generator: %s datagrams sent in %s s, %s/s achieved (%s given up after stalls, %s refused)"
      % (fmt(sent), gen.get("seconds", ["-"])[0], fmt(achieved), gen.get("behind", ["-"])[0],
         gen.get("errors", ["-"])[0]))
print()
print("collectd VmRSS (/proc/PID/status, every second)")
print("  before the flood            %s (last of %d samples over %d s: %s .. %s)"
      % (mib(base), len(before), len(before) - 1, mib(min(before)), mib(max(before))))
print("  peak, flood and after       %s" % mib(rss_peak))
print("  largest excess over before  %+.1f MiB   (target: <= 48 MiB at every second)" % (excess / MIB))
print("  seconds over +48 MiB        %d of %d samples" % (seconds_over, len(during) + len(after)))
print("  %2d s after the flood        %s, %+.1f MiB   (target: <= 24 MiB)"
      % (cooldown, mib(rss_after), after_excess / MIB))
print("  during the flood, every 5th sample (s from its start: MiB over before):")
line = [("%3.0f: %+.0f" % (t - t0, (k - base) / MIB)) for t, p, k in samples if p != "before"][::5]
for i in range(0, len(line), 8):
    print("    " + "   ".join(line[i:i + 8]))
print()
print("process metrics during the flood (%.0f s): rows / longest gap / intervals without a row" % (t1 - t0))
print("  capture-self/duration-sampler  %d / %.1f s / %d" % sampler)
print("  capture-flood_idle/ps_rss      %d / %.1f s / %d" % idle)
print()
print("capture counters from the flood's start to the end")
print("  pcap_received-lo (both copies) %s" % fmt(pcap_received))
print("  pcap_dropped-lo                %s" % fmt(pcap_dropped))
print("  pcap_if_dropped-lo             %s" % fmt(pcap_if_dropped))
print("  packets_captured-lo            %s" % fmt(captured))
print("  flow_lookups / unresolved      %s / %s" % (fmt(lookups), fmt(unresolved)))
print("  count-flows, peak              %s" % fmt(flows_peak))
print("  bytes-pending, peak            %s" % fmt(pending_peak))
print("  unattributed packets rx        %s" % fmt(unattributed))
if shed_written:
    print("  flows_shed                     %s" % fmt(flows_shed))
    print("  if_packets-shed rx / tx        %s / %s" % (fmt(shed_packets[0]), fmt(shed_packets[1])))
else:
    print("  shed counters                  not written by this plugin (flows_shed, if_*-shed)")
print()
print("new senders 1 s after the flood (credited to their own instance / what they sent)")
print("  TCP upload  flood_tcp_up tx  %s of %s B payload: %s%% (%s%% %d s after the flood);"
      " 99%% after %s ms; server rx %s%%"
      % (fmt(tcp_tx), fmt(upload), fmt(tcp_pct, "{:.2f}"), fmt(pct(int(tcp_cool), upload), "{:.2f}"),
         cooldown, tcp_ms, fmt(pct(tcp_rx, upload), "{:.2f}")))
print("  UDP sender  flood_udp_tx tx  %s of %s B: %s%% (%s%% %d s after the flood); 99%% after %s ms;"
      " receiver rx %s%%"
      % (fmt(udp_tx), fmt(udp_bytes), fmt(udp_pct, "{:.2f}"), fmt(pct(int(udp_cool), udp_bytes), "{:.2f}"),
         cooldown, udp_ms, fmt(pct(udp_rx, udp_bytes), "{:.2f}")))
print("  (waited at most %d s from the senders' start; '-': never reached 99%%)" % wait)
if int(log_errors):
    print("\ncollectd logged %s warning/error line(s): see collectd.log (KEEP=1)" % log_errors)

met = dict(
    rss=excess <= 48 * MIB, rss_after=after_excess <= 24 * MIB,
    metrics=sampler[2] == 0 and idle[2] == 0, pcap_dropped_written=pcap_dropped is not None,
    tcp=tcp_ms != "-", udp=udp_ms != "-")
print()
print("issue 14 targets: " + ", ".join("%s %s" % (k, "yes" if v else "NO") for k, v in met.items()))

def text(v, spec="%.4g"):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.0f" % v if abs(v) >= 1000 else spec % v
    return str(v)
result = dict(rate=rate, secs=secs, sent=sent, rate_achieved=achieved, stopped_early=stopped_early,
              rss_before_mib=base / MIB, rss_peak_mib=rss_peak / MIB, rss_excess_mib=excess / MIB,
              rss_after_mib=rss_after / MIB, rss_after_excess_mib=after_excess / MIB,
              seconds_over_48=seconds_over, sampler_max_gap_s=sampler[1], sampler_missing=sampler[2],
              process_max_gap_s=idle[1], process_missing=idle[2], pcap_received=pcap_received,
              pcap_dropped=pcap_dropped, captured=captured, flow_lookups=lookups, flows_peak=flows_peak,
              flows_shed=flows_shed, tcp_pct=tcp_pct, udp_pct=udp_pct, tcp_99_ms=tcp_ms, udp_99_ms=udp_ms,
              other_captures=other_captures)
print("RESULT flow_flood " + " ".join("%s=%s" % (k, text(v)) for k, v in result.items()))
EOF
show_log_warnings "$tmp/collectd.log"

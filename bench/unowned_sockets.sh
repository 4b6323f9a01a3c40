#!/usr/bin/env bash
# Benchmark (not a test): what flows to a socket that no process holds cost the resolver, with
# /proc as the owner source. A kernel socket (here a vxlan device's UDP port 4789) has an inode
# that sock_diag reports but no fd table holds: every new flow to it is looked for in the inode
# index until the resolver gives up (2 s). Since the index reads again, once a socket has been
# missing for 200 ms, every process last read before it was first looked for (a slot closed and
# reused keeps the fd count: new clients were lost that way), such flows are the costliest case
# of that rule; this measures it against a build without it (BASELINE_SO).
#
# In a private network namespace: a vxlan device (UDP 4789, `local 127.0.0.1`), N sleeping
# processes and one process holding SOCKETS TCP sockets (so that reading fd tables again costs
# what it costs on a busy host), and examples/flow_flood.rs writing RATE datagrams a second for
# SECS seconds to 127.0.0.1:4789, each from a new random 127.a.b.c source and port: a new flow
# each, whose local end is the kernel's socket. collectd (Interval 1, csv) with
# `OwnerSource "proc"` captures lo. ROUNDS rounds, each running the current build and the
# baseline in turn (the machine is shared and noisy: the rounds interleave, the medians are
# compared). Reported per build: the CPU of the capture-resolve thread during the flood (ms a
# second, and µs per new flow), fd links read (derive-index_fd_reads) and index passes
# (derive-index_passes) during the flood, flows given up (derive-flow_unresolved).
#
#   sudo BASELINE_SO=/path/to/old/libcapture.so bench/unowned_sockets.sh
#   sudo BASELINE_SO=... RATE=200 SECS=10 ROUNDS=2 bench/unowned_sockets.sh
#
# Environment: BASELINE_SO (required: the build to compare with), RATE=1000, SECS=20,
# ROUNDS=3, N=1000 sleepers, SOCKETS=10000, KEEP=0 (1 keeps the temporary directory).
# Only loopback traffic inside the benchmark's own namespace, bounded by RATE x SECS datagrams.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RATE="${RATE:-1000}"
SECS="${SECS:-20}"
ROUNDS="${ROUNDS:-3}"
N="${N:-1000}"
SOCKETS="${SOCKETS:-10000}"
KEEP="${KEEP:-0}"
require_whole_numbers RATE SECS ROUNDS N SOCKETS
[[ $EUID -eq 0 ]] || die "run as root: the namespace, the raw socket and the capture need it"
[[ -n ${BASELINE_SO:-} && -f $BASELINE_SO ]] || die "BASELINE_SO must name the libcapture.so to compare with"

bench_prepare
flood="$(build_example flow_flood "the flow generator")"
load="$(build_example socket_load "the socket holder")"
bench_start capture-unowned
bench_netns "capunowned$$"
"${in_ns[@]}" ip link add cuvx type vxlan id 42 dstport 4789 local 127.0.0.1 dev lo ||
  die "cannot create a vxlan device (is the vxlan module available?)"
"${in_ns[@]}" ip link set cuvx up
install -m 0755 "$flood" "$tmp/uo_flood"
install -m 0755 "$load" "$tmp/uo_hold"
make_plugin_dir "$tmp/plugins" "$so" csv logfile
make_plugin_dir "$tmp/plugins-baseline" "$BASELINE_SO" csv logfile
spawn_sleepers "$N" 36000
[[ $SOCKETS -eq 0 ]] || hold_sockets "$tmp/uo_hold" "$SOCKETS"

# conf BUILD DIR: a collectd directory DIR running BUILD (current or baseline).
conf() {
  collectd_conf "$2" csv 'LoadPlugin capture
<Plugin capture>
  Interface "lo"
  OwnerSource "proc"
</Plugin>'
  if [[ $1 == baseline ]]; then
    sed -i "s|$tmp/plugins\"|$tmp/plugins-baseline\"|" "$2/collectd.conf"
  fi
}

# counter DIR NAME: the last value of capture-self/NAME.
counter() {
  csv_last "$1" "capture-self/$2" | cut -d, -f1
}

# flood BUILD ROUND: one flood while collectd of BUILD runs; appends "BUILD cpu_ns fd_reads
# passes unresolved flows" to $tmp/runs.
flood() {
  local build=$1 round=$2 dir="$tmp/$1.$2" pid tid cpu0 cpu1 reads0 passes0 lost0 lookups0
  conf "$build" "$dir"
  start_collectd "$dir"
  pid=$bench_pid
  wait_for_csv "$dir" capture-self/derive-index_fd_reads 60 "$pid" ||
    die "collectd ($build) wrote no index counters: $(tail -5 "$dir/collectd.log")"
  sleep 3
  tid=$(thread_tid "$pid" capture-resolve) || die "no capture-resolve thread"
  reads0=$(counter "$dir" derive-index_fd_reads)
  passes0=$(counter "$dir" derive-index_passes)
  lost0=$(counter "$dir" derive-flow_unresolved)
  lookups0=$(counter "$dir" derive-flow_lookups)
  read -r cpu0 _ <"/proc/$pid/task/$tid/schedstat"
  "${in_ns[@]}" "$tmp/uo_flood" 127.0.0.1:4789 "$RATE" "$SECS" >"$dir/flood.out" 2>&1 ||
    die "the flood failed: $(cat "$dir/flood.out")"
  # The last flows are given up 2 s after they came; two more intervals for the rows.
  sleep 4
  read -r cpu1 _ <"/proc/$pid/task/$tid/schedstat"
  echo "$build $((cpu1 - cpu0)) $(($(counter "$dir" derive-index_fd_reads) - reads0)) \
$(($(counter "$dir" derive-index_passes) - passes0)) $(($(counter "$dir" derive-flow_unresolved) - lost0)) \
$(($(counter "$dir" derive-flow_lookups) - lookups0))" >>"$tmp/runs"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
}

for round in $(seq "$ROUNDS"); do
  log "round $round of $ROUNDS: $RATE new flows/s to a kernel socket for $SECS s, current build then baseline"
  flood current "$round"
  flood baseline "$round"
done

"$python" - "$tmp/runs" "$ROUNDS" "$RATE" "$SECS" <<'EOF'
import statistics, sys
path, rounds, rate, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
runs = {}
for line in open(path):
    build, *values = line.split()
    runs.setdefault(build, []).append([int(v) for v in values])
span = secs + 4
print(f"\n{rate} new flows/s to a kernel socket for {secs} s; medians of {rounds} rounds (all rounds)")
med = {}
for build in ("current", "baseline"):
    rows = runs.get(build, [])
    cpu = [r[0] / 1e6 / span for r in rows]
    per_flow = [r[0] / 1e3 / max(r[4], 1) for r in rows]
    med[build] = statistics.median(cpu)
    print(f"  {build:8} resolver {med[build]:6.1f} ms/s ({', '.join(f'{c:.1f}' for c in cpu)}), "
          f"{statistics.median(per_flow):5.1f} µs a lookup; fd links read {statistics.median(r[1] for r in rows):.0f}, "
          f"passes {statistics.median(r[2] for r in rows):.0f}, given up {statistics.median(r[3] for r in rows):.0f} "
          f"of {statistics.median(r[4] for r in rows):.0f} lookups")
ratio = med["current"] / med["baseline"] if med["baseline"] else float("nan")
print(f"  resolver CPU, current against baseline: {ratio:.2f}x")
print(f"\nRESULT unowned_sockets rate={rate} resolver_ms_per_s_current={med['current']:.1f} "
      f"resolver_ms_per_s_baseline={med['baseline']:.1f} ratio={ratio:.2f}")
EOF

#!/usr/bin/env bash
# Benchmark (not a test): what each network namespace costs the plugin when idle.
#
# Runs collectd with `LoadPlugin capture` (default config, capture on `any`) for DURATION
# seconds, then creates N network namespaces the way container runtimes do — a veth pair each,
# an address inside (10.203.0.0/16 only), one sleeping process inside — and runs it again for
# as long. It prints the CPU time per second of the plugin's network threads (capture and
# resolver: the topology read every second, no traffic) and of its sampler (one more process
# per namespace to sample) in both runs, from /proc/PID/task/*/schedstat, and the difference
# per namespace.
#
#   sudo bench/namespaces_cost.sh          # N=50, 20 s per run
#   sudo N=200 DURATION=30 bench/namespaces_cost.sh
#
# A measurement, not a test: it never fails on the numbers. Its last line,
# `RESULT namespaces_cost n=... net_us_s_per_ns=... sampler_us_s_per_ns=...`, gives the figures
# to bench/run_all.sh. The config, the daemon, the namespaces and their cleanup, and the
# schedstat reading are bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N="${1:-${N:-50}}"
DURATION="${DURATION:-20}"
[[ $N =~ ^[0-9]+$ && $N -ge 1 && $N -le 250 ]] || die "N must be 1 to 250"
[[ $EUID -eq 0 ]] || die "run as root: namespaces and capture need it"
ensure_apt_packages "${CAPTURE_APT_PACKAGES[@]}"
require_collectd
so="$(build_plugin)"
bench_start capture-nsbench
tag="nsb$$"
make_plugin_dir "$tmp/plugins" "$so" logfile
collectd_conf "$tmp" none "LoadPlugin capture"

# run_collectd: runs collectd for DURATION s (after 3 s of start) and sets net and sampler to the
# µs of CPU per second of the plugin's network threads (capture and resolver) and of its sampler
# (which also walks each namespace's sleeping process).
run_collectd() {
  local a b
  start_collectd "$tmp"
  sleep 3
  read -r -a a < <(thread_cpu "$bench_pid" 'capture*' capture-sampler)
  sleep "$DURATION"
  read -r -a b < <(thread_cpu "$bench_pid" 'capture*' capture-sampler)
  stop_processes "$bench_pid"
  wait "$bench_pid" 2>/dev/null || true
  net=$(((b[0] - a[0]) / 1000 / DURATION))
  sampler=$(((b[2] - a[2]) / 1000 / DURATION))
}

log "run 1: no extra namespaces, $DURATION s"
run_collectd
net_before=$net sampler_before=$sampler
log "creating $N namespaces with a veth and a process each"
for ((i = 1; i <= N; i++)); do
  ns="$tag-$i" host="v$tag-$i"
  netns_add "$ns"
  bench_at_exit "ip link del $host 2>/dev/null"
  ip link add "$host" type veth peer name eth0 netns "$ns"
  ip -n "$ns" addr add "10.203.$i.2/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip link set "$host" up
  ip netns exec "$ns" sleep 3600 &
  BENCH_SLEEPERS+=($!)
done
log "run 2: $N namespaces, $DURATION s"
run_collectd
net_after=$net sampler_after=$sampler
printf '\nplugin threads, CPU µs per second of wall time:\n'
printf '  %-24s %10s %10s\n' "" "network" "sampler"
printf '  %-24s %10s %10s\n' "no extra namespaces" "$net_before" "$sampler_before"
printf '  %-24s %10s %10s\n' "$N namespaces" "$net_after" "$sampler_after"
printf '  %-24s %10s %10s\n' "per namespace" "$(((net_after - net_before) / N))" \
  "$(((sampler_after - sampler_before) / N))"
bench_result namespaces_cost "n=$N" "duration=$DURATION" "net_us_s=$net_before" "sampler_us_s=$sampler_before" \
  "net_us_s_per_ns=$(((net_after - net_before) / N))" "sampler_us_s_per_ns=$(((sampler_after - sampler_before) / N))"

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
# A measurement, not a test: it never fails on the numbers.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$here/../scripts/lib.sh"

N="${1:-${N:-50}}"
DURATION="${DURATION:-20}"
[[ $N =~ ^[0-9]+$ && $N -ge 1 && $N -le 250 ]] || die "N must be 1 to 250"
[[ $EUID -eq 0 ]] || die "run as root: namespaces and capture need it"
ensure_apt_packages "${CAPTURE_APT_PACKAGES[@]}"
command -v collectd >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
so="$(build_plugin)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/capture-nsbench.XXXXXX")"
tag="nsb$$"
cleanup() {
  local i
  kill "$(cat "$tmp/collectd.pid" 2>/dev/null)" 2>/dev/null || true
  for ((i = 1; i <= N; i++)); do
    ip netns pids "$tag-$i" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$tag-$i" 2>/dev/null || true
    ip link del "v$tag-$i" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
make_plugin_dir "$tmp/plugins" "$so" logfile
cat >"$tmp/collectd.conf" <<CONF
Hostname "bench"
FQDNLookup false
BaseDir "$tmp"
PIDFile "$tmp/collectd.pid"
PluginDir "$tmp/plugins"
TypesDB "$(collectd_types_db)"
Interval 1
AutoLoadPlugin false
LoadPlugin logfile
<Plugin logfile>
  File "$tmp/collectd.log"
</Plugin>
LoadPlugin capture
CONF

# run_collectd: µs of CPU per second over DURATION of the plugin's network threads (capture
# and resolver) and of its sampler (which also walks each namespace's sleeping process).
run_collectd() {
  collectd -f -C "$tmp/collectd.conf" >>"$tmp/collectd.log" 2>&1 &
  local pid=$! a b
  sleep 3
  threads() {
    local net=0 sampler=0 t comm ns
    for t in /proc/"$pid"/task/*; do
      comm=$(cat "$t/comm" 2>/dev/null) || continue
      ns=$(cut -d' ' -f1 "$t/schedstat" 2>/dev/null) || continue
      case $comm in
        capture-sampler) sampler=$((sampler + ns)) ;;
        capture*) net=$((net + ns)) ;;
      esac
    done
    echo "$net $sampler"
  }
  read -r -a a < <(threads)
  sleep "$DURATION"
  read -r -a b < <(threads)
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$(((b[0] - a[0]) / 1000 / DURATION)) $(((b[1] - a[1]) / 1000 / DURATION))"
}

log "run 1: no extra namespaces, $DURATION s"
read -r net_before sampler_before < <(run_collectd)
log "creating $N namespaces with a veth and a process each"
for ((i = 1; i <= N; i++)); do
  ns="$tag-$i" host="v$tag-$i"
  ip netns add "$ns"
  ip link add "$host" type veth peer name eth0 netns "$ns"
  ip -n "$ns" addr add "10.203.$i.2/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip link set "$host" up
  ip netns exec "$ns" sleep 3600 &
done
log "run 2: $N namespaces, $DURATION s"
read -r net_after sampler_after < <(run_collectd)
printf '\nplugin threads, CPU µs per second of wall time:\n'
printf '  %-24s %10s %10s\n' "" "network" "sampler"
printf '  %-24s %10s %10s\n' "no extra namespaces" "$net_before" "$sampler_before"
printf '  %-24s %10s %10s\n' "$N namespaces" "$net_after" "$sampler_after"
printf '  %-24s %10s %10s\n' "per namespace" "$(((net_after - net_before) / N))" \
  "$(((sampler_after - sampler_before) / N))"

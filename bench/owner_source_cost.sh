#!/usr/bin/env bash
# Benchmark (not a test): what the eBPF owner source costs the processes it watches (issue 15:
# "the slowdown of a 200,000 datagrams/s UDP sender (<= 5%)" and "the programs' own run time per
# event (BPF_ENABLE_STATS)").
#
# A UDP sender (examples/udp_flood.rs, sendmmsg in batches of 64: the programs run once per
# datagram) sends RATE datagrams a second of SIZE bytes to a receiver on loopback for SECS
# seconds, and reports the CPU time it used. It runs ROUNDS times in each of three settings, in
# turn (the machine is shared and noisy: the rounds interleave, the medians are compared):
#   none   no collectd;
#   proc   collectd with `OwnerSource "proc"`;
#   ebpf   collectd with `OwnerSource "ebpf"`: the programs run on every send and receive.
# Both collectds capture only `udp port 9` on lo (nothing here), so the capture's own cost does
# not compete with the sender: what differs between proc and ebpf is the programs alone.
# Then one more ebpf run with the kernel's BPF statistics on (sysctl kernel.bpf_stats_enabled,
# restored after; they time every run, so they stay off while the slowdown is measured): run
# count and run time of each program, read with bpftool.
#
#   sudo bench/owner_source_cost.sh
#   sudo RATE=100000 SECS=3 ROUNDS=3 bench/owner_source_cost.sh
#
# Environment: RATE=200000, SIZE=100, SECS=5, ROUNDS=5, KEEP=0 (1 keeps the temporary directory).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RATE="${RATE:-200000}"
SIZE="${SIZE:-100}"
SECS="${SECS:-5}"
ROUNDS="${ROUNDS:-5}"
KEEP="${KEEP:-0}"
require_whole_numbers RATE SIZE SECS ROUNDS
[[ $EUID -eq 0 ]] || die "run as root: loading eBPF programs needs CAP_BPF and CAP_PERFMON"

bench_prepare bpftool
flood="$(build_example udp_flood "the traffic generator")"
bench_start capture-owner-cost
install -m 0755 "$flood" "$tmp/oc_send"
install -m 0755 "$flood" "$tmp/oc_recv"
make_plugin_dir "$tmp/plugins" "$so" logfile

# conf SOURCE: a collectd directory for OwnerSource SOURCE that captures nothing here.
conf() {
  collectd_conf "$tmp/$1" none "LoadPlugin capture
<Plugin capture>
  Interface \"lo\"
  BPFFilter \"udp port 9\"
  OwnerSource \"$1\"
</Plugin>"
}
conf proc
conf ebpf

stats_before=$(cat /proc/sys/kernel/bpf_stats_enabled)
bench_at_exit "echo $stats_before >/proc/sys/kernel/bpf_stats_enabled"

# send PHASE ROUND: one run of the sender; appends "PHASE cpu_ms sent" to $tmp/runs.
send() {
  local phase=$1 round=$2 port out="$tmp/$1.$2" receiver
  "$tmp/oc_recv" recv 127.0.0.1:0 $((SECS + 30)) >"$out.recv" 2>&1 &
  receiver=$!
  bench_track "$receiver"
  wait_for "$out.recv" '^port ' 10 || die "the receiver did not start: $(cat "$out.recv")"
  port=$(sed -n 's/^port //p' "$out.recv")
  "$tmp/oc_send" send "127.0.0.1:$port" "$RATE" "$SIZE" "$SECS" >"$out.send" 2>&1 ||
    die "the sender failed: $(cat "$out.send")"
  wait "$receiver" || true
  echo "$phase $(sed -n 's/^cpu_ms //p' "$out.send") $(sed -n 's/^sent //p' "$out.send" | cut -d' ' -f1)" >>"$tmp/runs"
}

# with_collectd SOURCE ROUND [stats]: send while a collectd with OwnerSource SOURCE runs; with
# `stats`, the programs' statistics are taken around it.
with_collectd() {
  local source=$1 round=$2 stats=${3-}
  start_collectd "$tmp/$source"
  local pid=$bench_pid
  wait_for "$tmp/$source/collectd.log" 'owner source' 15 || die "collectd ($source) did not start: $(tail -5 "$tmp/$source/collectd.log")"
  if [[ $source == ebpf ]]; then
    grep -q 'owner source: eBPF' "$tmp/$source/collectd.log" || die "the programs did not load: $(grep capture "$tmp/$source/collectd.log")"
  fi
  if [[ $stats == stats ]]; then
    echo 1 >/proc/sys/kernel/bpf_stats_enabled
    bpftool -j prog show >"$tmp/stats.before.$round"
  fi
  send "$source" "$round"
  if [[ $stats == stats ]]; then
    bpftool -j prog show >"$tmp/stats.after.$round"
    echo "$stats_before" >/proc/sys/kernel/bpf_stats_enabled
  fi
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
}

for round in $(seq "$ROUNDS"); do
  log "round $round of $ROUNDS: $RATE datagrams/s of $SIZE bytes for $SECS s, without collectd, with OwnerSource proc, with OwnerSource ebpf"
  send none "$round"
  with_collectd proc "$round"
  with_collectd ebpf "$round"
done
log "one more run with the programs' statistics on"
with_collectd ebpf stats stats

"$python" - "$tmp" "$ROUNDS" "$RATE" <<'EOF'
import json, statistics, sys
tmp, rounds, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per = {}
for line in open(f"{tmp}/runs"):
    phase, cpu_ms, sent = line.split()
    per.setdefault(phase, []).append(float(cpu_ms) * 1e6 / int(sent))
print(f"\nsender CPU per datagram ({rate}/s), median of {rounds} rounds (all rounds):")
med = {}
for phase in ("none", "proc", "ebpf"):
    values = per.get(phase, [])[:rounds]
    med[phase] = statistics.median(values)
    print(f"  {phase:5} {med[phase]:8.0f} ns   ({', '.join(f'{v:.0f}' for v in values)})")
slowdown = 100.0 * (med["ebpf"] / med["proc"] - 1.0)
print(f"  slowdown with the programs (ebpf against proc): {slowdown:+.1f}%")

def progs(path):
    out = {}
    for p in json.load(open(path)):
        if p.get("name") in ("on_send", "on_receive", "on_tcp_state"):
            out[p["name"]] = (p.get("run_cnt", 0), p.get("run_time_ns", 0))
    return out
runs = {}
before, after = progs(f"{tmp}/stats.before.stats"), progs(f"{tmp}/stats.after.stats")
for name, (cnt, ns) in after.items():
    c0, n0 = before.get(name, (0, 0))
    runs[name] = [cnt - c0, ns - n0]
print("\nthe programs' own run time (kernel.bpf_stats_enabled, one more ebpf run):")
for name, (cnt, ns) in sorted(runs.items()):
    print(f"  {name:13} {cnt:10} runs  {ns / cnt if cnt else 0:6.0f} ns a run")
send = runs.get("on_send", [0, 0])
print(f"\nRESULT owner_source_cost rate={rate} sender_ns_none={med['none']:.0f} "
      f"sender_ns_proc={med['proc']:.0f} sender_ns_ebpf={med['ebpf']:.0f} slowdown_pct={slowdown:.1f} "
      f"on_send_ns={send[1] / send[0] if send[0] else 0:.0f}")
EOF

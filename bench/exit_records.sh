#!/usr/bin/env bash
# Benchmark (not a test): what exit records cost (issue 16: "at 1,000 exits/s the plugin's added
# CPU stays under 2% of a core").
#
# Two collectds run side by side through the same load, one with `ExitRecords true`, one with
# `ExitRecords false` (both `GroupBy "{comm}"`, no network, the csv writer): a parent starts RATE
# short children a second for SECS seconds (examples/capture_workload.rs `children`, each child
# exec'd and gone within a millisecond, nearly none seen by a sample). Each collectd's CPU time
# over the load (all its threads, /proc/PID/task/*/schedstat) is compared: the difference is
# what the exit program's records, the exit thread and the settling cost. Then the program's
# own run time per exit, with the kernel's BPF statistics on for the run (sysctl
# kernel.bpf_stats_enabled, restored after), read with bpftool; and how many processes the
# records placed and lost.
#
#   sudo bench/exit_records.sh
#   sudo RATE=500 SECS=10 bench/exit_records.sh
#
# Environment: RATE=1000, SECS=20, KEEP=0 (1 keeps the temporary directory).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RATE="${RATE:-1000}"
SECS="${SECS:-20}"
KEEP="${KEEP:-0}"
require_whole_numbers RATE SECS
[[ $EUID -eq 0 ]] || die "run as root: loading eBPF programs needs CAP_BPF and CAP_PERFMON"

bench_prepare bpftool
workload="$(build_example capture_workload "the workload")"
bench_start capture-exit-records
install -m 0755 "$workload" "$tmp/er_parent"
install -m 0755 "$workload" "$tmp/er_child"
make_plugin_dir "$tmp/plugins" "$so" logfile csv

for records in true false; do
  collectd_conf "$tmp/$records" csv "LoadPlugin capture
<Plugin capture>
  GroupBy \"{comm}\"
  MaxInstances 100000
  CollectNetwork false
  ExitRecords $records
</Plugin>"
done

stats_before=$(cat /proc/sys/kernel/bpf_stats_enabled)
bench_at_exit "echo $stats_before >/proc/sys/kernel/bpf_stats_enabled"

declare -A daemon
for records in true false; do
  start_collectd "$tmp/$records"
  daemon[$records]=$bench_pid
done
for records in true false; do
  wait_for_csv "$tmp/$records" capture-self/count-processes 20 "${daemon[$records]}" ||
    die "collectd (ExitRecords $records) did not start: $(tail -5 "$tmp/$records/collectd.log")"
done
grep -q 'exit records: eBPF' "$tmp/true/collectd.log" ||
  die "the exit program did not load: $(grep capture "$tmp/true/collectd.log")"
sleep 2

cpu_ns() { thread_cpu "$1" '*' | cut -d' ' -f1; }
echo 1 >/proc/sys/kernel/bpf_stats_enabled
bpftool -j prog show >"$tmp/stats.before"
on_before=$(cpu_ns "${daemon[true]}")
off_before=$(cpu_ns "${daemon[false]}")
exits_before=$(thread_cpu "${daemon[true]}" capture-exits | cut -d' ' -f1)
log "$RATE children a second for $SECS s, two collectds watching (ExitRecords true and false)"
started=$(date +%s.%N)
"$tmp/er_parent" children "$RATE" "$SECS" "$tmp/er_child" 0 0 >"$tmp/load.out" ||
  die "the load failed: $(cat "$tmp/load.out")"
ended=$(date +%s.%N)
# The last exits settle within an interval.
sleep 2
on_after=$(cpu_ns "${daemon[true]}")
off_after=$(cpu_ns "${daemon[false]}")
exits_after=$(thread_cpu "${daemon[true]}" capture-exits | cut -d' ' -f1)
bpftool -j prog show >"$tmp/stats.after"
echo "$stats_before" >/proc/sys/kernel/bpf_stats_enabled

"$python" - "$tmp" "$started" "$ended" "$on_before" "$on_after" "$off_before" "$off_after" \
  "$exits_before" "$exits_after" "$(sed -n 's/^children //p' "$tmp/load.out")" \
  "$(csv_last "$tmp/true" capture-self/derive-exited_placed)" \
  "$(csv_last "$tmp/true" capture-self/derive-exited_settled)" \
  "$(csv_last "$tmp/true" capture-self/derive-exit_records_lost)" <<'EOF'
import json, sys
(tmp, started, ended, on0, on1, off0, off1, ex0, ex1, summary, placed, settled, lost) = sys.argv[1:]
wall = float(ended) - float(started) + 2.0  # the settling pause is measured too
children = int(summary.split()[0])
on = (int(on1) - int(on0)) / 1e9
off = (int(off1) - int(off0)) / 1e9
exits = (int(ex1) - int(ex0)) / 1e9
rate = children / (float(ended) - float(started))
print(f"\n{children} children in {float(ended) - float(started):.1f} s ({rate:.0f} exits/s), "
      f"over {wall:.1f} s:")
print(f"  collectd, ExitRecords true   {on * 1e3:8.0f} ms CPU ({on * 100 / wall:5.2f}% of a core)")
print(f"  collectd, ExitRecords false  {off * 1e3:8.0f} ms CPU ({off * 100 / wall:5.2f}% of a core)")
added = (on - off) * 100 / wall
print(f"  added by exit records        {(on - off) * 1e3:8.0f} ms CPU ({added:5.2f}% of a core); "
      f"the exit thread alone {exits * 1e3:.0f} ms")
ratio = on / off if off > 0 else float("nan")
print(f"  ratio true/false: {ratio:.2f}")
def prog(path):
    for p in json.load(open(path)):
        if p.get("name") == "on_free":
            return p.get("run_cnt", 0), p.get("run_time_ns", 0)
    return 0, 0
c0, n0 = prog(f"{tmp}/stats.before")
c1, n1 = prog(f"{tmp}/stats.after")
runs, ns = c1 - c0, n1 - n0
print(f"  the exit program: {runs} runs, {ns / runs if runs else 0:.0f} ns a run (kernel.bpf_stats_enabled)")
print(f"  capture-self: exited_placed {placed}, exited_settled {settled}, exit_records_lost {lost}")
print(f"\nRESULT exit_records exits_per_s={rate:.0f} added_pct_core={added:.2f} ratio={ratio:.2f} "
      f"on_free_ns={ns / runs if runs else 0:.0f} lost={lost}")
EOF

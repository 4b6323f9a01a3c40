#!/usr/bin/env bash
# Benchmark (not a test): CPU cost of collectd-capture vs collectd's stock `processes` plugin.
#
# Spawns N sleeping processes, then runs four collectd daemons side by side for the same time,
# all with Interval 1 and no writer (unixsock only, queried once at the end to check that
# values were dispatched):
#   baseline   no read plugin at all (collectd's own cost)
#   capture    `LoadPlugin capture`, default config: every process grouped by {comm}, CPU,
#              memory, counts, file handles and I/O all collected
#   capture-all  capture with the processes config's shape: ProcessMatch "all" ".*", GroupBy ""
#              (one instance for everything, so both dispatch about as many values)
#   processes  stock plugin with ProcessMatch "all" ".*", CollectFileDescriptor true,
#              CollectContextSwitch false, CollectMemoryMaps false
# With VALUES=all, both plugins also collect the costly values: capture with
# CollectMemoryDetails, CollectContextSwitch, CollectMemoryMaps and CollectDelayAccounting true,
# processes with CollectContextSwitch and CollectMemoryMaps true (it reads code and data sizes
# always). Its CollectDelayAccounting stays false: collectd 5.12 cannot parse the taskstats of
# kernels whose record is longer than 416 bytes (6.18: 560) and logs three errors per process
# per interval, which would measure its logging; capture asks taskstats for every process.
# and reports each daemon's CPU time (all threads: utime+stime, to the nanosecond from
# /proc/PID/task/*/schedstat) per cycle and per process per cycle, minus the baseline.
#
#   sudo bench/compare_processes.sh                 # N=1000, 30 s
#   sudo N=200 DURATION=60 bench/compare_processes.sh
#   sudo bench/compare_processes.sh 5000            # N as the first argument
#
# Environment:
#   N=1000          sleeping processes to add (`sleep` copies)
#   DURATION=30     measured seconds (after WARMUP)
#   WARMUP=5        seconds before measuring (first cycles, caches, pid tables)
#   GROUPBY=...     if set, capture runs with `GroupBy "$GROUPBY"` (e.g. "{comm}:{pid}" for one
#                   instance per process, the worst case) and MaxInstances 1000000
#   WRITER=csv      write to CSV files in the temporary directory instead of no writer
#   VALUES=all      both plugins collect the costly values too (see above)
#   CAPTURE_SO=...  use this capture.so instead of target/release/libcapture.so
#   KEEP=1          keep the temporary directory (configs, logs)
# Run as root, as collectd usually runs: otherwise both plugins skip other users' fd/io.
#
# The report ends with `RESULT compare_processes n=... ratio=... ratio_one_instance=...`, the key
# figures to bench/run_all.sh (ratio: processes / capture CPU per cycle, net of the baseline).
# The configs, sleepers, daemons and the schedstat reading are bench/lib.sh's.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N="${1:-${N:-1000}}"
DURATION="${DURATION:-30}"
WARMUP="${WARMUP:-5}"
GROUPBY="${GROUPBY-}"
WRITER="${WRITER:-none}"
KEEP="${KEEP:-0}"
VALUES="${VALUES:-default}"
require_whole_numbers N DURATION WARMUP
[[ $DURATION -ge 5 ]] || die "DURATION must be at least 5 seconds"
case $WRITER in none | csv) ;; *) die "WRITER must be none or csv" ;; esac
case $VALUES in
  default)
    capture_values=""
    processes_values="false"
    processes_delays="false"
    ;;
  all)
    capture_values=$'\n'"  CollectMemoryDetails true"$'\n'"  CollectContextSwitch true"
    capture_values+=$'\n'"  CollectMemoryMaps true"$'\n'"  CollectDelayAccounting true"
    processes_values="true"
    processes_delays="false"
    ;;
  *) die "VALUES must be default or all" ;;
esac

[[ $EUID -eq 0 ]] || log "not root: both plugins will skip other users' /proc/PID/io and fd"
bench_prepare
bench_start capture-bench
make_plugin_dir "$tmp/plugins" "$so" unixsock logfile processes csv

# write_config NAME BODY: the collectd.conf of daemon NAME, in $tmp/NAME, with a unixsock socket
# ($tmp/NAME/sock) and the writer WRITER.
write_config() {
  collectd_conf "$tmp/$1" "$WRITER" "LoadPlugin unixsock
<Plugin unixsock>
  SocketFile \"$tmp/$1/sock\"
</Plugin>
$2"
}

capture_body="LoadPlugin capture"
if [[ -n $GROUPBY || -n $capture_values ]]; then
  capture_body+=$'\n'"<Plugin capture>$capture_values"
  if [[ -n $GROUPBY ]]; then
    capture_body+=$'\n'"  GroupBy \"$GROUPBY\""$'\n'"  MaxInstances 1000000"
  fi
  capture_body+=$'\n'"</Plugin>"
fi
names=(baseline capture capture-all processes)
write_config baseline "# no read plugin"
write_config capture "$capture_body"
# The same shape of output as the processes config below: one instance for all processes.
write_config capture-all "LoadPlugin capture
<Plugin capture>$capture_values
  ProcessMatch \"all\" \".*\"
  GroupBy \"\"
</Plugin>"
# Options before ProcessMatch: outside a match block they set the default for later matches.
write_config processes "LoadPlugin processes
<Plugin processes>
  CollectFileDescriptor  true
  CollectContextSwitch   $processes_values
  CollectMemoryMaps      $processes_values
  CollectDelayAccounting $processes_delays
  ProcessMatch \"all\" \".*\"
</Plugin>"

spawn_sleepers "$N" 3600
nproc_total=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l)
nthreads_total=$(find /proc/[0-9]*/task -maxdepth 1 -mindepth 1 2>/dev/null | wc -l)

log "starting ${#names[@]} collectd daemons (Interval 1): ${names[*]}"
declare -A pid_of
for name in "${names[@]}"; do
  start_collectd "$tmp/$name"
  pid_of[$name]=$bench_pid
done

# cpu_ns PID: run time in ns of all threads (schedstat), of the plugin's own threads (named
# capture*), and utime+stime of the process in ns (stat ticks, a cross-check).
cpu_ns() {
  local own other ticks
  read -r own _ other _ < <(thread_cpu "$1" 'capture*' '*')
  ticks=$(awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.0f\n", ($12 + $13) * 1e9 / hz }' \
    /proc/"$1"/stat 2>/dev/null) || ticks=0
  echo "$((own + other)) $own $ticks"
}

sleep "$WARMUP"
for name in "${names[@]}"; do
  require_alive "${pid_of[$name]}" "$tmp/$name/collectd.log" "collectd ($name) exited during warm-up"
done
declare -A start_sched start_own start_stat end_sched end_own end_stat rss_kib
for name in "${names[@]}"; do
  read -r "start_sched[$name]" "start_own[$name]" "start_stat[$name]" < <(cpu_ns "${pid_of[$name]}")
done
t0=$(date +%s.%N)
log "measuring for $DURATION s"
sleep "$DURATION"
for name in "${names[@]}"; do
  read -r "end_sched[$name]" "end_own[$name]" "end_stat[$name]" < <(cpu_ns "${pid_of[$name]}")
  rss_kib[$name]=$(awk '/^VmRSS:/ { print $2 }' /proc/"${pid_of[$name]}"/status)
done
t1=$(date +%s.%N)

# Values each daemon dispatched (identifiers in its cache), through unixsock.
listval() {
  "$python" - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
    s.sendall(b"LISTVAL\n")
    f = s.makefile("r")
    n = int(f.readline().split()[0])
    ids = [f.readline().split(" ", 1)[1].strip() for _ in range(n)]
except Exception as e:
    print("? ?", e)
    sys.exit(0)
plug = [i for i in ids if "/capture" in i or "/processes" in i]
inst = {i.split("/")[1] for i in plug}
# The plugin's own report of its last sampler cycle, when there is one.
sampler = "-"
ident = next((i for i in ids if i.endswith("/capture-self/duration-sampler")), None)
if ident:
    s.sendall(b'GETVAL "%s"\n' % ident.encode())
    if int(f.readline().split()[0]) > 0:
        sampler = "%.0f" % (float(f.readline().split("=", 1)[1]) * 1e6)
print(len(plug), len(inst), sampler)
EOF
}

for name in "${names[@]}"; do
  kill -0 "${pid_of[$name]}" 2>/dev/null || die "collectd ($name) died during the run, see $tmp/$name/collectd.log (KEEP=1)"
done

results="$tmp/results"
for name in "${names[@]}"; do
  read -r nvals ninst sampler_us _ < <(listval "$tmp/$name/sock")
  errors=$(log_warning_count "$tmp/$name/collectd.log")
  printf '%s %s %s %s %s %s %s %s %s %s %s %s\n' "$name" "${start_sched[$name]}" "${end_sched[$name]}" \
    "${start_stat[$name]}" "${end_stat[$name]}" "${rss_kib[$name]}" "$nvals" "$ninst" "$errors" "${sampler_us:--}" \
    "${start_own[$name]}" "${end_own[$name]}"
done >"$results"

"$python" - "$results" "$t0" "$t1" "$N" "$nproc_total" "$nthreads_total" "$DURATION" "${GROUPBY:-{comm\} (default)}" "$WRITER" "$VALUES" <<'EOF'
import sys
path, t0, t1, n, nproc, nthr, duration, groupby, writer, values = sys.argv[1:]
wall = float(t1) - float(t0)
cycles = wall / 1.0  # Interval 1
nproc = int(nproc)
rows = {}
for line in open(path):
    name, s0, s1, k0, k1, rss, nvals, ninst, errs, sampler_us, o0, o1 = line.split()
    rows[name] = dict(
        sched=(int(s1) - int(s0)) / 1e3, stat=(int(k1) - int(k0)) / 1e3, own=(int(o1) - int(o0)) / 1e3,
        rss=int(rss) / 1024.0, nvals=nvals, ninst=ninst, errs=int(errs), sampler_us=sampler_us)
base = rows["baseline"]["sched"]
print()
print("collectd-capture vs processes plugin: %s sleeping processes added, %d processes / %s threads on the host"
      % (n, nproc, nthr))
print("Interval 1 s, %.1f s measured (%.0f cycles), capture GroupBy %s, writer: %s, values: %s"
      % (wall, cycles, groupby, writer, values))
print()
hdr = "%-22s %10s %10s %10s %12s %14s %8s %7s %6s" % (
    "daemon", "CPU ms", "stat ms", "us/cycle", "net us/cyc", "net us/proc/cyc", "RSS MiB", "values", "warn")
print(hdr)
print("-" * len(hdr))
for name in rows:
    r = rows[name]
    per_cycle = r["sched"] / cycles
    net = (r["sched"] - base) / cycles
    print("%-22s %10.1f %10.1f %10.0f %12s %14s %8.1f %7s %6d" % (
        name, r["sched"] / 1e3, r["stat"] / 1e3, per_cycle,
        "-" if name == "baseline" else "%.0f" % net,
        "-" if name == "baseline" else "%.2f" % (net / nproc),
        r["rss"], r["nvals"], r["errs"]))
def net(name):
    return (rows[name]["sched"] - base) / cycles
proc = net("processes")
print()
for name, what in (("capture", "GroupBy %s" % groupby),
                   ("capture-all", "one instance, as the processes config")):
    if net(name) > 0:
        print("processes / %-11s CPU per cycle, net of baseline: %5.2fx  (%s)" % (name, proc / net(name), what))
    else:
        print("%s: cost below the baseline's noise; raise N or DURATION" % name)
for name in ("capture", "capture-all"):
    r = rows[name]
    if r["own"] > 0 and net(name) > 0:
        print("%-11s: its sampler thread %.0f us/cycle, collectd's threads handling its %s value lists %.0f us/cycle"
              % (name, r["own"] / cycles, r["nvals"], net(name) - r["own"] / cycles))
if rows["capture"]["sampler_us"] != "-":
    print("capture-self/duration-sampler (wall time of capture's last sampler cycle): %s us"
          % rows["capture"]["sampler_us"])
print("(CPU ms: all threads from schedstat; stat ms: utime+stime ticks, a cross-check; values: value")
print(" lists in the daemon's cache from the measured plugin; warn: warning/error lines in its log)")
for name in ("capture", "capture-all", "processes"):
    if rows[name]["nvals"] in ("0", "?"):
        print("WARNING: %s dispatched no values: its numbers measure nothing (KEEP=1 keeps its log)" % name)
def ratio(name):
    return "%.2f" % (proc / net(name)) if net(name) > 0 else "-"
print("RESULT compare_processes n=%s processes=%d cycles=%.0f ratio=%s ratio_one_instance=%s "
      "capture_us_cycle=%.0f capture_all_us_cycle=%.0f processes_us_cycle=%.0f values=%s collected=%s"
      % (n, nproc, cycles, ratio("capture"), ratio("capture-all"), net("capture"), net("capture-all"),
         proc, rows["capture"]["nvals"], values))
EOF
for name in capture capture-all processes; do
  show_log_warnings "$tmp/$name/collectd.log" "$name log warnings/errors:"
done

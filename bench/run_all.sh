#!/usr/bin/env bash
# Runs every benchmark of issue 5, one after another (never two at once: they measure CPU), keeps
# each one's full output, and prints one table: for each target of issue 5, what was measured
# and whether the target is met.
#
#   sudo bench/run_all.sh                 # the parameters behind BENCHMARKS.md (about 35 min)
#   sudo QUICK=1 bench/run_all.sh         # small parameters: a smoke run of a few minutes
#   sudo ONLY="packet resolve" bench/run_all.sh        # some runs only (names below)
#   bench/run_all.sh --table DIR          # the table again, from the outputs kept in DIR
#
# The runs, in this order (the criterion benchmarks first: `cargo bench` builds the library with
# the dev-dependencies' features, so the scripts after it rebuild the plugin they load):
#   sampler                  cargo bench --bench sampler (1,000 sleeping processes added)
#   sampler_10k              the same with CAPTURE_BENCH_PROCESSES=10000
#   packet                   cargo bench --bench packet
#   resolve                  cargo bench --bench resolve (30,000 sockets)
#   compare_processes        bench/compare_processes.sh (N=1000, 30 s)
#   compare_processes_values the same with VALUES=all (the costly values on in both; issue 16)
#   live_packets             bench/live_packets.sh (200,000 datagrams/s for 20 s, and nethogs)
#   connection_burst         bench/connection_burst.sh (1,000 connections/s for 30 s)
#   connection_burst_hold5   the same with connections held 5 ms (HOLD_MS=5)
#   memory                   bench/memory.sh (1,000 processes, 30,000 sockets; about 10 min)
#   namespaces_cost          bench/namespaces_cost.sh (50 namespaces, 20 s a run)
#   nethogs_short_connections  bench/nethogs_short_connections.sh
#   flow_flood               bench/flow_flood.sh (100,000 new flows/s)
#   owner_source_cost        bench/owner_source_cost.sh (a 200,000 datagrams/s sender; issue 15)
#   exit_records             bench/exit_records.sh (1,000 exits/s; issue 16)
# Each run gets the parameters written in `define_runs` below, full or QUICK; the benchmarks' own
# variables (N, RATE, DURATION, ...) in the environment are not passed on, KEEP and CAPTURE_SO
# are. The scripts end with `RESULT <name> key=value ...` lines (see bench/lib.sh); the table is
# made from those and from the lines the criterion benchmarks print. With QUICK=1, a figure
# measured below the target's scale (fewer processes, a lower rate, a shorter run) is marked `*`.
#
# Environment:
#   QUICK=1         small parameters
#   ONLY="a b"      only these runs;  SKIP="a b": all but these
#   RESULTS=DIR     where the outputs go (default target/bench-results/<date>-<time>[-quick]):
#                   <run>.out (all a run printed), runs.tsv (exit status, start, seconds,
#                   command), summary.txt (the table)
#   KEEP=1          the scripts keep their temporary directories
#   CAPTURE_SO=...  the scripts use this capture.so instead of building it
# Run as root: the scripts capture packets, create network namespaces and read every process's
# /proc. Exits 0 when every run finished, whatever the figures; 1 when a run failed.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

QUICK="${QUICK:-0}"
ONLY="${ONLY:-}"
SKIP="${SKIP:-}"

# The benchmarks' own parameters come from define_runs only.
unset N DURATION WARMUP GROUPBY WRITER RATE SECS SIZE LINGER BASELINE NETHOGS NETHOGS_ARGS BYTES \
  HOLD_MS SOCKETS STRACE_SECS SETTLE NETNS DISTINCT STEADY COOLDOWN SAMPLE SMALL_BUFFER \
  CAPTURE_BENCH_PROCESSES OUT ROUNDS VALUES

runs=()
declare -A command_of
# run NAME WORD...: a run and its command (VAR=value words first, then the program and its
# arguments; no word has a space).
run() {
  runs+=("$1")
  command_of[$1]="${*:2}"
}

define_runs() {
  local crit=()
  if [[ $QUICK == 1 ]]; then
    crit=(-- --warm-up-time 0.5 --measurement-time 1 --sample-size 10)
    run sampler CAPTURE_BENCH_PROCESSES=200 cargo bench --bench sampler "${crit[@]}"
    run sampler_10k CAPTURE_BENCH_PROCESSES=2000 cargo bench --bench sampler "${crit[@]}"
    run packet cargo bench --bench packet "${crit[@]}"
    run resolve cargo bench --bench resolve "${crit[@]}"
    run compare_processes N=100 DURATION=5 WARMUP=2 bench/compare_processes.sh
    run compare_processes_values N=100 DURATION=5 WARMUP=2 VALUES=all bench/compare_processes.sh
    run live_packets RATE=20000 SECS=3 LINGER=2 bench/live_packets.sh
    run connection_burst RATE=200 DURATION=3 N=100 STRACE_SECS=2 SETTLE=6 bench/connection_burst.sh
    run connection_burst_hold5 RATE=200 DURATION=3 N=100 HOLD_MS=5 STRACE_SECS=0 SETTLE=6 bench/connection_burst.sh
    run memory N=100 SOCKETS=2000 RATE=100 WARMUP=6 STEADY=20 COOLDOWN=0 SAMPLE=5 bench/memory.sh
    run namespaces_cost N=3 DURATION=3 bench/namespaces_cost.sh
  else
    run sampler CAPTURE_BENCH_PROCESSES=1000 cargo bench --bench sampler
    run sampler_10k CAPTURE_BENCH_PROCESSES=10000 cargo bench --bench sampler
    run packet cargo bench --bench packet
    run resolve cargo bench --bench resolve
    run compare_processes N=1000 DURATION=30 WARMUP=5 bench/compare_processes.sh
    run compare_processes_values N=1000 DURATION=30 WARMUP=5 VALUES=all bench/compare_processes.sh
    run live_packets RATE=200000 SECS=20 SIZE=64 LINGER=3 bench/live_packets.sh
    run connection_burst RATE=1000 DURATION=30 BYTES=1000 N=1000 STRACE_SECS=5 SETTLE=8 bench/connection_burst.sh
    run connection_burst_hold5 RATE=1000 DURATION=30 BYTES=1000 N=1000 HOLD_MS=5 STRACE_SECS=5 SETTLE=8 bench/connection_burst.sh
    run memory N=1000 SOCKETS=30000 RATE=250 WARMUP=120 STEADY=300 COOLDOWN=150 SAMPLE=10 bench/memory.sh
    run namespaces_cost N=50 DURATION=20 bench/namespaces_cost.sh
  fi
  run nethogs_short_connections bench/nethogs_short_connections.sh
  run flow_flood RATE=100000 "SECS=$((QUICK == 1 ? 10 : 60))" COOLDOWN=10 bench/flow_flood.sh
  if [[ $QUICK == 1 ]]; then
    run owner_source_cost RATE=100000 SECS=2 ROUNDS=1 bench/owner_source_cost.sh
    run exit_records RATE=500 SECS=5 bench/exit_records.sh
  else
    run owner_source_cost RATE=200000 SECS=5 ROUNDS=5 bench/owner_source_cost.sh
    run exit_records RATE=1000 SECS=20 bench/exit_records.sh
  fi
}

# selected NAME: whether ONLY and SKIP let NAME run.
selected() {
  local words=" ${ONLY//,/ } " skip=" ${SKIP//,/ } "
  [[ -z $ONLY || $words == *" $1 "* ]] && [[ $skip != *" $1 "* ]]
}

# print_table DIR: the table of the targets from the outputs in DIR (also in DIR/summary.txt).
print_table() {
  local python
  python="$(find_python)" || die "python3 not found"
  "$python" - "$1" "$(capture_target_dir)" <<'EOF' | tee "$1/summary.txt"
import json, os, re, sys

results, target_dir = sys.argv[1], sys.argv[2]
status = {}  # name -> (exit status, start epoch, seconds, command)
quick = False
for line in open(os.path.join(results, "runs.tsv")):
    f = line.rstrip("\n").split("\t")
    if f[0] == "quick":
        quick = f[1] == "1"
    elif len(f) >= 5:
        status[f[0]] = (int(f[1]), float(f[2]), float(f[3]), f[4])

def text(name):
    path = os.path.join(results, name + ".out")
    return open(path, errors="replace").read() if os.path.exists(path) else ""

def result(name):
    """key=value words of the run's RESULT line(s)."""
    out = {}
    for line in text(name).splitlines():
        if line.startswith("RESULT "):
            out.update(w.split("=", 1) for w in line.split()[2:] if "=" in w)
    return out

def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None

def search(name, pattern):
    m = re.search(pattern, text(name))
    return m.groups() if m else None

UNIT = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}
def micros(duration):
    """A Rust Debug duration (36.0µs, 1.2ms) in µs."""
    m = re.fullmatch(r"([0-9.]+)(ns|µs|us|ms|s)", duration)
    return float(m.group(1)) * UNIT[m.group(2)] if m else None

rows, also = [], []
def row(what, target, name, measure):
    """measure() -> (measured text, met: True/False/None, below the target's scale)."""
    if name not in status:
        rows.append((what, target, "not run", "-"))
        return
    code = status[name][0]
    try:
        measured, met, small = measure()
    except Exception as e:  # a figure missing from the output
        measured, met, small = "no figures (%s)" % e.__class__.__name__, None, False
    if code != 0:
        measured, met = "FAILED (exit %d), see %s.out" % (code, name), None
    verdict = {True: "yes", False: "NO", None: "?"}[met]
    if met is not None and small and quick:
        verdict += "*"
    rows.append((what, target, measured, verdict))

def x(v):
    """A ratio as the table shows it."""
    return "-" if num(v) is None else "%.2fx" % num(v)

def sampler():
    procs, ms, _ = search("sampler", r"sampler cycle: (\d+) processes, ([0-9.]+) ms per cycle, ([0-9.]+) µs per process")
    kept, _, ratio, _ = search("sampler", r"floors: kept files ([0-9.]+) ms, open/read/close ([0-9.]+) ms per cycle; "
                                          r"sampler / kept floor = ([0-9.]+)x, sampler / open floor = ([0-9.]+)x")
    return ("%s: %s vs %s ms a cycle, %s processes" % (x(ratio), ms, kept, procs),
            float(ratio) <= 1.5, int(procs) < 1000)

def sampler_10k():
    procs, ms = search("sampler_10k", r"sampler cycle: (\d+) processes, ([0-9.]+) ms per cycle")
    return "%s ms at %s processes" % (ms, procs), float(ms) < 250, int(procs) < 10000

def compare(name="compare_processes"):
    r = result(name)
    ratio = num(r["ratio"])
    return ("%s cheaper (%s with one instance); %.1f vs %.1f ms a cycle; +%s sleepers"
            % (x(r["ratio"]), x(r["ratio_one_instance"]), num(r["capture_us_cycle"]) / 1e3,
               num(r["processes_us_cycle"]) / 1e3, r["n"]),
            None if ratio is None else ratio >= 3, int(r["n"]) < 1000)

def packet():
    frames, flows, ns, mpps = search("packet", r"recorded capture \((\d+) frames, (\d+) flows\): parse \+ attribution "
                                               r"([0-9.]+) ns per packet, ([0-9.]+) million packets per second")
    return "%s M/s (%s ns a packet); %s frames, %s flows" % (mpps, ns, frames, flows), float(mpps) >= 2, False

def resolve():
    scenarios = {}
    for name, n, median, p90, p99 in re.findall(
            r"^(kept open|short|new process)\s+n=(\d+)\s+median\s+(\S+)\s+p90\s+(\S+)\s+p99\s+(\S+)", text("resolve"), re.M):
        scenarios[name] = (micros(median), micros(p90))
    sockets = search("resolve", r"(\d+) TCP\+UDP sockets on the host")
    worst = max(scenarios, key=lambda k: scenarios[k][0])
    parts = ["%s %.0f" % (k, m) for k, (m, _) in scenarios.items() if k != worst]
    path = os.path.join(target_dir, "criterion", "resolve new short connection (30k sockets)", "new", "estimates.json")
    if os.path.exists(path) and os.path.getmtime(path) >= status["resolve"][1]:
        parts.append("criterion %.0f" % (json.load(open(path))["median"]["point_estimate"] / 1e3))
    return ("%.0f µs (%s, p90 %.0f); other medians: %s; %s sockets"
            % (scenarios[worst][0], worst, scenarios[worst][1], ", ".join(parts), sockets[0] if sockets else "?"),
            scenarios[worst][0] < 100, bool(sockets) and int(sockets[0]) < 30000)

def live_drops():
    r = result("live_packets")
    dropped = num(r["dropped"])
    return ("%s drops at %s/s sent, %s/s through; %s%% credited to both ends"
            % (r["dropped"], r["rate"], r["rate_achieved"], r["capture_pct"]),
            None if dropped is None else dropped == 0, int(r["rate"]) < 200000)

def live_nethogs():
    r = result("live_packets")
    net, cap, nh = num(r["cpu_net_ratio_packet"]), num(r["capture_pct"]), num(r["nethogs_pct"])
    met = None if None in (net, cap, nh) else (net <= 0.5 and cap > nh)
    return ("CPU a packet %s (whole collectd %s); bytes %s%% vs %s%%"
            % (x(r["cpu_net_ratio_packet"]), x(r["cpu_all_ratio_packet"]), r["capture_pct"], r["nethogs_pct"]),
            met, int(r["rate"]) < 200000)

def burst():
    r = result("connection_burst")
    per_lookup, server = num(r["passes_per_lookup"]), num(r["server_pct"])
    met = None if None in (per_lookup, server) else (per_lookup <= 0.01 and server >= 95)
    return ("%s passes a lookup (%s/s); server %s%%, client %s%%; resolver %s%% of a core; %s/s, %s processes"
            % (r["passes_per_lookup"], r["passes_per_s"], r["server_pct"], r["client_pct"], r["resolver_core_pct"],
               r["rate"], r["processes"]),
            met, int(r["rate"]) < 1000 or int(r["processes"]) < 1000)

def memory_added():
    r = result("memory")
    return ("+%s MiB (ring %s); %s processes, %s sockets, %s flows"
            % (r["added_mib"], r["ring_mib"], r["processes"], r["sockets"], r["flows"]),
            float(r["added_mib"]) < 16, int(r["processes"]) < 1000 or int(r["sockets"]) < 30000)

def memory_flat():
    r = result("memory")
    slope = num(r["slope_kib_min"])
    return "%+.1f KiB/min over %s s" % (slope, r["steady"]), abs(slope) <= 17, int(r["steady"]) < 300

row("sampler vs collectd's processes plugin, CPU a cycle", "≤ 1/3 of its CPU", "compare_processes", compare)
row("the same with the costly values on in both", "≤ 1/3 of its CPU (issue 16)", "compare_processes_values",
    lambda: compare("compare_processes_values"))
row("sampler cycle vs the floor program (floor_kept)", "≤ 1.5x the floor", "sampler", sampler)
row("sampler cycle, 10,000 processes", "< 250 ms", "sampler_10k", sampler_10k)
row("parse + attribution, one core (recorded capture)", "≥ 2 M packets/s", "packet", packet)
row("live loopback, 200,000 UDP datagrams/s of 64 B", "no kernel drops", "live_packets", live_drops)
row("the same vs nethogs -t -C (network threads)", "≤ 0.5x its CPU, more bytes", "live_packets", live_nethogs)
row("resolving a new flow, 30,000 sockets", "median < 100 µs", "resolve", resolve)
row("burst of 1,000 new connections/s, +1,000 sleepers", "no full /proc rescans (1)", "connection_burst", burst)
row("memory added: 1,000 processes, 30k sockets, 100k flows", "< 16 MiB", "memory", memory_added)
row("memory at a steady workload (VmRSS - baseline)", "flat (2)", "memory", memory_flat)

def owner_cost():
    r = result("owner_source_cost")
    slowdown = num(r["slowdown_pct"])
    return ("%+.1f%% a datagram at %s/s (%s against %s ns); on_send %s ns a run"
            % (slowdown, r["rate"], r["sender_ns_ebpf"], r["sender_ns_proc"], r["on_send_ns"]),
            None if slowdown is None else slowdown <= 5, int(r["rate"]) < 200000)

def exit_cost():
    r = result("exit_records")
    added = num(r["added_pct_core"])
    return ("+%s%% of a core at %s exits/s; the exit program %s ns an exit; %s lost"
            % (r["added_pct_core"], r["exits_per_s"], r["on_free_ns"], r["lost"]),
            None if added is None else added < 2, num(r["exits_per_s"]) < 950)

row("a UDP sender's slowdown with the eBPF owner programs", "≤ 5% (issue 15)", "owner_source_cost", owner_cost)
row("collectd's added CPU with exit records", "< 2% of a core (issue 16)", "exit_records", exit_cost)
notes = [
    "(1) at most 1 pass over /proc (fd-count stats / processes, from perf) per 100 lookups, and the server side"
    " >= 95% attributed",
    "(2) least-squares slope over the steady phase within +-17 KiB/min (1 MiB an hour)",
    "resolving: every scenario's median (kept open, short, new process) counts; criterion's is the short one",
]

# Figures without a target of their own.
def also_row(what, name, measure):
    if name in status and status[name][0] == 0:
        try:
            also.append((what, measure()))
        except Exception as e:
            also.append((what, "no figures (%s)" % e.__class__.__name__))
def per_process():
    procs, ms, us = search("sampler", r"sampler cycle: (\d+) processes, ([0-9.]+) ms per cycle, ([0-9.]+) µs per process")
    return "%s ms a cycle (%s µs a process, %s processes)" % (ms, us, procs)
def parser_alone():
    ns, mpps = search("packet", r"packet parser: ([0-9.]+) ns per packet, ([0-9.]+) million")
    return "%s M packets/s (%s ns a packet)" % (mpps, ns)
def burst_held():
    r = result("connection_burst_hold5")
    return ("attributed: server %s%%, client %s%%; resolver %s%% of a core; %s passes over /proc a lookup"
            % (r["server_pct"], r["client_pct"], r["resolver_core_pct"], r["passes_per_lookup"]))
def namespaces():
    r = result("namespaces_cost")
    return ("%s µs/s of the network threads, %s µs/s of the sampler, per namespace (%s namespaces)"
            % (r["net_us_s_per_ns"], r["sampler_us_s_per_ns"], r["n"]))
def nethogs_short():
    r = result("nethogs_short_connections")
    return ("nethogs credits %s%% of the payload to the client, %s%% to the server (capture: 100%% both, "
            "tests/network.rs)" % (r["client_pct"], r["server_pct"]))
also_row("sampler cycle, every collection on", "sampler", per_process)
also_row("parser alone, synthetic mix", "packet", parser_alone)
also_row("burst, connections held 5 ms", "connection_burst_hold5", burst_held)
also_row("an idle network namespace", "namespaces_cost", namespaces)
also_row("short connections (100 x 100 KB) under nethogs -t", "nethogs_short_connections", nethogs_short)

def table(header, body):
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in body:
        print(line(r))

print()
print("Issue 5 targets (%s run, outputs in %s)" % ("QUICK" if quick else "full", results))
print()
table(("what", "target", "measured", "met?"), rows)
if also:
    print()
    table(("also measured", "figures"), also)
print()
for note in notes:
    print(note)
if quick:
    print("* measured below the target's scale (QUICK=1): indicative only")
failed = sorted(n for n, s in status.items() if s[0] != 0)
if failed:
    print("failed runs: %s (their outputs are in %s)" % (", ".join(failed), results))
print("runs: " + ", ".join("%s %.0f s" % (n, s[2]) for n, s in status.items()))
EOF
}

if [[ ${1-} == --table ]]; then
  [[ -f ${2-}/runs.tsv ]] || die "usage: bench/run_all.sh --table DIR (a results directory, with runs.tsv)"
  print_table "$2"
  exit 0
fi
[[ $# -eq 0 ]] || die "unknown argument '$1' (see the top of bench/run_all.sh)"
[[ $QUICK == 0 || $QUICK == 1 ]] || die "QUICK must be 0 or 1, not '$QUICK'"
[[ $EUID -eq 0 ]] || die "run as root: the scripts capture packets, create namespaces and read every /proc/PID"
require_cargo

define_runs
todo=()
for name in "${runs[@]}"; do
  selected "$name" && todo+=("$name")
done
for name in ${ONLY//,/ } ${SKIP//,/ }; do
  [[ -n ${command_of[$name]+set} ]] || die "no run called '$name' (runs: ${runs[*]})"
done
[[ ${#todo[@]} -gt 0 ]] || die "ONLY and SKIP leave nothing to run"

stamp="$(date +%Y%m%d-%H%M%S)"
[[ $QUICK == 1 ]] && stamp+="-quick"
RESULTS="${RESULTS:-$(capture_target_dir)/bench-results/$stamp}"
mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
printf 'quick\t%s\n' "$QUICK" >"$RESULTS/runs.tsv"
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS
failed=0
i=0
for name in "${todo[@]}"; do
  i=$((i + 1))
  read -r -a words <<<"${command_of[$name]}"
  log "[$i/${#todo[@]}] $name: ${words[*]}  (output: $RESULTS/$name.out)"
  t0=$SECONDS
  start=$(date +%s)
  status=0
  (cd "$CAPTURE_ROOT" && exec env "${words[@]}") >"$RESULTS/$name.out" 2>&1 </dev/null || status=$?
  [[ ${words[*]} != *"cargo bench"* ]] || fix_ownership
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$start" "$((SECONDS - t0))" "${words[*]}" >>"$RESULTS/runs.tsv"
  if [[ $status -eq 0 ]]; then
    log "    done in $((SECONDS - t0)) s"
  else
    failed=1
    log "    FAILED (exit $status) after $((SECONDS - t0)) s; its last lines:"
    tail -n 5 "$RESULTS/$name.out" | sed 's/^/      /' >&2
  fi
done
log "all runs done in $((SECONDS - started)) s"
print_table "$RESULTS"
exit "$failed"

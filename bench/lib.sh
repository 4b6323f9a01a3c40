# shellcheck shell=bash
# Helpers shared by the benchmark scripts in bench/. Source it (it sources scripts/lib.sh); it
# defines functions and variables and runs nothing else.
#
# Why a file of its own rather than more of scripts/lib.sh: these helpers keep a benchmark's
# state — the processes it started, its temporary directory, its network namespaces — and
# bench_start installs the EXIT trap that stops and removes all of it, which scripts/demo.sh,
# scripts/test.sh and .ci/run must not get. What is not benchmark-specific (require_collectd,
# collectd_base_config, check_collectd_config, stop_processes) is in scripts/lib.sh.
#
# The shape of a benchmark script:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   bench_prepare                     # packages, collectd, $python, $so (the plugin, built)
#   bench_start capture-foo           # $tmp, and the EXIT trap (KEEP=1 keeps $tmp)
#   bench_netns capture-foo-$$        # optional: a private network namespace, $in_ns
#   make_plugin_dir "$tmp/plugins" "$so" logfile csv
#   collectd_conf "$tmp" csv "LoadPlugin capture"
#   spawn_sleepers "$N" 3600
#   start_collectd "$tmp"; daemon=$bench_pid
#   ... measure: thread_cpu, csv_last, wait_for ...
#   ... print the human report, then its key figures on `RESULT` lines (bench_result)
#
# RESULT lines are what bench/run_all.sh reads: `RESULT <benchmark> key=value key=value ...`,
# one or more, at the end of the output; values have no spaces ("-" when not measured). The
# human report above them is the benchmark's real output.

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

# The benchmark's temporary directory (bench_start).
tmp=""
# A command prefix that runs a program in the benchmark's network namespace (bench_netns), or
# nothing: "${in_ns[@]}" prog args...
in_ns=()
# The pid of the last process start_collectd started.
bench_pid=""
# What the EXIT trap cleans up: processes to stop (SIGTERM, 5 s, SIGKILL), sleepers (SIGTERM),
# network namespaces to delete, commands to run (after the processes are gone).
BENCH_PIDS=()
BENCH_SLEEPERS=()
BENCH_NETNS=()
BENCH_AT_EXIT=()

# require_whole_numbers VAR...: dies unless each variable holds a whole number.
require_whole_numbers() {
  local v
  for v in "$@"; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
  done
}

# bench_prepare [PACKAGE...]: installs what is missing (the plugin's packages and these), makes
# collectd callable, and sets $python (a python3) and $so (the plugin, built unless CAPTURE_SO).
# shellcheck disable=SC2120 # the packages are optional
bench_prepare() {
  ensure_apt_packages "${CAPTURE_APT_PACKAGES[@]}" "$@"
  require_collectd
  # shellcheck disable=SC2034 # used by the scripts
  python="$(find_python)" || die "python3 not found"
  # shellcheck disable=SC2034 # used by the scripts
  so="$(build_plugin)"
}

# build_example NAME WHAT: builds examples/NAME.rs (WHAT says what it is, for the log) in its own
# target directory, so that the plugin's build is untouched (as the tests do), and prints the
# path of the program.
build_example() {
  local name=$1 what=$2 dir status=0
  dir="$(capture_target_dir)/it-workload"
  require_cargo
  log "building $what (examples/$name.rs)"
  (cd "$CAPTURE_ROOT" && cargo build -q --release --example "$name" --target-dir "$dir" >&2) || status=$?
  fix_ownership
  [[ $status -eq 0 ]] || die "cargo build --example $name failed"
  printf '%s\n' "$dir/release/examples/$name"
}

# bench_start PREFIX: creates the temporary directory $tmp (${TMPDIR:-/tmp}/PREFIX.XXXXXX) and
# installs the traps: on exit, however the script ends, everything the benchmark started is
# stopped, its namespaces deleted and $tmp removed (kept with KEEP=1).
bench_start() {
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# shellcheck disable=SC2317 # called from the EXIT trap
bench_cleanup() {
  local status=$? ns command sleepers pids
  trap - EXIT INT TERM
  [[ $status -eq 0 ]] || log "stopping (exit status $status), cleaning up"
  # Only processes that are still this script's children: a pid that has exited may be another
  # process's by now.
  mapfile -t sleepers < <(own_children "${BENCH_SLEEPERS[@]}")
  mapfile -t pids < <(own_children "${BENCH_PIDS[@]}")
  if [[ ${#sleepers[@]} -gt 0 ]]; then
    kill -TERM "${sleepers[@]}" 2>/dev/null || true
  fi
  stop_processes "${pids[@]}"
  wait 2>/dev/null || true
  for command in "${BENCH_AT_EXIT[@]}"; do
    eval "$command" || true
  done
  for ns in "${BENCH_NETNS[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  if [[ -n $tmp ]]; then
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  fi
  exit "$status"
}

# own_children PID...: those of the PIDs that are children of this shell, one a line.
own_children() {
  local pid line
  for pid in "$@"; do
    read -r line 2>/dev/null <"/proc/$pid/stat" || continue
    line=${line##*) }              # the fields after "pid (comm) ": state, ppid, ...
    line=${line#* }                # ppid ...
    [[ ${line%% *} == "$$" ]] && echo "$pid"
  done
  return 0
}

# bench_track PID...: processes the EXIT trap stops.
bench_track() {
  BENCH_PIDS+=("$@")
}

# bench_at_exit COMMAND: a command (a string, eval'd) the EXIT trap runs once every process is
# stopped, before the namespaces are deleted.
bench_at_exit() {
  BENCH_AT_EXIT+=("$1")
}

# spawn_sleepers N SECS: N `sleep SECS` processes (so that /proc has N more to walk), stopped at
# exit.
spawn_sleepers() {
  local i
  log "spawning $1 sleeping processes"
  for ((i = 0; i < $1; i++)); do
    sleep "$2" &
    BENCH_SLEEPERS+=($!)
  done
}

# netns_add NAME: a network namespace with `lo` up, deleted at exit.
netns_add() {
  ip netns add "$1" || die "cannot create a network namespace (ip netns add)"
  BENCH_NETNS+=("$1")
  ip netns exec "$1" ip link set lo up
}

# bench_netns NAME: netns_add NAME, and the benchmark's programs run in it: sets $in_ns.
bench_netns() {
  netns_add "$1"
  in_ns=(ip netns exec "$1")
}

# collectd_conf DIR WRITER [BODY]: DIR/collectd.conf for a daemon whose files all live in DIR
# (Hostname "bench", Interval 1, PluginDir $tmp/plugins, logfile DIR/collectd.log), with
# WRITER `csv` (DataDir DIR/csv) or `none`, then BODY (its read plugins); checked with
# `collectd -t`.
collectd_conf() {
  local dir=$1 writer=$2 body=${3-}
  mkdir -p "$dir"
  {
    collectd_base_config "$dir" "$tmp/plugins" bench 1
    case $writer in
      csv) printf 'LoadPlugin csv\n<Plugin csv>\n  DataDir "%s"\n</Plugin>\n' "$dir/csv" ;;
      none) ;;
      *) die "collectd_conf: writer must be csv or none, not '$writer'" ;;
    esac
    printf '%s\n' "$body"
  } >"$dir/collectd.conf"
  check_collectd_config "$dir/collectd.conf"
}

# start_collectd DIR: runs collectd in the foreground on DIR/collectd.conf (its output appended to
# DIR/collectd.log), in the benchmark's namespace if it has one; sets $bench_pid. Stopped at exit.
start_collectd() {
  "${in_ns[@]}" collectd -f -C "$1/collectd.conf" >>"$1/collectd.log" 2>&1 &
  bench_pid=$!
  BENCH_PIDS+=("$bench_pid")
}

# require_alive PID LOG MESSAGE: dies with MESSAGE and the end of LOG when PID has exited.
require_alive() {
  kill -0 "$1" 2>/dev/null && return 0
  tail -n 20 "$2" >&2
  die "$3"
}

# wait_for FILE REGEX SECONDS: until a line of FILE matches REGEX; 1 when none does in time.
wait_for() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# csv_rows DIR IDENT: every row the csv writer of the daemon in DIR wrote for IDENT (e.g.
# capture-self/count-flows): "epoch,value,...", oldest first; nothing when there is none yet.
csv_rows() {
  local files=("$1/csv/bench/$2"-*)
  [[ -f ${files[0]} ]] || return 0
  cat "${files[@]}" | grep -v '^epoch' || true
}

# csv_last DIR IDENT [DEFAULT]: the newest values of IDENT (the row without its time), or
# DEFAULT (0) when there is none yet.
csv_last() {
  local line
  line=$(csv_rows "$1" "$2" | tail -n 1)
  if [[ -z $line ]]; then echo "${3:-0}"; else echo "${line#*,}"; fi
}

# wait_for_csv DIR IDENT SECONDS [PID]: until the daemon in DIR has written a row of IDENT (or
# PID has exited); 1 when it has not.
wait_for_csv() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    [[ -n $(csv_rows "$1" "$2") ]] && return 0
    [[ -z ${4-} ]] || kill -0 "$4" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# thread_cpu PID PATTERN...: CPU time of PID's threads from /proc/PID/task/*/schedstat, summed by
# thread name: for each PATTERN (a glob on the thread's name, e.g. capture-resolve, 'capture-*',
# '*'), in order, "ns runs" (nanoseconds on a CPU, times scheduled in). A thread counts for the
# longest pattern that matches its name, and for none if none does. Zeros for a gone PID.
thread_cpu() {
  local pid=$1 t comm ns runs i best
  shift
  local -a patterns=("$@") sum=()
  for i in "${!patterns[@]}"; do sum+=(0 0); done
  for t in /proc/"$pid"/task/*; do
    { read -r comm <"$t/comm" && read -r ns _ runs <"$t/schedstat"; } 2>/dev/null || continue
    best=-1
    for i in "${!patterns[@]}"; do
      # shellcheck disable=SC2053 # the pattern is a glob
      if [[ $comm == ${patterns[i]} ]] && { [[ $best -lt 0 ]] || [[ ${#patterns[i]} -gt ${#patterns[best]} ]]; }; then
        best=$i
      fi
    done
    [[ $best -ge 0 ]] || continue
    sum[2 * best]=$((sum[2 * best] + ns))
    sum[2 * best + 1]=$((sum[2 * best + 1] + runs))
  done
  echo "${sum[*]}"
}

# thread_tid PID NAME: the id of PID's thread called NAME; 1 when it has none.
thread_tid() {
  local t
  for t in /proc/"$1"/task/*; do
    [[ $(cat "$t/comm" 2>/dev/null) == "$2" ]] && {
      basename "$t"
      return 0
    }
  done
  return 1
}

# hold_sockets PROGRAM SOCKETS: starts `PROGRAM hold SOCKETS` (examples/socket_load.rs: SOCKETS
# TCP sockets over 127.0.0.1, held until killed) in the benchmark's namespace, output in
# $tmp/hold.out, and waits up to 60 s for it to be ready. Stopped at exit.
hold_sockets() {
  local pid
  log "opening $2 TCP sockets over 127.0.0.1"
  "${in_ns[@]}" "$1" hold "$2" >"$tmp/hold.out" 2>&1 &
  pid=$!
  BENCH_PIDS+=("$pid")
  for _ in $(seq 600); do
    grep -q '^ready' "$tmp/hold.out" && break
    kill -0 "$pid" 2>/dev/null || die "socket holder failed: $(cat "$tmp/hold.out")"
    sleep 0.1
  done
  grep -q '^ready' "$tmp/hold.out" || die "socket holder not ready after 60 s"
  log "sockets $(head -n 1 "$tmp/hold.out")"
}

# collectd's warning and error lines in LOG.
CAPTURE_LOG_WARNING='\] (\[)?(error|warning)'

# log_warning_count LOG: how many warning and error lines collectd wrote to LOG.
log_warning_count() {
  grep -ciE "$CAPTURE_LOG_WARNING" "$1" || true
}

# show_log_warnings LOG [TITLE]: the first 5 warning and error lines of LOG, indented, after an
# empty line and TITLE when there is one; nothing when there are none.
show_log_warnings() {
  if [[ ! -f $1 ]] || ! grep -qiE "$CAPTURE_LOG_WARNING" "$1"; then
    return 0
  fi
  if [[ -n ${2-} ]]; then
    echo
    echo "$2"
  fi
  grep -iE "$CAPTURE_LOG_WARNING" "$1" | head -n 5 | sed 's/^/  /'
}

# bench_result NAME KEY=VALUE...: the machine-readable line of a benchmark's key figures.
bench_result() {
  local name=$1
  shift
  echo "RESULT $name $*"
}

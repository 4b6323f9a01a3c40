#!/usr/bin/env bash
# See collectd-capture at work in a minute: builds the plugin, starts a private collectd with it
# (nothing is installed into /usr/lib/collectd, /etc is not touched) and shows a top-like table
# of the busiest process groups, refreshed every interval, from what collectd wrote.
#
#   sudo scripts/demo.sh               # until Ctrl-C
#   sudo scripts/demo.sh --once        # one table, then stop
#   sudo scripts/demo.sh --seconds 20  # or DEMO_SECONDS=20
#
# Options / environment:
#   --once              print one table (after two intervals, so rates exist) and stop
#   --seconds N         stop after N seconds (DEMO_SECONDS)
#   --interval N        collectd Interval in seconds, default 2 (DEMO_INTERVAL)
#   --rows N            rows of the table, default: fits the terminal (DEMO_ROWS)
#   --config FILE       a <Plugin capture> block (or any lines) appended to the collectd config,
#                       e.g. collectd.conf.example (the LoadPlugin line in it is harmless)
#   --keep              keep the temporary directory (config, CSV files, collectd.log)
#   CAPTURE_SO=path     use this capture.so instead of building one
#
# Run it as root: collectd then reads every process's /proc/PID/io and /proc/PID/fd. As another
# user the table still fills, but the file and I/O columns only cover your own processes.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

once=0
seconds="${DEMO_SECONDS:-0}"
interval="${DEMO_INTERVAL:-2}"
rows="${DEMO_ROWS:-0}"
extra_config=""
keep=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --once) once=1 ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift ;;
    --interval) interval=${2:?--interval needs a number}; shift ;;
    --rows) rows=${2:?--rows needs a number}; shift ;;
    --config) extra_config=${2:?--config needs a file}; shift ;;
    --keep) keep=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done
[[ $seconds =~ ^[0-9]+$ ]] || die "--seconds/DEMO_SECONDS must be a whole number of seconds, not '$seconds'"
[[ $interval =~ ^[0-9]+$ && $interval -ge 1 ]] || die "--interval must be a whole number >= 1, not '$interval'"
[[ $rows =~ ^[0-9]+$ ]] || die "--rows must be a number, not '$rows'"
[[ -z $extra_config || -f $extra_config ]] || die "--config: no such file '$extra_config'"

if [[ $EUID -ne 0 ]]; then
  log "not root: packages are not installed and other users' fd/io numbers will be missing"
fi
ensure_apt_packages "${CAPTURE_APT_PACKAGES[@]}"
command -v collectd >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
command -v collectd >/dev/null 2>&1 || die "collectd not found (apt-get install collectd-core)"
if ! python="$(find_python)"; then
  ensure_apt_packages python3
  python="$(find_python)" || die "python3 not found (apt-get install python3)"
fi

so="$(build_plugin)"

# Everything lives in one temporary directory, removed on exit.
tmp="$(mktemp -d "${TMPDIR:-/tmp}/capture-demo.XXXXXX")"
chmod 0755 "$tmp"
collectd_pid=""
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n $collectd_pid ]] && kill -0 "$collectd_pid" 2>/dev/null; then
    kill -TERM "$collectd_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$collectd_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$collectd_pid" 2>/dev/null || true
    wait "$collectd_pid" 2>/dev/null || true
  fi
  if [[ $keep -eq 1 ]]; then
    log "kept $tmp (collectd.conf, collectd.log, csv/)"
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

make_plugin_dir "$tmp/plugins" "$so" csv logfile
conf="$tmp/collectd.conf"
cat >"$conf" <<EOF
# collectd-capture demo configuration (written by scripts/demo.sh)
Hostname    "demo"
FQDNLookup  false
BaseDir     "$tmp"
PIDFile     "$tmp/collectd.pid"
PluginDir   "$tmp/plugins"
TypesDB     "$(collectd_types_db)"
Interval    $interval
AutoLoadPlugin false

LoadPlugin logfile
<Plugin logfile>
  LogLevel  info
  File      "$tmp/collectd.log"
  Timestamp true
</Plugin>

LoadPlugin csv
<Plugin csv>
  DataDir    "$tmp/csv"
  StoreRates true
</Plugin>

# No <Plugin capture> block: every process is reported, grouped by its command name.
LoadPlugin capture
EOF
if [[ -n $extra_config ]]; then
  {
    echo
    echo "# --- from $extra_config"
    grep -v '^[[:space:]]*LoadPlugin[[:space:]]\+"\{0,1\}capture"\{0,1\}[[:space:]]*$' "$extra_config"
  } >>"$conf"
fi

if ! collectd -t -C "$conf" >"$tmp/config-test.log" 2>&1; then
  cat "$tmp/config-test.log" >&2
  die "collectd rejected the configuration $conf"
fi

log "starting collectd -f -C $conf"
collectd -f -C "$conf" >>"$tmp/collectd.log" 2>&1 &
collectd_pid=$!

args=(--datadir "$tmp/csv/demo" --interval "$interval" --pid "$collectd_pid" --log "$tmp/collectd.log")
[[ $once -eq 1 ]] && args+=(--once)
[[ $seconds -gt 0 ]] && args+=(--seconds "$seconds")
[[ $rows -gt 0 ]] && args+=(--rows "$rows")
status=0
"$python" "$CAPTURE_ROOT/scripts/demo_top.py" "${args[@]}" || status=$?
exit "$status"

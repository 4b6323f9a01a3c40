#!/usr/bin/env bash
# Benchmark (not a test): a burst of new connections — 1,000 a second by default — and how
# collectd-capture keeps up (issue 5: "a burst of 1,000 new connections per second resolved
# without any full /proc rescan").
#
# Runs one collectd (Interval 1, csv writer into the temporary directory) with a bare
# `LoadPlugin capture`, N sleeping processes (so that a rescan of /proc would be expensive and
# visible), a loopback TCP server (`cb_server`) and a client (`cb_client`) that opens RATE
# short connections a second for DURATION seconds, each sending BYTES and closing (after
# HOLD_MS) — both examples/socket_load.rs. Then it reports, over the burst:
#   - bytes: what the client sent, the IP bytes the kernel sent and received in the
#     private namespace (IpExt OutOctets of /proc/net/netstat: the ground truth, as the
#     workload is the only traffic there), and what the plugin credited to cb_client and
#     cb_server (capture-<i>/if_octets) and to `unattributed`: the share attributed;
#   - the resolver: new flows a second (derive-flow_lookups), unresolved share
#     (derive-flow_unresolved), the most flows tracked (count-flows) and bytes held
#     (bytes-pending), the CPU of the capture-resolve and capture-any threads (schedstat);
#   - /proc work per lookup: the system calls of the capture-resolve thread during the burst,
#     counted with `perf stat` on syscall tracepoints (cheap, whole burst: these are the
#     rates), and, in a second shorter burst, with `strace` on that thread alone to say on
#     which paths: listings of /proc (sweeps), fd directories read in full, fd counts (stat of
#     /proc/PID/fd), fd links (readlink), /proc/PID/stat. strace stops the thread at every
#     system call, so the traced resolver falls behind and its mix differs (sockets are gone
#     by the time it asks): read it for the kinds of calls, not their numbers. A full /proc
#     rescan per lookup would show as about one fd-directory read per process, and one
#     readlink per open descriptor on the host, for each lookup; the index's own passes over
#     /proc show as one stat of /proc/PID/fd per process.
#
#   sudo bench/connection_burst.sh                    # 1,000/s for 30 s, 1,000 sleepers
#   sudo RATE=200 DURATION=10 N=100 bench/connection_burst.sh      # a quick look
#   sudo HOLD_MS=5 bench/connection_burst.sh          # connections that wait 5 ms for an answer
#
# Environment:
#   RATE=1000        new connections a second
#   DURATION=30      seconds of burst (measured)
#   BYTES=1000       bytes each connection sends
#   HOLD_MS=0        how long a connection stays open after sending
#   N=1000           sleeping processes to add
#   SOCKETS=0        TCP sockets held open by other processes (e.g. 30000: 15,000 in each of
#                    two when RLIMIT_NOFILE cannot be raised), to make the fd tables larger
#   STRACE_SECS=5    length of the strace burst (0: skip it; installs strace if missing)
#   SETTLE=8         seconds after the burst before the last reading (retries for 2 s,
#                    held bytes given up after 5 s, one interval to write them)
#   NETNS=1          run collectd and the workload in a private network namespace (only `lo`),
#                    which gives the exact IP byte count; NETNS=0: the host's (no ground truth:
#                    the capture also counts the host's other traffic)
#   CAPTURE_SO=...   use this capture.so instead of building target/release/libcapture.so
#   KEEP=1           keep the temporary directory (config, log, CSV files, traces)
# Run as root. Traffic goes to 127.0.0.1 only.
#
# A measurement, not a test: it prints figures and never fails on them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$here/../scripts/lib.sh"

RATE="${RATE:-1000}"
DURATION="${DURATION:-30}"
BYTES="${BYTES:-1000}"
HOLD_MS="${HOLD_MS:-0}"
N="${N:-1000}"
SOCKETS="${SOCKETS:-0}"
STRACE_SECS="${STRACE_SECS:-5}"
SETTLE="${SETTLE:-8}"
NETNS="${NETNS:-1}"
KEEP="${KEEP:-0}"
for v in RATE DURATION BYTES HOLD_MS N SOCKETS STRACE_SECS SETTLE NETNS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
[[ $RATE -ge 1 && $DURATION -ge 1 ]] || die "RATE and DURATION must be at least 1"
[[ $EUID -eq 0 ]] || die "run as root: capturing packets needs CAP_NET_RAW"

ensure_apt_packages "${CAPTURE_APT_PACKAGES[@]}"
[[ $STRACE_SECS -gt 0 ]] && ensure_apt_packages strace
command -v collectd >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
command -v collectd >/dev/null 2>&1 || die "collectd not found (apt-get install collectd-core)"
python="$(find_python)" || die "python3 not found"
so="$(build_plugin)"
log "building the load generator (examples/socket_load.rs)"
(cd "$CAPTURE_ROOT" && cargo build -q --release --example socket_load --target-dir target/it-workload >&2) ||
  die "cargo build --example socket_load failed"
fix_ownership

tmp="$(mktemp -d "${TMPDIR:-/tmp}/capture-burst.XXXXXX")"
ns=""
sleepers=()
workers=()
daemon=""
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [[ $status -eq 0 ]] || log "stopping (exit status $status), cleaning up"
  local pid
  for pid in ${daemon:+"$daemon"} "${workers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  if [[ ${#sleepers[@]} -gt 0 ]]; then
    kill -TERM "${sleepers[@]}" 2>/dev/null || true
  fi
  for pid in ${daemon:+"$daemon"} "${workers[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [[ -n $ns ]] && ip netns del "$ns" 2>/dev/null
  if [[ $KEEP == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_ns=()
if [[ $NETNS == 1 ]]; then
  ns="capture-burst-$$"
  ip netns add "$ns" || die "cannot create a network namespace (ip netns add)"
  ip netns exec "$ns" ip link set lo up
  in_ns=(ip netns exec "$ns")
fi

# The kernel's command name tells the two ends apart: cb_client and cb_server instances.
for role in cb_client cb_server cb_holder; do
  cp "$CAPTURE_ROOT/target/it-workload/release/examples/socket_load" "$tmp/$role"
done
make_plugin_dir "$tmp/plugins" "$so" logfile csv
types_db="$(collectd_types_db)"
cat >"$tmp/collectd.conf" <<EOF
Hostname    "bench"
FQDNLookup  false
BaseDir     "$tmp"
PIDFile     "$tmp/collectd.pid"
PluginDir   "$tmp/plugins"
TypesDB     "$types_db"
Interval    1
AutoLoadPlugin false

LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File     "$tmp/collectd.log"
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$tmp/csv"
</Plugin>
LoadPlugin capture
EOF
collectd -t -C "$tmp/collectd.conf" >"$tmp/config-test.log" 2>&1 || {
  cat "$tmp/config-test.log" >&2
  die "collectd rejected $tmp/collectd.conf"
}

# csv_all IDENT: every line collectd wrote for IDENT ("epoch,v1,..."), oldest first.
csv_all() {
  local files=("$tmp/csv/bench/$1"-*)
  [[ -f ${files[0]} ]] || return 0
  cat "${files[@]}" | grep -v '^epoch'
}
# csv_last IDENT: the newest values (without the time), "0" for each field when none yet.
csv_last() {
  local line
  line=$(csv_all "$1" | tail -n 1)
  if [[ -z $line ]]; then echo "${2:-0}"; else echo "${line#*,}"; fi
}

log "spawning $N sleeping processes"
for ((i = 0; i < N; i++)); do
  sleep 100000 &
  sleepers+=($!)
done
if [[ $SOCKETS -gt 0 ]]; then
  log "opening $SOCKETS TCP sockets over 127.0.0.1"
  "${in_ns[@]}" "$tmp/cb_holder" hold "$SOCKETS" >"$tmp/hold.out" 2>&1 &
  workers+=($!)
  for _ in $(seq 600); do
    grep -q '^ready' "$tmp/hold.out" && break
    kill -0 "${workers[-1]}" 2>/dev/null || die "socket holder failed: $(cat "$tmp/hold.out")"
    sleep 0.1
  done
  grep -q '^ready' "$tmp/hold.out" || die "socket holder not ready after 60 s"
  log "sockets $(head -n 1 "$tmp/hold.out")"
fi

log "starting collectd with capture (Interval 1)"
"${in_ns[@]}" collectd -f -C "$tmp/collectd.conf" >>"$tmp/collectd.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do
  [[ -n $(csv_all capture-self/count-processes) ]] && break
  sleep 0.2
done
kill -0 "$daemon" 2>/dev/null || {
  tail -n 20 "$tmp/collectd.log" >&2
  die "collectd exited at start"
}
# thread_tid NAME: the id of collectd's thread called NAME.
thread_tid() {
  local t
  for t in /proc/"$daemon"/task/*; do
    [[ $(cat "$t/comm" 2>/dev/null) == "$1" ]] && {
      basename "$t"
      return 0
    }
  done
  return 1
}
resolver=$(thread_tid capture-resolve) || die "collectd has no capture-resolve thread (capture not running? see $tmp/collectd.log, KEEP=1)"
capturer=$(thread_tid capture-any || true)
sleep 3
nproc_total=$(csv_last capture-self/count-processes)
nproc_total=${nproc_total%%.*}
nfds_total=$(find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)

"${in_ns[@]}" "$tmp/cb_server" tcp-server 127.0.0.1 $((DURATION + STRACE_SECS + SETTLE + 60)) >"$tmp/server.out" 2>&1 &
workers+=($!)
server=$!
for _ in $(seq 50); do
  grep -q '^port ' "$tmp/server.out" && break
  sleep 0.1
done
port=$(sed -n 's/^port //p' "$tmp/server.out")
[[ -n $port ]] || die "server did not start: $(cat "$tmp/server.out")"
sleep 1.5 # one interval: the server's instance exists before the burst

# reading: one line of every counter the report needs, "key=value" words.
sched_ns() { awk '{ print $1 }' "/proc/$daemon/task/$1/schedstat" 2>/dev/null || echo 0; }
reading() {
  local ip_out=0 ip_in=0 cl sv un
  if [[ $NETNS == 1 ]]; then
    read -r ip_in ip_out < <(awk '/^IpExt:/ { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 } else print $c["InOctets"], $c["OutOctets"] }' "/proc/$daemon/net/netstat")
  fi
  cl=$(csv_last capture-cb_client/if_octets 0,0)
  sv=$(csv_last capture-cb_server/if_octets 0,0)
  un=$(csv_last capture-unattributed/if_octets 0,0)
  printf 'time=%s lookups=%s unresolved=%s client_rx=%s client_tx=%s server_rx=%s server_tx=%s unatt_rx=%s unatt_tx=%s ip_in=%s ip_out=%s resolver_ns=%s capture_ns=%s dropped=%s\n' \
    "$(date +%s.%N)" "$(csv_last capture-self/derive-flow_lookups)" "$(csv_last capture-self/derive-flow_unresolved)" \
    "${cl%,*}" "${cl#*,}" "${sv%,*}" "${sv#*,}" "${un%,*}" "${un#*,}" "$ip_in" "$ip_out" \
    "$(sched_ns "$resolver")" "$([[ -n $capturer ]] && sched_ns "$capturer" || echo 0)" \
    "$(csv_last capture-self/derive-pcap_dropped-any)"
}

perf_events=openat,getdents64,readlinkat,readlink,statx,newfstatat,read,sendto,recvfrom,sendmsg,recvmsg
perf_ok=0
if command -v perf >/dev/null 2>&1 && perf list 'syscalls:sys_enter_getdents64' 2>/dev/null | grep -q getdents64; then
  perf_ok=1
fi

log "burst: $RATE connections/s for $DURATION s, $BYTES bytes each, held $HOLD_MS ms (server port $port)"
reading >"$tmp/before"
burst_start=$(date +%s)
if [[ $perf_ok == 1 ]]; then
  ev=()
  for e in ${perf_events//,/ }; do ev+=(-e "syscalls:sys_enter_$e"); done
  perf stat -x, -t "$resolver" "${ev[@]}" -o "$tmp/perf.csv" -- sleep "$((DURATION + SETTLE))" >/dev/null 2>&1 &
  perf_pid=$!
fi
"${in_ns[@]}" "$tmp/cb_client" tcp-burst "127.0.0.1:$port" "$RATE" "$DURATION" "$BYTES" "$HOLD_MS" >"$tmp/client.out" 2>&1 ||
  log "client: $(cat "$tmp/client.out")"
reading >"$tmp/at_end"
if [[ $perf_ok == 1 ]]; then
  wait "$perf_pid" 2>/dev/null || true
else
  sleep "$SETTLE"
fi
reading >"$tmp/after"
# The most flows and held bytes the plugin reported during the burst and the settling.
max_in_window() {
  csv_all "$1" | awk -F, -v a="$burst_start" -v b="$(date +%s)" '$1 >= a && $1 <= b && $2 > m { m = $2 } END { printf "%.0f\n", m }'
}
max_flows=$(max_in_window capture-self/count-flows)
max_pending=$(max_in_window capture-self/bytes-pending)

# The strace burst: the same client, with the resolver thread traced (which slows it down).
strace_ok=0
if [[ $STRACE_SECS -gt 0 ]] && command -v strace >/dev/null 2>&1; then
  log "strace burst: $STRACE_SECS s with the capture-resolve thread (tid $resolver) traced"
  "${in_ns[@]}" "$tmp/cb_client" tcp-burst "127.0.0.1:$port" "$RATE" $((STRACE_SECS + 2)) "$BYTES" "$HOLD_MS" >"$tmp/client2.out" 2>&1 &
  client2=$!
  workers+=("$client2")
  sleep 1
  s0=$(csv_last capture-self/derive-flow_lookups)
  timeout -s INT "$STRACE_SECS" strace -qq -p "$resolver" -o "$tmp/strace.out" \
    -e trace=openat,getdents64,readlinkat,readlink,statx,newfstatat,sendto,recvfrom,sendmsg,recvmsg >/dev/null 2>&1 || true
  sleep 1.2
  s1=$(csv_last capture-self/derive-flow_lookups)
  wait "$client2" 2>/dev/null || true
  [[ -s $tmp/strace.out ]] && strace_ok=1
fi
kill -TERM "$server" 2>/dev/null || true

echo
"$python" - "$tmp" "$RATE" "$DURATION" "$BYTES" "$HOLD_MS" "$nproc_total" "$nfds_total" "$NETNS" \
  "$max_flows" "$max_pending" "$perf_ok" "$strace_ok" "$STRACE_SECS" "${s0:-0}" "${s1:-0}" <<'EOF'
import re, sys
(tmp, rate, duration, nbytes, hold_ms, nproc, nfds, netns, max_flows, max_pending, perf_ok,
 strace_ok, strace_secs, s0, s1) = sys.argv[1:]
rate, duration, nproc, nfds = int(rate), int(duration), int(nproc), int(nfds)
def reading(name):
    words = open("%s/%s" % (tmp, name)).read().split()
    out = {}
    for w in words:
        k, v = w.split("=", 1)
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = 0.0
    return out
b, e, a = reading("before"), reading("at_end"), reading("after")
d = {k: a[k] - b[k] for k in b}
wall = e["time"] - b["time"]
client = open(tmp + "/client.out").read().strip()
server = open(tmp + "/server.out").read().strip().splitlines()
m = re.search(r"sent (\d+) in (\d+) connections \((\d+) failed, max lag (\d+) ms\)", client)
sent, conns, failed, lag = (int(x) for x in m.groups()) if m else (0, 0, 0, 0)
print("connection burst: %d connections/s for %d s (%.1f s wall), %s bytes each, held %s ms; "
      "%d processes in /proc, %d open descriptors on the host"
      % (rate, duration, wall, nbytes, hold_ms, nproc, nfds))
print("client: %d connections, %d payload bytes, %d failed, at most %d ms behind schedule"
      % (conns, sent, failed, lag))
print()
print("bytes (IP datagrams: headers + payload), over the burst and %0.f s of settling:" % (a["time"] - e["time"]))
pct = lambda x, y: "%.1f%%" % (100.0 * x / y) if y else "-"
if netns == "1":
    print("  kernel, whole namespace   sent %12.0f  received %12.0f   (IpExt OutOctets / InOctets)" % (d["ip_out"], d["ip_in"]))
print("  cb_client                 tx   %12.0f  rx       %12.0f" % (d["client_tx"], d["client_rx"]))
print("  cb_server                 tx   %12.0f  rx       %12.0f" % (d["server_tx"], d["server_rx"]))
print("  unattributed              tx   %12.0f  rx       %12.0f" % (d["unatt_tx"], d["unatt_rx"]))
if netns == "1":
    # Every packet in the namespace goes between client and server: each side should be
    # credited with all of them, as tx or rx.
    print("  attributed: server side %s, client side %s of the namespace's IP bytes (tx + rx / OutOctets)"
          % (pct(d["server_tx"] + d["server_rx"], d["ip_out"]), pct(d["client_tx"] + d["client_rx"], d["ip_out"])))
print("  client side against server side: client tx / server rx = %s, client rx / server tx = %s"
      % (pct(d["client_tx"], d["server_rx"]), pct(d["client_rx"], d["server_tx"])))
print()
lookups, unresolved = d["lookups"], d["unresolved"]
print("resolver:")
print("  new flows looked up   %8.0f  (%.0f/s; %.2f per connection)" % (lookups, lookups / duration, lookups / conns if conns else 0))
print("  unresolved            %8.0f  (%s of lookups)" % (unresolved, pct(unresolved, lookups)))
print("  most flows tracked    %8s   most bytes held for resolution %s" % (max_flows, max_pending))
res_ms = (e["resolver_ns"] - b["resolver_ns"]) / 1e6
cap_ms = (e["capture_ns"] - b["capture_ns"]) / 1e6
res_all = d["resolver_ns"] / 1e6
print("  capture-resolve CPU   %8.1f ms during the burst: %.1f%% of a core; %.1f ms with the settling, %.1f us per lookup"
      % (res_ms, res_ms / wall / 10, res_all, res_all * 1e3 / lookups if lookups else 0))
print("  capture-any CPU       %8.1f ms during the burst: %.1f%% of a core" % (cap_ms, cap_ms / wall / 10))
if d["dropped"]:
    print("  NOTE: libpcap dropped %.0f packets" % d["dropped"])
print()
burst_lookups = lookups
if perf_ok == "1":
    counts = {}
    for line in open(tmp + "/perf.csv"):
        f = line.strip().split(",")
        if len(f) > 2 and f[2].startswith("syscalls:sys_enter_"):
            try:
                counts[f[2][len("syscalls:sys_enter_"):]] = int(f[0])
            except ValueError:
                counts[f[2][len("syscalls:sys_enter_"):]] = None
    print("system calls of capture-resolve during the burst and the settling (perf stat, %d lookups):" % burst_lookups)
    for k, v in counts.items():
        if v is None:
            print("  %-12s not counted" % k)
        else:
            print("  %-12s %9d  %7.2f per lookup" % (k, v, v / burst_lookups if burst_lookups else 0))
    print("  (a full /proc rescan per lookup would be >= %d directory reads (getdents64) and ~%d readlinks each)"
          % (nproc, nfds))
    stats = (counts.get("statx") or 0) + (counts.get("newfstatat") or 0)
    span = a["time"] - b["time"]
    if nproc:
        # The index's passes over /proc stat /proc/PID/fd of every process (its fd count);
        # nothing else on this thread stats much.
        print("  stat calls / processes: %.0f passes over every process's fd count (%.1f a second, one per %.0f lookups)"
              % (stats / nproc, stats / nproc / span, burst_lookups / (stats / nproc) if stats else 0))
    print()
if strace_ok == "1":
    kinds = {"sweep: list /proc": 0, "fd directory read in full (openat)": 0, "getdents64": 0,
             "fd count (stat /proc/PID/fd)": 0, "fd link (readlink)": 0, "/proc/PID/stat (new process)": 0,
             "netlink (sock_diag, conntrack)": 0, "other": 0}
    procs_listed = set()
    for line in open(tmp + "/strace.out"):
        if "resumed>" in line and "<..." in line:
            continue
        call = line.split("(", 1)[0].strip()
        if call == "openat":
            if re.search(r'"/proc/?"', line):
                kinds["sweep: list /proc"] += 1
            elif re.search(r'"/proc/\d+/fd/?"', line):
                kinds["fd directory read in full (openat)"] += 1
                procs_listed.add(re.search(r'"/proc/(\d+)/fd', line).group(1))
            elif re.search(r'"/proc/\d+/stat"', line):
                kinds["/proc/PID/stat (new process)"] += 1
            else:
                kinds["other"] += 1
        elif call == "getdents64":
            kinds["getdents64"] += 1
        elif call in ("statx", "newfstatat"):
            kinds["fd count (stat /proc/PID/fd)" if re.search(r'"/proc/\d+/fd"', line) else "other"] += 1
        elif call in ("readlinkat", "readlink"):
            kinds["fd link (readlink)"] += 1
        elif call in ("sendto", "recvfrom", "sendmsg", "recvmsg"):
            kinds["netlink (sock_diag, conntrack)"] += 1
        elif call:
            kinds["other"] += 1
    n = float(s1) - float(s0)
    print("strace of capture-resolve over %s s of the same burst (%.0f lookups; traced, so slower):" % (strace_secs, n))
    for k, v in kinds.items():
        print("  %-38s %8d  %7.3f per lookup" % (k, v, v / n if n else 0))
    print("  distinct processes whose fd directory was read in full: %d (of %d)" % (len(procs_listed), nproc))
EOF
if grep -qiE '\] (\[)?(error|warning)' "$tmp/collectd.log"; then
  echo
  echo "collectd log warnings/errors:"
  grep -iE '\] (\[)?(error|warning)' "$tmp/collectd.log" | head -n 5 | sed 's/^/  /'
fi

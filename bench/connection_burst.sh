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
#   OWNER_SOURCE=    the plugin's OwnerSource (auto, ebpf, proc); empty: its default (auto).
#                    Run it once with ebpf and once with proc to compare the two side by side
#   SETTLE=8         seconds after the burst before the last reading (retries for 2 s,
#                    held bytes given up after 5 s, one interval to write them)
#   NETNS=1          run collectd and the workload in a private network namespace (only `lo`),
#                    which gives the exact IP byte count; NETNS=0: the host's (no ground truth:
#                    the capture also counts the host's other traffic)
#   CAPTURE_SO=...   use this capture.so instead of building target/release/libcapture.so
#   KEEP=1           keep the temporary directory (config, log, CSV files, traces)
# Run as root. Traffic goes to 127.0.0.1 only.
#
# A measurement, not a test: it prints figures and never fails on them. Its report ends with
# `RESULT connection_burst ...`, the key figures for bench/run_all.sh: the attributed shares,
# the resolver's CPU, and from perf the passes over /proc (fd-count stats / processes) and
# directory reads per lookup. The config, sleepers, socket holder, namespace, CSV and
# schedstat reading are bench/lib.sh's.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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
require_whole_numbers RATE DURATION BYTES HOLD_MS N SOCKETS STRACE_SECS SETTLE NETNS
[[ $RATE -ge 1 && $DURATION -ge 1 ]] || die "RATE and DURATION must be at least 1"
[[ $EUID -eq 0 ]] || die "run as root: capturing packets needs CAP_NET_RAW"

extra_packages=()
[[ $STRACE_SECS -gt 0 ]] && extra_packages+=(strace)
bench_prepare "${extra_packages[@]}"
load="$(build_example socket_load "the load generator")"

bench_start capture-burst
[[ $NETNS == 1 ]] && bench_netns "capture-burst-$$"

# The kernel's command name tells the two ends apart: cb_client and cb_server instances.
for role in cb_client cb_server cb_holder; do
  cp "$load" "$tmp/$role"
done
make_plugin_dir "$tmp/plugins" "$so" logfile csv
if [[ -n ${OWNER_SOURCE:-} ]]; then
  collectd_conf "$tmp" csv "LoadPlugin capture
<Plugin capture>
  OwnerSource \"$OWNER_SOURCE\"
</Plugin>"
else
  collectd_conf "$tmp" csv "LoadPlugin capture"
fi

spawn_sleepers "$N" 100000
[[ $SOCKETS -gt 0 ]] && hold_sockets "$tmp/cb_holder" "$SOCKETS"

log "starting collectd with capture (Interval 1)"
start_collectd "$tmp"
daemon=$bench_pid
wait_for_csv "$tmp" capture-self/count-processes 20 || true
require_alive "$daemon" "$tmp/collectd.log" "collectd exited at start"
resolver=$(thread_tid "$daemon" capture-resolve) || die "collectd has no capture-resolve thread (capture not running? see $tmp/collectd.log, KEEP=1)"
sleep 3
nproc_total=$(csv_last "$tmp" capture-self/count-processes)
nproc_total=${nproc_total%%.*}
nfds_total=$(find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)

"${in_ns[@]}" "$tmp/cb_server" tcp-server 127.0.0.1 $((DURATION + STRACE_SECS + SETTLE + 60)) >"$tmp/server.out" 2>&1 &
server=$!
bench_track "$server"
wait_for "$tmp/server.out" '^port ' 5 || true
port=$(sed -n 's/^port //p' "$tmp/server.out")
[[ -n $port ]] || die "server did not start: $(cat "$tmp/server.out")"
sleep 1.5 # one interval: the server's instance exists before the burst

# reading: one line of every counter the report needs, "key=value" words.
reading() {
  local ip_out=0 ip_in=0 cl sv un resolver_ns capture_ns
  require_alive "$daemon" "$tmp/collectd.log" "collectd died during the run (KEEP=1 keeps $tmp)"
  if [[ $NETNS == 1 ]]; then
    read -r ip_in ip_out < <(awk '/^IpExt:/ { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 } else print $c["InOctets"], $c["OutOctets"] }' "/proc/$daemon/net/netstat")
  fi
  cl=$(csv_last "$tmp" capture-cb_client/if_octets 0,0)
  sv=$(csv_last "$tmp" capture-cb_server/if_octets 0,0)
  un=$(csv_last "$tmp" capture-unattributed/if_octets 0,0)
  read -r resolver_ns _ capture_ns _ < <(thread_cpu "$daemon" capture-resolve capture-any)
  printf 'time=%s lookups=%s unresolved=%s client_rx=%s client_tx=%s server_rx=%s server_tx=%s unatt_rx=%s unatt_tx=%s ip_in=%s ip_out=%s resolver_ns=%s capture_ns=%s dropped=%s\n' \
    "$(date +%s.%N)" "$(csv_last "$tmp" capture-self/derive-flow_lookups)" "$(csv_last "$tmp" capture-self/derive-flow_unresolved)" \
    "${cl%,*}" "${cl#*,}" "${sv%,*}" "${sv#*,}" "${un%,*}" "${un#*,}" "$ip_in" "$ip_out" \
    "$resolver_ns" "$capture_ns" "$(csv_last "$tmp" capture-self/derive-pcap_dropped-any)"
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
  csv_rows "$tmp" "$1" | awk -F, -v a="$burst_start" -v b="$(date +%s)" '$1 >= a && $1 <= b && $2 > m { m = $2 } END { printf "%.0f\n", m }'
}
max_flows=$(max_in_window capture-self/count-flows)
max_pending=$(max_in_window capture-self/bytes-pending)

# The strace burst: the same client, with the resolver thread traced (which slows it down).
strace_ok=0
if [[ $STRACE_SECS -gt 0 ]] && command -v strace >/dev/null 2>&1; then
  log "strace burst: $STRACE_SECS s with the capture-resolve thread (tid $resolver) traced"
  "${in_ns[@]}" "$tmp/cb_client" tcp-burst "127.0.0.1:$port" "$RATE" $((STRACE_SECS + 2)) "$BYTES" "$HOLD_MS" >"$tmp/client2.out" 2>&1 &
  client2=$!
  bench_track "$client2"
  sleep 1
  s0=$(csv_last "$tmp" capture-self/derive-flow_lookups)
  timeout -s INT "$STRACE_SECS" strace -qq -p "$resolver" -o "$tmp/strace.out" \
    -e trace=openat,getdents64,readlinkat,readlink,statx,newfstatat,sendto,recvfrom,sendmsg,recvmsg >/dev/null 2>&1 || true
  sleep 1.2
  s1=$(csv_last "$tmp" capture-self/derive-flow_lookups)
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
result = dict(rate=rate, duration=duration, hold_ms=hold_ms, connections=conns, lookups="%.0f" % lookups,
              unresolved_pct="%.1f" % (100.0 * unresolved / lookups) if lookups else "-",
              server_pct="-", client_pct="-",
              resolver_core_pct="%.1f" % (res_ms / wall / 10), processes=nproc, perf=perf_ok,
              getdents_per_lookup="-", readlinks_per_lookup="-", passes="-", passes_per_s="-",
              passes_per_lookup="-")
if netns == "1" and d["ip_out"]:
    result["server_pct"] = "%.1f" % (100.0 * (d["server_tx"] + d["server_rx"]) / d["ip_out"])
    result["client_pct"] = "%.1f" % (100.0 * (d["client_tx"] + d["client_rx"]) / d["ip_out"])
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
        result.update(passes="%.1f" % (stats / nproc), passes_per_s="%.2f" % (stats / nproc / span))
        if burst_lookups:
            result["passes_per_lookup"] = "%.4f" % (stats / nproc / burst_lookups)
    if burst_lookups:
        result["getdents_per_lookup"] = "%.2f" % ((counts.get("getdents64") or 0) / burst_lookups)
        result["readlinks_per_lookup"] = "%.2f" % (
            ((counts.get("readlinkat") or 0) + (counts.get("readlink") or 0)) / burst_lookups)
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
print("RESULT connection_burst " + " ".join("%s=%s" % kv for kv in result.items()))
EOF
show_log_warnings "$tmp/collectd.log" "collectd log warnings/errors:"

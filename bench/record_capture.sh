#!/usr/bin/env bash
# Records benches/fixtures/loopback-mix.pcap, the capture the packet benchmark replays: real
# traffic on loopback, captured on `any` as the plugin captures it (Linux cooked v2 headers,
# 96-byte snap length, no payload beyond the headers), of the kinds the plugin must attribute:
#   - 200 short TCP connections of 20 KB each over 127.0.0.1 and 200 over ::1,
#   - 3,000 UDP datagrams of 200 bytes from unconnected sockets over 127.0.0.1 and ::1,
#   - two bulk TCP transfers of 5 MB, over 127.0.0.1 and ::1.
#
#   sudo bench/record_capture.sh     # needs root (capture); rewrites the fixture
#   sudo OUT=/tmp/mix.pcap bench/record_capture.sh   # somewhere else (a try; the fixture stays)
#
# The fixture is committed so the benchmark needs neither root nor traffic; rerun this only to
# change the mix. The workload's build, the temporary directory and the cleanup (servers and
# tcpdump stopped) are bench/lib.sh's; the servers are now stopped at exit rather than left to
# end on their own after 30 s.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# OUT relative to where it is run from; the fixture relative to the root (the cd below).
out=benches/fixtures/loopback-mix.pcap
[[ -z ${OUT-} ]] || out="$(realpath -m "$OUT")"
ensure_apt_packages tcpdump
bin="$(build_example capture_workload "the tests' workload")"
bench_start capture-record
cd "$CAPTURE_ROOT"

# serve KIND IP: starts a server of the workload, sets $port once it listens. Only the
# workload's traffic is captured: its ports are known once its servers are up.
serve() {
  "$bin" "$1" "$2" 30 >"$tmp/$1-$2.out" &
  bench_track $!
  wait_for "$tmp/$1-$2.out" '^port ' 5 || true
  port=$(sed -n 's/^port //p' "$tmp/$1-$2.out")
}
serve tcp-serve 127.0.0.1 && t4=$port
serve tcp-serve ::1 && t6=$port
serve udp-recv 127.0.0.1 && u4=$port
serve udp-recv ::1 && u6=$port
filter="port $t4 or port $t6 or port $u4 or port $u6"
tcpdump -i any -y LINUX_SLL2 -s 96 -U -w "$tmp/mix.pcap" "$filter" 2>"$tmp/tcpdump.err" &
tcpdump_pid=$!
bench_track "$tcpdump_pid"
sleep 1
"$bin" tcp-send "127.0.0.1:$t4" 20000 200 0 >/dev/null
"$bin" tcp-send "[::1]:$t6" 20000 200 0 >/dev/null
"$bin" udp-send "127.0.0.1:$u4" 3000 200 0 >/dev/null
"$bin" udp-send "[::1]:$u6" 3000 200 0 >/dev/null
"$bin" tcp-send "127.0.0.1:$t4" 5000000 1 0 >/dev/null
"$bin" tcp-send "[::1]:$t6" 5000000 1 0 >/dev/null
sleep 1
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" || true
cp "$tmp/mix.pcap" "$out"
tail -n 3 "$tmp/tcpdump.err"
ls -l "$out"

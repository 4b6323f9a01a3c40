#!/usr/bin/env bash
# Records benches/fixtures/loopback-mix.pcap, the capture the packet benchmark replays: real
# traffic on loopback, captured on `any` as the plugin captures it (Linux cooked v2 headers,
# 96-byte snap length, no payload beyond the headers), of the kinds the plugin must attribute:
#   - 200 short TCP connections of 20 KB each over 127.0.0.1 and 200 over ::1,
#   - 3,000 UDP datagrams of 200 bytes from unconnected sockets over 127.0.0.1 and ::1,
#   - two bulk TCP transfers of 5 MB, over 127.0.0.1 and ::1.
#
#   sudo bench/record_capture.sh     # needs root (capture); rewrites the fixture
#
# The fixture is committed so the benchmark needs neither root nor traffic; rerun this only to
# change the mix.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v tcpdump >/dev/null || apt-get install -y -qq tcpdump >/dev/null
cargo build -q --release --example capture_workload --target-dir target/it-workload
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
bin=target/it-workload/release/examples/capture_workload
out=benches/fixtures/loopback-mix.pcap

# Only the workload's traffic: its ports are known once its servers are up.
serve() { # kind ip -> port
    "$bin" "$1" "$2" 30 >"$work/$1-$2.out" &
    for _ in $(seq 50); do grep -q '^port ' "$work/$1-$2.out" && break; sleep 0.1; done
    sed -n 's/^port //p' "$work/$1-$2.out"
}
t4=$(serve tcp-serve 127.0.0.1)
t6=$(serve tcp-serve ::1)
u4=$(serve udp-recv 127.0.0.1)
u6=$(serve udp-recv ::1)
filter="port $t4 or port $t6 or port $u4 or port $u6"
tcpdump -i any -y LINUX_SLL2 -s 96 -U -w "$work/mix.pcap" "$filter" 2>"$work/tcpdump.err" &
tcpdump_pid=$!
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
cp "$work/mix.pcap" "$out"
tail -n 3 "$work/tcpdump.err"
ls -l "$out"

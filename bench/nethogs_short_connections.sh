#!/usr/bin/env bash
# How nethogs attributes the short-connection workload of tests/network.rs: 100 TCP connections
# over 127.0.0.1, each opening, sending 100 KB and closing in well under a millisecond.
# collectd-capture attributes 100% of those bytes to both ends (see the integration test
# short_connections_are_attributed); this prints what `nethogs -t` makes of the same traffic.
#
#   sudo bench/nethogs_short_connections.sh        # needs root; installs nethogs if missing
#
# A measurement, not a test: it never fails on the numbers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v nethogs >/dev/null || apt-get install -y -qq nethogs >/dev/null
# The workload binary, built apart so the plugin's own build is untouched (as the tests do).
cargo build -q --release --example capture_workload --target-dir target/it-workload
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cp target/it-workload/release/examples/capture_workload "$work/nh_srv"
cp target/it-workload/release/examples/capture_workload "$work/nh_cli"

nethogs -a -t -v 2 -d 1 lo >"$work/nethogs.out" 2>/dev/null &
sleep 2
"$work/nh_srv" tcp-serve 127.0.0.1 20 >"$work/srv.out" &
for _ in $(seq 50); do grep -q '^port ' "$work/srv.out" && break; sleep 0.1; done
port=$(sed -n 's/^port //p' "$work/srv.out")
"$work/nh_cli" tcp-send "127.0.0.1:$port" 100000 100 6 >"$work/cli.out" &
sleep 5
kill %1 2>/dev/null || true
sleep 0.5

# nethogs -t prints, each refresh, "program/pid/uid<TAB>sent<TAB>received" (bytes with -v 2,
# cumulative); take the last value per program.
awk -F'\t' '/nh_(cli|srv)|unknown/ { last[$1] = $2 "\t" $3 } END { for (p in last) print p "\t" last[p] }' \
  "$work/nethogs.out" | sort >"$work/summary"
echo "payload: 100 connections x 100000 bytes = 10000000 bytes each way"
echo "nethogs -t (program/pid/uid, sent bytes, received bytes):"
if [[ -s $work/summary ]]; then cat "$work/summary"; else echo "  (nothing attributed)"; fi

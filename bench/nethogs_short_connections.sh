#!/usr/bin/env bash
# How nethogs attributes the short-connection workload of tests/network.rs: 100 TCP connections
# over 127.0.0.1, each opening, sending 100 KB and closing in well under a millisecond.
# collectd-capture attributes 100% of those bytes to both ends (see the integration test
# short_connections_are_attributed); this prints what `nethogs -t` makes of the same traffic.
#
#   sudo bench/nethogs_short_connections.sh        # needs root; installs nethogs if missing
#
# A measurement, not a test: it never fails on the numbers. Its last line,
# `RESULT nethogs_short_connections ...`, gives bench/run_all.sh the bytes nethogs credited to
# the client (sent) and the server (received), also as a share of the payload. The workload's
# build, the temporary directory and the cleanup are bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_apt_packages nethogs
workload="$(build_example capture_workload "the tests' workload")"
bench_start capture-nethogs
cp "$workload" "$tmp/nh_srv"
cp "$workload" "$tmp/nh_cli"

payload=$((100 * 100000))
nethogs -a -t -v 2 -d 1 lo >"$tmp/nethogs.out" 2>/dev/null &
nethogs_pid=$!
bench_track "$nethogs_pid"
sleep 2
"$tmp/nh_srv" tcp-serve 127.0.0.1 20 >"$tmp/srv.out" &
bench_track $!
wait_for "$tmp/srv.out" '^port ' 5 || true
port=$(sed -n 's/^port //p' "$tmp/srv.out")
"$tmp/nh_cli" tcp-send "127.0.0.1:$port" 100000 100 6 >"$tmp/cli.out" &
bench_track $!
sleep 5
kill "$nethogs_pid" 2>/dev/null || true
sleep 0.5

# nethogs -t prints, each refresh, "program/pid/uid<TAB>sent<TAB>received" (bytes with -v 2,
# cumulative); take the last value per program.
awk -F'\t' '/nh_(cli|srv)|unknown/ { last[$1] = $2 "\t" $3 } END { for (p in last) print p "\t" last[p] }' \
  "$tmp/nethogs.out" | sort >"$tmp/summary"
echo "payload: 100 connections x 100000 bytes = $payload bytes each way"
echo "nethogs -t (program/pid/uid, sent bytes, received bytes):"
if [[ -s $tmp/summary ]]; then cat "$tmp/summary"; else echo "  (nothing attributed)"; fi
bench_result nethogs_short_connections "payload=$payload" "$(awk -F'\t' -v p="$payload" '
  $1 ~ /nh_cli/ { c += $2 } $1 ~ /nh_srv/ { s += $3 } $1 ~ /^unknown/ { u += $2 + $3 }
  END { printf "client_sent=%.0f server_received=%.0f unknown=%.0f client_pct=%.1f server_pct=%.1f", c, s, u, 100 * c / p, 100 * s / p }
' "$tmp/summary")"

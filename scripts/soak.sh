#!/usr/bin/env bash
# Soak: tests/churn.rs for an hour instead of a minute. A real collectd (csv writer,
# MaxInstances 20, one instance per process) under 150 processes a second started and killed,
# 2,000 loopback TCP connections a second and pid reuse (ns_last_pid pinned), then the same
# checks as the CI test: no DERIVE column of any instance ever decreases, at most MaxInstances
# process instances per interval, collectd's RSS after warm-up (the first third) within 4 MiB,
# no panic, no repeated warning.
#
#   sudo scripts/soak.sh                 # one hour
#   sudo DURATION=600 scripts/soak.sh    # ten minutes
#
# Prints the test's summary: processes spawned and pids reused, connections, instances written
# and the most per interval, counter files checked and decreases, and collectd's RSS growth
# after warm-up (KiB, and the least-squares slope in KiB/min). The whole output goes to
# target/soak-<date>.log. Needs root, like the integration tests; exits with the test's status.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION="${DURATION:-3600}"
if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || ((DURATION < 30)); then
  die "DURATION must be a number of seconds, at least 30"
fi
[[ $EUID -eq 0 ]] || die "run as root: the test runs collectd and pins /proc/sys/kernel/ns_last_pid"
require_cargo
cd "$CAPTURE_ROOT"

out="$(capture_target_dir)/soak-$(date -u +%Y%m%dT%H%M%SZ).log"
mkdir -p "$(dirname "$out")"
log "soak for ${DURATION} s (tests/churn.rs with CHURN_SECS=${DURATION}); full output in $out"
status=0
CHURN_SECS="$DURATION" cargo test --release --test churn -- --nocapture >"$out" 2>&1 || status=$?
grep -E '^(churn |instances written|collectd RSS)' "$out" || true
if ((status == 0)); then
  log "soak passed"
else
  grep -E 'panicked at|counters went backwards|an interval had|RSS grew|repeated' -A3 "$out" | head -40 || true
  log "soak FAILED (status $status): see $out"
fi
exit "$status"

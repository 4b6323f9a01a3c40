#!/usr/bin/env bash
# The test command: unit tests, integration tests against a real collectd, benches in test mode.
#
#   sudo scripts/test.sh            # as root: installs what is missing, runs every test
#   scripts/test.sh                 # as a user: same, tests that need root say so and skip
#   scripts/test.sh -- --nocapture  # extra arguments go to the unit and integration test run
#
# Installs the Debian packages it needs when run as root (CAPTURE_APT_PACKAGES and
# CAPTURE_TEST_APT_PACKAGES of scripts/lib.sh: the build, nftables, prometheus, and the libraries
# of the stock collectd plugins the tests load, which collectd-core does not pull in) and skips
# apt entirely when they are all present; and cargo-deb (the package test) when it is missing.
# The integration tests in tests/ build target/release/libcapture.so themselves.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_apt_packages "${CAPTURE_APT_PACKAGES[@]}" "${CAPTURE_TEST_APT_PACKAGES[@]}"
require_cargo
ensure_cargo_tool deb
cd "$CAPTURE_ROOT"

# `cargo test --all-targets`, in an order that puts the unit and integration tests last, so their
# summary closes the output (examples have no tests of their own: their "0 passed" would).
status=0
log "cargo test --all-targets --no-run (build every target once)"
cargo test --all-targets --no-run || status=$?
# Examples and benchmarks (criterion runs each benchmark once in test mode). Globs rather than
# --examples/--benches, which would also pick the lib target and run its tests twice; a glob that
# matches nothing is an error, so only the kinds that exist are named.
others=()
metadata="$(cargo metadata --no-deps --format-version 1 2>/dev/null || true)"
[[ $metadata == *'"kind":["example"]'* ]] && others+=(--example '*')
[[ $metadata == *'"kind":["bench"]'* ]] && others+=(--bench '*')
if [[ $status -eq 0 && ${#others[@]} -gt 0 ]]; then
  log "cargo test ${others[*]}"
  cargo test "${others[@]}" || status=$?
fi
if [[ $status -eq 0 ]]; then
  log "cargo test --lib --bins --tests --no-fail-fast $*"
  cargo test --lib --bins --tests --no-fail-fast "$@" || status=$?
fi
# The attribution tests again with /proc as the only owner source (OwnerSource "proc"): what a
# host without eBPF gets must not regress. As root only (as a user they skip anyway).
if [[ $status -eq 0 && $EUID -eq 0 ]]; then
  log "CAPTURE_TEST_OWNER_SOURCE=proc cargo test (the attribution tests, /proc as owner source)"
  CAPTURE_TEST_OWNER_SOURCE=proc cargo test --no-fail-fast --test network --test namespaces \
    --test reuse --test second_chances --test privileges "$@" || status=$?
fi
# Silent; cargo's own summary stays the last thing printed.
fix_ownership >/dev/null 2>&1 || true
exit "$status"

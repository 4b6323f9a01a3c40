#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ (packet, proc, netlink, config, template) for a given
# time each, one after the other, and prints a table: target, executions, exec/s, corpus size,
# crashes.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     # default 60
#   FUZZ_TARGETS="packet proc" scripts/fuzz.sh 300
#
# Not a test: nothing runs it in `cargo test` or scripts/test.sh. It needs a Rust toolchain
# and installs cargo-fuzz if missing (`cargo install --locked cargo-fuzz`). cargo-fuzz passes
# nightly-only flags (`-Zsanitizer`, sanitizer coverage); on a stable toolchain this script sets
# RUSTC_BOOTSTRAP=1 for them, and builds with AddressSanitizer, falling back to no sanitizer
# (`-s none`: Rust's own bounds checks and panics still fail a run) when that build fails.
# FUZZ_SANITIZER=none|address forces one.
#
# Targets run one at a time (one core each: the machine is shared). Each one's corpus grows in
# fuzz/corpus/<target>/ (only the committed seed-* files are tracked), a crash is written to
# fuzz/artifacts/<target>/ and the run goes on (restarted for what is left of its time, at most
# FUZZ_MAX_RESTARTS times, default 5); libFuzzer's output is in fuzz/logs/<target>.log. To
# replay a crash: `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/crash-...`.
# Exit status 1 when any target crashed.
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]   (a positive integer, default 60)" >&2
    exit 2
fi
max_restarts=${FUZZ_MAX_RESTARTS:-5}
cd "$(dirname "$0")/.."
root=$PWD
export RUSTC_BOOTSTRAP=1

if ! command -v cargo >/dev/null; then
    for dir in "$HOME/.cargo/bin" "${SUDO_USER:+$(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo/bin}"; do
        [[ -n $dir && -x $dir/cargo ]] && PATH=$dir:$PATH && break
    done
fi
command -v cargo >/dev/null || { echo "fuzz.sh: no cargo on PATH (https://rustup.rs)" >&2; exit 1; }
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
sanitizer=${FUZZ_SANITIZER:-}
if [[ -z $sanitizer ]]; then
    sanitizer=address
    if ! cargo fuzz build -s address >"$root/fuzz/build.log" 2>&1; then
        echo "fuzz.sh: the AddressSanitizer build failed (fuzz/build.log); building without" >&2
        sanitizer=none
    fi
fi
cargo fuzz build -s "$sanitizer" >"$root/fuzz/build.log" 2>&1 || {
    cat "$root/fuzz/build.log" >&2
    exit 1
}

mkdir -p fuzz/logs
rows=()
crashed=0
for target in $targets; do
    artifacts=fuzz/artifacts/$target
    mkdir -p "$artifacts" "fuzz/corpus/$target"
    before=$(find "$artifacts" -type f | wc -l)
    log=fuzz/logs/$target.log
    : >"$log"
    execs=0
    restarts=0
    # Built before the clock starts: exec/s counts fuzzing time only.
    cargo fuzz build -s "$sanitizer" "$target" >>"$root/fuzz/build.log" 2>&1
    start=$(date +%s)
    echo "fuzz.sh: $target for ${seconds}s (sanitizer: $sanitizer)" >&2
    while :; do
        left=$((seconds - ($(date +%s) - start)))
        ((left > 0)) || break
        status=0
        cargo fuzz run -s "$sanitizer" "$target" -- -max_total_time="$left" \
            -print_final_stats=1 >>"$log" 2>&1 || status=$?
        # Executions of this run: the final stats, or on a crash the last status line.
        n=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
        if ((status != 0)); then
            n=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
        fi
        execs=$((execs + ${n:-0}))
        # Final stats are counted once: mark them read.
        sed -i 's/stat::number_of_executed_units/stat::counted_executed_units/' "$log"
        ((status == 0)) && break
        restarts=$((restarts + 1))
        if ((restarts > max_restarts)); then
            echo "fuzz.sh: $target: $max_restarts restarts after crashes; next target" >&2
            break
        fi
    done
    elapsed=$(($(date +%s) - start))
    crashes=$(($(find "$artifacts" -type f | wc -l) - before))
    ((crashes == 0)) || crashed=1
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    rows+=("$(printf '%-10s %14s %10s %8s %8s' "$target" "$execs" \
        "$((execs / (elapsed > 0 ? elapsed : 1)))" "$corpus" "$crashes")")
done

printf '\n%-10s %14s %10s %8s %8s\n' target executions exec/s corpus crashes
printf '%s\n' "${rows[@]}"
printf '\n(%ss per target, sanitizer %s; logs in fuzz/logs/, crashes in fuzz/artifacts/)\n' \
    "$seconds" "$sanitizer"
exit "$crashed"

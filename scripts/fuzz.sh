#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time (default 30 s each). A crash fails
# the run and leaves the input in fuzz/artifacts/TARGET/ (turn it into a regression test).
# Needs cargo-fuzz (installed here if missing); the stable toolchain runs it with
# RUSTC_BOOTSTRAP=1, since libFuzzer's sanitizer flags are nightly-only.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-30}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
for t in $targets; do
    echo "fuzz.sh: $t for ${SECONDS_PER_TARGET}s"
    mkdir -p "fuzz/corpus/$t"
    log=$(mktemp)
    if ! cargo fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz.sh: $t FAILED (see fuzz/artifacts/$t)" >&2
        exit 1
    fi
    grep -E '^(#[0-9]+[[:space:]]+DONE|Done [0-9]+ runs)' "$log" || tail -n 3 "$log"
    rm -f "$log"
done
echo "fuzz.sh: all targets ran without a crash"

#!/usr/bin/env bash
# The whole test suite, as CI runs it (`.ci/run` calls exactly this):
#   formatting and lints, unit and integration tests (both crypto backends of the data plane),
#   bounded fuzzing of every parser, and the end-to-end tests in network namespaces.
# As root it first installs what the namespace tests need (scripts/install-deps.sh).
# Outside CI, tests that need root or packages skip with a printed reason; with CI=true they fail.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"

step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" = 0 ] && [ -x scripts/install-deps.sh ]; then
    step "installing test dependencies"
    scripts/install-deps.sh
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (workspace)"
cargo test --workspace

step "cargo test ferrovpn-esp with the RustCrypto backend"
cargo test -p ferrovpn-esp --no-default-features --features rustcrypto

step "bounded fuzzing (${FUZZ_SECONDS}s per target)"
scripts/fuzz.sh "$FUZZ_SECONDS"

e2e_passed=0
if [ -d tests/e2e ]; then
    for t in tests/e2e/*.sh; do
        [ -e "$t" ] || continue
        step "end-to-end: $t"
        bash "$t"
        e2e_passed=$((e2e_passed + 1))
    done
fi

step "all tests passed"
echo "end-to-end scripts: ${e2e_passed} passed, 0 failed"

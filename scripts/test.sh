#!/usr/bin/env bash
# The whole test suite, as CI runs it (`.ci/run` calls exactly this):
#   formatting and lints, unit and integration tests (both crypto backends of the data plane),
#   bounded fuzzing of every parser, and the end-to-end tests in network namespaces.
# As root it first installs what the namespace tests need (scripts/install-deps.sh).
# Outside CI, tests that need root or packages skip with a printed reason; with CI=true they fail.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
# A fresh run writes about 5 GB (debug, release, fuzz builds). Incremental caches only help
# repeated local builds; in a one-shot run they double the debug tree.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
MIN_FREE_GB="${FERROVPN_TEST_MIN_FREE_GB:-8}"

step() { printf '\n==> %s\n' "$*"; }

# Fail at the start, with the reason, rather than as an LLVM I/O error half an hour in.
free_gb() { df -P -BG "${CARGO_TARGET_DIR:-target}" 2>/dev/null | awk 'NR==2 {gsub("G","",$4); print $4}'; }
mkdir -p "${CARGO_TARGET_DIR:-target}"
avail=$(free_gb)
if [ -n "$avail" ] && [ "$avail" -lt "$MIN_FREE_GB" ]; then
    echo "test.sh: only ${avail} GB free where the build goes ($(cd "${CARGO_TARGET_DIR:-target}" && pwd));" >&2
    echo "test.sh: a full run needs about ${MIN_FREE_GB} GB (set FERROVPN_TEST_MIN_FREE_GB to override)" >&2
    exit 1
fi
echo "test.sh: ${avail:-?} GB free for the build"

if [ "$(id -u)" = 0 ] && [ -x scripts/install-deps.sh ]; then
    step "installing test dependencies"
    scripts/install-deps.sh
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "shell scripts: syntax, and nothing piped into grep -q"
# Under pipefail, \`cmd | grep -q\` fails at random: grep exits at its first match and cmd dies
# of SIGPIPE if it writes after that. Capture first, or use e2e_has.
mapfile -t shell_scripts < <(find .ci scripts tests -type f \( -name '*.sh' -o -path .ci/run \) | sort)
for f in "${shell_scripts[@]}"; do bash -n "$f"; done
if grep -nE '(^|[^|])\|[[:space:]]*grep[[:space:]]+(-[[:alnum:]]*q|--quiet)' "${shell_scripts[@]}" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*#'; then
    echo "test.sh: the lines above pipe into grep -q; capture the output first" >&2
    exit 1
fi
echo "${#shell_scripts[@]} scripts checked"

step "module cycles (every use-arrow between a crate's modules points one way)"
python3 scripts/module_cycles.py crates/ike/src crates/esp/src crates/ferrovpn/src

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

step "Debian package (scripts/package.sh: cargo deb, dpkg -x, systemd-analyze verify)"
scripts/package.sh

step "all tests passed"
du -sh "${CARGO_TARGET_DIR:-target}" fuzz/target 2>/dev/null | sed 's/^/build tree: /' || true
echo "end-to-end scripts: ${e2e_passed} passed, 0 failed"

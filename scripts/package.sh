#!/usr/bin/env bash
# Builds the Debian package (target/debian/ferrovpn_VERSION_ARCH.deb) and checks it: unpacked
# with `dpkg -x` into a temporary directory, every expected file must be there, the packaged
# binary must run, and `systemd-analyze verify` must accept the unit (required with CI=true,
# skipped with a reason otherwise when systemd-analyze is missing).
#
# Installs cargo-deb (`cargo install cargo-deb --locked`) if missing. Slow: cargo-deb's install
# and the release build (thin LTO, one codegen unit) take minutes; the script prints each
# step's duration. Man pages and completions come from the clap definitions through the
# xtask package (`cargo run -p xtask -- assets DIR`), which normal builds never compile.
set -euo pipefail
cd "$(dirname "$0")/.."

step_start=$SECONDS
step() {
    echo "package.sh: $1 ($((SECONDS - step_start))s)"
    step_start=$SECONDS
}
fail() {
    echo "package.sh: FAIL: $*" >&2
    exit 1
}

if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "package.sh: installing cargo-deb"
    cargo install cargo-deb --locked
    step "cargo-deb installed"
fi

cargo build --release --locked -p ferrovpn
step "release build"

assets=target/release/assets
rm -rf "$assets"
cargo run --locked -q -p xtask -- assets "$assets"
gzip -9n "$assets"/man/*.1
step "man pages and completions generated"

# The release profile keeps line tables (debug = 1) for profiling; the package ships without.
cargo deb --no-build --locked --strip -p ferrovpn
deb=$(ls -t target/debian/ferrovpn_*.deb | head -n 1)
step "packaged $deb"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg -x "$deb" "$tmp/root"
dpkg-deb --info "$deb" | sed 's/^/    /'
expected=(
    usr/bin/ferrovpn
    lib/systemd/system/ferrovpn.service
    etc/ferrovpn/examples/route-based.toml
    etc/ferrovpn/examples/policy-based.toml
    usr/share/doc/ferrovpn/config-README.md
    usr/share/doc/ferrovpn/README.md
    usr/share/doc/ferrovpn/copyright
    usr/share/man/man1/ferrovpn.1.gz
    usr/share/man/man1/ferrovpn-up.1.gz
    usr/share/man/man1/ferrovpn-check.1.gz
    usr/share/man/man1/ferrovpn-import.1.gz
    usr/share/man/man1/ferrovpn-reload.1.gz
    usr/share/bash-completion/completions/ferrovpn
    usr/share/zsh/vendor-completions/_ferrovpn
    usr/share/fish/vendor_completions.d/ferrovpn.fish
)
for f in "${expected[@]}"; do
    [ -e "$tmp/root/$f" ] || fail "$f is not in $deb"
done
[ -x "$tmp/root/usr/bin/ferrovpn" ] || fail "usr/bin/ferrovpn is not executable"
# Outputs are captured before grep -q: under pipefail, `cmd | grep -q` fails when grep exits
# at its first match while cmd is still writing.
if command -v readelf >/dev/null 2>&1 && grep -q '\.debug_info' <<<"$(readelf -S "$tmp/root/usr/bin/ferrovpn")"; then
    fail "usr/bin/ferrovpn still carries debug info"
fi
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
grep -qx /etc/ferrovpn/examples/route-based.toml <<<"$conffiles" || fail "the example configs are not conffiles"
"$tmp/root/usr/bin/ferrovpn" --version
grep -q 'ferrovpn\\-import' <<<"$(zcat "$tmp/root/usr/share/man/man1/ferrovpn-import.1.gz")" || fail "ferrovpn-import.1 has no NAME"
grep -q 'complete -F' "$tmp/root/usr/share/bash-completion/completions/ferrovpn" || fail "bash completion is empty"
# The packaged binary validates the packaged example (warnings for its missing key files).
"$tmp/root/usr/bin/ferrovpn" check -c "$tmp/root/etc/ferrovpn/examples/policy-based.toml" >/dev/null ||
    fail "the packaged ferrovpn refuses the packaged example configuration"
echo "package.sh: $deb holds the ${#expected[@]} expected files:"
(cd "$tmp/root" && find . -type f | sort | sed 's/^\./    /')

if command -v systemd-analyze >/dev/null 2>&1; then
    # verify needs the unit's executables to exist: point them at the unpacked binary.
    sed "s|/usr/bin/ferrovpn|$tmp/root/usr/bin/ferrovpn|g" \
        "$tmp/root/lib/systemd/system/ferrovpn.service" >"$tmp/ferrovpn.service"
    if ! out=$(systemd-analyze verify --man=no "$tmp/ferrovpn.service" 2>&1); then
        echo "$out" >&2
        fail "systemd-analyze verify refused ferrovpn.service"
    fi
    [ -z "$out" ] || echo "$out"
    echo "package.sh: systemd-analyze verify accepted ferrovpn.service"
elif [ "${CI:-}" = true ]; then
    fail "systemd-analyze is missing (apt-get install systemd)"
else
    echo "package.sh: SKIP systemd-analyze verify: systemd-analyze is not installed"
fi
step "checked"
echo "package.sh: OK $deb (total ${SECONDS}s)"

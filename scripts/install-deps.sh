#!/usr/bin/env bash
# Installs what the namespace tests, the strongSwan interop captures, the demo and the benchmarks
# need on a fresh Debian 12 machine (run as root). Idempotent and non-interactive: it runs
# `apt-get update` and `apt-get install` only when a package is missing, so a second run is fast.
#   --bench-rivals   also the optional rivals of scripts/bench.sh (BENCH_RIVALS=1): Debian's
#                    wireguard-go and wireguard-tools (`wg`), and boringtun-cli from crates.io
#                    (`cargo install --locked`, into ~/.cargo/bin; a few minutes of compiling)
set -euo pipefail

RIVALS=0
for arg in "$@"; do
    case "$arg" in
        --bench-rivals) RIVALS=1 ;;
        *) echo "install-deps.sh: unknown option $arg (known: --bench-rivals)" >&2; exit 2 ;;
    esac
done
BORINGTUN_VERSION=0.7.1

PACKAGES=(
    iproute2            # ip netns, veth, addresses, routes
    iputils-ping        # ping through tunnels
    iperf3              # throughput benchmarks
    tshark              # captures and ISAKMP/ESP dissection
    nftables iptables   # firewall rules in namespaces (NAT scenarios)
    util-linux          # unshare, mount (private /run per charon)
    procps              # ps, pgrep -P used to inspect our own children
    python3             # small capture-processing scripts
    openssl             # AES/3DES-CBC decryption of captured IKEv1 messages
    python3-cryptography   # AES-GCM check of captured ESP packets
    strongswan-charon strongswan-swanctl
    libcharon-extra-plugins libstrongswan-extra-plugins
    libcharon-extauth-plugins   # xauth-generic: strongSwan as XAuth gateway (remote_access.sh)
    libstrongswan-standard-plugins   # openssl and gcm plugins (AES-GCM ESP, ECP groups)
    ca-certificates
)

[ "$RIVALS" = 0 ] || PACKAGES+=(wireguard-go wireguard-tools)

# boringtun-cli when asked for and missing (after the Debian packages, which never need it).
install_boringtun() {
    [ "$RIVALS" = 1 ] || return 0
    if command -v boringtun-cli >/dev/null 2>&1 || [ -x "${HOME:-/root}/.cargo/bin/boringtun-cli" ]; then
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || { echo "install-deps.sh: boringtun-cli needs cargo (rustup)" >&2; exit 1; }
    echo "install-deps.sh: cargo install boringtun-cli $BORINGTUN_VERSION"
    cargo install --locked --version "$BORINGTUN_VERSION" boringtun-cli
}

if [ "$(id -u)" != 0 ]; then
    echo "install-deps.sh: must run as root (apt-get install)" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps.sh: all ${#PACKAGES[@]} packages present"
    install_boringtun
    exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}"

# Debian starts a system-wide charon (strongswan-starter / strongswan.service) when one is
# installed; our tests run their own charons in namespaces, so make sure none runs outside them.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now strongswan.service strongswan-starter.service >/dev/null 2>&1 || true
fi
install_boringtun
echo "install-deps.sh: done"

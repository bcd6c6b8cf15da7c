#!/usr/bin/env bash
# A/B of well-kept crates against ferrovpn's own code, in one sitting (issue 17; results in
# docs/DEPENDENCIES.md and docs/BENCHMARKS.md). Builds benches/crate-ab (its own workspace: the
# candidates never enter the product's Cargo.lock) and runs, as root, inside a network namespace
# it creates and deletes (scripts/lib/netns.sh), on loopback and TUN devices only
# (192.0.2.1 on lo, 198.51.100.0/24 on the TUNs):
#   udp   UDP GSO send: ferrovpn's sendmmsg batch vs quinn-udp (alternating rounds, medians)
#   tun   TUN write/read pkt/s: ferrovpn::tun vs tun-rs (alternating rounds, medians)
#   gso   TSO super-packet split in memory: esp::offload::Segmenter vs tun-rs gso_split
#   gro   TUN write with GRO (IFF_VNET_HDR): esp::offload::Gro + writev vs tun-rs send_multiple
#   pcap  capture reading: decode/capture.rs vs pcap-file, same files + damaged copies
#   prom  exposition: daemon/metrics vs prometheus-client's Prometheus text encoder
# Env: ROUNDS (default 7), PACKETS (default 400000), SIZE (default 1400), BENCHES (default
# "prom pcap gso udp tun gro").
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib/netns.sh"

ROUNDS="${ROUNDS:-7}"
PACKETS="${PACKETS:-400000}"
SIZE="${SIZE:-1400}"
BENCHES="${BENCHES:-prom pcap gso udp tun gro}"

cargo build --release --quiet --manifest-path "$ROOT/benches/crate-ab/Cargo.toml" \
    --target-dir "$ROOT/target"
BIN="$ROOT/target/release"

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"

for b in $BENCHES; do
    case "$b" in
    prom)
        echo "== prom"
        "$BIN/prom"
        ;;
    pcap)
        echo "== pcap"
        # shellcheck disable=SC2046
        "$BIN/pcap" $(find "$ROOT/tests/data" -name '*.pcap' -o -name '*.pcapng' | sort)
        ;;
    gso)
        echo "== gso"
        "$BIN/gso" "$ROUNDS" 50000
        ;;
    udp | tun | gro)
        require_root_or_skip "bench-crates.sh $b needs a network namespace"
        if [ -z "${FV_ID:-}" ]; then fv_init; fi
        ns="${FV_ID}$b"
        fv_ns_create "$ns"
        echo "== $b (namespace $ns)"
        if [ "$b" = udp ]; then
            ip -n "$ns" addr add 192.0.2.1/32 dev lo
            ip netns exec "$ns" "$BIN/udp" 192.0.2.1:4500 "$ROUNDS" "$PACKETS" "$SIZE"
        elif [ "$b" = tun ]; then
            ip netns exec "$ns" "$BIN/tun" "$ROUNDS" "$((PACKETS / 2))" "$SIZE"
        else
            ip netns exec "$ns" "$BIN/gro" "$ROUNDS" "$((PACKETS / 64))"
        fi
        ;;
    *)
        echo "unknown bench $b" >&2
        exit 2
        ;;
    esac
done

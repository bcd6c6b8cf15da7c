#!/usr/bin/env bash
# ferrovpn in one command: two network namespaces ("site A" and "site B") joined by a virtual
# cable, a ferrovpn daemon in each, an IKEv1 Main Mode tunnel with a default route into it, then
# ping and a 10-second iperf3 TCP run through the tunnel, the status of both daemons, and a clean
# teardown. Nothing outside the two namespaces is touched; everything is removed on exit.
#
#   sudo scripts/demo.sh            (DEMO_SECONDS=N for a shorter/longer iperf3 run)
#
# As root it installs missing packages first (scripts/install-deps.sh) and builds the release
# binary (cargo build --release -p ferrovpn) unless FERROVPN_BIN points at one.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SECONDS_IPERF="${DEMO_SECONDS:-10}"

banner() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
indent() { sed 's/^/    /'; }

if [ "$(id -u)" != 0 ]; then
    echo "demo.sh creates network namespaces and TUN devices: run it as root (sudo scripts/demo.sh)" >&2
    exit 1
fi

for c in ip ping iperf3 python3; do
    if ! command -v "$c" >/dev/null 2>&1; then
        banner "installing packages (scripts/install-deps.sh): $c is missing"
        scripts/install-deps.sh
        break
    fi
done

if [ -n "${FERROVPN_BIN:-}" ]; then
    FERROVPN="$FERROVPN_BIN"
else
    banner "building ferrovpn (cargo build --release -p ferrovpn)"
    cargo build --release -q -p ferrovpn
    FERROVPN="$ROOT/target/release/ferrovpn"
fi

. scripts/lib/netns.sh
fv_init
FV_NO_IPV6=1 fv_two_ns
NS_A="$FV_NS_A" NS_B="$FV_NS_B"

banner "two namespaces joined by a veth pair"
cat <<EOF
    site A  namespace $NS_A   outer 192.0.2.1 on $FV_IF_A   inner 198.51.100.1 (TUN fv0)
    site B  namespace $NS_B   outer 192.0.2.2 on $FV_IF_B   inner 203.0.113.1  (TUN fv0)
EOF

# config SIDE LOCAL REMOTE START INNER ROUTE
config() {
    printf 'demo-secret-%s\n' "$FV_ID" >"$FV_TMP/$1.psk"
    chmod 600 "$FV_TMP/$1.psk"
    cat >"$FV_TMP/$1.toml" <<EOF
[daemon]
control_socket = "$FV_TMP/$1.sock"

[[connection]]
name = "to-site-$2"
local_addr = "$3"
remote_addr = "$4"
psk_file = "$FV_TMP/$1.psk"
mode = "main"
ike = "aes256-sha256-modp2048"
esp = "aes128gcm16"
start = "$5"

[connection.route_based]
interface = "fv0"
address = "$6/32"
routes = ["$7"]
EOF
}
config a b 192.0.2.1 192.0.2.2 initiate 198.51.100.1 0.0.0.0/0
config b a 192.0.2.2 192.0.2.1 respond 203.0.113.1 198.51.100.0/24

banner "site A configuration ($FV_TMP/a.toml)"
indent <"$FV_TMP/a.toml"
banner "ferrovpn check -c a.toml"
"$FERROVPN" check -c "$FV_TMP/a.toml" | indent

banner "starting ferrovpn up on both sites (B responds, A initiates)"
FV_SPAWN_LOG="$FV_TMP/b.log" fv_spawn "$NS_B" "$FERROVPN" up -c "$FV_TMP/b.toml"
PID_B="$FV_LAST_PID"
sleep 0.3
FV_SPAWN_LOG="$FV_TMP/a.log" fv_spawn "$NS_A" "$FERROVPN" up -c "$FV_TMP/a.toml"
PID_A="$FV_LAST_PID"

sa_count() {
    "$FERROVPN" status --socket "$1" --json 2>/dev/null |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(len(c["ipsec_sas"]) for c in d["connections"]))' 2>/dev/null ||
        echo 0
}
up=no
for _ in $(seq 1 100); do
    if ! kill -0 "$PID_A" 2>/dev/null || ! kill -0 "$PID_B" 2>/dev/null; then
        break
    fi
    if [ "$(sa_count "$FV_TMP/a.sock")" -ge 1 ] && [ "$(sa_count "$FV_TMP/b.sock")" -ge 1 ]; then
        up=yes
        break
    fi
    sleep 0.2
done
banner "site A log: the IKEv1 exchange"
indent <"$FV_TMP/a.log"
if [ "$up" != yes ]; then
    banner "site B log"
    indent <"$FV_TMP/b.log"
    echo "The tunnel did not come up within 20 s." >&2
    exit 1
fi

banner "routing on site A: default route into fv0, IKE/ESP bypass it by fwmark"
{
    ip -n "$NS_A" rule show
    echo
    ip -n "$NS_A" route show table all | grep -E 'fv0|default' | grep -v '^local'
} | indent

banner "ping 203.0.113.1 from 198.51.100.1 (through the tunnel)"
ip netns exec "$NS_A" ping -n -c 3 -i 0.3 -I 198.51.100.1 203.0.113.1 | indent

banner "iperf3: ${SECONDS_IPERF} s of TCP from site A to site B through the tunnel"
FV_SPAWN_LOG="$FV_TMP/iperf3-server.log" fv_spawn "$NS_B" iperf3 -s -1 -B 203.0.113.1
IPERF_PID="$FV_LAST_PID"
for _ in $(seq 1 50); do
    ip netns exec "$NS_B" ss -Htln 'sport = :5201' | grep . >/dev/null && break
    sleep 0.1
done
ip netns exec "$NS_A" iperf3 -c 203.0.113.1 -B 198.51.100.1 -t "$SECONDS_IPERF" -i 2 | indent
fv_stop "$IPERF_PID"

banner "ferrovpn status (site A)"
"$FERROVPN" status --socket "$FV_TMP/a.sock" | indent
banner "ferrovpn status (site B)"
"$FERROVPN" status --socket "$FV_TMP/b.sock" | indent

banner "ferrovpn down on both sites"
for side in a b; do
    "$FERROVPN" down --socket "$FV_TMP/$side.sock" | indent || true
done
for pid in "$PID_A" "$PID_B"; do
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    fv_stop "$pid"
done
echo "    last lines of site A's log:"
tail -n 4 "$FV_TMP/a.log" | indent | indent
if ip -n "$NS_A" link show fv0 >/dev/null 2>&1; then
    echo "    fv0 still exists on site A (it should be gone)" >&2
    exit 1
fi
echo "    fv0 and the policy rules are gone; removing the namespaces."
banner "done"

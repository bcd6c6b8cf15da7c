#!/usr/bin/env bash
# End-to-end throughput, side by side, in one run: iperf3 through
#   veth    the bare veth pair (no tunnel: the ceiling of this machine)
#   fv-fv   ferrovpn ⇄ ferrovpn (raw ESP, IP protocol 50: the default without NAT)
#   fv-fv-udp  ferrovpn ⇄ ferrovpn with ESP-in-UDP forced (nat_traversal = "force"): UDP GSO
#           out and UDP_GRO in, the same encapsulation strongSwan's libipsec uses below
#   ss-ss   strongSwan ⇄ strongSwan (charon with the userspace kernel-libipsec ESP; ESP-in-UDP)
#   fv-ss   ferrovpn (side A, initiator) ⇄ strongSwan (side B; ESP-in-UDP)
# and, with BENCH_RIVALS=1 (or named in BENCH_SETUPS), the userspace tunnels people pick instead:
#   wg-go      wireguard-go ⇄ wireguard-go (Debian's package; keys and peer set with `wg`)
#   boringtun  boringtun-cli ⇄ boringtun-cli (`cargo install boringtun-cli`; default 4 threads)
# both WireGuard (ChaCha20-Poly1305, UDP port 51820) in their standard configuration: TUN MTU
# 1420 as wg-quick sets it, everything else at the program's defaults. A requested rival that is
# not installed stops the script with exit 1 (scripts/install-deps.sh --bench-rivals installs them).
# The IPsec setups use ESP aes128gcm16 (IKE aes256-sha256-modp2048); every setup has two
# namespaces joined by a veth pair
# (outer 192.0.2.1 ⇄ 192.0.2.2, inner 198.51.100.1 ⇄ 203.0.113.1). Tests, A sends to B:
#   tcp1     iperf3 TCP, 1 stream
#   tcp4     iperf3 TCP, 4 streams (-P 4)
#   lat      latency under load: iperf3 TCP 1 stream, and from its second second on a ping every
#            5 ms through the tunnel (A to B) until a second before its end; RTT percentiles
#            p50/p90/p99 and lost pings (plus p50 of 100 pings on the idle tunnel just before)
#   udp64    small packets: iperf3 UDP, unlimited rate (-b 0), 64-byte inner IP packets (-l 36:
#            36 B payload + 8 B UDP + 20 B IPv4); packets/s received and loss
#   udp1400  iperf3 UDP, unlimited rate (-b 0), 1400-byte inner IP packets (-l 1372; a 1400-byte
#            payload would not fit libipsec's 1400-byte tunnel MTU (ferrovpn's is computed:
#            1438 for aes128gcm16 on a 1500-byte link) and every datagram would be fragmented)
# Each test runs BENCH_RUNS times (3) for BENCH_SECONDS (5) s; the report takes medians. CPU time
# of each side's VPN process (utime+stime from /proc/PID/stat, all threads) is read before and
# after every run: CPU seconds per GB of iperf3 payload and cores per Gbit/s. Before each run the
# script waits until both VPN processes are idle (strongSwan drains its queue after UDP floods);
# UDP rates are packets received by the iperf3 server over its own measured duration.
# Results: docs/bench/$BENCH_LABEL.csv (every run), .json (medians), .svg (chart), and the table
# in docs/BENCHMARKS.md between markers for this label (scripts/bench_report.py).
#
#   sudo scripts/bench.sh                        (about 10 minutes; 12 with BENCH_RIVALS=1)
#   sudo BENCH_LABEL=after BENCH_SETUPS="fv-fv" scripts/bench.sh
#   sudo BENCH_RIVALS=1 BENCH_LABEL=rivals scripts/bench.sh    (with wireguard-go and boringtun)
# Env: BENCH_LABEL (default "current"), BENCH_SETUPS, BENCH_RIVALS (1: add wg-go and boringtun to
# the default setups), BENCH_TESTS, BENCH_RUNS, BENCH_SECONDS (at least 4 for lat),
# BENCH_WORKERS (ferrovpn workers, default: the daemon's default, half the cores), BENCH_TXQLEN (set the TUN devices'
# txqueuelen), BENCH_RPS (a CPU mask in hex for rps_cpus of both veth ends: the receiving
# stack on another CPU, as on two machines), FERROVPN_BIN, BENCH_NO_DOC=1, BENCH_OUTER (4 or 6: the outer address family of
# veth, fv-fv and fv-fv-udp, 2001:db8:ff::1 ⇄ 2001:db8:ff::2 for 6; the inner stays IPv4; the
# strongSwan setups are IPv4 only). Give an IPv6 run its own BENCH_LABEL. BORINGTUN_BIN
# (default: boringtun-cli on PATH, else ~/.cargo/bin/boringtun-cli).
# Needs root (namespaces), iperf3 and strongSwan (scripts/install-deps.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
E2E_ROOT="$ROOT"
. "$ROOT/scripts/lib/netns.sh"
. "$ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "bench.sh needs network namespaces"
require_cmd_or_skip ip iperf3 python3 swanctl "$FV_CHARON_BIN"
e2e_binary # builds the release binary once (target/release/ferrovpn) unless FERROVPN_BIN is set

LABEL="${BENCH_LABEL:-current}"
OUTER="${BENCH_OUTER:-4}"
if [ "$OUTER" = 6 ]; then
    OUT_A=2001:db8:ff::1 OUT_B=2001:db8:ff::2
else
    OUT_A=192.0.2.1 OUT_B=192.0.2.2
fi
SETUPS_DEFAULT="veth fv-fv fv-fv-udp ss-ss fv-ss"
[ "${BENCH_RIVALS:-0}" = 0 ] || SETUPS_DEFAULT="$SETUPS_DEFAULT wg-go boringtun"
SETUPS="${BENCH_SETUPS:-$SETUPS_DEFAULT}"
TESTS="${BENCH_TESTS:-tcp1 tcp4 lat udp64 udp1400}"
BORINGTUN_BIN="${BORINGTUN_BIN:-$(command -v boringtun-cli || echo "${HOME:-/root}/.cargo/bin/boringtun-cli")}"
# A rival that was asked for must be there: a missing one is an error, never a silent skip.
for s in $SETUPS; do
    case "$s" in
        wg-go) need=(wireguard-go wg) ;;
        boringtun) need=("$BORINGTUN_BIN" wg) ;;
        *) need=() ;;
    esac
    for c in "${need[@]}"; do
        command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] || {
            printf 'bench.sh: setup %s was requested but %s is not installed (run: sudo scripts/install-deps.sh --bench-rivals)\n' "$s" "$c" >&2
            exit 1
        }
    done
done
RUNS="${BENCH_RUNS:-3}"
SECS="${BENCH_SECONDS:-5}"
OUT="$ROOT/docs/bench"
RAW="$OUT/$LABEL.csv"
PSK="ferrovpn-bench-secret"
A_IN=198.51.100.1
B_IN=203.0.113.1
TICK="$(getconf CLK_TCK)"
mkdir -p "$OUT"
echo "setup,test,run,seconds,bytes,gbps,packets,lost,pps,cpu_a_s,cpu_b_s,retransmits,drops_a,drops_b,rtt_idle_p50_ms,rtt_p50_ms,rtt_p90_ms,rtt_p99_ms,ping_sent,ping_lost" >"$RAW"
COMMAND="sudo ${BENCH_OUTER:+BENCH_OUTER=$BENCH_OUTER }${FERROVPN_BIN:+FERROVPN_BIN=$FERROVPN_BIN }${BENCH_TXQLEN:+BENCH_TXQLEN=$BENCH_TXQLEN }${BENCH_WORKERS:+BENCH_WORKERS=$BENCH_WORKERS }BENCH_LABEL=$LABEL BENCH_SETUPS=\"$SETUPS\" BENCH_TESTS=\"$TESTS\" BENCH_RUNS=$RUNS BENCH_SECONDS=$SECS scripts/bench.sh"

say() { printf '[bench] %s\n' "$*" >&2; }

# CPU seconds (user+system, all threads) of a process so far; 0 when there is none.
cpu_of() {
    [ -n "$1" ] || { echo 0; return; }
    awk -v t="$TICK" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Datagrams the kernel dropped on full receive buffers of the VPN's sockets in NS (raw ESP,
# UDP 500/4500; iperf3's own sockets on port 5201 = 0x1451 are left out).
vpn_drops() {
    ip netns exec "$1" cat /proc/net/raw /proc/net/udp /proc/net/raw6 /proc/net/udp6 2>/dev/null |
        awk '$1 ~ /^[0-9]+:$/ && $2 !~ /:1451$/ { d += $NF } END { print d + 0 }'
}

# Waits (up to 60 s) until the VPN processes are idle: strongSwan's libipsec queues without
# bound, so after an unlimited-rate UDP run it keeps decrypting for many seconds.
settle() {
    local i c0 c1
    for ((i = 0; i < 120; i++)); do
        c0="$(cpu_of "$PID_A") $(cpu_of "$PID_B")"
        sleep 0.5
        c1="$(cpu_of "$PID_A") $(cpu_of "$PID_B")"
        python3 -c "import sys; a=[float(x) for x in '$c0'.split()]; b=[float(x) for x in '$c1'.split()]; sys.exit(0 if sum(b)-sum(a) < 0.05 else 1)" && return 0
    done
    say "VPN processes still busy after 60 s"
}

ss_swanctl_conf() { # LOCAL REMOTE LOCAL_TS REMOTE_TS START
    cat <<EOF
connections {
    bench {
        version = 1
        local_addrs = $1
        remote_addrs = $2
        proposals = aes256-sha256-modp2048
        local {
            auth = psk
            id = $1
        }
        remote {
            auth = psk
            id = $2
        }
        children {
            bench {
                local_ts = $3
                remote_ts = $4
                esp_proposals = aes128gcm16
                start_action = $5
            }
        }
    }
}
secrets {
    ike-bench {
        id-a = 192.0.2.1
        id-b = 192.0.2.2
        secret = "$PSK"
    }
}
EOF
}

# charon NS LOCAL REMOTE LOCAL_TS REMOTE_TS: a libipsec charon with the bench connection loaded.
charon() {
    local ns="$1"
    fv_charon_config "$ns" "$(fv_strongswan_conf bench "" 'default = 1')" \
        "$(ss_swanctl_conf "$2" "$3" "$4" "$5" none)"
    fv_charon_start "$ns"
    fv_charon_wait "$ns" || fail "charon in $ns did not start"
    fv_charon_load "$ns" >/dev/null || fail "swanctl --load-all failed in $ns"
    # The fair rival: OpenSSL (AES-NI, PCLMUL GHASH) must provide the ESP AEAD, not strongSwan's
    # software gcm plugin (about 7x slower). Proof goes into the report; anything else stops here.
    local provider
    provider="$(fv_charon_provider "$ns" AES_GCM_16)"
    say "charon in $ns: AES_GCM_16 provided by plugin '${provider:-none}'"
    [ "$provider" = openssl ] || fail "charon in $ns: AES_GCM_16 comes from '${provider:-none}', not openssl: not strongSwan's best configuration"
    echo "$provider" >"$RIVAL_DIR/aes_gcm_16_provider"
}

# ferrovpn SIDE(a|b) NS LOCAL REMOTE START ADDR ROUTE: a ferrovpn daemon, PID in $E2E_PID.
ferrovpn() {
    e2e_psk "$FV_TMP/$1.psk" "$PSK"
    C_SOCK="$FV_TMP/$1.sock" C_LOCAL="$3" C_REMOTE="$4" C_PSKFILE="$FV_TMP/$1.psk" C_START="$5" \
        C_LOG_LEVEL=warn C_WORKERS="${BENCH_WORKERS:-default}" C_TUNNEL="[connection.route_based]
interface = \"fv0\"
local_ts = \"${6%.*}.0/24\"
remote_ts = \"$7\"
address = \"$6/32\"
routes = [\"$7\"]" e2e_conf "$FV_TMP/$1.toml"
    e2e_up "$2" "$FV_TMP/$1.toml" "$FV_TMP/daemon-$1.log"
}

ss_wait_installed() {
    local i
    for ((i = 0; i < 100; i++)); do
        fv_swanctl "$1" --list-sas 2>/dev/null | grep INSTALLED >/dev/null && return 0
        sleep 0.2
    done
    return 1
}

# Each setup_* leaves SRC/DST (iperf3 addresses) and PID_A/PID_B (VPN processes, may be empty).
# The veth pair of BENCH_OUTER's family (IPv6: DAD waited out).
outer_ns() {
    if [ "$OUTER" = 6 ]; then
        FV_OUTER_A="$OUT_A/64" FV_OUTER_B="$OUT_B/64" fv_two_ns
        local i
        for ((i = 0; i < 50; i++)); do
            [ -z "$(ip -n "$FV_NS_A" -6 addr show tentative; ip -n "$FV_NS_B" -6 addr show tentative)" ] && break
            sleep 0.1
        done
    else
        FV_NO_IPV6=1 fv_two_ns
    fi
}

setup_veth() {
    outer_ns
    SRC=$OUT_A DST=$OUT_B PID_A="" PID_B=""
}

setup_fv_fv() {
    outer_ns
    ferrovpn b "$FV_NS_B" "$OUT_B" "$OUT_A" respond "$B_IN" 198.51.100.0/24
    PID_B="$E2E_PID"
    ferrovpn a "$FV_NS_A" "$OUT_A" "$OUT_B" initiate "$A_IN" 203.0.113.0/24
    PID_A="$E2E_PID"
    e2e_wait_sas "$FV_TMP/a.sock" "$PID_A" 1 20 || fail "ferrovpn A: no IPsec SA within 20 s"
    e2e_wait_sas "$FV_TMP/b.sock" "$PID_B" 1 20 || fail "ferrovpn B: no IPsec SA within 20 s"
    say "fv-fv: SA up, ESP $(e2e_q "$FV_TMP/a.sock" 'sas[0]["cipher"], sas[0]["encap"]')"
    SRC="$A_IN" DST="$B_IN"
}

setup_fv_fv_udp() {
    C_EXTRA='nat_traversal = "force"' setup_fv_fv
}

setup_ss_ss() {
    [ "$OUTER" = 4 ] || fail "ss-ss: IPv4 outer only (BENCH_OUTER=$OUTER)"
    FV_NO_IPV6=1 fv_two_ns
    fv_add_inner "$FV_NS_A" "$A_IN/32"
    fv_add_inner "$FV_NS_B" "$B_IN/32"
    charon "$FV_NS_B" 192.0.2.2 192.0.2.1 203.0.113.0/24 198.51.100.0/24
    charon "$FV_NS_A" 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24
    fv_swanctl "$FV_NS_A" --initiate --child bench --timeout 20 >"$FV_TMP/initiate.log" 2>&1 ||
        { tail -n 20 "$FV_TMP/initiate.log" >&2; fail "swanctl --initiate failed"; }
    ss_wait_installed "$FV_NS_B" || fail "strongSwan B: no INSTALLED child SA"
    say "ss-ss: $(fv_swanctl "$FV_NS_A" --list-sas | grep -E 'INSTALLED' | head -1 | sed -E 's/^ +//')"
    PID_A="${FV_CHARON_PID[$FV_NS_A]}" PID_B="${FV_CHARON_PID[$FV_NS_B]}"
    SRC="$A_IN" DST="$B_IN"
}

setup_fv_ss() {
    [ "$OUTER" = 4 ] || fail "fv-ss: IPv4 outer only (BENCH_OUTER=$OUTER)"
    FV_NO_IPV6=1 fv_two_ns
    fv_add_inner "$FV_NS_B" "$B_IN/32"
    charon "$FV_NS_B" 192.0.2.2 192.0.2.1 203.0.113.0/24 198.51.100.0/24
    PID_B="${FV_CHARON_PID[$FV_NS_B]}"
    ferrovpn a "$FV_NS_A" 192.0.2.1 192.0.2.2 initiate "$A_IN" 203.0.113.0/24
    PID_A="$E2E_PID"
    e2e_wait_sas "$FV_TMP/a.sock" "$PID_A" 1 20 || fail "ferrovpn A: no IPsec SA within 20 s"
    ss_wait_installed "$FV_NS_B" || fail "strongSwan B: no INSTALLED child SA"
    say "fv-ss: SA up, ESP $(e2e_q "$FV_TMP/a.sock" 'sas[0]["cipher"], sas[0]["encap"]')"
    SRC="$A_IN" DST="$B_IN"
}

# wg_side SIDE(a|b) NS INNER PEER_OUTER PEER_NET: a WireGuard device "${FV_ID}w$SIDE" in NS made
# by $WG_IMPL (wg-go or boringtun), keyed and given its peer with `wg` over the program's UAPI
# socket (/var/run/wireguard/DEV.sock: that directory is not per namespace, hence names unique
# per run), INNER/32 on it, PEER_NET routed into it, MTU 1420 (wg-quick's default on a 1500-byte
# link). The process ID is in $WG_PID, the device name in $TUN_DEV.
wg_side() {
    local side="$1" ns="$2" inner="$3" peer_outer="$4" peer_net="$5" dev="${FV_ID}w$1" other i ep
    other=b
    [ "$side" = a ] || other=a
    TUN_DEV="$dev"
    FV_SPAWN_LOG="$FV_TMP/$WG_IMPL-$side.log"
    case "$WG_IMPL" in
        wg-go) WG_PROCESS_FOREGROUND=1 fv_spawn "$ns" wireguard-go -f "$dev" ;;
        boringtun) fv_spawn "$ns" "$BORINGTUN_BIN" -f --disable-drop-privileges "$dev" ;;
    esac
    WG_PID="$FV_LAST_PID"
    E2E_LOGS+=("$FV_SPAWN_LOG")
    for ((i = 0; i < 100; i++)); do
        [ -S "/var/run/wireguard/$dev.sock" ] && ip -n "$ns" link show "$dev" >/dev/null 2>&1 && break
        kill -0 "$WG_PID" 2>/dev/null || fail "$WG_IMPL in $ns exited"
        sleep 0.1
    done
    [ -S "/var/run/wireguard/$dev.sock" ] || fail "$WG_IMPL in $ns: no UAPI socket /var/run/wireguard/$dev.sock"
    ep="$peer_outer:51820"
    case "$peer_outer" in *:*) ep="[$peer_outer]:51820" ;; esac
    ip netns exec "$ns" wg set "$dev" private-key "$FV_TMP/wg-$side.key" listen-port 51820 \
        peer "$(cat "$FV_TMP/wg-$other.pub")" allowed-ips "$peer_net" endpoint "$ep" ||
        fail "wg set $dev failed"
    ip -n "$ns" addr add "$inner/32" dev "$dev"
    ip -n "$ns" link set "$dev" mtu 1420 up
    ip -n "$ns" route add "$peer_net" dev "$dev"
}

# setup_wg IMPL: WireGuard (IMPL = wg-go or boringtun) on both sides.
setup_wg() {
    WG_IMPL="$1"
    outer_ns
    local side
    for side in a b; do
        (umask 077 && wg genkey >"$FV_TMP/wg-$side.key")
        wg pubkey <"$FV_TMP/wg-$side.key" >"$FV_TMP/wg-$side.pub"
    done
    wg_side b "$FV_NS_B" "$B_IN" "$OUT_A" 198.51.100.0/24
    PID_B="$WG_PID"
    wg_side a "$FV_NS_A" "$A_IN" "$OUT_B" 203.0.113.0/24
    PID_A="$WG_PID"
    # The handshake happens on the first packet (bench_setup's ping).
    say "$1: $(ip netns exec "$FV_NS_A" wg show "$TUN_DEV" | grep -E 'listening|allowed' | tr -s ' \n' ' ')"
    SRC="$A_IN" DST="$B_IN"
}

setup_wg_go() { setup_wg wg-go; }
setup_boringtun() { setup_wg boringtun; }

# ping_stats FILE: "p50,p90,p99,sent,lost" of the RTTs (ms) in a `ping -n` output (nearest rank).
ping_stats() {
    python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rtts = sorted(float(x) for x in re.findall(r"time=([0-9.]+) ms", text))
m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
sent, got = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
def pct(p):
    if not rtts:
        return ""
    k = max(0, min(len(rtts) - 1, -(-p * len(rtts) // 100) - 1))
    return f"{rtts[k]:.3f}"
print(f"{pct(50)},{pct(90)},{pct(99)},{sent},{sent - got}")
PY
}

# One iperf3 run of TEST; appends a CSV row.
measure() {
    local setup="$1" test="$2" run="$3" json="$FV_TMP/$2.$3.json" c0a c0b c1a c1b d0a d0b drops opts size=0
    case "$test" in
        tcp1) opts=() ;;
        tcp4) opts=(-P 4) ;;
        lat) opts=() ;;
        udp64) opts=(-u -b 0 -l 36) size=36 ;;
        udp1400) opts=(-u -b 0 -l 1372) size=1372 ;;
        *) fail "unknown test $test" ;;
    esac
    settle
    d0a="$(vpn_drops "$FV_NS_A")" d0b="$(vpn_drops "$FV_NS_B")"
    local idle="$FV_TMP/$test.$run.idle" loaded="$FV_TMP/$test.$run.ping" lat ipid irc=0
    if [ "$test" = lat ]; then
        # 100 pings on the idle tunnel first (1 s), then a ping every 5 ms under the TCP stream.
        ip netns exec "$FV_NS_A" ping -n -i 0.01 -c 100 -W 1 -I "$SRC" "$DST" >"$idle" 2>&1 || true
    fi
    c0a="$(cpu_of "$PID_A")" c0b="$(cpu_of "$PID_B")"
    ip netns exec "$FV_NS_A" timeout $((SECS + 20)) iperf3 -c "$DST" -B "$SRC" -t "$SECS" \
        -J "${opts[@]}" >"$json" 2>"$json.err" &
    ipid=$!
    if [ "$test" = lat ]; then
        sleep 1
        ip netns exec "$FV_NS_A" ping -n -i 0.005 -c $(((SECS - 2) * 200)) -w $((SECS - 1)) -W 1 \
            -I "$SRC" "$DST" >"$loaded" 2>&1 || true
    fi
    wait "$ipid" || irc=$?
    [ "$irc" = 0 ] || say "$setup $test run $run: iperf3 exited $irc (timeout?): $(head -c 200 "$json.err")"
    c1a="$(cpu_of "$PID_A")" c1b="$(cpu_of "$PID_B")"
    if [ "$test" = lat ]; then
        lat="$(ping_stats "$idle" | cut -d, -f1),$(ping_stats "$loaded")"
    else
        lat=",,,,,"
    fi
    drops="$(($(vpn_drops "$FV_NS_A") - d0a)),$(($(vpn_drops "$FV_NS_B") - d0b))"
    python3 - "$json" "$setup" "$test" "$run" "$size" "$c0a" "$c1a" "$c0b" "$c1b" "$PID_A" "$PID_B" "$drops" "$lat" >>"$RAW" <<'EOF'
import json, sys
path, setup, test, run, size = sys.argv[1:6]
c0a, c1a, c0b, c1b = map(float, sys.argv[6:10])
has_a, has_b = sys.argv[10] != "", sys.argv[11] != ""
size = int(size)
try:
    d = json.load(open(path))
    end = d["end"]
    if size == 0:
        s = end["sum_received"]
        secs, nbytes, packets, lost = s["seconds"], s["bytes"], "", ""
        pps = ""
        retr = end.get("sum_sent", {}).get("retransmits", "")
    else:
        s = end["sum"]
        secs, packets, lost = s["seconds"], s["packets"], s["lost_packets"]
        got = max(packets - lost, 0)
        nbytes = got * size
        pps = f"{got / secs:.0f}"
        retr = ""
    gbps = f"{nbytes * 8 / secs / 1e9:.4f}"
except Exception as e:  # a failed run is recorded as empty, the report skips it
    print(f"# {setup} {test} {run}: {e}", file=sys.stderr)
    secs = nbytes = gbps = packets = lost = pps = retr = ""
cpa = f"{c1a - c0a:.2f}" if has_a else ""
cpb = f"{c1b - c0b:.2f}" if has_b else ""
print(f"{setup},{test},{run},{secs},{nbytes},{gbps},{packets},{lost},{pps},{cpa},{cpb},{retr},{sys.argv[12]},{sys.argv[13]}")
EOF
    say "$(tail -n 1 "$RAW")"
}

# The tunnel MTU of NS's VPN device (fv0 or ipsec0), recorded for the report's differences.
record_mtu() {
    local ns="$1" setup="$2" dev mtu
    for dev in fv0 ipsec0 ${TUN_DEV:-}; do
        mtu="$(ip -n "$ns" -o link show "$dev" 2>/dev/null | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')"
        [ -n "$mtu" ] && echo "$setup $dev $mtu" >>"$RIVAL_DIR/mtu"
    done
    return 0
}

bench_setup() {
    local setup="$1" run t i
    E2E_CASE="$setup"
    E2E_LOGS=()
    say "=== $setup"
    "setup_${setup//-/_}"
    record_mtu "$FV_NS_A" "$setup"
    if [ -n "${BENCH_TXQLEN:-}" ]; then
        # Experiment: a longer TUN transmit queue (the kernel default is 500 packets).
        for ns in "$FV_NS_A" "$FV_NS_B"; do
            for dev in fv0 ipsec0 ${TUN_DEV:-}; do
                ip -n "$ns" link set "$dev" txqueuelen "$BENCH_TXQLEN" 2>/dev/null || true
            done
        done
    fi
    if [ -n "${BENCH_RPS:-}" ]; then
        # Experiment: RPS on both veth ends, so the receiving namespace's IP stack runs on
        # another CPU (as on two machines) instead of inside the sender's send call.
        for pair in "$FV_NS_A:$FV_IF_A" "$FV_NS_B:$FV_IF_B"; do
            ip netns exec "${pair%%:*}" sh -c "echo $BENCH_RPS >/sys/class/net/${pair#*:}/queues/rx-0/rps_cpus" ||
                fail "BENCH_RPS: cannot set rps_cpus on ${pair#*:}"
        done
    fi
    FV_SPAWN_LOG="$FV_TMP/iperf3-server.log" fv_spawn "$FV_NS_B" iperf3 -s -B "$DST"
    for ((i = 0; i < 50; i++)); do
        ip netns exec "$FV_NS_B" ss -Htln "sport = :5201" | grep . >/dev/null && break
        sleep 0.1
    done
    ip netns exec "$FV_NS_A" ping -n -q -c 2 -i 0.2 -W 2 -I "$SRC" "$DST" >/dev/null ||
        fail "$setup: ping $SRC -> $DST failed"
    # Test by test (all TCP runs before the UDP floods), RUNS times each.
    for t in $TESTS; do
        for ((run = 1; run <= RUNS; run++)); do
            measure "$setup" "$t" "$run"
        done
    done
    if [ -n "$PID_A" ] && [ -S "$FV_TMP/a.sock" ]; then
        say "$setup: ferrovpn A counters: $(e2e_q "$FV_TMP/a.sock" '{k: total(k) for k in ("out_packets", "in_packets", "auth_failures", "replay_drops")}')"
    fi
    say "$setup: VPN socket drops A=$(vpn_drops "$FV_NS_A") B=$(vpn_drops "$FV_NS_B")"
}

# Facts about the rival's configuration gathered by the setups (their subshells write here).
RIVAL_DIR="$(mktemp -d /tmp/fvbench-rival.XXXXXX)"
trap 'rm -rf "$RIVAL_DIR"' EXIT
T0=$(date +%s)
for s in $SETUPS; do
    # Each setup in its own subshell: its namespaces and processes go away at its end.
    (
        set -uo pipefail
        fv_init
        bench_setup "$s"
    ) || say "setup $s FAILED (its rows are missing)"
done
say "measured in $(($(date +%s) - T0)) s"

# Every difference between the setups that remains, stated in the report.
rival_notes() {
    local provider mtus
    provider="$(cat "$RIVAL_DIR/aes_gcm_16_provider" 2>/dev/null || true)"
    mtus="$(sort -u "$RIVAL_DIR/mtu" 2>/dev/null | awk '{ printf "%s%s %s %s", sep, $1, $2, $3; sep = ", " }')"
    echo "strongSwan $(dpkg-query -W -f='${Version}' strongswan-charon 2>/dev/null || echo '?') with kernel-libipsec; AES_GCM_16 provided by plugin '${provider:-not measured in this run}' (swanctl --list-algs)."
    echo "Differences that remain: tunnel MTU (${mtus:-not recorded}); socket buffers (ferrovpn sets 8 MiB with SO_RCVBUFFORCE/SO_SNDBUFFORCE, charon keeps the kernel default $(cat /proc/sys/net/core/rmem_default) B); offloads (ferrovpn's TUN uses IFF_VNET_HDR with TSO and GRO-style coalescing, UDP GSO/GRO on ESP-in-UDP; libipsec's ipsec0 has none and sends one datagram per packet); threads (ferrovpn: workers per direction, default half the cores; libipsec: one thread per direction); encapsulation (libipsec always uses ESP-in-UDP, compare it with fv-fv-udp)."
    case " $SETUPS " in
        *" wg-go "* | *" boringtun "*)
            echo "WireGuard rivals (ChaCha20-Poly1305, not AES-GCM; UDP, 32 B of header and 16 B tag per packet): wireguard-go $(dpkg-query -W -f='${Version}' wireguard-go 2>/dev/null || echo 'not installed') (Debian's build: $(nproc) threads by Go's default, one TUN queue, no TUN offloads: no TSO/GRO in this version), boringtun-cli $("$BORINGTUN_BIN" --version 2>/dev/null | awk '{ print $2 }') (its defaults: 4 threads, multi-queue TUN, connected UDP sockets, no offloads); both with MTU 1420 as wg-quick sets it, keys and peer set with wg $(dpkg-query -W -f='${Version}' wireguard-tools 2>/dev/null)."
            ;;
    esac
}
RIVAL_NOTES="$(rival_notes)"
say "rival: $RIVAL_NOTES"

MACHINE="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, kernel $(uname -r)"
DOC_ARGS=()
[ "${BENCH_NO_DOC:-0}" = 1 ] || DOC_ARGS=(--doc "$ROOT/docs/BENCHMARKS.md")
python3 "$ROOT/scripts/bench_report.py" "$RAW" --label "$LABEL" --machine "$MACHINE" \
    --date "$(date -u +%Y-%m-%d)" --command "$COMMAND" --load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --ferrovpn "$(cd "$ROOT" && git rev-parse --short HEAD)" --rival "$RIVAL_NOTES" "${DOC_ARGS[@]}"

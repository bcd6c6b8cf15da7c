#!/usr/bin/env bash
# Long-run behaviour of a ferrovpn ⇄ ferrovpn tunnel (A initiator 192.0.2.1, B responder
# 192.0.2.2, inner 198.51.100.1 ⇄ 203.0.113.1):
#   rekey-soak   iperf3 A -> B for SOAK_SECONDS (-i 1 --json) while IPsec SAs and the IKE SA are
#                rekeyed on short lifetimes: every 1-s interval carries bytes and closes on
#                time (no stall > 1 s),
#                the receiver read all but what was still in the sender's socket buffer, a
#                checksummed 20 MiB transfer in the middle of the run arrives byte for byte
#                (size and SHA-256), and the rekeys did happen.
#   peer-restart B killed with SIGKILL and started again: A's DPD (5 s / 15 s) notices, A
#                negotiates again and a ping passes within a loose bound (DPD_BOUND seconds).
#                Expected: interval (5 s) of silence before the first R-U-THERE, dead once
#                dpd_timeout (15 s) has passed on the 4-s R-U-THERE retransmit grid (16 s), then
#                A initiates at once: ~21 s after B last spoke (measured: 20 s from B's restart).
#                "Three DPD intervals" (15 s) cannot hold while dpd_timeout is 15 s.
# Lifetimes: the issue asks for 30 s IPsec / 120 s IKE; `ferrovpn check` refuses lifetimes under
# 1 m and the ike crate starts rekeying Settings::rekey_margin (60 s) before expiry, so the run
# uses the shortest lifetimes that rekey without a storm: esp_lifetime 90 s (rekey every 30 s),
# ike_lifetime 120 s (rekey at 60 s). The script prints what `check` says about "30s".
# Needs root (namespaces) and iperf3; skips with a reason otherwise (fails with CI=true).
# Env: FERROVPN_BIN, SOAK_SECONDS (default 70: covers two IPsec rekeys and the IKE rekey; 600
# for the full run), ESP_LIFETIME (90s), IKE_LIFETIME (120s), DPD_BOUND (45), E2E_CASES.
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "soak.sh needs network namespaces"
require_cmd_or_skip ip ping python3 iperf3 sha256sum
e2e_binary

SOAK="${SOAK_SECONDS:-70}"
ESP_LIFE="${ESP_LIFETIME:-90s}"
IKE_LIFE="${IKE_LIFETIME:-120s}"
DPD_BOUND="${DPD_BOUND:-45}"
A_IN=198.51.100.1
B_IN=203.0.113.1

write_conf() {
    local side="$1"
    if [ "$side" = a ]; then
        C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2
    else
        C_LOCAL=192.0.2.2 C_REMOTE=192.0.2.1
    fi
    C_SOCK="$FV_TMP/$side.sock" C_PSKFILE="$FV_TMP/$side.psk" C_START="$2" C_MODE=main \
        C_EXTRA="esp_lifetime = \"$3\"
ike_lifetime = \"$4\"
dpd_interval = \"5s\"
dpd_timeout = \"15s\"" C_TUNNEL="$5" e2e_conf "$FV_TMP/$side.toml"
}

pair_up() {
    FV_NO_IPV6=1 fv_two_ns
    e2e_psk "$FV_TMP/a.psk" soak-secret
    e2e_psk "$FV_TMP/b.psk" soak-secret
    SOCK_A="$FV_TMP/a.sock"
    SOCK_B="$FV_TMP/b.sock"
    write_conf a initiate "$ESP_LIFE" "$IKE_LIFE" "[connection.route_based]
interface = \"fv0\"
address = \"$A_IN/32\"
routes = [\"203.0.113.0/24\"]"
    write_conf b respond "$ESP_LIFE" "$IKE_LIFE" "[connection.route_based]
interface = \"fv0\"
address = \"$B_IN/32\"
routes = [\"198.51.100.0/24\"]"
    e2e_up "$FV_NS_B" "$FV_TMP/b.toml" "$FV_TMP/daemon-b.log"
    PID_B="$E2E_PID"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a.log"
    PID_A="$E2E_PID"
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "side A: no IPsec SA within 20 s"
    e2e_wait_sas "$SOCK_B" "$PID_B" 1 5 || fail "side B: no IPsec SA"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 2
}

case_rekey_soak() {
    # What the issue asked for, and what check says about it.
    local why
    e2e_psk "$FV_TMP/thirty.psk" soak-secret
    C_SOCK="$FV_TMP/thirty.sock" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE="$FV_TMP/thirty.psk" C_START=respond \
        C_EXTRA='esp_lifetime = "30s"' C_TUNNEL='[connection.route_based]
interface = "fv0"' e2e_conf "$FV_TMP/thirty.toml"
    if why="$("$FERROVPN" check -c "$FV_TMP/thirty.toml" 2>&1)"; then
        ok "note: esp_lifetime \"30s\" is accepted by ferrovpn check"
    else
        ok "note: esp_lifetime \"30s\" -> ferrovpn check: ${why##*: connection }"
    fi

    pair_up
    local srv out json xfer_pid
    FV_SPAWN_LOG="$FV_TMP/iperf-server.log" fv_spawn "$FV_NS_B" iperf3 -s -p 5202 -B "$B_IN" -1
    srv=$FV_LAST_PID
    sleep 0.5
    # The checksummed transfer starts near the first IPsec rekey.
    (
        sleep $((SOAK / 2 - 5))
        e2e_transfer "$FV_NS_A" "$A_IN" "$FV_NS_B" "$B_IN" 20 2>"$FV_TMP/xfer.out"
    ) &
    xfer_pid=$!
    json="$FV_TMP/iperf.json"
    ip netns exec "$FV_NS_A" timeout $((SOAK + 30)) iperf3 -c "$B_IN" -p 5202 -B "$A_IN" -t "$SOAK" -i 1 --json >"$json" ||
        { tail -n 20 "$json" >&2; fail "iperf3 client failed"; }
    if ! wait "$xfer_pid"; then
        cat "$FV_TMP/xfer.out" >&2
        fail "checksummed transfer during the soak failed"
    fi
    grep 'ok:' "$FV_TMP/xfer.out" >&2 || true
    fv_stop "$srv"
    out="$(python3 - "$json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
iv = [i["sum"] for i in d["intervals"]]
# An empty interval, or one iperf3 could only close late (its sender blocked in a stalled
# TCP connection), is a stall of more than a second.
stalls = [f'{s["start"]:.1f}-{s["end"]:.1f}s' for s in iv if s["bytes"] == 0 or s["end"] - s["start"] > 1.5]
sent = d["end"]["sum_sent"]["bytes"]
recv = d["end"]["sum_received"]["bytes"]
rate = min(s["bits_per_second"] for s in iv) / 1e6
print(f'{len(iv)} {len(stalls)} {sent} {recv} {rate:.1f} {d["end"]["sum_sent"].get("retransmits", 0)} {",".join(stalls) or "-"}')
EOF
)"
    local n stalls sent recv minrate retr where
    read -r n stalls sent recv minrate retr where <<<"$out"
    [ "$n" -ge $((SOAK - 1)) ] || fail "iperf3 reported only $n intervals for $SOAK s"
    [ "$stalls" = 0 ] || fail "$stalls stalls (a 1-s interval without a byte or lasting over 1.5 s): $where (rekeys on A at: $(grep -E 'IPsec SA installed|IKE SA established' "$FV_TMP/daemon-a.log" | grep -oE 'T[0-9:]{8}' | tr -d T | paste -sd' ' -); iperf3 started $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['start']['timestamp']['time'])" "$json"))"
    # iperf3's sender counts what it wrote into its socket when -t ends, the receiver what it
    # read before the end of the test: up to a socket buffer apart without any loss. Exact
    # equality is what the checksummed transfer above shows.
    if [ "$recv" -gt "$sent" ] || [ $((sent - recv)) -gt $((32 << 20)) ]; then
        fail "iperf3: sender sent $sent bytes, receiver got $recv"
    fi
    ok "iperf3 $SOAK s: $n intervals, none empty (slowest ${minrate} Mbit/s), $recv of $sent bytes received by the end ($(((sent - recv) >> 10)) KiB still in the sender's buffer), $retr TCP retransmits"

    local esp_rekeys ike_rekeys
    esp_rekeys="$(grep -Eci 'IPsec SA installed' "$FV_TMP/daemon-a.log" || true)"
    ike_rekeys="$(grep -Eci 'IKE SA established' "$FV_TMP/daemon-a.log" || true)"
    ok "side A log: $esp_rekeys IPsec SAs installed, $ike_rekeys IKE SAs established during the run"
    [ "$esp_rekeys" -ge 2 ] || fail "no IPsec rekey happened in $SOAK s (lifetime $ESP_LIFE)"
    if [ "$SOAK" -ge 65 ]; then
        [ "$ike_rekeys" -ge 2 ] || fail "no IKE rekey happened in $SOAK s (lifetime $IKE_LIFE)"
    fi
    [ "$(e2e_q "$SOCK_B" 'total("auth_failures")')" = 0 ] || fail "B counted ESP auth failures"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

case_peer_restart() {
    pair_up
    kill -KILL "$PID_B"
    { wait "$PID_B"; } 2>/dev/null || true
    local keep=() p t0 t1 back=0
    for p in "${FV_PIDS[@]}"; do [ "$p" = "$PID_B" ] || keep+=("$p"); done
    FV_PIDS=("${keep[@]}")
    sleep 1
    t0=$(date +%s)
    e2e_up "$FV_NS_B" "$FV_TMP/b.toml" "$FV_TMP/daemon-b2.log"
    PID_B="$E2E_PID"
    while [ $(($(date +%s) - t0)) -lt "$DPD_BOUND" ]; do
        kill -0 "$PID_A" 2>/dev/null || fail "side A exited"
        if ip netns exec "$FV_NS_A" ping -n -q -c 1 -W 1 -I "$A_IN" "$B_IN" >/dev/null 2>&1; then
            back=1
            break
        fi
        sleep 0.5
    done
    t1=$(date +%s)
    [ "$back" = 1 ] || {
        grep -Ei 'dpd|dead|initiat|sending MM1' "$FV_TMP/daemon-a.log" | tail -n 10 >&2
        fail "tunnel not back within $DPD_BOUND s of B's restart (dpd_interval 5 s, dpd_timeout 15 s)"
    }
    ok "tunnel back $((t1 - t0)) s after B's kill -9 and restart (DPD interval 5 s, timeout 15 s; bound $DPD_BOUND s)"
    grep -Ei 'dead|dpd' "$FV_TMP/daemon-a.log" | head -n 2 | sed 's/^/    A: /' >&2 || true
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

CASES=(rekey-soak peer-restart)
for c in ${E2E_CASES:-${CASES[*]}}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "soak.sh"

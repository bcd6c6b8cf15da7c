#!/usr/bin/env bash
# A hostile peer built from the ike crate (tests/bin/evil_peer.rs): it knows the PSK and
# answers a ferrovpn initiator (A, 192.0.2.1) with MM2 and QM2 whose SA lifetimes are 2^64-1
# seconds and kilobytes, re-hashed and encrypted with the session keys, so they authenticate.
#   lifetime-2-64  the daemon stays up, `status --json` shows lifetimes not above its own
#                  (RFC 2409 §4.5), the log warns of the peer's value and says which lifetime
#                  it kept and installed, and its timers
#                  keep running (status answers a few seconds later; the IKE SA is still there)
#   reserved-spi   QM2 names ESP SPI 5 (0-255 are reserved, RFC 4303 §2.1): the daemon refuses
#                  the Quick Mode and logs why, lists and installs no IPsec SA, phase 1 stays up
# Needs root (namespaces) and cargo (builds evil_peer); skips with a reason otherwise (fails
# with CI=true). Env: FERROVPN_BIN, EVIL_PEER_BIN (default: built here, debug profile).
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "hostile_peer.sh needs network namespaces"
require_cmd_or_skip ip python3
e2e_binary

if [ -n "${EVIL_PEER_BIN:-}" ]; then
    EVIL="$EVIL_PEER_BIN"
else
    require_cmd_or_skip cargo
    e2e_say "building evil_peer (cargo build -p ferrovpn-tests --bin evil_peer)"
    (cd "$E2E_ROOT" && cargo build -q -p ferrovpn-tests --bin evil_peer) || {
        e2e_say "FAIL: cargo build -p ferrovpn-tests --bin evil_peer failed"
        exit 1
    }
    EVIL="$(cd "$E2E_ROOT" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/evil_peer"
fi
[ -x "$EVIL" ] || { e2e_say "FAIL: $EVIL is not an executable"; exit 1; }

A_IN=198.51.100.1
B_IN=203.0.113.1
IKE_LIFE=28800 # ike_lifetime = "8h"
ESP_LIFE=3600  # esp_lifetime = "1h"

# Namespaces A and B, the daemon in A initiating to evil_peer in B (both knowing the PSK).
# $1: extra lines for A's connection; the rest: evil_peer's options. Sets SOCK, LOG, ELOG (the
# peer's log), PID (the daemon) and EVIL (the peer).
evil_setup() {
    local extra="$1"
    shift
    FV_NO_IPV6=1 fv_two_ns
    e2e_psk "$FV_TMP/a.psk" hostile-peer-secret
    e2e_psk "$FV_TMP/b.psk" hostile-peer-secret
    SOCK="$FV_TMP/a.sock" LOG="$FV_TMP/daemon-a.log" ELOG="$FV_TMP/evil_peer.log"
    C_SOCK="$SOCK" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE="$FV_TMP/a.psk" \
        C_START=initiate C_EXTRA="$extra" C_TUNNEL="$(e2e_route_based "$A_IN" 203.0.113.0/24)" \
        e2e_conf "$FV_TMP/a.toml"
    FV_SPAWN_LOG="$ELOG" fv_spawn "$FV_NS_B" "$EVIL" 192.0.2.2 192.0.2.1 "$FV_TMP/b.psk" \
        --ike aes256-sha256-modp2048 --esp aes128gcm16 "$@"
    EVIL="$FV_LAST_PID"
    E2E_LOGS+=("$ELOG")
    e2e_wait_udp "$FV_NS_B" 500 10 || fail "evil_peer does not listen on UDP 500"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$LOG"
    PID="$E2E_PID"
}

case_lifetime_2_64() {
    evil_setup 'ike_lifetime = "8h"
esp_lifetime = "1h"
esp_lifetime_bytes = 1000000000' --rewrite MM2,QM2
    local sock="$SOCK" log="$LOG" elog="$ELOG" pid="$PID" evil="$EVIL"
    e2e_wait_sas "$sock" "$pid" 1 20 || {
        kill -0 "$pid" 2>/dev/null || fail "the daemon died facing a 2^64-1 s lifetime"
        fail "no IPsec SA within 20 s"
    }
    grep -q "Sent QM2" "$elog" || fail "evil_peer sent no QM2"
    grep -q "Sent MM2" "$elog" || fail "evil_peer sent no MM2"
    ok "evil_peer answered MM2 and QM2 with lifetimes of 2^64-1 s and KB; an IPsec SA is up"

    sleep 3 # a few rounds of the daemon's timers with the peer's values in its state
    kill -0 "$pid" 2>/dev/null || fail "the daemon died after the SA was installed"
    kill -0 "$evil" 2>/dev/null || fail "evil_peer died"
    local ike_life esp_life
    ike_life="$(e2e_q "$sock" 'max(int(s["lifetime_s"]) for s in ikes)')" || fail "status --json failed"
    esp_life="$(e2e_q "$sock" 'max(int(s["lifetime_s"]) for s in sas)')" || fail "status --json failed"
    [ "$ike_life" -le "$IKE_LIFE" ] || fail "ISAKMP SA lifetime ${ike_life}s above ours (${IKE_LIFE}s)"
    [ "$esp_life" -le "$ESP_LIFE" ] || fail "IPsec SA lifetime ${esp_life}s above ours (${ESP_LIFE}s)"
    ok "daemon alive; status --json: ISAKMP SA lifetime ${ike_life}s (ours ${IKE_LIFE}s), IPsec SA ${esp_life}s (ours ${ESP_LIFE}s)"
    local line
    line="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E "IPsec SA installed.*lifetime ${ESP_LIFE}s" | head -1)"
    [ -n "$line" ] || fail "no 'IPsec SA installed ... lifetime ${ESP_LIFE}s' line in the daemon log"
    ok "log: ${line##*INFO }"
    line="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E "IKE SA established.*lifetime ${IKE_LIFE}s" | head -1)"
    [ -n "$line" ] || fail "no 'IKE SA established ... lifetime ${IKE_LIFE}s' line in the daemon log"
    ok "log: ${line##*INFO }"
    local what
    for what in "ISAKMP SA.*18446744073709551615 s is above ours; keeping ${IKE_LIFE} s" \
        "IPsec SA.*18446744073709551615 s is above ours; keeping ${ESP_LIFE} s" \
        "IPsec SA.*18446744073709551615 KB is above ours"; do
        line="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E "$what" | head -1)"
        [ -n "$line" ] || fail "no warning matching '$what' in the daemon log"
        ok "log: ${line##*WARN }"
    done
    if grep -E -i "panic|overflow" "$log" >/dev/null; then
        fail "the daemon log mentions a panic or an overflow"
    fi
    e2e_down "$sock" "$pid" "$FV_NS_A" fv0
    fv_stop "$evil"
}

# The peer answers QM2 with ESP SPI 5, one of the reserved 0-255 (RFC 4303 §2.1) that the data
# plane refuses: the daemon refuses the Quick Mode and says why, instead of counting a pair up
# that could never carry a packet; it stays alive with phase 1 up.
case_reserved_spi() {
    evil_setup "" --rewrite QM2 --lifetime 3600 --spi 5
    local sock="$SOCK" log="$LOG" elog="$ELOG" pid="$PID" evil="$EVIL"
    e2e_wait_log "$log" "reserved ESP SPI 0x00000005" 20 || {
        kill -0 "$pid" 2>/dev/null || fail "the daemon died facing a reserved SPI"
        fail "no log line naming the reserved SPI within 20 s"
    }
    e2e_has "Sent QM2" "$elog" || fail "evil_peer sent no QM2"
    local line
    line="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E "reserved ESP SPI 0x00000005" | head -1)"
    ok "log: ${line##*ERROR }"
    kill -0 "$pid" 2>/dev/null || fail "the daemon died"
    local n ikes
    n="$(e2e_q "$sock" 'len(sas)')" || fail "status --json failed"
    [ "$n" = 0 ] || fail "status lists $n IPsec SA(s) after the refusal"
    ikes="$(e2e_q "$sock" 'len(ikes)')" || fail "status --json failed"
    [ "${ikes:-0}" -ge 1 ] || fail "phase 1 went down with the refused Quick Mode"
    if e2e_has "IPsec SA installed" "$log"; then
        fail "the daemon installed a pair with the reserved SPI"
    fi
    if e2e_has -E -i "panic|installing .* failed" "$log"; then
        fail "the daemon log mentions a panic or a failed install"
    fi
    ok "no IPsec SA installed or listed, phase 1 up ($ikes ISAKMP SA), daemon alive"
    e2e_down "$sock" "$pid" "$FV_NS_A" fv0
    fv_stop "$evil"
}

CASES=(lifetime-2-64 reserved-spi)
for c in ${E2E_CASES:-${CASES[*]}}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "hostile_peer.sh"

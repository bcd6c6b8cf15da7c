#!/usr/bin/env bash
# Crash safety: a ferrovpn killed with SIGKILL leaves its policy rules and its control socket
# file behind (its TUN is not persistent and goes with the process, routes with it); started
# again with the same config it must remove them, because its run-state record in the run
# directory proves it made them, and come back with exactly one set.
#   kill9-restart  A (initiator, default route into fv0, fwmark rules at 18006/18007) ⇄ B:
#                  tunnel up, ping; kill -9 A; leftovers present (rules, socket file, the
#                  record of the dead pid), fv0 gone; restart A: the log names what it removed,
#                  the tunnel is back (ping both ways), and `ip rule` / `ip link` / table 18006
#                  show exactly one set; `ferrovpn down` removes all of it and the record.
# (What a SIGKILLed run did not record, e.g. a persistent TUN of that name, is refused and kept:
# see host_safety.sh.)
# Recovery within seconds (issue 12 §7), default DPD timers (30 s / 150 s) on every side, so DPD
# cannot be what brings the tunnel back: after a kill -9 and restart, a ping every 0.2 s (each
# waiting up to 1 s) must be answered within RECOVERY_BOUND s (10) of the restart:
#   fv-responder-restart   ferrovpn A initiates, ferrovpn B (start = "respond") is killed and
#                          restarted while A pings: B sees ESP with an unknown SPI from A and
#                          initiates phase 1 with INITIAL-CONTACT (invalid-SPI recovery); A
#                          drops its stale SAs.
#   fv-initiator-restart   A is killed and restarted: it initiates with INITIAL-CONTACT at once.
#   ss-fv-restart          strongSwan 5.9 (charon, start_action = start) <-> ferrovpn (respond):
#                          ferrovpn is killed and restarted while charon's side pings: the ESP
#                          with an unknown SPI makes ferrovpn initiate with INITIAL-CONTACT, and
#                          charon replaces its stale IKE_SA.
#   ss-charon-restart      the same pair, charon is killed and restarted (it initiates at start,
#                          with INITIAL_CONTACT) while ferrovpn's side pings. A restarted charon
#                          that waits as responder is not recovered quicker than DPD: strongSwan
#                          5.9 ignores ESP with unknown SPIs and IKE with unknown cookies.
# Needs root (namespaces), strongSwan for the ss-* cases; skips with a reason otherwise (fails
# with CI=true). Env: FERROVPN_BIN (binary to test, default: release build of this tree),
# RECOVERY_BOUND (10), E2E_CASES.
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "crash_restart.sh needs network namespaces"
require_cmd_or_skip ip ping python3
e2e_binary

RECOVERY_BOUND="${RECOVERY_BOUND:-10}"

A_IN=198.51.100.1
B_IN=203.0.113.1
PRIO=18006   # routing::DEFAULT_PRIORITY (the fwmark rule is PRIO+1)
TABLE=18006  # routing::DEFAULT_TABLE (0x4656)


# count_rules NS: "<rules at PRIO> <rules at PRIO+1>"
count_rules() {
    local r
    r="$(ip -n "$1" rule show)"
    printf '%s %s' "$(grep -c "^$PRIO:" <<<"$r" || true)" "$(grep -c "^$((PRIO + 1)):" <<<"$r" || true)"
}

case_kill9_restart() {
    FV_NO_IPV6=1 fv_two_ns
    e2e_psk "$FV_TMP/a.psk" crash-restart-secret
    e2e_psk "$FV_TMP/b.psk" crash-restart-secret
    local sa="$FV_TMP/a.sock" sb="$FV_TMP/b.sock" pid_a pid_b n links t0
    C_DAEMON_EXTRA="run_dir = \"$FV_TMP/run\"" e2e_side_conf a initiate "" "$(e2e_route_based "$A_IN" 0.0.0.0/0)"
    e2e_side_conf b respond 'dpd_interval = "5s"
dpd_timeout = "15s"' "$(e2e_route_based "$B_IN" 198.51.100.0/24)"
    e2e_up "$FV_NS_B" "$FV_TMP/b.toml" "$FV_TMP/daemon-b.log"
    pid_b="$E2E_PID"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a1.log"
    pid_a="$E2E_PID"
    e2e_wait_sas "$sa" "$pid_a" 1 20 || fail "side A: no IPsec SA within 20 s"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    [ "$(count_rules "$FV_NS_A")" = "1 1" ] || fail "before the crash: rules $(count_rules "$FV_NS_A"), want one each"

    # kill -9: no teardown at all.
    kill -KILL "$pid_a"
    { wait "$pid_a"; } 2>/dev/null || true
    local keep=() p
    for p in "${FV_PIDS[@]}"; do [ "$p" = "$pid_a" ] || keep+=("$p"); done
    FV_PIDS=("${keep[@]}")
    [ "$(count_rules "$FV_NS_A")" = "1 1" ] || fail "after kill -9 the rules should still be there: $(count_rules "$FV_NS_A")"
    [ -S "$sa" ] || fail "after kill -9 the control socket file should still be there"
    [ -f "$FV_TMP/run/$pid_a.state" ] || fail "after kill -9 the run-state record $FV_TMP/run/$pid_a.state should still be there"
    ok "after kill -9: rules at $PRIO/$((PRIO + 1)), the control socket file and the record of pid $pid_a are left behind"
    ! ip -n "$FV_NS_A" link show fv0 >/dev/null 2>&1 || fail "after kill -9 the (non-persistent) TUN fv0 still exists"
    ok "after kill -9: fv0 went with the process"

    local dead_pid="$pid_a"
    t0=$(date +%s)
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a2.log"
    pid_a="$E2E_PID"
    e2e_wait_sas "$sa" "$pid_a" 1 30 || fail "restarted side A: no IPsec SA within 30 s"
    ok "restarted A has an IPsec SA after $(($(date +%s) - t0)) s"
    grep -q 'left behind by a previous run' "$FV_TMP/daemon-a2.log" ||
        fail "restarted A does not log what it cleaned up"
    ok "log: $(grep 'left behind by a previous run' "$FV_TMP/daemon-a2.log" | sed 's/.*removed/removed/' | paste -sd';' -)"
    grep 'left behind by a previous run' "$FV_TMP/daemon-a2.log" | e2e_has "stale control socket" ||
        fail "restarted A does not say it removed the dead run's control socket"
    [ ! -e "$FV_TMP/run/$dead_pid.state" ] || fail "the dead run's record $FV_TMP/run/$dead_pid.state is still there"
    [ -f "$FV_TMP/run/$pid_a.state" ] || fail "the restarted daemon has no record $FV_TMP/run/$pid_a.state"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3

    [ "$(count_rules "$FV_NS_A")" = "1 1" ] || { ip -n "$FV_NS_A" rule show >&2; fail "after restart: rules $(count_rules "$FV_NS_A"), want exactly one each"; }
    links="$(ip -n "$FV_NS_A" -o link show)"
    n="$(grep -c ': fv0[:@]' <<<"$links" || true)"
    [ "$n" = 1 ] || { echo "$links" >&2; fail "after restart: $n fv0 interfaces"; }
    n="$(ip -n "$FV_NS_A" route show table "$TABLE" | grep -c . || true)"
    [ "$n" = 1 ] || { ip -n "$FV_NS_A" route show table "$TABLE" >&2; fail "after restart: $n routes in table $TABLE, want 1"; }
    ok "after restart: exactly one rule at $PRIO and $((PRIO + 1)), one fv0, one route in table $TABLE"
    # The peer replaced its SAs with the new ones (INITIAL-CONTACT), it did not keep both.
    n="$(e2e_q "$sb" 'len(ikes)')"
    [ "$n" = 1 ] || fail "B reports $n IKE SAs after A's restart, want 1: $(e2e_status_json "$sb")"
    ok "B holds one IKE SA, the new one"

    e2e_down "$sa" "$pid_a" "$FV_NS_A" fv0
    [ "$(count_rules "$FV_NS_A")" = "0 0" ] || fail "after down: rules $(count_rules "$FV_NS_A")"
    [ -z "$(ls -A "$FV_TMP/run")" ] || fail "after down: $(ls -A "$FV_TMP/run") left in the run directory"
    [ ! -e "$sa" ] || fail "after down: control socket $sa still there"
    e2e_down "$sb" "$pid_b" "$FV_NS_B" fv0
}

# kill9 PID: SIGKILL one process we started, and forget it.
kill9() {
    local keep=() p
    kill -KILL "$1"
    { wait "$1"; } 2>/dev/null || true
    for p in "${FV_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    FV_PIDS=("${keep[@]}")
}

# wait_back NS SRC DST T0: ping SRC -> DST every 0.2 s (each waits up to 1 s) until one is
# answered; RECOVERED is the time since T0 (date +%s.%N) in seconds. Returns 1 after
# RECOVERY_BOUND s.
wait_back() {
    local ns="$1" src="$2" dst="$3" t0="$4" now
    while :; do
        now="$(date +%s.%N)"
        awk -v a="$now" -v b="$t0" -v c="$RECOVERY_BOUND" 'BEGIN { exit !(a - b < c) }' || return 1
        if ip netns exec "$ns" ping -n -q -c 1 -W 1 -I "$src" "$dst" >/dev/null 2>&1; then
            RECOVERED="$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')"
            return 0
        fi
        sleep 0.2
    done
}

# A ferrovpn pair with default DPD, A initiating, both up and a ping through.
fv_pair() {
    FV_NO_IPV6=1 fv_two_ns
    e2e_psk "$FV_TMP/a.psk" crash-restart-secret
    e2e_psk "$FV_TMP/b.psk" crash-restart-secret
    SOCK_A="$FV_TMP/a.sock" SOCK_B="$FV_TMP/b.sock"
    e2e_side_conf a initiate "" "$(e2e_route_based "$A_IN" 203.0.113.0/24)"
    e2e_side_conf b respond "" "$(e2e_route_based "$B_IN" 198.51.100.0/24)"
    e2e_fv_pair_up "$FV_TMP/daemon-a1.log" "$FV_TMP/daemon-b1.log"
}

# restart_fv SIDE N: kill -9 the daemon of SIDE (a|b) and start it again (log daemon-SIDEN),
# pinging from A meanwhile; fails unless the tunnel is back within RECOVERY_BOUND s.
restart_fv() {
    local side="$1" n="$2" pid ns log t0
    if [ "$side" = a ]; then pid="$PID_A" ns="$FV_NS_A"; else pid="$PID_B" ns="$FV_NS_B"; fi
    log="$FV_TMP/daemon-$side$n.log"
    kill9 "$pid"
    ok "side $side killed with SIGKILL"
    sleep 1
    t0="$(date +%s.%N)"
    e2e_up "$ns" "$FV_TMP/$side.toml" "$log"
    if [ "$side" = a ]; then PID_A="$E2E_PID"; else PID_B="$E2E_PID"; fi
    wait_back "$FV_NS_A" "$A_IN" "$B_IN" "$t0" ||
        fail "tunnel not back within $RECOVERY_BOUND s of side $side's restart (default DPD timers)"
    ok "tunnel back $RECOVERED s after side $side's kill -9 and restart (bound $RECOVERY_BOUND s)"
}

case_fv_responder_restart() {
    fv_pair
    restart_fv b 2
    grep -q 'invalid-SPI recovery: ESP with unknown SPI' "$FV_TMP/daemon-b2.log" ||
        fail "restarted B does not log its invalid-SPI recovery"
    ok "B: $(grep -o 'invalid-SPI recovery: .*' "$FV_TMP/daemon-b2.log" | head -1 | sed 's/\x1b\[[0-9;]*m//g')"
    grep -q 'INITIAL-CONTACT' "$FV_TMP/daemon-a1.log" || fail "A saw no INITIAL-CONTACT"
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3
    # A replaced its stale SAs rather than keeping both.
    [ "$(e2e_q "$SOCK_A" 'len(ikes)')" = 1 ] || fail "A holds $(e2e_q "$SOCK_A" 'len(ikes)') IKE SAs"
    [ "$(e2e_q "$SOCK_A" 'len(sas)')" = 1 ] || fail "A holds $(e2e_q "$SOCK_A" 'len(sas)') IPsec SAs"
    ok "A holds one IKE SA and one IPsec SA, the new ones"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

case_fv_initiator_restart() {
    fv_pair
    restart_fv a 2
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3
    [ "$(e2e_q "$SOCK_B" 'len(ikes)')" = 1 ] || fail "B holds $(e2e_q "$SOCK_B" 'len(ikes)') IKE SAs"
    [ "$(e2e_q "$SOCK_B" 'len(sas)')" = 1 ] || fail "B holds $(e2e_q "$SOCK_B" 'len(sas)') IPsec SAs"
    ok "B holds one IKE SA and one IPsec SA, the new ones"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

ss_start_charon() {
    fv_charon_start "$FV_NS_B"
    fv_charon_wait "$FV_NS_B" || fail "charon did not start"
    fv_charon_load "$FV_NS_B" >/dev/null || fail "swanctl --load-all failed"
}

# charon on B (initiating), ferrovpn on A (respond), tunnel up, a ping through.
ss_pair() {
    if ! command -v swanctl >/dev/null 2>&1 || [ ! -x "$FV_CHARON_BIN" ]; then
        [ "${CI:-}" = true ] && fail "strongSwan (swanctl, $FV_CHARON_BIN) missing and CI=true"
        skip "strongSwan (swanctl, $FV_CHARON_BIN) not installed"
    fi
    FV_NO_IPV6=1 fv_two_ns
    fv_add_inner "$FV_NS_B" "$B_IN/32"
    fv_charon_config "$FV_NS_B" "$(fv_strongswan_conf crash "" 'default = 1
            ike = 2
            chd = 2')" "$(SS_SECRET=crash-restart-secret SS_START=start e2e_ss_conf)"
    E2E_LOGS+=("$(fv_charon_dir "$FV_NS_B")/charon.log")
    e2e_psk "$FV_TMP/a.psk" crash-restart-secret
    SOCK_A="$FV_TMP/a.sock"
    C_SOCK="$SOCK_A" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE="$FV_TMP/a.psk" C_START=respond \
        C_TUNNEL="$(e2e_route_based_facing_ss)" e2e_conf "$FV_TMP/a.toml"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a1.log"
    PID_A="$E2E_PID"
    e2e_wait_udp "$FV_NS_A" 500 5 || fail "ferrovpn does not listen on UDP 500"
    ss_start_charon
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "ferrovpn: no IPsec SA within 20 s of charon's start"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 2
}

case_ss_fv_restart() {
    ss_pair
    kill9 "$PID_A"
    ok "ferrovpn killed with SIGKILL"
    sleep 1
    local t0 n
    t0="$(date +%s.%N)"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a2.log"
    PID_A="$E2E_PID"
    # charon's side sends into its stale SA: ferrovpn hears ESP it cannot read.
    wait_back "$FV_NS_B" "$B_IN" "$A_IN" "$t0" ||
        fail "tunnel not back within $RECOVERY_BOUND s of ferrovpn's restart"
    ok "tunnel back $RECOVERED s after ferrovpn's kill -9 and restart (bound $RECOVERY_BOUND s)"
    grep -q 'invalid-SPI recovery' "$FV_TMP/daemon-a2.log" || fail "ferrovpn does not log its recovery"
    ok "ferrovpn: $(grep -o 'invalid-SPI recovery: .*' "$FV_TMP/daemon-a2.log" | head -1 | sed 's/\x1b\[[0-9;]*m//g')"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    n="$(fv_swanctl "$FV_NS_B" --list-sas 2>/dev/null | grep -c 'ESTABLISHED' || true)"
    [ "$n" = 1 ] || { fv_swanctl "$FV_NS_B" --list-sas >&2; fail "charon holds $n IKE SAs, want the new one only"; }
    ok "charon replaced its stale IKE_SA (INITIAL-CONTACT): one left"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
}

case_ss_charon_restart() {
    ss_pair
    kill9 "${FV_CHARON_PID[$FV_NS_B]}"
    ok "charon killed with SIGKILL"
    sleep 1
    local t0
    t0="$(date +%s.%N)"
    ss_start_charon
    wait_back "$FV_NS_A" "$A_IN" "$B_IN" "$t0" ||
        fail "tunnel not back within $RECOVERY_BOUND s of charon's restart"
    ok "tunnel back $RECOVERED s after charon's kill -9 and restart (bound $RECOVERY_BOUND s)"
    grep -q 'INITIAL-CONTACT' "$FV_TMP/daemon-a1.log" || fail "ferrovpn saw no INITIAL-CONTACT"
    [ "$(e2e_q "$SOCK_A" 'len(ikes)')" = 1 ] || fail "ferrovpn holds $(e2e_q "$SOCK_A" 'len(ikes)') IKE SAs"
    [ "$(e2e_q "$SOCK_A" 'len(sas)')" = 1 ] || fail "ferrovpn holds $(e2e_q "$SOCK_A" 'len(sas)') IPsec SAs"
    ok "ferrovpn dropped the stale SAs (INITIAL-CONTACT): one IKE SA, one IPsec SA"
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
}

CASES=(kill9-restart fv-responder-restart fv-initiator-restart ss-fv-restart ss-charon-restart)
for c in ${E2E_CASES:-${CASES[*]}}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "crash_restart.sh"

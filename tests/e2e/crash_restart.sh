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
# Needs root (namespaces); skips with a reason otherwise (fails with CI=true).
# Env: FERROVPN_BIN (binary to test, default: release build of this tree).
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "crash_restart.sh needs network namespaces"
require_cmd_or_skip ip ping python3
e2e_binary

A_IN=198.51.100.1
B_IN=203.0.113.1
PRIO=18006   # routing::DEFAULT_PRIORITY (the fwmark rule is PRIO+1)
TABLE=18006  # routing::DEFAULT_TABLE (0x4656)

write_conf() {
    local side="$1"
    if [ "$side" = a ]; then
        C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2
    else
        C_LOCAL=192.0.2.2 C_REMOTE=192.0.2.1
    fi
    C_SOCK="$FV_TMP/$side.sock" C_PSKFILE="$FV_TMP/$side.psk" C_START="$2" C_MODE=main \
        C_EXTRA="${3:-}" C_TUNNEL="$4" e2e_conf "$FV_TMP/$side.toml"
}

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
    C_DAEMON_EXTRA="run_dir = \"$FV_TMP/run\"" write_conf a initiate "" "[connection.route_based]
interface = \"fv0\"
address = \"$A_IN/32\"
routes = [\"0.0.0.0/0\"]"
    write_conf b respond 'dpd_interval = "5s"
dpd_timeout = "15s"' "[connection.route_based]
interface = \"fv0\"
address = \"$B_IN/32\"
routes = [\"198.51.100.0/24\"]"
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
    grep 'left behind by a previous run' "$FV_TMP/daemon-a2.log" | grep -q "stale control socket" ||
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

CASES=(kill9-restart)
for c in ${E2E_CASES:-${CASES[*]}}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "crash_restart.sh"

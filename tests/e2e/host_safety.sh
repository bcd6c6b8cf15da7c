#!/usr/bin/env bash
# Host safety: ferrovpn removes only what it can prove it created, refuses a name something else
# holds with an error that says who, and `up --daemon` reports setup failures.
#   persistent-tun  a persistent TUN fv0 (ip tuntap add) exists: `up` exits 1 saying fv0 exists
#                   and no ferrovpn created it; fv0 is still there with the same ifindex.
#   two-daemons     daemon 1 (fv0) ⇄ B carries a ping; daemon 2 with interface fv0 (another
#                   local address) exits 1 naming daemon 1's pid and control socket; daemon 3
#                   with daemon 1's control socket exits 1 ("another ferrovpn answers there");
#                   daemon 1's fv0 keeps its ifindex, its tunnel still pings, its status is UP.
#   socket-file     control_socket points at the config file itself: `up` exits 1 saying it is
#                   a regular file; the file is unchanged (same SHA-256).
#   daemon-readiness `up --daemon` with a local_addr the host lacks, or with its interface
#                   name taken, exits 1 and prints the setup error; with a good config it exits 0 only once the daemon answers on
#                   its control socket (status works at once), and `down` stops it.
#   capabilities    with only the unit's capabilities (setpriv --bounding-set: CAP_NET_ADMIN,
#                   CAP_NET_RAW, CAP_NET_BIND_SERVICE) a default-route tunnel comes up, pings and
#                   `down` cleans up; without CAP_NET_RAW `up` exits 1 naming it.
# (A daemon killed with -9 and restarted cleans its own leftovers: crash_restart.sh.)
# Needs root (namespaces); skips with a reason otherwise (fails with CI=true).
# Env: FERROVPN_BIN (binary to test, default: release build of this tree), E2E_CASES.
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "host_safety.sh needs network namespaces"
require_cmd_or_skip ip ping python3 sha256sum timeout
e2e_binary

A_IN=198.51.100.1
B_IN=203.0.113.1

# conf FILE LOCAL REMOTE START SOCK [INTERFACE] [ADDRESS]: one route-based connection, records
# in the case's own run directory.
conf() {
    C_SOCK="$5" C_LOCAL="$2" C_REMOTE="$3" C_PSKFILE="$FV_TMP/psk" C_START="$4" \
        C_DAEMON_EXTRA="run_dir = \"$FV_TMP/run\"" C_TUNNEL="[connection.route_based]
interface = \"${6:-fv0}\"
address = \"${7:-$A_IN/32}\"
routes = [\"203.0.113.0/24\"]" e2e_conf "$1"
}

# refused NS CONF LOG: `ferrovpn up` in the foreground must exit 1 (not hang, not succeed).
refused() {
    local rc=0
    E2E_LOGS+=("$3")
    timeout 30 ip netns exec "$1" "$FERROVPN" up -c "$2" >"$3" 2>&1 || rc=$?
    [ "$rc" = 1 ] || fail "ferrovpn up -c $2 exited $rc, want 1 (refusal)"
}

# expect_line LOG TEXT: LOG has a line with TEXT (fixed string); shows it.
expect_line() {
    grep -F -- "$2" "$1" >/dev/null || fail "$(basename "$1") has no line with: $2"
    ok "error: $(grep -F -- "$2" "$1" | grep -m1 'ferrovpn up' || grep -F -m1 -- "$2" "$1")"
}

ifindex() { ip -n "$1" -o link show "$2" 2>/dev/null | cut -d: -f1; }

case_persistent_tun() {
    fv_two_ns
    e2e_psk "$FV_TMP/psk" host-safety-secret
    ip -n "$FV_NS_A" tuntap add dev fv0 mode tun
    ip -n "$FV_NS_A" addr add 198.51.100.99/32 dev fv0
    local before after
    before="$(ifindex "$FV_NS_A" fv0)"
    conf "$FV_TMP/a.toml" 192.0.2.1 192.0.2.2 initiate "$FV_TMP/a.sock"
    refused "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/up-a.log"
    expect_line "$FV_TMP/up-a.log" "ferrovpn up: interface fv0 already exists (a TUN device, made persistent (ip tuntap add)"
    after="$(ifindex "$FV_NS_A" fv0)"
    [ -n "$after" ] || fail "the persistent TUN fv0 was deleted"
    [ "$after" = "$before" ] || fail "fv0 has ifindex $after, was $before: it was replaced"
    ip -n "$FV_NS_A" addr show dev fv0 | e2e_has 198.51.100.99 || fail "fv0 lost its address"
    ok "fv0 (ifindex $after) and its address are intact"
    [ ! -e "$FV_TMP/a.sock" ] || fail "the refused daemon left its control socket"
    [ -z "$(ls -A "$FV_TMP/run")" ] || fail "the refused daemon left a record: $(ls -A "$FV_TMP/run")"
    ok "the refused daemon left no control socket and no record"
}

case_two_daemons() {
    fv_two_ns
    e2e_psk "$FV_TMP/psk" host-safety-secret
    ip -n "$FV_NS_A" addr add 192.0.2.3/24 dev "$FV_IF_A"
    local s1="$FV_TMP/a1.sock" sb="$FV_TMP/b.sock" pid1 pidb idx
    conf "$FV_TMP/a1.toml" 192.0.2.1 192.0.2.2 initiate "$s1"
    C_SOCK="$sb" C_LOCAL=192.0.2.2 C_REMOTE=192.0.2.1 C_PSKFILE="$FV_TMP/psk" C_START=respond \
        C_DAEMON_EXTRA="run_dir = \"$FV_TMP/run-b\"" C_TUNNEL="$(e2e_route_based "$B_IN" 198.51.100.0/24)" e2e_conf "$FV_TMP/b.toml"
    e2e_up "$FV_NS_B" "$FV_TMP/b.toml" "$FV_TMP/daemon-b.log"
    pidb="$E2E_PID"
    e2e_up "$FV_NS_A" "$FV_TMP/a1.toml" "$FV_TMP/daemon-a1.log"
    pid1="$E2E_PID"
    e2e_wait_sas "$s1" "$pid1" 1 20 || fail "daemon 1: no IPsec SA within 20 s"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    idx="$(ifindex "$FV_NS_A" fv0)"

    # Same interface name, another local address and control socket.
    conf "$FV_TMP/a2.toml" 192.0.2.3 192.0.2.2 initiate "$FV_TMP/a2.sock" fv0 198.51.100.2/32
    refused "$FV_NS_A" "$FV_TMP/a2.toml" "$FV_TMP/up-a2.log"
    expect_line "$FV_TMP/up-a2.log" "ferrovpn up: interface fv0 belongs to another running ferrovpn (pid $pid1, control socket $s1)"
    # Same control socket, another interface.
    conf "$FV_TMP/a3.toml" 192.0.2.3 192.0.2.2 initiate "$s1" fv1 198.51.100.3/32
    refused "$FV_NS_A" "$FV_TMP/a3.toml" "$FV_TMP/up-a3.log"
    expect_line "$FV_TMP/up-a3.log" "ferrovpn up: control_socket $s1: another ferrovpn answers there (pid $pid1)"

    kill -0 "$pid1" 2>/dev/null || fail "daemon 1 died"
    [ "$(ifindex "$FV_NS_A" fv0)" = "$idx" ] || fail "daemon 1's fv0 (ifindex $idx) was deleted or replaced"
    [ -S "$s1" ] || fail "daemon 1's control socket is gone"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    [ "$(e2e_q "$s1" 'd["connections"][0]["up"]')" = True ] || fail "daemon 1 reports its connection down"
    ok "daemon 1 (pid $pid1) still up with fv0 ifindex $idx and its control socket"
    e2e_down "$s1" "$pid1" "$FV_NS_A" fv0
    e2e_down "$sb" "$pidb" "$FV_NS_B" fv0
}

case_socket_file() {
    fv_two_ns
    e2e_psk "$FV_TMP/psk" host-safety-secret
    local cfg="$FV_TMP/a.toml" sum
    # The config names itself as the control socket.
    conf "$cfg" 192.0.2.1 192.0.2.2 initiate "$cfg"
    sum="$(sha256sum "$cfg")"
    refused "$FV_NS_A" "$cfg" "$FV_TMP/up-a.log"
    expect_line "$FV_TMP/up-a.log" "control_socket: $cfg exists and is not a socket; ferrovpn will not replace it"
    [ "$(sha256sum "$cfg" 2>/dev/null)" = "$sum" ] || fail "the config file at the control_socket path was changed or removed"
    ok "the config file is intact"
    ! ip -n "$FV_NS_A" link show fv0 >/dev/null 2>&1 || fail "the refused daemon left fv0"
}

case_daemon_readiness() {
    fv_two_ns
    e2e_psk "$FV_TMP/psk" host-safety-secret
    local rc=0 sock="$FV_TMP/a.sock" pid
    # 192.0.2.77 is on no interface of the namespace.
    conf "$FV_TMP/bad.toml" 192.0.2.77 192.0.2.2 initiate "$sock"
    E2E_LOGS+=("$FV_TMP/up-bad.log")
    timeout 30 ip netns exec "$FV_NS_A" "$FERROVPN" up --daemon -c "$FV_TMP/bad.toml" \
        >"$FV_TMP/up-bad.log" 2>&1 </dev/null || rc=$?
    [ "$rc" = 1 ] || fail "up --daemon with a local_addr the host lacks exited $rc, want 1"
    grep -E '^ferrovpn up: .*(binding UDP 500/4500|192\.0\.2\.77)' "$FV_TMP/up-bad.log" >/dev/null ||
        fail "up-bad.log does not say why setup failed"
    ok "error: $(grep -E -m1 '^ferrovpn up: ' "$FV_TMP/up-bad.log")"
    [ ! -e "$sock" ] || fail "the failed daemon left its control socket"
    ok "up --daemon exited 1 with the setup error"
    # A failure only the running daemon sees: its interface name is taken.
    ip -n "$FV_NS_A" tuntap add dev fv0 mode tun
    conf "$FV_TMP/good.toml" 192.0.2.1 192.0.2.2 respond "$sock"
    rc=0
    timeout 30 ip netns exec "$FV_NS_A" "$FERROVPN" up --daemon -c "$FV_TMP/good.toml" \
        >"$FV_TMP/up-taken.log" 2>&1 </dev/null || rc=$?
    [ "$rc" = 1 ] || fail "up --daemon with its interface taken exited $rc, want 1"
    expect_line "$FV_TMP/up-taken.log" "ferrovpn up: interface fv0 already exists"
    ip -n "$FV_NS_A" link del fv0

    rc=0
    E2E_LOGS+=("$FV_TMP/up-good.log")
    timeout 30 ip netns exec "$FV_NS_A" "$FERROVPN" up --daemon -c "$FV_TMP/good.toml" \
        >"$FV_TMP/up-good.log" 2>&1 </dev/null || rc=$?
    pid="$(basename "$(ls "$FV_TMP"/run/*.state 2>/dev/null | head -1)" .state)"
    [ -n "$pid" ] && FV_PIDS+=("$pid")
    [ "$rc" = 0 ] || fail "up --daemon with a good config exited $rc"
    # No waiting: exit 0 means the daemon is up.
    e2e_status_json "$sock" >/dev/null || fail "up --daemon exited 0 but nothing answers on $sock"
    ip -n "$FV_NS_A" link show fv0 >/dev/null 2>&1 || fail "up --daemon exited 0 but fv0 does not exist"
    ok "up --daemon exited 0 with the daemon (pid $pid) answering on its control socket and fv0 up"
    e2e_down "$sock" "$pid" "$FV_NS_A" fv0
}

# The unit's capability set: only CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE
# (packaging/ferrovpn.service). setpriv as root with that bounding set is what systemd gives.
UNIT_CAPS="-all,+net_admin,+net_raw,+net_bind_service"

case_capabilities() {
    require_cmd_or_skip setpriv
    fv_two_ns
    e2e_psk "$FV_TMP/psk" host-safety-secret
    local sa="$FV_TMP/a.sock" sb="$FV_TMP/b.sock" pida pidb rc=0
    # A default route through the tunnel: socket marks and policy rules need CAP_NET_ADMIN too.
    C_SOCK="$sa" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE="$FV_TMP/psk" C_START=initiate \
        C_DAEMON_EXTRA="run_dir = \"$FV_TMP/run\"" C_TUNNEL="$(e2e_route_based "$A_IN" 0.0.0.0/0)" \
        e2e_conf "$FV_TMP/a.toml"
    C_SOCK="$sb" C_LOCAL=192.0.2.2 C_REMOTE=192.0.2.1 C_PSKFILE="$FV_TMP/psk" C_START=respond \
        C_DAEMON_EXTRA="run_dir = \"$FV_TMP/run-b\"" C_TUNNEL="$(e2e_route_based "$B_IN" 198.51.100.0/24)" \
        e2e_conf "$FV_TMP/b.toml"

    # Without CAP_NET_RAW (raw ESP socket): refused at start, and the error says what is missing.
    E2E_LOGS+=("$FV_TMP/up-noraw.log")
    timeout 30 ip netns exec "$FV_NS_A" setpriv --bounding-set "-all,+net_admin,+net_bind_service" \
        --inh-caps -all "$FERROVPN" up -c "$FV_TMP/a.toml" >"$FV_TMP/up-noraw.log" 2>&1 || rc=$?
    [ "$rc" = 1 ] || fail "up without CAP_NET_RAW exited $rc, want 1"
    grep -q 'CAP_NET_RAW' "$FV_TMP/up-noraw.log" ||
        { cat "$FV_TMP/up-noraw.log" >&2; fail "the refusal does not name CAP_NET_RAW"; }
    ok "without CAP_NET_RAW: $(grep -m1 'CAP_NET_RAW' "$FV_TMP/up-noraw.log")"
    [ -z "$(ip -n "$FV_NS_A" -o link show fv0 2>/dev/null)" ] || fail "the refused start left fv0 behind"

    e2e_up "$FV_NS_B" "$FV_TMP/b.toml" "$FV_TMP/daemon-b.log"
    pidb="$E2E_PID"
    FV_SPAWN_LOG="$FV_TMP/daemon-a.log" fv_spawn "$FV_NS_A" setpriv --bounding-set "$UNIT_CAPS" \
        --inh-caps -all "$FERROVPN" up -c "$FV_TMP/a.toml"
    pida="$FV_LAST_PID"
    E2E_LOGS+=("$FV_TMP/daemon-a.log")
    e2e_wait_sas "$sa" "$pida" 1 20 || fail "side A with the unit's capabilities only: no IPsec SA within 20 s"
    local eff
    # ip netns exec and setpriv exec, so the daemon keeps the PID fv_spawn saw.
    eff="$(awk '/^CapEff/ {print $2}' "/proc/$pida/status" 2>/dev/null || true)"
    [ "$eff" = 0000000000003400 ] || fail "side A's effective capabilities are ${eff:-unknown}, not the unit's 0x3400"
    ok "side A runs with CapEff $eff (net_admin, net_raw, net_bind_service only)"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_down "$sa" "$pida" "$FV_NS_A" fv0
    [ -z "$(ip -n "$FV_NS_A" rule show | grep -v -E '^(0|32766|32767):')" ] ||
        fail "rules left after down: $(ip -n "$FV_NS_A" rule show)"
    ok "with only the unit's three capabilities: tunnel up (default route), ping, down cleaned up"
    e2e_down "$sb" "$pidb" "$FV_NS_B" fv0
}

CASES=(persistent-tun two-daemons socket-file daemon-readiness capabilities)
for c in ${E2E_CASES:-${CASES[*]}}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "host_safety.sh"

#!/usr/bin/env bash
# Reload under traffic, ferrovpn ⇄ ferrovpn (issue #19). A (192.0.2.1, initiator) and B
# (192.0.2.2/.12/.32, responder) run three route-based connections:
#   e2e   fv0, 198.51.100.1 ⇄ 203.0.113.1   carries iperf3 and a checksummed transfer
#   gone  fv3, 198.51.100.3 ⇄ 203.0.113.3   removed by the reload
#   edit  fv4, 198.51.100.4 ⇄ 203.0.113.4   changed by the reload (esp aes128gcm16 → aes256gcm16)
# and while e2e is busy both sides reload (B, then A) with gone removed, edit changed and
#   added fv2, 198.51.100.2 ⇄ 203.0.113.2   (the outer address pair gone had)
# Checks: `ferrovpn reload` exits 0 and names what changed; e2e loses no iperf3 interval, the
# transfer's SHA-256 matches, its SPIs on both sides are those from before; gone's SAs and fv3 are
# gone on both sides; added passes traffic; edit came back with AES-256-GCM. Then a broken file
# (`ferrovpn reload`: exit 1 with the error; SIGHUP: refused in the log) and a [daemon] change
# (refused, naming the key) change nothing: same SPIs everywhere.
# Needs root (namespaces) and iperf3; skips with a reason otherwise (fails with CI=true).
# Env: FERROVPN_BIN (binary to test, default: release build of this tree), E2E_SECS (iperf3
# seconds, default 16), E2E_XFER_MB (the checksummed transfer, default 64).
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "reload.sh needs network namespaces"
require_cmd_or_skip ip ping python3 iperf3 sha256sum
e2e_binary

SECS="${E2E_SECS:-16}"
XFER_MB="${E2E_XFER_MB:-64}"
A_IN=198.51.100.1
B_IN=203.0.113.1

# conn SIDE NAME REMOTE_LAST_OCTET N ESP: one more route-based connection for SIDE (a: local
# 192.0.2.1, initiating; b: local 192.0.2.<octet>, responding), on fvN with 198.51.100.N ⇄
# 203.0.113.N.
conn() {
    local side="$1" name="$2" octet="$3" n="$4" esp="$5" local remote start here there
    if [ "$side" = a ]; then
        local=192.0.2.1 remote="192.0.2.$octet" start=initiate here="198.51.100.$n" there="203.0.113.$n"
    else
        local="192.0.2.$octet" remote=192.0.2.1 start=respond here="203.0.113.$n" there="198.51.100.$n"
    fi
    cat <<CONF

[[connection]]
name = "$name"
local_addr = "$local"
remote_addr = "$remote"
psk_file = "$FV_TMP/$side.psk"
esp = "$esp"
start = "$start"

[connection.route_based]
interface = "fv$n"
address = "$here/32"
routes = ["$there/32"]
CONF
}

# write_side SIDE CONNS...: SIDE's file: e2e (always the same) and the given blocks.
write_side() {
    local side="$1" start=initiate there=203.0.113.1/32 here=$A_IN
    shift
    [ "$side" = a ] || { start=respond there=198.51.100.1/32 here=$B_IN; }
    e2e_side_conf "$side" "$start" "" "$(e2e_route_based "$here" "$there")"
    local spec
    for spec in "$@"; do
        # shellcheck disable=SC2086  # spec is "NAME OCTET N ESP"
        conn "$side" $spec >>"$FV_TMP/$side.toml"
    done
}

# spis SOCK: "name:spi_in/spi_out" of every IPsec SA pair, sorted.
spis() {
    e2e_status_json "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(sorted(c["name"] + ":" + str(s["spi_in"]) + "/" + str(s["spi_out"]) for c in d["connections"] for s in c["ipsec_sas"])))'
}

# conn_q SOCK NAME EXPR: EXPR over connection NAME's status `c` (None when it is not there).
conn_q() {
    e2e_status_json "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
c = next((c for c in d["connections"] if c["name"] == sys.argv[1]), None)
print(eval(sys.argv[2]))' "$2" "$3"
}

# wait_conn_up SOCK NAME SECONDS
wait_conn_up() {
    local i
    for ((i = 0; i < $3 * 5; i++)); do
        [ "$(conn_q "$1" "$2" 'c is not None and len(c["ipsec_sas"]) == 1')" = True ] && return 0
        sleep 0.2
    done
    return 1
}

case_reload_under_traffic() {
    FV_NO_IPV6=1 fv_two_ns
    ip -n "$FV_NS_B" addr add 192.0.2.12/24 dev "$FV_IF_B"
    ip -n "$FV_NS_B" addr add 192.0.2.32/24 dev "$FV_IF_B"
    e2e_psk "$FV_TMP/a.psk" e2e-reload-secret
    e2e_psk "$FV_TMP/b.psk" e2e-reload-secret
    SOCK_A="$FV_TMP/a.sock"
    SOCK_B="$FV_TMP/b.sock"
    write_side a "gone 12 3 aes128gcm16" "edit 32 4 aes128gcm16"
    write_side b "gone 12 3 aes128gcm16" "edit 32 4 aes128gcm16"
    e2e_fv_pair_up "$FV_TMP/daemon-a.log" "$FV_TMP/daemon-b.log"
    wait_conn_up "$SOCK_A" gone 20 && wait_conn_up "$SOCK_A" edit 20 || fail "gone and edit did not come up"
    e2e_ping "$FV_NS_A" 198.51.100.3 203.0.113.3 1
    local before_a before_b e2e_a e2e_b
    before_a="$(spis "$SOCK_A")"
    e2e_a="$(tr ' ' '\n' <<<"$before_a" | grep '^e2e:')"
    e2e_b="$(spis "$SOCK_B" | tr ' ' '\n' | grep '^e2e:')"
    ok "three connections up: $before_a"

    # Traffic over e2e: iperf3 with 1-s intervals, and a checksummed transfer beside it.
    local srv xfer_pid json
    FV_SPAWN_LOG="$FV_TMP/iperf-server.log" fv_spawn "$FV_NS_B" iperf3 -s -p 5202 -B "$B_IN" -1
    srv=$FV_LAST_PID
    sleep 0.5
    json="$FV_TMP/iperf.json"
    ip netns exec "$FV_NS_A" timeout $((SECS + 30)) iperf3 -c "$B_IN" -p 5202 -B "$A_IN" -t "$SECS" -i 1 --json >"$json" &
    local iperf_pid=$!
    sleep 2
    rm -f "$FV_TMP/xfer.ready"
    e2e_transfer "$FV_NS_A" "$A_IN" "$FV_NS_B" "$B_IN" "$XFER_MB" 2>"$FV_TMP/xfer.out" &
    xfer_pid=$!
    # Reload once the transfer's receiver listens (the sender connects right after).
    local i
    for ((i = 0; i < 100; i++)); do
        [ -s "$FV_TMP/xfer.ready" ] && break
        sleep 0.1
    done
    sleep 0.2

    write_side a "edit 32 4 aes256gcm16" "added 12 2 aes128gcm16"
    write_side b "edit 32 4 aes256gcm16" "added 12 2 aes128gcm16"
    local out rc=0
    out="$("$FERROVPN" reload --socket "$SOCK_B" 2>&1)" || rc=$?
    [ "$rc" = 0 ] || fail "reload on B exited $rc: $out"
    grep -q "added \[added\], removed \[gone\], changed \[edit\], unchanged \[e2e\]" <<<"$out" || fail "reload on B said: $out"
    out="$("$FERROVPN" reload --socket "$SOCK_A" 2>&1)" || rc=$?
    [ "$rc" = 0 ] || fail "reload on A exited $rc: $out"
    local during="still running when both reloads had returned"
    kill -0 "$xfer_pid" 2>/dev/null || during="WARNING: already done when the reloads returned (raise E2E_XFER_MB)"
    ok "ferrovpn reload on B, then A: exit 0, '$out'; the checksummed transfer was $during"
    wait_conn_up "$SOCK_A" added 20 || fail "added did not come up: $(e2e_status_json "$SOCK_A")"
    wait_conn_up "$SOCK_A" edit 20 || fail "edit did not come back: $(e2e_status_json "$SOCK_A")"
    wait_conn_up "$SOCK_B" added 5 && wait_conn_up "$SOCK_B" edit 5 || fail "B: added or edit not up: $(e2e_status_json "$SOCK_B")"
    e2e_ping "$FV_NS_A" 198.51.100.2 203.0.113.2 2
    e2e_ping "$FV_NS_A" 198.51.100.4 203.0.113.4 2
    [ "$(conn_q "$SOCK_A" edit 'c["ipsec_sas"][0]["cipher"]')" = "$(conn_q "$SOCK_B" edit 'c["ipsec_sas"][0]["cipher"]')" ] || fail "edit: ciphers differ"
    grep -Eiq 'aes.?256' <<<"$(conn_q "$SOCK_A" edit 'c["ipsec_sas"][0]["cipher"]')" ||
        fail "edit is not on AES-256 after the reload: $(conn_q "$SOCK_A" edit 'c["ipsec_sas"][0]')"
    local side ns
    for side in A B; do
        ns="$FV_NS_A"
        [ "$side" = A ] || ns="$FV_NS_B"
        [ "$(conn_q "$FV_TMP/${side,,}.sock" gone c)" = None ] || fail "side $side still lists gone"
        ip -n "$ns" link show fv3 >/dev/null 2>&1 && fail "side $side: fv3 (gone's TUN) is still there"
        ip -n "$ns" link show fv2 >/dev/null 2>&1 || fail "side $side: no fv2 for added"
        ip -n "$ns" route show | e2e_has "203.0.113.3\|198.51.100.3" && fail "side $side: gone's route is still there"
    done
    grep -q "removed by reload" "$FV_TMP/daemon-b.log" || fail "B's log: no 'removed by reload'"
    ok "gone: SAs, fv3 and its route removed on both sides; added up on fv2; edit back with $(conn_q "$SOCK_A" edit 'c["ipsec_sas"][0]["cipher"]')"

    if ! wait "$iperf_pid"; then
        tail -n 20 "$json" >&2
        fail "iperf3 client failed"
    fi
    fv_stop "$srv"
    wait "$xfer_pid" || { cat "$FV_TMP/xfer.out" >&2; fail "checksummed transfer across the reload failed"; }
    grep 'ok:' "$FV_TMP/xfer.out" >&2 || true
    local n stalls where
    read -r n stalls where <<<"$(python3 - "$json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
iv = [i["sum"] for i in d["intervals"]]
stalls = [f'{s["start"]:.1f}-{s["end"]:.1f}s' for s in iv if s["bytes"] == 0 or s["end"] - s["start"] > 1.5]
print(len(iv), len(stalls), ",".join(stalls) or "-")
PY
)"
    [ "$n" -ge $((SECS - 1)) ] || fail "iperf3 reported only $n intervals for $SECS s"
    [ "$stalls" = 0 ] || fail "e2e stalled during the reload: $where"
    ok "e2e during the reload: $n iperf3 intervals, none empty or late"
    [ -n "$e2e_a" ] && [ -n "$e2e_b" ] || fail "no SPIs of e2e recorded"
    [ "$(spis "$SOCK_A" | tr ' ' '\n' | grep '^e2e:')" = "$e2e_a" ] || fail "e2e's SPIs on A changed: $e2e_a -> $(spis "$SOCK_A")"
    [ "$(spis "$SOCK_B" | tr ' ' '\n' | grep '^e2e:')" = "$e2e_b" ] || fail "e2e's SPIs on B changed"
    ok "e2e kept its SA pair on both sides: A $e2e_a, B $e2e_b"

    # A broken file: refused with the error, nothing changes.
    local good after left
    good="$(spis "$SOCK_A")"
    cp "$FV_TMP/a.toml" "$FV_TMP/a.toml.good"
    sed -i 's/aes256gcm16/aes999/' "$FV_TMP/a.toml"
    rc=0
    out="$("$FERROVPN" reload --socket "$SOCK_A" 2>&1)" || rc=$?
    [ "$rc" = 1 ] || fail "reload of a broken file exited $rc: $out"
    grep -q "aes999" <<<"$out" || fail "reload of a broken file did not say why: $out"
    grep -q "unchanged" <<<"$out" || fail "reload of a broken file did not say nothing changed: $out"
    kill -HUP "$PID_A"
    e2e_wait_log "$FV_TMP/daemon-a.log" "reload refused.*aes999" 5 || fail "SIGHUP with a broken file: no 'reload refused' in A's log"
    cp "$FV_TMP/a.toml.good" "$FV_TMP/a.toml"
    sed -i 's/^workers = 2$/workers = 3/' "$FV_TMP/a.toml"
    rc=0
    out="$("$FERROVPN" reload --socket "$SOCK_A" 2>&1)" || rc=$?
    [ "$rc" = 1 ] && grep -q "workers cannot change while ferrovpn runs" <<<"$out" ||
        fail "a [daemon] change was not refused by name (exit $rc): $out"
    after="$(spis "$SOCK_A")"
    [ "$after" = "$good" ] || fail "a refused reload changed SAs: $good -> $after"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 1
    kill -0 "$PID_A" || fail "A died"
    ok "broken file: reload exit 1 ('$(head -c 160 <<<"$out")…' for workers; aes999 named), SIGHUP refused in the log, SAs unchanged"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
    for ns in "$FV_NS_A" "$FV_NS_B"; do
        left="$(ip -n "$ns" -o link show | grep -E ' fv[0-9]+:' || true)"
        [ -z "$left" ] || fail "TUN devices left in $ns: $left"
    done
    ok "after down: no fv* device left on either side"
}

for c in ${E2E_CASES:-reload-under-traffic}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "reload.sh"

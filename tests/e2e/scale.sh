#!/usr/bin/env bash
# Many peers on one responder (issue #20), at a size CI can afford. Two namespaces joined by a
# veth: R is one ferrovpn responder at 2001:db8:ffff::1 with N connections, I one ferrovpn
# initiator with N connections from N peer addresses (2001:db8:ffff::1:<i>), each a route-based
# TUN with an inner /128 pair (2001:db8:a::<i> ⇄ 2001:db8:b::<i>); configs from
# scripts/lib/scale_conf.py.
#   all-up     all N tunnels up on both sides (the responder with its key pairs from a pool and
#              its shared secrets computed by two dh_workers threads: one job per tunnel, none
#              left in flight), pings through a sample (first, middle, last), then
#              `ferrovpn down` on both leaves no TUN device, no route of ours and the policy
#              rules as they were
#   half-open  the responder's max_half_open is far below N: the drops are logged (one line per
#              interval with the count), counted in status, and every tunnel still comes up as
#              the peers retransmit
#   shared     the responder's N connections share one TUN device (`[daemon] shared_interfaces`):
#              all up, exactly one TUN on R with one route per connection, pings through a
#              sample with the SA counters of both ends agreeing, a packet to a prefix no
#              connection routes dropped and counted (no_policy), a packet whose inner source
#              belongs to another connection refused and counted (spoofed), a reload removing
#              connection 2 takes its route out and leaves the device to the others (a sample
#              still pings), and `down` leaves no device and no route
# Needs root (namespaces); skips with a reason otherwise (fails with CI=true).
# Env: FERROVPN_BIN, E2E_CASES (subset of the names above), E2E_SCALE_N (default 100).
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "scale.sh needs network namespaces"
require_cmd_or_skip ip ping python3
e2e_binary

N="${E2E_SCALE_N:-100}"
GEN="$E2E_ROOT/scripts/lib/scale_conf.py"

# Namespaces R and I, the veth, N peer addresses on I (fv_scale_bed).
scale_bed() {
    R="${FV_ID}r"
    I="${FV_ID}i"
    fv_scale_bed "$R" "$I" "" "$N"
    e2e_psk "$FV_TMP/psk" "e2e-scale-secret"
}

# scale_write HALF_OPEN [SHARED]: the two configs (responder with max_half_open = HALF_OPEN
# unless empty, all on shared TUN SHARED if given; SCALE_RESPONDER_EXTRA: more [daemon] keys).
scale_write() {
    python3 "$GEN" ferrovpn responder "$N" "$FV_TMP/r.toml" --sock "$FV_TMP/r.sock" \
        --psk-file "$FV_TMP/psk" --ike aes128-sha256-ecp256 --prefix sr \
        --daemon-extra "$([ -z "$1" ] || echo "max_half_open = $1")
${SCALE_RESPONDER_EXTRA:-}" --shared "${2:-}"
    python3 "$GEN" ferrovpn initiator "$N" "$FV_TMP/i.toml" --sock "$FV_TMP/i.sock" \
        --psk-file "$FV_TMP/psk" --ike aes128-sha256-ecp256 --prefix si
}

# scale_start: responder, then initiator, from the configs written.
scale_start() {
    RULES_R="$(ip -n "$R" rule; ip -n "$R" -6 rule)"
    RULES_I="$(ip -n "$I" rule; ip -n "$I" -6 rule)"
    e2e_up "$R" "$FV_TMP/r.toml" "$FV_TMP/r.log"
    PID_R="$E2E_PID"
    for ((k = 0; k < 300; k++)); do
        e2e_status_json "$FV_TMP/r.sock" >/dev/null && break
        kill -0 "$PID_R" 2>/dev/null || fail "the responder exited"
        sleep 0.1
    done
    e2e_up "$I" "$FV_TMP/i.toml" "$FV_TMP/i.log"
    PID_I="$E2E_PID"
}

# scale_up HALF_OPEN: responder (with max_half_open = HALF_OPEN unless empty), then initiator.
scale_up() {
    scale_write "$1"
    scale_start
}

# all_up SECONDS: every connection has an IPsec SA on both sides.
all_up() {
    e2e_wait_sas "$FV_TMP/i.sock" "$PID_I" "$N" "$1" ||
        fail "initiator: $(e2e_q "$FV_TMP/i.sock" 'len(sas)') of $N IPsec SAs within $1 s"
    e2e_wait_sas "$FV_TMP/r.sock" "$PID_R" "$N" 10 ||
        fail "responder: $(e2e_q "$FV_TMP/r.sock" 'len(sas)') of $N IPsec SAs"
    ok "all $N tunnels up on both sides"
}

# down_clean NS SOCK PID RULES_BEFORE: `ferrovpn down`, then nothing of ours is left in NS.
down_clean() {
    local ns="$1" left
    "$FERROVPN" down --socket "$2" >/dev/null || fail "ferrovpn down ($ns) failed"
    for ((k = 0; k < 300; k++)); do
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$3" 2>/dev/null && fail "the daemon in $ns still runs 30 s after down"
    left="$(ip -n "$ns" -o link show type tun)"
    [ -z "$left" ] || fail "TUN devices left in $ns: $left"
    left="$(ip -n "$ns" -6 route show | grep -E '2001:db8:(a|b)::' || true)"
    [ -z "$left" ] || fail "routes left in $ns: $left"
    [ "$(ip -n "$ns" rule; ip -n "$ns" -6 rule)" = "$4" ] || fail "policy rules in $ns differ from before"
    ok "down in $ns: no TUN device, no tunnel route, policy rules as before"
}

case_all_up() {
    scale_bed
    # The responder takes its DH key pairs from a pool its worker thread fills, and has its
    # shared secrets computed by two worker threads.
    SCALE_RESPONDER_EXTRA="dh_pool = 16
dh_workers = 2" scale_up ""
    all_up 60
    local jobs flight
    jobs="$(e2e_q "$FV_TMP/r.sock" 'd["counters"]["ike"]["dh_jobs"]')"
    flight="$(e2e_q "$FV_TMP/r.sock" 'd["counters"]["ike"]["dh_jobs_in_flight"]')"
    [ "${jobs:-0}" -ge "$N" ] || fail "dh_workers = 2: ${jobs:-0} shared secrets computed by the workers for $N tunnels"
    [ "${flight:-1}" = 0 ] || fail "dh_workers = 2: $flight jobs still in flight with all tunnels up"
    ok "dh_workers = 2: $jobs shared secrets computed off the IKE thread, none in flight"
    local ready
    ready="$(e2e_q "$FV_TMP/r.sock" 'd["counters"]["ike"]["dh_pool_ready"]')"
    [ "${ready:-0}" -gt 0 ] || fail "dh_pool = 16: no key pair came from the pool"
    ok "dh_pool = 16: $ready of $N responder key pairs came ready from the pool, $(e2e_q "$FV_TMP/r.sock" 'd["counters"]["ike"]["dh_pool_inline"]') made inline"
    local k good=0
    for k in 1 $(((N + 1) / 2)) "$N"; do
        ip netns exec "$I" ping -6 -c 1 -W 3 -I "$(printf '2001:db8:a::%x' "$k")" \
            "$(printf '2001:db8:b::%x' "$k")" >/dev/null 2>&1 && good=$((good + 1))
    done
    [ "$good" = 3 ] || fail "only $good of 3 sampled tunnels answered a ping"
    ok "pings through tunnels 1, $(((N + 1) / 2)) and $N"
    [ "$(ip -n "$R" -o link show type tun | wc -l)" = "$N" ] || fail "the responder does not have $N TUN devices"
    down_clean "$R" "$FV_TMP/r.sock" "$PID_R" "$RULES_R"
    down_clean "$I" "$FV_TMP/i.sock" "$PID_I" "$RULES_I"
}

case_half_open() {
    # A burst of N MM1 gets `limit` in per retransmission round (2 s, 5.6 s, 12 s, …).
    local limit=$((N / 4))
    scale_bed
    scale_up "$limit"
    all_up 60
    grep -E "half-open limit reached: dropped [0-9]+ MM1/AM1" "$FV_TMP/r.log" >/dev/null ||
        fail "no log line about MM1/AM1 dropped at the half-open limit"
    local lines dropped
    lines="$(grep -c "half-open limit reached" "$FV_TMP/r.log")"
    dropped="$(e2e_q "$FV_TMP/r.sock" 'd["counters"]["ike"]["half_open_dropped"]')"
    [ "${dropped:-0}" -gt 0 ] || fail "status counts no half-open drops"
    # Rate-limited: far fewer lines than drops.
    [ "$lines" -lt "$dropped" ] || fail "$lines log lines for $dropped drops: not rate-limited"
    ok "max_half_open = $limit: $dropped MM1/AM1 dropped, logged in $lines line(s): $(grep -m1 -o 'half-open limit reached: dropped [0-9]* MM1/AM1[^(]*' "$FV_TMP/r.log")"
    local diag
    diag="$("$FERROVPN" diagnose --socket "$FV_TMP/r.sock" c1 2>&1 || true)"
    printf '%s' "$diag" | grep -E "$dropped MM1/AM1 dropped since start .*max_half_open = $limit" >/dev/null ||
        fail "diagnose does not show the half-open drops: $diag"
    ok "diagnose shows them: $(printf '%s' "$diag" | grep -m1 -o "$dropped MM1/AM1 dropped since start[^;]*max_half_open = $limit")"
    "$FERROVPN" down --socket "$FV_TMP/i.sock" >/dev/null || true
    "$FERROVPN" down --socket "$FV_TMP/r.sock" >/dev/null || true
}

# sa_counter SOCK CONN KEY: KEY (in_packets, out_packets) of connection CONN's IPsec SAs, summed.
sa_counter() {
    e2e_q "$1" "sum(int(s.get('$3', 0)) for c in d['connections'] if c['name'] == '$2' for s in c.get('ipsec_sas', []))"
}

case_shared() {
    local dev=fvgw0 k good=0 v
    scale_bed
    scale_write "" "$dev"
    # Connection 1 of the initiator may send from 2001:db8:a::/112 (both ends' selectors say
    # so), but the responder routes only 2001:db8:a::1 to it: a ping from 2001:db8:a::2
    # through it poses as connection 2.
    sed -i 's|local_ts = "2001:db8:a::1/128"|local_ts = "2001:db8:a::/112"|' "$FV_TMP/i.toml"
    sed -i 's|remote_ts = "2001:db8:a::1/128"|remote_ts = "2001:db8:a::/112"|' "$FV_TMP/r.toml"
    [ "$(grep -c '/112' "$FV_TMP/i.toml")" = 1 ] && [ "$(grep -c '/112' "$FV_TMP/r.toml")" = 1 ] ||
        fail "could not widen connection 1's selectors"
    scale_start
    all_up 60
    [ "$(ip -n "$R" -o link show type tun | wc -l)" = 1 ] || fail "the responder has $(ip -n "$R" -o link show type tun | wc -l) TUN devices, not 1"
    v="$(ip -n "$R" -6 route show dev "$dev" | grep -c '^2001:db8:a::')"
    [ "$v" = "$N" ] || fail "$v routes into $dev, not $N"
    ok "one TUN device $dev on the responder, $N routes into it"
    # The inner addresses the initiators ping live on lo (the shared device has none).
    for k in 1 $(((N + 1) / 2)) "$N"; do
        ip -n "$R" addr add "$(printf '2001:db8:b::%x/128' "$k")" dev lo
    done
    for k in 1 $(((N + 1) / 2)) "$N"; do
        ip netns exec "$I" ping -6 -c 3 -i 0.2 -W 3 -I "$(printf '2001:db8:a::%x' "$k")" \
            "$(printf '2001:db8:b::%x' "$k")" >/dev/null 2>&1 && good=$((good + 1))
    done
    [ "$good" = 3 ] || fail "only $good of 3 sampled tunnels answered a ping"
    for k in 1 $(((N + 1) / 2)) "$N"; do
        local io ri oi ro
        io="$(sa_counter "$FV_TMP/i.sock" "c$k" out_packets)"
        ri="$(sa_counter "$FV_TMP/r.sock" "c$k" in_packets)"
        ro="$(sa_counter "$FV_TMP/r.sock" "c$k" out_packets)"
        oi="$(sa_counter "$FV_TMP/i.sock" "c$k" in_packets)"
        [ "$io" -ge 3 ] && [ "$io" = "$ri" ] && [ "$ro" -ge 3 ] && [ "$ro" = "$oi" ] ||
            fail "c$k: initiator out $io / responder in $ri, responder out $ro / initiator in $oi"
    done
    ok "pings through tunnels 1, $(((N + 1) / 2)) and $N both ways, SA counters of both ends agree"
    # Both directions of the other tunnels carried nothing: the destination picked the SA.
    v="$(sa_counter "$FV_TMP/r.sock" c2 out_packets)"
    [ "$v" = 0 ] || fail "c2 sent $v packets though nobody pinged through it"
    # A destination no connection routes, routed into the device by hand: dropped, counted.
    local before after
    before="$(e2e_q "$FV_TMP/r.sock" 'd["counters"]["esp"]["no_policy"]')"
    ip -n "$R" -6 route add 2001:db8:c::/64 dev "$dev"
    ip netns exec "$R" ping -6 -c 2 -i 0.2 -W 1 2001:db8:c::1 >/dev/null 2>&1 &&
        fail "a ping to 2001:db8:c::1 (no connection) was answered"
    after="$(e2e_q "$FV_TMP/r.sock" 'd["counters"]["esp"]["no_policy"]')"
    [ "$((after - before))" -ge 2 ] || fail "no_policy went from $before to $after for 2 packets to no connection"
    ok "packets to a prefix of no connection: dropped, no_policy $before -> $after"
    # Connection 1 carrying a packet from connection 2's address: refused by the responder.
    before="$(e2e_q "$FV_TMP/r.sock" 'd["counters"]["esp"]["spoofed"]')"
    ip -n "$R" addr add 2001:db8:b::1/128 dev lo 2>/dev/null || true
    ip netns exec "$I" ping -6 -c 2 -i 0.2 -W 1 -I 2001:db8:a::2 2001:db8:b::1 >/dev/null 2>&1 &&
        fail "a ping from 2001:db8:a::2 through connection 1 was answered"
    after="$(e2e_q "$FV_TMP/r.sock" 'd["counters"]["esp"]["spoofed"]')"
    [ "$((after - before))" -ge 2 ] || fail "spoofed went from $before to $after for 2 packets posing as connection 2"
    v="$(sa_counter "$FV_TMP/r.sock" c2 in_packets)"
    [ "$v" = 0 ] || fail "c2 counts $v packets in"
    ok "inner source of another connection: refused, spoofed $before -> $after"
    # A reload without connection 2: its route goes, the device stays for the others.
    python3 - "$FV_TMP/r.toml" <<'PY'
import re, sys
p = sys.argv[1]
blocks = open(p).read().split("[[connection]]")
open(p, "w").write("[[connection]]".join(b for b in blocks if 'name = "c2"\n' not in b))
PY
    local out rc=0
    out="$("$FERROVPN" reload --socket "$FV_TMP/r.sock" 2>&1)" || rc=$?
    [ "$rc" = 0 ] || fail "reload without c2 exited $rc: $out"
    grep -q "removed \[c2\]" <<<"$out" || fail "reload said: $out"
    ip -n "$R" -o link show "$dev" >/dev/null 2>&1 || fail "$dev went with c2"
    [ -z "$(ip -n "$R" -6 route show 2001:db8:a::2)" ] || fail "c2's route is still there"
    v="$(ip -n "$R" -6 route show dev "$dev" | grep -c '^2001:db8:a::')"
    [ "$v" = "$((N - 1))" ] || fail "$v routes into $dev after the reload, not $((N - 1))"
    k="$N"
    ip netns exec "$I" ping -6 -c 2 -i 0.2 -W 3 -I "$(printf '2001:db8:a::%x' "$k")" \
        "$(printf '2001:db8:b::%x' "$k")" >/dev/null 2>&1 || fail "tunnel $N no longer answers after the reload"
    ok "reload removed c2: its route gone, $dev kept with $v routes, tunnel $N still answers"
    # The test's own addresses go before the check that nothing of ferrovpn's is left.
    for k in 1 $(((N + 1) / 2)) "$N"; do
        ip -n "$R" addr del "$(printf '2001:db8:b::%x/128' "$k")" dev lo
    done
    down_clean "$R" "$FV_TMP/r.sock" "$PID_R" "$RULES_R"
    [ -z "$(ip -n "$R" -6 route show | grep -E '2001:db8:c::|'"$dev" || true)" ] || fail "routes via $dev left"
    down_clean "$I" "$FV_TMP/i.sock" "$PID_I" "$RULES_I"
}

CASES=(all-up half-open shared)
for c in ${E2E_CASES:-${CASES[*]}}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "scale.sh"

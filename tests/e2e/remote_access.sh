#!/usr/bin/env bash
# ferrovpn as a remote-access client (issue 14) of strongSwan 5.9 as an XAuth + Mode Config
# gateway (charon with kernel-libipsec, the xauth-generic, attr and unity plugins) in two network
# namespaces: ferrovpn on side A (192.0.2.1, TUN fv0 without an address of its own), charon on
# side B (192.0.2.2, 203.0.113.1/32 on lo, a pool in 198.51.100.0/24). Cases:
#   main-full        Main Mode, XAuth, Mode Config pull, full tunnel (0.0.0.0/0, loop-free)
#   aggressive-split Aggressive Mode with the group name as ID_KEY_ID, XAuth, Mode Config push,
#                    split include 203.0.113.0/24 (Unity): routed into fv0 by ferrovpn itself
#                    instead of the configured 0.0.0.0/0, Quick Mode 0.0.0.0/0 (as Cisco)
#   dual-stack       an IPv4 and an IPv6 address from strongSwan's two pools (rw-pool6 in
#                    2001:db8:1::/112), one Quick Mode per family, 0.0.0.0/0 and ::/0 routed
#                    loop-free, ping and ping6, a checksummed transfer over IPv6
#   dual-stack-ipv4-gateway  the same client, a gateway with an IPv4 pool only: the IPv4 pair,
#                    the IPv6 one left out with a warning, `initiate` reports it up
#   wrong-password   XAuth rejected: a clear error, no retry storm, `initiate` exits 1 naming it
# And ferrovpn as the gateway (remote_access = "gateway", a pool, a users file) with strongSwan
# as XAuth + Mode Config client (vips = 0.0.0.0):
#   gateway-strongswan      one client: virtual IP from the pool, ping and a checksummed
#                           transfer, the lease released after the client's delete; the TUN
#                           is a [daemon] shared_interfaces device
#   gateway-strongswan-ipv6 an IPv6 charon (vips = ::) against a gateway with pool6
#                           2001:db8:1::/112: its Quick Mode names exactly its IPv6 lease,
#                           ping6 and a checksummed IPv6 transfer, status and metrics show
#                           the IPv6 pool, the lease released on delete
#   gateway-aggressive-push Aggressive Mode, group name as ID_KEY_ID, Mode Config pushed
#   gateway-two-clients     two charons in two namespaces at once, each its own address
#   gateway-wrong-password  XAuth FAIL: both sides log it, no IPsec SA
#   gateway-ferrovpn-client a ferrovpn client against the ferrovpn gateway
#   gateway-ferrovpn-client-prompt  the client has xauth_user but no xauth_password_file:
#                           without a terminal (new session, `up --daemon`) `up` exits 1 with
#                           the reason; on a pseudo-terminal (script(1)) it asks, echo off,
#                           connects with the typed password and answers XAuth with it again
#                           on a phase 1 rekey (ike_lifetime 20s; the gateway's cache knows it)
#   gateway-users-reload    `ferrovpn reload` takes a changed users file in place: alice (up)
#                           stays up, added carol logs in, removed alice no longer can; a
#                           broken users file is refused naming its line, the old users kept
#   gateway-pam             the gateway checks XAuth through PAM (xauth_pam_service with
#                           xauth_pam_confdir: pam_exec running a script that accepts one
#                           user and password, no /etc/pam.d): strongSwan with a wrong
#                           password is refused (the check runs off the event loop, the
#                           REPLY answered on its retransmission), with the right one connects;
#                           status --json counts the PAM checks
#   gateway-ferrovpn-client-ios  as Cisco IOS runs it: xauth_after_psk on both (auth method
#                           1 on the wire, read by decode -v from a capture), XAuth and Mode
#                           Config after it; the gateway's ESP has PFS, it says so by
#                           UNITY_PFS and the client (no PFS of its own) takes it
#   gateway-ferrovpn-dual-stack  both dual-stack: an address from pool and pool6, one Quick
#                           Mode per family, ping, ping6, IPv6 transfer, both leases released
# Each connected case: the address assigned by the gateway is on fv0 and is the Quick Mode
# selector, DNS/domain/banner reach the log and the dns_hook, ping and a 1 MiB TCP transfer with
# SHA-256 compared, from the assigned address to 203.0.113.1.
# Needs root and strongSwan (scripts/install-deps.sh); skips otherwise (fails with CI=true).
# Env: FERROVPN_BIN, E2E_CASES (subset of case names).
# shellcheck disable=SC2031  # E2E_CASE is set in the per-case subshell that runs these functions
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "remote_access.sh needs network namespaces"
require_cmd_or_skip ip ping python3 swanctl script setsid mkfifo "$FV_CHARON_BIN"
e2e_binary

PSK="ferrovpn-remote-access-group"
B_IN=203.0.113.1
POOL_FIRST=198.51.100.10
POOL6_FIRST=2001:db8:1::10
B_IN6=2001:db8:2::1
# charon as a remote-access gateway: XAuth (built-in xauth-generic), attributes, Cisco Unity.
FV_CHARON_LOAD="$FV_CHARON_LOAD xauth-generic attr unity"

# gateway_conf MODE(main|aggressive) PULL(yes|no) LOCAL_TS: swanctl.conf for charon in B.
gateway_conf() {
    local aggr=no remote_id=192.0.2.1 secret_ids="id-a = 192.0.2.2
        id-b = 192.0.2.1"
    if [ "$1" = aggressive ]; then
        aggr=yes
        remote_id="keyid:vpngroup"
        secret_ids="id-a = 192.0.2.2
        id-b = keyid:vpngroup"
    fi
    cat <<CONF
connections {
    rw {
        version = 1
        aggressive = $aggr
        local_addrs = 192.0.2.2
        remote_addrs = 192.0.2.1
        proposals = aes256-sha256-modp2048
        pools = ${GW_POOLS:-rw-pool}
        pull = $2
        local {
            auth = psk
            id = 192.0.2.2
        }
        remote {
            auth = psk
            id = $remote_id
        }
        remote-xauth {
            auth = xauth
            xauth_id = alice
        }
        children {
            rw {
                local_ts = $3
                esp_proposals = aes128gcm16
                start_action = none
            }
        }
    }
}
pools {
    rw-pool {
        addrs = $POOL_FIRST-198.51.100.20
        dns = 203.0.113.53
    }
    rw-pool6 {
        addrs = $POOL6_FIRST-2001:db8:1::20
        dns = 2001:db8:2::53
    }
}
secrets {
    ike-rw {
        $secret_ids
        secret = "$PSK"
    }
    xauth-alice {
        id = alice
        secret = "correct horse battery"
    }
}
CONF
}

# client_conf MODE PULL(pull|push) PASSWORD TUNNEL: ferrovpn's a.toml, its password file and
# the DNS hook that records its environment in $FV_TMP/hook.env.
client_conf() {
    local id=""
    [ "$1" = aggressive ] && id='local_id = "keyid:vpngroup"'
    (umask 077 && printf '%s\n' "$3" >"$FV_TMP/alice.pw")
    chmod 600 "$FV_TMP/alice.pw"
    cat >"$FV_TMP/hook.sh" <<HOOK
#!/bin/sh
env | grep '^FERROVPN_' | sort >"$FV_TMP/hook.env"
HOOK
    chmod 700 "$FV_TMP/hook.sh"
    e2e_psk "$FV_TMP/a.psk" "$PSK"
    SOCK_A="$FV_TMP/a.sock"
    C_SOCK="$SOCK_A" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE="$FV_TMP/a.psk" \
        C_START=initiate C_MODE="$1" C_ESP=aes128gcm16 C_EXTRA="$id
remote_access = \"client\"
xauth_user = \"alice\"
xauth_password_file = \"$FV_TMP/alice.pw\"
modeconfig = \"$2\"
dns_hook = \"$FV_TMP/hook.sh\"" C_TUNNEL="$4" e2e_conf "$FV_TMP/a.toml"
}

# connected MODE PULL(yes|no) LOCAL_TS FV_TUNNEL: the whole connected case.
connected() {
    local mode="$1" pull="$2" lts="$3" tunnel="$4" extra_ss="" fvpull=pull
    [ "$pull" = no ] && fvpull=push
    [ "$mode" = aggressive ] && extra_ss="    i_dont_care_about_security_and_use_aggressive_mode_psk = yes"
    FV_NO_IPV6=1 fv_two_ns
    e2e_ss_up "$(gateway_conf "$mode" "$pull" "$lts")" "$extra_ss
    plugins {
        attr {
            28672 = Authorized e2e users only
            28674 = example.org
        }
    }"
    client_conf "$mode" "$fvpull" "correct horse battery" "$tunnel"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/ferrovpn.log"
    PID_A="$E2E_PID"
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 30 || fail "ferrovpn: no IPsec SA within 30 s"
    e2e_ss_wait_installed "$FV_TMP/list-sas.txt"
    grep -q "alice" "$FV_TMP/list-sas.txt" || { cat "$FV_TMP/list-sas.txt" >&2; fail "strongSwan does not list XAuth user alice"; }
    ok "XAuth as alice accepted by strongSwan: $(grep -E 'INSTALLED' "$FV_TMP/list-sas.txt" | head -1 | sed -E 's/^ +//')"
    local log="$FV_TMP/ferrovpn.log"
    grep -q "address $POOL_FIRST/32 assigned by the gateway on fv0" "$log" || fail "no assigned address in the log"
    ip -n "$FV_NS_A" -4 addr show dev fv0 | e2e_has "inet $POOL_FIRST/32" || fail "$POOL_FIRST is not on fv0"
    [ "$(e2e_q "$SOCK_A" 'sas[0]["local_ts"]')" = "$POOL_FIRST/32" ] ||
        fail "local selector is $(e2e_q "$SOCK_A" 'sas[0]["local_ts"]'), not the assigned address"
    ok "assigned $POOL_FIRST/32 on fv0, the Quick Mode local selector"
    grep -q "Mode Config: address $POOL_FIRST.*DNS 203.0.113.53" "$log" || fail "Mode Config log line lacks the DNS server"
    grep -q "banner from the gateway: Authorized e2e users only" "$log" || fail "banner not logged"
    e2e_wait_log "$FV_TMP/hook.env" "FERROVPN_DNS=203.0.113.53" 5 || fail "dns_hook did not get FERROVPN_DNS"
    grep -q "FERROVPN_INTERNAL_IP4_ADDRESS=$POOL_FIRST" "$FV_TMP/hook.env" || fail "dns_hook lacks the address"
    grep -q "FERROVPN_DEFAULT_DOMAIN=example.org" "$FV_TMP/hook.env" || fail "dns_hook lacks the default domain"
    ok "DNS 203.0.113.53, domain and banner in the log and the hook ($(tr '\n' ' ' <"$FV_TMP/hook.env"))"
    if [ "$lts" != 0.0.0.0/0 ]; then
        grep -q "FERROVPN_SPLIT_INCLUDE=$lts" "$FV_TMP/hook.env" || fail "no split include $lts from the Unity gateway"
        ok "split include $lts from the gateway"
        # Routed by ferrovpn itself: exactly the split network into fv0, no default route.
        ip -n "$FV_NS_A" route show table all dev fv0 >"$FV_TMP/routes.txt"
        grep -q "^$lts " "$FV_TMP/routes.txt" || { cat "$FV_TMP/routes.txt" >&2; fail "$lts is not routed into fv0"; }
        grep -q "^default" "$FV_TMP/routes.txt" && { cat "$FV_TMP/routes.txt" >&2; fail "a default route into fv0 despite split include"; }
        others="$(grep -v -e "^$lts " -e '^local ' -e '^broadcast ' -e '^multicast ' -e '^fe80' "$FV_TMP/routes.txt" || true)"
        [ -z "$others" ] || fail "routes into fv0 other than $lts: $others"
        [ "$(e2e_q "$SOCK_A" 'sas[0]["remote_ts"]')" = 0.0.0.0/0 ] ||
            fail "Quick Mode remote selector is $(e2e_q "$SOCK_A" 'sas[0]["remote_ts"]'), not 0.0.0.0/0 (Unity split tunnel)"
        ok "split include routed by ferrovpn: $(grep "^$lts " "$FV_TMP/routes.txt"), no default route; Quick Mode 0.0.0.0/0 as Cisco/strongSwan Unity expect"
    else
        local r4
        r4="$(ip -n "$FV_NS_A" route show table all dev fv0)"
        grep -q "^default" <<<"$r4" || fail "full tunnel without a default route into fv0"
        ok "full tunnel: $(grep -m1 '^default' <<<"$r4")"
    fi
    if grep -q "password" "$log" && grep -q "correct horse" "$log"; then
        fail "the password appears in the log"
    fi
    "$FERROVPN" status --socket "$SOCK_A" >"$FV_TMP/status.txt" 2>&1 || fail "status failed"
    grep -q "mode config: address $POOL_FIRST" "$FV_TMP/status.txt" || { cat "$FV_TMP/status.txt" >&2; fail "status does not show the Mode Config"; }
    grep -q "banner: Authorized e2e users only" "$FV_TMP/status.txt" || fail "status does not show the banner"
    ok "status: $(grep -m1 'mode config:' "$FV_TMP/status.txt" | sed -E 's/^ +//')"
    e2e_ping "$FV_NS_A" "$POOL_FIRST" "$B_IN" 3
    e2e_transfer "$FV_NS_A" "$POOL_FIRST" "$FV_NS_B" "$B_IN" 1
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    if ip -n "$FV_NS_A" route show table all | grep "dev fv0" >/dev/null; then
        ip -n "$FV_NS_A" route show table all >&2
        fail "routes into fv0 left after down"
    fi
    ok "no route into fv0 left after down"
    fv_charon_stop "$FV_NS_B"
}

case_main_full() {
    connected main yes 0.0.0.0/0 "$(printf '[connection.route_based]\ninterface = "fv0"\n')"
}

case_aggressive_split() {
    # No remote_ts: 0.0.0.0/0 as configured; the gateway's split include decides the routes.
    connected aggressive no 203.0.113.0/24 "$(printf '[connection.route_based]\ninterface = "fv0"\n')"
}

# ferrovpn as a dual-stack client: one IPv4 and one IPv6 address from strongSwan's two pools,
# one Quick Mode per family with that address, 0.0.0.0/0 and ::/0 routed loop-free.
case_dual_stack() {
    fv_two_ns
    B_IN="$B_IN $B_IN6" GW_POOLS="rw-pool, rw-pool6" e2e_ss_up "$(GW_POOLS="rw-pool, rw-pool6" gateway_conf main yes "0.0.0.0/0, ::/0")"
    client_conf main pull "correct horse battery" "$(printf '[connection.route_based]\ninterface = "fv0"\nremote_ts = ["0.0.0.0/0", "::/0"]\n')"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/ferrovpn.log"
    PID_A="$E2E_PID"
    e2e_wait_sas "$SOCK_A" "$PID_A" 2 30 || fail "ferrovpn: not two IPsec SAs (IPv4 and IPv6) within 30 s"
    local log="$FV_TMP/ferrovpn.log" locals
    grep -q "address $POOL6_FIRST/128 assigned by the gateway on fv0" "$log" || fail "no assigned IPv6 address in the log"
    ip -n "$FV_NS_A" -6 addr show dev fv0 | e2e_has "inet6 $POOL6_FIRST/128" || fail "$POOL6_FIRST is not on fv0"
    ip -n "$FV_NS_A" -4 addr show dev fv0 | e2e_has "inet $POOL_FIRST/32" || fail "$POOL_FIRST is not on fv0"
    locals="$(e2e_q "$SOCK_A" 'sorted(s["local_ts"] for s in sas)')"
    [ "$locals" = "['$POOL_FIRST/32', '$POOL6_FIRST/128']" ] || fail "local selectors are $locals, not the assigned addresses"
    ok "assigned $POOL_FIRST/32 and $POOL6_FIRST/128 on fv0, each the local selector of its family's Quick Mode"
    e2e_wait_log "$FV_TMP/hook.env" "FERROVPN_INTERNAL_IP6_ADDRESS=$POOL6_FIRST" 5 || fail "dns_hook lacks the IPv6 address"
    grep -q "FERROVPN_DNS=203.0.113.53 2001:db8:2::53" "$FV_TMP/hook.env" || fail "dns_hook lacks the IPv6 DNS server"
    ok "dns_hook: $(grep -E 'INTERNAL_IP6|FERROVPN_DNS' "$FV_TMP/hook.env" | tr '\n' ' ')"
    # Captured first: with pipefail, `ip | grep -q` fails when grep exits before ip has written.
    local r6 rules6
    r6="$(ip -n "$FV_NS_A" -6 route show table all dev fv0)"
    rules6="$(ip -n "$FV_NS_A" -6 rule show)"
    grep -q "^default" <<<"$r6" || fail "no IPv6 default route into fv0"
    grep -q "not from all fwmark" <<<"$rules6" || { printf '%s\n' "$rules6" >&2; fail "no IPv6 fwmark rule (::/0 would loop)"; }
    ok "::/0 routed into fv0 loop-free: $(grep -m1 '^default' <<<"$r6"); $(grep -m1 'not from all fwmark' <<<"$rules6")"
    e2e_ping "$FV_NS_A" "$POOL6_FIRST" "$B_IN6" 3
    e2e_ping "$FV_NS_A" "$POOL_FIRST" "$B_IN" 3
    e2e_transfer "$FV_NS_A" "$POOL6_FIRST" "$FV_NS_B" "$B_IN6" 1
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    if ip -n "$FV_NS_A" -6 route show table all | grep "dev fv0" >/dev/null; then
        fail "IPv6 routes into fv0 left after down"
    fi
    ok "no IPv6 route into fv0 left after down"
    fv_charon_stop "$FV_NS_B"
}

# A dual-stack client of a gateway with an IPv4 pool only: the IPv4 pair comes up, the IPv6 one
# is not negotiated (said in the log), and `ferrovpn initiate` reports the tunnel up.
case_dual_stack_ipv4_gateway() {
    fv_two_ns
    e2e_ss_up "$(gateway_conf main yes "0.0.0.0/0, ::/0")"
    client_conf main pull "correct horse battery" "$(printf '[connection.route_based]\ninterface = "fv0"\nremote_ts = ["0.0.0.0/0", "::/0"]\n')"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/ferrovpn.log"
    PID_A="$E2E_PID"
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 30 || fail "ferrovpn: no IPsec SA within 30 s"
    e2e_wait_log "$FV_TMP/ferrovpn.log" "the gateway assigned no IPv6 address: the IPv6 pair is not negotiated" 5 ||
        fail "no word about the missing IPv6 address"
    [ "$(e2e_q "$SOCK_A" '[s["local_ts"] for s in sas]')" = "['$POOL_FIRST/32']" ] ||
        fail "pairs: $(e2e_q "$SOCK_A" '[s["local_ts"] for s in sas]')"
    local rc=0 out
    out="$("$FERROVPN" initiate e2e --socket "$SOCK_A" --timeout 10s 2>&1)" || rc=$?
    [ "$rc" = 0 ] || fail "ferrovpn initiate exited $rc ($out), want 0: the IPv4 pair is all there is"
    ok "IPv4 pair only, IPv6 not negotiated (logged); initiate: $(printf '%s' "$out" | tail -n 1)"
    e2e_ping "$FV_NS_A" "$POOL_FIRST" "$B_IN" 3
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

case_wrong_password() {
    FV_NO_IPV6=1 fv_two_ns
    e2e_ss_up "$(gateway_conf main yes 0.0.0.0/0)"
    client_conf main pull "wrong password" "$(printf '[connection.route_based]\ninterface = "fv0"\n')"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/ferrovpn.log"
    PID_A="$E2E_PID"
    e2e_wait_log "$FV_TMP/ferrovpn.log" "XAuth failed: the gateway rejected the user name or password" 30 ||
        fail "no XAuth failure in the log"
    e2e_wait_log "$FV_TMP/ferrovpn.log" "not retried: fix the XAuth credentials" 5 || fail "no 'not retried' advice"
    ok "$(grep -m1 -o 'XAuth failed.*' "$FV_TMP/ferrovpn.log")"
    # No retry storm: one Main Mode in 15 s.
    sleep 15
    local clog n
    clog="$(fv_charon_dir "$FV_NS_B")/charon.log"
    n="$(grep -c 'parsed ID_PROT request 0 \[ SA' "$clog" || true)"
    [ "$n" = 1 ] || fail "strongSwan saw $n Main Mode starts in 15 s (want 1: no retries)"
    ok "one Main Mode in 15 s: the rejected password is not retried"
    local rc=0 out
    out="$("$FERROVPN" initiate e2e --socket "$SOCK_A" --timeout 30s 2>&1)" || rc=$?
    [ "$rc" = 1 ] || fail "ferrovpn initiate exited $rc ($out), want 1"
    printf '%s' "$out" | e2e_has "rejected the user name or password" || fail "initiate does not name the XAuth failure: $out"
    ok "ferrovpn initiate exits 1: $(printf '%s' "$out" | tail -n 1)"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

# ---- ferrovpn as the gateway, strongSwan as XAuth client (issue 14, gateway role) ----
# ferrovpn in A (192.0.2.1, 203.0.113.1/32 on lo) serves a pool 198.51.100.128/25 on its TUN
# fvgw; charon (kernel-libipsec, xauth-generic) dials in from B, or from B and C.
GW_POOL=198.51.100.128/25
GW_IN=203.0.113.1
GW_IN6=2001:db8:2::1

# gw_conf [PUSH]: ferrovpn's gateway config g.toml with users alice and bob; with GW_POOL6 set
# also an IPv6 pool, IPv6 selectors and routes, and $GW_IN6 on A's lo; GW_USERS replaces the
# users_file line (e.g. by xauth_pam_service).
gw_conf() {
    local pool6="" sel="local_ts = \"203.0.113.0/24\"
remote_ts = \"$GW_POOL\"
routes = [\"$GW_POOL\"]"
    if [ -n "${GW_POOL6:-}" ]; then
        pool6="pool6 = \"$GW_POOL6\""
        sel="local_ts = [\"203.0.113.0/24\", \"2001:db8:2::/64\"]
remote_ts = [\"$GW_POOL\", \"$GW_POOL6\"]
routes = [\"$GW_POOL\", \"$GW_POOL6\"]"
        fv_add_inner "$FV_NS_A" "$GW_IN6/128"
    fi
    e2e_psk "$FV_TMP/g.psk" "$PSK"
    printf 'correct horse battery\n' | "$FERROVPN" user add "$FV_TMP/users" alice >/dev/null ||
        fail "ferrovpn user add alice failed"
    printf 'battery staple\n' | "$FERROVPN" user add "$FV_TMP/users" bob >/dev/null ||
        fail "ferrovpn user add bob failed"
    [ "$(stat -c %a "$FV_TMP/users")" = 600 ] || fail "users file is not mode 600"
    grep -q 'alice:\$6\$' "$FV_TMP/users" || fail "users file holds no SHA-512 crypt hash for alice"
    SOCK_G="$FV_TMP/g.sock"
    C_SOCK="$SOCK_G" C_LOCAL=192.0.2.1 C_REMOTE=any C_PSKFILE="$FV_TMP/g.psk" \
        C_START=respond C_ESP="${GW_ESP:-aes128gcm16}" C_MODE="${GW_MODE:-main}" C_EXTRA="${GW_EXTRA:-}
remote_access = \"gateway\"
pool = \"$GW_POOL\"
${GW_USERS:-users_file = \"$FV_TMP/users\"}
dns = [\"203.0.113.53\"]
domains = [\"corp.example\"]
banner = \"Authorized e2e users only\"
modeconfig = \"${1:-pull}\"
$pool6" C_TUNNEL="[connection.route_based]
interface = \"fvgw\"
$sel" e2e_conf "$FV_TMP/g.toml"
    fv_add_inner "$FV_NS_A" "$GW_IN/32"
}

# ss_client_conf USER PASSWORD OUTER: swanctl.conf of a strongSwan XAuth client at OUTER.
ss_client_conf() {
    cat <<CONF
connections {
    gw {
        version = 1
        aggressive = ${SS_AGGR:-no}
        pull = ${SS_PULL:-yes}
        local_addrs = $3
        remote_addrs = 192.0.2.1
        proposals = aes256-sha256-modp2048
        vips = ${SS_VIPS:-0.0.0.0}
        local {
            auth = psk
            id = ${SS_ID:-$3}
        }
        local-xauth {
            auth = xauth
            xauth_id = $1
        }
        remote {
            auth = psk
            id = 192.0.2.1
        }
        children {
            gw {
                remote_ts = 203.0.113.0/24
                esp_proposals = aes128gcm16
                start_action = none
            }
            gw6 {
                remote_ts = 2001:db8:2::/64
                esp_proposals = aes128gcm16
                start_action = none
            }
        }
    }
}
secrets {
    ike-gw {
        id-a = ${SS_ID:-$3}
        id-b = 192.0.2.1
        secret = "$PSK"
    }
    xauth-user {
        id = $1
        secret = "$2"
    }
}
CONF
}

# ss_client NS USER PASSWORD OUTER: starts charon in NS as an XAuth client of the gateway.
ss_client() {
    fv_charon_config "$1" "$(fv_strongswan_conf "ss-$2" "" "default = 1
            ike = 2
            cfg = 2")" "$(ss_client_conf "$2" "$3" "$4")"
    fv_charon_start "$1"
    E2E_LOGS+=("$(fv_charon_dir "$1")/charon.log")
    fv_charon_wait "$1" || fail "charon in $1 did not start"
    fv_charon_load "$1" >/dev/null || fail "swanctl --load-all failed in $1"
}

# ss_vip NS: the virtual IP charon in NS got (from --list-sas), empty if none.
ss_vip() {
    fv_swanctl "$1" --list-sas 2>/dev/null | grep -o 'local  *[0-9.]*/32' | grep -o '[0-9.]*/32' | head -1 | cut -d/ -f1
}

# gw_client_up NS USER: `swanctl --initiate` in NS; its virtual IP in $VIP.
gw_client_up() {
    fv_swanctl "$1" --initiate --child gw --timeout 30 >"$FV_TMP/initiate-$1.txt" 2>&1 ||
        { cat "$FV_TMP/initiate-$1.txt" >&2; fail "strongSwan in $1 ($2) could not connect"; }
    VIP="$(ss_vip "$1")"
    [ -n "$VIP" ] || { fv_swanctl "$1" --list-sas >&2; fail "strongSwan in $1 got no virtual IP"; }
    python3 -c 'import ipaddress, sys; sys.exit(ipaddress.ip_address(sys.argv[1]) not in ipaddress.ip_network(sys.argv[2]))' "$VIP" "$GW_POOL" ||
        fail "virtual IP $VIP is not from $GW_POOL"
    ok "strongSwan $2 in $1 connected with virtual IP $VIP"
}

# gw_up: the gateway of g.toml started in A (PID_G), listening on UDP 500.
gw_up() {
    e2e_up "$FV_NS_A" "$FV_TMP/g.toml" "$FV_TMP/gateway.log"
    PID_G="$E2E_PID"
    e2e_wait_udp "$FV_NS_A" 500 10 || fail "gateway does not listen on UDP 500"
}

# fv_client_conf EXTRA REMOTE_TS: c.toml for ferrovpn client bob in B (control socket
# $FV_TMP/c.sock, TUN fvc0, route-based to REMOTE_TS, a TOML value) of the gateway at
# 192.0.2.1; EXTRA: more connection lines (the password file, …), may be empty.
fv_client_conf() {
    e2e_psk "$FV_TMP/c.psk" "$PSK"
    C_SOCK="$FV_TMP/c.sock" C_LOCAL=192.0.2.2 C_REMOTE=192.0.2.1 C_PSKFILE="$FV_TMP/c.psk" \
        C_START=initiate C_ESP=aes128gcm16 C_EXTRA="remote_access = \"client\"
xauth_user = \"bob\"${1:+
$1}" C_TUNNEL="[connection.route_based]
interface = \"fvc0\"
remote_ts = $2" e2e_conf "$FV_TMP/c.toml"
}

case_gateway_strongswan() {
    FV_NO_IPV6=1 fv_two_ns
    # The gateway's TUN is a [daemon] shared_interfaces device (the pool routed into it).
    C_DAEMON_EXTRA='shared_interfaces = ["fvgw"]' gw_conf pull
    grep -q '^shared_interfaces = \["fvgw"\]' "$FV_TMP/g.toml" || fail "g.toml lacks shared_interfaces"
    gw_up
    B_IN="" ss_client "$FV_NS_B" alice "correct horse battery" 192.0.2.2
    gw_client_up "$FV_NS_B" alice
    local log="$FV_TMP/gateway.log"
    e2e_wait_log "$log" "remote-access client alice from 192.0.2.2:[0-9]+ got $VIP" 5 ||
        fail "the gateway does not log alice's lease"
    ok "$(grep -m1 -o 'remote-access client alice.*' "$log")"
    grep -q "correct horse" "$log" && fail "the password appears in the gateway log"
    e2e_ping "$FV_NS_B" "$VIP" "$GW_IN" 3
    e2e_transfer "$FV_NS_B" "$VIP" "$FV_NS_A" "$GW_IN" 1
    # The client leaves: its lease is released.
    fv_swanctl "$FV_NS_B" --terminate --ike gw --timeout 10 >/dev/null 2>&1 || true
    e2e_wait_log "$log" "lease of $VIP released" 10 || fail "the lease of $VIP was not released"
    ok "lease of $VIP released after the client's delete"
    fv_charon_stop "$FV_NS_B"
    e2e_down "$SOCK_G" "$PID_G" "$FV_NS_A" fvgw
}

# strongSwan as an IPv6 client (vips = ::, i.e. %config6; its IKEv1 Quick Mode takes the first
# virtual IP whatever the family, so one charon cannot run both) of a gateway with an IPv4
# and an IPv6 pool: only an IPv6 address, its Quick Mode naming exactly it, ping6 and a
# checksummed transfer over IPv6, status and metrics with the IPv6 pool, the lease released.
case_gateway_strongswan_ipv6() {
    fv_two_ns
    GW_POOL6=2001:db8:1::/112 C_DAEMON_EXTRA='metrics_listen = "127.0.0.1:9109"' gw_conf pull
    gw_up
    SS_VIPS="::" ss_client "$FV_NS_B" alice "correct horse battery" 192.0.2.2
    fv_swanctl "$FV_NS_B" --initiate --child gw6 --timeout 30 >"$FV_TMP/initiate6.txt" 2>&1 ||
        { cat "$FV_TMP/initiate6.txt" >&2; fail "strongSwan could not bring up its IPv6 child"; }
    local vip6=2001:db8:1::1 log="$FV_TMP/gateway.log"
    fv_swanctl "$FV_NS_B" --list-sas >"$FV_TMP/ss-sas.txt" 2>&1
    grep -q "local  *$vip6/128" "$FV_TMP/ss-sas.txt" || { cat "$FV_TMP/ss-sas.txt" >&2; fail "strongSwan's IPv6 child does not use $vip6/128"; }
    grep -q "local  *198.51" "$FV_TMP/ss-sas.txt" && fail "strongSwan got an IPv4 address it did not ask for"
    ok "strongSwan got $vip6 (its IPv6 Quick Mode names $vip6/128)"
    e2e_wait_log "$log" "remote-access client alice from 192.0.2.2:[0-9]+ got $vip6" 5 ||
        fail "the gateway does not log alice's IPv6 lease"
    grep "remote-access client alice" "$log" | e2e_has " and " && fail "the gateway leased an IPv4 address it was not asked for"
    [ "$(e2e_q "$SOCK_G" '[s["remote_ts"] for s in sas]')" = "['$vip6/128']" ] ||
        fail "the gateway's pairs are $(e2e_q "$SOCK_G" '[s["remote_ts"] for s in sas]')"
    ok "the gateway's pair names exactly $vip6/128"
    "$FERROVPN" status --socket "$SOCK_G" >"$FV_TMP/status.txt" 2>&1 || fail "status failed"
    grep -q "pool 2001:db8:1::/112: 1 used, 65534 free" "$FV_TMP/status.txt" || { cat "$FV_TMP/status.txt" >&2; fail "status does not show the IPv6 pool"; }
    grep -Eq "client alice $vip6 from 192.0.2.2:[0-9]+" "$FV_TMP/status.txt" || { cat "$FV_TMP/status.txt" >&2; fail "status does not show alice's IPv6 lease"; }
    ok "status: $(grep -m1 'pool 2001' "$FV_TMP/status.txt" | sed -E 's/^ +//'); $(grep -m1 "client alice $vip6" "$FV_TMP/status.txt" | sed -E 's/^ +//' | cut -c1-60)"
    local metrics
    metrics="$(ip netns exec "$FV_NS_A" python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9109/metrics", timeout=5).read().decode())')" ||
        fail "metrics scrape failed"
    printf '%s\n' "$metrics" | e2e_has '^ferrovpn_pool6_leases_used{connection="e2e"} 1$' ||
        { printf '%s\n' "$metrics" | grep pool >&2; fail "metrics lack the IPv6 pool's lease"; }
    ok "metrics: $(printf '%s\n' "$metrics" | grep -m1 '^ferrovpn_pool6_leases_used')"
    e2e_ping "$FV_NS_B" "$vip6" "$GW_IN6" 3
    e2e_transfer "$FV_NS_B" "$vip6" "$FV_NS_A" "$GW_IN6" 1
    fv_swanctl "$FV_NS_B" --terminate --ike gw --timeout 10 >/dev/null 2>&1 || true
    e2e_wait_log "$log" "lease of $vip6 released" 10 || fail "the lease of $vip6 was not released"
    ok "lease of $vip6 released after the client's delete"
    fv_charon_stop "$FV_NS_B"
    e2e_down "$SOCK_G" "$PID_G" "$FV_NS_A" fvgw
}

# Aggressive Mode with the group name as ID_KEY_ID (what iPhones and Android send) and Mode
# Config pushed by the gateway (SET/ACK).
case_gateway_aggressive_push() {
    FV_NO_IPV6=1 fv_two_ns
    GW_MODE=aggressive GW_EXTRA="allow_aggressive_psk = true" gw_conf push
    gw_up
    SS_AGGR=yes SS_PULL=no SS_ID="keyid:vpngroup" ss_client "$FV_NS_B" alice "correct horse battery" 192.0.2.2
    gw_client_up "$FV_NS_B" alice
    local log="$FV_TMP/gateway.log"
    grep -q "sending AM2" "$log" || fail "no Aggressive Mode on the gateway"
    # Two SETs (XAuth STATUS, then the settings) and no REQUEST from the client.
    [ "$(grep -c 'sending TRANSACTION \[ HASH CPS \]' "$log")" = 2 ] || fail "not two SETs (STATUS, settings) sent"
    grep -q "received TRANSACTION \[ HASH CPRQ \]" "$log" && fail "the client pulled although the gateway pushes"
    ok "Aggressive Mode with ID_KEY_ID vpngroup, Mode Config pushed (SET)"
    e2e_ping "$FV_NS_B" "$VIP" "$GW_IN" 3
    e2e_transfer "$FV_NS_B" "$VIP" "$FV_NS_A" "$GW_IN" 1
    fv_charon_stop "$FV_NS_B"
    e2e_down "$SOCK_G" "$PID_G" "$FV_NS_A" fvgw
}

# ferrovpn as the client of ferrovpn as the gateway: B dials A.
case_gateway_ferrovpn_client() {
    FV_NO_IPV6=1 fv_two_ns
    gw_conf pull
    gw_up
    (umask 077 && printf 'battery staple\n' >"$FV_TMP/bob.pw")
    local sock_c="$FV_TMP/c.sock"
    fv_client_conf "xauth_password_file = \"$FV_TMP/bob.pw\"" "\"203.0.113.0/24\""
    e2e_up "$FV_NS_B" "$FV_TMP/c.toml" "$FV_TMP/client.log"
    local pid_c="$E2E_PID"
    e2e_wait_sas "$sock_c" "$pid_c" 1 30 || fail "ferrovpn client: no IPsec SA within 30 s"
    local vip=198.51.100.129
    ip -n "$FV_NS_B" -4 addr show dev fvc0 | e2e_has "inet $vip/32" || fail "$vip is not on the client's fvc0"
    grep -q "banner from the gateway: Authorized e2e users only" "$FV_TMP/client.log" || fail "the client did not get the banner"
    ok "ferrovpn client bob got $vip and the banner from the ferrovpn gateway"
    e2e_ping "$FV_NS_B" "$vip" "$GW_IN" 3
    e2e_transfer "$FV_NS_B" "$vip" "$FV_NS_A" "$GW_IN" 1
    e2e_down "$sock_c" "$pid_c" "$FV_NS_B" fvc0
    e2e_wait_log "$FV_TMP/gateway.log" "lease of $vip released" 10 || fail "the lease of $vip was not released"
    ok "lease of $vip released when the client went down"
    e2e_down "$SOCK_G" "$PID_G" "$FV_NS_A" fvgw
}

# XAuth after a plain pre-shared key phase 1 (`xauth_after_psk`, as Cisco IOS with
# `authentication pre-share` runs it): both ends offer and take auth method 1 on the wire (the
# capture's MM1 and MM2, read by `ferrovpn decode -v`), XAuth and Mode Config follow as usual.
# The gateway's ESP proposal has PFS: it sends UNITY_PFS, and the client, whose own proposal
# has none, negotiates PFS in the phase 1 group.
case_gateway_ferrovpn_client_ios() {
    FV_NO_IPV6=1 fv_two_ns
    GW_ESP=aes128gcm16-modp2048 GW_EXTRA="xauth_after_psk = true" gw_conf pull
    local cap="$FV_TMP/ike.pcap"
    e2e_capture "$FV_NS_A" "$FV_IF_A" "$cap" "udp port 500 or udp port 4500"
    local cap_pid="$E2E_CAP_PID"
    gw_up
    (umask 077 && printf 'battery staple\n' >"$FV_TMP/bob.pw")
    local sock_c="$FV_TMP/c.sock" vip=198.51.100.129
    fv_client_conf "xauth_password_file = \"$FV_TMP/bob.pw\"
xauth_after_psk = true" "\"203.0.113.0/24\""
    "$FERROVPN" check -c "$FV_TMP/c.toml" 2>&1 | e2e_has "auth method pre-shared key (1), XAuth after it" ||
        fail "ferrovpn check does not show the plain PSK phase 1"
    e2e_up "$FV_NS_B" "$FV_TMP/c.toml" "$FV_TMP/client.log"
    local pid_c="$E2E_PID"
    e2e_wait_sas "$sock_c" "$pid_c" 1 30 || fail "ferrovpn client: no IPsec SA within 30 s"
    e2e_wait_log "$FV_TMP/gateway.log" "remote-access client bob" 10 || fail "the gateway did not log bob's XAuth and lease"
    e2e_ping "$FV_NS_B" "$vip" "$GW_IN" 3
    [ "$(e2e_q "$sock_c" 'sas[0]["pfs"]')" = modp2048 ] ||
        fail "the client's pair has PFS $(e2e_q "$sock_c" 'sas[0]["pfs"]'), not modp2048 from UNITY_PFS"
    ok "UNITY_PFS: the client's pair uses PFS modp2048 (phase 1's group) though its esp has none"
    sleep 0.5
    fv_stop "$cap_pid"
    "$FERROVPN" decode -v "$cap" >"$FV_TMP/decode.txt" 2>&1 || { cat "$FV_TMP/decode.txt" >&2; fail "ferrovpn decode failed"; }
    local offers
    offers="$(grep -c "auth=1 " "$FV_TMP/decode.txt" || true)"
    [ "${offers:-0}" -ge 2 ] && ! grep -q "auth=65001" "$FV_TMP/decode.txt" ||
        { cat "$FV_TMP/decode.txt" >&2; fail "MM1/MM2 do not carry auth method 1 only"; }
    grep -q "^.* MODECFG .*" "$FV_TMP/decode.txt" || fail "no Transaction exchange in the capture"
    ok "wire: MM1 and MM2 carry auth=1 (no 65001), then the Transaction exchange; bob got $vip"
    e2e_down "$sock_c" "$pid_c" "$FV_NS_B" fvc0
    e2e_down "$SOCK_G" "$PID_G" "$FV_NS_A" fvgw
}

# Both roles dual-stack: a ferrovpn client (remote_ts the gateway's networks of each family) of a ferrovpn gateway with pool and pool6: one address of each family,
# one Quick Mode per family, ping and ping6, a checksummed transfer over IPv6, both leases
# released when the client goes down.
case_gateway_ferrovpn_dual_stack() {
    fv_two_ns
    GW_POOL6=2001:db8:1::/112 gw_conf pull
    gw_up
    (umask 077 && printf 'battery staple\n' >"$FV_TMP/bob.pw")
    local sock_c="$FV_TMP/c.sock" vip=198.51.100.129 vip6=2001:db8:1::1
    fv_client_conf "xauth_password_file = \"$FV_TMP/bob.pw\"" "[\"203.0.113.0/24\", \"2001:db8:2::/64\"]"
    e2e_up "$FV_NS_B" "$FV_TMP/c.toml" "$FV_TMP/client.log"
    local pid_c="$E2E_PID"
    e2e_wait_sas "$sock_c" "$pid_c" 2 30 || fail "ferrovpn client: not two IPsec SAs within 30 s"
    ip -n "$FV_NS_B" -4 addr show dev fvc0 | e2e_has "inet $vip/32" || fail "$vip is not on the client's fvc0"
    ip -n "$FV_NS_B" -6 addr show dev fvc0 | e2e_has "inet6 $vip6/128" || fail "$vip6 is not on the client's fvc0"
    [ "$(e2e_q "$sock_c" 'sorted(s["local_ts"] for s in sas)')" = "['$vip/32', '$vip6/128']" ] ||
        fail "client selectors: $(e2e_q "$sock_c" 'sorted(s["local_ts"] for s in sas)')"
    [ "$(e2e_q "$SOCK_G" 'sorted(s["remote_ts"] for s in sas)')" = "['$vip/32', '$vip6/128']" ] ||
        fail "gateway selectors: $(e2e_q "$SOCK_G" 'sorted(s["remote_ts"] for s in sas)')"
    ok "ferrovpn client bob got $vip and $vip6 from the ferrovpn gateway, one Quick Mode each"
    e2e_ping "$FV_NS_B" "$vip" "$GW_IN" 3
    e2e_ping "$FV_NS_B" "$vip6" "$GW_IN6" 3
    e2e_transfer "$FV_NS_B" "$vip6" "$FV_NS_A" "$GW_IN6" 1
    e2e_down "$sock_c" "$pid_c" "$FV_NS_B" fvc0
    e2e_wait_log "$FV_TMP/gateway.log" "lease of $vip6 released" 10 || fail "the lease of $vip6 was not released"
    grep -q "lease of $vip released" "$FV_TMP/gateway.log" || fail "the lease of $vip was not released"
    ok "leases of $vip and $vip6 released when the client went down"
    e2e_down "$SOCK_G" "$PID_G" "$FV_NS_A" fvgw
}

case_gateway_two_clients() {
    FV_NO_IPV6=1 fv_two_ns
    # A third namespace C (192.0.2.3) on a bridge-less second veth to A.
    FV_NS_C="${FV_ID}c"
    fv_ns_create "$FV_NS_C"
    fv_veth "$FV_NS_A" "${FV_ID}-ac" 192.0.2.11/32 "$FV_NS_C" "${FV_ID}-c" 192.0.2.3/24
    ip -n "$FV_NS_A" route add 192.0.2.3/32 dev "${FV_ID}-ac"
    ip -n "$FV_NS_C" route add 192.0.2.1/32 dev "${FV_ID}-c" 2>/dev/null || true
    gw_conf pull
    gw_up
    ss_client "$FV_NS_B" alice "correct horse battery" 192.0.2.2
    ss_client "$FV_NS_C" bob "battery staple" 192.0.2.3
    gw_client_up "$FV_NS_B" alice
    local vip_b="$VIP"
    gw_client_up "$FV_NS_C" bob
    local vip_c="$VIP"
    [ "$vip_b" != "$vip_c" ] || fail "both clients got $vip_b"
    ok "two clients, two addresses: alice $vip_b, bob $vip_c"
    e2e_ping "$FV_NS_B" "$vip_b" "$GW_IN" 3
    e2e_ping "$FV_NS_C" "$vip_c" "$GW_IN" 3
    e2e_transfer "$FV_NS_B" "$vip_b" "$FV_NS_A" "$GW_IN" 1
    e2e_transfer "$FV_NS_C" "$vip_c" "$FV_NS_A" "$GW_IN" 1
    "$FERROVPN" status --socket "$SOCK_G" >"$FV_TMP/status.txt" 2>&1 || fail "status failed"
    grep -q "pool $GW_POOL: 2 used, 124 free" "$FV_TMP/status.txt" || { cat "$FV_TMP/status.txt" >&2; fail "status does not show the pool use"; }
    grep -Eq "client alice $vip_b from 192.0.2.2:[0-9]+  since [0-9]+s  in [1-9][0-9]* pkts" "$FV_TMP/status.txt" ||
        { cat "$FV_TMP/status.txt" >&2; fail "status does not show alice with her counters"; }
    grep -Eq "client bob $vip_c from 192.0.2.3:[0-9]+" "$FV_TMP/status.txt" || fail "status does not show bob"
    ok "status: $(grep -m1 'pool ' "$FV_TMP/status.txt" | sed -E 's/^ +//'); $(grep -m1 'client alice' "$FV_TMP/status.txt" | sed -E 's/^ +//')"
    [ "$(e2e_q "$SOCK_G" 'sorted(c["user"] for c in d["connections"][0]["clients"])')" = "['alice', 'bob']" ] ||
        fail "status --json lacks the clients"
    [ "$(e2e_q "$SOCK_G" 'len(ikes)')" = 2 ] || fail "the gateway does not show two ISAKMP SAs"
    ok "the gateway holds two ISAKMP SAs and $(e2e_q "$SOCK_G" 'len(sas)') IPsec SAs"
    fv_charon_stop "$FV_NS_B"
    fv_charon_stop "$FV_NS_C"
    e2e_down "$SOCK_G" "$PID_G" "$FV_NS_A" fvgw
}

case_gateway_wrong_password() {
    FV_NO_IPV6=1 fv_two_ns
    gw_conf pull
    gw_up
    ss_client "$FV_NS_B" alice "wrong password" 192.0.2.2
    fv_swanctl "$FV_NS_B" --initiate --child gw --timeout 20 >"$FV_TMP/initiate.txt" 2>&1 &&
        fail "strongSwan connected with a wrong password"
    local log="$FV_TMP/gateway.log"
    e2e_wait_log "$log" "XAuth failed: wrong user name or password for user \"alice\"" 10 ||
        fail "the gateway does not log the XAuth failure"
    ok "$(grep -m1 -o 'XAuth failed.*' "$log")"
    local clog
    clog="$(fv_charon_dir "$FV_NS_B")/charon.log"
    grep -Ei "xauth authentication .*failed" "$clog" >"$FV_TMP/ss-xauth.txt" ||
        { grep -i xauth "$clog" | grep -v 'loaded plugins' >&2; fail "strongSwan does not log the failed XAuth"; }
    ok "strongSwan: $(head -n 1 "$FV_TMP/ss-xauth.txt" | cut -c1-120)"
    [ "$(e2e_q "$SOCK_G" 'len(sas)')" = 0 ] || fail "the gateway installed an IPsec SA for a rejected user"
    fv_charon_stop "$FV_NS_B"
    e2e_down "$SOCK_G" "$PID_G" "$FV_NS_A" fvgw
}

# The XAuth password typed on the terminal (issue 14): no terminal is a clear error; on a
# pseudo-terminal the prompt comes, the typed password is not echoed and serves the phase 1
# rekey's XAuth too.
case_gateway_ferrovpn_client_prompt() {
    FV_NO_IPV6=1 fv_two_ns
    gw_conf pull
    gw_up
    local glog="$FV_TMP/gateway.log"
    local sock_c="$FV_TMP/c.sock"
    fv_client_conf "ike_lifetime = \"20s\"" "\"203.0.113.0/24\""
    "$FERROVPN" check -c "$FV_TMP/c.toml" 2>&1 | e2e_has 'asks for the password on its terminal' ||
        fail "ferrovpn check does not say the password will be asked for"
    local out rc=0
    out="$(setsid -w ip netns exec "$FV_NS_B" "$FERROVPN" up -c "$FV_TMP/c.toml" </dev/null 2>&1)" || rc=$?
    [ "$rc" = 1 ] && grep -q 'xauth_user "bob" has no xauth_password_file and the password cannot be asked for: no terminal to ask on' <<<"$out" ||
        fail "without a terminal: exit $rc, $out"
    ok "no terminal: exit 1, $(grep -o 'the password cannot be asked for.*' <<<"$out" | cut -c1-90)..."
    rc=0
    out="$(ip netns exec "$FV_NS_B" "$FERROVPN" up -c "$FV_TMP/c.toml" --daemon </dev/null 2>&1)" || rc=$?
    [ "$rc" = 1 ] && grep -q '`ferrovpn up --daemon` does not ask' <<<"$out" || fail "up --daemon: exit $rc, $out"
    ok "up --daemon: exit 1, says it does not ask"
    # On a pseudo-terminal: type the password once the prompt is there.
    mkfifo "$FV_TMP/typing"
    ip netns exec "$FV_NS_B" script -qfec "$FERROVPN up -c $FV_TMP/c.toml" "$FV_TMP/typescript" \
        <"$FV_TMP/typing" >/dev/null 2>&1 &
    local pid_c=$!
    FV_PIDS+=("$pid_c")
    E2E_LOGS+=("$FV_TMP/typescript")
    exec 7>"$FV_TMP/typing"
    e2e_wait_log "$FV_TMP/typescript" "XAuth password for bob \\(connection e2e\\): " 10 ||
        { exec 7>&-; fail "no password prompt on the terminal"; }
    printf 'battery staple\n' >&7
    e2e_wait_sas "$sock_c" "$pid_c" 1 30 || { exec 7>&-; fail "ferrovpn client: no IPsec SA within 30 s of the typed password"; }
    grep -q "battery staple" "$FV_TMP/typescript" && { exec 7>&-; fail "the typed password was echoed or logged"; }
    ok "prompt on the terminal, password not echoed, client up"
    local vip=198.51.100.129
    e2e_ping "$FV_NS_B" "$vip" "$GW_IN" 2
    # The phase 1 rekey (after about 10 s): the gateway asks XAuth again, the client answers
    # with the password it keeps, the gateway recognises it from its cache.
    local i
    for ((i = 0; i < 150; i++)); do
        [ "$(grep -c 'sending TRANSACTION \[ HASH CPS \]' "$glog")" -ge 2 ] && break
        sleep 0.2
    done
    [ "$(grep -c 'sending TRANSACTION \[ HASH CPS \]' "$glog")" -ge 2 ] ||
        { exec 7>&-; fail "no second XAuth STATUS from the gateway within 30 s (phase 1 rekey)"; }
    grep -q "XAuth failed" "$glog" && { exec 7>&-; fail "an XAuth failed on the rekey"; }
    [ "$(e2e_q "$SOCK_G" 'd["counters"]["ike"]["xauth_cached"] >= 1')" = True ] ||
        { exec 7>&-; fail "the gateway's XAuth cache was not used on the rekey: $(e2e_q "$SOCK_G" 'd["counters"]["ike"]')"; }
    e2e_ping "$FV_NS_B" "$vip" "$GW_IN" 2
    ok "phase 1 rekey: XAuth answered again with the kept password (gateway: $(e2e_q "$SOCK_G" 'd["counters"]["ike"]["xauth_hashed"]') hashed, $(e2e_q "$SOCK_G" 'd["counters"]["ike"]["xauth_cached"]') cached)"
    e2e_down "$sock_c" "$pid_c" "$FV_NS_B" fvc0
    exec 7>&-
    e2e_down "$SOCK_G" "$PID_G" "$FV_NS_A" fvgw
}

# A changed users file is applied by `ferrovpn reload` without a restart and without touching
# the clients that are up; a broken one is refused and the running users stay.
case_gateway_users_reload() {
    FV_NO_IPV6=1 fv_two_ns
    gw_conf pull
    e2e_up "$FV_NS_A" "$FV_TMP/g.toml" "$FV_TMP/gateway.log"
    PID_G="$E2E_PID"
    local log="$FV_TMP/gateway.log"
    e2e_wait_udp "$FV_NS_A" 500 10 || fail "gateway does not listen on UDP 500"
    ss_client "$FV_NS_B" alice "correct horse battery" 192.0.2.2
    gw_client_up "$FV_NS_B" alice
    local vip_alice="$VIP"
    # carol added, alice removed; the file stays mode 600 (user add replaces it whole).
    printf 'carol pass phrase\n' | "$FERROVPN" user add "$FV_TMP/users" carol >/dev/null ||
        fail "ferrovpn user add carol failed"
    grep -v '^alice:' "$FV_TMP/users" >"$FV_TMP/users.new" && chmod 600 "$FV_TMP/users.new" &&
        mv "$FV_TMP/users.new" "$FV_TMP/users"
    local out rc=0
    out="$("$FERROVPN" reload --socket "$SOCK_G" 2>&1)" || rc=$?
    [ "$rc" = 0 ] || fail "reload exited $rc: $out"
    grep -q "unchanged \[e2e\], users \[e2e: +carol -alice\]" <<<"$out" || fail "reload said: $out"
    ok "ferrovpn reload: '$out'"
    e2e_ping "$FV_NS_B" "$vip_alice" "$GW_IN" 2
    ok "alice, up before the reload, stays up (her XAuth was done)"
    fv_charon_stop "$FV_NS_B"
    e2e_wait_log "$log" "lease of $vip_alice released" 15 || fail "alice's lease was not released"
    ss_client "$FV_NS_B" carol "carol pass phrase" 192.0.2.2
    gw_client_up "$FV_NS_B" carol
    e2e_ping "$FV_NS_B" "$VIP" "$GW_IN" 2
    ok "carol, added by the reload, logs in"
    fv_swanctl "$FV_NS_B" --terminate --ike gw --timeout 10 >/dev/null 2>&1 || true
    fv_charon_stop "$FV_NS_B"
    ss_client "$FV_NS_B" alice "correct horse battery" 192.0.2.2
    fv_swanctl "$FV_NS_B" --initiate --child gw --timeout 20 >"$FV_TMP/initiate-alice.txt" 2>&1 &&
        fail "alice connected after the reload removed her"
    e2e_wait_log "$log" "XAuth failed: wrong user name or password for user \"alice\"" 10 ||
        fail "the gateway does not log alice's refusal"
    ok "alice, removed by the reload, is refused: $(grep -m1 -o 'XAuth failed.*alice.*' "$log" | cut -c1-100)"
    fv_charon_stop "$FV_NS_B"
    # A broken users file: the reload is refused with the reason, carol still logs in.
    printf 'dave:plain-text\n' >>"$FV_TMP/users"
    rc=0
    out="$("$FERROVPN" reload --socket "$SOCK_G" 2>&1)" || rc=$?
    [ "$rc" != 0 ] || fail "a reload with a broken users file exited 0: $out"
    grep -q "users_file .*users: line [0-9]*: user dave: the hash is not SHA-512 crypt" <<<"$out" &&
        grep -q "the running configuration is unchanged" <<<"$out" || fail "broken users file, reload said: $out"
    ok "broken users file refused (exit $rc): $out"
    ss_client "$FV_NS_B" carol "carol pass phrase" 192.0.2.2
    gw_client_up "$FV_NS_B" carol
    ok "the running users were kept: carol still logs in"
    fv_charon_stop "$FV_NS_B"
    e2e_down "$SOCK_G" "$PID_G" "$FV_NS_A" fvgw
}

# PAM as the gateway's users (xauth_pam_service): a service file in a directory of the test's
# own (xauth_pam_confdir, pam_start_confdir of Linux-PAM 1.4+), pam_exec running check.sh with
# the password on its stdin; a wrong password is refused, the right one connects.
case_gateway_pam() {
    FV_NO_IPV6=1 fv_two_ns
    local pamd="$FV_TMP/pam.d" log="$FV_TMP/gateway.log" mods
    mods="$(dirname "$(find /lib /usr/lib /lib64 /usr/lib64 -name pam_exec.so -path '*security*' 2>/dev/null | head -n 1)")"
    if [ ! -f "$mods/pam_permit.so" ] || [ ! -f "$mods/pam_deny.so" ]; then
        local why="Linux-PAM modules pam_exec/pam_permit/pam_deny not found (libpam-modules)"
        [ "${CI:-}" = true ] && fail "$why and CI=true"
        skip "$why"
    fi
    mkdir -p "$pamd"
    # pam_exec writes the password and a NUL (expose_authtok); exit 0 accepts. It notes who
    # asked from where: PAM_RHOST is the client's address as the gateway sees it.
    cat >"$pamd/check.sh" <<'SH'
#!/bin/sh
pw=$(tr -d '\000')
echo "$PAM_USER from $PAM_RHOST" >>"$(dirname "$0")/seen"
[ "$PAM_USER" = alice ] && [ "$pw" = "pam pass phrase" ]
SH
    chmod 755 "$pamd/check.sh"
    # pam_exec's failure is a system error; pam_deny makes it a denial (PAM_AUTH_ERR).
    printf '%s\n' "auth [success=done default=ignore] pam_exec.so quiet expose_authtok $pamd/check.sh" \
        "auth required pam_deny.so" "account required pam_permit.so" >"$pamd/ferrovpn-e2e"
    GW_USERS="xauth_pam_service = \"ferrovpn-e2e\"
xauth_pam_confdir = \"$pamd\"" gw_conf pull
    "$FERROVPN" check --config "$FV_TMP/g.toml" >"$FV_TMP/check.txt" 2>&1 || { cat "$FV_TMP/check.txt" >&2; fail "check refused the PAM gateway"; }
    grep -q "XAuth users: PAM service ferrovpn-e2e in $pamd" "$FV_TMP/check.txt" ||
        { cat "$FV_TMP/check.txt" >&2; fail "check does not name the PAM service"; }
    ok "check: $(grep -o 'XAuth users: PAM service [^,]*' "$FV_TMP/check.txt")"
    e2e_up "$FV_NS_A" "$FV_TMP/g.toml" "$log"
    PID_G="$E2E_PID"
    e2e_wait_udp "$FV_NS_A" 500 10 || fail "gateway does not listen on UDP 500"
    ss_client "$FV_NS_B" alice "wrong pam password" 192.0.2.2
    fv_swanctl "$FV_NS_B" --initiate --child gw --timeout 30 >"$FV_TMP/initiate-wrong.txt" 2>&1 &&
        fail "strongSwan connected with a wrong password through PAM"
    e2e_wait_log "$log" "XAuth failed: wrong user name or password for user \"alice\"" 10 ||
        fail "the gateway does not log the PAM rejection"
    ok "wrong password refused through PAM: $(grep -m1 -o 'XAuth failed.*' "$log")"
    [ "$(e2e_q "$SOCK_G" 'len(sas)')" = 0 ] || fail "the gateway installed an IPsec SA for a rejected user"
    fv_charon_stop "$FV_NS_B"
    ss_client "$FV_NS_B" alice "pam pass phrase" 192.0.2.2
    gw_client_up "$FV_NS_B" alice
    e2e_wait_log "$log" "remote-access client alice from 192.0.2.2:[0-9]+ got $VIP" 5 ||
        fail "the gateway does not log alice's lease"
    grep -q "pam pass phrase" "$log" && fail "the password appears in the gateway log"
    e2e_has -x "alice from 192.0.2.2" "$pamd/seen" || fail "PAM did not see the client's address as PAM_RHOST: $(sort -u "$pamd/seen" 2>/dev/null)"
    ok "PAM saw PAM_RHOST = the client's address: $(sort -u "$pamd/seen" | tr '\n' ';')"
    e2e_ping "$FV_NS_B" "$VIP" "$GW_IN" 3
    local c
    c="$(e2e_q "$SOCK_G" '[d["counters"]["ike"][k] for k in ("xauth_pam_checks", "xauth_pam_busy", "xauth_pam_errors", "xauth_hashed")]')"
    python3 -c 'import sys; c = eval(sys.argv[1]); sys.exit(not (c[0] >= 2 and c[1] >= 2 and c[2] == 0 and c[3] == 0))' "$c" ||
        fail "status --json PAM counters [checks, busy, errors, hashed] are $c"
    ok "status --json [xauth_pam_checks, xauth_pam_busy, xauth_pam_errors, xauth_hashed] = $c"
    fv_charon_stop "$FV_NS_B"
    e2e_down "$SOCK_G" "$PID_G" "$FV_NS_A" fvgw
}

CASES=(main-full aggressive-split dual-stack dual-stack-ipv4-gateway wrong-password gateway-strongswan gateway-strongswan-ipv6 gateway-aggressive-push gateway-two-clients gateway-wrong-password gateway-ferrovpn-client gateway-ferrovpn-client-ios gateway-ferrovpn-dual-stack gateway-ferrovpn-client-prompt gateway-users-reload gateway-pam)
for c in ${E2E_CASES:-${CASES[*]}}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "remote_access.sh"

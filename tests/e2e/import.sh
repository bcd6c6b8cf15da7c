#!/usr/bin/env bash
# `ferrovpn import` against the strongSwan it came from: charon (kernel-libipsec) runs a
# swanctl.conf in namespace B (192.0.2.2, 203.0.113.1/32 on lo); the mirror-image swanctl.conf,
# as side A would run it under strongSwan (with its secrets section and a few settings ferrovpn
# has no equivalent for), is converted by `ferrovpn import -o` and the result, untouched apart
# from a [daemon] table with this case's control socket, runs ferrovpn in namespace A
# (192.0.2.1, 198.51.100.1/32). Policy-based selectors 198.51.100.0/24 ⇄ 203.0.113.0/24.
# Checked: the import report names what was left behind, the key went to a 0600 file and
# nowhere else, `check` accepts the result, the tunnel comes up and pings pass both ways.
# Cases: fv-initiates (start_action = start in the mirror: ferrovpn initiates; ESP
# aes128-sha256 with PFS modp2048) and ss-initiates (start_action = none: ferrovpn responds;
# ESP aes128gcm16).
# Needs root and strongSwan (scripts/install-deps.sh); skips otherwise (fails with CI=true).
# Env: FERROVPN_BIN, E2E_CASES (subset of the case names).
# shellcheck disable=SC2031  # E2E_CASE is set in the per-case subshell that runs these functions
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "import.sh needs network namespaces"
require_cmd_or_skip ip ping python3 swanctl "$FV_CHARON_BIN"
e2e_binary

PSK="imported-from-strongswan-e2e"
A_IN=198.51.100.1
B_IN=203.0.113.1

# swanctl_conf LOCAL REMOTE LOCAL_TS REMOTE_TS ESP START_ACTION: one side's swanctl.conf.
swanctl_conf() {
    cat <<EOF
# swanctl.conf of $1 (IKEv1, PSK)
connections {
    site {
        version = 1
        local_addrs = $1
        remote_addrs = $2
        proposals = aes256-sha256-modp2048
        mobike = no
        dpd_delay = 10s
        local {
            auth = psk
            id = $1
        }
        remote {
            auth = psk
            id = $2
        }
        children {
            lan {
                local_ts = $3
                remote_ts = $4
                esp_proposals = $5
                start_action = $6
                updown = /usr/lib/ipsec/_updown iptables
            }
        }
    }
}
secrets {
    ike-site {
        id-a = $1
        id-b = $2
        secret = "$PSK"
    }
}
EOF
}

# import_case INITIATOR(fv|ss) ESP
import_case() {
    local initiator="$1" esp="$2" mirror_start=start want_start=initiate
    if [ "$initiator" = ss ]; then
        mirror_start=none
        want_start=respond
    fi

    FV_NO_IPV6=1 fv_two_ns
    fv_add_inner "$FV_NS_A" "$A_IN/32"
    # charon in B runs the mirror of the swanctl.conf that A's side imports.
    e2e_ss_up "$(swanctl_conf 192.0.2.2 192.0.2.1 203.0.113.0/24 198.51.100.0/24 "$esp" none)"

    # Side A's swanctl.conf, as it would be under strongSwan, converted.
    swanctl_conf 192.0.2.1 192.0.2.2 198.51.100.0/24 203.0.113.0/24 "$esp" "$mirror_start" >"$FV_TMP/a-swanctl.conf"
    "$FERROVPN" import "$FV_TMP/a-swanctl.conf" -o "$FV_TMP/a.toml" >"$FV_TMP/import.out" 2>"$FV_TMP/import.err" ||
        { cat "$FV_TMP/import.err" >&2; fail "ferrovpn import failed"; }
    [ ! -s "$FV_TMP/import.out" ] || fail "import printed to stdout with -o"
    grep -q 'read as strongSwan swanctl.conf: 1 connection converted' "$FV_TMP/import.err" ||
        { cat "$FV_TMP/import.err" >&2; fail "import did not detect swanctl.conf or convert the connection"; }
    local left
    for left in 'mobike = no: MOBIKE is IKEv2 only' 'updown = /usr/lib/ipsec/_updown iptables: ferrovpn runs no updown script'; do
        grep -qF "$left" "$FV_TMP/import.err" || { cat "$FV_TMP/import.err" >&2; fail "report does not name: $left"; }
        grep -qF "$left" "$FV_TMP/a.toml" || fail "the TOML does not carry the comment: $left"
    done
    ok "import report: $(grep -c '^  conn site:' "$FV_TMP/import.err") remarks on conn site, each with its reason"
    [ "$(stat -c %a "$FV_TMP/site.psk")" = 600 ] || fail "site.psk is not mode 600"
    [ "$(tr -d '\n' <"$FV_TMP/site.psk")" = "$PSK" ] || fail "site.psk does not hold the secret"
    if grep -qF "$PSK" "$FV_TMP/a.toml" "$FV_TMP/import.err"; then
        fail "the PSK appears in the TOML or the report"
    fi
    ok "PSK written to site.psk (mode 600) only"
    grep -qx "start = \"$want_start\"" "$FV_TMP/a.toml" || { cat "$FV_TMP/a.toml" >&2; fail "start is not $want_start"; }
    # The one addition: a control socket of this case, not the host's /run/ferrovpn.sock.
    SOCK_A="$FV_TMP/a.sock"
    printf '\n[daemon]\ncontrol_socket = "%s"\n' "$SOCK_A" >>"$FV_TMP/a.toml"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/ferrovpn.log"
    PID_A="$E2E_PID"
    ok "ferrovpn check accepted the imported configuration"

    if [ "$initiator" = ss ]; then
        e2e_wait_udp "$FV_NS_A" 500 5 || fail "ferrovpn does not listen on UDP 500"
        fv_swanctl "$FV_NS_B" --initiate --child lan --timeout 20 >"$FV_TMP/initiate.log" 2>&1 ||
            { tail -n 20 "$FV_TMP/initiate.log" >&2; fail "swanctl --initiate failed"; }
        ok "strongSwan initiated"
    fi
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "ferrovpn: no IPsec SA within 20 s"
    e2e_ss_wait_installed "$FV_TMP/list-sas.txt"
    ok "SA up: ESP $(e2e_q "$SOCK_A" 'sas[0]["cipher"]'), selectors $(e2e_q "$SOCK_A" 'sas[0]["local_ts"] + " <=> " + sas[0]["remote_ts"]')"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A"
    fv_charon_stop "$FV_NS_B"
}

case_fv_initiates() { import_case fv aes128-sha256-modp2048; }
case_ss_initiates() { import_case ss aes128gcm16; }

for c in ${E2E_CASES:-fv-initiates ss-initiates}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "import.sh"

#!/usr/bin/env bash
# ferrovpn ⇄ ferrovpn in two network namespaces joined by a veth pair (outer 192.0.2.1 ⇄
# 192.0.2.2; inner 198.51.100.0/24 on side A, 203.0.113.0/24 on side B). Each case brings up and
# tears down its own pair of namespaces and daemons:
#   route-main        route-based TUN, default route into the tunnel (fwmark policy routing),
#                     Main Mode: ping both ways, 20 MiB TCP with SHA-256 compared, counters agree
#   route-aggressive  the same with Aggressive Mode (responder opts in with allow_aggressive_psk)
#   policy-two-pairs  policy-based, two subnet pairs, one SA pair each, ping inside each pair
#   wrong-psk         tunnel never comes up, both daemons keep running, log says authentication
#   unreachable       peer drops UDP 500/4500: MM1 is retransmitted, the daemon keeps running
#   mss-fixed         A has tcp_mss = 1200, B "off": A's SYN reaches B's TUN with MSS 1200, B's
#                     SYN-ACK (1398) reaches A's TUN with 1200 (clamped both ways), TCP works
#   mss-auto          both default: A's route announces advmss 1460, its SYN reaches B's TUN with
#                     the TUN MTU - 40
#   frag-raw          both tunnels mtu = 1500 over the 1500-byte veth: ESP is larger than the link,
#                     so it leaves in fragments (no DF) and is reassembled (the send-only
#                     IPPROTO_RAW socket refuses it, the protocol 50 socket fragments it, no send
#                     errors counted); ping -M do -s 1472 and
#                     TCP get through; ping -M do beyond the TUN MTU fails locally (too long),
#                     and a host behind A gets ICMP "frag needed, mtu 1500" from A's kernel
#   frag-udp          the same with ESP-in-UDP (nat_traversal = "force")
#   control           ferrovpn rekey / terminate / initiate on A with their exit statuses: rekey
#                     gives new SPIs on both sides and the tunnel works; terminate deletes the
#                     SAs on both sides (B told) and A stays down past its retry time;
#                     unknown name 3, rekey while down 4; initiate brings it back
#   bytes-rekey       esp_lifetime_bytes = 2 MiB on both sides: a 12 MiB checksummed transfer
#                     passes through several pairs, each rekeyed at 90 % of its bytes (soft
#                     limit) before the hard limit stops it; new SPIs, no hard-limit stop
# Needs root (namespaces); skips with a reason otherwise (fails with CI=true).
# Env: FERROVPN_BIN (binary to test, default: release build of this tree), E2E_CASES (space-
# separated subset of the case names above), E2E_XFER_MB (default 20).
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "ferrovpn_pair.sh needs network namespaces"
require_cmd_or_skip ip ping python3 nft sha256sum tshark
e2e_binary

XFER_MB="${E2E_XFER_MB:-20}"
A_IN=198.51.100.1
B_IN=203.0.113.1

# Namespaces, PSK files and the common part of both configs.
pair_setup() {
    FV_NO_IPV6=1 fv_two_ns
    e2e_psk "$FV_TMP/a.psk" "${PSK_A:-e2e-pair-secret}"
    e2e_psk "$FV_TMP/b.psk" "${PSK_B:-e2e-pair-secret}"
    SOCK_A="$FV_TMP/a.sock"
    SOCK_B="$FV_TMP/b.sock"
}

# write_conf SIDE(a|b) START MODE EXTRA TUNNEL
write_conf() { C_MODE="$3" e2e_side_conf "$1" "$2" "$4" "$5"; }

start_pair() {
    e2e_up "$FV_NS_B" "$FV_TMP/b.toml" "$FV_TMP/daemon-b.log"
    PID_B="$E2E_PID"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a.log"
    PID_A="$E2E_PID"
}

# counters_agree SOCK_TX SOCK_RX NS_RX WHAT: ESP packets sent on one side = packets received on
# the other + what the receiver's kernel dropped before the daemon read it (small slack for
# packets in flight).
counters_agree() {
    local out in drops
    out="$(e2e_q "$1" 'total("out_packets")')"
    in="$(e2e_q "$2" 'total("in_packets")')"
    drops="$(e2e_socket_drops "$3")"
    python3 -c "import sys; o,i,d=$out,$in,$drops; sys.exit(0 if o>0 and i<=o and abs(o-i-d) <= max(3, o//200) else 1)" ||
        fail "$4: $out ESP packets sent but $in received and $drops dropped by the receiver's socket buffers"
    if [ "$drops" -gt 0 ]; then
        ok "$4: $out ESP packets sent, $in received by the peer, $drops ($((100 * drops / out))%) dropped on the peer's full socket receive buffer (WARNING: loss on a lossless veth)"
    else
        ok "$4: $out ESP packets sent, $in received by the peer"
    fi
}

route_pair() {
    local mode="$1" name1 extra_b=""
    case "$mode" in
        main) name1=MM1 ;;
        aggressive) name1=AM1 extra_b="allow_aggressive_psk = true" ;;
    esac
    pair_setup
    write_conf a initiate "$mode" "" "$(e2e_route_based "$A_IN" 0.0.0.0/0)"
    write_conf b respond "$mode" "$extra_b" "$(e2e_route_based "$B_IN" 198.51.100.0/24)"
    start_pair
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "side A: no IPsec SA within 20 s"
    e2e_wait_sas "$SOCK_B" "$PID_B" 1 20 || fail "side B: no IPsec SA within 20 s"
    ok "IPsec SAs up on both sides"

    grep -q "sending $name1" "$FV_TMP/daemon-a.log" || fail "side A log has no 'sending $name1' line"
    grep -Eqi 'IKE SA established' "$FV_TMP/daemon-a.log" || fail "side A log has no 'IKE SA established' line"
    grep -Eqi 'IPsec SA installed' "$FV_TMP/daemon-b.log" || fail "side B log has no 'IPsec SA installed' line"
    [ "$(e2e_q "$SOCK_A" 'ikes[0]["mode"], ikes[0]["role"], ikes[0]["state"]')" = "('$mode', 'initiator', 'established')" ] ||
        fail "side A status: $(e2e_status_json "$SOCK_A")"
    [ "$(e2e_q "$SOCK_B" 'ikes[0]["role"]')" = responder ] || fail "side B status: $(e2e_status_json "$SOCK_B")"
    [ "$(e2e_q "$SOCK_A" 'ikes[0]["cookies"]')" = "$(e2e_q "$SOCK_B" 'ikes[0]["cookies"]')" ] || fail "both sides should report the same cookies"
    [ "$(e2e_q "$SOCK_A" 'sas[0]["spi_out"]')" = "$(e2e_q "$SOCK_B" 'sas[0]["spi_in"]')" ] ||
        fail "A's outbound SPI is not B's inbound SPI"
    ok "status: $mode mode, cookies $(e2e_q "$SOCK_A" 'ikes[0]["cookies"]'), $(e2e_q "$SOCK_A" 'sas[0]["cipher"]')"
    local routes rules text link
    routes="$(ip -n "$FV_NS_A" route show table all)"
    rules="$(ip -n "$FV_NS_A" rule show)"
    grep -q "^default dev fv0" <<<"$routes" || { echo "$routes" >&2; fail "side A: no default route into fv0"; }
    grep -q fwmark <<<"$rules" || { echo "$rules" >&2; fail "side A: no fwmark policy rule for the default route"; }
    ok "side A: default route into fv0 in its own table, fwmark rule: $(grep fwmark <<<"$rules" | head -1 | tr -s ' \t' ' ')"
    link="$(ip -n "$FV_NS_A" -o link show fv0)"
    grep -q "qlen 1000" <<<"$link" || { echo "$link" >&2; fail "side A: fv0 txqueuelen is not 1000"; }
    ok "side A: fv0 txqueuelen 1000"
    text="$("$FERROVPN" status --socket "$SOCK_A")"
    grep -q e2e <<<"$text" || { echo "$text" >&2; fail "text status does not name the connection"; }

    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3
    sleep 0.2
    counters_agree "$SOCK_A" "$SOCK_B" "$FV_NS_B" "after ping, A -> B"
    counters_agree "$SOCK_B" "$SOCK_A" "$FV_NS_A" "after ping, B -> A"
    e2e_transfer "$FV_NS_A" "$A_IN" "$FV_NS_B" "$B_IN" "$XFER_MB"
    sleep 0.5
    counters_agree "$SOCK_A" "$SOCK_B" "$FV_NS_B" "after TCP, A -> B"
    counters_agree "$SOCK_B" "$SOCK_A" "$FV_NS_A" "after TCP, B -> A"
    [ "$(e2e_q "$SOCK_A" "total('out_bytes') >= $XFER_MB * 1048576")" = True ] ||
        fail "side A counted fewer ESP bytes out than the transfer"
    [ "$(e2e_q "$SOCK_B" 'total("auth_failures") + total("replay_drops")')" = 0 ] ||
        fail "side B counted auth failures or replay drops"

    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

case_route_main() { route_pair main; }
case_route_aggressive() { route_pair aggressive; }

# Two local subnets to one remote subnet ("two LANs to one remote LAN"): A's two pairs share
# their remote, whose route goes into A's TUN once (a second add used to fail `up` with "File
# exists"); both pairs come up and each carries its own pings.
case_policy_shared_remote() {
    pair_setup
    fv_add_inner "$FV_NS_A" 198.51.100.1/32
    fv_add_inner "$FV_NS_A" 198.51.100.129/32
    fv_add_inner "$FV_NS_B" 203.0.113.1/32
    write_conf a initiate main "" '[connection.policy_based]
pairs = [
    { local = "198.51.100.0/25", remote = "203.0.113.0/24" },
    { local = "198.51.100.128/25", remote = "203.0.113.0/24" },
]'
    write_conf b respond main "" '[connection.policy_based]
pairs = [
    { local = "203.0.113.0/24", remote = "198.51.100.0/25" },
    { local = "203.0.113.0/24", remote = "198.51.100.128/25" },
]'
    start_pair
    e2e_wait_sas "$SOCK_A" "$PID_A" 2 20 ||
        fail "side A: fewer than 2 IPsec SAs within 20 s ($(e2e_q "$SOCK_A" 'len(sas)') up)"
    e2e_wait_sas "$SOCK_B" "$PID_B" 2 5 || fail "side B: fewer than 2 IPsec SAs"
    e2e_ping "$FV_NS_A" 198.51.100.1 203.0.113.1 3
    e2e_ping "$FV_NS_A" 198.51.100.129 203.0.113.1 3
    sleep 0.3
    [ "$(e2e_q "$SOCK_A" 'all(s["out_packets"] >= 3 and s["in_packets"] >= 3 for s in sas)')" = True ] ||
        fail "not every SA carried traffic: $(e2e_status_json "$SOCK_A")"
    ok "two pairs to one remote subnet: both up, each carried its own pings"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A"
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B"
}

# `ferrovpn down` returns once the daemon's teardown is done, so a script's `up` right after it
# starts cleanly (it used to meet the leaving daemon's TUN: "interface fv0 belongs to another
# running ferrovpn").
case_down_then_up() {
    pair_setup
    write_conf a initiate main "" "$(e2e_route_based 198.51.100.1 203.0.113.0/24)"
    write_conf b respond main "" "$(e2e_route_based 203.0.113.1 198.51.100.0/24)"
    start_pair
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "side A: no IPsec SA within 20 s"
    local out
    out="$(ip netns exec "$FV_NS_A" "$FERROVPN" down --socket "$SOCK_A" 2>&1)" ||
        fail "ferrovpn down failed: $out"
    case "$out" in *"ok: stopped"*) ;; *) fail "down did not report the stop: $out" ;; esac
    ip -n "$FV_NS_A" link show fv0 >/dev/null 2>&1 && fail "fv0 still exists when down returned"
    local old="$PID_A"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a2.log"
    PID_A="$E2E_PID"
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 ||
        fail "the up right after down did not come up: $(tail -3 "$FV_TMP/daemon-a2.log")"
    fv_stop "$old"
    e2e_ping "$FV_NS_A" 198.51.100.1 203.0.113.1 2
    ok "down returned after the teardown; the up right after it came up"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

case_policy_two_pairs() {
    pair_setup
    fv_add_inner "$FV_NS_A" 198.51.100.1/32
    fv_add_inner "$FV_NS_A" 198.51.100.129/32
    fv_add_inner "$FV_NS_B" 203.0.113.1/32
    fv_add_inner "$FV_NS_B" 203.0.113.129/32
    write_conf a initiate main "" '[connection.policy_based]
pairs = [
    { local = "198.51.100.0/25", remote = "203.0.113.0/25" },
    { local = "198.51.100.128/25", remote = "203.0.113.128/25" },
]'
    write_conf b respond main "" '[connection.policy_based]
pairs = [
    { local = "203.0.113.0/25", remote = "198.51.100.0/25" },
    { local = "203.0.113.128/25", remote = "198.51.100.128/25" },
]'
    start_pair
    local rc=0
    e2e_wait_sas "$SOCK_A" "$PID_A" 2 20 || rc=$?
    if [ "$rc" = 2 ] || ! kill -0 "$PID_B" 2>/dev/null; then
        if grep -Ehi 'policy.?based.*(not (yet )?(supported|implemented)|unsupported)|(not (yet )?(supported|implemented)|unsupported).*policy' \
            "$FV_TMP/daemon-a.log" "$FV_TMP/daemon-b.log" >"$FV_TMP/why" 2>/dev/null; then
            skip "daemon reports policy-based connections unsupported: $(head -1 "$FV_TMP/why")"
        fi
        fail "a daemon exited during a policy-based negotiation"
    fi
    [ "$rc" = 0 ] || fail "side A: fewer than 2 IPsec SAs within 20 s ($(e2e_q "$SOCK_A" 'len(sas)') up)"
    e2e_wait_sas "$SOCK_B" "$PID_B" 2 5 || fail "side B: fewer than 2 IPsec SAs"
    ok "two IPsec SA pairs up: $(e2e_q "$SOCK_A" '", ".join(s["local_ts"] + "=" + s["remote_ts"] for s in sas)')"
    e2e_ping "$FV_NS_A" 198.51.100.1 203.0.113.1 3
    e2e_ping "$FV_NS_A" 198.51.100.129 203.0.113.129 3
    e2e_ping "$FV_NS_B" 203.0.113.129 198.51.100.129 3
    sleep 0.3
    # Each pair's traffic went through its own SA.
    [ "$(e2e_q "$SOCK_A" 'all(s["out_packets"] >= 3 and s["in_packets"] >= 3 for s in sas)')" = True ] ||
        fail "not every SA carried traffic: $(e2e_status_json "$SOCK_A")"
    counters_agree "$SOCK_A" "$SOCK_B" "$FV_NS_B" "A -> B"
    counters_agree "$SOCK_B" "$SOCK_A" "$FV_NS_A" "B -> A"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A"
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B"
}

case_wrong_psk() {
    PSK_B=not-the-same-secret pair_setup
    write_conf a initiate main "" "[connection.route_based]
interface = \"fv0\"
address = \"$A_IN/32\""
    write_conf b respond main "" "[connection.route_based]
interface = \"fv0\"
address = \"$B_IN/32\""
    local t0
    t0=$(date +%s)
    start_pair
    # The responder cannot decrypt MM5 and says why; it tells the initiator with a notify.
    e2e_wait_log "$FV_TMP/daemon-b.log" 'authentication failed' 10 ||
        fail "responder: no 'authentication failed' in its log within 10 s"
    ok "responder log: $(grep -i 'authentication failed' "$FV_TMP/daemon-b.log" | head -1 | sed -E 's/^.*(IKE SA)/\1/')"
    e2e_wait_log "$FV_TMP/daemon-a.log" 'authentication.failed' 5 ||
        fail "initiator: no authentication failure in its log"
    ok "initiator log: $(grep -Ei 'failed.*authentication.failed' "$FV_TMP/daemon-a.log" | head -1 | sed -E 's/^.*(IKE SA)/\1/')"
    while [ $(($(date +%s) - t0)) -lt 10 ]; do sleep 0.5; done
    kill -0 "$PID_A" 2>/dev/null || fail "side A daemon exited after the failed negotiation"
    kill -0 "$PID_B" 2>/dev/null || fail "side B daemon exited after the failed negotiation"
    [ "$(e2e_q "$SOCK_A" 'len(sas)')" = 0 ] || fail "side A has an IPsec SA despite different PSKs"
    [ "$(e2e_q "$SOCK_B" 'len(sas)')" = 0 ] || fail "side B has an IPsec SA despite different PSKs"
    ok "no IPsec SA after 10 s, both daemons still running"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

case_unreachable() {
    pair_setup
    # Nobody answers: the peer namespace silently drops IKE (no ICMP port unreachable).
    ip netns exec "$FV_NS_B" nft -f - <<'EOF'
table inet e2e {
    chain input {
        type filter hook input priority 0; policy accept;
        udp dport { 500, 4500 } drop
    }
}
EOF
    write_conf a initiate main "" "[connection.route_based]
interface = \"fv0\"
address = \"$A_IN/32\""
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a.log"
    PID_A="$E2E_PID"
    e2e_wait_log "$FV_TMP/daemon-a.log" 'sending MM1' 5 || fail "side A never sent MM1"
    e2e_wait_log "$FV_TMP/daemon-a.log" 'MM1 \(retransmit\)|retransmit.*MM1' 10 ||
        fail "no retransmission of MM1 within 10 s"
    ok "log: $(grep -Ei 'MM1 \(retransmit\)|retransmit.*MM1' "$FV_TMP/daemon-a.log" | head -1)"
    if [ "${E2E_LONG:-0}" = 1 ]; then
        e2e_wait_log "$FV_TMP/daemon-a.log" 'no response to MM1' 240 ||
            fail "no 'no response to MM1 after N retransmissions' within 240 s"
        ok "log: $(grep -i 'no response to MM1' "$FV_TMP/daemon-a.log" | head -1)"
    fi
    kill -0 "$PID_A" 2>/dev/null || fail "daemon exited while its peer is unreachable"
    [ "$(e2e_q "$SOCK_A" 'len(sas)')" = 0 ] || fail "an IPsec SA with an unreachable peer?"
    ok "daemon still running, no SA"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
}

# capture_stop [PID]: lets the last packets land, then stops the capture (default: the latest).
capture_stop() {
    sleep 0.5
    fv_stop "${1:-$E2E_CAP_PID}"
}

# syn_mss FILE SRC: "flags mss" of each TCP SYN from SRC in FILE (flags 0x2 SYN, 0x12 SYN-ACK).
syn_mss() {
    tshark -n -r "$1" -Y "tcp.flags.syn == 1 && ip.src == $2" -T fields \
        -e tcp.flags -e tcp.options.mss_val 2>/dev/null | sed 's/0x0*/0x/' | sort -u
}

# mss_pair A_TUNNEL B_TUNNEL [CONN]: a route-based pair (A routes everything into the tunnel)
# with more route_based lines on each side and more connection lines on both; SAs up.
mss_pair() {
    pair_setup
    write_conf a initiate main "${3:-}" "[connection.route_based]
interface = \"fv0\"
address = \"$A_IN/32\"
routes = [\"0.0.0.0/0\"]
$1"
    write_conf b respond main "${3:-}" "[connection.route_based]
interface = \"fv0\"
address = \"$B_IN/32\"
routes = [\"198.51.100.0/24\"]
$2"
    start_pair
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "side A: no IPsec SA within 20 s"
    e2e_wait_sas "$SOCK_B" "$PID_B" 1 20 || fail "side B: no IPsec SA within 20 s"
}

case_mss_fixed() {
    mss_pair "tcp_mss = 1200" 'tcp_mss = "off"'
    local mtu_b syn synack
    mtu_b="$(ip -n "$FV_NS_B" -o link show fv0 | grep -o 'mtu [0-9]*' | cut -d' ' -f2)"
    e2e_capture "$FV_NS_B" fv0 "$FV_TMP/b.pcap" "tcp[tcpflags] & tcp-syn != 0"
    CAP_B="$E2E_CAP_PID"
    e2e_capture "$FV_NS_A" fv0 "$FV_TMP/a.pcap" "tcp[tcpflags] & tcp-syn != 0"
    CAP_A="$E2E_CAP_PID"
    e2e_transfer "$FV_NS_A" "$A_IN" "$FV_NS_B" "$B_IN" 2
    capture_stop "$CAP_A"
    capture_stop "$CAP_B"
    syn="$(syn_mss "$FV_TMP/b.pcap" "$A_IN")"
    [ "$syn" = "0x2	1200" ] || fail "A's SYN on B's TUN: '$syn', want MSS 1200 (A's tcp_mss)"
    ok "A's SYN arrives on B's TUN with MSS 1200 (tcp_mss = 1200 on A, outbound)"
    synack="$(syn_mss "$FV_TMP/b.pcap" "$B_IN")"
    [ "$synack" = "0x12	$((mtu_b - 40))" ] || fail "B's SYN-ACK on B's TUN: '$synack', want MSS $((mtu_b - 40))"
    synack="$(syn_mss "$FV_TMP/a.pcap" "$B_IN")"
    [ "$synack" = "0x12	1200" ] || fail "B's SYN-ACK on A's TUN: '$synack', want MSS 1200 (A clamps inbound)"
    ok "B's SYN-ACK leaves with MSS $((mtu_b - 40)) (tcp_mss off on B), reaches A's TUN with 1200 (inbound clamp)"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

case_mss_auto() {
    mss_pair "" ""
    local mtu_a route syn
    mtu_a="$(ip -n "$FV_NS_A" -o link show fv0 | grep -o 'mtu [0-9]*' | cut -d' ' -f2)"
    # A's stack announces more than its TUN carries.
    route="$(ip -n "$FV_NS_A" route show table all | grep '^default dev fv0' | head -1)"
    [ -n "$route" ] || fail "side A: no default route into fv0"
    # shellcheck disable=SC2086  # the route's words are arguments
    ip -n "$FV_NS_A" route change $route advmss 1460 || fail "cannot set advmss 1460 on '$route'"
    e2e_capture "$FV_NS_A" fv0 "$FV_TMP/a.pcap" "tcp[tcpflags] & tcp-syn != 0"
    CAP_A="$E2E_CAP_PID"
    e2e_capture "$FV_NS_B" fv0 "$FV_TMP/b.pcap" "tcp[tcpflags] & tcp-syn != 0"
    CAP_B="$E2E_CAP_PID"
    e2e_transfer "$FV_NS_A" "$A_IN" "$FV_NS_B" "$B_IN" 2
    capture_stop "$CAP_A"
    capture_stop "$CAP_B"
    syn="$(syn_mss "$FV_TMP/a.pcap" "$A_IN")"
    [ "$syn" = "0x2	1460" ] || fail "A's SYN on A's TUN: '$syn', want MSS 1460 (route advmss)"
    syn="$(syn_mss "$FV_TMP/b.pcap" "$A_IN")"
    [ "$syn" = "0x2	$((mtu_a - 40))" ] || fail "A's SYN on B's TUN: '$syn', want MSS $((mtu_a - 40)) (TUN MTU $mtu_a - 40)"
    ok "A's SYN leaves with MSS 1460, reaches B's TUN with $((mtu_a - 40)) = TUN MTU $mtu_a - 40 (tcp_mss auto)"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

# frag_pair CONN OUTER_FILTER: tunnels with mtu = 1500 over the 1500-byte veth.
frag_pair() {
    mss_pair "mtu = 1500" "mtu = 1500" "$1"
    local out frags df
    e2e_capture "$FV_NS_B" "$FV_IF_B" "$FV_TMP/veth.pcap" "src host 192.0.2.1 and ($2 or ip[6:2] & 0x1fff != 0)"
    # 1472 bytes of ICMP data: a 1500-byte inner packet with DF, as large as the TUN takes.
    out="$(ip netns exec "$FV_NS_A" ping -n -q -M do -s 1472 -c 3 -i 0.2 -W 2 -I "$A_IN" "$B_IN" 2>&1)" ||
        { printf '%s\n' "$out" >&2; fail "ping -M do -s 1472 $A_IN -> $B_IN failed"; }
    ok "ping -M do -s 1472 (1500-byte inner packets, DF): $(grep -o '[0-9]* received' <<<"$out")"
    e2e_transfer "$FV_NS_A" "$A_IN" "$FV_NS_B" "$B_IN" 5
    capture_stop
    frags="$(tshark -n -r "$FV_TMP/veth.pcap" -Y "ip.flags.mf == 1 || ip.frag_offset > 0" 2>/dev/null | wc -l)"
    df="$(tshark -n -r "$FV_TMP/veth.pcap" -Y "ip.flags.df == 1" 2>/dev/null | wc -l)"
    [ "$frags" -gt 0 ] || fail "no outer IPv4 fragments on the veth"
    [ "$df" = 0 ] || fail "$df outer packets carry DF"
    ok "veth: $frags outer fragments, none with DF; the peer reassembled them"
    [ "$(e2e_q "$SOCK_B" 'total("auth_failures") + total("replay_drops")')" = 0 ] ||
        fail "side B counted auth failures or replay drops"
    [ "$(e2e_q "$SOCK_A" 'd["counters"]["esp"]["send_errors"]')" = 0 ] ||
        fail "side A counted send errors: $(e2e_status_json "$SOCK_A")"
    if [ "$2" = "ip proto 50" ]; then
        # Raw ESP leaves through the send-only socket; what it refuses as too big went out
        # through the protocol 50 socket, the only one of the two that fragments.
        local socks
        socks="$(e2e_raw_sockets "$FV_NS_A")"
        e2e_has -x "192.0.2.1 255" <<<"$socks" || fail "side A has no send-only IPPROTO_RAW socket: $socks"
        ok "side A sends through its IPPROTO_RAW socket; the fragments came from the fallback"
    fi
    # Inner DF beyond the TUN MTU: refused by the sender's kernel (the TUN's MTU), not sent.
    out="$(ip netns exec "$FV_NS_A" ping -n -M do -s 1473 -c 1 -W 2 -I "$A_IN" "$B_IN" 2>&1)" &&
        fail "ping -M do -s 1473 through a 1500-byte TUN succeeded"
    grep -qi "message too long" <<<"$out" || { printf '%s\n' "$out" >&2; fail "ping -M do -s 1473: no 'message too long'"; }
    ok "ping -M do -s 1473: $(grep -i -m1 'message too long' <<<"$out")"
    [ -z "${3:-}" ] || forwarded_df
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

# A host C behind A (198.51.100.2 on a 9000-byte veth, A forwards): its DF packets above the TUN
# MTU get ICMP "fragmentation needed" from A's kernel (RFC 1191), packets that fit get through.
forwarded_df() {
    local ns_c="${FV_ID}c" out
    fv_ns_create "$ns_c"
    fv_veth "$FV_NS_A" "${FV_ID}-c" 198.51.100.254/24 "$ns_c" "${FV_ID}-d" 198.51.100.2/24
    # A jumbo link, so that only A's TUN is too small.
    ip -n "$FV_NS_A" link set "${FV_ID}-c" mtu 9000
    ip -n "$ns_c" link set "${FV_ID}-d" mtu 9000
    ip -n "$ns_c" route add default via 198.51.100.254
    ip netns exec "$FV_NS_A" sysctl -qw net.ipv4.ip_forward=1
    out="$(ip netns exec "$ns_c" ping -n -q -M do -s 1472 -c 2 -i 0.2 -W 2 "$B_IN" 2>&1)" ||
        { printf '%s\n' "$out" >&2; fail "ping -M do -s 1472 from C through A's tunnel failed"; }
    out="$(ip netns exec "$ns_c" ping -n -M do -s 1473 -c 1 -W 2 "$B_IN" 2>&1)" &&
        fail "ping -M do -s 1473 from C through a 1500-byte TUN succeeded"
    grep -Eqi "frag needed.*mtu = 1500" <<<"$out" || { printf '%s\n' "$out" >&2; fail "C got no 'Frag needed' (mtu 1500) from A"; }
    ok "host behind A: 1500-byte DF packets cross the tunnel, 1501 bytes get '$(grep -Eio -m1 'frag needed[^)]*\)' <<<"$out")' from A"
}

case_frag_raw() { frag_pair "" "ip proto 50" forwarded; }
case_frag_udp() { frag_pair 'nat_traversal = "force"' "udp port 4500"; }

# fv_ctl SOCK ARGS...: a control command; prints its exit status (its output goes to the log).
fv_ctl() {
    local sock="$1" rc=0
    shift
    "$FERROVPN" "$@" --socket "$sock" >>"$FV_TMP/ctl.log" 2>&1 || rc=$?
    echo "$rc"
}

case_control() {
    pair_setup
    write_conf a initiate main "" "$(e2e_route_based "$A_IN" 203.0.113.0/24)"
    write_conf b respond main "" "$(e2e_route_based "$B_IN" 198.51.100.0/24)"
    e2e_fv_pair_up "$FV_TMP/daemon-a.log" "$FV_TMP/daemon-b.log"
    local old new rc i
    old="$(e2e_q "$SOCK_A" 'sas[0]["spi_in"]')"
    rc="$(fv_ctl "$SOCK_A" rekey e2e --timeout 20s)"
    [ "$rc" = 0 ] || { cat "$FV_TMP/ctl.log" >&2; fail "ferrovpn rekey e2e exited $rc"; }
    if grep -q "$old/" "$FV_TMP/ctl.log"; then
        cat "$FV_TMP/ctl.log" >&2
        fail "rekey listed the pair it replaced ($old) as new"
    fi
    # Make-before-break: the old pair is deleted a drain time (5 s) after the new one is in.
    for ((i = 0; i < 50; i++)); do
        [ "$(e2e_q "$SOCK_A" 'len(sas)')" = 1 ] && [ "$(e2e_q "$SOCK_B" 'len(sas)')" = 1 ] && break
        sleep 0.2
    done
    new="$(e2e_q "$SOCK_A" 'sas[0]["spi_in"]')"
    [ "$new" != "$old" ] || fail "rekey: A's inbound SPI is still $old"
    [ "$(e2e_q "$SOCK_A" 'sas[0]["spi_out"]')" = "$(e2e_q "$SOCK_B" 'sas[0]["spi_in"]')" ] ||
        fail "rekey: A's outbound SPI is not B's inbound SPI: $(e2e_status_json "$SOCK_B")"
    [ "$(e2e_q "$SOCK_A" 'len(ikes)')" = 1 ] || fail "rekey: phase 1 should stay as it was"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 2
    ok "rekey: exit 0, inbound SPI $old -> $new on A, B mirrors it, one ISAKMP SA"

    rc="$(fv_ctl "$SOCK_A" terminate nosuch)"
    [ "$rc" = 3 ] || fail "terminate of an unknown connection exited $rc, not 3"
    rc="$(fv_ctl "$SOCK_A" terminate e2e)"
    [ "$rc" = 0 ] || { cat "$FV_TMP/ctl.log" >&2; fail "ferrovpn terminate e2e exited $rc"; }
    [ "$(e2e_q "$SOCK_A" 'len(sas), len(ikes)')" = "(0, 0)" ] || fail "terminate: A still has SAs"
    for ((i = 0; i < 25; i++)); do
        [ "$(e2e_q "$SOCK_B" 'len(sas), len(ikes)')" = "(0, 0)" ] && break
        sleep 0.2
    done
    [ "$(e2e_q "$SOCK_B" 'len(sas), len(ikes)')" = "(0, 0)" ] ||
        fail "terminate: B was not told: $(e2e_status_json "$SOCK_B")"
    grep -Eq "deleted by peer|DELETE" "$FV_TMP/daemon-b.log" || fail "B's log shows no delete from the peer"
    ok "terminate: exit 0, SAs gone on A and on B (DELETE received); unknown name: exit 3"
    rc="$(fv_ctl "$SOCK_A" rekey e2e)"
    [ "$rc" = 4 ] || fail "rekey of a terminated connection exited $rc, not 4"
    # start = "initiate" retries after 5 s; a terminated connection must not.
    sleep 7
    [ "$(e2e_q "$SOCK_A" 'len(ikes)')" = 0 ] || fail "A initiated again after terminate: $(e2e_status_json "$SOCK_A")"
    grep -q "will initiate again" <(sed -n '/terminated by the operator/,$p' "$FV_TMP/daemon-a.log") &&
        fail "A scheduled a retry after terminate"
    ok "terminate: A stayed down for 7 s (its retry time is 5 s); rekey while down: exit 4"

    rc="$(fv_ctl "$SOCK_A" initiate e2e --timeout 20s)"
    [ "$rc" = 0 ] || { cat "$FV_TMP/ctl.log" >&2; fail "ferrovpn initiate e2e exited $rc"; }
    [ "$(e2e_q "$SOCK_A" 'len(sas)')" = 1 ] || fail "initiate returned before the IPsec SA was installed"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 2
    rc="$(fv_ctl "$SOCK_A" initiate e2e)"
    [ "$rc" = 0 ] || fail "initiate of an up connection exited $rc"
    [ "$(e2e_q "$SOCK_A" 'len(ikes)')" = 1 ] || fail "initiate of an up connection started another phase 1"
    ok "initiate: exit 0 once the IPsec SA is installed, tunnel passes traffic; again while up: exit 0, nothing new"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

case_bytes_rekey() {
    pair_setup
    local lim='esp_lifetime_bytes = 2097152' spi0 spi1
    write_conf a initiate main "$lim" "$(e2e_route_based "$A_IN" 203.0.113.0/24)"
    write_conf b respond main "$lim" "$(e2e_route_based "$B_IN" 198.51.100.0/24)"
    start_pair
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "side A: no IPsec SA within 20 s"
    spi0="$(e2e_q "$SOCK_A" 'sas[0]["spi_in"]')"
    e2e_transfer "$FV_NS_A" "$A_IN" "$FV_NS_B" "$B_IN" 12
    spi1="$(e2e_q "$SOCK_A" 'sas[-1]["spi_in"]')"
    [ "$spi1" != "$spi0" ] || fail "A still uses SPI $spi0 after 12 MiB through a 2 MiB lifetime"
    local soft hard
    soft="$(grep -c 'reached its soft lifetime' "$FV_TMP/daemon-a.log" "$FV_TMP/daemon-b.log" | awk -F: '{s += $2} END {print s}')"
    hard="$(grep -c 'reached its hard lifetime' "$FV_TMP/daemon-a.log" "$FV_TMP/daemon-b.log" | awk -F: '{s += $2} END {print s}')"
    [ "$soft" -ge 1 ] || fail "no soft-lifetime rekey was logged"
    ok "SPI $spi0 -> $spi1; $soft soft-limit rekeys logged, $hard SAs reached the hard limit (after their successors took over)"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

CASES=(route-main route-aggressive policy-two-pairs policy-shared-remote down-then-up wrong-psk unreachable mss-fixed mss-auto frag-raw frag-udp control bytes-rekey)
for c in ${E2E_CASES:-${CASES[*]}}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "ferrovpn_pair.sh"

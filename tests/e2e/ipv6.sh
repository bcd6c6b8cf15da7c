#!/usr/bin/env bash
# IPv6 end to end (issue #16), in two network namespaces joined by a veth pair. Outer IPv4
# 192.0.2.1 ⇄ 192.0.2.2 or IPv6 2001:db8:ff::1 ⇄ 2001:db8:ff::2; inner A 198.51.100.1 and
# 2001:db8:1::1, inner B 203.0.113.1 and 2001:db8:2::1. Cases:
#   v6-in-v4      inner IPv6 over IPv4: A routes ::/0 into its TUN (loop-free by fwmark: IPv6
#                 policy rules present), ping and TCP (SHA-256 compared) both ways, ESP counters
#                 agree, A's IPv6 SYN clamped to B's TUN MTU - 60 on the way into B's TUN;
#                 A's TUN has mtu = 1500, larger than the path: a 1500-byte inner IPv6
#                 packet gets an ICMPv6 Packet Too Big from A (the kernel accepts it: the route
#                 to B caches the announced MTU), smaller ones pass; down removes the IPv6 rules
#   dual-v6-outer dual stack over IPv6 outer with raw ESP (offloads on): A routes 0.0.0.0/0 and
#                 ::/0 into one TUN, one SA pair per family (ID_IPV6_ADDR identities), ping and
#                 TCP for both families both ways, counters agree, status/diagnose (exit 0),
#                 decode of the veth capture with A's exported keys (IKE and ESP decrypted),
#                 metrics over [::1]; down removes both families' rules and routes
#   v6-udp        IPv6 in IPv6 with forced UDP encapsulation (nat_traversal = "force"), DPD
#                 (1 s) answered, and a rekey (esp_lifetime = 10 s)
#   ss-fv-init    ferrovpn (policy-based IPv6 pair) initiates to strongSwan over IPv6 outer;
#                 ping and TCP both ways, ESP counters agree with swanctl's (both ss cases)
#   ss-fv-resp    strongSwan initiates two children (IPv4, IPv6) to ferrovpn over IPv6 outer;
#                 ferrovpn responds with one dual-stack route-based TUN
#   ss-v6-in-v4   ferrovpn (route-based, IPv6 selectors) initiates to strongSwan over IPv4 outer
#   ss-v6-in-v4-resp strongSwan initiates IPv6 selectors over IPv4 outer; ferrovpn responds
#   ss-dual-fv-init ferrovpn initiates a dual-stack route-based connection (IPv4 and IPv6
#                 selectors, one TUN) to strongSwan over IPv6 outer (so IPv4 in IPv6 too): two
#                 Quick Modes, strongSwan lists both children, ping and TCP per family both
#                 ways, counters agree
#   dpd-dead-v6   ferrovpn ⇄ ferrovpn over IPv6 outer, B killed with SIGKILL: A's DPD
#                 (1 s / 4 s) declares the IPv6 peer dead, deletes the SAs, and diagnose says so
# Needs root; skips with a reason otherwise (fails with CI=true).
# Env: FERROVPN_BIN (binary, default: release build of this tree), E2E_CASES (subset of cases).
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "ipv6.sh needs network namespaces"
require_cmd_or_skip ip ping python3 sha256sum tshark curl
e2e_binary

A4=198.51.100.1
B4=203.0.113.1
A6=2001:db8:1::1
B6=2001:db8:2::1
OUT_A6=2001:db8:ff::1
OUT_B6=2001:db8:ff::2
PSK=e2e-ipv6-secret

# v6_setup OUTER(4|6): namespaces, PSK files, sockets; waits out DAD on IPv6 outer addresses.
v6_setup() {
    if [ "$1" = 6 ]; then
        FV_OUTER_A="$OUT_A6/64" FV_OUTER_B="$OUT_B6/64" fv_two_ns
        LA=$OUT_A6 LB=$OUT_B6
    else
        fv_two_ns
        LA=192.0.2.1 LB=192.0.2.2
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        [ -z "$(ip -n "$FV_NS_A" -6 addr show tentative; ip -n "$FV_NS_B" -6 addr show tentative)" ] && break
        sleep 0.1
    done
    e2e_psk "$FV_TMP/a.psk" "$PSK"
    e2e_psk "$FV_TMP/b.psk" "$PSK"
    SOCK_A="$FV_TMP/a.sock"
    SOCK_B="$FV_TMP/b.sock"
}

# conf SIDE(a|b) START EXTRA TUNNEL
conf() {
    local here=$LA there=$LB
    [ "$1" = a ] || { here=$LB there=$LA; }
    C_LOCAL="$here" C_REMOTE="$there" C_SOCK="$FV_TMP/$1.sock" C_PSKFILE="$FV_TMP/$1.psk" \
        C_START="$2" C_EXTRA="$3" C_TUNNEL="$4" e2e_conf "$FV_TMP/$1.toml"
}

start_pair() {
    e2e_up "$FV_NS_B" "$FV_TMP/b.toml" "$FV_TMP/daemon-b.log"
    PID_B="$E2E_PID"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a.log"
    PID_A="$E2E_PID"
    e2e_wait_sas "$SOCK_A" "$PID_A" "$1" 20 || fail "side A: fewer than $1 IPsec SAs within 20 s"
    e2e_wait_sas "$SOCK_B" "$PID_B" "$1" 5 || fail "side B: fewer than $1 IPsec SAs"
    ok "$1 IPsec SA pair(s) up: $(e2e_q "$SOCK_A" '", ".join(s["local_ts"] + "=" + s["remote_ts"] + " " + s["encap"] for s in sas)')"
}

# counters_agree SOCK_TX SOCK_RX NS_RX WHAT (as in ferrovpn_pair.sh; the receiver is read
# first: the kernel's IPv6 housekeeping on the TUN (MLD, router solicitations) may still send).
counters_agree() {
    local out in drops
    in="$(e2e_q "$2" 'total("in_packets")')"
    out="$(e2e_q "$1" 'total("out_packets")')"
    drops="$(e2e_socket_drops "$3")"
    python3 -c "import sys; o,i,d=$out,$in,$drops; sys.exit(0 if o>0 and i<=o and abs(o-i-d) <= max(3, o//200) else 1)" ||
        fail "$4: $out ESP packets sent but $in received and $drops dropped by the receiver's socket buffers"
    ok "$4: $out ESP packets sent, $in received by the peer ($drops dropped on its socket buffer)"
}

# rules_of NS: the fwmark/suppress rules of both families.
rules_of() {
    { ip -n "$1" -4 rule show; ip -n "$1" -6 rule show; } | grep -E 'fwmark|suppress_prefixlength' || true
}

# down_clean SOCK PID NS: e2e_down, then no rule and no route of table 0x4656 of either family.
down_clean() {
    e2e_down "$1" "$2" "$3" fv0
    local left
    left="$(rules_of "$3")"
    [ -z "$left" ] || fail "rules left in $3 after down: $left"
    left="$(ip -n "$3" -4 route show table all | grep -E 'fv0|table 18006' || true)$(ip -n "$3" -6 route show table all | grep -E 'fv0|table 18006' || true)"
    [ -z "$left" ] || fail "routes left in $3 after down: $left"
    ok "$3: no IPv4 or IPv6 policy rule or tunnel route left"
}

case_v6_in_v4() {
    v6_setup 4
    conf a initiate "" "[connection.route_based]
interface = \"fv0\"
mtu = 1500
address = \"$A6/128\"
routes = [\"::/0\"]"
    conf b respond "" "[connection.route_based]
interface = \"fv0\"
address = \"$B6/128\"
routes = [\"2001:db8:1::/64\"]"
    start_pair 1
    local r6
    r6="$(ip -n "$FV_NS_A" -6 rule show)"
    grep -q "not from all fwmark 0x4656 lookup 18006" <<<"$r6" && grep -q "suppress_prefixlength 0" <<<"$r6" ||
        { printf '%s\n' "$r6" >&2; fail "A: no IPv6 fwmark/suppress rules for ::/0"; }
    [ -z "$(ip -n "$FV_NS_A" -4 rule show | grep fwmark)" ] || fail "A: IPv4 rules for an IPv6-only tunnel"
    ok "A: ::/0 via policy routing: IPv6 fwmark and suppress rules, no IPv4 ones"
    e2e_ping "$FV_NS_A" "$A6" "$B6" 3
    e2e_ping "$FV_NS_B" "$B6" "$A6" 3
    e2e_capture "$FV_NS_B" fv0 "$FV_TMP/syn.pcap" "ip6 and tcp"
    e2e_transfer "$FV_NS_A" "$A6" "$FV_NS_B" "$B6" 3
    fv_stop "$E2E_CAP_PID"
    # A's TUN (mtu 1500) lets its SYN out with MSS 1440; B clamps it on the way into its TUN to
    # B's MTU - 60 (tcp_mss auto, IPv6 header 40 + TCP 20).
    local mtu_b syn
    mtu_b="$(ip -n "$FV_NS_B" -o link show fv0 | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')"
    syn="$(tshark -n -r "$FV_TMP/syn.pcap" -Y "tcp.flags == 0x002 && ipv6.src == $A6" -T fields -e tcp.options.mss_val 2>/dev/null | sort -u)"
    [ "$syn" = "$((mtu_b - 60))" ] || fail "A's IPv6 SYN on B's TUN has MSS '$syn', want $((mtu_b - 60)) (TUN MTU $mtu_b - 60)"
    ok "A's IPv6 SYN reaches B's TUN with MSS $syn = TUN MTU $mtu_b - 60 (tcp_mss auto)"
    e2e_transfer "$FV_NS_B" "$B6" "$FV_NS_A" "$A6" 3
    sleep 0.3
    counters_agree "$SOCK_A" "$SOCK_B" "$FV_NS_B" "A -> B"
    counters_agree "$SOCK_B" "$SOCK_A" "$FV_NS_A" "B -> A"

    # Packet Too Big: A's TUN takes 1500 bytes, the path less.
    local out ptb mtu_cached
    out="$(ip netns exec "$FV_NS_A" ping -n -c 1 -W 2 -M do -s 1452 -I "$A6" "$B6" 2>&1)" &&
        fail "a 1500-byte inner IPv6 packet crossed a tunnel whose path is smaller: $out"
    sleep 0.2
    ptb="$(e2e_q "$SOCK_A" 'd["counters"]["esp"]["ptb_sent"]')"
    [ "$ptb" -ge 1 ] || fail "A sent no Packet Too Big (ptb_sent $ptb)"
    mtu_cached="$(ip -n "$FV_NS_A" -6 route get "$B6" from "$A6" | grep -o 'mtu [0-9]*' || true)"
    [ -n "$mtu_cached" ] || { ip -n "$FV_NS_A" -6 route get "$B6" from "$A6" >&2; fail "the kernel did not take A's Packet Too Big (no cached mtu for $B6)"; }
    ok "1500-byte IPv6 packet: Packet Too Big from A ($ptb sent), the kernel caches '$mtu_cached' for $B6"
    out="$(ip netns exec "$FV_NS_A" ping -n -q -c 2 -i 0.2 -W 2 -s 1452 -I "$A6" "$B6" 2>&1)" ||
        { printf '%s\n' "$out" >&2; fail "ping -s 1452 after the Packet Too Big failed"; }
    ok "ping -s 1452 after the PTB: fragmented at the source to the announced MTU, $(grep -o '[0-9]* received' <<<"$out")"
    down_clean "$SOCK_A" "$PID_A" "$FV_NS_A"
    down_clean "$SOCK_B" "$PID_B" "$FV_NS_B"
}

case_dual_v6_outer() {
    v6_setup 6
    mkdir -m 700 "$FV_TMP/keys"
    C_DAEMON_EXTRA="save_keys_dir = \"$FV_TMP/keys\"
metrics_listen = \"[::1]:9273\"" conf a initiate "" "[connection.route_based]
interface = \"fv0\"
address = [\"$A4/32\", \"$A6/128\"]
routes = [\"0.0.0.0/0\", \"::/0\"]"
    conf b respond "" "[connection.route_based]
interface = \"fv0\"
address = [\"$B4/32\", \"$B6/128\"]
routes = [\"198.51.100.0/24\", \"2001:db8:1::/64\"]"
    e2e_capture "$FV_NS_B" "$FV_IF_B" "$FV_TMP/veth.pcap" "ip6"
    local cap=$E2E_CAP_PID
    start_pair 2
    ! grep -q "refused TUN offloads" "$FV_TMP/daemon-a.log" "$FV_TMP/daemon-b.log" ||
        fail "TUN offloads refused: this case must run with offloads on"
    [ "$(e2e_q "$SOCK_A" 'sorted(s["local_ts"] + "=" + s["remote_ts"] for s in sas)')" = "['0.0.0.0/0=0.0.0.0/0', '::/0=::/0']" ] ||
        fail "A's SAs are not one pair per family: $(e2e_status_json "$SOCK_A")"
    [ "$(e2e_q "$SOCK_A" 'set(s["encap"] for s in sas)')" = "{'raw'}" ] ||
        fail "not raw ESP over IPv6: $(e2e_status_json "$SOCK_A")"
    local r
    r="$(rules_of "$FV_NS_A")"
    [ "$(grep -c . <<<"$r")" = 4 ] || { printf '%s\n' "$r" >&2; fail "A: want 2 IPv4 + 2 IPv6 policy rules"; }
    ok "A: 0.0.0.0/0 and ::/0 into fv0, fwmark and suppress rules for both families"
    e2e_ping "$FV_NS_A" "$A4" "$B4" 2
    e2e_ping "$FV_NS_A" "$A6" "$B6" 2
    e2e_ping "$FV_NS_B" "$B4" "$A4" 2
    e2e_ping "$FV_NS_B" "$B6" "$A6" 2
    e2e_transfer "$FV_NS_A" "$A4" "$FV_NS_B" "$B4" 2
    e2e_transfer "$FV_NS_B" "$B4" "$FV_NS_A" "$A4" 2
    e2e_transfer "$FV_NS_A" "$A6" "$FV_NS_B" "$B6" 2
    e2e_transfer "$FV_NS_B" "$B6" "$FV_NS_A" "$A6" 2
    sleep 0.3
    [ "$(e2e_q "$SOCK_A" 'all(s["out_packets"] > 0 and s["in_packets"] > 0 for s in sas)')" = True ] ||
        fail "not both families' SAs carried traffic: $(e2e_status_json "$SOCK_A")"
    counters_agree "$SOCK_A" "$SOCK_B" "$FV_NS_B" "A -> B"
    counters_agree "$SOCK_B" "$SOCK_A" "$FV_NS_A" "B -> A"
    local st
    st="$("$FERROVPN" status --socket "$SOCK_A" 2>&1)" || fail "status failed: $st"
    grep -q "$OUT_B6" <<<"$st" || { printf '%s\n' "$st" >&2; fail "status does not show the IPv6 peer"; }
    ok "status shows the peer $OUT_B6"
    local rc=0
    st="$("$FERROVPN" diagnose --socket "$SOCK_A" 2>&1)" || rc=$?
    [ "$rc" = 0 ] || { printf '%s\n' "$st" >&2; fail "diagnose over IPv6 outer exited $rc"; }
    ok "diagnose: exit 0 ($(head -1 <<<"$st"))"
    st="$(ip netns exec "$FV_NS_A" curl -s -g "http://[::1]:9273/metrics")" || fail "metrics over [::1] unreachable"
    grep -q '^ferrovpn_ipsec_sas\|^ferrovpn_.*esp.*packets' <<<"$st" || grep -q '^ferrovpn_' <<<"$st" ||
        fail "metrics over [::1]: no ferrovpn_ series"
    ok "metrics over [::1]:9273: $(grep -c '^ferrovpn_' <<<"$st") series"
    fv_stop "$cap"
    [ -s "$FV_TMP/keys/esp_sa" ] && [ -s "$FV_TMP/keys/ikev1_decryption_table" ] ||
        { ls -l "$FV_TMP/keys" >&2; fail "A exported no keys"; }
    st="$("$FERROVPN" decode "$FV_TMP/veth.pcap" --keys "$FV_TMP/keys" 2>&1)" ||
        { printf '%s\n' "$st" >&2; fail "decode of the IPv6 capture failed"; }
    for m in MM1 MM6 QM1 QM3; do
        grep -qE "^[0-9:.]+ $m " <<<"$st" || { printf '%s\n' "$st" >&2; fail "decode: no $m"; }
    done
    grep -q '\[ encrypted \]' <<<"$st" && { printf '%s\n' "$st" >&2; fail "decode: an encrypted message was not decrypted"; }
    grep -q "$B6" <<<"$st" && grep -q "$B4" <<<"$st" ||
        { printf '%s\n' "$st" >&2; fail "decode: ESP not decrypted to both families' inner packets"; }
    ok "decode of the IPv6 capture with A's keys: IKE decrypted, ESP inner IPv4 and IPv6 shown"
    down_clean "$SOCK_A" "$PID_A" "$FV_NS_A"
    down_clean "$SOCK_B" "$PID_B" "$FV_NS_B"
}

case_v6_udp() {
    v6_setup 6
    conf a initiate 'nat_traversal = "force"
esp_lifetime = "10s"
dpd_interval = "1s"
dpd_timeout = "10s"' "[connection.route_based]
interface = \"fv0\"
address = \"$A6/128\"
routes = [\"::/0\"]"
    conf b respond 'nat_traversal = "force"
dpd_interval = "1s"
dpd_timeout = "10s"' "[connection.route_based]
interface = \"fv0\"
address = \"$B6/128\"
routes = [\"2001:db8:1::/64\"]"
    start_pair 1
    [ "$(e2e_q "$SOCK_A" 'set(s["encap"] for s in sas)')" = "{'udp'}" ] ||
        fail "not ESP in UDP: $(e2e_status_json "$SOCK_A")"
    e2e_ping "$FV_NS_A" "$A6" "$B6" 2
    e2e_transfer "$FV_NS_B" "$B6" "$FV_NS_A" "$A6" 2
    # A 10-s ESP lifetime: the SA pair is rekeyed within it.
    local n
    for ((n = 0; n < 75; n++)); do
        [ "$(grep -c 'IPsec SA installed' "$FV_TMP/daemon-a.log")" -ge 2 ] && break
        sleep 0.2
    done
    [ "$(grep -c 'IPsec SA installed' "$FV_TMP/daemon-a.log")" -ge 2 ] || fail "no rekey of the 10-s SA over IPv6 within 15 s"
    e2e_ping "$FV_NS_A" "$A6" "$B6" 2
    ok "ESP SA (10-s lifetime) rekeyed over IPv6 outer, traffic continues"
    e2e_wait_log "$FV_TMP/daemon-a.log" "received INFO .*N\(DPD_ACK\)" 5 || fail "no DPD R-U-THERE-ACK over IPv6 within 5 s"
    ok "DPD over IPv6: R-U-THERE answered ($(grep -c 'received INFO .*N(DPD_ACK)' "$FV_TMP/daemon-a.log") acks on A)"
    [ "$(ip netns exec "$FV_NS_B" cat /proc/net/snmp6 | awk '$1 == "Udp6InDatagrams" { print $2 }')" -gt 0 ] ||
        fail "no UDP over IPv6 received in B"
    down_clean "$SOCK_A" "$PID_A" "$FV_NS_A"
    e2e_down "$SOCK_B" "$PID_B" "$FV_NS_B" fv0
}

# ss_counters_agree: ESP packets ferrovpn (A) sent = strongSwan (B) received + B's socket drops,
# and the other way round (the receiver is read first).
ss_counters_agree() {
    sleep 0.5
    local ss ours_in ours_out ss_in ss_out da db
    ours_in="$(e2e_q "$SOCK_A" 'total("in_packets")')"
    ss="$(fv_swanctl "$FV_NS_B" --list-sas --raw | python3 -c '
import re, sys
t = sys.stdin.read()
print(sum(int(x) for x in re.findall(r"packets-in=(\d+)", t)), sum(int(x) for x in re.findall(r"packets-out=(\d+)", t)))')"
    read -r ss_in ss_out <<<"$ss"
    ours_out="$(e2e_q "$SOCK_A" 'total("out_packets")')"
    da="$(e2e_socket_drops "$FV_NS_A")" db="$(e2e_socket_drops "$FV_NS_B")"
    python3 -c "import sys; o,i,d=$ours_out,$ss_in,$db; sys.exit(0 if o>0 and abs(o-i-d) <= max(3, o//200) else 1)" ||
        fail "ferrovpn sent $ours_out ESP packets, strongSwan received $ss_in, its kernel dropped $db"
    python3 -c "import sys; o,i,d=$ss_out,$ours_in,$da; sys.exit(0 if o>0 and abs(o-i-d) <= max(3, o//200) else 1)" ||
        fail "strongSwan sent $ss_out ESP packets, ferrovpn received $ours_in, its kernel dropped $da"
    ok "counters: ferrovpn out $ours_out / strongSwan in $ss_in (+$db dropped), strongSwan out $ss_out / ferrovpn in $ours_in (+$da dropped)"
}

# ss_up START LOCAL_TS REMOTE_TS: charon in B at $LB facing $LA (ids: the addresses).
ss_up() {
    require_cmd_or_skip swanctl
    [ -x /usr/lib/ipsec/charon ] || skip "strongSwan (charon) not installed"
    SS_SECRET="$PSK" SS_ADDR_A=$LA SS_ADDR_B=$LB SS_START="$1" \
        SS_LOCAL_TS="$2" SS_REMOTE_TS="$3" e2e_ss_conf >"$FV_TMP/swanctl.conf"
    e2e_ss_up "$(cat "$FV_TMP/swanctl.conf")"
}

case_ss_fv_init() {
    v6_setup 6
    local B_IN=$B6
    fv_add_inner "$FV_NS_A" "$A6/128"
    ss_up none 2001:db8:2::/64 2001:db8:1::/64
    conf a initiate "" '[connection.policy_based]
pairs = [ { local = "2001:db8:1::/64", remote = "2001:db8:2::/64" } ]'
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a.log"
    PID_A="$E2E_PID"
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "no IPsec SA with strongSwan within 20 s"
    e2e_ss_wait_installed "$FV_TMP/ss.sas"
    grep -q "$OUT_A6" "$FV_TMP/ss.sas" || { cat "$FV_TMP/ss.sas" >&2; fail "strongSwan's SA is not with $OUT_A6"; }
    ok "strongSwan lists the SA with $OUT_A6 (ID_IPV6_ADDR identities)"
    e2e_ping "$FV_NS_A" "$A6" "$B6" 3
    e2e_ping "$FV_NS_B" "$B6" "$A6" 2
    e2e_transfer "$FV_NS_A" "$A6" "$FV_NS_B" "$B6" 2
    e2e_transfer "$FV_NS_B" "$B6" "$FV_NS_A" "$A6" 2
    ss_counters_agree
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A"
}

# ss_dual INITIATOR (ferrovpn|strongswan): IPv4 and IPv6 inner over IPv6 outer with strongSwan,
# one child per family, both on ferrovpn's one route-based fv0; each family pings and transfers.
ss_dual() {
    v6_setup 6
    local B_IN="$B4 $B6" ss_start=none fv_start=initiate n i
    [ "$1" = strongswan ] && ss_start=start fv_start=respond
    SS_CHILDREN_EXTRA="            fv6 {
                local_ts = 2001:db8:2::/64
                remote_ts = 2001:db8:1::/64
                esp_proposals = aes128gcm16
                start_action = $ss_start
            }" ss_up "$ss_start" 203.0.113.0/24 198.51.100.0/24
    conf a "$fv_start" "" "[connection.route_based]
interface = \"fv0\"
local_ts = [\"198.51.100.0/24\", \"2001:db8:1::/64\"]
remote_ts = [\"203.0.113.0/24\", \"2001:db8:2::/64\"]
address = [\"$A4/32\", \"$A6/128\"]"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a.log"
    PID_A="$E2E_PID"
    e2e_wait_sas "$SOCK_A" "$PID_A" 2 20 || fail "no IPsec SAs of both families between ferrovpn and strongSwan ($1 initiating) within 20 s"
    e2e_ss_wait_installed "$FV_TMP/ss.sas"
    for ((i = 0; i < 25; i++)); do
        n="$(fv_swanctl "$FV_NS_B" --list-sas 2>/dev/null | grep -c INSTALLED || true)"
        [ "$n" = 2 ] && break
        sleep 0.2
    done
    [ "$n" = 2 ] || { fv_swanctl "$FV_NS_B" --list-sas >&2; fail "strongSwan: $n INSTALLED children, want 2"; }
    ok "$1 initiated one child per family (IPv4, IPv6) over IPv6 outer; strongSwan installed both, ferrovpn put both on fv0"
    e2e_ping "$FV_NS_A" "$A4" "$B4" 3
    e2e_ping "$FV_NS_A" "$A6" "$B6" 3
    e2e_ping "$FV_NS_B" "$B4" "$A4" 2
    e2e_ping "$FV_NS_B" "$B6" "$A6" 2
    e2e_transfer "$FV_NS_A" "$A4" "$FV_NS_B" "$B4" 2
    e2e_transfer "$FV_NS_B" "$B4" "$FV_NS_A" "$A4" 2
    e2e_transfer "$FV_NS_A" "$A6" "$FV_NS_B" "$B6" 2
    e2e_transfer "$FV_NS_B" "$B6" "$FV_NS_A" "$A6" 2
    ss_counters_agree
    down_clean "$SOCK_A" "$PID_A" "$FV_NS_A"
}

case_ss_fv_resp() { ss_dual strongswan; }
case_ss_dual_fv_init() { ss_dual ferrovpn; }

# ss_v6_in_v4 INITIATOR (ferrovpn|strongswan): IPv6 inner over IPv4 outer with strongSwan,
# one route-based child; the initiator's side pings and transfers first.
ss_v6_in_v4() {
    v6_setup 4
    local B_IN=$B6 ss_start=none fv_start=initiate
    [ "$1" = strongswan ] && ss_start=start fv_start=respond
    ss_up "$ss_start" 2001:db8:2::/64 2001:db8:1::/64
    conf a "$fv_start" "" "[connection.route_based]
interface = \"fv0\"
local_ts = \"2001:db8:1::/64\"
remote_ts = \"2001:db8:2::/64\"
address = \"$A6/128\""
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a.log"
    PID_A="$E2E_PID"
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "no IPsec SA between ferrovpn and strongSwan ($1 initiating) within 20 s"
    e2e_ss_wait_installed "$FV_TMP/ss.sas"
    if [ "$1" = ferrovpn ]; then
        e2e_ping "$FV_NS_A" "$A6" "$B6" 3
        e2e_ping "$FV_NS_B" "$B6" "$A6" 2
        e2e_transfer "$FV_NS_A" "$A6" "$FV_NS_B" "$B6" 2
    else
        e2e_ping "$FV_NS_B" "$B6" "$A6" 3
        e2e_ping "$FV_NS_A" "$A6" "$B6" 2
    fi
    e2e_transfer "$FV_NS_B" "$B6" "$FV_NS_A" "$A6" 2
    ss_counters_agree
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
}

case_ss_v6_in_v4() { ss_v6_in_v4 ferrovpn; }
case_ss_v6_in_v4_resp() { ss_v6_in_v4 strongswan; }

case_dpd_dead_v6() {
    v6_setup 6
    local dpd='dpd_interval = "1s"
dpd_timeout = "4s"'
    conf a initiate "$dpd" "[connection.route_based]
interface = \"fv0\"
address = \"$A6/128\"
routes = [\"2001:db8:2::/64\"]"
    conf b respond "$dpd" "[connection.route_based]
interface = \"fv0\"
address = \"$B6/128\"
routes = [\"2001:db8:1::/64\"]"
    start_pair 1
    e2e_ping "$FV_NS_A" "$A6" "$B6" 2
    kill -KILL "$PID_B"
    wait "$PID_B" 2>/dev/null || true
    ok "side B killed with SIGKILL"
    e2e_wait_log "$FV_TMP/daemon-a.log" "peer dead \\(DPD\\)" 15 || fail "A did not declare the IPv6 peer dead within 15 s"
    ok "A: $(grep -m1 -o 'peer dead (DPD).*' "$FV_TMP/daemon-a.log")"
    local out rc=0
    out="$("$FERROVPN" diagnose --socket "$SOCK_A" 2>&1)" || rc=$?
    grep -q "dead peer detection declared $OUT_B6 dead" <<<"$out" ||
        { printf '%s\n' "$out" >&2; fail "diagnose does not name DPD's verdict on $OUT_B6 (exit $rc)"; }
    ok "diagnose (exit $rc): $(grep -m1 'dead peer detection' <<<"$out")"
    down_clean "$SOCK_A" "$PID_A" "$FV_NS_A"
}

ALL="v6-in-v4 dual-v6-outer v6-udp ss-fv-init ss-fv-resp ss-v6-in-v4 ss-v6-in-v4-resp ss-dual-fv-init dpd-dead-v6"
for c in ${E2E_CASES:-$ALL}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary ipv6.sh

#!/usr/bin/env bash
# ferrovpn ⇄ strongSwan 5.9 (charon with the userspace kernel-libipsec ESP) in two network
# namespaces: ferrovpn on side A (192.0.2.1, TUN fv0 with 198.51.100.1/32), charon on side B
# (192.0.2.2, 203.0.113.1/32 on lo, routes through its ipsec0 TUN). Selectors 198.51.100.0/24 ⇄
# 203.0.113.0/24. The matrix: {ferrovpn, strongSwan} initiates × {Main, Aggressive} Mode PSK ×
# {aes128gcm16 without PFS, aes128-sha256 with PFS modp2048}. Each case: both sides report the SA,
# ping from each inner address, 2 MiB TCP with SHA-256 compared, packet counters of both
# implementations agree, `ferrovpn down` makes strongSwan drop its SAs (DELETE understood).
# Cases fv-child-deleted, fv-policy-child-deleted: strongSwan deletes ferrovpn's only pair, or
# the second of two policy-based pairs; ferrovpn negotiates it again.
# Cases <initiator>-<mode>-lossy: nftables in A drops 20 % (E2E_LOSS) of the IKE datagrams each
# way at random; the tunnel is up on both sides within 150 s and carries pings both ways.
# strongSwan with kernel-libipsec always floats to UDP 4500 and UDP-encapsulates ESP.
# ferrovpn runs with key export on (save_keys_dir); the veth is captured with dumpcap from before
# the first message until after the pings, and `ferrovpn decode` must name every message of the
# capture and decrypt phase 1, Quick Mode and the ESP of the pings with the fresh key files.
# Needs root and strongSwan (scripts/install-deps.sh); skips otherwise (fails with CI=true).
# Env: FERROVPN_BIN, E2E_CASES (subset of case names, e.g. "fv-main-gcm ss-aggressive-pfs"),
# E2E_PCAP=/tmp/x (capture each case's veth to /tmp/x-<case>.pcap), E2E_STORE=DIR (keep each
# case's capture, key files and decode output in DIR/<case>/, as tests/data/interop was made).
# shellcheck disable=SC2031  # E2E_CASE is set in the per-case subshell that runs these functions
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "strongswan_interop.sh needs network namespaces"
require_cmd_or_skip ip ping python3 swanctl dumpcap tshark "$FV_CHARON_BIN"
e2e_binary

PSK="ferrovpn-strongswan-e2e"
A_IN=198.51.100.1
B_IN=203.0.113.1

# strongSwan's child SA counters: "packets-in packets-out" from swanctl --list-sas --raw.
ss_counters() {
    fv_swanctl "$FV_NS_B" --list-sas --raw | python3 -c '
import re, sys
t = sys.stdin.read()
pi = sum(int(x) for x in re.findall(r"packets-in=(\d+)", t))
po = sum(int(x) for x in re.findall(r"packets-out=(\d+)", t))
print(pi, po)'
}

# close_enough SENT RECEIVED DROPPED: sent = received + dropped by the receiver's kernel.
close_enough() { python3 -c "import sys; o,i,d=$1,$2,$3; sys.exit(0 if o>0 and i<=o and abs(o-i-d) <= max(2, o//200) else 1)"; }

# roles INITIATOR(fv|ss) MODE(main|aggressive): sets the caller's aggr, start, extra_ss and
# extra_fv: who starts, and the opt-in an Aggressive Mode PSK responder needs.
roles() {
    aggr=no extra_ss="" extra_fv="" start=initiate
    [ "$2" = aggressive ] && aggr=yes
    if [ "$1" = ss ]; then
        start=respond
        [ "$2" = aggressive ] && extra_fv="allow_aggressive_psk = true"
    elif [ "$2" = aggressive ]; then
        extra_ss="    i_dont_care_about_security_and_use_aggressive_mode_psk = yes"
    fi
}

# interop INITIATOR(fv|ss) MODE(main|aggressive) ESP
interop() {
    local initiator="$1" mode="$2" esp="$3" aggr extra_ss extra_fv start
    roles "$initiator" "$mode"

    FV_NO_IPV6=1 fv_two_ns
    if [ -n "${E2E_PCAP:-}" ]; then
        # Debugging aid: capture the veth of this case to $E2E_PCAP-<case>.pcap.
        FV_SPAWN_LOG="$FV_TMP/dumpcap.log" fv_spawn "$FV_NS_B" dumpcap -q -P -i "$FV_IF_B" -w "$E2E_PCAP-$E2E_CASE.pcap"
        e2e_wait_log "$FV_TMP/dumpcap.log" 'Capturing on' 10 || fail "dumpcap did not start"
    fi
    # The capture decode checks: IKE from the first message on, ESP of the pings. ferrovpn sends
    # ESP-in-UDP with UDP GSO; one segment per skb on its veth makes the kernel split a GSO run
    # before the capture point, so the pcap holds the datagrams as they are on a real wire
    # (a packet socket on the sending host would see the unsplit super-packet).
    ip -n "$FV_NS_A" link set dev "$FV_IF_A" gso_max_segs 1
    FV_SPAWN_LOG="$FV_TMP/capture.log" fv_spawn "$FV_NS_B" dumpcap -q -P -i "$FV_IF_B" -w "$FV_TMP/capture.pcap"
    local cap_pid="$FV_LAST_PID"
    e2e_wait_log "$FV_TMP/capture.log" 'Capturing on' 10 || fail "dumpcap did not start"
    # charon loads with start_action = none: nothing is sent before the capture runs.
    e2e_ss_up "$(SS_SECRET="$PSK" SS_AGGRESSIVE="$aggr" SS_ESP="$esp" e2e_ss_conf)" "$extra_ss"

    e2e_psk "$FV_TMP/a.psk" "$PSK"
    SOCK_A="$FV_TMP/a.sock"
    install -d -m 700 "$FV_TMP/keys"
    C_DAEMON_EXTRA="save_keys_dir = \"$FV_TMP/keys\"" C_SOCK="$SOCK_A" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE="$FV_TMP/a.psk" \
        C_START="$start" C_MODE="$mode" C_ESP="$esp" C_EXTRA="$extra_fv" \
        C_TUNNEL="$(e2e_route_based_facing_ss)" e2e_conf "$FV_TMP/a.toml"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/ferrovpn.log"
    PID_A="$E2E_PID"

    if [ "$initiator" = ss ]; then
        # Give the daemon a moment to open UDP 500 before strongSwan's first message.
        e2e_wait_udp "$FV_NS_A" 500 5 || fail "ferrovpn does not listen on UDP 500"
        fv_swanctl "$FV_NS_B" --initiate --child fv --timeout 20 >"$FV_TMP/initiate.log" 2>&1 ||
            { tail -n 20 "$FV_TMP/initiate.log" >&2; fail "swanctl --initiate failed"; }
        ok "strongSwan initiated"
    fi
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "ferrovpn: no IPsec SA within 20 s"
    e2e_ss_wait_installed "$FV_TMP/list-sas.txt"
    [ "$(e2e_q "$SOCK_A" 'ikes[0]["mode"]')" = "$mode" ] || fail "ferrovpn reports mode $(e2e_q "$SOCK_A" 'ikes[0]["mode"]')"
    # Both ends name the same IKE SA (strongSwan prints "<i>_i* <r>_r" or "<i>_i <r>_r*").
    local ck
    ck="$(e2e_q "$SOCK_A" 'ikes[0]["cookies"]')"
    tr -d '*' <"$FV_TMP/list-sas.txt" | grep -F "$ck" >/dev/null ||
        { cat "$FV_TMP/list-sas.txt" >&2; fail "strongSwan does not list cookies $ck"; }
    ok "SA up: $mode mode, cookies $ck, ESP $(e2e_q "$SOCK_A" 'sas[0]["cipher"], sas[0]["encap"]'), strongSwan: $(grep -E 'INSTALLED' "$FV_TMP/list-sas.txt" | head -1 | sed -E 's/^ +//')"

    local clog
    clog="$(fv_charon_dir "$FV_NS_B")/charon.log"
    if grep -q 'ignoring QUICK_MODE request while phase 1 is incomplete' "$clog"; then
        # Not a failure: AM3 and QM1 leave back to back and charon's worker threads may take QM1
        # first (its own initiator hits the same race, see tests/data/strongswan/am-*/README.md).
        ok "note: charon handled QM1 before AM3 and ignored it; Quick Mode completed on QM1's retransmission 4 s later"
    fi
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3
    sleep 0.3
    fv_stop "$cap_pid"
    decode_check "$mode" "$ck"
    e2e_transfer "$FV_NS_A" "$A_IN" "$FV_NS_B" "$B_IN" 2
    sleep 0.5
    local ours_in ours_out ss_in ss_out drops_a drops_b
    ours_in="$(e2e_q "$SOCK_A" 'total("in_packets")')"
    ours_out="$(e2e_q "$SOCK_A" 'total("out_packets")')"
    read -r ss_in ss_out < <(ss_counters)
    drops_a="$(e2e_socket_drops "$FV_NS_A")"
    drops_b="$(e2e_socket_drops "$FV_NS_B")"
    close_enough "$ours_out" "$ss_in" "$drops_b" ||
        fail "ferrovpn sent $ours_out ESP packets, strongSwan received $ss_in, its kernel dropped $drops_b"
    close_enough "$ss_out" "$ours_in" "$drops_a" ||
        fail "strongSwan sent $ss_out ESP packets, ferrovpn received $ours_in, its kernel dropped $drops_a"
    ok "counters: ferrovpn out $ours_out / strongSwan in $ss_in (+$drops_b dropped on charon's full socket buffer), strongSwan out $ss_out / ferrovpn in $ours_in (+$drops_a dropped)"
    [ "$(e2e_q "$SOCK_A" 'total("auth_failures") + total("replay_drops")')" = 0 ] ||
        fail "ferrovpn counted auth failures or replay drops"

    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    for ((i = 0; i < 25; i++)); do
        fv_swanctl "$FV_NS_B" --list-sas 2>/dev/null | grep INSTALLED >/dev/null || break
        sleep 0.2
    done
    if fv_swanctl "$FV_NS_B" --list-sas 2>/dev/null | grep INSTALLED >/dev/null; then
        fail "strongSwan still has the child SA 5 s after ferrovpn went down (DELETE not sent or not understood)"
    fi
    ok "strongSwan removed its SAs after ferrovpn's DELETE"
    fv_charon_stop "$FV_NS_B"
}

# decode_check MODE COOKIE: the capture decodes with the key files the daemon just wrote.
decode_check() {
    local mode="$1" ck="${2%%_i*}" names n k out="$FV_TMP/decode.txt"
    grep -q 'KEY EXPORT ON' "$FV_TMP/ferrovpn.log" || fail "no WARN line announcing the key export"
    for k in ikev1_decryption_table esp_sa; do
        [ "$(stat -c %a "$FV_TMP/keys/$k")" = 600 ] || fail "$k is not mode 600"
    done
    # No key of either table appears in the daemon's log.
    python3 - "$FV_TMP/keys" "$FV_TMP/ferrovpn.log" <<'PY' || fail "key material in the daemon's log"
import re, sys
keys = re.findall(r"[0-9a-f]{32,}", open(sys.argv[1] + "/ikev1_decryption_table").read() + open(sys.argv[1] + "/esp_sa").read())
log = open(sys.argv[2]).read().lower()
sys.exit(1 if not keys or any(k in log for k in keys) else 0)
PY
    "$FERROVPN" decode "$FV_TMP/capture.pcap" --keys "$FV_TMP/keys" >"$out" 2>&1 ||
        { cat "$out" >&2; fail "ferrovpn decode failed"; }
    names="MM1 MM2 MM3 MM4 MM5 MM6"
    [ "$mode" = aggressive ] && names="AM1 AM2 AM3"
    for n in $names QM1 QM2 QM3; do
        grep -qE "^[0-9:.]+ $n +.* $ck " "$out" || { cat "$out" >&2; fail "decode: no $n with cookie $ck"; }
    done
    grep -qE "^[0-9:.]+ (MM5|AM3|QM1) .* flags=[A-Z]*E.*\(decrypted\)" "$out" ||
        { cat "$out" >&2; fail "decode: no encrypted message decrypted"; }
    grep -q '\[ encrypted \]' "$out" && { cat "$out" >&2; fail "decode: an encrypted message was not decrypted"; }
    python3 - "$out" "$A_IN" "$B_IN" <<'PY' || { cat "$out" >&2; fail "decode: ESP not decrypted"; }
import re, sys
t = open(sys.argv[1]).read()
d = re.findall(r"decrypted (\d+) of (\d+)", t)
ok = len(d) >= 2 and all(a == b and int(a) >= 3 for a, b in d)
ok = ok and f"inner {sys.argv[2]} -> {sys.argv[3]} ICMP" in t and f"inner {sys.argv[3]} -> {sys.argv[2]} ICMP" in t
sys.exit(0 if ok else 1)
PY
    ok "decode with the exported keys: $names QM1-QM3 of $ck decrypted, ESP $(grep -c 'decrypted [0-9]* of' "$out") SPIs decrypted to the pings"
    # Wireshark reads the same files: a private profile holding just the two tables.
    mkdir -p "$FV_TMP/ws/.config/wireshark"
    cp "$FV_TMP/keys/ikev1_decryption_table" "$FV_TMP/keys/esp_sa" "$FV_TMP/ws/.config/wireshark/"
    local ws_icmp ws_qm
    ws_icmp="$(HOME="$FV_TMP/ws" XDG_CONFIG_HOME="$FV_TMP/ws/.config" tshark -r "$FV_TMP/capture.pcap" \
        -o esp.enable_encryption_decode:TRUE -Y icmp 2>/dev/null | wc -l)"
    ws_qm="$(HOME="$FV_TMP/ws" XDG_CONFIG_HOME="$FV_TMP/ws/.config" tshark -r "$FV_TMP/capture.pcap" \
        -Y isakmp.nonce 2>/dev/null | wc -l)"
    # Nonces: 2 in phase 1 in clear, 2 more only when QM1 and QM2 decrypt.
    [ "$ws_icmp" -ge 12 ] && [ "$ws_qm" -ge 4 ] ||
        fail "tshark with the exported tables: $ws_icmp ICMP packets (want 12), $ws_qm messages with a nonce (want 4)"
    ok "tshark with the exported tables decrypts them too ($ws_icmp ICMP packets, $ws_qm messages with a nonce: QM1/QM2 readable)"
    if [ -n "${E2E_STORE:-}" ]; then
        mkdir -p "$E2E_STORE/$E2E_CASE"
        cp "$FV_TMP/capture.pcap" "$E2E_STORE/$E2E_CASE/capture.pcap"
        cp "$FV_TMP/keys/ikev1_decryption_table" "$FV_TMP/keys/esp_sa" "$out" "$E2E_STORE/$E2E_CASE/"
    fi
}

# child_deleted route|policy: strongSwan deletes one of ferrovpn's IPsec SA pairs and negotiates
# none (swanctl --terminate --child, as an operator or a peer's own policy would): ferrovpn, the
# initiator, negotiates that pair again by itself on the ISAKMP SA that stays up, and its
# traffic flows again. route: the only pair of a route-based tunnel; policy: the second of two
# policy-based pairs (the first stays as it was).
child_deleted() {
    FV_NO_IPV6=1 fv_two_ns
    local tunnel child=fv in_a=$A_IN in_b=$B_IN log="$FV_TMP/ferrovpn.log" pairs=1 gone_ts=203.0.113.0/24
    local B_IN=$B_IN SS_LOCAL_TS=203.0.113.0/24 SS_REMOTE_TS=198.51.100.0/24 SS_CHILDREN_EXTRA=""
    tunnel="$(e2e_route_based_facing_ss)"
    if [ "$1" = policy ]; then
        child=fv2 in_a=198.51.100.129 in_b=203.0.113.129 pairs=2 gone_ts=203.0.113.128/25
        B_IN="203.0.113.1 203.0.113.129" SS_LOCAL_TS=203.0.113.0/25 SS_REMOTE_TS=198.51.100.0/25
        SS_CHILDREN_EXTRA="            fv2 {
                local_ts = 203.0.113.128/25
                remote_ts = 198.51.100.128/25
                esp_proposals = aes128gcm16
                start_action = none
            }"
        fv_add_inner "$FV_NS_A" 198.51.100.1/32
        fv_add_inner "$FV_NS_A" 198.51.100.129/32
        tunnel='[connection.policy_based]
pairs = [
    { local = "198.51.100.0/25", remote = "203.0.113.0/25" },
    { local = "198.51.100.128/25", remote = "203.0.113.128/25" },
]'
    fi
    SS_SECRET="$PSK" e2e_ss_up "$(SS_SECRET="$PSK" e2e_ss_conf)"
    e2e_psk "$FV_TMP/a.psk" "$PSK"
    SOCK_A="$FV_TMP/a.sock"
    C_SOCK="$SOCK_A" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE="$FV_TMP/a.psk" C_START=initiate \
        C_ESP=aes128gcm16 C_TUNNEL="$tunnel" e2e_conf "$FV_TMP/a.toml"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$log"
    PID_A="$E2E_PID"
    e2e_wait_sas "$SOCK_A" "$PID_A" "$pairs" 30 || fail "ferrovpn: not $pairs IPsec SA pair(s) within 30 s"
    e2e_ss_wait_installed "$FV_TMP/list-sas.txt"
    e2e_ping "$FV_NS_A" "$in_a" "$in_b" 2
    local gone kept ike
    gone="$(e2e_q "$SOCK_A" "[s['spi_in'] for s in sas if s['remote_ts'] == '$gone_ts'][0]")"
    kept="$(e2e_q "$SOCK_A" "sorted(s['spi_in'] for s in sas if s['spi_in'] != '$gone')")"
    ike="$(e2e_q "$SOCK_A" 'ikes[0]["cookies"]')"
    fv_swanctl "$FV_NS_B" --terminate --child "$child" --timeout 10 >"$FV_TMP/terminate.txt" 2>&1 ||
        { cat "$FV_TMP/terminate.txt" >&2; fail "swanctl --terminate --child $child failed"; }
    ok "strongSwan deleted child $child (spi in $gone on our side), phase 1 left up"
    e2e_wait_log "$log" "1 configured IPsec SA pair\\(s\\) without an SA while phase 1 is up: negotiating them again" 30 ||
        fail "ferrovpn did not notice that a pair lost its SA"
    e2e_wait_log "$log" "negotiating 1 IPsec SA pair\\(s\\) again" 30 || fail "ferrovpn did not negotiate the pair again"
    local i spis=""
    for ((i = 0; i < 100; i++)); do
        spis="$(e2e_q "$SOCK_A" 'sorted(s["spi_in"] for s in sas)' 2>/dev/null || true)"
        [ "$(e2e_q "$SOCK_A" "len(sas) == $pairs and '$gone' not in [s['spi_in'] for s in sas]" 2>/dev/null)" = True ] && break
        sleep 0.2
    done
    [ "$(e2e_q "$SOCK_A" "len(sas) == $pairs and '$gone' not in [s['spi_in'] for s in sas]")" = True ] ||
        fail "no new pair in place of $gone (pairs now: $spis)"
    [ "$(e2e_q "$SOCK_A" 'ikes[0]["cookies"]')" = "$ike" ] || fail "phase 1 was renegotiated; the pair should have been negotiated on the ISAKMP SA that stayed up"
    [ "$1" = route ] || [ "$(e2e_q "$SOCK_A" "sorted(s['spi_in'] for s in sas if s['remote_ts'] == '203.0.113.0/25')")" = "$kept" ] ||
        fail "the first pair changed too (want $kept)"
    e2e_ss_wait_installed "$FV_TMP/list-sas-2.txt"
    e2e_ping "$FV_NS_A" "$in_a" "$in_b" 3
    e2e_ping "$FV_NS_B" "$in_b" "$in_a" 2
    [ "$1" = route ] || e2e_ping "$FV_NS_A" 198.51.100.1 203.0.113.1 2
    ok "ferrovpn negotiated a new pair in place of $gone on the same ISAKMP SA (pairs now $(e2e_q "$SOCK_A" 'sorted(s["spi_in"] for s in sas)')); traffic flows again"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A"
}

case_fv_child_deleted() { child_deleted route; }
case_fv_policy_child_deleted() { child_deleted policy; }

# e2e_lossy_ike NS PERCENT: nftables in NS drops PERCENT % of the IKE datagrams it sends and
# receives (to UDP 500, and to UDP 4500 with the non-ESP marker; both peers use these ports), at
# random, one draw per datagram; ESP passes. (A dropped send is EPERM to the sender.)
e2e_lossy_ike() {
    local ns="$1" pct="$2" hook
    ip netns exec "$ns" nft add table inet fvloss
    for hook in input output; do
        ip netns exec "$ns" nft add chain inet fvloss "$hook" "{ type filter hook $hook priority 0; }"
        ip netns exec "$ns" nft add rule inet fvloss "$hook" udp dport 500 counter
        ip netns exec "$ns" nft add rule inet fvloss "$hook" udp dport 4500 @th,64,32 0 counter
        ip netns exec "$ns" nft add rule inet fvloss "$hook" udp dport 500 numgen random mod 100 lt "$pct" counter drop
        ip netns exec "$ns" nft add rule inet fvloss "$hook" udp dport 4500 @th,64,32 0 numgen random mod 100 lt "$pct" counter drop
    done
}

# lossy INITIATOR(fv|ss) MODE: 20 % of the IKE datagrams each way are lost (nftables at random
# in A, both directions): the tunnel still comes up on both sides within 150 s (MM1 alone gets
# six tries in that time) and carries pings. Typically up in 0-20 s; 51 s was the slowest of 20.
lossy() {
    local initiator="$1" mode="$2" aggr extra_ss extra_fv start
    roles "$initiator" "$mode"
    FV_NO_IPV6=1 fv_two_ns
    e2e_lossy_ike "$FV_NS_A" "${E2E_LOSS:-20}"
    e2e_ss_up "$(SS_SECRET="$PSK" SS_AGGRESSIVE="$aggr" e2e_ss_conf)" "$extra_ss"
    e2e_psk "$FV_TMP/a.psk" "$PSK"
    SOCK_A="$FV_TMP/a.sock"
    C_SOCK="$SOCK_A" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE="$FV_TMP/a.psk" \
        C_START="$start" C_MODE="$mode" C_ESP=aes128gcm16 C_EXTRA="$extra_fv" \
        C_TUNNEL="$(e2e_route_based_facing_ss)" e2e_conf "$FV_TMP/a.toml"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/ferrovpn.log"
    PID_A="$E2E_PID"
    if [ "$initiator" = ss ]; then
        e2e_wait_udp "$FV_NS_A" 500 5 || fail "ferrovpn does not listen on UDP 500"
        # Under loss swanctl's own wait may end first; the SAs are waited for below.
        fv_swanctl "$FV_NS_B" --initiate --child fv --timeout 90 >"$FV_TMP/initiate.log" 2>&1 || true
    fi
    local t0=$SECONDS
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 150 || fail "ferrovpn: no IPsec SA within 150 s at ${E2E_LOSS:-20} % IKE loss"
    # A lost QM3 is recovered by charon's QM2 retransmissions (4, 11, 24, 47, 90 s after QM2).
    local i
    for ((i = 0; i < 750; i++)); do
        fv_swanctl "$FV_NS_B" --list-sas 2>/dev/null | grep INSTALLED >/dev/null && break
        sleep 0.2
    done
    e2e_ss_wait_installed "$FV_TMP/list-sas.txt"
    ok "the pair is up on both sides $((SECONDS - t0)) s after ferrovpn started"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3
    local counts
    counts="$(ip netns exec "$FV_NS_A" nft list table inet fvloss | awk '/packets/ {
        for (i = 1; i < NF; i++) if ($i == "packets") { if (/drop/) d += $(i + 1); else n += $(i + 1) } }
        END { print d + 0 " of " n + 0 }')"
    ok "up on both sides and pings pass; $counts IKE datagrams were dropped on the way"
    if [ -n "${E2E_STORE:-}" ]; then
        # Debugging aid: both logs of each run, to read what the loss did.
        mkdir -p "$E2E_STORE"
        cp "$FV_TMP/ferrovpn.log" "$E2E_STORE/$E2E_CASE-$(date +%H%M%S).ferrovpn.log"
        cp "$(fv_charon_dir "$FV_NS_B")/charon.log" "$E2E_STORE/$E2E_CASE-$(date +%H%M%S).charon.log"
    fi
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

# strongSwan initiates and every QM3 it sends is lost (nftables in A drops short Quick Mode
# datagrams to UDP 500 and 4500: QM3 is HDR + HASH(3), QM1 carries SA, nonce and IDs). charon installs
# the pair as it sends QM3; ferrovpn never gets it, gives up on QM2 (retransmissions shortened
# to 1 s x 3) and sends a DELETE for the SPI it offered, so charon removes the pair it would
# otherwise send into for its whole lifetime. With the path mended, the next attempt comes up.
case_ss_qm3_lost() {
    local aggr extra_ss extra_fv start log="$FV_TMP/ferrovpn.log" charon_log dropped
    roles ss main
    FV_NO_IPV6=1 fv_two_ns
    ip netns exec "$FV_NS_A" nft add table inet fvqm3
    ip netns exec "$FV_NS_A" nft add chain inet fvqm3 input "{ type filter hook input priority 0; }"
    # Exchange type: octet 18 of the ISAKMP header, after the UDP header (and on UDP 4500 after
    # the non-ESP marker too).
    ip netns exec "$FV_NS_A" nft add rule inet fvqm3 input udp dport 500 udp length lt 150 \
        @th,208,8 32 counter drop
    ip netns exec "$FV_NS_A" nft add rule inet fvqm3 input udp dport 4500 udp length lt 150 \
        @th,64,32 0 @th,240,8 32 counter drop
    e2e_ss_up "$(SS_SECRET="$PSK" e2e_ss_conf)"
    charon_log="$(fv_charon_dir "$FV_NS_B")/charon.log"
    e2e_psk "$FV_TMP/a.psk" "$PSK"
    SOCK_A="$FV_TMP/a.sock"
    C_SOCK="$SOCK_A" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE="$FV_TMP/a.psk" \
        C_START=respond C_ESP=aes128gcm16 C_DAEMON_EXTRA='retransmit_timeout = "1s"
retransmit_base = 1.0
retransmit_tries = 3' C_TUNNEL="$(e2e_route_based_facing_ss)" e2e_conf "$FV_TMP/a.toml"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$log"
    PID_A="$E2E_PID"
    e2e_wait_udp "$FV_NS_A" 500 5 || fail "ferrovpn does not listen on UDP 500"
    fv_swanctl "$FV_NS_B" --initiate --child fv --timeout 30 >"$FV_TMP/initiate.log" 2>&1 || true
    e2e_wait_log "$log" "failed: no response to QM2 after 3 retransmissions" 20 ||
        fail "ferrovpn did not give up on QM2 (its QM3s were dropped)"
    e2e_wait_log "$charon_log" "received DELETE for ESP CHILD_SA" 10 ||
        fail "charon got no DELETE for the pair it installed with QM3"
    dropped="$(ip netns exec "$FV_NS_A" nft list table inet fvqm3 |
        awk '{ for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }')"
    [ "${dropped:-0}" -ge 1 ] || fail "the nftables rule dropped no QM3"
    ok "$dropped QM3 dropped; ferrovpn gave up on QM2 and sent a DELETE, charon received it"
    local i
    for ((i = 0; i < 50; i++)); do
        fv_swanctl "$FV_NS_B" --list-sas 2>/dev/null | grep INSTALLED >/dev/null || break
        sleep 0.2
    done
    fv_swanctl "$FV_NS_B" --list-sas >"$FV_TMP/list-sas.txt" 2>&1
    if grep -q INSTALLED "$FV_TMP/list-sas.txt"; then
        cat "$FV_TMP/list-sas.txt" >&2
        fail "charon still has an installed pair nobody reads"
    fi
    grep -q ESTABLISHED "$FV_TMP/list-sas.txt" || fail "charon's ISAKMP SA went down too"
    [ "$(e2e_q "$SOCK_A" 'len(sas)')" = 0 ] || fail "ferrovpn lists an IPsec SA without QM3"
    ok "neither side keeps the pair; phase 1 stays up"
    ip netns exec "$FV_NS_A" nft delete table inet fvqm3
    fv_swanctl "$FV_NS_B" --initiate --child fv --timeout 30 >"$FV_TMP/initiate-2.log" 2>&1 ||
        { cat "$FV_TMP/initiate-2.log" >&2; fail "swanctl --initiate failed on the mended path"; }
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "ferrovpn: no IPsec SA on the mended path"
    e2e_ss_wait_installed "$FV_TMP/list-sas-2.txt"
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 2
    ok "on the mended path the pair comes up on both sides and carries pings"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

# fv_a_up START REMOTE EXTRA: ferrovpn in A (192.0.2.1), PSK $PSK, aes128gcm16, the route-based
# tunnel facing charon (e2e_route_based_facing_ss), starting (initiate|respond) towards REMOTE with
# EXTRA connection lines (C_DAEMON_EXTRA passes through). Sets SOCK_A, PID_A, FV_LOG.
fv_a_up() {
    e2e_psk "$FV_TMP/a.psk" "$PSK"
    SOCK_A="$FV_TMP/a.sock" FV_LOG="$FV_TMP/ferrovpn.log"
    C_SOCK="$SOCK_A" C_LOCAL=192.0.2.1 C_REMOTE="$2" C_PSKFILE="$FV_TMP/a.psk" \
        C_START="$1" C_ESP=aes128gcm16 C_EXTRA="$3" C_TUNNEL="$(e2e_route_based_facing_ss)" \
        e2e_conf "$FV_TMP/a.toml"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_LOG"
    PID_A="$E2E_PID"
}

# ss_responder_setup EXTRA_FV: charon in B initiates a route-based tunnel to ferrovpn in A, the
# responder (its connection gets EXTRA_FV); up and pinged once. Sets SOCK_A, PID_A, FV_LOG.
ss_responder_setup() {
    FV_NO_IPV6=1 fv_two_ns
    e2e_ss_up "$(SS_SECRET="$PSK" e2e_ss_conf)"
    fv_a_up respond 192.0.2.2 "$1"
    e2e_wait_udp "$FV_NS_A" 500 5 || fail "ferrovpn does not listen on UDP 500"
    fv_swanctl "$FV_NS_B" --initiate --child fv --timeout 20 >"$FV_TMP/initiate.log" 2>&1 ||
        { cat "$FV_TMP/initiate.log" >&2; fail "swanctl --initiate failed"; }
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "ferrovpn: no IPsec SA within 20 s"
    e2e_ss_wait_installed "$FV_TMP/list-sas.txt"
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 2
}

# DPD on a path that loses every IKE datagram from the peer while its ESP flows (RFC 3706: traffic
# proves the peer alive): ferrovpn (dpd 3 s / 9 s) sends no R-U-THERE and declares nobody dead
# for 20 s of pings from charon's side; once the ESP stops too, DPD finds the peer dead.
case_ss_dpd_esp_alive() {
    ss_responder_setup 'dpd_interval = "3s"
dpd_timeout = "9s"'
    FV_SPAWN_LOG="$FV_TMP/ping.log" fv_spawn "$FV_NS_B" ping -n -i 0.2 -w 22 -I "$B_IN" "$A_IN"
    local ping_pid="$FV_LAST_PID" probes_before probes
    sleep 1
    ip netns exec "$FV_NS_A" nft add table inet fvcut
    ip netns exec "$FV_NS_A" nft add chain inet fvcut input "{ type filter hook input priority 0; }"
    ip netns exec "$FV_NS_A" nft add rule inet fvcut input udp dport 500 counter drop
    ip netns exec "$FV_NS_A" nft add rule inet fvcut input udp dport 4500 @th,64,32 0 counter drop
    probes_before="$(grep -c 'N(DPD) \]' "$FV_LOG" || true)"
    sleep 20
    if e2e_has "peer dead" "$FV_LOG"; then
        fail "ferrovpn declared the peer dead while its ESP arrived"
    fi
    probes="$(grep -c 'sending INFO \[ HASH N(DPD) \]' "$FV_LOG" || true)"
    [ "$(grep -c 'N(DPD) \]' "$FV_LOG" || true)" = "$probes_before" ] ||
        fail "ferrovpn sent R-U-THERE while ESP arrived ($probes in all)"
    [ "$(e2e_q "$SOCK_A" 'len(sas)')" = 1 ] || fail "the pair is gone"
    ok "20 s without any IKE from the peer, its ESP arriving: no R-U-THERE, the pair stays"
    wait "$ping_pid" 2>/dev/null || true
    e2e_wait_log "$FV_LOG" "peer dead \\(DPD\\)" 20 ||
        fail "once the ESP stopped, DPD did not find the peer dead within 20 s"
    ok "with the ESP stopped too, DPD declared the peer dead"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

# ferrovpn, the responder, keeps a 40 s ISAKMP lifetime under charon's proposed hour (RFC 2409
# 4.5). Before it ends, ferrovpn starts a new Main Mode itself; charon adopts the IPsec SA
# (its "detected reauth"), and the pair carries on with the same SPIs on both sides.
case_ss_responder_renews() {
    ss_responder_setup 'ike_lifetime = "40s"'
    local spi
    spi="$(e2e_q "$SOCK_A" 'sas[0]["spi_in"]')"
    e2e_wait_log "$FV_LOG" "IKE SA established \\(Main Mode as Initiator\\)" 45 ||
        fail "ferrovpn did not renew its ISAKMP SA before it ended"
    e2e_wait_log "$(fv_charon_dir "$FV_NS_B")/charon.log" "detected reauth of existing IKE_SA, adopting 1 children" 10 ||
        fail "charon did not adopt the IPsec SA on the new ISAKMP SA"
    sleep 8 # past the old ISAKMP SA's end (40 s) and its delete
    if e2e_has -E "IPsec SA removed.*ISAKMP SA lifetime expired" "$FV_LOG"; then
        fail "ferrovpn deleted the IPsec SA with its ISAKMP SA"
    fi
    [ "$(e2e_q "$SOCK_A" '[s["spi_in"] for s in sas]')" = "['$spi']" ] ||
        fail "ferrovpn's pair changed: $(e2e_q "$SOCK_A" '[s["spi_in"] for s in sas]') (was $spi)"
    e2e_ss_wait_installed "$FV_TMP/list-sas-2.txt"
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 2
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 2
    ok "ISAKMP SA renewed by the responder, IPsec SA $spi kept on both sides, pings pass"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

# ferrovpn rekeys its IPsec SA (30 s lifetime) and both copies of its QM3 that go at once are
# lost (nftables in A drops its first two short Quick Mode datagrams after the tunnel is up);
# the copy sent a second later gets through. charon installs the new pair only when QM3 comes,
# so ESP that ferrovpn sends on the new SA before then is dropped. ferrovpn keeps sending on the
# older pair until a packet arrives on the new one (make before break): pings every 50 ms
# through the rekey lose none.
case_fv_rekey_qm3_late() {
    FV_NO_IPV6=1 fv_two_ns
    if [ -n "${E2E_PCAP:-}" ]; then
        FV_SPAWN_LOG="$FV_TMP/dumpcap.log" fv_spawn "$FV_NS_B" dumpcap -q -P -i "$FV_IF_B" -w "$E2E_PCAP-$E2E_CASE.pcap"
        e2e_wait_log "$FV_TMP/dumpcap.log" 'Capturing on' 10 || fail "dumpcap did not start"
    fi
    e2e_ss_up "$(SS_SECRET="$PSK" e2e_ss_conf)"
    fv_a_up initiate 192.0.2.2 'esp_lifetime = "30s"'
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "ferrovpn: no IPsec SA within 20 s"
    e2e_ss_wait_installed "$FV_TMP/list-sas.txt"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 2
    # The first Quick Mode's QM3 goes three times: twice at once, once a second later.
    local i
    for ((i = 0; i < 50; i++)); do
        [ "$(grep -c "sending QM3 (retransmit)" "$FV_LOG")" -ge 2 ] && break
        sleep 0.1
    done
    # QM3 on UDP 4500 (charon floats there): non-ESP marker, exchange type 32, short. The
    # quota lets through every copy after the first two (QM3 is 100-130 bytes of IP).
    ip netns exec "$FV_NS_A" nft add table inet fvqm3
    ip netns exec "$FV_NS_A" nft add chain inet fvqm3 output "{ type filter hook output priority 0; }"
    ip netns exec "$FV_NS_A" nft add rule inet fvqm3 output udp dport 4500 udp length lt 150 \
        @th,64,32 0 @th,240,8 32 quota until 266 bytes counter drop
    local out
    out="$(ip netns exec "$FV_NS_A" ping -n -q -i 0.05 -c 400 -W 2 -I "$A_IN" "$B_IN" 2>&1)" || true
    [ "$(grep -c "IPsec SA installed" "$FV_LOG")" -ge 2 ] || fail "ferrovpn did not rekey within 20 s"
    local dropped
    dropped="$(ip netns exec "$FV_NS_A" nft list table inet fvqm3 |
        awk '{ for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }')"
    [ "$dropped" = 2 ] || fail "nftables dropped $dropped QM3 copies, not the two sent at once"
    grep -q "400 packets transmitted, 400 received" <<<"$out" ||
        fail "pings lost across the rekey with QM3 late: $(printf '%s\n' "$out" | grep transmitted)"
    e2e_has "sending on the new IPsec SA spi out [0-9a-f]*: the peer uses it" "$FV_LOG" ||
        fail "ferrovpn did not switch to the new pair on the peer's first packet"
    ok "QM3 copies lost: $dropped; 400 pings at 50 ms through the rekey, none lost"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

# ferrovpn initiates expecting another identity than charon's: it refuses after MM6, when
# charon's phase 1 is complete, so its refusal goes protected (notify and DELETE) and charon
# deletes its ISAKMP SA instead of keeping one ferrovpn has dropped (a plain notify there was
# dropped: "message verification failed").
case_fv_refuses_identity() {
    FV_NO_IPV6=1 fv_two_ns
    e2e_ss_up "$(SS_SECRET="$PSK" e2e_ss_conf)"
    fv_a_up initiate 192.0.2.2 'remote_id = "fqdn:gw.example.net"'
    e2e_wait_log "$FV_LOG" "peer identity 192.0.2.2 does not match the configured" 20 ||
        fail "ferrovpn did not refuse charon's identity"
    local charon_log
    charon_log="$(fv_charon_dir "$FV_NS_B")/charon.log"
    e2e_wait_log "$charon_log" "received DELETE for IKE_SA" 10 ||
        fail "charon got no protected DELETE for the refused ISAKMP SA"
    # The notify goes just before the DELETE; charon handles them in parallel jobs and drops
    # the notify when the DELETE was processed first, so only its log line is optional.
    e2e_has "INVALID_ID_INFORMATION" "$charon_log" ||
        e2e_say "  note: charon processed the DELETE before the notify (it logs no reason then)"
    fv_stop "$PID_A"
    fv_swanctl "$FV_NS_B" --list-sas >"$FV_TMP/list-sas.txt" 2>&1
    if grep -q ESTABLISHED "$FV_TMP/list-sas.txt"; then
        cat "$FV_TMP/list-sas.txt" >&2
        fail "charon keeps an ISAKMP SA ferrovpn refused"
    fi
    ok "refused identity: charon received the protected DELETE and keeps no ISAKMP SA"
    fv_charon_stop "$FV_NS_B"
}

# The mirror: charon initiates and expects another identity than ferrovpn's. It refuses in
# MM6 and deletes the ISAKMP SA at once; ferrovpn, the responder, only sees its phase 1
# complete and then deleted. It reports that as the connection's failure (status) and
# diagnose names a problem, instead of an idle connection with no problem found.
case_ss_refuses_identity() {
    FV_NO_IPV6=1 fv_two_ns
    e2e_ss_up "$(SS_SECRET="$PSK" SS_REMOTE_ID=gw.example.net \
        SS_SECRETS_EXTRA="$(printf '    ike-other {\n        id-a = gw.example.net\n        id-b = 192.0.2.2\n        secret = "%s"\n    }' "$PSK")" \
        e2e_ss_conf)"
    fv_a_up respond 192.0.2.2 ''
    e2e_wait_udp "$FV_NS_A" 500 5 || fail "ferrovpn does not listen on UDP 500"
    fv_swanctl "$FV_NS_B" --initiate --child fv --timeout 10 >"$FV_TMP/initiate.log" 2>&1 || true
    e2e_wait_log "$FV_LOG" "deleted the ISAKMP SA [0-9]* ms after phase 1 completed" 10 ||
        fail "ferrovpn did not report the peer's refusal"
    local failure
    failure="$(e2e_q "$SOCK_A" 'd["connections"][0]["last_failure"]')"
    case "$failure" in *"most likely refused our identity"*) ;;
    *) fail "status shows no refusal: last_failure = $failure" ;;
    esac
    "$FERROVPN" diagnose --socket "$SOCK_A" >"$FV_TMP/diagnose.txt" 2>&1 || true
    grep -q "PROBLEM" "$FV_TMP/diagnose.txt" ||
        { cat "$FV_TMP/diagnose.txt" >&2; fail "diagnose found no problem"; }
    ok "charon's refusal after MM6 shows as the connection's failure and in diagnose"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

# charon refuses ferrovpn's Quick Mode (its child expects other selectors) while phase 1 is
# up. The peer's admin then fixes the child and reloads it (swanctl --load-all, the ISAKMP SA
# stays): ferrovpn negotiates the pair again by itself after the backoff (5 s), as the README
# promises for an initiating connection, and the tunnel comes up without a new phase 1.
case_fv_quick_mode_retried() {
    FV_NO_IPV6=1 fv_two_ns
    e2e_ss_up "$(SS_SECRET="$PSK" SS_REMOTE_TS=198.51.100.128/25 e2e_ss_conf)"
    fv_a_up initiate 192.0.2.2 ''
    e2e_wait_log "$FV_LOG" "Quick Mode [0-9a-f]* on .* failed" 20 ||
        fail "charon did not refuse the Quick Mode"
    e2e_wait_log "$FV_LOG" "negotiating them again in" 5 ||
        fail "ferrovpn did not plan to negotiate the refused pair again"
    local cookies
    cookies="$(e2e_q "$SOCK_A" 'ikes[0]["cookies"]')"
    printf '%s\n' "$(SS_SECRET="$PSK" e2e_ss_conf)" >"/etc/netns/$FV_NS_B/swanctl/swanctl.conf"
    fv_charon_load "$FV_NS_B" >/dev/null || fail "swanctl --load-all failed"
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 30 || fail "ferrovpn did not negotiate the pair again"
    [ "$(e2e_q "$SOCK_A" 'ikes[0]["cookies"]')" = "$cookies" ] ||
        fail "a new ISAKMP SA was made; the pair should come on the one that was up"
    e2e_ss_wait_installed "$FV_TMP/list-sas.txt"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 2
    ok "after the peer fixed its selectors, ferrovpn negotiated the pair again on the same ISAKMP SA"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

# nat_bed BEHIND(a|b): A (192.0.2.1/25) and B (192.0.2.130/25) joined through router N
# (192.0.2.2/25 on A's side, 192.0.2.129/25 on B's), which masquerades what it forwards from the
# side BEHIND (nftables): B reaches A as 192.0.2.2, or A reaches B as 192.0.2.129.
nat_bed() {
    FV_NO_IPV6=1 FV_OUTER_A=192.0.2.1/25 FV_OUTER_B=192.0.2.130/25 fv_two_ns
    # fv_two_ns joined A and B directly: put router N between them.
    local n="${FV_ID}n" out="${FV_ID}-na"
    fv_ns_create "$n"
    ip -n "$FV_NS_A" link del "$FV_IF_A"
    fv_veth "$FV_NS_A" "$FV_IF_A" 192.0.2.1/25 "$n" "${FV_ID}-na" 192.0.2.2/25
    fv_veth "$n" "${FV_ID}-nb" 192.0.2.129/25 "$FV_NS_B" "$FV_IF_B" 192.0.2.130/25
    ip -n "$FV_NS_A" route add default via 192.0.2.2
    ip -n "$FV_NS_B" route add default via 192.0.2.129
    ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1
    [ "$1" = b ] || out="${FV_ID}-nb"
    printf 'table ip fvnat {\n chain post {\n  type nat hook postrouting priority srcnat;\n  oifname "%s" masquerade\n }\n}\n' \
        "$out" | ip netns exec "$n" nft -f - || fail "nft: no masquerade in N"
}

# A real NAT: charon in B sits behind N (nat_bed b); ferrovpn in A responds, expecting the
# peer at 192.0.2.2 with the identity 192.0.2.130, and keeps a 40 s ISAKMP lifetime under
# charon's hour. The NAT is found and both float to UDP 4500; pings and a checksummed transfer
# pass both ways. Before the ISAKMP SA ends, ferrovpn renews it itself: N forwards nothing to
# B's UDP 500, so the renewal's MM1 must go to the mapping B's UDP 4500 traffic keeps open.
# charon adopts the IPsec SA on the new ISAKMP SA, and the pair carries on unchanged.
case_ss_nat_responder_renews() {
    nat_bed b
    e2e_ss_up "$(SS_SECRET="$PSK" SS_ADDR_B=192.0.2.130 e2e_ss_conf)"
    fv_a_up respond 192.0.2.2 'remote_id = "192.0.2.130"
ike_lifetime = "40s"'
    e2e_wait_udp "$FV_NS_A" 500 5 || fail "ferrovpn does not listen on UDP 500"
    fv_swanctl "$FV_NS_B" --initiate --child fv --timeout 20 >"$FV_TMP/initiate.log" 2>&1 ||
        { cat "$FV_TMP/initiate.log" >&2; fail "swanctl --initiate through the NAT failed"; }
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "ferrovpn: no IPsec SA within 20 s"
    e2e_ss_wait_installed "$FV_TMP/list-sas.txt"
    [ "$(e2e_q "$SOCK_A" 'ikes[0]["nat_remote_behind"] and ikes[0]["nat_floated"]')" = True ] ||
        fail "ferrovpn did not see the peer behind a NAT and float: $(e2e_q "$SOCK_A" 'ikes[0]')"
    ok "through the NAT: the peer is seen behind it, IKE floated ($(e2e_q "$SOCK_A" 'ikes[0]["remote"]'))"
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 2
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 2
    local spi
    spi="$(e2e_q "$SOCK_A" 'sas[0]["spi_in"]')"
    e2e_wait_log "$FV_LOG" "IKE SA established \\(Main Mode as Initiator\\)" 45 ||
        fail "ferrovpn's renewal through the NAT did not come up"
    e2e_wait_log "$(fv_charon_dir "$FV_NS_B")/charon.log" "detected reauth of existing IKE_SA, adopting 1 children" 10 ||
        fail "charon did not adopt the IPsec SA on the new ISAKMP SA"
    sleep 8 # past the old ISAKMP SA's end (40 s) and its delete
    [ "$(e2e_q "$SOCK_A" '[s["spi_in"] for s in sas]')" = "['$spi']" ] ||
        fail "ferrovpn's pair changed: $(e2e_q "$SOCK_A" '[s["spi_in"] for s in sas]') (was $spi)"
    e2e_ss_wait_installed "$FV_TMP/list-sas-2.txt"
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 2
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 2
    e2e_transfer "$FV_NS_A" "$A_IN" "$FV_NS_B" "$B_IN" 2
    ok "ISAKMP SA renewed through the NAT by the responder, IPsec SA $spi kept, pings and transfer pass"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

# The other role through a real NAT: ferrovpn in A sits behind N (nat_bed a) and initiates to
# charon in B, which expects it at 192.0.2.129 with the identity 192.0.2.1. ferrovpn finds
# itself behind the NAT and floats; pings and a checksummed transfer pass. N forgets idle UDP
# mappings after 10 s; DPD is off on both sides and charon, not behind a NAT, sends no
# keepalives. After 25 s without traffic, charon's side must still reach ferrovpn's: only
# ferrovpn's NAT-keepalives (RFC 3948 §4, every 3 s here) keep the mapping.
case_fv_nat_initiator() {
    nat_bed a
    ip netns exec "${FV_ID}n" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=10 \
        net.netfilter.nf_conntrack_udp_timeout_stream=10
    e2e_ss_up "$(SS_SECRET='' SS_ADDR_B=192.0.2.130 SS_ADDR_A=192.0.2.129 SS_REMOTE_ID=192.0.2.1 \
        SS_SECRETS_EXTRA="$(printf '    ike-nat {\n        id-a = 192.0.2.1\n        id-b = 192.0.2.130\n        secret = "%s"\n    }' "$PSK")" \
        e2e_ss_conf)"
    fv_a_up initiate 192.0.2.130 'dpd_interval = "0s"
nat_keepalive = "3s"'
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "ferrovpn: no IPsec SA through the NAT within 20 s"
    e2e_ss_wait_installed "$FV_TMP/list-sas.txt"
    [ "$(e2e_q "$SOCK_A" 'ikes[0]["nat_local_behind"] and ikes[0]["nat_floated"]')" = True ] ||
        fail "ferrovpn did not see itself behind a NAT and float: $(e2e_q "$SOCK_A" 'ikes[0]')"
    ok "through the NAT: ferrovpn sees itself behind it, IKE floated ($(e2e_q "$SOCK_A" 'ikes[0]["local"]'))"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 2
    e2e_transfer "$FV_NS_A" "$A_IN" "$FV_NS_B" "$B_IN" 2
    sleep 25 # idle: 2.5 × N's UDP timeout
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 2
    ok "after 25 s idle behind a NAT that forgets idle mappings in 10 s, the peer's side still gets through"
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

# Case names: <initiator>-<mode>-<esp>, fv = ferrovpn initiates, ss = strongSwan initiates.
declare -A ESP=([gcm]=aes128gcm16 [pfs]=aes128-sha256-modp2048)
CASES=()
for who in fv ss; do
    for mode in main aggressive; do
        for e in gcm pfs; do
            CASES+=("$who-$mode-$e")
            eval "case_${who}_${mode}_${e}() { interop $who $mode ${ESP[$e]}; }"
        done
    done
done
CASES+=(fv-child-deleted fv-policy-child-deleted)
# In CI: Main Mode each way (the cells of the three loss fixes); the Aggressive Mode two run on
# request (E2E_CASES). Each lossy case can fail by chance: when strongSwan initiates, a QM3 lost
# on every one of our QM2 retransmissions ends the pair on both sides (ferrovpn's DELETE,
# ss-qm3-lost), and this charon does not try again (well under 1 % at 20 %, see
# docs/INTEROP.md); two cases keep that risk small in every CI run.
CASES+=(fv-main-lossy ss-main-lossy ss-qm3-lost ss-dpd-esp-alive ss-responder-renews)
CASES+=(fv-rekey-qm3-late fv-refuses-identity ss-refuses-identity fv-quick-mode-retried)
CASES+=(ss-nat-responder-renews fv-nat-initiator)
for who in fv ss; do
    for mode in main aggressive; do
        eval "case_${who}_${mode}_lossy() { lossy $who $mode; }"
    done
done
for c in ${E2E_CASES:-${CASES[*]}}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "strongswan_interop.sh"

#!/usr/bin/env bash
# ferrovpn ⇄ strongSwan 5.9: IKEv1 fragmentation (issue 15) with a certificate chain too large
# for one datagram. Every key is RSA 4096: a root CA, three intermediate CAs, and a certificate
# per side issued by the last intermediate; each side sends its certificate and the three
# intermediates, so MM5 and MM6 are about 6 kB and must cross as fragments of at most
# fragment_size (1280, both sides' default); in Aggressive Mode AM2 and AM3. Cases: Main Mode
# with ferrovpn initiating (fv-main) and with strongSwan initiating (ss-main), and the same in
# Aggressive Mode (fv-aggressive, ss-aggressive). Each case captures the veth and asserts that both
# directions carried ISAKMP datagrams whose first payload is FRAG (132), that charon logged
# reassembling our fragments and splitting its own, and that ferrovpn's status counts fragments
# sent and reassembled; then pings both ways, a 2 MiB checksummed TCP transfer, and
# `ferrovpn down` cleaning up.
# Own script rather than more cases in certs.sh: it builds a longer PKI (several intermediates,
# RSA 4096, made once for all cases) and captures the wire, and certs.sh is being extended in
# parallel (CRLs) — separate files keep both simple.
# Layout as certs.sh: ferrovpn in A (192.0.2.1, fv0 198.51.100.1), charon in B (192.0.2.2,
# 203.0.113.1 on lo).
# Needs root, strongSwan, openssl, tshark and python3; skips otherwise (fails with CI=true).
# Env: FERROVPN_BIN, E2E_CASES (e.g. "fv-main ss-aggressive").
# shellcheck disable=SC2031  # E2E_CASE is set in the per-case subshell that runs these functions
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "fragmentation.sh needs network namespaces"
require_cmd_or_skip ip ping openssl swanctl tshark python3 sha256sum "$FV_CHARON_BIN"
e2e_binary

A_IN=198.51.100.1
B_IN=203.0.113.1
INTERMEDIATES=3

PKI="$(mktemp -d /tmp/fv-frag-pki.XXXXXX)"
trap 'rm -rf "$PKI"' EXIT

newkey() {
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$1" 2>/dev/null
    openssl rsa -in "$1" -traditional -out "$1.trad" 2>/dev/null
    chmod 600 "$1" "$1.trad"
}

# make_pki DIR: DIR/root.crt, DIR/int1..N.crt (each issued by the one before), DIR/a.crt and
# DIR/b.crt issued by the last, with their keys; DIR/a.chain = a.crt then the intermediates.
make_pki() {
    local d="$1" i prev=root side ip
    cat >"$d/ext.cnf" <<X
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
[a]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
subjectAltName = IP:192.0.2.1
[b]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
subjectAltName = IP:192.0.2.2
X
    newkey "$d/root.key"
    openssl req -x509 -new -key "$d/root.key" -subj "/C=XX/O=ferrovpn e2e/CN=Root CA" -days 30 \
        -config "$d/ext.cnf" -extensions ca -out "$d/root.crt" 2>/dev/null || return 1
    for ((i = 1; i <= INTERMEDIATES; i++)); do
        newkey "$d/int$i.key"
        openssl req -new -key "$d/int$i.key" -subj "/C=XX/O=ferrovpn e2e/CN=Intermediate CA $i" \
            -out "$d/int$i.csr" 2>/dev/null || return 1
        openssl x509 -req -in "$d/int$i.csr" -CA "$d/$prev.crt" -CAkey "$d/$prev.key" \
            -set_serial "$((1000 + i))" -days 30 -extfile "$d/ext.cnf" -extensions ca \
            -out "$d/int$i.crt" 2>/dev/null || return 1
        prev="int$i"
    done
    for side in a b; do
        ip=192.0.2.1; [ "$side" = b ] && ip=192.0.2.2
        newkey "$d/$side.key"
        openssl req -new -key "$d/$side.key" -subj "/C=XX/O=ferrovpn e2e/CN=$ip" -out "$d/$side.csr" 2>/dev/null || return 1
        openssl x509 -req -in "$d/$side.csr" -CA "$d/$prev.crt" -CAkey "$d/$prev.key" -set_serial "$RANDOM" \
            -days 30 -extfile "$d/ext.cnf" -extensions "$side" -out "$d/$side.crt" 2>/dev/null || return 1
    done
    cp "$d/a.crt" "$d/a.chain"
    for ((i = INTERMEDIATES; i >= 1; i--)); do
        cat "$d/int$i.crt" >>"$d/a.chain"
    done
}

e2e_say "making an RSA 4096 PKI with $INTERMEDIATES intermediate CAs in $PKI"
make_pki "$PKI" || { e2e_say "FAIL: openssl could not make the PKI"; exit 1; }

# frag_count PCAP SRC: ISAKMP datagrams from SRC whose first payload is FRAG (132).
frag_count() {
    tshark -n -r "$1" -Y "isakmp && ip.src == $2" -T fields -E occurrence=f -e isakmp.nextpayload 2>/dev/null |
        awk '$1 == 132 { n++ } END { print n + 0 }'
}

# run_case INITIATOR(fv|ss) MODE(main|aggressive)
run_case() {
    local initiator="$1" mode="$2" start=initiate sw i aggr=no
    [ "$initiator" = ss ] && start=respond
    [ "$mode" = aggressive ] && aggr=yes
    FV_NO_IPV6=1 fv_two_ns
    sw="/etc/netns/$FV_NS_B/swanctl"
    mkdir -p "$sw/x509" "$sw/x509ca" "$sw/rsa"
    cp "$PKI/b.crt" "$sw/x509/b.crt"
    cp "$PKI/root.crt" "$sw/x509ca/root.crt"
    for ((i = 1; i <= INTERMEDIATES; i++)); do
        cp "$PKI/int$i.crt" "$sw/x509ca/int$i.crt"
    done
    cp "$PKI/b.key.trad" "$sw/rsa/b.key"
    e2e_ss_up "$(SS_SECRET='' SS_AUTH=pubkey SS_CERT=b.crt SS_AGGRESSIVE="$aggr" e2e_ss_conf)"

    # The capture runs from before the first message to after the last.
    local cap="$FV_TMP/veth.pcap"
    e2e_capture "$FV_NS_B" "$FV_IF_B" "$cap" "udp port 500 or udp port 4500"
    local cap_pid="$E2E_CAP_PID"

    SOCK_A="$FV_TMP/a.sock"
    C_SOCK="$SOCK_A" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE='' C_START="$start" C_MODE="$mode" \
        C_EXTRA="auth = \"certificate\"
cert_file = \"$PKI/a.chain\"
key_file = \"$PKI/a.key\"
ca_file = \"$PKI/root.crt\"
fragmentation = \"yes\"
fragment_size = 1280" \
        C_TUNNEL="$(e2e_route_based_facing_ss)" e2e_conf "$FV_TMP/a.toml"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/ferrovpn.log"
    PID_A="$E2E_PID"
    if [ "$initiator" = ss ]; then
        e2e_wait_udp "$FV_NS_A" 500 5 || fail "ferrovpn does not listen on UDP 500"
        fv_swanctl "$FV_NS_B" --initiate --child fv --timeout 30 >"$FV_TMP/initiate.log" 2>&1 ||
            { tail -n 20 "$FV_TMP/initiate.log" >&2; fail "swanctl --initiate failed"; }
    fi
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 30 || fail "ferrovpn: no IPsec SA within 30 s"
    e2e_ss_wait_installed "$FV_TMP/list-sas.txt"
    [ "$(e2e_q "$SOCK_A" 'ikes[0]["mode"]')" = "$mode" ] || fail "ferrovpn reports mode $(e2e_q "$SOCK_A" 'ikes[0]["mode"]')"
    local clog
    clog="$(fv_charon_dir "$FV_NS_B")/charon.log"
    grep -q "authentication of '192.0.2.1' with RSA_EMSA_PKCS1_NULL successful" "$clog" ||
        fail "charon's log does not show ferrovpn authenticated"
    ok "charon: $(grep -m1 -o "authentication of '192.0.2.1'.*" "$clog")"
    grep -q "reassembled fragmented IKE message" "$clog" ||
        fail "charon did not reassemble a fragmented message from ferrovpn"
    ok "charon: $(grep -m1 -o "received fragment #[0-9]*, reassembled fragmented IKE message.*" "$clog")"
    grep -q "splitting IKE message" "$clog" || fail "charon did not fragment its own message"
    ok "charon: $(grep -m1 -o "splitting IKE message.*" "$clog")"
    grep -q "received issuer cert \"C=XX, O=ferrovpn e2e, CN=Intermediate CA 1\"" "$clog" ||
        fail "charon did not receive ferrovpn's intermediates"
    ok "charon received ferrovpn's $INTERMEDIATES intermediate certificates"

    local sent reasm
    sent="$(e2e_q "$SOCK_A" 'd["counters"]["ike"]["fragments_sent"]')"
    reasm="$(e2e_q "$SOCK_A" 'd["counters"]["ike"]["fragments_reassembled"]')"
    [ "${sent:-0}" -ge 2 ] || fail "ferrovpn counts $sent fragments sent"
    [ "${reasm:-0}" -ge 1 ] || fail "ferrovpn counts $reasm messages reassembled"
    ok "ferrovpn status: fragments_sent=$sent fragments_reassembled=$reasm"

    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3
    e2e_transfer "$FV_NS_A" "$A_IN" "$FV_NS_B" "$B_IN" 2

    sleep 0.5
    fv_stop "$cap_pid"
    local from_fv from_ss
    from_fv="$(frag_count "$cap" 192.0.2.1)"
    from_ss="$(frag_count "$cap" 192.0.2.2)"
    [ "$from_fv" -ge 2 ] || fail "the wire shows $from_fv FRAG datagrams from ferrovpn"
    [ "$from_ss" -ge 2 ] || fail "the wire shows $from_ss FRAG datagrams from strongSwan"
    local biggest
    biggest="$(tshark -n -r "$cap" -Y "isakmp" -T fields -e ip.len 2>/dev/null | sort -n | tail -1)"
    [ "${biggest:-0}" -le 1280 ] || fail "an IKE datagram of $biggest bytes crossed (fragment_size 1280)"
    ok "wire: $from_fv FRAG datagrams from ferrovpn, $from_ss from strongSwan, none above 1280 bytes"

    # `decode` puts the fragments back together and names the messages they carried; the
    # fragments themselves do not count as messages (no MM7/AM4).
    "$FERROVPN" decode "$cap" >"$FV_TMP/decode.txt" 2>&1 || { cat "$FV_TMP/decode.txt" >&2; fail "ferrovpn decode failed"; }
    local whole_fv whole_ss
    whole_fv="$(grep -c " 192\.0\.2\.1:[0-9]* -> .*(reassembled from fragments in frames" "$FV_TMP/decode.txt" || true)"
    whole_ss="$(grep -c " 192\.0\.2\.2:[0-9]* -> .*(reassembled from fragments in frames" "$FV_TMP/decode.txt" || true)"
    [ "${whole_fv:-0}" -ge 1 ] && [ "${whole_ss:-0}" -ge 1 ] ||
        { cat "$FV_TMP/decode.txt" >&2; fail "decode reassembled $whole_fv messages from ferrovpn and $whole_ss from strongSwan"; }
    ! grep -Eq " (MM7|AM4) " "$FV_TMP/decode.txt" || { cat "$FV_TMP/decode.txt" >&2; fail "decode counted fragments as messages"; }
    ok "decode: $(grep -m1 -o "[MA]M[0-9] .*reassembled from fragments in frames [0-9, ]*" "$FV_TMP/decode.txt" | sed 's/ [0-9a-f]\{16\} .* (reassembled/ … (reassembled/')"

    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

CASES=(fv-main ss-main fv-aggressive ss-aggressive)
case_fv_main() { run_case fv main; }
case_ss_main() { run_case ss main; }
case_fv_aggressive() { run_case fv aggressive; }
case_ss_aggressive() { run_case ss aggressive; }
for c in ${E2E_CASES:-${CASES[*]}}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "fragmentation.sh"

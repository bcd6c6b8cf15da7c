#!/usr/bin/env bash
# ferrovpn ⇄ strongSwan 5.9 with certificates (issue 15): signature authentication with RSA 2048
# (auth method 3) and ECDSA P-256 (RFC 4754, method 9), Main Mode with ferrovpn and with
# strongSwan initiating, and Aggressive Mode once each way. Certificates are made here with openssl: one CA of the key type, a
# certificate per side with its outer address as subjectAltName (the IDs are the addresses).
# Each case: both sides report the SA, and pings cross the tunnel both ways. "wrong-ca":
# strongSwan's certificate is from a CA ferrovpn does not trust; ferrovpn must fail phase 1
# with the named reason (untrusted CA), install nothing, and `diagnose` says [untrusted-ca].
# PKI cases (pki_* functions below): "revoked": strongSwan's certificate is on a CRL in
# ferrovpn's crl_file: phase 1 fails as revoked (serial, issuer, date), `diagnose` says
# [revoked]; a new CRL without it is read without a restart and the tunnel comes up.
# "ss-wrong-ca": strongSwan does not trust ferrovpn's CA (its CR names another) and answers MM5
# with a protected AUTHENTICATION-FAILED: `diagnose` says [no-certificate-matches-cr], that
# the peer did not accept our certificate, with that notify as evidence.
# "cr-choice": charon trusts only another CA; ferrovpn's alt_certs holds a certificate from it,
# which charon's CR selects: the tunnel comes up. "ipv6-san": over IPv6, ECDSA certificates
# whose subjectAltNames are the IPv6 addresses, the IDs ID_IPV6_ADDR. fv-rsa also moves a checksummed 2 MiB.
# Layout as strongswan_interop.sh: ferrovpn in A (192.0.2.1, fv0 198.51.100.1), charon in B
# (192.0.2.2, 203.0.113.1 on lo).
# Needs root, strongSwan and openssl; skips otherwise (fails with CI=true).
# Env: FERROVPN_BIN, E2E_CASES (e.g. "fv-rsa ss-ecdsa fv-aggressive-ecdsa wrong-ca revoked").
# shellcheck disable=SC2031  # E2E_CASE is set in the per-case subshell that runs these functions
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "certs.sh needs network namespaces"
require_cmd_or_skip ip ping openssl swanctl python3 sha256sum "$FV_CHARON_BIN"
e2e_binary

A_IN=198.51.100.1
B_IN=203.0.113.1

# newkey KIND FILE: an RSA 2048 or P-256 key; PKCS#8 for ferrovpn, the traditional (PKCS#1 /
# SEC1) form in FILE.trad for charon's rsa/ and ecdsa/ directories.
newkey() {
    case "$1" in
        rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$2" 2>/dev/null
             openssl rsa -in "$2" -traditional -out "$2.trad" 2>/dev/null ;;
        ecdsa) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$2" 2>/dev/null
               openssl ec -in "$2" -out "$2.trad" 2>/dev/null ;;
    esac
    chmod 600 "$2" "$2.trad"
}

# make_pki KIND DIR CN: DIR/ca.crt (CA "CN") and DIR/a.crt, DIR/b.crt with their keys
# (subjectAltName IP:192.0.2.1 / IP:192.0.2.2, or $PKI_SAN_A / $PKI_SAN_B).
make_pki() {
    local kind="$1" d="$2" cn="$3" side ip
    mkdir -p "$d"
    cat >"$d/ext.cnf" <<X
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
[a]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
subjectAltName = ${PKI_SAN_A:-IP:192.0.2.1}
[b]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
subjectAltName = ${PKI_SAN_B:-IP:192.0.2.2}
X
    newkey "$kind" "$d/ca.key"
    openssl req -x509 -new -key "$d/ca.key" -subj "/C=XX/O=ferrovpn e2e/CN=$cn" -days 30 \
        -config "$d/ext.cnf" -extensions ca -out "$d/ca.crt" 2>/dev/null || fail "openssl: CA"
    for side in a b; do
        ip=192.0.2.1; [ "$side" = b ] && ip=192.0.2.2
        newkey "$kind" "$d/$side.key"
        openssl req -new -key "$d/$side.key" -subj "/C=XX/O=ferrovpn e2e/CN=$ip" -out "$d/$side.csr" 2>/dev/null
        openssl x509 -req -in "$d/$side.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -set_serial "$RANDOM" \
            -days 30 -extfile "$d/ext.cnf" -extensions "$side" -out "$d/$side.crt" 2>/dev/null ||
            fail "openssl: certificate $side"
    done
}

# run_case INITIATOR(fv|ss) KIND(rsa|ecdsa) MODE(main|aggressive) [wrong-ca]
run_case() {
    local initiator="$1" kind="$2" mode="$3" wrong="${4:-}" start=initiate sw aggr=no
    [ "$mode" = aggressive ] && aggr=yes
    [ "$initiator" = ss ] && start=respond
    FV_NO_IPV6=1 fv_two_ns
    make_pki "$kind" "$FV_TMP/pki" "Test CA"
    local ss_pki="$FV_TMP/pki"
    if [ -n "$wrong" ]; then
        make_pki "$kind" "$FV_TMP/rogue" "Rogue CA"
        ss_pki="$FV_TMP/rogue"
        # strongSwan trusts our CA, so only ferrovpn's check can fail.
    fi
    # charon's credentials: its certificate and key, and the CA that issued ferrovpn's.
    sw="/etc/netns/$FV_NS_B/swanctl"
    mkdir -p "$sw/x509" "$sw/x509ca" "$sw/$kind"
    cp "$ss_pki/b.crt" "$sw/x509/b.crt"
    cp "$FV_TMP/pki/ca.crt" "$sw/x509ca/ca.crt"
    cp "$ss_pki/b.key.trad" "$sw/$kind/b.key"
    e2e_ss_up "$(SS_SECRET='' SS_AUTH=pubkey SS_CERT=b.crt SS_AGGRESSIVE="$aggr" e2e_ss_conf)"

    SOCK_A="$FV_TMP/a.sock"
    C_SOCK="$SOCK_A" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE='' C_START="$start" C_MODE="$mode" \
        C_EXTRA="auth = \"certificate\"
cert_file = \"$FV_TMP/pki/a.crt\"
key_file = \"$FV_TMP/pki/a.key\"
ca_file = \"$FV_TMP/pki/ca.crt\"" \
        C_TUNNEL="$(e2e_route_based_facing_ss)" e2e_conf "$FV_TMP/a.toml"
    "$FERROVPN" check -c "$FV_TMP/a.toml" 2>&1 | grep -E 'phase 1|certificate' | sed 's/^/  check: /' >&2
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/ferrovpn.log"
    PID_A="$E2E_PID"
    if [ "$initiator" = ss ]; then
        e2e_wait_udp "$FV_NS_A" 500 5 || fail "ferrovpn does not listen on UDP 500"
        fv_swanctl "$FV_NS_B" --initiate --child fv --timeout 20 >"$FV_TMP/initiate.log" 2>&1 ||
            [ -n "$wrong" ] || { tail -n 20 "$FV_TMP/initiate.log" >&2; fail "swanctl --initiate failed"; }
    fi
    local clog
    clog="$(fv_charon_dir "$FV_NS_B")/charon.log"
    if [ -n "$wrong" ]; then
        e2e_wait_log "$FV_TMP/ferrovpn.log" 'untrusted CA' 20 ||
            fail "ferrovpn did not name the untrusted CA"
        ok "ferrovpn: $(grep -i -m1 -o 'certificate authentication failed[^"]*"[^"]*"' "$FV_TMP/ferrovpn.log" | head -1)"
        [ "$(e2e_q "$SOCK_A" 'len(sas)')" = 0 ] || fail "ferrovpn installed an SA with an untrusted peer"
        ok "no SA installed"
        local out=""
        for ((i = 0; i < 10; i++)); do
            out="$("$FERROVPN" diagnose --socket "$SOCK_A" 2>&1)" || true
            grep -qF "[untrusted-ca]" <<<"$out" && break
            sleep 0.5
        done
        grep -qF "[untrusted-ca]" <<<"$out" || { printf '%s\n' "$out" >&2; fail "diagnose does not name [untrusted-ca]"; }
        ok "diagnose: $(grep -m1 -F "[untrusted-ca]" <<<"$out")"
        return 0
    fi
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "ferrovpn: no IPsec SA within 20 s"
    e2e_ss_wait_installed "$FV_TMP/list-sas.txt"
    [ "$(e2e_q "$SOCK_A" 'ikes[0]["mode"]')" = "$mode" ] || fail "ferrovpn reports mode $(e2e_q "$SOCK_A" 'ikes[0]["mode"]')"
    local want=RSA_EMSA_PKCS1_NULL
    [ "$kind" = ecdsa ] && want=ECDSA_WITH_NULL
    grep -q "authentication of '192.0.2.1' with $want successful" "$clog" ||
        fail "charon's log does not show ferrovpn authenticated with $want"
    ok "charon: $(grep -m1 -o "authentication of '192.0.2.1'.*" "$clog")"
    ok "charon: $(grep -m1 -o "received end entity cert.*" "$clog" || true)"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3
    if [ "$initiator-$kind-$mode" = fv-rsa-main ]; then
        e2e_transfer "$FV_NS_A" "$A_IN" "$FV_NS_B" "$B_IN" 2
    fi
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

# ---- PKI cases (issue 15: revocation, strongSwan refusing our certificate) ----

# pki_crl DIR OUT [CERT]: a v2 CRL of DIR's CA in OUT, revoking CERT when given.
pki_crl() {
    local d="$1" out="$2" cert="${3:-}" db
    db="$(mktemp -d "$FV_TMP/crldb.XXXXXX")"
    : >"$db/index.txt"
    echo 01 >"$db/crlnumber"
    printf '[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\ncrlnumber = %s/crlnumber\ndefault_md = sha256\n' \
        "$db" "$db" >"$db/ca.cnf"
    if [ -n "$cert" ]; then
        openssl ca -config "$db/ca.cnf" -cert "$d/ca.crt" -keyfile "$d/ca.key" -revoke "$cert" \
            -crl_reason keyCompromise 2>/dev/null || fail "openssl: revoke $cert"
    fi
    openssl ca -config "$db/ca.cnf" -cert "$d/ca.crt" -keyfile "$d/ca.key" -gencrl -crldays 7 \
        -out "$out.tmp" 2>/dev/null || fail "openssl: CRL"
    mv "$out.tmp" "$out"
    rm -rf "$db"
}

# pki_start SS_TRUSTS [CRL_DIR] [EXTRA]: charon (B) with b.crt of $FV_TMP/pki, trusting
# SS_TRUSTS/ca.crt; ferrovpn (A) initiating with a.crt, trusting $FV_TMP/pki/ca.crt,
# crl_file = CRL_DIR if given, EXTRA connection lines; outer addresses $PKI_LA / $PKI_LB
# (default 192.0.2.1 / 192.0.2.2, also the IDs).
pki_start() {
    local ss_trusts="$1" crl="${2:-}" sw extra
    sw="/etc/netns/$FV_NS_B/swanctl"
    mkdir -p "$sw/x509" "$sw/x509ca" "$sw/${PKI_KEYDIR:-rsa}"
    cp "$FV_TMP/pki/b.crt" "$sw/x509/b.crt"
    cp "$ss_trusts/ca.crt" "$sw/x509ca/ca.crt"
    cp "$FV_TMP/pki/b.key.trad" "$sw/${PKI_KEYDIR:-rsa}/b.key"
    local la="${PKI_LA:-192.0.2.1}" lb="${PKI_LB:-192.0.2.2}"
    e2e_ss_up "$(SS_SECRET='' SS_AUTH=pubkey SS_CERT=b.crt SS_ADDR_A="$la" SS_ADDR_B="$lb" e2e_ss_conf)"
    extra="auth = \"certificate\"
cert_file = \"$FV_TMP/pki/a.crt\"
key_file = \"$FV_TMP/pki/a.key\"
ca_file = \"$FV_TMP/pki/ca.crt\""
    [ -z "$crl" ] || extra+="
crl_file = \"$crl\""
    [ -z "${3:-}" ] || extra+="
$3"
    SOCK_A="$FV_TMP/a.sock"
    C_SOCK="$SOCK_A" C_LOCAL="$la" C_REMOTE="$lb" C_PSKFILE='' C_START=initiate \
        C_EXTRA="$extra" C_TUNNEL="$(e2e_route_based_facing_ss)" e2e_conf "$FV_TMP/a.toml"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/ferrovpn.log"
    PID_A="$E2E_PID"
}

# pki_diagnose CODE: waits for `diagnose` to name [CODE]; its output in $PKI_DIAG.
pki_diagnose() {
    local i
    PKI_DIAG=""
    for ((i = 0; i < 20; i++)); do
        PKI_DIAG="$("$FERROVPN" diagnose --socket "$SOCK_A" 2>&1)" || true
        grep -qF "[$1]" <<<"$PKI_DIAG" && return 0
        sleep 0.5
    done
    printf '%s\n' "$PKI_DIAG" >&2
    fail "diagnose does not name [$1]"
}

pki_revoked() {
    FV_NO_IPV6=1 fv_two_ns
    make_pki rsa "$FV_TMP/pki" "Test CA"
    mkdir -p "$FV_TMP/crl"
    pki_crl "$FV_TMP/pki" "$FV_TMP/crl/ca.crl" "$FV_TMP/pki/b.crt"
    pki_start "$FV_TMP/pki" "$FV_TMP/crl"
    e2e_wait_log "$FV_TMP/ferrovpn.log" 'revoked by' 20 || fail "ferrovpn did not refuse the revoked certificate"
    ok "ferrovpn: $(grep -m1 -o 'certificate "[^"]*" (serial [^)]*) revoked by "[^"]*"' "$FV_TMP/ferrovpn.log")"
    [ "$(e2e_q "$SOCK_A" 'len(sas)')" = 0 ] || fail "ferrovpn installed an SA with a revoked peer"
    ok "no SA installed"
    pki_diagnose revoked
    grep -q "serial" <<<"$PKI_DIAG" || { printf '%s\n' "$PKI_DIAG" >&2; fail "diagnose shows no serial"; }
    ok "diagnose: $(grep -m1 -F "[revoked]" <<<"$PKI_DIAG")"
    # The CA publishes a CRL without strongSwan's certificate: read again, no restart.
    sleep 1.1
    pki_crl "$FV_TMP/pki" "$FV_TMP/crl/ca.crl"
    "$FERROVPN" initiate --socket "$SOCK_A" --timeout 20s e2e >"$FV_TMP/initiate.out" 2>&1 ||
        { cat "$FV_TMP/initiate.out" >&2; fail "ferrovpn initiate after the new CRL failed"; }
    e2e_wait_log "$FV_TMP/ferrovpn.log" 'crl_file .* changed: 1 CRLs in use' 5 ||
        fail "ferrovpn did not log reading the new CRL"
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "ferrovpn: no IPsec SA after the new CRL"
    ok "new CRL read without a restart: $(grep -m1 -o 'crl_file .* changed: 1 CRLs in use' "$FV_TMP/ferrovpn.log")"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

pki_ss_wrong_ca() {
    FV_NO_IPV6=1 fv_two_ns
    make_pki rsa "$FV_TMP/pki" "Test CA"
    make_pki rsa "$FV_TMP/rogue" "Rogue CA"
    # strongSwan trusts only the rogue CA: it cannot verify our certificate; we trust its own.
    pki_start "$FV_TMP/rogue"
    local clog
    clog="$(fv_charon_dir "$FV_NS_B")/charon.log"
    e2e_wait_log "$clog" 'no trusted RSA public key found|constraint check failed|no issuer certificate found' 20 ||
        fail "charon did not refuse our certificate"
    ok "charon: $(grep -m1 -E -o '(no trusted RSA public key found|no issuer certificate found|constraint check failed).*' "$clog")"
    # charon's CR named the rogue CA and ferrovpn has no certificate from it: the diagnosis
    # names that, and that the peer did not accept our certificate.
    grep -q "no certificate matches the peer's CR" "$FV_TMP/ferrovpn.log" ||
        fail "ferrovpn did not log that no certificate matches charon's CR"
    pki_diagnose no-certificate-matches-cr
    grep -q "the peer did not accept our certificate" <<<"$PKI_DIAG" ||
        { printf '%s\n' "$PKI_DIAG" >&2; fail "diagnose does not say the peer did not accept our certificate"; }
    ok "diagnose: $(grep -m1 -F "[no-certificate-matches-cr]" <<<"$PKI_DIAG")"
    # charon answers MM5 with AUTHENTICATION-FAILED in an INFORMATIONAL protected with the
    # phase 1 keys (HASH(1)): the evidence says so.
    grep -q "AUTHENTICATION-FAILED from 192.0.2.2 .* protected with the phase 1 keys" <<<"$PKI_DIAG" ||
        { printf '%s\n' "$PKI_DIAG" >&2; fail "diagnose does not show charon's protected AUTHENTICATION-FAILED"; }
    ok "diagnose evidence: $(grep -m1 -o "AUTHENTICATION-FAILED from 192.0.2.2 .* phase 1 keys" <<<"$PKI_DIAG")"
    [ "$(e2e_q "$SOCK_A" 'len(sas)')" = 0 ] || fail "an SA was installed although charon refused us"
    fv_stop "$PID_A"
    fv_charon_stop "$FV_NS_B"
}

pki_cr_choice() {
    FV_NO_IPV6=1 fv_two_ns
    make_pki rsa "$FV_TMP/pki" "Test CA"
    make_pki rsa "$FV_TMP/rogue" "Rogue CA"
    # charon trusts only the rogue CA; ferrovpn's second certificate (alt_certs) is the rogue
    # CA's "a": charon's CR names the rogue CA, so that is the one ferrovpn must send.
    pki_start "$FV_TMP/rogue" "" "alt_certs = [{ cert_file = \"$FV_TMP/rogue/a.crt\", key_file = \"$FV_TMP/rogue/a.key\" }]"
    local clog
    clog="$(fv_charon_dir "$FV_NS_B")/charon.log"
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "ferrovpn: no IPsec SA within 20 s"
    grep -q "sending cert request for \"C=XX, O=ferrovpn e2e, CN=Rogue CA\"" "$clog" ||
        fail "charon's log does not show its CR for the rogue CA"
    ok "charon: $(grep -m1 -o 'sending cert request for .*' "$clog")"
    grep -q 'using trusted ca certificate "C=XX, O=ferrovpn e2e, CN=Rogue CA"' "$clog" ||
        fail "charon did not validate ferrovpn's certificate with the rogue CA"
    ok "charon: $(grep -m1 -o 'using trusted ca certificate .*' "$clog")"
    if grep -q "no certificate matches the peer's CR" "$FV_TMP/ferrovpn.log"; then
        fail "ferrovpn logged an unmatched CR although alt_certs answers it"
    fi
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

pki_ipv6_san() {
    local la=2001:db8:ff::1 lb=2001:db8:ff::2 i
    FV_OUTER_A="$la/64" FV_OUTER_B="$lb/64" fv_two_ns
    for ((i = 0; i < 50; i++)); do
        [ -z "$(ip -n "$FV_NS_A" -6 addr show tentative; ip -n "$FV_NS_B" -6 addr show tentative)" ] && break
        sleep 0.1
    done
    PKI_SAN_A="IP:$la" PKI_SAN_B="IP:$lb" make_pki ecdsa "$FV_TMP/pki" "Test CA"
    # ECDSA P-256 (charon reads its key from ecdsa/), IDs and subjectAltNames the IPv6 addresses.
    PKI_LA="$la" PKI_LB="$lb" PKI_KEYDIR=ecdsa pki_start "$FV_TMP/pki"
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "ferrovpn: no IPsec SA over IPv6 within 20 s"
    local clog
    clog="$(fv_charon_dir "$FV_NS_B")/charon.log"
    grep -q "authentication of '$la' with ECDSA_WITH_NULL successful" "$clog" ||
        fail "charon's log does not show ferrovpn authenticated as $la (ID_IPV6_ADDR)"
    ok "charon: $(grep -m1 -o "authentication of '$la'.*" "$clog")"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_down "$SOCK_A" "$PID_A" "$FV_NS_A" fv0
    fv_charon_stop "$FV_NS_B"
}

CASES=(fv-rsa ss-rsa fv-ecdsa ss-ecdsa fv-aggressive-ecdsa ss-aggressive-rsa wrong-ca revoked ss-wrong-ca cr-choice ipv6-san)
case_fv_rsa() { run_case fv rsa main; }
case_ss_rsa() { run_case ss rsa main; }
case_fv_ecdsa() { run_case fv ecdsa main; }
case_ss_ecdsa() { run_case ss ecdsa main; }
case_fv_aggressive_ecdsa() { run_case fv ecdsa aggressive; }
case_ss_aggressive_rsa() { run_case ss rsa aggressive; }
case_wrong_ca() { run_case fv rsa main wrong-ca; }
case_revoked() { pki_revoked; }
case_ss_wrong_ca() { pki_ss_wrong_ca; }
case_cr_choice() { pki_cr_choice; }
case_ipv6_san() { pki_ipv6_san; }
for c in ${E2E_CASES:-${CASES[*]}}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "certs.sh"

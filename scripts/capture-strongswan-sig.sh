#!/usr/bin/env bash
# Records one RSA-signature Main Mode exchange (aes256-sha256-modp2048), ferrovpn initiating
# and strongSwan 5.9 responding, as the known-answer fixture of tests/strongswan_sig_kat.rs:
# strongSwan's certificate and (test-only) key, and from charon's log at ike = 4, enc = 4:
# SKEYID, HASH_R, the data HASH_R covers, and the SIG payload data charon generated for MM6.
# Output: tests/data/strongswan-sig/ (keys.txt, strongswan.crt, strongswan.key).
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"
. <(sed -n '/^newkey()/,/^}/p; /^make_pki()/,/^}/p' "$E2E_ROOT/tests/e2e/certs.sh")
require_root_or_skip "capture-strongswan-sig.sh needs network namespaces"
require_cmd_or_skip ip openssl swanctl python3 "$FV_CHARON_BIN"
e2e_binary
OUT="${CAPTURE_OUT:-$E2E_ROOT/tests/data/strongswan-sig}"
A_IN=198.51.100.1
B_IN=203.0.113.1
E2E_CASE=capture

fv_init
FV_NO_IPV6=1 fv_two_ns
make_pki rsa "$FV_TMP/pki" "Test CA"
sw="/etc/netns/$FV_NS_B/swanctl"
mkdir -p "$sw/x509" "$sw/x509ca" "$sw/rsa"
cp "$FV_TMP/pki/b.crt" "$sw/x509/b.crt"
cp "$FV_TMP/pki/ca.crt" "$sw/x509ca/ca.crt"
cp "$FV_TMP/pki/b.key.trad" "$sw/rsa/b.key"
e2e_ss_up "$(SS_SECRET='' SS_AUTH=pubkey SS_CERT=b.crt e2e_ss_conf)" "" "default = 1
            ike = 4
            enc = 4
            cfg = 1"
SOCK_A="$FV_TMP/a.sock"
C_SOCK="$SOCK_A" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE='' C_START=initiate C_EXTRA="auth = \"certificate\"
cert_file = \"$FV_TMP/pki/a.crt\"
key_file = \"$FV_TMP/pki/a.key\"
ca_file = \"$FV_TMP/pki/ca.crt\"" C_TUNNEL="$(e2e_route_based_facing_ss)" e2e_conf "$FV_TMP/a.toml"
e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/ferrovpn.log"
e2e_wait_sas "$SOCK_A" "$E2E_PID" 1 20 || fail "no SA"
mkdir -p "$OUT"
cp "$FV_TMP/pki/b.crt" "$OUT/strongswan.crt"
cp "$FV_TMP/pki/b.key" "$OUT/strongswan.key"
# The hex dumps after charon's "SKEYID =>", "HASH_R data =>", "HASH_R =>" lines and after the
# CHUNK_DATA rule of the SIGNATURE_V1 payload it generated.
python3 - "$(fv_charon_dir "$FV_NS_B")/charon.log" >"$OUT/keys.txt" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
hexline = re.compile(r'\]\s(?:<[^>]*>\s)?\s*\d+: ((?:[0-9A-F]{2} ){1,16})')
def dump_after(i):
    out = []
    for l in lines[i + 1:]:
        m = hexline.search(l)
        if not m:
            break
        out.append(m.group(1).replace(' ', ''))
    return ''.join(out).lower()
keys = {}
for i, l in enumerate(lines):
    for name, pat in [('skeyid', 'SKEYID =>'), ('hash_r_data', 'HASH_R data =>'), ('hash_r', 'HASH_R =>')]:
        if name not in keys and re.search(r'\] (?:<[^>]*> )?' + re.escape(pat), l):
            keys[name] = dump_after(i)
    if 'sig_r' not in keys and 'generating payload of type SIGNATURE_V1' in l:
        for j in range(i, min(i + 20, len(lines))):
            if 'generating rule 3 CHUNK_DATA' in lines[j]:
                keys['sig_r'] = dump_after(j + 1)
                break
for k in ['skeyid', 'hash_r_data', 'hash_r', 'sig_r']:
    print(f'{k} = {keys[k]}')
PY
fv_stop "$E2E_PID"
echo "capture-strongswan-sig.sh: wrote $OUT" >&2

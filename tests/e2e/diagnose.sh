#!/usr/bin/env bash
# `ferrovpn diagnose` against real faults: two ferrovpn daemons in a pair of network namespaces
# per case (outer 192.0.2.1 ⇄ 192.0.2.2, inner 198.51.100.1 ⇄ 203.0.113.1), the fault made with
# nftables inside the namespaces or with the configuration, and the verdict text asserted:
#   unreachable      B drops UDP 500: A says no reply to MM1 (exit 1)
#   oneway-500       B drops its own outgoing UDP 500: A says no reply to MM1, B says its MM2
#                    does not reach A (one-way blocking)
#   udp4500          nat_traversal = "force" on both, B drops UDP 4500: A says UDP 4500 blocked
#                    after the float, B says the peer's MM5 never arrived
#   no-proposal      different IKE proposals: both show the offers (B both side by side)
#   wrong-psk        different PSKs: both say pre-shared key mismatch
#   identity         A expects another remote_id: identity mismatch naming both identities
#   selectors        policy-based pairs that do not mirror: INVALID-ID-INFORMATION, both sets
#   esp-in-a         A drops IP protocol 50 inbound, pings both ways: A says ESP not arriving
#                    (suggests nat_traversal = "force"), B is healthy
#   esp-in-b         the mirror: B drops protocol 50 inbound: B says so, A is healthy
#   dpd              B killed with SIGKILL: A says DPD declared the peer dead
#   simultaneous     both sides start = "initiate" at once: simultaneous negotiations
#   expired          esp_lifetime 20s, UDP 500 dropped on A after the tunnel is up: the rekey
#                    fails and A says the IPsec SA expired without rekey (the slow one, ~30 s)
#   healthy          a working tunnel: exit 0 and "healthy" on both sides; history shows
#                    MM1…QM3 with cookies; status shows identities and counter lines, --watch
#                    redraws; no daemon: exit 2
#   spoofed          a working tunnel, then MM1s and zero-length datagrams claiming the peer's
#                    address (sent from its namespace) to both sides: still healthy (exit 0),
#                    with the note "... unauthenticated Phase 1 requests ... possibly spoofed"
# Against strongSwan 5.9 (charon + kernel-libipsec in B, which floats IKE to UDP 4500):
#   ss-wrong-psk     ferrovpn initiates with another PSK: charon cannot decrypt MM5 and stays
#                    silent; the UDP 4500 probe is answered, so psk-mismatch (not
#                    udp4500-blocked) in diagnose, the ERROR log line, last_failure and history
#   ss-esp-mismatch  ferrovpn initiates, ESP proposals differ: charon's protected
#                    NO-PROPOSAL-CHOSEN ends the Quick Mode at once (QM1 never retransmitted)
#   ss-chacha        charon initiates with esp = chacha20poly1305 (a QM1 proposal without
#                    transforms, resent every second): named (unprocessable, WARN line),
#                    answered with BAD-PROPOSAL-SYNTAX, and DPD sends no R-U-THERE meanwhile
#   ss-xauth         a charon client with an XAuth round initiates: remote access named
# Cases run in parallel (each owns its namespaces); the whole script takes about 40 s.
# Needs root, nft and strongSwan; skips with a reason otherwise (fails with CI=true).
# Env: FERROVPN_BIN (binary to test), E2E_CASES (space-separated subset of the names above).
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "diagnose.sh needs network namespaces"
require_cmd_or_skip ip ping python3 nft swanctl "$FV_CHARON_BIN"
e2e_binary

A_IN=198.51.100.1
B_IN=203.0.113.1
ESP_WINDOW=4s

# Namespaces named after this case's subshell (cases run in parallel) and both PSK files.
setup() {
    FV_ID="fv$(printf '%x' "$BASHPID")d"
    FV_NO_IPV6=1 fv_two_ns
    e2e_psk "$FV_TMP/a.psk" "${PSK_A:-e2e-diagnose-secret}"
    e2e_psk "$FV_TMP/b.psk" "${PSK_B:-e2e-diagnose-secret}"
}

# conf SIDE START [CONNECTION LINES] [TUNNEL TABLE]: a config with fast retransmissions
# (1 s apart, 2 retransmissions: an exchange fails after 3 s).
conf() {
    local side="$1" start="$2" extra="${3:-}" tunnel="${4:-}" l r in routes
    if [ "$side" = a ]; then
        l=192.0.2.1 r=192.0.2.2 in="$A_IN" routes=203.0.113.0/24
    else
        l=192.0.2.2 r=192.0.2.1 in="$B_IN" routes=198.51.100.0/24
    fi
    [ -n "$tunnel" ] || tunnel="[connection.route_based]
interface = \"fv0\"
address = \"$in/32\"
routes = [\"$routes\"]"
    cat >"$FV_TMP/$side.toml" <<EOF
[daemon]
control_socket = "$FV_TMP/$side.sock"
workers = 1
retransmit_timeout = "1s"
retransmit_base = 1.0
retransmit_tries = 2

[[connection]]
name = "e2e"
local_addr = "$l"
remote_addr = "$r"
psk_file = "$FV_TMP/$side.psk"
start = "$start"
$extra

$tunnel
EOF
}

up() {
    local side="$1" ns="$FV_NS_A"
    [ "$side" = b ] && ns="$FV_NS_B"
    e2e_up "$ns" "$FV_TMP/$side.toml" "$FV_TMP/daemon-$side.log"
    eval "PID_${side^^}=$E2E_PID"
}

# nft_drop NS INPUT_RULES [OUTPUT_RULES]: a filter table in NS dropping what the rules say
# (several rules separated by ';').
nft_drop() {
    local ns="$1" in="$2" out="${3:-}"
    ip netns exec "$ns" nft -f - <<EOF || fail "nft refused the rules for $ns"
table inet diag {
    chain input {
        type filter hook input priority 0; policy accept;
        $in
    }
    chain output {
        type filter hook output priority 0; policy accept;
        $out
    }
}
EOF
}

# pings NS SRC DST SECONDS: echo requests every 0.2 s in the background.
pings() {
    FV_SPAWN_LOG="$FV_TMP/ping-$2.log" fv_spawn "$1" ping -q -n -i 0.2 -w "$4" -I "$2" "$3"
}

# expect SIDE CODE EXIT SECONDS [TEXT...]: runs `ferrovpn diagnose` on SIDE until a verdict
# tagged [CODE] appears (at most SECONDS), then checks its exit status and that each TEXT is in
# the output.
expect() {
    local side="$1" code="$2" want_rc="$3" secs="$4" out rc i t
    shift 4
    for ((i = 0; i < secs * 2; i++)); do
        rc=0
        out="$("$FERROVPN" diagnose --esp-window "$ESP_WINDOW" --socket "$FV_TMP/$side.sock" 2>&1)" || rc=$?
        grep -qF "[$code]" <<<"$out" && break
        sleep 0.5
    done
    if ! grep -qF "[$code]" <<<"$out"; then
        printf '%s\n' "$out" >&2
        fail "side $side: no [$code] verdict within ${secs}s"
    fi
    if [ "$rc" != "$want_rc" ]; then
        printf '%s\n' "$out" >&2
        fail "side $side: diagnose exited $rc, expected $want_rc"
    fi
    for t in "$@"; do
        if ! grep -qF -- "$t" <<<"$out"; then
            printf '%s\n' "$out" >&2
            fail "side $side: [$code] verdict lacks '$t'"
        fi
    done
    ok "side $side (exit $rc): $(grep -F "[$code]" <<<"$out" | head -1)"
    printf '%s\n' "$out" | grep -E '^    (evidence|next)' | head -4 | sed 's/^/     /' >&2
}

wait_up() {
    e2e_wait_sas "$FV_TMP/a.sock" "$PID_A" 1 15 || fail "side A: no IPsec SA within 15 s"
    e2e_wait_sas "$FV_TMP/b.sock" "$PID_B" 1 15 || fail "side B: no IPsec SA within 15 s"
    ok "tunnel up"
}

case_unreachable() {
    setup
    nft_drop "$FV_NS_B" "udp dport 500 drop"
    conf a initiate
    conf b respond
    up b
    up a
    expect a unreachable 1 15 "no reply to MM1 from 192.0.2.2" "UDP 500 is blocked" "sent 3 times" \
        "nothing at all has been received from the peer"
    local h
    h="$("$FERROVPN" history e2e --since 1m --socket "$FV_TMP/a.sock")"
    grep -Eq 'sent +MM1 +\(retransmit\).*_i 0000000000000000_r' <<<"$h" ||
        { printf '%s\n' "$h" >&2; fail "history lacks the retransmitted MM1 with its cookies"; }
    grep -q 'IKE SA FAILED: no response to MM1 after 2 retransmissions' <<<"$h" ||
        { printf '%s\n' "$h" >&2; fail "history lacks the failure"; }
    ok "history: $(grep -c MM1 <<<"$h") MM1 lines, failure recorded"
}

# The seed guide's one-way case: MM1 reaches B, B's MM2 never reaches A.
case_oneway_500() {
    setup
    nft_drop "$FV_NS_B" "" "udp sport 500 drop"
    conf a initiate
    conf b respond
    up b
    up a
    expect a unreachable 1 15 "no reply to MM1 from 192.0.2.2"
    expect b stalled 1 10 "the peer's MM3 never arrived" "UDP 500 is blocked from here to 192.0.2.1 (one-way)" \
        "MM1 received"
}

case_udp4500() {
    setup
    nft_drop "$FV_NS_B" "udp dport 4500 drop"
    conf a initiate 'nat_traversal = "force"'
    conf b respond 'nat_traversal = "force"'
    up b
    up a
    expect a udp4500-blocked 1 15 "UDP 4500 is blocked between here and 192.0.2.2" \
        "received MM4 on UDP 500" "sent MM5 on UDP 4500"
    expect b stalled 1 10 "the peer's MM5 never arrived" "UDP 4500"
}

case_no_proposal() {
    setup
    conf a initiate 'ike = "aes128-sha1-modp2048"'
    conf b respond 'ike = "aes256-sha256-modp2048"'
    up b
    up a
    expect b no-proposal-chosen 1 10 "no phase 1 (IKE) proposal in common" \
        "ours:   aes256-sha256-modp2048" "peer's: " "aes128"
    expect a no-proposal-chosen 1 10 "ours:   aes128-sha1-modp2048" "peer's: not known here" \
        "rests on unauthenticated messages"
    # B's answer is a plain notify: recorded, it does not end A's negotiation; the failure
    # after the retransmissions names it as what it is.
    e2e_wait_log "$FV_TMP/daemon-a.log" 'ERROR.*no response to MM1 after 2 retransmissions; the only answer was an unauthenticated NO-PROPOSAL-CHOSEN' 10 ||
        fail "A's ERROR line does not name the unauthenticated NO-PROPOSAL-CHOSEN"
    ok "A: the plain notify recorded, the failure line names it"
}

case_wrong_psk() {
    PSK_B=not-the-same-secret setup
    conf a initiate
    conf b respond
    up b
    up a
    expect b psk-mismatch 1 10 "pre-shared key mismatch" "MM5"
    expect a psk-mismatch 1 10 "pre-shared key mismatch"
}

case_identity() {
    setup
    conf a initiate 'remote_id = "fqdn:not-the-peer.example"'
    conf b respond
    up b
    up a
    expect a identity-mismatch 1 10 "the peer authenticated as 192.0.2.2" \
        "not-the-peer.example"
}

case_selectors() {
    setup
    fv_add_inner "$FV_NS_A" "$A_IN/32"
    fv_add_inner "$FV_NS_B" "$B_IN/32"
    conf a initiate "" '[connection.policy_based]
pairs = [{ local = "198.51.100.0/24", remote = "203.0.113.0/24" }]'
    conf b respond "" '[connection.policy_based]
pairs = [{ local = "203.0.113.0/25", remote = "198.51.100.0/24" }]'
    up b
    up a
    expect b selectors-refused 1 10 "INVALID-ID-INFORMATION" \
        "ours:   203.0.113.0/25" "peer's: " "203.0.113.0/24"
    expect a selectors-refused 1 10 "ours:   198.51.100.0/24 <=> 203.0.113.0/24"
}

# esp_one_way BLOCKED_SIDE OTHER_SIDE: protocol 50 dropped inbound on one side only.
esp_one_way() {
    local blocked="$1" other="$2" ns
    setup
    conf a initiate
    conf b respond
    up b
    up a
    wait_up
    ns="$FV_NS_A"
    [ "$blocked" = b ] && ns="$FV_NS_B"
    nft_drop "$ns" "meta l4proto esp drop"
    pings "$FV_NS_A" "$A_IN" "$B_IN" 15
    pings "$FV_NS_B" "$B_IN" "$A_IN" 15
    expect "$blocked" esp-not-arriving 1 15 "ESP (IP protocol 50) from" "is not arriving" \
        'nat_traversal = "force"' "run ferrovpn diagnose on the peer"
    expect "$other" healthy 0 5 "healthy: tunnel to"
}

case_esp_in_a() { esp_one_way a b; }
case_esp_in_b() { esp_one_way b a; }

case_dpd() {
    setup
    conf a initiate 'dpd_interval = "1s"
dpd_timeout = "3s"'
    conf b respond 'dpd_interval = "1s"
dpd_timeout = "3s"'
    up b
    up a
    wait_up
    kill -9 "$PID_B"
    ok "side B killed with SIGKILL"
    expect a peer-dead 1 20 "dead peer detection declared 192.0.2.2 dead" "R-U-THERE" \
        "last message received from the peer"
}

case_simultaneous() {
    setup
    conf a initiate
    conf b initiate
    up b
    up a
    expect a simultaneous 1 15 "simultaneous negotiations" "we sent MM1/AM1 with cookies" \
        "the peer sent MM1/AM1 with cookies" 'start = "respond"'
    expect b simultaneous 1 5 "simultaneous negotiations"
}

case_expired() {
    setup
    conf a initiate 'esp_lifetime = "20s"
ike_lifetime = "10m"
dpd_interval = "0s"'
    conf b respond 'esp_lifetime = "20s"
ike_lifetime = "10m"
dpd_interval = "0s"'
    up b
    up a
    wait_up
    nft_drop "$FV_NS_A" "udp dport 500 drop; udp sport 500 drop" "udp dport 500 drop; udp sport 500 drop"
    ok "UDP 500 dropped both ways on A; waiting for the rekey (at 10 s) and the expiry (at 20 s)"
    expect a expired-without-rekey 1 40 "expired without being rekeyed" "rekey attempt failed" \
        "no response to QM1"
}

case_healthy() {
    setup
    conf a initiate
    conf b respond
    up b
    up a
    wait_up
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3
    expect a healthy 0 5 "healthy: tunnel to 192.0.2.2 is up with 1 IPsec SA pair(s)"
    expect b healthy 0 5 "healthy: tunnel to 192.0.2.1"
    local out rc=0 n
    out="$("$FERROVPN" diagnose e2e --json --socket "$FV_TMP/a.sock")" || rc=$?
    [ "$rc" = 0 ] || fail "diagnose --json exited $rc"
    [ "$(python3 -c 'import json,sys; v=json.load(sys.stdin); print(v[0]["code"], v[0]["severity"])' <<<"$out")" = "healthy ok" ] ||
        { printf '%s\n' "$out" >&2; fail "diagnose --json"; }
    ok "diagnose --json: healthy ok"
    out="$("$FERROVPN" history --since 1m --socket "$FV_TMP/a.sock")"
    for n in MM1 MM2 MM3 MM4 MM5 MM6 QM1 QM2 QM3; do
        grep -Eq "(sent|received) +$n .*_i [0-9a-f]{16}_r mid" <<<"$out" ||
            { printf '%s\n' "$out" >&2; fail "history lacks $n with cookies"; }
    done
    grep -q "IPsec SA up" <<<"$out" || fail "history lacks the IPsec SA"
    ok "history: MM1-MM6 and QM1-QM3 with cookies and message IDs"
    out="$("$FERROVPN" status --socket "$FV_TMP/a.sock")"
    grep -q "identities: local 192.0.2.1, remote 192.0.2.2" <<<"$out" ||
        { printf '%s\n' "$out" >&2; fail "status does not show the identities"; }
    { grep -Eq '^  IKE  .*received [0-9]+' <<<"$out" && ! grep -q '^counters: {' <<<"$out"; } ||
        { printf '%s\n' "$out" >&2; fail "status prints counters as raw JSON"; }
    ok "status: identities and counters as lines"
    out="$("$FERROVPN" status --watch --interval 1s --count 2 --socket "$FV_TMP/a.sock")"
    [ "$(grep -c 'connection e2e' <<<"$out")" = 2 ] || { printf '%s\n' "$out" >&2; fail "status --watch did not redraw twice"; }
    ok "status --watch redrew the table twice"
    rc=0
    "$FERROVPN" diagnose --socket "$FV_TMP/nonexistent.sock" >/dev/null 2>&1 || rc=$?
    [ "$rc" = 2 ] || fail "diagnose without a daemon exited $rc, expected 2"
    rc=0
    "$FERROVPN" diagnose no-such-conn --socket "$FV_TMP/a.sock" >/dev/null 2>&1 || rc=$?
    [ "$rc" = 1 ] || fail "diagnose of an unknown connection exited $rc, expected 1"
    ok "no daemon: exit 2; unknown connection: exit 1"
}

# The issue's spoofing: MM1s and empty datagrams claiming the peer's address do not turn a
# working tunnel into a PROBLEM (no "simultaneous", no "failed"): a note counts them.
case_spoofed() {
    setup
    conf a initiate
    conf b respond
    up b
    up a
    wait_up
    local n
    n="$(ip netns exec "$FV_NS_B" python3 "$E2E_ROOT/tests/e2e/lib/hostile.py" mm1-flood 192.0.2.2 192.0.2.1 300)"
    ip netns exec "$FV_NS_B" python3 -c '
import socket
for port in (500, 4500):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("192.0.2.2", 0))
    for _ in range(20):
        s.sendto(b"", ("192.0.2.1", port))'
    ip netns exec "$FV_NS_A" python3 "$E2E_ROOT/tests/e2e/lib/hostile.py" mm1-flood 192.0.2.1 192.0.2.2 50 >/dev/null
    ok "spoofed: $n MM1s and 40 empty datagrams as 192.0.2.2 to A, 50 MM1s as 192.0.2.1 to B"
    pings "$FV_NS_A" "$A_IN" "$B_IN" 8
    pings "$FV_NS_B" "$B_IN" "$A_IN" 8
    sleep 5
    expect a healthy 0 5 "healthy: tunnel to 192.0.2.2" \
        "unauthenticated Phase 1 requests claiming to come from the peer's address" "possibly spoofed"
    expect b healthy 0 5 "healthy: tunnel to 192.0.2.1" "possibly spoofed"
}

# ---- against strongSwan in B ----

# ss_conf ESP [START_ACTION] [SECRET] [MORE_LOCAL_ROUNDS]: swanctl.conf for charon in B, with
# an XAuth user alice for the XAuth case.
ss_conf() {
    SS_ESP="$1" SS_START="${2:-none}" SS_SECRET="${3:-e2e-diagnose-secret}" SS_LOCAL_EXTRA="${4:-}" \
        SS_SECRETS_EXTRA='    xauth-alice {
        id = alice
        secret = "alice-password"
    }' e2e_ss_conf
}

# conf_ss_a START EXTRA: ferrovpn in A facing charon (charon's selectors, mirrored).
conf_ss_a() {
    conf a "$1" "ike = \"aes256-sha256-modp2048\"
$2" "$(e2e_route_based_facing_ss)"
}

# ss_initiate: charon starts the connection (in the background; it waits for the outcome).
ss_initiate() {
    e2e_wait_udp "$FV_NS_A" 500 5 || fail "ferrovpn does not listen on UDP 500"
    FV_SPAWN_LOG="$FV_TMP/initiate.log" fv_spawn "$FV_NS_B" swanctl --initiate --child fv \
        --timeout 30 --uri "$(fv_vici_uri "$FV_NS_B")"
}

case_ss_wrong_psk() {
    setup
    e2e_ss_up "$(ss_conf aes128gcm16 none not-the-same-secret)"
    conf_ss_a initiate 'esp = "aes128gcm16"'
    up a
    expect a psk-mismatch 1 20 "UDP 4500 passes" "probe: a fresh MM1" "pre-shared key"
    local out
    out="$("$FERROVPN" diagnose --socket "$FV_TMP/a.sock" 2>&1 || true)"
    if grep -qF "[udp4500-blocked]" <<<"$out"; then
        printf '%s\n' "$out" >&2
        fail "diagnose also says udp4500-blocked"
    fi
    grep -E 'ERROR.*failed: no response to MM5 .*UDP 4500 passes.*pre-shared keys' "$FV_TMP/daemon-a.log" >/dev/null ||
        fail "the ERROR log line does not name the PSK"
    [ "$(e2e_q "$FV_TMP/a.sock" '"pre-shared keys" in (d["connections"][0]["last_failure"] or "")')" = True ] ||
        fail "last_failure does not name the PSK: $(e2e_q "$FV_TMP/a.sock" 'd["connections"][0]["last_failure"]')"
    grep -q 'received PROBE' <<<"$("$FERROVPN" history --socket "$FV_TMP/a.sock")" ||
        fail "history lacks the probe's answer"
    ok "the ERROR line, last_failure and history say the same"
}

case_ss_esp_mismatch() {
    setup
    e2e_ss_up "$(ss_conf aes256-sha256)"
    conf_ss_a initiate 'esp = "aes128gcm16"'
    up a
    expect a no-proposal-chosen 1 15 "no Quick Mode (ESP) proposal in common" "ours:   aes128gcm16" \
        "NO-PROPOSAL-CHOSEN"
    local h
    h="$("$FERROVPN" history --socket "$FV_TMP/a.sock")"
    grep -q 'Quick Mode FAILED: no proposal chosen' <<<"$h" ||
        { printf '%s\n' "$h" >&2; fail "history lacks the Quick Mode failure"; }
    if grep -Eq 'sent +QM1 +\(retransmit\)' <<<"$h"; then
        printf '%s\n' "$h" >&2
        fail "QM1 was retransmitted after the peer's NO-PROPOSAL-CHOSEN"
    fi
    grep -E 'ERROR.*Quick Mode .* failed: no proposal chosen: ours \[aes128gcm16\]' "$FV_TMP/daemon-a.log" >/dev/null ||
        fail "no ERROR line with our offer"
    ok "QM1 sent once and ended by the protected notify; ERROR line with our offer"
}

case_ss_chacha() {
    setup
    # charon repeats QM1 every second, 8 times: a peer that keeps talking for 8 s.
    e2e_ss_up "$(ss_conf chacha20poly1305)" '    retransmit_timeout = 1.0
    retransmit_base = 1.0
    retransmit_tries = 8'
    conf_ss_a respond 'esp = "aes128gcm16"
dpd_interval = "3s"
dpd_timeout = "30s"'
    up a
    ss_initiate
    expect a unprocessable 1 15 "cannot process" "BAD-PROPOSAL-SYNTAX" "transform"
    grep -E 'WARN.*QM1 .* not processed: .*answered with BAD-PROPOSAL-SYNTAX' "$FV_TMP/daemon-a.log" >/dev/null ||
        fail "no WARN line naming the QM1 and the notify"
    sleep 9
    "$FERROVPN" history --socket "$FV_TMP/a.sock" >"$FV_TMP/history.txt"
    grep -Eq 'sent +INFO .*N\(BAD_PROPOSAL_SYNTAX\)' "$FV_TMP/history.txt" ||
        { cat "$FV_TMP/history.txt" >&2; fail "no BAD-PROPOSAL-SYNTAX notify sent"; }
    # DPD (interval 3 s): no R-U-THERE between charon's first and last QM1.
    python3 - "$FV_TMP/history.txt" <<'PY' || { cat "$FV_TMP/history.txt" >&2; fail "DPD probed a peer that was talking"; }
import re, sys
qm1, dpd = [], []
for line in open(sys.argv[1]):
    m = re.search(r"\+\s*([0-9.]+)s\s+(sent|received)\s+(\S+)\s+(.*)", line)
    if not m:
        continue
    t, d, name, rest = float(m.group(1)), m.group(2), m.group(3), m.group(4)
    if d == "received" and name == "QM1":
        qm1.append(t)
    if d == "sent" and name == "INFO" and "N(DPD)" in rest:
        dpd.append(t)
if len(qm1) < 4:
    sys.exit(f"charon's QM1 seen only {len(qm1)} times")
bad = [t for t in dpd if qm1[0] <= t <= qm1[-1]]
print(f"  ok: QM1 received {len(qm1)} times over {qm1[-1] - qm1[0]:.1f}s; R-U-THERE sent meanwhile: {len(bad)}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

case_ss_xauth() {
    setup
    e2e_ss_up "$(ss_conf aes128gcm16 none e2e-diagnose-secret '        local-xauth {
            auth = xauth
            xauth_id = alice
        }')"
    conf_ss_a respond 'esp = "aes128gcm16"'
    up a
    ss_initiate
    expect a remote-access 1 15 "expects XAuth/Mode Config — remote access" "XAuth"
}

# Every case in the background (the slow 'expired' first), each with its own log; then the
# logs in order and the summary.
CASES=(expired ss-chacha unreachable oneway-500 udp4500 no-proposal wrong-psk identity selectors esp-in-a esp-in-b dpd simultaneous healthy spoofed ss-wrong-psk ss-esp-mismatch ss-xauth)
LOGDIR="$(mktemp -d /tmp/diagnose-e2e.XXXXXX)"
trap 'rm -rf "$LOGDIR"' EXIT
declare -A JOB=()
for c in ${E2E_CASES:-${CASES[*]}}; do
    (
        set +e
        e2e_case "$c" "case_${c//-/_}"
        printf '%s\n' "${E2E_RESULTS[@]}" >"$LOGDIR/$c.result"
    ) >"$LOGDIR/$c.log" 2>&1 &
    JOB[$c]=$!
    sleep 0.3
done
for c in ${E2E_CASES:-${CASES[*]}}; do
    wait "${JOB[$c]}" || true
    cat "$LOGDIR/$c.log" >&2
    r="$(cat "$LOGDIR/$c.result" 2>/dev/null || echo "FAIL  $c (no result)")"
    E2E_RESULTS+=("$r")
    case "$r" in FAIL*) E2E_FAILED=1 ;; esac
done
e2e_summary "diagnose.sh"

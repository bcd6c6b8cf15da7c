#!/usr/bin/env bash
# The Prometheus endpoint ([daemon] metrics_listen) of a daemon with two connections: "up" to a
# ferrovpn peer (192.0.2.1 ⇄ 192.0.2.2, a route-based tunnel with pings through it) and "down"
# to 192.0.2.9, where nobody answers. GET /metrics, fetched inside the namespace, must be valid
# text exposition, show the configured-but-down connection with ferrovpn_connection_up 0, the up
# one with its SA pair, its ESP packets and IKE events; other paths get 404. Silent clients time
# out, and 30 idle connections held open do not delay a scrape.
# Needs root (namespaces); skips with a reason otherwise (fails with CI=true).
# Env: FERROVPN_BIN (binary to test).
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "metrics.sh needs network namespaces"
require_cmd_or_skip ip ping python3
e2e_binary

A_IN=198.51.100.1
B_IN=203.0.113.1
METRICS=127.0.0.1:9273

# fetch NS PATH: GET http://$METRICS/PATH inside NS; prints "<status>" then the body.
fetch() {
    ip netns exec "$1" python3 - "http://$METRICS$2" <<'PY'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(r.status); print(r.headers.get("Content-Type")); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.headers.get("Content-Type")); sys.stdout.write(e.read().decode())
PY
}

case_up_and_down() {
    FV_NO_IPV6=1 fv_two_ns
    e2e_psk "$FV_TMP/a.psk" metrics-e2e-secret
    e2e_psk "$FV_TMP/b.psk" metrics-e2e-secret
    cat >"$FV_TMP/a.toml" <<CONF
[daemon]
control_socket = "$FV_TMP/a.sock"
workers = 1
metrics_listen = "$METRICS"

[[connection]]
name = "up"
local_addr = "192.0.2.1"
remote_addr = "192.0.2.2"
psk_file = "$FV_TMP/a.psk"
start = "initiate"
[connection.route_based]
interface = "fv0"
local_ts = "198.51.100.0/24"
remote_ts = "203.0.113.0/25"
address = "$A_IN/32"

[[connection]]
name = "down"
local_addr = "192.0.2.1"
remote_addr = "192.0.2.9"
psk_file = "$FV_TMP/a.psk"
start = "initiate"
[connection.route_based]
interface = "fv1"
local_ts = "198.51.100.0/24"
remote_ts = "203.0.113.128/25"
CONF
    C_SOCK="$FV_TMP/b.sock" C_LOCAL=192.0.2.2 C_REMOTE=192.0.2.1 C_PSKFILE="$FV_TMP/b.psk" \
        C_START=respond C_WORKERS=1 C_TUNNEL="[connection.route_based]
interface = \"fv0\"
local_ts = \"203.0.113.0/25\"
remote_ts = \"198.51.100.0/24\"
address = \"$B_IN/32\"" e2e_conf "$FV_TMP/b.toml"
    e2e_up "$FV_NS_B" "$FV_TMP/b.toml" "$FV_TMP/daemon-b.log"
    # Side A logs JSON: its IKE lines are checked for their fields below.
    FV_SPAWN_LOG="$FV_TMP/daemon-a.log" fv_spawn "$FV_NS_A" "$FERROVPN" up -c "$FV_TMP/a.toml" --log-format json
    local pid_a="$FV_LAST_PID"
    E2E_LOGS+=("$FV_TMP/daemon-a.log")
    e2e_wait_sas "$FV_TMP/a.sock" "$pid_a" 1 20 || fail "no IPsec SA within 20 s"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 3
    e2e_ping "$FV_NS_B" "$B_IN" "$A_IN" 3
    sleep 0.3

    fetch "$FV_NS_A" /metrics >"$FV_TMP/metrics.txt" || fail "GET /metrics failed"
    python3 - "$FV_TMP/metrics.txt" <<'PY' || { cat "$FV_TMP/metrics.txt" >&2; fail "metrics do not say what they should"; }
import re, sys
lines = open(sys.argv[1]).read().splitlines()
status, ctype, body = lines[0], lines[1], lines[2:]
assert status == "200", status
assert ctype.startswith("text/plain; version=0.0.4"), ctype
sample = re.compile(r'^(ferrovpn_[a-z0-9_]+)(\{[a-z_]+="(?:[^"\\]|\\.)*"(?:,[a-z_]+="(?:[^"\\]|\\.)*")*\})? ([0-9]+)$')
typed, values = set(), {}
for l in body:
    if l.startswith("# TYPE "):
        typed.add(l.split()[2]); continue
    if l.startswith("# HELP "):
        continue
    m = sample.match(l)
    assert m, f"not exposition format: {l!r}"
    assert m.group(1) in typed, f"sample before its TYPE: {l!r}"
    values[m.group(1) + (m.group(2) or "")] = int(m.group(3))
def v(k):
    assert k in values, f"missing {k}"
    return values[k]
def esp(conn, d, name="ferrovpn_esp_packets_total"):
    return sum(x for k, x in values.items() if k.startswith(f'{name}{{connection="{conn}",direction="{d}"'))
assert v('ferrovpn_connection_up{connection="up"}') == 1
assert v('ferrovpn_connection_up{connection="down"}') == 0
assert v('ferrovpn_ipsec_sas{connection="up"}') == 1
assert v('ferrovpn_ipsec_sas{connection="down"}') == 0
assert v('ferrovpn_ike_sas{connection="up"}') == 1
assert v('ferrovpn_ike_established_total{connection="up"}') == 1
assert v('ferrovpn_ike_established_total{connection="down"}') == 0
assert v('ferrovpn_ipsec_established_total{connection="up"}') == 1
assert esp("up", "in") >= 3 and esp("up", "out") >= 3, (esp("up", "in"), esp("up", "out"))
assert esp("up", "out", "ferrovpn_esp_bytes_total") >= 3 * 84
assert v('ferrovpn_ike_messages_total{connection="up",direction="out"}') >= 3
assert v('ferrovpn_ike_messages_total{connection="up",direction="in"}') >= 3
assert v('ferrovpn_ike_messages_total{connection="down",direction="out"}') >= 1
assert v('ferrovpn_ike_messages_total{connection="down",direction="in"}') == 0
drops = {k: x for k, x in values.items() if k.startswith('ferrovpn_esp_drops_total{connection="up",direction="in"')}
assert any('reason="auth_failed"' in k for k in drops) and sum(drops.values()) == 0, drops
assert 'ferrovpn_esp_unknown_spi_total' in values and 'ferrovpn_ike_malformed_total' in values
PY
    ok "GET /metrics: valid text exposition, connection_up up=1 down=0, SA, ESP and IKE counters as expected"
    fetch "$FV_NS_A" / >"$FV_TMP/root.txt"
    [ "$(head -n 1 "$FV_TMP/root.txt")" = 404 ] || fail "GET / is not 404"
    ok "GET / answers 404"
    # A client that sends nothing is dropped after the timeout; the endpoint still answers after.
    ip netns exec "$FV_NS_A" python3 -c 'import socket, time; s = socket.create_connection(("127.0.0.1", 9273)); time.sleep(3)'
    fetch "$FV_NS_A" /metrics >"$FV_TMP/after.txt"
    [ "$(head -n 1 "$FV_TMP/after.txt")" = 200 ] || fail "endpoint stuck after a silent client"
    ok "a silent client times out, the endpoint keeps answering"
    # 30 clients connect and hold their connections open, half with a request cut off midway.
    # A scrape is still answered within fetch's 5-s timeout (served one at a time, each of
    # them would hold it for the 2-s client timeout: a minute).
    cat >"$FV_TMP/idle.py" <<'PY'
import socket, sys, time
conns = [socket.create_connection(("127.0.0.1", 9273)) for _ in range(30)]
for c in conns[::2]:
    c.sendall(b"GET /metr")
open(sys.argv[1], "w").close()
time.sleep(60)
PY
    fv_spawn "$FV_NS_A" python3 "$FV_TMP/idle.py" "$FV_TMP/idle.ready"
    local idle_pid=$FV_LAST_PID i
    for ((i = 0; i < 100; i++)); do
        [ -e "$FV_TMP/idle.ready" ] && break
        kill -0 "$idle_pid" 2>/dev/null || fail "the idle clients could not connect"
        sleep 0.1
    done
    [ -e "$FV_TMP/idle.ready" ] || fail "the 30 idle clients did not connect within 10 s"
    fetch "$FV_NS_A" /metrics >"$FV_TMP/busy.txt" || fail "GET /metrics failed with 30 idle clients open"
    [ "$(head -n 1 "$FV_TMP/busy.txt")" = 200 ] || fail "GET /metrics with 30 idle clients: $(head -n 1 "$FV_TMP/busy.txt")"
    grep -qx 'ferrovpn_metrics_refused_total 0' "$FV_TMP/busy.txt" || fail "connections refused with 31 open"
    kill -0 "$idle_pid" 2>/dev/null || fail "the idle clients were gone before the scrape"
    fv_stop "$idle_pid"
    ok "30 idle clients held open: a scrape is still answered at once, none refused"
    e2e_down "$FV_TMP/a.sock" "$pid_a" "$FV_NS_A" fv0
    python3 - "$FV_TMP/daemon-a.log" <<'PY' || fail "JSON log lines lack their IKE fields"
import json, re, sys
msgs = est = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    f = e["fields"]
    text = f["message"]
    if re.match(r"(sending|received) (MM|QM|AM|INFO)", text):
        msgs += 1
        assert f["conn"] in ("up", "down"), e
        assert re.fullmatch(r"[0-9a-f]{16}_i [0-9a-f]{16}_r", f["cookies"]), e
        assert re.fullmatch(r"MM[1-6]|QM[1-3]|AM[1-3]|INFO", f["msg"]) and f["msg"] in text, e
        assert re.fullmatch(r"[0-9a-f]{8}", f["message_id"]), e
    if text.startswith("IKE SA established"):
        est += 1
        assert f["conn"] == "up" and f["cookies"] in text, e
assert msgs >= 10 and est == 1, (msgs, est)
PY
    ok "JSON log: every IKE message line has conn, cookies, msg and message_id fields"
}

e2e_case up-and-down case_up_and_down
e2e_summary "metrics.sh"

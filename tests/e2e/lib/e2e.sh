# shellcheck shell=bash
# shellcheck disable=SC2030,SC2031,SC2034  # case state lives in the per-case subshell on purpose
# Helpers shared by the end-to-end scripts in tests/e2e/ (this directory is not run as a test).
# Source after scripts/lib/netns.sh:
#
#   E2E_ROOT=/path/to/repo; . "$E2E_ROOT/scripts/lib/netns.sh"; . "$E2E_ROOT/tests/e2e/lib/e2e.sh"
#   e2e_binary                       # $FERROVPN: built release binary (or $FERROVPN_BIN)
#   e2e_case NAME FUNCTION           # run one case in a subshell with its own namespaces
#   e2e_summary                      # print the table, exit 1 if any case failed
#
# Inside a case: fail "why" ends it as FAIL (daemon logs are printed), skip "why" as SKIP.

E2E_RESULTS=()
E2E_FAILED=0

e2e_say() { printf '%s\n' "$*" >&2; }

# The binary under test: $FERROVPN_BIN if set, else the workspace release build (built here
# unless E2E_BUILD=0; the shared default target dir, so a binary built before is reused).
e2e_binary() {
    if [ -n "${FERROVPN_BIN:-}" ]; then
        FERROVPN="$FERROVPN_BIN"
    else
        FERROVPN="$E2E_ROOT/target/release/ferrovpn"
        if [ "${E2E_BUILD:-1}" != 0 ]; then
            e2e_say "building $FERROVPN (cargo build --release -p ferrovpn)"
            (cd "$E2E_ROOT" && cargo build --release -q -p ferrovpn) || {
                e2e_say "FAIL: cargo build --release -p ferrovpn failed"
                exit 1
            }
        fi
    fi
    if [ ! -x "$FERROVPN" ]; then
        e2e_say "FAIL: $FERROVPN is not an executable"
        exit 1
    fi
    # A build whose daemon is not wired yet says so with exit status 2.
    local out rc=0
    out="$("$FERROVPN" status --socket /nonexistent/ferrovpn-e2e.sock 2>&1)" || rc=$?
    if [ "$rc" = 2 ] && printf '%s' "$out" | grep 'not implemented' >/dev/null; then
        if [ "${CI:-}" = true ]; then
            e2e_say "FAIL: this ferrovpn build has no daemon ('$out') and CI=true"
            exit 1
        fi
        e2e_say "SKIP: this ferrovpn build has no daemon yet: $out"
        exit 0
    fi
    export FERROVPN
}

# ---- case bookkeeping ----

# e2e_case NAME FUNCTION: runs FUNCTION in a subshell that owns its namespaces and processes
# (netns.sh's trap removes them on every exit path). Exit 0 = PASS, 77 = SKIP, else FAIL.
e2e_case() {
    local name="$1" fn="$2" rc=0 t0 t1
    e2e_say ""
    e2e_say "=== case $name"
    t0=$(date +%s)
    (
        set -uo pipefail
        set +e
        fv_init
        E2E_CASE="$name"
        E2E_LOGS=()
        "$fn"
    ) || rc=$?
    t1=$(date +%s)
    case "$rc" in
        0) E2E_RESULTS+=("PASS  $name ($((t1 - t0))s)") ;;
        77) E2E_RESULTS+=("SKIP  $name: $(cat "/tmp/e2e-skip.$$" 2>/dev/null)") ;;
        *) E2E_RESULTS+=("FAIL  $name ($((t1 - t0))s)"); E2E_FAILED=1 ;;
    esac
    rm -f "/tmp/e2e-skip.$$"
}

e2e_summary() {
    local title="$1" r
    e2e_say ""
    e2e_say "=== $title: summary"
    for r in "${E2E_RESULTS[@]}"; do e2e_say "$r"; done
    if [ "$E2E_FAILED" != 0 ]; then
        e2e_say "=== $title: FAILED"
        exit 1
    fi
    e2e_say "=== $title: OK"
}

# Print the last lines of every daemon log of this case.
e2e_dump_logs() {
    local l
    for l in "${E2E_LOGS[@]}"; do
        e2e_say "--- last 40 lines of $(basename "$l")"
        tail -n 40 "$l" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' >&2 || true
    done
}

fail() {
    e2e_say "FAIL [$E2E_CASE]: $*"
    e2e_dump_logs
    exit 1
}

skip() {
    e2e_say "SKIP [$E2E_CASE]: $*"
    printf "%s" "$*" >"/tmp/e2e-skip.$$"
    exit 77
}

# (Log excerpts are shown without terminal colour codes.)
ok() { printf '  ok: %s\n' "$*" | sed 's/\x1b\[[0-9;]*m//g' >&2; }

# ---- ferrovpn daemons ----

# e2e_psk FILE SECRET: a PSK file with mode 600.
e2e_psk() {
    (umask 077 && printf '%s\n' "$2" >"$1")
    chmod 600 "$1"
}

# e2e_conf FILE: writes a one-connection config from these variables:
#   C_SOCK C_LOCAL C_REMOTE C_PSKFILE C_START (initiate|respond), optional C_MODE (main),
#   C_IKE, C_ESP, C_EXTRA (more connection lines), C_TUNNEL (the route_based/policy_based table),
#   C_DAEMON_EXTRA (more [daemon] lines), C_WORKERS (default 2; "default": the daemon's).
e2e_conf() {
    cat >"$1" <<EOF
[daemon]
control_socket = "$C_SOCK"
log_level = "${C_LOG_LEVEL:-info}"
$([ "${C_WORKERS:-2}" = default ] || echo "workers = ${C_WORKERS:-2}")
${C_DAEMON_EXTRA:-}

[[connection]]
name = "${C_NAME:-e2e}"
local_addr = "$C_LOCAL"
remote_addr = "$C_REMOTE"
psk_file = "$C_PSKFILE"
mode = "${C_MODE:-main}"
ike = "${C_IKE:-aes256-sha256-modp2048}"
esp = "${C_ESP:-aes128gcm16}"
start = "$C_START"
${C_EXTRA:-}

$C_TUNNEL
EOF
}

# e2e_up NS CONF LOG: starts `ferrovpn up` in NS; its PID is in $E2E_PID.
e2e_up() {
    local ns="$1" conf="$2" log="$3"
    if ! "$FERROVPN" check -c "$conf" >"$log.check" 2>&1; then
        cat "$log.check" >&2
        fail "ferrovpn check refused $conf"
    fi
    FV_SPAWN_LOG="$log" fv_spawn "$ns" "$FERROVPN" up -c "$conf"
    E2E_PID="$FV_LAST_PID"
    E2E_LOGS+=("$log")
}

# e2e_status_json SOCK: the daemon's status as JSON on stdout.
e2e_status_json() { "$FERROVPN" status --socket "$1" --json 2>/dev/null; }

# e2e_q SOCK PYTHON_EXPR: evaluate an expression over the status JSON `d` (helpers: sas = all
# ipsec_sas, ikes = all ike_sas, total(key) sums a counter over sas).
e2e_q() {
    e2e_status_json "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
sas = [s for c in d.get("connections", []) for s in c.get("ipsec_sas", [])]
ikes = [s for c in d.get("connections", []) for s in c.get("ike_sas", [])]
def total(k): return sum(int(s.get(k, 0)) for s in sas)
print(eval(sys.argv[1]))' "$2"
}

# e2e_wait_sas SOCK PID [N] [SECONDS]: wait until the daemon reports at least N IPsec SAs.
e2e_wait_sas() {
    local sock="$1" pid="$2" n="${3:-1}" secs="${4:-20}" i got
    for ((i = 0; i < secs * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || return 2
        got="$(e2e_q "$sock" 'len(sas)' 2>/dev/null || echo 0)"
        [ "${got:-0}" -ge "$n" ] && return 0
        sleep 0.2
    done
    return 1
}

# e2e_wait_log LOG REGEX SECONDS: wait until LOG has a line matching REGEX (grep -E -i).
e2e_wait_log() {
    local i
    for ((i = 0; i < $3 * 5; i++)); do
        grep -E -i -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

# Datagrams the kernel dropped on full receive buffers of sockets in NS (raw ESP, UDP 500/4500);
# the namespace is fresh, so all of them are the daemon's (or charon's).
e2e_socket_drops() {
    ip netns exec "$1" cat /proc/net/raw /proc/net/udp |
        awk '$1 ~ /^[0-9]+:$/ { d += $NF } END { print d + 0 }'
}

# e2e_wait_udp NS PORT SECONDS: wait until something listens on UDP PORT in NS.
e2e_wait_udp() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        ip netns exec "$1" ss -Huln "sport = :$2" 2>/dev/null | grep . >/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# e2e_down SOCK PID NS IFACE: `ferrovpn down`, the process exits within 5 s, and the TUN
# device and policy rules it made are gone from NS.
e2e_down() {
    local sock="$1" pid="$2" ns="$3" ifc="${4:-}" i
    "$FERROVPN" down --socket "$sock" >/dev/null 2>&1 || e2e_say "  note: ferrovpn down --socket $sock failed"
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        fv_stop "$pid"
        fail "daemon $pid did not exit within 5 s of 'ferrovpn down'"
    fi
    fv_stop "$pid"
    if [ -n "$ifc" ] && ip -n "$ns" link show "$ifc" >/dev/null 2>&1; then
        fail "TUN $ifc still exists in $ns after the daemon exited"
    fi
    if ip -n "$ns" rule show | grep fwmark >/dev/null; then
        ip -n "$ns" rule show >&2
        fail "fwmark policy rules left behind in $ns after the daemon exited"
    fi
    ok "daemon $pid in $ns stopped by 'ferrovpn down', TUN and rules removed"
}

# e2e_ping NS SRC DST [COUNT]: COUNT (3) echo requests, all answered.
e2e_ping() {
    local out
    out="$(ip netns exec "$1" ping -n -q -c "${4:-3}" -i 0.2 -W 2 -I "$2" "$3" 2>&1)" ||
        { printf '%s\n' "$out" >&2; fail "ping $2 -> $3 in $1 failed"; }
    ok "ping $2 -> $3: $(printf '%s\n' "$out" | grep -o '[0-9]* received' | head -1) of ${4:-3}"
}

# e2e_transfer NS_SRC SRC NS_DST DST MBYTES: a TCP transfer of random data; the receiver's
# byte count and SHA-256 must equal the sender's.
e2e_transfer() {
    local nss="$1" src="$2" nsd="$3" dst="$4" mb="$5" file ready srvlog want got spid i port=5201
    file="$FV_TMP/xfer.bin"
    ready="$FV_TMP/xfer.ready"
    srvlog="$FV_TMP/xfer.server"
    rm -f "$ready"
    head -c "$((mb * 1024 * 1024))" /dev/urandom >"$file"
    want="$(stat -c %s "$file") $(sha256sum "$file" | cut -d' ' -f1)"
    FV_SPAWN_LOG="$srvlog" fv_spawn "$nsd" python3 "$E2E_ROOT/tests/e2e/lib/xfer.py" serve "$dst" "$port" "$ready"
    spid="$FV_LAST_PID"
    for ((i = 0; i < 50; i++)); do
        [ -s "$ready" ] && break
        sleep 0.1
    done
    [ -s "$ready" ] || { cat "$srvlog" >&2; fail "transfer server did not start"; }
    local t0 t1
    t0=$(date +%s.%N)
    got="$(ip netns exec "$nss" timeout 90 python3 "$E2E_ROOT/tests/e2e/lib/xfer.py" send "$src" "$dst" "$port" "$file" 2>&1)" ||
        { printf '%s\n' "$got" >&2; fv_stop "$spid"; fail "TCP transfer $src -> $dst failed"; }
    t1=$(date +%s.%N)
    fv_stop "$spid"
    [ "$got" = "$want" ] || fail "TCP transfer $src -> $dst: receiver got '$got', sent '$want'"
    ok "TCP $mb MiB $src -> $dst, SHA-256 equal on both ends ($(python3 -c "import sys; print(f'{$mb*8*1.048576/($t1-$t0):.0f}')") Mbit/s)"
}

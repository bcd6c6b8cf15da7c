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

# Print the last lines (E2E_LOG_LINES, 40) of every daemon log of this case.
e2e_dump_logs() {
    local l n="${E2E_LOG_LINES:-40}"
    for l in "${E2E_LOGS[@]}"; do
        e2e_say "--- last $n lines of $(basename "$l")"
        tail -n "$n" "$l" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' >&2 || true
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
#   C_SOCK C_LOCAL C_REMOTE C_PSKFILE (empty: no psk_file line, e.g. with certificates in
#   C_EXTRA) C_START (initiate|respond), optional C_MODE (main),
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
$([ -z "$C_PSKFILE" ] || echo "psk_file = \"$C_PSKFILE\"")
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

# e2e_capture NS IFACE FILE FILTER: tshark writing FILE in the background, returned once it is
# capturing; its PID in E2E_CAP_PID (stop it with fv_stop).
e2e_capture() {
    local log="$3.log" i
    FV_SPAWN_LOG="$log" fv_spawn "$1" tshark -n -i "$2" -w "$3" -f "$4"
    E2E_CAP_PID="$FV_LAST_PID"
    for ((i = 0; i < 100; i++)); do
        grep -q "Capturing on" "$log" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$log" >&2
    fail "tshark did not start capturing on $2 in $1"
}

# e2e_has PATTERN...: `grep -q` that reads all of its input. Under pipefail, `cmd | grep -q`
# fails at random: grep exits at the first match and cmd dies of SIGPIPE if it writes after that.
e2e_has() {
    local n
    n="$(grep -c "$@")"
    [ "${n:-0}" -gt 0 ]
}

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

# Datagrams the kernel dropped on full receive buffers of sockets in NS (raw ESP, UDP 500/4500;
# IPv4 and IPv6);
# the namespace is fresh, so all of them are the daemon's (or charon's).
e2e_socket_drops() {
    ip netns exec "$1" cat /proc/net/raw /proc/net/udp /proc/net/raw6 /proc/net/udp6 2>/dev/null |
        awk '$1 ~ /^[0-9]+:$/ { d += $NF } END { print d + 0 }'
}

# e2e_raw_sockets NS: "ADDRESS PROTOCOL" per raw IPv4 socket in NS (/proc/net/raw), e.g.
# "192.0.2.1 50" for the raw ESP socket, "192.0.2.1 255" for the send-only IPPROTO_RAW one.
e2e_raw_sockets() {
    ip netns exec "$1" cat /proc/net/raw | python3 -c '
import socket, struct, sys
out = []
for line in sys.stdin.readlines()[1:]:
    addr, proto = line.split()[1].split(":")
    out.append("%s %d\n" % (socket.inet_ntoa(struct.pack("<I", int(addr, 16))), int(proto, 16)))
sys.stdout.write("".join(out))'
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

# ---- the two standard setups shared by the scripts ----
# Side A is 192.0.2.1 with inner 198.51.100.1 ($A_IN), side B 192.0.2.2 with 203.0.113.1 ($B_IN).

# e2e_side_conf SIDE(a|b) START EXTRA TUNNEL: $FV_TMP/SIDE.toml for side A (192.0.2.1) or B
# (192.0.2.2) facing the other, with control socket $FV_TMP/SIDE.sock and PSK file
# $FV_TMP/SIDE.psk; EXTRA and TUNNEL as C_EXTRA and C_TUNNEL of e2e_conf, whose other knobs
# (C_MODE, C_ESP, C_DAEMON_EXTRA, …) pass through.
e2e_side_conf() {
    local side="$1" here=192.0.2.1 there=192.0.2.2
    [ "$side" = a ] || { here=192.0.2.2 there=192.0.2.1; }
    C_LOCAL="$here" C_REMOTE="$there" C_SOCK="$FV_TMP/$side.sock" C_PSKFILE="$FV_TMP/$side.psk" \
        C_START="$2" C_EXTRA="$3" C_TUNNEL="$4" e2e_conf "$FV_TMP/$side.toml"
}

# e2e_route_based ADDR ROUTE: a route-based tunnel on fv0 with ADDR/32 and one ROUTE.
e2e_route_based() {
    printf '[connection.route_based]\ninterface = "fv0"\naddress = "%s/32"\nroutes = ["%s"]\n' "$1" "$2"
}

# e2e_route_based_facing_ss: side A's route-based tunnel facing charon in B, whose selectors
# (203.0.113.0/24 <=> 198.51.100.0/24) it mirrors.
e2e_route_based_facing_ss() {
    printf '[connection.route_based]\ninterface = "fv0"\nlocal_ts = "198.51.100.0/24"\nremote_ts = "203.0.113.0/24"\naddress = "%s/32"\n' "$A_IN"
}

# e2e_fv_pair_up LOG_A LOG_B: starts ferrovpn in B ($FV_TMP/b.toml), then in A ($FV_TMP/a.toml),
# waits for an IPsec SA on both control sockets ($SOCK_A, $SOCK_B) and pings A -> B through the
# tunnel. Sets PID_A and PID_B.
e2e_fv_pair_up() {
    e2e_up "$FV_NS_B" "$FV_TMP/b.toml" "$2"
    PID_B="$E2E_PID"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$1"
    PID_A="$E2E_PID"
    e2e_wait_sas "$SOCK_A" "$PID_A" 1 20 || fail "side A: no IPsec SA within 20 s"
    e2e_wait_sas "$SOCK_B" "$PID_B" 1 5 || fail "side B: no IPsec SA"
    e2e_ping "$FV_NS_A" "$A_IN" "$B_IN" 2
}

# e2e_ss_conf: swanctl.conf for charon in B facing ferrovpn in A: PSK, IKEv1, ids are the
# addresses, connection and child "fv". Knobs (variables): SS_SECRET (required), SS_ESP
# (aes128gcm16), SS_START (none), SS_AGGRESSIVE (no), SS_IKE_EXTRA (more connection lines),
# SS_LOCAL_EXTRA (more rounds after local {}), SS_CHILD_EXTRA (more child lines),
# SS_SECRETS_EXTRA (more sections in secrets {}), SS_ADDR_B / SS_ADDR_A (charon's and
# ferrovpn's outer addresses, 192.0.2.2 / 192.0.2.1; IPv6 for an IPv6 outer), SS_LOCAL_TS /
# SS_REMOTE_TS (203.0.113.0/24 / 198.51.100.0/24; comma lists allowed); certificates: SS_AUTH
# (psk; pubkey for signatures, then SS_SECRET may be empty), SS_CERT (our certificate file in
# swanctl/x509/), SS_LOCAL_ID / SS_REMOTE_ID (default: the addresses).
e2e_ss_conf() {
    local b="${SS_ADDR_B:-192.0.2.2}" a="${SS_ADDR_A:-192.0.2.1}"
    cat <<CONF
connections {
    fv {
        version = 1
        aggressive = ${SS_AGGRESSIVE:-no}
        local_addrs = $b
        remote_addrs = $a
        proposals = aes256-sha256-modp2048
        ${SS_IKE_EXTRA:-}
        local {
            auth = ${SS_AUTH:-psk}
            id = ${SS_LOCAL_ID:-$b}
            $([ -z "${SS_CERT:-}" ] || echo "certs = $SS_CERT")
        }
${SS_LOCAL_EXTRA:-}
        remote {
            auth = ${SS_AUTH:-psk}
            id = ${SS_REMOTE_ID:-$a}
        }
        children {
            fv {
                local_ts = ${SS_LOCAL_TS:-203.0.113.0/24}
                remote_ts = ${SS_REMOTE_TS:-198.51.100.0/24}
                esp_proposals = ${SS_ESP:-aes128gcm16}
                ${SS_CHILD_EXTRA:-}
                start_action = ${SS_START:-none}
            }
${SS_CHILDREN_EXTRA:-}
        }
    }
}
secrets {
$([ -z "$SS_SECRET" ] || printf '    ike-fv {\n        id-a = %s\n        id-b = %s\n        secret = "%s"\n    }' "$a" "$b" "$SS_SECRET")
${SS_SECRETS_EXTRA:-}
}
CONF
}

# e2e_ss_up SWANCTL_CONF [CHARON_EXTRA] [LOG_LEVELS] [TAG]: charon in B ($B_IN on lo: one
# address, or several separated by spaces, IPv4 /32 or IPv6 /128) with that
# swanctl.conf, started and loaded; its log joins the case's logs. LOG_LEVELS are charon's
# filelog levels (default: default 1, ike 2, cfg 1).
e2e_ss_up() {
    local len=32 a
    for a in $B_IN; do
        case "$a" in *:*) len=128 ;; *) len=32 ;; esac
        fv_add_inner "$FV_NS_B" "$a/$len"
    done
    fv_charon_config "$FV_NS_B" "$(fv_strongswan_conf "${4:-e2e}" "${2:-}" "${3:-default = 1
            ike = 2
            cfg = 1}")" "$1"
    fv_charon_start "$FV_NS_B"
    E2E_LOGS+=("$(fv_charon_dir "$FV_NS_B")/charon.log")
    fv_charon_wait "$FV_NS_B" || fail "charon did not start"
    fv_charon_load "$FV_NS_B" >/dev/null || fail "swanctl --load-all failed"
}

# e2e_ss_wait_installed FILE: waits up to 5 s for charon in B to list an INSTALLED child SA,
# writes `swanctl --list-sas` to FILE; fails if there is none.
e2e_ss_wait_installed() {
    local i
    for ((i = 0; i < 25; i++)); do
        fv_swanctl "$FV_NS_B" --list-sas 2>/dev/null | grep INSTALLED >/dev/null && break
        sleep 0.2
    done
    fv_swanctl "$FV_NS_B" --list-sas >"$1" 2>&1
    grep -q INSTALLED "$1" || { cat "$1" >&2; fail "strongSwan: no INSTALLED child SA"; }
}

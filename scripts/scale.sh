#!/usr/bin/env bash
# Scale measurement (issue #20): one responder with N connections (one per peer address), one
# ferrovpn initiator with N connections, in two network namespaces. Outer addresses are IPv6
# (2001:db8:ffff::/64: the responder ::1, peer i ::1:<i>), so N is not limited by 192.0.2.0/24;
# each connection is a route-based TUN with an inner /128 pair (2001:db8:a::<i> ⇄ 2001:db8:b::<i>).
# For each N and group it measures, with ferrovpn as the responder and then (when installed)
# strongSwan's charon as the responder against the same initiator:
#   start     ferrovpn responder: spawn → control socket answers (configured and listening)
#   setups/s  N ÷ (first MM1 sent → last IPsec SA established), from the initiator's own history
#   down      `ferrovpn down` → process gone (TUN devices, routes and rules removed)
#   KB/tunnel (responder RSS with all tunnels up − RSS at start) ÷ N, from /proc/PID/status
# and appends a table to docs/BENCHMARKS.md (machine, date, load average).
# Env: SCALE_N ("250 1000"), SCALE_GROUPS ("modp2048 ecp256"), SCALE_STRONGSWAN (auto|no),
# FERROVPN_BIN (default: release build of this tree), SCALE_NOTE (a line for the table),
# SCALE_STRONGSWAN_MAX_N (1000: strongSwan rows only up to this N), SCALE_HALF_OPEN (the responder's max_half_open, default N + 64; "none": leave it out),
# SCALE_DH_POOL (both ferrovpn daemons' [daemon] dh_pool; unset: the default),
# SCALE_DH_WORKERS (a list, e.g. "0 2": one ferrovpn responder row per value of its
# [daemon] dh_workers, run back to back with the same initiators; unset: the default),
# SCALE_ROUNDS (1: the whole set of runs this many times, one row each, for medians),
# SCALE_WAIT (300: seconds to wait for all N IPsec SAs before taking the rate as it is),
# SCALE_OUT (docs/BENCHMARKS.md; "-" for stdout only), SCALE_SHARED (1: every connection of
# each side on one shared TUN device `fvgw0`, `[daemon] shared_interfaces`, instead of one TUN
# per connection; the pinged inner addresses then live on `lo`), SCALE_START_ONLY (1: the
# responder alone, for start and down at an N whose Diffie-Hellman work would take too long
# here), SCALE_INITIATORS (1: how many ferrovpn initiators split the N peers; each holds three
# sockets per peer address, so one process needs N × 3 descriptors), SCALE_BENCH_BIN (the
# benches/ike_setups.rs executable for the DH bound, default the newest in target/release/deps;
# "no": none), SCALE_CHARON_LOG (charon's filelog levels, e.g. "default = 1"; its log is then
# kept as /tmp/scale-charon-N-GROUP-RUN.log), SCALE_LOG_LEVEL (info: both ferrovpn daemons'
# log_level; charon's file log is off). Needs root.
# CPU columns: the responder's utime + stime (all threads) from just before the first MM1 to
# all N IPsec SAs up, per setup and as setups per CPU-second, and against the DH+PRF bound of
# one responder setup; the initiators' CPU from their spawn.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib/netns.sh"

require_root_or_skip "scale.sh needs network namespaces"
require_cmd_or_skip ip python3
FERROVPN="${FERROVPN_BIN:-$ROOT/target/release/ferrovpn}"
[ -x "$FERROVPN" ] || { echo "no binary at $FERROVPN (cargo build --release -p ferrovpn)" >&2; exit 1; }
NS_LIST="${SCALE_N:-250 1000}"
GROUPS_LIST="${SCALE_GROUPS:-modp2048 ecp256}"
SS=no
if [ "${SCALE_STRONGSWAN:-auto}" = auto ] && [ -x "$FV_CHARON_BIN" ] && command -v swanctl >/dev/null; then
    SS=yes
fi
GEN="$ROOT/scripts/lib/scale_conf.py"
fv_init
# The initiator holds three sockets per peer address (UDP 500, UDP 4500, raw ESP): 30,000
# descriptors at N = 10,000, far above the usual soft limit of 1024.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
PSK="scale-bench-secret"
printf '%s\n' "$PSK" >"$FV_TMP/psk"
chmod 600 "$FV_TMP/psk"
ROWS=()
RUN=0

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# cpu_ms PID...: utime + stime of the processes (all their threads, live and exited: the process
# line of /proc/PID/stat), in ms, summed. Clock ticks (usually 10 ms) are the resolution.
TICK_MS=$((1000 / $(getconf CLK_TCK)))
cpu_ms() {
    local p total=0 f
    for p in "$@"; do
        # Fields after the last ")" (comm may hold spaces): utime is the 12th, stime the 13th.
        f="$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')" || f=0
        total=$((total + ${f:-0}))
    done
    echo $((total * TICK_MS))
}

# cpu_sampler PID FILE: from now until PID ends (or the sampler is stopped), "unix_ms ticks"
# lines every 10 ms: the process's utime + stime in clock ticks (all threads). CPU_SAMPLER: its
# PID. Reason: the responder's CPU is wanted from the first MM1 to the last IPsec SA, not from
# the initiators' spawn (their start-up, ~1 s at N = 1000) to the script's next count, when the
# responder is idle but not free (its data-plane threads poll every device 10 times a second).
cpu_sampler() {
    python3 - "$1" >"$2" <<'PY' &
import sys, time
pid = sys.argv[1]
while True:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        break
    print(int(time.time() * 1000), int(fields[11]) + int(fields[12]), flush=True)
    time.sleep(0.01)
PY
    CPU_SAMPLER=$!
    FV_PIDS+=("$CPU_SAMPLER")
}

# cpu_window FILE FIRST_MS LAST_MS: CPU ms between the last sample at or before FIRST_MS and
# the first sample at or after LAST_MS (so it covers the whole window; ±1 tick at each end).
cpu_window() {
    python3 - "$@" "$TICK_MS" <<'PY'
import sys
path, first, last, tick = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [tuple(map(int, l.split())) for l in open(path) if len(l.split()) == 2]
before = [c for t, c in rows if t <= first] or [rows[0][1]]
after = [c for t, c in rows if t >= last] or [rows[-1][1]]
print((after[0] - before[-1]) * tick)
PY
}

# charon_pid: the charon process of the responder namespace (fv_charon_start runs it through
# `ip netns exec` and `unshare`, which exec, so normally the spawned PID itself).
charon_pid() {
    local p="${FV_CHARON_PID[$R]}"
    if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = charon ]; then
        echo "$p"
    else
        pgrep -P "$p" charon || echo "$p"
    fi
}

# The DH+PRF bound of one responder setup, per group, in µs of CPU (BOUND_US[group]), and the
# whole in-memory responder setup (MEM_US[group]), both from benches/ike_setups.rs run as a
# child and measured in CPU time (getrusage), not wall time, so a busy machine does not inflate
# them: with IKE_SETUPS_N empty the bench only times its DH bound (7 × 40 pair setups' DH: two
# key pairs and two shared secrets each; the responder does half); with N = 1000 inline it also
# brings 1000 pairs up in memory (everything: DH, PRF, AES-CBC, payloads; again half is the
# responder's). The PRF/hash work is timed here with Python's hmac/hashlib (OpenSSL) over the
# responder's count of operations (prf_us). SCALE_BENCH_BIN: the bench executable (default: the
# newest target/release/deps/ike_setups-*; build it with
# `cargo bench -p ferrovpn-benches --bench ike_setups --no-run`); "no": no bound column.
declare -A BOUND_US=() MEM_US=() DH_US=()
PRF_US=""
# prf_us: one responder setup's PRF and hash work (PSK Main Mode + one Quick Mode, SHA-256,
# ESP aes128gcm16): SKEYID, SKEYID_d/_a/_e, HASH_I checked, HASH_R, Quick Mode HASH(1)/(2)/(3)
# and KEYMAT for two SAs (11 HMAC-SHA256 over short inputs), NAT-D (4 SHA-256), and the
# phase 1 encryption key extension; CPU time, the median of 7 runs of 2000.
prf_us() {
    python3 - <<'PY'
import hashlib, hmac, os, time
k, g, n = os.urandom(32), os.urandom(32), os.urandom(16)
x60, x100, x18 = os.urandom(60), os.urandom(100), os.urandom(18)
def one():
    skeyid = hmac.new(k, n + n, hashlib.sha256).digest()
    d = hmac.new(skeyid, g + n + n + b"\0", hashlib.sha256).digest()
    a = hmac.new(skeyid, d + g + n + n + b"\1", hashlib.sha256).digest()
    e = hmac.new(skeyid, a + g + n + n + b"\2", hashlib.sha256).digest()
    for _ in range(2):  # HASH_I (checked), HASH_R
        hmac.new(skeyid, g * 2 + n * 2 + x60, hashlib.sha256).digest()
    for _ in range(5):  # QM HASH(1), HASH(2), HASH(3), KEYMAT in and out
        hmac.new(a, n * 2 + x100, hashlib.sha256).digest()
    for _ in range(4):  # NAT-D
        hashlib.sha256(n + x18).digest()
    hmac.new(e, b"\0", hashlib.sha256).digest()
runs = []
for _ in range(7):
    t0 = time.process_time()
    for _ in range(2000):
        one()
    runs.append((time.process_time() - t0) / 2000 * 1e6)
print(f"{sorted(runs)[3]:.1f}")
PY
}
# bench_cpu BIN GROUP: "DH_US MEM_US" of one responder setup (CPU µs), the median of 3 tries.
bench_cpu() {
    python3 - "$1" "$2" <<'PY'
import os, resource, subprocess, sys
bin_, group = sys.argv[1], sys.argv[2]
def cpu(n):
    env = dict(os.environ, IKE_SETUPS_N=n, IKE_SETUPS_GROUPS=group, IKE_SETUPS_MODES="inline")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([bin_, "--bench"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
dh, mem = [], []
for _ in range(3):
    base = cpu("")  # the DH bound alone: 7 × 40 pairs, four DH operations each
    full = cpu("1000")  # the same plus 1000 pair setups in memory
    dh.append(base / 280 / 2 * 1e6)
    mem.append((full - base) / 1000 / 2 * 1e6)
print(f"{sorted(dh)[1]:.0f} {sorted(mem)[1]:.0f}")
PY
}
measure_bounds() {
    local bin="${SCALE_BENCH_BIN:-}" g got
    [ "$bin" = no ] && return 0
    if [ -z "$bin" ]; then
        bin="$(ls -t "$ROOT"/target/release/deps/ike_setups-* 2>/dev/null | grep -v '\.d$' | head -1 || true)"
    fi
    if [ -z "$bin" ] || [ ! -x "$bin" ]; then
        fv_log "no ike_setups bench binary (cargo bench -p ferrovpn-benches --bench ike_setups --no-run): no DH bound column"
        return 0
    fi
    PRF_US="$(prf_us)"
    for g in $GROUPS_LIST; do
        got="$(bench_cpu "$bin" "$g")" || { fv_log "ike_setups failed for $g"; continue; }
        DH_US[$g]="${got% *}"
        MEM_US[$g]="${got#* }"
        BOUND_US[$g]="$(python3 -c "print(f'{${DH_US[$g]} + $PRF_US:.0f}')")"
        fv_log "bound $g: responder DH ${DH_US[$g]} µs + PRF $PRF_US µs = ${BOUND_US[$g]} µs of CPU per setup; whole responder setup in memory ${MEM_US[$g]} µs"
    done
}

# cpu_cols N GROUP RESP_MS INIT_MS: the CPU columns of a row: responder CPU (s), responder ms
# per setup, setups per responder CPU-second, ÷ the DH+PRF bound, initiators' CPU (s).
cpu_cols() {
    python3 -c '
import sys
n, g, r, i, b = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
per = r / n
rate = f"{n / (r / 1000):.0f}" if r else "–"
ratio = f"{per * 1000 / float(b):.2f}" if b and r else "–"
print(f"{r / 1000:.2f} | {per:.3f} | {rate} | {ratio} | {i / 1000:.2f}")' "$1" "$2" "$3" "$4" "${BOUND_US[$2]:-}"
}

# bed N: namespaces $R (responder) and $I (initiators), N peer addresses on I (fv_scale_bed).
bed() {
    RUN=$((RUN + 1))
    R="${FV_ID}r$RUN"
    I="${FV_ID}i$RUN"
    fv_scale_bed "$R" "$I" "$RUN" "$1"
}

unbed() {
    ip netns del "$R" 2>/dev/null || true
    ip netns del "$I" 2>/dev/null || true
}

# wait_answer SOCK PID SECONDS: until the control socket answers.
wait_answer() {
    local i
    for ((i = 0; i < $3 * 50; i++)); do
        kill -0 "$2" 2>/dev/null || return 2
        "$FERROVPN" status --socket "$1" >/dev/null 2>&1 && return 0
        sleep 0.02
    done
    return 1
}

# count_sas SOCK...: IPsec SAs the daemons report, summed.
count_sas() {
    local s total=0 got
    for s in "$@"; do
        got="$("$FERROVPN" status --socket "$s" --json 2>/dev/null |
            python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(len(c["ipsec_sas"]) for c in d["connections"]))' 2>/dev/null || echo 0)"
        total=$((total + ${got:-0}))
    done
    echo "$total"
}

# installed_count: IPsec SA pairs the ferrovpn initiators have logged as installed (one line
# each at log_level info). Cheaper than count_sas while waiting: a status --json of 5,000
# connections every half second cost the initiators and the script about as much CPU as the
# responder's setups, on the same two cores; count_sas still confirms the end.
installed_count() {
    local k total=0 got
    for k in "${!ISOCKS[@]}"; do
        got="$(grep -c 'IPsec SA installed' "$FV_TMP/i$k.log" 2>/dev/null || true)"
        total=$((total + ${got:-0}))
    done
    echo "$total"
}

# wait_up N SECONDS: until the initiators hold N IPsec SA pairs (the log count first, when
# they log at info, then count_sas to confirm).
wait_up() {
    if [ "${SCALE_LOG_LEVEL:-info}" = info ] || [ "${SCALE_LOG_LEVEL:-info}" = debug ]; then
        wait_count installed_count "$1" "$2" || return 1
    fi
    wait_count "count_sas ${ISOCKS[*]}" "$1" "$2"
}

# wait_count CMD N SECONDS
wait_count() {
    local got end=$((SECONDS + $3))
    # Bounded by wall time: on a loaded machine one count (status + python) takes seconds.
    while [ "$SECONDS" -lt "$end" ]; do
        got="$($1)"
        [ "${got:-0}" -ge "$2" ] && return 0
        sleep 0.5
    done
    return 1
}

# setup_rate N SOCK...: "RATE SECONDS FIRST_MS LAST_MS": N ÷ (first MM1 sent → last IPsec SA
# established) from the initiators' histories, and those two moments (Unix ms).
setup_rate() {
    local n="$1" s
    shift
    for s in "$@"; do
        "$FERROVPN" history --socket "$s" --json
        echo
    done | python3 -c '
import json, sys
ds = [json.loads(l) for l in sys.stdin if l.strip()]
hist = [r for d in ds for c in d["connections"] for r in c["history"]]
first = min(r["unix_ms"] for r in hist
            if r["what"].get("kind") == "message" and r["what"].get("sent") and r["what"].get("name") == "MM1")
last = max(r["unix_ms"] for r in hist if r["what"].get("kind") == "child_established")
n = int(sys.argv[1])
print(f"{n / max(last - first, 1) * 1000:.0f} {(last - first) / 1000:.2f} {first} {last}")' "$n"
}

# ping_sample N: how many of a sample of the tunnels (first, middle, last) carry a ping.
ping_sample() {
    local ok=0 k
    for k in 1 $((($1 + 1) / 2)) "$1"; do
        if ip netns exec "$I" ping -6 -c 1 -W 2 -I "$(printf '2001:db8:a::%x' "$k")" \
            "$(printf '2001:db8:b::%x' "$k")" >/dev/null 2>&1; then
            ok=$((ok + 1))
        fi
    done
    echo "$ok"
}

# stop_fv SOCK PID: `ferrovpn down`, seconds until the process is gone.
stop_fv() {
    local t0 i
    t0="$(now)"
    "$FERROVPN" down --socket "$1" >/dev/null 2>&1 || true
    for ((i = 0; i < 6000; i++)); do
        kill -0 "$2" 2>/dev/null || break
        sleep 0.01
    done
    fv_stop "$2"
    elapsed "$t0" "$(now)"
}

dh_pool_line() { [ -z "${SCALE_DH_POOL:-}" ] || echo "dh_pool = $SCALE_DH_POOL"; }
# The responder's dh_workers for this run (DH_WORKERS: "" for the default).
DH_WORKERS=""
dh_workers_line() { [ -z "$DH_WORKERS" ] || echo "dh_workers = $DH_WORKERS"; }

SHARED_DEV=""
[ "${SCALE_SHARED:-0}" = 1 ] && SHARED_DEV=fvgw0

# initiator_up N IKE: SCALE_INITIATORS ferrovpn initiators for the N peers (ISOCKS, PIDS_I).
initiator_up() {
    local n="$1" ike="$2" k=0 parts="${SCALE_INITIATORS:-1}" first=1 count
    ISOCKS=()
    PIDS_I=()
    for ((k = 0; k < parts; k++)); do
        count=$(((n - first + 1) / (parts - k)))
        python3 "$GEN" ferrovpn initiator "$count" "$FV_TMP/i$k.toml" --sock "$FV_TMP/i$k.sock" \
            --psk-file "$FV_TMP/psk" --ike "$ike" --prefix "si${k}x" --first "$first" \
            --shared "${SHARED_DEV:+fvgw$((k + 1))}" --daemon-extra "$(dh_pool_line)" \
            --log-level "${SCALE_LOG_LEVEL:-info}"
        FV_SPAWN_LOG="$FV_TMP/i$k.log" fv_spawn "$I" "$FERROVPN" up -c "$FV_TMP/i$k.toml"
        ISOCKS+=("$FV_TMP/i$k.sock")
        PIDS_I+=("$FV_LAST_PID")
        first=$((first + count))
    done
}

# initiators_down: every initiator stopped.
initiators_down() {
    local k
    for k in "${!ISOCKS[@]}"; do
        stop_fv "${ISOCKS[$k]}" "${PIDS_I[$k]}" >/dev/null
    done
}

run_ferrovpn() {
    local n="$1" group="$2" ike="aes128-sha256-$2" t0 start rss0 rss1 rate down k
    bed "$n"
    python3 "$GEN" ferrovpn responder "$n" "$FV_TMP/r.toml" --sock "$FV_TMP/r.sock" \
        --psk-file "$FV_TMP/psk" --ike "$ike" --prefix sr --shared "$SHARED_DEV" \
        --log-level "${SCALE_LOG_LEVEL:-info}" \
        --daemon-extra "$([ "${SCALE_HALF_OPEN:-}" = none ] || echo "max_half_open = ${SCALE_HALF_OPEN:-$((n + 64))}")
$(dh_pool_line)
$(dh_workers_line)"
    t0="$(now)"
    FV_SPAWN_LOG="$FV_TMP/r.log" fv_spawn "$R" "$FERROVPN" up -c "$FV_TMP/r.toml"
    PID_R="$FV_LAST_PID"
    wait_answer "$FV_TMP/r.sock" "$PID_R" 120 || { tail "$FV_TMP/r.log" >&2; fv_log "responder did not start"; exit 1; }
    start="$(elapsed "$t0" "$(now)")"
    rss0="$(rss_kb "$PID_R")"
    local what="ferrovpn"
    [ -n "$SHARED_DEV" ] && what="ferrovpn, shared TUN"
    [ -n "$DH_WORKERS" ] && what="$what, dh_workers = $DH_WORKERS"
    if [ "${SCALE_START_ONLY:-0}" = 1 ]; then
        down="$(stop_fv "$FV_TMP/r.sock" "$PID_R")"
        [ -z "$(ip -n "$R" -o link show type tun)" ] || fv_log "TUN devices left after down"
        ROWS+=("| $what (responder alone) | $n | $group | – | – | – | – | – | – | – | $start | $down | – | – |")
        fv_log "$what N=$n (responder alone): start ${start}s, down ${down}s, RSS ${rss0} KB"
        unbed
        return
    fi
    if [ -n "$SHARED_DEV" ]; then
        # The pinged inner addresses: the shared devices have none.
        for k in 1 $(((n + 1) / 2)) "$n"; do
            ip -n "$R" addr add "$(printf '2001:db8:b::%x/128' "$k")" dev lo
            ip -n "$I" addr add "$(printf '2001:db8:a::%x/128' "$k")" dev lo
        done
    fi
    # Responder CPU from just before the first MM1 to the last IPsec SA up (as wait_count sees
    # it, ≤ 0.5 s and one status call late; the responder is idle by then). The initiators'
    # CPU is counted from their spawn, so it includes their start-up.
    local cpu_r0 cpu_r1 cpu_i cpu_w
    cpu_r0="$(cpu_ms "$PID_R")"
    cpu_sampler "$PID_R" "$FV_TMP/cpu-r.txt"
    initiator_up "$n" "$ike"
    if ! wait_up "$n" "${SCALE_WAIT:-300}"; then
        fv_log "ferrovpn responder, N=$n $group: only $(count_sas "${ISOCKS[@]}") of $n up"
    fi
    cpu_r1="$(cpu_ms "$PID_R")"
    cpu_i="$(cpu_ms "${PIDS_I[@]}")"
    rate="$(setup_rate "$n" "${ISOCKS[@]}")"
    fv_stop "$CPU_SAMPLER"
    cpu_w="$(cpu_window "$FV_TMP/cpu-r.txt" $(echo "$rate" | cut -d' ' -f3,4))"
    rss1="$(rss_kb "$PID_R")"
    local ok
    ok="$(ping_sample "$n")"
    down="$(stop_fv "$FV_TMP/r.sock" "$PID_R")"
    initiators_down
    ROWS+=("| $what | $n | $group | $(echo "$rate" | cut -d' ' -f1) | $(echo "$rate" | cut -d' ' -f2) | $(cpu_cols "$n" "$group" "$cpu_w" "$cpu_i") | $start | $down | $(((rss1 - rss0) / n)) | $ok/3 |")
    fv_log "$what N=$n $group: setups/s $(echo "$rate" | cut -d' ' -f1) ($(echo "$rate" | cut -d' ' -f2) s), responder CPU $cpu_w ms first MM1 → last SA ($((cpu_r1 - cpu_r0)) ms from the initiators' spawn to the count), initiators $cpu_i ms, start ${start}s, down ${down}s, $(((rss1 - rss0) / n)) KB/tunnel, ping $ok/3"
    unbed
}

run_strongswan() {
    local n="$1" group="$2" ike="aes128-sha256-$2" rss0 rss1 rate
    bed "$n"
    local ss_conf sw_conf i
    # charon with kernel-libipsec installs a route into its TUN for each outbound policy, with
    # a local address inside the local traffic selector as its source; with no such address
    # it fails the policy ("no local address found in traffic selector … unable to install
    # IPsec policies") and deletes the CHILD SA right after Quick Mode. The inner addresses
    # therefore live on the responder's `lo` (ferrovpn puts them on its TUN devices).
    {
        for ((i = 1; i <= n; i++)); do
            printf 'addr add 2001:db8:b::%x/128 dev lo nodad\n' "$i"
        done
    } | ip -n "$R" -batch -
    ss_conf="$(fv_strongswan_conf scale "    ikesa_table_size = 4096
    ikesa_table_segments = 16
    threads = 16
    install_routes = no" "${SCALE_CHARON_LOG:-default = 0}")"
    python3 "$GEN" swanctl "$n" "$FV_TMP/swanctl.conf" --psk "$PSK" --ike "$ike"
    sw_conf="$(cat "$FV_TMP/swanctl.conf")"
    fv_charon_config "$R" "$ss_conf" "$sw_conf"
    fv_charon_start "$R"
    fv_charon_wait "$R" 60
    fv_swanctl "$R" --load-all >/dev/null
    local cpid cpu_r0 cpu_r1 cpu_i
    cpid="$(charon_pid)"
    rss0="$(rss_kb "$cpid")"
    cpu_r0="$(cpu_ms "$cpid")"
    cpu_sampler "$cpid" "$FV_TMP/cpu-r.txt"
    initiator_up "$n" "$ike"
    if ! wait_up "$n" "${SCALE_WAIT:-300}"; then
        fv_log "strongSwan responder, N=$n $group: only $(count_sas "${ISOCKS[@]}") of $n up"
    fi
    cpu_r1="$(cpu_ms "$cpid")"
    cpu_i="$(cpu_ms "${PIDS_I[@]}")"
    rate="$(setup_rate "$n" "${ISOCKS[@]}")"
    fv_stop "$CPU_SAMPLER"
    local cpu_w
    cpu_w="$(cpu_window "$FV_TMP/cpu-r.txt" $(echo "$rate" | cut -d' ' -f3,4))"
    rss1="$(rss_kb "$cpid")"
    local ok
    ok="$(ping_sample "$n")"
    initiators_down
    fv_stop "${FV_CHARON_PID[$R]}"
    if [ -n "${SCALE_CHARON_LOG:-}" ]; then
        cp "$(fv_charon_dir "$R")/charon.log" "/tmp/scale-charon-$n-$group-$RUN.log"
        fv_log "charon's log: /tmp/scale-charon-$n-$group-$RUN.log"
    fi
    local ver
    ver="$(swanctl --help 2>&1 | grep -o '[0-9]\+\.[0-9]\+\.[0-9]\+' | head -1 || true)"
    ROWS+=("| strongSwan $ver | $n | $group | $(echo "$rate" | cut -d' ' -f1) | $(echo "$rate" | cut -d' ' -f2) | $(cpu_cols "$n" "$group" "$cpu_w" "$cpu_i") | – | – | $(((rss1 - rss0) / n)) | $ok/3 |")
    fv_log "strongSwan N=$n $group: setups/s $(echo "$rate" | cut -d' ' -f1) ($(echo "$rate" | cut -d' ' -f2) s), responder CPU $cpu_w ms first MM1 → last SA ($((cpu_r1 - cpu_r0)) ms from the initiators' spawn to the count), initiators $cpu_i ms, ping $ok/3"
    unbed
}

measure_bounds
for ((round = 1; round <= ${SCALE_ROUNDS:-1}; round++)); do
    for n in $NS_LIST; do
        for g in $GROUPS_LIST; do
            for w in ${SCALE_DH_WORKERS:-default}; do
                DH_WORKERS="$w"
                [ "$w" = default ] && DH_WORKERS=""
                run_ferrovpn "$n" "$g"
            done
            DH_WORKERS=""
            if [ "$SS" = yes ] && [ "${SCALE_START_ONLY:-0}" != 1 ] && [ "$n" -le "${SCALE_STRONGSWAN_MAX_N:-1000}" ]; then
                run_strongswan "$n" "$g"
            fi
        done
    done
done

TABLE="$(
    echo
    echo "## Scale: N peers on one responder ($(date -u +%Y-%m-%d), scripts/scale.sh)"
    echo
    echo "Machine: $(nproc) cores, $(awk -F': *' '/model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). ${SCALE_NOTE:-}"
    echo "Initiators: ${SCALE_INITIATORS:-1} ferrovpn process(es) splitting N connections (one per peer address, outer IPv6), PSK Main Mode, aes128-sha256-GROUP, ESP aes128gcm16; setups/s = N ÷ (first MM1 sent → last IPsec SA established) as the initiators recorded them. strongSwan: charon with kernel-libipsec, openssl first in its plugin list, 16 threads, file logging off, the inner addresses on lo (libipsec needs a local address in the local traffic selector)."
    echo
    echo "Responder CPU: utime + stime of the responder process (/proc/PID/stat, all threads; charon for strongSwan) from the first MM1 to the last IPsec SA as the initiators recorded them (sampled every 10 ms; a clock tick at each end); initiators' CPU: the ferrovpn initiators (SCALE_INITIATORS) from their spawn (start-up included) to the same point; 2 cores = 2 CPU-s per second."
    for g in $GROUPS_LIST; do
        [ -z "${BOUND_US[$g]:-}" ] ||
            echo "DH+PRF bound of one responder setup, $g: ${BOUND_US[$g]} µs of CPU (DH: one key pair and one shared secret, ${DH_US[$g]} µs, from benches/ike_setups.rs in CPU time; PRF/hash work ${PRF_US} µs, timed with Python's hmac); the whole responder setup in memory (ike_setups inline, half the pair, CPU time) ${MEM_US[$g]} µs."
    done
    echo
    echo "| responder | N | group | setups/s | first MM1 → last SA (s) | responder CPU (s) | responder CPU ms/setup | setups per responder CPU-s | ÷ DH+PRF bound | initiators' CPU (s) | start (s) | down (s) | KB/tunnel | ping sample |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
)"
printf '%s\n' "$TABLE"
if [ "${SCALE_OUT:-$ROOT/docs/BENCHMARKS.md}" != - ]; then
    printf '%s\n' "$TABLE" >>"${SCALE_OUT:-$ROOT/docs/BENCHMARKS.md}"
fi

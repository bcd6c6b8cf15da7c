#!/usr/bin/env bash
# The kernel's ceiling per socket type (issue #18): 1400-byte payloads from namespace A to
# namespace B over a veth pair (192.0.2.1 ⇄ 192.0.2.2), no crypto, no TUN, one sending and one
# receiving process (crates/ferrovpn/examples/socket_ceiling.rs, ferrovpn's own socket wrappers):
#   raw      protocol 50 raw socket, sendmmsg of 64 packets (kernel writes the IPv4 header) →
#            protocol 50 raw socket, recvmmsg of up to 64
#   hdrincl  the send-only IPPROTO_RAW socket the data plane uses (our 20-byte header in its
#            own iovec), 64 per sendmmsg → protocol 50 raw socket as above
#   udp-gso  UDP port 4500 with GSO, two messages of 46 × 1400-byte segments per sendmmsg (46 is
#            the most that fit one 64 KB datagram) → UDP_GRO receiver (as ESP-in-UDP does)
#   udp      UDP, 64 single datagrams per sendmmsg → receiver without GRO
#   packet   AF_PACKET socket on A's veth with PACKET_QDISC_BYPASS, 64 whole Ethernet frames
#            (our IPv4 header) per sendmmsg: no route lookup, IP output or qdisc → as raw
#   packet-ring  the same socket with a TPACKET_V2 transmit ring, up to 64 frames written
#            into the ring per send(2) → as raw
# Rounds alternate the setups (the first setup rotates each round); each run sends for
# CEILING_SECONDS, the receiver counts from its first packet until nothing came for 1 s.
# Per run: packets and payload bytes received over the receiver's window, packets sent, CPU
# time of each process (getrusage: utime+stime; with this kernel's tick accounting the
# receiving namespace's softirq work done inside the sender's sendmmsg is the sender's system
# time), ksoftirqd CPU and the whole machine's softirq time (/proc/stat) over the run, socket
# drops (/proc/net/{raw,udp}) and input-backlog drops (/proc/net/softnet_stat).
# Both processes also report how long they waited on a run queue while runnable
# (/proc/self/schedstat): on a shared 2-core machine that is CPU taken by others, and it caps
# packets/s; CPU per packet does not depend on it.
# Results: docs/bench/$CEILING_LABEL.csv (every run) and a table of medians on stdout
# (scripts/bench-ceiling.sh --report CSV prints the table of an earlier run).
#
#   sudo flock /work/bench.lock scripts/bench-ceiling.sh
# Env: CEILING_ROUNDS (3), CEILING_SECONDS (5), CEILING_MODES ("raw hdrincl udp-gso udp"),
#      CEILING_LABEL (ceiling), CEILING_BIN (default: builds the release example), CEILING_RPS
#      (a CPU mask in hex for rps_cpus of both veth ends, as bench.sh's BENCH_RPS: the receiving
#      namespace's stack then runs from the backlog on any of those CPUs instead of inside the
#      sender's sendmmsg, as it would on two machines), CEILING_PIN=1 (sender on CPU 0, receiver
#      on CPU 1 with taskset; with CEILING_RPS=2 the receiving stack runs on CPU 1 too, so the
#      sender's CPU is its sending stack alone), CEILING_RECV_SPIN=1 (the receiver calls recvmmsg
#      in a loop and never sleeps in poll: no wake-up per few packets charged to the sender).
# Needs root (namespaces), ip, python3, getconf; a missing one is an error (exit 1).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib/netns.sh"

die() {
    printf '\n!!!!! bench-ceiling.sh: %s !!!!!\n\n' "$*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
for c in ip python3 getconf awk; do
    command -v "$c" >/dev/null 2>&1 || die "required command $c missing"
done

report() {
    python3 - "$1" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
modes = []
for r in rows:
    if r["mode"] not in modes:
        modes.append(r["mode"])
def med(xs):
    return statistics.median(xs)
print("| setup | received Mpps | received Gbit/s (payload) | lost (sent − received) | sender µs CPU / pkt sent | receiver µs CPU / pkt | both, CPU s / GB | sender cores | receiver cores | ksoftirqd cores | machine softirq cores | socket drops | sender waiting for a CPU | sender-core ceiling, Mpps (Gbit/s) | runs (Gbit/s) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for m in modes:
    rs = [r for r in rows if r["mode"] == m]
    f = lambda r, k: float(r[k])
    pps = [f(r, "recv_pkts") / f(r, "recv_seconds") for r in rs]
    gbps = [f(r, "recv_bytes") * 8 / f(r, "recv_seconds") / 1e9 for r in rs]
    lost = [1 - f(r, "recv_pkts") / f(r, "sent_pkts") for r in rs]
    scpu = [(f(r, "send_utime_us") + f(r, "send_stime_us")) for r in rs]
    rcpu = [(f(r, "recv_utime_us") + f(r, "recv_stime_us")) for r in rs]
    s_pp = [c / f(r, "sent_pkts") for c, r in zip(scpu, rs)]
    r_pp = [c / f(r, "recv_pkts") for c, r in zip(rcpu, rs)]
    sgb = [(a + b) / 1e6 / (f(r, "recv_bytes") / 1e9) for a, b, r in zip(scpu, rcpu, rs)]
    s_cores = [c / 1e6 / f(r, "send_seconds") for c, r in zip(scpu, rs)]
    r_cores = [c / 1e6 / f(r, "recv_seconds") for c, r in zip(rcpu, rs)]
    # ksoftirqd and /proc/stat span the whole run (sender time + the receiver's 1 s idle tail).
    k_cores = [f(r, "ksoftirqd_ticks") / f(r, "clk_tck") / f(r, "send_seconds") for r in rs]
    q_cores = [f(r, "softirq_ticks") / f(r, "clk_tck") / f(r, "send_seconds") for r in rs]
    drops = [f(r, "sock_drops") for r in rs]
    # Runnable but not running (another process had the CPU), as a share of the window.
    sw = [float(r.get("send_runq_wait_us") or "nan") / 1e6 / f(r, "send_seconds") for r in rs]
    print(f"| {m} | {med(pps)/1e6:.3f} | **{med(gbps):.2f}** | {med(lost)*100:.1f} % | {med(s_pp):.2f} | {med(r_pp):.2f} | {med(sgb):.2f} | {med(s_cores):.2f} | {med(r_cores):.2f} | {med(k_cores):.2f} | {med(q_cores):.2f} | {med(drops):.0f} | {med(sw)*100:.0f} % | {1/med(s_pp):.3f} ({1400*8/med(s_pp)/1e3:.2f}) | {'/'.join(f'{g:.2f}' for g in gbps)} |")
EOF
}
if [ "${1:-}" = --report ]; then
    report "$2"
    exit 0
fi

ROUNDS="${CEILING_ROUNDS:-3}"
SECS="${CEILING_SECONDS:-5}"
MODES="${CEILING_MODES:-raw hdrincl udp-gso udp}"
LABEL="${CEILING_LABEL:-ceiling}"
OUT="$ROOT/docs/bench"
CSV="$OUT/$LABEL.csv"
TICK="$(getconf CLK_TCK)"
BIN="${CEILING_BIN:-}"
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release -p ferrovpn --example socket_ceiling) ||
        die "could not build the socket_ceiling example"
    BIN="$ROOT/target/release/examples/socket_ceiling"
fi
[ -x "$BIN" ] || die "$BIN is not an executable"
SPIN=
[ "${CEILING_RECV_SPIN:-0}" = 1 ] && SPIN=1
PIN_SEND=() PIN_RECV=()
if [ "${CEILING_PIN:-0}" = 1 ]; then
    command -v taskset >/dev/null 2>&1 || die "CEILING_PIN=1 needs taskset"
    PIN_SEND=(taskset -c 0) PIN_RECV=(taskset -c 1)
fi
for m in $MODES; do
    case "$m" in raw | hdrincl | udp-gso | udp | packet | packet-ring) ;; *) die "unknown mode $m" ;; esac
done

say() { printf '[ceiling] %s\n' "$*" >&2; }

# CPU ticks (utime+stime) of all ksoftirqd threads so far.
ksoftirqd_ticks() {
    local p t=0 v
    for p in $(pgrep -x 'ksoftirqd/[0-9]+' 2>/dev/null || true); do
        v="$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)"
        t=$((t + v))
    done
    echo "$t"
}
# The whole machine's softirq ticks and busy ticks (everything but idle and iowait).
sys_ticks() {
    awk '$1 == "cpu" { print $8, $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
# The value of KEY in a line of key=value pairs.
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

fv_init
fv_two_ns
if [ -n "${CEILING_RPS:-}" ]; then
    for pair in "$FV_NS_A:$FV_IF_A" "$FV_NS_B:$FV_IF_B"; do
        ip netns exec "${pair%%:*}" sh -c "echo $CEILING_RPS >/sys/class/net/${pair#*:}/queues/rx-0/rps_cpus" ||
            die "CEILING_RPS: cannot set rps_cpus on ${pair#*:}"
    done
fi
# The packet modes write whole frames: A's device and B's MAC address.
DST_MAC="$(ip netns exec "$FV_NS_B" cat "/sys/class/net/$FV_IF_B/address")"
mkdir -p "$OUT"
echo "round,mode,load1,sent_pkts,send_seconds,send_calls,send_errors,send_utime_us,send_stime_us,send_runq_wait_us,recv_pkts,recv_bytes,recv_seconds,recv_calls,recv_wakes,recv_bad,sock_drops,backlog_drops,recv_utime_us,recv_stime_us,recv_runq_wait_us,ksoftirqd_ticks,softirq_ticks,busy_ticks,clk_tck" >"$CSV"
say "machine: $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); rps_cpus ${CEILING_RPS:-unset}; pinned ${CEILING_PIN:-0}; receiver spins ${CEILING_RECV_SPIN:-0}; binary $BIN"

run_one() { # ROUND MODE
    local round="$1" mode="$2" ready rpid rc send recv k0 k1 s0 s1 load
    ready="$FV_TMP/ready.$round.$mode"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    FV_SPAWN_LOG="$FV_TMP/recv.$round.$mode" fv_spawn "$FV_NS_B" "${PIN_RECV[@]}" "$BIN" recv --mode "$mode" \
        --local 192.0.2.2 --ready "$ready" --idle-ms 1000 --wait-s 30 \
        ${SPIN:+--spin}
    rpid="$FV_LAST_PID"
    for ((i = 0; i < 100; i++)); do
        [ -e "$ready" ] && break
        kill -0 "$rpid" 2>/dev/null || break
        sleep 0.05
    done
    [ -e "$ready" ] || {
        cat "$FV_TMP/recv.$round.$mode" >&2
        die "receiver ($mode) did not come up"
    }
    k0="$(ksoftirqd_ticks)"
    s0="$(sys_ticks)"
    send="$(ip netns exec "$FV_NS_A" "${PIN_SEND[@]}" "$BIN" send --mode "$mode" --local 192.0.2.1 \
        --remote 192.0.2.2 --seconds "$SECS" --dev "$FV_IF_A" --dst-mac "$DST_MAC")" ||
        die "sender ($mode) failed"
    rc=0
    wait "$rpid" || rc=$?
    k1="$(ksoftirqd_ticks)"
    s1="$(sys_ticks)"
    # Forget the receiver's PID: it has exited and been reaped.
    local keep=() p
    for p in "${FV_PIDS[@]}"; do [ "$p" = "$rpid" ] || keep+=("$p"); done
    FV_PIDS=("${keep[@]}")
    recv="$(grep '^role=recv' "$FV_TMP/recv.$round.$mode" || true)"
    [ "$rc" = 0 ] && [ -n "$recv" ] || {
        cat "$FV_TMP/recv.$round.$mode" >&2
        die "receiver ($mode) failed (exit $rc)"
    }
    say "round $round $mode: $send"
    say "round $round $mode: $recv"
    local row="$round,$mode,$load" k
    for k in sent_pkts seconds calls send_errors utime_us stime_us runq_wait_us; do row="$row,$(field "$k" "$send")"; done
    for k in recv_pkts recv_bytes seconds calls wakes bad sock_drops backlog_drops utime_us stime_us runq_wait_us; do
        row="$row,$(field "$k" "$recv")"
    done
    read -r sq0 b0 <<<"$s0"
    read -r sq1 b1 <<<"$s1"
    row="$row,$((k1 - k0)),$((sq1 - sq0)),$((b1 - b0)),$TICK"
    echo "$row" >>"$CSV"
}

set -- $MODES
NMODES=$#
for ((r = 1; r <= ROUNDS; r++)); do
    # Rotate the order so no setup always runs first (or right after the same one).
    order=()
    for ((j = 0; j < NMODES; j++)); do
        idx=$(((r - 1 + j) % NMODES + 1))
        order+=("${!idx}")
    done
    for m in "${order[@]}"; do
        run_one "$r" "$m"
        sleep 1
    done
done

say "runs: $CSV"
report "$CSV"

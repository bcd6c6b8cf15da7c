#!/usr/bin/env bash
# Remote-access benchmark (issue #14): one ferrovpn gateway (remote_access = "gateway", IPv4 pool,
# users file, one shared TUN) and N ferrovpn clients (default 50), all up at once and all pushing
# traffic together.
#
# Topology, all in namespaces made here:
#   switch namespace S: a bridge; one veth per host attached to it
#   gateway G: 192.0.2.1/24 outer, 203.0.113.1/32 on lo (its inner side: the iperf3 servers),
#              pool 198.51.100.0/24 on the shared TUN fvgw (Main Mode, PSK + XAuth, Mode Config
#              pull, ESP aes128gcm16, IKE aes256-sha256-modp2048: the e2e gateway's settings)
#   client i (1..N) in its own namespace Ci: 192.0.2.(9+i)/24 outer, one `ferrovpn up` process
#              (remote_access = "client", user ui, its own password file), TUN fvc0 with the
#              address the gateway assigns, 203.0.113.0/24 routed into it.
# One ferrovpn process per client (N processes, N namespaces): each client is what a real one
# is, a separate daemon with its own IKE state, sockets and TUN.
#
# Measured:
#   up_s         seconds from starting the first client daemon to the gateway holding an IPsec
#                SA pair for every one of the N pool addresses (status --json, polled every
#                0.2 s); all N daemons are started back to back (configs checked beforehand)
#   rss          the gateway's VmRSS with no client, with N clients up and idle, and after the
#                traffic; per client = (RSS with N − RSS with none) / N
#   traffic      per direction (up: clients → gateway, down: gateway → clients, iperf3 -R), RUNS
#                runs: one iperf3 TCP stream per client, all N at once, each to its own iperf3
#                server in G (port 5201+i) on 203.0.113.1. Aggregate = bytes through the
#                gateway's TUN fvgw (rx for up, tx for down) over a window of SECS seconds that
#                starts 2 s after the last iperf3 client was launched (the streams run SECS+5 s,
#                so all N are running for the whole window). Also each client's own iperf3
#                rate (min / median / max over the N: fairness) and the gateway's CPU seconds in
#                the window (cores per Gbit/s).
# Every client's lease is checked (its fvc0 holds an address from the pool, all different) and
# each client pings 203.0.113.1 once through its tunnel before the traffic.
#
#   sudo scripts/bench-remote-access.sh                 (N = 50, about 3 minutes)
#   sudo RA_CLIENTS=10 RA_RUNS=1 scripts/bench-remote-access.sh
# Env: RA_CLIENTS (N, 1–240, default 50), RA_RUNS (3), RA_SECONDS (10), RA_DIRECTIONS ("up down"),
# RA_ENCAP (raw: ESP as IP protocol 50, what two hosts without NAT negotiate, the default; udp:
# the clients set nat_traversal = "force", so ESP-in-UDP 4500 as behind a NAT, where most
# remote-access clients are), RA_LABEL (default "remote-access", "remote-access-udp" with
# RA_ENCAP=udp), FERROVPN_BIN, BENCH_NO_DOC=1 (do not touch
# docs/BENCHMARKS.md). Results: docs/bench/$RA_LABEL.csv (every run) and .json (all figures), and
# a block in docs/BENCHMARKS.md between the markers for this label.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
E2E_ROOT="$ROOT"
. "$ROOT/scripts/lib/netns.sh"
. "$ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "bench-remote-access.sh needs network namespaces"
require_cmd_or_skip ip iperf3 python3
e2e_binary

N="${RA_CLIENTS:-50}"
RUNS="${RA_RUNS:-3}"
SECS="${RA_SECONDS:-10}"
DIRS="${RA_DIRECTIONS:-up down}"
ENCAP="${RA_ENCAP:-raw}"
case "$ENCAP" in
    raw) NATT="" LABEL="${RA_LABEL:-remote-access}" ;;
    udp) NATT='nat_traversal = "force"' LABEL="${RA_LABEL:-remote-access-udp}" ;;
    *) echo "RA_ENCAP must be raw or udp" >&2; exit 2 ;;
esac
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] && [ "$N" -le 240 ] || { echo "RA_CLIENTS must be 1–240" >&2; exit 2; }
OUT="$ROOT/docs/bench"
RAW="$OUT/$LABEL.csv"
PSK="ferrovpn-ra-bench-group"
POOL=198.51.100.0/24
GW_OUT=192.0.2.1
GW_IN=203.0.113.1
TICK="$(getconf CLK_TCK)"
mkdir -p "$OUT"

say() { printf '[ra-bench] %s\n' "$*" >&2; }
cpu_of() { awk -v t="$TICK" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
now() { date +%s.%N; }

fv_init
E2E_CASE="remote-access-bench"
E2E_LOGS=()
NS_S="${FV_ID}s"
NS_G="${FV_ID}g"
FV_NO_IPV6=1 fv_ns_create "$NS_S"
FV_NO_IPV6=1 fv_ns_create "$NS_G"
ip -n "$NS_S" link add br0 type bridge
ip -n "$NS_S" link set br0 up
# attach NS IF_IN_NS ADDR: a veth from the bridge to NS.
attach() {
    local port="$1" ns="$2" addr="$3"
    ip link add "$port" netns "$NS_S" type veth peer name out0 netns "$ns"
    ip -n "$NS_S" link set "$port" master br0 up
    ip -n "$ns" addr add "$addr" dev out0
    ip -n "$ns" link set out0 up
}
attach "${FV_ID}-g" "$NS_G" "$GW_OUT/24"
fv_add_inner "$NS_G" "$GW_IN/32"

# The gateway.
for ((i = 1; i <= N; i++)); do
    printf 'pw-of-user-%d\n' "$i" | "$FERROVPN" user add "$FV_TMP/users" "u$i" >/dev/null ||
        fail "ferrovpn user add u$i failed"
done
e2e_psk "$FV_TMP/g.psk" "$PSK"
SOCK_G="$FV_TMP/g.sock"
C_SOCK="$SOCK_G" C_LOCAL="$GW_OUT" C_REMOTE=any C_PSKFILE="$FV_TMP/g.psk" C_START=respond \
    C_LOG_LEVEL=warn C_WORKERS=default C_NAME=rw C_DAEMON_EXTRA='shared_interfaces = ["fvgw"]' \
    C_EXTRA="remote_access = \"gateway\"
pool = \"$POOL\"
users_file = \"$FV_TMP/users\"
dns = [\"203.0.113.53\"]
modeconfig = \"pull\"" C_TUNNEL="[connection.route_based]
interface = \"fvgw\"
local_ts = \"203.0.113.0/24\"
remote_ts = \"$POOL\"
routes = [\"$POOL\"]" e2e_conf "$FV_TMP/g.toml"
e2e_up "$NS_G" "$FV_TMP/g.toml" "$FV_TMP/gateway.log"
PID_G="$E2E_PID"
e2e_wait_udp "$NS_G" 500 10 || fail "gateway does not listen on UDP 500"

# The clients' namespaces and configs (checked now, so that starting them is only the spawn).
say "making $N client namespaces"
for ((i = 1; i <= N; i++)); do
    ns="${FV_ID}c$i"
    FV_NO_IPV6=1 fv_ns_create "$ns"
    attach "${FV_ID}p$i" "$ns" "192.0.2.$((9 + i))/24"
    (umask 077 && printf 'pw-of-user-%d\n' "$i" >"$FV_TMP/u$i.pw")
    e2e_psk "$FV_TMP/c$i.psk" "$PSK"
    C_SOCK="$FV_TMP/c$i.sock" C_LOCAL="192.0.2.$((9 + i))" C_REMOTE="$GW_OUT" \
        C_PSKFILE="$FV_TMP/c$i.psk" C_START=initiate C_LOG_LEVEL=warn C_WORKERS=default \
        C_NAME=ra C_EXTRA="$NATT
remote_access = \"client\"
xauth_user = \"u$i\"
xauth_password_file = \"$FV_TMP/u$i.pw\"" C_TUNNEL="[connection.route_based]
interface = \"fvc0\"
remote_ts = \"203.0.113.0/24\"" e2e_conf "$FV_TMP/c$i.toml"
    "$FERROVPN" check -c "$FV_TMP/c$i.toml" >"$FV_TMP/c$i.check" 2>&1 ||
        { cat "$FV_TMP/c$i.check" >&2; fail "ferrovpn check refused c$i.toml"; }
done
# The gateway's idle RSS after a moment with no client.
sleep 2
RSS0="$(rss_kib "$PID_G")"

# clients_up: how many distinct pool addresses have an IPsec SA pair on the gateway.
clients_up() {
    e2e_q "$SOCK_G" 'len({s["remote_ts"] for s in sas})' 2>/dev/null || echo 0
}

say "starting $N clients at once"
PIDS_C=()
T0="$(now)"
for ((i = 1; i <= N; i++)); do
    FV_SPAWN_LOG="$FV_TMP/c$i.log" fv_spawn "${FV_ID}c$i" "$FERROVPN" up -c "$FV_TMP/c$i.toml"
    PIDS_C+=("$FV_LAST_PID")
done
T_SPAWNED="$(now)"
UP=0
for ((k = 0; k < 900; k++)); do
    UP="$(clients_up)"
    [ "${UP:-0}" -ge "$N" ] && break
    sleep 0.2
done
T_UP="$(now)"
[ "${UP:-0}" -ge "$N" ] || {
    E2E_LOGS+=("$FV_TMP/c1.log")
    fail "only $UP of $N clients up after 180 s"
}
UP_S="$(python3 -c "print(f'{$T_UP - $T0:.2f}')")"
SPAWN_S="$(python3 -c "print(f'{$T_SPAWNED - $T0:.2f}')")"
GOT_ENCAP="$(e2e_q "$SOCK_G" '",".join(sorted({s["encap"] for s in sas}))')"
[ "$GOT_ENCAP" = "$ENCAP" ] || fail "the gateway's IPsec SAs use '$GOT_ENCAP', not $ENCAP"
say "all $N clients up in $UP_S s (the $N daemons were started within $SPAWN_S s), ESP $ENCAP"

# Every client: its address on fvc0, all different, inside the pool; one ping through its tunnel.
VIPS=()
for ((i = 1; i <= N; i++)); do
    v=""
    for ((k = 0; k < 50; k++)); do
        v="$(ip -n "${FV_ID}c$i" -4 -o addr show dev fvc0 2>/dev/null | awk '{ print $4 }' | cut -d/ -f1 | head -1)"
        [ -n "$v" ] && break
        sleep 0.1
    done
    [ -n "$v" ] || { E2E_LOGS+=("$FV_TMP/c$i.log"); fail "client $i has no address on fvc0"; }
    VIPS+=("$v")
done
python3 - "$POOL" "${VIPS[@]}" <<'PY' || fail "the clients' addresses are not distinct addresses of the pool"
import ipaddress, sys
pool = ipaddress.ip_network(sys.argv[1])
v = [ipaddress.ip_address(a) for a in sys.argv[2:]]
sys.exit(0 if len(set(v)) == len(v) and all(a in pool for a in v) else 1)
PY
PING_FAIL=0
PING_PIDS=()
for ((i = 1; i <= N; i++)); do
    ip netns exec "${FV_ID}c$i" ping -n -q -c 2 -i 0.5 -W 3 -I "${VIPS[$((i - 1))]}" "$GW_IN" >/dev/null 2>&1 &
    PING_PIDS+=("$!")
done
for p in "${PING_PIDS[@]}"; do wait "$p" || PING_FAIL=$((PING_FAIL + 1)); done
[ "$PING_FAIL" = 0 ] || fail "$PING_FAIL of $N clients could not ping $GW_IN through the tunnel"
say "every client has its own pool address and pings $GW_IN through its tunnel"
sleep 2
RSS1="$(rss_kib "$PID_G")"
CLIENT_RSS="$(for p in "${PIDS_C[@]}"; do rss_kib "$p"; done | python3 -c 'import statistics, sys; v=[int(x) for x in sys.stdin]; print(statistics.median(v))')"

# iperf3 servers in G, one per client.
for ((i = 1; i <= N; i++)); do
    FV_SPAWN_LOG="$FV_TMP/iperf3-s$i.log" fv_spawn "$NS_G" iperf3 -s -B "$GW_IN" -p $((5200 + i))
done
for ((k = 0; k < 100; k++)); do
    [ "$(ip netns exec "$NS_G" ss -Htln 'sport >= :5201' | wc -l)" -ge "$N" ] && break
    sleep 0.1
done

echo "direction,run,clients,window_s,tun_bytes,aggregate_gbps,gateway_cpu_s,client_mbps_min,client_mbps_median,client_mbps_max,iperf3_sum_gbps,retransmits,failed,drops_gateway,drops_clients,tun_drops_gateway,tun_drops_clients" >"$RAW"
# Datagrams dropped on full receive buffers of the VPN sockets (raw ESP; UDP 500 = 0x01F4 and
# 4500 = 0x1194): of the gateway, and summed over all clients.
vpn_drops() {
    ip netns exec "$1" sh -c 'cat /proc/net/raw; grep -E "^ *[0-9]+: [0-9A-F]+:(01F4|1194) " /proc/net/udp' 2>/dev/null |
        awk '$1 ~ /^[0-9]+:$/ { d += $NF } END { print d + 0 }'
}
client_drops() {
    local i d=0
    for ((i = 1; i <= N; i++)); do d=$((d + $(vpn_drops "${FV_ID}c$i"))); done
    echo "$d"
}
# Packets the kernel dropped on the way into a TUN device (NS DEV): its tx_dropped plus its
# qdisc's drops (a full queue while the VPN process does not read fast enough).
tun_drops() {
    ip netns exec "$1" sh -c "cat /sys/class/net/$2/statistics/tx_dropped; tc -s qdisc show dev $2 | sed -n 's/.*dropped \([0-9]*\).*/\1/p'" 2>/dev/null |
        awk '{ d += $1 } END { print d + 0 }'
}
client_tun_drops() {
    local i d=0
    for ((i = 1; i <= N; i++)); do d=$((d + $(tun_drops "${FV_ID}c$i" fvc0))); done
    echo "$d"
}
TUN_STAT=/sys/class/net/fvgw/statistics
measure() { # DIRECTION RUN
    local dir="$1" run="$2" i r0 r1 c0 c1 ta tb stat opts=() pids=() dg0 dc0 drops
    local tg0 tc0
    dg0="$(vpn_drops "$NS_G")" dc0="$(client_drops)" tg0="$(tun_drops "$NS_G" fvgw)" tc0="$(client_tun_drops)"
    [ "$dir" = down ] && opts=(-R)
    stat=rx_bytes
    [ "$dir" = down ] && stat=tx_bytes
    for ((i = 1; i <= N; i++)); do
        ip netns exec "${FV_ID}c$i" timeout $((SECS + 30)) iperf3 -c "$GW_IN" -p $((5200 + i)) \
            -B "${VIPS[$((i - 1))]}" -t $((SECS + 5)) -J "${opts[@]}" >"$FV_TMP/r-$dir-$run-$i.json" 2>&1 &
        pids+=("$!")
    done
    sleep 2
    r0="$(ip netns exec "$NS_G" cat "$TUN_STAT/$stat")" c0="$(cpu_of "$PID_G")" ta="$(now)"
    sleep "$SECS"
    r1="$(ip netns exec "$NS_G" cat "$TUN_STAT/$stat")" c1="$(cpu_of "$PID_G")" tb="$(now)"
    for p in "${pids[@]}"; do wait "$p" || true; done
    drops="$(($(vpn_drops "$NS_G") - dg0)),$(($(client_drops) - dc0)),$(($(tun_drops "$NS_G" fvgw) - tg0)),$(($(client_tun_drops) - tc0))"
    python3 - "$FV_TMP" "$dir" "$run" "$N" "$r0" "$r1" "$ta" "$tb" "$c0" "$c1" "$drops" >>"$RAW" <<'PY'
import json, statistics, sys
tmp, d, run, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
r0, r1, ta, tb, c0, c1 = map(float, sys.argv[5:11])
rates, total, retr, failed = [], 0.0, 0, 0
for i in range(1, n + 1):
    try:
        e = json.load(open(f"{tmp}/r-{d}-{run}-{i}.json"))["end"]
        s = e["sum_received"]
        rates.append(s["bits_per_second"] / 1e6)
        total += s["bits_per_second"]
        retr += e.get("sum_sent", {}).get("retransmits", 0)
    except Exception:
        failed += 1
win = tb - ta
agg = (r1 - r0) * 8 / win / 1e9
mn, md, mx = (min(rates), statistics.median(rates), max(rates)) if rates else ("", "", "")
fm = lambda x: "" if x == "" else f"{x:.1f}"
print(f"{d},{run},{n},{win:.2f},{r1 - r0:.0f},{agg:.3f},{c1 - c0:.2f},{fm(mn)},{fm(md)},{fm(mx)},{total / 1e9:.3f},{retr},{failed},{sys.argv[11]}")
PY
    say "$(tail -n 1 "$RAW")"
}
for dir in $DIRS; do
    for ((run = 1; run <= RUNS; run++)); do
        measure "$dir" "$run"
    done
done
RSS2="$(rss_kib "$PID_G")"
say "gateway RSS: $RSS0 KiB with no client, $RSS1 KiB with $N up, $RSS2 KiB after the traffic"
say "gateway counters: $(e2e_q "$SOCK_G" '{k: total(k) for k in ("in_packets", "out_packets", "auth_failures", "replay_drops")}')"
STILL_UP="$(clients_up)"
[ "$STILL_UP" -ge "$N" ] || fail "only $STILL_UP of $N clients still up after the traffic"

MACHINE="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, kernel $(uname -r)"
DOC=""
[ "${BENCH_NO_DOC:-0}" = 1 ] || DOC="$ROOT/docs/BENCHMARKS.md"
python3 - "$RAW" "$LABEL" "$DOC" <<PY
import csv, json, statistics, sys
sys.path.insert(0, "$ROOT/scripts")
from bench_report import update_doc
raw, label, doc = sys.argv[1:4]
rows = list(csv.DictReader(open(raw)))
n = $N
meta = {
    "label": label, "date": "$(date -u +%Y-%m-%d)", "machine": "$MACHINE",
    "load": "$(cut -d' ' -f1-3 /proc/loadavg)", "ferrovpn": "$(cd "$ROOT" && git rev-parse --short HEAD)",
    "clients": n, "encap": "$ENCAP", "runs": $RUNS, "seconds": $SECS, "up_s": $UP_S, "spawn_s": $SPAWN_S,
    "gateway_rss_kib": {"none": $RSS0, "n_up_idle": $RSS1, "after_traffic": $RSS2},
    "client_rss_kib_median": $CLIENT_RSS,
}
res = {}
for d in dict.fromkeys(r["direction"] for r in rows):
    rs = [r for r in rows if r["direction"] == d]
    med = lambda k: statistics.median(float(r[k]) for r in rs if r[k] != "")
    agg = [float(r["aggregate_gbps"]) for r in rs]
    cpu = statistics.median(float(r["gateway_cpu_s"]) / (float(r["aggregate_gbps"]) * float(r["window_s"])) for r in rs if float(r["aggregate_gbps"]) > 0)
    res[d] = {"aggregate_gbps": statistics.median(agg), "all": agg, "client_mbps_min": med("client_mbps_min"),
              "client_mbps_median": med("client_mbps_median"), "client_mbps_max": med("client_mbps_max"),
              "gateway_cores_per_gbps": cpu, "retransmits": med("retransmits"),
              "failed": sum(int(r["failed"]) for r in rs),
              "drops_gateway": med("drops_gateway"), "drops_clients": med("drops_clients"),
              "tun_drops_gateway": med("tun_drops_gateway"), "tun_drops_clients": med("tun_drops_clients")}
json.dump({"meta": meta, "results": res}, open(raw[:-4] + ".json", "w"), indent=1)
rss = meta["gateway_rss_kib"]
per_idle = (rss["n_up_idle"] - rss["none"]) / n
per_after = (rss["after_traffic"] - rss["none"]) / n
lines = [
    f"### Run \"{label}\" ({meta['date']}, ferrovpn {meta['ferrovpn']}): {n} clients, " + ("raw ESP" if meta["encap"] == "raw" else "ESP-in-UDP (clients force NAT-T)"),
    "",
    f"Machine: {meta['machine']}; gateway, {n} client daemons and all iperf3 processes share it, and other helpers' builds ran meanwhile (load average at the end: {meta['load']}).",
    f"Command: \`sudo RA_ENCAP={meta['encap']} RA_CLIENTS={n} RA_RUNS=$RUNS RA_SECONDS=$SECS RA_LABEL={label} scripts/bench-remote-access.sh\`. Raw runs: [bench/{label}.csv](bench/{label}.csv), all figures: [bench/{label}.json](bench/{label}.json).",
    "",
    f"- **All {n} clients up in {meta['up_s']:.1f} s** (first daemon started → the gateway holds an IPsec SA pair for {n} pool addresses; the {n} daemons were started within {meta['spawn_s']:.1f} s). Each client's fvc0 holds its own pool address and pings 203.0.113.1 through its tunnel.",
    f"- **Gateway memory: {per_idle:.0f} KiB per client** with {n} clients up and idle ((VmRSS {rss['n_up_idle']} KiB − {rss['none']} KiB with no client) / {n}); {per_after:.0f} KiB per client after the traffic (VmRSS {rss['after_traffic']} KiB). Each client daemon: median VmRSS {meta['client_rss_kib_median']:.0f} KiB.",
    "",
    f"| direction | aggregate Gbit/s through the gateway (median) | runs | per-client Mbit/s min / median / max | gateway cores per Gbit/s | TCP retransmits (all clients) | VPN socket drops: gateway / all clients | TUN drops: gateway / all clients | failed iperf3 runs |",
    "|---|---|---|---|---|---|---|---|---|",
]
names = {"up": f"up: {n} clients → gateway", "down": f"down: gateway → {n} clients (iperf3 -R)"}
for d, c in res.items():
    spread = "/".join(f"{g:.2f}" for g in c["all"])
    lines.append(f"| {names.get(d, d)} | **{c['aggregate_gbps']:.2f}** ({spread}) | {len(c['all'])} | {c['client_mbps_min']:.0f} / {c['client_mbps_median']:.0f} / {c['client_mbps_max']:.0f} | {c['gateway_cores_per_gbps']:.2f} | {c['retransmits']:.0f} | {c['drops_gateway']:.0f} / {c['drops_clients']:.0f} | {c['tun_drops_gateway']:.0f} / {c['tun_drops_clients']:.0f} | {c['failed']} |")
text = "\n".join(lines)
print(text)
if doc:
    update_doc(doc, label, text)
PY

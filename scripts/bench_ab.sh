#!/usr/bin/env bash
# A/B of two ferrovpn binaries in one sitting: rounds alternate A, B, A, B, … (so drift and the
# neighbours' load on this shared machine hit both alike), each round one scripts/bench.sh run
# per binary; the report gives per-binary medians over all rounds and the ratio B/A.
#
#   sudo scripts/bench_ab.sh OLD_BINARY NEW_BINARY [LABEL]
# Env: AB_ROUNDS (5), BENCH_SETUPS ("fv-fv fv-fv-udp"), BENCH_TESTS ("tcp1"), BENCH_SECONDS (5).
# Output: docs/bench/LABEL-a.csv and LABEL-b.csv (every run), the table on stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
A="${1:?usage: bench_ab.sh OLD_BINARY NEW_BINARY [LABEL]}"
B="${2:?usage: bench_ab.sh OLD_BINARY NEW_BINARY [LABEL]}"
LABEL="${3:-ab}"
ROUNDS="${AB_ROUNDS:-5}"
export BENCH_SETUPS="${BENCH_SETUPS:-fv-fv fv-fv-udp}" BENCH_TESTS="${BENCH_TESTS:-tcp1}"
export BENCH_SECONDS="${BENCH_SECONDS:-5}" BENCH_RUNS=1 BENCH_NO_DOC=1
OUT="$ROOT/docs/bench"
mkdir -p "$OUT"
for side in a b; do rm -f "$OUT/$LABEL-$side.csv"; done
LOG="$(mktemp /tmp/bench_ab.XXXXXX.log)"
echo "[ab] bench.sh's own output: $LOG" >&2

for ((r = 1; r <= ROUNDS; r++)); do
    for side in a b; do
        bin="$A"
        [ "$side" = b ] && bin="$B"
        echo "[ab] round $r/$ROUNDS, binary $side ($bin)" >&2
        FERROVPN_BIN="$bin" BENCH_LABEL="$LABEL-$side-round" "$ROOT/scripts/bench.sh" >>"$LOG" 2>&1 ||
            { tail -n 20 "$LOG" >&2; echo "[ab] bench.sh failed" >&2; exit 1; }
        csv="$OUT/$LABEL-$side-round.csv"
        if [ ! -e "$OUT/$LABEL-$side.csv" ]; then
            head -n 1 "$csv" | sed 's/^/round,/' >"$OUT/$LABEL-$side.csv"
        fi
        tail -n +2 "$csv" | sed "s/^/$r,/" >>"$OUT/$LABEL-$side.csv"
        rm -f "$csv" "$OUT/$LABEL-$side-round.json" "$OUT/$LABEL-$side-round.svg"
    done
done

python3 - "$OUT/$LABEL-a.csv" "$OUT/$LABEL-b.csv" "$A" "$B" <<'EOF'
import csv, statistics, sys
def load(p):
    rows = {}
    for r in csv.DictReader(open(p)):
        rows.setdefault((r["setup"], r["test"]), []).append(r)
    return rows
a, b = load(sys.argv[1]), load(sys.argv[2])
print(f"A = {sys.argv[3]}\nB = {sys.argv[4]}\n")
print("| setup | test | A Gbit/s median (runs) | B Gbit/s median (runs) | B/A | A CPU s/GB (a+b) | B CPU s/GB (a+b) |")
print("|---|---|---|---|---|---|---|")
def cpu(rs):
    v = [(float(r["cpu_a_s"]) + float(r["cpu_b_s"])) / (float(r["bytes"]) / 1e9) for r in rs if float(r["bytes"]) > 0]
    return statistics.median(v) if v else float("nan")
for k in sorted(set(a) | set(b)):
    ga = [float(r["gbps"]) for r in a.get(k, [])]
    gb = [float(r["gbps"]) for r in b.get(k, [])]
    ma = statistics.median(ga) if ga else float("nan")
    mb = statistics.median(gb) if gb else float("nan")
    runs = lambda g: "/".join(f"{x:.2f}" for x in g)
    print(f"| {k[0]} | {k[1]} | {ma:.2f} ({runs(ga)}) | {mb:.2f} ({runs(gb)}) | {mb / ma:.2f} | {cpu(a.get(k, [])):.2f} | {cpu(b.get(k, [])):.2f} |")
EOF

#!/usr/bin/env python3
"""Medians of scripts/bench.sh runs: a table on stdout, LABEL.json and LABEL.svg next to the CSV,
and (with --doc) the table and chart in docs/BENCHMARKS.md between this label's markers.
Standard library only."""
import argparse
import csv
import json
import os
import statistics
import sys

SETUPS = [
    ("veth", "bare veth (no tunnel)"),
    ("fv-fv", "ferrovpn ⇄ ferrovpn (raw ESP)"),
    ("fv-fv-udp", "ferrovpn ⇄ ferrovpn (ESP-in-UDP)"),
    ("ss-ss", "strongSwan ⇄ strongSwan"),
    ("fv-ss", "ferrovpn ⇄ strongSwan"),
    ("wg-go", "wireguard-go ⇄ wireguard-go"),
    ("boringtun", "boringtun ⇄ boringtun"),
]
TESTS = [
    ("tcp1", "TCP 1 stream"),
    ("tcp4", "TCP 4 streams"),
    ("lat", "TCP 1 stream + ping"),
    ("udp64", "UDP 64 B"),
    ("udp1400", "UDP 1400 B"),
]
COLORS = {
    "veth": "#9e9e9e",
    "fv-fv": "#d95f02",
    "fv-fv-udp": "#e6ab02",
    "ss-ss": "#1b9e77",
    "fv-ss": "#7570b3",
    "wg-go": "#1f78b4",
    "boringtun": "#e7298a",
}
# The rivals a ferrovpn setup's median is divided by in the ratio table (when measured).
RIVALS = ["veth", "ss-ss", "wg-go", "boringtun"]


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(rows):
    out = {}
    for setup, _ in SETUPS:
        for test, _ in TESTS:
            rs = [r for r in rows if r["setup"] == setup and r["test"] == test and num(r["gbps"])]
            if not rs:
                continue
            gbps = [num(r["gbps"]) for r in rs]
            cell = {"runs": len(rs), "gbps": median(gbps), "gbps_all": gbps}
            if test.startswith("udp"):
                cell["pps"] = median([num(r["pps"]) for r in rs])
                cell["loss_pct"] = median(
                    [100.0 * num(r["lost"]) / num(r["packets"]) if num(r["packets"]) else None for r in rs]
                )
            cell["retransmits"] = median([num(r.get("retransmits")) for r in rs])
            if test == "lat":
                # Median over the runs of each run's percentile (a few hundred pings per run).
                for k in ("rtt_idle_p50_ms", "rtt_p50_ms", "rtt_p90_ms", "rtt_p99_ms"):
                    cell[k] = median([num(r.get(k)) for r in rs])
                sent = sum(num(r.get("ping_sent")) or 0 for r in rs)
                lost = sum(num(r.get("ping_lost")) or 0 for r in rs)
                cell["pings"] = sent
                cell["ping_loss_pct"] = 100.0 * lost / sent if sent else None
            cell["drops_b"] = median([num(r.get("drops_b")) for r in rs])
            for side in ("a", "b"):
                per_gb = [
                    num(r[f"cpu_{side}_s"]) / (num(r["bytes"]) / 1e9)
                    if num(r[f"cpu_{side}_s"]) is not None and num(r["bytes"])
                    else None
                    for r in rs
                ]
                cell[f"cpu_{side}_s_per_gb"] = median(per_gb)
            a, b = cell["cpu_a_s_per_gb"], cell["cpu_b_s_per_gb"]
            # cores per Gbit/s = CPU seconds per Gbit = (CPU s per GB) / 8, both sides together
            cell["cores_per_gbps"] = (a + b) / 8 if a is not None and b is not None else None
            out[f"{setup}/{test}"] = cell
    return out


def fmt(x, spec):
    return "–" if x is None else format(x, spec)


def table(summary):
    lines = [
        "| setup | test | Gbit/s (median) | runs | packets/s received | loss | CPU s/GB side A (sender) | CPU s/GB side B (receiver) | cores per Gbit/s (A+B) | TCP retransmits | VPN socket drops in B |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setup, sname in SETUPS:
        for test, tname in TESTS:
            c = summary.get(f"{setup}/{test}")
            if c is None:
                continue
            spread = "/".join(format(g, ".2f") for g in c["gbps_all"])
            pps = "" if "pps" not in c else fmt(c["pps"] and c["pps"] / 1e3, ".0f") + " k"
            loss = "" if "loss_pct" not in c else fmt(c["loss_pct"], ".1f") + " %"
            lines.append(
                f"| {sname} | {tname} | **{c['gbps']:.2f}** ({spread}) | {c['runs']} | {pps} | {loss} | "
                f"{fmt(c['cpu_a_s_per_gb'], '.2f')} | {fmt(c['cpu_b_s_per_gb'], '.2f')} | {fmt(c['cores_per_gbps'], '.2f')} | {fmt(c['retransmits'], '.0f') if test in ('tcp1', 'tcp4', 'lat') else ''} | {fmt(c['drops_b'], '.0f')} |"
            )
    lines += latency_table(summary) + small_packets_table(summary) + ratio_table(summary)
    return "\n".join(lines)


def latency_table(summary):
    rows = [(s, n, summary.get(f"{s}/lat")) for s, n in SETUPS if summary.get(f"{s}/lat")]
    if not rows:
        return []
    out = [
        "",
        "**Latency under load** (test `lat`: ping every 5 ms A → B through the tunnel while one iperf3 TCP "
        "stream runs A → B; RTT in ms, median over the runs of each run's percentile; idle = p50 of 100 "
        "pings just before the stream):",
        "",
        "| setup | idle p50 | p50 | p90 | p99 | pings (lost) | TCP Gbit/s meanwhile |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, n, c in rows:
        lost = fmt(c.get("ping_loss_pct"), ".1f")
        out.append(
            f"| {n} | {fmt(c.get('rtt_idle_p50_ms'), '.2f')} | **{fmt(c.get('rtt_p50_ms'), '.2f')}** | "
            f"{fmt(c.get('rtt_p90_ms'), '.2f')} | **{fmt(c.get('rtt_p99_ms'), '.2f')}** | "
            f"{c.get('pings', 0):.0f} ({lost} %) | {c['gbps']:.2f} |"
        )
    return out


def small_packets_table(summary):
    rows = [(s, n, summary.get(f"{s}/udp64")) for s, n in SETUPS if summary.get(f"{s}/udp64")]
    if not rows:
        return []
    veth = (summary.get("veth/udp64") or {}).get("pps")
    out = [
        "",
        "**Small packets** (test `udp64`: iperf3 UDP at unlimited rate, 64-byte inner IP packets; packets/s "
        "the iperf3 server received, and iperf3's loss):",
        "",
        "| setup | k packets/s received | of bare veth | loss |",
        "|---|---|---|---|",
    ]
    for s, n, c in rows:
        pps = c.get("pps")
        share = f"{100 * pps / veth:.0f} %" if pps and veth else "–"
        out.append(f"| {n} | **{fmt(pps and pps / 1e3, '.0f')}** | {share} | {fmt(c.get('loss_pct'), '.1f')} % |")
    return out


def ratio_table(summary):
    rivals = [(r, n) for r, n in SETUPS if r in RIVALS and any(k.startswith(r + "/") for k in summary)]
    ours = [(s, n) for s, n in SETUPS if s.startswith("fv-fv") and any(k.startswith(s + "/") for k in summary)]
    if not rivals or not ours:
        return []
    out = [
        "",
        "**Ratios of medians in this run** (ferrovpn's Gbit/s — for `udp64` the same as packets/s — divided "
        "by the column's; `lat` compares the TCP stream that ran beside the pings):",
        "",
        "| ferrovpn setup | test | " + " | ".join(f"/ {n}" for _, n in rivals) + " |",
        "|---|---|" + "---|" * len(rivals),
    ]
    for s, n in ours:
        for t, tname in TESTS:
            fv = (summary.get(f"{s}/{t}") or {}).get("gbps")
            if not fv:
                continue
            cells = []
            for r, _ in rivals:
                g = (summary.get(f"{r}/{t}") or {}).get("gbps")
                cells.append(f"{fv / g:.2f}×" if g else "–")
            out.append(f"| {n} | {tname} | " + " | ".join(cells) + " |")
    return out


def svg(summary, title):
    """One horizontal bar chart per test, stacked: Gbit/s for TCP and udp1400, k packets/s for udp64,
    RTT p50/p90/p99 (ms) for lat. Setups that were not measured are left out."""
    setups = [(s, n) for s, n in SETUPS if any(k.startswith(s + "/") for k in summary)]
    panels = []
    for t, tname in TESTS:
        if not any(summary.get(f"{s}/{t}") for s, _ in setups):
            continue
        if t == "lat":
            panels.append((t, f"{tname}: ping RTT under load, ms (p50 / p90 / p99; shorter is better)",
                           [("rtt_p50_ms", 1.0, 1.0), ("rtt_p90_ms", 1.0, 0.65), ("rtt_p99_ms", 1.0, 0.35)]))
        elif t == "udp64":
            panels.append((t, f"{tname}: k packets/s received (median)", [("pps", 1e-3, 1.0)]))
        else:
            panels.append((t, f"{tname}: Gbit/s (median)", [("gbps", 1.0, 1.0)]))
    w, left, right, bar, gap, head = 900, 230, 90, 14, 6, 34
    y = 44
    body = []
    for t, ptitle, keys in panels:
        body.append(f'<text x="{left}" y="{y + 16}" font-weight="bold">{ptitle}</text>')
        y += head
        vals = [(summary.get(f"{s}/{t}") or {}).get(k) for s, _ in setups for k, _, _ in keys]
        vmax = max([v * sc for v, (_, sc, _) in zip(vals, keys * len(setups)) if v] or [1.0])
        pw = w - left - right
        for s, n in setups:
            c = summary.get(f"{s}/{t}") or {}
            body.append(f'<text x="{left - 8}" y="{y + bar * len(keys) / 2 + 4}" text-anchor="end">{n}</text>')
            for k, sc, op in keys:
                v = c.get(k)
                if v is not None:
                    v *= sc
                    bw = max(pw * v / vmax, 1)
                    body.append(f'<rect x="{left}" y="{y}" width="{bw:.1f}" height="{bar - 2}" fill="{COLORS[s]}" fill-opacity="{op}"/>')
                    body.append(f'<text x="{left + bw + 4:.1f}" y="{y + bar - 4}" font-size="10">{v:.3g}</text>')
                else:
                    body.append(f'<text x="{left + 4}" y="{y + bar - 4}" font-size="10">not measured</text>')
                y += bar
            y += gap
        y += 14
    h = y + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>',
        *body,
        "</svg>",
    ]
    return "\n".join(out) + "\n"


def update_doc(path, label, text):
    begin, end = f"<!-- bench:{label}:begin -->", f"<!-- bench:{label}:end -->"
    doc = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        pre, rest = doc.split(begin, 1)
        _, post = rest.split(end, 1)
        doc = pre + block + post
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    open(path, "w", encoding="utf-8").write(doc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--label", required=True)
    ap.add_argument("--machine", default="")
    ap.add_argument("--date", default="")
    ap.add_argument("--command", default="")
    ap.add_argument("--load", default="")
    ap.add_argument("--ferrovpn", default="")
    ap.add_argument("--rival", default="", help="how the rival was configured, and what still differs")
    ap.add_argument("--doc")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.csv)))
    summary = summarize(rows)
    base = os.path.splitext(a.csv)[0]
    meta = {k: getattr(a, k) for k in ("label", "machine", "date", "command", "load", "ferrovpn", "rival")}
    json.dump({"meta": meta, "results": summary}, open(base + ".json", "w"), indent=1)
    title = f"iperf3 and ping through each tunnel, 2 namespaces, run {a.label} ({a.date})"
    open(base + ".svg", "w").write(svg(summary, title))
    tab = table(summary)
    print(tab)
    if a.doc:
        name = os.path.basename(base)
        text = "\n".join(
            [
                f"### Run \"{a.label}\" ({a.date}, ferrovpn {a.ferrovpn})",
                "",
                f"Machine: {a.machine}; shared with other helpers (load average at the end: {a.load}).",
                f"Command: `{a.command}`. Raw runs: [bench/{name}.csv](bench/{name}.csv), medians: "
                f"[bench/{name}.json](bench/{name}.json).",
                "",
                *([f"Rival: {a.rival}", ""] if a.rival else []),
                tab,
                "",
                f"![chart](bench/{name}.svg)",
            ]
        )
        update_doc(a.doc, a.label, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

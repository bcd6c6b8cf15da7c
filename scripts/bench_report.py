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
]
TESTS = [
    ("tcp1", "TCP 1 stream"),
    ("tcp4", "TCP 4 streams"),
    ("udp64", "UDP 64 B"),
    ("udp1400", "UDP 1400 B"),
]
COLORS = {
    "veth": "#9e9e9e",
    "fv-fv": "#d95f02",
    "fv-fv-udp": "#e6ab02",
    "ss-ss": "#1b9e77",
    "fv-ss": "#7570b3",
}


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
                f"{fmt(c['cpu_a_s_per_gb'], '.2f')} | {fmt(c['cpu_b_s_per_gb'], '.2f')} | {fmt(c['cores_per_gbps'], '.2f')} | {fmt(c['retransmits'], '.0f') if test.startswith('tcp') else ''} | {fmt(c['drops_b'], '.0f')} |"
            )
    ratios = []
    for test, tname in TESTS:
        ss = (summary.get(f"ss-ss/{test}") or {}).get("gbps")
        for setup, sname in SETUPS:
            if not setup.startswith("fv-fv"):
                continue
            fv = (summary.get(f"{setup}/{test}") or {}).get("gbps")
            if fv and ss:
                ratios.append(f"{tname}: {sname} / strongSwan ⇄ strongSwan = **{fv / ss:.1f}×**")
    if ratios:
        lines += ["", "Ratios of medians in this run: " + "; ".join(ratios) + "."]
    return "\n".join(lines)


def svg(summary, title):
    """Two panels of grouped bars: Gbit/s for the TCP tests, k packets/s received for UDP."""
    w, h, top, left, ph = 1000, 420, 60, 70, 280
    panels = [
        ("Gbit/s (iperf3 TCP, median)", [t for t in TESTS if t[0].startswith("tcp")], "gbps", 1.0),
        ("k packets/s received (iperf3 UDP, median)", [t for t in TESTS if t[0].startswith("udp")], "pps", 1e-3),
    ]
    pw = (w - left - 40) / 2 - 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>',
    ]
    for pi, (ptitle, tests, key, scale) in enumerate(panels):
        x0 = left + pi * (pw + 80)
        vals = [
            (summary.get(f"{s}/{t}") or {}).get(key) for t, _ in tests for s, _ in SETUPS
        ]
        vmax = max([v * scale for v in vals if v] or [1.0]) * 1.1
        out.append(f'<text x="{x0 + pw / 2}" y="{top - 12}" text-anchor="middle">{ptitle}</text>')
        out.append(f'<line x1="{x0}" y1="{top + ph}" x2="{x0 + pw}" y2="{top + ph}" stroke="black"/>')
        out.append(f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{top + ph}" stroke="black"/>')
        for k in range(5):
            v = vmax * k / 4
            y = top + ph - ph * k / 4
            out.append(f'<text x="{x0 - 6}" y="{y + 4}" text-anchor="end">{v:.3g}</text>')
            out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + pw}" y2="{y}" stroke="#ddd"/>')
        gw = pw / len(tests)
        bw = gw * 0.8 / len(SETUPS)
        for ti, (t, tname) in enumerate(tests):
            gx = x0 + ti * gw + gw * 0.1
            out.append(f'<text x="{x0 + ti * gw + gw / 2}" y="{top + ph + 18}" text-anchor="middle">{tname}</text>')
            for si, (s, _) in enumerate(SETUPS):
                v = (summary.get(f"{s}/{t}") or {}).get(key)
                if v is None:
                    continue
                v *= scale
                bh = ph * v / vmax
                x = gx + si * bw
                out.append(
                    f'<rect x="{x:.1f}" y="{top + ph - bh:.1f}" width="{bw - 2:.1f}" height="{bh:.1f}" fill="{COLORS[s]}"/>'
                )
                out.append(
                    f'<text x="{x + bw / 2 - 1:.1f}" y="{top + ph - bh - 3:.1f}" text-anchor="middle" font-size="10">{v:.3g}</text>'
                )
    lx = left
    for s, sname in SETUPS:
        out.append(f'<rect x="{lx}" y="{h - 30}" width="12" height="12" fill="{COLORS[s]}"/>')
        out.append(f'<text x="{lx + 16}" y="{h - 20}">{sname}</text>')
        lx += 170
    out.append("</svg>")
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
    title = f"iperf3 through ESP aes128gcm16, 2 namespaces, {a.label} ({a.date})"
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

#!/usr/bin/env python3
"""Draws the soak test's samples as an SVG chart and checks their trends.

    tests/soak_chart.py soak.csv soak.svg [--warmup S] [--title T]
                        [--check [--rss-rel R] [--rss-floor-kib K]
                                 [--fd-slack N] [--fd-rel R] [--idle-fd-slack N]]

The CSV is what tests/soak.sh writes: elapsed_s, rss_kib, fds, cpu_s,
hwm_kib, sockets, threads, children, phase (`before` the load, `load`,
`after` it). Three panels share the time axis: RSS (with the peak, VmHWM,
and the least-squares line fitted after the warm-up), open descriptors
(and how many are sockets), and CPU use between samples. The warm-up is
shaded.

With --check, prints the verdict and exits 1 when a trend fails (the
criteria are explained at the top of tests/soak.sh):
  - RSS: the fitted line may rise over the measured window by at most
    max(R x mean RSS, K KiB);
  - descriptors under load: no sample of the second half of the measured
    window above the maximum of the first half plus max(N, R x max);
  - descriptors at rest: the count after the load at most the count before
    it + the idle slack.

Standard library only (no matplotlib), so it runs wherever Python 3 does.
"""

import argparse
import csv
import html
import math
import sys


def load(path):
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.append(
                {
                    "t": float(r["elapsed_s"]),
                    "rss": float(r["rss_kib"]),
                    "fds": float(r["fds"]),
                    "cpu": float(r["cpu_s"]),
                    "hwm": float(r.get("hwm_kib") or 0),
                    "sockets": float(r.get("sockets") or 0),
                    "phase": r.get("phase") or "load",
                }
            )
    return rows


def fit(points):
    """Least-squares line through (x, y) points: (slope, intercept)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0, my
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return slope, my - slope * mx


def nice_ticks(lo, hi, count=5):
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    if ticks[-1] < hi:
        ticks.append(ticks[-1] + step)
    return ticks


def fmt(v):
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.4g}"


class Panel:
    """One chart panel: a y range, series and labels, drawn to SVG."""

    def __init__(self, title, unit, top, height, x0, x1, left, width):
        self.title, self.unit = title, unit
        self.top, self.height = top, height
        self.x0, self.x1 = x0, x1
        self.left, self.width = left, width
        self.items = []
        self.lo, self.hi = math.inf, -math.inf

    def include(self, values):
        for v in values:
            self.lo, self.hi = min(self.lo, v), max(self.hi, v)

    def px(self, x):
        return self.left + (x - self.x0) / (self.x1 - self.x0 or 1) * self.width

    def py(self, y):
        return self.top + self.height - (y - self.lo) / (self.hi - self.lo or 1) * self.height

    def line(self, pts, color, dash=None, width=1.8, label=None):
        self.include(y for _, y in pts)
        self.items.append(("line", pts, color, dash, width, label))

    def dots(self, pts, color, label=None):
        self.include(y for _, y in pts)
        self.items.append(("dots", pts, color, None, 0, label))

    def svg(self, warmup, xticks, xlabel_fn):
        lo, hi = self.lo, self.hi
        if lo == math.inf:
            lo, hi = 0, 1
        pad = (hi - lo) * 0.1 or max(abs(hi) * 0.05, 1)
        ticks = nice_ticks(max(0, lo - pad) if lo >= 0 else lo - pad, hi + pad)
        self.lo, self.hi = ticks[0], ticks[-1]
        out = []
        bottom = self.top + self.height
        out.append(
            f'<text x="{self.left}" y="{self.top - 30}" class="title">'
            f"{html.escape(self.title)} ({html.escape(self.unit)})</text>"
        )
        if warmup > self.x0:
            w = self.px(min(warmup, self.x1)) - self.left
            out.append(
                f'<rect x="{self.left}" y="{self.top}" width="{w:.1f}" '
                f'height="{self.height}" fill="#eee"/>'
            )
        for t in ticks:
            y = self.py(t)
            out.append(
                f'<line x1="{self.left}" x2="{self.left + self.width}" y1="{y:.1f}" '
                f'y2="{y:.1f}" stroke="#ddd"/>'
            )
            out.append(f'<text x="{self.left - 6}" y="{y + 4:.1f}" class="ylab">{fmt(t)}</text>')
        for t in xticks:
            x = self.px(t)
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.top}" y2="{bottom}" stroke="#f2f2f2"/>'
            )
            out.append(f'<text x="{x:.1f}" y="{bottom + 14}" class="xlab">{xlabel_fn(t)}</text>')
        out.append(
            f'<rect x="{self.left}" y="{self.top}" width="{self.width}" height="{self.height}" '
            f'fill="none" stroke="#888"/>'
        )
        # The legend runs right to left on the title line, clear of the data.
        legend_x = self.left + self.width
        for kind, _, color, dash, width, label in reversed(self.items):
            if not label:
                continue
            y = self.top - 11
            out.append(
                f'<text x="{legend_x}" y="{y + 4}" class="legend">{html.escape(label)}</text>'
            )
            legend_x -= 5.6 * len(label) + 6
            if kind == "line":
                extra = f' stroke-dasharray="{dash}"' if dash else ""
                out.append(
                    f'<line x1="{legend_x - 18:.1f}" x2="{legend_x:.1f}" y1="{y}" y2="{y}" '
                    f'stroke="{color}" stroke-width="{max(width, 1.5)}"{extra}/>'
                )
            else:
                out.append(f'<circle cx="{legend_x - 9:.1f}" cy="{y}" r="3.5" fill="{color}"/>')
            legend_x -= 30
        for kind, pts, color, dash, width, label in self.items:
            if kind == "line" and len(pts) >= 2:
                d = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in pts)
                extra = f' stroke-dasharray="{dash}"' if dash else ""
                out.append(
                    f'<polyline points="{d}" fill="none" stroke="{color}" '
                    f'stroke-width="{width}"{extra}/>'
                )
            else:
                for x, y in pts:
                    out.append(
                        f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="3.5" '
                        f'fill="{color}"/>'
                    )
        return "\n".join(out)


def chart(rows, warmup, rss_fit, title):
    load_rows = [r for r in rows if r["phase"] == "load"]
    xs = [r["t"] for r in rows]
    x0, x1 = min(xs), max(xs)
    if x1 <= x0:
        x1 = x0 + 1
    minutes = x1 > 600
    xticks = [t for t in nice_ticks(x0 / 60 if minutes else x0, x1 / 60 if minutes else x1, 8)]
    if minutes:
        xticks = [t * 60 for t in xticks]
    xticks = [t for t in xticks if x0 <= t <= x1]

    def xlabel(t):
        return f"{t / 60:g} min" if minutes else f"{t:g} s"

    width, left, right, top, ph, gap = 900, 70, 20, 70, 180, 70
    plot_w = width - left - right
    panels = []

    p = Panel("Server RSS", "MiB", top, ph, x0, x1, left, plot_w)
    p.line([(r["t"], r["hwm"] / 1024) for r in load_rows], "#bbb", dash="4 3", width=1.2,
           label="peak (VmHWM)")
    p.line([(r["t"], r["rss"] / 1024) for r in load_rows], "#1f77b4", label="VmRSS under load")
    if rss_fit:
        slope, icpt, fx0, fx1 = rss_fit
        p.line([(fx0, (slope * fx0 + icpt) / 1024), (fx1, (slope * fx1 + icpt) / 1024)],
               "#d62728", dash="6 4", width=1.5, label="least-squares fit after warm-up")
    rest = [r for r in rows if r["phase"] != "load"]
    p.dots([(r["t"], r["rss"] / 1024) for r in rest], "#2ca02c", label="idle, before / after")
    panels.append(p)

    p = Panel("Open descriptors", "count", top + ph + gap, ph, x0, x1, left, plot_w)
    p.line([(r["t"], r["fds"]) for r in load_rows], "#9467bd", label="all descriptors")
    p.line([(r["t"], r["sockets"]) for r in load_rows], "#c5b0d5", dash="4 3", width=1.2,
           label="sockets")
    p.dots([(r["t"], r["fds"]) for r in rest], "#2ca02c", label="idle, before / after")
    panels.append(p)

    cpu = []
    for a, b in zip(rows, rows[1:]):
        if b["phase"] == "load" and b["t"] > a["t"]:
            cpu.append((b["t"], (b["cpu"] - a["cpu"]) / (b["t"] - a["t"]) * 100))
    p = Panel("Server CPU", "% of one core", top + 2 * (ph + gap), ph, x0, x1, left, plot_w)
    p.include([0])
    p.line(cpu, "#ff7f0e", label="between samples")
    panels.append(p)

    height = top + 3 * ph + 2 * gap + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        "<style>.title{font-weight:bold;font-size:13px}.ylab{text-anchor:end;fill:#555}"
        ".xlab{text-anchor:middle;fill:#555}.legend{text-anchor:end;fill:#333;font-size:11px}</style>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="15" font-weight="bold">{html.escape(title)}</text>',
        f'<text x="{left + plot_w}" y="22" text-anchor="end" fill="#777">'
        f"time since the load started; shaded: warm-up ({warmup:g} s), not in the trends</text>",
    ]
    for p in panels:
        parts.append(p.svg(warmup, xticks, xlabel))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def check(rows, a):
    """Prints the verdict on each trend; returns (passed, rss_fit)."""
    ok = True
    measured = [r for r in rows if r["phase"] == "load" and r["t"] >= a.warmup]
    if len(measured) < 3:
        print(f"trend FAIL: {len(measured)} samples after the {a.warmup:g} s warm-up; need 3")
        return False, None
    t_first, t_last = measured[0]["t"], measured[-1]["t"]
    span = t_last - t_first
    slope, icpt = fit([(r["t"], r["rss"]) for r in measured])
    mean = sum(r["rss"] for r in measured) / len(measured)
    rise = slope * span
    limit = max(a.rss_rel * mean, a.rss_floor_kib)
    verdict = "ok  " if rise <= limit else "FAIL"
    ok &= rise <= limit
    print(
        f"trend {verdict} RSS: mean {mean / 1024:.2f} MiB, fitted rise {rise:+.0f} KiB over "
        f"{span:g} s ({slope * 3600:+.0f} KiB/hour); limit {limit:.0f} KiB "
        f"(max({a.rss_rel:.0%} of mean, {a.rss_floor_kib:g} KiB)); "
        f"min {min(r['rss'] for r in measured):.0f}, max {max(r['rss'] for r in measured):.0f} KiB"
    )

    half = len(measured) // 2
    first, second = measured[:half], measured[half:]
    lo = min(r["fds"] for r in first)
    hi = max(r["fds"] for r in first)
    slack = max(a.fd_slack, a.fd_rel * hi)
    # Fewer descriptors than before is no leak: only the top of the band
    # binds.
    out = [r for r in second if r["fds"] > hi + slack]
    verdict = "ok  " if not out else "FAIL"
    ok &= not out
    print(
        f"trend {verdict} descriptors under load: first half {lo:.0f}..{hi:.0f} "
        f"(at most {hi + slack:.0f} later), second half "
        f"{min(r['fds'] for r in second):.0f}..{max(r['fds'] for r in second):.0f}"
        + ("; outside at " + ", ".join(f"{r['t']:g} s" for r in out) if out else "")
    )

    before = [r for r in rows if r["phase"] == "before"]
    after = [r for r in rows if r["phase"] == "after"]
    if before and after:
        b, e = before[0]["fds"], after[-1]["fds"]
        good = e <= b + a.idle_fd_slack
        ok &= good
        print(
            f"trend {'ok  ' if good else 'FAIL'} descriptors at rest: {b:.0f} before the load, "
            f"{e:.0f} after it (at most +{a.idle_fd_slack:g}); "
            f"RSS {before[0]['rss'] / 1024:.2f} -> {after[-1]['rss'] / 1024:.2f} MiB, "
            f"peak {max(r['hwm'] for r in rows) / 1024:.2f} MiB"
        )
    else:
        ok = False
        print("trend FAIL: no idle sample before or after the load")
    cpu = [r for r in rows if r["phase"] != "before"]
    if before and cpu and cpu[-1]["t"] > 0:
        used = cpu[-1]["cpu"] - before[0]["cpu"]
        print(f"server CPU: {used:.1f} s over {cpu[-1]['t']:g} s ({used / cpu[-1]['t']:.0%} of one core)")
    return ok, (slope, icpt, t_first, t_last)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv")
    ap.add_argument("svg")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds excluded from trends")
    ap.add_argument("--title", default="torsion soak")
    ap.add_argument("--check", action="store_true", help="print the verdict; exit 1 on failure")
    ap.add_argument("--rss-rel", type=float, default=0.02)
    ap.add_argument("--rss-floor-kib", type=float, default=1024.0)
    ap.add_argument("--fd-slack", type=float, default=4.0)
    ap.add_argument("--fd-rel", type=float, default=0.10)
    ap.add_argument("--idle-fd-slack", type=float, default=2.0)
    a = ap.parse_args()
    rows = load(a.csv)
    if not rows:
        print(f"{a.csv}: no samples", file=sys.stderr)
        return 1
    passed, rss_fit = check(rows, a) if a.check else (True, None)
    if not a.check:
        measured = [r for r in rows if r["phase"] == "load" and r["t"] >= a.warmup]
        if len(measured) >= 2:
            s, i = fit([(r["t"], r["rss"]) for r in measured])
            rss_fit = (s, i, measured[0]["t"], measured[-1]["t"])
    with open(a.svg, "w") as f:
        f.write(chart(rows, a.warmup, rss_fit, a.title))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

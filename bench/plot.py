"""Draw the scaling curves of ``bench/results.json`` as ``bench/scaling.svg``: time and memory against size.

A scaling series is every figure whose name carries a size (``100000 rows``,
``1000 stations``, ``100k stations``, ``1M stations``) and is otherwise the
same name; a series with at least two sizes becomes one line. Two panels,
both with a logarithmic size axis: times (s and ms, drawn in ms) and memory
(MB). The SVG is written by hand (no plotting library on the unit's
dependency list) and is meant for the README. ``python -m bench.plot
[RESULTS] [SVG]``; ``make bench`` runs it after the benchmarks.
"""

from __future__ import annotations

import html
import json
import math
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIZE = re.compile(r"\b(\d[\d,]*)(k|M)?( (?:rows|events|stations|voters|records))\b")
MEASURED_ASIDE = re.compile(r"\(\d+(?:\.\d+)? s; ")
"""A time quoted inside a figure's name ("(4.1 s; baseline: ...)"), which differs between the sizes of a series."""
MULTIPLIER = {None: 1, "k": 1_000, "M": 1_000_000}
PANELS = (("time", {"s": 1000.0, "ms": 1.0}, "ms"), ("memory", {"MB": 1.0}, "MB"))
COLOURS = ("#1f5fa8", "#c0392b", "#2a8a3e", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#b8860b",
           "#2c3e50", "#e84393")
WIDTH, PANEL_HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 900, 330, 70, 330, 40, 50

Series = dict[str, list[tuple[int, float]]]


def series(results: list[dict[str, Any]]) -> dict[str, Series]:
    """The scaling series by panel: ``{panel: {name with N for the size: [(size, value in the panel's unit)]}}``."""
    found: dict[str, dict[str, dict[int, float]]] = {panel: defaultdict(dict) for panel, _, _ in PANELS}
    for entry in results:
        match = SIZE.search(entry["name"])
        if match is None:
            continue
        size = int(match.group(1).replace(",", "")) * MULTIPLIER[match.group(2)]
        name = entry["name"][:match.start()] + "N" + match.group(3) + entry["name"][match.end():]
        name = MEASURED_ASIDE.sub("(", name)
        for panel, units, _ in PANELS:
            if entry["unit"] in units:
                found[panel][name][size] = float(entry["value"]) * units[entry["unit"]]
    return {panel: {name: sorted(points.items()) for name, points in lines.items() if len(points) >= 2}
            for panel, lines in found.items()}


def _ticks(low: float, high: float) -> list[float]:
    return [10.0 ** e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]


def _number(value: float) -> str:
    for limit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if value >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def _panel(title: str, unit: str, lines: Series, top: int) -> list[str]:
    out = [f'<text x="{LEFT}" y="{top - 14}" font-size="15" font-weight="bold">{html.escape(title)} ({unit}) '
           'against size</text>']
    if not lines:
        return [*out, f'<text x="{LEFT}" y="{top + 30}" font-size="13">no scaling series in these results</text>']
    sizes = [s for points in lines.values() for s, _ in points]
    values = [max(v, 1e-3) for points in lines.values() for _, v in points]
    xs, ys = _ticks(min(sizes), max(sizes)), _ticks(min(values), max(values))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, PANEL_HEIGHT - TOP - BOTTOM

    def x(size: float) -> float:
        return LEFT + plot_w * (math.log10(size) - math.log10(xs[0])) / max(math.log10(xs[-1] / xs[0]), 1e-9)

    def y(value: float) -> float:
        span = max(math.log10(ys[-1] / ys[0]), 1e-9)
        return top + plot_h - plot_h * (math.log10(max(value, 1e-3)) - math.log10(ys[0])) / span

    out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    for tick in xs:
        out.append(f'<line x1="{x(tick):.1f}" y1="{top}" x2="{x(tick):.1f}" y2="{top + plot_h}" stroke="#eee"/>'
                   f'<text x="{x(tick):.1f}" y="{top + plot_h + 18}" font-size="12" text-anchor="middle">'
                   f'{_number(tick)}</text>')
    for tick in ys:
        out.append(f'<line x1="{LEFT}" y1="{y(tick):.1f}" x2="{LEFT + plot_w}" y2="{y(tick):.1f}" stroke="#eee"/>'
                   f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" font-size="12" text-anchor="end">'
                   f'{_number(tick)}</text>')
    for n, (name, points) in enumerate(sorted(lines.items())):
        colour = COLOURS[n % len(COLOURS)]
        path = " ".join(f"{'M' if i == 0 else 'L'}{x(s):.1f},{y(v):.1f}" for i, (s, v) in enumerate(points))
        out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out.extend(f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>' for s, v in points)
        label = name.split(" (")[0]
        label = label if len(label) <= 58 else label[:56] + "…"
        legend_y = top + 12 + 15 * n
        out.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{WIDTH - RIGHT + 26}" y="{legend_y}" font-size="10">{html.escape(label)}</text>')
    return out


def render(results: list[dict[str, Any]]) -> str:
    """The SVG text of both panels."""
    found = series(results)
    height = PANEL_HEIGHT * len(PANELS)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, sans-serif">',
             f'<rect width="{WIDTH}" height="{height}" fill="white"/>']
    for n, (panel, _, unit) in enumerate(PANELS):
        parts.extend(_panel(panel.capitalize(), unit, found[panel], TOP + n * PANEL_HEIGHT))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else HERE / "results.json"
    target = Path(args[1]) if len(args) > 1 else source.with_name("scaling.svg")
    results = json.loads(source.read_text())
    target.write_text(render(results))
    counts = {panel: len(lines) for panel, lines in series(results).items()}
    print(f"wrote {target}: " + ", ".join(f"{n} {panel} series" for panel, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

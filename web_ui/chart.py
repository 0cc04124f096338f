"""The turnout-by-hour chart, drawn on the server as inline SVG.

Pure text building: no JavaScript and no external asset, so it prints and
works offline. Each hour is a bar with its count written above it (the
figures stay readable without colour); the caller supplies the hour labels
in the chosen locale and time zone. Used by ``templates/_live.html``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 300, 150
LEFT, RIGHT, TOP, BOTTOM = 8, 8, 18, 22
MAX_BAR = 36.0


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^k that is at least ``value`` (at least 1)."""
    step = 1
    while True:
        for mult in (1, 2, 5):
            if step * mult >= value:
                return step * mult
        step *= 10


def turnout_svg(points: Sequence[tuple[int, int]], *, hour_label: Callable[[int], str],
                number: Callable[[int], str], title: str, empty_text: str) -> Markup:
    """An SVG bar chart of ``(hour start, voters identified)`` pairs."""
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" class="axis"/>']
    if not points:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="empty">'
                     f'{escape(empty_text)}</text>')
    else:
        parts += _bars(points, hour_label, number)
    parts.append("</svg>")
    return Markup("".join(parts))


def _bars(points: Sequence[tuple[int, int]], hour_label: Callable[[int], str],
          number: Callable[[int], str]) -> list[str]:
    top = nice_ceiling(max(n for _, n in points))
    slot = (WIDTH - LEFT - RIGHT) / len(points)
    bar = min(MAX_BAR, max(2.0, slot * 0.7))
    usable = HEIGHT - TOP - BOTTOM
    out = []
    for i, (hour, count) in enumerate(points):
        h = usable * max(count, 0) / top
        x = LEFT + i * slot + (slot - bar) / 2
        y = HEIGHT - BOTTOM - h
        mid = x + bar / 2
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" class="bar"/>')
        out.append(f'<text x="{mid:.1f}" y="{y - 3:.1f}" text-anchor="middle" class="value">'
                   f'{escape(number(count))}</text>')
        out.append(f'<text x="{mid:.1f}" y="{HEIGHT - 6}" text-anchor="middle" class="hour">'
                   f'{escape(hour_label(hour))}</text>')
    return out

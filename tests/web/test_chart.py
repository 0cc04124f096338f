"""The server-side turnout chart: well-formed SVG, one bar per hour, figures as text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from web_ui.chart import nice_ceiling, turnout_svg

NS = "{http://www.w3.org/2000/svg}"


def draw(points: list[tuple[int, int]], label: str = "Voters") -> ET.Element:
    svg = turnout_svg(points, hour_label=lambda h: f"{h // 3600 % 24:02d}", number=str, title=label, empty_text="none")
    return ET.fromstring(str(svg))


@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 5000)), max_size=24))
def test_one_bar_per_hour_with_its_figure(points: list[tuple[int, int]]) -> None:
    root = draw(points)
    assert len(root.findall(f"{NS}rect")) == len(points)
    values = [t.text for t in root.findall(f"{NS}text") if t.get("class") == "value"]
    assert values == [str(n) for _, n in points]
    heights = [float(r.get("height", "0")) for r in root.findall(f"{NS}rect")]
    assert all(0 <= h <= 150 for h in heights)


def test_empty_chart_says_so() -> None:
    root = draw([])
    assert [t.text for t in root.findall(f"{NS}text")] == ["none"]


def test_title_is_escaped() -> None:
    root = draw([(0, 1)], label='<b>"x"</b>')
    assert root.find(f"{NS}title").text == '<b>"x"</b>'  # type: ignore[union-attr]


@given(st.integers(min_value=0, max_value=10**7))
def test_nice_ceiling(value: int) -> None:
    top = nice_ceiling(value)
    assert top >= max(value, 1) and str(top).rstrip("0") in ("1", "2", "5")
    assert top < 2.5 * max(value, 1)

"""The scaling plot reads size series out of benchmark figure names and draws one line per series."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bench.plot import render, series


def figure(name: str, value: float, unit: str) -> dict[str, object]:
    return {"name": name, "value": value, "unit": unit, "baseline": 1.0, "ratio": value}


RESULTS = [
    figure("voter list import peak RSS, 10000 rows (0.3 s; baseline: csv pass)", 31.2, "MB"),
    figure("voter list import peak RSS, 100000 rows (4.1 s; baseline: csv pass)", 53.5, "MB"),
    figure("registry load time, 1000 stations (baseline: json)", 0.03, "s"),
    figure("registry load time, 100000 stations (baseline: json)", 2.9, "s"),
    figure("page over HTTP, 1k stations: station page", 0.9, "ms"),
    figure("page over HTTP, 1M stations: station page", 1.4, "ms"),
    figure("page over HTTP, 1M stations: overview", 9.0, "ms"),
    figure("checkin_to_armed_p50", 0.6, "ms"),
]


def test_series_group_by_name_without_size_and_convert_to_the_panel_unit() -> None:
    found = series(RESULTS)
    assert found["memory"] == {"voter list import peak RSS, N rows (baseline: csv pass)": [(10_000, 31.2),
                                                                                           (100_000, 53.5)]}
    assert found["time"]["registry load time, N stations (baseline: json)"] == [(1_000, 30.0), (100_000, 2900.0)]
    assert found["time"]["page over HTTP, N stations: station page"] == [(1_000, 0.9), (1_000_000, 1.4)]
    # a single size is no curve, and a figure without a size is no series at all
    assert len(found["time"]) == 2


def test_the_svg_is_well_formed_with_one_path_per_series() -> None:
    root = ET.fromstring(render(RESULTS))
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    assert len(paths) == 3


def test_no_series_says_so_instead_of_drawing_nothing() -> None:
    assert "no scaling series" in render([figure("checkin_to_armed_p50", 0.6, "ms")])
